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

/// Running statistics over every frame seen.
#[derive(Debug, Default)]
pub struct Stats {
    pub frames: u64,
    pub bytes: u64,
    pub first_ns: Option<i64>,
    pub last_ns: Option<i64>,
    pub protocols: BTreeMap<&'static str, Counter>,
    sources: HashMap<IpAddr, Counter>,
    destinations: HashMap<IpAddr, Counter>,
    pairs: HashMap<(IpAddr, IpAddr), Counter>,
    tcp_ports: HashMap<u16, u64>,
    udp_ports: HashMap<u16, u64>,
}

impl Stats {
    pub fn add(&mut self, ts_ns: i64, wire_len: u32, d: &Dissected<'_>) {
        let len = u64::from(wire_len);
        self.frames += 1;
        self.bytes += len;
        self.first_ns = Some(self.first_ns.map_or(ts_ns, |f| f.min(ts_ns)));
        self.last_ns = Some(self.last_ns.map_or(ts_ns, |l| l.max(ts_ns)));
        let mut proto = |name: &'static str| self.protocols.entry(name).or_default().add(len);
        if d.ethernet {
            proto("eth");
        }
        if d.sll {
            proto("sll");
        }
        if d.vlan {
            proto("vlan");
        }
        if d.arp {
            proto("arp");
        }
        if let Some(ip) = &d.ip {
            proto(if d.ipv6 { "ipv6" } else { "ip" });
            if ip.fragment.is_some() {
                proto("ip_fragment");
            }
        }
        match d.transport {
            Some(Transport::Tcp {
                payload,
                sport,
                dport,
                ..
            }) => {
                proto("tcp");
                if (sport == 53 || dport == 53) && !payload.is_empty() {
                    proto("dns");
                }
            }
            Some(Transport::Udp {
                payload,
                sport,
                dport,
            }) => {
                proto("udp");
                if (sport == 53 || dport == 53) && payload.len() >= 12 {
                    proto("dns");
                }
            }
            Some(Transport::Icmp { .. }) => proto("icmp"),
            Some(Transport::Icmpv6 { .. }) => proto("icmpv6"),
            None => {}
        }
        let Some(ip) = &d.ip else { return };
        self.sources.entry(ip.src).or_default().add(len);
        self.destinations.entry(ip.dst).or_default().add(len);
        self.pairs.entry((ip.src, ip.dst)).or_default().add(len);
        match d.transport {
            Some(Transport::Tcp {
                dport, valid: true, ..
            }) => *self.tcp_ports.entry(dport).or_default() += 1,
            Some(Transport::Udp { dport, .. }) => *self.udp_ports.entry(dport).or_default() += 1,
            _ => {}
        }
    }

    /// The report's `summary`, `protocols`, `top_talkers` and `ports` sections.
    /// `tcp`/`udp`: conversations, as the flow table counted them.
    pub fn report(&self, top: usize, tcp: u64, udp: u64) -> StatsReport {
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
            protocols: self
                .protocols
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            top_talkers: TopTalkers {
                by_packets: Talkers {
                    sources: top_n(&self.sources, top, |c| c.packets, |a| a.to_string()),
                    destinations: top_n(&self.destinations, top, |c| c.packets, |a| a.to_string()),
                    pairs: top_n(
                        &self.pairs,
                        top,
                        |c| c.packets,
                        |(s, d)| format!("{s} -> {d}"),
                    ),
                },
                by_bytes: Talkers {
                    sources: top_n(&self.sources, top, |c| c.bytes, |a| a.to_string()),
                    destinations: top_n(&self.destinations, top, |c| c.bytes, |a| a.to_string()),
                    pairs: top_n(
                        &self.pairs,
                        top,
                        |c| c.bytes,
                        |(s, d)| format!("{s} -> {d}"),
                    ),
                },
            },
            ports: Ports {
                tcp: top_ports(&self.tcp_ports, top),
                udp: top_ports(&self.udp_ports, top),
            },
        }
    }
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
fn top_n<K: Ord + Copy>(
    map: &HashMap<K, Counter>,
    n: usize,
    key: impl Fn(&Counter) -> u64,
    label: impl Fn(&K) -> String,
) -> Vec<Talker> {
    let mut v: Vec<(&K, &Counter)> = map.iter().collect();
    v.sort_by(|a, b| key(b.1).cmp(&key(a.1)).then_with(|| a.0.cmp(b.0)));
    v.into_iter()
        .take(n)
        .map(|(k, c)| Talker {
            address: label(k),
            packets: c.packets,
            bytes: c.bytes,
        })
        .collect()
}

fn top_ports(map: &HashMap<u16, u64>, n: usize) -> Vec<PortCount> {
    let mut v: Vec<(u16, u64)> = map.iter().map(|(p, c)| (*p, *c)).collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v.into_iter()
        .take(n)
        .map(|(port, packets)| PortCount { port, packets })
        .collect()
}

#[derive(Debug, Serialize)]
pub struct StatsReport {
    pub summary: Summary,
    pub protocols: BTreeMap<String, Counter>,
    pub top_talkers: TopTalkers,
    pub ports: Ports,
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
