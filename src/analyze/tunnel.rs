//! Tunnels the analysis enters: GRE (and ERSPAN types II and III over it),
//! IP in IP (IPv4/IPv6 in IPv4/IPv6: ipip, 6in4, 4in6, ip6ip6), VXLAN (UDP
//! 4789) and GTP-U (UDP 2152). The inner packet is what protocols, flows,
//! talkers and detectors see; the outer one is counted in the protocols and
//! the report's `encapsulation` table. One level is entered: a tunnel in a
//! tunnel is counted as the outer one's payload.

/// Where the inner packet starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inner<'a> {
    /// An IPv4 or IPv6 packet.
    Ip(&'a [u8]),
    /// An Ethernet frame (VXLAN, GRE transparent bridging, ERSPAN).
    Ethernet(&'a [u8]),
}

/// What kind of tunnel, by the name the report uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TunnelKind {
    Gre,
    Erspan,
    IpInIp,
    Vxlan,
    GtpU,
}

impl TunnelKind {
    pub fn name(self, outer_v6: bool, inner_v6: bool) -> &'static str {
        match (self, outer_v6, inner_v6) {
            (TunnelKind::Gre, ..) => "gre",
            (TunnelKind::Erspan, ..) => "erspan",
            (TunnelKind::Vxlan, ..) => "vxlan",
            (TunnelKind::GtpU, ..) => "gtp-u",
            (TunnelKind::IpInIp, false, false) => "ipip",
            (TunnelKind::IpInIp, false, true) => "6in4",
            (TunnelKind::IpInIp, true, false) => "4in6",
            (TunnelKind::IpInIp, true, true) => "ip6ip6",
        }
    }
}

pub const VXLAN_PORT: u16 = 4789;
pub const GTPU_PORT: u16 = 2152;

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Whether `b` starts like an IPv4 or IPv6 header.
fn looks_ip(b: &[u8]) -> bool {
    matches!(b.first().map(|v| v >> 4), Some(4 | 6))
}

/// The tunnel an IP packet of protocol `proto` carrying `payload` is, if
/// one sonde enters.
pub fn by_ip_protocol(proto: u8, payload: &[u8]) -> Option<(TunnelKind, Inner<'_>)> {
    match proto {
        4 | 41 if looks_ip(payload) => Some((TunnelKind::IpInIp, Inner::Ip(payload))),
        47 => gre(payload),
        _ => None,
    }
}

/// GRE (RFC 2784/2890): version 0 only (PPTP's enhanced GRE, version 1,
/// carries PPP).
fn gre(b: &[u8]) -> Option<(TunnelKind, Inner<'_>)> {
    let flags = be16(b, 0)?;
    if flags & 0x7 != 0 {
        return None;
    }
    let ptype = be16(b, 2)?;
    let mut at = 4;
    for bit in [0x8000, 0x2000, 0x1000] {
        if flags & bit != 0 {
            at += 4;
        }
    }
    let rest = b.get(at..)?;
    match ptype {
        0x0800 | 0x86dd if looks_ip(rest) => Some((TunnelKind::Gre, Inner::Ip(rest))),
        0x6558 => Some((TunnelKind::Gre, Inner::Ethernet(rest))),
        // ERSPAN type II: an 8-byte header, then the mirrored frame.
        0x88be => Some((TunnelKind::Erspan, Inner::Ethernet(rest.get(8..)?))),
        // ERSPAN type III: 12 bytes, 8 more with the O flag.
        0x22eb => {
            let o = rest.get(11)? & 0x01 != 0;
            let len = if o { 20 } else { 12 };
            Some((TunnelKind::Erspan, Inner::Ethernet(rest.get(len..)?)))
        }
        _ => None,
    }
}

/// The tunnel a UDP datagram between `sport` and `dport` carrying
/// `payload` is, if one sonde enters.
pub fn by_udp(sport: u16, dport: u16, payload: &[u8]) -> Option<(TunnelKind, Inner<'_>)> {
    if dport == VXLAN_PORT || sport == VXLAN_PORT {
        // RFC 7348: flags with the I bit, 3 reserved, VNI, 1 reserved.
        if payload.len() >= 8 + 14 && payload[0] & 0x08 != 0 {
            return Some((TunnelKind::Vxlan, Inner::Ethernet(&payload[8..])));
        }
        return None;
    }
    if dport == GTPU_PORT || sport == GTPU_PORT {
        return gtpu(payload);
    }
    None
}

