//! One decoded, borrowed view per frame: link layer to transport, over
//! etherparse's lax slicing (which keeps what it could parse of damaged
//! frames and says where it stopped).

use std::net::IpAddr;

use etherparse::{EtherType, LaxNetSlice, LaxSlicedPacket, TransportSlice};

use crate::pcap::LinkType;

/// The transport layer of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport<'a> {
    /// `valid` is false when the header is cut short (a tiny first fragment)
    /// or its data offset is below 5 or past the segment: the ports are
    /// known, the rest is not to be trusted.
    Tcp {
        sport: u16,
        dport: u16,
        flags: u8,
        payload: &'a [u8],
        valid: bool,
    },
    Udp {
        sport: u16,
        dport: u16,
        payload: &'a [u8],
    },
    Icmp {
        kind: u8,
        code: u8,
    },
    Icmpv6 {
        kind: u8,
        code: u8,
    },
}

/// IP fragmentation fields (IPv4 header or IPv6 fragment header).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Fragment {
    pub id: u32,
    /// In bytes.
    pub offset: u32,
    pub more: bool,
}

/// The network layer of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ip {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    /// `Some` when this is a fragment (offset > 0 or more fragments follow).
    pub fragment: Option<Fragment>,
    pub payload_len: usize,
}

/// What one frame holds.
#[derive(Clone, Copy, Debug, Default)]
pub struct Dissected<'a> {
    pub ethernet: bool,
    pub vlan: bool,
    pub sll: bool,
    pub arp: bool,
    pub ip: Option<Ip>,
    pub ipv6: bool,
    pub transport: Option<Transport<'a>>,
    /// Where and why decoding stopped early, if it did.
    pub stopped: Option<&'static str>,
    /// The link layer's protocol field (EtherType), 0 when there is none.
    pub ether_type: u16,
    /// The captured bytes from the start of the network layer on, whatever
    /// they hold: the malformed-header checks read fields etherparse refuses.
    pub net: &'a [u8],
    /// The IP payload as captured (for a fragment, the fragment's data).
    pub ip_payload: &'a [u8],
}

const ETHER_IPV4: u16 = 0x0800;
const ETHER_IPV6: u16 = 0x86dd;

/// Decode one frame of link type `link`. Never panics, whatever the bytes.
pub fn dissect(link: LinkType, data: &[u8]) -> Dissected<'_> {
    let mut d = Dissected::default();
    let (ether_type, net_offset) = network_start(link, data);
    d.ether_type = ether_type;
    d.net = data.get(net_offset..).unwrap_or(&[]);
    let sliced = match link {
        LinkType::Ethernet => match LaxSlicedPacket::from_ethernet(data) {
            Ok(p) => {
                d.ethernet = true;
                p
            }
            Err(_) => {
                d.stopped = Some("ethernet header truncated");
                return d;
            }
        },
        LinkType::LinuxSll | LinkType::LinuxSll2 => {
            let (hdr, proto_at) = if link == LinkType::LinuxSll {
                (16, 14)
            } else {
                (20, 0)
            };
            if data.len() < hdr {
                d.stopped = Some("linux cooked header truncated");
                return d;
            }
            d.sll = true;
            let ether_type = u16::from_be_bytes([data[proto_at], data[proto_at + 1]]);
            LaxSlicedPacket::from_ether_type(EtherType(ether_type), &data[hdr..])
        }
        LinkType::Raw | LinkType::Ipv4 | LinkType::Ipv6 => from_ip(data, &mut d),
        LinkType::Null | LinkType::Loop => {
            if data.len() < 4 {
                d.stopped = Some("loopback header truncated");
                return d;
            }
            // Null stores the address family in host byte order, Loop in network order.
            let fam_le = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
            let fam_be = u32::from_be_bytes([data[0], data[1], data[2], data[3]]);
            let fam = if link == LinkType::Loop || fam_le > 0xffff {
                fam_be
            } else {
                fam_le
            };
            let ether_type = match fam {
                2 => ETHER_IPV4,
                10 | 24 | 28 | 30 => ETHER_IPV6,
                _ => {
                    d.stopped = Some("unknown loopback address family");
                    return d;
                }
            };
            LaxSlicedPacket::from_ether_type(EtherType(ether_type), &data[4..])
        }
        LinkType::Other(_) => {
            d.stopped = Some("unsupported link type");
            return d;
        }
    };
    fill(&sliced, &mut d);
    d
}

