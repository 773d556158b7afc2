//! `sonde scan` through the binary, in the lab: results, NDJSON, report,
//! a pcap tshark reads back, refusals before anything is sent, and a
//! capture in the target namespace proving out-of-scope hosts got nothing.

use std::process::Command;
use std::time::Duration;

use support::evidence::{folded, report_json, tshark_count};
use support::lab::*;

#[test]
fn scan_writes_results_ndjson_report_and_evidence() {
    let lab = Lab::new();
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let (pcap, report, ndjson) = (
        run.join("capture.pcap"),
        run.join("report.json"),
        run.join("results.ndjson"),
    );
    let (code, out, err) = lab.sonde(&[
        "scan",
        "--scope",
        "scopes/lab.toml",
        "198.18.1.10",
        "198.18.1.205",
        "2001:db8:1::10",
        "-p",
        "22,23,80,8081",
        "--probe",
        "syn,icmp",
        "--rate",
        "2000",
        "--wait",
        "1",
        "-o",
        run.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("198.18.1.10: open 22,80; answers ping"),
        "{out}"
    );
    assert!(
        out.contains("2001:db8:1::10: open 22,80; answers ping"),
        "{out}"
    );
    assert!(
        !out.contains("198.18.1.205"),
        "a down host has no results: {out}"
    );
    let r = report_json(&report);
    assert_eq!(r["scope"]["engagement_id"], "LAB-0001");
    assert_eq!(r["scope"]["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(r["probes"], 3 * 5);
    assert_eq!(
        r["possibly_incomplete"], false,
        "no drops, no failed output"
    );
    // Findings in full; closed ports folded, with their ranges.
    let states: Vec<String> = r["hosts"][0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| format!("{}:{}", x["port"], x["state"]))
        .collect();
    assert!(
        states.contains(&"22:\"open\"".to_string()) && states.contains(&"null:\"up\"".to_string()),
        "{states:?}"
    );
    // Ports carry nmap's service name (issue 16); an echo reply none.
    let services: Vec<String> = r["hosts"][0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| format!("{}:{}", x["port"], x["service"]))
        .collect();
    assert!(
        services.contains(&"22:\"ssh\"".to_string())
            && services.contains(&"80:\"http\"".to_string()),
        "{services:?}"
    );
    assert!(services.contains(&"null:null".to_string()), "{services:?}");
    assert_eq!(
        r["hosts"][0]["not_shown"],
        serde_json::json!([{"probe": "syn", "state": "closed", "reason": "rst", "count": 1, "ports": "23"}])
    );
    // The NDJSON records every reply but closed ports (--record answered).
    let lines = std::fs::read_to_string(&ndjson).unwrap();
    let matched = r["counters"]["matched"].as_u64().unwrap();
    assert_eq!(lines.lines().count() as u64, matched - folded(&r, "closed"));
    assert!(!lines.contains("\"closed\""), "{lines}");
    assert_eq!(r["parameters"]["record"], "answered");
    // The evidence: every probe sent and every reply, readable by tshark.
    let sent = r["counters"]["sent"].as_u64().unwrap() as usize;
    let received = r["counters"]["received"].as_u64().unwrap() as usize;
    assert_eq!(
        tshark_count(&pcap, "ip.src==198.18.0.2 || ipv6.src==2001:db8::2"),
        sent
    );
    // Every matched reply is in the evidence; traffic to us from others
    // (the gateway's neighbour solicitations) is counted but not recorded.
    let replies = tshark_count(&pcap, "ip.dst==198.18.0.2 || ipv6.dst==2001:db8::2");
    assert!(
        replies as u64 >= matched && replies <= received,
        "{replies} recorded, {matched} matched, {received} received"
    );
    let third_party = "(ip.dst==198.18.0.2 && !(ip.src==198.18.1.10 || ip.src==198.18.1.205)) || (ipv6.dst==2001:db8::2 && ipv6.src!=2001:db8:1::10)";
    assert_eq!(
        tshark_count(&pcap, third_party),
        0,
        "third-party traffic in the evidence"
    );
}

#[test]
fn out_of_scope_targets_are_refused_and_receive_nothing() {
    let lab = Lab::new();
    let dir = tempfile::tempdir().unwrap();
    let scope = dir.path().join("half.toml");
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/scopes/lab.toml")).unwrap();
    std::fs::write(
        &scope,
        text.replace(
            "targets = [\"198.18.0.0/15\", \"2001:db8::/32\"]",
            "targets = [\"198.18.1.0/25\"]",
        ),
    )
    .unwrap();
    let s = scope.to_str().unwrap();
    // capture on the target side for the whole test
    let capture = dir.path().join("target-side.pcap");
    let tshark = lab.capture_target_side("vt", &capture);
    let (code, _, err) = lab.sonde(&[
        "scan",
        "--scope",
        s,
        "198.18.1.0/24",
        "-p",
        "80",
        "--wait",
        "0.5",
        "-o",
        dir.path().join("refused").to_str().unwrap(),
    ]);
    assert_eq!(code, 3, "{err}");
    // A refused run leaves its audit log, and nothing else.
    let refused = dir.path().join("refused");
    let audit = std::fs::read_to_string(refused.join("audit.jsonl")).unwrap();
    assert!(
        audit.contains("\"event\":\"scope_refused\"") && audit.contains("198.18.1.128"),
        "{audit}"
    );
    assert_eq!(std::fs::read_dir(&refused).unwrap().count(), 1);
    assert!(
        err.contains("198.18.1.0/24")
            && err.contains("outside every allow rule")
            && err.contains("198.18.1.128"),
        "{err}"
    );
    let (code, _, err) = lab.sonde(&[
        "scan",
        "--scope",
        s,
        "198.18.1.0/25",
        "-p",
        "80",
        "--rate",
        "5000",
        "--wait",
        "0.5",
        "-o",
        dir.path().join("allowed").to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = lab.sonde(&[
        "scan",
        "--scope",
        s,
        "198.18.1.1",
        "-p",
        "80",
        "--rate",
        "5000000",
        "-o",
        dir.path().join("too-fast").to_str().unwrap(),
    ]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("above the scope's ceiling"), "{err}");
    let (code, _, err) = lab.sonde(&[
        "scan",
        "--scope",
        s,
        "198.18.1.1",
        "-p",
        "80",
        "-o",
        dir.path().join("allowed").to_str().unwrap(),
    ]);
    assert_eq!(
        code, 2,
        "a run directory holding evidence is refused: {err}"
    );
    assert!(err.contains("already holds files"), "{err}");
    let (code, _, err) = lab.sonde(&[
        "scan",
        "--scope",
        s,
        "198.18.1.1",
        "-p",
        "80",
        "-o",
        "/proc/sonde-cannot-create",
    ]);
    assert_eq!(code, 1, "{err}");
    tshark.stop();
    let to_in_scope = tshark_count(&capture, "ip.dst==198.18.1.0/25 && tcp.dstport==80");
    let to_out_of_scope = tshark_count(&capture, "ip.dst==198.18.1.128/25");
    assert!(
        to_in_scope >= 120,
        "the allowed scan should show on the wire: {to_in_scope}"
    );
    assert_eq!(to_out_of_scope, 0, "packets reached out-of-scope addresses");
}

/// Ctrl-C: the first signal stops sending and still writes a valid pcap,
/// NDJSON and a report marked interrupted; a second exits at once with the
/// pcap whole up to its last record.
#[test]
fn interrupting_a_scan_keeps_valid_evidence() {
    let lab = Lab::new();
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, signals: usize| {
        let run = dir.path().join(name);
        let (pcap, report, ndjson) = (
            run.join("capture.pcap"),
            run.join("report.json"),
            run.join("results.ndjson"),
        );
        // 254 hosts x 40 ports at 2,000 pps: about 5 s of sending
        let mut child = lab
            .sonde_command()
            .args([
                "scan",
                "--scope",
                "scopes/lab.toml",
                "198.18.1.0/24",
                "-p",
                "1-40",
                "--rate",
                "2000",
                "--wait",
                "0.5",
            ])
            .args(["-o", run.to_str().unwrap()])
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        let sent_at = std::time::Instant::now();
        for _ in 0..signals {
            // `ip netns exec` runs sonde in place of itself: the pid is sonde's
            let _ = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status();
            std::thread::sleep(Duration::from_millis(20));
        }
        let status = child.wait().unwrap();
        (status.code(), sent_at.elapsed(), pcap, report, ndjson)
    };

    let (code, took, pcap, report, ndjson) = run("once", 1);
    assert_eq!(code, Some(1), "an interrupted scan exits 1");
    assert!(took < Duration::from_secs(3), "stopping took {took:?}");
    let r = report_json(&report);
    assert_eq!(r["interrupted"], true);
    assert!(r["probes"].as_u64().unwrap() < 254 * 40, "{}", r["probes"]);
    let sent = r["counters"]["sent"].as_u64().unwrap() as usize;
    assert_eq!(
        tshark_count(&pcap, "ip.src==198.18.0.2"),
        sent,
        "every probe sent is in the evidence"
    );
    let lines = std::fs::read_to_string(&ndjson).unwrap().lines().count() as u64;
    assert_eq!(
        lines,
        r["counters"]["matched"].as_u64().unwrap() - folded(&r, "closed")
    );

    let (code, took, pcap, _, _) = run("twice", 2);
    assert_ne!(code, Some(0));
    assert!(
        took < Duration::from_secs(1),
        "a second signal exits at once: {took:?}"
    );
    let out = Command::new("tshark")
        .args(["-r", pcap.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !err.contains("cut short"),
        "the pcap is whole up to its last record: {err}"
    );
}

/// The progress line appears on a terminal (a pty from `script`), not with
/// --quiet, and not in a pipe.
#[test]
fn progress_line_only_on_a_terminal() {
    let lab = Lab::new();
    let bin = env!("CARGO_BIN_EXE_sonde");
    let scan =
        format!("{bin} scan --scope scopes/lab.toml 198.18.1.0/26 -p 1-50 --rate 1500 --wait 0.2");
    // Each run in a directory of its own, never in the crate's.
    let runs = tempfile::tempdir().unwrap();
    let on_tty = |extra: &str| {
        let run = runs
            .path()
            .join(if extra.is_empty() { "shown" } else { "quiet" });
        let out = lab
            .scanner_command("script")
            .args([
                "-qec",
                &format!("{scan} {extra} -o {}", run.display()),
                "/dev/null",
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .expect("script (util-linux)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let shown = on_tty("");
    assert!(
        shown.contains("pps") && shown.contains("ETA") && shown.contains("% "),
        "{shown}"
    );
    let quiet = on_tty("--quiet");
    assert!(!quiet.contains("ETA"), "{quiet}");
    let (code, out, err) = lab.sonde(&[
        "scan",
        "--scope",
        "scopes/lab.toml",
        "198.18.1.1",
        "-p",
        "80",
        "--wait",
        "0.2",
    ]);
    assert_eq!(code, 0);
    assert!(
        !err.contains("ETA") && !out.contains("ETA"),
        "no progress line in a pipe: {err}"
    );
}

/// --interface must match the route; --source-ip sets every probe's source
/// (here another address of the scanner) and replies to it are found.
#[test]
fn interface_and_source_ip() {
    let lab = Lab::new();
    let (code, _, err) = lab.sonde(&[
        "scan",
        "--scope",
        "scopes/lab.toml",
        "198.18.1.10",
        "-p",
        "80",
        "--interface",
        "lo",
        "--wait",
        "0.2",
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("routed through vs, not lo"), "{err}");
    // a second address on the scanner's link
    let added = Command::new("ip")
        .args([
            "-n",
            &lab.scanner_ns,
            "addr",
            "add",
            "198.18.0.3/24",
            "dev",
            "vs",
        ])
        .status()
        .unwrap();
    assert!(added.success());
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("run/capture.pcap");
    let (code, out, err) = lab.sonde(&[
        "scan",
        "--scope",
        "scopes/lab.toml",
        "198.18.1.10",
        "-p",
        "22,23",
        "--interface",
        "vs",
        "--source-ip",
        "198.18.0.3",
        "--wait",
        "0.5",
        "-o",
        dir.path().join("run").to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("198.18.1.10: open 22"), "{out}");
    assert_eq!(
        tshark_count(&pcap, "ip.src==198.18.0.2"),
        0,
        "no probe from the route's own source"
    );
    assert!(tshark_count(&pcap, "ip.src==198.18.0.3") >= 2);
    let (code, _, err) = lab.sonde(&[
        "scan",
        "--scope",
        "scopes/lab.toml",
        "2001:db8:1::10",
        "-p",
        "22",
        "--source-ip",
        "198.18.0.3",
        "--wait",
        "0.2",
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("address families differ"), "{err}");
}

/// Least privilege: once its sockets are open a scan holds no capability
/// in any thread, and under sudo its output files belong to the invoking
/// user.
#[test]
fn a_running_scan_holds_no_capabilities_and_sudo_users_own_the_outputs() {
    let lab = Lab::new();
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let pcap = run.join("capture.pcap");
    let report = run.join("report.json");
    let child = lab
        .sonde_command()
        .args([
            "scan",
            "--scope",
            "scopes/lab.toml",
            "198.18.1.0/24",
            "-p",
            "20-30",
            "--rate",
            "200",
            "--senders",
            "2",
            "--quiet",
            "-o",
            run.to_str().unwrap(),
        ])
        .env("SUDO_UID", "65534")
        .env("SUDO_GID", "65534")
        .env("SUDO_USER", "nobody")
        .spawn()
        .unwrap();
    // Sending has begun once probes reach the pcap (flushed every 0.5 s).
    let started = std::time::Instant::now();
    while std::fs::metadata(&pcap).map_or(0, |m| m.len()) <= 24 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the scan did not start sending"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let tasks: Vec<_> = std::fs::read_dir(format!("/proc/{}/task", child.id()))
        .unwrap()
        .map(|t| t.unwrap().path())
        .collect();
    assert!(
        tasks.len() >= 3,
        "main, receiving and sending threads: {tasks:?}"
    );
    for t in &tasks {
        let status = std::fs::read_to_string(t.join("status")).unwrap();
        for set in ["CapEff", "CapPrm", "CapInh", "CapAmb"] {
            let line = status.lines().find(|l| l.starts_with(set)).unwrap();
            assert!(
                line.ends_with("0000000000000000"),
                "{}: {line}",
                t.display()
            );
        }
    }
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    use std::os::unix::fs::MetadataExt;
    for f in [
        &run,
        &pcap,
        &report,
        &run.join("results.ndjson"),
        &run.join("audit.jsonl"),
    ] {
        let m = std::fs::metadata(f).unwrap();
        assert_eq!((m.uid(), m.gid()), (65534, 65534), "{}", f.display());
    }
    // The interrupted scan's evidence still reads, with the probes sent,
    // and names the invoking user as the operator.
    assert!(tshark_count(&pcap, "tcp.flags.syn==1 && tcp.flags.ack==0") > 0);
    let r = report_json(&report);
    assert_eq!(r["operator"], "nobody");
    assert_eq!(r["interrupted"], true);
    let audit = std::fs::read_to_string(run.join("audit.jsonl")).unwrap();
    assert!(
        audit
            .lines()
            .next()
            .unwrap()
            .contains("\"operator\":\"nobody\"")
    );
}

/// A full disk mid-scan: sending stops, sonde says so (exit 1), the report
/// says why, and the pcap is cut back to its last whole record.
#[test]
fn a_full_disk_stops_the_scan_and_keeps_the_pcap_valid() {
    let lab = Lab::new();
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small");
    std::fs::create_dir(&small).unwrap();
    // 192 KiB: room for a few thousand probes of the 25,000 asked for.
    let ok = Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            "size=192k",
            "tmpfs",
            small.to_str().unwrap(),
        ])
        .status()
        .unwrap()
        .success();
    assert!(ok, "mount a small tmpfs (the test runs as root)");
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(small.clone());
    // The whole run directory on the small disk.
    let pcap = small.join("capture.pcap");
    let (code, _, err) = lab.sonde(&[
        "scan",
        "--scope",
        "scopes/lab.toml",
        "198.18.1.0/24",
        "-p",
        "1-100",
        "--rate",
        "20000",
        "--wait",
        "0.5",
        "-o",
        small.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("No space left"), "{err}");
    // What could be written of the report says why sending stopped; the
    // disk may not have had room for it at all.
    if let Ok(text) = std::fs::read(small.join("report.json"))
        && let Ok(r) = serde_json::from_slice::<serde_json::Value>(&text)
    {
        assert!(
            r["output_error"]
                .as_str()
                .unwrap()
                .contains("No space left"),
            "{}",
            r["output_error"]
        );
        assert_eq!(r["possibly_incomplete"], true);
        let probes = r["probes"].as_u64().unwrap();
        assert!(probes < 25_600, "sending stopped early: {probes}");
    }
    // The audit chain holds as far as it was written. Either the log had
    // room to the end and says the run failed and wrote no report, or it
    // was cut short and verify says so.
    let (code, out, _) = lab.sonde(&["verify", small.to_str().unwrap()]);
    assert!(!out.contains("prev is"), "no record was damaged: {out}");
    match code {
        0 => assert!(
            out.contains("no report: the run wrote none (exit status 1)")
                || out.contains("the run failed (exit status 1) before it recorded its report"),
            "{out}"
        ),
        1 => assert!(out.contains("does not end with run_finished"), "{out}"),
        _ => panic!("verify: {code}: {out}"),
    }
    // The results hold whole lines only.
    let results = std::fs::read_to_string(small.join("results.ndjson")).unwrap();
    assert!(results.is_empty() || results.ends_with('\n'));
    for line in results.lines() {
        serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    }
    // tshark reads the cut pcap to its end without a complaint.
    let out = Command::new("tshark")
        .args(["-r", pcap.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("cut short"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).lines().count() > 1000);
}

/// Overload: a sniffer queue far too small for the reply rate. The kernel's
/// drops are counted and reported, and the report says its results may be
/// incomplete.
#[test]
fn kernel_drops_are_counted_and_mark_the_report_incomplete() {
    let lab = Lab::new();
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("run/report.json");
    let (code, _, err) = lab.sonde(&[
        "scan",
        "--scope",
        "scopes/lab.toml",
        "198.18.1.0/24",
        "-p",
        "1-200",
        "--rate",
        "100000",
        "--senders",
        "2",
        "--retries",
        "0",
        "--wait",
        "0.5",
        "--sniffer-buffer",
        "8k",
        "-o",
        dir.path().join("run").to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let r = report_json(&report);
    let drops = r["counters"]["kernel_drops"].as_u64().unwrap();
    assert!(
        drops > 0,
        "an 8 KiB queue at 100,000 replies/s must overflow: {}",
        r["counters"]
    );
    assert_eq!(r["possibly_incomplete"], true);
    assert!(
        err.contains("dropped") && err.contains("incomplete"),
        "{err}"
    );
    let (code, _, err) = lab.sonde(&[
        "scan",
        "--scope",
        "scopes/lab.toml",
        "198.18.1.10",
        "-p",
        "80",
        "--sniffer-buffer",
        "12q",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("256k"), "{err}");
}

/// Twenty interrupts at pseudo-random moments (SIGINT and SIGTERM in
/// turn): each scan stops sending within 100 ms of the signal, exits 1,
/// and leaves a pcap tshark reads holding exactly the probes its report
/// (valid against the schema, marked interrupted) says were sent.
#[test]
fn interrupted_at_random_moments_twenty_times() {
    let lab = Lab::new();
    let dir = tempfile::tempdir().unwrap();
    let mut seed: u64 = 0x005e_ed0f_50de;
    for i in 0..20 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let delay = Duration::from_millis(150 + (seed >> 33) % 1200);
        let signal = if i % 2 == 0 { "-INT" } else { "-TERM" };
        // Four topologies in turn: routed hosts; hosts on the scanner's own
        // link, where the first moments are neighbour discovery; a sparse
        // range on the link (10 live addresses of 256: mostly discovery
        // rounds for silent ones); and IPv6 on the link (neighbour
        // solicitations, one live address among 256; the scanner's own
        // 2001:db8::2 left out).
        let (targets, ports, planned) = match i % 4 {
            0 => ("198.18.1.0/24", "1-40", 256 * 40),
            1 => ("198.18.0.8-198.18.0.40", "1-300", 33 * 300),
            2 => ("198.18.0.3-198.18.0.254", "1-1000", 252 * 1000),
            _ => (
                "2001:db8::1 2001:db8::3-2001:db8::101",
                "1-20000",
                256 * 20000,
            ),
        };
        let run = dir.path().join(i.to_string());
        let (pcap, report) = (run.join("capture.pcap"), run.join("report.json"));
        let child = lab
            .sonde_command()
            .args([
                "scan",
                "--scope",
                "scopes/lab.toml",
                "-p",
                ports,
                "--rate",
                "5000",
                "--wait",
                "0.3",
            ])
            .args(targets.split(' '))
            .args(["-o", run.to_str().unwrap()])
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let signalled = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let signal_sent = std::time::Instant::now();
        let _ = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status();
        let out = child.wait_with_output().unwrap();
        let what = format!("interrupt {i} ({signal} after {delay:?}, {targets})");
        // Gone within --wait + 2 s, evidence complete.
        assert!(
            signal_sent.elapsed() < Duration::from_millis(2300),
            "{what}: exited {:?} after the signal",
            signal_sent.elapsed()
        );
        assert_eq!(
            out.status.code(),
            Some(1),
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let r = report_json(&report);
        assert_eq!(r["interrupted"], true, "{what}");
        let sent = r["counters"]["sent"].as_u64().unwrap() as usize;
        assert!(sent < planned, "{what}: stopped early");
        let (code, verified, _) = lab.sonde(&["verify", run.to_str().unwrap()]);
        assert_eq!(code, 0, "{what}: {verified}");
        let probes = Command::new("tshark")
            .args([
                "-r",
                pcap.to_str().unwrap(),
                "-Y",
                "ip.src==198.18.0.2 || ipv6.src==2001:db8::2",
                "-T",
                "fields",
                "-e",
                "frame.time_epoch",
            ])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&probes.stderr);
        assert!(
            probes.status.success() && !err.contains("cut short"),
            "{what}: {err}"
        );
        let times: Vec<f64> = String::from_utf8_lossy(&probes.stdout)
            .lines()
            .map(|l| l.trim().parse().unwrap())
            .collect();
        assert_eq!(
            times.len(),
            sent,
            "{what}: every probe sent is in the evidence"
        );
        if let Some(last) = times.last() {
            assert!(
                last - signalled < 0.1,
                "{what}: the last probe left {:.0} ms after the signal",
                (last - signalled) * 1000.0
            );
        }
    }
}

/// The run directory: a report that records who, where, when, under which
/// scope and with which files, embeds the capture's own analysis, and
/// anchors itself in the audit chain; `sonde verify` catches one flipped
/// byte in every file and every removed or moved audit record.
#[test]
fn a_run_directory_is_self_describing_and_verify_catches_every_change() {
    let lab = Lab::new();
    let dir = tempfile::tempdir().unwrap();
    let scope = dir.path().join("lab.toml");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/scopes/lab.toml"),
        &scope,
    )
    .unwrap();
    let run = dir.path().join("run");
    let (code, out, err) = lab.sonde(&[
        "scan",
        "--scope",
        scope.to_str().unwrap(),
        "198.18.1.10",
        "-p",
        "22,23",
        "--probe",
        "syn,icmp",
        "--wait",
        "0.3",
        "-o",
        run.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("sonde verify {}", run.display())),
        "{out}"
    );
    let names = [
        "audit.jsonl",
        "capture.pcap",
        "report.json",
        "results.ndjson",
    ];
    let mut found: Vec<String> = std::fs::read_dir(&run)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    found.sort();
    assert_eq!(found, names);

    let r = report_json(&run.join("report.json"));
    // The invoking user under sudo, else the account running the test.
    let operator = std::env::var("SUDO_USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "root".into());
    assert_eq!(r["operator"], operator.as_str());
    assert_eq!(
        r["host"].as_str().unwrap(),
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .unwrap()
            .trim()
    );
    assert!(r["command"][1] == "scan" && r["command"].as_array().unwrap().len() > 5);
    assert_eq!(r["scope"]["engagement_id"], "LAB-0001");
    assert_eq!(r["scope"]["path"], scope.to_str().unwrap());
    let scope_sha = sonde::evidence::file_sha256(&scope).unwrap().0;
    assert_eq!(r["scope"]["sha256"], scope_sha.as_str());
    assert!(r["scope"]["not_before"].as_str().unwrap().ends_with('Z'));
    for f in r["files"].as_array().unwrap() {
        let (sha, size) =
            sonde::evidence::file_sha256(&run.join(f["name"].as_str().unwrap())).unwrap();
        assert_eq!(
            (f["sha256"].as_str().unwrap(), f["size"].as_u64().unwrap()),
            (sha.as_str(), size)
        );
    }
    let controls: Vec<String> = r["compliance"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["control"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        controls,
        [
            "CC6.6", "CC6.7", "A.13.1", "A.13.2", "SC-7", "AC-17", "SI-4", "PR.AC", "PR.PT"
        ]
    );
    // The capture's own analysis: the same file, the same count as tshark's.
    let a = &r["capture_analysis"];
    assert_eq!(
        a["input"][0]["sha256"], r["files"][0]["sha256"],
        "the analysis is of the run's pcap"
    );
    let pcap = run.join("capture.pcap");
    assert_eq!(
        a["summary"]["packets"].as_u64().unwrap() as usize,
        tshark_count(&pcap, "frame")
    );
    assert!(a["protocols"]["icmp"]["packets"].as_u64().unwrap() >= 2);

    // The audit log: the run's events, the files' hashes, the report's anchor.
    let text = std::fs::read_to_string(run.join("audit.jsonl")).unwrap();
    let records: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let events: Vec<&str> = records
        .iter()
        .map(|r| r["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        events,
        [
            "run_started",
            "scan_request",
            "scan_identity",
            "scope_accepted",
            "rate_applied",
            "recording",
            // One per pass boundary (the first pass, the retry pass): the
            // run is durable there (issue 29).
            "scan_checkpoint",
            "scan_checkpoint",
            "neighbour_discovery",
            "cooldown",
            "file_written",
            "file_written",
            "capture_analyzed",
            "file_written",
            "run_finished"
        ],
        "{text}"
    );
    assert_eq!(records[0]["operator"], operator.as_str());
    // The final head, printed for the engagement's ticket.
    let head = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(
            text.lines().last().unwrap().as_bytes(),
        ))
    };
    assert!(
        out.contains(&format!("audit log head {head} after 15 records")),
        "{out}"
    );
    // The request as the run resolved it: what a resume reads back.
    let request = &records[1]["request"];
    assert_eq!(request["seed"], r["parameters"]["seed"], "{request}");
    assert_eq!(request["targets"], r["parameters"]["targets"], "{request}");
    assert_eq!(request["ports"], r["parameters"]["ports"], "{request}");
    assert_eq!(records[2]["scope_sha256"], scope_sha.as_str());
    assert_eq!(records[3]["sha256"], scope_sha.as_str());
    assert_eq!(r["audit"]["records"], 13, "the report saw thirteen records");
    assert_eq!(records[13]["path"], "report.json");
    // The pass boundaries' checkpoints: where sending stood, the capture
    // and the results as long as they were then, and the state's slot.
    let checkpoint = &records[6];
    assert_eq!(checkpoint["pass"], 0, "{checkpoint}");
    assert_eq!(checkpoint["kind"], 2, "both kinds sent: {checkpoint}");
    assert_eq!(
        checkpoint["files"][0]["path"], "capture.pcap",
        "{checkpoint}"
    );
    assert!(
        checkpoint["files"][0]["size"].as_u64().unwrap() > 24,
        "{checkpoint}"
    );
    assert_eq!(records[7]["pass"], 1, "{}", records[7]);

    // sonde verify, on the directory and on the report.
    let verify = |path: &std::path::Path| {
        let (code, out, _) = support::cli::sonde(&["verify", path.to_str().unwrap()]);
        (code, out)
    };
    for target in [run.clone(), run.join("report.json")] {
        let (code, out) = verify(&target);
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("everything holds"), "{out}");
    }
    // Against the anchors the scan printed, and a wrong one.
    let report_sha = sonde::evidence::file_sha256(&run.join("report.json"))
        .unwrap()
        .0;
    let anchored = |report: &str, head: &str| {
        let run = run.to_str().unwrap();
        let args = [
            "verify",
            run,
            "--report-sha256",
            report,
            "--audit-head",
            head,
        ];
        let (code, out, _) = support::cli::sonde(&args);
        (code, out)
    };
    let (code, out) = anchored(&report_sha, &head);
    assert_eq!(code, 0, "{out}");
    let wrong = "0".repeat(64);
    let (code, out) = anchored(&report_sha, &wrong);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("the anchor given is final head"), "{out}");
    let (code, out) = anchored(&wrong, &head);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("CHANGED   report.json: the anchor given"),
        "{out}"
    );
    // One byte flipped in each file in turn, at its start, middle and end.
    let mut files: Vec<std::path::PathBuf> = names.iter().map(|n| run.join(n)).collect();
    files.push(scope.clone());
    for file in &files {
        let original = std::fs::read(file).unwrap();
        for at in [0, original.len() / 2, original.len() - 2] {
            let mut flipped = original.clone();
            flipped[at] ^= 0x01;
            std::fs::write(file, &flipped).unwrap();
            let (code, out) = verify(&run);
            let what = format!("byte {at} of {}", file.display());
            assert_eq!(code, 1, "{what}: {out}");
            let name = file.file_name().unwrap().to_str().unwrap();
            if name == "audit.jsonl" {
                assert!(
                    out.contains("BROKEN") && out.contains("audit log line"),
                    "{what}: {out}"
                );
            } else {
                assert!(
                    out.lines().any(|l| l.starts_with("CHANGED")
                        && l.contains(name)
                        && l.contains("recorded sha256")
                        && l.contains("found ")),
                    "{what}: {out}"
                );
            }
        }
        std::fs::write(file, &original).unwrap();
    }
    assert_eq!(verify(&run).0, 0, "restored");
    // One audit record removed, or two swapped.
    let lines: Vec<&str> = text.lines().collect();
    let audit = run.join("audit.jsonl");
    for i in 0..lines.len() {
        let mut removed = lines.clone();
        removed.remove(i);
        std::fs::write(&audit, removed.join("\n") + "\n").unwrap();
        let (code, out) = verify(&run);
        assert_eq!(code, 1, "removing record {i}: {out}");
        if i + 1 < lines.len() {
            assert!(
                out.contains(&format!("audit log line {}", i + 1)),
                "removing record {i}: {out}"
            );
        } else {
            assert!(out.contains("does not end with run_finished"), "{out}");
        }
    }
    for i in 0..lines.len() - 1 {
        let mut moved = lines.clone();
        moved.swap(i, i + 1);
        std::fs::write(&audit, moved.join("\n") + "\n").unwrap();
        let (code, out) = verify(&run);
        assert_eq!(code, 1, "swapping records {i} and {}: {out}", i + 1);
        assert!(
            out.contains("BROKEN") && out.contains(&format!("audit log line {}", i + 1)),
            "swapping records {i} and {}: {out}",
            i + 1
        );
    }
    std::fs::write(&audit, &text).unwrap();
    // A missing file is named; a scope file that moved away is not held
    // against the evidence.
    std::fs::rename(run.join("results.ndjson"), dir.path().join("x")).unwrap();
    let (code, out) = verify(&run);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("MISSING   results.ndjson"), "{out}");
    std::fs::rename(dir.path().join("x"), run.join("results.ndjson")).unwrap();
    std::fs::remove_file(&scope).unwrap();
    let (code, out) = verify(&run);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("the scope file is no longer there"), "{out}");

    // A refused run's directory verifies too: its log says why, and that
    // no report was written.
    let refused = dir.path().join("refused");
    let (code, _, err) = lab.sonde(&[
        "scan",
        "--scope",
        "scopes/loopback.toml",
        "198.18.1.10",
        "-p",
        "80",
        "-o",
        refused.to_str().unwrap(),
    ]);
    assert_eq!(code, 3, "{err}");
    let text = std::fs::read_to_string(refused.join("audit.jsonl")).unwrap();
    let last: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(last[last.len() - 2]["event"], "scope_refused");
    assert!(
        last[last.len() - 2]["reasons"][0]
            .as_str()
            .unwrap()
            .contains("198.18.1.10"),
        "{text}"
    );
    assert_eq!(last[last.len() - 1]["exit_status"], 3);
    let (code, out) = verify(&refused);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("no report: the run wrote none (exit status 3)"),
        "{out}"
    );
}

/// Regression: on loopback every packet sent is also received, and each
/// probe was in the evidence twice (once as sent, once coming back in).
#[test]
fn loopback_scan_records_each_probe_once() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let out = Command::new(env!("CARGO_BIN_EXE_sonde"))
        .args([
            "scan",
            "--scope",
            "scopes/loopback.toml",
            "127.0.0.1",
            "::1",
            "-p",
            "1-50",
            "--probe",
            "syn,icmp",
            "--wait",
            "0.3",
            "-o",
            run.to_str().unwrap(),
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "a loopback scan needs root (CAP_NET_RAW): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = report_json(&run.join("report.json"));
    let sent = r["counters"]["sent"].as_u64().unwrap() as usize;
    let matched = r["counters"]["matched"].as_u64().unwrap() as usize;
    assert_eq!(sent, 2 * 51);
    let pcap = run.join("capture.pcap");
    assert_eq!(
        tshark_count(
            &pcap,
            "(tcp.flags.syn==1 && tcp.flags.ack==0) || icmp.type==8 || icmpv6.type==128"
        ),
        sent,
        "each probe once"
    );
    assert_eq!(tshark_count(&pcap, "frame"), sent + matched);
    assert_eq!(r["capture_analysis"]["summary"]["packets"], sent + matched);
}

/// Without `--wait` the cooldown follows the round trips (as nmap's
/// timeouts do): a scan with a port that never answers ends well before
/// the 2 s bound, with the same results; a `--wait` given is waited in full.
#[test]
fn without_wait_the_cooldown_follows_the_round_trips() {
    let lab = Lab::new();
    let dir = tempfile::tempdir().unwrap();
    let cooldown = |run: &std::path::Path| -> serde_json::Value {
        std::fs::read_to_string(run.join("audit.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|r| r["event"] == "cooldown")
            .expect("a cooldown record")
    };
    let mut matched = Vec::new();
    for wait in [None, Some("1.5")] {
        let run = dir.path().join(wait.unwrap_or("auto"));
        let mut args = vec![
            "scan",
            "--scope",
            "scopes/lab.toml",
            "198.18.1.10",
            "-p",
            // 8081 is dropped: nothing ever answers it.
            "22,23,8081",
            "--probe",
            "syn",
            "--rate",
            "2000",
            "-o",
            run.to_str().unwrap(),
        ];
        if let Some(w) = wait {
            args.extend(["--wait", w]);
        }
        let (code, out, err) = lab.sonde(&args);
        assert_eq!(code, 0, "{out}{err}");
        let c = cooldown(&run);
        let r = report_json(&run.join("report.json"));
        let secs = c["seconds"].as_f64().unwrap();
        match wait {
            None => {
                assert_eq!(c["adaptive"], true);
                assert_eq!(r["parameters"]["wait_adaptive"], true);
                assert_eq!(c["longest"], 2.0);
                assert!(secs < 1.0, "the cooldown lasted {secs} s");
            }
            Some(_) => {
                assert_eq!(c["adaptive"], false);
                assert!(secs >= 1.45, "a --wait given is waited: {secs} s");
            }
        }
        matched.push(r["counters"]["matched"].clone());
        assert!(out.contains("198.18.1.10: open 22"), "{out}");
    }
    assert_eq!(matched[0], 2);
    assert_eq!(matched[0], matched[1], "the same results either way");
}

/// Regression (issue 16): the summary said "no open ports" for a DNS
/// server that answered sonde's DNS probes, and a DNS-only scan's servers
/// were folded away as quiet hosts.
#[test]
fn a_dns_server_that_answered_is_a_finding_in_the_summary() {
    let lab = Lab::new();
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("dns");
    let (code, out, err) = lab.sonde(&[
        "scan",
        "--scope",
        "scopes/lab.toml",
        "198.18.1.53",
        "--probe",
        "dns",
        "--dns-query",
        "www.lab.sonde.test:A,nothing.lab.sonde.test:A",
        "--rate",
        "100",
        "-o",
        run.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let line = out
        .lines()
        .find(|l| l.starts_with("198.18.1.53: "))
        .unwrap_or_else(|| panic!("no line for the server: {out}"));
    assert!(!line.contains("no open ports"), "{line}");
    assert!(
        line.contains("answers DNS (1 of 2 questions NOERROR"),
        "{line}"
    );
}

/// Issue 16: `--exclude` narrows a scan: the excluded addresses get no
/// probe at all (capture on the targets' side), the report and the audit
/// log record what was taken out, and excluding everything is an input
/// error (exit 2) before any packet.
#[test]
fn excluded_targets_receive_nothing() {
    let lab = Lab::new();
    let dir = tempfile::tempdir().unwrap();
    let capture = dir.path().join("target-side.pcap");
    let tshark = lab.capture_target_side("vt", &capture);
    let run = dir.path().join("run");
    let (code, out, err) = lab.sonde(&[
        "scan",
        "--scope",
        "scopes/lab.toml",
        "198.18.1.8-15",
        "-p",
        "22,80",
        "--exclude",
        "198.18.1.10,198.18.1.12-13",
        "--rate",
        "2000",
        "-o",
        run.to_str().unwrap(),
    ]);
    tshark.stop();
    assert_eq!(code, 0, "{out}{err}");
    let r = report_json(&run.join("report.json"));
    assert_eq!(
        r["parameters"]["exclude"],
        serde_json::json!(["198.18.1.10", "198.18.1.12/31"])
    );
    assert_eq!(r["probes"], 5 * 2, "8 addresses, 3 excluded, 2 ports");
    for ip in ["198.18.1.10", "198.18.1.12", "198.18.1.13"] {
        assert_eq!(tshark_count(&capture, &format!("ip.dst=={ip}")), 0, "{ip}");
    }
    assert!(tshark_count(&capture, "ip.dst==198.18.1.11 && tcp.flags.syn==1") >= 2);
    let audit = std::fs::read_to_string(run.join("audit.jsonl")).unwrap();
    assert!(
        audit.contains("\"excluded\":[\"198.18.1.10\",\"198.18.1.12/31\"]"),
        "{audit}"
    );
    let none = dir.path().join("none");
    let (code, _, err) = lab.sonde(&[
        "scan",
        "--scope",
        "scopes/lab.toml",
        "198.18.1.10",
        "--exclude",
        "198.18.1.0/24",
        "-o",
        none.to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("leave no target"), "{err}");
    // As for every error after the run directory is made: its audit log
    // says why, and no probe was sent.
    let names: Vec<String> = std::fs::read_dir(&none)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["audit.jsonl"]);
}

/// Run sonde with standard output and standard error both a pipe whose
/// reader has gone (`sonde ... 2>&1 | true`): its exit code.
fn exit_code_with_closed_pipes(lab: &Lab, args: &[&str]) -> i32 {
    // In the lab's scanner namespace: a scan of this host's loopback under
    // scopes/loopback.toml here would hold that scope's host-wide lease
    // against another test's.
    let mut child = lab
        .sonde_command()
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run sonde");
    // The reader goes away before sonde writes a byte.
    drop(child.stdout.take());
    drop(child.stderr.take());
    child.wait().unwrap().code().expect("exited, not killed")
}

/// Regression (issue 25): `sonde scan ... 2>&1 | true` completed the scan
/// and then exited 101 ("failed printing to stderr: Broken pipe"); a
/// refused scan the same way exited 101 instead of 3. A closed pipe never
/// changes the exit code the outcome calls for, nor the evidence.
#[test]
fn a_closed_pipe_never_changes_the_exit_code() {
    let lab = Lab::new();
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let code = exit_code_with_closed_pipes(
        &lab,
        &[
            "scan",
            "--scope",
            "scopes/loopback.toml",
            "127.0.0.1",
            "-p",
            "1-200",
            "-o",
            run.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0);
    let audit = std::fs::read_to_string(run.join("audit.jsonl")).unwrap();
    assert!(audit.contains("\"run_finished\""), "{audit}");
    report_json(&run.join("report.json"));
    // Refused: out of the loopback scope.
    let code = exit_code_with_closed_pipes(
        &lab,
        &[
            "scan",
            "--scope",
            "scopes/loopback.toml",
            "198.18.0.1",
            "-o",
            dir.path().join("refused").to_str().unwrap(),
        ],
    );
    assert_eq!(code, 3);
    // An input error stays an input error.
    let code = exit_code_with_closed_pipes(
        &lab,
        &["scan", "--scope", "scopes/loopback.toml", "-p", "x"],
    );
    assert_eq!(code, 2);
}

/// Issue 29, item 1: a closed terminal or a dropped SSH session (SIGHUP,
/// often twice: the kernel and the shell) stopped the scan at once and
/// left evidence that neither verified nor resumed. SIGHUP is a stop like
/// SIGTERM, a second SIGHUP changes nothing, and the terminal that is gone
/// (its writes fail) changes nothing either: the run verifies and resumes
/// to the end.
#[test]
fn a_hangup_stops_the_scan_with_whole_evidence_and_it_resumes() {
    let lab = Lab::new();
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    // 256 addresses x 40 ports at 2,000 pps: about 5 s of sending.
    let mut child = lab
        .sonde_command()
        .args([
            "scan",
            "--scope",
            "scopes/lab.toml",
            "198.18.1.0/24",
            "-p",
            "1-40",
            "--rate",
            "2000",
            "-o",
            run.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    // The terminal goes away: its output with it, then the hangups.
    drop(child.stdout.take());
    drop(child.stderr.take());
    for _ in 0..2 {
        let _ = Command::new("kill")
            .args(["-HUP", &child.id().to_string()])
            .status();
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(1), "an interrupted scan exits 1");
    let r = report_json(&run.join("report.json"));
    assert_eq!(r["interrupted"], true);
    let audit = std::fs::read_to_string(run.join("audit.jsonl")).unwrap();
    assert!(audit.contains("\"signal\":1"), "{audit}");
    assert!(audit.contains("\"scan_stopped\""), "{audit}");
    assert!(audit.contains("\"run_finished\""), "{audit}");
    let (code, out, err) = lab.sonde(&["verify", run.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = lab.sonde(&["scan", "--resume", run.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    let r = report_json(&run.join("report.json"));
    assert_eq!(
        r["probes"].as_u64().unwrap() + r["counters"]["skipped_down"].as_u64().unwrap(),
        256 * 40,
        "the whole first pass, over both segments: {r:#}"
    );
}
