//! HTTP/1.x requests and responses at the start of TCP payloads (httparse),
//! and the report's HTTP summary.

use std::collections::BTreeMap;

use foldhash::HashMap;
use serde::Serialize;

/// What one segment says, if it starts an HTTP/1.x message.
#[derive(Debug, PartialEq, Eq)]
pub enum HttpMessage<'a> {
    Request {
        method: &'a str,
        uri: &'a str,
        host: Option<&'a str>,
        user_agent: Option<&'a str>,
    },
    Response {
        status: u16,
    },
}

/// Parse the head of an HTTP/1.x message. A head cut at the segment's end
/// still yields its request or status line.
pub fn parse(payload: &[u8]) -> Option<HttpMessage<'_>> {
    if payload.starts_with(b"HTTP/1.") {
        // Only the status line is wanted: with no room for headers httparse
        // stops after it (TooManyHeaders) instead of validating every header.
        let mut resp = httparse::Response::new(&mut []);
        return match resp.parse(payload) {
            Ok(_) | Err(httparse::Error::TooManyHeaders) => {
                resp.code.map(|status| HttpMessage::Response { status })
            }
            Err(_) => None,
        };
    }
    if !payload.first().is_some_and(u8::is_ascii_uppercase) {
        return None;
    }
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(payload) {
        Ok(_) | Err(httparse::Error::TooManyHeaders) => {}
        Err(_) => return None,
    }
    let (method, uri) = (req.method?, req.path?);
    let header = |name: &str| {
        req.headers
            .iter()
            .take_while(|h| !h.name.is_empty())
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
    };
    Some(HttpMessage::Request {
        method,
        uri,
        host: header("host"),
        user_agent: header("user-agent"),
    })
}

const MAX_KEYS: usize = 10_000;

fn bump(map: &mut HashMap<String, u64>, key: &str) {
    if let Some(n) = map.get_mut(key) {
        *n += 1;
    } else if map.len() < MAX_KEYS {
        map.insert(key.to_string(), 1);
    }
}

#[derive(Debug, Default)]
pub struct HttpStats {
    pub requests: u64,
    pub responses: u64,
    hosts: HashMap<String, u64>,
    user_agents: HashMap<String, u64>,
    methods: BTreeMap<String, u64>,
    statuses: BTreeMap<u16, u64>,
    uris: HashMap<String, u64>,
}

impl HttpStats {
    pub fn add(&mut self, m: &HttpMessage<'_>) {
        match m {
            HttpMessage::Request {
                method,
                uri,
                host,
                user_agent,
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
                match host {
                    Some(h) if h.bytes().any(|c| c.is_ascii_uppercase()) => {
                        bump(&mut self.hosts, &h.to_ascii_lowercase())
                    }
                    Some(h) => bump(&mut self.hosts, h),
                    None => {}
                }
                if let Some(ua) = user_agent {
                    bump(&mut self.user_agents, ua);
                }
            }
            HttpMessage::Response { status } => {
                self.responses += 1;
                *self.statuses.entry(*status).or_default() += 1;
            }
        }
    }

    pub fn report(&self, top: usize) -> HttpReport {
        let top_of = |m: &HashMap<String, u64>| {
            let mut v: Vec<(&String, &u64)> = m.iter().collect();
            v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            v.into_iter()
                .take(top)
                .map(|(k, c)| KeyCount {
                    value: k.clone(),
                    count: *c,
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
            hosts: top_of(&self.hosts),
            user_agents: top_of(&self.user_agents),
            uris: top_of(&self.uris),
        }
    }
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
}

#[derive(Debug, Serialize)]
pub struct KeyCount {
    pub value: String,
    pub count: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_and_response_heads() {
        let r = parse(b"GET /index.html HTTP/1.1\r\nHost: Lab.Test\r\nUser-Agent: curl/8\r\n\r\n")
            .unwrap();
        assert_eq!(
            r,
            HttpMessage::Request {
                method: "GET",
                uri: "/index.html",
                host: Some("Lab.Test"),
                user_agent: Some("curl/8")
            }
        );
        // cut mid-headers: the request line is still there
        assert!(matches!(
            parse(b"POST /form HTTP/1.1\r\nHost: a"),
            Some(HttpMessage::Request { method: "POST", .. })
        ));
        assert_eq!(
            parse(b"HTTP/1.1 404 Not Found\r\n\r\n"),
            Some(HttpMessage::Response { status: 404 })
        );
        assert_eq!(parse(b"\x16\x03\x01 tls"), None);
        assert_eq!(parse(b"Garbage that is not http"), None);
    }
}
