//! `malformed_header`: headers that break their own rules. IPv4 IHL below 5,
//! total length below the header or beyond what was captured, a version
//! that does not match the link layer's type, a bad header checksum, TCP
//! data offset below 5 or past the segment, a UDP length that disagrees
//! with IP's, and frames cut inside a header.
//!
//! A frame the capture itself shortened (snap length) is not malformed:
//! only lengths the captured bytes could still have held are judged.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use foldhash::HashMap;
use serde::{Deserialize, Serialize};

use super::{Anomaly, Severity, Span, push_example};
use crate::analyze::dissect::Dissected;

/// Defaults: one malformed frame is a finding (no valid stack sends one),
/// and IPv4 header checksums are judged (set `check_ipv4_checksum = false`
/// for captures taken on a host that offloads checksums to its NIC; a zero
/// checksum is always reported as "not judged").
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MalformedThresholds {
    pub min_frames: u64,
    pub check_ipv4_checksum: bool,
}

impl Default for MalformedThresholds {
    fn default() -> Self {
        MalformedThresholds {
            min_frames: 1,
            check_ipv4_checksum: true,
        }
    }
}

const KINDS: [(&str, &str, Severity); 10] = [
    (
        "ipv4_ihl",
        "IPv4 header length (IHL) below 5 words",
        Severity::High,
    ),
    (
        "ipv4_total_length_short",
        "IPv4 total length smaller than its header",
        Severity::High,
    ),
    (
        "ipv4_total_length_exceeds_capture",
        "IPv4 total length larger than the frame carries",
        Severity::Medium,
    ),
    (
        "ip_version",
        "IP version does not match the link layer's protocol type",
        Severity::High,
    ),
    ("ipv4_checksum", "bad IPv4 header checksum", Severity::Low),
    (
        "tcp_data_offset",
        "TCP data offset below 5 words",
        Severity::High,
    ),
    (
        "tcp_data_offset_past_segment",
        "TCP data offset past the end of the segment",
        Severity::High,
    ),
    (
        "udp_length",
        "UDP length disagrees with the IP payload length",
        Severity::Medium,
    ),
    ("truncated", "frame ends inside a header", Severity::Medium),
    (
        "ipv6_payload_length_exceeds_capture",
        "IPv6 payload length larger than the frame carries",
        Severity::Medium,
    ),
];

struct Finding {
    count: u64,
    span: Span,
    examples: Vec<u64>,
    sources: Vec<IpAddr>,
    destinations: Vec<IpAddr>,
}

pub struct Malformed {
    t: MalformedThresholds,
    found: HashMap<usize, Finding>,
    checksums_judged: u64,
    checksums_not_judged: u64,
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// The ones' complement sum of a header's 16-bit words (RFC 1071), folded
/// to 16 bits; a header with a right checksum sums to 0xffff. It is taken
/// 32 bits at a time (IHL counts 32-bit words), and folded by arithmetic:
/// the folded sum is the plain sum modulo 0xffff, written 0xffff rather
/// than 0 unless the plain sum is 0. The usual 20-byte header is summed as
/// five fixed words. (The loop over chunks and the folding loop cost 50
/// instructions on every IPv4 frame.)
fn ones_complement_sum(h: &[u8]) -> u64 {
    let word = |w: &[u8]| u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
    let sum: u64 = match <&[u8; 20]>::try_from(h) {
        Ok(f) => {
            word(&f[0..4]) + word(&f[4..8]) + word(&f[8..12]) + word(&f[12..16]) + word(&f[16..20])
        }
        Err(_) => h.chunks_exact(4).map(word).sum(),
    };
    match sum % 0xffff {
        0 if sum != 0 => 0xffff,
        folded => folded,
    }
}

impl Malformed {
    pub fn new(t: MalformedThresholds) -> Malformed {
        Malformed {
            t,
            found: HashMap::default(),
            checksums_judged: 0,
            checksums_not_judged: 0,
        }
    }

    fn note(&mut self, kind: usize, frame: u64, now: i64, addrs: Option<(IpAddr, IpAddr)>) {
        let f = self.found.entry(kind).or_insert_with(|| Finding {
            count: 0,
            span: Span::new(now),
            examples: Vec::new(),
            sources: Vec::new(),
            destinations: Vec::new(),
        });
        f.count += 1;
        f.span.add(now);
        push_example(&mut f.examples, frame);
        if let Some((s, d)) = addrs {
            if f.sources.len() < 10 && !f.sources.contains(&s) {
                f.sources.push(s);
            }
            if f.destinations.len() < 10 && !f.destinations.contains(&d) {
                f.destinations.push(d);
            }
        }
    }

    pub fn frame(&mut self, frame: u64, now: i64, d: &Dissected<'_>, snaplen_cut: bool) {
        match d.ether_type {
            0x0800 => self.ipv4(frame, now, d.net, snaplen_cut),
            0x86dd => self.ipv6(frame, now, d, snaplen_cut),
            // IEEE 802.3: the field is a length, and an LLC header (3 bytes) must fit in it.
            len if d.ethernet
                && len < 0x0600
                && (len < 3 || (usize::from(len) > d.net.len() && !snaplen_cut)) =>
            {
                self.note(8, frame, now, None)
            }
            _ if d.stopped.is_some_and(|s| s.contains("truncated")) && !snaplen_cut => {
                self.note(8, frame, now, None)
            }
            _ => {}
        }
    }

