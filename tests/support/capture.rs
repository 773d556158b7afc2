//! Builds small captures for detector tests: Ethernet frames with IPv4 or
//! IPv6, TCP with any flags, UDP, DNS queries and raw IPv4 fragments.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use etherparse::{EtherType, Ethernet2Header, IpNumber, Ipv4Header, PacketBuilder};
use sonde::analyze::{AnalyzeOptions, Report, analyze};
use sonde::pcap::PcapWriter;
use sonde::pcap::writer::LINKTYPE_ETHERNET;

pub const SYN: u8 = 0x02;
pub const ACK: u8 = 0x10;
pub const FIN: u8 = 0x01;
pub const RST: u8 = 0x04;
pub const PSH: u8 = 0x08;
pub const URG: u8 = 0x20;

const MAC_A: [u8; 6] = [2, 0, 0, 0, 0, 1];
const MAC_B: [u8; 6] = [2, 0, 0, 0, 0, 2];

pub fn ip(s: &str) -> [u8; 4] {
    s.parse::<Ipv4Addr>().unwrap().octets()
}

/// An Ethernet/IPv4/TCP frame with exactly `flags`.
pub fn tcp(src: &str, dst: &str, sport: u16, dport: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4(ip(src), ip(dst), 64)
        .tcp(sport, dport, 1000, 64240)
        .write(&mut out, payload)
        .unwrap();
    out[14 + 20 + 13] = flags;
    out
}

/// [`tcp`] with its sequence and acknowledgement numbers.
#[allow(clippy::too_many_arguments)]
pub fn tcp_seq(
    src: &str,
    dst: &str,
    sport: u16,
    dport: u16,
    flags: u8,
    seq: u32,
    ack: u32,
    payload: &[u8],
) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4(ip(src), ip(dst), 64)
        .tcp(sport, dport, seq, 64240)
        .ack(ack)
        .write(&mut out, payload)
        .unwrap();
    out[14 + 20 + 13] = flags;
    out
}

/// One HTTP exchange on its own connection: handshake, `request`, the
/// response with `status`, both FINs; frames `at` and just after.
pub fn http_exchange(
    c: &mut Capture,
    at: i64,
    client: &str,
    port: u16,
    request: &str,
    status: u16,
) {
    let resp = format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n");
    http_exchange_with(
        c,
        at,
        (client, port),
        "198.18.1.80",
        request.as_bytes(),
        resp.as_bytes(),
    );
}

/// One HTTP exchange on its own connection to `server` port 80: handshake,
/// `req`, the response `resp` (head and body, one segment), both FINs.
pub fn http_exchange_with(
    c: &mut Capture,
    at: i64,
    (client, port): (&str, u16),
    server: &str,
    req: &[u8],
    resp: &[u8],
) {
    let (cs, ss) = (1000u32, 9000u32);
    c.push(at, tcp_seq(client, server, port, 80, SYN, cs, 0, &[]));
    c.push(
        at + 1,
        tcp_seq(server, client, 80, port, SYN | ACK, ss, cs + 1, &[]),
    );
    c.push(
        at + 2,
        tcp_seq(client, server, port, 80, ACK, cs + 1, ss + 1, &[]),
    );
    c.push(
        at + 3,
        tcp_seq(client, server, port, 80, ACK | PSH, cs + 1, ss + 1, req),
    );
    let after = cs + 1 + req.len() as u32;
    c.push(
        at + 4,
        tcp_seq(server, client, 80, port, ACK | PSH, ss + 1, after, resp),
    );
    let sent = ss + 1 + resp.len() as u32;
    c.push(
        at + 5,
        tcp_seq(client, server, port, 80, FIN | ACK, after, sent, &[]),
    );
    c.push(
        at + 6,
        tcp_seq(server, client, 80, port, FIN | ACK, sent, after + 1, &[]),
    );
    c.push(
        at + 7,
        tcp_seq(client, server, port, 80, ACK, after + 1, sent + 1, &[]),
    );
}

pub fn udp(src: &str, dst: &str, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4(ip(src), ip(dst), 64)
        .udp(sport, dport)
        .write(&mut out, payload)
        .unwrap();
    out
}

/// A DNS query for `name` of type `qtype` from `src` to 198.18.1.53.
pub fn dns_query(src: &str, id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut q = vec![
        (id >> 8) as u8,
        id as u8,
        0x01,
        0x00,
        0,
        1,
        0,
        0,
        0,
        0,
        0,
        0,
    ];
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, (qtype >> 8) as u8, qtype as u8, 0, 1]);
    udp(src, "198.18.1.53", 40000 + (id % 1000), 53, &q)
}

/// An Ethernet ARP frame: `op` 1 request, 2 reply; the sender's binding
/// (`sender_ip` at `sender_mac`) and the address asked about or answered to.
pub fn arp(op: u16, sender_mac: [u8; 6], sender_ip: &str, target_ip: &str) -> Vec<u8> {
    let mut f = Vec::with_capacity(42);
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&sender_mac);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4]);
    f.extend_from_slice(&op.to_be_bytes());
    f.extend_from_slice(&sender_mac);
    f.extend_from_slice(&ip(sender_ip));
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&ip(target_ip));
    f
}

