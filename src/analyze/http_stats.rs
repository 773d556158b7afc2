//! The report's HTTP summary (requests, responses, methods, status codes,
//! hosts, User-Agents, URIs, how the streams were followed), and the
//! detectors each message feeds: web scanners, cookie replay, exploit-kit
//! chains. The parsing is `http.rs`, which the detectors read too.

use std::collections::BTreeMap;

use foldhash::HashMap;
use serde::Serialize;

use super::http::HttpMessage;

const MAX_KEYS: usize = 10_000;

/// Count `key`; a value that is not UTF-8 is not counted (the report is JSON).
fn bump(map: &mut HashMap<Box<[u8]>, u64>, key: &[u8]) {
    if let Some(n) = map.get_mut(key) {
        *n += 1;
    } else if map.len() < MAX_KEYS && std::str::from_utf8(key).is_ok() {
        map.insert(key.into(), 1);
    }
}

#[derive(Debug, Default)]
pub struct HttpStats {
    pub requests: u64,
    pub responses: u64,
    /// Counted in lower case (host names compare case-blind) ...
    hosts: HashMap<Box<[u8]>, u64>,
    /// ... and listed as first sent, where that differs.
    host_spelling: HashMap<Box<[u8]>, Box<[u8]>>,
    user_agents: HashMap<Box<[u8]>, u64>,
    methods: BTreeMap<String, u64>,
    statuses: BTreeMap<u16, u64>,
    uris: HashMap<Box<[u8]>, u64>,
    /// Who asked whom: the web-scanner detector.
    pub(crate) web: crate::analyze::detect::web_scanner::WebScanner,
    /// Which clients sent each session cookie: the replay detector.
    pub(crate) cookies: crate::analyze::detect::cookie_replay::CookieReplay,
    pub(crate) exploit_kit: crate::analyze::detect::exploit_kit::ExploitKit,
}

impl HttpStats {
    pub fn with_web_thresholds(t: crate::analyze::detect::WebScannerThresholds) -> HttpStats {
        HttpStats {
            web: crate::analyze::detect::web_scanner::WebScanner::new(t),
            ..Default::default()
        }
    }

    /// [`HttpStats::add`], from `sender` to `receiver` at `ts`, in (or
    /// ending in) `frame`.
    pub fn add_between(
        &mut self,
        m: &HttpMessage<'_>,
        sender: std::net::IpAddr,
        receiver: std::net::IpAddr,
        ts: i64,
        frame: u64,
    ) {
        self.add(m);
        self.web.message(m, sender, receiver, ts, frame);
        self.cookies.message(m, sender, receiver, ts, frame);
        self.exploit_kit.message(m, sender, receiver, ts, frame);
    }

    pub fn add(&mut self, m: &HttpMessage<'_>) {
        match m {
            HttpMessage::Request {
                method,
                uri,
                host,
                user_agent,
                ..
            } => {
                self.requests += 1;
                // Look up before allocating: almost every method and host is already counted.
                match self.methods.get_mut(*method) {
                    Some(n) => *n += 1,
                    None => {
                        self.methods.insert((*method).to_string(), 1);
                    }
                }
                bump(&mut self.uris, uri);
                // Hosts are counted in lower case. Every key is, so a host
                // found as sent is already lower case: only a miss needs
                // the case looked at.
                if let Some(h) = host {
                    match self.hosts.get_mut(*h) {
                        Some(n) => *n += 1,
                        None if h.iter().any(u8::is_ascii_uppercase) => {
                            let lower = h.to_ascii_lowercase();
                            if !self.hosts.contains_key(&lower[..]) && self.hosts.len() < MAX_KEYS {
                                self.host_spelling.insert(lower.clone().into(), (*h).into());
                            }
                            bump(&mut self.hosts, &lower)
                        }
                        None => bump(&mut self.hosts, h),
                    }
                }
                if let Some(ua) = user_agent {
                    bump(&mut self.user_agents, ua);
                }
            }
            HttpMessage::Response { status, .. } => {
                self.responses += 1;
                *self.statuses.entry(*status).or_default() += 1;
            }
        }
    }

