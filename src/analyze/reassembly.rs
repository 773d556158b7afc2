//! IP reassembly before flows: the fragments of one datagram, IPv4 or
//! IPv6, put back together so the datagram reaches the flow table, the
//! port and SYN counters and the application parsers once, whole, as
//! tshark shows it in the frame of its last fragment.
//!
//! Bounded as a host's stack is: a datagram is held at most 30 s (Linux's
//! `ipfrag_time`), at most 65,535 bytes of it, at most [`MAX_DATAGRAMS`]
//! datagrams and [`MAX_HELD_BYTES`] in all; past these, fragments are not
//! reassembled (the fragmentation detector still sees every one of them).
//! Where fragments overlap, the bytes that arrived first are kept, as Linux
//! and Windows keep them (RFC 5722 would drop the datagram: the finding is
//! the fragmentation detector's).

use std::collections::VecDeque;
use std::net::IpAddr;

use foldhash::HashMap;

/// Datagrams in reassembly at once.
pub const MAX_DATAGRAMS: usize = 4_096;
/// Bytes held for them in all.
pub const MAX_HELD_BYTES: usize = 16 << 20;
/// The largest datagram payload: an IPv4 total length is 16 bits.
const MAX_PAYLOAD: u32 = 65_535;
const TIMEOUT_NS: i64 = 30_000_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key {
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    id: u32,
}

struct Partial {
    data: Vec<u8>,
    /// Byte ranges held, sorted and merged.
    have: Vec<(u32, u32)>,
    /// The payload's length, once the last fragment (no MF) arrived.
    total: Option<u32>,
    first_ns: i64,
}

impl Partial {
    fn complete(&self) -> bool {
        self.total
            .is_some_and(|t| self.have.as_slice() == [(0, t)] || (t == 0 && self.have.is_empty()))
    }

    /// Copies the bytes of `[start, end)` not held yet; returns how many
    /// bytes the buffer grew by.
    fn add(&mut self, start: u32, bytes: &[u8]) -> usize {
        let end = start + bytes.len() as u32;
        let before = self.data.len();
        if self.data.len() < end as usize {
            self.data.resize(end as usize, 0);
        }
        // The gaps of [start, end) between the ranges held.
        let mut at = start;
        for &(s, e) in &self.have {
            if e <= at {
                continue;
            }
            if s >= end {
                break;
            }
            if s > at {
                self.data[at as usize..s as usize]
                    .copy_from_slice(&bytes[(at - start) as usize..(s - start) as usize]);
            }
            at = at.max(e);
            if at >= end {
                break;
            }
        }
        if at < end {
            self.data[at as usize..end as usize].copy_from_slice(&bytes[(at - start) as usize..]);
        }
        // Merge the new range in.
        self.have.push((start, end));
        self.have.sort_unstable();
        let mut merged: Vec<(u32, u32)> = Vec::with_capacity(self.have.len());
        for &(s, e) in &self.have {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        self.have = merged;
        self.data.len() - before
    }
}

/// What [`Reassembler::add`] made of a fragment.
#[derive(Debug, PartialEq, Eq)]
pub enum Reassembled {
    /// The datagram still misses pieces (or is not being reassembled).
    Pending,
    /// The datagram is whole: its IP payload, as the transport layer sees it.
    Whole(Vec<u8>),
}

/// Datagrams being put back together.
#[derive(Default)]
pub struct Reassembler {
    partial: HashMap<Key, Partial>,
    /// Datagrams by arrival, for expiry: (first fragment's time, key).
    order: VecDeque<(i64, Key)>,
    held: usize,
    /// Datagrams not reassembled because a bound was reached.
    pub refused: u64,
}

impl Reassembler {
    /// One fragment: `offset` in bytes, `more` the MF flag, `data` the
    /// fragment's payload as captured.
    #[allow(clippy::too_many_arguments)]
    pub fn add(
        &mut self,
        ts: i64,
        src: IpAddr,
        dst: IpAddr,
        proto: u8,
        id: u32,
        offset: u32,
        more: bool,
        data: &[u8],
    ) -> Reassembled {
        self.expire(ts);
        let key = Key {
            src,
            dst,
            proto,
            id,
        };
        let end = offset.saturating_add(data.len() as u32);
        if end > MAX_PAYLOAD || (!more && self.partial.get(&key).and_then(|p| p.total).is_some()) {
            // Too large (a ping of death), or a second last fragment:
            // nothing a host would deliver.
            if let Some(p) = self.partial.remove(&key) {
                self.held -= p.data.len();
            }
            return Reassembled::Pending;
        }
        if !self.partial.contains_key(&key) {
            if self.partial.len() >= MAX_DATAGRAMS {
                self.refused += 1;
                return Reassembled::Pending;
            }
            self.partial.insert(
                key,
                Partial {
                    data: Vec::new(),
                    have: Vec::new(),
                    total: None,
                    first_ns: ts,
                },
            );
            self.order.push_back((ts, key));
        }
        let p = self.partial.get_mut(&key).expect("inserted above");
        if self.held + (end as usize).saturating_sub(p.data.len()) > MAX_HELD_BYTES {
            self.refused += 1;
            let p = self.partial.remove(&key).expect("present");
            self.held -= p.data.len();
            return Reassembled::Pending;
        }
        if !more {
            if p.have.last().is_some_and(|&(_, e)| e > end) {
                // Data past the end the last fragment sets: inconsistent.
                let p = self.partial.remove(&key).expect("present");
                self.held -= p.data.len();
                return Reassembled::Pending;
            }
            p.total = Some(end);
        } else if p.total.is_some_and(|t| end > t) {
            let p = self.partial.remove(&key).expect("present");
            self.held -= p.data.len();
            return Reassembled::Pending;
        }
        self.held += p.add(offset, data);
        if p.complete() {
            let p = self.partial.remove(&key).expect("present");
            self.held -= p.data.len();
            return Reassembled::Whole(p.data);
        }
        Reassembled::Pending
    }

