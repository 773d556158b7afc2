//! The HTTP request service identification sends, and what it reads of
//! the answer: status, `Server`, `Location` (recorded, never followed),
//! the page's title. Parsed with httparse; everything kept is escaped and
//! bounded.

use serde::{Deserialize, Serialize};

/// Characters of a title kept.
const MAX_TITLE: usize = 200;

/// `GET /` for `host` (the name or address the scan was given), closing
/// the connection after the answer.
pub fn request(host: &str) -> Vec<u8> {
    format!(
        "GET / HTTP/1.1\r\nHost: {host}\r\nUser-Agent: sonde/{} (service identification)\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        env!("CARGO_PKG_VERSION")
    )
    .into_bytes()
}

/// What an HTTP answer said.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpAnswer {
    pub status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// A redirect's target, as sent: recorded, not followed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

/// The answer in `bytes`, when they begin with an HTTP/1.x status line
/// and whole headers (the body may be cut short: the title is looked for
/// in what there is).
pub fn parse_answer(bytes: &[u8]) -> Option<HttpAnswer> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut r = httparse::Response::new(&mut headers);
    let body_at = match r.parse(bytes) {
        Ok(httparse::Status::Complete(n)) => n,
        // Headers cut short (or more than 64): the status line still names
        // an HTTP server.
        Ok(httparse::Status::Partial) | Err(httparse::Error::TooManyHeaders) => {
            return status_line(bytes);
        }
        Err(_) => return None,
    };
    let header = |name: &str| {
        r.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| text(h.value, 300))
    };
    Some(HttpAnswer {
        status: r.code?,
        reason: r
            .reason
            .filter(|s| !s.is_empty())
            .map(|s| text(s.as_bytes(), 100)),
        server: header("server"),
        location: header("location"),
        title: title(&bytes[body_at..]),
    })
}

/// An answer whose headers did not all arrive: its status line.
fn status_line(bytes: &[u8]) -> Option<HttpAnswer> {
    let line = bytes.split(|&b| b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?.trim_end();
    let mut parts = line.splitn(3, ' ');
    let version = parts.next()?;
    if !version.starts_with("HTTP/1.") {
        return None;
    }
    Some(HttpAnswer {
        status: parts.next()?.parse().ok()?,
        reason: parts.next().map(|r| text(r.as_bytes(), 100)),
        ..HttpAnswer::default()
    })
}

/// The text of the first `<title>` element, whitespace collapsed.
fn title(body: &[u8]) -> Option<String> {
    let lower: Vec<u8> = body.iter().map(u8::to_ascii_lowercase).collect();
    let open = find(&lower, b"<title")?;
    let start = open + find(&lower[open..], b">")? + 1;
    let end = start + find(&lower[start..], b"</title").unwrap_or(lower.len() - start);
    let raw = String::from_utf8_lossy(&body[start..end]);
    let collapsed: String = raw.split_whitespace().collect::<Vec<_>>().join(" ");
    let t = text(collapsed.as_bytes(), MAX_TITLE);
    (!t.is_empty()).then_some(t)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Bytes as text: control characters escaped, at most `max` characters.
fn text(bytes: &[u8], max: usize) -> String {
    let s: String = String::from_utf8_lossy(bytes).chars().take(max).collect();
    crate::text::visible(s.trim()).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_names_the_host_and_closes() {
        let r = String::from_utf8(request("198.18.1.10")).unwrap();
        assert!(r.starts_with("GET / HTTP/1.1\r\nHost: 198.18.1.10\r\n"));
        assert!(r.ends_with("Connection: close\r\n\r\n"));
    }

    #[test]
    fn nginx_default_page() {
        let a = parse_answer(b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nContent-Type: text/html\r\n\r\n<!DOCTYPE html>\n<html>\n<head>\n<title>Welcome to nginx!</title>").unwrap();
        assert_eq!(a.status, 200);
        assert_eq!(a.server.as_deref(), Some("nginx/1.22.1"));
        assert_eq!(a.title.as_deref(), Some("Welcome to nginx!"));
        assert_eq!(a.location, None);
    }

    #[test]
    fn a_redirect_is_recorded_not_followed_and_titles_are_cleaned() {
        let a = parse_answer(b"HTTP/1.1 301 Moved Permanently\r\nserver: Apache/2.4.62 (Debian)\r\nLocation: https://elsewhere.example/\r\n\r\n<TITLE>\n  Moved\x1b[2J\n  here </TITLE>").unwrap();
        assert_eq!(a.status, 301);
        assert_eq!(a.location.as_deref(), Some("https://elsewhere.example/"));
        let t = a.title.unwrap();
        assert!(
            t.starts_with("Moved") && t.ends_with("here") && !t.contains('\x1b'),
            "{t}"
        );
    }

    #[test]
    fn cut_short_answers_and_non_http() {
        let a = parse_answer(b"HTTP/1.0 400 Bad Request\r\nServer: lig").unwrap();
        assert_eq!((a.status, a.server), (400, None));
        assert!(parse_answer(b"SSH-2.0-OpenSSH_9.2p1\r\n").is_none());
        assert!(parse_answer(b"").is_none());
        assert!(parse_answer(b"\x15\x03\x01\x00\x02\x02\x46").is_none());
    }
}
