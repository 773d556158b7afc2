//! `sonde scan --scope FILE [TARGETS]...`

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::Args;
use serde::Serialize;

use super::scope::{judge, load_scope};
use super::targets::TargetArgs;
use super::write_err;
use crate::error::{Error, exit};
use crate::evidence::run_dir::{self, RunDirError};
use crate::evidence::{EvidenceMode, RunDir};
use crate::probe::cookie::MAX_DNS_QUESTIONS;
use crate::probe::{DnsQuestion, ProbeTemplate};
use crate::report::export::ExportFormat;

mod resume;
use crate::scan::hosts::{HostResults, RecordMode};
use crate::scan::{ScanConfig, run};
use crate::scope::{Decision, ProbeKind, ScopeGate};
use crate::targets::index::Shard;
use crate::targets::{IpSet, PortSet, SystemResolver};

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// The scope file that authorizes this scan (TOML, see docs/scope-format.md).
    #[arg(long, value_name = "FILE", required_unless_present = "resume")]
    pub scope: Option<PathBuf>,

    #[command(flatten)]
    pub targets: TargetArgs,

    /// Probe kinds, comma-separated: syn, icmp, dns.
    #[arg(long = "probe", value_name = "KINDS", default_value = "syn")]
    pub probe: String,

    /// Packets per second (default: the lower of 1000 and the scope's max_rate).
    #[arg(long, value_name = "PPS", allow_hyphen_values = true, value_parser = parse_rate)]
    pub rate: Option<f64>,

    /// Extra passes for probes that got no reply.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub retries: u32,

    /// The most retry passes when the link loses packets: past --retries,
    /// a retry pass that still found answers is followed by another (as
    /// nmap adds retries when it sees drops), up to N, within the budget.
    #[arg(long = "max-retries", value_name = "N", default_value_t = 10)]
    pub max_retries: u32,

    /// Seconds to wait for late replies after the last probe. Default: up
    /// to 2 s, ending once every probe has its result or replies have
    /// stopped for twice the reply timeout the round trips show (smoothed
    /// round trip + 4 deviations, at least the slowest; at least 0.05 s),
    /// as nmap's timeouts follow its round trips; a value given is waited
    /// in full (unless every probe has its result).
    #[arg(long, value_name = "SECS", allow_hyphen_values = true)]
    pub wait: Option<f64>,

    /// Seed of the probe order (default: random); the same seed, the same order.
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,

    /// This machine's share of the scan: I/N (1 <= I <= N). With the same
    /// --seed on every machine the shares have no overlap and no gap, so
    /// --shard needs --seed; `sonde merge` joins the run directories.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<String>,

    /// DNS probes' questions, NAME[:TYPE] (repeat or separate with commas,
    /// up to 16; default example.com:A).
    #[arg(long = "dns-query", value_name = "NAME[:TYPE]", value_delimiter = ',')]
    pub dns_query: Vec<String>,

    /// The run directory: the pcap, the NDJSON results, the audit log and
    /// report.json go here (created; it must be new or empty). Default: a
    /// new sonde-run-YYYYMMDDTHHMMSSZ (UTC) in the current directory.
    #[arg(long = "output-dir", short = 'o', value_name = "DIR")]
    pub output_dir: Option<PathBuf>,

    /// No progress line (it is printed only when stderr is a terminal anyway).
    #[arg(long, short = 'q')]
    pub quiet: bool,

    /// Send only through this interface; a target routed elsewhere is an error.
    #[arg(long, value_name = "IF")]
    pub interface: Option<String>,

    /// Sending threads (default: one per core, up to 4, at 50,000 pps and
    /// above; one below).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=64))]
    pub senders: Option<u64>,

    /// The sniffer's receive ring (kernel memory shared with sonde), bytes
    /// with an optional k or m suffix (default 64m); replies beyond it are
    /// dropped and counted.
    #[arg(long = "sniffer-buffer", value_name = "SIZE", value_parser = parse_size)]
    pub sniffer_buffer: Option<usize>,

    /// What results.ndjson records: open (open ports, echo replies, DNS
    /// answers), answered (every reply but closed ports, which the report
    /// counts per host; the default), or all.
    #[arg(long, value_name = "MODE", default_value = "answered")]
    pub record: RecordMode,

    /// What the evidence keeps of the probes sent: full (every probe and
    /// reply in capture.pcap; the default) or compact (the replies in
    /// capture.pcap, the probes in sent.jsonl as what regenerates them
    /// exactly, hash-chained; `sonde verify` rebuilds them).
    #[arg(long, value_name = "MODE", default_value = "full")]
    pub evidence: EvidenceMode,

    /// Source address of every probe (default: the route's); replies must come back to it.
    #[arg(long = "source-ip", value_name = "IP")]
    pub source_ip: Option<std::net::IpAddr>,

    /// Also write the results as nmap XML (nmap's -oX; `-` for standard
    /// output). Made from the run directory, which stays the evidence;
    /// `sonde report RUN_DIR --format xml` makes it again.
    #[arg(long = "output-xml", value_name = "FILE")]
    pub output_xml: Option<PathBuf>,

    /// Also write nmap's greppable lines (nmap's -oG; `-` for standard output).
    #[arg(long = "output-grepable", value_name = "FILE")]
    pub output_grepable: Option<PathBuf>,

    /// Also write masscan's list of findings (masscan's -oL; `-` for standard output).
    #[arg(long = "output-list", value_name = "FILE")]
    pub output_list: Option<PathBuf>,

    /// Also write the NDJSON results (-oJ; `-` for standard output): results.ndjson.
    #[arg(long = "output-json", value_name = "FILE")]
    pub output_json: Option<PathBuf>,

    /// Judge and plan the scan, send nothing and create nothing: the
    /// targets, the probes per kind, the estimated duration at the rate,
    /// and every refusal (exit 3 if any), as nmap -sL and masscan --echo.
    #[arg(long = "dry-run")]
    pub dry_run: bool,

    /// With --dry-run: judge the scope's window at this instant instead of
    /// now (RFC 3339), to plan a scan before its window opens. A real scan
    /// is always judged by the clock.
    #[arg(long, value_name = "TIME", requires = "dry_run", value_parser = super::scope::parse_instant)]
    pub at: Option<time::OffsetDateTime>,

    /// Sign the finished run with this Ed25519 key (PEM, from `sonde
    /// keygen`): signature.json over the report's hash and the audit log's
    /// final head; `sonde verify --pubkey` checks it.
    #[arg(long = "sign-key", value_name = "FILE")]
    pub sign_key: Option<PathBuf>,

    /// Continue the interrupted run in DIR where it stopped: its command,
    /// seed and scope come from the directory (the scope file must be
    /// unchanged and its window open); the pcap, NDJSON and audit chain
    /// go on, and the report covers the whole run.
    #[arg(
        long,
        value_name = "DIR",
        conflicts_with_all = [
            "scope", "targets", "input_list", "ports", "top_ports", "exclude",
            "exclude_file", "probe", "rate", "retries", "max_retries", "wait", "seed", "shard",
            "dns_query", "output_dir", "interface", "senders", "sniffer_buffer",
            "record", "evidence", "source_ip", "dry_run", "at",
        ]
    )]
    pub resume: Option<PathBuf>,
}

impl ScanArgs {
    /// The exports asked for: (format, file).
    fn exports(&self) -> Vec<(ExportFormat, &Path)> {
        [
            (ExportFormat::Xml, &self.output_xml),
            (ExportFormat::Grepable, &self.output_grepable),
            (ExportFormat::List, &self.output_list),
            (ExportFormat::Ndjson, &self.output_json),
        ]
        .into_iter()
        .filter_map(|(f, p)| p.as_deref().map(|p| (f, p)))
        .collect()
    }

