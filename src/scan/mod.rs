//! The scan: permuted probes through the gate and the raw senders, replies
//! through the sniffer and the classifier, results and evidence out.
//!
//! The sending thread walks each probe kind's index space in its keyed
//! order (its shard of it), asks the gate for permits in batches (the gate
//! paces to the rate), builds each probe and hands it to the AF_PACKET
//! sender (or, for a next hop whose MAC is unknown, the raw IP sender). A
//! receiving thread, started before the first probe and stopped after the
//! cooldown, classifies every captured packet and keeps the first reply per
//! probe. Retries resend only probes without a reply. Probes and replies
//! are written to the evidence pcap (raw IP link type) as they go.

pub mod checkpoint;
pub mod correlate;
pub mod craft_send;
pub mod hosts;
pub mod links;
pub mod merge;
pub mod ndjson;
pub mod neighbours;
pub mod progress;
mod recv;
pub mod request;
mod send;
pub mod session;
pub mod state_check;
pub mod timing;
mod writer;

use std::collections::HashMap;
use std::io::Write;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::evidence::sent_log::{PlanParts, SentLogHeader, SentLogWriter};
use crate::net::link::{self, Link};
use crate::net::packet::SnifferStats;
use crate::net::route::{self, RouteError};
use crate::pcap::PcapWriter;
use crate::pcap::writer::LINKTYPE_RAW;
use crate::probe::cookie::MAX_DNS_QUESTIONS;
use crate::probe::plan::ProbePlan;
use crate::probe::{CookieKey, DnsQuestion, ProbeTemplate};
use crate::scope::{ProbeKind, Refusal, ScopeGate};
use crate::targets::index::Shard;
use crate::targets::{IpSet, PortSet};
use correlate::Correlator;

pub use crate::results::{
    CaptureTime, Counters, PassAnswers, PassReport, RateReport, ScanResult, StopPoint,
};

/// What to scan and how.
pub struct ScanConfig {
    pub targets: IpSet,
    /// Ports of SYN probes.
    pub ports: PortSet,
    pub kinds: Vec<ProbeKind>,
    /// The questions each DNS probe target is asked (1 to MAX_DNS_QUESTIONS).
    pub dns_questions: Vec<DnsQuestion>,
    pub dns_port: u16,
    pub retries: u32,
    /// The most retry passes when the link loses packets: past `retries`,
    /// a retry pass that still found answers is followed by another, up to
    /// this many in all (nmap's default is 10). `retries` 0 adds none.
    pub max_retries: u32,
    /// How long the cooldown waits for late replies after the last probe.
    pub wait: Duration,
    /// `wait` is the longest the cooldown lasts, not its length: it ends
    /// once replies have stopped for twice the reply timeout of
    /// [`timing::RttEstimator`] (at least 50 ms), as nmap's timeouts follow
    /// its round trips.
    pub adaptive_wait: bool,
    pub seed: u64,
    pub shard: Shard,
    pub template: ProbeTemplate,
    /// Send [`progress::ScanEvent::Progress`] once a second.
    pub progress: bool,
    /// Who hears the scan's events (progress, a rate shortfall, the end
    /// of sending); none: nobody.
    pub observer: Option<Arc<dyn progress::Observer>>,
    /// Send only through this interface (every target must route through it).
    pub interface: Option<String>,
    /// The source address of every probe, instead of the route's (replies
    /// must come back to it; the sniffer listens for it).
    pub source: Option<IpAddr>,
    /// Sending threads (1 or more); each takes a share of the permutation.
    pub senders: usize,
    /// The sniffer's receive queue in bytes (Sniffer::DEFAULT_QUEUE).
    pub sniffer_queue: usize,
    /// Which results the NDJSON stream records.
    pub record: hosts::RecordMode,
    /// Keep every result in memory for `ScanOutcome::results` (tests and
    /// library callers; the CLI folds per host and keeps none).
    pub keep_results: bool,
    /// Continue an interrupted scan of the same plan (same seed, shard and
    /// senders) where it stopped.
    pub resume: Option<Resume>,
    /// Where checkpoints go ([`checkpoint::Checkpoint`]): every
    /// `checkpoint_every` while sending and at every pass boundary. None:
    /// no checkpoints.
    pub checkpoints: Option<std::sync::mpsc::Sender<checkpoint::Checkpoint>>,
    pub checkpoint_every: Duration,
}

impl ScanConfig {
    /// Tell the observer, if there is one.
    fn tell(&self, event: &progress::ScanEvent) {
        if let Some(o) = &self.observer {
            o.event(event);
        }
    }
}

/// What a resumed scan takes from the segments before it.
pub struct Resume {
    pub at: StopPoint,
    /// The probes answered before: `answered.bin` as the segment before
    /// wrote it ([`correlate::AnsweredSnapshot::to_bytes`]).
    pub answered: Option<Vec<u8>>,
    /// The hosts' results so far (from the last report), folded on.
    pub hosts: hosts::HostTable,
}

