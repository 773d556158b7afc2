//! `sonde craft SPEC`: build one packet (or its fragments), then dump it,
//! write it to a pcap, or send it through the scope gate and show replies.

use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;

use super::write_err;
use crate::analyze::dissect::{Transport, dissect};
use crate::craft::{Crafted, TransportKind, craft, fragment, reply};
use crate::error::Error;
use crate::net::link::{self, Link};
use crate::net::packet::Sniffer;
use crate::net::route::{self, RouteCache, RouteError};
use crate::pcap::{LinkType, PcapWriter};
use crate::scope::{Decision, ProbeKind, ScopeGate};
use crate::targets::AddrRange;
use crate::wire::ethernet::EthernetFrame;
use crate::wire::ip::IpPacket;

#[derive(Debug, Args)]
pub struct CraftArgs {
    /// The packet: layers joined by '/', e.g.
    /// 'ip(dst=198.18.1.5,ttl=3)/tcp(dport=80,flags=S,options=mss:1460;sackok)'
    /// (docs/craft.md has the grammar and every field).
    #[arg(value_name = "SPEC")]
    pub spec: String,

    /// Print a layered dissection (the analyzer's own) and a hex dump
    /// (the default when neither --write nor --send is given).
    #[arg(long)]
    pub dump: bool,

    /// Write the packet(s) to this pcap without sending.
    #[arg(long, value_name = "FILE")]
    pub write: Option<PathBuf>,

    /// Send through the scope gate and show the replies (needs --scope and root).
    #[arg(long, requires = "scope")]
    pub send: bool,

    /// The scope file authorizing --send.
    #[arg(long, value_name = "FILE")]
    pub scope: Option<PathBuf>,

    /// How many times to send (with --send).
    #[arg(long, short = 'c', default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub count: u64,

    /// Seconds between sends (with --send).
    #[arg(
        long,
        short = 'i',
        default_value_t = 1.0,
        value_name = "SECS",
        allow_hyphen_values = true
    )]
    pub interval: f64,

    /// Seconds to wait for replies after the last send.
    #[arg(
        long,
        default_value_t = 1.0,
        value_name = "SECS",
        allow_hyphen_values = true
    )]
    pub wait: f64,

    /// Evidence of --send: every packet sent and every reply.
    #[arg(long, value_name = "FILE", requires = "send")]
    pub pcap: Option<PathBuf>,

    /// Split the IP payload into fragments of SIZE bytes (a multiple of 8).
    #[arg(long, value_name = "SIZE", conflicts_with = "fragments")]
    pub fragment: Option<usize>,

    /// Explicit fragments as byte ranges of the IP payload, OFF:LEN,...
    /// (overlapping and tiny fragments allowed).
    #[arg(long, value_name = "OFF:LEN,...")]
    pub fragments: Option<String>,
}

pub fn run_craft(args: CraftArgs, out: &mut dyn Write) -> Result<i32, Error> {
    super::seconds("--interval", args.interval, "e.g. --interval 0.5")?;
    super::seconds("--wait", args.wait, "e.g. --wait 2")?;
    let source_for = |dst: IpAddr| route::route_to(dst).ok().map(|(_, _, s)| s);
    let crafted = craft(&args.spec, &source_for).map_err(|e| Error::Usage {
        message: format!("bad packet spec: {e}"),
        hint: "docs/craft.md lists every layer and field".into(),
    })?;
    let packets = fragments_of(&crafted, &args)?;

    if args.dump || (args.write.is_none() && !args.send) {
        for (i, p) in packets.iter().enumerate() {
            if packets.len() > 1 {
                writeln!(out, "fragment {} of {}", i + 1, packets.len()).map_err(write_err)?;
            }
            dump(out, crafted.ethernet, p).map_err(write_err)?;
        }
    }
    if let Some(path) = &args.write {
        let file = std::fs::File::create(path)
            .map_err(|e| Error::runtime(format!("cannot create {}", path.display()), e))?;
        crate::net::privilege::chown_to_invoker(path)
            .map_err(|e| Error::runtime("cannot give the pcap to the sudo user", e))?;
        let mut w = PcapWriter::new(file, link_type(&crafted), 65535)
            .map_err(|e| Error::runtime("cannot write the pcap", e))?;
        let now = crate::clock::now_nanos();
        for (i, p) in packets.iter().enumerate() {
            w.write(now + i as i64 * 1000, p)
                .map_err(|e| Error::runtime("cannot write the pcap", e))?;
        }
        w.flush()
            .map_err(|e| Error::runtime("cannot write the pcap", e))?;
        writeln!(
            out,
            "wrote {} packet(s) to {}",
            packets.len(),
            path.display()
        )
        .map_err(write_err)?;
    }
    if args.send {
        return send(&args, &crafted, &packets, out);
    }
    Ok(0)
}

