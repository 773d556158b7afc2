//! Traffic statistics: totals, protocol distribution, talkers, ports and
//! TCP/UDP conversations.

use std::collections::BTreeMap;

use foldhash::HashMap;
use std::net::IpAddr;

use serde::Serialize;

use super::dissect::{Dissected, Transport};

/// Packets and bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counter {
    pub packets: u64,
    pub bytes: u64,
}

impl Counter {
    fn add(&mut self, bytes: u64) {
        self.packets += 1;
        self.bytes += bytes;
    }
}

/// The protocols counted per frame, in report order.
pub const PROTOCOLS: [&str; 12] = [
    "eth",
    "sll",
    "vlan",
    "arp",
    "ip",
    "ipv6",
    "ip_fragment",
    "tcp",
    "udp",
    "icmp",
    "icmpv6",
    "dns",
];
const ETH: usize = 0;
const SLL: usize = 1;
const VLAN: usize = 2;
const ARP: usize = 3;
const IP: usize = 4;
const IPV6: usize = 5;
const FRAG: usize = 6;
const TCP: usize = 7;
const UDP: usize = 8;
const ICMP: usize = 9;
const ICMPV6: usize = 10;
const DNS: usize = 11;

/// An address as a talker key. `IpAddr`'s derived `Hash` feeds a
/// discriminant, a length and the bytes, three hasher rounds per address
/// and six per pair, several times per finished flow; this feeds one
/// 128-bit word. (An IPv4 address and its IPv6 twin `::a.b.c.d` hash alike
/// and are told apart by `Eq`.) Orders as `IpAddr` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Addr(IpAddr);

impl std::hash::Hash for Addr {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        h.write_u128(crate::target::range::addr_value(self.0));
    }
}

/// Running statistics over every frame seen.
#[derive(Debug)]
pub struct Stats {
    pub frames: u64,
    pub bytes: u64,
    pub first_ns: Option<i64>,
    pub last_ns: Option<i64>,
    /// Indexed like [`PROTOCOLS`].
    protocols: [Counter; PROTOCOLS.len()],
    sources: HashMap<Addr, Counter>,
    destinations: HashMap<Addr, Counter>,
    pairs: HashMap<(Addr, Addr), Counter>,
    /// Packets per destination port, indexed by port.
    tcp_ports: Box<[u64; 65536]>,
    udp_ports: Box<[u64; 65536]>,
    /// Talker entries dropped from full tables.
    pruned: u64,
    timeline: Timeline,
}

impl Default for Stats {
    fn default() -> Stats {
        Stats {
            frames: 0,
            bytes: 0,
            first_ns: None,
            last_ns: None,
            protocols: Default::default(),
            sources: HashMap::default(),
            destinations: HashMap::default(),
            pairs: HashMap::default(),
            tcp_ports: Box::new([0; 65536]),
            udp_ports: Box::new([0; 65536]),
            pruned: 0,
            timeline: Timeline::default(),
        }
    }
}

/// Buckets a timeline holds at most: wider buckets past that.
pub const MAX_BUCKETS: i64 = 1000;

/// Packets and bytes over time, for the packets-per-second chart. Buckets
/// start one second wide, aligned to whole seconds; whenever the span
/// would need more than [`MAX_BUCKETS`], their width doubles and
/// neighbours merge. Memory is bounded whatever the capture's length, and
/// the result depends only on the frames, not on the order of reading.
#[derive(Debug)]
pub struct Timeline {
    width_ns: i64,
    /// Counts per bucket index (timestamp / width, floored).
    buckets: BTreeMap<i64, Counter>,
    /// The bucket being filled, kept out of the map: consecutive frames
    /// almost always share it.
    current: Option<(i64, Counter)>,
    /// Where the current bucket starts and ends (ns), for a compare-only
    /// fast path.
    current_span: (i64, i64),
}

impl Default for Timeline {
    fn default() -> Timeline {
        Timeline {
            width_ns: 1_000_000_000,
            buckets: BTreeMap::new(),
            current: None,
            current_span: (0, 0),
        }
    }
}

impl Timeline {
    pub fn add(&mut self, ts_ns: i64, bytes: u64) {
        if let Some((_, c)) = &mut self.current
            && ts_ns >= self.current_span.0
            && ts_ns < self.current_span.1
        {
            c.add(bytes);
            return;
        }
        self.park();
        let mut index = ts_ns.div_euclid(self.width_ns);
        // Widen until the span from the first to the last bucket fits.
        loop {
            let lo = self.buckets.keys().next().map_or(index, |&k| k.min(index));
            let hi = self
                .buckets
                .keys()
                .next_back()
                .map_or(index, |&k| k.max(index));
            if hi.saturating_sub(lo) < MAX_BUCKETS {
                break;
            }
            self.widen();
            index = ts_ns.div_euclid(self.width_ns);
        }
        let mut c = self.buckets.remove(&index).unwrap_or_default();
        c.add(bytes);
        self.current = Some((index, c));
        let start = index.saturating_mul(self.width_ns);
        self.current_span = (start, start.saturating_add(self.width_ns));
    }