/// Everything a scan produced.
pub struct ScanOutcome {
    /// Every result, sorted; empty unless `ScanConfig::keep_results`.
    pub results: Vec<ScanResult>,
    /// The results folded per host: findings in full, the rest counted.
    pub hosts: Vec<hosts::HostResults>,
    pub counters: Counters,
    pub sniffer: SnifferStats,
    /// Probes without a reply, per kind.
    pub unanswered: HashMap<ProbeKind, u64>,
    pub probes: u64,
    /// Sending stopped early on request (Ctrl-C); the outputs hold what was sent.
    pub interrupted: bool,
    /// An output could not be written (a full disk): sending stopped, and
    /// the pcap was cut back to its last whole record.
    pub output_error: Option<String>,
    /// The scope ended sending early (window closed, budget spent in retries).
    pub scope_stop: Option<ScopeStop>,
    /// What the scan's own ARP/NDP found before the first probe.
    pub neighbours: neighbours::Discovery,
    /// The links the run went through, each with its targets.
    pub links: Vec<links::LinkReport>,
    /// The passes this segment sent and what each found.
    pub passes: PassReport,
    /// The rate asked for and the rate achieved.
    pub rate: RateReport,
    /// How long the cooldown lasted (adaptive: up to `wait`).
    pub cooldown_seconds: f64,
    /// Where sending stopped when it stopped early (interrupted, or the
    /// scope): a resumed scan continues there. `None`: every pass ran.
    pub stopped_at: Option<StopPoint>,
    /// Which probes have their result, every segment's: kept for a resume
    /// when the scan stopped early.
    pub answered: Option<correlate::AnsweredSnapshot>,
}

/// Why a scan stopped.
#[derive(Debug)]
pub enum ScanError {
    Route(RouteError),
    Refused(Refusal),
    Io(&'static str, std::io::Error),
    Index(crate::targets::index::IndexError),
    /// A target's route moved to an interface the run did not open.
    RouteChanged {
        target: IpAddr,
        ifname: String,
    },
    /// DNS probes need 1 to MAX_DNS_QUESTIONS questions.
    Questions(usize),
    WrongInterface {
        target: IpAddr,
        routed: String,
        asked: String,
    },
    SourceFamily {
        source: IpAddr,
        target: IpAddr,
    },
    /// The gateway in front of the targets answered no ARP request or
    /// neighbour solicitation.
    GatewayDown {
        gateway: IpAddr,
        ifname: String,
    },
}

impl std::fmt::Display for ScanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScanError::Route(e) => write!(f, "{e}"),
            ScanError::Refused(r) => write!(f, "refused by scope: {r}"),
            ScanError::Io(what, e) => write!(f, "{what}: {e}"),
            ScanError::Index(e) => write!(f, "{e}"),
            ScanError::Questions(n) => write!(
                f,
                "{n} DNS questions: a scan asks between 1 and {MAX_DNS_QUESTIONS} per target"
            ),
            ScanError::RouteChanged { target, ifname } => write!(
                f,
                "{target} is now routed through {ifname}, which the run did not open (the routes changed during the scan): scan it again"
            ),
            ScanError::WrongInterface {
                target,
                routed,
                asked,
            } => {
                write!(
                    f,
                    "{target} is routed through {routed}, not {asked}: drop --interface or the target"
                )
            }
            ScanError::SourceFamily { source, target } => {
                write!(
                    f,
                    "--source-ip {source} cannot reach {target}: the address families differ"
                )
            }
            ScanError::GatewayDown { gateway, ifname } => write!(
                f,
                "the gateway {gateway} on {ifname} answered no ARP request or neighbour solicitation: no target behind it can be reached"
            ),
        }
    }
}

impl std::error::Error for ScanError {}

/// A probe: target, port, kind and DNS question index (0 for other kinds).
type Key = correlate::ProbeKey;

/// The pause between a pass and the retry pass after it (at most --wait),
/// before any round trip is known; after, four times the slowest one, at
/// least MIN_RETRY_PAUSE.
const RETRY_PAUSE: Duration = Duration::from_millis(250);
const MIN_RETRY_PAUSE: Duration = Duration::from_millis(20);

/// Probes whose send time is kept for `rtt_us` (later ones report none).
const MAX_TIMED_PROBES: usize = 100_000;

/// Where a probe for one target goes.
#[derive(Clone)]
enum Path {
    /// How, and from which source: a whole frame to the next hop's MAC;
    /// or on loopback, through the kernel's raw IP socket, since the
    /// kernel drops IPv4 to 127.0.0.0/8 injected below its routing (a
    /// martian destination). There is no neighbour to wait for on
    /// loopback, so that path never blocks.
    Reach { how: link::Path, source: IpAddr },
    /// The target answered no ARP request or neighbour solicitation.
    Down,
}

struct Shared {
    /// The receive side's core: which probes are answered, send times for
    /// round trips, counters. Senders consult it for retries and the first
    /// probes' send times.
    correlator: Mutex<Correlator>,
    /// The correlator keeps no more send times: senders stop offering them.
    timed_full: AtomicBool,
    /// How long a reply may take (µs; 0 before the first round trip),
    /// from the receive thread's [`timing::RttEstimator`]: the retry pause
    /// and the adaptive cooldown follow it.
    /// One per link (its receiving thread's estimate); the longest counts.
    reply_timeout_us: Vec<AtomicU64>,
    /// When the last result arrived (ns since the epoch; 0 before).
    last_result_ns: std::sync::atomic::AtomicI64,
    /// Results so far, and open ports among them, for the progress line.
    matched: AtomicU64,
    open: AtomicU64,
    /// The receive side's kernel drops so far, per link (updated twice a second).
    drops: Vec<AtomicU64>,
    /// The first pass is being sent (the rate is watched then only).
    first_pass: AtomicBool,
    /// The rate fell short of the one asked for (reported once).
    shortfall: Mutex<Option<progress::RateShortfall>>,
    stop: AtomicBool,
    /// The first output that failed (a full disk): sending stops, and the
    /// pcap is cut back to its last whole record (by the writer thread).
    output_error: Mutex<Option<String>>,
    output_failed: AtomicBool,
    /// ARP replies and neighbour advertisements, for discovery.
    answers: neighbours::Answers,
    /// The scope ended sending: the window closed or the budget ran out.
    scope_stop: Mutex<Option<ScopeStop>>,
    scope_stopped: AtomicBool,
    /// The state checkpoints copy: where the senders stand, the hosts'
    /// tables, and the lock that makes a copy a consistent cut.
    ck: checkpoint::CheckpointState,
}

