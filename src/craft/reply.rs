//! Which captured packets answer a crafted packet, and a one-line summary
//! of each in hping3's spirit. Pure: bytes in, a match or nothing out.

use std::net::IpAddr;

use etherparse::{LaxIpSlice, LaxNetSlice, LaxSlicedPacket, TransportSlice};

use super::build::{Crafted, TransportKind};
use crate::wire::icmp::IcmpPacket;
use crate::wire::tcp::TcpPacket;

/// A reply to a crafted packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub from: IpAddr,
    /// hping3-like fields: `flags=SA seq=... win=...`, `icmp type=0 code=0`, ...
    pub summary: String,
    pub ttl: u8,
    pub len: usize,
}

/// Does `reply` (an IP packet) answer `sent`? ICMP errors quoting `sent` do.
pub fn answers(sent: &Crafted, reply: &[u8]) -> Option<Answer> {
    let (src, dst) = (sent.src?, sent.dst?);
    let p = LaxSlicedPacket::from_ip(reply).ok()?;
    let (from, to, ttl, extra) = match &p.net {
        Some(LaxNetSlice::Ipv4(v)) => {
            let h = v.header();
            (
                IpAddr::V4(h.source_addr()),
                IpAddr::V4(h.destination_addr()),
                h.ttl(),
                format!(
                    "id={}{}",
                    h.identification(),
                    if h.dont_fragment() { " DF" } else { "" }
                ),
            )
        }
        Some(LaxNetSlice::Ipv6(v)) => (
            IpAddr::V6(v.header().source_addr()),
            IpAddr::V6(v.header().destination_addr()),
            v.header().hop_limit(),
            String::new(),
        ),
        _ => return None,
    };
    if to != src {
        return None;
    }
    let answer = |summary: String| {
        Some(Answer {
            from,
            summary: if extra.is_empty() {
                summary
            } else {
                format!("{summary} {extra}")
            },
            ttl,
            len: reply.len(),
        })
    };
    match (&p.transport, sent.transport?) {
        (Some(TransportSlice::Tcp(t)), TransportKind::Tcp { sport, dport })
            if from == dst && t.source_port() == dport && t.destination_port() == sport =>
        {
            answer(format!(
                "tcp {}>{} flags={} seq={} ack={} win={}",
                t.source_port(),
                t.destination_port(),
                flag_letters(TcpPacket::new_checked(t.slice()).map_or(0, |v| v.flags() as u8)),
                t.sequence_number(),
                t.acknowledgment_number(),
                t.window_size()
            ))
        }
        (Some(TransportSlice::Udp(u)), TransportKind::Udp { sport, dport })
            if from == dst && u.source_port() == dport && u.destination_port() == sport =>
        {
            answer(format!(
                "udp {}>{} len={}",
                u.source_port(),
                u.destination_port(),
                u.payload().len()
            ))
        }
        (Some(TransportSlice::Icmpv4(i)), kind) => {
            let (t, c) = (i.type_u8(), i.code_u8());
            let b = i.slice();
            if t == 0 {
                let TransportKind::Icmp { id, seq } = kind else {
                    return None;
                };
                let echo = IcmpPacket::new_checked(b).ok()?;
                let (rid, rseq) = (echo.echo_ident(), echo.echo_seq_no());
                return (from == dst && rid == id && rseq == seq)
                    .then(|| format!("icmp echo-reply id={rid} icmp_seq={rseq}"))
                    .and_then(answer);
            }
            // An error: it must quote our packet.
            quotes(i.payload(), sent)
                .then(|| format!("icmp type={t} code={c} (quoting the packet)"))
                .and_then(answer)
        }
        (Some(TransportSlice::Icmpv6(i)), kind) => {
            let (t, c) = (i.type_u8(), i.code_u8());
            let b = i.slice();
            if t == 129 {
                let TransportKind::Icmpv6 { id, seq } = kind else {
                    return None;
                };
                let echo = IcmpPacket::new_checked(b).ok()?;
                let (rid, rseq) = (echo.echo_ident(), echo.echo_seq_no());
                return (from == dst && rid == id && rseq == seq)
                    .then(|| format!("icmpv6 echo-reply id={rid} icmp_seq={rseq}"))
                    .and_then(answer);
            }
            (t < 128 && quotes(i.payload(), sent))
                .then(|| format!("icmpv6 type={t} code={c} (quoting the packet)"))
                .and_then(answer)
        }
        _ => None,
    }
}

