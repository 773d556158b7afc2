//! `scan --resume RUN_DIR`: an interrupted run goes on where it stopped,
//! in its own directory.
//!
//! The run directory says everything: the `scan_request` record holds the
//! request as the run resolved it (targets, ports, seed, senders), the last
//! segment's `scan_stopped` record the stop point (pass, probe kind, each
//! sending thread's next position), and `answered.bin` which probes had
//! their result. The directory must verify first, and the scope file must
//! hash as it did (a run resumes under the authorization it began with;
//! the gate checks the window again). The pcap and NDJSON are appended to,
//! the audit chain goes on (`run_resumed`), and the files a segment
//! rewrites (report.json, answered.bin) are kept as `report.segment-N.json`
//! and `answered.segment-N.bin`, so every earlier record still verifies.

use std::path::Path;

use serde_json::Value;

use super::files::{Audit, audit};
use crate::error::Error;
use crate::evidence::run_dir::{self, RunDir};
use crate::evidence::{EvidenceMode, verify_chain};
use crate::scan::StopPoint;
use crate::scan::request::ScanRequest;

/// The probes answered when a run stopped ([`crate::scan::correlate::AnsweredSnapshot::to_bytes`]).
pub const ANSWERED: &str = "answered.bin";
/// The most `answered.bin` may hold: the correlator keeps answered bits as
/// a bitmap only up to MAX_BITMAP_BYTES (and then writes no such file),
/// plus the header and each kind's name and count.
const MAX_ANSWERED_BYTES: u64 = crate::scan::correlate::MAX_BITMAP_BYTES + 4096;

/// What a resumed segment takes from the run directory.
pub(super) struct Resuming {
    /// This segment's number (2 for the first resume).
    pub segment: u64,
    pub stop: StopPoint,
    /// answered.bin as the last segment wrote it.
    pub answered: Option<Vec<u8>>,
    /// The last segment's report (its hosts, counters and segments).
    pub prior: Value,
    /// The scope file's SHA-256 when the run began.
    pub scope_sha256: String,
    /// Probes the earlier segments sent, charged to the budget: the larger
    /// of their report's count and the probes in the capture.
    pub charged: u64,
}

/// `now`'s numbers plus `prior`'s, field by field (counters of two
/// segments of one run).
pub(super) fn sum_with_prior(now: Value, prior: Option<&Value>) -> Value {
    let (Value::Object(mut now), Some(Value::Object(prior))) = (now.clone(), prior) else {
        return now;
    };
    for (k, v) in prior {
        if let Some(p) = v.as_u64() {
            let n = now.get(k).and_then(Value::as_u64).unwrap_or(0);
            now.insert(k.clone(), Value::from(n + p));
        }
    }
    Value::Object(now)
}

/// The run's segments: the earlier report's, then `this`.
pub(super) fn segments(prior: Option<&Value>, this: Value) -> Value {
    let mut all: Vec<Value> = prior
        .and_then(|p| p["segments"].as_array().cloned())
        .unwrap_or_default();
    all.push(this);
    Value::Array(all)
}

/// What a resume starts from: the directory, its audit log continued (with
/// `run_resumed` written), the recorded request and the stop point.
pub(super) struct Opened {
    pub dir: RunDir,
    pub log: Audit,
    pub request: ScanRequest,
    pub resuming: Resuming,
}

fn damaged(path: &Path, what: String) -> Error {
    Error::usage(
        format!("{}: {what}", path.display()),
        format!("sonde verify {} names every problem", path.display()),
    )
}