/// What the scan sends: each probe kind's index space and keyed order.
fn plan(config: &ScanConfig) -> Result<ProbePlan, ScanError> {
    ProbePlan::new(
        &config.targets,
        &config.ports,
        &config.kinds,
        config.dns_questions.len(),
        config.dns_port,
        config.seed,
    )
    .map_err(ScanError::Index)
}

/// The probes of this machine's shard in the first pass: what the scan
/// plans to send, and what the scope's budget must cover before the first
/// packet. Retries resend unanswered probes from what the budget has left.
/// The size of the scan's whole index space, every shard's probes
/// together (one pass): the same on every machine of a sharded scan.
pub fn index_space_size(config: &ScanConfig) -> Result<u64, ScanError> {
    Ok(plan(config)?.kinds().iter().map(|k| k.len()).sum())
}

pub fn planned_probes(config: &ScanConfig) -> Result<u64, ScanError> {
    let shard = config.shard;
    Ok(plan(config)?
        .kinds()
        .iter()
        .map(|k| {
            let n = k.len();
            if n > shard.index {
                (n - shard.index).div_ceil(shard.count)
            } else {
                0
            }
        })
        .sum())
}

/// Why the scope ended a run before its plan was done.
#[derive(Clone, Debug, PartialEq)]
pub enum ScopeStop {
    /// The validity window closed (`not_after`) while sending.
    WindowClosed(Refusal),
    /// The budget ran out during the retry passes: the first pass was sent
    /// whole, some unanswered probes were not sent again.
    BudgetSpent(Refusal),
}

impl ScopeStop {
    pub fn refusal(&self) -> &Refusal {
        match self {
            ScopeStop::WindowClosed(r) | ScopeStop::BudgetSpent(r) => r,
        }
    }
}

/// Where a scan's evidence and results go, each optional.
#[derive(Default)]
pub struct ScanOutputs {
    /// The capture (pcap, raw IP): every probe and every reply, or with
    /// `sent_log` the replies only.
    pub pcap: Option<std::fs::File>,
    /// The pcap already holds this many bytes (a resumed scan appends to
    /// its capture; no new header).
    pub pcap_len: Option<u64>,
    /// One JSON line per result that `ScanConfig::record` asks for.
    pub ndjson: Option<Box<dyn Write + Send>>,
    /// Compact evidence: the sent probes as what regenerates them
    /// (`evidence::sent_log`), instead of a pcap record each.
    pub sent_log: Option<std::fs::File>,
    /// The files a checkpoint syncs and measures (handles to the same
    /// files as above, by name): their lengths go into each checkpoint.
    pub sync: Vec<(&'static str, std::fs::File)>,
}

/// The receive ring of one link: the link with the most targets keeps
/// the whole `queue` (`--sniffer-buffer`), the others a share by their
/// targets, at least 1 MiB (this host's own address over loopback needs
/// little; two full rings doubled a scan's memory).
fn ring_share(groups: &[links::Egress], g: &links::Egress, queue: usize) -> usize {
    let size = |g: &links::Egress| {
        g.targets.count(crate::targets::Family::V4) + g.targets.count(crate::targets::Family::V6)
    };
    let largest = groups.iter().map(size).max().unwrap_or(1).max(1);
    let mine = size(g);
    if mine >= largest {
        return queue;
    }
    let share = (queue as u128 * mine / largest).min(queue as u128) as usize;
    share.max(1 << 20).min(queue)
}

/// The targets grouped by the interface they leave through (see
/// [`links`]). With `--interface`, every group but this host's own
/// addresses (which only loopback reaches) must be that interface.
pub fn egress_groups(
    targets: &IpSet,
    source: Option<IpAddr>,
    interface: Option<&str>,
    routes: &mut route::RouteCache,
) -> Result<Vec<links::Egress>, ScanError> {
    let parts: Vec<crate::targets::AddrRange> = targets
        .ranges()
        .flat_map(|r| routes.split_at_prefixes(r))
        .collect();
    let mut cache: HashMap<u32, (String, bool)> = HashMap::new();
    let groups = links::group(
        &parts,
        |ip| routes.route(ip),
        |i| {
            if let Some(v) = cache.get(&i) {
                return Ok(v.clone());
            }
            let l = route::link(i)?;
            let v = (l.name.clone(), !l.resolves_neighbours);
            cache.insert(i, v.clone());
            Ok(v)
        },
        source,
    )
    .map_err(ScanError::Route)?;
    if let Some(asked) = interface {
        for g in &groups {
            if g.name != asked && !g.through_kernel {
                return Err(ScanError::WrongInterface {
                    target: g
                        .targets
                        .ranges()
                        .next()
                        .map_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), |r| r.first()),
                    routed: g.name.clone(),
                    asked: asked.to_string(),
                });
            }
        }
    }
    Ok(groups)
}

