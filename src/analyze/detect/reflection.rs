//! `reflection`: a victim seen from the receiving end of a reflection or
//! amplification attack, from finished flows.
//!
//! * `syn_ack_backscatter`: SYN-ACKs (or RSTs) reaching a host that sent
//!   no SYN for them, from many sources. Someone spoofed the victim's
//!   address in SYNs to those servers, whose answers all land on it (or the
//!   victim's own spoofed SYN flood's backscatter).
//! * `udp_amplification`: responses from a service port that amplifies
//!   (DNS 53, NTP 123, SSDP 1900, memcached 11211, CLDAP 389, ISAKMP 500,
//!   chargen 19, SNMP 161, ...) reaching one host from many sources with
//!   no request captured, or answering requests in its name with five
//!   times their bytes or more; where requests were captured, the byte
//!   amplification factor is given.
//!
//! A flow whose first packet is the answer (SYN-ACK first, a service's UDP
//! response first) is the signal: requests a host really sent open their
//! flows first.

use std::collections::BTreeMap;
use std::net::IpAddr;

use hashbrown::{HashMap, HashSet};
use serde::{Deserialize, Serialize};

use super::{Anomaly, Severity, Span, push_example};
use crate::analyze::flows::Flow;

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReflectionThresholds {
    /// Unsolicited answers reaching one victim.
    pub min_answers: u64,
    /// Distinct reflectors sending them.
    pub min_sources: u64,
    /// Distinct reflectors for a service port off the amplifier list,
    /// recognised by its shape alone (one-way answers from one source port).
    pub min_sources_unlisted_port: u64,
}

impl Default for ReflectionThresholds {
    fn default() -> Self {
        ReflectionThresholds {
            // An ordinary host sees an unsolicited answer now and then (a
            // late reply after a reboot); a hundred from ten servers is
            // someone else's traffic landing on it.
            min_answers: 100,
            min_sources: 10,
            // Without the port's name to go by, five times the sources: a
            // handful of peers sending from one port without an answer is
            // a protocol's quirk; fifty is someone's flood.
            min_sources_unlisted_port: 50,
        }
    }
}

/// UDP services that answer a small request with a larger response, as
/// US-CERT TA14-017A lists them (and SSDP, CLDAP, WS-Discovery, ARMS).
const AMPLIFIERS: [(u16, &str); 16] = [
    (17, "qotd"),
    (19, "chargen"),
    (53, "dns"),
    (69, "tftp"),
    (111, "portmap"),
    (123, "ntp"),
    (137, "netbios"),
    (161, "snmp"),
    (389, "cldap"),
    (500, "isakmp"),
    (520, "rip"),
    (1900, "ssdp"),
    (3283, "arms"),
    (3702, "ws-discovery"),
    (5353, "mdns"),
    (11211, "memcached"),
];

fn amplifier(port: u16) -> Option<&'static str> {
    AMPLIFIERS
        .iter()
        .find(|(p, _)| *p == port)
        .map(|(_, name)| *name)
}

/// Ports that collect one-way traffic from many senders (SNMP traps,
/// syslog, NetFlow/IPFIX, sFlow): many sources and no answer is their
/// ordinary shape, not a flood.
const COLLECTORS: [u16; 7] = [162, 514, 2055, 4739, 6343, 9995, 9996];

/// Multicast and broadcast destinations: many senders are their nature
/// (mDNS, SSDP announcements), no victim.
fn is_group(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => a.is_multicast() || a.is_broadcast() || a.octets()[3] == 255,
        IpAddr::V6(a) => a.is_multicast(),
    }
}

/// Victims tracked; more are not followed.
const MAX_VICTIMS: usize = 10_000;
/// Reflectors counted exactly per victim; estimated beyond.
const MAX_SOURCES: usize = 4_096;

const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const ACK: u8 = 0x10;

#[derive(Default)]
struct Victim {
    answers: u64,
    /// Of the answers, those whose request was not captured.
    unsolicited: u64,
    packets: u64,
    bytes: u64,
    sources: HashSet<IpAddr>,
    sources_capped: bool,
    /// Past MAX_SOURCES, the reflectors estimated (HyperLogLog++).
    sources_estimate: Option<Box<cardinality_estimator::CardinalityEstimator<IpAddr>>>,
    ports: BTreeMap<u16, u64>,
    /// Requests the victim was seen sending to the service, and their
    /// answers' bytes (for the amplification factor).
    request_bytes: u64,
    answered_bytes: u64,
    span: Option<Span>,
    examples: Vec<u64>,
}

