//! Stateless reply validation: a keyed hash of a probe's addresses and
//! destination port (a per-run secret key) decides its source port, TCP
//! initial sequence number, ICMP id/sequence and DNS id. A reply is ours only
//! if those fields match what the hash gives for its addresses, so the
//! sniffer keeps no per-probe state and forged or stray packets fail.

use std::hash::Hasher;
use std::net::IpAddr;

use siphasher::sip::SipHasher24;

use crate::scope::ProbeKind;

/// The per-run secret.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct CookieKey {
    k0: u64,
    k1: u64,
}

impl std::fmt::Debug for CookieKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CookieKey(..)") // never print the secret
    }
}

/// Source ports sonde's probes use: above Linux's default ephemeral range's
/// busiest part, below its end, and never a well-known port.
pub const SOURCE_PORTS: std::ops::RangeInclusive<u16> = 40_000..=59_999;

/// DNS probes to one target share a source port and a cookie; the low bits
/// of the DNS id say which of up to this many questions a probe asked.
pub const MAX_DNS_QUESTIONS: usize = 16;
const DNS_QUESTION_MASK: u16 = (MAX_DNS_QUESTIONS - 1) as u16;

/// The fields a probe carries, all derived from its cookie.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Marks {
    pub source_port: u16,
    pub tcp_isn: u32,
    pub icmp_id: u16,
    pub icmp_seq: u16,
    /// The DNS id's cookie bits (the question bits are zero).
    pub dns_id: u16,
}

impl Marks {
    /// The DNS id of the probe asking question `index` (below MAX_DNS_QUESTIONS).
    pub fn dns_id_for(&self, index: u8) -> u16 {
        self.dns_id | (u16::from(index) & DNS_QUESTION_MASK)
    }

    /// The question index a DNS id carries, when its cookie bits are ours.
    pub fn dns_question_of(&self, id: u16) -> Option<u8> {
        (id & !DNS_QUESTION_MASK == self.dns_id).then_some((id & DNS_QUESTION_MASK) as u8)
    }
}

/// Where the marks a reply must carry come from: the run's key (the
/// scan, which keeps no per-probe state), or the probes a capture holds
/// (a resume checking its state against its evidence, without the key
/// of the segment that sent them). `None`: no such probe.
pub trait MarkSource {
    fn marks_for(&self, src: IpAddr, dst: IpAddr, port: u16, kind: ProbeKind) -> Option<Marks>;
}

impl MarkSource for CookieKey {
    #[inline]
    fn marks_for(&self, src: IpAddr, dst: IpAddr, port: u16, kind: ProbeKind) -> Option<Marks> {
        Some(self.marks(src, dst, port, kind))
    }
}

impl CookieKey {
    /// A fresh random key for one run.
    pub fn random() -> CookieKey {
        let k: [u64; 2] = rand::random();
        CookieKey { k0: k[0], k1: k[1] }
    }

    /// A fixed key (tests, reproducible runs).
    pub fn from_parts(k0: u64, k1: u64) -> CookieKey {
        CookieKey { k0, k1 }
    }

    /// The key's 16 bytes (k0 then k1, little-endian): revealed in a
    /// compact run's sent-probe log once the run ends.
    pub fn to_bytes(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.k0.to_le_bytes());
        b[8..].copy_from_slice(&self.k1.to_le_bytes());
        b
    }

    pub fn from_bytes(b: [u8; 16]) -> CookieKey {
        let (k0, k1) = b.split_at(8);
        CookieKey {
            k0: u64::from_le_bytes(k0.try_into().expect("8 bytes")),
            k1: u64::from_le_bytes(k1.try_into().expect("8 bytes")),
        }
    }

    /// The marks for a probe of `kind` from `src` to `dst` (and `port`; 0 for ICMP).
    pub fn marks(&self, src: IpAddr, dst: IpAddr, port: u16, kind: ProbeKind) -> Marks {
        let mut h = SipHasher24::new_with_keys(self.k0, self.k1);
        h.write_u8(kind as u8);
        for ip in [src, dst] {
            match ip {
                IpAddr::V4(a) => h.write(&a.octets()),
                IpAddr::V6(a) => h.write(&a.octets()),
            }
        }
        h.write_u16(port);
        let c = h.finish();
        let span = u64::from(SOURCE_PORTS.end() - SOURCE_PORTS.start()) + 1;
        Marks {
            source_port: SOURCE_PORTS.start() + ((c >> 48) % span) as u16,
            tcp_isn: c as u32,
            icmp_id: (c >> 32) as u16,
            icmp_seq: (c >> 16) as u16,
            dns_id: c as u16 & !DNS_QUESTION_MASK,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_depend_on_key_and_every_field() {
        let k = CookieKey::from_parts(1, 2);
        let (a, b): (IpAddr, IpAddr) = (
            "198.18.0.2".parse().unwrap(),
            "198.18.1.10".parse().unwrap(),
        );
        let m = k.marks(a, b, 80, ProbeKind::Syn);
        assert_eq!(m, k.marks(a, b, 80, ProbeKind::Syn));
        assert_ne!(m, k.marks(a, b, 81, ProbeKind::Syn));
        assert_ne!(m, k.marks(b, a, 80, ProbeKind::Syn));
        assert_ne!(m, k.marks(a, b, 80, ProbeKind::Dns));
        assert_ne!(
            m,
            CookieKey::from_parts(1, 3).marks(a, b, 80, ProbeKind::Syn)
        );
        assert!(SOURCE_PORTS.contains(&m.source_port));
        assert_eq!(format!("{k:?}"), "CookieKey(..)");
    }

    #[test]
    fn dns_ids_carry_the_question_index() {
        let k = CookieKey::from_parts(5, 6);
        let (a, b): (IpAddr, IpAddr) = (
            "198.18.0.2".parse().unwrap(),
            "198.18.1.53".parse().unwrap(),
        );
        let m = k.marks(a, b, 53, ProbeKind::Dns);
        for q in 0..MAX_DNS_QUESTIONS as u8 {
            assert_eq!(m.dns_question_of(m.dns_id_for(q)), Some(q));
        }
        // Another probe's cookie bits are refused whatever its question bits.
        let other = k.marks(a, b, 54, ProbeKind::Dns);
        let foreign = (0..MAX_DNS_QUESTIONS as u8)
            .filter(|&q| m.dns_question_of(other.dns_id_for(q)).is_some())
            .count();
        assert_eq!(
            foreign,
            if other.dns_id == m.dns_id {
                MAX_DNS_QUESTIONS
            } else {
                0
            }
        );
    }
}
