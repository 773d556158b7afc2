//! `syn_flood`: many SYNs to one destination (address and port) in a short
//! window, few answered, from many sources, leaving half-open connections.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use foldhash::{HashMap, HashSet};
use serde::{Deserialize, Serialize};

use super::{Anomaly, Severity, Span, push_example};
use crate::analyze::dissect::{Addr, Dissected, Transport};
use crate::analyze::flows::{ACK, Flow, RST, SYN};

/// Defaults: a destination receiving at least 100 SYN/s in its busiest
/// second, 200 SYNs in all, with at most 3 of 10 answered by a SYN-ACK.
/// 100/s is far above what a busy single service sees from ordinary
/// clients in one capture point and the ratio follows the SYN-to-SYN-ACK
/// imbalance used by Snort's and Zeek's SYN-flood heuristics.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SynFloodThresholds {
    pub window_seconds: f64,
    pub min_syn_rate: f64,
    pub min_syns: u64,
    pub max_synack_ratio: f64,
}

impl Default for SynFloodThresholds {
    fn default() -> Self {
        SynFloodThresholds {
            window_seconds: 1.0,
            min_syn_rate: 100.0,
            min_syns: 200,
            max_synack_ratio: 0.3,
        }
    }
}

/// Destinations tracked at most; beyond this, new ones are counted, not tracked.
const MAX_TARGETS: usize = 20_000;
/// Sources remembered over all destinations; beyond this, counts are
/// estimated (HyperLogLog++ per destination, seeded with what it holds).
const MAX_SOURCES_TOTAL: usize = 200_000;
/// The sliding window is kept as this many sub-buckets.
const SLOTS: usize = 10;

struct Target {
    syns: u64,
    synacks: u64,
    half_open: u64,
    sources: Sources,
    sources_capped: bool,
    /// Once the remembered sources are capped: this destination's
    /// sources estimated.
    sources_estimate: Option<Box<cardinality_estimator::CardinalityEstimator<IpAddr>>>,
    span: Span,
    examples: Vec<u64>,
    /// Sub-bucket counts and the index of the newest sub-bucket.
    slots: [u32; SLOTS],
    newest: i64,
    peak: u64,
}

/// A flood's distinct sources, IPv4 ones as 4 bytes each: a set of
/// [`Addr`] (24 bytes) held 200,000 spoofed sources in 7 MB.
#[derive(Default)]
struct Sources {
    v4: HashSet<u32>,
    v6: HashSet<[u64; 2]>,
}

impl Sources {
    /// Whether `a` is new.
    fn insert(&mut self, a: Addr) -> bool {
        if a.is_ipv6() {
            self.v6.insert(a.halves())
        } else {
            self.v4.insert(a.value() as u32)
        }
    }

    fn contains(&self, a: Addr) -> bool {
        if a.is_ipv6() {
            self.v6.contains(&a.halves())
        } else {
            self.v4.contains(&(a.value() as u32))
        }
    }

    fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    fn addresses(&self) -> Vec<IpAddr> {
        let v4 = self.v4.iter().map(|&a| IpAddr::from(Ipv4Addr::from(a)));
        let v6 = self.v6.iter().map(|&h| Addr::from_halves(true, h).ip());
        v4.chain(v6).collect()
    }
}

pub struct SynFlood {
    t: SynFloodThresholds,
    slot_ns: i64,
    targets: HashMap<(Addr, u16), Target>,
    untracked: u64,
    sources_total: usize,
}

impl SynFlood {
    pub fn new(t: SynFloodThresholds) -> SynFlood {
        let slot_ns = ((t.window_seconds.max(1e-3) * 1e9) as i64 / SLOTS as i64).max(1);
        SynFlood {
            t,
            slot_ns,
            targets: HashMap::default(),
            untracked: 0,
            sources_total: 0,
        }
    }

    pub fn frame(&mut self, frame: u64, now: i64, d: &Dissected<'_>) {
        let (
            Some(ip),
            Some(Transport::Tcp {
                sport,
                dport,
                flags,
                valid: true,
                ..
            }),
        ) = (&d.ip, d.transport)
        else {
            return;
        };
        match flags & (SYN | ACK | RST) {
            SYN => {}
            x if x == SYN | ACK => {
                if let Some(t) = self.targets.get_mut(&(Addr::from(ip.src), sport)) {
                    t.synacks += 1;
                }
                return;
            }
            _ => return,
        }
        let key = (Addr::from(ip.dst), dport);
        // Only a full table needs the key looked up twice.
        if self.targets.len() >= MAX_TARGETS && !self.targets.contains_key(&key) {
            self.untracked += 1;
            return;
        }
        let slot_ns = self.slot_ns;
        let t = self.targets.entry(key).or_insert_with(|| Target {
            syns: 0,
            synacks: 0,
            half_open: 0,
            sources: Sources::default(),
            sources_capped: false,
            sources_estimate: None,
            span: Span::new(now),
            examples: Vec::new(),
            slots: [0; SLOTS],
            newest: now / slot_ns,
            peak: 0,
        });
        t.syns += 1;
        t.span.add(now);
        push_example(&mut t.examples, frame);
        if self.sources_total < MAX_SOURCES_TOTAL {
            self.sources_total += usize::from(t.sources.insert(Addr::from(ip.src)));
        } else {
            if !t.sources.contains(Addr::from(ip.src)) {
                t.sources_capped = true;
            }
            let known = &t.sources;
            t.sources_estimate
                .get_or_insert_with(|| {
                    let mut e = Box::new(cardinality_estimator::CardinalityEstimator::new());
                    for a in known.addresses() {
                        e.insert(&a);
                    }
                    e
                })
                .insert(&ip.src);
        }
        // Advance the ring to this frame's sub-bucket (frames out of order
        // by less than a window land in their own bucket; older ones in the oldest).
        let slot = now / slot_ns;
        if slot > t.newest {
            let steps = (slot - t.newest).min(SLOTS as i64);
            for i in 1..=steps {
                t.slots[((t.newest + i).rem_euclid(SLOTS as i64)) as usize] = 0;
            }
            t.newest = slot;
        }
        let age = (t.newest - slot).min(SLOTS as i64 - 1);
        t.slots[((t.newest - age).rem_euclid(SLOTS as i64)) as usize] += 1;
        let in_window: u64 = t.slots.iter().map(|&c| u64::from(c)).sum();
        t.peak = t.peak.max(in_window);
    }

