//! A scan survives its faults (issue 29), in the lab: killed outright
//! (`kill -9`: the OOM killer, a crash, a power cut look the same) at
//! random moments, a run verifies up to its last checkpoint ("cut",
//! exit 4) and resumes from it until it ends as an uninterrupted run
//! would; an edited byte inside what a checkpoint anchors is still caught.

use std::process::{Command, Stdio};
use std::time::Duration;

use support::evidence::{open_ports, report_json};
use support::lab::*;

const TARGETS: &str = "198.18.1.1-198.18.1.254";
const PORTS: &str = "1-100,443,8080,8081";
/// 254 hosts x 103 ports.
const PLANNED: u64 = 254 * 103;

/// Start a scan (or a resume) and kill it outright after `delay`: its
/// exit status and standard error.
fn kill_after(mut cmd: Command, delay: Duration) -> (std::process::ExitStatus, String) {
    let child = cmd.spawn().unwrap();
    std::thread::sleep(delay);
    let _ = Command::new("kill")
        .args(["-KILL", &child.id().to_string()])
        .status();
    let out = child.wait_with_output().unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `sonde scan` of `targets` x `ports` at `rate` into `run`, with a
/// checkpoint every 0.3 s.
fn scan_of(targets: &str, ports: &str, run: &std::path::Path, rate: &str) -> Vec<String> {
    [
        "scan",
        "--scope",
        "scopes/lab.toml",
        targets,
        "-p",
        ports,
        "--rate",
        rate,
        "--wait",
        "0.5",
        "--checkpoint-every",
        "0.3",
        "-o",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([run.display().to_string()])
    .collect()
}

fn scan_args(run: &std::path::Path, rate: &str) -> Vec<String> {
    scan_of(TARGETS, PORTS, run, rate)
}

/// How a run killed again and again went.
struct Kills {
    kills: usize,
    /// Kills that came after a checkpoint (the others before the first).
    anchored: usize,
    /// Kills whose last checkpoint was past the first pass (a retry pass
    /// or the cooldown).
    after_first_pass: usize,
    /// What verify said after each kill.
    said: Vec<String>,
}

/// Scan `targets` x `ports` into `run` at 2,000 pps, kill it outright
/// `kills` times at moments from `delays` (each resumed segment too), then
/// let the last resume finish. After every kill the run verifies as cut
/// (exit 4), what a checkpoint anchors as recorded.
fn kill_and_resume(
    lab: &Lab,
    targets: &str,
    ports: &str,
    run: &std::path::Path,
    kills: usize,
    mut delay: impl FnMut() -> Duration,
) -> Kills {
    let mut first = lab.sonde_command();
    first.args(scan_of(targets, ports, run, "2000"));
    let (mut status, mut err) = kill_after(first, delay());
    let mut done = Kills {
        kills: 0,
        anchored: 0,
        after_first_pass: 0,
        said: Vec::new(),
    };
    let mut said = Vec::new();
    loop {
        if status.success() {
            break;
        }
        assert_eq!(status.code(), None, "killed by a signal: {status:?}: {err}");
        done.kills += 1;
        // Cut, not damaged: exit 4, what holds said.
        let (code, verified, _) = lab.sonde(&["verify", run.to_str().unwrap()]);
        assert_eq!(code, 4, "after kill {}: {verified}", done.kills);
        let line = verified
            .lines()
            .find(|l| l.contains("the run was cut"))
            .unwrap_or_default()
            .to_string();
        if verified.contains("anchors what follows") {
            done.anchored += 1;
            assert!(
                verified.contains("as the last checkpoint recorded"),
                "{verified}"
            );
            let audit = std::fs::read_to_string(run.join("audit.jsonl")).unwrap();
            let last = audit
                .lines()
                .rfind(|l| l.contains("\"scan_checkpoint\""))
                .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
                .unwrap();
            if last["pass"].as_u64() > Some(0) || last["kind"].as_u64() > Some(0) {
                done.after_first_pass += 1;
            }
            said.push(format!(
                "{line} [pass {} kind {} next {} probes {}]",
                last["pass"], last["kind"], last["next"], last["probes"]
            ));
        } else {
            said.push(line);
        }
        // The checkpoint interval is the invocation's, not the run's.
        let mut resume = lab.sonde_command();
        resume.args([
            "scan",
            "--resume",
            run.to_str().unwrap(),
            "--checkpoint-every",
            "0.3",
        ]);
        (status, err) = if done.kills < kills {
            kill_after(resume, delay())
        } else {
            let out = resume.output().unwrap();
            (
                out.status,
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        };
    }
    assert!(done.kills >= 1, "the first run was killed");
    assert!(
        done.anchored >= 1,
        "no kill came after a checkpoint: {said:#?}"
    );
    done.said = said;
    done
}

/// Short kills land in discovery or the first batches, long ones after
/// checkpoints (each segment asks ARP for its targets first, up to
/// 0.85 s); a jitter moves each within its range.
fn delays(seed: u64, short: u64, long: u64) -> impl FnMut() -> Duration {
    let mut seed = seed;
    let mut turn = 0usize;
    move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        turn += 1;
        let base = if turn.is_multiple_of(2) { short } else { long };
        Duration::from_millis(base + (seed >> 33) % 1200)
    }
}

/// The finished run: its open ports equal the uninterrupted run's, its
/// segments are all in the report (the cut ones marked), and it verifies.
fn ends_as_uninterrupted(lab: &Lab, run: &std::path::Path, whole: &std::path::Path, k: &Kills) {
    let expected = open_ports(&report_json(&whole.join("report.json")));
    let r = report_json(&run.join("report.json"));
    let found = open_ports(&r);
    assert!(
        found == expected,
        "the resumed run's open ports differ: missing {:?}, extra {:?}",
        expected.difference(&found).take(10).collect::<Vec<_>>(),
        found.difference(&expected).take(10).collect::<Vec<_>>()
    );
    // A segment per kill, but for a resume killed before it began its
    // segment (while it checked the directory): that one left nothing.
    let segments = r["segments"].as_array().unwrap();
    assert!(
        (2..=k.kills + 1).contains(&segments.len()),
        "{} segments after {} kills: {segments:?}",
        segments.len(),
        k.kills
    );
    assert_eq!(
        segments.iter().filter(|s| !s["cut"].is_null()).count(),
        segments.len() - 1,
        "{segments:?}"
    );
    let (code, verified, _) = lab.sonde(&["verify", run.to_str().unwrap()]);
    assert_eq!(code, 0, "the finished run verifies: {verified}");
    assert!(verified.contains("everything holds"), "{verified}");
}

/// Routed targets (198.18.1.0/24 behind the lab's gateway): eight kills,
/// and on the wire every probe reached its target, none more often than
/// 1 + --retries + once per kill (a tail's probes are sent again).
#[test]
fn killed_outright_at_random_moments_and_resumed_ends_as_an_uninterrupted_run() {
    let lab = Lab::new();
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole");
    let args = scan_of(TARGETS, PORTS, &whole, "20000");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, out, err) = lab.sonde(&args);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        open_ports(&report_json(&whole.join("report.json"))).len(),
        244 * 3 + 2,
        "the uninterrupted run"
    );

    let capture = dir.path().join("target.pcap");
    let tshark = lab.capture_target_side("vt", &capture);
    let run = dir.path().join("run");
    let k = kill_and_resume(
        &lab,
        TARGETS,
        PORTS,
        &run,
        8,
        delays(0x6b11_1e9d, 150, 2500),
    );
    tshark.stop();
    ends_as_uninterrupted(&lab, &run, &whole, &k);

    let syns = support::evidence::syns_per_target(&capture, "198.18.0.2");
    assert_eq!(syns.len() as u64, PLANNED, "every probe reached its target");
    let most = syns.values().max().copied().unwrap_or(0);
    assert!(
        most as usize <= 2 + k.kills,
        "a probe was sent {most} times over {} kills",
        k.kills
    );
}

