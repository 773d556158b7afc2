//! ICMP and ICMPv6 messages: both start with type, code, checksum and four
//! bytes whose meaning depends on the type (an echo's id and sequence).

use super::Malformed;

/// A view of an ICMP or ICMPv6 message: the 8-byte header and what follows.
#[derive(Clone, Copy, Debug)]
pub struct IcmpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

/// ICMP echo request and reply types.
pub const ECHO_REQUEST_V4: u8 = 8;
pub const ECHO_REPLY_V4: u8 = 0;
pub const ECHO_REQUEST_V6: u8 = 128;
pub const ECHO_REPLY_V6: u8 = 129;

impl<T: AsRef<[u8]>> IcmpPacket<T> {
    pub const HEADER_LEN: usize = 8;

    pub fn new_unchecked(buffer: T) -> IcmpPacket<T> {
        IcmpPacket { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<IcmpPacket<T>, Malformed> {
        let p = IcmpPacket::new_unchecked(buffer);
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

    pub fn msg_type(&self) -> u8 {
        self.b()[0]
    }

    pub fn code(&self) -> u8 {
        self.b()[1]
    }

    pub fn checksum(&self) -> u16 {
        self.u16_at(2)
    }

    /// An echo's identifier (bytes 4-5).
    pub fn echo_ident(&self) -> u16 {
        self.u16_at(4)
    }

    /// An echo's sequence number (bytes 6-7).
    pub fn echo_seq_no(&self) -> u16 {
        self.u16_at(6)
    }

    /// After the header: an echo's data, or an error's quoted packet.
    pub fn payload(&self) -> &[u8] {
        &self.b()[Self::HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> IcmpPacket<T> {
    pub fn set_checksum(&mut self, sum: u16) {
        self.buffer.as_mut()[2..4].copy_from_slice(&sum.to_be_bytes());
    }
}
