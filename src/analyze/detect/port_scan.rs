//! `port_scan`: one source touching many ports of one host (vertical) or one
//! port on many hosts (horizontal), and stealth probes (FIN, NULL, XMAS)
//! that ordinary TCP never sends. Judged on finished flows: a flow's first
//! packet says what kind of probe opened it, and flows that carried payload
//! both ways are conversations, not probes, and are left out.

use std::collections::BTreeMap;
use std::net::IpAddr;

use foldhash::{HashMap, HashSet};
use serde::{Deserialize, Serialize};

use super::{Anomaly, Severity, Span, push_example};
use crate::analyze::flows::{ACK, FIN, Flow, PSH, RST, SYN, URG};

/// Defaults: 50 distinct ports of one host, or one port on 50 hosts, from
/// one source (Snort's sfPortscan "medium" sensitivity reports well below
/// nmap's 1,000-port default scan; 50 leaves room for busy clients), and a
/// single FIN/NULL/XMAS probe, which no ordinary TCP stack sends.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PortScanThresholds {
    pub min_ports_vertical: u64,
    pub min_hosts_horizontal: u64,
    pub min_stealth_probes: u64,
    /// Distinct IP protocols one source probes on one host (nmap -sO),
    /// from its packets (other than TCP, UDP and ICMP) and the
    /// protocol-unreachable replies they draw.
    pub min_ip_protocols: u64,
    /// Fewer protocols than that, from this many, to one unicast host: a
    /// low-severity small protocol scan (routers speak OSPF, PIM, VRRP and
    /// IGMP to multicast groups, not to one host).
    pub min_ip_protocols_small: u64,
    /// Distinct ports one source probes on one host, below
    /// `min_ports_vertical` (and 50), that still make a low-severity
    /// finding (a responder wants a handful of probed ports named, not
    /// silence).
    pub min_ports_small: u64,
}

impl Default for PortScanThresholds {
    fn default() -> Self {
        PortScanThresholds {
            min_ports_vertical: 50,
            min_hosts_horizontal: 50,
            min_stealth_probes: 1,
            // Ordinary pairs use two or three (TCP, UDP, ICMP); an IP
            // protocol scan tries all 256.
            min_ip_protocols: 8,
            min_ip_protocols_small: 4,
            min_ports_small: 5,
        }
    }
}

/// The most ports a small scan has (the default vertical threshold).
const SMALL_UP_TO: u64 = 50;

/// Kinds of probe, by the flags of a flow's first packet.
const KINDS: [&str; 6] = ["syn", "connect", "fin", "null", "xmas", "udp"];

fn probe_kind(f: &Flow) -> Option<usize> {
    match f.key.proto {
        // A service's answer whose request was not captured (a resolver's
        // responses from port 53 to a client's ephemeral ports) opens a
        // flow from the service: it is no probe of the client's ports.
        17 => {
            let (client_port, server_port) = if f.a_is_client {
                (f.key.a_port, f.key.b_port)
            } else {
                (f.key.b_port, f.key.a_port)
            };
            (!(client_port < 1024 && server_port >= 1024)).then_some(5)
        }
        6 => match f.first_flags & (FIN | SYN | RST | PSH | ACK | URG) {
            SYN if f.handshake() == "complete" => Some(1),
            SYN => Some(0),
            FIN => Some(2),
            0 => Some(3),
            x if x == FIN | PSH | URG => Some(4),
            _ => None,
        },
        _ => None,
    }
}

/// Destinations (ports or hosts) touched: four inline, a hash set beyond
/// (most keys never see a second destination), counted exactly up to a
/// cap. At the cap the set is let go and a sample of [`SAMPLE`] kept: the
/// count is "at least" from there, and memory stops growing with the
/// capture (a /16 × 1,000-port scan's own capture held 65,536 pairs of up
/// to 1,000 ports each, 300 MB, before).
struct Touched<T: std::hash::Hash> {
    inline: [Option<T>; 4],
    spill: Option<Box<HashSet<T>>>,
    cap: usize,
    /// The set reached the cap: these are some of its values.
    sample: Option<Vec<T>>,
    more: bool,
    /// Past the cap, the distinct values estimated (HyperLogLog++, about
    /// 3 KB; a responder quotes "about 1,000 ports", not "at least 256").
    estimate: Option<Box<cardinality_estimator::CardinalityEstimator<T>>>,
}

