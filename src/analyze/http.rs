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
        /// As sent: attack tools put spaces and raw bytes in it.
        uri: &'a [u8],
        /// Header values as sent: checked as UTF-8 only when a new one is
        /// counted, not for every request (most repeat).
        host: Option<&'a [u8]>,
        user_agent: Option<&'a [u8]>,
        /// The `Cookie` header's value, as sent.
        cookie: Option<&'a [u8]>,
    },
    Response {
        status: u16,
        /// The `Content-Type` header's value, as sent.
        content_type: Option<&'a [u8]>,
        /// The body's first bytes, when the head's bytes go on past it
        /// (up to [`BODY_START`]): what a file's magic says it is.
        body_start: &'a [u8],
    },
}

/// Body bytes kept with a response's head.
pub const BODY_START: usize = 8;

/// How a message's body ends (RFC 9112, section 6.3), as its head says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No Content-Length or Transfer-Encoding: a request has no body, a
    /// response's runs to the connection's close.
    Unsaid,
    Length(u64),
    Chunked,
    /// A Transfer-Encoding other than chunked last, or Content-Length
    /// values that disagree: where the body ends cannot be told.
    Unknown,
}

/// Where a message's head ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadEnd {
    /// The head is this many bytes, its blank line included.
    Complete { len: usize, framing: Framing },
    /// The bytes end inside the head.
    Cut,
    /// The head ends but cannot be read to its end (more headers than
    /// are parsed, a malformed header line).
    Unreadable,
}

/// A message head: what it says and where it ends.
#[derive(Debug, PartialEq, Eq)]
pub struct Head<'a> {
    pub message: HttpMessage<'a>,
    pub end: HeadEnd,
}

/// Headers read per message head on the stack; a head with more is read
/// again with room for all its lines (up to [`MAX_HEAD_LINES`]).
const MAX_HEADERS: usize = 32;

/// Whether `payload` may start an HTTP/1.x message (a cheap test before
/// [`parse_head`]).
pub fn may_start_message(payload: &[u8]) -> bool {
    payload.starts_with(b"HTTP/1.") || payload.first().is_some_and(u8::is_ascii_uppercase)
}

/// Parse the head of an HTTP/1.x message at the start of `payload`. A
/// head cut short still yields its request or status line.
pub fn parse_head(payload: &[u8]) -> Option<Head<'_>> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    match parse_head_with(payload, &mut headers) {
        Ok(head) => head,
        // Rare: as many headers as the head has lines, up to a bound.
        Err(TooManyHeaders) => {
            let lines = payload.iter().filter(|&&b| b == b'\n').count();
            let mut headers = vec![httparse::EMPTY_HEADER; lines.min(MAX_HEAD_LINES)];
            // Even more: the head is counted, its end not found.
            parse_head_with(payload, &mut headers)
                .unwrap_or_else(|TooManyHeaders| first_line_only(payload))
        }
    }
}

/// Header lines read at most in one head.
const MAX_HEAD_LINES: usize = 4_096;

/// More headers than the slice given has room for.
struct TooManyHeaders;

/// A head with more headers than can be read: what its first line says.
fn first_line_only(payload: &[u8]) -> Option<Head<'_>> {
    let mut none = [];
    if payload.starts_with(b"HTTP/1.") {
        let mut resp = httparse::Response::new(&mut none);
        let _ = resp.parse(payload);
        return Some(Head {
            message: HttpMessage::Response {
                status: resp.code?,
                content_type: None,
                body_start: &[],
            },
            end: unreadable_or_cut(payload),
        });
    }
    let mut req = httparse::Request::new(&mut none);
    let _ = req.parse(payload);
    Some(Head {
        message: HttpMessage::Request {
            method: req.method?,
            uri: req.path?.as_bytes(),
            host: None,
            user_agent: None,
            cookie: None,
        },
        end: unreadable_or_cut(payload),
    })
}

