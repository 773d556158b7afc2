//! `sonde scan --resume RUN_DIR` (issue 16), in the lab: a scan
//! interrupted at random moments five times and resumed each time ends
//! with exactly the open ports of an uninterrupted run, verifies with its
//! segments, and no probe reached a target more often than its retries
//! allow (counted on the target side). A changed scope file and a run
//! with nothing left are refused without touching the directory.

use std::net::IpAddr;
use std::process::Command;
use std::time::Duration;

use support::evidence::{open_ports, report_json};
use support::lab::*;

const TARGETS: &str = "198.18.1.1-198.18.1.254";
const PORTS: &str = "1-100,443,8080,8081";
/// 254 hosts x 103 ports.
const PLANNED: u64 = 254 * 103;

fn interrupt_after(child: std::process::Child, delay: Duration) -> std::process::Output {
    std::thread::sleep(delay);
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    child.wait_with_output().unwrap()
}

#[test]
fn interrupted_five_times_and_resumed_ends_as_an_uninterrupted_run() {
    let lab = Lab::new();
    let dir = tempfile::tempdir().unwrap();

    // The uninterrupted run, for comparison.
    let whole = dir.path().join("whole");
    let (code, out, err) = lab.sonde(&[
        "scan",
        "--scope",
        "scopes/lab.toml",
        TARGETS,
        "-p",
        PORTS,
        "--rate",
        "20000",
        "--wait",
        "0.5",
        "-o",
        whole.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let expected = open_ports(&report_json(&whole.join("report.json")));
    // 22, 80 and 443 on the up hosts (the down ones are 198.18.1.200-209),
    // 8080 on the web host, 53 on the DNS server.
    assert_eq!(expected.len(), 244 * 3 + 2, "the uninterrupted run");
    assert!(expected.contains(&(IpAddr::V4(WEB_HOST_V4), 8080)));
    // The same scan, interrupted at random moments and resumed.
    let capture = dir.path().join("target.pcap");
    let tshark = lab.capture_target_side("vt", &capture);
    let run = dir.path().join("run");
    let mut seed: u64 = 0x0005_e63e_5a3e;
    let mut delay = || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        Duration::from_millis(600 + (seed >> 33) % 1400)
    };
    let first = lab
        .sonde_command()
        .args([
            "scan",
            "--scope",
            "scopes/lab.toml",
            TARGETS,
            "-p",
            PORTS,
            "--rate",
            "2000",
            "--wait",
            "0.5",
            "-o",
            run.to_str().unwrap(),
        ])
        .spawn()
        .unwrap();
    let mut out = interrupt_after(first, delay());
    let mut interrupts = 1;
    loop {
        assert_eq!(
            out.status.code(),
            Some(if interrupts > 0 { 1 } else { 0 }),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let r = report_json(&run.join("report.json"));
        let segments = r["segments"].as_array().unwrap();
        if segments.last().unwrap()["stopped_at"].is_null() {
            break;
        }
        let (code, verified, _) = lab.sonde(&["verify", run.to_str().unwrap()]);
        assert_eq!(code, 0, "segment {}: {verified}", segments.len());
        let resumed = lab
            .sonde_command()
            .args(["scan", "--resume", run.to_str().unwrap()])
            .spawn()
            .unwrap();
        if interrupts < 5 {
            out = interrupt_after(resumed, delay());
            interrupts += 1;
        } else {
            out = resumed.wait_with_output().unwrap();
            interrupts = 0;
        }
    }
    tshark.stop();
    let r = report_json(&run.join("report.json"));
    let segments = r["segments"].as_array().unwrap();
    assert!(segments.len() >= 2, "{segments:?}");
    let found = open_ports(&r);
    assert!(
        found == expected,
        "the resumed run's open ports differ: missing {:?}, extra {:?}",
        expected.difference(&found).take(10).collect::<Vec<_>>(),
        found.difference(&expected).take(10).collect::<Vec<_>>()
    );
    assert_eq!(r["probes"], PLANNED, "every probe of the plan, once");
    assert_eq!(
        r["parameters"]["seed"],
        report_json(&run.join(format!("report.segment-{}.json", segments.len() - 1)))["parameters"]
            ["seed"],
        "one order across the segments"
    );
    let (code, verified, _) = lab.sonde(&["verify", run.to_str().unwrap()]);
    assert_eq!(code, 0, "{verified}");
    // Every resume checked its state against the capture, bit for bit
    // (the segments' starts in the capture recorded), position by position.
    let audit = std::fs::read_to_string(run.join("audit.jsonl")).unwrap();
    let resumes: Vec<serde_json::Value> = audit
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["event"] == "run_resumed")
        .collect();
    assert_eq!(resumes.len(), segments.len() - 1);
    for r in &resumes {
        let checked = &r["state_checked"];
        assert_eq!(checked["positions"], true, "{r}");
        assert_eq!(checked["passed_positions_sent"], true, "{r}");
        assert_eq!(checked["answered"], "both ways", "{r}");
        assert!(checked["probes"].as_u64().unwrap() > 0, "{r}");
        assert!(r["capture_from"].as_u64().unwrap() > 24, "{r}");
    }
    for n in 2..=segments.len() {
        assert!(
            verified.contains(&format!("segment {n} resumed at")),
            "{verified}"
        );
    }

    // On the wire: no (target, port) got more SYNs than 1 + --retries (1),
    // and every one got at least one.
    let syns = support::evidence::syns_per_target(&capture, "198.18.0.2");
    assert_eq!(syns.len() as u64, PLANNED, "every probe reached its target");
    let most = syns.values().max().copied().unwrap_or(0);
    assert!(most <= 2, "a probe was sent {most} times");
}

#[test]
fn a_changed_scope_or_a_finished_run_is_not_resumed() {
    let lab = Lab::new();
    let dir = tempfile::tempdir().unwrap();
    let scope = dir.path().join("lab.toml");
    std::fs::copy(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scopes/lab.toml"),
        &scope,
    )
    .unwrap();
    let run = dir.path().join("run");
    let child = lab
        .sonde_command()
        .args([
            "scan",
            "--scope",
            scope.to_str().unwrap(),
            TARGETS,
            "-p",
            "1-20",
        ])
        .args([
            "--rate",
            "2000",
            "--wait",
            "0.3",
            "-o",
            run.to_str().unwrap(),
        ])
        .spawn()
        .unwrap();
    let out = interrupt_after(child, Duration::from_millis(800));
    assert_eq!(out.status.code(), Some(1));
    let listing = || {
        let mut names: Vec<String> = std::fs::read_dir(&run)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        (names, std::fs::read(run.join("audit.jsonl")).unwrap())
    };
    let before = listing();

    // The scope file changed: refused (exit 3), the directory untouched.
    let original = std::fs::read(&scope).unwrap();
    let mut edited = original.clone();
    edited.extend_from_slice(b"\n# edited after the run began\n");
    std::fs::write(&scope, &edited).unwrap();
    let (code, out, err) = lab.sonde(&["scan", "--resume", run.to_str().unwrap()]);
    assert_eq!(code, 3, "{out}{err}");
    assert!(err.contains("changed since the run began"), "{err}");
    assert_eq!(listing(), before, "a refused resume changes nothing");

    // Another option beside --resume: the run directory says them all.
    let (code, _, err) = lab.sonde(&["scan", "--resume", run.to_str().unwrap(), "--rate", "10"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot be used with"), "{err}");

    // Put back, it resumes and finishes; then there is nothing left.
    std::fs::write(&scope, &original).unwrap();
    let (code, out, err) = lab.sonde(&["scan", "--resume", run.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("segment 2 of a resumed run"), "{out}");
    let (code, _, err) = lab.sonde(&["scan", "--resume", run.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("nothing to resume"), "{err}");
    let (code, verified, _) = lab.sonde(&["verify", run.to_str().unwrap()]);
    assert_eq!(code, 0, "{verified}");
}

/// Regression (issue 25): a resume parsed the recorded command line again,
/// so it read `-iL FILE` (and resolved host names) anew: a list edited
/// between the segments changed the targets, and with them the probe
/// order the stop point refers to. The run records its request as
/// resolved (`scan_request`), and a resume reads that back.
#[test]
fn a_resume_scans_the_targets_the_run_resolved_not_the_list_file_now() {
    let lab = Lab::new();
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("targets.txt");
    std::fs::write(&list, "198.18.1.1-198.18.1.254\n").unwrap();
    let run = dir.path().join("run");
    let child = lab
        .sonde_command()
        .args(["scan", "--scope", "scopes/lab.toml", "-iL"])
        .arg(&list)
        .args(["-p", "1-20,22,80", "--rate", "2000", "--wait", "0.3", "-o"])
        .arg(&run)
        .spawn()
        .unwrap();
    let out = interrupt_after(child, Duration::from_millis(900));
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The list now names other hosts (and then none at all).
    std::fs::write(&list, "198.18.1.7\n").unwrap();
    let (code, out, err) = lab.sonde(&["scan", "--resume", run.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    let r = report_json(&run.join("report.json"));
    assert_eq!(
        r["parameters"]["targets"],
        serde_json::json!(["198.18.1.1-198.18.1.254"])
    );
    // 22 and 80 on every up host (198.18.1.200-209 are down).
    let found = open_ports(&r);
    assert_eq!(
        found.iter().filter(|(_, p)| *p == 22 || *p == 80).count(),
        244 * 2,
        "{found:?}"
    );
    let (code, verified, _) = lab.sonde(&["verify", run.to_str().unwrap()]);
    assert_eq!(code, 0, "{verified}");
}

/// The scope's probe budget is per run, not per process: a resumed segment
/// is charged with what the earlier one sent. At the edge: a budget of 260
/// for a first pass of 220 probes and a retry pass of 120 (six hosts never
/// answer) stops the run at exactly 260 probes over both segments, counted
/// on the target side.
#[test]
fn the_probe_budget_covers_every_segment_of_a_resumed_run() {
    budget_over_segments(false);
}

/// Regression (issue 26): the budget of a resumed run was read from
/// `report.json`, which a person can edit: its `counters.sent` set to 0
/// and the audit log re-chained by hand, a resumed run put more SYNs on
/// the target than `max_probes`, and `verify` said everything held. The
/// earlier segments are charged at least the probes their capture holds.
#[test]
fn an_edited_report_cannot_buy_probes_past_the_budget() {
    budget_over_segments(true);
}

fn budget_over_segments(forge: bool) {
    let lab = Lab::new();
    let dir = tempfile::tempdir().unwrap();
    let scope = lab_scope_with_budget(dir.path(), 260);
    let capture = dir.path().join("target.pcap");
    let tshark = lab.capture_target_side("vt", &capture);
    let run = dir.path().join("run");
    let child = lab
        .sonde_command()
        .args([
            "scan",
            "--scope",
            scope.to_str().unwrap(),
            "198.18.1.195-198.18.1.205",
            "-p",
            "1-20",
            "--rate",
            "200",
            "--wait",
            "0.3",
            "-o",
            run.to_str().unwrap(),
        ])
        .spawn()
        .unwrap();
    let out = interrupt_after(child, Duration::from_millis(500));
    assert_eq!(out.status.code(), Some(1));
    let first = report_json(&run.join("report.json"))["counters"]["sent"]
        .as_u64()
        .unwrap();
    assert!(
        first > 0 && first < 220,
        "interrupted in the first pass: {first}"
    );
    if forge {
        support::evidence::edit_report_and_rechain(&run, |r| {
            r["counters"]["sent"] = 0.into();
            r["segments"][0]["sent"] = 0.into();
        });
        let (code, out, err) = lab.sonde(&["verify", run.to_str().unwrap()]);
        assert_eq!(code, 0, "the forgery holds together: {out}{err}");
    }
    let (code, out, err) = lab.sonde(&["scan", "--resume", run.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    tshark.stop();
    if forge {
        let audit = std::fs::read_to_string(run.join("audit.jsonl")).unwrap();
        let resumed: serde_json::Value = audit
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|r| r["event"] == "run_resumed")
            .unwrap();
        let charged = &resumed["budget_charged"];
        assert_eq!(charged["report"], 0, "{resumed}");
        assert_eq!(
            charged["capture"], first,
            "every probe sent is in the capture"
        );
        assert_eq!(charged["charged"], first, "{resumed}");
    }
    let r = report_json(&run.join("report.json"));
    if !forge {
        assert_eq!(r["counters"]["sent"], 260, "{}", r["counters"]);
    }
    assert!(
        r["scope_stopped"].as_str().unwrap().contains("budget"),
        "{}",
        r["scope_stopped"]
    );
    let syns = support::evidence::tshark_count(
        &capture,
        "ip.src==198.18.0.2 && tcp.flags.syn==1 && tcp.flags.ack==0",
    );
    assert_eq!(syns, 260, "probes that reached the targets, both segments");
    // Regression (issue 26): a run its budget ended was resumed again and
    // again, each time an empty segment with exit 0. It is final.
    let audit_before = std::fs::read(run.join("audit.jsonl")).unwrap();
    let (code, out, err) = lab.sonde(&["scan", "--resume", run.to_str().unwrap()]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("its scope ended it") && err.contains("nothing to resume"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(run.join("audit.jsonl")).unwrap(),
        audit_before,
        "the refused resume changed nothing"
    );
}

/// A run interrupted in its first pass, for a forger to edit.
fn interrupted_run(lab: &Lab, run: &std::path::Path) {
    let child = lab
        .sonde_command()
        .args([
            "scan",
            "--scope",
            "scopes/lab.toml",
            TARGETS,
            "-p",
            PORTS,
            "--rate",
            "3000",
            "--wait",
            "0.3",
            "-o",
            run.to_str().unwrap(),
        ])
        .spawn()
        .unwrap();
    let out = interrupt_after(child, Duration::from_millis(1500));
    assert_eq!(out.status.code(), Some(1));
}

/// A refused resume: exit 2, the reason, and the directory untouched.
fn resume_is_refused(lab: &Lab, run: &std::path::Path, why: &str) {
    let (code, verified, _) = lab.sonde(&["verify", run.to_str().unwrap()]);
    assert_eq!(code, 0, "the forgery holds together: {verified}");
    let before = std::fs::read(run.join("audit.jsonl")).unwrap();
    let (code, out, err) = lab.sonde(&["scan", "--resume", run.to_str().unwrap()]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("its state disagrees with its evidence") && err.contains(why),
        "{err}"
    );
    assert_eq!(std::fs::read(run.join("audit.jsonl")).unwrap(), before);
}

/// Regression (issue 26): a stop point edited back to the start of the
/// pass (the audit log re-chained by hand) made 130 (target, port) pairs
/// be probed twice. The capture holds those probes: the resume is refused.
#[test]
fn a_forged_stop_point_is_refused_by_the_capture() {
    let lab = Lab::new();
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    interrupted_run(&lab, &run);
    support::evidence::edit_records_and_rechain(&run, |r| {
        if r["event"] == "scan_stopped" {
            assert_eq!(r["pass"], 0, "stopped in the first pass: {r}");
            for n in r["next"].as_array_mut().unwrap() {
                if let Some(p) = n.as_u64() {
                    *n = (p / 2).into();
                }
            }
        }
    });
    resume_is_refused(&lab, &run, "probe(s) its stop point says were not sent yet");
}

/// Regression (issue 26): answered bits cleared make a retry probe
/// answered pairs again; the capture holds their replies.
#[test]
fn forged_answered_bits_are_refused_by_the_capture() {
    let lab = Lab::new();
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    interrupted_run(&lab, &run);
    // answered.bin: a header line, then per kind its name, a word count
    // and the words; every word zeroed.
    let mut bits = std::fs::read(run.join("answered.bin")).unwrap();
    let mut at = bits.iter().position(|&b| b == b'\n').unwrap() + 1;
    while at < bits.len() {
        at += 1 + bits[at] as usize;
        let words = u64::from_le_bytes(bits[at..at + 8].try_into().unwrap()) as usize;
        at += 8;
        bits[at..at + words * 8].fill(0);
        at += words * 8;
    }
    support::evidence::replace_file_and_rechain(&run, "answered.bin", &bits);
    resume_is_refused(&lab, &run, "its answered bits call unanswered");
}
