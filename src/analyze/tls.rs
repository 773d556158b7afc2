//! TLS handshakes: from each ClientHello the server name (SNI), the first
//! ALPN value, the highest version offered and the JA4 client fingerprint
//! (FoxIO's JA4, TLS over TCP); from each ServerHello the version and ALPN
//! chosen. A hello spread over several segments (post-quantum key shares
//! make Chrome's 1.7 KB) is gathered per direction, bounded.
//!
//! ```
//! use sonde::analyze::tls::ja4_hash;
//! // JA4's documented cipher list: its "b" part.
//! let ciphers = [0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9,
//!                0xcca8, 0xc013, 0xc014, 0x009c, 0x009d, 0x002f, 0x0035];
//! assert_eq!(ja4_hash(&ciphers, None, true), "8daaf6152771");
//! ```

use std::collections::BTreeMap;
use std::net::IpAddr;

use hashbrown::{HashMap, HashSet};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// GREASE values (RFC 8701): 0x?a?a with both bytes equal.
fn is_grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && (v >> 8) == (v & 0xff)
}

/// A bounds-checked reader over a hello's bytes.
struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn u8(&mut self) -> Option<u8> {
        let v = *self.b.get(self.at)?;
        self.at += 1;
        Some(v)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from(self.u8()?) << 8 | u16::from(self.u8()?))
    }
    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let v = self.b.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(v)
    }
    fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()?;
        self.bytes(n.into())
    }
    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.bytes(n.into())
    }
}

fn u16s(b: &[u8]) -> impl Iterator<Item = u16> + '_ {
    b.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]]))
}

/// What a ClientHello says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientHello {
    pub sni: Option<String>,
    /// The first ALPN value, as text (bytes that are not UTF-8 replaced).
    pub alpn: Option<String>,
    /// The highest version offered (supported_versions, else the hello's).
    pub version: u16,
    pub ja4: String,
}

/// What a ServerHello says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerHello {
    pub version: u16,
    pub alpn: Option<String>,
    /// FoxIO's JA4S server fingerprint: `t`, the version, the number of
    /// extensions and the chosen ALPN's first and last characters; the
    /// chosen cipher suite; the SHA-256 (12 hex digits) of the extension
    /// types in the order sent.
    pub ja4s: String,
}

