//! Turning parsed layers into bytes. Headers are written with etherparse's
//! header types and checksum sums; a field given explicitly is written as
//! given, even when wrong (a bad checksum or length is a test case), and
//! every unset length and checksum is computed. Pure: no sockets; the
//! default source address comes from a function the caller passes.

use std::net::IpAddr;

use etherparse::checksum::Sum16BitWords;
use etherparse::{
    IpNumber, Ipv4Header, Ipv4Options, Ipv6FlowLabel, Ipv6Header, TcpHeader, TcpOptionElement,
};

use super::spec::{Field, Layer, SpecError};
use crate::wire::icmp::IcmpPacket;
use crate::wire::ip::{IpPacket, Ipv4Packet, Ipv6Packet};
use crate::wire::tcp::TcpPacket;
use crate::wire::udp::UdpPacket;

/// A built packet: the bytes from the first layer on, and what is needed
/// to send it and match its replies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Crafted {
    pub bytes: Vec<u8>,
    /// The first layer is Ethernet (the link type of a pcap of it).
    pub ethernet: bool,
    /// The outermost IP header's addresses.
    pub src: Option<IpAddr>,
    pub dst: Option<IpAddr>,
    /// The transport right under the outermost IP header.
    pub transport: Option<TransportKind>,
}

/// The outermost transport, which decides the scope's probe kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportKind {
    Tcp { sport: u16, dport: u16 },
    Udp { sport: u16, dport: u16 },
    Icmp { id: u16, seq: u16 },
    Icmpv6 { id: u16, seq: u16 },
    Other(u8),
}

const LAYERS: [&str; 9] = [
    "ether", "ip", "ipv6", "tcp", "udp", "icmp", "icmpv6", "dns", "raw",
];

/// The fields each layer accepts (for errors and suggestions).
fn fields_of(layer: &str) -> &'static [&'static str] {
    match layer {
        "ether" => &["dst", "src", "type"],
        "ip" => &[
            "src", "dst", "ttl", "tos", "dscp", "ecn", "id", "flags", "frag", "proto", "len",
            "ihl", "chksum", "options", "version",
        ],
        "ipv6" => &["src", "dst", "hlim", "tc", "fl", "nh", "plen", "version"],
        "tcp" => &[
            "sport", "dport", "seq", "ack", "flags", "window", "urgptr", "dataofs", "chksum",
            "options", "reserved",
        ],
        "udp" => &["sport", "dport", "len", "chksum"],
        "icmp" | "icmpv6" => &["type", "code", "id", "seq", "chksum", "unused"],
        "dns" => &[
            "id", "qr", "opcode", "aa", "tc", "rd", "ra", "z", "rcode", "qd", "qclass",
        ],
        "raw" => &["hex", "text", "file", "pattern", "len"],
        _ => &[],
    }
}

/// The closest name to `name` among `names`, if one is close enough.
pub fn nearest<'a>(name: &str, names: &[&'a str]) -> Option<&'a str> {
    names
        .iter()
        .map(|n| (strsim::damerau_levenshtein(name, n), *n))
        .filter(|(d, n)| *d <= 2.max(n.len() / 3))
        .min()
        .map(|(_, n)| n)
}

/// Reads one layer's fields, each at most once, with errors pointing at them.
struct Args<'a> {
    spec: &'a str,
    layer: &'a Layer,
    used: Vec<bool>,
}

