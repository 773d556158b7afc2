//! Ethernet II frames: two MACs and an EtherType.

use super::Malformed;

pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_ARP: u16 = 0x0806;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;

/// A view of an Ethernet II frame.
#[derive(Clone, Copy, Debug)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    pub const HEADER_LEN: usize = 14;

    pub fn new_unchecked(buffer: T) -> EthernetFrame<T> {
        EthernetFrame { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<EthernetFrame<T>, Malformed> {
        let f = EthernetFrame::new_unchecked(buffer);
        f.check_len()?;
        Ok(f)
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

    pub fn dst_addr(&self) -> [u8; 6] {
        self.b()[0..6]
            .try_into()
            .expect("six bytes after check_len")
    }

    pub fn src_addr(&self) -> [u8; 6] {
        self.b()[6..12]
            .try_into()
            .expect("six bytes after check_len")
    }

    pub fn ethertype(&self) -> u16 {
        u16::from_be_bytes([self.b()[12], self.b()[13]])
    }

    pub fn payload(&self) -> &[u8] {
        &self.b()[Self::HEADER_LEN..]
    }
}

/// `02:00:5e:10:ff:0a` to bytes; `None` unless six hexadecimal octets.
///
/// ```
/// assert_eq!(sonde::wire::ethernet::parse_mac("02:00:5e:10:ff:0a"), Some([2, 0, 0x5e, 0x10, 0xff, 0x0a]));
/// assert_eq!(sonde::wire::ethernet::parse_mac("02:00:5e:10:ff"), None);
/// ```
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let parts: Vec<u8> = s
        .split(':')
        .map(|p| u8::from_str_radix(p, 16))
        .collect::<Result<_, _>>()
        .ok()?;
    parts.try_into().ok()
}

/// A MAC as people write it, `02:00:5e:10:ff:0a`: [`parse_mac`]'s inverse.
///
/// ```
/// assert_eq!(sonde::wire::ethernet::mac_text(&[2, 0, 0x5e, 0x10, 0xff, 0x0a]), "02:00:5e:10:ff:0a");
/// ```
pub fn mac_text(mac: &[u8]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The payload of an Ethernet frame, or nothing when it is too short to
/// be one (what the sniffer hands on: the IP packet of a captured frame).
pub fn payload_of(frame: &[u8]) -> &[u8] {
    frame
        .get(EthernetFrame::<&[u8]>::HEADER_LEN..)
        .unwrap_or(&[])
}

/// The EtherType an IP packet travels under, by its version nibble.
pub fn ethertype_of_ip(packet: &[u8]) -> u16 {
    if packet.first().map(|b| b >> 4) == Some(6) {
        ETHERTYPE_IPV6
    } else {
        ETHERTYPE_IPV4
    }
}