/// JA4's hashed parts: the first 12 hex digits of the SHA-256 of the
/// values as 4-digit hex, sorted, comma-separated (and, for the extension
/// part, `_` and the signature algorithms in their order); `000000000000`
/// for an empty list.
pub fn ja4_hash(values: &[u16], sigalgs: Option<&[u16]>, sort: bool) -> String {
    if values.is_empty() {
        return "000000000000".into();
    }
    let mut v = values.to_vec();
    if sort {
        v.sort_unstable();
    }
    let hex = |v: &[u16]| {
        v.iter()
            .map(|x| format!("{x:04x}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut text = hex(&v);
    if let Some(s) = sigalgs.filter(|s| !s.is_empty()) {
        text.push('_');
        text.push_str(&hex(s));
    }
    hex::encode(&Sha256::digest(text.as_bytes())[..6])
}

fn version_code(v: u16) -> &'static str {
    match v {
        0x0304 => "13",
        0x0303 => "12",
        0x0302 => "11",
        0x0301 => "10",
        0x0300 => "s3",
        0x0002 => "s2",
        0xfeff => "d1",
        0xfefd => "d2",
        0xfefc => "d3",
        _ => "00",
    }
}

/// A version as people name it.
pub fn version_name(v: u16) -> String {
    match v {
        0x0304 => "TLS 1.3".into(),
        0x0303 => "TLS 1.2".into(),
        0x0302 => "TLS 1.1".into(),
        0x0301 => "TLS 1.0".into(),
        0x0300 => "SSL 3.0".into(),
        0x0002 => "SSL 2.0".into(),
        v => format!("0x{v:04x}"),
    }
}

/// JA4's two ALPN characters: first and last of the first value, or of its
/// hex when either byte is not alphanumeric; `00` without one.
fn alpn_chars(first: Option<&[u8]>) -> String {
    let Some(v) = first.filter(|v| !v.is_empty()) else {
        return "00".into();
    };
    let (a, z) = (v[0], v[v.len() - 1]);
    if a.is_ascii_alphanumeric() && z.is_ascii_alphanumeric() {
        format!("{}{}", a as char, z as char)
    } else {
        let h = hex::encode(v);
        let hb = h.as_bytes();
        format!("{}{}", hb[0] as char, hb[hb.len() - 1] as char)
    }
}

fn alpn_text(v: &[u8]) -> String {
    String::from_utf8_lossy(v).into_owned()
}

/// The handshake message body if `rec` holds a whole TLS handshake record
/// of type `hs_type` (records of one message only, as hellos are sent).
fn handshake_body(rec: &[u8], hs_type: u8) -> Option<&[u8]> {
    let mut r = Reader { b: rec, at: 0 };
    if r.u8()? != 0x16 || r.u8()? != 0x03 {
        return None;
    }
    r.u8()?;
    let len = usize::from(r.u16()?);
    let body = r.bytes(len)?;
    let mut h = Reader { b: body, at: 0 };
    if h.u8()? != hs_type {
        return None;
    }
    let n = usize::from(h.u8()?) << 16 | usize::from(h.u16()?);
    h.bytes(n)
}

/// How many bytes the record starting at `rec` needs (its header and
/// length), when it is a TLS handshake record.
pub fn record_len(rec: &[u8]) -> Option<usize> {
    if rec.len() < 5 || rec[0] != 0x16 || rec[1] != 0x03 {
        return None;
    }
    Some(5 + usize::from(u16::from_be_bytes([rec[3], rec[4]])))
}

/// Parse a whole ClientHello record.
pub fn client_hello(rec: &[u8]) -> Option<ClientHello> {
    let mut r = Reader {
        b: handshake_body(rec, 1)?,
        at: 0,
    };
    let legacy = r.u16()?;
    r.bytes(32)?;
    r.vec8()?;
    let ciphers: Vec<u16> = u16s(r.vec16()?).filter(|c| !is_grease(*c)).collect();
    r.vec8()?;
    let mut exts: Vec<u16> = Vec::new();
    let (mut sni, mut alpn, mut versions, mut sigalgs) = (None, None, Vec::new(), Vec::new());
    if let Some(all) = r.vec16() {
        let mut e = Reader { b: all, at: 0 };
        while let (Some(ty), Some(data)) = (e.u16(), e.vec16()) {
            if is_grease(ty) {
                continue;
            }
            exts.push(ty);
            let mut d = Reader { b: data, at: 0 };
            match ty {
                0 => {
                    if let Some(list) = d.vec16() {
                        let mut l = Reader { b: list, at: 0 };
                        if l.u8() == Some(0) {
                            sni = l.vec16().map(|n| String::from_utf8_lossy(n).into_owned());
                        }
                    }
                }
                16 => {
                    if let Some(list) = d.vec16() {
                        let mut l = Reader { b: list, at: 0 };
                        alpn = l.vec8();
                    }
                }
                43 => {
                    if let Some(list) = d.vec8() {
                        versions = u16s(list).filter(|v| !is_grease(*v)).collect();
                    }
                }
                13 => {
                    if let Some(list) = d.vec16() {
                        sigalgs = u16s(list).filter(|v| !is_grease(*v)).collect();
                    }
                }
                _ => {}
            }
        }
    }
    let version = versions.iter().copied().max().unwrap_or(legacy);
    let ext_hashed: Vec<u16> = exts
        .iter()
        .copied()
        .filter(|e| *e != 0 && *e != 16)
        .collect();
    let ja4 = format!(
        "t{}{}{:02}{:02}{}_{}_{}",
        version_code(version),
        if exts.contains(&0) { 'd' } else { 'i' },
        ciphers.len().min(99),
        exts.len().min(99),
        alpn_chars(alpn),
        ja4_hash(&ciphers, None, true),
        ja4_hash(&ext_hashed, Some(&sigalgs), true),
    );
    Some(ClientHello {
        sni,
        alpn: alpn.map(alpn_text),
        version,
        ja4,
    })
}

/// Parse a whole ServerHello record.
pub fn server_hello(rec: &[u8]) -> Option<ServerHello> {
    let mut r = Reader {
        b: handshake_body(rec, 2)?,
        at: 0,
    };
    let mut version = r.u16()?;
    r.bytes(32)?;
    r.vec8()?;
    let cipher = r.u16()?;
    r.u8()?;
    let mut alpn = None;
    let mut exts = Vec::new();
    if let Some(all) = r.vec16() {
        let mut e = Reader { b: all, at: 0 };
        while let (Some(ty), Some(data)) = (e.u16(), e.vec16()) {
            if !is_grease(ty) {
                exts.push(ty);
            }
            let mut d = Reader { b: data, at: 0 };
            match ty {
                43 => {
                    if let Some(v) = d.u16() {
                        version = v;
                    }
                }
                16 => {
                    if let Some(list) = d.vec16() {
                        alpn = Reader { b: list, at: 0 }.vec8();
                    }
                }
                _ => {}
            }
        }
    }
    let ja4s = format!(
        "t{}{:02}{}_{cipher:04x}_{}",
        version_code(version),
        exts.len().min(99),
        alpn_chars(alpn),
        ja4_hash(&exts, None, false),
    );
    Some(ServerHello {
        version,
        alpn: alpn.map(alpn_text),
        ja4s,
    })
}

/// One direction of a TCP connection: (source, source port, destination,
/// destination port).
type Dir = (IpAddr, u16, IpAddr, u16);

/// Hellos being gathered from several segments.
const MAX_PENDING: usize = 1_024;
/// The largest hello record gathered.
const MAX_HELLO: usize = 16 * 1024;
/// Handshakes listed in the report.
const MAX_LISTED: usize = 1_000;
/// Distinct names and fingerprints counted.
const MAX_KEYS: usize = 20_000;

#[derive(Debug, Default)]
pub struct TlsStats {
    client_hellos: u64,
    /// Of which in QUIC Initial packets.
    quic_client_hellos: u64,
    quic_seen: HashSet<Dir>,
    server_hellos: u64,
    pending: HashMap<Dir, Vec<u8>>,
    names: HashMap<String, u64>,
    ja4: HashMap<String, u64>,
    ja4s: HashMap<String, u64>,
    alpn: BTreeMap<String, u64>,
    versions: BTreeMap<u16, u64>,
    /// (client direction) → index in `handshakes`.
    listed: HashMap<Dir, usize>,
    handshakes: Vec<Handshake>,
    not_listed: u64,
}

/// What a flow's hellos said, for its flow summary.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FlowTls {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alpn_offered: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_offered: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ja4: Option<String>,
    /// Negotiated, from the ServerHello.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ja4s: Option<String>,
    /// Chosen by the server (TLS 1.2; 1.3 chooses it encrypted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alpn: Option<String>,
}

/// A hello, as one flow's record takes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hello {
    Client(ClientHello),
    Server(ServerHello),
}

