//! `scan::session::Session`, the library's scan run, driven as a library
//! caller drives it: no command line, no terminal. These end before any
//! socket opens (a refusal, a bad request, a resume of what cannot be
//! resumed), so they need no lab.

use std::path::Path;
use std::sync::{Arc, Mutex};

use sonde::error::Error;
use sonde::scan::progress::{Observer, ScanEvent};
use sonde::scan::request::ScanRequest;
use sonde::scan::session::{Session, SessionOptions};
use sonde::targets::IpSet;

/// Keeps every event a session tells.
#[derive(Default)]
struct Heard(Mutex<Vec<ScanEvent>>);

impl Observer for Heard {
    fn event(&self, e: &ScanEvent) {
        self.0.lock().unwrap().push(e.clone());
    }
}

impl Heard {
    fn notes(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                ScanEvent::Note(n) => Some(n.clone()),
                _ => None,
            })
            .collect()
    }
}

fn set(ranges: &[&str]) -> IpSet {
    let mut s = IpSet::new();
    for r in ranges {
        s.insert(r.parse().unwrap());
    }
    s
}

fn scope_file(dir: &Path, body: &str) -> std::path::PathBuf {
    let path = dir.join("scope.toml");
    std::fs::write(
        &path,
        format!(
            r#"probes = ["syn"]
[engagement]
id = "SESSION-1"
client = "tests"
authorized_by = "tests"
contact = "tests@sonde.invalid"
not_before = 2024-01-01T00:00:00Z
not_after = 2099-12-31T23:59:59Z
[limits]
max_rate = 1000
{body}"#
        ),
    )
    .unwrap();
    path
}

fn events(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("audit.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn a_refused_request_is_recorded_and_leaves_no_partial_file() {
    let dir = tempfile::tempdir().unwrap();
    let scope = scope_file(
        dir.path(),
        r#"[[allow]]
targets = ["198.18.0.0/24"]
[[deny]]
name = "the client's gateway"
targets = ["198.18.0.1"]
"#,
    );
    let heard = Arc::new(Heard::default());
    let mut options = SessionOptions::new(heard.clone());
    options.output_dir = Some(dir.path().join("run"));
    let mut request = ScanRequest::new(&scope, Some(set(&["198.18.0.0/30"])));
    request.ports = Some(sonde::targets::PortSet::parse("22").unwrap());
    let session = Session::create(request, options).unwrap();
    let run = session.dir().to_path_buf();
    let Err(Error::Refused(reasons)) = session.run() else {
        panic!("a denied address is refused")
    };
    assert!(
        reasons[0].to_string().contains("the client's gateway"),
        "{reasons:?}"
    );
    // The hint the command line prints comes to the observer, and where
    // the audit log is.
    let notes = heard.notes();
    assert!(
        notes.iter().any(|n| n.contains("--exclude 198.18.0.1")),
        "{notes:?}"
    );
    assert!(notes.iter().any(|n| n.contains("audit.jsonl")), "{notes:?}");
    let names: Vec<String> = events(&run)
        .iter()
        .map(|r| r["event"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["run_started", "scope_refused", "run_finished"]);
    assert_eq!(events(&run)[2]["exit_status"], 3);
    let mut left: Vec<String> = std::fs::read_dir(&run)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["audit.jsonl"], "nothing but the audit log");
}

#[test]
fn a_request_no_scan_can_run_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let scope = scope_file(dir.path(), "[[allow]]\ntargets = [\"198.18.0.0/24\"]\n");
    let run = dir.path().join("run");
    let mut request = ScanRequest::new(&scope, None);
    request.shard = sonde::targets::index::Shard::parse("1/2").unwrap();
    let mut options = SessionOptions::new(Arc::new(Heard::default()));
    options.output_dir = Some(run.clone());
    let Err(e) = Session::create(request, options) else {
        panic!("shards need a seed")
    };
    assert_eq!(e.exit_code(), 2, "{e}");
    assert!(e.to_string().contains("--seed"), "{e}");
    assert!(
        !run.exists(),
        "no run directory for a request that cannot run"
    );
}

#[test]
fn a_run_that_never_stopped_early_is_not_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let scope = scope_file(dir.path(), "[[allow]]\ntargets = [\"198.18.0.0/24\"]\n");
    let run = dir.path().join("run");
    let mut options = SessionOptions::new(Arc::new(Heard::default()));
    options.output_dir = Some(run.clone());
    // Refused (the scope allows no 198.18.1.x): a run with no scan in it.
    let session = Session::create(
        ScanRequest::new(&scope, Some(set(&["198.18.1.1"]))),
        options,
    )
    .unwrap();
    assert!(session.run().is_err());
    let Err(e) = Session::resume(&run, SessionOptions::new(Arc::new(Heard::default()))) else {
        panic!("nothing to resume")
    };
    assert_eq!(e.exit_code(), 2, "{e}");
    assert!(e.to_string().contains("no scan_request record"), "{e}");
}