    /// Whether an export goes to standard output (the summary then goes
    /// to standard error).
    pub fn exports_to_stdout(&self) -> bool {
        !self.dry_run && self.exports().iter().any(|(_, p)| *p == Path::new("-"))
    }
}

/// Write `head` (a JSON object) with a `hosts` member added, streaming the
/// hosts: findings in full, the rest folded per host.
pub(super) fn write_report(
    file: std::fs::File,
    head: &serde_json::Value,
    hosts: &[HostResults],
) -> std::io::Result<()> {
    #[derive(Serialize)]
    struct Report<'a> {
        #[serde(flatten)]
        head: &'a serde_json::Value,
        hosts: &'a [HostResults],
    }
    let mut w = std::io::BufWriter::with_capacity(1 << 16, file);
    serde_json::to_writer_pretty(&mut w, &Report { head, hosts })?;
    w.write_all(b"\n")?;
    w.flush()
}

/// The longest the cooldown lasts when `--wait` is not given.
const DEFAULT_WAIT: f64 = 2.0;

/// A rate: a finite number of packets per second above 0 (the scope's
/// ceiling is checked by the gate).
fn parse_rate(s: &str) -> Result<f64, String> {
    use crate::scope::MIN_RATE;
    match s.trim().parse::<f64>() {
        Ok(r) if r.is_finite() && r >= MIN_RATE => Ok(r),
        Ok(r) if r.is_finite() && r > 0.0 => Err(format!(
            "--rate {s}: below the slowest pace sonde keeps, {MIN_RATE} packets per second (one every 100 s)"
        )),
        _ => Err(format!(
            "{s:?} is not a rate: give packets per second, a number above 0 (e.g. --rate 1000)"
        )),
    }
}

/// `65536`, `64k`, `64m`: between 4 KiB and 1 GiB.
fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim().to_ascii_lowercase();
    let (num, unit) = match t.strip_suffix('m') {
        Some(n) => (n, 1 << 20),
        None => match t.strip_suffix('k') {
            Some(n) => (n, 1 << 10),
            None => (t.as_str(), 1),
        },
    };
    let n: usize = num
        .parse()
        .map_err(|_| format!("{s:?}: expected bytes, e.g. 65536, 256k or 64m"))?;
    match n.checked_mul(unit) {
        Some(b) if (4096..=1 << 30).contains(&b) => Ok(b),
        _ => Err(format!("{s:?}: between 4k and 1024m")),
    }
}

/// Draws a scan's events on standard error: the progress line (only on a
/// terminal: `ScanConfig::progress`) and notes. A closed or full stderr
/// changes nothing: the scan and its exit code go on.
struct StderrObserver;

impl crate::scan::progress::Observer for StderrObserver {
    fn event(&self, event: &crate::scan::progress::ScanEvent) {
        use crate::scan::progress::ScanEvent;
        let text = match event {
            ScanEvent::Progress {
                probes,
                total,
                rate,
                open,
                other_replies,
                eta_seconds,
                pass,
            } => format!(
                "\r{:5.1}% {probes}/{total} probes, {rate:.0} pps achieved, {open} open ports, {other_replies} other replies, ETA {eta_seconds:.0} s (pass {})   ",
                100.0 * *probes as f64 / (*total).max(1) as f64,
                pass + 1
            ),
            ScanEvent::RateShortfall(short) => format!(
                "\rsonde: note: sending at {:.0} pps, below 90% of the {:.0} pps asked for, for 5 s; the limit is {}\n",
                short.achieved,
                short.requested,
                short.stage.describe()
            ),
            ScanEvent::SendingDone {
                probes,
                wait_seconds,
            } => format!(
                "\r{probes} probes sent, waiting {wait_seconds:.1} s for late replies{}\n",
                " ".repeat(30)
            ),
            ScanEvent::PassAdded { pass, new_answers } => format!(
                "\rsonde: note: retry pass {pass} found {new_answers} new answers: the link loses packets, one more pass follows\n"
            ),
        };
        note(&text);
    }
}

/// Write `text` to standard error; a closed or full stderr is ignored (it
/// must never change what the run does or its exit code).
pub(crate) fn note(text: &str) {
    let _ = std::io::stderr().write_all(text.as_bytes());
}

/// SIGINT, SIGTERM and SIGHUP during a scan: the first stops sending (the
/// flag the scan polls) and is remembered with its time for the audit log;
/// the evidence is completed and the run can be resumed. A second SIGINT
/// or SIGTERM exits at once, removing the unfinished report. A closed
/// terminal or a dropped SSH session sends SIGHUP, often twice (the kernel
/// and the shell): a later SIGHUP changes nothing, so the evidence of a
/// dropped session is always complete.
struct Interrupts {
    first: Arc<std::sync::Mutex<Option<(i32, String)>>>,
}

impl Interrupts {
    fn install(stop: Arc<AtomicBool>, partial_report: PathBuf) -> Result<Interrupts, Error> {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])
            .map_err(|e| Error::runtime("cannot install the Ctrl-C handler", e))?;
        let first = Arc::new(std::sync::Mutex::new(None));
        let seen = first.clone();
        std::thread::Builder::new()
            .name("sonde-signals".into())
            .spawn(move || {
                // It needs no privilege: it only sets a flag and may exit.
                if crate::net::privilege::drop_in_this_thread().is_err() {
                    return;
                }
                for signal in signals.forever() {
                    let mut first = seen.lock().expect("signal lock");
                    if first.is_none() {
                        *first = Some((signal, now_rfc3339()));
                        stop.store(true, Ordering::Relaxed);
                        continue;
                    }
                    if signal == SIGHUP {
                        continue;
                    }
                    let _ = std::fs::remove_file(&partial_report);
                    say!(
                        "sonde: second signal: exiting at once; the pcap, results and audit log keep what was written, and no report is written"
                    );
                    std::process::exit(exit::RUNTIME);
                }
            })
            .map_err(|e| Error::runtime("cannot start the signal thread", e))?;
        Ok(Interrupts { first })
    }

    /// The first signal and when it arrived (RFC 3339), if one did.
    fn first(&self) -> Option<(i32, String)> {
        self.first.lock().expect("signal lock").clone()
    }

    /// Record the first signal in the audit log, if one came: whether it did.
    fn record(&self, log: &mut Audit) -> Result<bool, Error> {
        let Some((signal, at)) = self.first() else {
            return Ok(false);
        };
        audit(
            log,
            "interrupt_received",
            serde_json::json!({ "signal": signal, "received": at }),
        )?;
        Ok(true)
    }
}

/// The run directory and the files a scan writes, as they were created:
/// a path that no longer leads to the same file (removed, moved, replaced)
/// means the evidence is going nowhere, and the scan stops.
struct Watched {
    entries: Vec<(String, PathBuf, (u64, u64))>,
}

impl Watched {
    fn new(dir: &RunDir, files: &[(&str, &std::fs::File)]) -> Result<Watched, Error> {
        use std::os::unix::fs::MetadataExt;
        let id = |m: std::fs::Metadata| (m.dev(), m.ino());
        let mut entries = vec![(
            format!("the run directory {}", dir.path().display()),
            dir.path().to_path_buf(),
            id(std::fs::metadata(dir.path())
                .map_err(|e| Error::runtime("cannot read the run directory", e))?),
        )];
        for (name, f) in files {
            entries.push((
                format!("{name} in the run directory"),
                dir.file(name),
                id(f.metadata()
                    .map_err(|e| Error::runtime(format!("cannot read {name}"), e))?),
            ));
        }
        entries.push((
            format!("{} in the run directory", run_dir::AUDIT),
            dir.file(run_dir::AUDIT),
            id(std::fs::metadata(dir.file(run_dir::AUDIT))
                .map_err(|e| Error::runtime("cannot read the audit log", e))?),
        ));
        Ok(Watched { entries })
    }

