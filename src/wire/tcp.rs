//! The TCP header: ports, sequence numbers, flags, window, checksum.

use super::Malformed;

/// A view of a TCP segment. `check_len` needs the fixed 20-byte header; a
/// data offset that lies is clamped when the payload is asked for.
#[derive(Clone, Copy, Debug)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

/// Flag bits as `flags()` gives them (NS is bit 8).
pub mod flags {
    pub const FIN: u16 = 0x001;
    pub const SYN: u16 = 0x002;
    pub const RST: u16 = 0x004;
    pub const PSH: u16 = 0x008;
    pub const ACK: u16 = 0x010;
    pub const URG: u16 = 0x020;
    pub const ECE: u16 = 0x040;
    pub const CWR: u16 = 0x080;
    pub const NS: u16 = 0x100;
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    pub const HEADER_LEN: usize = 20;

    pub fn new_unchecked(buffer: T) -> TcpPacket<T> {
        TcpPacket { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<TcpPacket<T>, Malformed> {
        let p = TcpPacket::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    pub fn check_len(&self) -> Result<(), Malformed> {
        if self.b().len() < Self::HEADER_LEN {
            return Err(Malformed);
        }
        Ok(())
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    fn u16_at(&self, at: usize) -> u16 {
        u16::from_be_bytes([self.b()[at], self.b()[at + 1]])
    }

    fn u32_at(&self, at: usize) -> u32 {
        let b = self.b();
        u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
    }

    pub fn src_port(&self) -> u16 {
        self.u16_at(0)
    }

    pub fn dst_port(&self) -> u16 {
        self.u16_at(2)
    }

    pub fn seq_number(&self) -> u32 {
        self.u32_at(4)
    }

    pub fn ack_number(&self) -> u32 {
        self.u32_at(8)
    }

    /// The nine flag bits, NS included (`flags::*`).
    pub fn flags(&self) -> u16 {
        (u16::from(self.b()[12] & 0x01) << 8) | u16::from(self.b()[13])
    }

    pub fn window(&self) -> u16 {
        self.u16_at(14)
    }

    pub fn checksum(&self) -> u16 {
        self.u16_at(16)
    }

    /// The header's length from the data offset, kept within 20 and the buffer.
    pub fn header_len(&self) -> usize {
        (usize::from(self.b()[12] >> 4) * 4).clamp(Self::HEADER_LEN, self.b().len())
    }

    pub fn payload(&self) -> &[u8] {
        &self.b()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    fn m(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }

    /// Set the nine flag bits (NS is bit 8; higher bits are ignored).
    pub fn set_flags(&mut self, flags: u16) {
        let b = self.m();
        b[13] = flags as u8;
        b[12] = (b[12] & 0xfe) | ((flags >> 8) as u8 & 0x01);
    }

    /// The three reserved bits between the data offset and NS.
    pub fn set_reserved(&mut self, bits: u8) {
        let b = self.m();
        b[12] = (b[12] & 0xf1) | ((bits & 0x07) << 1);
    }

    /// The data offset in 32-bit words (0-15), whatever the header holds.
    pub fn set_data_offset_words(&mut self, words: u8) {
        let b = self.m();
        b[12] = (b[12] & 0x0f) | ((words & 0x0f) << 4);
    }

    pub fn set_checksum(&mut self, sum: u16) {
        self.m()[16..18].copy_from_slice(&sum.to_be_bytes());
    }
}

/// The flag bits' letters as tcpdump writes them, in the order `FSRPAUEC`
/// (bit 0 first); empty for a segment without flags.
///
/// ```
/// assert_eq!(sonde::wire::tcp::flag_letters(0x12), "SA");
/// assert_eq!(sonde::wire::tcp::flag_letters(0), "");
/// ```
pub fn flag_letters(f: u8) -> String {
    b"FSRPAUEC"
        .iter()
        .enumerate()
        .filter(|(i, _)| f & (1 << i) != 0)
        .map(|(_, c)| *c as char)
        .collect()
}

/// Flag bits from their letters (`FSRPAUEC`, and `N` for the nonce bit,
/// in any order and case), or from a number (`18`, `0x12`); `None` for
/// anything else or a value above the nine flag bits.
///
/// ```
/// assert_eq!(sonde::wire::tcp::parse_flags("SA"), Some(0x12));
/// assert_eq!(sonde::wire::tcp::parse_flags("0x12"), Some(0x12));
/// assert_eq!(sonde::wire::tcp::parse_flags("SX"), None);
/// ```
pub fn parse_flags(v: &str) -> Option<u16> {
    if let Ok(n) = v.parse::<u16>() {
        return (n <= 0x1ff).then_some(n);
    }
    if let Some(h) = v.strip_prefix("0x") {
        return u16::from_str_radix(h, 16).ok().filter(|n| *n <= 0x1ff);
    }
    let mut f = 0u16;
    for c in v.chars() {
        f |= match c.to_ascii_uppercase() {
            'F' => 0x01,
            'S' => 0x02,
            'R' => 0x04,
            'P' => 0x08,
            'A' => 0x10,
            'U' => 0x20,
            'E' => 0x40,
            'C' => 0x80,
            'N' => 0x100,
            _ => return None,
        };
    }
    Some(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_round_trip_with_ns_and_short_buffers_are_refused() {
        let mut b = [0u8; 20];
        b[12] = 0x50;
        let mut t = TcpPacket::new_checked(&mut b[..]).unwrap();
        t.set_flags(flags::SYN | flags::ACK | flags::NS);
        assert_eq!(t.flags(), 0x112);
        t.set_reserved(0x7);
        t.set_data_offset_words(15);
        assert_eq!(t.flags(), 0x112, "reserved bits are not flags");
        assert_eq!(t.header_len(), 20, "a lying data offset is clamped");
        assert!(t.payload().is_empty());
        for cut in 0..20 {
            assert!(TcpPacket::new_checked(&b[..cut]).is_err());
        }
    }
}
