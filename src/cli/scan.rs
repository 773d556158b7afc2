//! `sonde scan --scope FILE [TARGETS]...`

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use super::targets::TargetArgs;
use super::write_err;
use crate::error::{Error, exit};
use crate::evidence::EvidenceMode;
use crate::probe::DnsQuestion;
use crate::probe::cookie::MAX_DNS_QUESTIONS;
use crate::report::export::ExportFormat;
use crate::scan::hosts::RecordMode;
use crate::scan::preview::preview;
use crate::scan::request::{DEFAULT_WAIT, Prepared, ScanRequest};
use crate::scan::session::{Ended, Session, SessionOptions, SessionOutcome};
use crate::scope::ProbeKind;
use crate::targets::index::Shard;
use crate::targets::{IpSet, PortSet, SystemResolver};

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

/// Draws a scan's events on standard error: the progress line (only on a
/// terminal: `ScanConfig::progress`) and notes. A closed or full stderr
/// changes nothing: the scan and its exit code go on.
pub(super) struct StderrObserver;

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
                "\rsonde: note: pass {} found {new_answers} new answers: the link loses packets; retry pass {pass} follows\n",
                pass - 1
            ),
            ScanEvent::Note(text) => format!("\rsonde: {text}\n"),
        };
        note(&text);
    }
}