    /// The first watched path that no longer leads to its file.
    fn first_lost(&self) -> Option<String> {
        use std::os::unix::fs::MetadataExt;
        self.entries
            .iter()
            .find_map(|(what, path, id)| match std::fs::metadata(path) {
                Ok(m) if (m.dev(), m.ino()) == *id => None,
                Ok(_) => Some(format!("{what} was replaced")),
                Err(_) => Some(format!("{what} disappeared (removed or moved)")),
            })
    }
}

/// The run's audit log (always written: `RUN_DIR/audit.jsonl`).
pub(super) type Audit = crate::evidence::AuditLog<std::fs::File>;

pub(super) fn now_rfc3339() -> String {
    crate::clock::timestamp(crate::clock::now_nanos())
}

/// Append an audit record; a failing audit log stops the run (exit 1).
pub(super) fn audit(log: &mut Audit, event: &str, fields: serde_json::Value) -> Result<(), Error> {
    let fields = match fields {
        serde_json::Value::Object(m) => m,
        _ => serde_json::Map::new(),
    };
    log.append(event, &now_rfc3339(), fields)
        .map_err(|e| Error::runtime("cannot write the audit log", e))
}

/// Hash `name` in the run directory and record it in the audit log.
pub(super) fn file_written(
    log: &mut Audit,
    dir: &RunDir,
    name: &str,
) -> Result<(String, u64), Error> {
    let path = dir.file(name);
    let (sha256, size) = crate::evidence::file_sha256(&path)
        .map_err(|e| Error::runtime(format!("cannot hash {}", path.display()), e))?;
    audit(
        log,
        "file_written",
        serde_json::json!({ "path": name, "sha256": sha256, "size": size }),
    )?;
    Ok((sha256, size))
}

/// The analysis report of the run's own pcap (null, with an audit record
/// saying why, when it cannot be read), and what it cost: on a multi-GB
/// capture it is a noticeable part of the run, so the report says so.
fn analyze_capture(
    dir: &RunDir,
    log: &mut Audit,
) -> Result<(serde_json::Value, serde_json::Value), Error> {
    // Named as in the run directory, so the report does not depend on
    // where the directory was when the scan ran.
    analyze_captures(&[dir.file(run_dir::PCAP)], Some(run_dir::PCAP), log)
}

/// Analyze `paths` as one capture set (a run's pcap, or a merge's shards'),
/// recording what it cost (`capture_analyzed`) or why it could not be read
/// (`analysis_failed`, and a warning); `name` replaces the inputs' paths.
pub(super) fn analyze_captures(
    paths: &[PathBuf],
    name: Option<&str>,
    log: &mut Audit,
) -> Result<(serde_json::Value, serde_json::Value), Error> {
    let opts = crate::analyze::AnalyzeOptions::default();
    match crate::analyze::analyze_timed(paths, &opts) {
        Ok((mut report, t)) => {
            if let Some(name) = name {
                for input in &mut report.input {
                    input.path = name.to_string();
                }
            }
            let cost = serde_json::json!({
                "frames": t.frames,
                "wall_seconds": (t.wall * 1000.0).round() / 1000.0,
                "cpu_seconds": ((t.analysis_cpu + t.hashing_cpu) * 1000.0).round() / 1000.0,
            });
            audit(log, "capture_analyzed", cost.clone())?;
            let value = serde_json::to_value(&report)
                .map_err(|e| Error::runtime("cannot encode the capture's analysis", e))?;
            Ok((value, cost))
        }
        Err(e) => {
            say!("sonde: warning: cannot analyze the capture: {}", e.message);
            audit(
                log,
                "analysis_failed",
                serde_json::json!({ "error": e.message }),
            )?;
            Ok((serde_json::Value::Null, serde_json::Value::Null))
        }
    }
}

/// Create `name` in the run directory; under sudo it belongs to the
/// invoking user, not root.
pub(super) fn create_in(dir: &RunDir, name: &str) -> Result<std::fs::File, Error> {
    let p = dir.file(name);
    let f = std::fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .open(&p)
        .map_err(|e| Error::runtime(format!("cannot create {}", p.display()), e))?;
    crate::net::privilege::chown_to_invoker(&p)
        .map_err(|e| Error::runtime(format!("cannot give {} to the sudo user", p.display()), e))?;
    Ok(f)
}

pub fn run_scan(args: ScanArgs, stdout: &mut dyn Write) -> Result<i32, Error> {
    if args.resume.is_some() {
        return resume::resume_scan(args, stdout);
    }
    let flags = Flags::check(&args)?;
    if args.dry_run {
        return dry_run(&args, &flags, stdout);
    }
    // The run directory and its audit log come first: a refused or failed
    // run leaves records too.
    let dir = RunDir::create(args.output_dir.as_deref(), crate::clock::now_nanos()).map_err(
        |e| match e {
            RunDirError::Io(..) => Error::runtime("cannot create the run directory", e),
            _ => Error::usage(
                e.to_string(),
                "name a new or empty directory with -o, or leave -o out for a new timestamped one",
            ),
        },
    )?;
    crate::net::privilege::chown_to_invoker(dir.path())
        .and_then(|()| crate::net::privilege::share_with_invoker_group(dir.path()))
        .and_then(|()| crate::net::privilege::keep_invoker_group())
        .map_err(|e| Error::runtime("cannot give the run directory to the sudo user", e))?;
    // One writer per run directory: a `--resume` of it while this runs is
    // refused.
    let _writer = lock_run_dir(dir.path())?;
    let mut log = crate::evidence::AuditLog::new(create_in(&dir, run_dir::AUDIT)?);
    audit(
        &mut log,
        "run_started",
        crate::evidence::provenance(serde_json::json!({
            "run_directory": dir.path().display().to_string(),
        })),
    )?;
    run_segment(args, flags, stdout, log, dir, None)
}

/// The one-writer lock of a run directory: refused (exit 1) while another
/// sonde writes it, naming that process.
pub(super) fn lock_run_dir(dir: &Path) -> Result<crate::evidence::lock::HostLock, Error> {
    crate::evidence::lock::run_dir_lock(dir, &crate::evidence::lock::this_process(dir)).map_err(
        |e| match e {
            crate::evidence::lock::LockError::Held { holder } => Error::Runtime {
                context: format!(
                    "{} is being written by another sonde ({}): one writer per run directory; wait for it to end",
                    dir.display(),
                    holder.map_or_else(|| "its PID could not be read".into(), |h| h.to_string())
                ),
                source: None,
            },
            e => Error::runtime("cannot lock the run directory", e),
        },
    )
}

