//! One decoded, borrowed view per frame: link layer to transport, over
//! etherparse's lax slices (which keep what they could parse of damaged
//! frames and say where they stopped).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

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

/// An IP address as its family and 128-bit value, for keys: compared,
/// ordered and hashed as integers (IPv4 before IPv6, as `IpAddr` orders),
/// where `IpAddr` matches its enum at every step. The flow table, the
/// talker tables and the SYN-flood detector key on it, per packet.
///
/// The value is kept as two 64-bit halves (high first, so the derived
/// order is numeric): a `u128` field would make the type 16-aligned and
/// pad every key that holds one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Addr {
    v6: bool,
    value: [u64; 2],
}

impl Addr {
    pub fn new(v6: bool, value: u128) -> Addr {
        Addr {
            v6,
            value: [(value >> 64) as u64, value as u64],
        }
    }

    pub fn ip(self) -> IpAddr {
        if self.v6 {
            IpAddr::V6(Ipv6Addr::from(self.value()))
        } else {
            IpAddr::V4(Ipv4Addr::from(self.value[1] as u32))
        }
    }

    /// The value as its high and low halves, for keys that keep the
    /// family once for two addresses (see `FlowKey`).
    pub(crate) fn halves(self) -> [u64; 2] {
        self.value
    }

    pub(crate) fn from_halves(v6: bool, value: [u64; 2]) -> Addr {
        Addr { v6, value }
    }

    /// The address as a number within its family.
    pub fn value(self) -> u128 {
        (u128::from(self.value[0]) << 64) | u128::from(self.value[1])
    }

    pub fn is_ipv6(self) -> bool {
        self.v6
    }
}

impl From<IpAddr> for Addr {
    fn from(ip: IpAddr) -> Addr {
        match ip {
            IpAddr::V4(a) => Addr::new(false, u128::from(u32::from(a))),
            IpAddr::V6(a) => Addr::new(true, u128::from(a)),
        }
    }
}

/// One 128-bit word (an IPv4 address and its IPv6 twin `::a.b.c.d` hash
/// alike and are told apart by `Eq`).
impl std::hash::Hash for Addr {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        h.write_u128(self.value());
    }
}

impl std::fmt::Display for Addr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.ip().fmt(f)
    }
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
    /// The tunnel entered, when the frame's packet was carried in one:
    /// `ip`, `transport`, `net` and `ip_payload` are then the inner
    /// packet's.
    pub tunnel: Option<Tunnel>,
    /// The frame's Ethernet source address, when it has one: which host
    /// put the packet on this link (the ARP detector follows who carries
    /// each IP address).
    pub src_mac: Option<[u8; 6]>,
}

/// A tunnel a frame's packet came through: its kind and outer header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tunnel {
    pub kind: super::tunnel::TunnelKind,
    pub outer: Ip,
    pub outer_ipv6: bool,
    /// The outer packet was UDP (VXLAN, GTP-U).
    pub outer_udp: bool,
}

impl Tunnel {
    /// The name the report gives it (`gre`, `6in4`, `vxlan`, ...).
    pub fn name(&self, inner_ipv6: bool) -> &'static str {
        self.kind.name(self.outer_ipv6, inner_ipv6)
    }
}

const ETHER_IPV4: u16 = 0x0800;
const ETHER_IPV6: u16 = 0x86dd;

/// Decode one frame of link type `link`. Never panics, whatever the bytes.
///
/// The link layer is read directly (its offsets are fixed); the network and
/// transport layers go through etherparse's individual slices, which keep
/// what they could parse of a damaged packet and say where they stopped.
#[inline]
pub fn dissect(link: LinkType, data: &[u8]) -> Dissected<'_> {
    let mut d = Dissected::default();
    dissect_into(link, data, &mut d);
    d
}

/// [`dissect`] into a default `d`, which the caller owns: returning the
/// view from a function with several exits made the compiler build it
/// aside and copy its 136 bytes, per frame.
#[inline]
pub fn dissect_into<'a>(link: LinkType, data: &'a [u8], d: &mut Dissected<'a>) {
    dissect_layers(link, data, d);
    if d.ip.is_some_and(|ip| ip.fragment.is_none()) {
        enter_tunnel(d);
    }
}