/// Does an ICMP error's quote hold the start of `sent`'s IP packet?
fn quotes(quote: &[u8], sent: &Crafted) -> bool {
    let ip = if sent.ethernet {
        crate::wire::ethernet::payload_of(&sent.bytes)
    } else {
        &sent.bytes[..]
    };
    let Ok((q, _)) = LaxIpSlice::from_slice(quote) else {
        return false;
    };
    let (qs, qd) = match &q {
        LaxIpSlice::Ipv4(v) => (
            IpAddr::V4(v.header().source_addr()),
            IpAddr::V4(v.header().destination_addr()),
        ),
        LaxIpSlice::Ipv6(v) => (
            IpAddr::V6(v.header().source_addr()),
            IpAddr::V6(v.header().destination_addr()),
        ),
    };
    if Some(qs) != sent.src || Some(qd) != sent.dst {
        return false;
    }
    // The first 8 bytes of the transport (ports, or ICMP id and sequence)
    // must be ours; routers may rewrite TTL and checksum, not these.
    let qt = q.payload().payload;
    let hlen = match ip.first().map(|b| b >> 4) {
        Some(4) => usize::from(ip[0] & 0x0f) * 4,
        _ => 40,
    };
    let ours = ip.get(hlen..).unwrap_or(&[]);
    let n = 8.min(qt.len()).min(ours.len());
    n >= 4 && qt[..n] == ours[..n]
}

/// tcpdump's letters, or "none" for a segment without flags.
pub fn flag_letters(f: u8) -> String {
    let s = crate::wire::tcp::flag_letters(f);
    if s.is_empty() { "none".into() } else { s }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::craft::craft;

    fn src(_: IpAddr) -> Option<IpAddr> {
        Some("198.18.0.2".parse().unwrap())
    }

    #[test]
    fn a_syn_ack_answers_a_syn_and_a_stranger_does_not() {
        let sent = craft("ip(dst=198.18.1.10)/tcp(sport=4000,dport=80)", &src).unwrap();
        let reply = craft(
            "ip(src=198.18.1.10,dst=198.18.0.2)/tcp(sport=80,dport=4000,flags=SA,ack=1)",
            &src,
        )
        .unwrap();
        let a = answers(&sent, &reply.bytes).unwrap();
        assert!(a.summary.contains("flags=SA"), "{a:?}");
        let other = craft(
            "ip(src=198.18.1.10,dst=198.18.0.2)/tcp(sport=80,dport=4001,flags=SA)",
            &src,
        )
        .unwrap();
        assert_eq!(answers(&sent, &other.bytes), None);
        let wrong_host = craft(
            "ip(src=198.18.1.11,dst=198.18.0.2)/tcp(sport=80,dport=4000,flags=SA)",
            &src,
        )
        .unwrap();
        assert_eq!(answers(&sent, &wrong_host.bytes), None);
    }

    #[test]
    fn an_icmp_error_quoting_the_packet_answers_it() {
        let sent = craft("ip(dst=198.18.1.10)/udp(sport=4000,dport=9)", &src).unwrap();
        let error = craft(
            "ip(src=198.18.0.1,dst=198.18.0.2)/icmp(type=3,code=3)/ip(src=198.18.0.2,dst=198.18.1.10,proto=17)/udp(sport=4000,dport=9)",
            &src,
        )
        .unwrap();
        let a = answers(&sent, &error.bytes).unwrap();
        assert!(a.summary.contains("type=3 code=3"), "{a:?}");
        let echo = craft("ip(dst=198.18.1.10)/icmp(id=7,seq=1)", &src).unwrap();
        let reply = craft(
            "ip(src=198.18.1.10,dst=198.18.0.2)/icmp(type=0,id=7,seq=1)",
            &src,
        )
        .unwrap();
        assert!(answers(&echo, &reply.bytes).is_some());
        let late = craft(
            "ip(src=198.18.1.10,dst=198.18.0.2)/icmp(type=0,id=7,seq=2)",
            &src,
        )
        .unwrap();
        assert!(answers(&echo, &late.bytes).is_none());
    }
}