/// A raw IPv4 fragment: `offset` in bytes (a multiple of 8), `more` = MF.
pub fn fragment(
    src: &str,
    dst: &str,
    proto: u8,
    id: u16,
    offset: u16,
    more: bool,
    payload: &[u8],
) -> Vec<u8> {
    let mut h =
        Ipv4Header::new(payload.len() as u16, 64, IpNumber(proto), ip(src), ip(dst)).unwrap();
    h.identification = id;
    h.more_fragments = more;
    h.fragment_offset = etherparse::IpFragOffset::try_new(offset / 8).unwrap();
    h.header_checksum = h.calc_header_checksum();
    let mut out = Vec::new();
    Ethernet2Header {
        source: MAC_A,
        destination: MAC_B,
        ether_type: EtherType::IPV4,
    }
    .write(&mut out)
    .unwrap();
    h.write(&mut out).unwrap();
    out.extend_from_slice(payload);
    out
}

/// Frames with their capture times in nanoseconds.
#[derive(Default)]
pub struct Capture {
    pub frames: Vec<(i64, Vec<u8>)>,
}

pub const T0: i64 = 1_767_225_600_000_000_000; // 2026-01-01T00:00:00Z

impl Capture {
    pub fn push(&mut self, at_ns: i64, frame: Vec<u8>) {
        self.frames.push((T0 + at_ns, frame));
    }

    pub fn write(&self, dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        let mut w = PcapWriter::new(
            std::fs::File::create(&path).unwrap(),
            LINKTYPE_ETHERNET,
            65535,
        )
        .unwrap();
        for (t, f) in &self.frames {
            w.write(*t, f).unwrap();
        }
        w.flush().unwrap();
        path
    }

    /// Write and analyze with default options.
    pub fn analyze(&self) -> Report {
        self.analyze_with(&AnalyzeOptions::default())
    }

    pub fn analyze_with(&self, opts: &AnalyzeOptions) -> Report {
        let dir = tempfile::tempdir().unwrap();
        let path = self.write(dir.path(), "t.pcap");
        analyze(&[path], opts).unwrap_or_else(|e| panic!("{}", e.message))
    }
}

/// The (kind, subtype) of each finding.
pub fn kinds(r: &Report) -> Vec<(String, Option<String>)> {
    r.anomalies
        .iter()
        .map(|a| (a.kind.to_string(), a.subtype.map(str::to_string)))
        .collect()
}

/// One little-endian pcapng block of `kind` around `body`, padded to 32 bits.
pub fn pcapng_block(kind: u32, body: &[u8]) -> Vec<u8> {
    let len = (12 + body.len()).div_ceil(4) * 4;
    let mut b = Vec::new();
    b.extend_from_slice(&kind.to_le_bytes());
    b.extend_from_slice(&(len as u32).to_le_bytes());
    b.extend_from_slice(body);
    b.resize(len - 4, 0);
    b.extend_from_slice(&(len as u32).to_le_bytes());
    b
}

/// An Ethernet/IPv4 ICMP echo request (or, with `reply`, its reply).
pub fn icmp_echo(src: &str, dst: &str, reply: bool, id: u16, seq: u16) -> Vec<u8> {
    let mut out = Vec::new();
    let b = PacketBuilder::ethernet2(MAC_A, MAC_B).ipv4(ip(src), ip(dst), 64);
    let b = if reply {
        b.icmpv4_echo_reply(id, seq)
    } else {
        b.icmpv4_echo_request(id, seq)
    };
    b.write(&mut out, &[0x61; 32]).unwrap();
    out
}

/// `frame` sent from `src` to `dst` on the link (its Ethernet addresses).
pub fn with_macs(mut frame: Vec<u8>, src: [u8; 6], dst: [u8; 6]) -> Vec<u8> {
    frame[0..6].copy_from_slice(&dst);
    frame[6..12].copy_from_slice(&src);
    frame
}

/// A DNS response from `resolver` to `client` for `name` (type A): with
/// `addr`, one A record (its name a compression pointer to the
/// question); without, NXDOMAIN.
pub fn dns_answer(
    resolver: &str,
    client: &str,
    id: u16,
    name: &str,
    addr: Option<&str>,
) -> Vec<u8> {
    let rcode = if addr.is_some() { 0 } else { 3 };
    let mut m = vec![
        (id >> 8) as u8,
        id as u8,
        0x81,
        0x80 | rcode,
        0,
        1,
        0,
        u8::from(addr.is_some()),
        0,
        0,
        0,
        0,
    ];
    for label in name.split('.') {
        m.push(label.len() as u8);
        m.extend_from_slice(label.as_bytes());
    }
    m.extend_from_slice(&[0, 0, 1, 0, 1]);
    if let Some(a) = addr {
        m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
        m.extend_from_slice(&ip(a));
    }
    udp(resolver, client, 53, 40000 + (id % 1000), &m)
}
