//! `beaconing`: a client that sends a small message to one server, on a
//! port no common service uses, at a steady period: the heartbeat of a
//! remote-access trojan's command channel (njRAT, DarkComet, a Cobalt
//! Strike beacon without jitter), whether it keeps one connection open or
//! opens a new one for each beat.
//!
//! A beat is a burst of the client's payload (packets less than
//! [`BURST_GAP_NS`] apart) of at most `max_beat_bytes`. A series is
//! regular when at least `min_regular_share` of the intervals between its
//! beats are within `max_jitter` of their median, the median between
//! `min_period_seconds` and `max_period_seconds`, over at least
//! `min_beats` beats. A monitoring system polls many hosts at its period:
//! a client with regular series to `max_fan_out` servers or more on one
//! port is polling them, and is left out.

use std::collections::BTreeMap;
use std::net::IpAddr;

use foldhash::HashMap;
use serde::{Deserialize, Serialize};

use super::{Anomaly, Closest, Severity, Span, push_example, thousands};

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct BeaconingThresholds {
    pub min_beats: u64,
    pub min_period_seconds: f64,
    pub max_period_seconds: f64,
    /// How far an interval may be from the median, as a share of it.
    pub max_jitter: f64,
    /// The share of intervals that must be that close.
    pub min_regular_share: f64,
    /// The most payload bytes a beat carries.
    pub max_beat_bytes: u64,
    /// Servers one client polls on one port at a steady period from which
    /// it is monitoring, not beaconing.
    pub max_fan_out: u64,
}

impl Default for BeaconingThresholds {
    fn default() -> Self {
        BeaconingThresholds {
            // A minute of a 10 s heartbeat.
            min_beats: 6,
            // Faster than a second is a protocol's own chatter (a game,
            // a stream), not a check-in.
            min_period_seconds: 1.0,
            max_period_seconds: 3_600.0,
            // Timers drift by milliseconds; a scheduler under load by a
            // few per cent.
            max_jitter: 0.1,
            min_regular_share: 0.8,
            // njRAT's keep-alive is a few bytes, a Meterpreter or Cobalt
            // Strike check-in a few hundred.
            max_beat_bytes: 1_024,
            max_fan_out: 3,
        }
    }
}

/// Packets of one beat are closer than this.
const BURST_GAP_NS: i64 = 500_000_000;
/// Intervals kept per series: ten minutes of a 10 s heartbeat.
const MAX_INTERVALS: usize = 64;
/// Series followed; past this, new ones are not (memory stays bounded).
const MAX_SERIES: usize = 16_384;

/// Ports of common services, where periodic traffic is the service's
/// own (keep-alives, polling, push notifications, metrics): a beacon on
/// them is not told from the service by timing alone.
const COMMON_PORTS: &[u16] = &[
    20, 21, 22, 23, 25, 53, 67, 68, 69, 80, 88, 110, 111, 119, 123, 135, 137, 138, 139, 143, 161,
    162, 179, 389, 443, 445, 464, 465, 500, 514, 515, 520, 546, 547, 554, 587, 631, 636, 853, 873,
    993, 995, 1194, 1433, 1514, 1521, 1701, 1723, 1812, 1813, 1883, 1900, 2049, 2181, 2375, 2376,
    3128, 3268, 3306, 3389, 3478, 3702, 4500, 4789, 5060, 5061, 5222, 5223, 5228, 5353, 5355, 5432,
    5601, 5666, 5671, 5672, 5900, 6379, 6443, 6514, 8000, 8008, 8080, 8086, 8088, 8125, 8443, 8883,
    9000, 9042, 9090, 9092, 9093, 9100, 9200, 9300, 9418, 10050, 10051, 11211, 15672, 27017,
];