/// The uninterrupted scan of `targets` x `ports` (into `dir`/whole), then
/// the same scan killed `kills` times and resumed (into `dir`/run); the
/// finished run must end as the uninterrupted one.
fn killed_and_compared(targets: &str, ports: &str, kills: usize, seed: u64) -> Kills {
    let lab = Lab::new();
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole");
    let args = scan_of(targets, ports, &whole, "20000");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, out, err) = lab.sonde(&args);
    assert_eq!(code, 0, "{out}{err}");
    let run = dir.path().join("run");
    let k = kill_and_resume(&lab, targets, ports, &run, kills, delays(seed, 300, 2200));
    ends_as_uninterrupted(&lab, &run, &whole, &k);
    k
}

/// On-link targets (the scanner's own /24: ten hosts that answer ARP, the
/// rest absent, the scanner's own address over loopback), a scan short
/// enough that kills land in its retry pass and cooldown too.
#[test]
fn killed_outright_on_link_in_every_phase_and_resumed() {
    let k = killed_and_compared("198.18.0.0/24", "1-800,8080,8081", 6, 0x51de);
    assert!(
        k.after_first_pass >= 1,
        "no kill came after the first pass ({} kills): {:#?}",
        k.kills,
        k.said
    );
}

/// A sparse range (a /20 with 264 live addresses, on-link and routed):
/// most probes go unanswered, so the retry pass is long.
#[test]
fn killed_outright_in_a_sparse_range_and_resumed() {
    killed_and_compared("198.18.0.0/20", "22,80", 6, 0x5ba5e);
}