impl<'a> Args<'a> {
    fn new(spec: &'a str, layer: &'a Layer) -> Result<Args<'a>, SpecError> {
        let known = fields_of(&layer.name);
        for (i, f) in layer.fields.iter().enumerate() {
            if !known.contains(&f.name.as_str()) {
                let mut e = SpecError::new(
                    spec,
                    f.at,
                    format!("{}(...) has no field {:?}", layer.name, f.name),
                );
                e = match nearest(&f.name, known) {
                    Some(n) => e.hint(format!("did you mean {n:?}? fields: {}", known.join(", "))),
                    None => e.hint(format!("fields: {}", known.join(", "))),
                };
                return Err(e);
            }
            if layer.fields[..i].iter().any(|p| p.name == f.name) {
                return Err(SpecError::new(
                    spec,
                    f.at,
                    format!("{}(...) sets {:?} twice", layer.name, f.name),
                ));
            }
        }
        Ok(Args {
            spec,
            layer,
            used: vec![false; layer.fields.len()],
        })
    }

    fn get(&mut self, name: &str) -> Option<&'a Field> {
        let i = self.layer.fields.iter().position(|f| f.name == name)?;
        self.used[i] = true;
        Some(&self.layer.fields[i])
    }

    fn err(&self, f: &Field, what: &str, hint: &str) -> SpecError {
        SpecError::new(
            self.spec,
            f.value_at,
            format!(
                "{}(...) {}={:?}: expected {what}",
                self.layer.name, f.name, f.value
            ),
        )
        .hint(hint.to_string())
    }

    /// An unsigned number (decimal or 0x hex) no larger than `max`.
    fn num(&mut self, name: &str, max: u64) -> Result<Option<u64>, SpecError> {
        let Some(f) = self.get(name) else {
            return Ok(None);
        };
        let v = f.value.trim();
        let parsed = match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
            Some(h) => u64::from_str_radix(h, 16).ok(),
            None => v.parse::<u64>().ok(),
        };
        match parsed {
            Some(n) if n <= max => Ok(Some(n)),
            _ => Err(self.err(
                f,
                &format!("a number from 0 to {max}"),
                "decimal or 0x-prefixed hex",
            )),
        }
    }

    fn u8(&mut self, name: &str) -> Result<Option<u8>, SpecError> {
        Ok(self.num(name, u8::MAX.into())?.map(|n| n as u8))
    }
    fn u16(&mut self, name: &str) -> Result<Option<u16>, SpecError> {
        Ok(self.num(name, u16::MAX.into())?.map(|n| n as u16))
    }
    fn u32(&mut self, name: &str) -> Result<Option<u32>, SpecError> {
        Ok(self.num(name, u32::MAX.into())?.map(|n| n as u32))
    }
    fn flag(&mut self, name: &str) -> Result<Option<bool>, SpecError> {
        Ok(self.num(name, 1)?.map(|n| n == 1))
    }

    fn addr(&mut self, name: &str, v6: bool) -> Result<Option<IpAddr>, SpecError> {
        let Some(f) = self.get(name) else {
            return Ok(None);
        };
        match f.value.parse::<IpAddr>() {
            Ok(a) if a.is_ipv6() == v6 => Ok(Some(a)),
            _ => Err(self.err(
                f,
                if v6 {
                    "an IPv6 address"
                } else {
                    "an IPv4 address"
                },
                "host names are not resolved in a spec; write the address",
            )),
        }
    }

    fn hex(&mut self, name: &str) -> Result<Option<Vec<u8>>, SpecError> {
        let Some(f) = self.get(name) else {
            return Ok(None);
        };
        let clean: String = f
            .value
            .chars()
            .filter(|c| !c.is_whitespace() && *c != ':')
            .collect();
        hex::decode(&clean)
            .map(Some)
            .map_err(|_| self.err(f, "hex bytes", "e.g. hex=deadbeef or hex=de:ad:be:ef"))
    }
}

/// Ones' complement sum over an IPv4 or IPv6 pseudo header and `data`.
fn transport_checksum(src: IpAddr, dst: IpAddr, proto: u8, data: &[u8]) -> u16 {
    let mut sum = Sum16BitWords::new();
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            sum = sum
                .add_4bytes(s.octets())
                .add_4bytes(d.octets())
                .add_2bytes([0, proto])
                .add_2bytes((data.len() as u16).to_be_bytes());
        }
        (s, d) => {
            let o = |a: IpAddr| match a {
                IpAddr::V6(v) => v.octets(),
                IpAddr::V4(v) => v.to_ipv6_mapped().octets(),
            };
            sum = sum
                .add_16bytes(o(s))
                .add_16bytes(o(d))
                .add_4bytes((data.len() as u32).to_be_bytes())
                .add_4bytes([0, 0, 0, proto]);
        }
    }
    sum.add_slice(data).ones_complement().to_be()
}

/// The addresses of the nearest IP layer before layer `i`.
#[derive(Clone, Copy)]
struct Context {
    src: IpAddr,
    dst: IpAddr,
}