impl FlowTls {
    /// Take what `hello` says; a flow's first ClientHello is the one kept.
    pub fn take(&mut self, hello: Hello) {
        match hello {
            Hello::Client(c) if self.ja4.is_none() => {
                self.sni = c.sni;
                self.alpn_offered = c.alpn;
                self.version_offered = Some(version_name(c.version));
                self.ja4 = Some(c.ja4);
            }
            Hello::Client(_) => {}
            Hello::Server(s) => {
                self.version = Some(version_name(s.version));
                self.alpn = s.alpn;
                self.ja4s = Some(s.ja4s);
            }
        }
    }
}

/// One handshake as the report lists it.
#[derive(Clone, Debug, Serialize)]
pub struct Handshake {
    pub client: String,
    pub server: String,
    pub port: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alpn_offered: Option<String>,
    pub version_offered: String,
    pub ja4: String,
    /// From the ServerHello, when it was seen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alpn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ja4s: Option<String>,
}

fn bump(map: &mut HashMap<String, u64>, key: &str) {
    if let Some(n) = map.get_mut(key) {
        *n += 1;
    } else if map.len() < MAX_KEYS {
        map.insert(key.to_string(), 1);
    }
}

impl TlsStats {
    /// One TCP segment's payload, from `src:sport` to `dst:dport`; the
    /// hello it completes, if any.
    pub fn segment(
        &mut self,
        src: IpAddr,
        sport: u16,
        dst: IpAddr,
        dport: u16,
        payload: &[u8],
    ) -> Option<Hello> {
        let dir = (src, sport, dst, dport);
        if !self.pending.is_empty()
            && let Some(buf) = self.pending.get_mut(&dir)
        {
            buf.extend_from_slice(payload);
            let need = record_len(buf).unwrap_or(usize::MAX);
            if buf.len() >= need || buf.len() > MAX_HELLO {
                let buf = self.pending.remove(&dir).expect("pending");
                if buf.len() >= need {
                    return self.record(dir, &buf);
                }
            }
            return None;
        }
        let need = record_len(payload)?;
        // Hellos only: ClientHello 1, ServerHello 2.
        if !matches!(payload.get(5), Some(1 | 2)) {
            return None;
        }
        if payload.len() >= need {
            return self.record(dir, payload);
        } else if need <= MAX_HELLO && self.pending.len() < MAX_PENDING {
            self.pending.insert(dir, payload.to_vec());
        }
        None
    }

