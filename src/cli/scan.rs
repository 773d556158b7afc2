//! `sonde scan --scope FILE [TARGETS]...`

mod text;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use super::targets::TargetArgs;
use crate::error::{Error, exit};
use crate::evidence::EvidenceMode;
use crate::probe::DnsQuestion;
use crate::probe::cookie::MAX_DNS_QUESTIONS;
use crate::report::export::ExportFormat;
use crate::scan::hosts::RecordMode;
use crate::scan::request::ScanRequest;
use crate::scan::session::{Session, SessionOptions};
use crate::scope::ProbeKind;
use crate::targets::index::Shard;
use crate::targets::{IpSet, PortSet, SystemResolver};
pub(super) use text::StderrObserver;
use text::{dry_run, summarize};

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// The scope file that authorizes this scan (TOML, see docs/scope-format.md).
    #[arg(long, value_name = "FILE", required_unless_present = "resume")]
    pub scope: Option<PathBuf>,

    #[command(flatten)]
    pub targets: TargetArgs,

    /// Probe kinds, comma-separated: syn, icmp, dns, service (service:
    /// one connection to each open port the SYN probes find, naming what
    /// runs there).
    #[arg(long = "probe", value_name = "KINDS", default_value = "syn")]
    pub probe: String,

    /// Name the service and version on every open port (nmap's -sV): adds
    /// syn and service to --probe.
    #[arg(long = "service-version")]
    pub service_version: bool,

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
    /// How often, in seconds, a running scan makes its evidence durable
    /// (capture and results synced and hashed, its state saved, a
    /// `scan_checkpoint` audit record): a run killed outright verifies up
    /// to its last checkpoint and resumes from it (default 5; at least 0.1).
    #[arg(long = "checkpoint-every", value_name = "SECS")]
    pub checkpoint_every: Option<f64>,

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
            "record", "evidence", "source_ip", "dry_run", "at", "service_version",
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

/// `sonde scan`: flags to a request, the session runs it, its outcome to
/// text and an exit code.
pub fn run_scan(args: ScanArgs, stdout: &mut dyn Write) -> Result<i32, Error> {
    let exports: Vec<(ExportFormat, PathBuf)> = args
        .exports()
        .into_iter()
        .map(|(f, p)| (f, p.to_path_buf()))
        .collect();
    check_exports(&args)?;
    let options = SessionOptions {
        output_dir: args.output_dir.clone(),
        // Read before anything is sent or created.
        sign_key: args.sign_key.as_deref().map(load_sign_key).transpose()?,
        observer: Arc::new(StderrObserver),
        progress: !args.quiet && std::io::IsTerminal::is_terminal(&std::io::stderr()),
        signals: true,
        checkpoint_every: match args.checkpoint_every {
            Some(s) => Duration::from_secs_f64(super::seconds(
                "--checkpoint-every",
                s,
                "e.g. --checkpoint-every 5",
            )?)
            .max(Duration::from_millis(100)),
            None => crate::scan::session::CHECKPOINT_EVERY,
        },
        ..SessionOptions::new(Arc::new(StderrObserver))
    };
    let session = match &args.resume {
        Some(dir) => Session::resume(dir, options)?,
        None => {
            // A typo is an input error (exit 2) that leaves nothing behind.
            let request = request(&args)?;
            if args.dry_run {
                return dry_run(&args, &request, stdout);
            }
            Session::create(request, options)?
        }
    };
    // With an export on standard output, the summary goes to standard error.
    let mut stderr = crate::text::VisibleWriter(crate::text::PipeTolerant::new(std::io::stderr()));
    let out: &mut dyn Write = if args.exports_to_stdout() {
        &mut stderr
    } else {
        &mut *stdout
    };
    let outcome = session.run()?;
    summarize(&outcome, out)?;
    // Views of the finished run directory, which stays the evidence.
    if outcome.dir.join(crate::evidence::run_dir::REPORT).exists() {
        for (format, path) in &exports {
            let code = super::report::run_export(&outcome.dir, *format, Some(path), stdout)?;
            debug_assert_eq!(code, exit::OK);
        }
    }
    Ok(outcome.exit_code())
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

/// Two exports to one file would overwrite each other.
fn check_exports(args: &ScanArgs) -> Result<(), Error> {
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
    Ok(())
}

/// The flags as a [`ScanRequest`]: every flag checked, the targets read
/// (lists, names resolved) and the exclusions, before anything is created.
fn request(args: &ScanArgs) -> Result<ScanRequest, Error> {
    let scope = args
        .scope
        .clone()
        .ok_or_else(|| Error::usage("no scope file", "--scope FILE names the authorization"))?;
    let wait = args
        .wait
        .map(|w| super::seconds("--wait", w, "e.g. --wait 2"))
        .transpose()?;
    let mut probes: Vec<ProbeKind> = args
        .probe
        .split(',')
        .map(|k| {
            k.parse()
                .map_err(|m: String| Error::usage(m, "--probe syn,icmp,dns,service"))
        })
        .collect::<Result<_, _>>()?;
    if args.service_version {
        for k in [ProbeKind::Syn, ProbeKind::Service] {
            if !probes.contains(&k) {
                probes.push(k);
            }
        }
    }
    let mut dns_questions = Vec::new();
    for q in &args.dns_query {
        dns_questions.push(DnsQuestion::parse(q).map_err(|m| {
            Error::usage(
                format!("--dns-query: {m}"),
                "e.g. --dns-query www.example.com:AAAA",
            )
        })?);
    }
    if dns_questions.len() > MAX_DNS_QUESTIONS {
        return Err(Error::usage(
            format!(
                "{} --dns-query questions; a scan asks at most {MAX_DNS_QUESTIONS}",
                dns_questions.len()
            ),
            "split the questions over several scans",
        ));
    }
    let shard = match &args.shard {
        Some(s) => Shard::parse(s)
            .map_err(|m| Error::usage(m, "--shard 1/4 scans the first of four shares"))?,
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
    // Targets as given (none given at all: what the scope allows), their
    // TARGET:PORT ports added to the port list (ports apply to every
    // target, as with -p).
    let given = args.targets.resolve(&SystemResolver, true)?;
    let mut named_ports = PortSet::new();
    for t in &given {
        if let Some(p) = t.port {
            named_ports.insert(p, p);
        }
    }
    let targets: Option<IpSet> = if given.is_empty() && !args.targets.has_source() {
        None
    } else {
        // An IPv4-mapped IPv6 target is scanned (and judged) as the IPv4
        // address it stands for.
        Some(
            given
                .iter()
                .flat_map(|t| t.target.range.canonical_parts())
                .collect(),
        )
    };
    let ports = match args.targets.port_set()? {
        Some(mut p) => {
            p.union_with(&named_ports);
            Some(p)
        }
        None if !named_ports.is_empty() => Some(named_ports),
        None => None,
    };
    let mut request = ScanRequest::new(scope, targets);
    request.exclude = args.targets.excluded(&SystemResolver)?;
    request.ports = ports;
    request.probes = probes;
    if !dns_questions.is_empty() {
        request.dns_questions = dns_questions;
    }
    request.rate = args.rate;
    request.retries = args.retries;
    request.max_retries = args.max_retries;
    request.wait = wait;
    request.seed = args.seed;
    request.shard = shard;
    request.interface = args.interface.clone();
    request.source_ip = args.source_ip;
    request.senders = args.senders.map(|n| n as usize);
    request.sniffer_buffer = args.sniffer_buffer;
    request.record = args.record;
    request.evidence = args.evidence;
    request.check()?;
    Ok(request)
}
