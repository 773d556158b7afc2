//! `host_sweep`: one source asking many hosts the same question, the way a
//! worm looks for its next victims or a reconnaissance sweep maps a
//! network:
//!
//! * `icmp_echo`: echo requests (ICMP type 8, ICMPv6 128) to at least
//!   `min_hosts` hosts it had not asked before, within `window_seconds`;
//! * `smb`: connection attempts (a SYN) to an SMB port (`smb_ports`, 445
//!   and 139) of as many hosts: the spreading of Conficker, WannaCry and
//!   NotPetya. High severity, and worm-like when the same source also
//!   swept with echo requests.
//!
//! Monitoring asks the same hosts again and again; a sweep asks each host
//! once, or a few times when it does not answer. A source whose answering
//! hosts were each asked `monitoring_repeats` times or more on average is
//! polling, not sweeping, and is left out (its measure still shows how
//! close it came).

use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;

use foldhash::HashMap;
use serde::{Deserialize, Serialize};

use super::{Anomaly, Closest, Severity, Span, push_example, thousands};
use crate::analyze::dissect::{Dissected, Transport};

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HostSweepThresholds {
    /// New hosts one source asks within `window_seconds`.
    pub min_hosts: u64,
    pub window_seconds: f64,
    /// The TCP ports a worm spreads through.
    pub smb_ports: Vec<u16>,
    /// Mean requests per answering host from which a source is polling
    /// (monitoring), not sweeping.
    pub monitoring_repeats: f64,
}

impl Default for HostSweepThresholds {
    fn default() -> Self {
        HostSweepThresholds {
            // "Dozens of addresses": a host's ordinary pings reach its
            // gateway, a resolver and a handful of servers; a sweep of a
            // /24 reaches up to 254.
            min_hosts: 20,
            window_seconds: 60.0,
            smb_ports: vec![445, 139],
            // A sweep retries a silent host a few times (fping: 3); it
            // has no reason to ask an answering host thrice.
            monitoring_repeats: 3.0,
        }
    }
}

/// Sources followed once they asked two hosts, and hosts followed in all:
/// past these, new ones are not followed (memory stays bounded whatever
/// the capture).
const MAX_SOURCES: usize = 4_096;
/// Slots for sources that asked one or two hosts so far (most sources
/// ping one host or two: a gateway, a server). A source that takes a slot another
/// holds forgets that one; a sweep asks its second host long before.
const SINGLES: usize = 2_048;
const MAX_TARGETS: usize = 262_144;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Question {
    Echo,
    Smb,
}

#[derive(Default)]
struct Target {
    asked: u32,
    answered: bool,
}

/// One host a [`Single`] asked.
#[derive(Clone, Copy)]
struct Asked {
    dst: IpAddr,
    ts: i64,
    frame: u64,
    asked: u32,
    answered: bool,
}

/// A source that asked one or two hosts so far (in a capture of many
/// clients, a client meets a second server often, a third rarely).
#[derive(Clone, Copy)]
struct Single {
    src: IpAddr,
    q: Question,
    hosts: [Option<Asked>; 2],
}

struct Sweeper {
    targets: HashMap<IpAddr, Target>,
    requests: u64,
    /// When each host first asked within the window was asked.
    recent: VecDeque<i64>,
    peak: u64,
    span: Span,
    examples: Vec<u64>,
}

pub struct HostSweep {
    t: HostSweepThresholds,
    window_ns: i64,
    sweepers: HashMap<(IpAddr, Question), Sweeper>,
    singles: Vec<Option<Single>>,
    slot_hasher: foldhash::fast::FixedState,
    targets: usize,
    untracked: u64,
}

impl HostSweep {
    pub fn new(t: HostSweepThresholds) -> HostSweep {
        HostSweep {
            window_ns: (t.window_seconds * 1e9) as i64,
            t,
            sweepers: HashMap::default(),
            singles: vec![None; SINGLES],
            slot_hasher: foldhash::fast::FixedState::default(),
            targets: 0,
            untracked: 0,
        }
    }