fn parse_head_with<'a>(
    payload: &'a [u8],
    headers: &mut [httparse::Header<'a>],
) -> Result<Option<Head<'a>>, TooManyHeaders> {
    if payload.starts_with(b"HTTP/1.") {
        let mut resp = httparse::Response::new(headers);
        let status = resp.parse(payload);
        if let Err(httparse::Error::TooManyHeaders) = status
            && !resp.headers.is_empty()
        {
            return Err(TooManyHeaders);
        }
        let Some(code) = resp.code else {
            return Ok(None);
        };
        let end = head_end(status, resp.headers);
        let content_type = resp
            .headers
            .iter()
            .take_while(|h| !h.name.is_empty())
            .find(|h| h.name.eq_ignore_ascii_case("content-type"))
            .map(|h| h.value);
        let body_start = match end {
            HeadEnd::Complete { len, .. } => {
                &payload[len.min(payload.len())..(len + BODY_START).min(payload.len())]
            }
            _ => &[],
        };
        return Ok(Some(Head {
            message: HttpMessage::Response {
                status: code,
                content_type,
                body_start,
            },
            end,
        }));
    }
    if !payload.first().is_some_and(u8::is_ascii_uppercase) {
        return Ok(None);
    }
    let mut req = httparse::Request::new(headers);
    Ok(match req.parse(payload) {
        // Cut before the URI ended: a known method is enough to wait for
        // the rest (what the message is will be read from the whole head).
        Ok(httparse::Status::Partial) if req.path.is_none() => {
            let known = match req.method {
                Some(m) => METHODS.contains(&m),
                None => METHODS.iter().any(|m| m.as_bytes().starts_with(payload)),
            };
            known.then_some(Head {
                message: HttpMessage::Request {
                    method: req.method.unwrap_or(""),
                    uri: b"",
                    host: None,
                    user_agent: None,
                    cookie: None,
                },
                end: HeadEnd::Cut,
            })
        }
        Ok(status) => {
            let (Some(method), Some(uri)) = (req.method, req.path) else {
                return Ok(None);
            };
            let end = head_end(Ok(status), req.headers);
            let (host, user_agent, cookie) = request_headers(req.headers);
            Some(Head {
                message: HttpMessage::Request {
                    method,
                    uri: uri.as_bytes(),
                    host,
                    user_agent,
                    cookie,
                },
                end,
            })
        }
        Err(httparse::Error::TooManyHeaders) if !req.headers.is_empty() => {
            return Err(TooManyHeaders);
        }
        Err(httparse::Error::TooManyHeaders) => None,
        // httparse refuses a request line as attack tools write it (a
        // space or raw bytes in the URI): read it leniently.
        Err(_) => lenient_request(payload),
    })
}

/// What the head of a message says of its end, from httparse's result.
fn head_end(status: httparse::Result<usize>, headers: &[httparse::Header<'_>]) -> HeadEnd {
    match status {
        Ok(httparse::Status::Complete(len)) => HeadEnd::Complete {
            len,
            framing: framing(headers),
        },
        Ok(httparse::Status::Partial) => HeadEnd::Cut,
        Err(_) => HeadEnd::Unreadable,
    }
}

/// A head httparse could not read to its end: whether its blank line is
/// there at all.
fn unreadable_or_cut(payload: &[u8]) -> HeadEnd {
    let ends =
        payload.windows(4).any(|w| w == b"\r\n\r\n") || payload.windows(2).any(|w| w == b"\n\n");
    if ends {
        HeadEnd::Unreadable
    } else {
        HeadEnd::Cut
    }
}

/// The body's framing, from Transfer-Encoding and Content-Length.
fn framing(headers: &[httparse::Header<'_>]) -> Framing {
    let mut length: Option<u64> = None;
    let mut chunked = None;
    for h in headers.iter().take_while(|h| !h.name.is_empty()) {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            // The last coding decides (RFC 9112, 6.3 item 4).
            let last = h.value.rsplit(|&b| b == b',').next().unwrap_or(b"");
            chunked = Some(last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if h.name.eq_ignore_ascii_case("content-length") {
            for v in h.value.split(|&b| b == b',') {
                let v = v.trim_ascii();
                let n = std::str::from_utf8(v)
                    .ok()
                    .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|t| t.parse::<u64>().ok());
                match (n, length) {
                    (None, _) => return Framing::Unknown,
                    (Some(n), Some(l)) if n != l => return Framing::Unknown,
                    (Some(n), _) => length = Some(n),
                }
            }
        }
    }
    match (chunked, length) {
        (Some(true), _) => Framing::Chunked,
        (Some(false), _) => Framing::Unknown,
        (None, Some(n)) => Framing::Length(n),
        (None, None) => Framing::Unsaid,
    }
}

/// Parse the head of an HTTP/1.x message (what it says, not where it
/// ends).
pub fn parse(payload: &[u8]) -> Option<HttpMessage<'_>> {
    parse_head(payload)
        .map(|h| h.message)
        .filter(|m| !matches!(m, HttpMessage::Request { method: "", .. }))
}

/// The first Host and User-Agent values, in one pass over the headers.
/// The `Host`, `User-Agent` and `Cookie` headers' values.
type RequestHeaders<'a> = (Option<&'a [u8]>, Option<&'a [u8]>, Option<&'a [u8]>);