/// Values kept of a set that reached its cap (the report lists 20 ports,
/// and hosts as ranges).
const SAMPLE: usize = 64;

impl<T: std::hash::Hash + Eq + Copy> Touched<T> {
    fn new(cap: usize) -> Self {
        Touched {
            inline: [None; 4],
            spill: None,
            cap,
            sample: None,
            more: false,
            estimate: None,
        }
    }

    /// The distinct values estimated, once past the cap.
    fn estimated(&self) -> Option<usize> {
        self.estimate.as_ref().map(|e| e.estimate().max(self.cap))
    }

    fn len(&self) -> usize {
        if self.sample.is_some() {
            return self.cap;
        }
        match &self.spill {
            Some(s) => s.len(),
            None => self.inline.iter().filter(|x| x.is_some()).count(),
        }
    }

    fn insert(&mut self, v: T) {
        if let Some(sample) = &self.sample {
            // Whether v is new can no longer be told exactly: the count is
            // a floor, and the estimate goes on.
            if !sample.contains(&v) {
                self.more = true;
            }
            if let Some(e) = &mut self.estimate {
                e.insert(&v);
            }
            return;
        }
        if let Some(set) = &mut self.spill {
            set.insert(v);
            if set.len() >= self.cap {
                let mut e = Box::new(cardinality_estimator::CardinalityEstimator::new());
                for x in set.iter() {
                    e.insert(x);
                }
                self.estimate = Some(e);
                self.sample = Some(set.iter().take(SAMPLE).copied().collect());
                self.spill = None;
            }
            return;
        }
        if self.inline.contains(&Some(v)) {
            return;
        }
        if let Some(slot) = self.inline.iter_mut().find(|x| x.is_none()) {
            *slot = Some(v);
            return;
        }
        let mut set: HashSet<T> = self.inline.iter().flatten().copied().collect();
        set.insert(v);
        self.spill = Some(Box::new(set));
    }

    fn values(&self) -> Vec<T> {
        if let Some(sample) = &self.sample {
            return sample.clone();
        }
        match &self.spill {
            Some(s) => s.iter().copied().collect(),
            None => self.inline.iter().flatten().copied().collect(),
        }
    }
}

struct Probes<T: std::hash::Hash> {
    touched: Touched<T>,
    kinds: [u32; 6],
    span: Span,
    examples: [u64; super::EXAMPLES],
}

impl<T: std::hash::Hash + Eq + Copy> Probes<T> {
    fn new(cap: usize, at: i64) -> Self {
        Probes {
            touched: Touched::new(cap),
            kinds: [0; 6],
            span: Span::new(at),
            examples: [0; super::EXAMPLES],
        }
    }

    fn add(&mut self, what: T, kind: usize, f: &Flow) {
        self.touched.insert(what);
        self.kinds[kind] = self.kinds[kind].saturating_add(1);
        self.span.add(f.first_ns);
        if let Some(slot) = self.examples.iter_mut().find(|e| **e == 0) {
            *slot = f.first_frame;
        }
    }

    /// The most frequent kind; stealth kinds win ties as the more telling.
    fn scan_type(&self) -> &'static str {
        let best = (0..6).max_by_key(|&i| (self.kinds[i], i)).unwrap_or(0);
        KINDS[best]
    }

    fn stealth(&self) -> u64 {
        u64::from(self.kinds[2]) + u64::from(self.kinds[3]) + u64::from(self.kinds[4])
    }

    fn examples(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self.examples.iter().copied().filter(|&e| e != 0).collect();
        v.sort_unstable();
        v
    }
}

/// Keys kept per map before pruning: keys that touched one target and sent
/// no stealth probe are dropped first (a scan needs tens of targets).
const MAX_KEYS: usize = 20_000;

/// Hosts counted exactly per (source, protocol, port) in a horizontal
/// scan, and ports per (source, destination) in a vertical one: many times
/// the default thresholds (50), and never below twice a threshold given.
const MAX_HOSTS_PER_PORT: usize = 1_024;
const MAX_PORTS_PER_PAIR: usize = 256;

fn prune<K: std::hash::Hash + Eq, T: std::hash::Hash + Eq + Copy>(
    map: &mut HashMap<K, Box<Probes<T>>>,
) -> u64 {
    let before = map.len();
    let mut keep_at = 2;
    while map.len() > MAX_KEYS * 3 / 4 {
        map.retain(|_, p| p.touched.len() >= keep_at || p.stealth() > 0);
        keep_at *= 2;
    }
    (before - map.len()) as u64
}

