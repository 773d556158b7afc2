//! Reading a report for the page. Everything but a scan report's `hosts`
//! is kept as JSON values (small); `hosts` is folded into one summary row
//! per host while it is parsed, so a report of millions of results never
//! sits in memory whole (a 1.38M-result report: 1.8 GB as values, a few
//! MB this way).

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::probe::Verdict;
use crate::results::{FoldedState, HostResults, Severity};

/// Hosts listed on the page at most, the busiest (the JSON holds them
/// all): a /16 with every host answering was a 17.5 MB page.
pub const MAX_HOST_ROWS: usize = 1000;
/// Address ranges (IPv4 /24, IPv6 /120) the answering hosts are folded
/// into, at most.
pub const MAX_RANGE_ROWS: usize = 1024;
/// Service findings listed at most, the worst first.
pub const MAX_FINDING_ROWS: usize = 200;

/// A report as the page needs it.
#[derive(Debug, Default)]
pub struct PageInput {
    /// The document without `hosts`.
    pub doc: Value,
    /// A scan report's hosts, summarized.
    pub hosts: Option<HostsSummary>,
}

/// What the page shows of a scan's hosts.
#[derive(Debug, Default)]
pub struct HostsSummary {
    /// Hosts that answered anything, the busiest `MAX_HOST_ROWS` (most
    /// open ports, then those that answered ping; report order among
    /// equals), busiest first.
    pub rows: Vec<HostRow>,
    /// Every answering host folded into its range (IPv4 /24, IPv6 /120),
    /// in address order, the first `MAX_RANGE_ROWS` ranges.
    pub ranges: Vec<RangeRow>,
    /// Answering hosts in ranges past the first `MAX_RANGE_ROWS`.
    pub hosts_in_unlisted_ranges: usize,
    /// Service findings past `MAX_FINDING_ROWS`.
    pub findings_not_listed: usize,
    /// Hosts that answered anything (rows beyond the limit included).
    pub answered: usize,
    /// Hosts with at least one open port.
    pub with_open: usize,
    /// Hosts with each TCP port open (every host, not only the listed
    /// rows): what answered, by port.
    pub by_port: std::collections::BTreeMap<u16, usize>,
    /// Services identified (`-sV`), by (service, product, version): how
    /// many ports run each (every host, not only the listed rows).
    pub by_product: std::collections::BTreeMap<(String, String, String), usize>,
    /// Service findings, every host's: (severity, summary), the worst first.
    pub findings: Vec<(Severity, String)>,
}

/// One range of answering hosts on the page.
#[derive(Debug, Default, Clone)]
pub struct RangeRow {
    /// `198.18.5.0/24`.
    pub range: String,
    pub hosts: usize,
    pub with_open: usize,
    /// Hosts open per port in the range.
    pub ports: std::collections::BTreeMap<u16, usize>,
}

/// The range a host is folded into: (family, first address of its /24 or
/// /120).
fn range_of(ip: std::net::IpAddr) -> (u8, u128) {
    match ip {
        std::net::IpAddr::V4(a) => (4, u128::from(u32::from(a) & !0xff)),
        std::net::IpAddr::V6(a) => (6, u128::from(a) & !0xff),
    }
}

fn range_name((family, first): (u8, u128)) -> String {
    match family {
        4 => format!("{}/24", std::net::Ipv4Addr::from(first as u32)),
        _ => format!("{}/120", std::net::Ipv6Addr::from(first)),
    }
}

/// A listed host and where it ranks.
struct Ranked {
    /// Open ports, then ping (busier is greater), then report order
    /// (earlier is greater).
    key: (usize, bool, std::cmp::Reverse<usize>),
    row: HostRow,
}

impl PartialEq for Ranked {
    fn eq(&self, other: &Ranked) -> bool {
        self.key == other.key
    }
}
impl Eq for Ranked {}
impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Ranked) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Ranked {
    fn cmp(&self, other: &Ranked) -> std::cmp::Ordering {
        self.key.cmp(&other.key)
    }
}