    fn ipv4(&mut self, frame: u64, now: i64, b: &[u8], cut: bool) {
        if b.is_empty() {
            if !cut {
                self.note(8, frame, now, None);
            }
            return;
        }
        if b[0] >> 4 != 4 {
            return self.note(3, frame, now, None);
        }
        if b.len() < 20 {
            if !cut {
                self.note(8, frame, now, None);
            }
            return;
        }
        let addrs = Some((
            IpAddr::V4(Ipv4Addr::new(b[12], b[13], b[14], b[15])),
            IpAddr::V4(Ipv4Addr::new(b[16], b[17], b[18], b[19])),
        ));
        let ihl = usize::from(b[0] & 0x0f) * 4;
        if ihl < 20 {
            return self.note(0, frame, now, addrs);
        }
        if ihl > b.len() {
            if !cut {
                self.note(8, frame, now, addrs);
            }
            return;
        }
        let total = usize::from(be16(b, 2).unwrap_or(0));
        if total < ihl {
            return self.note(1, frame, now, addrs);
        }
        if total > b.len() && !cut {
            self.note(2, frame, now, addrs);
        }
        if self.t.check_ipv4_checksum {
            if be16(b, 10) == Some(0) {
                self.checksums_not_judged += 1;
            } else {
                self.checksums_judged += 1;
                if ones_complement_sum(&b[..ihl]) != 0xffff {
                    self.note(4, frame, now, addrs);
                }
            }
        }
        let flags_frag = be16(b, 6).unwrap_or(0);
        let (offset, more) = (flags_frag & 0x1fff, flags_frag & 0x2000 != 0);
        if offset != 0 {
            return;
        }
        let claimed = total - ihl;
        let seg = &b[ihl..total.min(b.len())];
        match b[9] {
            6 => {
                let Some(&byte12) = seg.get(12) else { return };
                let doff = usize::from(byte12 >> 4) * 4;
                if doff < 20 {
                    self.note(5, frame, now, addrs);
                } else if !more && doff > claimed {
                    self.note(6, frame, now, addrs);
                }
            }
            17 if !more => {
                if let Some(ulen) = be16(seg, 4)
                    && usize::from(ulen) != claimed
                {
                    self.note(7, frame, now, addrs);
                }
            }
            _ => {}
        }
    }

    fn ipv6(&mut self, frame: u64, now: i64, d: &Dissected<'_>, cut: bool) {
        let b = d.net;
        if b.len() < 40 {
            if !cut {
                self.note(8, frame, now, None);
            }
            return;
        }
        if b[0] >> 4 != 6 {
            return self.note(3, frame, now, None);
        }
        let mut src = [0u8; 16];
        let mut dst = [0u8; 16];
        src.copy_from_slice(&b[8..24]);
        dst.copy_from_slice(&b[24..40]);
        let addrs = Some((
            IpAddr::V6(Ipv6Addr::from(src)),
            IpAddr::V6(Ipv6Addr::from(dst)),
        ));
        let plen = usize::from(be16(b, 4).unwrap_or(0));
        // A zero payload length is a jumbogram (RFC 2675): judged elsewhere.
        if plen != 0 && 40 + plen > b.len() && !cut {
            self.note(9, frame, now, addrs);
        }
        if let Some(crate::analyze::dissect::Transport::Tcp { valid: false, .. }) = d.transport
            && d.ip_payload.len() >= 20
        {
            self.note(5, frame, now, addrs);
        }
    }

    pub fn finish(self) -> Vec<Anomaly> {
        let mut out = Vec::new();
        for (kind, f) in self.found {
            if f.count < self.t.min_frames {
                continue;
            }
            let (name, what, severity) = KINDS[kind];
            let mut evidence = BTreeMap::from([("frames", f.count as f64)]);
            let mut note = None;
            if kind == 4 {
                evidence.insert("checksums_judged", self.checksums_judged as f64);
                evidence.insert("checksums_not_judged", self.checksums_not_judged as f64);
                note = Some(
                    "checksums written as zero were not judged; if every bad one comes from the capturing host, its NIC computes them (offload) and check_ipv4_checksum = false silences this".to_string(),
                );
            }
            out.push(Anomaly {
                evidence,
                thresholds: BTreeMap::from([("min_frames", self.t.min_frames as f64)]),
                sources: f.sources.iter().map(|a| a.to_string()).collect(),
                destinations: f.destinations.iter().map(|a| a.to_string()).collect(),
                note,
                ..Anomaly::new(
                    "malformed_header",
                    Some(name),
                    severity,
                    format!("{} frames: {what}", f.count),
                    f.span,
                    f.examples,
                )
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 1071 word by word, as the RFC's own example code does it.
    fn sum_of_16_bit_words(h: &[u8]) -> u64 {
        let mut sum: u64 = h
            .chunks(2)
            .map(|w| u64::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)])))
            .sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        sum
    }

    #[test]
    fn header_sums_with_and_without_options_match_the_word_by_word_sum() {
        for h in [[0u8; 20], [0xff; 20], [0x80; 20]] {
            assert_eq!(ones_complement_sum(&h), sum_of_16_bit_words(&h));
        }
        assert_eq!(ones_complement_sum(&[0; 20]), 0);
        assert_eq!(ones_complement_sum(&[0xff; 24]), 0xffff);
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for ihl in 5..=15usize {
            for _ in 0..50 {
                let mut h: Vec<u8> = (0..ihl * 4)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        x as u8
                    })
                    .collect();
                assert_eq!(ones_complement_sum(&h), sum_of_16_bit_words(&h));
                // With the checksum field filled in, the header sums to 0xffff.
                h[10..12].copy_from_slice(&[0, 0]);
                let check = !(sum_of_16_bit_words(&h) as u16);
                h[10..12].copy_from_slice(&check.to_be_bytes());
                assert_eq!(ones_complement_sum(&h), 0xffff, "IHL {ihl}");
            }
        }
    }
}
