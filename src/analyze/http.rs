//! HTTP/1.x requests and responses at the start of TCP payloads
//! (httparse): what a head says and how its body is framed. The report's
//! HTTP summary, and the detectors it feeds, are `http_stats.rs`.

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
}
