//! `ip_fragmentation`: fragment abuse, IPv4 and IPv6. Tracks each datagram's
//! fragments to find tiny first fragments that cannot hold the transport
//! header (RFC 1858), tiny middle fragments, overlaps (including teardrop's
//! fragment inside an earlier one), reassembled sizes over 65,535 bytes
//! (ping of death), too many fragments, and datagrams never completed.
//! Identical retransmitted fragments are not overlaps.

use std::collections::BTreeMap;
use std::net::IpAddr;

use foldhash::HashMap;
use serde::{Deserialize, Serialize};

use super::{Anomaly, Severity, Span, push_example};
use crate::analyze::dissect::Dissected;

/// Defaults: a first TCP fragment must hold the 20-byte TCP header (RFC
/// 1858 section 3.1; its minimum of 16 guards only the flags), a fragment
/// that is not the last carries at least 64 bytes (RFC 791 allows 8, but
/// no real path MTU makes them that small), at most 64 fragments per
/// datagram (a 64 KiB datagram over a 1,280-byte MTU needs 52), reassembly
/// within 30 s (Linux's ipfrag_time), and incomplete datagrams reported
/// from 5 on (one lost fragment is ordinary loss).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct FragmentationThresholds {
    pub min_first_fragment_tcp_bytes: u64,
    pub min_fragment_bytes: u64,
    pub max_fragments_per_datagram: u64,
    pub reassembly_timeout_seconds: f64,
    pub min_incomplete_datagrams: u64,
}

impl Default for FragmentationThresholds {
    fn default() -> Self {
        FragmentationThresholds {
            min_first_fragment_tcp_bytes: 20,
            min_fragment_bytes: 64,
            max_fragments_per_datagram: 64,
            reassembly_timeout_seconds: 30.0,
            min_incomplete_datagrams: 5,
        }
    }
}

const MAX_DATAGRAMS: usize = 16_384;
/// Source/destination pairs reported separately; the rest are reported together.
const MAX_PAIRS: usize = 4_096;
/// Destinations listed per finding.
const MAX_LISTED: usize = 16;

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct DatagramKey {
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    id: u32,
}

struct Piece {
    start: u32,
    end: u32,
    digest: u64,
}

struct Datagram {
    pieces: Vec<Piece>,
    count: u64,
    total: Option<u32>,
    first_ns: i64,
    last_ns: i64,
    first_frame: u64,
}

/// Findings of one subtype from one source (to any destinations).
struct Finding {
    count: u64,
    /// The destinations, the first [`MAX_LISTED`]; `more` beyond.
    destinations: Vec<IpAddr>,
    more_destinations: bool,
    span: Span,
    examples: Vec<u64>,
    smallest: u64,
    largest: u64,
}

const SUBTYPES: [&str; 6] = [
    "tiny_first_fragment",
    "tiny_fragment",
    "overlap",
    "oversize",
    "too_many_fragments",
    "incomplete",
];

pub struct Fragmentation {
    t: FragmentationThresholds,
    open: HashMap<DatagramKey, Datagram>,
    /// Per subtype and source (issue 18: one finding per source, its
    /// destinations listed, not one per pair); `None` gathers the sources
    /// beyond [`MAX_PAIRS`] (spoofed floods would otherwise grow this).
    findings: HashMap<(usize, Option<IpAddr>), Finding>,
    teardrop: bool,
    since_sweep: u32,
}

impl Fragmentation {
    pub fn new(t: FragmentationThresholds) -> Fragmentation {
        Fragmentation {
            t,
            open: HashMap::default(),
            findings: HashMap::default(),
            teardrop: false,
            since_sweep: 0,
        }
    }

    fn note(&mut self, sub: usize, key: &DatagramKey, frame: u64, now: i64, size: u64) {
        let mut at = (sub, Some(key.src));
        if !self.findings.contains_key(&at) && self.findings.len() >= MAX_PAIRS {
            at = (sub, None);
        }
        let f = self.findings.entry(at).or_insert_with(|| Finding {
            count: 0,
            destinations: Vec::new(),
            more_destinations: false,
            span: Span::new(now),
            examples: Vec::new(),
            smallest: u64::MAX,
            largest: 0,
        });
        f.count += 1;
        if !f.destinations.contains(&key.dst) {
            if f.destinations.len() < MAX_LISTED {
                f.destinations.push(key.dst);
            } else {
                f.more_destinations = true;
            }
        }
        f.span.add(now);
        f.smallest = f.smallest.min(size);
        f.largest = f.largest.max(size);
        push_example(&mut f.examples, frame);
    }