fn link_type(c: &Crafted) -> u32 {
    if c.ethernet {
        crate::pcap::writer::LINKTYPE_ETHERNET
    } else {
        crate::pcap::writer::LINKTYPE_RAW
    }
}

/// The packet itself, or its fragments.
fn fragments_of(c: &Crafted, args: &CraftArgs) -> Result<Vec<Vec<u8>>, Error> {
    if args.fragment.is_none() && args.fragments.is_none() {
        return Ok(vec![c.bytes.clone()]);
    }
    let start = if c.ethernet {
        EthernetFrame::<&[u8]>::HEADER_LEN
    } else {
        0
    };
    let ip = c.bytes.get(start..).unwrap_or(&[]);
    let not_ip = || {
        Error::usage(
            "--fragment needs an IP packet",
            "start the spec with ip(...) or ipv6(...)",
        )
    };
    let parsed = IpPacket::parse(ip).map_err(|_| not_ip())?;
    let payload_len = parsed.after_header().len();
    let ident = match parsed {
        IpPacket::V4(v) => v.ident(),
        IpPacket::V6(_) => 0,
    };
    let pieces = match (&args.fragment, &args.fragments) {
        (Some(size), _) => fragment::even(payload_len, *size),
        (_, Some(list)) => fragment::list(list, payload_len),
        _ => unreachable!("checked above"),
    }
    .map_err(|m| Error::usage(m, "docs/craft.md: Fragments"))?;
    let id = u32::from(ident) ^ 0x5d00_0000;
    let frags = fragment::split(ip, &pieces, id)
        .map_err(|m| Error::usage(m, "docs/craft.md: Fragments"))?;
    Ok(frags
        .into_iter()
        .map(|f| {
            let mut b = c.bytes[..start].to_vec();
            b.extend_from_slice(&f);
            b
        })
        .collect())
}

