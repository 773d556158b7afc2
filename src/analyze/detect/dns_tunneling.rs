//! `dns_tunneling`: data carried in DNS names. Per registered domain it
//! measures query length, the longest label, the Shannon entropy of the
//! subdomain part, how many subdomains are unique, the share of record
//! types tunnels favour (TXT, NULL, CNAME, MX, ...) and volume, and
//! combines them into a score. Entropy alone misses iodine (base32-ish
//! labels, ~3 bits/char) and is capped at 4 bits for hex (dnscat2): no
//! single signal decides.

use std::collections::BTreeMap;
use std::net::IpAddr;

use foldhash::{HashMap, HashSet};
use serde::{Deserialize, Serialize};

use super::{Anomaly, Severity, Span, push_example};
use crate::analyze::dns::{DnsMessage, qtype_name};

/// Defaults: at least 8 queries with 5 unique subdomains under one domain,
/// and a score of 0.5 or more (factor scales in `score`; the four tunnels in
/// the corpus score 0.67–1.0, while CDN-style names such as
/// `e1234.dscb.akamaiedge.net` stay below 0.5, as tests/offline/analyze_detectors.rs checks).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DnsTunnelingThresholds {
    pub min_queries: u64,
    pub min_unique_subdomains: u64,
    pub min_score: f64,
}

impl Default for DnsTunnelingThresholds {
    fn default() -> Self {
        DnsTunnelingThresholds {
            min_queries: 8,
            min_unique_subdomains: 5,
            min_score: 0.5,
        }
    }
}

const MAX_DOMAINS: usize = 20_000;
const MAX_SUBDOMAINS: usize = 10_000;
/// Subdomains remembered over all domains (as 64-bit hashes).
const MAX_SUBDOMAINS_TOTAL: usize = 200_000;

/// Second-level labels under which registrations sit one level deeper
/// (example.co.uk). A short list of the common ones, not the whole PSL.
const SECOND_LEVEL: [&str; 12] = [
    "co", "com", "net", "org", "gov", "ac", "edu", "ne", "or", "go", "gv", "mil",
];

/// The registered domain of a name: its last two labels, or three under a
/// two-letter country code with a generic second level (example.co.uk).
pub fn registered_domain(name: &str) -> &str {
    // Where each of the last three labels starts, found from the end.
    let mut starts = [0usize; 3];
    let mut dots = 0;
    for (i, _) in name.rmatch_indices('.').take(3) {
        starts[dots] = i + 1;
        dots += 1;
    }
    if dots == 0 {
        return name;
    }
    let last = &name[starts[0]..];
    let take = if dots >= 2 {
        let second = &name[starts[1]..starts[0] - 1];
        if last.len() == 2 && SECOND_LEVEL.contains(&second) {
            3
        } else {
            2
        }
    } else {
        2
    };
    if dots < take {
        name
    } else {
        &name[starts[take - 1]..]
    }
}

/// Shannon entropy in bits per character (dots excluded).
pub fn shannon_entropy(s: &str) -> f64 {
    let mut counts = [0u32; 256];
    // Which bytes occur: the sum runs over those alone, still in byte
    // order (the same float sum as over all 256 counts).
    let mut present = [0u64; 4];
    let mut n = 0u32;
    for b in s.bytes().filter(|&b| b != b'.') {
        counts[b as usize] += 1;
        present[usize::from(b >> 6)] |= 1 << (b & 63);
        n += 1;
    }
    if n == 0 {
        return 0.0;
    }
    let n = f64::from(n);
    let mut sum = 0.0;
    for (word, mut bits) in present.into_iter().enumerate() {
        while bits != 0 {
            let c = counts[word * 64 + bits.trailing_zeros() as usize];
            bits &= bits - 1;
            let p = f64::from(c) / n;
            sum += -p * p.log2();
        }
    }
    sum
}

/// Record types that carry data well and that tunnels prefer.
fn tunnel_type(qtype: u16) -> bool {
    matches!(qtype, 5 | 10 | 15 | 16 | 33 | 35 | 255) || qtype >= 65280
}

#[derive(Default)]
struct Domain {
    queries: u64,
    /// Hashes of the distinct subdomains (a collision merely undercounts).
    subdomains: HashSet<u64>,
    subdomains_capped: bool,
    len_sum: u64,
    longest_label: usize,
    entropy_sum: f64,
    with_subdomain: u64,
    tunnel_types: u64,
    qtypes: BTreeMap<u16, u64>,
    clients: HashSet<IpAddr>,
    /// The resolvers asked (the queries' destinations).
    servers: HashSet<IpAddr>,
    span: Option<Span>,
    examples: Vec<u64>,
}

pub struct DnsTunneling {
    t: DnsTunnelingThresholds,
    domains: HashMap<String, Domain>,
    subdomains_total: usize,
    hasher: foldhash::quality::FixedState,
}