/// What a checkpoint anchors stays evidence: a byte edited inside it is
/// caught (exit 1), and put back, the run verifies as cut and resumes.
#[test]
fn an_edited_byte_inside_a_checkpoint_is_caught() {
    let lab = Lab::new();
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let mut scan = lab.sonde_command();
    scan.args(scan_args(&run, "2000"));
    let (status, err) = kill_after(scan, Duration::from_millis(2500));
    assert_eq!(status.code(), None, "{err}");
    let (code, verified, _) = lab.sonde(&["verify", run.to_str().unwrap()]);
    assert_eq!(code, 4, "{verified}");
    assert!(
        verified.contains("as the last checkpoint recorded"),
        "{verified}"
    );

    let pcap = run.join("capture.pcap");
    let mut bytes = std::fs::read(&pcap).unwrap();
    let original = bytes[40];
    bytes[40] ^= 0xff;
    std::fs::write(&pcap, &bytes).unwrap();
    let (code, verified, _) = lab.sonde(&["verify", run.to_str().unwrap()]);
    assert_eq!(code, 1, "{verified}");
    assert!(
        verified.contains("CHANGED   capture.pcap (its first"),
        "{verified}"
    );
    // A damaged run is not resumed.
    let (code, _, err) = lab.sonde(&["scan", "--resume", run.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("does not verify"), "{err}");

    bytes[40] = original;
    std::fs::write(&pcap, &bytes).unwrap();
    let (code, out, err) = lab.sonde(&["scan", "--resume", run.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("segment 2 of a resumed run"), "{out}");
    let (code, verified, _) = lab.sonde(&["verify", run.to_str().unwrap()]);
    assert_eq!(code, 0, "{verified}");
    // The tails written after the last checkpoint are kept, hashed.
    let kept: Vec<String> = std::fs::read_dir(&run)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".cut-segment-1"))
        .collect();
    for k in &kept {
        assert!(verified.contains(k.as_str()), "{k} is verified: {verified}");
    }
    let r = report_json(&run.join("report.json"));
    assert_eq!(r["probes"].as_u64().map(|p| p >= PLANNED), Some(true));
}