/// Open `path` to resume it; the caller holds its one-writer lock.
pub(super) fn open(path: &Path) -> Result<Opened, Error> {
    // Damaged evidence is not continued: its story could not be told.
    let findings = crate::evidence::verify::verify(path)
        .map_err(|e| Error::runtime(format!("cannot read {}", path.display()), e))?;
    let audit_path = path.join(run_dir::AUDIT);
    let text = std::fs::read_to_string(&audit_path).map_err(|source| Error::Input {
        what: format!("the audit log {}", audit_path.display()),
        source,
    })?;
    let (_, head) = verify_chain(&text);
    let records: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let event = |r: &Value| r["event"].as_str().unwrap_or_default().to_string();
    // The request as the run resolved it; a run without one is not a scan
    // this sonde started.
    let request: ScanRequest = match records.iter().rev().find(|r| event(r) == "scan_request") {
        Some(r) => serde_json::from_value(r["request"].clone()).map_err(|e| {
            damaged(
                path,
                format!("its scan_request record is not one this sonde reads: {e}"),
            )
        })?,
        None => {
            return Err(Error::usage(
                format!(
                    "{}: the audit log has no scan_request record (not a scan, or one started by a sonde before 0.12)",
                    path.display()
                ),
                "give the directory of a sonde scan; resume a run with the sonde version that started it",
            ));
        }
    };
    // The scope file is judged below, as a refusal of its own.
    let scope_file = request.scope.display().to_string();
    if let Some(f) = findings
        .iter()
        .find(|f| f.status.is_failure() && f.subject != scope_file)
    {
        return Err(damaged(
            path,
            format!(
                "does not verify ({}: {}): a run whose evidence is damaged is not resumed",
                f.subject, f.detail
            ),
        ));
    }
    let last_start = records
        .iter()
        .rposition(|r| matches!(event(r).as_str(), "run_started" | "run_resumed"))
        .unwrap_or(0);
    let Some(stopped) = records[last_start..]
        .iter()
        .rev()
        .find(|r| event(r) == "scan_stopped")
    else {
        return Err(Error::usage(
            format!(
                "{}: the run sent every pass to its end (no scan_stopped record): nothing to resume",
                path.display()
            ),
            "only a scan stopped early (Ctrl-C, SIGTERM, a closed terminal) is resumed",
        ));
    };
    // A run its scope ended (the budget spent, the window closed) is
    // final: resuming it appended an empty segment, exit 0, forever.
    if let Some(ended) = records[last_start..]
        .iter()
        .find(|r| event(r) == "scope_stopped")
    {
        return Err(Error::usage(
            format!(
                "{}: its scope ended it ({}): a run stopped by its budget or its window is final; nothing to resume",
                path.display(),
                ended["reason"].as_str().unwrap_or("the scope's limits")
            ),
            "a new budget or window is a new scope file, and a new scan",
        ));
    }
    if request.evidence == EvidenceMode::Compact {
        return Err(Error::usage(
            "resuming a run with --evidence compact is not supported: its sent-probe log is one hash chain with one key per run",
            "scan again, or use --evidence full for runs that may be interrupted",
        ));
    }
    let stop: StopPoint = serde_json::from_value(serde_json::json!({
        "pass": stopped["pass"],
        "kind": stopped["kind"],
        "next": stopped["next"],
    }))
    .map_err(|e| {
        damaged(
            path,
            format!("its scan_stopped record is not one sonde reads: {e}"),
        )
    })?;
    // The stop point belongs to the request: the same order (seed) and
    // one position per sending thread.
    if stopped["seed"].as_u64() != request.seed
        || stopped["senders"].as_u64().map(|n| n as usize) != request.senders
        || Some(stop.next.len()) != request.senders
    {
        return Err(damaged(
            path,
            "its scan_stopped record (seed, senders, positions) disagrees with its scan_request"
                .into(),
        ));
    }
    let segment = stopped["segment"].as_u64().unwrap_or(1) + 1;
    let report_path = path.join(run_dir::REPORT);
    let prior: Value = std::fs::read(&report_path)
        .map_err(|source| Error::Input {
            what: format!("the report {}", report_path.display()),
            source,
        })
        .and_then(|b| {
            serde_json::from_slice(&b)
                .map_err(|e| damaged(path, format!("{} is not JSON: {e}", run_dir::REPORT)))
        })?;
    let scope_sha256 = prior["scope"]["sha256"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let answered = match stopped["answered"].as_str() {
        // A plain name of a regular file in the run directory, read without
        // following a link (one naming /dev/zero was read until memory
        // ran out).
        Some(name) => {
            let file = crate::evidence::member(path, name)
                .map_err(|why| damaged(path, format!("scan_stopped.answered {why}")))?;
            let mut bytes = Vec::new();
            crate::evidence::open_regular(&file, false)
                .and_then(|f| {
                    use std::io::Read;
                    f.take(MAX_ANSWERED_BYTES + 1).read_to_end(&mut bytes)
                })
                .map_err(|source| Error::Input {
                    what: format!("{} (which probes were answered)", file.display()),
                    source,
                })?;
            if bytes.len() as u64 > MAX_ANSWERED_BYTES {
                return Err(damaged(
                    path,
                    format!(
                        "{} is over {MAX_ANSWERED_BYTES} bytes: not the answered bits of a scan",
                        file.display()
                    ),
                ));
            }
            Some(bytes)
        }
        None => None,
    };
    // Judged before anything in the directory changes: the same scope file
    // (by hash), its window open, the targets still allowed.
    let prepared = crate::scan::request::prepare(&request, None)?;
    if prepared.file.sha256 != scope_sha256 {
        return Err(Error::Refused(vec![crate::scope::Refusal::ScopeChanged {
            path: prepared.file.path.display().to_string(),
            was: scope_sha256,
            now: prepared.file.sha256,
        }]));
    }
    if !prepared.refusals.is_empty() {
        return Err(Error::Refused(prepared.refusals));
    }
    // The budget is charged with what the earlier segments sent: their
    // report says so, and every probe sent is in the capture. The larger
    // counts, so an edited report cannot buy probes.
    let from_report = prior["counters"]["sent"].as_u64().unwrap_or(0);
    let from_capture =
        crate::evidence::probes_in_capture(&path.join(run_dir::PCAP), &prepared.targets, 53)
            .map_err(|source| Error::Input {
                what: format!(
                    "{} (the probes sent so far)",
                    path.join(run_dir::PCAP).display()
                ),
                source,
            })?;
    let charged = from_report.max(from_capture);
    drop(prepared);
    let dir = RunDir::existing(path)
        .map_err(|e| Error::usage(e.to_string(), "give the run directory"))?;

    // Keep what this segment rewrites, under the segment's name.
    let mut archived = serde_json::Map::new();
    for name in [
        run_dir::REPORT,
        ANSWERED,
        crate::evidence::signature::SIGNATURE,
    ] {
        if dir.file(name).exists() {
            let kept = segment_name(name, segment - 1);
            std::fs::rename(dir.file(name), dir.file(&kept))
                .map_err(|e| Error::runtime(format!("cannot keep {name} as {kept}"), e))?;
            archived.insert(name.to_string(), Value::from(kept));
        }
    }
    let log_file = std::fs::OpenOptions::new()
        .append(true)
        .open(&audit_path)
        .map_err(|e| Error::runtime(format!("cannot append to {}", audit_path.display()), e))?;
    let mut log: Audit =
        crate::evidence::AuditLog::continuing(log_file, records.len() as u64, &head);
    audit(
        &mut log,
        "run_resumed",
        crate::evidence::provenance(serde_json::json!({
            "segment": segment,
            "from": stop,
            "archived": archived,
            // What the earlier segments are charged to the budget, and why.
            "budget_charged": {
                "report": from_report,
                "capture": from_capture,
                "charged": charged,
            },
        })),
    )?;
    Ok(Opened {
        dir,
        log,
        request,
        resuming: Resuming {
            segment,
            stop,
            answered,
            prior,
            scope_sha256,
            charged,
        },
    })
}

/// `report.json` of segment 1 kept as `report.segment-1.json`.
pub fn segment_name(name: &str, segment: u64) -> String {
    match Path::new(name).extension().and_then(|e| e.to_str()) {
        Some(ext) => format!(
            "{}.segment-{segment}.{ext}",
            name.strip_suffix(&format!(".{ext}")).unwrap_or(name)
        ),
        None => format!("{name}.segment-{segment}"),
    }
}
