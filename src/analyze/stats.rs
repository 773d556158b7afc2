//! Traffic statistics: totals, protocol distribution, talkers, ports and
//! TCP/UDP conversations.

use std::collections::BTreeMap;

use foldhash::HashMap;
use std::net::IpAddr;

use serde::Serialize;

use super::dissect::{Addr, Dissected, Transport};

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

/// Running statistics over every frame seen.
#[derive(Debug)]
pub struct Stats {
    pub frames: u64,
    pub bytes: u64,
    /// Earliest and latest timestamps (meaningful once `frames` > 0).
    first_ns: i64,
    last_ns: i64,
    /// Indexed like [`PROTOCOLS`].
    protocols: [Counter; PROTOCOLS.len()],
    hosts: HashMap<Addr, HostCounts>,
    pairs: HashMap<(Addr, Addr), PairCounts>,
    /// Packets per destination port, indexed by port.
    tcp_ports: Box<[u64; 65536]>,
    udp_ports: Box<[u64; 65536]>,
    /// Talker entries dropped from full tables.
    pruned: u64,
    timeline: Timeline,
    /// Frames whose packet came through a tunnel, by its kind.
    encapsulation: BTreeMap<&'static str, Counter>,
}

impl Default for Stats {
    fn default() -> Stats {
        Stats {
            frames: 0,
            bytes: 0,
            first_ns: i64::MAX,
            last_ns: i64::MIN,
            protocols: Default::default(),
            hosts: HashMap::default(),
            pairs: HashMap::default(),
            tcp_ports: Box::new([0; 65536]),
            udp_ports: Box::new([0; 65536]),
            pruned: 0,
            timeline: Timeline::default(),
            encapsulation: BTreeMap::new(),
        }
    }
}

/// Buckets a timeline holds at most: wider buckets past that.
pub const MAX_BUCKETS: i64 = 1000;

/// Packets and bytes over time, for the packets-per-second chart. Buckets
/// start a millisecond wide, aligned to whole milliseconds; whenever the
/// span would need more than [`MAX_BUCKETS`], they widen and neighbours
/// merge: tenfold up to a second (1 ms, 10 ms, 100 ms, 1 s), then
/// doubling. So the buckets follow the capture's length (a 0.2 s capture
/// is 200 bars, not one; an hour, 900 of 4 s). Memory is bounded whatever
/// the capture's length, and the result depends only on the frames, not on
/// the order of reading.
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
            width_ns: 1_000_000,
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
        // Round widths while below a second, then doubling as before.
        let factor = if self.width_ns < 1_000_000_000 { 10 } else { 2 };
        self.width_ns = self.width_ns.saturating_mul(factor);
        let old = std::mem::take(&mut self.buckets);
        for (i, c) in old {
            let e = self.buckets.entry(i.div_euclid(factor)).or_default();
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
                bucket_seconds: self.width_ns as f64 / 1e9,
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
            bucket_seconds: self.width_ns as f64 / 1e9,
            start: Some(timestamp(lo.saturating_mul(self.width_ns))),
            packets,
            bytes,
        }
    }
}

/// The report's `timeline`: packets and bytes per bucket from `start`.
#[derive(Debug, Serialize)]
pub struct TimelineReport {
    /// Width of each bucket: 0.001, 0.01, 0.1, 1, 2, 4, ... seconds.
    pub bucket_seconds: f64,
    /// Start of the first bucket (RFC 3339, UTC); null without frames.
    pub start: Option<String>,
    pub packets: Vec<u64>,
    pub bytes: Vec<u64>,
}

/// Entries kept per talker table (addresses, address pairs): a full table
/// of 32,768 buckets. A full table drops its lower half by packets (lossy
/// counting): heavy talkers stay exact or nearly so, memory stays bounded
/// on spoofed floods, and the report says how many entries were dropped.
pub const MAX_TALKERS: usize = 28_000;

/// What one address sent and received: one entry serves both the sources
/// and the destinations lists, so a finished flow costs two lookups here.
#[derive(Clone, Copy, Debug, Default)]
struct HostCounts {
    sent: Counter,
    received: Counter,
}

/// Both directions between two addresses, keyed (lower, higher): `up` is
/// from the lower address to the higher (and all of it when they are equal).
#[derive(Clone, Copy, Debug, Default)]
struct PairCounts {
    up: Counter,
    down: Counter,
}

/// Packets in either direction: what decides which entries a prune drops.
trait Weight {
    fn packets(&self) -> u64;
}

impl Weight for HostCounts {
    fn packets(&self) -> u64 {
        self.sent.packets + self.received.packets
    }
}

impl Weight for PairCounts {
    fn packets(&self) -> u64 {
        self.up.packets + self.down.packets
    }
}