impl DnsTunneling {
    pub fn new(t: DnsTunnelingThresholds) -> DnsTunneling {
        DnsTunneling {
            t,
            domains: HashMap::default(),
            subdomains_total: 0,
            hasher: foldhash::quality::FixedState::with_seed(0x50de),
        }
    }

    pub fn query(&mut self, frame: u64, now: i64, client: IpAddr, server: IpAddr, m: &DnsMessage) {
        if m.response || m.qname.is_empty() {
            return;
        }
        let reg_as_sent = registered_domain(&m.qname);
        // Domains compare case-blind; the subdomains (a tunnel's data,
        // often case-sensitive base64) as sent.
        let lower;
        let reg = if reg_as_sent.bytes().any(|b| b.is_ascii_uppercase()) {
            lower = reg_as_sent.to_ascii_lowercase();
            lower.as_str()
        } else {
            reg_as_sent
        };
        if !self.domains.contains_key(reg) && self.domains.len() >= MAX_DOMAINS {
            return;
        }
        // Looked up before allocating: almost every query repeats a domain.
        let d = match self.domains.get_mut(reg) {
            Some(d) => d,
            None => self.domains.entry(reg.to_string()).or_default(),
        };
        d.queries += 1;
        d.len_sum += m.qname.len() as u64;
        d.longest_label = d.longest_label.max(
            m.qname
                .as_bytes()
                .split(|&b| b == b'.')
                .map(<[u8]>::len)
                .max()
                .unwrap_or(0),
        );
        *d.qtypes.entry(m.qtype).or_default() += 1;
        if tunnel_type(m.qtype) {
            d.tunnel_types += 1;
        }
        if d.clients.len() < 16 {
            d.clients.insert(client);
        }
        if d.servers.len() < 16 {
            d.servers.insert(server);
        }
        match &mut d.span {
            Some(s) => s.add(now),
            None => d.span = Some(Span::new(now)),
        }
        push_example(&mut d.examples, frame);
        let sub = m
            .qname
            .len()
            .checked_sub(reg_as_sent.len() + 1)
            .map(|end| &m.qname[..end]);
        if let Some(sub) = sub.filter(|s| !s.is_empty()) {
            d.with_subdomain += 1;
            d.entropy_sum += shannon_entropy(sub);
            let h = std::hash::BuildHasher::hash_one(&self.hasher, sub);
            if d.subdomains.len() < MAX_SUBDOMAINS && self.subdomains_total < MAX_SUBDOMAINS_TOTAL {
                self.subdomains_total += usize::from(d.subdomains.insert(h));
            } else if !d.subdomains.contains(&h) {
                d.subdomains_capped = true;
            }
        }
    }

    pub fn finish(self) -> Vec<Anomaly> {
        let th = &self.t;
        let mut out = Vec::new();
        for (name, d) in self.domains {
            let unique = d.subdomains.len() as u64;
            if d.queries < th.min_queries || unique < th.min_unique_subdomains {
                continue;
            }
            let (score, factors) = score(&d);
            if score < th.min_score {
                continue;
            }
            let mut evidence = BTreeMap::from([
                ("score", score),
                ("queries", d.queries as f64),
                ("unique_subdomains", unique as f64),
                ("mean_query_length", d.len_sum as f64 / d.queries as f64),
                ("longest_label", d.longest_label as f64),
                (
                    "mean_subdomain_entropy",
                    d.entropy_sum / d.with_subdomain.max(1) as f64,
                ),
                (
                    "tunnel_type_share",
                    d.tunnel_types as f64 / d.queries as f64,
                ),
            ]);
            evidence.extend(factors);
            let types: Vec<String> = d
                .qtypes
                .iter()
                .map(|(t, c)| format!("{} {c}", qtype_name(*t)))
                .collect();
            let span = d.span.expect("a domain with queries has a span");
            let severity = if score >= 0.75 {
                Severity::High
            } else {
                Severity::Medium
            };
            let summary = format!(
                "possible DNS tunnel via {name}: {} queries, {unique} unique subdomains, score {score:.2}",
                d.queries
            );
            out.push(Anomaly {
                evidence,
                thresholds: BTreeMap::from([
                    ("min_queries", th.min_queries as f64),
                    ("min_unique_subdomains", th.min_unique_subdomains as f64),
                    ("min_score", th.min_score),
                ]),
                sources: super::addrs(d.clients.iter()),
                // The resolver the tunnel goes through.
                destinations: super::addrs(d.servers.iter()),
                ports: vec![53],
                domain: Some(name),
                note: Some(format!("query types: {}", types.join(", "))),
                ..Anomaly::new("dns_tunneling", None, severity, summary, span, d.examples)
            });
        }
        out
    }
}

fn ramp(x: f64, lo: f64, hi: f64) -> f64 {
    ((x - lo) / (hi - lo)).clamp(0.0, 1.0)
}