    /// Drops datagrams older than the reassembly timeout.
    fn expire(&mut self, ts: i64) {
        while let Some(&(first, key)) = self.order.front() {
            if ts - first <= TIMEOUT_NS {
                break;
            }
            self.order.pop_front();
            if self.partial.get(&key).is_some_and(|p| p.first_ns == first)
                && let Some(p) = self.partial.remove(&key)
            {
                self.held -= p.data.len();
            }
        }
        // Keys completed or dropped leave stale entries; keep the queue
        // from outgrowing the table.
        if self.order.len() > 2 * MAX_DATAGRAMS {
            let partial = &self.partial;
            self.order
                .retain(|(first, k)| partial.get(k).is_some_and(|p| p.first_ns == *first));
        }
    }

    /// The datagram rebuilt as an IP packet (a fresh header before the
    /// reassembled payload), for the dissector. `None` when the payload
    /// cannot fit an IPv4 header's length.
    pub fn packet(src: IpAddr, dst: IpAddr, proto: u8, payload: &[u8]) -> Option<Vec<u8>> {
        match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                let total = u16::try_from(payload.len() + 20).ok()?;
                let mut h = [0u8; 20];
                h[0] = 0x45;
                h[2..4].copy_from_slice(&total.to_be_bytes());
                h[8] = 64;
                h[9] = proto;
                h[12..16].copy_from_slice(&s.octets());
                h[16..20].copy_from_slice(&d.octets());
                crate::wire::ip::Ipv4Packet::new_unchecked(&mut h[..]).fill_checksum();
                let mut out = Vec::with_capacity(payload.len() + 20);
                out.extend_from_slice(&h);
                out.extend_from_slice(payload);
                Some(out)
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                let len = u16::try_from(payload.len()).ok()?;
                let mut h = [0u8; 40];
                h[0] = 0x60;
                h[4..6].copy_from_slice(&len.to_be_bytes());
                h[6] = proto;
                h[7] = 64;
                h[8..24].copy_from_slice(&s.octets());
                h[24..40].copy_from_slice(&d.octets());
                let mut out = Vec::with_capacity(payload.len() + 40);
                out.extend_from_slice(&h);
                out.extend_from_slice(payload);
                Some(out)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn add(r: &mut Reassembler, ts: i64, id: u32, off: u32, more: bool, d: &[u8]) -> Reassembled {
        r.add(ts, a("198.18.0.1"), a("198.18.0.2"), 6, id, off, more, d)
    }

    #[test]
    fn pieces_in_any_order_make_the_datagram() {
        let mut r = Reassembler::default();
        assert_eq!(add(&mut r, 0, 1, 16, false, b"cc"), Reassembled::Pending);
        assert_eq!(
            add(&mut r, 1, 1, 0, true, b"aaaaaaaa"),
            Reassembled::Pending
        );
        assert_eq!(
            add(&mut r, 2, 1, 8, true, b"bbbbbbbb"),
            Reassembled::Whole(b"aaaaaaaabbbbbbbbcc".to_vec())
        );
        assert_eq!(r.held, 0);
        assert!(r.partial.is_empty());
    }

    #[test]
    fn overlapping_bytes_keep_the_first_arrival() {
        let mut r = Reassembler::default();
        add(&mut r, 0, 7, 0, true, b"AAAAAAAA");
        add(&mut r, 0, 7, 4, true, b"xxxxBBBB");
        assert_eq!(
            add(&mut r, 0, 7, 12, false, b"CC"),
            Reassembled::Whole(b"AAAAAAAABBBBCC".to_vec())
        );
    }

    #[test]
    fn fragments_all_at_offset_zero_never_complete() {
        // tests/corpus: mmt-21.ip_frag_off, ten first fragments.
        let mut r = Reassembler::default();
        for _ in 0..10 {
            assert_eq!(
                add(&mut r, 0, 3, 0, true, b"12345678"),
                Reassembled::Pending
            );
        }
        assert_eq!(r.held, 8);
    }

    #[test]
    fn old_datagrams_expire_and_oversized_ones_are_dropped() {
        let mut r = Reassembler::default();
        add(&mut r, 0, 1, 0, true, b"aaaaaaaa");
        add(&mut r, TIMEOUT_NS + 1, 2, 0, true, b"bbbbbbbb");
        assert_eq!(r.partial.len(), 1, "the first expired");
        assert_eq!(
            add(&mut r, TIMEOUT_NS + 2, 1, 8, false, b"zz"),
            Reassembled::Pending,
            "the rest of an expired datagram starts a new one"
        );
        // Ping of death: past 65,535 bytes.
        assert_eq!(
            add(&mut r, TIMEOUT_NS + 3, 2, 65_528, false, b"0123456789"),
            Reassembled::Pending
        );
        assert!(!r.partial.contains_key(&Key {
            src: a("198.18.0.1"),
            dst: a("198.18.0.2"),
            proto: 6,
            id: 2
        }));
    }

    #[test]
    fn bounds_refuse_new_datagrams_not_old_ones() {
        let mut r = Reassembler::default();
        for id in 0..MAX_DATAGRAMS as u32 {
            add(&mut r, 0, id, 0, true, b"x");
        }
        assert_eq!(add(&mut r, 0, 999_999, 0, true, b"x"), Reassembled::Pending);
        assert_eq!(r.refused, 1);
        assert_eq!(
            add(&mut r, 0, 5, 1, false, b"y"),
            Reassembled::Whole(b"xy".to_vec())
        );
    }

    #[test]
    fn rebuilt_packets_dissect_as_their_transport() {
        let mut tcp = vec![0u8; 20];
        tcp[0..2].copy_from_slice(&1234u16.to_be_bytes());
        tcp[2..4].copy_from_slice(&80u16.to_be_bytes());
        tcp[12] = 0x50;
        tcp[13] = 0x02;
        for (src, dst) in [("198.18.0.1", "198.18.0.2"), ("2001:db8::1", "2001:db8::2")] {
            let p = Reassembler::packet(a(src), a(dst), 6, &tcp).unwrap();
            let d = crate::analyze::dissect::dissect(crate::pcap::LinkType::Raw, &p);
            assert_eq!(d.ip.unwrap().src, a(src));
            assert!(matches!(
                d.transport,
                Some(crate::analyze::dissect::Transport::Tcp {
                    sport: 1234,
                    dport: 80,
                    flags: 0x02,
                    valid: true,
                    ..
                })
            ));
        }
    }
}
