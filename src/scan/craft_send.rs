//! Sending a crafted packet (`sonde craft --send`): through the scope gate,
//! paced, the next hop asked for by our own ARP/NDP when the kernel does
//! not know it, and every reply matched to the packet. The command line
//! builds the packet and shows what this reports.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::craft::{Crafted, TransportKind, reply};
use crate::error::Error;
use crate::net::link::{self, Link};
use crate::net::packet::Sniffer;
use crate::net::route::{self, RouteCache, RouteError};
use crate::pcap::PcapWriter;
use crate::scope::{Decision, ProbeKind, ScopeGate};
use crate::targets::AddrRange;

/// What to send, how often, and where the evidence goes.
pub struct CraftSend<'a> {
    /// The scope file authorizing the send.
    pub scope: &'a Path,
    pub crafted: &'a Crafted,
    /// The packet, or its fragments, as IP packets.
    pub packets: &'a [Vec<u8>],
    /// Sends of the whole packet (1 or more).
    pub count: u64,
    /// Seconds between sends, listening meanwhile.
    pub interval: f64,
    /// Seconds to listen after the last send.
    pub wait: f64,
    /// Every packet sent and every reply.
    pub pcap: Option<PathBuf>,
}

/// What happened to one send.
pub enum CraftEvent {
    /// A reply to send `n` (0-based), `rtt` after it left.
    Reply {
        n: u64,
        answer: reply::Answer,
        rtt: Duration,
    },
    /// No reply to send `n` within `waited`.
    NoReply { n: u64, waited: Duration },
}

/// The sends done.
pub struct CraftOutcome {
    pub dst: IpAddr,
    pub sent: u64,
    pub replies: u64,
    pub engagement_id: String,
    pub scope_path: PathBuf,
}

/// `craft --write FILE`: the packets in a pcap (Ethernet or raw IP as
/// crafted), whole or absent: a failure halfway leaves no cut file and an
/// existing one as it was. The file is given to the sudo user.
pub fn write_pcap(path: &Path, ethernet: bool, packets: &[Vec<u8>]) -> Result<(), Error> {
    let linktype = if ethernet {
        crate::pcap::writer::LINKTYPE_ETHERNET
    } else {
        crate::pcap::writer::LINKTYPE_RAW
    };
    let cannot_write = |e| Error::runtime(format!("cannot write {}", path.display()), e);
    let file = crate::output::OutputFile::create(path)
        .map_err(|e| Error::runtime(format!("cannot create {}", path.display()), e))?;
    let mut w = PcapWriter::new(file, linktype, 65535).map_err(cannot_write)?;
    // One microsecond apart, in the order sent.
    let now = crate::clock::now_nanos();
    for (i, p) in packets.iter().enumerate() {
        w.write(now + i as i64 * 1000, p).map_err(cannot_write)?;
    }
    w.flush().map_err(cannot_write)?;
    w.into_inner().commit().map_err(cannot_write)?;
    crate::net::privilege::chown_to_invoker(path)
        .map_err(|e| Error::runtime("cannot give the pcap to the sudo user", e))
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

/// Send `what` under its scope; `on_event` hears each reply or silence as
/// it happens (its error stops the sends).
pub fn send(
    what: &CraftSend<'_>,
    on_event: &mut dyn FnMut(CraftEvent) -> Result<(), Error>,
) -> Result<CraftOutcome, Error> {
    let (crafted, packets) = (what.crafted, what.packets);
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
    let file = crate::scope::ScopeFile::load(what.scope)?;
    // The pace: one packet (with its fragments) per interval, never above the scope's ceiling.
    let per_second = if what.interval > 0.0 {
        (packets.len() as f64 / what.interval).max(1.0)
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
    gate.check_plan(what.count.saturating_mul(packets.len() as u64))
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
    let mut pcap = match &what.pcap {
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
    for n in 0..what.count {
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
        let listen = if n + 1 < what.count {
            Duration::from_secs_f64(what.interval)
        } else {
            Duration::from_secs_f64(what.wait)
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
                on_event(CraftEvent::Reply {
                    n,
                    answer: a,
                    rtt: sent_at.elapsed(),
                })?;
            }
        }
        if !answered {
            on_event(CraftEvent::NoReply { n, waited: listen })?;
        }
    }
    if let Some(w) = pcap.as_mut() {
        w.flush()
            .map_err(|e| Error::runtime("cannot write the pcap", e))?;
    }
    Ok(CraftOutcome {
        dst,
        sent,
        replies,
        engagement_id: file.scope.engagement.id.clone(),
        scope_path: file.path.clone(),
    })
}
