//! `password_guessing` (subtype `ssh`): one client opening many short SSH
//! connections to one server within a minute, as hydra, medusa and ncrack
//! do, each connection a key exchange and a few failed logins.
//!
//! What tells it from a backup job or an automation tool that also opens
//! many SSH connections in a row: a guess carries only the key exchange
//! and the authentication (a few kilobytes each way), where a job's
//! connection carries its files or its command's output. Connections
//! larger than `max_connection_bytes` are not counted.

use std::collections::BTreeMap;
use std::net::IpAddr;

use hashbrown::HashMap;
use serde::{Deserialize, Serialize};

use super::{Anomaly, Severity, Span, push_example};
use crate::analyze::flows::Flow;

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SshGuessingThresholds {
    /// Short connections from one client to one server within the window.
    pub min_connections: u64,
    pub window_seconds: f64,
    /// A connection with more bytes (both ways, frames) carried more than
    /// logins.
    pub max_connection_bytes: u64,
}

impl Default for SshGuessingThresholds {
    fn default() -> Self {
        SshGuessingThresholds {
            // hydra's default 16 tasks make dozens a minute; a person
            // retrying a password makes a few.
            min_connections: 20,
            window_seconds: 60.0,
            // OpenSSH's key exchange and six failed passwords come to
            // about 6 KB of frames; a command's output or a file is more.
            max_connection_bytes: 12_000,
        }
    }
}

/// Client/server pairs followed; connection starts kept per pair.
const MAX_PAIRS: usize = 4_096;
const MAX_STARTS: usize = 10_000;

#[derive(Default)]
struct Pair {
    starts: Vec<i64>,
    bytes: u64,
    larger: u64,
    span: Option<Span>,
    examples: Vec<u64>,
}

pub struct SshGuessing {
    t: SshGuessingThresholds,
    pairs: HashMap<(IpAddr, IpAddr, u16), Pair>,
}

impl SshGuessing {
    pub fn new(t: SshGuessingThresholds) -> SshGuessing {
        SshGuessing {
            t,
            pairs: HashMap::default(),
        }
    }

    pub fn flow_finished(&mut self, f: &Flow) {
        let k = f.key;
        let ((client, _), (server, sport)) = if f.a_is_client {
            ((k.a().ip(), k.a_port), (k.b().ip(), k.b_port))
        } else {
            ((k.b().ip(), k.b_port), (k.a().ip(), k.a_port))
        };
        if k.proto != 6 || !(sport == 22 || f.app() == Some("ssh")) || f.syns == 0 {
            return;
        }
        let key = (client, server, sport);
        if self.pairs.len() >= MAX_PAIRS && !self.pairs.contains_key(&key) {
            return;
        }
        let p = self.pairs.entry(key).or_default();
        if f.bytes() > self.t.max_connection_bytes {
            p.larger += 1;
            return;
        }
        if p.starts.len() < MAX_STARTS {
            p.starts.push(f.first_ns);
        }
        p.bytes += f.bytes();
        Span::cover(&mut p.span, f.first_ns, f.last_ns);
        push_example(&mut p.examples, f.first_frame);
    }

    /// The most short SSH connections from one client to one server in
    /// one window, against the threshold.
    pub fn closest(&self) -> Option<super::Closest> {
        let window = (self.t.window_seconds * 1e9) as i64;
        let mut best: Option<super::Closest> = None;
        for ((client, server, port), p) in &self.pairs {
            let mut starts = p.starts.clone();
            starts.sort_unstable();
            let busiest = busiest_window(&starts, window);
            best = super::Closest::max(
                best,
                super::Closest {
                    measure: "short_ssh_connections_in_window",
                    value: busiest as f64,
                    threshold: self.t.min_connections as f64,
                    at: format!("{client} to {server}:{port}"),
                },
            );
        }
        best
    }

    pub fn finish(self) -> Vec<Anomaly> {
        let th = &self.t;
        let window = (th.window_seconds * 1e9) as i64;
        let mut pairs: Vec<_> = self.pairs.into_iter().collect();
        pairs.sort_by_key(|(k, _)| *k);
        let mut out = Vec::new();
        for ((client, server, port), mut p) in pairs {
            if (p.starts.len() as u64) < th.min_connections {
                continue;
            }
            p.starts.sort_unstable();
            let busiest = busiest_window(&p.starts, window);
            if (busiest as u64) < th.min_connections {
                continue;
            }
            let span = p.span.expect("a counted pair has a span");
            let n = p.starts.len() as u64;
            out.push(Anomaly {
                evidence: BTreeMap::from([
                    ("short_connections", n as f64),
                    ("busiest_window_connections", busiest as f64),
                    ("mean_connection_bytes", p.bytes as f64 / n as f64),
                    ("larger_connections", p.larger as f64),
                ]),
                thresholds: BTreeMap::from([
                    ("min_connections", th.min_connections as f64),
                    ("window_seconds", th.window_seconds),
                    ("max_connection_bytes", th.max_connection_bytes as f64),
                ]),
                sources: vec![client.to_string()],
                destinations: vec![server.to_string()],
                ports: vec![port],
                ..Anomaly::new(
                    "password_guessing",
                    Some("ssh"),
                    if busiest >= 100 {
                        Severity::High
                    } else {
                        Severity::Medium
                    },
                    format!(
                        "{n} short SSH connections from {client} to {server}:{port} ({busiest} within {:.0} s), each a key exchange and logins at most",
                        th.window_seconds
                    ),
                    span,
                    p.examples,
                )
            });
        }
        out
    }
}

/// The most of the sorted `starts` within one `window` (nanoseconds).
fn busiest_window(starts: &[i64], window: i64) -> usize {
    let (mut busiest, mut lo) = (0usize, 0usize);
    for hi in 0..starts.len() {
        while starts[hi] - starts[lo] > window {
            lo += 1;
        }
        busiest = busiest.max(hi - lo + 1);
    }
    busiest
}
