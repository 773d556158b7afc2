//! One frame as the analyzer reads it, in lines a person reads: a line per
//! layer (Ethernet, IP with its header fields, a fragment, TCP, UDP with
//! DNS on its port, ICMP), where the dissection stopped, then a hex dump.
//! `sonde craft --dump` prints it; it is the analyzer's own dissection, so
//! what craft shows is what `analyze` will make of the packet.

use crate::analyze::dissect::{Transport, dissect};
use crate::pcap::LinkType;
use crate::wire::ethernet::{EthernetFrame, mac_text};
use crate::wire::ip::IpPacket;

/// The layers of `bytes` (a frame of `link`), a line each.
///
/// ```
/// use sonde::analyze::describe::describe;
/// use sonde::pcap::LinkType;
/// // An IPv4 header and a UDP header to port 9, no payload.
/// let mut p = vec![0x45, 0, 0, 28, 0, 1, 0, 0, 64, 17, 0, 0, 198, 18, 0, 2, 198, 18, 0, 10];
/// p.extend_from_slice(&[0x30, 0x39, 0, 9, 0, 8, 0, 0]);
/// let lines = describe(LinkType::Raw, &p);
/// assert!(lines[0].starts_with("ip     198.18.0.2 > 198.18.0.10 proto 17 len 28 ttl 64 id 1"));
/// assert_eq!(lines[1], "udp    12345 > 9 payload 0 bytes");
/// ```
pub fn describe(link: LinkType, bytes: &[u8]) -> Vec<String> {
    let mut lines = Vec::new();
    let d = dissect(link, bytes);
    if let (LinkType::Ethernet, Ok(e)) = (link, EthernetFrame::new_checked(bytes)) {
        lines.push(format!(
            "ether  {} > {} type 0x{:04x}",
            mac_text(&e.src_addr()),
            mac_text(&e.dst_addr()),
            d.ether_type
        ));
    }
    if let Some(ip) = d.ip {
        lines.push(match IpPacket::parse(d.net) {
            Ok(IpPacket::V6(v)) => format!(
                "ipv6   {} > {} next {} payload {} hop-limit {}",
                ip.src,
                ip.dst,
                ip.proto,
                ip.payload_len,
                v.hop_limit()
            ),
            Ok(IpPacket::V4(v)) => format!(
                "ip     {} > {} proto {} len {} ttl {} id {} tos 0x{:02x} chksum 0x{:04x}",
                ip.src,
                ip.dst,
                ip.proto,
                v.total_len(),
                v.ttl(),
                v.ident(),
                v.tos(),
                v.checksum()
            ),
            // The dissector read an IP header there; a view that cannot
            // is a version nibble the spec set on purpose.
            Err(_) => format!("ip     {} > {} proto {}", ip.src, ip.dst, ip.proto),
        });
        if let Some(f) = ip.fragment {
            lines.push(format!(
                "       fragment id {} offset {} bytes{}",
                f.id,
                f.offset,
                if f.more { ", more fragments" } else { "" }
            ));
        }
    }
    match d.transport {
        Some(Transport::Tcp {
            sport,
            dport,
            flags,
            payload,
            valid,
        }) => {
            let letters = crate::wire::tcp::flag_letters(flags);
            lines.push(format!(
                "tcp    {sport} > {dport} flags {} payload {} bytes{}",
                if letters.is_empty() { "none" } else { &letters },
                payload.len(),
                if valid { "" } else { " (header damaged)" }
            ));
        }
        Some(Transport::Udp {
            sport,
            dport,
            payload,
        }) => {
            lines.push(format!(
                "udp    {sport} > {dport} payload {} bytes",
                payload.len()
            ));
            // DNS on its port, as the analyzer decodes it.
            if (sport == 53 || dport == 53)
                && let Some(m) = crate::analyze::dns::parse(payload, false)
            {
                lines.push(format!(
                    "dns    id {} {} rcode {} answers {} question {} {}",
                    m.id,
                    if m.response { "response" } else { "query" },
                    crate::analyze::dns::rcode_name(m.rcode),
                    m.answers,
                    crate::text::visible(&m.qname),
                    crate::analyze::dns::qtype_name(m.qtype)
                ));
            }
        }
        Some(Transport::Icmp { kind, code }) => {
            lines.push(format!("icmp   type {kind} code {code}"));
        }
        Some(Transport::Icmpv6 { kind, code }) => {
            lines.push(format!("icmpv6 type {kind} code {code}"));
        }
        None => {}
    }
    if let Some(s) = d.stopped {
        lines.push(format!("       (dissection stopped: {s})"));
    }
    lines
}

/// `bytes` as hexdump -C shows them: offset, 16 bytes in hex, the
/// printable ones as text.
///
/// ```
/// let lines = sonde::analyze::describe::hex_dump(b"GET / HTTP/1.1\r\nHost");
/// assert_eq!(lines.len(), 2);
/// assert!(lines[0].starts_with("0000  47 45 54 20"));
/// assert!(lines[0].ends_with("GET / HTTP/1.1.."));
/// assert!(lines[1].starts_with("0010  48 6f 73 74"));
/// ```
pub fn hex_dump(bytes: &[u8]) -> Vec<String> {
    bytes
        .chunks(16)
        .enumerate()
        .map(|(i, chunk)| {
            let hex: Vec<String> = chunk.iter().map(|b| format!("{b:02x}")).collect();
            let text: String = chunk
                .iter()
                .map(|&b| {
                    if (0x20..0x7f).contains(&b) {
                        b as char
                    } else {
                        '.'
                    }
                })
                .collect();
            format!("{:04x}  {:<47}  {text}", i * 16, hex.join(" "))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every layer of an Ethernet frame carrying a TCP segment without
    /// flags and with a damaged header, and where the dissection stopped.
    #[test]
    fn a_frame_is_described_layer_by_layer() {
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
        f.extend_from_slice(&[
            0x45, 0, 0, 40, 0x12, 0x34, 0x20, 0, 64, 6, 0, 0, 198, 18, 0, 2, 198, 18, 0, 10,
        ]);
        // TCP: ports 1000 > 80, data offset 5, no flags.
        f.extend_from_slice(&[3, 0xe8, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0, 0xff, 0xff]);
        f.extend_from_slice(&[0, 0, 0, 0]);
        let lines = describe(LinkType::Ethernet, &f);
        assert_eq!(
            lines[0],
            "ether  02:00:00:00:00:02 > 02:00:00:00:00:01 type 0x0800"
        );
        assert!(
            lines[1].starts_with("ip     198.18.0.2 > 198.18.0.10 proto 6 len 40 ttl 64 id 4660"),
            "{lines:?}"
        );
        assert!(
            lines[2].contains("fragment id 4660 offset 0 bytes, more fragments"),
            "{lines:?}"
        );
        assert!(
            lines
                .iter()
                .all(|l| !l.starts_with("tcp ") || l.contains("flags none")),
            "{lines:?}"
        );
        // A cut header says where the dissection stopped.
        let cut = describe(LinkType::Ethernet, &f[..20]);
        assert!(
            cut.last().unwrap().contains("dissection stopped"),
            "{cut:?}"
        );
    }
}