/// Build the layers of `spec`. `source_for(dst)` gives the default source
/// address (the routing table's; tests pass a fixed one).
pub fn build(
    spec: &str,
    layers: &[Layer],
    source_for: &dyn Fn(IpAddr) -> Option<IpAddr>,
) -> Result<Crafted, SpecError> {
    for l in layers {
        if !LAYERS.contains(&l.name.as_str()) {
            let mut e = SpecError::new(spec, l.at, format!("unknown layer {:?}", l.name));
            e = match nearest(&l.name, &LAYERS) {
                Some(n) => e.hint(format!("did you mean {n:?}? layers: {}", LAYERS.join(", "))),
                None => e.hint(format!("layers: {}", LAYERS.join(", "))),
            };
            return Err(e);
        }
    }
    if let Some(l) = layers.iter().skip(1).find(|l| l.name == "ether") {
        return Err(SpecError::new(
            spec,
            l.at,
            "ether(...) can only be the first layer",
        ));
    }
    // Pass 1, outside in: every IP layer's addresses, for the checksums of
    // the layers it carries.
    let mut contexts: Vec<Option<Context>> = Vec::with_capacity(layers.len());
    let mut ctx: Option<Context> = None;
    for l in layers {
        if l.name == "ip" || l.name == "ipv6" {
            let mut a = Args::new(spec, l)?;
            let v6 = l.name == "ipv6";
            let dst = a.addr("dst", v6)?.ok_or_else(|| {
                SpecError::new(spec, l.at, format!("{}(...) needs dst=", l.name))
                    .hint("the destination is never guessed: ip(dst=198.18.1.5)")
            })?;
            let src = match a.addr("src", v6)? {
                Some(s) => s,
                None => source_for(dst).ok_or_else(|| {
                    SpecError::new(
                        spec,
                        l.at,
                        format!("no route to {dst}, so no source address"),
                    )
                    .hint("set src= or add a route")
                })?,
            };
            ctx = Some(Context { src, dst });
        }
        contexts.push(ctx);
    }
    // Pass 2, inside out: each layer wraps the bytes of the ones after it.
    let mut payload: Vec<u8> = Vec::new();
    let mut next_proto: Option<u8> = None; // the IP protocol of the layer below
    let mut next_ether: Option<u16> = None;
    for (i, l) in layers.iter().enumerate().rev() {
        let mut a = Args::new(spec, l)?;
        let ctx = contexts[i];
        let need_ip = |what: &str| {
            SpecError::new(
                spec,
                l.at,
                format!("{what}(...) needs an ip or ipv6 layer before it"),
            )
            .hint(format!("e.g. ip(dst=198.18.1.5)/{what}(...)"))
        };
        // A length field that cannot hold what it measures is an error,
        // unless the spec sets that field itself (a deliberate lie).
        let too_long = |field: &str, len: usize, max: usize| {
            SpecError::new(
                spec,
                l.at,
                format!(
                    "{}(...): {len} bytes do not fit its {field} field (at most {max})",
                    l.name
                ),
            )
            .hint(format!(
                "carry less payload, or set {field}= yourself to send a wrong length on purpose"
            ))
        };
        let bytes: Vec<u8> = match l.name.as_str() {
            // Raw bytes, then whatever layers follow (as Scapy's Raw/Raw).
            "raw" => {
                let mut b = raw(&mut a)?;
                b.extend_from_slice(&payload);
                b
            }
            "dns" => dns(&mut a)?,
            "udp" => {
                let c = ctx.ok_or_else(|| need_ip("udp"))?;
                let sport = a.u16("sport")?.unwrap_or(53);
                let dport = a.u16("dport")?.unwrap_or(53);
                let len = match a.u16("len")? {
                    Some(n) => n,
                    None => u16::try_from(8 + payload.len())
                        .map_err(|_| too_long("len", 8 + payload.len(), 65535))?,
                };
                let mut b = Vec::with_capacity(8 + payload.len());
                b.extend_from_slice(&sport.to_be_bytes());
                b.extend_from_slice(&dport.to_be_bytes());
                b.extend_from_slice(&len.to_be_bytes());
                b.extend_from_slice(&[0, 0]);
                b.extend_from_slice(&payload);
                let sum = match a.u16("chksum")? {
                    Some(s) => s,
                    None => match transport_checksum(c.src, c.dst, 17, &b) {
                        0 => 0xffff, // zero means "no checksum" in UDP
                        s => s,
                    },
                };
                UdpPacket::new_unchecked(&mut b[..]).set_checksum(sum);
                next_proto = Some(17);
                b
            }
            "tcp" => {
                let c = ctx.ok_or_else(|| need_ip("tcp"))?;
                let sport = a.u16("sport")?.unwrap_or(20);
                let dport = a.u16("dport")?.unwrap_or(80);
                let mut h = TcpHeader::new(
                    sport,
                    dport,
                    a.u32("seq")?.unwrap_or(0),
                    a.u16("window")?.unwrap_or(8192),
                );
                h.acknowledgment_number = a.u32("ack")?.unwrap_or(0);
                h.urgent_pointer = a.u16("urgptr")?.unwrap_or(0);
                let flags = match a.get("flags") {
                    Some(f) => crate::wire::tcp::parse_flags(&f.value).ok_or_else(|| {
                        a.err(
                            f,
                            "TCP flag letters",
                            "F S R P A U E C, e.g. flags=SA, or a number",
                        )
                    })?,
                    None => 0x02,
                };
                if let Some(f) = a.get("options") {
                    let opts = tcp_options(&f.value)
                        .map_err(|m| a.err(f, &m, "mss:1460;sackok;ws:7;ts:VAL:ECR;nop;eol"))?;
                    h.set_options(&opts).map_err(|_| {
                        a.err(f, "at most 40 bytes of options", "drop some options")
                    })?;
                }
                let mut b = h.to_bytes().to_vec();
                let mut t = TcpPacket::new_unchecked(&mut b[..]);
                t.set_flags(flags);
                if let Some(r) = a.u8("reserved")? {
                    t.set_reserved(r);
                }
                if let Some(d) = a.num("dataofs", 15)? {
                    t.set_data_offset_words(d as u8);
                }
                t.set_checksum(0);
                b.extend_from_slice(&payload);
                let sum = match a.u16("chksum")? {
                    Some(s) => s,
                    None => transport_checksum(c.src, c.dst, 6, &b),
                };
                TcpPacket::new_unchecked(&mut b[..]).set_checksum(sum);
                next_proto = Some(6);
                b
            }
            "icmp" | "icmpv6" => {
                let v6 = l.name == "icmpv6";
                let c = ctx.ok_or_else(|| need_ip(&l.name))?;
                let kind = match a.get("type") {
                    Some(f) => icmp_type(&f.value, v6).ok_or_else(|| {
                        a.err(
                            f,
                            "an ICMP type",
                            if v6 {
                                "a number or echo-request, echo-reply, dest-unreach, packet-too-big, time-exceeded"
                            } else {
                                "a number or echo-request, echo-reply, dest-unreach, time-exceeded, redirect, param-problem"
                            },
                        )
                    })?,
                    None => {
                        if v6 {
                            128
                        } else {
                            8
                        }
                    }
                };
                let code = a.u8("code")?.unwrap_or(0);
                let (id, seq) = (a.u16("id")?.unwrap_or(0), a.u16("seq")?.unwrap_or(0));
                let rest: [u8; 4] = match a.u32("unused")? {
                    Some(u) => u.to_be_bytes(),
                    None => {
                        let mut r = [0u8; 4];
                        r[..2].copy_from_slice(&id.to_be_bytes());
                        r[2..].copy_from_slice(&seq.to_be_bytes());
                        r
                    }
                };
                let mut b = vec![kind, code, 0, 0];
                b.extend_from_slice(&rest);
                b.extend_from_slice(&payload);
                let sum = match a.u16("chksum")? {
                    Some(s) => s,
                    None if v6 => transport_checksum(c.src, c.dst, 58, &b),
                    None => Sum16BitWords::new().add_slice(&b).ones_complement().to_be(),
                };
                IcmpPacket::new_unchecked(&mut b[..]).set_checksum(sum);
                next_proto = Some(if v6 { 58 } else { 1 });
                b
            }
            "ip" => {
                let c = ctx.expect("an ip layer sets its own context");
                let (IpAddr::V4(src), IpAddr::V4(dst)) = (c.src, c.dst) else {
                    unreachable!("ip(...) addresses are IPv4")
                };
                a.get("src");
                a.get("dst");
                let mut h = Ipv4Header {
                    identification: a.u16("id")?.unwrap_or(1),
                    // etherparse's default sets DF; a crafted packet has only the flags asked for.
                    dont_fragment: false,
                    time_to_live: a.u8("ttl")?.unwrap_or(64),
                    source: src.octets(),
                    destination: dst.octets(),
                    ..Default::default()
                };
                let proto = match a.u8("proto")? {
                    Some(p) => p,
                    None => next_proto.unwrap_or(0),
                };
                h.protocol = IpNumber(proto);
                if let Some(o) = a.hex("options")? {
                    let f = a
                        .layer
                        .fields
                        .iter()
                        .find(|f| f.name == "options")
                        .expect("read above");
                    let mut o = o;
                    o.resize(o.len().div_ceil(4) * 4, 0);
                    h.options = Ipv4Options::try_from(&o[..])
                        .map_err(|_| a.err(f, "at most 40 bytes of options", "drop some"))?;
                }
                let mut rf = false;
                if let Some(f) = a.get("flags") {
                    for part in f.value.split(['+', '|', ' ']).filter(|p| !p.is_empty()) {
                        match part.to_ascii_uppercase().as_str() {
                            "DF" => h.dont_fragment = true,
                            "MF" => h.more_fragments = true,
                            "RF" | "EVIL" => rf = true,
                            _ => {
                                return Err(a.err(
                                    f,
                                    "DF, MF or RF",
                                    "combine with '+': flags=DF+MF",
                                ));
                            }
                        }
                    }
                }
                if let Some(f) = a.get("frag") {
                    let v: Option<u16> = f.value.trim().parse().ok().filter(|v| *v < 8192);
                    let v = v.ok_or_else(|| {
                        a.err(
                            f,
                            "a fragment offset in 8-byte units, 0 to 8191",
                            "frag=185 is byte 1480",
                        )
                    })?;
                    h.fragment_offset =
                        etherparse::IpFragOffset::try_new(v).expect("checked above");
                }
                let mut b = h.to_bytes().to_vec();
                let hlen = b.len();
                let total = match a.u16("len")? {
                    Some(n) => n,
                    None => u16::try_from(hlen + payload.len())
                        .map_err(|_| too_long("len", hlen + payload.len(), 65535))?,
                };
                // Fields etherparse does not set, or sets right where a
                // crafted packet may want them wrong.
                let mut v = Ipv4Packet::new_unchecked(&mut b[..]);
                v.set_tos(a.u8("tos")?.unwrap_or(0));
                if let Some(d) = a.num("dscp", 63)? {
                    v.set_dscp(d as u8);
                }
                if let Some(e) = a.num("ecn", 3)? {
                    v.set_ecn(e as u8);
                }
                if rf {
                    v.set_reserved_flag(true);
                }
                v.set_total_len(total);
                if let Some(ver) = a.num("version", 15)? {
                    v.set_version(ver as u8);
                }
                if let Some(ihl) = a.num("ihl", 15)? {
                    v.set_header_len_words(ihl as u8);
                }
                v.set_checksum(0);
                let sum = match a.u16("chksum")? {
                    Some(s) => s,
                    // Over the header as built, whatever IHL now claims.
                    None => Sum16BitWords::new().add_slice(&b).ones_complement().to_be(),
                };
                Ipv4Packet::new_unchecked(&mut b[..]).set_checksum(sum);
                b.extend_from_slice(&payload);
                next_proto = Some(4);
                next_ether = Some(0x0800);
                b
            }
            "ipv6" => {
                let c = ctx.expect("an ipv6 layer sets its own context");
                let (IpAddr::V6(src), IpAddr::V6(dst)) = (c.src, c.dst) else {
                    unreachable!("ipv6(...) addresses are IPv6")
                };
                a.get("src");
                a.get("dst");
                let fl = match a.num("fl", 0xfffff)? {
                    Some(v) => Ipv6FlowLabel::try_new(v as u32).expect("checked above"),
                    None => Ipv6FlowLabel::ZERO,
                };
                let h = Ipv6Header {
                    traffic_class: a.u8("tc")?.unwrap_or(0),
                    flow_label: fl,
                    payload_length: match a.u16("plen")? {
                        Some(n) => n,
                        None => u16::try_from(payload.len())
                            .map_err(|_| too_long("plen", payload.len(), 65535))?,
                    },
                    next_header: IpNumber(match a.u8("nh")? {
                        Some(n) => n,
                        None => next_proto.unwrap_or(59),
                    }),
                    hop_limit: a.u8("hlim")?.unwrap_or(64),
                    source: src.octets(),
                    destination: dst.octets(),
                };
                let mut b = h.to_bytes().to_vec();
                if let Some(v) = a.num("version", 15)? {
                    Ipv6Packet::new_unchecked(&mut b[..]).set_version(v as u8);
                }
                b.extend_from_slice(&payload);
                next_proto = Some(41);
                next_ether = Some(0x86dd);
                b
            }
            "ether" => {
                let mac =
                    |a: &mut Args, name: &str, default: [u8; 6]| -> Result<[u8; 6], SpecError> {
                        match a.get(name) {
                            None => Ok(default),
                            Some(f) => crate::wire::ethernet::parse_mac(&f.value)
                                .ok_or_else(|| a.err(f, "a MAC address", "e.g. 02:00:5e:10:00:01")),
                        }
                    };
                let dst = mac(&mut a, "dst", [0xff; 6])?;
                let src = mac(&mut a, "src", [0; 6])?;
                let ty = a.u16("type")?.or(next_ether).unwrap_or(0x9000);
                let mut b = Vec::with_capacity(14 + payload.len());
                b.extend_from_slice(&dst);
                b.extend_from_slice(&src);
                b.extend_from_slice(&ty.to_be_bytes());
                b.extend_from_slice(&payload);
                b
            }
            _ => unreachable!("layer names are checked above"),
        };
        // A field nobody read is a field this layer cannot use here.
        if let Some(i) = a.used.iter().position(|u| !u) {
            let f = &l.fields[i];
            return Err(SpecError::new(
                spec,
                f.at,
                format!("{}(...) field {:?} is not used here", l.name, f.name),
            ));
        }
        payload = bytes;
    }
    // The outermost IP layer's transport, read back from the bytes.
    let outer_ip = layers
        .iter()
        .position(|l| l.name == "ip" || l.name == "ipv6");
    Ok(Crafted {
        ethernet: layers.first().is_some_and(|l| l.name == "ether"),
        src: outer_ip.and_then(|i| contexts[i]).map(|c| c.src),
        dst: outer_ip.and_then(|i| contexts[i]).map(|c| c.dst),
        transport: outer_ip.and_then(|_| transport_of(&payload, layers)),
        bytes: payload,
    })
}

