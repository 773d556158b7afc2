//! `sonde scan` through the binary, in the lab: results, NDJSON, report,
//! a pcap tshark reads back, refusals before anything is sent, and a
//! capture in the target namespace proving out-of-scope hosts got nothing.

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use support::lab::*;

fn tshark_count(pcap: &std::path::Path, filter: &str) -> usize {
    let out = Command::new("tshark")
        .args(["-r", pcap.to_str().unwrap(), "-Y", filter])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).lines().count()
}

/// A scan report, validated against docs/scan-report.schema.json.
fn report_json(path: &std::path::Path) -> serde_json::Value {
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../docs/scan-report.schema.json")).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("a valid JSON Schema");
    let text = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let r: serde_json::Value = serde_json::from_slice(&text).expect("the report is JSON");
    let errors: Vec<String> = validator
        .iter_errors(&r)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{} does not match the schema: {errors:#?}",
        path.display()
    );
    r
}

#[test]
fn scan_writes_results_ndjson_report_and_evidence() {
    let lab = Lab::new();
    let dir = tempfile::tempdir().unwrap();
    let (pcap, report, ndjson) = (
        dir.path().join("scan.pcap"),
        dir.path().join("report.json"),
        dir.path().join("results.ndjson"),
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
        "--pcap",
        pcap.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
        "--ndjson",
        ndjson.to_str().unwrap(),
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
    let states: Vec<String> = r["hosts"][0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| format!("{}:{}", x["port"], x["state"]))
        .collect();
    assert!(
        states.contains(&"22:\"open\"".to_string())
            && states.contains(&"23:\"closed\"".to_string()),
        "{states:?}"
    );
    let lines = std::fs::read_to_string(&ndjson).unwrap();
    let matched = r["counters"]["matched"].as_u64().unwrap();
    assert_eq!(lines.lines().count() as u64, matched);
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
    ]);
    assert_eq!(code, 3, "{err}");
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
        "--pcap",
        "/nonexistent/dir/x.pcap",
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
        let (pcap, report, ndjson) = (
            dir.path().join(format!("{name}.pcap")),
            dir.path().join(format!("{name}.json")),
            dir.path().join(format!("{name}.ndjson")),
        );
        // 254 hosts x 40 ports at 2,000 pps: about 5 s of sending
        let mut child = lab
            .scanner_command(env!("CARGO_BIN_EXE_sonde"))
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
            .args([
                "--pcap",
                pcap.to_str().unwrap(),
                "--report",
                report.to_str().unwrap(),
                "--ndjson",
                ndjson.to_str().unwrap(),
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
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
    assert_eq!(lines, r["counters"]["matched"].as_u64().unwrap());

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
    let on_tty = |extra: &str| {
        let out = lab
            .scanner_command("script")
            .args(["-qec", &format!("{scan} {extra}"), "/dev/null"])
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
    let pcap = dir.path().join("src.pcap");
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
        "--pcap",
        pcap.to_str().unwrap(),
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
    let pcap = dir.path().join("scan.pcap");
    let report = dir.path().join("scan.json");
    let child = lab
        .scanner_command(env!("CARGO_BIN_EXE_sonde"))
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
            "--pcap",
            pcap.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
        ])
        .env("SUDO_UID", "65534")
        .env("SUDO_GID", "65534")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
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
    for f in [&pcap, &report] {
        let m = std::fs::metadata(f).unwrap();
        assert_eq!((m.uid(), m.gid()), (65534, 65534), "{}", f.display());
    }
    // The interrupted scan's evidence still reads, with the probes sent.
    assert!(tshark_count(&pcap, "tcp.flags.syn==1 && tcp.flags.ack==0") > 0);
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
    let pcap = small.join("scan.pcap");
    let report = dir.path().join("scan.json");
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
        "--pcap",
        pcap.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("cannot write the pcap") && err.contains("No space left"),
        "{err}"
    );
    let r = report_json(&report);
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
    let report = dir.path().join("scan.json");
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
        "--report",
        report.to_str().unwrap(),
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
        let pcap = dir.path().join(format!("{i}.pcap"));
        let report = dir.path().join(format!("{i}.json"));
        let child = lab
            .scanner_command(env!("CARGO_BIN_EXE_sonde"))
            .args([
                "scan",
                "--scope",
                "scopes/lab.toml",
                "198.18.1.0/24",
                "-p",
                "1-40",
                "--rate",
                "5000",
                "--wait",
                "0.3",
            ])
            .args([
                "--pcap",
                pcap.to_str().unwrap(),
                "--report",
                report.to_str().unwrap(),
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let signalled = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let _ = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status();
        let out = child.wait_with_output().unwrap();
        let what = format!("interrupt {i} ({signal} after {delay:?})");
        assert_eq!(
            out.status.code(),
            Some(1),
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let r = report_json(&report);
        assert_eq!(r["interrupted"], true, "{what}");
        let sent = r["counters"]["sent"].as_u64().unwrap() as usize;
        assert!(sent < 254 * 40, "{what}: stopped early");
        let probes = Command::new("tshark")
            .args([
                "-r",
                pcap.to_str().unwrap(),
                "-Y",
                "ip.src==198.18.0.2",
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

/// The audit log: an unbroken chain of the run's events, with the hashes
/// of the files written; a refused run leaves its records too.
#[test]
fn the_audit_log_chains_the_runs_events() {
    use sha2::Digest;
    let lab = Lab::new();
    let dir = tempfile::tempdir().unwrap();
    let (audit, pcap, report) = (
        dir.path().join("audit.jsonl"),
        dir.path().join("s.pcap"),
        dir.path().join("s.json"),
    );
    let (code, _, err) = lab.sonde(&[
        "scan",
        "--scope",
        "scopes/lab.toml",
        "198.18.1.10",
        "-p",
        "22,23",
        "--wait",
        "0.3",
        "--audit",
        audit.to_str().unwrap(),
        "--pcap",
        pcap.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let text = std::fs::read_to_string(&audit).unwrap();
    let (problems, _) = sonde::evidence::verify_chain(&text);
    assert!(problems.is_empty(), "{problems:?}");
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
            "scope_accepted",
            "rate_applied",
            "cooldown",
            "file_written",
            "file_written",
            "run_finished"
        ],
        "{text}"
    );
    assert_eq!(records[1]["engagement_id"], "LAB-0001");
    for r in records.iter().filter(|r| r["event"] == "file_written") {
        let path = r["path"].as_str().unwrap();
        let bytes = std::fs::read(path).unwrap();
        assert_eq!(
            r["sha256"].as_str().unwrap(),
            hex::encode(sha2::Sha256::digest(&bytes)),
            "{path}"
        );
        assert_eq!(r["size"].as_u64().unwrap(), bytes.len() as u64);
    }
    // sonde verify: everything holds; then one byte flipped in each file,
    // and one audit record removed or moved, is each caught precisely.
    let verify = |path: &std::path::Path| {
        let out = Command::new(env!("CARGO_BIN_EXE_sonde"))
            .args(["verify", path.to_str().unwrap()])
            .output()
            .unwrap();
        (
            out.status.code().unwrap(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, out) = verify(&audit);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("everything holds"), "{out}");
    for file in [&pcap, &report] {
        let original = std::fs::read(file).unwrap();
        for at in [0, original.len() / 2, original.len() - 1] {
            let mut flipped = original.clone();
            flipped[at] ^= 0x01;
            std::fs::write(file, &flipped).unwrap();
            let (code, out) = verify(&audit);
            assert_eq!(code, 1, "byte {at} of {}: {out}", file.display());
            assert!(
                out.contains(&format!("CHANGED {}: expected sha256", file.display()))
                    && out.contains("found "),
                "{out}"
            );
        }
        std::fs::write(file, &original).unwrap();
    }
    let lines: Vec<&str> = text.lines().collect();
    let tampered = dir.path().join("tampered.jsonl");
    for i in 0..lines.len() {
        let mut removed = lines.clone();
        removed.remove(i);
        std::fs::write(&tampered, removed.join("\n") + "\n").unwrap();
        let (code, out) = verify(&tampered);
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
    let mut moved = lines.clone();
    moved.swap(2, 3);
    std::fs::write(&tampered, moved.join("\n") + "\n").unwrap();
    let (code, out) = verify(&tampered);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("BROKEN") && out.contains("audit log line 3"),
        "{out}"
    );
    // The log is never overwritten, and a refused run leaves its reasons.
    let (code, _, err) = lab.sonde(&[
        "scan",
        "--scope",
        "scopes/lab.toml",
        "198.18.1.10",
        "--audit",
        audit.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("must not exist yet"), "{err}");
    let refused = dir.path().join("refused.jsonl");
    let (code, _, err) = lab.sonde(&[
        "scan",
        "--scope",
        "scopes/loopback.toml",
        "198.18.1.10",
        "-p",
        "80",
        "--audit",
        refused.to_str().unwrap(),
    ]);
    assert_eq!(code, 3, "{err}");
    let text = std::fs::read_to_string(&refused).unwrap();
    assert!(sonde::evidence::verify_chain(&text).0.is_empty());
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
}