/// Write `text` to standard error; a closed or full stderr is ignored (it
/// must never change what the run does or its exit code).
pub(crate) fn note(text: &str) {
    let _ = std::io::stderr().write_all(text.as_bytes());
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

/// The run's outcome as text: totals, hosts down, a line per host with
/// findings (what is not shown, as nmap's "Not shown: 998 closed ports"),
/// where the evidence is, then why the run ended early, if it did.
fn summarize(o: &SessionOutcome, out: &mut dyn Write) -> Result<(), Error> {
    let c = &o.counters;
    writeln!(
        out,
        "scanned {} probes ({} sent at {:.0} pps of {:.0} asked, {} replies, {} invalid, {} kernel drops) under {} ({})",
        o.probes,
        c.sent,
        o.rate.achieved,
        o.rate.requested,
        c.matched,
        c.invalid,
        c.kernel_drops,
        o.engagement_id,
        o.scope_path.display()
    )
    .map_err(write_err)?;
    if let Some(r) = &o.resumed {
        writeln!(
            out,
            "segment {} of a resumed run: {} probes in all since {}",
            r.segment, r.probes_in_all, r.started
        )
        .map_err(write_err)?;
    }
    for d in &o.down {
        let shown: Vec<&str> = d.addresses.iter().take(8).map(String::as_str).collect();
        writeln!(
            out,
            "{} hosts down ({}, not probed): {}{}",
            d.count,
            d.reason,
            shown.join(", "),
            if d.addresses.len() > shown.len() {
                ", ..."
            } else {
                ""
            }
        )
        .map_err(write_err)?;
    }
    let mut quiet_hosts = 0usize;
    for h in &o.hosts {
        let open: Vec<String> = h.open_ports().map(|p| p.to_string()).collect();
        let up = h.answers_ping();
        // DNS servers that answered the scan's questions are findings too
        // (a DNS-only scan has no open ports to speak of).
        let dns: Vec<(u8, u16)> = h
            .results
            .iter()
            .filter_map(|r| match r.verdict {
                crate::probe::Verdict::DnsAnswer { rcode, answers, .. } => Some((rcode, answers)),
                _ => None,
            })
            .collect();
        if open.is_empty() && !up && dns.is_empty() {
            quiet_hosts += 1;
            continue;
        }
        let mut parts = Vec::new();
        if o.kinds.contains(&ProbeKind::Syn) {
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
        // What runs on the open ports, as nmap -sV lists it.
        for sv in &h.services {
            writeln!(out, "  {}", crate::text::visible(&service_line(sv))).map_err(write_err)?;
            for f in &sv.findings {
                let sev = match f.severity {
                    crate::results::Severity::High => "HIGH",
                    crate::results::Severity::Medium => "MEDIUM",
                    crate::results::Severity::Low => "LOW",
                };
                writeln!(out, "    {sev}: {}", crate::text::visible(&f.summary))
                    .map_err(write_err)?;
            }
        }
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
        "evidence in {}/ (report.json sha256 {}); check it with: sonde verify {}",
        o.dir.display(),
        o.report_sha256,
        o.dir.display()
    )
    .map_err(write_err)?;
    super::print_anchors(
        out,
        &o.dir,
        o.signed_by.as_deref(),
        &o.audit_head,
        o.audit_records,
    )?;
    match &o.ended {
        Ended::Complete => {}
        Ended::OutputFailed(e) => say!(
            "sonde: {e}: stopped sending after {} probes; what was written before is kept (the pcap up to its last whole record)",
            o.probes
        ),
        Ended::WindowClosed(r) => say!(
            "sonde: stopped by the scope after {} probes: {r}; the pcap, results and report hold everything sent and received",
            o.probes
        ),
        Ended::BudgetSpent(r) => {
            say!("sonde: note: retries stopped early: {r} (the first pass was sent whole)")
        }
        Ended::Interrupted => say!(
            "sonde: interrupted: stopped sending after {} probes; the pcap, results and report hold everything sent and received",
            o.probes
        ),
    }
    if c.kernel_drops > 0 && !matches!(o.ended, Ended::OutputFailed(_)) {
        say!(
            "sonde: warning: the kernel dropped {} packets the sniffer could not take in time; results may be incomplete (try a lower --rate)",
            c.kernel_drops
        );
    }
    Ok(())
}

/// `scan --dry-run`: the library's [`preview`] as text; exit 3 when the
/// scan would be refused.
fn dry_run(args: &ScanArgs, request: &ScanRequest, out: &mut dyn Write) -> Result<i32, Error> {
    let p = preview(request, args.at, &crate::net::link::KernelNetwork)?;
    let Prepared {
        file,
        gate,
        targets,
        ports,
        refusals,
    } = &p.prepared;
    let scope = gate.scope();
    let e = &scope.engagement;
    let plural = |n: usize, one: &str, many: &str| if n == 1 { one } else { many }.to_string();
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
    let ranges: Vec<String> = targets
        .ranges()
        .map(|r| format!("  {r} ({})", r.len()))
        .collect();
    let excluded: Vec<String> = request.exclude.ranges().map(|r| r.to_string()).collect();
    lines.push(format!(
        "targets: {} address{} in {} range{}{}",
        p.addresses(),
        if p.addresses() == 1 { "" } else { "es" },
        ranges.len(),
        plural(ranges.len(), "", "s"),
        if excluded.is_empty() {
            String::new()
        } else {
            format!(" (excluded: {})", excluded.join(", "))
        }
    ));
    lines.extend(ranges);
    match &p.links {
        Ok(groups) => {
            lines.push(format!("links: {} (one run drives them all)", groups.len()));
            for g in groups {
                for r in g.targets.ranges() {
                    lines.push(format!("  {r} via {}", g.describe()));
                }
            }
        }
        Err(e) => lines.push(format!("links: the scan would fail: {e}")),
    }
    let addresses = p.addresses();
    let per_kind: Vec<String> = p
        .kinds
        .iter()
        .map(|k| match (k.kind, k.probes) {
            (ProbeKind::Syn, Some(n)) => {
                format!("syn {addresses} x {} ports ({ports}) = {n}", k.per_address)
            }
            (ProbeKind::Icmp, Some(n)) => format!("icmp {addresses} = {n}"),
            (ProbeKind::Dns, Some(n)) => {
                format!("dns {addresses} x {} questions = {n}", k.per_address)
            }
            _ => format!(
                "service: one connection per open port found (at most {addresses} x {} ports)",
                k.per_address
            ),
        })
        .collect();
    lines.push(format!(
        "probes: {}; {} in all (shard {}/{})",
        per_kind.join("; "),
        p.total,
        request.shard.index + 1,
        request.shard.count
    ));
    let wait = match request.wait {
        Some(_) => format!("{} s", request.wait_seconds()),
        None => format!("up to {DEFAULT_WAIT} s (less once the round trips are known)"),
    };
    lines.push(format!(
        "time: about {} for the first pass at {:.0} pps; at most {} more for {} retry pass{} (only unanswered probes are sent again); then {wait} for late replies; on-link targets are first asked for by ARP/NDP (up to 0.85 s)",
        duration(p.first_pass_seconds),
        gate.rate(),
        duration(p.first_pass_seconds * f64::from(request.retries)),
        request.retries,
        plural(request.retries as usize, "", "es"),
    ));
    if !args.exports().is_empty() {
        lines.push("-oX/-oG/-oL/-oJ: not written in a dry run".into());
    }
    lines.extend(refusals.iter().map(|r| format!("refused: {r}")));
    lines.extend(p.exclude_hint.clone());
    lines.push(if p.allowed() {
        "the scope allows every probe: `sonde scan` without --dry-run sends them".into()
    } else {
        format!(
            "{} refusal{}: the scan would send nothing (exit 3)",
            refusals.len(),
            plural(refusals.len(), "", "s")
        )
    });
    for l in lines {
        writeln!(out, "{l}").map_err(write_err)?;
    }
    Ok(if p.allowed() { exit::OK } else { exit::REFUSED })
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

/// One service as `nmap -sV` lists it: `22/tcp ssh OpenSSH 9.2p1
/// (protocol 2.0)`, with TLS and the title when there are.
fn service_line(s: &crate::results::ServiceResult) -> String {
    let mut line = format!(
        "{}/tcp {}{}",
        s.port,
        if s.tunnel.is_some() { "ssl/" } else { "" },
        s.service.as_deref().unwrap_or("unknown")
    );
    for part in [&s.product, &s.version].into_iter().flatten() {
        line.push(' ');
        line.push_str(part);
    }
    if let Some(x) = &s.extrainfo {
        line.push_str(&format!(" ({x})"));
    }
    if let Some(t) = &s.tls {
        line.push_str(&format!("; {}", t.version));
        if let Some(c) = t.chain.first() {
            line.push_str(&format!(
                ", certificate {} ({} days left{})",
                c.subject,
                c.days_left,
                if c.self_signed { ", self-signed" } else { "" }
            ));
        }
    }
    if let Some(t) = s.http.as_ref().and_then(|h| h.title.as_ref()) {
        line.push_str(&format!("; title {t:?}"));
    }
    if s.product.is_none()
        && let Some(b) = &s.banner
    {
        line.push_str(&format!(
            "; said {:?}",
            b.chars().take(80).collect::<String>()
        ));
    }
    if let Some(e) = &s.error {
        line.push_str(&format!("; {e}"));
    }
    line
}