/// Run a scan. Every probe passes `gate`; `outputs` receive the evidence
/// and the results as they happen.
pub fn run(
    config: &ScanConfig,
    gate: &ScopeGate,
    outputs: ScanOutputs,
    stop_sending: &AtomicBool,
) -> Result<ScanOutcome, ScanError> {
    let key = CookieKey::random();
    if config.dns_questions.is_empty() || config.dns_questions.len() > MAX_DNS_QUESTIONS {
        return Err(ScanError::Questions(config.dns_questions.len()));
    }
    let plan = plan(config)?;
    let spaces: Vec<(ProbeKind, crate::targets::index::IndexSpace)> = plan
        .kinds()
        .iter()
        .map(|k| (k.kind, k.space.clone()))
        .collect();
    if let Some(s) = config.source
        && let Some(r) = config
            .targets
            .ranges()
            .find(|r| r.family() != crate::targets::Family::of(s))
    {
        return Err(ScanError::SourceFamily {
            source: s,
            target: r.first(),
        });
    }
    // The whole first pass fits the budget, or nothing is sent.
    gate.check_plan(planned_probes(config)?)
        .map_err(ScanError::Refused)?;
    if let Some(s) = config.source {
        gate.check_source(s).map_err(ScanError::Refused)?;
    }

    // Routes: one kernel question per route, not per target (RouteCache
    // explains why that is exact); no per-target state, so a /8 costs no
    // memory here. The targets are grouped by the interface they leave
    // through: this host's own addresses go over loopback, the rest over
    // their links; one run drives every group.
    let mut routes = route::RouteCache::load().map_err(ScanError::Route)?;
    let egress = egress_groups(
        &config.targets,
        config.source,
        config.interface.as_deref(),
        &mut routes,
    )?;
    let opened: Vec<u32> = egress.iter().map(|g| g.ifindex).collect();

    let path_for = |routes: &mut route::RouteCache, target: IpAddr| -> Result<Path, ScanError> {
        if let Some(s) = config.source
            && s.is_ipv4() != target.is_ipv4()
        {
            return Err(ScanError::SourceFamily { source: s, target });
        }
        let (hop_ifindex, _, route_source) = routes.next_hop(target).map_err(ScanError::Route)?;
        if !routes
            .link(hop_ifindex)
            .map_err(ScanError::Route)?
            .resolves_neighbours
        {
            return Ok(Path::Reach {
                how: link::Path::Kernel,
                source: config.source.unwrap_or(route_source),
            });
        }
        Ok(match routes.resolve(target) {
            // Policy routing can send one address of a part elsewhere than
            // the part's first: found here, before its probe.
            Ok(hop) if !opened.contains(&hop.ifindex) => {
                let name = |i| route::interface(i).map_or_else(|_| format!("if{i}"), |(n, _)| n);
                return Err(ScanError::RouteChanged {
                    target,
                    ifname: name(hop.ifindex),
                });
            }
            Ok(mut hop) => {
                hop.source = config.source.unwrap_or(hop.source);
                Path::Reach {
                    source: hop.source,
                    how: link::Path::Frame(hop),
                }
            }
            // Discovery asked for every unknown next hop before the first
            // probe: one still unknown is a target that did not answer.
            Err(RouteError::NeighbourUnknown { .. }) => Path::Down,
            Err(e) => return Err(ScanError::Route(e)),
        })
    };
    let questions: Vec<Arc<str>> = config
        .dns_questions
        .iter()
        .map(|q| Arc::from(format!("{}:{}", q.name, crate::probe::qtype_name(q.qtype))))
        .collect();
    // What a resumed scan's earlier segments had answered, for this plan.
    let prior_answered = match config.resume.as_ref().and_then(|r| r.answered.as_deref()) {
        Some(bytes) => Some(
            correlate::AnsweredSnapshot::from_bytes(bytes, &spaces).map_err(|e| {
                ScanError::Io(
                    "cannot resume",
                    std::io::Error::other(format!("answered.bin: {e}")),
                )
            })?,
        ),
        None => None,
    };
    let shared = Arc::new(Shared {
        correlator: Mutex::new(match &prior_answered {
            Some(prior) => {
                Correlator::new(key, config.targets.clone(), questions, MAX_TIMED_PROBES)
                    .with_spaces(spaces.clone())
                    .with_answered(prior)
            }
            None => Correlator::new(key, config.targets.clone(), questions, MAX_TIMED_PROBES)
                .with_spaces(spaces.clone()),
        }),
        timed_full: AtomicBool::new(false),
        reply_timeout_us: egress.iter().map(|_| AtomicU64::new(0)).collect(),
        last_result_ns: std::sync::atomic::AtomicI64::new(0),
        matched: AtomicU64::new(0),
        open: AtomicU64::new(0),
        drops: egress.iter().map(|_| AtomicU64::new(0)).collect(),
        first_pass: AtomicBool::new(false),
        shortfall: Mutex::new(None),
        stop: AtomicBool::new(false),
        output_error: Mutex::new(None),
        output_failed: AtomicBool::new(false),
        scope_stop: Mutex::new(None),
        scope_stopped: AtomicBool::new(false),
        answers: Mutex::new(Vec::new()),
        // One table per link's receiving thread: each folds its own hosts
        // (a target leaves through one link, so its replies come back on
        // it), merged at the end. A resumed scan folds on from the
        // segments before.
        ck: checkpoint::CheckpointState::new(
            config.senders.max(1),
            (0..egress.len())
                .map(|i| match (i, &config.resume) {
                    (0, Some(r)) => r.hosts.clone(),
                    _ => hosts::HostTable::new(),
                })
                .collect(),
        ),
    });

    let sinks = writer::Sinks {
        pcap: match outputs.pcap {
            Some(f) => Some(match outputs.pcap_len {
                Some(len) => PcapWriter::continuing(f, 65535, len),
                None => PcapWriter::new(f, LINKTYPE_RAW, 65535)
                    .map_err(|e| ScanError::Io("cannot write the pcap", e))?,
            }),
            None => None,
        },
        ndjson: outputs.ndjson,
        sent_log: match outputs.sent_log {
            Some(f) => {
                let header = SentLogHeader::new(
                    &PlanParts {
                        targets: &config.targets,
                        ports: &config.ports,
                        kinds: &config.kinds,
                        dns_questions: &config.dns_questions,
                        dns_port: config.dns_port,
                        seed: config.seed,
                        shard: config.shard,
                        template: config.template,
                    },
                    &key,
                );
                Some(
                    SentLogWriter::new(f, &header)
                        .map_err(|e| ScanError::Io("cannot write the sent-probe log", e))?,
                )
            }
            None => None,
        },
        key,
        open: Vec::new(),
        sync: outputs.sync,
    };

    // Every socket the scan will use, opened now: after this the process
    // needs no privilege, and gives every capability up before any thread
    // starts (threads inherit the set they are started with).
    let senders = config.senders.max(1);
    let Link {
        senders: mut sockets,
        sniffers,
    } = Link::open(
        &egress
            .iter()
            .map(|g| link::Interface {
                ifindex: g.ifindex,
                ours: g.sources.clone(),
                queue: ring_share(&egress, g, config.sniffer_queue),
            })
            .collect::<Vec<_>>(),
        senders,
        Duration::from_millis(50),
        true,
    )
    .map_err(|(what, e)| ScanError::Io(what, e))?;
    crate::net::privilege::drop_all()
        .map_err(|e| ScanError::Io("cannot drop capabilities after opening the sockets", e))?;
    let (outputs, writer) = sinks
        .start(shared.clone())
        .map_err(|e| ScanError::Io("cannot start the evidence writer", e))?;
    // One receiving thread per link, folding into its table (`shared.ck`).
    let receivers = sniffers
        .into_iter()
        .enumerate()
        .map(|(i, sniffer)| {
            let shared = shared.clone();
            let outputs = outputs.clone();
            let (record, keep_results) = (config.record, config.keep_results);
            std::thread::Builder::new()
                .name(format!("sonde-sniff-{i}"))
                .spawn(move || recv::receive(&shared, i, &outputs, sniffer, record, keep_results))
                .map_err(|e| ScanError::Io("cannot start a receiving thread", e))
        })
        .collect::<Result<Vec<_>, _>>()?;

    // Senders: one thread per share of the permutation. On a veth or a fast
    // NIC the kernel does much of the work of a send in the sending thread,
    // so more threads than one are needed to reach the machine's limit.
    let mut counters = Counters::default();
    let probes = AtomicU64::new(0);
    let probed: [AtomicU64; 3] = Default::default();
    let total: u64 = plan
        .kinds()
        .iter()
        .map(|k| k.len().div_ceil(config.shard.count))
        .sum();
    let started = Instant::now();
    let sent = AtomicU64::new(0);
    let skipped_down = AtomicU64::new(0);
    let retried = AtomicU64::new(0);
    let mut route_caches: Vec<route::RouteCache> = (1..senders)
        .map(|_| route::RouteCache::load().map_err(ScanError::Route))
        .collect::<Result<_, _>>()?;
    route_caches.insert(0, routes);
    let mut discovery = neighbours::Discovery::default();
    let discovery_started = Instant::now();
    let mut discovery_seconds = 0.0;
    let sending_seconds = Mutex::new(0.0f64);
    let first_pass_seconds = Mutex::new(0.0f64);
    let stopped_at: Mutex<Option<StopPoint>> = Mutex::new(None);
    // (pass, results that came while it was sent and in the pause after it)
    let answers_per_pass: Mutex<Vec<(u32, u64)>> = Mutex::new(Vec::new());
    let last_sent_ns = std::sync::atomic::AtomicI64::new(0);
    let outcome: Result<(), ScanError> = (|| {
        // The MAC of every next hop the kernel does not know, asked for by
        // sonde itself before the first probe; every sending thread's
        // routes learn the answers.
        discovery = neighbours::discover(
            &config.targets,
            &mut route_caches[0],
            gate,
            &mut sockets[0],
            &shared.answers,
            stop_sending,
            config.source,
        )?;
        discovery_seconds = discovery_started.elapsed().as_secs_f64();
        for routes in &mut route_caches[1..] {
            for &(ifindex, ip, mac) in &discovery.learned {
                routes.learn(ifindex, ip, mac);
            }
        }
        let sending_started = Instant::now();
        let watch_done = AtomicBool::new(false);
        let links_report: Vec<links::LinkReport> =
            egress.iter().map(links::LinkReport::from).collect();
        // A checkpoint (when the caller takes them): a consistent cut of
        // the state, the writer's marker behind the evidence it covers.
        let take_checkpoint = || {
            let Some(tx) = &config.checkpoints else {
                return;
            };
            shared.ck.take(
                || {
                    let answered = shared
                        .correlator
                        .lock()
                        .expect("correlator lock")
                        .answered_snapshot()
                        .to_bytes();
                    (
                        probes.load(Ordering::Relaxed),
                        retried.load(Ordering::Relaxed),
                        shared.matched.load(Ordering::Relaxed),
                        answered,
                        outputs.checkpoint_marker(),
                    )
                },
                |marker| marker?.recv().ok(),
                |mut c| {
                    c.links = links_report.clone();
                    let _ = tx.send(c);
                },
            );
        };
        let sent_all = std::thread::scope(|sc| {
            // Checkpoints every `checkpoint_every` while sending, and never
            // closer than 20 times what the last one took: a /8's answered
            // bits are 100 MB to copy and sync, and checkpoints must stay a
            // small part of the run (about 5% of one thread at most).
            if config.checkpoints.is_some() {
                sc.spawn(|| {
                    let _ = crate::net::privilege::drop_in_this_thread();
                    let mut last = Instant::now();
                    let mut every = config.checkpoint_every;
                    while !watch_done.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(20));
                        if last.elapsed() >= every {
                            let took = Instant::now();
                            take_checkpoint();
                            every = config.checkpoint_every.max(took.elapsed() * 20);
                            last = Instant::now();
                        }
                    }
                });
            }
            // Rate honesty: a thread watching the first pass's rate.
            sc.spawn(|| {
                let _ = crate::net::privilege::drop_in_this_thread();
                let mut watch = progress::RateWatch::new(gate.rate());
                while !watch_done.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(100));
                    if !shared.first_pass.load(Ordering::Relaxed) {
                        continue;
                    }
                    let sample = progress::Sample {
                        at: sending_started.elapsed().as_nanos() as i64,
                        sent: probes.load(Ordering::Relaxed),
                        paced_ns: gate.paced_nanos(),
                        drops: shared.drops(),
                    };
                    if let Some(short) = watch.sample(sample) {
                        config.tell(&progress::ScanEvent::RateShortfall(short.clone()));
                        *shared.shortfall.lock().expect("shortfall lock") = Some(short);
                    }
                }
            });
            let sent_all = (|| -> Result<(), ScanError> {
                let resume_at = config.resume.as_ref().map(|r| &r.at);
                let first = resume_at.map_or(0, |at| at.pass);
                // Passes follow the loss: after the --retries asked for, a
                // retry pass that still found answers shows a link losing
                // packets, and one more follows (up to max_retries, within
                // the budget) until a pass finds nothing new.
                let last_possible = config.max_retries.max(config.retries);
                let mut pass = first;
                'passes: loop {
                    let matched_before = shared.matched.load(Ordering::Relaxed);
                    shared.first_pass.store(pass == 0, Ordering::Relaxed);
                    // A retry pass skips what was answered before it began.
                    let answered = (pass > 0).then(|| {
                        shared
                            .correlator
                            .lock()
                            .expect("correlator lock")
                            .answered_snapshot()
                    });
                    for (kind_index, kind_plan) in plan.kinds().iter().enumerate() {
                        // A resumed scan starts at its stop point.
                        let starts: Vec<Option<u64>> = match resume_at {
                            Some(at) if pass == at.pass && kind_index < at.kind => continue,
                            Some(at) if pass == at.pass && kind_index == at.kind => at.next.clone(),
                            _ => vec![Some(0); senders],
                        };
                        {
                            let _cut = shared.ck.cut.read();
                            shared.ck.live.begin(pass, kind_index, &starts);
                        }
                        let results: Vec<Result<Option<u64>, ScanError>> =
                            std::thread::scope(|scope| {
                                let handles: Vec<_> = route_caches
                                    .iter_mut()
                                    .zip(sockets.iter_mut())
                                    .enumerate()
                                    .map(|(t, (routes, link))| {
                                        // Thread t of T takes every T-th position of this
                                        // machine's shard: a finer shard of the same permutation.
                                        let share = Shard {
                                            index: config.shard.index
                                                + config.shard.count * t as u64,
                                            count: config.shard.count * senders as u64,
                                        };
                                        let worker = send::Worker {
                                            thread: t,
                                            config,
                                            gate,
                                            key: &key,
                                            shared: &shared,
                                            outputs: &outputs,
                                            path_for: &path_for,
                                            stop_sending,
                                            probes: &probes,
                                            probed: &probed,
                                            sent: &sent,
                                            skipped_down: &skipped_down,
                                            retried: &retried,
                                            progress: (config.progress && t == 0)
                                                .then_some((started, total)),
                                        };
                                        let answered = answered.as_ref();
                                        let from = starts.get(t).copied().flatten();
                                        std::thread::Builder::new()
                                            .name(format!("sonde-send-{t}"))
                                            .spawn_scoped(scope, move || {
                                                worker.send(
                                                    routes,
                                                    link,
                                                    send::Job {
                                                        plan: kind_plan,
                                                        share,
                                                        pass,
                                                        answered,
                                                        from,
                                                    },
                                                )
                                            })
                                    })
                                    .collect();
                                handles
                                    .into_iter()
                                    .map(|h| match h {
                                        Ok(h) => h.join().unwrap_or_else(|_| {
                                            Err(ScanError::Io(
                                                "a sending thread failed",
                                                std::io::Error::other("panic"),
                                            ))
                                        }),
                                        Err(e) => {
                                            Err(ScanError::Io("cannot start a sending thread", e))
                                        }
                                    })
                                    .collect()
                            });
                        let mut next = Vec::with_capacity(results.len());
                        for r in results {
                            next.push(r?);
                        }
                        if stop_sending.load(Ordering::Relaxed)
                            || shared.output_failed.load(Ordering::Relaxed)
                            || shared.scope_stopped.load(Ordering::Relaxed)
                        {
                            *stopped_at.lock().expect("stop point lock") = Some(StopPoint {
                                pass,
                                kind: kind_index,
                                next,
                            });
                            break 'passes;
                        }
                    }
                    if pass == 0 {
                        *first_pass_seconds.lock().expect("first pass lock") =
                            sending_started.elapsed().as_secs_f64();
                    }
                    // When this pass's last probe left: the cooldown's quiet is
                    // counted from it, not from after the pause below (which
                    // already waited for its replies).
                    last_sent_ns.store(crate::clock::now_nanos(), Ordering::Relaxed);
                    // The pass's probes reach the disk before its replies are waited for.
                    outputs.flush();
                    if shared.output_failed.load(Ordering::Relaxed) {
                        break 'passes;
                    }
                    // A pass boundary is a checkpoint: the pass whole, no
                    // kind of it left.
                    {
                        let _cut = shared.ck.cut.read();
                        shared
                            .ck
                            .live
                            .begin(pass, plan.kinds().len(), &vec![None; senders]);
                    }
                    take_checkpoint();
                    // Give replies to this pass's last probes time before deciding
                    // what to retry: a quarter second covers any LAN and most
                    // routed round trips; a later reply still counts, its probe is
                    // merely sent twice. (In slices: a Ctrl-C stops the scan, not
                    // the nap.)
                    let may_follow =
                        pass < config.retries || (config.retries > 0 && pass < last_possible);
                    if may_follow {
                        // The reply timeout the round trips show (at least
                        // MIN_RETRY_PAUSE), once replies have shown it.
                        let pause = match shared.reply_timeout_us() {
                            0 => RETRY_PAUSE,
                            us => Duration::from_micros(us).clamp(MIN_RETRY_PAUSE, RETRY_PAUSE),
                        };
                        let until = Instant::now() + config.wait.min(pause);
                        while Instant::now() < until && !stop_sending.load(Ordering::Relaxed) {
                            std::thread::sleep(
                                crate::scope::MAX_WAIT
                                    .min(until.saturating_duration_since(Instant::now())),
                            );
                        }
                    }
                    let found = shared
                        .matched
                        .load(Ordering::Relaxed)
                        .saturating_sub(matched_before);
                    answers_per_pass
                        .lock()
                        .expect("passes lock")
                        .push((pass, found));
                    let next = pass < config.retries || (may_follow && pass > 0 && found > 0);
                    if !next || stop_sending.load(Ordering::Relaxed) {
                        break 'passes;
                    }
                    pass += 1;
                    if pass > config.retries {
                        config.tell(&progress::ScanEvent::PassAdded {
                            pass,
                            new_answers: found,
                        });
                    }
                }
                Ok(())
            })();
            watch_done.store(true, Ordering::Relaxed);
            sent_all
        });
        *sending_seconds.lock().expect("sending lock") = sending_started.elapsed().as_secs_f64();
        sent_all
    })();
    let probes = probes.load(Ordering::Relaxed);
    let probed: HashMap<ProbeKind, u64> = [ProbeKind::Syn, ProbeKind::Icmp, ProbeKind::Dns]
        .into_iter()
        .map(|k| (k, probed[k as usize].load(Ordering::Relaxed)))
        .collect();
    if config.progress {
        config.tell(&progress::ScanEvent::SendingDone {
            probes,
            wait_seconds: config.wait.as_secs_f64(),
        });
    }
    // Cooldown for late replies, then stop the receiver: also after an error,
    // so whatever was captured is kept. It ends early when every probe sent
    // has its result: nothing is outstanding, only duplicates could come.
    let cooldown_started = Instant::now();
    if outcome.is_ok() && !shared.output_failed.load(Ordering::Relaxed) {
        let until = Instant::now() + config.wait;
        // Quiet is counted from the last probe (a pass's pause has waited
        // for its replies already), or from now if none was sent.
        let sent_end = match last_sent_ns.load(Ordering::Relaxed) {
            0 => crate::clock::now_nanos(),
            t => t,
        };
        while Instant::now() < until && shared.matched.load(Ordering::Relaxed) < probes {
            if config.adaptive_wait && quiet_long_enough(&shared, sent_end, config.wait) {
                break;
            }
            std::thread::sleep(
                Duration::from_millis(10).min(until.saturating_duration_since(Instant::now())),
            );
        }
    }
    let cooldown_seconds = cooldown_started.elapsed().as_secs_f64();
    shared.stop.store(true, Ordering::Relaxed);
    let mut sniffer_stats = SnifferStats::default();
    let mut results = Vec::new();
    let mut hosts = hosts::HostTable::new();
    for r in receivers {
        let (stats, r) = r.join().unwrap_or_default();
        sniffer_stats.received += stats.received;
        sniffer_stats.dropped += stats.dropped;
        results.extend(r);
    }
    for table in &shared.ck.hosts {
        if let Ok(mut t) = table.lock() {
            hosts.absorb(std::mem::take(&mut *t));
        }
    }
    // The last handle gone, the writer empties its queue, flushes, reveals
    // the key of a compact run's sent-probe log, and ends.
    drop(outputs);
    if writer.join().is_err() {
        shared.check_output(
            "the evidence",
            Err(std::io::Error::other("the writer thread failed")),
        );
    }
    outcome?;
    let output_error = shared.output_error.lock().expect("error lock").take();

    counters.sent = sent.load(Ordering::Relaxed);
    counters.skipped_down = skipped_down.load(Ordering::Relaxed);
    counters.retried = retried.load(Ordering::Relaxed);
    let received = shared
        .correlator
        .lock()
        .expect("correlator lock")
        .counters();
    counters.received = received.received;
    counters.matched = received.matched;
    counters.invalid = received.invalid;
    counters.duplicates = received.duplicates;
    counters.kernel_drops = sniffer_stats.dropped;
    results.sort_unstable_by(|a, b| {
        (a.target, a.port, a.probe, &a.question).cmp(&(b.target, b.port, b.probe, &b.question))
    });
    let mut unanswered = HashMap::new();
    for (kind, _) in &spaces {
        // This segment's: the earlier segments' answers came folded in.
        let answered = hosts.answered(*kind).saturating_sub(
            config
                .resume
                .as_ref()
                .map_or(0, |r| r.hosts.answered(*kind)),
        );
        unanswered.insert(
            *kind,
            probed
                .get(kind)
                .copied()
                .unwrap_or(0)
                .saturating_sub(answered),
        );
    }
    let interrupted = stop_sending.load(Ordering::Relaxed);
    let scope_stop = shared.scope_stop.lock().expect("scope stop lock").take();
    let sending_seconds = sending_seconds.into_inner().expect("sending lock");
    // The first pass's time; a pass stopped early (Ctrl-C) has none of its
    // own: the sending time so far (an interrupted run said "0 pps").
    let first_pass = match first_pass_seconds.into_inner().expect("first pass lock") {
        t if t > 0.0 => t,
        _ => sending_seconds,
    };
    let rate = RateReport {
        requested: gate.rate(),
        achieved: achieved_rate(probes, first_pass, gate.rate()),
        sending_seconds,
        discovery_seconds,
        shortfall: shared.shortfall.lock().expect("shortfall lock").take(),
    };
    let stopped_at = stopped_at.into_inner().expect("stop point lock");
    let answered = stopped_at.as_ref().map(|_| {
        shared
            .correlator
            .lock()
            .expect("correlator lock")
            .answered_snapshot()
    });
    Ok(ScanOutcome {
        stopped_at,
        answered,
        cooldown_seconds,
        hosts: hosts.into_hosts(),
        rate,
        scope_stop,
        neighbours: discovery,
        links: egress.iter().map(links::LinkReport::from).collect(),
        passes: PassReport::new(
            config.retries,
            config.max_retries,
            answers_per_pass.into_inner().expect("passes lock"),
        ),
        results,
        counters,
        sniffer: sniffer_stats,
        unanswered,
        probes,
        interrupted,
        output_error,
    })
}