/// The inner packet of a tunnel, when `d`'s packet is one sonde enters: it
/// takes the place of the outer one (one level; see `analyze::tunnel`).
fn enter_tunnel(d: &mut Dissected<'_>) {
    use super::tunnel::{Inner, by_ip_protocol, by_udp};
    let Some(outer) = d.ip else { return };
    let found = match d.transport {
        Some(Transport::Udp {
            sport,
            dport,
            payload,
        }) => by_udp(sport, dport, payload),
        None => by_ip_protocol(outer.proto, d.ip_payload),
        _ => None,
    };
    let Some((kind, inner)) = found else { return };
    let mut i = Dissected::default();
    match inner {
        Inner::Ip(b) => dissect_layers(LinkType::Raw, b, &mut i),
        Inner::Ethernet(b) => dissect_layers(LinkType::Ethernet, b, &mut i),
    }
    if i.ip.is_none() && !i.arp {
        return;
    }
    d.tunnel = Some(Tunnel {
        kind,
        outer,
        outer_ipv6: d.ipv6,
        outer_udp: matches!(d.transport, Some(Transport::Udp { .. })),
    });
    d.ip = i.ip;
    d.ipv6 = i.ipv6;
    d.transport = i.transport;
    d.net = i.net;
    d.ip_payload = i.ip_payload;
    d.arp |= i.arp;
    d.ether_type = i.ether_type;
    d.stopped = i.stopped.or(d.stopped);
}

fn dissect_layers<'a>(link: LinkType, data: &'a [u8], d: &mut Dissected<'a>) {
    let (ether_type, net_offset) = network_start(link, data);
    d.ether_type = ether_type;
    d.net = data.get(net_offset..).unwrap_or(&[]);
    match link {
        LinkType::Ethernet => {
            if data.len() < 14 {
                d.stopped = Some("ethernet header truncated");
                return;
            }
            d.ethernet = true;
            d.src_mac = data.get(6..12).and_then(|m| m.try_into().ok());
            d.vlan = net_offset > 14;
            if net_offset > data.len() {
                d.stopped = Some("vlan header truncated");
                return;
            }
        }
        LinkType::LinuxSll | LinkType::LinuxSll2 => {
            if net_offset > data.len() {
                d.stopped = Some("linux cooked header truncated");
                return;
            }
            d.sll = true;
        }
        LinkType::Null | LinkType::Loop => {
            if data.len() < 4 {
                d.stopped = Some("loopback header truncated");
                return;
            }
            if ether_type == 0 {
                d.stopped = Some("unknown loopback address family");
                return;
            }
        }
        LinkType::Raw | LinkType::Ipv4 | LinkType::Ipv6 => {}
        LinkType::Other(_) => {
            d.stopped = Some("unsupported link type");
            return;
        }
    }
    match ether_type {
        ETHER_ARP => d.arp = etherparse::ArpPacketSlice::from_slice(d.net).is_ok(),
        ETHER_IPV4 | ETHER_IPV6 => network(d),
        _ => {}
    }
}

const ETHER_ARP: u16 = 0x0806;

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
            let Some(b) = data.get(..4) else {
                return (0, 4);
            };
            // Null stores the address family in host byte order, Loop in network order.
            let le = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            let be = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
            let family = if link == LinkType::Loop || le > 0xffff {
                be
            } else {
                le
            };
            let ty = match family {
                2 => ETHER_IPV4,
                10 | 24 | 28 | 30 => ETHER_IPV6,
                _ => 0,
            };
            (ty, 4)
        }
        LinkType::Raw | LinkType::Ipv4 | LinkType::Ipv6 => {
            let v = data.first().map_or(0, |b| b >> 4);
            (if v == 6 { ETHER_IPV6 } else { ETHER_IPV4 }, 0)
        }
        LinkType::Other(_) => (0, data.len()),
    }
}

/// The IPv4 header's fields into `d`; the IP payload and the fragment offset.
fn ipv4<'a>(
    d: &mut Dissected<'a>,
    v4: &etherparse::LaxIpv4Slice<'a>,
) -> (etherparse::LaxIpPayloadSlice<'a>, u32) {
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
    (pl.clone(), off)
}