    /// A ClientHello read from a QUIC Initial packet (`analyze::quic`)
    /// sent from `src:sport` to `dst:dport`; counted once per direction.
    pub fn quic_hello(
        &mut self,
        (src, sport): (IpAddr, u16),
        (dst, dport): (IpAddr, u16),
        c: ClientHello,
    ) -> Option<Hello> {
        let dir = (src, sport, dst, dport);
        // A client resends its first Initial when no answer comes.
        if self.quic_seen.contains(&dir) {
            return None;
        }
        if self.quic_seen.len() < MAX_KEYS {
            self.quic_seen.insert(dir);
        }
        self.quic_client_hellos += 1;
        Some(self.client(dir, c))
    }

    /// Count a ClientHello sent in direction `dir`.
    fn client(&mut self, dir: Dir, c: ClientHello) -> Hello {
        let hello = Hello::Client(c.clone());
        self.client_hellos += 1;
        if let Some(n) = &c.sni {
            bump(&mut self.names, n);
        }
        bump(&mut self.ja4, &c.ja4);
        if self.handshakes.len() < MAX_LISTED {
            self.listed.insert(dir, self.handshakes.len());
            self.handshakes.push(Handshake {
                client: dir.0.to_string(),
                server: dir.2.to_string(),
                port: dir.3,
                sni: c.sni,
                alpn_offered: c.alpn,
                version_offered: version_name(c.version),
                ja4: c.ja4,
                version: None,
                alpn: None,
                ja4s: None,
            });
        } else {
            self.not_listed += 1;
        }
        hello
    }

