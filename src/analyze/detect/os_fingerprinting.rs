//! `os_fingerprinting`: the probe sets of remote OS detection.
//!
//! nmap's OS detection (`-O`, its "TCP/IP fingerprinting methods") sends
//! probes no ordinary TCP stack sends, told apart by their flags and
//! window: six SEQ SYNs with windows 1, 63, 4, 4, 16 and 512; the ECN probe
//! (SYN with ECE and CWR, window 3); T2 (no flags, window 128), T3
//! (SYN+FIN+PSH+URG, window 256), T4 (ACK, window 1024), T5 (SYN, window
//! 31337), T6 (ACK, window 32768), T7 (FIN+PSH+URG, window 65535). A
//! source that sends at least `min_probe_kinds` of these kinds to one host
//! is fingerprinting it; its T7 probes are not then also reported as an
//! XMAS scan.

use std::collections::BTreeMap;
use std::net::IpAddr;

use hashbrown::HashMap;
use serde::{Deserialize, Serialize};

use super::{Anomaly, Severity, Span, push_example};
use crate::analyze::dissect::{Dissected, Transport};

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct OsFingerprintingThresholds {
    /// Distinct probe kinds (of the 12 below) from one source to one host.
    pub min_probe_kinds: u32,
}

impl Default for OsFingerprintingThresholds {
    fn default() -> Self {
        // Four: no single odd packet (a stray window of 1) makes a finding,
        // and nmap sends all twelve.
        OsFingerprintingThresholds { min_probe_kinds: 4 }
    }
}

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;
const URG: u8 = 0x20;
const ECE: u8 = 0x40;
const CWR: u8 = 0x80;

/// (name, flags, window) of each probe kind.
const PROBES: [(&str, u8, u16); 12] = [
    ("SEQ1", SYN, 1),
    ("SEQ2", SYN, 63),
    ("SEQ3/4", SYN, 4),
    ("SEQ5", SYN, 16),
    ("SEQ6", SYN, 512),
    ("ECN", SYN | ECE | CWR, 3),
    ("T2", 0, 128),
    ("T3", SYN | FIN | PSH | URG, 256),
    ("T4", ACK, 1024),
    ("T5", SYN, 31337),
    ("T6", ACK, 32768),
    ("T7", FIN | PSH | URG, 65535),
];

/// The index in [`PROBES`] of a segment's (flags, window), if any: one
/// match per TCP segment (a search of the table cost 90 instructions a
/// packet, as callgrind counts them, more than the TCP analysis).
fn probe_kind(flags: u8, window: u16) -> Option<usize> {
    Some(match (window, flags) {
        (1, SYN) => 0,
        (63, SYN) => 1,
        (4, SYN) => 2,
        (16, SYN) => 3,
        (512, SYN) => 4,
        (3, f) if f == SYN | ECE | CWR => 5,
        (128, 0) => 6,
        (256, f) if f == SYN | FIN | PSH | URG => 7,
        (1024, ACK) => 8,
        (31337, SYN) => 9,
        (32768, ACK) => 10,
        (65535, f) if f == FIN | PSH | URG => 11,
        _ => return None,
    })
}

/// Source-destination pairs followed.
const MAX_PAIRS: usize = 20_000;

struct Pair {
    kinds: u16,
    probes: u64,
    span: Span,
    examples: Vec<u64>,
}

pub struct OsFingerprinting {
    t: OsFingerprintingThresholds,
    pairs: HashMap<(IpAddr, IpAddr), Pair>,
}

impl OsFingerprinting {
    pub fn new(t: OsFingerprintingThresholds) -> OsFingerprinting {
        OsFingerprinting {
            t,
            pairs: HashMap::default(),
        }
    }

    pub fn frame(&mut self, frame: u64, now: i64, d: &Dissected<'_>) {
        let (
            Some(ip),
            Some(Transport::Tcp {
                flags, valid: true, ..
            }),
        ) = (&d.ip, d.transport)
        else {
            return;
        };
        let Some(w) = d.ip_payload.get(14..16) else {
            return;
        };
        let window = u16::from_be_bytes([w[0], w[1]]);
        let Some(kind) = probe_kind(flags, window) else {
            return;
        };
        let key = (ip.src, ip.dst);
        if self.pairs.len() >= MAX_PAIRS && !self.pairs.contains_key(&key) {
            return;
        }
        let p = self.pairs.entry(key).or_insert_with(|| Pair {
            kinds: 0,
            probes: 0,
            span: Span::new(now),
            examples: Vec::new(),
        });
        p.kinds |= 1 << kind;
        p.probes += 1;
        p.span.add(now);
        push_example(&mut p.examples, frame);
    }

    /// The (source, destination) pairs found fingerprinting, and their findings.
    pub fn finish(self) -> (Vec<(IpAddr, IpAddr)>, Vec<Anomaly>) {
        let mut pairs: Vec<((IpAddr, IpAddr), Pair)> = self
            .pairs
            .into_iter()
            .filter(|(_, p)| p.kinds.count_ones() >= self.t.min_probe_kinds)
            .collect();
        pairs.sort_by_key(|(k, _)| *k);
        let mut keys = Vec::new();
        let mut out = Vec::new();
        for ((src, dst), p) in pairs {
            keys.push((src, dst));
            let names: Vec<&str> = PROBES
                .iter()
                .enumerate()
                .filter(|(i, _)| p.kinds & (1 << i) != 0)
                .map(|(_, (name, _, _))| *name)
                .collect();
            out.push(Anomaly {
                evidence: BTreeMap::from([
                    ("probe_kinds", f64::from(p.kinds.count_ones())),
                    ("probes", p.probes as f64),
                ]),
                thresholds: BTreeMap::from([(
                    "min_probe_kinds",
                    f64::from(self.t.min_probe_kinds),
                )]),
                sources: vec![src.to_string()],
                destinations: vec![dst.to_string()],
                note: Some(format!("probes seen: {}", names.join(", "))),
                ..Anomaly::new(
                    "os_fingerprinting",
                    None,
                    Severity::Medium,
                    format!(
                        "OS fingerprinting of {dst} by {src}: {} of nmap's {} OS-detection probe kinds",
                        names.len(),
                        PROBES.len()
                    ),
                    p.span,
                    p.examples,
                )
            });
        }
        (keys, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_match_agrees_with_the_table() {
        for (i, &(_, flags, window)) in PROBES.iter().enumerate() {
            assert_eq!(probe_kind(flags, window), Some(i));
        }
        assert_eq!(probe_kind(SYN, 64240), None);
        assert_eq!(probe_kind(ACK, 65535), None);
    }
}
