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

use super::checkpoints::{read_state, write_state};
use super::files::{Audit, audit, file_written};
use crate::error::Error;
use crate::evidence::run_dir::{self, RunDir};
use crate::evidence::{EvidenceMode, verify_chain};
use crate::results::{RunSoFar, ScanReport, Segment, SegmentCut};
use crate::scan::StopPoint;
use crate::scan::request::ScanRequest;
use crate::targets::IpSet;

/// The probes answered when a run stopped ([`crate::scan::correlate::AnsweredSnapshot::to_bytes`]).
pub const ANSWERED: &str = "answered.bin";
/// The most a state file read by a resume may hold (`answered.bin`, a
/// checkpoint's slot, an archived report): the correlator keeps answered
/// bits as a bitmap only up to MAX_BITMAP_BYTES, and the hosts' findings
/// and folded counts take far less than 256 MiB. Files are regular ones
/// (never /dev/zero); the bound keeps memory to what a scan can write.
const MAX_STATE_BYTES: u64 = crate::scan::correlate::MAX_BITMAP_BYTES + (256 << 20);

/// What a resumed segment takes from the run directory.
pub(super) struct Resuming {
    /// This segment's number (2 for the first resume).
    pub segment: u64,
    pub stop: StopPoint,
    /// answered.bin as the last segment wrote it.
    pub answered: Option<Vec<u8>>,
    /// The run so far: the last segment's report (its hosts, counters
    /// and segments), or a cut segment's checkpoint.
    pub prior: RunSoFar,
    /// The scope file's SHA-256 when the run began.
    pub scope_sha256: String,
    /// Probes the earlier segments sent, charged to the budget: the larger
    /// of their report's count and the probes in the capture.
    pub charged: u64,
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
pub(super) fn open(path: &Path, network: &dyn crate::net::link::Network) -> Result<Opened, Error> {
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
    if request.evidence == EvidenceMode::Compact {
        return Err(Error::usage(
            "resuming a run with --evidence compact is not supported: its sent-probe log is one hash chain with one key per run",
            "scan again, or use --evidence full for runs that may be interrupted",
        ));
    }
    let segment_records = &records[last_start..];
    let finished = segment_records.iter().any(|r| event(r) == "run_finished");
    // A segment that failed (a full disk: its report could not be
    // written) goes on from its last checkpoint, as a cut one does.
    let failed = segment_records.iter().any(|r| event(r) == "run_failed");
    let senders = request.senders.unwrap_or(1);
    let from = if finished && !failed {
        stopped_segment(path, &records, last_start, &request)?
    } else {
        cut_segment(path, &records, last_start, senders)?
    };
    let From {
        stop,
        segment,
        prior,
        answered,
        cut,
    } = from;
    if stop.next.len() != senders {
        return Err(damaged(
            path,
            "its stop point has not one position per sending thread of its scan_request".into(),
        ));
    }
    let scope_sha256 = records
        .iter()
        .find(|r| event(r) == "scope_accepted")
        .and_then(|r| r["sha256"].as_str())
        .unwrap_or_default()
        .to_string();
    // Judged before anything in the directory changes: the same scope file
    // (by hash), its window open, the targets still allowed.
    let prepared = crate::scan::request::prepare_on(&request, None, network)?;
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
    // The stop point and the answered bits are the capture's own story
    // (issue 26: a forged stop point made pairs be probed twice).
    let capture_limit = cut.as_ref().map(|c| c.state_covers);
    let state_checked = check_state(
        path,
        &records,
        &request,
        &prepared,
        &stop,
        answered.as_deref(),
        capture_limit,
    )?;
    // The budget is charged with what the earlier segments sent: their
    // report says so, and every probe sent is in the capture. The larger
    // counts, so an edited report cannot buy probes.
    let from_report = prior.counters.sent;
    // A cut segment's evidence ends at its last checkpoint: the tails after
    // it are charged (they are in the capture counted above) and kept aside.
    let from_capture =
        crate::evidence::probes_in_capture(&path.join(run_dir::PCAP), &prepared.targets, 53)
            .map_err(|source| Error::Input {
                what: format!(
                    "{} (the probes sent so far)",
                    path.join(run_dir::PCAP).display()
                ),
                source,
            })?;
    // A cut segment granted probes on leases (`budget_leased`): its last
    // one bounds what it sent, captured or not (a kill loses the writer's
    // unwritten buffer).
    let from_lease = match &cut {
        Some(_) => records[last_start..]
            .iter()
            .rev()
            .find(|r| r["event"] == "budget_leased")
            .and_then(|r| r["upto"].as_u64())
            .unwrap_or(0),
        None => 0,
    };
    let charged = from_report.max(from_capture).max(from_lease);
    // A cut segment sent what its capture shows beyond the segments
    // before (the tail too): the run's counters say so.
    let mut prior = prior;
    if cut.is_some() {
        let segments = &mut prior.segments;
        let before: u64 = segments[..segments.len().saturating_sub(1)]
            .iter()
            .map(|x| x.sent)
            .sum();
        let cut_sent = charged.saturating_sub(before);
        if let Some(last) = segments.last_mut() {
            last.sent = cut_sent;
        }
        prior.counters.sent = charged;
    }
    drop(prepared);
    let dir = RunDir::existing(path)
        .map_err(|e| Error::usage(e.to_string(), "give the run directory"))?;

    // A cut segment: the files go back to what its last checkpoint
    // anchors; what was written after is kept beside them, hashed.
    let mut tails = Vec::new();
    let mut removed = Vec::new();
    if let Some(cut) = &cut {
        for (name, size) in &cut.sizes {
            if let Some(t) = keep_tail(&dir, name, *size, segment - 1)? {
                tails.push(t);
            }
        }
        // The placeholders the cut segment opened before its first packet
        // (an empty report, answered bits, signature), never written and
        // never recorded: the new segment opens its own.
        for name in [
            run_dir::REPORT_PARTIAL,
            ANSWERED,
            crate::evidence::signature::SIGNATURE,
        ] {
            // One the segment recorded is evidence: kept (archived below).
            let recorded = records[last_start..]
                .iter()
                .any(|r| r["event"] == "file_written" && r["path"] == name);
            if dir.file(name).exists() && !recorded {
                std::fs::remove_file(dir.file(name)).map_err(|e| {
                    Error::runtime(format!("cannot remove the cut segment's {name}"), e)
                })?;
                removed.push(name);
            }
        }
    }
    // A cut segment's resume writes the run as it stands (what a report
    // would say, and the answered bits): a later segment cut before its
    // first checkpoint starts from it again.
    let state_file = match &cut {
        Some(_) => {
            let name = format!("run.cut-segment-{}.bin", segment - 1);
            #[derive(serde::Serialize)]
            struct StateHead<'a> {
                #[serde(flatten)]
                run: &'a RunSoFar,
                answered_bytes: Option<usize>,
            }
            let head = StateHead {
                run: &prior,
                answered_bytes: answered.as_ref().map(Vec::len),
            };
            let mut f = create_or_rewrite(&dir, &name)?;
            write_state(&mut f, &head, answered.as_deref())
                .and_then(|_| f.sync_all())
                .map_err(|e| Error::runtime(format!("cannot write {name}"), e))?;
            Some(name)
        }
        None => None,
    };
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
                "lease": from_lease,
                "charged": charged,
            },
            // The stop point and answered bits agree with the capture.
            "state_checked": state_checked,
            // Where this segment begins in the capture: a reply after it
            // was matched by this segment's key only.
            "capture_from": std::fs::metadata(dir.file(run_dir::PCAP)).map(|m| m.len()).ok(),
            "results_from": std::fs::metadata(dir.file(run_dir::RESULTS)).map(|m| m.len()).ok(),
            // Segment N-1 was cut (killed outright): the checkpoint it goes
            // on from, and the tails written after it, kept aside.
            "cut": cut.as_ref().map(|c| serde_json::json!({
                "at": c.at,
                "checkpoint": c.checkpoint,
                "removed": removed,
                "state": state_file,
                "tails": tails.iter().map(|t: &Tail| serde_json::json!({
                    "of": t.of,
                    "from_offset": t.from,
                    "path": t.kept,
                    "size": t.size,
                })).collect::<Vec<_>>(),
            })),
        })),
    )?;
    for t in &tails {
        file_written(&mut log, &dir, &t.kept)?;
    }
    if let Some(name) = &state_file {
        file_written(&mut log, &dir, name)?;
    }
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