/// Run one segment of a scan (the whole of it, unless it was interrupted
/// and resumed) in `dir`, whose audit log is `log`, and write its outputs.
fn run_segment(
    args: ScanArgs,
    flags: Flags,
    stdout: &mut dyn Write,
    mut log: Audit,
    dir: RunDir,
    resuming: Option<resume::Resuming>,
) -> Result<i32, Error> {
    let exports: Vec<(ExportFormat, PathBuf)> = args
        .exports()
        .into_iter()
        .map(|(f, p)| (f, p.to_path_buf()))
        .collect();
    // With an export on standard output, the summary goes to standard error.
    let mut stderr = crate::text::VisibleWriter(crate::text::PipeTolerant::new(std::io::stderr()));
    let out: &mut dyn Write = if args.exports_to_stdout() {
        &mut stderr
    } else {
        &mut *stdout
    };
    // Opened now (the sudo user must own it); signed once the log is final.
    let signer = match flags.sign_key.clone() {
        Some(k) => Some((k, create_in(&dir, crate::evidence::signature::SIGNATURE)?)),
        None => None,
    };
    let result = scan_inner(args, flags, &mut *out, &mut log, &dir, resuming);
    match &result {
        Ok(code) => {
            audit(
                &mut log,
                "run_finished",
                serde_json::json!({ "exit_status": code }),
            )?;
            if let Some((key, f)) = signer {
                sign_run(&key, f, &dir, &log, out)?;
            }
            // With the report's hash printed before, what to keep outside
            // the directory: nothing in it can then be rewritten unseen.
            writeln!(
                out,
                "audit log head {} after {} records",
                log.head(),
                log.records()
            )
            .map_err(write_err)?;
            // Views of the finished run directory, which stays the evidence.
            if dir.file(run_dir::REPORT).exists() {
                for (format, path) in &exports {
                    let code = super::report::run_export(dir.path(), *format, Some(path), stdout)?;
                    debug_assert_eq!(code, exit::OK);
                }
            }
        }
        Err(Error::Refused(r)) => {
            let reasons: Vec<String> = r.iter().map(|x| x.to_string()).collect();
            audit(
                &mut log,
                "scope_refused",
                serde_json::json!({ "reasons": reasons }),
            )?;
            audit(
                &mut log,
                "run_finished",
                serde_json::json!({ "exit_status": 3 }),
            )?;
        }
        Err(e) => {
            audit(
                &mut log,
                "run_failed",
                serde_json::json!({ "error": e.to_string() }),
            )?;
            audit(
                &mut log,
                "run_finished",
                serde_json::json!({ "exit_status": e.exit_code() }),
            )?;
        }
    }
    if result.is_err() {
        // Nothing final to sign.
        let _ = std::fs::remove_file(dir.file(crate::evidence::signature::SIGNATURE));
        say!(
            "sonde: the audit log of this run is {}",
            dir.file(run_dir::AUDIT).display()
        );
    }
    result
}

/// Read `--sign-key FILE` (before anything is sent or created).
pub(super) fn load_sign_key(path: &Path) -> Result<ed25519_dalek::SigningKey, Error> {
    crate::evidence::signature::load_signing_key(path).map_err(|e| {
        Error::usage(
            format!("--sign-key {e}"),
            "sonde keygen -o NAME writes NAME.key (sign with it) and NAME.pub",
        )
    })
}

/// Sign the finished run (its report's hash and the log's final head) into
/// `file` (signature.json), and say so.
pub(super) fn sign_run(
    key: &ed25519_dalek::SigningKey,
    mut file: std::fs::File,
    dir: &RunDir,
    log: &Audit,
    out: &mut dyn Write,
) -> Result<(), Error> {
    let (report_sha, _) = crate::evidence::file_sha256(&dir.file(run_dir::REPORT))
        .map_err(|e| Error::runtime("cannot hash the report to sign it", e))?;
    let sig = crate::evidence::signature::RunSignature::sign(key, &report_sha, log.head());
    serde_json::to_writer_pretty(&mut file, &sig)
        .map_err(std::io::Error::other)
        .and_then(|()| file.write_all(b"\n"))
        .and_then(|()| file.sync_all())
        .map_err(|e| Error::runtime("cannot write signature.json", e))?;
    writeln!(
        out,
        "signed with ed25519 key {}: {}/{}",
        crate::evidence::signature::fingerprint(&key.verifying_key()),
        dir.path().display(),
        crate::evidence::signature::SIGNATURE
    )
    .map_err(write_err)
}

/// The flags checked before the run directory is made: a typo is an input
/// error (exit 2) that leaves nothing behind.
struct Flags {
    wait: f64,
    kinds: Vec<ProbeKind>,
    questions: Vec<DnsQuestion>,
    shard: Shard,
    /// `--sign-key`, read before anything is sent.
    sign_key: Option<ed25519_dalek::SigningKey>,
}

impl Flags {
    fn check(args: &ScanArgs) -> Result<Flags, Error> {
        let exports = args.exports();
        for (i, (format, path)) in exports.iter().enumerate() {
            if let Some((other, _)) = exports[..i].iter().find(|(_, p)| p == path) {
                return Err(Error::usage(
                    format!(
                        "the {} and the {} would both be written to {}",
                        other.name(),
                        format.name(),
                        path.display()
                    ),
                    "give each of -oX, -oG, -oL and -oJ its own file (at most one `-`)",
                ));
            }
        }
        let wait = super::seconds("--wait", args.wait.unwrap_or(DEFAULT_WAIT), "e.g. --wait 2")?;
        let kinds: Vec<ProbeKind> = args
            .probe
            .split(',')
            .map(|k| {
                k.parse()
                    .map_err(|m: String| Error::usage(m, "--probe syn,icmp,dns"))
            })
            .collect::<Result<_, _>>()?;
        let mut questions = Vec::new();
        for q in &args.dns_query {
            questions.push(DnsQuestion::parse(q).map_err(|m| {
                Error::usage(
                    format!("--dns-query: {m}"),
                    "e.g. --dns-query www.example.com:AAAA",
                )
            })?);
        }
        if questions.is_empty() {
            questions.push(DnsQuestion {
                name: "example.com".into(),
                qtype: 1,
            });
        }
        if questions.len() > MAX_DNS_QUESTIONS {
            return Err(Error::usage(
                format!(
                    "{} --dns-query questions; a scan asks at most {MAX_DNS_QUESTIONS}",
                    questions.len()
                ),
                "split the questions over several scans",
            ));
        }
        let shard = match &args.shard {
            Some(s) => {
                let shard = Shard::parse(s)
                    .map_err(|m| Error::usage(m, "--shard 1/4 scans the first of four shares"))?;
                // Shards of different orders overlap and leave gaps.
                if args.seed.is_none() && args.resume.is_none() && shard.count > 1 {
                    return Err(Error::usage(
                        format!(
                            "--shard {s} without --seed: each machine would draw its own probe order, and the shares would overlap and leave gaps"
                        ),
                        "give every shard the same --seed N (any number, e.g. from `od -An -N8 -tu8 /dev/urandom`)",
                    ));
                }
                shard
            }
            None => Shard::WHOLE,
        };
        if let Some(name) = &args.interface
            && crate::net::route::interface_index(name).is_none()
        {
            return Err(Error::usage(
                format!(
                    "--interface {}: there is no such interface here",
                    crate::text::visible(name)
                ),
                "`ip link` lists the interfaces; or drop --interface to use the route's",
            ));
        }
        let sign_key = args.sign_key.as_deref().map(load_sign_key).transpose()?;
        Ok(Flags {
            wait,
            kinds,
            questions,
            shard,
            sign_key,
        })
    }
}

/// What a scan would do, judged before anything is created or sent: the
/// scope, the gate, the targets (exclusions taken out), the ports, and
/// every refusal (a dry run prints them all; a scan stops at them).
struct Prepared {
    file: super::scope::ScopeFile,
    gate: ScopeGate,
    targets: IpSet,
    excluded: IpSet,
    ports: PortSet,
    refusals: Vec<crate::scope::Refusal>,
}