/// GTP-U (3GPP TS 29.281): version 1, protocol type GTP, a T-PDU (0xff);
/// 8 bytes, 12 with any optional field, then extension headers.
fn gtpu(b: &[u8]) -> Option<(TunnelKind, Inner<'_>)> {
    let flags = *b.first()?;
    if flags >> 5 != 1 || flags & 0x10 == 0 || *b.get(1)? != 0xff {
        return None;
    }
    let mut at = if flags & 0x07 != 0 { 12 } else { 8 };
    if flags & 0x04 != 0 {
        let mut next = *b.get(11)?;
        // Each extension: a length in 4-byte units, its content, the next type.
        let mut hops = 0;
        while next != 0 {
            let len = usize::from(*b.get(at)?) * 4;
            if len == 0 || hops > 16 {
                return None;
            }
            next = *b.get(at + len - 1)?;
            at += len;
            hops += 1;
        }
    }
    let inner = b.get(at..)?;
    looks_ip(inner).then_some((TunnelKind::GtpU, Inner::Ip(inner)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const V4: [u8; 20] = [
        0x45, 0, 0, 20, 0, 0, 0, 0, 64, 6, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2,
    ];

    #[test]
    fn gre_variants() {
        let mut g = vec![0, 0, 0x08, 0x00];
        g.extend_from_slice(&V4);
        assert_eq!(
            by_ip_protocol(47, &g),
            Some((TunnelKind::Gre, Inner::Ip(&V4)))
        );
        // With a key and a sequence number.
        let mut g = vec![0x30, 0, 0x08, 0x00, 0, 0, 0, 7, 0, 0, 0, 9];
        g.extend_from_slice(&V4);
        assert_eq!(
            by_ip_protocol(47, &g),
            Some((TunnelKind::Gre, Inner::Ip(&V4)))
        );
        // Transparent Ethernet bridging.
        let g = [0, 0, 0x65, 0x58, 1, 2, 3];
        assert_eq!(
            by_ip_protocol(47, &g),
            Some((TunnelKind::Gre, Inner::Ethernet(&[1, 2, 3])))
        );
        // ERSPAN II (sequence bit set): 8 bytes of ERSPAN header.
        let mut g = vec![0x10, 0, 0x88, 0xbe, 0, 0, 0, 1];
        g.extend_from_slice(&[0x10, 0, 0, 1, 0, 0, 0, 0]);
        g.extend_from_slice(&[9; 14]);
        assert_eq!(
            by_ip_protocol(47, &g),
            Some((TunnelKind::Erspan, Inner::Ethernet(&[9; 14])))
        );
        // PPTP's GRE version 1 is not entered; nor a cut header.
        assert_eq!(by_ip_protocol(47, &[0x30, 0x01, 0x88, 0x0b]), None);
        assert_eq!(by_ip_protocol(47, &[0x80, 0, 0x08]), None);
        assert_eq!(
            by_ip_protocol(4, &V4),
            Some((TunnelKind::IpInIp, Inner::Ip(&V4)))
        );
        assert_eq!(by_ip_protocol(4, &[0x12]), None);
    }

    #[test]
    fn vxlan_and_gtpu() {
        let mut v = vec![0x08, 0, 0, 0, 0, 0, 42, 0];
        v.extend_from_slice(&[7; 14]);
        assert_eq!(
            by_udp(51000, VXLAN_PORT, &v),
            Some((TunnelKind::Vxlan, Inner::Ethernet(&[7; 14])))
        );
        assert_eq!(by_udp(51000, VXLAN_PORT, &v[..10]), None);
        // GTP-U, T-PDU, with the E flag and one extension header (PDU
        // session container, 4 bytes, then no more).
        let mut g = vec![
            0x34, 0xff, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0x85, 1, 0x10, 0x01, 0,
        ];
        g.extend_from_slice(&V4);
        assert_eq!(
            by_udp(GTPU_PORT, GTPU_PORT, &g),
            Some((TunnelKind::GtpU, Inner::Ip(&V4)))
        );
        // An echo request (type 1) carries no packet.
        assert_eq!(
            by_udp(
                GTPU_PORT,
                GTPU_PORT,
                &[0x32, 0x01, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0]
            ),
            None
        );
        assert_eq!(by_udp(1000, 2000, &v), None);
    }
}
