//! Checked views over packet bytes, in smoltcp's `wire` style: a view wraps
//! any `T: AsRef<[u8]>`, `check_len` is called once (by `new_checked`), and
//! no accessor panics after it, however the bytes lie. Header building and
//! full parsing stay with etherparse; these views are for the few fields
//! the send and receive paths read at fixed offsets, in one place.
//!
//! ```
//! use sonde::wire::ip::IpPacket;
//! let mut packet = vec![0x45, 0, 0, 20, 0, 0, 0, 0, 64, 6, 0, 0];
//! packet.extend_from_slice(&[198, 18, 0, 2, 198, 18, 1, 10]);
//! let ip = IpPacket::parse(&packet).unwrap();
//! assert_eq!(ip.src().to_string(), "198.18.0.2");
//! assert_eq!(ip.dst().to_string(), "198.18.1.10");
//! assert!(IpPacket::parse(&packet[..19]).is_err());
//! ```

pub mod ethernet;
pub mod icmp;
pub mod ip;
pub mod tcp;
pub mod udp;

/// The bytes are too short for the header they claim (or are not that
/// header at all).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Malformed;

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("too short for its header, or not that header")
    }
}

impl std::error::Error for Malformed {}