    pub fn frame(&mut self, frame: u64, ts: i64, d: &Dissected<'_>) {
        let Some(ip) = &d.ip else { return };
        match d.transport {
            Some(Transport::Icmp { kind: 8, .. } | Transport::Icmpv6 { kind: 128, .. }) => {
                self.ask(frame, ts, ip.src, ip.dst, Question::Echo);
            }
            Some(Transport::Icmp { kind: 0, .. } | Transport::Icmpv6 { kind: 129, .. }) => {
                self.answer(ip.dst, ip.src, Question::Echo);
            }
            Some(Transport::Tcp {
                sport,
                dport,
                flags,
                valid: true,
                ..
            }) => {
                const SYN: u8 = 0x02;
                const ACK: u8 = 0x10;
                if flags & (SYN | ACK) == SYN && self.t.smb_ports.contains(&dport) {
                    self.ask(frame, ts, ip.src, ip.dst, Question::Smb);
                } else if flags & (SYN | ACK) == SYN | ACK && self.t.smb_ports.contains(&sport) {
                    self.answer(ip.dst, ip.src, Question::Smb);
                }
            }
            _ => {}
        }
    }

    fn slot(&self, src: IpAddr, q: Question) -> usize {
        use std::hash::BuildHasher;
        (self.slot_hasher.hash_one((src, q)) % SINGLES as u64) as usize
    }

    fn ask(&mut self, frame: u64, ts: i64, src: IpAddr, dst: IpAddr, q: Question) {
        if !self.sweepers.contains_key(&(src, q)) {
            let slot = self.slot(src, q);
            let single = &mut self.singles[slot];
            match single {
                Some(one) if one.src == src && one.q == q => {
                    if let Some(h) = one.hosts.iter_mut().flatten().find(|h| h.dst == dst) {
                        h.asked = h.asked.saturating_add(1);
                        return;
                    }
                    if let Some(free) = one.hosts.iter_mut().find(|h| h.is_none()) {
                        *free = Some(Asked {
                            dst,
                            ts,
                            frame,
                            asked: 1,
                            answered: false,
                        });
                        return;
                    }
                    // Its third host: followed from here on, the first
                    // two carried over.
                    if self.sweepers.len() >= MAX_SOURCES {
                        self.untracked += 1;
                        return;
                    }
                    let one = *one;
                    *single = None;
                    let mut sweeper = Sweeper {
                        targets: HashMap::default(),
                        requests: 0,
                        recent: VecDeque::new(),
                        peak: 0,
                        span: Span::new(ts),
                        examples: Vec::new(),
                    };
                    for h in one.hosts.iter().flatten() {
                        sweeper.targets.insert(
                            h.dst,
                            Target {
                                asked: h.asked,
                                answered: h.answered,
                            },
                        );
                        sweeper.requests += u64::from(h.asked);
                        sweeper.recent.push_back(h.ts);
                        sweeper.span.add(h.ts);
                        push_example(&mut sweeper.examples, h.frame);
                        self.targets += 1;
                    }
                    self.sweepers.insert((src, q), sweeper);
                }
                _ => {
                    *single = Some(Single {
                        src,
                        q,
                        hosts: [
                            Some(Asked {
                                dst,
                                ts,
                                frame,
                                asked: 1,
                                answered: false,
                            }),
                            None,
                        ],
                    });
                    return;
                }
            }
        }
        let Some(s) = self.sweepers.get_mut(&(src, q)) else {
            return;
        };
        s.requests += 1;
        s.span.add(ts);
        if let Some(t) = s.targets.get_mut(&dst) {
            t.asked = t.asked.saturating_add(1);
            return;
        }
        if self.targets >= MAX_TARGETS {
            self.untracked += 1;
            return;
        }
        self.targets += 1;
        s.targets.insert(
            dst,
            Target {
                asked: 1,
                answered: false,
            },
        );
        push_example(&mut s.examples, frame);
        s.recent.push_back(ts);
        while s.recent.front().is_some_and(|&t| t < ts - self.window_ns) {
            s.recent.pop_front();
        }
        s.peak = s.peak.max(s.recent.len() as u64);
    }

    fn answer(&mut self, asker: IpAddr, host: IpAddr, q: Question) {
        let slot = self.slot(asker, q);
        if let Some(one) = &mut self.singles[slot]
            && one.src == asker
            && one.q == q
        {
            if let Some(h) = one.hosts.iter_mut().flatten().find(|h| h.dst == host) {
                h.answered = true;
            }
            return;
        }
        if let Some(t) = self
            .sweepers
            .get_mut(&(asker, q))
            .and_then(|s| s.targets.get_mut(&host))
        {
            t.answered = true;
        }
    }