/// Read the capture again and check the state a resume goes on from
/// against it ([`crate::scan::state_check`]): a disagreement is refused,
/// naming the first probe that shows it.
fn check_state(
    path: &Path,
    records: &[Value],
    request: &ScanRequest,
    prepared: &crate::scan::request::Prepared,
    stop: &StopPoint,
    answered: Option<&[u8]>,
    limit: Option<u64>,
) -> Result<crate::scan::state_check::StateChecked, Error> {
    use crate::probe::plan::ProbePlan;
    use crate::scan::state_check::{ScanShape, StateCheck};
    let kinds: Vec<_> = request
        .probes
        .iter()
        .copied()
        .filter(|k| k.is_raw())
        .collect();
    let plan = ProbePlan::new(
        &prepared.targets,
        &prepared.ports,
        &kinds,
        request.dns_questions.len(),
        53,
        request.seed.unwrap_or_default(),
    )
    .map_err(|e| {
        Error::runtime(
            "cannot plan the scan again",
            std::io::Error::other(e.to_string()),
        )
    })?;
    let spaces: Vec<_> = plan
        .kinds()
        .iter()
        .map(|k| (k.kind, k.space.clone()))
        .collect();
    let bits = match answered {
        Some(bytes) => Some(
            crate::scan::correlate::AnsweredSnapshot::from_bytes(bytes, &spaces)
                .map_err(|e| damaged(path, format!("its answered bits: {e}")))?,
        ),
        None => None,
    };
    // Where each later segment began in the capture; a resume by an
    // older sonde did not record it.
    let boundaries: Option<Vec<u64>> = records
        .iter()
        .filter(|r| r["event"] == "run_resumed")
        .map(|r| r["capture_from"].as_u64())
        .collect();
    let scan = ScanShape {
        plan: &plan,
        targets: &prepared.targets,
        shard: request.shard,
        senders: request.senders.unwrap_or(1),
        questions: request.dns_questions.len(),
        dns_port: 53,
    };
    let mut check = StateCheck::new(scan, stop, boundaries, limit);
    if let Some(on_link) = on_link_targets(path, records)? {
        check = check.with_on_link(on_link);
    }
    let pcap = path.join(run_dir::PCAP);
    // Read twice: the probes, then the replies (one may come before its
    // probe in the capture).
    let read = |each: &mut dyn FnMut(&[u8])| -> std::io::Result<()> {
        let file = crate::evidence::open_regular(&pcap, false)?;
        // A capture cut before its header was whole holds nothing.
        if file.metadata()?.len() < 24 {
            return Ok(());
        }
        // Past what the state covers, only the probes' marks are read (a
        // reply covered can come before its probe).
        let mut reader = crate::pcap::reader::CaptureReader::new(file, &pcap.display().to_string())
            .map_err(|w| std::io::Error::new(std::io::ErrorKind::InvalidData, w.message))?;
        // A damaged tail ends the reading; verify judged the file before.
        let _ = reader.for_each_frame(|f| each(f.data));
        Ok(())
    };
    read(&mut |ip| check.on_frame(ip))
        .and_then(|()| {
            check.begin_replay();
            read(&mut |ip| check.replay(ip))
        })
        .map_err(|source| Error::Input {
            what: format!("{} (checking the run's state against it)", pcap.display()),
            source,
        })?;
    check.finish(bits.as_ref()).map_err(|d| {
        Error::usage(
            format!("{}: its state disagrees with its evidence: {d}", path.display()),
            "a run's stop point and answered bits are never edited; scan again into a new directory",
        )
    })
}

