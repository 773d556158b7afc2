//! Reply classification: IP packets in, verdicts out, validated by cookie.
//!
//! TCP as nmap -sS: SYN-ACK open, RST closed, ICMP unreachable codes 1, 2,
//! 3, 9, 10, 13 filtered (no reply: filtered, decided by the scheduler).
//! ICMP: echo reply up, unreachable quoted. DNS: the answer's rcode, answer
//! count and whether recursion is available. ICMP errors are matched
//! through the probe they quote.

use std::net::IpAddr;

use etherparse::{IcmpEchoHeader, Icmpv4Type, Icmpv6Type, LaxIpSlice, TransportSlice};

use super::cookie::MarkSource;
use crate::scope::ProbeKind;

/// What a reply says about its target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Verdict {
    /// TCP SYN-ACK.
    Open,
    /// TCP RST.
    Closed,
    /// An ICMP unreachable that nmap counts as filtered (codes 1, 2, 3, 9, 10, 13 for IPv4).
    Filtered { icmp_type: u8, icmp_code: u8 },
    /// ICMP echo reply.
    Up,
    /// Another ICMP error about the probe.
    Unreachable { icmp_type: u8, icmp_code: u8 },
    /// A DNS response.
    DnsAnswer {
        rcode: u8,
        answers: u16,
        recursion_available: bool,
    },
}

/// A validated reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply {
    pub target: IpAddr,
    pub port: Option<u16>,
    pub kind: ProbeKind,
    pub verdict: Verdict,
    /// TTL (hop limit) of the reply as received.
    pub ttl: u8,
    /// Which DNS question the probe asked (0 for other kinds, and for an
    /// ICMP error whose quote ends before the DNS id).
    pub question: u8,
}

/// The classifier's answer for one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Classified {
    Reply(Reply),
    /// Shaped like a reply to a probe of ours, but its cookie is wrong.
    Invalid(&'static str),
    /// One of our own probes coming back in: on loopback every packet sent
    /// is also received. Already in the evidence, as the sender wrote it.
    OwnProbe,
    /// Not a reply to any probe (other traffic).
    Unrelated,
}

