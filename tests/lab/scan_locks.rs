//! Limits that hold across processes (issue 26): a second scan under the
//! same scope on the same host is refused while the first runs (the
//! scope's max_rate is the host's ceiling, not each process's), and a run
//! directory has one writer at a time. Counted on the target side.

use std::process::{Child, Stdio};
use std::time::Duration;

use support::evidence::tshark_count;
use support::lab::*;

/// A scan of the lab that sends for about `secs` seconds at 2,000 pps.
fn long_scan(lab: &Lab, run: &std::path::Path, secs: u32) -> Child {
    lab.sonde_command()
        .args([
            "scan",
            "--scope",
            "scopes/lab.toml",
            "198.18.1.0/24",
            "-p",
            &format!("1-{}", secs * 8),
            "--rate",
            "2000",
            "--retries",
            "0",
            "-o",
            run.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Regression (issue 26): two scans started at once under one scope with
/// max_rate 2000 put 4,000 SYNs a second on the target. The second is
/// refused (exit 3) naming the first, and sends nothing.
#[test]
fn a_second_scan_under_the_same_scope_is_refused_while_the_first_runs() {
    let lab = Lab::new();
    let dir = tempfile::tempdir().unwrap();
    let capture = dir.path().join("target.pcap");
    let tshark = lab.capture_target_side("vt", &capture);
    let first = long_scan(&lab, &dir.path().join("first"), 4);
    // `ip netns exec` runs sonde in place of itself: the pid is sonde's.
    let pid = first.id();
    std::thread::sleep(Duration::from_millis(700));
    let mut others = Vec::new();
    for i in 0..3 {
        let run = dir.path().join(format!("second-{i}"));
        let (code, out, err) = lab.sonde(&[
            "scan",
            "--scope",
            "scopes/lab.toml",
            "198.18.1.10",
            "-p",
            "1000-1999",
            "--rate",
            "2000",
            "-o",
            run.to_str().unwrap(),
        ]);
        others.push((code, out, err));
    }
    let out = first.wait_with_output().unwrap();
    tshark.stop();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (code, out, err) in &others {
        assert_eq!(*code, 3, "{out}{err}");
        assert!(
            err.contains("another sonde run on this host is scanning under this scope")
                && err.contains(&format!("PID {pid}")),
            "{err}"
        );
    }
    // Not one probe of the refused runs reached the target.
    assert_eq!(
        tshark_count(
            &capture,
            "tcp.flags.syn==1 && tcp.flags.ack==0 && tcp.dstport>=1000"
        ),
        0
    );
    // Once the first has ended, the scope is free again.
    let (code, out, err) = lab.sonde(&[
        "scan",
        "--scope",
        "scopes/lab.toml",
        "198.18.1.10",
        "-p",
        "22",
        "-o",
        dir.path().join("after").to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
}

/// Regression (issue 26): two `scan --resume` of one directory at once
/// forked its audit chain. While a run directory is written, a resume of
/// it is refused at once (exit 1) naming the writer, and the directory
/// still verifies.
#[test]
fn a_run_directory_has_one_writer() {
    let lab = Lab::new();
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let scan = long_scan(&lab, &run, 3);
    let pid = scan.id();
    std::thread::sleep(Duration::from_millis(700));
    let (code, out, err) = lab.sonde(&["scan", "--resume", run.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains(&format!("is being written by another sonde (PID {pid}")),
        "{err}"
    );
    let out = scan.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (code, out, err) = lab.sonde(&["verify", run.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
}
