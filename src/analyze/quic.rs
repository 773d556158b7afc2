//! QUIC v1 Initial packets (RFC 9000, RFC 9001): the client's first flight
//! carries its TLS ClientHello in CRYPTO frames, encrypted with keys that
//! anyone can derive from the packet's Destination Connection ID (RFC 9001,
//! section 5.2). Decrypting them gives the server name, ALPN and a JA4
//! (with `q` for QUIC) as for TLS over TCP.
//!
//! Pure: bytes in, a hello out. Only a ClientHello whose CRYPTO data from
//! offset 0 fits in one Initial packet is read (a hello split over two
//! packets, as post-quantum key shares make it, is not gathered).

use aes::cipher::{BlockCipherEncrypt, KeyInit};
use aes_gcm::Aes128Gcm;
use aes_gcm::aead::{Aead, Payload};
use hkdf::Hkdf;
use sha2::Sha256;

use super::tls::{self, ClientHello};

/// RFC 9001, section 5.2: the salt of QUIC version 1's Initial secrets.
const INITIAL_SALT_V1: [u8; 20] = [
    0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17, 0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad,
    0xcc, 0xbb, 0x7f, 0x0a,
];

/// A client's Initial packet keys (RFC 9001, section 5).
#[derive(Debug, PartialEq, Eq)]
pub struct InitialKeys {
    pub key: [u8; 16],
    pub iv: [u8; 12],
    pub hp: [u8; 16],
}

/// TLS 1.3's HKDF-Expand-Label with an empty context (RFC 8446, 7.1).
fn expand_label(secret: &Hkdf<Sha256>, label: &str, out: &mut [u8]) {
    let full = format!("tls13 {label}");
    let mut info = Vec::with_capacity(4 + full.len());
    info.extend_from_slice(&(out.len() as u16).to_be_bytes());
    info.push(full.len() as u8);
    info.extend_from_slice(full.as_bytes());
    info.push(0);
    secret
        .expand(&info, out)
        .expect("outputs of 12 to 32 bytes are within HKDF-SHA256's limit");
}

/// The client's Initial keys for a Destination Connection ID.
pub fn client_initial_keys(dcid: &[u8]) -> InitialKeys {
    let (initial, _) = Hkdf::<Sha256>::extract(Some(&INITIAL_SALT_V1), dcid);
    let initial = Hkdf::<Sha256>::from_prk(&initial).expect("a SHA-256 sized PRK");
    let mut client = [0u8; 32];
    expand_label(&initial, "client in", &mut client);
    let client = Hkdf::<Sha256>::from_prk(&client).expect("a SHA-256 sized PRK");
    let mut k = InitialKeys {
        key: [0; 16],
        iv: [0; 12],
        hp: [0; 16],
    };
    expand_label(&client, "quic key", &mut k.key);
    expand_label(&client, "quic iv", &mut k.iv);
    expand_label(&client, "quic hp", &mut k.hp);
    k
}

/// A variable-length integer (RFC 9000, 16) at `*at`.
fn varint(b: &[u8], at: &mut usize) -> Option<u64> {
    let first = *b.get(*at)?;
    let len = 1usize << (first >> 6);
    let bytes = b.get(*at..*at + len)?;
    let mut v = u64::from(first & 0x3f);
    for &x in &bytes[1..] {
        v = (v << 8) | u64::from(x);
    }
    *at += len;
    Some(v)
}

/// Whether a UDP payload may be a QUIC v1 Initial packet (a cheap test
/// before [`client_hello`]).
pub fn may_be_initial(p: &[u8]) -> bool {
    p.len() > 20 && p[0] & 0xf0 == 0xc0 && p[1..5] == [0, 0, 0, 1]
}

/// The plaintext of a client's QUIC v1 Initial packet at the start of
/// `p` (a UDP payload), if it is one and decrypts.
pub fn decrypt_initial(p: &[u8]) -> Option<Vec<u8>> {
    // Long header, fixed bit, type Initial (0), version 1.
    if p.first()? & 0xf0 != 0xc0 || p.get(1..5)? != [0, 0, 0, 1] {
        return None;
    }
    let mut at = 5;
    let dcid_len = usize::from(*p.get(at)?);
    if dcid_len > 20 {
        return None;
    }
    let dcid = p.get(at + 1..at + 1 + dcid_len)?;
    at += 1 + dcid_len;
    let scid_len = usize::from(*p.get(at)?);
    if scid_len > 20 {
        return None;
    }
    at += 1 + scid_len;
    let token_len = usize::try_from(varint(p, &mut at)?).ok()?;
    at = at.checked_add(token_len)?;
    let length = usize::try_from(varint(p, &mut at)?).ok()?;
    let pn_at = at;
    let end = pn_at.checked_add(length)?;
    // Room for a 4-byte packet number sample and the 16-byte tag.
    if end > p.len() || length < 20 {
        return None;
    }
    let keys = client_initial_keys(dcid);
    // Header protection (RFC 9001, 5.4): AES-ECB of the sample.
    let mut mask = aes::Block::try_from(p.get(pn_at + 4..pn_at + 20)?).ok()?;
    aes::Aes128::new(&keys.hp.into()).encrypt_block(&mut mask);
    let first = p[0] ^ (mask[0] & 0x0f);
    let pn_len = usize::from(first & 0x03) + 1;
    let mut header = p[..pn_at + pn_len].to_vec();
    header[0] = first;
    let mut nonce = keys.iv;
    for i in 0..pn_len {
        header[pn_at + i] ^= mask[1 + i];
        nonce[12 - pn_len + i] ^= header[pn_at + i];
    }
    let cipher = Aes128Gcm::new(&keys.key.into());
    cipher
        .decrypt(
            &nonce.into(),
            Payload {
                msg: &p[pn_at + pn_len..end],
                aad: &header,
            },
        )
        .ok()
}