    pub fn report(&self, top: usize, streams: StreamCounts) -> HttpReport {
        // Byte order is the strings' order (UTF-8 keeps code point order).
        let top_of = |m: &HashMap<Box<[u8]>, u64>| -> Vec<KeyCount> {
            let mut v: Vec<(&Box<[u8]>, &u64)> = m.iter().collect();
            v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            v.into_iter()
                .take(top)
                .map(|(k, c)| KeyCount {
                    value: String::from_utf8_lossy(k).into_owned(),
                    count: *c,
                    flag: None,
                })
                .collect()
        };
        HttpReport {
            requests: self.requests,
            responses: self.responses,
            methods: self.methods.clone(),
            status_codes: self
                .statuses
                .iter()
                .map(|(s, c)| (s.to_string(), *c))
                .collect(),
            hosts: top_of(&self.hosts)
                .into_iter()
                .map(|mut k| {
                    if let Some(first) = self.host_spelling.get(k.value.as_bytes())
                        && let Ok(first) = std::str::from_utf8(first)
                    {
                        k.value = first.to_string();
                    }
                    k
                })
                .collect(),
            user_agents: top_of(&self.user_agents)
                .into_iter()
                .map(|mut k| {
                    k.flag = crate::analyze::detect::web_scanner::scanner_agent(k.value.as_bytes())
                        .map(|name| format!("scanner: {name}"));
                    k
                })
                .collect(),
            uris: top_of(&self.uris)
                .into_iter()
                .map(|mut k| {
                    k.flag = crate::analyze::detect::web_scanner::attack_in_uri(k.value.as_bytes())
                        .then(|| "attack pattern".to_string());
                    k
                })
                .collect(),
            streams,
        }
    }
}

/// How the streams were followed (the report's `http.streams`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StreamCounts {
    /// Directions followed (from their first message).
    pub directions: u64,
    /// Heads gathered from more than one segment.
    pub heads_reassembled: u64,
    /// Messages that began inside a segment, after a body or another
    /// message (pipelining).
    pub messages_inside_segments: u64,
    /// Places lost to a segment not captured (a gap a body could not
    /// absorb).
    pub gaps: u64,
    /// Heads over the cap ([`MAX_HEAD`](super::http_stream::MAX_HEAD)): counted from what was gathered.
    pub heads_over_cap: u64,
    /// Heads or chunked bodies that could not be read to their end.
    pub unreadable: u64,
}

#[derive(Debug, Serialize)]
pub struct HttpReport {
    pub requests: u64,
    pub responses: u64,
    pub methods: BTreeMap<String, u64>,
    pub status_codes: BTreeMap<String, u64>,
    pub hosts: Vec<KeyCount>,
    pub user_agents: Vec<KeyCount>,
    pub uris: Vec<KeyCount>,
    /// How each direction's byte stream was followed.
    pub streams: StreamCounts,
}

#[derive(Debug, Serialize)]
pub struct KeyCount {
    pub value: String,
    pub count: u64,
    /// What the value shows a responder: a known scanner's User-Agent, an
    /// attack pattern in a URI.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flag: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::http::parse;

    fn listed(v: &[KeyCount]) -> Vec<(String, u64)> {
        v.iter().map(|k| (k.value.clone(), k.count)).collect()
    }

    #[test]
    fn header_values_that_are_not_utf8_are_not_counted() {
        let mut stats = HttpStats::default();
        for req in [
            &b"GET / HTTP/1.1\r\nHost: ok.test\r\nUser-Agent: \xff\xfe\r\n\r\n"[..],
            b"GET /a HTTP/1.1\r\nHost: \xc3\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: OK.test\r\nUser-Agent: caf\xc3\xa9/1\r\n\r\n",
        ] {
            stats.add(&parse(req).unwrap());
        }
        let r = stats.report(10, Default::default());
        assert_eq!(r.requests, 3);
        assert_eq!(listed(&r.hosts), [("ok.test".to_string(), 2)]);
        assert_eq!(listed(&r.user_agents), [("caf\u{e9}/1".to_string(), 1)]);
        assert_eq!(
            listed(&r.uris),
            [("/".to_string(), 2), ("/a".to_string(), 1)]
        );
    }

    /// Hosts count case-blind and are listed as first sent (issue 18: names
    /// were lower-cased), and the first Host and User-Agent headers are the
    /// ones taken.
    #[test]
    fn hosts_count_case_blind_and_the_first_of_a_repeated_header_wins() {
        let mut stats = HttpStats::default();
        for req in [
            &b"GET / HTTP/1.1\r\nHost: Example.COM\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nhost: example.com\r\nHOST: other.test\r\n\r\n",
            b"GET / HTTP/1.1\r\nUser-Agent: a/1\r\nHost: EXAMPLE.com\r\nuser-agent: b/2\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
        ] {
            stats.add(&parse(req).unwrap());
        }
        let r = stats.report(10, Default::default());
        assert_eq!(listed(&r.hosts), [("Example.COM".to_string(), 4)]);
        assert_eq!(listed(&r.user_agents), [("a/1".to_string(), 1)]);
    }
}