    pub fn frame(&mut self, frame: u64, now: i64, d: &Dissected<'_>) {
        self.since_sweep += 1;
        if self.since_sweep >= 4096 {
            self.since_sweep = 0;
            self.expire(now);
        }
        let Some(ip) = &d.ip else { return };
        let Some(fr) = ip.fragment else { return };
        let key = DatagramKey {
            src: ip.src,
            dst: ip.dst,
            proto: ip.proto,
            id: fr.id,
        };
        let len = ip.payload_len as u32;
        let (start, end) = (fr.offset, fr.offset.saturating_add(len));
        let th = self.t.clone();
        if start == 0 && ip.proto == 6 && u64::from(len) < th.min_first_fragment_tcp_bytes {
            self.note(0, &key, frame, now, u64::from(len));
        } else if fr.more && u64::from(len) < th.min_fragment_bytes {
            self.note(1, &key, frame, now, u64::from(len));
        }
        // IPv4's 20-byte header and IPv6's 40 count toward the 65,535 limit.
        let header = if ip.src.is_ipv4() { 20 } else { 40 };
        if u64::from(end) + header > 65_535 {
            self.note(3, &key, frame, now, u64::from(end) + header);
        }
        if !self.open.contains_key(&key) && self.open.len() >= MAX_DATAGRAMS {
            // Too many open datagrams: the oldest are given up as incomplete.
            self.expire_oldest();
        }
        let digest = super::fnv(d.ip_payload);
        let dg = self.open.entry(key).or_insert_with(|| Datagram {
            pieces: Vec::new(),
            count: 0,
            total: None,
            first_ns: now,
            last_ns: now,
            first_frame: frame,
        });
        dg.count += 1;
        dg.last_ns = now;
        if !fr.more {
            dg.total = Some(end);
        }
        let mut overlap = false;
        let mut teardrop = false;
        for p in &dg.pieces {
            let identical = p.start == start && p.end == end && p.digest == digest;
            if !identical && start < p.end && p.start < end {
                overlap = true;
                // Teardrop: the new fragment lies inside an earlier one.
                teardrop |= start >= p.start && end <= p.end && (start, end) != (p.start, p.end);
            }
        }
        let too_many = dg.count == th.max_fragments_per_datagram + 1;
        if (dg.pieces.len() as u64) <= th.max_fragments_per_datagram {
            dg.pieces.push(Piece { start, end, digest });
        }
        let complete = dg.total.is_some_and(|t| covered(&mut dg.pieces, t));
        if overlap {
            self.teardrop |= teardrop;
            self.note(2, &key, frame, now, u64::from(end));
        }
        if too_many {
            self.note(4, &key, frame, now, th.max_fragments_per_datagram + 1);
        }
        if complete {
            self.open.remove(&key);
        }
    }

    fn expire(&mut self, now: i64) {
        let cutoff = now.saturating_sub((self.t.reassembly_timeout_seconds * 1e9) as i64);
        // In frame order, not hash-map order, so the report is reproducible.
        let mut old: Vec<(u64, DatagramKey)> = self
            .open
            .iter()
            .filter(|(_, d)| d.last_ns < cutoff)
            .map(|(k, d)| (d.first_frame, *k))
            .collect();
        old.sort_unstable_by_key(|(frame, _)| *frame);
        self.give_up(old.into_iter().map(|(_, k)| k));
    }

    /// Too many open datagrams: the least recently seen eighth is given up.
    fn expire_oldest(&mut self) {
        let mut by_age: Vec<(i64, u64, DatagramKey)> = self
            .open
            .iter()
            .map(|(k, d)| (d.last_ns, d.first_frame, *k))
            .collect();
        by_age.sort_unstable_by_key(|(t, frame, _)| (*t, *frame));
        by_age.truncate(MAX_DATAGRAMS / 8);
        self.give_up(by_age.into_iter().map(|(_, _, k)| k));
    }

    /// Count datagrams as incomplete and forget them.
    fn give_up(&mut self, keys: impl Iterator<Item = DatagramKey>) {
        for k in keys {
            if let Some(d) = self.open.remove(&k) {
                self.note(5, &k, d.first_frame, d.first_ns, d.count);
            }
        }
    }