/// Classify one IP packet (from the IP header on).
pub fn classify<K: MarkSource>(packet: &[u8], key: &K) -> Classified {
    let Ok((ip, _)) = LaxIpSlice::from_slice(packet) else {
        return Classified::Unrelated;
    };
    let (src, dst, ttl) = match &ip {
        LaxIpSlice::Ipv4(v) => (
            IpAddr::V4(v.header().source_addr()),
            IpAddr::V4(v.header().destination_addr()),
            v.header().ttl(),
        ),
        LaxIpSlice::Ipv6(v) => (
            IpAddr::V6(v.header().source_addr()),
            IpAddr::V6(v.header().destination_addr()),
            v.header().hop_limit(),
        ),
    };
    let payload = ip.payload();
    if payload.fragmented {
        return Classified::Unrelated;
    }
    let reply = |port, kind, verdict, question| {
        Classified::Reply(Reply {
            target: src,
            port,
            kind,
            verdict,
            ttl,
            question,
        })
    };
    match transport(payload.ip_number.0, payload.payload) {
        Some(TransportSlice::Tcp(t)) => {
            let (syn, ack, rst) = (t.syn(), t.ack(), t.rst());
            if syn && !ack && !rst {
                let Some(m) = key.marks_for(src, dst, t.destination_port(), ProbeKind::Syn) else {
                    return Classified::Unrelated;
                };
                return if t.source_port() == m.source_port && t.sequence_number() == m.tcp_isn {
                    Classified::OwnProbe
                } else {
                    Classified::Unrelated
                };
            }
            if !(rst || syn && ack) {
                return Classified::Unrelated;
            }
            let Some(m) = key.marks_for(dst, src, t.source_port(), ProbeKind::Syn) else {
                return Classified::Unrelated;
            };
            if t.destination_port() != m.source_port {
                return Classified::Unrelated;
            }
            // A RST answering a SYN acknowledges it; one without ACK cannot be matched.
            if !ack || t.acknowledgment_number() != m.tcp_isn.wrapping_add(1) {
                return Classified::Invalid(
                    "tcp acknowledgment does not match the probe's sequence number",
                );
            }
            reply(
                Some(t.source_port()),
                ProbeKind::Syn,
                if syn { Verdict::Open } else { Verdict::Closed },
                0,
            )
        }
        Some(TransportSlice::Udp(u)) => {
            let d = u.payload();
            if d.len() >= 12 && d[2] & 0x80 == 0 {
                // A query: ours when its source port and id carry our cookie.
                let Some(m) = key.marks_for(src, dst, u.destination_port(), ProbeKind::Dns) else {
                    return Classified::Unrelated;
                };
                let id = u16::from_be_bytes([d[0], d[1]]);
                if u.source_port() == m.source_port && m.dns_question_of(id).is_some() {
                    return Classified::OwnProbe;
                }
            }
            let Some(m) = key.marks_for(dst, src, u.source_port(), ProbeKind::Dns) else {
                return Classified::Unrelated;
            };
            if u.destination_port() != m.source_port {
                return Classified::Unrelated;
            }
            let d = u.payload();
            if d.len() < 12 || d[2] & 0x80 == 0 {
                return Classified::Invalid("udp reply to a DNS probe is not a DNS response");
            }
            let Some(question) = m.dns_question_of(u16::from_be_bytes([d[0], d[1]])) else {
                return Classified::Invalid("dns id does not match the probe");
            };
            let verdict = Verdict::DnsAnswer {
                rcode: d[3] & 0x0f,
                answers: u16::from_be_bytes([d[6], d[7]]),
                recursion_available: d[3] & 0x80 != 0,
            };
            reply(Some(u.source_port()), ProbeKind::Dns, verdict, question)
        }
        Some(TransportSlice::Icmpv4(i)) => match i.icmp_type() {
            Icmpv4Type::EchoReply(e) => echo(e, src, dst, key, ttl),
            Icmpv4Type::EchoRequest(e) => own_echo(e, src, dst, key),
            Icmpv4Type::DestinationUnreachable(_) | Icmpv4Type::TimeExceeded(_) => quoted(
                i.type_u8(),
                i.code_u8(),
                i.payload(),
                key,
                ttl,
                [1, 2, 3, 9, 10, 13].contains(&i.code_u8()) && i.type_u8() == 3,
            ),
            _ => Classified::Unrelated,
        },
        Some(TransportSlice::Icmpv6(i)) => match i.icmp_type() {
            Icmpv6Type::EchoReply(e) => echo(e, src, dst, key, ttl),
            Icmpv6Type::EchoRequest(e) => own_echo(e, src, dst, key),
            // ICMPv6 destination unreachable: 1 administratively prohibited, 3 address, 4 port.
            Icmpv6Type::DestinationUnreachable(_) | Icmpv6Type::TimeExceeded(_) => quoted(
                i.type_u8(),
                i.code_u8(),
                i.payload(),
                key,
                ttl,
                i.type_u8() == 1 && [1, 3, 4].contains(&i.code_u8()),
            ),
            _ => Classified::Unrelated,
        },
        _ => Classified::Unrelated,
    }
}

fn transport(proto: u8, b: &[u8]) -> Option<TransportSlice<'_>> {
    match proto {
        6 => etherparse::TcpSlice::from_slice(b)
            .ok()
            .map(TransportSlice::Tcp),
        17 => etherparse::UdpSlice::from_slice_lax(b)
            .ok()
            .map(TransportSlice::Udp),
        1 => etherparse::Icmpv4Slice::from_slice(b)
            .ok()
            .map(TransportSlice::Icmpv4),
        58 => etherparse::Icmpv6Slice::from_slice(b)
            .ok()
            .map(TransportSlice::Icmpv6),
        _ => None,
    }
}