/// Whether periodic traffic to `port` may be a beacon.
pub(crate) fn unusual_port(port: u16) -> bool {
    // Sorted (a test holds it so): seven comparisons, per packet.
    COMMON_PORTS.binary_search(&port).is_err()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_common_ports_are_sorted_for_the_search() {
        assert!(super::COMMON_PORTS.windows(2).all(|w| w[0] < w[1]));
        assert!(!super::unusual_port(443) && super::unusual_port(4444));
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct SeriesKey {
    client: IpAddr,
    server: IpAddr,
    port: u16,
    proto: u8,
}

struct Series {
    /// The beat being gathered: its start, last packet and bytes.
    start: i64,
    last: i64,
    bytes: u64,
    /// Beats closed, and how many of them were small.
    beats: u64,
    small: u64,
    /// Start of the previous closed beat.
    prev_start: Option<i64>,
    /// Milliseconds between beat starts, the first [`MAX_INTERVALS`].
    intervals: Vec<u32>,
    span: Span,
    examples: Vec<u64>,
}

impl Series {
    fn close_beat(&mut self, max_bytes: u64) {
        self.beats += 1;
        if self.bytes <= max_bytes {
            self.small += 1;
        }
        if let Some(p) = self.prev_start
            && self.intervals.len() < MAX_INTERVALS
        {
            let ms = (self.start - p) / 1_000_000;
            self.intervals.push(ms.clamp(0, i64::from(u32::MAX)) as u32);
        }
        self.prev_start = Some(self.start);
    }
}

/// What a series' timing says.
struct Rhythm {
    period_s: f64,
    regular: usize,
    intervals: usize,
}

impl Rhythm {
    fn of(s: &Series, jitter: f64) -> Option<Rhythm> {
        let mut v = s.intervals.clone();
        // The beat still open at the end of the capture is a beat too.
        if let Some(p) = s.prev_start
            && v.len() < MAX_INTERVALS
        {
            v.push(((s.start - p) / 1_000_000).clamp(0, i64::from(u32::MAX)) as u32);
        }
        if v.is_empty() {
            return None;
        }
        v.sort_unstable();
        let median = f64::from(v[v.len() / 2]);
        let regular = v
            .iter()
            .filter(|&&i| (f64::from(i) - median).abs() <= jitter * median)
            .count();
        Some(Rhythm {
            period_s: median / 1e3,
            regular,
            intervals: v.len(),
        })
    }
}

pub struct Beaconing {
    t: BeaconingThresholds,
    series: HashMap<SeriesKey, Series>,
    untracked: u64,
}

impl Beaconing {
    pub fn new(t: BeaconingThresholds) -> Beaconing {
        Beaconing {
            t,
            series: HashMap::default(),
            untracked: 0,
        }
    }

    /// A packet with `len` payload bytes from a flow's client to its
    /// server, on a port where [`unusual_port`] holds.
    #[allow(clippy::too_many_arguments)]
    pub fn client_payload(
        &mut self,
        frame: u64,
        ts: i64,
        client: IpAddr,
        server: IpAddr,
        port: u16,
        proto: u8,
        len: usize,
    ) {
        let key = SeriesKey {
            client,
            server,
            port,
            proto,
        };
        if !self.series.contains_key(&key) && self.series.len() >= MAX_SERIES {
            self.untracked += 1;
            return;
        }
        let max_bytes = self.t.max_beat_bytes;
        let s = self.series.entry(key).or_insert_with(|| Series {
            start: ts,
            last: ts,
            bytes: 0,
            beats: 0,
            small: 0,
            prev_start: None,
            intervals: Vec::new(),
            span: Span::new(ts),
            examples: Vec::new(),
        });
        if ts - s.last >= BURST_GAP_NS {
            s.close_beat(max_bytes);
            s.start = ts;
            s.bytes = 0;
            push_example(&mut s.examples, frame);
        } else if s.examples.is_empty() {
            push_example(&mut s.examples, frame);
        }
        s.last = s.last.max(ts);
        s.bytes += len as u64;
        s.span.add(ts);
    }

    /// Series that look like a heartbeat, before the fan-out rule.
    fn regular(&self) -> Vec<(SeriesKey, &Series, Rhythm)> {
        let t = &self.t;
        let mut out = Vec::new();
        for (k, s) in &self.series {
            let Some(r) = Rhythm::of(s, t.max_jitter) else {
                continue;
            };
            let beats = s.beats + 1;
            let small_share =
                (s.small + u64::from(s.bytes <= t.max_beat_bytes)) as f64 / beats as f64;
            if beats >= t.min_beats
                && r.period_s >= t.min_period_seconds
                && r.period_s <= t.max_period_seconds
                && r.regular as f64 >= t.min_regular_share * r.intervals as f64
                && small_share >= t.min_regular_share
            {
                out.push((*k, s, r));
            }
        }
        out.sort_by_key(|(k, _, _)| *k);
        out
    }

    /// Clients polling `max_fan_out` servers or more on one port.
    fn pollers(&self, regular: &[(SeriesKey, &Series, Rhythm)]) -> Vec<(IpAddr, u16, u8)> {
        let mut servers: BTreeMap<(IpAddr, u16, u8), u64> = BTreeMap::new();
        for (k, _, _) in regular {
            *servers.entry((k.client, k.port, k.proto)).or_default() += 1;
        }
        servers
            .into_iter()
            .filter(|(_, n)| *n >= self.t.max_fan_out)
            .map(|(k, _)| k)
            .collect()
    }

    /// The longest steady series' regular beats (pollers left out).
    pub fn closest(&self) -> Option<Closest> {
        let regular = self.regular();
        let pollers = self.pollers(&regular);
        let mut best = None;
        for (k, s) in &self.series {
            if pollers.contains(&(k.client, k.port, k.proto)) {
                continue;
            }
            let Some(r) = Rhythm::of(s, self.t.max_jitter) else {
                continue;
            };
            if r.period_s < self.t.min_period_seconds || r.period_s > self.t.max_period_seconds {
                continue;
            }
            best = Closest::max(
                best,
                Closest {
                    measure: "steady_beats",
                    value: (r.regular + 1) as f64,
                    threshold: self.t.min_beats as f64,
                    at: format!("{} -> {}:{}", k.client, k.server, k.port),
                },
            );
        }
        best
    }

    pub fn finish(self) -> Vec<Anomaly> {
        let t = &self.t;
        let thresholds = BTreeMap::from([
            ("min_beats", t.min_beats as f64),
            ("min_period_seconds", t.min_period_seconds),
            ("max_period_seconds", t.max_period_seconds),
            ("max_jitter", t.max_jitter),
            ("min_regular_share", t.min_regular_share),
            ("max_beat_bytes", t.max_beat_bytes as f64),
            ("max_fan_out", t.max_fan_out as f64),
        ]);
        let regular = self.regular();
        let pollers = self.pollers(&regular);
        let mut out = Vec::new();
        for (k, s, r) in regular {
            if pollers.contains(&(k.client, k.port, k.proto)) {
                continue;
            }
            let proto = if k.proto == 6 { "tcp" } else { "udp" };
            let beats = s.beats + 1;
            let share = r.regular as f64 / r.intervals as f64;
            let public = match k.server {
                IpAddr::V4(a) => {
                    let shared = a.octets()[0] == 100 && (a.octets()[1] & 0xc0) == 64;
                    !(a.is_private() || a.is_loopback() || a.is_link_local() || shared)
                }
                IpAddr::V6(a) => !(a.is_loopback() || (a.segments()[0] & 0xfe00) == 0xfc00),
            };
            out.push(Anomaly {
                evidence: BTreeMap::from([
                    ("beats", beats as f64),
                    ("period_seconds", r.period_s),
                    ("regular_share", share),
                    ("small_beats", s.small as f64),
                    ("duration_seconds", s.span.seconds()),
                ]),
                thresholds: thresholds.clone(),
                sources: vec![k.client.to_string()],
                destinations: vec![k.server.to_string()],
                ports: vec![k.port],
                note: Some(format!(
                    "{} of {} intervals within {:.0}% of {:.1} s, each beat at most {} bytes, on {}/{proto}, a port no common service uses{}",
                    r.regular,
                    r.intervals,
                    t.max_jitter * 100.0,
                    r.period_s,
                    t.max_beat_bytes,
                    k.port,
                    if public { "; the server is outside private address space" } else { "" }
                )),
                ..Anomaly::new(
                    "beaconing",
                    Some(if k.proto == 6 { "tcp" } else { "udp" }),
                    Severity::Medium,
                    format!(
                        "{} checks in with {}:{}/{proto} every {:.1} s ({} beats over {:.0} s): a command channel's heartbeat",
                        k.client,
                        k.server,
                        k.port,
                        r.period_s,
                        thousands(beats),
                        s.span.seconds()
                    ),
                    s.span,
                    s.examples.clone(),
                )
            });
        }
        super::note_untracked(
            &mut out,
            self.untracked,
            format_args!("packets past the first {MAX_SERIES} series"),
        );
        out
    }
}