/// Probes per second of the first pass, measured over at least the time
/// the requested rate takes for them: a scan no larger than the gate's
/// burst (about 10 ms of traffic) leaves in one burst, and its few
/// milliseconds are no rate (200 probes at --rate 20000 said "98071 pps of
/// 20000", as if the ceiling had been broken; over any second it was not).
fn achieved_rate(probes: u64, seconds: f64, requested: f64) -> f64 {
    if probes == 0 || seconds <= 0.0 {
        return 0.0;
    }
    let paced = if requested > 0.0 {
        probes as f64 / requested
    } else {
        0.0
    };
    probes as f64 / seconds.max(paced)
}

/// The adaptive cooldown's test: no result for twice the reply timeout
/// (see [`timing`]; at least [`MIN_QUIET`], at most `wait`) since the last
/// probe or the last result, whichever is later. Before any round trip is
/// known, never (the full `wait`).
fn quiet_long_enough(shared: &Shared, sent_end: i64, wait: Duration) -> bool {
    let timeout_us = shared.reply_timeout_us();
    if timeout_us == 0 {
        return false;
    }
    let quiet = (Duration::from_micros(timeout_us) * 2).clamp(MIN_QUIET, wait.max(MIN_QUIET));
    let last = sent_end.max(shared.last_result_ns.load(Ordering::Relaxed));
    crate::clock::now_nanos().saturating_sub(last) >= quiet.as_nanos() as i64
}