/// The CRYPTO data from offset 0 in an Initial's frames, as far as it
/// runs without a hole.
fn crypto_stream(frames: &[u8]) -> Option<Vec<u8>> {
    let mut pieces: Vec<(u64, &[u8])> = Vec::new();
    let mut at = 0;
    while at < frames.len() {
        match varint(frames, &mut at)? {
            0x00 | 0x01 => {} // PADDING, PING
            t @ (0x02 | 0x03) => {
                // ACK: largest, delay, range count, first range, ranges.
                varint(frames, &mut at)?;
                varint(frames, &mut at)?;
                let ranges = varint(frames, &mut at)?;
                varint(frames, &mut at)?;
                for _ in 0..ranges.min(1024) {
                    varint(frames, &mut at)?;
                    varint(frames, &mut at)?;
                }
                if t == 0x03 {
                    for _ in 0..3 {
                        varint(frames, &mut at)?;
                    }
                }
            }
            0x06 => {
                let offset = varint(frames, &mut at)?;
                let len = usize::try_from(varint(frames, &mut at)?).ok()?;
                let data = frames.get(at..at.checked_add(len)?)?;
                at += len;
                pieces.push((offset, data));
            }
            // CONNECTION_CLOSE (transport): error, frame type, reason.
            0x1c => {
                varint(frames, &mut at)?;
                varint(frames, &mut at)?;
                let len = usize::try_from(varint(frames, &mut at)?).ok()?;
                at = at.checked_add(len)?;
            }
            _ => break,
        }
    }
    pieces.sort_by_key(|p| p.0);
    let mut out: Vec<u8> = Vec::new();
    for (offset, data) in pieces {
        let offset = usize::try_from(offset).ok()?;
        if offset > out.len() {
            break;
        }
        let new = data.get(out.len() - offset..).unwrap_or(&[]);
        out.extend_from_slice(new);
    }
    (!out.is_empty()).then_some(out)
}

/// The ClientHello a QUIC v1 Initial packet (a UDP payload) carries, its
/// JA4 marked `q` (QUIC).
pub fn client_hello(p: &[u8]) -> Option<ClientHello> {
    let plain = decrypt_initial(p)?;
    let crypto = crypto_stream(&plain)?;
    // A handshake message: type 1 (ClientHello), a 3-byte length.
    let &[1, a, b, c, ..] = crypto.as_slice() else {
        return None;
    };
    let len = usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c);
    let msg = crypto.get(..4 + len)?;
    // As a TLS record, for the TLS parser.
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend_from_slice(&u16::try_from(msg.len()).ok()?.to_be_bytes());
    record.extend_from_slice(msg);
    let mut hello = tls::client_hello(&record)?;
    hello.ja4.replace_range(..1, "q");
    Some(hello)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 9001, appendix A.1: the client's keys for DCID 0x8394c8f03e515708.
    #[test]
    fn initial_keys_as_rfc_9001_derives_them() {
        let k = client_initial_keys(&[0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08]);
        assert_eq!(hex::encode(k.key), "1f369613dd76d5467730efcbe3b1a22d");
        assert_eq!(hex::encode(k.iv), "fa044b2f42a3fd3b46fb255c");
        assert_eq!(hex::encode(k.hp), "9f50449e04a0e810283a1e9933adedd2");
    }

    #[test]
    fn varints_of_every_length() {
        for (bytes, v) in [
            (&[0x25][..], 37u64),
            (&[0x7b, 0xbd], 15293),
            (&[0x9d, 0x7f, 0x3e, 0x7d], 494878333),
            (
                &[0xc2, 0x19, 0x7c, 0x5e, 0xff, 0x14, 0xe8, 0x8c],
                151288809941952652,
            ),
        ] {
            let mut at = 0;
            assert_eq!(varint(bytes, &mut at), Some(v));
            assert_eq!(at, bytes.len());
        }
        assert_eq!(varint(&[0x40], &mut 0), None);
    }

    #[test]
    fn crypto_frames_are_joined_by_offset_and_short_ones_refused() {
        // CRYPTO at offset 3 ("def"), PADDING, CRYPTO at 0 ("abc"), PING
        let frames = [6, 3, 3, b'd', b'e', b'f', 0, 6, 0, 3, b'a', b'b', b'c', 1];
        assert_eq!(crypto_stream(&frames).unwrap(), b"abcdef");
        // a hole: only what runs from offset 0
        let frames = [6, 0, 2, b'a', b'b', 6, 5, 1, b'z'];
        assert_eq!(crypto_stream(&frames).unwrap(), b"ab");
        // a frame cut short
        assert_eq!(crypto_stream(&[6, 0, 9, b'a']), None);
    }

    #[test]
    fn not_quic_and_cut_packets_are_refused() {
        assert_eq!(decrypt_initial(b""), None);
        assert_eq!(decrypt_initial(&[0xc3, 0, 0, 0, 1, 8]), None);
        let mut p = vec![
            0xc3, 0, 0, 0, 1, 8, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0x44, 0xff,
        ];
        p.extend(std::iter::repeat_n(0u8, 40));
        // claims 0x4ff bytes, has 40
        assert_eq!(decrypt_initial(&p), None);
        // an honest length, but the tag does not authenticate
        p[16] = 0x40;
        p[17] = 40;
        assert_eq!(decrypt_initial(&p), None);
    }
}
