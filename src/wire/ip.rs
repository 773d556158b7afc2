//! IPv4 and IPv6 headers: the fixed fields the scanner and the sender read.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::Malformed;

/// A view of an IPv4 packet. `check_len` needs the fixed 20-byte header
/// and version 4, nothing more: a crafted packet may carry a wrong IHL or
/// total length on purpose, and its addresses still read.
#[derive(Clone, Copy, Debug)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// The fixed part of the header.
    pub const HEADER_LEN: usize = 20;

    /// Wrap without checking; call [`Ipv4Packet::check_len`] before any accessor.
    pub fn new_unchecked(buffer: T) -> Ipv4Packet<T> {
        Ipv4Packet { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Ipv4Packet<T>, Malformed> {
        let p = Ipv4Packet::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    pub fn check_len(&self) -> Result<(), Malformed> {
        let b = self.buffer.as_ref();
        if b.len() < Self::HEADER_LEN || b[0] >> 4 != 4 {
            return Err(Malformed);
        }
        Ok(())
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// The header's length as IHL claims it (0 to 60), unchecked.
    pub fn claimed_header_len(&self) -> usize {
        usize::from(self.b()[0] & 0x0f) * 4
    }

    /// The header's length from IHL, kept within 20 and the buffer.
    pub fn header_len(&self) -> usize {
        (usize::from(self.b()[0] & 0x0f) * 4).clamp(Self::HEADER_LEN, self.b().len())
    }

    pub fn total_len(&self) -> u16 {
        u16::from_be_bytes([self.b()[2], self.b()[3]])
    }

    pub fn tos(&self) -> u8 {
        self.b()[1]
    }

    pub fn checksum(&self) -> u16 {
        u16::from_be_bytes([self.b()[10], self.b()[11]])
    }

    pub fn ident(&self) -> u16 {
        u16::from_be_bytes([self.b()[4], self.b()[5]])
    }

    /// The flags (reserved, DF, MF) and the fragment offset, as one field.
    pub fn flags_and_offset(&self) -> u16 {
        u16::from_be_bytes([self.b()[6], self.b()[7]])
    }

    pub fn dont_frag(&self) -> bool {
        self.b()[6] & 0x40 != 0
    }

    /// The reserved ("evil") bit.
    pub fn reserved_flag(&self) -> bool {
        self.b()[6] & 0x80 != 0
    }

    pub fn ttl(&self) -> u8 {
        self.b()[8]
    }

    pub fn protocol(&self) -> u8 {
        self.b()[9]
    }

    pub fn src_addr(&self) -> Ipv4Addr {
        Ipv4Addr::new(self.b()[12], self.b()[13], self.b()[14], self.b()[15])
    }

    pub fn dst_addr(&self) -> Ipv4Addr {
        Ipv4Addr::new(self.b()[16], self.b()[17], self.b()[18], self.b()[19])
    }

    /// The bytes after the header, up to the total length (or the buffer's end).
    pub fn payload(&self) -> &[u8] {
        let end = usize::from(self.total_len()).clamp(self.header_len(), self.b().len());
        &self.b()[self.header_len()..end]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    fn m(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }

    /// The version nibble, whatever it should be (crafted packets).
    pub fn set_version(&mut self, v: u8) {
        let b = self.m();
        b[0] = (b[0] & 0x0f) | ((v & 0x0f) << 4);
    }

    /// IHL in 32-bit words (0-15), whatever the header holds.
    pub fn set_header_len_words(&mut self, words: u8) {
        let b = self.m();
        b[0] = (b[0] & 0xf0) | (words & 0x0f);
    }

    pub fn set_tos(&mut self, tos: u8) {
        self.m()[1] = tos;
    }

    pub fn set_dscp(&mut self, dscp: u8) {
        let b = self.m();
        b[1] = (b[1] & 0x03) | ((dscp & 0x3f) << 2);
    }

    pub fn set_ecn(&mut self, ecn: u8) {
        let b = self.m();
        b[1] = (b[1] & 0xfc) | (ecn & 0x03);
    }

    pub fn set_total_len(&mut self, len: u16) {
        self.m()[2..4].copy_from_slice(&len.to_be_bytes());
    }

    pub fn set_reserved_flag(&mut self, on: bool) {
        let b = self.m();
        b[6] = (b[6] & 0x7f) | if on { 0x80 } else { 0 };
    }

    pub fn set_flags_and_offset(&mut self, field: u16) {
        self.m()[6..8].copy_from_slice(&field.to_be_bytes());
    }

    pub fn set_checksum(&mut self, sum: u16) {
        self.m()[10..12].copy_from_slice(&sum.to_be_bytes());
    }

    /// Compute the header checksum over the header as IHL says (within
    /// the buffer) and write it.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let hlen = (usize::from(self.b()[0] & 0x0f) * 4).min(self.b().len());
        let sum = etherparse::checksum::Sum16BitWords::new()
            .add_slice(&self.b()[..hlen])
            .ones_complement()
            .to_be();
        self.set_checksum(sum);
    }
}

/// A view of an IPv6 packet: the fixed 40-byte header.
#[derive(Clone, Copy, Debug)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    pub const HEADER_LEN: usize = 40;

    pub fn new_unchecked(buffer: T) -> Ipv6Packet<T> {
        Ipv6Packet { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Ipv6Packet<T>, Malformed> {
        let p = Ipv6Packet::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    pub fn check_len(&self) -> Result<(), Malformed> {
        let b = self.buffer.as_ref();
        if b.len() < Self::HEADER_LEN || b[0] >> 4 != 6 {
            return Err(Malformed);
        }
        Ok(())
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    pub fn payload_len(&self) -> u16 {
        u16::from_be_bytes([self.b()[4], self.b()[5]])
    }

    pub fn next_header(&self) -> u8 {
        self.b()[6]
    }

    pub fn hop_limit(&self) -> u8 {
        self.b()[7]
    }

    pub fn src_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(<[u8; 16]>::try_from(&self.b()[8..24]).expect("16 bytes"))
    }

    pub fn dst_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(<[u8; 16]>::try_from(&self.b()[24..40]).expect("16 bytes"))
    }

    /// The bytes after the fixed header, up to the payload length.
    pub fn payload(&self) -> &[u8] {
        let end = (Self::HEADER_LEN + usize::from(self.payload_len())).min(self.b().len());
        &self.b()[Self::HEADER_LEN..end]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    /// The version nibble, whatever it should be (crafted packets).
    pub fn set_version(&mut self, v: u8) {
        let b = self.buffer.as_mut();
        b[0] = (b[0] & 0x0f) | ((v & 0x0f) << 4);
    }

    pub fn set_payload_len(&mut self, len: u16) {
        self.buffer.as_mut()[4..6].copy_from_slice(&len.to_be_bytes());
    }

    pub fn set_next_header(&mut self, next: u8) {
        self.buffer.as_mut()[6] = next;
    }
}

/// An IP packet of either version, by its version nibble.
#[derive(Clone, Copy, Debug)]
pub enum IpPacket<'a> {
    V4(Ipv4Packet<&'a [u8]>),
    V6(Ipv6Packet<&'a [u8]>),
}

impl<'a> IpPacket<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<IpPacket<'a>, Malformed> {
        match bytes.first().map(|b| b >> 4) {
            Some(4) => Ipv4Packet::new_checked(bytes).map(IpPacket::V4),
            Some(6) => Ipv6Packet::new_checked(bytes).map(IpPacket::V6),
            _ => Err(Malformed),
        }
    }

    pub fn src(&self) -> IpAddr {
        match self {
            IpPacket::V4(p) => IpAddr::V4(p.src_addr()),
            IpPacket::V6(p) => IpAddr::V6(p.src_addr()),
        }
    }

    pub fn dst(&self) -> IpAddr {
        match self {
            IpPacket::V4(p) => IpAddr::V4(p.dst_addr()),
            IpPacket::V6(p) => IpAddr::V6(p.dst_addr()),
        }
    }

    /// The protocol of what follows the fixed header (IPv6: the next
    /// header, extension headers not followed).
    pub fn protocol(&self) -> u8 {
        match self {
            IpPacket::V4(p) => p.protocol(),
            IpPacket::V6(p) => p.next_header(),
        }
    }

    /// Everything after the header, to the buffer's end (a crafted total
    /// length does not cut it).
    pub fn after_header(&self) -> &'a [u8] {
        match self {
            IpPacket::V4(p) => {
                let b: &'a [u8] = p.buffer;
                &b[p.header_len()..]
            }
            IpPacket::V6(p) => {
                let b: &'a [u8] = p.buffer;
                &b[Ipv6Packet::<&[u8]>::HEADER_LEN..]
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::{CookieKey, Probe, ProbeTemplate, build};
    use crate::scope::ProbeKind;

    // The first ten bytes of an IPv4 SYN probe with its MSS option, as
    // probe::build writes it (tests/offline/probe_packets.rs holds it byte-identical
    // to Scapy's): version 4, IHL 5, length 44, id 0, DF, TTL 64, TCP.
    const SYN_V4: &str = "4500002c000040004006";

    #[test]
    fn views_read_what_probe_build_wrote() {
        let key = CookieKey::random();
        for (src, dst) in [
            ("198.18.0.2", "198.18.1.10"),
            ("2001:db8::2", "2001:db8:1::10"),
        ] {
            let (src, dst): (IpAddr, IpAddr) = (src.parse().unwrap(), dst.parse().unwrap());
            let probe = Probe {
                kind: ProbeKind::Syn,
                src,
                dst,
                port: Some(22),
            };
            let mut buf = Vec::new();
            build(
                &mut buf,
                &probe,
                &key.marks(src, dst, 22, ProbeKind::Syn),
                &ProbeTemplate::default(),
                None,
            )
            .unwrap();
            let ip = IpPacket::parse(&buf).unwrap();
            assert_eq!((ip.src(), ip.dst()), (src, dst));
            match ip {
                IpPacket::V4(p) => {
                    assert!(
                        hex::encode(&buf[..10]).starts_with(SYN_V4),
                        "{}",
                        hex::encode(&buf[..10])
                    );
                    assert_eq!((p.protocol(), p.ttl(), p.header_len()), (6, 64, 20));
                    assert_eq!(p.payload().len(), usize::from(p.total_len()) - 20);
                }
                IpPacket::V6(p) => {
                    assert_eq!((p.next_header(), p.hop_limit()), (6, 64));
                    assert_eq!(p.payload().len(), usize::from(p.payload_len()));
                }
            }
        }
    }

    #[test]
    fn no_accessor_panics_on_lying_headers() {
        // IHL 15 and a total length of 65535 over 20 bytes; IHL 0.
        let mut lie = vec![
            0x4f, 0, 0xff, 0xff, 0, 0, 0, 0, 1, 17, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8,
        ];
        let p = Ipv4Packet::new_checked(&lie[..]).unwrap();
        assert_eq!((p.header_len(), p.payload().len()), (20, 0));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(5, 6, 7, 8));
        lie[0] = 0x40;
        assert_eq!(Ipv4Packet::new_checked(&lie[..]).unwrap().header_len(), 20);
        let mut v6 = [0u8; 40];
        v6[0] = 0x60;
        v6[4] = 0xff;
        assert_eq!(Ipv6Packet::new_checked(&v6[..]).unwrap().payload().len(), 0);
        for cut in 0..40 {
            assert!(IpPacket::parse(&v6[..cut]).is_err());
        }
        assert!(IpPacket::parse(&[0x50; 40]).is_err());
    }
}
