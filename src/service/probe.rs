//! How one connection identifies its service: a state machine with no I/O
//! (quinn's way), fed what the connection heard and answering with what to
//! do next. The driver (`net::service`) owns the socket, the timeouts and
//! the TLS session; tests feed bytes.
//!
//! The order follows what an experienced user expects of `nmap -sV`, cut
//! short where the port says more: listen first (SSH, SMTP, FTP, POP3,
//! IMAP, MySQL and telnet speak first); on a port whose clients speak
//! first, ask at once (HTTP `GET /`, Redis `INFO server`, a PostgreSQL
//! startup message); on a TLS port, handshake first and then listen or
//! ask inside. An HTTP server that answers "this is a TLS port", or a TLS
//! alert, gets one more connection with TLS.

use std::time::Duration;

use super::http::{self, HttpAnswer};
use super::rules::{Field, Named, Rules};

/// How long a greeting may take to begin.
pub const GREETING_WAIT: Duration = Duration::from_millis(2500);
/// How long an answer to a request may take to begin.
pub const ANSWER_WAIT: Duration = Duration::from_secs(5);
/// The most read from one connection.
pub const MAX_READ: usize = 64 * 1024;
/// The most of a banner a result keeps (escaped).
pub const MAX_BANNER: usize = 512;

/// Ports where TLS comes first.
pub const TLS_PORTS: [u16; 10] = [443, 465, 563, 636, 853, 990, 993, 995, 8443, 9443];
/// Ports whose services listen for the client to speak first.
const CLIENT_FIRST: [u16; 14] = [
    80, 81, 591, 3000, 5000, 5432, 6379, 8000, 8008, 8080, 8081, 8888, 9000, 9200,
];
/// TLS ports whose service speaks first inside TLS (IMAPS, POP3S, SMTPS,
/// FTPS).
const TLS_GREETS: [u16; 4] = [465, 990, 993, 995];

/// What to do next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Read what arrives within the wait (stop early once something came
    /// and the line went quiet), then report [`Event::Heard`].
    Listen(Duration),
    /// Send these bytes, then listen as [`Action::Listen`].
    Ask(Vec<u8>, Duration),
    /// Handshake TLS on this connection, then report [`Event::TlsUp`] or
    /// [`Event::TlsFailed`].
    StartTls,
    /// Close this connection and open another (with TLS when `tls`), then
    /// report [`Event::Opened`].
    Reconnect { tls: bool },
    /// Done: [`Identification::finish`] says what was found.
    Finish,
}

/// What happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The connection is open (TLS up too, after a `Reconnect { tls: true }`).
    Opened,
    /// The bytes read (possibly none) when the wait ended or the peer closed.
    Heard(Vec<u8>),
    /// The handshake completed: the protocol version, the cipher suite,
    /// ALPN, and the certificate chain (DER, the server's first).
    TlsUp(TlsSeen),
    /// The handshake failed.
    TlsFailed(String),
}

/// A TLS session as the driver saw it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsSeen {
    /// `TLSv1.3`, `TLSv1.2`...
    pub version: String,
    pub cipher: String,
    pub alpn: Option<String>,
    pub chain: Vec<Vec<u8>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Start,
    Greeting,
    Asked(Field),
    Handshake,
    Reconnecting,
    Done,
}

/// One connection's identification.
#[derive(Debug)]
pub struct Identification {
    port: u16,
    host: String,
    stage: Stage,
    tls: Option<TlsSeen>,
    tls_failed: Option<String>,
    tried_tls: bool,
    heard: Vec<u8>,
    /// What identified the service.
    named: Option<Named>,
    http: Option<HttpAnswer>,
}

/// What a connection found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Found {
    pub named: Option<Named>,
    /// What the service sent, escaped and bounded (when no rule named it,
    /// this is what a person reads).
    pub banner: Option<String>,
    pub http: Option<HttpAnswer>,
    pub tls: Option<TlsSeen>,
    /// The handshake failed (the port may not speak TLS after all).
    pub tls_error: Option<String>,
}

impl Identification {
    /// `host` is the name or address the HTTP request names.
    pub fn new(port: u16, host: &str) -> Identification {
        Identification {
            port,
            host: host.to_string(),
            stage: Stage::Start,
            tls: None,
            tls_failed: None,
            tried_tls: false,
            heard: Vec::new(),
            named: None,
            http: None,
        }
    }

    /// The connection is about to open: TLS first on a TLS port.
    pub fn opens_with_tls(&self) -> bool {
        TLS_PORTS.contains(&self.port)
    }

