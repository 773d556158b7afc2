//! Neighbour discovery of our own: ARP requests (IPv4) and neighbour
//! solicitations (IPv6), and the answers to them, as whole Ethernet frames.
//!
//! The scanner resolves the MAC address of an on-link target (or of a
//! gateway) itself, as nmap's ARP ping does, instead of leaving the probe in
//! the kernel's neighbour queue: a host that answers no request is down
//! (`no-arp-reply`, `no-nd-reply`) and gets no probe. Pure functions over
//! bytes; headers through etherparse; byte-identical to Scapy's frames for
//! the same fields (golden tests below).
//!
//! ```
//! use sonde::probe::neighbour::{answer, request};
//! let (me, target) = ("198.18.0.2".parse().unwrap(), "198.18.0.10".parse().unwrap());
//! let mut frame = Vec::new();
//! request(&mut frame, [2, 0, 0, 0, 0, 2], me, target);
//! assert_eq!(frame.len(), 42);
//! assert_eq!(answer(&frame), None, "a request answers nothing");
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::{
    ArpEthIpv4Packet, ArpOperation, EtherType, Ethernet2Header, IpNumber, Ipv6FlowLabel, Ipv6Header,
};

/// The Ethernet broadcast address.
pub const BROADCAST: [u8; 6] = [0xff; 6];

const ETHERTYPE_ARP: u16 = 0x0806;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ICMPV6: u8 = 58;
const NEIGHBOUR_SOLICITATION: u8 = 135;
const NEIGHBOUR_ADVERTISEMENT: u8 = 136;
/// NDP option types: source and target link-layer address (RFC 4861 4.6.1).
const OPT_SOURCE_LL: u8 = 1;
const OPT_TARGET_LL: u8 = 2;

/// The solicited-node multicast group of `target` (RFC 4291 2.7.1):
/// ff02::1:ff00:0/104 plus the address's last 24 bits.
pub fn solicited_node(target: Ipv6Addr) -> Ipv6Addr {
    let o = target.octets();
    Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(o[13]),
        u16::from_be_bytes([o[14], o[15]]),
    )
}

/// The Ethernet address of an IPv6 multicast group: 33:33 and its last 32
/// bits (RFC 2464 7).
pub fn multicast_mac(group: Ipv6Addr) -> [u8; 6] {
    let o = group.octets();
    [0x33, 0x33, o[12], o[13], o[14], o[15]]
}

/// The frame asking for `target`'s MAC: an ARP request for IPv4, a neighbour
/// solicitation to the solicited-node group for IPv6. `buf` is cleared
/// first. The families of `sender_ip` and `target` must match (an IPv4
/// sender with an IPv6 target writes nothing).
pub fn request(buf: &mut Vec<u8>, sender_mac: [u8; 6], sender_ip: IpAddr, target: IpAddr) {
    buf.clear();
    match (sender_ip, target) {
        (IpAddr::V4(s), IpAddr::V4(t)) => arp_request(buf, sender_mac, s, t),
        (IpAddr::V6(s), IpAddr::V6(t)) => neighbour_solicitation(buf, sender_mac, s, t),
        _ => {}
    }
}

fn arp_request(buf: &mut Vec<u8>, sender_mac: [u8; 6], sender_ip: Ipv4Addr, target: Ipv4Addr) {
    let eth = Ethernet2Header {
        source: sender_mac,
        destination: BROADCAST,
        ether_type: EtherType(ETHERTYPE_ARP),
    };
    buf.extend_from_slice(&eth.to_bytes());
    let arp = ArpEthIpv4Packet {
        operation: ArpOperation::REQUEST,
        sender_mac,
        sender_ipv4: sender_ip.octets(),
        target_mac: [0; 6],
        target_ipv4: target.octets(),
    };
    buf.extend_from_slice(&arp.to_bytes());
}