/// A port with its IP protocol (TCP, UDP).
type PortOf = (u8, u16);

/// IP protocols seen between a source and a target (a bit each).
struct Protocols {
    seen: [u64; 4],
    unreachable: u64,
    span: Span,
    examples: Vec<u64>,
}

pub struct PortScan {
    t: PortScanThresholds,
    /// (source, target) → IP protocols probed or refused.
    protocols: HashMap<(IpAddr, IpAddr), Protocols>,
    /// (source, destination) → ports touched.
    ///
    /// The values are boxed: pruning empties most of a full table again
    /// and again, and a table of unboxed values (150-200 bytes each) keeps
    /// its 32,768 buckets' worth (13 MB for both tables) whatever it
    /// holds; boxed, a bucket is 28-40 bytes and only held keys cost more.
    vertical: HashMap<(IpAddr, IpAddr), Box<Probes<PortOf>>>,
    /// (source, protocol, port) → hosts touched.
    horizontal: HashMap<(IpAddr, u8, u16), Box<Probes<IpAddr>>>,
    pruned: u64,
}

impl PortScan {
    pub fn new(t: PortScanThresholds) -> PortScan {
        PortScan {
            t,
            protocols: HashMap::default(),
            vertical: HashMap::default(),
            horizontal: HashMap::default(),
            pruned: 0,
        }
    }

    /// Every frame, for the IP protocol scan: the protocol of each packet
    /// a source sends a target, and of each probe a protocol-unreachable
    /// reply quotes.
    pub fn frame(&mut self, frame: u64, now: i64, d: &crate::analyze::dissect::Dissected<'_>) {
        let Some(ip) = &d.ip else { return };
        let (src, dst, proto, refused) = match d.transport {
            // ICMP destination unreachable, protocol unreachable: the
            // quoted IPv4 header names the probe's protocol and ends.
            Some(crate::analyze::dissect::Transport::Icmp { kind: 3, code: 2 }) => {
                let Some(q) = d.ip_payload.get(8..28) else {
                    return;
                };
                if q[0] >> 4 != 4 {
                    return;
                }
                let a = |o: usize| IpAddr::from([q[o], q[o + 1], q[o + 2], q[o + 3]]);
                (a(12), a(16), q[9], true)
            }
            // TCP, UDP and ICMP are every pair's protocols: a scan shows in
            // the others (and in the replies above), and the common three
            // cost no lookup per packet.
            _ if matches!(ip.proto, 1 | 6 | 17 | 58) => return,
            _ if ip.fragment.is_none_or(|f| f.offset == 0) => (ip.src, ip.dst, ip.proto, false),
            _ => return,
        };
        let key = (src, dst);
        if !self.protocols.contains_key(&key) && self.protocols.len() >= MAX_KEYS {
            return;
        }
        let p = self.protocols.entry(key).or_insert_with(|| Protocols {
            seen: [0; 4],
            unreachable: 0,
            span: Span::new(now),
            examples: Vec::new(),
        });
        let (w, bit) = (usize::from(proto >> 6), 1u64 << (proto & 63));
        if p.seen[w] & bit == 0 {
            p.seen[w] |= bit;
            push_example(&mut p.examples, frame);
        }
        p.unreachable += u64::from(refused);
        p.span.add(now);
    }

    pub fn flow_finished(&mut self, f: &Flow) {
        // A conversation (payload both ways) is no probe; skipping it keeps
        // ordinary traffic out of the scan tables.
        if f.is_conversation() {
            return;
        }
        let Some(kind) = probe_kind(f) else { return };
        let k = f.key;
        let ((client, _), (server, port)) = if f.a_is_client {
            ((k.a().ip(), k.a_port), (k.b().ip(), k.b_port))
        } else {
            ((k.b().ip(), k.b_port), (k.a().ip(), k.a_port))
        };
        // Counted exactly up to a cap, "at least" beyond: a scan of a /16
        // on 100 ports kept 6.5M addresses (about 200 MB) here.
        let cap_v = MAX_PORTS_PER_PAIR.max(2 * self.t.min_ports_vertical as usize);
        let cap_h = MAX_HOSTS_PER_PORT.max(2 * self.t.min_hosts_horizontal as usize);
        self.vertical
            .entry((client, server))
            .or_insert_with(|| Box::new(Probes::new(cap_v, f.first_ns)))
            .add((k.proto, port), kind, f);
        self.horizontal
            .entry((client, k.proto, port))
            .or_insert_with(|| Box::new(Probes::new(cap_h, f.first_ns)))
            .add(server, kind, f);
        if self.vertical.len() > MAX_KEYS {
            self.pruned += prune(&mut self.vertical);
        }
        if self.horizontal.len() > MAX_KEYS {
            self.pruned += prune(&mut self.horizontal);
        }
    }

