//! One scan run from request to evidence: the run directory and its lock,
//! the audit log, the stop signals, the evidence watcher, resume, the
//! report and the signature. The command line turns flags into a
//! [`ScanRequest`] and a [`SessionOutcome`] into text and an exit code;
//! the session itself never writes to a terminal (it tells an
//! [`Observer`]).
//!
//! ```no_run
//! use std::sync::Arc;
//! use sonde::scan::progress::{Observer, ScanEvent};
//! use sonde::scan::request::ScanRequest;
//! use sonde::scan::session::{Session, SessionOptions};
//!
//! struct Log;
//! impl Observer for Log {
//!     fn event(&self, e: &ScanEvent) {
//!         if let ScanEvent::Note(n) = e {
//!             eprintln!("{n}");
//!         }
//!     }
//! }
//! let targets = "198.18.0.0/24".parse().map(|r| {
//!     let mut s = sonde::targets::IpSet::new();
//!     s.insert(r);
//!     s
//! })?;
//! let request = ScanRequest::new("scopes/lab.toml", Some(targets));
//! let session = Session::create(request, SessionOptions::new(Arc::new(Log)))?;
//! let outcome = session.run()?;
//! println!("{} open ports, exit {}", outcome.open_ports(), outcome.exit_code());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod checkpoints;
pub mod files;
mod resume;
mod services;
mod watch;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

pub use files::{
    Audit, analyze_captures, append_to, audit, create_in, file_written, lock_run_dir, now_rfc3339,
    sign_run, write_report,
};
pub use resume::{ANSWERED, segment_name};

use crate::error::{Error, exit};
use crate::evidence::run_dir::{self, RunDirError};
use crate::evidence::{EvidenceMode, RunDir};
use crate::probe::ProbeTemplate;
use crate::results::{
    DownHosts, DownReason, FileRecord, Identity, NeighbourDiscovery, Parameters, ScanReport,
    ScopeRecord, Segment,
};
use crate::scan::hosts::HostResults;
use crate::scan::progress::{Observer, ScanEvent};
use crate::scan::request::{ScanRequest, prepare_on};
use crate::scan::{Counters, RateReport, ScanConfig, ScopeStop};
use crate::scope::{ProbeKind, Refusal};
use watch::{Interrupts, Watched};

/// How a session runs, beside what it scans: where, who signs, who hears.
pub struct SessionOptions {
    /// A new or empty run directory; `None`: a new timestamped one under
    /// the working directory.
    pub output_dir: Option<PathBuf>,
    /// Signs the finished run (`signature.json`).
    pub sign_key: Option<ed25519_dalek::SigningKey>,
    /// Hears progress, rate shortfalls and notes.
    pub observer: Arc<dyn Observer>,
    /// Send [`ScanEvent::Progress`] once a second.
    pub progress: bool,
    /// Take SIGINT, SIGTERM and SIGHUP as stops (a command line's session);
    /// a library caller that stops the scan otherwise leaves it off.
    pub signals: bool,
    /// How often a checkpoint makes the run durable while it sends (and
    /// at every pass boundary): a run killed outright verifies up to its
    /// last checkpoint and resumes from it.
    pub checkpoint_every: Duration,
    /// Where the packets go: the kernel's routes and sockets, or (the
    /// session's tests without root) a simulated network.
    pub network: Arc<dyn crate::net::link::Network>,
    /// The caller's stop: set, sending stops, the cooldown runs and every
    /// output is written; the run ends interrupted and can be resumed (as
    /// the first SIGINT does with `signals`).
    pub stop: Arc<AtomicBool>,
}

/// How often a checkpoint is taken unless the caller says otherwise.
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(5);

impl SessionOptions {
    pub fn new(observer: Arc<dyn Observer>) -> SessionOptions {
        SessionOptions {
            output_dir: None,
            sign_key: None,
            observer,
            progress: false,
            signals: false,
            checkpoint_every: CHECKPOINT_EVERY,
            network: Arc::new(crate::net::link::KernelNetwork),
            stop: Arc::new(AtomicBool::new(false)),
        }
    }
}

/// A run directory being written by this process, and what it is to scan.
pub struct Session {
    dir: RunDir,
    log: Audit,
    request: ScanRequest,
    resuming: Option<resume::Resuming>,
    options: SessionOptions,
    /// One writer per run directory, held until the session ends.
    _writer: crate::evidence::lock::HostLock,
}

/// How a run ended, beside failing.
#[derive(Clone, Debug, PartialEq)]
pub enum Ended {
    /// Every pass was sent.
    Complete,
    /// A stop signal (or the caller's stop flag) ended sending; resumable.
    Interrupted,
    /// An output could not be written (a full disk): sending stopped.
    OutputFailed(String),
    /// The scope's window closed while sending.
    WindowClosed(Refusal),
    /// The budget ran out in the retry passes (the first pass was whole).
    BudgetSpent(Refusal),
}

/// The segment a resume ran.
#[derive(Clone, Debug, PartialEq)]
pub struct ResumedSegment {
    pub segment: u64,
    /// Probes of every segment so far.
    pub probes_in_all: u64,
    /// When the run's first segment started.
    pub started: String,
}