/// One host's line on the page.
#[derive(Debug, Default)]
pub struct HostRow {
    pub address: String,
    pub open: Vec<u16>,
    pub closed: u64,
    pub filtered: u64,
    pub up: bool,
    /// DNS answers: `question rcode N`.
    pub dns: Vec<String>,
    /// Services on the open ports: `PORT NAME PRODUCT VERSION`.
    pub services: Vec<String>,
}

impl PageInput {
    /// Parse a report from its bytes, summarizing `hosts` as it goes.
    pub fn from_slice(bytes: &[u8]) -> serde_json::Result<PageInput> {
        let mut d = serde_json::Deserializer::from_slice(bytes);
        let input = d.deserialize_map(DocVisitor)?;
        d.end()?;
        Ok(input)
    }

    /// Parse a report from a reader (a file: memory stays small whatever
    /// the report's size).
    pub fn from_reader<R: std::io::Read>(r: R) -> serde_json::Result<PageInput> {
        let mut d = serde_json::Deserializer::from_reader(r);
        let input = d.deserialize_map(DocVisitor)?;
        d.end()?;
        Ok(input)
    }

    /// A report already in memory (`sonde analyze --html`).
    pub fn from_value(mut doc: Value) -> PageInput {
        let hosts = doc
            .as_object_mut()
            .and_then(|m| m.remove("hosts"))
            .and_then(|h| h.deserialize_seq(HostsVisitor).ok());
        PageInput { doc, hosts }
    }
}

struct DocVisitor;

impl<'de> Visitor<'de> for DocVisitor {
    type Value = PageInput;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object (a sonde report)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PageInput, A::Error> {
        let mut doc = Map::new();
        let mut hosts = None;
        while let Some(key) = map.next_key::<String>()? {
            if key == "hosts" {
                hosts = Some(map.next_value_seed(HostsSeed)?);
            } else {
                let v: Value = map.next_value()?;
                doc.insert(key, v);
            }
        }
        Ok(PageInput {
            doc: Value::Object(doc),
            hosts,
        })
    }
}

struct HostsSeed;

impl<'de> de::DeserializeSeed<'de> for HostsSeed {
    type Value = HostsSummary;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<HostsSummary, D::Error> {
        d.deserialize_seq(HostsVisitor)
    }
}

struct HostsVisitor;

impl<'de> Visitor<'de> for HostsVisitor {
    type Value = HostsSummary;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of hosts")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<HostsSummary, A::Error> {
        let mut s = HostsSummary::default();
        // The busiest hosts so far, the least busy on top to be let go.
        let mut busiest: std::collections::BinaryHeap<std::cmp::Reverse<Ranked>> =
            std::collections::BinaryHeap::new();
        let mut ranges: std::collections::BTreeMap<(u8, u128), RangeRow> =
            std::collections::BTreeMap::new();
        // One host at a time, as the scan wrote it, folded into its row.
        while let Some(host) = seq.next_element::<HostResults>()? {
            for sv in &host.services {
                let key = (
                    sv.service.clone().unwrap_or_else(|| "unknown".into()),
                    sv.product.clone().unwrap_or_default(),
                    sv.version.clone().unwrap_or_default(),
                );
                *s.by_product.entry(key).or_insert(0) += 1;
                for f in &sv.findings {
                    s.findings.push((f.severity, f.summary.clone()));
                }
            }
            for port in host.open_ports() {
                *s.by_port.entry(port).or_insert(0) += 1;
            }
            let row = HostRow::of(&host);
            if row.open.is_empty() && !row.up && row.dns.is_empty() {
                continue;
            }
            s.answered += 1;
            if !row.open.is_empty() {
                s.with_open += 1;
            }
            let key = range_of(host.address);
            if ranges.len() < MAX_RANGE_ROWS || ranges.contains_key(&key) {
                let r = ranges.entry(key).or_default();
                r.hosts += 1;
                r.with_open += usize::from(!row.open.is_empty());
                for port in &row.open {
                    *r.ports.entry(*port).or_insert(0) += 1;
                }
            } else {
                s.hosts_in_unlisted_ranges += 1;
            }
            let ranked = Ranked {
                key: (row.open.len(), row.up, std::cmp::Reverse(s.answered)),
                row,
            };
            if busiest.len() < MAX_HOST_ROWS {
                busiest.push(std::cmp::Reverse(ranked));
            } else if busiest.peek().is_some_and(|least| least.0 < ranked) {
                busiest.pop();
                busiest.push(std::cmp::Reverse(ranked));
            }
        }
        // Busiest first.
        let mut rows: Vec<Ranked> = busiest.into_iter().map(|r| r.0).collect();
        rows.sort_by(|a, b| b.cmp(a));
        s.rows = rows.into_iter().map(|r| r.row).collect();
        s.ranges = ranges
            .into_iter()
            .map(|(key, mut r)| {
                r.range = range_name(key);
                r
            })
            .collect();
        s.findings.sort_by_key(|f| std::cmp::Reverse(f.0));
        s.findings_not_listed = s.findings.len().saturating_sub(MAX_FINDING_ROWS);
        s.findings.truncate(MAX_FINDING_ROWS);
        Ok(s)
    }
}