    fn record(&mut self, dir: Dir, rec: &[u8]) -> Option<Hello> {
        if let Some(c) = client_hello(rec) {
            Some(self.client(dir, c))
        } else if let Some(s) = server_hello(rec) {
            let hello = Hello::Server(s.clone());
            self.server_hellos += 1;
            *self.versions.entry(s.version).or_default() += 1;
            bump(&mut self.ja4s, &s.ja4s);
            if let Some(a) = &s.alpn {
                *self.alpn.entry(a.clone()).or_default() += 1;
            }
            let client_dir = (dir.2, dir.3, dir.0, dir.1);
            if let Some(&i) = self.listed.get(&client_dir) {
                let h = &mut self.handshakes[i];
                h.version = Some(version_name(s.version));
                h.alpn = s.alpn;
                h.ja4s = Some(s.ja4s);
            }
            Some(hello)
        } else {
            None
        }
    }

    pub fn report(self, top: usize) -> TlsReport {
        let top_of = |m: &HashMap<String, u64>| {
            let mut v: Vec<(&String, &u64)> = m.iter().collect();
            v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            v.into_iter()
                .take(top)
                .map(|(k, n)| KeyCount {
                    key: k.clone(),
                    count: *n,
                })
                .collect()
        };
        TlsReport {
            client_hellos: self.client_hellos,
            quic_client_hellos: self.quic_client_hellos,
            server_hellos: self.server_hellos,
            top_server_names: top_of(&self.names),
            top_ja4: top_of(&self.ja4),
            top_ja4s: top_of(&self.ja4s),
            versions: self
                .versions
                .iter()
                .map(|(v, n)| (version_name(*v), *n))
                .collect(),
            alpn: self.alpn,
            handshakes: self.handshakes,
            handshakes_not_listed: self.not_listed,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct KeyCount {
    pub key: String,
    pub count: u64,
}

/// The report's `tls` section.
#[derive(Debug, Serialize)]
pub struct TlsReport {
    pub client_hellos: u64,
    /// ClientHellos read from QUIC v1 Initial packets (among `client_hellos`).
    pub quic_client_hellos: u64,
    pub server_hellos: u64,
    pub top_server_names: Vec<KeyCount>,
    pub top_ja4: Vec<KeyCount>,
    /// FoxIO's JA4S server fingerprints.
    pub top_ja4s: Vec<KeyCount>,
    /// Negotiated (ServerHello) versions.
    pub versions: BTreeMap<String, u64>,
    /// ALPN values the servers chose.
    pub alpn: BTreeMap<String, u64>,
    /// The first 1,000 handshakes.
    pub handshakes: Vec<Handshake>,
    pub handshakes_not_listed: u64,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A ClientHello record: ciphers and extensions (type, data) as given.
    pub(crate) fn hello(ciphers: &[u16], exts: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let mut body = vec![0x03, 0x03];
        body.extend_from_slice(&[7; 32]);
        body.push(0);
        body.extend_from_slice(&((ciphers.len() * 2) as u16).to_be_bytes());
        for c in ciphers {
            body.extend_from_slice(&c.to_be_bytes());
        }
        body.extend_from_slice(&[1, 0]);
        let mut e = Vec::new();
        for (ty, data) in exts {
            e.extend_from_slice(&ty.to_be_bytes());
            e.extend_from_slice(&(data.len() as u16).to_be_bytes());
            e.extend_from_slice(data);
        }
        body.extend_from_slice(&(e.len() as u16).to_be_bytes());
        body.extend_from_slice(&e);
        let mut hs = vec![1, 0];
        hs.extend_from_slice(&(body.len() as u16).to_be_bytes());
        hs.extend_from_slice(&body);
        let mut rec = vec![0x16, 0x03, 0x01];
        rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
        rec.extend_from_slice(&hs);
        rec
    }

    /// JA4's documented example, GREASE values added where browsers put them.
    pub(crate) fn documented_hello() -> Vec<u8> {
        let ciphers = [
            0x2a2a, 0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013,
            0xc014, 0x009c, 0x009d, 0x002f, 0x0035,
        ];
        let sni = {
            let name = b"www.example.com";
            let mut d = ((name.len() + 3) as u16).to_be_bytes().to_vec();
            d.push(0);
            d.extend_from_slice(&(name.len() as u16).to_be_bytes());
            d.extend_from_slice(name);
            d
        };
        let alpn = vec![
            0, 12, 2, b'h', b'2', 8, b'h', b't', b't', b'p', b'/', b'1', b'.', b'1',
        ];
        let sigalgs: Vec<u8> = {
            let algs = [
                0x0403u16, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601,
            ];
            let mut d = ((algs.len() * 2) as u16).to_be_bytes().to_vec();
            for a in algs {
                d.extend_from_slice(&a.to_be_bytes());
            }
            d
        };
        let versions = vec![6, 0x7a, 0x7a, 0x03, 0x04, 0x03, 0x03];
        let exts: Vec<(u16, Vec<u8>)> = vec![
            (0x0a0a, vec![]),
            (0x001b, vec![]),
            (0x0000, sni),
            (0x0033, vec![]),
            (0x0010, alpn),
            (0x4469, vec![]),
            (0x0017, vec![]),
            (0x002d, vec![]),
            (0x000d, sigalgs),
            (0x0005, vec![]),
            (0x0023, vec![]),
            (0x0012, vec![]),
            (0x002b, versions),
            (0xff01, vec![]),
            (0x000b, vec![]),
            (0x000a, vec![]),
            (0x0015, vec![]),
            (0xfafa, vec![]),
        ];
        hello(&ciphers, &exts)
    }

    #[test]
    fn ja4_of_the_documented_example() {
        let c = client_hello(&documented_hello()).unwrap();
        assert_eq!(c.ja4, "t13d1516h2_8daaf6152771_e5627efa2ab1");
        assert_eq!(c.sni.as_deref(), Some("www.example.com"));
        assert_eq!(c.alpn.as_deref(), Some("h2"));
        assert_eq!(c.version, 0x0304);
    }

    #[test]
    fn ja4_parts_as_documented() {
        let exts = [
            0x0005, 0x000a, 0x000b, 0x000d, 0x0012, 0x0015, 0x0017, 0x001b, 0x0023, 0x002b, 0x002d,
            0x0033, 0x4469, 0xff01,
        ];
        // Without signature algorithms the string ends without "_".
        assert_eq!(ja4_hash(&exts, None, true), "6d807ffa2a79");
        assert_eq!(ja4_hash(&[], None, true), "000000000000");
        assert_eq!(alpn_chars(Some(b"http/1.1")), "h1");
        assert_eq!(alpn_chars(Some(&[0xab])), "ab");
        assert_eq!(alpn_chars(Some(&[0x30, 0xab])), "3b");
        assert_eq!(alpn_chars(Some(&[0x30, 0xab, 0xcd, 0x31])), "01");
        assert_eq!(alpn_chars(None), "00");
        assert!(is_grease(0x0a0a) && is_grease(0xfafa) && !is_grease(0x0a0b));
    }

    #[test]
    fn a_hello_cut_anywhere_is_refused_not_misread() {
        let full = documented_hello();
        for n in 0..full.len() {
            assert!(client_hello(&full[..n]).is_none(), "cut at {n}");
        }
    }

    #[test]
    fn a_hello_over_two_segments_is_gathered() {
        let full = documented_hello();
        let (a, b) = (
            "198.18.0.2".parse().unwrap(),
            "198.18.1.10".parse().unwrap(),
        );
        let mut t = TlsStats::default();
        t.segment(a, 40000, b, 443, &full[..100]);
        assert_eq!(t.client_hellos, 0);
        t.segment(a, 40000, b, 443, &full[100..]);
        let r = t.report(10);
        assert_eq!(r.client_hellos, 1);
        assert_eq!(r.handshakes[0].sni.as_deref(), Some("www.example.com"));
        assert_eq!(r.top_ja4[0].key, "t13d1516h2_8daaf6152771_e5627efa2ab1");
    }
}