    /// The next action after `event`.
    pub fn on(&mut self, event: Event) -> Action {
        match (self.stage, event) {
            (Stage::Start | Stage::Reconnecting, Event::Opened) => {
                if (self.stage == Stage::Start && self.opens_with_tls())
                    || self.stage == Stage::Reconnecting
                {
                    self.tried_tls = true;
                    self.stage = Stage::Handshake;
                    return Action::StartTls;
                }
                self.plain_start()
            }
            (Stage::Handshake, Event::TlsUp(seen)) => {
                self.tls = Some(seen);
                if TLS_GREETS.contains(&self.port) {
                    self.stage = Stage::Greeting;
                    Action::Listen(GREETING_WAIT)
                } else {
                    self.ask_http()
                }
            }
            (Stage::Handshake, Event::TlsFailed(why)) => {
                self.tls_failed = Some(why);
                self.stage = Stage::Done;
                Action::Finish
            }
            (Stage::Greeting, Event::Heard(bytes)) => {
                if bytes.is_empty() {
                    // Silent: ask, as the port suggests.
                    return self.ask_by_port();
                }
                self.heard = bytes;
                self.named = Rules::builtin().identify(Field::Greeting, &self.heard);
                self.stage = Stage::Done;
                Action::Finish
            }
            (Stage::Asked(field), Event::Heard(bytes)) => {
                self.heard = bytes;
                self.stage = Stage::Done;
                if field == Field::HttpServer {
                    return self.after_http();
                }
                self.named = Rules::builtin().identify(field, &self.heard);
                Action::Finish
            }
            // Anything else ends it (a driver out of step is a bug; the
            // result says what was heard).
            (_, _) => {
                self.stage = Stage::Done;
                Action::Finish
            }
        }
    }

    fn plain_start(&mut self) -> Action {
        if CLIENT_FIRST.contains(&self.port) {
            return self.ask_by_port();
        }
        self.stage = Stage::Greeting;
        Action::Listen(GREETING_WAIT)
    }

    fn ask_by_port(&mut self) -> Action {
        match self.port {
            5432 => {
                self.stage = Stage::Asked(Field::Response);
                Action::Ask(postgres_startup(), ANSWER_WAIT)
            }
            6379 => {
                self.stage = Stage::Asked(Field::Response);
                Action::Ask(b"INFO server\r\n".to_vec(), ANSWER_WAIT)
            }
            _ => self.ask_http(),
        }
    }

    fn ask_http(&mut self) -> Action {
        self.stage = Stage::Asked(Field::HttpServer);
        Action::Ask(http::request(&self.host), ANSWER_WAIT)
    }

    /// An HTTP answer names the server; one that says the port wants TLS
    /// (or a TLS alert in plain text) gets a connection with TLS.
    fn after_http(&mut self) -> Action {
        let wants_tls = self.heard.starts_with(&[0x15, 0x03])
            || (self.tls.is_none()
                && self.heard.len() < 4096
                && contains_ci(&self.heard, b"plain http request was sent to https port"));
        if wants_tls && !self.tried_tls {
            self.heard.clear();
            self.stage = Stage::Reconnecting;
            return Action::Reconnect { tls: true };
        }
        self.http = http::parse_answer(&self.heard);
        if let Some(a) = &self.http {
            self.named = Some(
                a.server
                    .as_deref()
                    .and_then(|s| Rules::builtin().identify(Field::HttpServer, s.as_bytes()))
                    .unwrap_or_else(|| Named {
                        service: "http".into(),
                        ..Named::default()
                    }),
            );
        } else if !self.heard.is_empty() {
            // Not HTTP: perhaps a service that greets late.
            self.named = Rules::builtin().identify(Field::Greeting, &self.heard);
        }
        Action::Finish
    }

    /// What the connection found.
    pub fn finish(self) -> Found {
        let banner = (!self.heard.is_empty()).then(|| banner_text(&self.heard));
        Found {
            named: self.named,
            banner,
            http: self.http,
            tls: self.tls,
            tls_error: self.tls_failed,
        }
    }
}