impl Victim {
    fn add_source(&mut self, src: IpAddr) {
        if self.sources.len() < MAX_SOURCES {
            self.sources.insert(src);
            return;
        }
        if !self.sources.contains(&src) {
            self.sources_capped = true;
        }
        let sources = &self.sources;
        self.sources_estimate
            .get_or_insert_with(|| {
                let mut e = Box::new(cardinality_estimator::CardinalityEstimator::new());
                for s in sources {
                    e.insert(s);
                }
                e
            })
            .insert(&src);
    }

    /// "4,096 sources", or past the exact count "about 6,900 sources
    /// (estimated; 4096 counted exactly)".
    fn sources_text(&self) -> String {
        match self
            .sources_estimate
            .as_ref()
            .filter(|_| self.sources_capped)
        {
            Some(e) => format!(
                "about {} sources (estimated; {} counted exactly)",
                super::thousands(e.estimate().max(self.sources.len()) as u64),
                self.sources.len()
            ),
            None => format!("{} sources", self.sources.len()),
        }
    }

    fn note(&mut self, f: &Flow) {
        Span::cover(&mut self.span, f.first_ns, f.last_ns);
        push_example(&mut self.examples, f.first_frame);
    }
}

pub struct Reflection {
    t: ReflectionThresholds,
    /// victim → unsolicited SYN-ACKs and RSTs.
    backscatter: HashMap<IpAddr, Victim>,
    /// (victim, service port) → unsolicited responses.
    amplified: HashMap<(IpAddr, u16), Victim>,
}

impl Reflection {
    pub fn new(t: ReflectionThresholds) -> Reflection {
        Reflection {
            t,
            backscatter: HashMap::default(),
            amplified: HashMap::default(),
        }
    }

    pub fn flow_finished(&mut self, f: &Flow) {
        let k = f.key;
        // (first sender, its port), (the other side, its port)
        let ((client, cport), (server, sport)) = if f.a_is_client {
            ((k.a().ip(), k.a_port), (k.b().ip(), k.b_port))
        } else {
            ((k.b().ip(), k.b_port), (k.a().ip(), k.a_port))
        };
        match k.proto {
            6 if f.syns == 0 => {
                // A SYN-ACK first: the flow table makes its receiver the
                // client. A RST first: its sender is the client.
                let (victim, reflector, port) = if f.first_flags & (SYN | ACK) == SYN | ACK {
                    (client, server, sport)
                } else if f.first_flags & RST != 0 {
                    (server, client, cport)
                } else {
                    return;
                };
                let full = self.backscatter.len() >= MAX_VICTIMS;
                if full && !self.backscatter.contains_key(&victim) {
                    return;
                }
                let v = self.backscatter.entry(victim).or_default();
                v.answers += 1;
                v.packets += f.c2s.0 + f.s2c.0;
                v.bytes += f.c2s.1 + f.s2c.1;
                v.add_source(reflector);
                *v.ports.entry(port).or_default() += 1;
                v.note(f);
            }
            17 => {
                // A service's response opened the flow: no request seen
                // (the victim's view), whatever the victim's port (DNS
                // answers aimed at its port 22 are a flood all the same).
                // A port off the amplifier list counts by its shape alone:
                // the victim never answers, and the findings ask more
                // sources of it. Or a request (spoofed in the victim's
                // name, where the capture sees it) answered with five
                // times its bytes or more: an amplifying exchange;
                // ordinary DNS answers are two to four times the query.
                let one_way_answer = cport != sport
                    && cport != 0
                    && !is_group(server)
                    && !COLLECTORS.contains(&sport)
                    && (amplifier(cport).is_some() || (f.s2c.0 == 0 && cport < sport));
                let (victim, reflector, port, packets, bytes, unsolicited) = if one_way_answer {
                    (server, client, cport, f.c2s.0, f.c2s.1, true)
                } else if amplifier(sport).is_some() && f.c2s.0 > 0 && f.s2c.1 >= 5 * f.c2s.1.max(1)
                {
                    (client, server, sport, f.s2c.0, f.s2c.1, false)
                } else {
                    return;
                };
                let key = (victim, port);
                if self.amplified.len() >= MAX_VICTIMS && !self.amplified.contains_key(&key) {
                    return;
                }
                let v = self.amplified.entry(key).or_default();
                // Every response packet: a victim's fixed port makes one
                // flow per reflector, however many answers it sends.
                v.answers += packets;
                v.packets += packets;
                v.bytes += bytes;
                if unsolicited {
                    v.unsolicited += packets;
                } else {
                    v.request_bytes += f.c2s.1;
                    v.answered_bytes += f.s2c.1;
                }
                v.add_source(reflector);
                v.note(f);
            }
            _ => {}
        }
    }

