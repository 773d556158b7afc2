//! The UDP header.

use super::Malformed;

/// A view of a UDP datagram: the 8-byte header and what follows.
#[derive(Clone, Copy, Debug)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    pub const HEADER_LEN: usize = 8;

    pub fn new_unchecked(buffer: T) -> UdpPacket<T> {
        UdpPacket { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<UdpPacket<T>, Malformed> {
        let p = UdpPacket::new_unchecked(buffer);
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

    pub fn src_port(&self) -> u16 {
        self.u16_at(0)
    }

    pub fn dst_port(&self) -> u16 {
        self.u16_at(2)
    }

    pub fn len(&self) -> u16 {
        self.u16_at(4)
    }

    pub fn is_empty(&self) -> bool {
        self.payload().is_empty()
    }

    pub fn checksum(&self) -> u16 {
        self.u16_at(6)
    }

    /// The bytes after the header (the buffer's, whatever `len` says).
    pub fn payload(&self) -> &[u8] {
        &self.b()[Self::HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    pub fn set_checksum(&mut self, sum: u16) {
        self.buffer.as_mut()[6..8].copy_from_slice(&sum.to_be_bytes());
    }
}