    pub fn finish(mut self) -> Vec<Anomaly> {
        let mut rest: Vec<(u64, DatagramKey)> =
            self.open.iter().map(|(k, d)| (d.first_frame, *k)).collect();
        rest.sort_unstable_by_key(|(frame, _)| *frame);
        self.give_up(rest.into_iter().map(|(_, k)| k));
        let th = &self.t;
        let incomplete_total: u64 = self
            .findings
            .iter()
            .filter(|((s, _), _)| *s == 5)
            .map(|(_, f)| f.count)
            .sum();
        let mut out = Vec::new();
        // In a reproducible order: by subtype, then source.
        let mut findings: Vec<((usize, Option<IpAddr>), Finding)> =
            self.findings.into_iter().collect();
        findings.sort_by_key(|f| f.0);
        for ((sub, source), mut f) in findings {
            f.destinations.sort();
            let dst = match (f.destinations.as_slice(), f.more_destinations) {
                ([one], false) => one.to_string(),
                (all, more) => format!("{}{} destinations", all.len(), if more { "+" } else { "" }),
            };
            let src = match source {
                Some(s) => s.to_string(),
                None => "various sources".to_string(),
            };
            if sub == 5 && incomplete_total < th.min_incomplete_datagrams {
                continue;
            }
            let name = SUBTYPES[sub];
            let (summary, severity, measured) = match sub {
                0 => (
                    format!(
                        "{} first fragments too small for a TCP header (RFC 1858) from {src} to {dst}",
                        f.count
                    ),
                    Severity::High,
                    "smallest_first_fragment_bytes",
                ),
                1 => (
                    format!("{} tiny fragments from {src} to {dst}", f.count),
                    Severity::Medium,
                    "smallest_fragment_bytes",
                ),
                2 if self.teardrop => (
                    format!(
                        "{} overlapping fragments from {src} to {dst}, teardrop-style (a fragment inside an earlier one)",
                        f.count
                    ),
                    Severity::High,
                    "largest_overlap_end",
                ),
                2 => (
                    format!("{} overlapping fragments from {src} to {dst}", f.count),
                    Severity::High,
                    "largest_overlap_end",
                ),
                3 => (
                    format!(
                        "{} fragments reassemble past 65,535 bytes (ping of death) from {src} to {dst}",
                        f.count
                    ),
                    Severity::High,
                    "largest_reassembled_bytes",
                ),
                4 => (
                    format!(
                        "{} datagrams with more than {} fragments from {src} to {dst}",
                        f.count, th.max_fragments_per_datagram
                    ),
                    Severity::Medium,
                    "fragments",
                ),
                _ => (
                    format!("{} datagrams never completed from {src} to {dst}", f.count),
                    Severity::Low,
                    "largest_fragment_count",
                ),
            };
            let mut evidence = BTreeMap::from([("count", f.count as f64)]);
            // For the tiny kinds the smallest size tells; for the rest the largest.
            evidence.insert(
                measured,
                if sub <= 1 { f.smallest } else { f.largest } as f64,
            );
            if sub == 5 {
                evidence.insert("incomplete_datagrams_total", incomplete_total as f64);
            }
            evidence.insert("distinct_destinations", f.destinations.len() as f64);
            out.push(Anomaly {
                evidence,
                thresholds: BTreeMap::from([
                    (
                        "min_first_fragment_tcp_bytes",
                        th.min_first_fragment_tcp_bytes as f64,
                    ),
                    ("min_fragment_bytes", th.min_fragment_bytes as f64),
                    (
                        "max_fragments_per_datagram",
                        th.max_fragments_per_datagram as f64,
                    ),
                    ("max_reassembled_bytes", 65_535.0),
                    ("reassembly_timeout_seconds", th.reassembly_timeout_seconds),
                    (
                        "min_incomplete_datagrams",
                        th.min_incomplete_datagrams as f64,
                    ),
                ]),
                sources: source.iter().map(|s| s.to_string()).collect(),
                destinations: f.destinations.iter().map(|d| d.to_string()).collect(),
                ..Anomaly::new(
                    "ip_fragmentation",
                    Some(name),
                    severity,
                    summary,
                    f.span,
                    f.examples,
                )
            });
        }
        out
    }
}

/// Whether the pieces cover `0..total` without a gap.
fn covered(pieces: &mut [Piece], total: u32) -> bool {
    pieces.sort_by_key(|p| p.start);
    let mut reach = 0;
    for p in pieces.iter() {
        if p.start > reach {
            return false;
        }
        reach = reach.max(p.end);
    }
    reach >= total
}