/// What a finished session leaves: its outputs are in `dir`; this is what
/// a caller shows.
pub struct SessionOutcome {
    pub dir: PathBuf,
    pub ended: Ended,
    /// Probes of this segment, counting retries.
    pub probes: u64,
    pub counters: Counters,
    pub rate: RateReport,
    pub kinds: Vec<ProbeKind>,
    pub engagement_id: String,
    pub scope_path: PathBuf,
    pub resumed: Option<ResumedSegment>,
    pub down: Vec<DownHosts>,
    pub hosts: Vec<HostResults>,
    pub report_sha256: String,
    pub audit_head: String,
    pub audit_records: u64,
    /// The fingerprint of the key that signed the run.
    pub signed_by: Option<String>,
}

impl SessionOutcome {
    /// The exit code the outcome calls for: 0 complete (or only the
    /// retries cut by the budget), 1 interrupted or an output failed, 3
    /// stopped by the scope's window.
    pub fn exit_code(&self) -> i32 {
        match self.ended {
            Ended::Complete | Ended::BudgetSpent(_) => exit::OK,
            Ended::Interrupted | Ended::OutputFailed(_) => exit::RUNTIME,
            Ended::WindowClosed(_) => exit::REFUSED,
        }
    }

    /// Open ports found, over every host.
    pub fn open_ports(&self) -> usize {
        self.hosts.iter().map(|h| h.open_ports().count()).sum()
    }
}

impl Session {
    /// A new run: checks the request, creates the run directory, takes its
    /// lock and writes `run_started`. Nothing is judged or sent yet; a
    /// run that is then refused leaves its audit log saying so.
    pub fn create(request: ScanRequest, options: SessionOptions) -> Result<Session, Error> {
        request.check()?;
        // The run directory and its audit log come first: a refused or
        // failed run leaves records too.
        let dir = RunDir::create(options.output_dir.as_deref(), crate::clock::now_nanos())
            .map_err(|e| match e {
                RunDirError::Io(..) => Error::runtime("cannot create the run directory", e),
                _ => Error::usage(
                    e.to_string(),
                    "name a new or empty directory with -o, or leave -o out for a new timestamped one",
                ),
            })?;
        crate::net::privilege::chown_to_invoker(dir.path())
            .and_then(|()| crate::net::privilege::share_with_invoker_group(dir.path()))
            .and_then(|()| crate::net::privilege::keep_invoker_group())
            .map_err(|e| Error::runtime("cannot give the run directory to the sudo user", e))?;
        // One writer per run directory: a `--resume` of it while this runs
        // is refused.
        let writer = lock_run_dir(dir.path())?;
        let mut log = crate::evidence::AuditLog::new(create_in(&dir, run_dir::AUDIT)?);
        audit(
            &mut log,
            "run_started",
            crate::evidence::provenance(serde_json::json!({
                "run_directory": dir.path().display().to_string(),
            })),
        )?;
        Ok(Session {
            dir,
            log,
            request,
            resuming: None,
            options,
            _writer: writer,
        })
    }

    /// An interrupted run, to go on where it stopped: the directory must
    /// verify, its scope file hash as it did and allow the targets still;
    /// the request is the one its audit log recorded.
    pub fn resume(path: &Path, options: SessionOptions) -> Result<Session, Error> {
        if !path.is_dir() {
            return Err(Error::usage(
                format!("--resume {}: no such run directory", path.display()),
                "give the directory of an interrupted scan (its -o DIR)",
            ));
        }
        // One writer at a time: a second resume (or the scan itself, still
        // running) would fork the audit chain. Held until the segment ends.
        let writer = lock_run_dir(path)?;
        let opened = resume::open(path, options.network.as_ref())?;
        Ok(Session {
            dir: opened.dir,
            log: opened.log,
            request: opened.request,
            resuming: Some(opened.resuming),
            options,
            _writer: writer,
        })
    }

    /// The run directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// What this session scans (for a resume: as the run recorded it).
    pub fn request(&self) -> &ScanRequest {
        &self.request
    }

    /// Run the scan (or the rest of it) and write its evidence. Every end
    /// is in the audit log (`run_finished` with the exit code); an error is
    /// returned after it is recorded.
    pub fn run(mut self) -> Result<SessionOutcome, Error> {
        let observer = self.options.observer.clone();
        // Opened now (the sudo user must own it); signed once the log is final.
        let signer = match self.options.sign_key.clone() {
            Some(k) => Some((
                k,
                create_in(&self.dir, crate::evidence::signature::SIGNATURE)?,
            )),
            None => None,
        };
        let result = self.scan();
        let log = &mut self.log;
        let result = match result {
            Ok(mut outcome) => {
                let code = outcome.exit_code();
                audit(
                    log,
                    "run_finished",
                    serde_json::json!({ "exit_status": code }),
                )?;
                if let Some((key, f)) = signer {
                    outcome.signed_by = Some(sign_run(&key, f, &self.dir, log)?);
                }
                outcome.audit_head = log.head().to_string();
                outcome.audit_records = log.records();
                Ok(outcome)
            }
            Err(Error::Refused(r)) => {
                let reasons: Vec<String> = r.iter().map(|x| x.to_string()).collect();
                audit(
                    log,
                    "scope_refused",
                    serde_json::json!({ "reasons": reasons }),
                )?;
                audit(
                    log,
                    "run_finished",
                    serde_json::json!({ "exit_status": exit::REFUSED }),
                )?;
                Err(Error::Refused(r))
            }
            Err(e) => {
                audit(
                    log,
                    "run_failed",
                    serde_json::json!({ "error": e.to_string() }),
                )?;
                audit(
                    log,
                    "run_finished",
                    serde_json::json!({ "exit_status": e.exit_code() }),
                )?;
                Err(e)
            }
        };
        if result.is_err() {
            // Nothing final to sign.
            let _ = std::fs::remove_file(self.dir.file(crate::evidence::signature::SIGNATURE));
            observer.event(&ScanEvent::Note(format!(
                "the audit log of this run is {}",
                self.dir.file(run_dir::AUDIT).display()
            )));
        }
        result
    }