/// The EtherType and the offset of the network layer, reading the link
/// header (and any 802.1Q/802.1ad tags) directly.
fn network_start(link: LinkType, data: &[u8]) -> (u16, usize) {
    let be16 = |at: usize| {
        data.get(at..at + 2)
            .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]))
    };
    match link {
        LinkType::Ethernet => {
            let mut at = 12;
            let mut ty = be16(at);
            while matches!(ty, 0x8100 | 0x88a8 | 0x9100) {
                at += 4;
                ty = be16(at);
            }
            (ty, at + 2)
        }
        LinkType::LinuxSll => (be16(14), 16),
        LinkType::LinuxSll2 => (be16(0), 20),
        LinkType::Null | LinkType::Loop => {
            let v = data.get(4).map_or(0, |b| b >> 4);
            (if v == 6 { ETHER_IPV6 } else { ETHER_IPV4 }, 4)
        }
        LinkType::Raw | LinkType::Ipv4 | LinkType::Ipv6 => {
            let v = data.first().map_or(0, |b| b >> 4);
            (if v == 6 { ETHER_IPV6 } else { ETHER_IPV4 }, 0)
        }
        LinkType::Other(_) => (0, data.len()),
    }
}

fn from_ip<'a>(data: &'a [u8], d: &mut Dissected<'a>) -> LaxSlicedPacket<'a> {
    match LaxSlicedPacket::from_ip(data) {
        Ok(p) => p,
        Err(_) => {
            d.stopped = Some("ip header invalid");
            LaxSlicedPacket::from_ether_type(EtherType(0), &[])
        }
    }
}

fn fill<'a>(p: &LaxSlicedPacket<'a>, d: &mut Dissected<'a>) {
    d.vlan = !p.link_exts.is_empty();
    let payload = match &p.net {
        Some(LaxNetSlice::Arp(_)) => {
            d.arp = true;
            None
        }
        Some(LaxNetSlice::Ipv4(v4)) => {
            let h = v4.header();
            let off = u32::from(h.fragments_offset().value()) * 8;
            let more = h.more_fragments();
            let pl = v4.payload();
            d.ip = Some(Ip {
                src: IpAddr::V4(h.source_addr()),
                dst: IpAddr::V4(h.destination_addr()),
                proto: pl.ip_number.0,
                fragment: (off > 0 || more).then_some(Fragment {
                    id: u32::from(h.identification()),
                    offset: off,
                    more,
                }),
                payload_len: pl.payload.len(),
            });
            d.ip_payload = pl.payload;
            Some((pl.ip_number.0, pl.payload, off))
        }
        Some(LaxNetSlice::Ipv6(v6)) => {
            d.ipv6 = true;
            let h = v6.header();
            let pl = v6.payload();
            let frag = v6.extensions().clone().into_iter().find_map(|e| match e {
                etherparse::Ipv6ExtensionSlice::Fragment(f) => Some(Fragment {
                    id: f.identification(),
                    offset: u32::from(f.fragment_offset().value()) * 8,
                    more: f.more_fragments(),
                }),
                _ => None,
            });
            let frag = frag.filter(|f| f.offset > 0 || f.more);
            d.ip = Some(Ip {
                src: IpAddr::V6(h.source_addr()),
                dst: IpAddr::V6(h.destination_addr()),
                proto: pl.ip_number.0,
                fragment: frag,
                payload_len: pl.payload.len(),
            });
            d.ip_payload = pl.payload;
            Some((pl.ip_number.0, pl.payload, frag.map_or(0, |f| f.offset)))
        }
        None => None,
    };
    d.transport = match &p.transport {
        Some(t) => transport_of(t),
        // etherparse leaves fragmented payloads alone and stops at a bad
        // transport header; a first fragment still carries the transport
        // header, and a bad one still has its ports, so decode them here.
        None => match payload {
            Some((proto, bytes, 0)) => raw_transport(proto, bytes),
            _ => None,
        },
    };
    if let Some((_, layer)) = &p.stop_err {
        d.stopped = Some(stop_reason(*layer));
    }
}

fn stop_reason(layer: etherparse::err::Layer) -> &'static str {
    use etherparse::err::Layer::*;
    match layer {
        Ipv4Header | Ipv4Packet => "ipv4 header invalid or truncated",
        Ipv6Header
        | Ipv6Packet
        | Ipv6ExtHeader
        | Ipv6FragHeader
        | Ipv6HopByHopHeader
        | Ipv6RouteHeader
        | Ipv6DestOptionsHeader => "ipv6 header invalid or truncated",
        TcpHeader => "tcp header invalid or truncated",
        UdpHeader | UdpPayload => "udp header invalid or truncated",
        Icmpv4 | Icmpv4Timestamp | Icmpv4TimestampReply | Icmpv6 => "icmp header truncated",
        _ => "header invalid or truncated",
    }
}