    pub fn flow_finished(&mut self, f: &Flow) {
        if f.key.proto != 6 || !f.is_half_open() {
            return;
        }
        let server = if f.a_is_client {
            (f.key.b(), f.key.b_port)
        } else {
            (f.key.a(), f.key.a_port)
        };
        if let Some(t) = self.targets.get_mut(&server) {
            t.half_open += 1;
        }
    }

    /// The busiest SYN rate to one destination port, against the
    /// flood threshold.
    pub fn closest(&self) -> Option<super::Closest> {
        let th = &self.t;
        let mut best: Option<super::Closest> = None;
        for ((dst, port), t) in &self.targets {
            let mean = if t.span.seconds() > 0.0 {
                t.syns as f64 / t.span.seconds()
            } else {
                t.syns as f64
            };
            let rate = (t.peak as f64 / th.window_seconds).max(mean);
            let c = super::Closest {
                measure: "peak_syn_rate",
                value: rate,
                threshold: th.min_syn_rate,
                at: std::net::SocketAddr::new(dst.ip(), *port).to_string(),
            };
            best = super::Closest::max(best, c);
        }
        best
    }

    pub fn finish(self) -> Vec<Anomaly> {
        let th = &self.t;
        let mut out = Vec::new();
        for ((dst, port), t) in self.targets {
            let dst = dst.ip();
            let mean = if t.span.seconds() > 0.0 {
                t.syns as f64 / t.span.seconds()
            } else {
                t.syns as f64
            };
            // The busiest window's rate; a burst shorter than the window
            // would be spread over the whole window by that, so its own
            // rate counts (the peak is never below the mean).
            let rate = (t.peak as f64 / th.window_seconds).max(mean);
            let ratio = t.synacks as f64 / t.syns as f64;
            if rate < th.min_syn_rate || t.syns < th.min_syns || ratio > th.max_synack_ratio {
                continue;
            }
            let severity = if rate >= 10.0 * th.min_syn_rate {
                Severity::High
            } else {
                Severity::Medium
            };
            let sources = t.sources.len() as f64;
            let mut src_list = t.sources.addresses();
            src_list.sort();
            let evidence = BTreeMap::from([
                ("peak_syn_rate", rate),
                ("mean_syn_rate", mean),
                ("syns", t.syns as f64),
                ("synacks", t.synacks as f64),
                ("synack_per_syn", ratio),
                ("distinct_sources", sources),
                ("half_open", t.half_open as f64),
                ("duration_seconds", t.span.seconds()),
            ]);
            let thresholds = BTreeMap::from([
                ("window_seconds", th.window_seconds),
                ("min_syn_rate", th.min_syn_rate),
                ("min_syns", th.min_syns as f64),
                ("max_synack_ratio", th.max_synack_ratio),
            ]);
            out.push(Anomaly {
                evidence,
                thresholds,
                sources: super::addrs(&src_list),
                destinations: vec![dst.to_string()],
                ports: vec![port],
                note: self.untracked.gt(&0).then(|| {
                    format!(
                        "{} SYNs to further destinations were not tracked (state limit)",
                        self.untracked
                    )
                }),
                ..Anomaly::new(
                    "syn_flood",
                    None,
                    severity,
                    format!(
                        "SYN flood on {}: {} SYNs, peak {:.0}/s, {} answered, from {}",
                        endpoint(dst, port),
                        t.syns,
                        rate,
                        t.synacks,
                        match t.sources_estimate.as_ref().filter(|_| t.sources_capped) {
                            Some(e) => format!(
                                "about {} sources (estimated; {} counted exactly)",
                                super::thousands(e.estimate().max(t.sources.len()) as u64),
                                t.sources.len()
                            ),
                            None => format!("{} sources", t.sources.len()),
                        }
                    ),
                    t.span,
                    t.examples,
                )
            });
        }
        out
    }
}

fn endpoint(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}