    fn scan(&mut self) -> Result<SessionOutcome, Error> {
        let Session {
            dir,
            log,
            request,
            resuming,
            options,
            ..
        } = self;
        let dir = &*dir;
        let observer = options.observer.clone();
        // A resumed run's report covers the whole run, from its first start.
        let segment_started = now_rfc3339();
        let started = resuming
            .as_ref()
            .and_then(|r| r.prior.started.clone())
            .unwrap_or_else(now_rfc3339);
        let prepared = prepare_on(request, None, options.network.as_ref())?;
        if let Some(r) = resuming.as_ref()
            && prepared.file.sha256 != r.scope_sha256
        {
            return Err(Error::Refused(vec![Refusal::ScopeChanged {
                path: prepared.file.path.display().to_string(),
                was: r.scope_sha256.clone(),
                now: prepared.file.sha256.clone(),
            }]));
        }
        // Chosen now, once: the order's seed and the sending threads.
        let seed = request.seed.unwrap_or_else(rand::random);
        let senders = request.senders_for(prepared.gate.rate());
        let resolved = prepared.resolved(request, seed, senders);
        let crate::scan::request::Prepared {
            file,
            gate,
            targets,
            ports,
            refusals,
        } = prepared;
        let (file, targets, ports) = (&file, &targets, &ports);
        // The scope's budget is per run: what earlier segments sent counts.
        let gate = match resuming.as_ref() {
            Some(r) => gate.with_spent(r.charged),
            None => gate,
        };
        // Under a budget, probes are granted on a lease the audit log
        // records (synced) before it is raised: a run killed outright is
        // charged its last lease, which no probe it sent exceeds, though
        // some never reached the capture (issue 29). A lease is a second
        // of probes, raised when half of it is used.
        let lease = gate.scope().max_probes.map(|max| BudgetLease {
            upto: Arc::new(std::sync::atomic::AtomicU64::new(0)),
            chunk: (gate.rate().ceil() as u64).clamp(100, 1 << 24),
            max,
        });
        let gate = match &lease {
            Some(l) => gate.with_lease(l.upto.clone()),
            None => gate,
        };
        let scope = gate.scope();
        if !refusals.is_empty() {
            if refusals.iter().any(|r| matches!(r, Refusal::Denied { .. }))
                && let Some(hint) = scope.exclude_hint(targets)
            {
                observer.event(&ScanEvent::Note(hint));
            }
            return Err(Error::Refused(refusals));
        }
        let kinds = request.probes.clone();
        let questions = request.dns_questions.clone();
        let shard = request.shard;
        let (checkpoint_tx, checkpoint_rx) = std::sync::mpsc::channel();
        let config = ScanConfig {
            resume: resuming.as_ref().map(|r| crate::scan::Resume {
                at: r.stop.clone(),
                answered: r.answered.clone(),
                hosts: crate::scan::hosts::HostTable::from_hosts(r.prior.hosts.clone()),
            }),
            targets: targets.clone(),
            ports: ports.clone(),
            // The crafted kinds; service identification follows the scan.
            kinds: kinds.iter().copied().filter(|k| k.is_raw()).collect(),
            dns_questions: questions.clone(),
            dns_port: 53,
            retries: request.retries,
            max_retries: request.max_retries,
            wait: Duration::from_secs_f64(request.wait_seconds()),
            adaptive_wait: request.wait.is_none(),
            seed,
            shard,
            template: ProbeTemplate::default(),
            progress: options.progress,
            observer: Some(observer.clone()),
            interface: request.interface.clone(),
            source: request.source_ip,
            record: request.record,
            keep_results: false,
            sniffer_queue: request
                .sniffer_buffer
                .unwrap_or(crate::net::packet::Sniffer::DEFAULT_QUEUE),
            senders,
            checkpoints: Some(checkpoint_tx),
            checkpoint_every: options.checkpoint_every,
        };
        // The budget covers the whole first pass, and the source is this
        // host's (or a spoofed one the scope lists), or nothing is sent.
        let plan_failed = |e: crate::scan::ScanError| Error::Runtime {
            context: "cannot plan the scan".into(),
            source: Some(Box::new(e)),
        };
        let planned = crate::scan::planned_probes(&config).map_err(plan_failed)?;
        gate.check_plan(planned)
            .map_err(|r| Error::Refused(vec![r]))?;
        if let Some(s) = request.source_ip {
            gate.check_source(s).map_err(|r| Error::Refused(vec![r]))?;
        }
        // One scan per scope on this host at a time, held until the session
        // ends: the scope's max_rate is the host's ceiling, and two
        // processes pacing to it each would send twice it.
        let _lease = crate::evidence::lock::scope_lease(
            &file.sha256,
            &crate::evidence::lock::this_process(dir.path()),
        )
        .map_err(|e| match e {
            crate::evidence::lock::LockError::Held { holder } => {
                Error::Refused(vec![Refusal::CeilingInUse {
                    holder: holder.map(|h| h.to_string()),
                    ceiling: scope.max_rate,
                }])
            }
            e => Error::runtime("cannot take the scope's host-wide lease", e),
        })?;
        // The request as resolved, recorded: what a resume reads back.
        audit(
            log,
            "scan_request",
            serde_json::json!({ "request": resolved }),
        )?;
        *request = resolved;
        // What makes shards parts of one scan: `sonde merge` joins only runs
        // whose identities agree but for the shard.
        let identity = Identity {
            scope_sha256: file.sha256.clone(),
            targets: targets.ranges().map(|r| r.to_string()).collect(),
            ports: ports.to_string(),
            probes: kinds.clone(),
            dns_query: questions.iter().map(|q| q.to_string()).collect(),
            retries: config.retries,
            // What the results file holds: shards that recorded different
            // results are not one scan's (issue 26).
            record: Some(request.record),
            seed: config.seed,
            shard: shard.to_string(),
            index_space: crate::scan::index_space_size(&config).map_err(plan_failed)?,
        };
        audit(
            log,
            "scan_identity",
            serde_json::to_value(&identity).unwrap_or_default(),
        )?;
        audit(
            log,
            "scope_accepted",
            serde_json::json!({
                "path": file.path.display().to_string(),
                "sha256": file.sha256,
                "engagement_id": scope.engagement.id,
                "not_before": crate::scope::gate_time(scope.engagement.not_before),
                "not_after": crate::scope::gate_time(scope.engagement.not_after),
            }),
        )?;
        audit(
            log,
            "rate_applied",
            serde_json::json!({ "rate": gate.rate(), "max_rate": scope.max_rate }),
        )?;
        let excluded = &request.exclude;
        audit(
            log,
            "recording",
            serde_json::json!({
                "results_ndjson": request.record,
                "excluded": excluded.ranges().map(|r| r.to_string()).collect::<Vec<_>>(),
                "report_hosts": "findings in full; closed, filtered and unreachable ports counted per host",
                "evidence": request.evidence,
                "capture_pcap": match request.evidence {
                    EvidenceMode::Full => "every probe and every reply",
                    EvidenceMode::Compact => "every reply; the probes are in sent.jsonl",
                },
            }),
        )?;

        // Open every output before the first packet: once the sockets are
        // open the process holds no capabilities. The report is written
        // under a temporary name and renamed when whole, so a report.json
        // is never a truncated one (under sudo the process keeps the
        // invoker's group, which may write in the run directory:
        // privilege::drop_all). A resumed run appends to the capture and
        // the results it has.
        let (pcap, pcap_len, results_file) = if resuming.is_some() {
            let (pcap, len) = append_to(dir, run_dir::PCAP)?;
            let (results, _) = append_to(dir, run_dir::RESULTS)?;
            // A capture a cut segment left empty gets its header again.
            (pcap, (len > 0).then_some(len), results)
        } else {
            (
                create_in(dir, run_dir::PCAP)?,
                None,
                create_in(dir, run_dir::RESULTS)?,
            )
        };
        let report_file = create_in(dir, run_dir::REPORT_PARTIAL)?;
        // Opened now, while the process may still give it to the sudo user;
        // removed at the end unless the scan stopped early.
        let mut answered_file = Some(create_in(dir, ANSWERED)?);
        let sent_log = match request.evidence {
            EvidenceMode::Compact => Some(create_in(dir, run_dir::SENT)?),
            EvidenceMode::Full => None,
        };
        let mut watched_files = vec![
            (run_dir::PCAP, &pcap),
            (run_dir::RESULTS, &results_file),
            (run_dir::REPORT_PARTIAL, &report_file),
        ];
        if let Some(f) = &sent_log {
            watched_files.push((run_dir::SENT, f));
        }
        let watched = Watched::new(dir, &watched_files)?;
        // Checkpoints: the files they sync and measure, by name.
        let segment = resuming.as_ref().map_or(1, |r| r.segment);
        let mut measured = vec![run_dir::PCAP, run_dir::RESULTS];
        let clone = |f: &std::fs::File, name: &str| {
            f.try_clone()
                .map_err(|e| Error::runtime(format!("cannot open {name} again"), e))
        };
        let mut sync = vec![
            (run_dir::PCAP, clone(&pcap, run_dir::PCAP)?),
            (run_dir::RESULTS, clone(&results_file, run_dir::RESULTS)?),
        ];
        if let Some(f) = &sent_log {
            measured.push(run_dir::SENT);
            sync.push((run_dir::SENT, clone(f, run_dir::SENT)?));
        }
        let mut checkpointer = checkpoints::Checkpointer::new(dir, segment, &measured)?;
        let checkpoint_rx = std::sync::Mutex::new(checkpoint_rx);
        let ndjson: Box<dyn Write + Send> =
            Box::new(crate::scan::ndjson::NdjsonWriter::new(results_file));

        // A stop signal: the first stops sending (recorded in the audit log
        // as it arrives), runs the cooldown and writes everything; a second
        // exits at once (the pcap holds whole records; no report is left).
        let stop = options.stop.clone();
        let interrupts = if options.signals {
            Some(Interrupts::install(
                stop.clone(),
                dir.file(run_dir::REPORT_PARTIAL),
                observer.clone(),
            )?)
        } else {
            None
        };
        let mut recorded_interrupt = false;
        if let Some(l) = &lease {
            l.extend(&gate, log)?;
        }
        // Service identification's capture: opened now, while the process
        // may still open packet sockets (the scan drops that right).
        let service_capture = if kinds.contains(&ProbeKind::Service) {
            Some(crate::net::capture::ConnectionCapture::open().map_err(|e| {
                Error::runtime("cannot open the capture of the service connections", e)
            })?)
        } else {
            None
        };
        let lost: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);
        let done = AtomicBool::new(false);
        let (outcome, watched_result) = std::thread::scope(|s| {
            // The watcher holds the audit log while the scan runs: a signal
            // is recorded when it arrives, and a run directory or file
            // removed or moved stops the scan within a second.
            let watcher = s.spawn(|| {
                let mut watch = || -> Result<(), Error> {
                    crate::net::privilege::drop_in_this_thread().map_err(|e| {
                        Error::runtime("cannot drop capabilities in the watcher", e)
                    })?;
                    let mut tick = 0u32;
                    // Checkpoints are recorded as they come, and the last ones
                    // once the scan is over.
                    let mut record_checkpoints = |log: &mut Audit| -> Result<(), Error> {
                        while let Some(c) =
                            checkpoint_rx.lock().ok().and_then(|r| r.try_recv().ok())
                        {
                            checkpointer.record(c, log)?;
                        }
                        Ok(())
                    };
                    while !done.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(50));
                        tick += 1;
                        record_checkpoints(log)?;
                        if let Some(l) = &lease {
                            l.extend(&gate, log)?;
                        }
                        if !recorded_interrupt && let Some(i) = &interrupts {
                            recorded_interrupt = i.record(log)?;
                        }
                        if tick.is_multiple_of(4)
                            && lost.lock().map(|l| l.is_none()).unwrap_or(false)
                            && let Some(what) = watched.first_lost()
                        {
                            stop.store(true, Ordering::Relaxed);
                            audit(log, "evidence_lost", serde_json::json!({ "what": what }))?;
                            if let Ok(mut l) = lost.lock() {
                                *l = Some(what);
                            }
                        }
                    }
                    record_checkpoints(log)
                };
                // An audit log (or a checkpoint) that cannot be written
                // stops the scan: nothing may be sent that the evidence
                // cannot tell.
                let r = watch();
                if r.is_err() {
                    stop.store(true, Ordering::Relaxed);
                }
                r
            });
            let outputs = crate::scan::ScanOutputs {
                pcap: Some(pcap),
                pcap_len,
                ndjson: Some(ndjson),
                sent_log,
                sync,
            };
            let outcome =
                crate::scan::run_on(&config, &gate, outputs, &stop, options.network.as_ref());
            done.store(true, Ordering::Relaxed);
            let watched = watcher.join().unwrap_or_else(|_| {
                Err(Error::runtime(
                    "the evidence watcher failed",
                    std::io::Error::other("panic"),
                ))
            });
            (outcome, watched)
        });
        if outcome.is_err() || watched_result.is_err() {
            // A run that failed writes no report and keeps no answered bits:
            // neither placeholder is left behind (the audit log says why).
            let _ = std::fs::remove_file(dir.file(run_dir::REPORT_PARTIAL));
            if answered_file.take().is_some() {
                let _ = std::fs::remove_file(dir.file(ANSWERED));
            }
        }
        watched_result?;
        let mut outcome = outcome.map_err(|e| match e {
            crate::scan::ScanError::Refused(r) => Error::Refused(vec![r]),
            other => Error::Runtime {
                context: "scan failed".into(),
                source: Some(Box::new(other)),
            },
        })?;
        if let Some(what) = lost.into_inner().ok().flatten() {
            return Err(Error::Runtime {
                context: format!(
                    "{what} during the scan: sending stopped after {} probes; what was written is in the files that were moved, if they were",
                    outcome.probes
                ),
                source: None,
            });
        }
        // Service identification: after the passes, on the ports they
        // found open, unless the scan was stopped or cut short.
        if kinds.contains(&ProbeKind::Service)
            && !outcome.interrupted
            && outcome.output_error.is_none()
            && outcome.scope_stop.is_none()
        {
            let results = std::fs::OpenOptions::new()
                .append(true)
                .open(dir.file(run_dir::RESULTS))
                .map_err(|e| Error::runtime("cannot append to results.ndjson", e))?;
            if let Some(l) = &lease {
                // Two connections a port at most (a TLS retry), a question
                // per DNS server, and one reservation per concurrent
                // connection held for a moment.
                let ports: u64 = outcome
                    .hosts
                    .iter()
                    .map(|h| h.open_ports().count() as u64 + h.results.len() as u64)
                    .sum();
                let held = crate::net::service::ServiceLimits::default().concurrency as u64;
                l.lease_more(&gate, 2 * ports + held, log)?;
            }
            let capture = match service_capture {
                Some(c) => Some((
                    c,
                    std::fs::OpenOptions::new()
                        .read(true)
                        .append(true)
                        .open(dir.file(run_dir::PCAP))
                        .map_err(|e| Error::runtime("cannot append to capture.pcap", e))?,
                )),
                None => None,
            };
            services::identify_open_ports(
                &mut outcome,
                &gate,
                &stop,
                results,
                capture,
                log,
                observer.as_ref(),
            )?;
        }
        let finished = now_rfc3339();
        let e = &scope.engagement;

        // The run's events so far, then the files the scan wrote. An
        // interrupt the watcher did not see (it came as the scan ended) is
        // recorded now, with the time it arrived.
        if !recorded_interrupt && let Some(i) = &interrupts {
            i.record(log)?;
        }
        if outcome.interrupted {
            audit(
                log,
                "sending_stopped",
                serde_json::json!({ "probes_sent": outcome.counters.sent }),
            )?;
        }
        if let Some(e) = &outcome.output_error {
            audit(log, "output_failed", serde_json::json!({ "error": e }))?;
        }
        let discovery = &outcome.neighbours;
        let down: Vec<DownHosts> = [
            (DownReason::NoArpReply, &discovery.no_arp_reply),
            (DownReason::NoNdReply, &discovery.no_nd_reply),
        ]
        .into_iter()
        .filter(|(_, set)| !set.is_empty())
        .map(|(reason, set)| DownHosts {
            reason,
            count: u64::try_from(
                set.count(crate::targets::Family::V4) + set.count(crate::targets::Family::V6),
            )
            .unwrap_or(u64::MAX),
            addresses: set.ranges().map(|r| r.to_string()).collect(),
        })
        .collect();
        let neighbour_discovery = NeighbourDiscovery {
            asked: discovery.asked,
            answered: discovery.answered,
            requests_sent: discovery.requests_sent,
            down: down.clone(),
        };
        audit(
            log,
            "neighbour_discovery",
            serde_json::to_value(&neighbour_discovery).unwrap_or_default(),
        )?;
        if let Some(short) = &outcome.rate.shortfall {
            audit(
                log,
                "rate_shortfall",
                serde_json::to_value(short).unwrap_or_default(),
            )?;
        }
        if let Some(stop) = &outcome.scope_stop {
            audit(
                log,
                "scope_stopped",
                serde_json::json!({
                    "reason": stop.refusal().to_string(),
                    "probes_sent": outcome.counters.sent,
                }),
            )?;
        }
        audit(
            log,
            "cooldown",
            serde_json::json!({
                "seconds": (outcome.cooldown_seconds * 1000.0).round() / 1000.0,
                "longest": config.wait.as_secs_f64(),
                "adaptive": config.adaptive_wait,
            }),
        )?;
        // Stopped early: where, so that `--resume` goes on from there.
        let bits = outcome
            .stopped_at
            .as_ref()
            .and(outcome.answered.as_ref())
            .and_then(|a| a.to_bytes());
        match (bits.as_ref(), answered_file.take()) {
            (Some(bits), Some(mut f)) => {
                f.write_all(bits)
                    .and_then(|()| f.sync_all())
                    .map_err(|e| Error::runtime("cannot write answered.bin", e))?;
                file_written(log, dir, ANSWERED)?;
            }
            (_, f) => {
                drop(f);
                std::fs::remove_file(dir.file(ANSWERED))
                    .map_err(|e| Error::runtime("cannot remove the unused answered.bin", e))?;
            }
        }
        if let Some(at) = &outcome.stopped_at {
            audit(
                log,
                "scan_stopped",
                serde_json::json!({
                    "segment": segment,
                    "pass": at.pass,
                    "kind": at.kind,
                    "next": at.next,
                    "seed": config.seed,
                    "shard": shard.to_string(),
                    "senders": config.senders,
                    "answered": bits.as_ref().map(|_| ANSWERED),
                }),
            )?;
        }
        let mut files = Vec::new();
        let mut written = vec![(run_dir::PCAP, "pcap"), (run_dir::RESULTS, "results")];
        if request.evidence == EvidenceMode::Compact {
            written.push((run_dir::SENT, "sent-probes"));
        }
        for (name, role) in written {
            let (sha256, size) = file_written(log, dir, name)?;
            files.push(FileRecord {
                name: name.to_string(),
                role: role.to_string(),
                sha256,
                size,
            });
        }

        // The session's capture, analyzed like any other: what happened on
        // the wire. Named as in the run directory, so the report does not
        // depend on where the directory was when the scan ran.
        let (capture_analysis, analysis_cost) = analyze_captures(
            &[dir.file(run_dir::PCAP)],
            Some(run_dir::PCAP),
            log,
            observer.as_ref(),
        )?;
        let prior = resuming.as_ref().map(|r| &r.prior);
        let prior_probes = prior.map_or(0, |p| p.probes);
        let mut counters = outcome.counters;
        let mut unanswered: BTreeMap<ProbeKind, u64> =
            outcome.unanswered.iter().map(|(k, v)| (*k, *v)).collect();
        let mut segments = Vec::new();
        if let Some(p) = prior {
            counters += p.counters;
            crate::results::add_per_kind(&mut unanswered, &p.unanswered);
            segments = p.segments.clone();
        }
        segments.push(Segment {
            segment,
            started: segment_started,
            finished: finished.clone(),
            probes: outcome.probes,
            sent: outcome.counters.sent,
            interrupted: outcome.interrupted,
            stopped_at: outcome.stopped_at.clone(),
            cut: None,
        });
        let who = crate::evidence::Provenance::current();
        let report = ScanReport {
            sonde_version: who.sonde_version,
            command: who.command,
            operator: who.operator,
            host: who.host,
            started: started.clone(),
            finished,
            run_directory: dir.path().display().to_string(),
            scope: ScopeRecord {
                path: file.path.display().to_string(),
                absolute_path: std::fs::canonicalize(&file.path)
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|_| file.path.display().to_string()),
                sha256: file.sha256.clone(),
                engagement_id: e.id.clone(),
                client: e.client.clone(),
                authorized_by: e.authorized_by.clone(),
                contact: e.contact.clone(),
                not_before: crate::scope::gate_time(e.not_before),
                not_after: crate::scope::gate_time(e.not_after),
                max_rate: scope.max_rate,
            },
            parameters: Parameters {
                targets: targets.ranges().map(|r| r.to_string()).collect(),
                exclude: excluded.ranges().map(|r| r.to_string()).collect(),
                ports: ports.to_string(),
                probes: kinds.clone(),
                rate: gate.rate(),
                retries: config.retries,
                wait_seconds: config.wait.as_secs_f64(),
                wait_adaptive: config.adaptive_wait,
                seed: config.seed,
                shard: shard.to_string(),
                dns_query: questions.iter().map(|q| q.to_string()).collect(),
                interface: request.interface.clone(),
                source_ip: request.source_ip,
                senders: config.senders,
                record: config.record,
                evidence: request.evidence,
                sniffer_buffer: config.sniffer_queue,
            },
            identity: Some(identity),
            merge: None,
            interrupted: outcome.interrupted,
            output_error: outcome.output_error.clone(),
            planned_probes: planned,
            max_probes: scope.max_probes,
            scope_stopped: outcome.scope_stop.as_ref().map(|s| s.refusal().to_string()),
            possibly_incomplete: outcome.counters.kernel_drops > 0
                || outcome.output_error.is_some(),
            counters,
            rate: outcome.rate.clone(),
            neighbour_discovery,
            links: outcome.links,
            passes: Some(outcome.passes),
            probes: outcome.probes + prior_probes,
            unanswered,
            segments,
            files,
            audit: files::anchor(log),
            compliance: crate::results::compliance::controls(),
            capture_analysis,
            capture_analysis_cost: analysis_cost,
            hosts: outcome.hosts,
        };
        if let Err(e) = write_report(report_file, &report) {
            // Never leave a partial report; when an output failed first (a
            // full disk), that failure is the one to name.
            let _ = std::fs::remove_file(dir.file(run_dir::REPORT_PARTIAL));
            return Err(match &outcome.output_error {
                Some(first) => Error::Runtime {
                    context: format!("{first}; then the report could not be written either ({e})"),
                    source: None,
                },
                None => Error::runtime("cannot write the report", e),
            });
        }
        std::fs::rename(dir.file(run_dir::REPORT_PARTIAL), dir.file(run_dir::REPORT))
            .map_err(|e| Error::runtime("cannot put the finished report in place", e))?;
        let (report_sha256, _) = file_written(log, dir, run_dir::REPORT)?;
        // The segment ended whole: its report and stop point supersede
        // the checkpoints' state.
        for slot in checkpoints::SLOTS {
            let _ = std::fs::remove_file(dir.file(slot));
        }

        let ended = match (&outcome.output_error, &outcome.scope_stop) {
            (Some(e), _) => Ended::OutputFailed(e.clone()),
            (None, Some(ScopeStop::WindowClosed(r))) => Ended::WindowClosed(r.clone()),
            (None, Some(ScopeStop::BudgetSpent(r))) if !outcome.interrupted => {
                Ended::BudgetSpent(r.clone())
            }
            _ if outcome.interrupted => Ended::Interrupted,
            _ => Ended::Complete,
        };
        Ok(SessionOutcome {
            dir: dir.path().to_path_buf(),
            ended,
            probes: outcome.probes,
            counters: outcome.counters,
            rate: outcome.rate,
            kinds,
            engagement_id: e.id.clone(),
            scope_path: file.path.clone(),
            resumed: resuming.as_ref().map(|r| ResumedSegment {
                segment: r.segment,
                probes_in_all: outcome.probes + prior_probes,
                started: started.clone(),
            }),
            down,
            hosts: report.hosts,
            report_sha256,
            audit_head: String::new(),
            audit_records: 0,
            signed_by: None,
        })
    }
}