fn transport_of<'a>(t: &TransportSlice<'a>) -> Option<Transport<'a>> {
    Some(match t {
        TransportSlice::Tcp(t) => Transport::Tcp {
            sport: t.source_port(),
            dport: t.destination_port(),
            flags: t.slice()[13],
            payload: t.payload(),
            valid: true,
        },
        TransportSlice::Udp(u) => Transport::Udp {
            sport: u.source_port(),
            dport: u.destination_port(),
            payload: u.payload(),
        },
        TransportSlice::Icmpv4(i) => Transport::Icmp {
            kind: i.type_u8(),
            code: i.code_u8(),
        },
        TransportSlice::Icmpv6(i) => Transport::Icmpv6 {
            kind: i.type_u8(),
            code: i.code_u8(),
        },
        _ => return None,
    })
}

fn raw_transport(proto: u8, b: &[u8]) -> Option<Transport<'_>> {
    match proto {
        6 if b.len() >= 4 => {
            let doff = b.get(12).map_or(0, |x| usize::from(x >> 4) * 4);
            let valid = b.len() >= 20 && doff >= 20 && doff <= b.len();
            Some(Transport::Tcp {
                sport: u16::from_be_bytes([b[0], b[1]]),
                dport: u16::from_be_bytes([b[2], b[3]]),
                flags: b.get(13).copied().unwrap_or(0),
                payload: if valid { &b[doff..] } else { &[] },
                valid,
            })
        }
        17 if b.len() >= 8 => Some(Transport::Udp {
            sport: u16::from_be_bytes([b[0], b[1]]),
            dport: u16::from_be_bytes([b[2], b[3]]),
            payload: &b[8..],
        }),
        1 if b.len() >= 4 => Some(Transport::Icmp {
            kind: b[0],
            code: b[1],
        }),
        58 if b.len() >= 4 => Some(Transport::Icmpv6 {
            kind: b[0],
            code: b[1],
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_never_panics() {
        let mut seed = 0x1234_5678u32;
        for len in 0..300 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    seed as u8
                })
                .collect();
            for link in [
                LinkType::Ethernet,
                LinkType::Raw,
                LinkType::LinuxSll,
                LinkType::LinuxSll2,
                LinkType::Null,
                LinkType::Loop,
            ] {
                let _ = dissect(link, &bytes);
            }
        }
    }

    #[test]
    fn first_fragment_keeps_its_transport_header() {
        // IPv4, MF set, offset 0, protocol UDP, then a UDP header 1234 -> 53.
        let mut pkt = vec![
            0x45, 0, 0, 36, 0, 1, 0x20, 0, 64, 17, 0, 0, 198, 18, 0, 2, 198, 18, 1, 10,
        ];
        pkt.extend_from_slice(&[0x04, 0xd2, 0, 53, 0, 40, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]);
        let d = dissect(LinkType::Raw, &pkt);
        let ip = d.ip.unwrap();
        assert_eq!(
            ip.fragment,
            Some(Fragment {
                id: 1,
                offset: 0,
                more: true
            })
        );
        assert!(
            matches!(
                d.transport,
                Some(Transport::Udp {
                    sport: 1234,
                    dport: 53,
                    ..
                })
            ),
            "{:?}",
            d.transport
        );
    }

    #[test]
    fn tcp_with_data_offset_below_five_keeps_ports_but_is_invalid() {
        let mut pkt = vec![
            0x45, 0, 0, 40, 0, 1, 0, 0, 64, 6, 0, 0, 198, 18, 0, 2, 198, 18, 1, 10,
        ];
        pkt.extend_from_slice(&[
            0x41, 0x41, 0x41, 0x41, 0, 0, 0, 1, 0, 0, 0, 0, 0x40, 0x02, 0xff, 0xff, 0, 0, 0, 0,
        ]);
        let d = dissect(LinkType::Raw, &pkt);
        assert!(
            matches!(
                d.transport,
                Some(Transport::Tcp {
                    sport: 0x4141,
                    valid: false,
                    ..
                })
            ),
            "{:?}",
            d.transport
        );
    }
}