    /// Put the current bucket back into the map.
    fn park(&mut self) {
        if let Some((i, c)) = self.current.take() {
            let e = self.buckets.entry(i).or_default();
            e.packets += c.packets;
            e.bytes += c.bytes;
        }
    }

    fn widen(&mut self) {
        self.park();
        self.width_ns = self.width_ns.saturating_mul(2);
        let old = std::mem::take(&mut self.buckets);
        for (i, c) in old {
            let e = self.buckets.entry(i.div_euclid(2)).or_default();
            e.packets += c.packets;
            e.bytes += c.bytes;
        }
    }

    /// Every bucket from the first to the last, empty ones included.
    pub fn report(&mut self) -> TimelineReport {
        self.park();
        let (Some(&lo), Some(&hi)) = (self.buckets.keys().next(), self.buckets.keys().next_back())
        else {
            return TimelineReport {
                bucket_seconds: (self.width_ns / 1_000_000_000) as u64,
                start: None,
                packets: Vec::new(),
                bytes: Vec::new(),
            };
        };
        let n = (hi - lo + 1) as usize;
        let (mut packets, mut bytes) = (vec![0; n], vec![0; n]);
        for (i, c) in &self.buckets {
            packets[(i - lo) as usize] = c.packets;
            bytes[(i - lo) as usize] = c.bytes;
        }
        TimelineReport {
            bucket_seconds: (self.width_ns / 1_000_000_000) as u64,
            start: Some(timestamp(lo.saturating_mul(self.width_ns))),
            packets,
            bytes,
        }
    }
}

/// The report's `timeline`: packets and bytes per bucket from `start`.
#[derive(Debug, Serialize)]
pub struct TimelineReport {
    /// Width of each bucket (1, 2, 4, ... seconds).
    pub bucket_seconds: u64,
    /// Start of the first bucket (RFC 3339, UTC); null without frames.
    pub start: Option<String>,
    pub packets: Vec<u64>,
    pub bytes: Vec<u64>,
}

/// Talkers kept per table (sources, destinations, pairs). A full table
/// drops its lower half by packets (lossy counting): heavy talkers stay
/// exact or nearly so, memory stays bounded on spoofed floods, and the
/// report says how many entries were dropped.
pub const MAX_TALKERS: usize = 20_000;

/// Count `c` for `key`; returns how many entries were pruned to make room.
fn bump<K: std::hash::Hash + Eq + Ord + Copy>(
    map: &mut HashMap<K, Counter>,
    key: K,
    c: Counter,
) -> u64 {
    let mut pruned = 0;
    // Only a full table needs the key looked up before the entry (the
    // entry would hold the table while the prune changes it).
    if map.len() >= MAX_TALKERS && !map.contains_key(&key) {
        let mut counts: Vec<u64> = map.values().map(|c| c.packets).collect();
        let mid = counts.len() / 2;
        let (_, median, _) = counts.select_nth_unstable(mid);
        let median = *median;
        let before = map.len();
        map.retain(|_, c| c.packets > median);
        if map.len() == before {
            // Every count equals the median: drop the lower half by key (a
            // fixed choice, so the report does not depend on hash order).
            let mut keys: Vec<K> = map.keys().copied().collect();
            let mid = keys.len() / 2;
            keys.select_nth_unstable(mid);
            for k in &keys[..mid] {
                map.remove(k);
            }
        }
        pruned = (before - map.len()) as u64;
    }
    let have = map.entry(key).or_default();
    have.packets += c.packets;
    have.bytes += c.bytes;
    pruned
}