/// A small tmpfs, unmounted when dropped.
struct SmallDisk {
    path: std::path::PathBuf,
}

impl SmallDisk {
    fn mount(path: &std::path::Path, size: &str) -> SmallDisk {
        std::fs::create_dir_all(path).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mount a tmpfs (root)");
        SmallDisk {
            path: path.to_path_buf(),
        }
    }

    fn grow(&self, size: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.path)
            .status()
            .unwrap()
            .success();
        assert!(ok, "remount the tmpfs");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}

/// A full disk stops the scan at its first failed write, after a
/// checkpoint; with space freed, `--resume` goes on from it and the run
/// ends as an uninterrupted one.
#[test]
fn a_full_disk_stops_the_scan_and_it_resumes_once_space_is_freed() {
    let lab = Lab::new();
    let dir = tempfile::tempdir().unwrap();
    let disk = SmallDisk::mount(&dir.path().join("disk"), "700k");
    let run = disk.path.join("run");
    let args = scan_args(&run, "5000");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, out, err) = lab.sonde(&args);
    assert_eq!(code, 1, "the disk filled: {out}{err}");
    assert!(
        err.contains("No space left on device"),
        "the failure is named: {err}"
    );
    let audit = std::fs::read_to_string(run.join("audit.jsonl")).unwrap();
    assert!(audit.contains("scan_checkpoint"), "{audit}");
    // Whatever the full disk let the run write, its log is whole.
    let (code, verified, _) = lab.sonde(&["verify", run.to_str().unwrap()]);
    assert!(code == 0 || code == 4, "{verified}");
    assert!(!verified.contains("BROKEN"), "{verified}");

    disk.grow("64m");
    let (code, out, err) = lab.sonde(&["scan", "--resume", run.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, verified, _) = lab.sonde(&["verify", run.to_str().unwrap()]);
    assert_eq!(code, 0, "{verified}");
    let found = open_ports(&report_json(&run.join("report.json")));
    assert_eq!(found.len(), 244 * 3 + 2, "every open port of the lab");
}