/// A PostgreSQL startup message (protocol 3.0, user and database "sonde"):
/// any server answers it, with an authentication request or an error.
fn postgres_startup() -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&196_608u32.to_be_bytes());
    for s in [
        "user",
        "sonde",
        "database",
        "sonde",
        "application_name",
        "sonde",
    ] {
        body.extend_from_slice(s.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut m = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    m.extend(body);
    m
}

fn contains_ci(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

/// Bytes as a person reads them: text as it is, anything else escaped
/// (`\xNN`, `\r`, `\n`), at most [`MAX_BANNER`] characters.
pub fn banner_text(bytes: &[u8]) -> String {
    let mut out = String::new();
    for &b in bytes {
        if out.len() >= MAX_BANNER {
            out.push('…');
            break;
        }
        match b {
            b'\r' => out.push_str("\\r"),
            b'\n' => out.push_str("\\n"),
            b'\t' => out.push_str("\\t"),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(port: u16, mut answers: impl FnMut(&Action) -> Event) -> (Vec<Action>, Found) {
        let mut id = Identification::new(port, "198.18.1.10");
        let mut actions = Vec::new();
        let mut a = id.on(Event::Opened);
        while a != Action::Finish {
            actions.push(a.clone());
            let e = answers(&a);
            a = id.on(e);
            assert!(actions.len() < 10, "{actions:?}");
        }
        (actions, id.finish())
    }

    #[test]
    fn ssh_speaks_first() {
        let (actions, found) = run(22, |_| {
            Event::Heard(b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n".to_vec())
        });
        assert_eq!(actions, [Action::Listen(GREETING_WAIT)]);
        let n = found.named.unwrap();
        assert_eq!(
            (n.service.as_str(), n.version.as_deref()),
            ("ssh", Some("9.2p1"))
        );
        assert_eq!(
            found.banner.as_deref(),
            Some("SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\\r\\n")
        );
    }

    #[test]
    fn http_on_a_client_first_port_is_asked_at_once() {
        let (actions, found) = run(80, |a| match a {
            Action::Ask(req, _) => {
                assert!(req.starts_with(b"GET / HTTP/1.1\r\nHost: 198.18.1.10"));
                Event::Heard(
                    b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\n\r\n<title>Welcome to nginx!</title>"
                        .to_vec(),
                )
            }
            other => panic!("{other:?}"),
        });
        assert_eq!(actions.len(), 1);
        let n = found.named.unwrap();
        assert_eq!(
            (n.product.as_deref(), n.version.as_deref()),
            (Some("nginx"), Some("1.22.1"))
        );
        assert_eq!(
            found.http.unwrap().title.as_deref(),
            Some("Welcome to nginx!")
        );
    }

    #[test]
    fn a_silent_port_is_asked_http_and_an_unknown_server_is_http_still() {
        let (actions, found) = run(7777, |a| match a {
            Action::Listen(_) => Event::Heard(Vec::new()),
            Action::Ask(..) => Event::Heard(b"HTTP/1.0 404 Not Found\r\n\r\n".to_vec()),
            other => panic!("{other:?}"),
        });
        assert_eq!(actions.len(), 2);
        assert_eq!(found.named.unwrap().service, "http");
        // Nothing at all: no name, no banner.
        let (_, found) = run(7777, |_| Event::Heard(Vec::new()));
        assert_eq!(found, Found::default());
    }

    #[test]
    fn tls_first_on_443_then_http_inside() {
        let (actions, found) = run(443, |a| match a {
            Action::StartTls => Event::TlsUp(TlsSeen {
                version: "TLSv1.3".into(),
                ..TlsSeen::default()
            }),
            Action::Ask(..) => Event::Heard(b"HTTP/1.1 200 OK\r\nServer: nginx\r\n\r\n".to_vec()),
            other => panic!("{other:?}"),
        });
        assert_eq!(actions[0], Action::StartTls);
        assert_eq!(found.tls.unwrap().version, "TLSv1.3");
        assert_eq!(found.named.unwrap().product.as_deref(), Some("nginx"));
    }

    #[test]
    fn an_http_server_that_says_tls_gets_a_tls_connection() {
        let (actions, found) = run(8080, |a| {
            match a {
            Action::Ask(_, _) if matches!(a, Action::Ask(..)) => Event::Heard(
                b"HTTP/1.1 400 Bad Request\r\nServer: nginx\r\n\r\n<html><head><title>400 The plain HTTP request was sent to HTTPS port</title>"
                    .to_vec(),
            ),
            Action::Reconnect { tls: true } => Event::Opened,
            Action::StartTls => Event::TlsUp(TlsSeen::default()),
            other => panic!("{other:?}"),
        }
        });
        assert_eq!(actions[1], Action::Reconnect { tls: true });
        assert!(found.tls.is_some());
        // The second answer was the same 400 (the fake server is simple):
        // no third connection.
        assert_eq!(actions.len(), 4, "{actions:?}");
    }

    #[test]
    fn redis_postgres_and_a_failed_handshake() {
        let (_, found) = run(6379, |_| {
            Event::Heard(b"-NOAUTH Authentication required.\r\n".to_vec())
        });
        assert_eq!(found.named.unwrap().service, "redis");
        let (actions, found) = run(5432, |_| {
            Event::Heard(b"E\0\0\0\x10SFATAL\0C28000\0\0".to_vec())
        });
        match &actions[0] {
            Action::Ask(m, _) => {
                assert_eq!(&m[4..8], &196_608u32.to_be_bytes(), "protocol 3.0");
                assert_eq!(
                    u32::from_be_bytes(m[..4].try_into().unwrap()) as usize,
                    m.len()
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(found.named.unwrap().service, "postgresql");
        let (_, found) = run(993, |_| {
            Event::TlsFailed("garbage instead of a ServerHello".into())
        });
        assert_eq!(
            found.tls_error.as_deref(),
            Some("garbage instead of a ServerHello")
        );
        assert_eq!(found.named, None);
    }

    #[test]
    fn banners_are_escaped_and_bounded() {
        assert_eq!(banner_text(b"a\x00\x1b[2J\\z"), "a\\x00\\x1b[2J\\\\z");
        let long = banner_text(&[b'x'; 10_000]);
        assert_eq!(long.chars().count(), MAX_BANNER + 1);
    }
}