fn prepare(args: &ScanArgs, kinds: &[ProbeKind]) -> Result<Prepared, Error> {
    let file =
        load_scope(args.scope.as_deref().ok_or_else(|| {
            Error::usage("no scope file", "--scope FILE names the authorization")
        })?)?;
    // The gate refuses a rate above the ceiling and a closed window; it
    // knows this host's addresses, the only sources it lets packets carry
    // unless the scope lists spoofed ones.
    let local = crate::net::route::local_addresses()
        .map_err(|e| Error::runtime("cannot read this host's addresses", e))?;
    let gate = match args.at {
        // A dry run judged at another instant: the window is checked at it.
        Some(at) => {
            let gate = ScopeGate::with_clock(file.scope.clone(), args.rate, Arc::new(move || at))
                .map_err(Error::from)?;
            gate.check_window(at).map_err(Error::from)?;
            gate
        }
        None => ScopeGate::new(file.scope.clone(), args.rate).map_err(Error::from)?,
    }
    .with_local_sources(local);
    let scope = gate.scope();

    // Targets: as given, or everything the scope allows for every kind
    // asked when no target source was given at all.
    let given = args.targets.resolve(&SystemResolver, true)?;
    // TARGET:PORT adds the port to the scan's port list (ports apply to
    // every target, as with -p).
    let mut named_ports = PortSet::new();
    for t in &given {
        if let Some(p) = t.port {
            named_ports.insert(p, p);
        }
    }
    let excluded = args.targets.excluded(&SystemResolver)?;
    let mut targets: IpSet = if given.is_empty() && !args.targets.has_source() {
        let mut all = scope.allowed_addresses(kinds[0]);
        for k in &kinds[1..] {
            let other = scope.allowed_addresses(*k);
            let mut not_other = all.clone();
            not_other.subtract(&other);
            all.subtract(&not_other);
        }
        all
    } else {
        // An IPv4-mapped IPv6 target is scanned (and judged) as the IPv4
        // address it stands for.
        given
            .iter()
            .flat_map(|t| t.target.range.canonical_parts())
            .collect()
    };
    // Exclusions only narrow: they are taken out before anything is judged.
    let before_exclusion = !targets.is_empty();
    targets.subtract(&excluded);
    if before_exclusion && targets.is_empty() {
        return Err(Error::usage(
            "nothing to scan: --exclude/--excludefile leave no target",
            "exclude less, or name other targets",
        ));
    }
    if targets.is_empty() {
        return Err(Error::usage(
            "nothing to scan: no targets given and the scope allows none for these probe kinds",
            "name targets, or check the scope with sonde scope check",
        ));
    }
    let ports = match args.targets.port_set()? {
        Some(mut p) => {
            p.union_with(&named_ports);
            p
        }
        None if !named_ports.is_empty() => named_ports,
        None => super::targets::default_syn_ports(scope),
    };

    // Refuse anything out of scope before a single packet is sent.
    let mut refusals = Vec::new();
    for kind in kinds {
        for range in targets.ranges() {
            let port_list = match kind {
                ProbeKind::Syn => Some(ports.clone()),
                ProbeKind::Dns => Some(PortSet::single(53)),
                ProbeKind::Icmp => None,
            };
            if let Decision::Refused(r) = judge(
                &gate,
                &range,
                port_list.as_ref(),
                *kind,
                &range.to_string(),
                gate.now(),
            ) {
                refusals.push(r);
            }
        }
    }
    Ok(Prepared {
        file,
        gate,
        targets,
        excluded,
        ports,
        refusals,
    })
}