fn neighbour_solicitation(
    buf: &mut Vec<u8>,
    sender_mac: [u8; 6],
    sender_ip: Ipv6Addr,
    target: Ipv6Addr,
) {
    let group = solicited_node(target);
    let eth = Ethernet2Header {
        source: sender_mac,
        destination: multicast_mac(group),
        ether_type: EtherType(ETHERTYPE_IPV6),
    };
    buf.extend_from_slice(&eth.to_bytes());
    // ICMPv6: type, code, checksum, reserved; the target; the source
    // link-layer address option (type 1, length 1 unit of 8 bytes).
    let mut icmp = Vec::with_capacity(32);
    icmp.extend_from_slice(&[NEIGHBOUR_SOLICITATION, 0, 0, 0, 0, 0, 0, 0]);
    icmp.extend_from_slice(&target.octets());
    icmp.extend_from_slice(&[OPT_SOURCE_LL, 1]);
    icmp.extend_from_slice(&sender_mac);
    let sum = icmpv6_checksum(sender_ip, group, &icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    let ip = Ipv6Header {
        traffic_class: 0,
        flow_label: Ipv6FlowLabel::ZERO,
        payload_length: icmp.len() as u16,
        next_header: IpNumber(ICMPV6),
        // RFC 4861 7.1.1: a receiver drops solicitations with another hop limit.
        hop_limit: 255,
        source: sender_ip.octets(),
        destination: group.octets(),
    };
    buf.extend_from_slice(&ip.to_bytes());
    buf.extend_from_slice(&icmp);
}

/// The ICMPv6 checksum over the pseudo-header and `icmp` (whose checksum
/// field is zero).
fn icmpv6_checksum(src: Ipv6Addr, dst: Ipv6Addr, icmp: &[u8]) -> u16 {
    etherparse::checksum::Sum16BitWords::new()
        .add_16bytes(src.octets())
        .add_16bytes(dst.octets())
        .add_4bytes((icmp.len() as u32).to_be_bytes())
        .add_4bytes([0, 0, 0, ICMPV6])
        .add_slice(icmp)
        .ones_complement()
        .to_be()
}

/// What an Ethernet frame says about a neighbour: an ARP reply or a
/// neighbour advertisement gives an address and its MAC. Requests,
/// solicitations and everything else give `None`.
pub fn answer(frame: &[u8]) -> Option<(IpAddr, [u8; 6])> {
    let (eth, rest) = Ethernet2Header::from_slice(frame).ok()?;
    match eth.ether_type.0 {
        ETHERTYPE_ARP => {
            let arp = etherparse::ArpPacketSlice::from_slice(rest).ok()?;
            let packet = arp.to_packet().try_eth_ipv4().ok()?;
            (packet.operation == ArpOperation::REPLY)
                .then(|| (IpAddr::V4(packet.sender_ipv4_addr()), packet.sender_mac))
        }
        ETHERTYPE_IPV6 => {
            let (ip, icmp) = ipv6_icmp(rest)?;
            if icmp.first() != Some(&NEIGHBOUR_ADVERTISEMENT) || ip.hop_limit != 255 {
                return None;
            }
            let target = Ipv6Addr::from(<[u8; 16]>::try_from(icmp.get(8..24)?).ok()?);
            // The target link-layer option; without one, the frame's source.
            let mac = ndp_option(icmp.get(24..)?, OPT_TARGET_LL).unwrap_or(eth.source);
            Some((IpAddr::V6(target), mac))
        }
        _ => None,
    }
}

/// The (sender, asked-about) addresses of a request frame built by
/// [`request`]: what the sender checks against the permit.
pub fn asked(frame: &[u8]) -> Option<(IpAddr, IpAddr)> {
    let (eth, rest) = Ethernet2Header::from_slice(frame).ok()?;
    match eth.ether_type.0 {
        ETHERTYPE_ARP => {
            let arp = etherparse::ArpPacketSlice::from_slice(rest).ok()?;
            let packet = arp.to_packet().try_eth_ipv4().ok()?;
            (packet.operation == ArpOperation::REQUEST).then(|| {
                (
                    IpAddr::V4(packet.sender_ipv4_addr()),
                    IpAddr::V4(packet.target_ipv4_addr()),
                )
            })
        }
        ETHERTYPE_IPV6 => {
            let (ip, icmp) = ipv6_icmp(rest)?;
            if icmp.first() != Some(&NEIGHBOUR_SOLICITATION) {
                return None;
            }
            let target = Ipv6Addr::from(<[u8; 16]>::try_from(icmp.get(8..24)?).ok()?);
            // Sent to the target's own solicited-node group, nowhere else.
            if Ipv6Addr::from(ip.destination) != solicited_node(target)
                || eth.destination != multicast_mac(solicited_node(target))
            {
                return None;
            }
            Some((IpAddr::V6(Ipv6Addr::from(ip.source)), IpAddr::V6(target)))
        }
        _ => None,
    }
}

/// An IPv6 packet carrying ICMPv6 directly: its header and the ICMPv6 bytes.
fn ipv6_icmp(packet: &[u8]) -> Option<(Ipv6Header, &[u8])> {
    let (ip, rest) = Ipv6Header::from_slice(packet).ok()?;
    if ip.next_header != IpNumber(ICMPV6) {
        return None;
    }
    let len = usize::from(ip.payload_length).min(rest.len());
    Some((ip, &rest[..len]))
}

/// The MAC of the first NDP option of `kind` in `options`.
fn ndp_option(mut options: &[u8], kind: u8) -> Option<[u8; 6]> {
    while options.len() >= 8 {
        let len = usize::from(options[1]) * 8;
        if len == 0 || len > options.len() {
            return None;
        }
        if options[0] == kind {
            return options.get(2..8)?.try_into().ok();
        }
        options = &options[len..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: [u8; 6] = [2, 0, 0, 0, 0, 2];

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    // Golden frames from Scapy 2.5 (python3-scapy), for example:
    // Ether(dst='ff:ff:ff:ff:ff:ff', src='02:00:00:00:00:02')/ARP(op=1,
    //   hwsrc='02:00:00:00:00:02', psrc='198.18.0.2', pdst='198.18.0.10')
    const ARP_REQUEST: &str =
        "ffffffffffff02000000000208060001080006040001020000000002c6120002000000000000c612000a";
    // Ether(dst='33:33:ff:00:00:10', src=...)/IPv6(src='2001:db8::2',
    //   dst='ff02::1:ff00:10', hlim=255)/ICMPv6ND_NS(tgt='2001:db8::10')
    //   /ICMPv6NDOptSrcLLAddr(lladdr='02:00:00:00:00:02')
    const NS: &str = "3333ff00001002000000000286dd6000000000203aff20010db8000000000000000000000002ff0200000000000000000001ff00001087001c090000000020010db80000000000000000000000100101020000000002";
    // ARP(op=2, psrc='198.18.0.10', hwsrc='02:00:00:00:00:10', pdst='198.18.0.2')
    const ARP_REPLY: &str =
        "02000000000202000000001008060001080006040002020000000010c612000a020000000002c6120002";
    // ICMPv6ND_NA(tgt='2001:db8::10', S=1, O=1)/ICMPv6NDOptDstLLAddr('02:00:00:00:00:10')
    const NA: &str = "02000000000202000000001086dd6000000000203aff20010db800000000000000000000001020010db800000000000000000000000288008a466000000020010db80000000000000000000000100201020000000010";

    #[test]
    fn requests_are_byte_identical_to_scapys() {
        let mut f = Vec::new();
        request(&mut f, ME, ip("198.18.0.2"), ip("198.18.0.10"));
        assert_eq!(hex::encode(&f), ARP_REQUEST);
        request(&mut f, ME, ip("2001:db8::2"), ip("2001:db8::10"));
        assert_eq!(hex::encode(&f), NS);
        // Families that do not match write nothing.
        request(&mut f, ME, ip("198.18.0.2"), ip("2001:db8::10"));
        assert!(f.is_empty());
    }

    #[test]
    fn answers_give_the_address_and_its_mac() {
        let mac = [2, 0, 0, 0, 0, 0x10];
        assert_eq!(
            answer(&hex::decode(ARP_REPLY).unwrap()),
            Some((ip("198.18.0.10"), mac))
        );
        assert_eq!(
            answer(&hex::decode(NA).unwrap()),
            Some((ip("2001:db8::10"), mac))
        );
        // Requests answer nothing; cut or garbage frames neither.
        assert_eq!(answer(&hex::decode(ARP_REQUEST).unwrap()), None);
        assert_eq!(answer(&hex::decode(NS).unwrap()), None);
        let na = hex::decode(NA).unwrap();
        for cut in 0..na.len() - 8 {
            assert_eq!(answer(&na[..cut]), None, "cut at {cut}");
        }
        // An advertisement whose hop limit is not 255 came through a router.
        let mut routed = na.clone();
        routed[14 + 7] = 254;
        assert_eq!(answer(&routed), None);
    }

    #[test]
    fn asked_names_the_sender_and_the_address_asked_about() {
        assert_eq!(
            asked(&hex::decode(ARP_REQUEST).unwrap()),
            Some((ip("198.18.0.2"), ip("198.18.0.10")))
        );
        assert_eq!(
            asked(&hex::decode(NS).unwrap()),
            Some((ip("2001:db8::2"), ip("2001:db8::10")))
        );
        assert_eq!(asked(&hex::decode(ARP_REPLY).unwrap()), None);
        // A solicitation sent to another group is not one we build.
        let mut other = hex::decode(NS).unwrap();
        other[14 + 24 + 15] ^= 1;
        assert_eq!(asked(&other), None);
    }

    #[test]
    fn solicited_node_groups() {
        assert_eq!(
            solicited_node("2001:db8::1:abcd:ef12".parse().unwrap()),
            "ff02::1:ffcd:ef12".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(
            multicast_mac("ff02::1:ffcd:ef12".parse().unwrap()),
            [0x33, 0x33, 0xff, 0xcd, 0xef, 0x12]
        );
    }
}