/// The analyzer's dissection of `bytes`, then a hex dump.
fn dump(out: &mut dyn Write, ethernet: bool, bytes: &[u8]) -> std::io::Result<()> {
    let d = dissect(
        if ethernet {
            LinkType::Ethernet
        } else {
            LinkType::Raw
        },
        bytes,
    );
    if let (true, Ok(e)) = (ethernet, EthernetFrame::new_checked(bytes)) {
        writeln!(
            out,
            "ether  {} > {} type 0x{:04x}",
            mac(&e.src_addr()),
            mac(&e.dst_addr()),
            d.ether_type
        )?;
    }
    if let Some(ip) = d.ip {
        let net = d.net;
        match IpPacket::parse(net) {
            Ok(IpPacket::V6(v)) => writeln!(
                out,
                "ipv6   {} > {} next {} payload {} hop-limit {}",
                ip.src,
                ip.dst,
                ip.proto,
                ip.payload_len,
                v.hop_limit()
            )?,
            Ok(IpPacket::V4(v)) => writeln!(
                out,
                "ip     {} > {} proto {} len {} ttl {} id {} tos 0x{:02x} chksum 0x{:04x}",
                ip.src,
                ip.dst,
                ip.proto,
                v.total_len(),
                v.ttl(),
                v.ident(),
                v.tos(),
                v.checksum()
            )?,
            // The dissector read an IP header there; a view that cannot
            // is a version nibble the spec set on purpose.
            Err(_) => writeln!(out, "ip     {} > {} proto {}", ip.src, ip.dst, ip.proto)?,
        }
        if let Some(f) = ip.fragment {
            writeln!(
                out,
                "       fragment id {} offset {} bytes{}",
                f.id,
                f.offset,
                if f.more { ", more fragments" } else { "" }
            )?;
        }
    }
    match d.transport {
        Some(Transport::Tcp {
            sport,
            dport,
            flags,
            payload,
            valid,
        }) => writeln!(
            out,
            "tcp    {sport} > {dport} flags {} payload {} bytes{}",
            reply::flag_letters(flags),
            payload.len(),
            if valid { "" } else { " (header damaged)" }
        )?,
        Some(Transport::Udp {
            sport,
            dport,
            payload,
        }) => {
            writeln!(
                out,
                "udp    {sport} > {dport} payload {} bytes",
                payload.len()
            )?;
            // DNS on its port, as the analyzer decodes it.
            if (sport == 53 || dport == 53)
                && let Some(m) = crate::analyze::dns::parse(payload, false)
            {
                writeln!(
                    out,
                    "dns    id {} {} rcode {} answers {} question {} {}",
                    m.id,
                    if m.response { "response" } else { "query" },
                    crate::analyze::dns::rcode_name(m.rcode),
                    m.answers,
                    crate::text::visible(&m.qname),
                    crate::analyze::dns::qtype_name(m.qtype)
                )?;
            }
        }
        Some(Transport::Icmp { kind, code }) => writeln!(out, "icmp   type {kind} code {code}")?,
        Some(Transport::Icmpv6 { kind, code }) => writeln!(out, "icmpv6 type {kind} code {code}")?,
        None => {}
    }
    if let Some(s) = d.stopped {
        writeln!(out, "       (dissection stopped: {s})")?;
    }
    for (i, chunk) in bytes.chunks(16).enumerate() {
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
        writeln!(out, "{:04x}  {:<47}  {text}", i * 16, hex.join(" "))?;
    }
    Ok(())
}