    /// Mean requests per answering host, or `None` when none answered.
    fn repeats(s: &Sweeper) -> Option<f64> {
        let (asked, answered) = s
            .targets
            .values()
            .filter(|t| t.answered)
            .fold((0u64, 0u64), |(a, n), t| (a + u64::from(t.asked), n + 1));
        (answered > 0).then(|| asked as f64 / answered as f64)
    }

    fn polling(&self, s: &Sweeper) -> bool {
        Self::repeats(s).is_some_and(|r| r >= self.t.monitoring_repeats)
    }

    /// The most new hosts one source asked within a window, of those not
    /// polling.
    pub fn closest(&self) -> Option<Closest> {
        let mut best = None;
        for ((src, q), s) in &self.sweepers {
            if self.polling(s) {
                continue;
            }
            let measure = match q {
                Question::Echo => "peak_new_echo_hosts_in_window",
                Question::Smb => "peak_new_smb_hosts_in_window",
            };
            best = Closest::max(
                best,
                Closest {
                    measure,
                    value: s.peak as f64,
                    threshold: self.t.min_hosts as f64,
                    at: src.to_string(),
                },
            );
        }
        best
    }

    pub fn finish(self) -> Vec<Anomaly> {
        let th = &self.t;
        let thresholds = BTreeMap::from([
            ("min_hosts", th.min_hosts as f64),
            ("window_seconds", th.window_seconds),
            ("monitoring_repeats", th.monitoring_repeats),
        ]);
        let mut sweeps: Vec<(&(IpAddr, Question), &Sweeper)> = self
            .sweepers
            .iter()
            .filter(|(_, s)| s.peak >= th.min_hosts && !self.polling(s))
            .collect();
        sweeps.sort_by_key(|(k, _)| **k);
        let echo_swept: Vec<IpAddr> = sweeps
            .iter()
            .filter(|((_, q), _)| *q == Question::Echo)
            .map(|((src, _), _)| *src)
            .collect();
        let mut out = Vec::new();
        for ((src, q), s) in sweeps {
            let hosts = s.targets.len() as u64;
            let answered = s.targets.values().filter(|t| t.answered).count() as u64;
            let mut dsts: Vec<IpAddr> = s.targets.keys().copied().collect();
            dsts.sort();
            let (subtype, severity, what) = match q {
                Question::Echo => ("icmp_echo", Severity::Medium, "ICMP echo"),
                Question::Smb => ("smb", Severity::High, "SMB connection attempts"),
            };
            let worm = *q == Question::Smb && echo_swept.contains(src);
            let mut evidence = BTreeMap::from([
                ("hosts", hosts as f64),
                ("requests", s.requests as f64),
                ("answered_hosts", answered as f64),
                ("peak_new_hosts_in_window", s.peak as f64),
                ("duration_seconds", s.span.seconds()),
            ]);
            if let Some(r) = Self::repeats(s) {
                evidence.insert("requests_per_answering_host", r);
            }
            let ports = match q {
                Question::Echo => Vec::new(),
                Question::Smb => th.smb_ports.clone(),
            };
            out.push(Anomaly {
                evidence,
                thresholds: thresholds.clone(),
                sources: vec![src.to_string()],
                destinations: super::addrs(&dsts),
                ports,
                note: Some(format!(
                    "{} of {} hosts answered; {}",
                    thousands(answered),
                    thousands(hosts),
                    if worm {
                        "the same source swept with ICMP echo first: a worm's search and spread"
                    } else if *q == Question::Smb {
                        "SMB to many hosts is how worms spread (Conficker, WannaCry)"
                    } else {
                        "each host asked about once: a sweep, not monitoring"
                    }
                )),
                ..Anomaly::new(
                    "host_sweep",
                    Some(subtype),
                    severity,
                    format!(
                        "{src} swept {} hosts with {what} in {:.1} s ({} answered){}",
                        thousands(hosts),
                        s.span.seconds(),
                        thousands(answered),
                        if worm { ": worm-like" } else { "" }
                    ),
                    s.span,
                    s.examples.clone(),
                )
            });
        }
        super::note_untracked(
            &mut out,
            self.untracked,
            format_args!("requests past the first {MAX_SOURCES} sources or {MAX_TARGETS} hosts"),
        );
        out
    }
}