impl Stats {
    pub fn add(&mut self, ts_ns: i64, wire_len: u32, d: &Dissected<'_>) {
        let len = u64::from(wire_len);
        self.frames += 1;
        self.bytes += len;
        self.first_ns = Some(self.first_ns.map_or(ts_ns, |f| f.min(ts_ns)));
        self.last_ns = Some(self.last_ns.map_or(ts_ns, |l| l.max(ts_ns)));
        self.timeline.add(ts_ns, len);
        let mut proto = |i: usize| self.protocols[i].add(len);
        if d.ethernet {
            proto(ETH);
        }
        if d.sll {
            proto(SLL);
        }
        if d.vlan {
            proto(VLAN);
        }
        if d.arp {
            proto(ARP);
        }
        if let Some(ip) = &d.ip {
            proto(if d.ipv6 { IPV6 } else { IP });
            if ip.fragment.is_some() {
                proto(FRAG);
            }
        }
        match d.transport {
            Some(Transport::Tcp {
                payload,
                sport,
                dport,
                ..
            }) => {
                proto(TCP);
                if (sport == 53 || dport == 53) && !payload.is_empty() {
                    proto(DNS);
                }
            }
            Some(Transport::Udp {
                payload,
                sport,
                dport,
            }) => {
                proto(UDP);
                if (sport == 53 || dport == 53) && payload.len() >= 12 {
                    proto(DNS);
                }
            }
            Some(Transport::Icmp { .. }) => proto(ICMP),
            Some(Transport::Icmpv6 { .. }) => proto(ICMPV6),
            None => {}
        }
        match d.transport {
            Some(Transport::Tcp {
                dport, valid: true, ..
            }) => self.tcp_ports[usize::from(dport)] += 1,
            Some(Transport::Udp { dport, .. }) => self.udp_ports[usize::from(dport)] += 1,
            _ => {}
        }
    }

    /// The report's `summary`, `protocols`, `top_talkers` and `ports` sections.
    /// Count one packet from `src` to `dst` toward the talkers. Packets that
    /// belong to a flow are counted through [`Stats::flow_finished`] instead.
    pub fn talk(&mut self, src: IpAddr, dst: IpAddr, wire_len: u32) {
        self.talk_n(
            src,
            dst,
            Counter {
                packets: 1,
                bytes: u64::from(wire_len),
            },
        );
    }

    fn talk_n(&mut self, src: IpAddr, dst: IpAddr, c: Counter) {
        if c.packets == 0 {
            return;
        }
        let (src, dst) = (Addr(src), Addr(dst));
        self.pruned += bump(&mut self.sources, src, c)
            + bump(&mut self.destinations, dst, c)
            + bump(&mut self.pairs, (src, dst), c);
    }

    /// Add a finished flow's packets to the talkers, both directions.
    pub fn flow_finished(&mut self, f: &super::flows::Flow) {
        let (client, server) = if f.a_is_client {
            (f.key.a, f.key.b)
        } else {
            (f.key.b, f.key.a)
        };
        self.talk_n(
            client,
            server,
            Counter {
                packets: f.c2s.0,
                bytes: f.c2s.1,
            },
        );
        self.talk_n(
            server,
            client,
            Counter {
                packets: f.s2c.0,
                bytes: f.s2c.1,
            },
        );
    }

    /// `tcp`/`udp`: conversations, as the flow table counted them.
    pub fn report(&mut self, top: usize, tcp: u64, udp: u64) -> StatsReport {
        let duration = match (self.first_ns, self.last_ns) {
            (Some(f), Some(l)) => (l - f) as f64 / 1e9,
            _ => 0.0,
        };
        let rate = |n: u64| {
            if duration > 0.0 {
                n as f64 / duration
            } else {
                0.0
            }
        };
        StatsReport {
            summary: Summary {
                packets: self.frames,
                bytes: self.bytes,
                first_timestamp: self.first_ns.map(timestamp),
                last_timestamp: self.last_ns.map(timestamp),
                duration_seconds: duration,
                packets_per_second: rate(self.frames),
                bits_per_second: rate(self.bytes * 8),
                tcp_conversations: tcp,
                udp_conversations: udp,
            },
            protocols: PROTOCOLS
                .iter()
                .zip(&self.protocols)
                .filter(|(_, c)| c.packets > 0)
                .map(|(name, c)| (name.to_string(), *c))
                .collect(),
            top_talkers: TopTalkers {
                pruned_entries: self.pruned,
                by_packets: Talkers {
                    sources: top_n(&self.sources, top, |c| c.packets, |a| a.0.to_string()),
                    destinations: top_n(
                        &self.destinations,
                        top,
                        |c| c.packets,
                        |a| a.0.to_string(),
                    ),
                    pairs: top_n(
                        &self.pairs,
                        top,
                        |c| c.packets,
                        |(s, d)| format!("{} -> {}", s.0, d.0),
                    ),
                },
                by_bytes: Talkers {
                    sources: top_n(&self.sources, top, |c| c.bytes, |a| a.0.to_string()),
                    destinations: top_n(&self.destinations, top, |c| c.bytes, |a| a.0.to_string()),
                    pairs: top_n(
                        &self.pairs,
                        top,
                        |c| c.bytes,
                        |(s, d)| format!("{} -> {}", s.0, d.0),
                    ),
                },
            },
            ports: Ports {
                tcp: top_ports(&self.tcp_ports, top),
                udp: top_ports(&self.udp_ports, top),
            },
            timeline: self.timeline.report(),
        }
    }
}

/// Nanoseconds since the Unix epoch, now (0 if the clock is before it).
pub(crate) fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