/// The entry for `key`, first making room in a full table; also how many
/// entries were pruned to make it.
fn entry<K: std::hash::Hash + Eq + Ord + Copy, V: Weight + Default>(
    map: &mut HashMap<K, V>,
    key: K,
) -> (&mut V, u64) {
    let mut pruned = 0;
    // Only a full table needs the key looked up before the entry (the
    // entry would hold the table while the prune changes it).
    if map.len() >= MAX_TALKERS && !map.contains_key(&key) {
        let mut counts: Vec<u64> = map.values().map(Weight::packets).collect();
        let mid = counts.len() / 2;
        let (_, median, _) = counts.select_nth_unstable(mid);
        let median = *median;
        let before = map.len();
        map.retain(|_, c| c.packets() > median);
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
    (map.entry(key).or_default(), pruned)
}

impl Counter {
    fn add_counter(&mut self, c: Counter) {
        self.packets += c.packets;
        self.bytes += c.bytes;
    }
}

impl Stats {
    pub fn add(&mut self, ts_ns: i64, wire_len: u32, d: &Dissected<'_>) {
        let len = u64::from(wire_len);
        self.frames += 1;
        self.bytes += len;
        self.first_ns = self.first_ns.min(ts_ns);
        self.last_ns = self.last_ns.max(ts_ns);
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
        if let Some(t) = &d.tunnel {
            // The outer packet's protocols too, each once per frame, as
            // tshark counts a frame that holds a protocol twice.
            let outer_ip = if t.outer_ipv6 { IPV6 } else { IP };
            let inner_ip = d.ip.map(|_| if d.ipv6 { IPV6 } else { IP });
            if inner_ip != Some(outer_ip) {
                proto(outer_ip);
            }
            if t.outer_udp && !matches!(d.transport, Some(Transport::Udp { .. })) {
                proto(UDP);
            }
            self.encapsulation
                .entry(t.name(d.ipv6))
                .or_default()
                .add(len);
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
    }

    /// One packet of a flow whose server listens on `port`: the ports
    /// section counts services, not the clients' ephemeral ports.
    #[inline]
    pub fn service_port(&mut self, proto: u8, port: u16) {
        match proto {
            6 => self.tcp_ports[usize::from(port)] += 1,
            17 => self.udp_ports[usize::from(port)] += 1,
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
        self.talk_both(Addr::from(src), c, Addr::from(dst), Counter::default());
    }

    /// Count `to` from `x` to `y` and `back` from `y` to `x`: three table
    /// lookups whatever the directions hold.
    fn talk_both(&mut self, x: Addr, to: Counter, y: Addr, back: Counter) {
        let (h, pruned) = entry(&mut self.hosts, x);
        h.sent.add_counter(to);
        h.received.add_counter(back);
        self.pruned += pruned;
        let (h, pruned) = entry(&mut self.hosts, y);
        h.sent.add_counter(back);
        h.received.add_counter(to);
        self.pruned += pruned;
        let (key, up, down) = match x.cmp(&y) {
            std::cmp::Ordering::Less => ((x, y), to, back),
            std::cmp::Ordering::Greater => ((y, x), back, to),
            std::cmp::Ordering::Equal => {
                let mut all = to;
                all.add_counter(back);
                ((x, y), all, Counter::default())
            }
        };
        let (p, pruned) = entry(&mut self.pairs, key);
        p.up.add_counter(up);
        p.down.add_counter(down);
        self.pruned += pruned;
    }

    /// Add a finished flow's packets to the talkers, both directions.
    pub fn flow_finished(&mut self, f: &super::flows::Flow) {
        let (client, server) = if f.a_is_client {
            (f.key.a(), f.key.b())
        } else {
            (f.key.b(), f.key.a())
        };
        let c2s = Counter {
            packets: f.c2s.0,
            bytes: f.c2s.1,
        };
        let s2c = Counter {
            packets: f.s2c.0,
            bytes: f.s2c.1,
        };
        self.talk_both(client, c2s, server, s2c);
    }

    /// `tcp`/`udp`: conversations, as the flow table counted them.
    pub fn report(&mut self, top: usize, tcp: u64, udp: u64) -> StatsReport {
        let span = (self.frames > 0).then_some((self.first_ns, self.last_ns));
        let duration = span.map_or(0.0, |(f, l)| (l - f) as f64 / 1e9);
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
                first_timestamp: span.map(|(f, _)| timestamp(f)),
                last_timestamp: span.map(|(_, l)| timestamp(l)),
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
            encapsulation: std::mem::take(&mut self.encapsulation),
            top_talkers: self.top_talkers(top),
            ports: Ports {
                tcp: top_ports(&self.tcp_ports, top),
                udp: top_ports(&self.udp_ports, top),
            },
            timeline: self.timeline.report(),
        }
    }
}

// The clock and RFC 3339 text live in `analyze::time` (flows use them
// too, and stats reads flows: one direction between the two files).
pub(crate) use crate::clock::timestamp;

impl Stats {
    /// The top talkers: each address as a source (what it sent) and as a
    /// destination (what it received), each pair per direction.
    fn top_talkers(&self, top: usize) -> TopTalkers {
        let directed = |x: Addr, y: Addr, c: Counter| (c.packets > 0).then_some(((x, y), c));
        // One side of every address: what it sent, or what it received.
        let side = |pick: fn(&HostCounts) -> Counter| -> Vec<(Addr, Counter)> {
            self.hosts
                .iter()
                .map(|(a, h)| (*a, pick(h)))
                .filter(|(_, c)| c.packets > 0)
                .collect()
        };
        let sources = side(|h| h.sent);
        let destinations = side(|h| h.received);
        let pairs: Vec<((Addr, Addr), Counter)> = self
            .pairs
            .iter()
            .flat_map(|(&(lo, hi), p)| [directed(lo, hi, p.up), directed(hi, lo, p.down)])
            .flatten()
            .collect();
        let address = |a: &Addr| a.to_string();
        let pair = |(s, d): &(Addr, Addr)| format!("{s} -> {d}");
        TopTalkers {
            pruned_entries: self.pruned,
            by_packets: Talkers {
                sources: top_n(&sources, top, |c| c.packets, address),
                destinations: top_n(&destinations, top, |c| c.packets, address),
                pairs: top_n(&pairs, top, |c| c.packets, pair),
            },
            by_bytes: Talkers {
                sources: top_n(&sources, top, |c| c.bytes, address),
                destinations: top_n(&destinations, top, |c| c.bytes, address),
                pairs: top_n(&pairs, top, |c| c.bytes, pair),
            },
        }
    }
}

/// The `n` largest entries by `key`, ties broken by the label so the report is deterministic.
fn top_n<K: Ord + Copy>(
    entries: &[(K, Counter)],
    n: usize,
    key: impl Fn(&Counter) -> u64,
    label: impl Fn(&K) -> String,
) -> Vec<Talker> {
    let mut v: Vec<(&K, &Counter)> = entries.iter().map(|(k, c)| (k, c)).collect();
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
    /// Frames whose packet came through a tunnel sonde entered (`gre`,
    /// `erspan`, `ipip`, `6in4`, `4in6`, `ip6ip6`, `vxlan`, `gtp-u`): the
    /// rest of the report counts the inner packet.
    pub encapsulation: BTreeMap<&'static str, Counter>,
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
    /// Low-count entries dropped from tables holding 28,000 talkers (0
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
    use std::net::Ipv4Addr;

    const S: i64 = 1_000_000_000;

    fn v4(n: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(n))
    }

    fn c(packets: u64, bytes: u64) -> Counter {
        Counter { packets, bytes }
    }

    /// (address, packets, bytes) of a talker list.
    fn listed(v: &[Talker]) -> Vec<(String, u64, u64)> {
        v.iter()
            .map(|t| (t.address.clone(), t.packets, t.bytes))
            .collect()
    }

    /// The top `n` of exact counts, in the report's order.
    fn expected_top<K: Ord + Clone>(
        m: &BTreeMap<K, Counter>,
        n: usize,
        by_bytes: bool,
        label: impl Fn(&K) -> String,
    ) -> Vec<(String, u64, u64)> {
        let mut v: Vec<(&K, &Counter)> = m.iter().collect();
        let key = |c: &Counter| if by_bytes { c.bytes } else { c.packets };
        v.sort_by(|a, b| key(b.1).cmp(&key(a.1)).then_with(|| a.0.cmp(b.0)));
        v.into_iter()
            .take(n)
            .map(|(k, c)| (label(k), c.packets, c.bytes))
            .collect()
    }

    #[test]
    fn talkers_are_exact_while_the_tables_have_room() {
        let mut stats = Stats::default();
        let (mut src, mut dst, mut pairs) = (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
        fn count<K: Ord>(m: &mut BTreeMap<K, Counter>, k: K, x: Counter) {
            if x.packets > 0 {
                m.entry(k).or_default().add_counter(x);
            }
        }
        let mut seed = 7u64;
        for _ in 0..5_000 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            // 40 addresses, so pairs repeat in both directions and some talk to themselves.
            let (x, y) = (v4((seed >> 33) as u32 % 40), v4((seed >> 45) as u32 % 40));
            let (n_to, n_back) = ((seed >> 20) % 4, (seed >> 24) % 3);
            let to = c(n_to, n_to * (40 + (seed >> 8) % 1460));
            let back = c(n_back, n_back * (40 + (seed >> 12) % 900));
            stats.talk_both(x.into(), to, y.into(), back);
            for (s, d, n) in [(x, y, to), (y, x, back)] {
                count(&mut src, Addr::from(s), n);
                count(&mut dst, Addr::from(d), n);
                count(&mut pairs, (Addr::from(s), Addr::from(d)), n);
            }
        }
        let t = stats.top_talkers(15);
        assert_eq!(t.pruned_entries, 0);
        let address = |a: &Addr| a.to_string();
        let pair = |(s, d): &(Addr, Addr)| format!("{s} -> {d}");
        for (list, by_bytes) in [(&t.by_packets, false), (&t.by_bytes, true)] {
            assert_eq!(
                listed(&list.sources),
                expected_top(&src, 15, by_bytes, address)
            );
            assert_eq!(
                listed(&list.destinations),
                expected_top(&dst, 15, by_bytes, address)
            );
            assert_eq!(
                listed(&list.pairs),
                expected_top(&pairs, 15, by_bytes, pair)
            );
        }
    }

    #[test]
    fn an_address_talking_to_itself_is_one_pair_and_not_a_silent_source() {
        let mut stats = Stats::default();
        stats.talk_both(v4(1).into(), c(3, 300), v4(1).into(), c(2, 20));
        // Only received: listed as a destination, never as a source.
        stats.talk_both(v4(2).into(), c(1, 60), v4(3).into(), Counter::default());
        let t = stats.top_talkers(10);
        assert_eq!(
            listed(&t.by_packets.pairs),
            [
                ("0.0.0.1 -> 0.0.0.1".to_string(), 5, 320),
                ("0.0.0.2 -> 0.0.0.3".to_string(), 1, 60)
            ]
        );
        assert_eq!(
            listed(&t.by_packets.sources),
            [
                ("0.0.0.1".to_string(), 5, 320),
                ("0.0.0.2".to_string(), 1, 60)
            ]
        );
        assert_eq!(
            listed(&t.by_packets.destinations),
            [
                ("0.0.0.1".to_string(), 5, 320),
                ("0.0.0.3".to_string(), 1, 60)
            ]
        );
    }

    #[test]
    fn a_spoofed_flood_prunes_the_tables_but_keeps_heavy_talkers_exact() {
        let mut stats = Stats::default();
        let (heavy, victim) = (v4(0xc612_0001), v4(0xc612_0002));
        for i in 0..100_000u32 {
            if i % 100 == 0 {
                stats.talk_both(heavy.into(), c(5, 500), victim.into(), c(1, 60));
            }
            stats.talk(v4(0x0a00_0000 + i), victim, 40);
        }
        let t = stats.top_talkers(3);
        assert!(t.pruned_entries > 0);
        assert!(stats.hosts.len() <= MAX_TALKERS && stats.pairs.len() <= MAX_TALKERS);
        assert_eq!(
            listed(&t.by_packets.sources)[0],
            ("198.18.0.1".to_string(), 5_000, 500_000)
        );
        assert_eq!(
            listed(&t.by_packets.destinations)[0],
            ("198.18.0.2".to_string(), 105_000, 4_500_000)
        );
        assert_eq!(
            listed(&t.by_packets.pairs)[0],
            ("198.18.0.1 -> 198.18.0.2".to_string(), 5_000, 500_000)
        );
    }

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
        // Over 2 s: 10 ms buckets would be 201, 1 ms ones 2,001 (too many).
        assert_eq!(r.bucket_seconds, 0.01);
        assert_eq!(r.start.as_deref(), Some("1970-01-01T00:00:10Z"));
        assert_eq!(r.packets.len(), 201);
        assert_eq!((r.packets[0], r.packets[200]), (3, 1));
        assert_eq!((r.bytes[0], r.bytes[200]), (151, 10));
        // Whole seconds, as a capture of minutes shows them.
        let mut t = Timeline::default();
        for (ts, len) in [
            (10 * S, 100),
            (10 * S + 5, 50),
            (12 * S + 1, 10),
            (10 * S + 7, 1),
            (200 * S, 0),
        ] {
            t.add(ts, len);
        }
        let r = t.report();
        assert_eq!(r.bucket_seconds, 1.0);
        assert_eq!(r.packets.len(), 191);
        assert_eq!(r.packets[190], 1);
        assert_eq!(r.packets[..3], [3, 0, 1]);
        assert_eq!(r.bytes[..3], [151, 0, 10]);
    }

    /// Regression (issue 27): a 0.2 s capture was one bar.
    #[test]
    fn a_short_capture_gets_buckets_as_short_as_it_is() {
        let mut t = Timeline::default();
        for ms in 0..200 {
            t.add(5 * S + ms * 1_000_000, 60);
        }
        let r = t.report();
        assert_eq!(r.bucket_seconds, 0.001);
        assert_eq!(r.packets.len(), 200);
        assert!(r.packets.iter().all(|&p| p == 1));
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
        assert_eq!(r.bucket_seconds, 4.0);
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
