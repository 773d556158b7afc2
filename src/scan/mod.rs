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
mod cooldown;
pub mod correlate;
pub mod craft_send;
pub mod hosts;
pub mod links;
mod live;
pub mod merge;
mod monitor;
pub mod ndjson;
pub mod neighbours;
mod passes;
pub mod preview;
pub mod progress;
mod recv;
pub mod request;
mod send;
pub mod session;
#[cfg(test)]
pub(crate) mod simnet;
pub mod state_check;
pub mod timing;
mod writer;

use std::collections::HashMap;
use std::io::Write;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::evidence::sent_log::{PlanParts, SentLogHeader, SentLogWriter};
use crate::net::link;
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

/// Probes whose send time is kept for `rtt_us` (later ones report none).
const MAX_TIMED_PROBES: usize = 100_000;

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
    // Both questions go to the one cache (the kernel's, or a fixed table).
    let routes = std::cell::RefCell::new(routes);
    let groups = links::group(
        &parts,
        |ip| routes.borrow_mut().route(ip),
        |i| {
            let mut r = routes.borrow_mut();
            let l = r.link(i)?;
            Ok((l.name.clone(), !l.resolves_neighbours))
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

/// Run a scan over the kernel's routes and sockets. Every probe passes
/// `gate`; `outputs` receive the evidence and the results as they happen.
pub fn run(
    config: &ScanConfig,
    gate: &ScopeGate,
    outputs: ScanOutputs,
    stop_sending: &AtomicBool,
) -> Result<ScanOutcome, ScanError> {
    run_on(config, gate, outputs, stop_sending, &link::KernelNetwork)
}

/// Run a scan over `network`: the kernel's ([`run`]), or a simulated one
/// (the engine's tests without root).
pub fn run_on(
    config: &ScanConfig,
    gate: &ScopeGate,
    outputs: ScanOutputs,
    stop_sending: &AtomicBool,
    network: &dyn link::Network,
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
    let mut routes = network.routes().map_err(ScanError::Route)?;
    let egress = egress_groups(
        &config.targets,
        config.source,
        config.interface.as_deref(),
        &mut routes,
    )?;
    let paths = send::Paths {
        source: config.source,
        opened: egress.iter().map(|g| g.ifindex).collect(),
    };
    let links_report: Vec<links::LinkReport> = egress.iter().map(links::LinkReport::from).collect();
    // Which probes are answered: one copy for every link, with what a
    // resumed scan's earlier segments had answered, for this plan.
    let answered = Arc::new(correlate::AnsweredBits::for_spaces(spaces.clone()));
    if let Some(bytes) = config.resume.as_ref().and_then(|r| r.answered.as_deref()) {
        let prior = correlate::AnsweredSnapshot::from_bytes(bytes, &spaces).map_err(|e| {
            ScanError::Io(
                "cannot resume",
                std::io::Error::other(format!("answered.bin: {e}")),
            )
        })?;
        answered.absorb(&prior);
    }
    let live = Arc::new(live::Live {
        signals: live::Signals::default(),
        gauges: live::Gauges::new(egress.len()),
        answered: answered.clone(),
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
    let sinks = sinks(config, outputs, key)?;

    // Every socket the scan will use, opened now: after this the process
    // needs no privilege, and gives every capability up before any thread
    // starts (threads inherit the set they are started with).
    let senders = config.senders.max(1);
    let (mut sockets, sniffers) = network
        .open(
            &egress
                .iter()
                .map(|g| link::Interface {
                    ifindex: g.ifindex,
                    ours: g.sources.clone(),
                    queue: ring_share(&egress, g, config.sniffer_queue),
                })
                .collect::<Vec<_>>(),
            senders,
        )
        .map_err(|(what, e)| ScanError::Io(what, e))?;
    network
        .drop_privileges()
        .map_err(|e| ScanError::Io("cannot drop capabilities after opening the sockets", e))?;
    let (outputs, writer) = sinks
        .start(live.clone())
        .map_err(|e| ScanError::Io("cannot start the evidence writer", e))?;

    // One receiving thread per link, each with its own correlator (the
    // answered bits shared) and the channels the senders and discovery
    // talk to it on.
    let questions: Vec<Arc<str>> = config
        .dns_questions
        .iter()
        .map(|q| Arc::from(format!("{}:{}", q.name, crate::probe::qtype_name(q.qtype))))
        .collect();
    let (neighbours_tx, neighbours_rx) = mpsc::channel();
    let mut send_times = Vec::with_capacity(sniffers.len());
    let receivers = sniffers
        .into_iter()
        .enumerate()
        .map(|(i, sniffer)| {
            let (times_tx, times_rx) = mpsc::channel();
            send_times.push(times_tx);
            let receiver = recv::LinkReceiver {
                link: i,
                sniffer,
                correlator: Correlator::new(
                    key,
                    config.targets.clone(),
                    questions.clone(),
                    MAX_TIMED_PROBES,
                )
                .sharing(answered.clone()),
                send_times: times_rx,
                neighbours: neighbours_tx.clone(),
                record: config.record,
                keep_results: config.keep_results,
            };
            let (live, outputs) = (live.clone(), outputs.clone());
            std::thread::Builder::new()
                .name(format!("sonde-sniff-{i}"))
                .spawn(move || recv::receive(&live, &outputs, receiver))
                .map_err(|e| ScanError::Io("cannot start a receiving thread", e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    drop(neighbours_tx);

    // Senders: one thread per share of the permutation, each with its own
    // routes. On a veth or a fast NIC the kernel does much of the work of
    // a send in the sending thread, so more threads than one are needed to
    // reach the machine's limit.
    let mut route_caches: Vec<route::RouteCache> = (1..senders)
        .map(|_| network.routes().map_err(ScanError::Route))
        .collect::<Result<_, _>>()?;
    route_caches.insert(0, routes);

    // The phases: discovery, then the passes (with the monitor), then the
    // cooldown; after an error too, the receivers stop and whatever was
    // captured is kept.
    let discovery_started = Instant::now();
    let sent = (|| {
        // The MAC of every next hop the kernel does not know, asked for by
        // sonde itself before the first probe; every sending thread's
        // routes learn the answers.
        let found = neighbours::discover(
            &config.targets,
            &mut route_caches[0],
            gate,
            sockets[0].as_mut(),
            &neighbours_rx,
            stop_sending,
            config.source,
        )?;
        let discovery_seconds = discovery_started.elapsed().as_secs_f64();
        for routes in &mut route_caches[1..] {
            for &(ifindex, ip, mac) in &found.learned {
                routes.learn(ifindex, ip, mac);
            }
        }
        let sending = passes::Sending {
            run: send::SendContext {
                config,
                gate,
                key: &key,
                live: &live,
                outputs: &outputs,
                paths: &paths,
                interrupt: stop_sending,
                send_times: &send_times,
            },
            plan: &plan,
            links: &links_report,
        };
        let sent = sending.run(&mut route_caches, &mut sockets)?;
        Ok((found, discovery_seconds, sent))
    })();
    drop(neighbours_rx);
    drop(send_times);
    let gauges = &live.gauges;
    let probes = gauges.probes();
    if config.progress {
        config.tell(&progress::ScanEvent::SendingDone {
            probes,
            wait_seconds: config.wait.as_secs_f64(),
        });
    }
    // Cooldown for late replies, then stop the receivers. It ends early
    // when every probe sent has its result: nothing is outstanding, only
    // duplicates could come.
    let cooldown_seconds = match &sent {
        Ok((_, _, s)) if !live.signals.output_failed() => cooldown::wait(
            gauges,
            config.wait,
            config.adaptive_wait,
            probes,
            s.last_sent_ns,
        )
        .as_secs_f64(),
        _ => 0.0,
    };
    live.signals.stop_receiving.store(true, Ordering::Relaxed);
    let mut sniffer_stats = SnifferStats::default();
    let mut received = correlate::RecvCounters::default();
    let mut results = Vec::new();
    for r in receivers {
        let r = r.join().unwrap_or_default();
        sniffer_stats.received += r.sniffer.received;
        sniffer_stats.dropped += r.sniffer.dropped;
        received.received += r.counters.received;
        received.matched += r.counters.matched;
        received.invalid += r.counters.invalid;
        received.duplicates += r.counters.duplicates;
        results.extend(r.results);
    }
    let mut hosts = hosts::HostTable::new();
    for table in &live.ck.hosts {
        if let Ok(mut t) = table.lock() {
            hosts.absorb(std::mem::take(&mut *t));
        }
    }
    // The last handle gone, the writer empties its queue, flushes, reveals
    // the key of a compact run's sent-probe log, and ends with the first
    // output that failed.
    drop(outputs);
    let output_error = writer.join().unwrap_or_else(|_| {
        Some("cannot write the evidence: the writer thread failed".to_string())
    });
    let (neighbours, discovery_seconds, sent) = sent?;

    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let counters = Counters {
        sent: load(&gauges.sent),
        skipped_down: load(&gauges.skipped_down),
        retried: load(&gauges.retried),
        received: received.received,
        matched: received.matched,
        invalid: received.invalid,
        duplicates: received.duplicates,
        kernel_drops: sniffer_stats.dropped,
    };
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
        unanswered.insert(*kind, gauges.probed(*kind).saturating_sub(answered));
    }
    // The first pass's time; a pass stopped early (Ctrl-C) has none of its
    // own: the sending time so far (an interrupted run said "0 pps").
    let first_pass = match sent.first_pass_seconds {
        t if t > 0.0 => t,
        _ => sent.sending_seconds,
    };
    let rate = RateReport {
        requested: gate.rate(),
        achieved: achieved_rate(probes, first_pass, gate.rate()),
        sending_seconds: sent.sending_seconds,
        discovery_seconds,
        shortfall: sent.shortfall,
    };
    let answered = sent.stopped_at.as_ref().map(|_| answered.snapshot());
    Ok(ScanOutcome {
        stopped_at: sent.stopped_at,
        answered,
        cooldown_seconds,
        hosts: hosts.into_hosts(),
        rate,
        scope_stop: sent.scope_stop,
        neighbours,
        links: links_report,
        passes: PassReport::new(config.retries, config.max_retries, sent.answers_per_pass),
        results,
        counters,
        sniffer: sniffer_stats,
        unanswered,
        probes,
        interrupted: stop_sending.load(Ordering::Relaxed),
        output_error,
    })
}

/// The evidence writer's sinks, opened on `outputs`: a new pcap or one
/// continued, the NDJSON stream, the sent-probe log with its header.
fn sinks(
    config: &ScanConfig,
    outputs: ScanOutputs,
    key: CookieKey,
) -> Result<writer::Sinks, ScanError> {
    Ok(writer::Sinks {
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

#[cfg(test)]
mod tests {
    use super::*;
    use simnet::{SCANNER, SimNet};
    use std::net::Ipv4Addr;

    /// A gate for the simulated link: 198.18.0.0/24, SYN, `rate` pps.
    fn sim_gate(rate: u32) -> ScopeGate {
        let scope = crate::scope::Scope::from_toml(
            &simnet::scope_toml(
                "SIM-1",
                &format!("max_rate = {rate}\nmax_probes = 1000000"),
                "",
            ),
            "sim.toml",
        )
        .unwrap();
        let ours = [crate::targets::AddrRange::single(IpAddr::V4(SCANNER))]
            .into_iter()
            .collect();
        ScopeGate::new(scope, None)
            .unwrap()
            .with_local_sources(ours)
    }

    fn sim_config(targets: &str, ports: &str, retries: u32) -> ScanConfig {
        let (first, last) = targets.split_once('-').unwrap();
        ScanConfig {
            targets: [crate::targets::AddrRange::new(
                first.parse().unwrap(),
                last.parse().unwrap(),
            )
            .unwrap()]
            .into_iter()
            .collect(),
            ports: PortSet::parse(ports).unwrap(),
            kinds: vec![ProbeKind::Syn],
            dns_questions: vec![DnsQuestion {
                name: "example.com".into(),
                qtype: 1,
            }],
            dns_port: 53,
            retries,
            max_retries: 10,
            wait: Duration::from_millis(300),
            adaptive_wait: true,
            seed: 7,
            shard: Shard { index: 0, count: 1 },
            template: ProbeTemplate::default(),
            progress: false,
            observer: None,
            interface: None,
            source: None,
            senders: 2,
            sniffer_queue: 1 << 20,
            record: hosts::RecordMode::default(),
            keep_results: true,
            resume: None,
            checkpoints: None,
            checkpoint_every: Duration::from_secs(5),
        }
    }

    fn open_pairs(outcome: &ScanOutcome) -> Vec<(IpAddr, u16)> {
        outcome
            .results
            .iter()
            .filter(|r| r.verdict == crate::probe::Verdict::Open)
            .map(|r| (r.target, r.port.unwrap()))
            .collect()
    }

    fn v4(last: u8) -> Ipv4Addr {
        Ipv4Addr::new(198, 18, 0, last)
    }

    /// The engine end to end without root, over a simulated link: our own
    /// ARP finds the hosts (the absent ones are down and get no probe),
    /// every probe of the others leaves once, and the results are exactly
    /// the link's open ports, with every other port closed.
    #[test]
    fn a_scan_over_a_simulated_link_finds_exactly_its_open_ports() {
        let net = SimNet::new(&[(v4(10), &[22, 80]), (v4(11), &[]), (v4(12), &[443])], 0);
        let config = sim_config("198.18.0.10-198.18.0.13", "1-100,443", 1);
        let stop = AtomicBool::new(false);
        let outcome = run_on(
            &config,
            &sim_gate(100_000),
            ScanOutputs::default(),
            &stop,
            &net,
        )
        .unwrap();
        let v = |h: u8| IpAddr::V4(v4(h));
        assert_eq!(
            open_pairs(&outcome),
            vec![(v(10), 22), (v(10), 80), (v(12), 443)]
        );
        assert!(outcome.neighbours.no_arp_reply.contains(v(13)));
        assert_eq!(outcome.counters.skipped_down, 101);
        assert_eq!(outcome.probes, 3 * 101);
        assert_eq!(outcome.counters.matched, 3 * 101);
        let probes = net.probes();
        assert_eq!(probes.len(), 3 * 101, "every probe of a live host");
        assert!(probes.values().all(|&n| n == 1), "each sent once");
        assert!(
            !probes.keys().any(|(h, _)| *h == v4(13)),
            "no probe to a down host"
        );
        assert!(net.arp_requests() >= 4, "each target's MAC asked for");
        assert_eq!(outcome.passes.added, 0, "nothing was lost");
        assert_eq!(outcome.counters.retried, 0);
    }

    /// 198.18.0.10-29 and `more`, each with 22, 80 and 443 open.
    fn lossy_hosts(more: &[Ipv4Addr]) -> Vec<(Ipv4Addr, &'static [u16])> {
        (10..30)
            .map(v4)
            .chain(more.iter().copied())
            .map(|h| (h, &[22u16, 80, 443][..]))
            .collect()
    }

    /// A SYN scan of `range` x 1-200,443 with one retry over `net`.
    fn lossy_run(net: &SimNet, range: &str) -> ScanOutcome {
        let config = sim_config(range, "1-200,443", 1);
        let stop = AtomicBool::new(false);
        run_on(
            &config,
            &sim_gate(200_000),
            ScanOutputs::default(),
            &stop,
            net,
        )
        .unwrap()
    }

    /// Retries follow the loss on a simulated link that drops 10% of the
    /// frames each way: passes are added while they still find answers,
    /// and every open port is found. An added pass goes only to the hosts
    /// a recent pass found something new on: the filtered host, which
    /// never answered, gets its first probe and the one retry asked for,
    /// no more.
    #[test]
    fn a_lossy_simulated_link_gets_added_passes_but_a_filtered_host_does_not() {
        let net = SimNet::new(&lossy_hosts(&[]), 100).with_filtered(&[v4(30)]);
        let outcome = lossy_run(&net, "198.18.0.10-198.18.0.30");
        assert_eq!(open_pairs(&outcome).len(), 20 * 3, "every open port");
        let passes = &outcome.passes;
        assert!(passes.added >= 1, "passes were added: {passes:?}");
        // 10% each way: about 19% of the first pass's answers are lost.
        assert!((0.1..0.3).contains(&passes.loss_estimate), "{passes:?}");
        let probes = net.probes();
        let most = |host: Ipv4Addr| {
            probes
                .iter()
                .filter(|((h, _), _)| *h == host)
                .map(|(_, n)| *n)
                .max()
                .unwrap_or(0)
        };
        assert!(most(v4(10)) > 2, "a lossy host is retried past --retries");
        assert_eq!(
            most(v4(30)),
            2,
            "the filtered host: its probe and one retry"
        );
    }

    /// Regression (the per-host retry rule, issue 25): a lossless host
    /// answers every probe but one in the first pass, and that one is lost
    /// on its first three tries. Its host gains nothing in pass 1, so
    /// nmap's rule (retry a host one try past its last answer) never sent
    /// it a third time and the open port was missed; at the loss the rest
    /// of the link shows, the host is retried until the port answers.
    #[test]
    fn a_port_lost_three_times_after_its_host_last_answered_is_still_found() {
        let net = SimNet::new(&lossy_hosts(&[v4(40)]), 100).with_lost_tries(v4(40), 22, 3);
        let outcome = lossy_run(&net, "198.18.0.10-198.18.0.40");
        let open = open_pairs(&outcome);
        assert!(
            open.contains(&(IpAddr::V4(v4(40)), 22)),
            "{:?}",
            outcome.passes
        );
        assert_eq!(open.len(), 21 * 3, "every open port");
        assert_eq!(net.probes()[&(v4(40), 22)], 4, "sent until it answered");
        assert_eq!(
            net.probes()[&(v4(40), 80)],
            1,
            "an answered probe is not resent"
        );
    }

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