/// The shortest quiet that ends an adaptive cooldown (nmap -T5's shortest
/// reply timeout).
const MIN_QUIET: Duration = Duration::from_millis(50);

impl Shared {
    /// How long a reply may take (µs; 0 before the first round trip): the
    /// slowest link's estimate.
    fn reply_timeout_us(&self) -> u64 {
        self.reply_timeout_us
            .iter()
            .map(|t| t.load(Ordering::Relaxed))
            .max()
            .unwrap_or(0)
    }

    /// The kernel's drops so far on every link.
    fn drops(&self) -> u64 {
        self.drops.iter().map(|d| d.load(Ordering::Relaxed)).sum()
    }

    /// Whether an output failed (sending stops).
    fn output_failed(&self) -> bool {
        self.output_failed.load(Ordering::Relaxed)
    }

    /// Note a failed output write: the first failure is kept and stops the
    /// scan (the evidence must not silently miss what was sent).
    fn check_output(&self, what: &str, r: std::io::Result<()>) {
        if let Err(e) = r {
            let mut first = self.output_error.lock().expect("error lock");
            if first.is_none() {
                *first = Some(format!("cannot write {what}: {e}"));
            }
            self.output_failed.store(true, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(first: &str, last: &str) -> links::Egress {
        links::Egress {
            ifindex: 1,
            name: "x".into(),
            through_kernel: false,
            targets: [crate::targets::AddrRange::new(
                first.parse().unwrap(),
                last.parse().unwrap(),
            )
            .unwrap()]
            .into_iter()
            .collect(),
            sources: Vec::new(),
            gateways: Default::default(),
            on_link: true,
        }
    }

    /// Regression (issue 26): 200 probes at --rate 20000 left in one burst
    /// and the summary said "98071 pps of 20000"; an interrupted first pass
    /// said "0 pps".
    #[test]
    fn the_achieved_rate_is_never_a_bursts_and_never_zero_for_sent_probes() {
        assert_eq!(achieved_rate(200, 0.00204, 20_000.0), 20_000.0);
        assert!((achieved_rate(100_000, 2.0, 100_000.0) - 50_000.0).abs() < 1e-6);
        assert!((achieved_rate(300, 3.0, 100.0) - 100.0).abs() < 1e-6);
        assert_eq!(achieved_rate(0, 1.0, 100.0), 0.0);
        assert!(achieved_rate(5_000, 1.5, 10_000.0) > 0.0);
    }

    /// Regression (issue 25's own-subnet scan): every link had a full
    /// ring, and the scanner's own address over loopback doubled the
    /// scan's memory (146 MB against 78).
    #[test]
    fn the_link_with_most_targets_keeps_the_whole_ring_the_others_a_share() {
        let lan = group("198.18.0.0", "198.18.255.255");
        let own = group("198.18.0.1", "198.18.0.1");
        let half = group("10.0.0.0", "10.0.127.255");
        let groups = [lan.clone(), own.clone(), half.clone()];
        let q = 64 << 20;
        assert_eq!(ring_share(&groups, &lan, q), q);
        assert_eq!(ring_share(&groups, &own, q), 1 << 20);
        assert_eq!(ring_share(&groups, &half, q), q / 2);
        // One link: the whole ring, whatever its size.
        assert_eq!(ring_share(std::slice::from_ref(&own), &own, q), q);
    }
}