fn mac(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The scope's probe kind and port for a crafted packet: TCP is authorized
/// as `syn` on its destination port, UDP as `dns` on its port, ICMP as `icmp`.
fn kind_of(c: &Crafted) -> Result<(ProbeKind, Option<u16>), Error> {
    match c.transport {
        Some(TransportKind::Tcp { dport, .. }) => Ok((ProbeKind::Syn, Some(dport))),
        Some(TransportKind::Udp { dport, .. }) => Ok((ProbeKind::Dns, Some(dport))),
        Some(TransportKind::Icmp { .. } | TransportKind::Icmpv6 { .. }) => {
            Ok((ProbeKind::Icmp, None))
        }
        Some(TransportKind::Other(p)) => Err(Error::usage(
            format!("--send: IP protocol {p} has no probe kind a scope can authorize"),
            "a scope authorizes tcp (as syn), udp (as dns) and icmp; use --write for other protocols",
        )),
        None => Err(Error::usage(
            "--send needs an ip(...) or ipv6(...) layer with a destination",
            "e.g. ip(dst=198.18.1.5)/tcp(dport=80)",
        )),
    }
}

/// Resolve `dst`'s next hop with our own ARP request or neighbour
/// solicitation (the scan's rounds): the frame's next hop, or `None` to
/// leave it to the kernel (a spoofed source, or a next hop the scope does
/// not let sonde ask about). A next hop that never answers is an error:
/// nothing can be sent to it.
fn ask_next_hop(
    gate: &ScopeGate,
    routes: &mut RouteCache,
    link: &mut Link,
    buf: &mut [u8],
    dst: IpAddr,
    src: IpAddr,
) -> Result<Option<route::NextHop>, Error> {
    let (ifindex, next_hop, route_source) = routes
        .next_hop(dst)
        .map_err(|e| Error::runtime("cannot route the packet", e))?;
    if src != route_source || !gate.allows_neighbour_request(next_hop) {
        return Ok(None);
    }
    let Link {
        senders, sniffers, ..
    } = link;
    match link::ask_neighbour(
        gate,
        routes,
        &mut senders[0],
        &mut sniffers[0],
        buf,
        ifindex,
        src,
        next_hop,
    ) {
        Ok(()) => {
            let mut hop = routes
                .resolve(dst)
                .map_err(|e| Error::runtime("cannot route the packet", e))?;
            hop.source = src;
            Ok(Some(hop))
        }
        Err(link::AskError::Refused(r)) => Err(Error::Refused(vec![r])),
        Err(link::AskError::Silent { next_hop }) => Err(Error::Runtime {
            context: format!(
                "{next_hop} (the next hop to {dst}) answered no ARP request or neighbour solicitation: nothing was sent"
            ),
            source: None,
        }),
        Err(e) => Err(Error::runtime("cannot ask for the next hop", e)),
    }
}

fn send(
    args: &CraftArgs,
    crafted: &Crafted,
    packets: &[Vec<u8>],
    out: &mut dyn Write,
) -> Result<i32, Error> {
    if crafted.ethernet {
        return Err(Error::usage(
            "--send builds the Ethernet header from the route's next hop; drop ether(...)",
            "ether(...) is for --write and --dump",
        ));
    }
    let (kind, port) = kind_of(crafted)?;
    let (src, dst) = (
        crafted.src.expect("kind_of checked the IP layer"),
        crafted.dst.expect("kind_of checked the IP layer"),
    );
    let scope_path = args.scope.as_ref().expect("clap requires --scope");
    let file = crate::scope::ScopeFile::load(scope_path)?;
    // The pace: one packet (with its fragments) per interval, never above the scope's ceiling.
    let per_second = if args.interval > 0.0 {
        (packets.len() as f64 / args.interval).max(1.0)
    } else {
        file.scope.max_rate
    };
    let local = route::local_addresses()
        .map_err(|e| Error::runtime("cannot read this host's addresses", e))?;
    let gate = ScopeGate::new(
        file.scope.clone(),
        Some(per_second.min(file.scope.max_rate)),
    )
    .map_err(Error::from)?
    .with_local_sources(local);
    // Refused before anything is opened or sent: the destination, and the
    // source (the replies go there).
    if let Decision::Refused(r) = gate.decide(AddrRange::single(dst), port, kind, &dst.to_string())
    {
        return Err(Error::Refused(vec![r]));
    }
    gate.check_source(src)
        .map_err(|r| Error::Refused(vec![r]))?;
    gate.check_plan(args.count.saturating_mul(packets.len() as u64))
        .map_err(|r| Error::Refused(vec![r]))?;

    let mut routes = RouteCache::load().map_err(|e| Error::runtime("cannot read the routes", e))?;
    let (ifindex, _, _) = routes
        .route(dst)
        .map_err(|e| Error::runtime("cannot route the packet", e))?;
    let loopback = !routes
        .link(ifindex)
        .map_err(|e| Error::runtime("cannot read the interface", e))?
        .resolves_neighbours;
    let hop = match routes.resolve(dst) {
        // Loopback goes through the kernel's raw IP socket: IPv4 to
        // 127.0.0.0/8 injected as a frame is dropped as a martian.
        Ok(_) if loopback => None,
        Ok(mut h) => {
            h.source = src;
            Some(h)
        }
        Err(RouteError::NeighbourUnknown { .. }) => None,
        Err(e) => return Err(Error::runtime("cannot route the packet", e)),
    };
    let mut link = Link::open(
        &[link::Interface {
            ifindex,
            ours: vec![src],
            queue: Sniffer::DEFAULT_QUEUE,
        }],
        1,
        Duration::from_millis(20),
        false,
    )
    .map_err(|(what, e)| Error::runtime(what, e))?;
    let mut pcap = match &args.pcap {
        Some(p) => {
            let f = std::fs::File::create(p)
                .map_err(|e| Error::runtime(format!("cannot create {}", p.display()), e))?;
            crate::net::privilege::chown_to_invoker(p)
                .map_err(|e| Error::runtime("cannot give the pcap to the sudo user", e))?;
            Some(
                PcapWriter::new(f, crate::pcap::writer::LINKTYPE_RAW, 65535)
                    .map_err(|e| Error::runtime("cannot write the pcap", e))?,
            )
        }
        None => None,
    };
    // Every socket is open: no capability is needed from here on.
    crate::net::privilege::drop_all()
        .map_err(|e| Error::runtime("cannot drop capabilities after opening the sockets", e))?;
    let mut frame = vec![0u8; 65536];
    // A next hop the kernel does not know: ask for it ourselves, under the
    // gate, as the scan does; the kernel's path stays for a spoofed source
    // (the answer would go elsewhere) and a gateway outside the scope.
    let hop = match hop {
        None if !loopback => ask_next_hop(&gate, &mut routes, &mut link, &mut frame, dst, src)?,
        hop => hop,
    };
    let path = match hop {
        Some(h) => link::Path::Frame(h),
        None => link::Path::Kernel,
    };
    let (mut sent, mut replies) = (0u64, 0u64);
    for n in 0..args.count {
        // The fragments of one packet can outnumber one allowance (its
        // burst is about 10 ms of the pace): reserve again as it runs out.
        let mut batch = None;
        for p in packets {
            if batch
                .as_ref()
                .is_none_or(|b: &crate::scope::Allowance| b.remaining() == 0)
            {
                batch = Some(
                    gate.reserve((packets.len()) as u32)
                        .map_err(|r| Error::Refused(vec![r]))?,
                );
            }
            let permit = batch
                .as_mut()
                .expect("reserved above")
                .permit(src, dst, port, kind)
                .map_err(|r| Error::Refused(vec![r]))?;
            if let Some(w) = pcap.as_mut() {
                w.write(crate::clock::now_nanos(), p)
                    .map_err(|e| Error::runtime("cannot write the pcap", e))?;
            }
            link.senders[0]
                .send(permit, &path, p)
                .map_err(|e| Error::runtime("cannot send", e))?;
        }
        link.senders[0]
            .flush()
            .map_err(|e| Error::runtime("cannot send", e))?;
        // Timed from when the packet left, not from before the gate paced
        // it (a neighbour request may have taken the last token).
        let sent_at = Instant::now();
        sent += packets.len() as u64;
        // Listen until the next send (or the final wait).
        let listen = if n + 1 < args.count {
            Duration::from_secs_f64(args.interval)
        } else {
            Duration::from_secs_f64(args.wait)
        };
        let mut answered = false;
        while sent_at.elapsed() < listen {
            let Ok(Some(f)) = link.sniffers[0].next(&mut frame) else {
                continue;
            };
            let ip = crate::wire::ethernet::payload_of(f);
            if let Some(a) = reply::answers(crafted, ip) {
                replies += 1;
                answered = true;
                if let Some(w) = pcap.as_mut() {
                    w.write(crate::clock::now_nanos(), ip)
                        .map_err(|e| Error::runtime("cannot write the pcap", e))?;
                }
                writeln!(
                    out,
                    "len={} ip={} ttl={} {} seq={} rtt={:.2} ms",
                    a.len,
                    a.from,
                    a.ttl,
                    a.summary,
                    n,
                    sent_at.elapsed().as_secs_f64() * 1000.0
                )
                .map_err(write_err)?;
            }
        }
        if !answered {
            writeln!(
                out,
                "no reply to packet {n} within {:.2} s",
                listen.as_secs_f64()
            )
            .map_err(write_err)?;
        }
    }
    if let Some(w) = pcap.as_mut() {
        w.flush()
            .map_err(|e| Error::runtime("cannot write the pcap", e))?;
    }
    writeln!(
        out,
        "--- {dst}: {sent} packet(s) sent, {replies} repl{} (scope {}, {})",
        if replies == 1 { "y" } else { "ies" },
        file.scope.engagement.id,
        file.path.display()
    )
    .map_err(write_err)?;
    Ok(0)
}