/// The network layer and, unless this is a later fragment, the transport.
fn network<'a>(d: &mut Dissected<'a>) {
    // IPv4 goes straight to its own lax slice: the same checks and payload
    // as through `LaxIpSlice` (which dispatches on the same version nibble),
    // without building and moving the larger two-version result per frame.
    let (payload, offset) = if d.net.first().is_some_and(|b| b >> 4 == 4) {
        match etherparse::LaxIpv4Slice::from_slice(d.net) {
            Ok((v4, auth_err)) => {
                if auth_err.is_some() {
                    d.stopped = Some(stop_reason(etherparse::err::Layer::IpAuthHeader));
                }
                ipv4(d, &v4)
            }
            Err(_) => {
                d.stopped = Some("ip header invalid or truncated");
                return;
            }
        }
    } else {
        let (ip_slice, stop) = match etherparse::LaxIpSlice::from_slice(d.net) {
            Ok(x) => x,
            Err(_) => {
                d.stopped = Some("ip header invalid or truncated");
                return;
            }
        };
        if let Some((_, layer)) = &stop {
            d.stopped = Some(stop_reason(*layer));
        }
        match &ip_slice {
            etherparse::LaxIpSlice::Ipv4(v4) => ipv4(d, v4),
            etherparse::LaxIpSlice::Ipv6(v6) => {
                d.ipv6 = true;
                let h = v6.header();
                let pl = v6.payload();
                let frag = ipv6_fragment(h.next_header().0, v6.extensions().slice())
                    .filter(|f| f.offset > 0 || f.more);
                d.ip = Some(Ip {
                    src: IpAddr::V6(h.source_addr()),
                    dst: IpAddr::V6(h.destination_addr()),
                    proto: pl.ip_number.0,
                    fragment: frag,
                    payload_len: pl.payload.len(),
                });
                (pl.clone(), frag.map_or(0, |f| f.offset))
            }
        }
    };
    d.ip_payload = payload.payload;
    // A later fragment carries no transport header.
    if offset != 0 {
        return;
    }
    let b = payload.payload;
    d.transport = if payload.fragmented {
        // A first fragment still carries the transport header.
        raw_transport(payload.ip_number.0, b)
    } else {
        match payload.ip_number.0 {
            6 => match etherparse::TcpSlice::from_slice(b) {
                Ok(t) => Some(Transport::Tcp {
                    sport: t.source_port(),
                    dport: t.destination_port(),
                    flags: t.slice()[13],
                    payload: t.payload(),
                    valid: true,
                }),
                Err(_) => {
                    d.stopped = Some("tcp header invalid or truncated");
                    raw_transport(6, b)
                }
            },
            17 => match etherparse::UdpSlice::from_slice_lax(b) {
                Ok(u) => Some(Transport::Udp {
                    sport: u.source_port(),
                    dport: u.destination_port(),
                    payload: u.payload(),
                }),
                Err(_) => {
                    d.stopped = Some("udp header invalid or truncated");
                    None
                }
            },
            1 => match etherparse::Icmpv4Slice::from_slice(b) {
                Ok(i) => Some(Transport::Icmp {
                    kind: i.type_u8(),
                    code: i.code_u8(),
                }),
                Err(_) => {
                    d.stopped = Some("icmp header truncated");
                    None
                }
            },
            58 => match etherparse::Icmpv6Slice::from_slice(b) {
                Ok(i) => Some(Transport::Icmpv6 {
                    kind: i.type_u8(),
                    code: i.code_u8(),
                }),
                Err(_) => {
                    d.stopped = Some("icmp header truncated");
                    None
                }
            },
            _ => None,
        }
    };
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

/// The Fragment header in an IPv6 extension chain, if there is one.
///
/// etherparse's `Ipv6ExtensionSliceIter` must not be used here: on a chain
/// its lax parser cut short (a header announcing one the packet does not
/// hold) it reads past the end of the slice. This walk checks every length.
fn ipv6_fragment(first: u8, mut rest: &[u8]) -> Option<Fragment> {
    let mut next = first;
    loop {
        let len = match next {
            // hop-by-hop, routing, destination options: (len + 1) * 8
            0 | 43 | 60 => (usize::from(*rest.get(1)?) + 1) * 8,
            44 => {
                let f = etherparse::Ipv6FragmentHeaderSlice::from_slice(rest).ok()?;
                return Some(Fragment {
                    id: f.identification(),
                    offset: u32::from(f.fragment_offset().value()) * 8,
                    more: f.more_fragments(),
                });
            }
            // authentication header: (len + 2) * 4
            51 => (usize::from(*rest.get(1)?) + 2) * 4,
            _ => return None,
        };
        next = *rest.first()?;
        rest = rest.get(len..)?;
    }
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

    /// `Addr` orders, compares and converts back exactly as `IpAddr` does.
    #[test]
    fn addr_orders_and_round_trips_as_ip_addr() {
        let ips: Vec<IpAddr> = [
            "0.0.0.0",
            "0.0.0.1",
            "10.0.0.1",
            "198.18.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::a00:1",
            "::ffff:10.0.0.1",
            "2001:db8::1",
            "2001:db8:0:1::",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        ]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
        for &x in &ips {
            assert_eq!(Addr::from(x).ip(), x);
            assert_eq!(Addr::from(x).to_string(), x.to_string());
            for &y in &ips {
                assert_eq!(Addr::from(x).cmp(&Addr::from(y)), x.cmp(&y), "{x} {y}");
            }
        }
    }

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
