//! IP fragmentation of a crafted packet: even pieces (`--fragment SIZE`)
//! or an explicit list of byte ranges of the IP payload (`--fragments
//! OFF:LEN,...`), which may overlap or be tiny, for authorized IDS tests.

use crate::wire::ip::{IpPacket, Ipv4Packet, Ipv6Packet};

/// One fragment: a byte range of the IP payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Piece {
    pub offset: usize,
    pub len: usize,
}

/// How to fragment a crafted packet: `--fragment SIZE` or `--fragments
/// OFF:LEN,...`.
#[derive(Clone, Copy, Debug)]
pub enum Fragmenting<'a> {
    Even(usize),
    List(&'a str),
}

/// Why a crafted packet cannot be fragmented as asked.
#[derive(Debug, PartialEq)]
pub enum FragmentError {
    /// The spec does not start with an IP layer.
    NotIp,
    /// The pieces or the packet do not allow it (the message says why).
    Pieces(String),
}

impl std::fmt::Display for FragmentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FragmentError::NotIp => f.write_str("--fragment needs an IP packet"),
            FragmentError::Pieces(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for FragmentError {}

/// The crafted packet (`bytes`, an IP packet after `link_header` bytes of
/// link header) split as asked: each fragment keeps the link header. The
/// IPv6 fragment id comes from the IPv4 ident a spec may set, else 0, so
/// the same spec gives the same fragments.
pub fn fragment_crafted(
    bytes: &[u8],
    link_header: usize,
    how: Fragmenting,
) -> Result<Vec<Vec<u8>>, FragmentError> {
    let ip = bytes.get(link_header..).unwrap_or(&[]);
    let parsed = IpPacket::parse(ip).map_err(|_| FragmentError::NotIp)?;
    let payload_len = parsed.after_header().len();
    let ident = match parsed {
        IpPacket::V4(v) => v.ident(),
        IpPacket::V6(_) => 0,
    };
    let pieces = match how {
        Fragmenting::Even(size) => even(payload_len, size),
        Fragmenting::List(list) => self::list(list, payload_len),
    }
    .map_err(FragmentError::Pieces)?;
    let id = u32::from(ident) ^ 0x5d00_0000;
    let frags = split(ip, &pieces, id).map_err(FragmentError::Pieces)?;
    Ok(frags
        .into_iter()
        .map(|f| {
            let mut b = bytes[..link_header].to_vec();
            b.extend_from_slice(&f);
            b
        })
        .collect())
}

/// Pieces of `size` bytes (a multiple of 8) covering `payload_len` bytes.
pub fn even(payload_len: usize, size: usize) -> Result<Vec<Piece>, String> {
    if size == 0 || !size.is_multiple_of(8) {
        return Err(format!(
            "--fragment {size}: the size must be a positive multiple of 8 (fragment offsets count 8-byte units)"
        ));
    }
    Ok((0..payload_len.max(1))
        .step_by(size)
        .map(|offset| Piece {
            offset,
            len: size.min(payload_len - offset.min(payload_len)),
        })
        .collect())
}

/// `OFF:LEN,OFF:LEN,...` in bytes of the IP payload.
pub fn list(spec: &str, payload_len: usize) -> Result<Vec<Piece>, String> {
    let mut out = Vec::new();
    for part in spec.split(',').map(str::trim) {
        let (o, l) = part
            .split_once(':')
            .ok_or_else(|| format!("--fragments {part:?}: write OFFSET:LENGTH, e.g. 0:8,8:24"))?;
        let (offset, len): (usize, usize) = match (o.parse(), l.parse()) {
            (Ok(o), Ok(l)) => (o, l),
            _ => {
                return Err(format!(
                    "--fragments {part:?}: offset and length are numbers of bytes"
                ));
            }
        };
        if !offset.is_multiple_of(8) {
            return Err(format!(
                "--fragments {part:?}: the offset must be a multiple of 8"
            ));
        }
        if offset > 65528 {
            return Err(format!(
                "--fragments {part:?}: the offset is past 65,528, the largest IPv4 can say"
            ));
        }
        if offset + len > payload_len {
            return Err(format!(
                "--fragments {part:?}: the range ends at byte {}, past the {payload_len}-byte IP payload",
                offset + len
            ));
        }
        out.push(Piece { offset, len });
    }
    Ok(out)
}

/// Split an IP packet (from its IP header on) into fragments, each with
/// lengths, flags and checksums set. `id` is the IPv6 fragment id (IPv4
/// keeps its header's).
pub fn split(packet: &[u8], pieces: &[Piece], id: u32) -> Result<Vec<Vec<u8>>, String> {
    match IpPacket::parse(packet) {
        Ok(IpPacket::V4(v)) => {
            let hlen = v.claimed_header_len();
            if hlen < Ipv4Packet::<&[u8]>::HEADER_LEN || packet.len() < hlen {
                return Err("the IPv4 header is malformed; fragment a well-formed packet".into());
            }
            if v.dont_frag() {
                return Err(
                    "the packet has DF set; fragmenting it contradicts the flag (drop flags=DF)"
                        .into(),
                );
            }
            let payload = &packet[hlen..];
            Ok(pieces
                .iter()
                .map(|p| {
                    let mut f = packet[..hlen].to_vec();
                    f.extend_from_slice(&payload[p.offset..p.offset + p.len]);
                    let total = f.len() as u16;
                    let more = p.offset + p.len < payload.len();
                    let field = (p.offset / 8) as u16
                        | if more { 0x2000 } else { 0 }
                        | if v.reserved_flag() { 0x8000 } else { 0 };
                    let mut h = Ipv4Packet::new_unchecked(&mut f[..]);
                    h.set_total_len(total);
                    h.set_flags_and_offset(field);
                    h.fill_checksum();
                    f
                })
                .collect())
        }
        Ok(IpPacket::V6(v)) => {
            let next = v.next_header();
            let payload = &packet[Ipv6Packet::<&[u8]>::HEADER_LEN..];
            Ok(pieces
                .iter()
                .map(|p| {
                    let mut f = packet[..Ipv6Packet::<&[u8]>::HEADER_LEN].to_vec();
                    let more = p.offset + p.len < payload.len();
                    let field = (p.offset as u16) & 0xfff8 | u16::from(more);
                    f.extend_from_slice(&[next, 0]);
                    f.extend_from_slice(&field.to_be_bytes());
                    f.extend_from_slice(&id.to_be_bytes());
                    f.extend_from_slice(&payload[p.offset..p.offset + p.len]);
                    let plen = (f.len() - Ipv6Packet::<&[u8]>::HEADER_LEN) as u16;
                    let mut h = Ipv6Packet::new_unchecked(&mut f[..]);
                    h.set_next_header(44); // a Fragment header follows
                    h.set_payload_len(plen);
                    f
                })
                .collect())
        }
        Err(_) if packet.first().map(|b| b >> 4) == Some(6) => {
            Err("the IPv6 header is cut short".into())
        }
        Err(_) if packet.first().map(|b| b >> 4) == Some(4) => {
            Err("the IPv4 header is malformed; fragment a well-formed packet".into())
        }
        Err(_) => Err("only IP packets can be fragmented".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn even_pieces_cover_the_payload() {
        let p = even(20, 8).unwrap();
        assert_eq!(
            p,
            vec![
                Piece { offset: 0, len: 8 },
                Piece { offset: 8, len: 8 },
                Piece { offset: 16, len: 4 }
            ]
        );
        assert!(even(20, 6).is_err());
        assert!(
            list("0:8,4:8", 20).is_err(),
            "offset 4 is not a multiple of 8"
        );
        assert_eq!(
            list("0:16,8:12", 20).unwrap().len(),
            2,
            "overlaps are allowed"
        );
        assert!(list("0:30", 20).is_err());
    }

    #[test]
    fn ipv4_fragments_carry_offsets_and_mf() {
        let mut pkt = vec![
            0x45, 0, 0, 40, 0, 1, 0, 0, 64, 17, 0, 0, 198, 18, 0, 2, 198, 18, 1, 5,
        ];
        pkt.extend(0..20u8);
        let f = split(&pkt, &even(20, 8).unwrap(), 0).unwrap();
        assert_eq!(f.len(), 3);
        assert_eq!(&f[0][6..8], &[0x20, 0]);
        assert_eq!(&f[1][6..8], &[0x20, 1]);
        assert_eq!(&f[2][6..8], &[0, 2]);
        assert_eq!(&f[2][2..4], &[0, 24]);
        for frag in &f {
            let h = etherparse::Ipv4HeaderSlice::from_slice(frag).unwrap();
            assert_eq!(h.header_checksum(), h.to_header().calc_header_checksum());
        }
    }
}