    /// The most reflectors answering one victim unasked, against the
    /// threshold.
    pub fn closest(&self) -> Option<super::Closest> {
        let mut best: Option<super::Closest> = None;
        let all = self
            .backscatter
            .iter()
            .map(|(v, x)| (*v, None, x))
            .chain(self.amplified.iter().map(|((v, p), x)| (*v, Some(*p), x)));
        for (victim, port, v) in all {
            let threshold = match port {
                Some(p) if amplifier(p).is_none() => self.t.min_sources_unlisted_port,
                _ => self.t.min_sources,
            };
            best = super::Closest::max(
                best,
                super::Closest {
                    measure: "reflectors_to_one_victim",
                    value: v.sources.len() as f64,
                    threshold: threshold as f64,
                    at: match port {
                        Some(p) => format!("{victim} from port {p}"),
                        None => victim.to_string(),
                    },
                },
            );
        }
        best
    }

    pub fn finish(self) -> Vec<Anomaly> {
        let th = &self.t;
        let thresholds = BTreeMap::from([
            ("min_answers", th.min_answers as f64),
            ("min_sources", th.min_sources as f64),
        ]);
        let mut out = Vec::new();
        let mut victims: Vec<(IpAddr, Victim)> = self.backscatter.into_iter().collect();
        victims.sort_by_key(|(ip, _)| *ip);
        for (victim, v) in victims {
            if v.answers < th.min_answers || (v.sources.len() as u64) < th.min_sources {
                continue;
            }
            let span = v.span.expect("a victim has a span");
            let rate = if span.seconds() > 0.0 {
                v.answers as f64 / span.seconds()
            } else {
                v.answers as f64
            };
            let mut ports: Vec<(u16, u64)> = v.ports.iter().map(|(p, n)| (*p, *n)).collect();
            ports.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            out.push(Anomaly {
                evidence: BTreeMap::from([
                    ("unsolicited_answers", v.answers as f64),
                    ("distinct_sources", v.sources.len() as f64),
                    ("answers_per_second", rate),
                    ("packets", v.packets as f64),
                    ("bytes", v.bytes as f64),
                ]),
                thresholds: thresholds.clone(),
                sources: super::addrs(v.sources.iter()),
                destinations: vec![victim.to_string()],
                ports: ports.iter().take(20).map(|(p, _)| *p).collect(),
                note: v.sources_capped.then(|| {
                    format!("{MAX_SOURCES} sources counted exactly, the rest estimated")
                }),
                ..Anomaly::new(
                    "reflection",
                    Some("syn_ack_backscatter"),
                    if rate >= 1000.0 {
                        Severity::High
                    } else {
                        Severity::Medium
                    },
                    format!(
                        "{} SYN-ACKs or RSTs to {victim} for SYNs it did not send, from {} ({rate:.0}/s)",
                        v.answers,
                        v.sources_text()
                    ),
                    span,
                    v.examples,
                )
            });
        }
        let mut amplified: Vec<((IpAddr, u16), Victim)> = self.amplified.into_iter().collect();
        amplified.sort_by_key(|(k, _)| *k);
        for ((victim, port), v) in amplified {
            let min_sources = if amplifier(port).is_some() {
                th.min_sources
            } else {
                th.min_sources_unlisted_port
            };
            if v.answers < th.min_answers || (v.sources.len() as u64) < min_sources {
                continue;
            }
            let span = v.span.expect("a victim has a span");
            let service = amplifier(port)
                .map(str::to_string)
                .unwrap_or_else(|| format!("udp/{port}"));
            let mut evidence = BTreeMap::from([
                ("responses", v.answers as f64),
                ("unsolicited_responses", v.unsolicited as f64),
                ("distinct_sources", v.sources.len() as f64),
                ("packets", v.packets as f64),
                ("bytes", v.bytes as f64),
                (
                    "bytes_per_second",
                    if span.seconds() > 0.0 {
                        v.bytes as f64 / span.seconds()
                    } else {
                        v.bytes as f64
                    },
                ),
            ]);
            if v.request_bytes > 0 {
                evidence.insert(
                    "amplification_factor",
                    v.answered_bytes as f64 / v.request_bytes as f64,
                );
            }
            let mut thresholds = thresholds.clone();
            if amplifier(port).is_none() {
                thresholds.insert(
                    "min_sources_unlisted_port",
                    th.min_sources_unlisted_port as f64,
                );
            }
            out.push(Anomaly {
                evidence,
                thresholds,
                sources: super::addrs(v.sources.iter()),
                destinations: vec![victim.to_string()],
                ports: vec![port],
                note: v.sources_capped.then(|| {
                    format!("{MAX_SOURCES} sources counted exactly, the rest estimated")
                }),
                ..Anomaly::new(
                    "reflection",
                    Some("udp_amplification"),
                    Severity::High,
                    format!(
                        "{} {service} responses to {victim} ({} with no request seen), from {} ({} bytes)",
                        v.answers,
                        v.unsolicited,
                        v.sources_text(),
                        v.bytes
                    ),
                    span,
                    v.examples,
                )
            });
        }
        out
    }
}