    /// The widest scans seen: most ports of one host from one source, and
    /// most hosts on one port from one source, against their thresholds.
    pub fn closest(&self) -> Vec<super::Closest> {
        let th = &self.t;
        let mut out = Vec::new();
        let widest = self
            .vertical
            .iter()
            .max_by_key(|(k, p)| (p.touched.len(), std::cmp::Reverse(**k)));
        if let Some(((src, dst), p)) = widest {
            out.push(super::Closest {
                measure: "ports_of_one_host",
                value: p.touched.len() as f64,
                threshold: th.min_ports_vertical as f64,
                at: format!("{src} to {dst}"),
            });
        }
        let widest = self
            .horizontal
            .iter()
            .max_by_key(|(k, p)| (p.touched.len(), std::cmp::Reverse(**k)));
        if let Some(((src, proto, port), p)) = widest {
            out.push(super::Closest {
                measure: "hosts_on_one_port",
                value: p.touched.len() as f64,
                threshold: th.min_hosts_horizontal as f64,
                at: format!(
                    "{src} to {}/{port}",
                    if *proto == 6 { "tcp" } else { "udp" }
                ),
            });
        }
        out
    }

    pub fn finish(self) -> Vec<Anomaly> {
        let th = &self.t;
        let mut out = Vec::new();
        let thresholds = BTreeMap::from([
            ("min_ports_vertical", th.min_ports_vertical as f64),
            ("min_hosts_horizontal", th.min_hosts_horizontal as f64),
            ("min_stealth_probes", th.min_stealth_probes as f64),
            ("min_ports_small", th.min_ports_small as f64),
        ]);
        let note = (self.pruned > 0).then(|| {
            format!(
                "{} low-count source/target pairs were dropped to bound memory",
                self.pruned
            )
        });
        let small_from = th.min_ip_protocols_small.max(2);
        let mut protocol_scans: Vec<((IpAddr, IpAddr), Protocols)> = self
            .protocols
            .into_iter()
            .filter(|((_, dst), p)| {
                let n = u64::from(p.seen.iter().map(|w| w.count_ones()).sum::<u32>());
                n >= th.min_ip_protocols || (n >= small_from && !dst.is_multicast())
            })
            .collect();
        protocol_scans.sort_by_key(|(k, _)| *k);
        for ((src, dst), p) in protocol_scans {
            let n: u32 = p.seen.iter().map(|w| w.count_ones()).sum();
            out.push(Anomaly {
                evidence: BTreeMap::from([
                    ("distinct_ip_protocols", f64::from(n)),
                    ("protocol_unreachable_replies", p.unreachable as f64),
                    ("duration_seconds", p.span.seconds()),
                ]),
                thresholds: BTreeMap::from([
                    ("min_ip_protocols", th.min_ip_protocols as f64),
                    ("min_ip_protocols_small", th.min_ip_protocols_small as f64),
                ]),
                sources: vec![src.to_string()],
                destinations: vec![dst.to_string()],
                ..Anomaly::new(
                    "port_scan",
                    Some("ip_protocol"),
                    if u64::from(n) >= th.min_ip_protocols {
                        Severity::Medium
                    } else {
                        Severity::Low
                    },
                    format!(
                        "{}IP protocol scan of {dst} by {src}: {n} protocols tried, {} refused with protocol unreachable",
                        if u64::from(n) >= th.min_ip_protocols { "" } else { "small " },
                        p.unreachable
                    ),
                    p.span,
                    p.examples,
                )
            });
        }
        for ((src, dst), p) in self.vertical {
            let ports = p.touched.len() as u64;
            let vertical = ports >= th.min_ports_vertical;
            let stealth = p.stealth() >= th.min_stealth_probes;
            // A handful: from min_ports_small up to the default vertical
            // threshold (a user who raised that threshold chose not to
            // hear of larger scans, and is not told of them as small).
            let small = ports >= th.min_ports_small.max(2)
                && ports < th.min_ports_vertical.min(SMALL_UP_TO);
            if !vertical && !stealth && !small {
                continue;
            }
            let scan_type = if vertical || !stealth {
                p.scan_type()
            } else {
                stealth_type(&p.kinds)
            };
            let mut port_list: Vec<u16> =
                p.touched.values().iter().map(|&(_, port)| port).collect();
            port_list.sort_unstable();
            port_list.dedup();
            port_list.truncate(20);
            let subtype = if vertical {
                "vertical"
            } else if stealth {
                "stealth_probes"
            } else {
                "small"
            };
            out.push(Anomaly {
                evidence: evidence(&p, ports),
                thresholds: thresholds.clone(),
                sources: vec![src.to_string()],
                destinations: vec![dst.to_string()],
                ports: port_list,
                scan_type: Some(scan_type),
                note: note.clone(),
                ..Anomaly::new(
                    "port_scan",
                    Some(subtype),
                    if vertical {
                        Severity::Medium
                    } else {
                        Severity::Low
                    },
                    format!(
                        "{} scan of {dst} from {src}: {}{}",
                        scan_type.to_uppercase(),
                        counted(&p.touched, ports, "port", "ports"),
                        if vertical {
                            String::new()
                        } else if stealth {
                            format!(
                                ", {} FIN/NULL/XMAS probe{}",
                                p.stealth(),
                                if p.stealth() == 1 { "" } else { "s" }
                            )
                        } else {
                            format!(
                                " with no conversation, below the vertical threshold of {}",
                                th.min_ports_vertical
                            )
                        }
                    ),
                    p.span,
                    p.examples(),
                )
            });
        }
        for ((src, proto, port), p) in self.horizontal {
            let hosts = p.touched.len() as u64;
            if hosts < th.min_hosts_horizontal {
                continue;
            }
            let scan_type = p.scan_type();
            out.push(Anomaly {
                evidence: evidence(&p, hosts),
                thresholds: thresholds.clone(),
                sources: vec![src.to_string()],
                destinations: super::addrs(p.touched.values().iter()),
                ports: vec![port],
                scan_type: Some(scan_type),
                note: note.clone(),
                ..Anomaly::new(
                    "port_scan",
                    Some("horizontal"),
                    Severity::Medium,
                    format!(
                        "{} sweep of {}/{port} from {src}: {}",
                        scan_type.to_uppercase(),
                        if proto == 17 { "udp" } else { "tcp" },
                        counted(&p.touched, hosts, "host", "hosts")
                    ),
                    p.span,
                    p.examples(),
                )
            });
        }
        out
    }
}