impl HostRow {
    /// A host's line: its open ports, ping and DNS answers listed, the
    /// closed and filtered ports counted (listed or folded).
    fn of(host: &HostResults) -> HostRow {
        let mut row = HostRow {
            address: host.address.to_string(),
            ..HostRow::default()
        };
        for r in &host.results {
            match r.verdict {
                Verdict::Open => row.open.extend(r.port),
                Verdict::Closed => row.closed += 1,
                Verdict::Filtered { .. } => row.filtered += 1,
                Verdict::Up => row.up = true,
                Verdict::DnsAnswer { rcode, .. } => row.dns.push(format!(
                    "{} rcode {rcode}",
                    r.question.as_deref().unwrap_or("?"),
                )),
                Verdict::Unreachable { .. } => {}
            }
        }
        for sv in &host.services {
            let mut line = format!(
                "{}/{}{}",
                sv.port,
                if sv.tunnel.is_some() { "ssl/" } else { "" },
                sv.service.as_deref().unwrap_or("unknown")
            );
            for part in [&sv.product, &sv.version].into_iter().flatten() {
                line.push(' ');
                line.push_str(part);
            }
            row.services.push(line);
        }
        for f in &host.not_shown {
            match f.state {
                FoldedState::Closed => row.closed += f.count,
                FoldedState::Filtered => row.filtered += f.count,
                FoldedState::Unreachable => {}
            }
        }
        row
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn hosts_are_summarized_and_the_rest_kept() {
        let text = br#"{"a": 1, "hosts": [
            {"address": "198.18.1.10", "results": [
                {"target": "198.18.1.10", "port": 22, "probe": "syn", "state": "open", "ttl": 64, "time": "2026-12-07T06:00:00Z"},
                {"target": "198.18.1.10", "port": 23, "probe": "syn", "state": "closed", "ttl": 64, "time": "2026-12-07T06:00:00Z"},
                {"target": "198.18.1.10", "probe": "icmp", "state": "up", "ttl": 64, "time": "2026-12-07T06:00:00Z"}],
             "not_shown": []},
            {"address": "198.18.1.11", "results": [
                {"target": "198.18.1.11", "port": 80, "probe": "syn", "state": "filtered", "icmp_type": 3, "icmp_code": 13, "ttl": 64, "time": "2026-12-07T06:00:00Z"}],
             "not_shown": []},
            {"address": "198.18.1.12", "results": [
                {"target": "198.18.1.12", "port": 22, "probe": "syn", "state": "open", "ttl": 64, "time": "2026-12-07T06:00:00Z"}],
             "not_shown": [{"probe": "syn", "state": "closed", "reason": "rst", "count": 998, "ports": "1-21,23-999"},
                           {"probe": "syn", "state": "filtered", "reason": "icmp 3/13", "count": 2, "ports": null}]}
        ], "z": [2]}"#;
        let p = PageInput::from_slice(text).unwrap();
        assert_eq!(p.doc, serde_json::json!({"a": 1, "z": [2]}));
        let h = p.hosts.unwrap();
        assert_eq!((h.answered, h.with_open, h.rows.len()), (2, 2, 2));
        assert_eq!(
            (h.rows[1].closed, h.rows[1].filtered),
            (998, 2),
            "the folded form"
        );
        assert_eq!(h.rows[0].open, [22]);
        assert_eq!((h.rows[0].closed, h.rows[0].up), (1, true));
        let v: Value = serde_json::from_slice(text).unwrap();
        let again = PageInput::from_value(v);
        assert_eq!(again.hosts.unwrap().rows[0].address, "198.18.1.10");
    }

    /// A /16 where every host answers, 4 ports open each, and a few
    /// busier hosts: the summary holds the busiest 1,000 hosts, busiest
    /// first, and every host folded into 256 ranges (issue 27: the page of
    /// such a scan was 17.5 MB).
    pub(crate) fn a_slash_16(busy: &[u32]) -> Vec<u8> {
        let mut text = String::from(r#"{"hosts": ["#);
        for i in 0..65_536u32 {
            let ip = std::net::Ipv4Addr::from(0xc612_0000 | i);
            let ports: &[u16] = if busy.contains(&i) {
                &[21, 22, 23, 25, 53, 80, 110, 143, 443, 8080]
            } else {
                &[22, 80, 443, 8080]
            };
            if i > 0 {
                text.push(',');
            }
            text.push_str(&format!(r#"{{"address": "{ip}", "results": ["#));
            for (k, p) in ports.iter().enumerate() {
                if k > 0 {
                    text.push(',');
                }
                text.push_str(&format!(
                    r#"{{"target": "{ip}", "port": {p}, "probe": "syn", "state": "open", "ttl": 64, "time": "2026-12-07T06:00:00Z"}}"#
                ));
            }
            text.push_str(r#"], "not_shown": [{"probe": "syn", "state": "closed", "reason": "rst", "count": 17, "ports": null}]}"#);
        }
        text.push_str("]}");
        text.into_bytes()
    }

    #[test]
    fn a_slash_16_is_folded_to_the_busiest_hosts_and_its_ranges() {
        let busy = [40_000, 7, 65_535];
        let h = PageInput::from_slice(&a_slash_16(&busy))
            .unwrap()
            .hosts
            .unwrap();
        assert_eq!((h.answered, h.with_open), (65_536, 65_536));
        assert_eq!(h.rows.len(), MAX_HOST_ROWS);
        // The busy ones first, in report order among equals, then the
        // first others.
        let first: Vec<&str> = h.rows[..4].iter().map(|r| r.address.as_str()).collect();
        assert_eq!(
            first,
            [
                "198.18.0.7",
                "198.18.156.64",
                "198.18.255.255",
                "198.18.0.0"
            ]
        );
        assert_eq!(h.ranges.len(), 256);
        assert_eq!(h.ranges[0].range, "198.18.0.0/24");
        assert_eq!((h.ranges[0].hosts, h.ranges[0].with_open), (256, 256));
        assert_eq!(h.ranges[0].ports[&22], 256);
        assert_eq!(h.ranges[0].ports[&21], 1, "198.18.0.7");
        assert_eq!(h.ranges[255].range, "198.18.255.0/24");
        assert_eq!(h.hosts_in_unlisted_ranges, 0);
        assert_eq!(h.by_port[&22], 65_536);
    }

    #[test]
    fn errors_carry_line_and_column() {
        let e = PageInput::from_slice(b"{\n \"hosts\": [1]}").unwrap_err();
        assert_eq!(e.line(), 2);
        assert!(PageInput::from_slice(b"[1]").is_err());
        assert!(PageInput::from_slice(b"{} x").is_err());
    }
}