pub(crate) fn timestamp(ns: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ns))
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ns.to_string())
}

/// The `n` largest entries by `key`, ties broken by the label so the report is deterministic.
fn top_n<K: Ord + Copy + std::hash::Hash>(
    map: &HashMap<K, Counter>,
    n: usize,
    key: impl Fn(&Counter) -> u64,
    label: impl Fn(&K) -> String,
) -> Vec<Talker> {
    let mut v: Vec<(&K, &Counter)> = map.iter().collect();
    let order =
        |a: &(&K, &Counter), b: &(&K, &Counter)| key(b.1).cmp(&key(a.1)).then_with(|| a.0.cmp(b.0));
    // Select the n largest first: sorting every talker would cost more than the analysis.
    if n < v.len() {
        v.select_nth_unstable_by(n, order);
        v.truncate(n);
    }
    v.sort_by(order);
    v.into_iter()
        .map(|(k, c)| Talker {
            address: label(k),
            packets: c.packets,
            bytes: c.bytes,
        })
        .collect()
}

fn top_ports(counts: &[u64; 65536], n: usize) -> Vec<PortCount> {
    let mut v: Vec<(u16, u64)> = counts
        .iter()
        .enumerate()
        .filter(|(_, c)| **c > 0)
        .map(|(p, c)| (p as u16, *c))
        .collect();
    let order = |a: &(u16, u64), b: &(u16, u64)| b.1.cmp(&a.1).then(a.0.cmp(&b.0));
    if n < v.len() {
        v.select_nth_unstable_by(n, order);
        v.truncate(n);
    }
    v.sort_unstable_by(order);
    v.into_iter()
        .map(|(port, packets)| PortCount { port, packets })
        .collect()
}

#[derive(Debug, Serialize)]
pub struct StatsReport {
    pub summary: Summary,
    pub protocols: BTreeMap<String, Counter>,
    pub top_talkers: TopTalkers,
    pub ports: Ports,
    pub timeline: TimelineReport,
}

#[derive(Debug, Serialize)]
pub struct Summary {
    pub packets: u64,
    pub bytes: u64,
    pub first_timestamp: Option<String>,
    pub last_timestamp: Option<String>,
    pub duration_seconds: f64,
    pub packets_per_second: f64,
    pub bits_per_second: f64,
    pub tcp_conversations: u64,
    pub udp_conversations: u64,
}

#[derive(Debug, Serialize)]
pub struct TopTalkers {
    /// Low-count entries dropped from tables holding 20,000 talkers (0
    /// normally); the lists are then exact for heavy talkers, approximate
    /// below.
    pub pruned_entries: u64,
    pub by_packets: Talkers,
    pub by_bytes: Talkers,
}

#[derive(Debug, Serialize)]
pub struct Talkers {
    pub sources: Vec<Talker>,
    pub destinations: Vec<Talker>,
    pub pairs: Vec<Talker>,
}

#[derive(Debug, Serialize)]
pub struct Talker {
    pub address: String,
    pub packets: u64,
    pub bytes: u64,
}

#[derive(Debug, Serialize)]
pub struct Ports {
    pub tcp: Vec<PortCount>,
    pub udp: Vec<PortCount>,
}

#[derive(Debug, Serialize)]
pub struct PortCount {
    pub port: u16,
    pub packets: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    #[test]
    fn a_timeline_counts_per_second_with_empty_seconds_included() {
        let mut t = Timeline::default();
        for (ts, len) in [
            (10 * S, 100),
            (10 * S + 5, 50),
            (12 * S + 1, 10),
            (10 * S + 7, 1),
        ] {
            t.add(ts, len);
        }
        let r = t.report();
        assert_eq!(r.bucket_seconds, 1);
        assert_eq!(r.start.as_deref(), Some("1970-01-01T00:00:10Z"));
        assert_eq!(r.packets, [3, 0, 1]);
        assert_eq!(r.bytes, [151, 0, 10]);
    }

    #[test]
    fn a_long_timeline_widens_its_buckets_and_keeps_every_packet() {
        let mut t = Timeline::default();
        // One packet per second for an hour: 3,600 one-second buckets
        // would be too many; 4-second buckets make 900.
        for s in 0..3600 {
            t.add(s * S, 1);
        }
        let r = t.report();
        assert_eq!(r.bucket_seconds, 4);
        assert_eq!(r.packets.len(), 900);
        assert!(r.packets.iter().all(|&p| p == 4));
        // A stray timestamp far away widens the buckets, never the memory.
        t.add(-1_000_000 * S, 1);
        t.add(i64::MAX, 1);
        let r = t.report();
        assert!(r.packets.len() as i64 <= MAX_BUCKETS);
        assert_eq!(r.packets.iter().sum::<u64>(), 3602);
    }
}