/// The budget granted ahead, a chunk at a time, each recorded before it
/// is given (`budget_leased`).
struct BudgetLease {
    upto: Arc<std::sync::atomic::AtomicU64>,
    chunk: u64,
    max: u64,
}

impl BudgetLease {
    /// Lease `extra` probes past what is reserved now (at most the budget),
    /// recorded and synced first: the service phase's connections, asked
    /// for at once since no watcher raises the lease then.
    fn lease_more(
        &self,
        gate: &crate::scope::ScopeGate,
        extra: u64,
        log: &mut Audit,
    ) -> Result<(), Error> {
        let now = self.upto.load(Ordering::Acquire);
        let upto = (gate.reserved() + extra).min(self.max).max(now);
        if upto == now {
            return Ok(());
        }
        self.raise(upto, log)
    }

    /// Raise the lease when half of the last chunk is used (or none was
    /// given yet): recorded and synced first.
    fn extend(&self, gate: &crate::scope::ScopeGate, log: &mut Audit) -> Result<(), Error> {
        let now = self.upto.load(Ordering::Acquire);
        let used = gate.reserved();
        if now >= self.max || (now > 0 && used + self.chunk / 2 < now) {
            return Ok(());
        }
        let upto = (used.max(now) + self.chunk).min(self.max);
        self.raise(upto, log)
    }