/// Read the outermost transport's identifying fields back from the bytes.
fn transport_of(bytes: &[u8], layers: &[Layer]) -> Option<TransportKind> {
    let ip = if layers[0].name == "ether" {
        crate::wire::ethernet::payload_of(bytes)
    } else {
        bytes
    };
    let ip = IpPacket::parse(ip).ok()?;
    let t = ip.after_header();
    let echo = || {
        IcmpPacket::new_checked(t)
            .map(|i| (i.echo_ident(), i.echo_seq_no()))
            .ok()
    };
    Some(match ip.protocol() {
        6 => {
            let tcp = TcpPacket::new_checked(t).ok()?;
            TransportKind::Tcp {
                sport: tcp.src_port(),
                dport: tcp.dst_port(),
            }
        }
        17 => {
            let udp = UdpPacket::new_checked(t).ok()?;
            TransportKind::Udp {
                sport: udp.src_port(),
                dport: udp.dst_port(),
            }
        }
        1 => {
            let (id, seq) = echo()?;
            TransportKind::Icmp { id, seq }
        }
        58 => {
            let (id, seq) = echo()?;
            TransportKind::Icmpv6 { id, seq }
        }
        p => TransportKind::Other(p),
    })
}

/// `mss:1460;sackok;ws:7;ts:1:0;nop;eol`
fn tcp_options(v: &str) -> Result<Vec<TcpOptionElement>, String> {
    let mut out = Vec::new();
    for part in v.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let mut it = part.split(':');
        let name = it.next().unwrap_or("").to_ascii_lowercase();
        let nums: Vec<&str> = it.collect();
        let num = |i: usize, max: u64| -> Result<u64, String> {
            nums.get(i)
                .and_then(|n| n.parse::<u64>().ok())
                .filter(|n| *n <= max)
                .ok_or_else(|| format!("a number up to {max} in option {part:?}"))
        };
        let arity = |n: usize| -> Result<(), String> {
            if nums.len() == n {
                Ok(())
            } else {
                Err(format!("{n} value(s) in option {part:?}"))
            }
        };
        out.push(match name.as_str() {
            "mss" => {
                arity(1)?;
                TcpOptionElement::MaximumSegmentSize(num(0, 65535)? as u16)
            }
            "ws" | "wscale" => {
                arity(1)?;
                TcpOptionElement::WindowScale(num(0, 255)? as u8)
            }
            "sackok" => {
                arity(0)?;
                TcpOptionElement::SelectiveAcknowledgementPermitted
            }
            "ts" | "timestamp" => {
                arity(2)?;
                TcpOptionElement::Timestamp(
                    num(0, u32::MAX.into())? as u32,
                    num(1, u32::MAX.into())? as u32,
                )
            }
            "nop" => {
                arity(0)?;
                TcpOptionElement::Noop
            }
            // The option list ends here; the padding after it is zeros (EOL).
            "eol" => break,
            other => {
                let known = ["mss", "ws", "sackok", "ts", "nop", "eol"];
                return Err(match nearest(other, &known) {
                    Some(n) => format!("a known option (did you mean {n:?}?)"),
                    None => format!("a known option ({})", known.join(", ")),
                });
            }
        });
    }
    Ok(out)
}