fn request_headers<'a>(headers: &[httparse::Header<'a>]) -> RequestHeaders<'a> {
    let (mut host, mut user_agent, mut cookie) = (None, None, None);
    for h in headers.iter().take_while(|h| !h.name.is_empty()) {
        if host.is_none() && h.name.eq_ignore_ascii_case("host") {
            host = Some(h.value);
        } else if user_agent.is_none() && h.name.eq_ignore_ascii_case("user-agent") {
            user_agent = Some(h.value);
        } else if cookie.is_none() && h.name.eq_ignore_ascii_case("cookie") {
            cookie = Some(h.value);
        }
    }
    (host, user_agent, cookie)
}

/// Methods a lenient request line may start with.
const METHODS: [&str; 12] = [
    "GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "CONNECT", "PROPFIND",
    "MKCOL", "SEARCH",
];

/// `METHOD SP URI SP HTTP/1.x` where the URI may hold spaces and any byte
/// but a line end: the method is the first word, the version the last.
fn lenient_request(payload: &[u8]) -> Option<Head<'_>> {
    let Some(end) = payload.iter().position(|&b| b == b'\n') else {
        return request_line_so_far(payload);
    };
    let line = payload[..end]
        .strip_suffix(b"\r")
        .unwrap_or(&payload[..end]);
    let sp = line.iter().position(|&b| b == b' ')?;
    let method = std::str::from_utf8(&line[..sp]).ok()?;
    let method = METHODS.iter().find(|m| **m == method)?;
    let last = line.iter().rposition(|&b| b == b' ')?;
    if last <= sp || !line[last + 1..].starts_with(b"HTTP/1.") {
        return None;
    }
    let uri = &line[sp + 1..last];
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let rest = &payload[end + 1..];
    let (end, (host, user_agent, cookie)) = match httparse::parse_headers(rest, &mut headers) {
        Ok(httparse::Status::Complete((len, hs))) => (
            HeadEnd::Complete {
                len: end + 1 + len,
                framing: framing(hs),
            },
            request_headers(hs),
        ),
        Ok(httparse::Status::Partial) => (HeadEnd::Cut, request_headers(&headers)),
        Err(_) => (unreadable_or_cut(rest), (None, None, None)),
    };
    Some(Head {
        message: HttpMessage::Request {
            method,
            uri,
            host,
            user_agent,
            cookie,
        },
        end,
    })
}

/// A request line not ended yet (its head is being gathered) whose URI
/// httparse refuses: a known method and a space are enough to wait for
/// the rest.
fn request_line_so_far(payload: &[u8]) -> Option<Head<'_>> {
    let sp = payload.iter().position(|&b| b == b' ')?;
    let method = std::str::from_utf8(&payload[..sp]).ok()?;
    let method = METHODS.iter().find(|m| **m == method)?;
    Some(Head {
        message: HttpMessage::Request {
            method,
            uri: &payload[sp + 1..],
            host: None,
            user_agent: None,
            cookie: None,
        },
        end: HeadEnd::Cut,
    })
}

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

    #[test]
    fn request_and_response_heads() {
        let r = parse(b"GET /index.html HTTP/1.1\r\nHost: Lab.Test\r\nUser-Agent: curl/8\r\n\r\n")
            .unwrap();
        assert_eq!(
            r,
            HttpMessage::Request {
                method: "GET",
                uri: b"/index.html",
                host: Some(&b"Lab.Test"[..]),
                user_agent: Some(&b"curl/8"[..]),
                cookie: None,
            }
        );
        // cut mid-headers: the request line is still there
        assert!(matches!(
            parse(b"POST /form HTTP/1.1\r\nHost: a"),
            Some(HttpMessage::Request { method: "POST", .. })
        ));
        assert_eq!(
            parse(b"HTTP/1.1 404 Not Found\r\n\r\n"),
            Some(HttpMessage::Response {
                status: 404,
                content_type: None,
                body_start: &[]
            })
        );
        assert_eq!(parse(b"\x16\x03\x01 tls"), None);
        assert_eq!(parse(b"Garbage that is not http"), None);
    }

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