    /// Record the lease `upto`, sync the log, then grant it.
    fn raise(&self, upto: u64, log: &mut Audit) -> Result<(), Error> {
        audit(
            log,
            "budget_leased",
            serde_json::json!({ "upto": upto, "max_probes": self.max }),
        )?;
        log.get_ref()
            .sync_data()
            .map_err(|e| Error::runtime("cannot sync the audit log", e))?;
        self.upto.store(upto, Ordering::Release);
        Ok(())
    }
}

/// Sessions end to end without root, over a simulated link
/// ([`crate::scan::simnet`]): the run directory, the audit log, the
/// capture and the report, as `sonde verify` checks them.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::verify::{Status, verify};
    use crate::scan::simnet::SimNet;
    use std::net::Ipv4Addr;

    struct Quiet;

    impl Observer for Quiet {
        fn event(&self, _: &ScanEvent) {}
    }

    /// A scope for the simulated link; each test names its own, since one
    /// scope is leased to one run at a time on a host (tests run at once).
    fn sim_scope(dir: &Path, id: &str) -> PathBuf {
        let path = dir.join("sim.toml");
        std::fs::write(
            &path,
            crate::scan::simnet::scope_toml(
                &format!("SIM-SESSION-{id}"),
                "max_rate = 100000\nmax_probes = 1000000",
                "",
            ),
        )
        .unwrap();
        path
    }

    fn request(scope: &Path, first: u8, last: u8, ports: &str) -> ScanRequest {
        let range = crate::targets::AddrRange::new(
            Ipv4Addr::new(198, 18, 0, first).into(),
            Ipv4Addr::new(198, 18, 0, last).into(),
        )
        .unwrap();
        let mut r = ScanRequest::new(scope, Some([range].into_iter().collect()));
        r.ports = Some(crate::targets::PortSet::parse(ports).unwrap());
        r.rate = Some(50_000.0);
        r
    }

    #[test]
    fn a_session_over_a_simulated_link_writes_evidence_that_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let scope = sim_scope(dir.path(), "VERIFIES");
        let net = Arc::new(SimNet::new(
            &[
                (Ipv4Addr::new(198, 18, 0, 10), &[22, 80]),
                (Ipv4Addr::new(198, 18, 0, 11), &[]),
            ],
            0,
        ));
        let mut options = SessionOptions::new(Arc::new(Quiet));
        let run = dir.path().join("run");
        options.output_dir = Some(run.clone());
        options.network = net.clone();
        let session = Session::create(request(&scope, 10, 12, "1-100"), options).unwrap();
        let outcome = session.run().unwrap();
        assert_eq!(outcome.exit_code(), 0);
        assert_eq!(outcome.open_ports(), 2);
        assert_eq!(net.probes().len(), 2 * 100, "the two hosts, each port once");
        // The evidence holds as `sonde verify` reads it.
        let findings = verify(&run).unwrap();
        assert!(
            findings.iter().all(|f| f.status == Status::Ok),
            "{findings:#?}"
        );
        // The report, read as the one definition of it.
        let report: crate::results::ScanReport = serde_json::from_slice(
            &std::fs::read(run.join(crate::evidence::run_dir::REPORT)).unwrap(),
        )
        .unwrap();
        assert_eq!(report.counters.matched, 200);
        assert_eq!(report.counters.skipped_down, 100, "198.18.0.12 is down");
    }

    /// A library caller's stop interrupts a session; the resume over the
    /// same link sends exactly the rest (each probe once in all), and the
    /// whole run verifies.
    #[test]
    fn a_stopped_session_resumes_where_it_stopped_and_sends_each_probe_once() {
        let dir = tempfile::tempdir().unwrap();
        let scope = sim_scope(dir.path(), "RESUMES");
        let hosts: Vec<(Ipv4Addr, &[u16])> = (10..20)
            .map(|h| (Ipv4Addr::new(198, 18, 0, h), &[22u16, 443][..]))
            .collect();
        let net = Arc::new(SimNet::new(&hosts, 0));
        let run = dir.path().join("run");
        let mut options = SessionOptions::new(Arc::new(Quiet));
        options.output_dir = Some(run.clone());
        options.network = net.clone();
        options.checkpoint_every = Duration::from_millis(200);
        let stop = options.stop.clone();
        let mut r = request(&scope, 10, 19, "1-1000");
        r.rate = Some(5_000.0);
        let session = Session::create(r, options).unwrap();
        let stopper = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(700));
            stop.store(true, Ordering::Relaxed);
        });
        let first = session.run().unwrap();
        stopper.join().unwrap();
        assert_eq!(first.ended, Ended::Interrupted);
        assert_eq!(first.exit_code(), 1);
        let sent_first = net.probes().len();
        assert!(
            sent_first > 0 && sent_first < 10_000,
            "stopped part way: {sent_first}"
        );

        let mut options = SessionOptions::new(Arc::new(Quiet));
        options.network = net.clone();
        let second = Session::resume(&run, options).unwrap().run().unwrap();
        assert_eq!(second.ended, Ended::Complete);
        assert!(second.resumed.is_some());
        let probes = net.probes();
        assert_eq!(probes.len(), 10 * 1000, "every probe of the plan");
        assert!(probes.values().all(|&n| n == 1), "none sent twice");
        assert_eq!(second.open_ports(), 20);
        let findings = verify(&run).unwrap();
        assert!(
            findings.iter().all(|f| f.status == Status::Ok),
            "{findings:#?}"
        );
    }
}