/// `scan --dry-run`: what the scan would send, judged as the scan judges
/// it, with nothing sent and nothing written.
fn dry_run(args: &ScanArgs, flags: &Flags, out: &mut dyn Write) -> Result<i32, Error> {
    let Prepared {
        file,
        gate,
        targets,
        excluded,
        ports,
        mut refusals,
    } = prepare(args, &flags.kinds)?;
    let scope = gate.scope();
    let e = &scope.engagement;
    let mut lines = vec![
        "dry run: nothing is sent and nothing is written".to_string(),
        format!(
            "scope {} (sha256 {}), engagement {}, valid {} to {}",
            file.path.display(),
            file.sha256,
            e.id,
            crate::scope::gate_time(e.not_before),
            crate::scope::gate_time(e.not_after)
        ),
        format!(
            "rate {:.0} pps (the scope's ceiling {:.0}); probe budget {}",
            gate.rate(),
            scope.max_rate,
            scope
                .max_probes
                .map_or("none".to_string(), |m| format!("{m} probes per run"))
        ),
    ];
    let addresses =
        targets.count(crate::targets::Family::V4) + targets.count(crate::targets::Family::V6);
    let ranges: Vec<String> = targets
        .ranges()
        .map(|r| format!("  {r} ({})", r.len()))
        .collect();
    lines.push(format!(
        "targets: {addresses} address{} in {} range{}{}",
        if addresses == 1 { "" } else { "es" },
        ranges.len(),
        if ranges.len() == 1 { "" } else { "s" },
        if excluded.is_empty() {
            String::new()
        } else {
            format!(
                " (excluded: {})",
                excluded
                    .ranges()
                    .map(|r| r.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    ));
    lines.extend(ranges);
    // Which link each range leaves through, as the scan will group them.
    let links = crate::net::route::RouteCache::load()
        .map_err(crate::scan::ScanError::Route)
        .and_then(|mut routes| {
            crate::scan::egress_groups(
                &targets,
                args.source_ip,
                args.interface.as_deref(),
                &mut routes,
            )
        });
    match links {
        Ok(groups) => {
            lines.push(format!("links: {} (one run drives them all)", groups.len()));
            for g in &groups {
                for r in g.targets.ranges() {
                    lines.push(format!("  {r} via {}", g.describe()));
                }
            }
        }
        Err(e) => lines.push(format!("links: the scan would fail: {e}")),
    }
    // Per kind, as the scan's plan counts them (its index spaces), this
    // machine's shard only.
    let share = |n: u128| -> u128 {
        let (i, c) = (u128::from(flags.shard.index), u128::from(flags.shard.count));
        if n > i { (n - i).div_ceil(c) } else { 0 }
    };
    let mut total: u128 = 0;
    let mut per_kind = Vec::new();
    for kind in &flags.kinds {
        let (n, what) = match kind {
            ProbeKind::Syn => (
                addresses * ports.len() as u128,
                format!("syn {addresses} x {} ports ({ports})", ports.len()),
            ),
            ProbeKind::Icmp => (addresses, format!("icmp {addresses}")),
            ProbeKind::Dns => (
                addresses * flags.questions.len() as u128,
                format!("dns {addresses} x {} questions", flags.questions.len()),
            ),
        };
        let n = share(n);
        total += n;
        per_kind.push(format!("{what} = {n}"));
    }
    lines.push(format!(
        "probes: {}; {total} in all (shard {}/{})",
        per_kind.join("; "),
        flags.shard.index + 1,
        flags.shard.count
    ));
    if let Err(r) = gate.check_plan(u64::try_from(total).unwrap_or(u64::MAX)) {
        refusals.push(r);
    }
    if let Some(s) = args.source_ip
        && let Err(r) = gate.check_source(s)
    {
        refusals.push(r);
    }
    let first = total as f64 / gate.rate();
    let wait = if args.wait.is_some() {
        format!("{} s", flags.wait)
    } else {
        format!("up to {DEFAULT_WAIT} s (less once the round trips are known)")
    };
    lines.push(format!(
        "time: about {} for the first pass at {:.0} pps; at most {} more for {} retry pass{} (only unanswered probes are sent again); then {wait} for late replies; on-link targets are first asked for by ARP/NDP (up to 0.85 s)",
        duration(first),
        gate.rate(),
        duration(first * f64::from(args.retries)),
        args.retries,
        if args.retries == 1 { "" } else { "es" }
    ));
    if !args.exports().is_empty() {
        lines.push("-oX/-oG/-oL/-oJ: not written in a dry run".into());
    }
    for r in &refusals {
        lines.push(format!("refused: {r}"));
    }
    if refusals
        .iter()
        .any(|r| matches!(r, crate::scope::Refusal::Denied { .. }))
        && let Some(hint) = super::targets::exclude_hint(scope, &targets)
    {
        lines.push(hint);
    }
    lines.push(if refusals.is_empty() {
        "the scope allows every probe: `sonde scan` without --dry-run sends them".into()
    } else {
        format!(
            "{} refusal{}: the scan would send nothing (exit 3)",
            refusals.len(),
            if refusals.len() == 1 { "" } else { "s" }
        )
    });
    for l in lines {
        writeln!(out, "{l}").map_err(write_err)?;
    }
    Ok(if refusals.is_empty() {
        exit::OK
    } else {
        exit::REFUSED
    })
}

/// Seconds as people read them: `0.3 s`, `42 s`, `1 h 5 min`.
fn duration(secs: f64) -> String {
    if secs < 10.0 {
        format!("{secs:.1} s")
    } else if secs < 120.0 {
        format!("{secs:.0} s")
    } else if secs < 7200.0 {
        format!("{:.0} min", secs / 60.0)
    } else {
        format!(
            "{:.0} h {:.0} min",
            (secs / 3600.0).floor(),
            (secs % 3600.0) / 60.0
        )
    }
}

fn scan_inner(
    args: ScanArgs,
    flags: Flags,
    out: &mut dyn Write,
    log: &mut Audit,
    dir: &RunDir,
    resuming: Option<resume::Resuming>,
) -> Result<i32, Error> {
    // A resumed run's report covers the whole run, from its first start.
    let segment_started = now_rfc3339();
    let started = resuming
        .as_ref()
        .and_then(|r| r.prior["started"].as_str().map(str::to_string))
        .unwrap_or_else(now_rfc3339);
    let Flags {
        wait,
        kinds,
        questions,
        shard,
        sign_key: _,
    } = flags;
    let Prepared {
        file,
        gate,
        targets,
        excluded,
        ports,
        refusals,
    } = prepare(&args, &kinds)?;
    if let Some(r) = &resuming
        && file.sha256 != r.scope_sha256
    {
        return Err(Error::Refused(vec![crate::scope::Refusal::ScopeChanged {
            path: file.path.display().to_string(),
            was: r.scope_sha256.clone(),
            now: file.sha256.clone(),
        }]));
    }
    // The scope's budget is per run: what earlier segments sent counts.
    let gate = match &resuming {
        Some(r) => gate.with_spent(r.prior_sent()),
        None => gate,
    };
    let scope = gate.scope();
    if !refusals.is_empty() {
        if refusals
            .iter()
            .any(|r| matches!(r, crate::scope::Refusal::Denied { .. }))
            && let Some(hint) = super::targets::exclude_hint(scope, &targets)
        {
            say!("sonde: {hint}");
        }
        return Err(Error::Refused(refusals));
    }
    let config = ScanConfig {
        resume: match &resuming {
            Some(r) => Some(crate::scan::Resume {
                at: r.stop.clone(),
                answered: r.answered.clone(),
                hosts: crate::scan::hosts::HostTable::from_report(&r.prior["hosts"]).map_err(
                    |e| {
                        Error::usage(
                            format!("the run's report.json cannot be resumed from: {e}"),
                            "sonde verify DIR checks the run directory",
                        )
                    },
                )?,
            }),
            None => None,
        },
        targets: targets.clone(),
        ports: ports.clone(),
        kinds: kinds.clone(),
        dns_questions: questions.clone(),
        dns_port: 53,
        retries: args.retries,
        max_retries: args.max_retries,
        wait: Duration::from_secs_f64(wait),
        adaptive_wait: args.wait.is_none(),
        seed: args.seed.unwrap_or_else(rand::random),
        shard,
        template: ProbeTemplate::default(),
        progress: !args.quiet && std::io::IsTerminal::is_terminal(&std::io::stderr()),
        observer: Some(Arc::new(StderrObserver)),
        interface: args.interface.clone(),
        source: args.source_ip,
        record: args.record,
        keep_results: false,
        sniffer_queue: args
            .sniffer_buffer
            .unwrap_or(crate::net::packet::Sniffer::DEFAULT_QUEUE),
        senders: match args.senders {
            Some(n) => n as usize,
            // One thread paces 50,000 pps easily; above that the kernel's
            // share of each send wants every core.
            None if gate.rate() >= 50_000.0 => std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(4),
            None => 1,
        },
    };
    // The budget covers the whole first pass, and the source is this
    // host's (or a spoofed one the scope lists), or nothing is sent.
    let planned = crate::scan::planned_probes(&config).map_err(|e| Error::Runtime {
        context: "cannot plan the scan".into(),
        source: Some(Box::new(e)),
    })?;
    gate.check_plan(planned)
        .map_err(|r| Error::Refused(vec![r]))?;
    if let Some(s) = args.source_ip {
        gate.check_source(s).map_err(|r| Error::Refused(vec![r]))?;
    }
    // One scan per scope on this host at a time, held until the process
    // ends: the scope's max_rate is the host's ceiling, and two processes
    // pacing to it each would send twice it.
    let _lease = crate::evidence::lock::scope_lease(
        &file.sha256,
        &crate::evidence::lock::this_process(dir.path()),
    )
    .map_err(|e| match e {
        crate::evidence::lock::LockError::Held { holder } => {
            Error::Refused(vec![crate::scope::Refusal::CeilingInUse {
                holder: holder.map(|h| h.to_string()),
                ceiling: scope.max_rate,
            }])
        }
        e => Error::runtime("cannot take the scope's host-wide lease", e),
    })?;
    // What makes shards parts of one scan: `sonde merge` joins only runs
    // whose identities agree but for the shard.
    let identity = serde_json::json!({
        "scope_sha256": file.sha256,
        "targets": targets.ranges().map(|r| r.to_string()).collect::<Vec<_>>(),
        "ports": ports.to_string(),
        "probes": kinds,
        "dns_query": questions
            .iter()
            .map(|q| format!("{}:{}", q.name, crate::probe::qtype_name(q.qtype)))
            .collect::<Vec<_>>(),
        "retries": config.retries,
        // What the results file holds: shards that recorded different
        // results are not one scan's (issue 26).
        "record": args.record,
        "seed": config.seed,
        "shard": format!("{}/{}", shard.index + 1, shard.count),
        "index_space": crate::scan::index_space_size(&config).map_err(|e| Error::Runtime {
            context: "cannot plan the scan".into(),
            source: Some(Box::new(e)),
        })?,
    });
    audit(log, "scan_identity", identity.clone())?;
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
    audit(
        log,
        "recording",
        serde_json::json!({
            "results_ndjson": args.record,
            "excluded": excluded.ranges().map(|r| r.to_string()).collect::<Vec<_>>(),
            "report_hosts": "findings in full; closed, filtered and unreachable ports counted per host",
            "evidence": args.evidence,
            "capture_pcap": match args.evidence {
                EvidenceMode::Full => "every probe and every reply",
                EvidenceMode::Compact => "every reply; the probes are in sent.jsonl",
            },
        }),
    )?;

    // Open every output before the first packet: once the sockets are open
    // the process holds no capabilities. The report is written under a
    // temporary name and renamed when whole, so a report.json is never a
    // truncated one (under sudo the process keeps the invoker's group,
    // which may write in the run directory: privilege::drop_all).
    // A resumed run appends to the capture and the results it has.
    let (pcap, pcap_len, results_file) = if resuming.is_some() {
        let (pcap, len) = resume::append_to(dir, run_dir::PCAP)?;
        let (results, _) = resume::append_to(dir, run_dir::RESULTS)?;
        (pcap, Some(len), results)
    } else {
        (
            create_in(dir, run_dir::PCAP)?,
            None,
            create_in(dir, run_dir::RESULTS)?,
        )
    };
    let report_file = create_in(dir, run_dir::REPORT_PARTIAL)?;
    // Opened now, while the process may still give it to the sudo user;
    // removed at the end unless the scan stopped early (resume::ANSWERED).
    let mut answered_file = Some(create_in(dir, resume::ANSWERED)?);
    let sent_log = match args.evidence {
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
    let ndjson: Box<dyn Write + Send> =
        Box::new(crate::scan::ndjson::NdjsonWriter::new(results_file));

    // Ctrl-C (or SIGTERM): the first stops sending (recorded in the audit
    // log as it arrives), runs the cooldown and writes everything; a second
    // exits at once (the pcap holds whole records; no report is left).
    let stop = Arc::new(AtomicBool::new(false));
    let interrupts = Interrupts::install(stop.clone(), dir.file(run_dir::REPORT_PARTIAL))?;
    let mut recorded_interrupt = false;
    let lost: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);
    let done = AtomicBool::new(false);
    let result = std::thread::scope(|s| {
        // The watcher holds the audit log while the scan runs: a signal is
        // recorded when it arrives, and a run directory or file removed or
        // moved stops the scan within a second.
        let watcher = s.spawn(|| -> Result<(), Error> {
            crate::net::privilege::drop_in_this_thread()
                .map_err(|e| Error::runtime("cannot drop capabilities in the watcher", e))?;
            let mut tick = 0u32;
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
                tick += 1;
                if !recorded_interrupt {
                    recorded_interrupt = interrupts.record(log)?;
                }
                if tick.is_multiple_of(4)
                    && lost.lock().expect("lost lock").is_none()
                    && let Some(what) = watched.first_lost()
                {
                    stop.store(true, Ordering::Relaxed);
                    audit(log, "evidence_lost", serde_json::json!({ "what": what }))?;
                    *lost.lock().expect("lost lock") = Some(what);
                }
            }
            Ok(())
        });
        let outputs = crate::scan::ScanOutputs {
            pcap: Some(pcap),
            pcap_len,
            ndjson: Some(ndjson),
            sent_log,
        };
        let outcome = run(&config, &gate, outputs, &stop);
        done.store(true, Ordering::Relaxed);
        let watched = watcher.join().unwrap_or_else(|_| {
            Err(Error::runtime(
                "the evidence watcher failed",
                std::io::Error::other("panic"),
            ))
        });
        (outcome, watched)
    });
    let (outcome, watched_result) = result;
    if outcome.is_err() || watched_result.is_err() {
        // A run that failed writes no report and keeps no answered bits:
        // neither placeholder is left behind (the audit log says why).
        let _ = std::fs::remove_file(dir.file(run_dir::REPORT_PARTIAL));
        if answered_file.take().is_some() {
            let _ = std::fs::remove_file(dir.file(resume::ANSWERED));
        }
    }
    watched_result?;
    let outcome = outcome.map_err(|e| match e {
        crate::scan::ScanError::Refused(r) => Error::Refused(vec![r]),
        other => Error::Runtime {
            context: "scan failed".into(),
            source: Some(Box::new(other)),
        },
    })?;
    if let Some(what) = lost.into_inner().expect("lost lock") {
        return Err(Error::Runtime {
            context: format!(
                "{what} during the scan: sending stopped after {} probes; what was written is in the files that were moved, if they were",
                outcome.probes
            ),
            source: None,
        });
    }
    let finished = now_rfc3339();

    let hosts = &outcome.hosts;
    let e = &scope.engagement;

    // The run's events so far, then the files the scan wrote. An interrupt
    // the watcher did not see (it came as the scan ended) is recorded now,
    // with the time it arrived.
    if !recorded_interrupt {
        interrupts.record(log)?;
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
    let down: Vec<serde_json::Value> = [
        ("no-arp-reply", &discovery.no_arp_reply),
        ("no-nd-reply", &discovery.no_nd_reply),
    ]
    .into_iter()
    .filter(|(_, set)| !set.is_empty())
    .map(|(reason, set)| {
        serde_json::json!({
            "reason": reason,
            "count": u64::try_from(
                set.count(crate::targets::Family::V4) + set.count(crate::targets::Family::V6)
            )
            .unwrap_or(u64::MAX),
            "addresses": set.ranges().map(|r| r.to_string()).collect::<Vec<_>>(),
        })
    })
    .collect();
    let neighbour_discovery = serde_json::json!({
        "asked": discovery.asked,
        "answered": discovery.answered,
        "requests_sent": discovery.requests_sent,
        "down": down,
    });
    audit(log, "neighbour_discovery", neighbour_discovery.clone())?;
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
    let segment = resuming.as_ref().map_or(1, |r| r.segment);
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
            file_written(log, dir, resume::ANSWERED)?;
        }
        (_, f) => {
            drop(f);
            std::fs::remove_file(dir.file(resume::ANSWERED))
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
                "shard": format!("{}/{}", shard.index + 1, shard.count),
                "senders": config.senders,
                "answered": bits.as_ref().map(|_| resume::ANSWERED),
            }),
        )?;
    }
    let mut files = Vec::new();
    let mut written = vec![(run_dir::PCAP, "pcap"), (run_dir::RESULTS, "results")];
    if args.evidence == EvidenceMode::Compact {
        written.push((run_dir::SENT, "sent-probes"));
    }
    for (name, role) in written {
        let written = file_written(log, dir, name)?;
        files.push(serde_json::json!({
            "name": name, "role": role, "sha256": written.0, "size": written.1,
        }));
    }

    // The session's capture, analyzed like any other: what happened on the wire.
    let (capture_analysis, analysis_cost) = analyze_capture(dir, log)?;

    // The head is small; the hosts are streamed after it (write_report).
    let report = crate::evidence::provenance(serde_json::json!({
        "started": started,
        "finished": finished,
        "run_directory": dir.path().display().to_string(),
        "scope": {
            "path": file.path.display().to_string(),
            "absolute_path": std::fs::canonicalize(&file.path)
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| file.path.display().to_string()),
            "sha256": file.sha256,
            "engagement_id": e.id,
            "client": e.client,
            "authorized_by": e.authorized_by,
            "contact": e.contact,
            "not_before": crate::scope::gate_time(e.not_before),
            "not_after": crate::scope::gate_time(e.not_after),
            "max_rate": scope.max_rate,
        },
        "parameters": {
            "targets": targets.ranges().map(|r| r.to_string()).collect::<Vec<_>>(),
            "exclude": excluded.ranges().map(|r| r.to_string()).collect::<Vec<_>>(),
            "ports": ports.to_string(),
            "probes": kinds,
            "rate": gate.rate(),
            "retries": config.retries,
            "wait_seconds": config.wait.as_secs_f64(),
            "wait_adaptive": config.adaptive_wait,
            "seed": config.seed,
            "shard": format!("{}/{}", shard.index + 1, shard.count),
            "dns_query": questions
                .iter()
                .map(|q| format!("{}:{}", q.name, crate::probe::qtype_name(q.qtype)))
                .collect::<Vec<_>>(),
            "interface": args.interface,
            "source_ip": args.source_ip,
            "senders": config.senders,
            "record": config.record,
            "evidence": args.evidence,
            "sniffer_buffer": config.sniffer_queue,
        },
        "identity": identity,
        "interrupted": outcome.interrupted,
        "output_error": outcome.output_error,
        "planned_probes": planned,
        "max_probes": scope.max_probes,
        // Why the scope ended sending early, if it did.
        "scope_stopped": outcome.scope_stop.as_ref().map(|s| s.refusal().to_string()),
        // Results may miss replies when the kernel dropped packets or an
        // output failed; say so where the results are read.
        "possibly_incomplete": outcome.counters.kernel_drops > 0 || outcome.output_error.is_some(),
        "counters": resume::sum_with_prior(
            serde_json::to_value(outcome.counters).unwrap_or_default(),
            resuming.as_ref().map(|r| &r.prior["counters"]),
        ),
        // The rate asked for, the rate achieved, and what held it back.
        "rate": outcome.rate,
        // The scan's own ARP/NDP before the first probe: next hops asked
        // for, and the targets found down (folded into address ranges).
        "neighbour_discovery": neighbour_discovery,
        // Every link the run went through (this host's own addresses over
        // loopback), each with its targets.
        "links": outcome.links,
        // The passes sent: the retries asked for, those added because
        // passes kept finding answers (a lossy link), what each found.
        "passes": outcome.passes,
        "probes": outcome.probes + resuming.as_ref().map_or(0, |r| r.prior["probes"].as_u64().unwrap_or(0)),
        "unanswered": resume::sum_with_prior(
            serde_json::to_value(outcome.unanswered.iter().map(|(k, v)| (k.name(), *v)).collect::<std::collections::BTreeMap<_, _>>()).unwrap_or_default(),
            resuming.as_ref().map(|r| &r.prior["unanswered"]),
        ),
        // Each part of a run that was interrupted and resumed.
        "segments": resume::segments(
            resuming.as_ref().map(|r| &r.prior),
            serde_json::json!({
                "segment": segment,
                "started": segment_started,
                "finished": finished,
                "probes": outcome.probes,
                "sent": outcome.counters.sent,
                "interrupted": outcome.interrupted,
                "stopped_at": outcome.stopped_at,
            }),
        ),
        "files": files,
        // The report's anchor in the audit chain: the records written before
        // it and the hash of the last one. The record after names the
        // report's own hash.
        "audit": {
            "file": run_dir::AUDIT,
            "records": log.records(),
            "head": log.head(),
        },
        "compliance": crate::evidence::compliance::CONTROLS,
        "capture_analysis": capture_analysis,
        // What analyzing the run's own capture took (null when it failed).
        "capture_analysis_cost": analysis_cost,
    }));
    if let Err(e) = write_report(report_file, &report, hosts) {
        // Never leave a partial report; when an output failed first (a full
        // disk), that failure is the one to name.
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

    {
        let c = &outcome.counters;
        writeln!(
            out,
            "scanned {} probes ({} sent at {:.0} pps of {:.0} asked, {} replies, {} invalid, {} kernel drops) under {} ({})",
            outcome.probes,
            c.sent,
            outcome.rate.achieved,
            outcome.rate.requested,
            c.matched,
            c.invalid,
            c.kernel_drops,
            e.id,
            file.path.display()
        )
        .map_err(write_err)?;
        if let Some(r) = &resuming {
            writeln!(
                out,
                "segment {} of a resumed run: {} probes in all since {}",
                r.segment,
                outcome.probes + r.prior["probes"].as_u64().unwrap_or(0),
                started
            )
            .map_err(write_err)?;
        }
        for d in &down {
            let addresses = d["addresses"].as_array().map_or(0, Vec::len);
            let shown: Vec<&str> = d["addresses"]
                .as_array()
                .into_iter()
                .flatten()
                .take(8)
                .filter_map(|a| a.as_str())
                .collect();
            writeln!(
                out,
                "{} hosts down ({}, not probed): {}{}",
                d["count"],
                d["reason"].as_str().unwrap_or(""),
                shown.join(", "),
                if addresses > shown.len() { ", ..." } else { "" }
            )
            .map_err(write_err)?;
        }
        // Hosts with findings, one line each, and what is not shown, as
        // nmap does ("Not shown: 998 closed ports").
        let mut quiet_hosts = 0usize;
        for h in hosts {
            let open: Vec<String> = h.open_ports().map(|p| p.to_string()).collect();
            let up = h.answers_ping();
            // DNS servers that answered the scan's questions are findings
            // too (a DNS-only scan has no open ports to speak of).
            let dns: Vec<(u8, u16)> = h
                .results
                .iter()
                .filter_map(|r| match r.verdict {
                    crate::probe::Verdict::DnsAnswer { rcode, answers, .. } => {
                        Some((rcode, answers))
                    }
                    _ => None,
                })
                .collect();
            if open.is_empty() && !up && dns.is_empty() {
                quiet_hosts += 1;
                continue;
            }
            let mut parts = Vec::new();
            if config.kinds.contains(&ProbeKind::Syn) {
                parts.push(if open.is_empty() {
                    "no open ports".to_string()
                } else {
                    format!("open {}", open.join(","))
                });
            }
            if up {
                parts.push("answers ping".to_string());
            }
            if !dns.is_empty() {
                let noerror = dns.iter().filter(|(rcode, _)| *rcode == 0).count();
                parts.push(format!(
                    "answers DNS ({} of {} questions NOERROR, {} records)",
                    noerror,
                    dns.len(),
                    dns.iter().map(|(_, n)| u64::from(*n)).sum::<u64>()
                ));
            }
            let not_shown: Vec<String> = h
                .not_shown
                .iter()
                .map(|f| format!("{} {} {} ({})", f.count, f.probe, f.state, f.reason))
                .collect();
            if !not_shown.is_empty() {
                parts.push(format!("not shown: {}", not_shown.join(", ")));
            }
            writeln!(out, "{}: {}", h.address, parts.join("; ")).map_err(write_err)?;
        }
        if quiet_hosts > 0 {
            writeln!(
                out,
                "{quiet_hosts} hosts answered with closed, filtered or unreachable ports only (folded in report.json)"
            )
            .map_err(write_err)?;
        }
        writeln!(
            out,
            "evidence in {}/ (report.json sha256 {report_sha256}); check it with: sonde verify {}",
            dir.path().display(),
            dir.path().display()
        )
        .map_err(write_err)?;
    }
    if let Some(e) = &outcome.output_error {
        say!(
            "sonde: {e}: stopped sending after {} probes; what was written before is kept (the pcap up to its last whole record)",
            outcome.probes
        );
        return Ok(exit::RUNTIME);
    }
    if outcome.counters.kernel_drops > 0 {
        say!(
            "sonde: warning: the kernel dropped {} packets the sniffer could not take in time; results may be incomplete (try a lower --rate)",
            outcome.counters.kernel_drops
        );
    }
    match &outcome.scope_stop {
        Some(crate::scan::ScopeStop::WindowClosed(r)) => {
            say!(
                "sonde: stopped by the scope after {} probes: {r}; the pcap, results and report hold everything sent and received",
                outcome.probes
            );
            return Ok(exit::REFUSED);
        }
        Some(crate::scan::ScopeStop::BudgetSpent(r)) => {
            say!("sonde: note: retries stopped early: {r} (the first pass was sent whole)")
        }
        None => {}
    }
    if outcome.interrupted {
        say!(
            "sonde: interrupted: stopped sending after {} probes; the pcap, results and report hold everything sent and received",
            outcome.probes
        );
        return Ok(exit::RUNTIME);
    }
    Ok(exit::OK)
}