/// The weighted score and each factor's contribution (0..1 before weighting).
fn score(d: &Domain) -> (f64, Vec<(&'static str, f64)>) {
    let q = d.queries as f64;
    let factors = [
        (
            "factor_length",
            0.20,
            ramp(d.len_sum as f64 / q, 30.0, 60.0),
        ),
        (
            "factor_longest_label",
            0.15,
            ramp(d.longest_label as f64, 20.0, 50.0),
        ),
        (
            "factor_entropy",
            0.25,
            ramp(d.entropy_sum / d.with_subdomain.max(1) as f64, 2.5, 4.0),
        ),
        (
            "factor_unique",
            0.15,
            ramp(d.subdomains.len() as f64 / q, 0.5, 0.9),
        ),
        (
            "factor_tunnel_types",
            0.15,
            ramp(d.tunnel_types as f64 / q, 0.0, 0.5),
        ),
        ("factor_volume", 0.10, ramp(q, 10.0, 100.0)),
    ];
    let score = factors.iter().map(|(_, w, f)| w * f).sum();
    (score, factors.iter().map(|(n, _, f)| (*n, *f)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_domains() {
        assert_eq!(registered_domain("a.b.example.com"), "example.com");
        assert_eq!(registered_domain("x.y.example.co.uk"), "example.co.uk");
        assert_eq!(registered_domain("example.com"), "example.com");
        assert_eq!(registered_domain("localhost"), "localhost");
        assert_eq!(registered_domain("co.uk"), "co.uk");
        assert_eq!(registered_domain("example.co.uk"), "example.co.uk");
        assert_eq!(registered_domain("a.example.com.au"), "example.com.au");
        assert_eq!(registered_domain("a.example.museum"), "example.museum");
        assert_eq!(registered_domain("a.b.c.d.e"), "d.e");
        assert_eq!(registered_domain(".com"), ".com");
        assert_eq!(registered_domain("a..com"), ".com");
        assert_eq!(registered_domain("x.co.uk."), "uk.");
    }

    /// The registered domain by the plain rule: collect every dot, take
    /// the last two or three labels. The scan from the end must agree.
    fn registered_domain_reference(name: &str) -> &str {
        let dots: Vec<usize> = name.match_indices('.').map(|(i, _)| i).collect();
        let n = dots.len();
        if n == 0 {
            return name;
        }
        let last = &name[dots[n - 1] + 1..];
        let take = match n {
            1 => 2,
            _ if last.len() == 2 && SECOND_LEVEL.contains(&&name[dots[n - 2] + 1..dots[n - 1]]) => {
                3
            }
            _ => 2,
        };
        if n < take {
            name
        } else {
            &name[dots[n - take] + 1..]
        }
    }

    #[test]
    fn registered_domain_agrees_with_the_plain_rule() {
        let labels = ["", "a", "co", "uk", "com", "example", "xn--bcher-kva", "é"];
        let mut names = Vec::new();
        for a in labels {
            for b in labels {
                for c in labels {
                    names.push(format!("{a}.{b}.{c}"));
                    names.push(format!("x.{a}.{b}.{c}"));
                    names.push(format!("{b}.{c}"));
                    names.push(c.to_string());
                }
            }
        }
        for name in &names {
            assert_eq!(
                registered_domain(name),
                registered_domain_reference(name),
                "{name:?}"
            );
        }
    }

    #[test]
    fn entropy() {
        assert_eq!(shannon_entropy("aaaa"), 0.0);
        assert!((shannon_entropy("abcd") - 2.0).abs() < 1e-9);
        assert!((shannon_entropy("0123456789abcdef") - 4.0).abs() < 1e-9);
        assert_eq!(shannon_entropy(""), 0.0);
        assert_eq!(shannon_entropy("..."), 0.0);
    }

    /// Summing over the bytes that occur must give the very same float as
    /// summing over all 256 counts in order: reports are byte-identical.
    #[test]
    fn entropy_is_the_same_float_as_the_sum_over_every_byte() {
        fn over_every_byte(s: &str) -> f64 {
            let mut counts = [0u32; 256];
            let mut n = 0u32;
            for b in s.bytes().filter(|&b| b != b'.') {
                counts[b as usize] += 1;
                n += 1;
            }
            if n == 0 {
                return 0.0;
            }
            counts
                .iter()
                .filter(|&&c| c > 0)
                .map(|&c| {
                    let p = f64::from(c) / f64::from(n);
                    -p * p.log2()
                })
                .sum()
        }
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for len in 0..200 {
            let s: String = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    char::from_u32(32 + (x % 400) as u32).unwrap_or('?')
                })
                .collect();
            assert_eq!(
                shannon_entropy(&s).to_bits(),
                over_every_byte(&s).to_bits(),
                "{s:?}"
            );
        }
    }
}