fn icmp_type(v: &str, v6: bool) -> Option<u8> {
    if let Ok(n) = v.parse::<u8>() {
        return Some(n);
    }
    let names: &[(&str, u8)] = if v6 {
        &[
            ("dest-unreach", 1),
            ("packet-too-big", 2),
            ("time-exceeded", 3),
            ("param-problem", 4),
            ("echo-request", 128),
            ("echo-reply", 129),
        ]
    } else {
        &[
            ("echo-reply", 0),
            ("dest-unreach", 3),
            ("source-quench", 4),
            ("redirect", 5),
            ("echo-request", 8),
            ("time-exceeded", 11),
            ("param-problem", 12),
            ("timestamp-request", 13),
            ("timestamp-reply", 14),
        ]
    };
    names
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(v))
        .map(|(_, t)| *t)
}

/// The most `raw(file=...)` reads: the largest payload an IP packet has.
const MAX_RAW_FILE: usize = 65_535;

fn raw(a: &mut Args) -> Result<Vec<u8>, SpecError> {
    let mut out = Vec::new();
    if let Some(h) = a.hex("hex")? {
        out.extend_from_slice(&h);
    }
    if let Some(f) = a.get("text") {
        out.extend_from_slice(f.value.as_bytes());
    }
    if let Some(f) = a.get("file") {
        // Read with a bound: /dev/zero or a 2 GB file must not fill memory.
        // No packet carries more than 65,535 bytes of payload.
        use std::io::Read;
        let mut data = Vec::new();
        std::fs::File::open(&f.value)
            .and_then(|file| file.take(MAX_RAW_FILE as u64 + 1).read_to_end(&mut data))
            .map_err(|e| a.err(f, "a readable file", &format!("{}: {e}", f.value)))?;
        if data.len() > MAX_RAW_FILE {
            return Err(a.err(
                f,
                &format!("a file of at most {MAX_RAW_FILE} bytes (the largest IP payload)"),
                &format!(
                    "{} holds more; cut it, e.g. head -c 1400 FILE > part",
                    f.value
                ),
            ));
        }
        out.extend_from_slice(&data);
    }
    let pattern = a.hex("pattern")?;
    if let Some(n) = a.num("len", 65535)? {
        let p = pattern.unwrap_or_else(|| vec![0]);
        if p.is_empty() {
            let f = a
                .layer
                .fields
                .iter()
                .find(|f| f.name == "pattern")
                .expect("read above");
            return Err(a.err(f, "at least one byte", "pattern=41"));
        }
        out.extend(p.iter().copied().cycle().take(n as usize));
    } else if let Some(p) = pattern {
        out.extend_from_slice(&p);
    }
    Ok(out)
}

