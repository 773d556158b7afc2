//! `cookie_replay`: one session cookie sent by two clients. A session
//! cookie is the session: whoever sends it is logged in. A stolen one
//! (sniffed on open Wi-Fi, taken by a man in the middle, read by an XSS)
//! is replayed from the thief's machine, while the victim goes on using
//! it. A user whose address changes (Wi-Fi to mobile) also sends it from
//! a second address, but from the same browser, and stops using the old
//! address: a finding needs the first client still sending the cookie
//! after the second began, or a different User-Agent.
//!
//! Session cookies are those whose name says so (`sess`, `sid`, `token`,
//! `auth`, `jwt`, `login`, `remember`, any case) with a value of at least
//! 8 bytes; per server address, `Host` and cookie.

use std::collections::BTreeMap;
use std::net::IpAddr;

use foldhash::HashMap;

use super::{Anomaly, Severity, Span};
use crate::analyze::http::HttpMessage;

/// Session cookies followed (memory stays bounded).
const MAX_SESSIONS: usize = 16_384;

const SESSION_NAMES: [&str; 7] = ["sess", "sid", "token", "auth", "jwt", "login", "remember"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Use {
    client: IpAddr,
    agent: u64,
    first: i64,
    last: i64,
    /// The frame of its first request with the cookie.
    frame: u64,
}

#[derive(Debug)]
struct Session {
    name: String,
    server: IpAddr,
    host: String,
    first: Use,
    second: Option<Use>,
    /// The first client sent it again after the second began.
    first_after_second: bool,
    /// Requests from clients beyond the two.
    others: u64,
    /// The first client's first request after the second began.
    again_frame: Option<u64>,
}

#[derive(Debug, Default)]
pub struct CookieReplay {
    sessions: HashMap<u64, Session>,
}

/// The session cookies of a `Cookie` header: (name, value) pairs.
fn session_cookies(header: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    header.split(|&b| b == b';').filter_map(|pair| {
        let pair = pair.trim_ascii();
        let eq = pair.iter().position(|&b| b == b'=')?;
        let (name, value) = (pair[..eq].trim_ascii(), pair[eq + 1..].trim_ascii());
        let session = value.len() >= 8
            && SESSION_NAMES.iter().any(|s| {
                name.len() >= s.len()
                    && name
                        .windows(s.len())
                        .any(|w| w.eq_ignore_ascii_case(s.as_bytes()))
            });
        session.then_some((name, value))
    })
}

impl CookieReplay {
    pub fn message(
        &mut self,
        m: &HttpMessage<'_>,
        client: IpAddr,
        server: IpAddr,
        ts: i64,
        frame: u64,
    ) {
        let HttpMessage::Request {
            cookie: Some(header),
            host,
            user_agent,
            ..
        } = m
        else {
            return;
        };
        let agent = super::fnv(user_agent.unwrap_or(b""));
        let host = host.unwrap_or(b"");
        for (name, value) in session_cookies(header) {
            let server_bytes = match server {
                IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
                IpAddr::V6(a) => a.octets(),
            };
            // Hashed part by part: no copy of the header per request.
            let key = super::fnv_parts(&[&server_bytes, host, b"\0", name, b"=", value]);
            let now = Use {
                client,
                agent,
                first: ts,
                last: ts,
                frame,
            };
            if !self.sessions.contains_key(&key) {
                if self.sessions.len() < MAX_SESSIONS {
                    self.sessions.insert(
                        key,
                        Session {
                            name: String::from_utf8_lossy(name).chars().take(40).collect(),
                            server,
                            host: String::from_utf8_lossy(host).chars().take(80).collect(),
                            first: now,
                            second: None,
                            first_after_second: false,
                            others: 0,
                            again_frame: None,
                        },
                    );
                }
                continue;
            }
            let Some(s) = self.sessions.get_mut(&key) else {
                continue;
            };
            if s.first.client == client {
                s.first.last = s.first.last.max(ts);
                if s.second.is_some_and(|second| ts > second.first) {
                    s.first_after_second = true;
                    s.again_frame.get_or_insert(frame);
                }
            } else {
                match &mut s.second {
                    None => s.second = Some(now),
                    Some(second) if second.client == client => second.last = second.last.max(ts),
                    Some(_) => s.others += 1,
                }
            }
        }
    }

    pub fn finish(self) -> Vec<Anomaly> {
        let mut found: Vec<&Session> = self
            .sessions
            .values()
            .filter(|s| {
                s.second
                    .is_some_and(|second| s.first_after_second || second.agent != s.first.agent)
            })
            .collect();
        found.sort_by_key(|s| (s.first.first, s.server, s.name.clone()));
        found
            .into_iter()
            .filter_map(|s| {
                let second = s.second?;
                let both = s.first_after_second;
                let mut span = Span::new(s.first.first);
                span.add(second.last.max(s.first.last));
                let host = if s.host.is_empty() {
                    s.server.to_string()
                } else {
                    s.host.clone()
                };
                Some(Anomaly {
                    evidence: BTreeMap::from([
                        ("clients", 2.0 + if s.others > 0 { 1.0 } else { 0.0 }),
                        ("requests_from_other_clients", s.others as f64),
                        ("first_client_after_second", f64::from(u8::from(both))),
                        (
                            "same_user_agent",
                            f64::from(u8::from(second.agent == s.first.agent)),
                        ),
                    ]),
                    sources: vec![s.first.client.to_string(), second.client.to_string()],
                    destinations: vec![s.server.to_string()],
                    note: Some(format!(
                        "cookie {} for {host}: {} from {} on, {} from {}{}",
                        s.name,
                        s.first.client,
                        super::ts(s.first.first),
                        second.client,
                        super::ts(second.first),
                        match (both, second.agent == s.first.agent) {
                            (true, false) => "; both went on using it, from different browsers",
                            (true, true) => "; both went on using it",
                            _ => "; from a different browser",
                        }
                    )),
                    ..Anomaly::new(
                        "cookie_replay",
                        None,
                        Severity::High,
                        format!(
                            "session cookie {} for {host} sent by {} and by {}: a stolen session replayed",
                            s.name, s.first.client, second.client
                        ),
                        span,
                        [Some(s.first.frame), Some(second.frame), s.again_frame]
                            .into_iter()
                            .flatten()
                            .collect(),
                    )
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn session_cookies_are_named_so_and_long_enough() {
        let got: Vec<_> = super::session_cookies(
            b"theme=dark; PHPSESSID=8f3k2l9x0q; lang=en; jwt=short; auth_token=abcdefghij",
        )
        .map(|(n, v)| {
            (
                String::from_utf8_lossy(n).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            )
        })
        .collect();
        assert_eq!(
            got,
            vec![
                ("PHPSESSID".to_string(), "8f3k2l9x0q".to_string()),
                ("auth_token".to_string(), "abcdefghij".to_string())
            ]
        );
    }
}
