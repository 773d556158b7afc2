//! Reading a report for the page. Everything but a scan report's `hosts`
//! is kept as JSON values (small); `hosts` is folded into one summary row
//! per host while it is parsed, so a report of millions of results never
//! sits in memory whole (a 1.38M-result report: 1.8 GB as values, a few
//! MB this way).

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Hosts listed on the page at most (the JSON holds them all).
pub const MAX_HOST_ROWS: usize = 2000;

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
    /// Hosts that answered anything, in report order, the first
    /// `MAX_HOST_ROWS` of them.
    pub rows: Vec<HostRow>,
    /// Hosts that answered anything (rows beyond the limit included).
    pub answered: usize,
    /// Hosts with at least one open port.
    pub with_open: usize,
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
        while let Some(row) = seq.next_element_seed(HostSeed)? {
            if row.open.is_empty() && !row.up && row.dns.is_empty() {
                continue;
            }
            s.answered += 1;
            if !row.open.is_empty() {
                s.with_open += 1;
            }
            if s.rows.len() < MAX_HOST_ROWS {
                s.rows.push(row);
            }
        }
        Ok(s)
    }
}

struct HostSeed;

impl<'de> de::DeserializeSeed<'de> for HostSeed {
    type Value = HostRow;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<HostRow, D::Error> {
        d.deserialize_map(HostVisitor)
    }
}

struct HostVisitor;

impl<'de> Visitor<'de> for HostVisitor {
    type Value = HostRow;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a host: address and results")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<HostRow, A::Error> {
        let mut row = HostRow::default();
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "address" => row.address = map.next_value()?,
                "results" => map.next_value_seed(ResultsSeed(&mut row))?,
                // The folded form: counts of what is not listed.
                "not_shown" => {
                    for f in map.next_value::<Vec<FoldedLite>>()? {
                        match f.state.as_str() {
                            "closed" => row.closed += f.count,
                            "filtered" => row.filtered += f.count,
                            _ => {}
                        }
                    }
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(row)
    }
}

/// One folded group of a host's results, as the page uses it.
#[derive(Deserialize)]
struct FoldedLite {
    state: String,
    count: u64,
}

/// One result, only the fields the page uses; the rest is skipped.
#[derive(Deserialize)]
struct ResultLite {
    port: Option<u16>,
    state: String,
    question: Option<String>,
    rcode: Option<u8>,
}

struct ResultsSeed<'a>(&'a mut HostRow);

impl<'de> de::DeserializeSeed<'de> for ResultsSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ResultsSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of results")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let row = self.0;
        while let Some(r) = seq.next_element::<ResultLite>()? {
            match r.state.as_str() {
                "open" => row.open.extend(r.port),
                "closed" => row.closed += 1,
                "filtered" => row.filtered += 1,
                "up" => row.up = true,
                "dns_answer" => row.dns.push(format!(
                    "{} rcode {}",
                    r.question.as_deref().unwrap_or("?"),
                    r.rcode.map_or("?".to_string(), |c| c.to_string())
                )),
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_summarized_and_the_rest_kept() {
        let text = br#"{"a": 1, "hosts": [
            {"address": "198.18.1.10", "results": [
                {"target": "198.18.1.10", "port": 22, "probe": "syn", "state": "open", "ttl": 64},
                {"target": "198.18.1.10", "port": 23, "probe": "syn", "state": "closed"},
                {"target": "198.18.1.10", "probe": "icmp", "state": "up"}]},
            {"address": "198.18.1.11", "results": [
                {"port": 80, "state": "filtered"}]},
            {"address": "198.18.1.12", "results": [
                {"port": 22, "probe": "syn", "state": "open"}],
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

    #[test]
    fn errors_carry_line_and_column() {
        let e = PageInput::from_slice(b"{\n \"hosts\": [1]}").unwrap_err();
        assert_eq!(e.line(), 2);
        assert!(PageInput::from_slice(b"[1]").is_err());
        assert!(PageInput::from_slice(b"{} x").is_err());
    }
}