/// An echo request carrying our cookie is one of our own probes.
fn own_echo<K: MarkSource>(e: IcmpEchoHeader, src: IpAddr, dst: IpAddr, key: &K) -> Classified {
    let Some(m) = key.marks_for(src, dst, 0, ProbeKind::Icmp) else {
        return Classified::Unrelated;
    };
    if e.id == m.icmp_id && e.seq == m.icmp_seq {
        Classified::OwnProbe
    } else {
        Classified::Unrelated
    }
}

fn echo<K: MarkSource>(
    e: IcmpEchoHeader,
    src: IpAddr,
    dst: IpAddr,
    key: &K,
    ttl: u8,
) -> Classified {
    let Some(m) = key.marks_for(dst, src, 0, ProbeKind::Icmp) else {
        return Classified::Unrelated;
    };
    if e.id != m.icmp_id {
        return Classified::Unrelated;
    }
    if e.seq != m.icmp_seq {
        return Classified::Invalid("icmp echo sequence does not match the probe");
    }
    Classified::Reply(Reply {
        target: src,
        port: None,
        kind: ProbeKind::Icmp,
        verdict: Verdict::Up,
        ttl,
        question: 0,
    })
}

/// An ICMP error: find our probe in the quoted packet (its IP header and at
/// least the first 8 bytes of its transport header).
fn quoted<K: MarkSource>(
    icmp_type: u8,
    icmp_code: u8,
    inner: &[u8],
    key: &K,
    ttl: u8,
    filtered: bool,
) -> Classified {
    let Ok((ip, _)) = LaxIpSlice::from_slice(inner) else {
        return Classified::Unrelated;
    };
    let (us, target) = match &ip {
        LaxIpSlice::Ipv4(v) => (
            IpAddr::V4(v.header().source_addr()),
            IpAddr::V4(v.header().destination_addr()),
        ),
        LaxIpSlice::Ipv6(v) => (
            IpAddr::V6(v.header().source_addr()),
            IpAddr::V6(v.header().destination_addr()),
        ),
    };
    let p = ip.payload();
    let b = p.payload;
    if b.len() < 8 {
        return Classified::Unrelated;
    }
    let sport = u16::from_be_bytes([b[0], b[1]]);
    let dport = u16::from_be_bytes([b[2], b[3]]);
    let mut question = 0;
    let (kind, port, ours) = match p.ip_number.0 {
        6 => {
            let Some(m) = key.marks_for(us, target, dport, ProbeKind::Syn) else {
                return Classified::Unrelated;
            };
            (
                ProbeKind::Syn,
                Some(dport),
                sport == m.source_port && u32::from_be_bytes([b[4], b[5], b[6], b[7]]) == m.tcp_isn,
            )
        }
        17 => {
            let Some(m) = key.marks_for(us, target, dport, ProbeKind::Dns) else {
                return Classified::Unrelated;
            };
            // The DNS id follows the 8-byte UDP header when the quote is long enough.
            if let Some(id) = b.get(8..10) {
                match m.dns_question_of(u16::from_be_bytes([id[0], id[1]])) {
                    Some(q) => question = q,
                    None => {
                        return Classified::Invalid("the quoted packet is not one of our probes");
                    }
                }
            }
            (ProbeKind::Dns, Some(dport), sport == m.source_port)
        }
        1 | 58 => {
            let Some(m) = key.marks_for(us, target, 0, ProbeKind::Icmp) else {
                return Classified::Unrelated;
            };
            let (id, seq) = (
                u16::from_be_bytes([b[4], b[5]]),
                u16::from_be_bytes([b[6], b[7]]),
            );
            (ProbeKind::Icmp, None, id == m.icmp_id && seq == m.icmp_seq)
        }
        _ => return Classified::Unrelated,
    };
    if !ours {
        return Classified::Invalid("the quoted packet is not one of our probes");
    }
    let verdict = if filtered && kind == ProbeKind::Syn {
        Verdict::Filtered {
            icmp_type,
            icmp_code,
        }
    } else {
        Verdict::Unreachable {
            icmp_type,
            icmp_code,
        }
    };
    Classified::Reply(Reply {
        target,
        port,
        kind,
        verdict,
        ttl,
        question,
    })
}