/// The targets some segment reached on-link (only those can have been
/// skipped as down), from each segment's first checkpoint and the reports
/// of the segments that stopped. `None` when a segment that checkpointed
/// says nothing of its links (a sonde before they were recorded) and left
/// no report.
fn on_link_targets(path: &Path, records: &[Value]) -> Result<Option<IpSet>, Error> {
    let mut ranges: Vec<crate::targets::AddrRange> = Vec::new();
    let mut add = |links: &[crate::results::LinkReport]| {
        for l in links.iter().filter(|l| l.reached.contains("on-link")) {
            ranges.extend(
                l.targets
                    .iter()
                    .filter_map(|t| t.parse::<crate::targets::AddrRange>().ok()),
            );
        }
    };
    // The reports: the last segment's, and those the resumes kept.
    let mut reports: Vec<String> = records
        .iter()
        .filter(|r| r["event"] == "run_resumed")
        .filter_map(|r| r["archived"][run_dir::REPORT].as_str().map(str::to_string))
        .collect();
    if path.join(run_dir::REPORT).is_file() {
        reports.push(run_dir::REPORT.to_string());
    }
    for name in &reports {
        let bytes = read_bounded(path, name, "a report")?;
        if let Ok(r) = serde_json::from_slice::<ScanReport<serde::de::IgnoredAny>>(&bytes) {
            add(&r.links);
        }
    }
    // Each segment's first checkpoint names its links. A segment whose
    // checkpoints do not (a sonde before they were recorded) is known from
    // its report, when it wrote one; else nothing is known.
    let mut unknown = false;
    let mut first_checkpoint: Option<bool> = None;
    let mut wrote_report = false;
    let mut end_segment = |first: Option<bool>, wrote: bool| {
        if first == Some(false) && !wrote {
            unknown = true;
        }
    };
    for r in records {
        match r["event"].as_str() {
            Some("run_started" | "run_resumed") => {
                end_segment(first_checkpoint, wrote_report);
                first_checkpoint = None;
                wrote_report = false;
            }
            Some("scan_checkpoint") if first_checkpoint.is_none() => {
                let links =
                    serde_json::from_value::<Vec<crate::results::LinkReport>>(r["links"].clone());
                first_checkpoint = Some(links.is_ok());
                if let Ok(links) = links {
                    add(&links);
                }
            }
            Some("file_written") if r["path"] == run_dir::REPORT => wrote_report = true,
            _ => {}
        }
    }
    end_segment(first_checkpoint, wrote_report);
    if unknown {
        return Ok(None);
    }
    Ok(Some(ranges.into_iter().collect()))
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

/// Where a resumed segment starts, and what it starts from.
struct From {
    stop: StopPoint,
    /// The new segment's number.
    segment: u64,
    /// The run so far, as a report says it (a cut segment's is made from
    /// its checkpoint and the report before it).
    prior: RunSoFar,
    answered: Option<Vec<u8>>,
    cut: Option<Cut>,
}

/// A segment that was cut.
struct Cut {
    /// When its log ends.
    at: String,
    /// Its last checkpoint (None: cut before the first).
    checkpoint: Option<u64>,
    /// Each file's anchored length: what the resume cuts it back to.
    sizes: Vec<(&'static str, u64)>,
    /// The capture's length the stop point and answered bits cover (the
    /// checkpoint's; a failed segment's recorded length can be more).
    state_covers: u64,
}

/// A segment that stopped early and finished (Ctrl-C, SIGTERM, a closed
/// terminal): its `scan_stopped`, `answered.bin` and report.
fn stopped_segment(
    path: &Path,
    records: &[Value],
    last_start: usize,
    request: &ScanRequest,
) -> Result<From, Error> {
    let event = |r: &Value| r["event"].as_str().unwrap_or_default().to_string();
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
            "only a scan stopped early (Ctrl-C, SIGTERM, a closed terminal) or cut (killed) is resumed",
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
    // the same sending threads.
    if stopped["seed"].as_u64() != request.seed
        || stopped["senders"].as_u64().map(|n| n as usize) != request.senders
    {
        return Err(damaged(
            path,
            "its scan_stopped record (seed, senders) disagrees with its scan_request".into(),
        ));
    }
    let report_path = path.join(run_dir::REPORT);
    let prior: RunSoFar = std::fs::read(&report_path)
        .map_err(|source| Error::Input {
            what: format!("the report {}", report_path.display()),
            source,
        })
        .and_then(|b| {
            serde_json::from_slice::<ScanReport>(&b).map_err(|e| {
                damaged(
                    path,
                    format!("{} is not a scan report: {e}", run_dir::REPORT),
                )
            })
        })?
        .into();
    let answered = match stopped["answered"].as_str() {
        Some(name) => Some(read_bounded(path, name, "scan_stopped.answered")?),
        None => None,
    };
    Ok(From {
        stop,
        segment: stopped["segment"].as_u64().unwrap_or(1) + 1,
        prior,
        answered,
        cut: None,
    })
}

/// A run directory's member `name`, read whole without following a link
/// and bounded (one naming /dev/zero was read until memory ran out).
fn read_bounded(path: &Path, name: &str, what: &str) -> Result<Vec<u8>, Error> {
    let file = crate::evidence::member(path, name)
        .map_err(|why| damaged(path, format!("{what} {why}")))?;
    let mut bytes = Vec::new();
    crate::evidence::open_regular(&file, false)
        .and_then(|f| {
            use std::io::Read;
            f.take(MAX_STATE_BYTES + 1).read_to_end(&mut bytes)
        })
        .map_err(|source| Error::Input {
            what: format!("{} ({what})", file.display()),
            source,
        })?;
    if bytes.len() as u64 > MAX_STATE_BYTES {
        return Err(damaged(
            path,
            format!(
                "{} is over {MAX_STATE_BYTES} bytes: not the state of a scan",
                file.display()
            ),
        ));
    }
    Ok(bytes)
}

/// A segment that was cut (killed outright, no `run_finished`): it goes on
/// from its last checkpoint (its stop point, its state slot, whose hash
/// the record names), or, cut before the first, from where it began.
fn cut_segment(
    path: &Path,
    records: &[Value],
    last_start: usize,
    senders: usize,
) -> Result<From, Error> {
    let event = |r: &Value| r["event"].as_str().unwrap_or_default().to_string();
    let segment_records = &records[last_start..];
    let start = &records[last_start];
    let this_segment = if event(start) == "run_resumed" {
        start["segment"].as_u64().unwrap_or(2)
    } else {
        1
    };
    let at = records
        .last()
        .and_then(|r| r["time"].as_str())
        .unwrap_or("?")
        .to_string();
    // The run as it stood when this segment began: the report of the
    // segment before (kept under its segment's name), or, when that one
    // was cut too, the state its resume wrote (`run_resumed.cut.state`),
    // each with the answered bits of that moment.
    let (before, bits_before): (Option<RunSoFar>, Option<Vec<u8>>) = if event(start)
        != "run_resumed"
    {
        (None, None)
    } else if let Some(name) = start["cut"]["state"].as_str() {
        let bytes = read_bounded(path, name, "run_resumed.cut.state")?;
        let (head, bits) = read_state(&bytes).map_err(|e| damaged(path, format!("{name}: {e}")))?;
        let run = serde_json::from_value(head)
            .map_err(|e| damaged(path, format!("{name}: its head: {e}")))?;
        (Some(run), bits)
    } else {
        let report = match start["archived"][run_dir::REPORT].as_str() {
            Some(name) => {
                let bytes = read_bounded(path, name, "run_resumed.archived")?;
                Some(
                    serde_json::from_slice::<ScanReport>(&bytes)
                        .map_err(|e| damaged(path, format!("{name} is not a scan report: {e}")))?
                        .into(),
                )
            }
            None => None,
        };
        let bits = match start["archived"][ANSWERED].as_str() {
            Some(name) => Some(read_bounded(path, name, "run_resumed.archived")?),
            None => None,
        };
        (report, bits)
    };
    let checkpoint = segment_records
        .iter()
        .rev()
        .find(|r| event(r) == "scan_checkpoint");
    // The length this segment recorded for `name` (file_written), if any.
    let recorded_in_segment = |name: &str| {
        segment_records
            .iter()
            .rev()
            .find(|r| event(r) == "file_written" && r["path"] == name)
            .and_then(|r| r["size"].as_u64())
    };
    let measured = [run_dir::PCAP, run_dir::RESULTS];
    let mut state_covers = 0;
    let (stop, hosts, answered, sizes, checkpoint_n, probes) = match checkpoint {
        Some(c) => {
            let stop: StopPoint = serde_json::from_value(serde_json::json!({
                "pass": c["pass"], "kind": c["kind"], "next": c["next"],
            }))
            .map_err(|e| {
                damaged(
                    path,
                    format!("its scan_checkpoint record is not one sonde reads: {e}"),
                )
            })?;
            let name = c["state"]["path"].as_str().unwrap_or_default();
            let bytes = read_bounded(path, name, "scan_checkpoint.state")?;
            let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
            if Some(sha.as_str()) != c["state"]["sha256"].as_str() {
                return Err(damaged(
                    path,
                    format!("{name} does not hash as its checkpoint recorded"),
                ));
            }
            let (head, bits) =
                read_state(&bytes).map_err(|e| damaged(path, format!("{name}: {e}")))?;
            let head: RunSoFar = serde_json::from_value(head)
                .map_err(|e| damaged(path, format!("{name}: its head: {e}")))?;
            let mut sizes = Vec::new();
            for name in measured {
                let size = c["files"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|f| f["path"] == name)
                    .and_then(|f| f["size"].as_u64())
                    .ok_or_else(|| {
                        damaged(path, format!("its last checkpoint does not measure {name}"))
                    })?;
                if name == run_dir::PCAP {
                    state_covers = size;
                }
                // A segment that failed after recording its files (a full
                // disk took the report, not the capture) keeps what it
                // recorded: the records after the checkpoint anchor more.
                sizes.push((name, size.max(recorded_in_segment(name).unwrap_or(0))));
            }
            let probes = c["probes"].as_u64().unwrap_or(0) + c["retried"].as_u64().unwrap_or(0);
            (
                stop,
                head.hosts,
                bits,
                sizes,
                c["checkpoint"].as_u64(),
                probes,
            )
        }
        None => {
            // Where the segment began: the start of the run, or the stop
            // point it was resumed from (with that segment's state).
            let stop = if event(start) == "run_resumed" {
                serde_json::from_value(start["from"].clone()).map_err(|e| {
                    damaged(
                        path,
                        format!("its run_resumed record is not one sonde reads: {e}"),
                    )
                })?
            } else {
                StopPoint::start_of(0, senders)
            };
            let bits = bits_before;
            let mut sizes = Vec::new();
            for name in measured {
                // Where the segment began (its resume records it), or,
                // before that was recorded, the last length recorded: a
                // cut earlier segment records none, so this cut its
                // checkpointed evidence back into a tail.
                let began = match name {
                    run_dir::PCAP => start["capture_from"].as_u64(),
                    _ => start["results_from"].as_u64(),
                };
                let size = began.unwrap_or_else(|| {
                    records
                        .iter()
                        .rev()
                        .find(|r| event(r) == "file_written" && r["path"] == name)
                        .and_then(|r| r["size"].as_u64())
                        .unwrap_or(0)
                });
                if name == run_dir::PCAP {
                    state_covers = size;
                }
                sizes.push((name, size));
            }
            let hosts = before.as_ref().map_or_else(Vec::new, |b| b.hosts.clone());
            (stop, hosts, bits, sizes, None, 0)
        }
    };
    // The run so far, as a report would say it: the report before, this
    // segment's hosts and probes from its checkpoint, and the segment
    // itself, cut.
    let before = before.unwrap_or_default();
    let mut segments = before.segments;
    segments.push(Segment {
        segment: this_segment,
        started: start["time"].as_str().unwrap_or("?").to_string(),
        finished: at.clone(),
        cut: Some(SegmentCut {
            at: at.clone(),
            checkpoint: checkpoint_n,
        }),
        probes,
        // Made good below: the probes its capture holds, tail included.
        sent: probes,
        interrupted: false,
        stopped_at: Some(stop.clone()),
    });
    // What the checkpoint saw sent is charged at least (the capture's
    // count, taken later, covers the tail too).
    let mut counters = before.counters;
    counters.sent += probes;
    let prior = RunSoFar {
        started: Some(
            before
                .started
                .unwrap_or_else(|| records[0]["time"].as_str().unwrap_or("?").to_string()),
        ),
        hosts,
        counters,
        unanswered: before.unanswered,
        probes: before.probes + probes,
        segments,
    };
    Ok(From {
        stop,
        segment: this_segment + 1,
        prior,
        answered,
        cut: Some(Cut {
            at,
            checkpoint: checkpoint_n,
            sizes: sizes.into_iter().collect(),
            state_covers,
        }),
    })
}

/// A tail kept aside.
struct Tail {
    of: &'static str,
    from: u64,
    kept: String,
    size: u64,
}

/// Cut `name` back to `size` bytes, keeping what came after in a file of
/// its own: a capture's tail as a pcap of its own (the capture's header,
/// then the records), a results tail as it was.
fn keep_tail(
    dir: &RunDir,
    name: &'static str,
    size: u64,
    segment: u64,
) -> Result<Option<Tail>, Error> {
    use std::io::{Read, Seek, SeekFrom, Write};
    let path = dir.file(name);
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| Error::runtime(format!("cannot open {name} to cut it back"), e))?;
    let len = f
        .metadata()
        .map_err(|e| Error::runtime(format!("cannot read {name}"), e))?
        .len();
    if len < size {
        return Err(Error::usage(
            format!(
                "{}: {name} holds {len} bytes, fewer than the {size} its last checkpoint anchored",
                dir.path().display()
            ),
            format!("sonde verify {} names every problem", dir.path().display()),
        ));
    }
    let kept = match name {
        run_dir::PCAP => format!("capture.cut-segment-{segment}.pcap"),
        _ => format!("{name}.cut-segment-{segment}"),
    };
    if len == size {
        // Nothing past the anchor; unless a resume killed before it
        // recorded its work already cut the tail off: then its kept copy
        // (whole: the file is cut only after the copy is synced) is the
        // tail, recorded now.
        return Ok(match std::fs::metadata(dir.file(&kept)) {
            Ok(m) if m.is_file() => {
                let header = if name == run_dir::PCAP && size >= 24 {
                    24
                } else {
                    0
                };
                Some(Tail {
                    of: name,
                    from: size,
                    size: m.len().saturating_sub(header),
                    kept,
                })
            }
            _ => None,
        });
    }
    // One a resume killed before it recorded its work is written again
    // (the capture still holds every byte: it is cut only once the tail
    // is safe).
    let mut out = create_or_rewrite(dir, &kept)?;
    let mut copy = || -> std::io::Result<()> {
        if name == run_dir::PCAP && size >= 24 {
            // The capture's own header, so tools read the tail.
            let mut header = [0u8; 24];
            f.seek(SeekFrom::Start(0))?;
            f.read_exact(&mut header)?;
            out.write_all(&header)?;
        }
        f.seek(SeekFrom::Start(size))?;
        std::io::copy(&mut (&mut f).take(len - size), &mut out)?;
        out.sync_all()?;
        f.set_len(size)?;
        f.sync_all()
    };
    copy().map_err(|e| Error::runtime(format!("cannot keep the tail of {name} as {kept}"), e))?;
    Ok(Some(Tail {
        of: name,
        from: size,
        kept,
        size: len - size,
    }))
}

/// `name` in the run directory, created for the sudo user, or emptied
/// when a resume that was killed before it recorded anything left it.
fn create_or_rewrite(dir: &RunDir, name: &str) -> Result<std::fs::File, Error> {
    if dir.file(name).exists() {
        std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(dir.file(name))
            .map_err(|e| Error::runtime(format!("cannot rewrite {name}"), e))
    } else {
        super::files::create_in(dir, name)
    }
}