fn dns(a: &mut Args) -> Result<Vec<u8>, SpecError> {
    use simple_dns::{CLASS, Name, Packet, PacketFlag, QCLASS, QTYPE, Question, TYPE};
    let id = a.u16("id")?.unwrap_or(0);
    let mut p = Packet::new_query(id);
    let flag = |a: &mut Args, name: &str, default: bool| -> Result<bool, SpecError> {
        Ok(a.flag(name)?.unwrap_or(default))
    };
    let qr = flag(a, "qr", false)?;
    let aa = flag(a, "aa", false)?;
    let tc = flag(a, "tc", false)?;
    let rd = flag(a, "rd", true)?;
    let ra = flag(a, "ra", false)?;
    for (on, f) in [
        (qr, PacketFlag::RESPONSE),
        (aa, PacketFlag::AUTHORITATIVE_ANSWER),
        (tc, PacketFlag::TRUNCATION),
        (rd, PacketFlag::RECURSION_DESIRED),
        (ra, PacketFlag::RECURSION_AVAILABLE),
    ] {
        if on {
            p.set_flags(f);
        }
    }
    let opcode = a.num("opcode", 15)?.unwrap_or(0) as u8;
    let z = a.num("z", 7)?.unwrap_or(0) as u8;
    let rcode = a.num("rcode", 15)?.unwrap_or(0) as u8;
    let qclass = match a.get("qclass") {
        None => QCLASS::CLASS(CLASS::IN),
        Some(f) => match f.value.to_ascii_uppercase().as_str() {
            "IN" => QCLASS::CLASS(CLASS::IN),
            "CH" => QCLASS::CLASS(CLASS::CH),
            "HS" => QCLASS::CLASS(CLASS::HS),
            "ANY" | "*" => QCLASS::ANY,
            n => match n.parse::<u16>().ok().and_then(|v| QCLASS::try_from(v).ok()) {
                Some(c) => c,
                None => {
                    return Err(a.err(f, "a DNS class", "IN, CH, HS, ANY, NONE or their numbers"));
                }
            },
        },
    };
    let mut names = Vec::new();
    if let Some(f) = a.get("qd") {
        for q in f.value.split(';').map(str::trim).filter(|q| !q.is_empty()) {
            let parsed = crate::probe::DnsQuestion::parse(q)
                .map_err(|m| a.err(f, "NAME[:TYPE][;...]", &m))?;
            names.push(parsed);
        }
    }
    for q in &names {
        let name = Name::new(&q.name).map_err(|e| {
            let f = a
                .layer
                .fields
                .iter()
                .find(|f| f.name == "qd")
                .expect("read above");
            a.err(f, "valid DNS names", &e.to_string())
        })?;
        p.questions.push(Question::new(
            name,
            QTYPE::TYPE(TYPE::from(q.qtype)),
            qclass,
            false,
        ));
    }
    let mut b = p.build_bytes_vec().map_err(|e| {
        SpecError::new(
            a.spec,
            a.layer.at,
            format!("cannot encode the DNS message: {e}"),
        )
    })?;
    // Header bits simple-dns has no setter for.
    b[2] = (b[2] & 0x87) | (opcode << 3);
    b[3] = (b[3] & 0x80) | ((z & 0x07) << 4) | (rcode & 0x0f);
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::super::spec::parse;
    use super::*;

    fn craft(spec: &str) -> Result<Crafted, SpecError> {
        let layers = parse(spec)?;
        build(spec, &layers, &|_| Some("198.18.0.2".parse().unwrap()))
    }

    #[test]
    fn defaults_compute_lengths_and_checksums() {
        let c = craft("ip(dst=198.18.1.5)/tcp(dport=80)").unwrap();
        assert_eq!(c.bytes.len(), 40);
        let p = etherparse::SlicedPacket::from_ip(&c.bytes).unwrap();
        let Some(etherparse::TransportSlice::Tcp(t)) = p.transport else {
            panic!()
        };
        let Some(etherparse::NetSlice::Ipv4(ip)) = p.net else {
            panic!()
        };
        assert_eq!(
            t.calc_checksum_ipv4(ip.header().source(), ip.header().destination())
                .unwrap(),
            t.checksum()
        );
        assert_eq!(
            ip.header().header_checksum(),
            ip.header().to_header().calc_header_checksum()
        );
        assert!(t.syn());
    }

    #[test]
    fn explicit_wrong_values_are_kept() {
        let c = craft("ip(dst=198.18.1.5,chksum=0x1234,len=99)/udp(chksum=7)").unwrap();
        assert_eq!(&c.bytes[10..12], &[0x12, 0x34]);
        assert_eq!(&c.bytes[2..4], &[0, 99]);
        assert_eq!(&c.bytes[26..28], &[0, 7]);
    }

    #[test]
    fn errors_name_the_field_and_suggest() {
        let e = craft("ip(dst=198.18.1.5)/tcp(dprt=80)").unwrap_err();
        assert!(e.to_string().contains("did you mean \"dport\""), "{e}");
        assert_eq!(e.at, 23);
        let e = craft("ip(dst=198.18.1.5)/tpc").unwrap_err();
        assert!(e.to_string().contains("did you mean \"tcp\""), "{e}");
        let e = craft("ip(dst=198.18.1.5,ttl=300)").unwrap_err();
        assert!(e.to_string().contains("0 to 255"), "{e}");
        let e = craft("tcp(dport=80)").unwrap_err();
        assert!(e.to_string().contains("needs an ip"), "{e}");
        let e = craft("ip(dst=::1)").unwrap_err();
        assert!(e.to_string().contains("IPv4 address"), "{e}");
        let e = craft("ip(dst=198.18.1.5)/tcp(options=mss:1460;sackk)").unwrap_err();
        assert!(e.to_string().contains("sackok"), "{e}");
    }

    #[test]
    fn icmp_errors_quote_an_inner_packet() {
        let c = craft("ip(dst=198.18.1.5)/icmp(type=dest-unreach,code=3)/ip(src=198.18.1.5,dst=198.18.0.2)/udp(sport=53,dport=4444)").unwrap();
        assert_eq!(c.bytes[20], 3);
        assert_eq!(c.bytes.len(), 20 + 8 + 28);
        assert_eq!(
            Sum16BitWords::new()
                .add_slice(&c.bytes[20..])
                .ones_complement(),
            0
        );
    }
}
