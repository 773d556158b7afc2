//! `sonde craft`: one exact packet from a layered spec
//! (`ip(dst=198.18.1.5,ttl=3)/tcp(dport=80,flags=S)`), built without
//! sockets (`spec`, `build`, `fragment`), matched to its replies by `reply`.
//! Sending is `scan::craft_send`, through the same gate as the scanner.

pub mod build;
pub mod fragment;
pub mod reply;
pub mod spec;

pub use build::{Crafted, TransportKind};
pub use fragment::{FragmentError, Fragmenting};
pub use spec::SpecError;

/// Parse and build a spec; `source_for(dst)` gives the default source.
pub fn craft(
    spec: &str,
    source_for: &dyn Fn(std::net::IpAddr) -> Option<std::net::IpAddr>,
) -> Result<Crafted, SpecError> {
    let layers = spec::parse(spec)?;
    build::build(spec, &layers, source_for)
}

impl Crafted {
    /// The packet itself (`how` is `None`), or its fragments, each with
    /// the packet's Ethernet header when it has one.
    pub fn fragmented(&self, how: Option<Fragmenting>) -> Result<Vec<Vec<u8>>, FragmentError> {
        let Some(how) = how else {
            return Ok(vec![self.bytes.clone()]);
        };
        let link_header = if self.ethernet {
            crate::wire::ethernet::EthernetFrame::<&[u8]>::HEADER_LEN
        } else {
            0
        };
        fragment::fragment_crafted(&self.bytes, link_header, how)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ip::IpPacket;

    fn source(_: std::net::IpAddr) -> Option<std::net::IpAddr> {
        Some("198.18.0.2".parse().unwrap())
    }

    /// Fragments keep the Ethernet header and split the IP payload as
    /// asked; a spec without IP cannot be fragmented.
    #[test]
    fn fragments_keep_the_link_header_and_cover_the_payload() {
        let c = craft(
            "ether(dst=02:00:00:00:00:01)/ip(dst=198.18.0.10,id=7)/udp(dport=53)/raw(pattern=41,len=16)",
            &source,
        )
        .unwrap();
        let whole = c.fragmented(None).unwrap();
        assert_eq!(whole, vec![c.bytes.clone()]);
        let frags = c.fragmented(Some(Fragmenting::Even(8))).unwrap();
        // 8 bytes of UDP header and 16 of payload: three 8-byte pieces.
        assert_eq!(frags.len(), 3);
        for f in &frags {
            assert_eq!(f[..14], c.bytes[..14], "the Ethernet header is kept");
            match IpPacket::parse(&f[14..]) {
                Ok(IpPacket::V4(v)) => assert_eq!(v.ident(), 7),
                other => panic!("not an IPv4 fragment: {:?}", other.is_ok()),
            }
        }
        let err = craft("ether(dst=02:00:00:00:00:01)", &source)
            .unwrap()
            .fragmented(Some(Fragmenting::Even(8)))
            .unwrap_err();
        assert_eq!(err, FragmentError::NotIp);
        assert!(matches!(
            c.fragmented(Some(Fragmenting::List("3:8"))),
            Err(FragmentError::Pieces(m)) if m.contains("multiple of 8")
        ));
    }
}