/// A real terminal closing (issue 29): the scan runs under `script`, which
/// gives it a pseudo-terminal; `script` killed, the terminal's master side
/// closes, and the kernel hangs up the scan's session (SIGHUP to its
/// foreground group). Its output now fails (EIO). The scan stops with its
/// evidence whole, and resumes.
#[test]
fn a_closing_terminal_hangs_up_the_scan_and_it_resumes() {
    let lab = Lab::new();
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let command = format!(
        "{} scan --scope scopes/lab.toml 198.18.1.0/24 -p 1-40 --rate 2000 -o {}",
        env!("CARGO_BIN_EXE_sonde"),
        run.display()
    );
    let mut terminal = lab.scanner_command("setsid");
    terminal
        .args(["script", "-qfec", &command, "/dev/null"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut script = terminal.spawn().unwrap();
    std::thread::sleep(Duration::from_millis(2000));
    let _ = Command::new("kill")
        .args(["-KILL", &script.id().to_string()])
        .status();
    let _ = script.wait();
    // The scan is not our child: wait for its audit log to end.
    let audit = run.join("audit.jsonl");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let text = loop {
        let text = std::fs::read_to_string(&audit).unwrap_or_default();
        if text.contains("\"run_finished\"") {
            break text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the scan never finished after the hangup: {text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(text.contains("\"signal\":1"), "a SIGHUP: {text}");
    assert!(text.contains("\"scan_stopped\""), "{text}");
    assert!(text.contains("\"exit_status\":1"), "{text}");
    let r = report_json(&run.join("report.json"));
    assert_eq!(r["interrupted"], true);
    let (code, verified, _) = lab.sonde(&["verify", run.to_str().unwrap()]);
    assert_eq!(code, 0, "{verified}");
    let (code, out, err) = lab.sonde(&["scan", "--resume", run.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    let found = open_ports(&report_json(&run.join("report.json")));
    // 22 on every up host of the /24 (198.18.1.200-209 are down).
    assert_eq!(found.iter().filter(|(_, p)| *p == 22).count(), 244);
}

/// The probe budget holds at its edge across a kill: the cut segment is
/// charged its last budget lease (at least every probe its capture holds,
/// its tail included), so the probes a resume sends again come out of the
/// same budget. A budget of 260 for a first pass of 220 and retries of 120:
/// regression, 266 SYNs reached the targets when only the capture was
/// charged (a kill loses the writer's unwritten buffer).
#[test]
fn the_budget_holds_at_its_edge_across_a_kill() {
    let lab = Lab::new();
    let dir = tempfile::tempdir().unwrap();
    let scope = lab_scope_with_budget(dir.path(), 260);
    let capture = dir.path().join("target.pcap");
    let tshark = lab.capture_target_side("vt", &capture);
    let run = dir.path().join("run");
    let mut scan = lab.sonde_command();
    scan.args([
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
        "--checkpoint-every",
        "0.2",
        "-o",
        run.to_str().unwrap(),
    ]);
    let (status, err) = kill_after(scan, Duration::from_millis(800));
    assert_eq!(status.code(), None, "{err}");
    let (code, verified, _) = lab.sonde(&["verify", run.to_str().unwrap()]);
    assert_eq!(code, 4, "{verified}");
    let (code, out, err) = lab.sonde(&["scan", "--resume", run.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    tshark.stop();
    let audit = std::fs::read_to_string(run.join("audit.jsonl")).unwrap();
    let resumed: serde_json::Value = audit
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|r| r["event"] == "run_resumed")
        .unwrap();
    assert!(
        resumed["budget_charged"]["capture"].as_u64() > Some(0),
        "the cut segment's probes are charged: {resumed}"
    );
    let r = report_json(&run.join("report.json"));
    assert!(
        r["scope_stopped"].as_str().unwrap_or("").contains("budget"),
        "{}",
        r["scope_stopped"]
    );
    let syns = support::evidence::tshark_count(
        &capture,
        "ip.src==198.18.0.2 && tcp.flags.syn==1 && tcp.flags.ack==0",
    );
    // At most the budget, though the kill lost the probes the writer had
    // not yet written: the cut segment is charged its last lease, which no
    // probe it sent exceeds (a second of probes at most goes unspent).
    let charged = resumed["budget_charged"]["charged"].as_u64().unwrap();
    assert!(
        syns <= 260 && syns as u64 + 200 >= 260,
        "{syns} probes reached the targets, both segments (charged {charged})"
    );
    assert!(
        resumed["budget_charged"]["lease"].as_u64() > Some(0),
        "the cut segment's lease is charged: {resumed}"
    );
    let (code, verified, _) = lab.sonde(&["verify", run.to_str().unwrap()]);
    assert_eq!(code, 0, "{verified}");
}

/// A compact-evidence run killed outright: its sent-probe log never
/// revealed its key, which is the cut, not damage; its anchored prefix
/// still holds (it is not resumed: compact runs are not).
#[test]
fn a_compact_run_killed_outright_verifies_as_cut() {
    let lab = Lab::new();
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let mut args = scan_args(&run, "2000");
    args.extend(["--evidence".to_string(), "compact".to_string()]);
    let mut scan = lab.sonde_command();
    scan.args(&args);
    let (status, err) = kill_after(scan, Duration::from_millis(2500));
    assert_eq!(status.code(), None, "{err}");
    let (code, verified, _) = lab.sonde(&["verify", run.to_str().unwrap()]);
    assert_eq!(code, 4, "{verified}");
    assert!(
        verified.contains("CUT       sent.jsonl: no end record"),
        "{verified}"
    );
    assert!(
        verified.contains("sent.jsonl (its first"),
        "the log's prefix is anchored: {verified}"
    );
}