fn stealth_type(kinds: &[u32; 6]) -> &'static str {
    let best = (2..5).max_by_key(|&i| (kinds[i], i)).unwrap_or(4);
    KINDS[best]
}

/// "3 ports", or past the exact count's cap "about 1,000 ports (estimated;
/// 256 counted exactly)".
fn counted<T: std::hash::Hash + Eq + Copy>(
    t: &Touched<T>,
    exact: u64,
    one: &str,
    many: &str,
) -> String {
    match t.estimated().filter(|_| t.more) {
        Some(n) => format!(
            "about {} {many} (estimated; {exact} counted exactly)",
            super::thousands(n as u64)
        ),
        None if exact == 1 => format!("{exact} {one}"),
        None => format!("{exact} {many}"),
    }
}

fn evidence<T: std::hash::Hash + Eq + Copy>(
    p: &Probes<T>,
    distinct: u64,
) -> BTreeMap<&'static str, f64> {
    let mut e = BTreeMap::from([
        ("distinct_targets", distinct as f64),
        ("duration_seconds", p.span.seconds()),
    ]);
    // Counted exactly up to the cap; past it, estimated.
    if p.touched.more
        && let Some(n) = p.touched.estimated()
    {
        e.insert("distinct_targets_estimated", n as f64);
    }
    for (i, name) in [
        "probes_syn",
        "probes_connect",
        "probes_fin",
        "probes_null",
        "probes_xmas",
        "probes_udp",
    ]
    .into_iter()
    .enumerate()
    {
        if p.kinds[i] > 0 {
            e.insert(name, f64::from(p.kinds[i]));
        }
    }
    e
}
