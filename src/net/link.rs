//! One interface as sonde uses it, for `scan` and `craft` alike: sending
//! IP packets under permits (as whole frames to a next hop's MAC, or through
//! the kernel where a frame cannot go), receiving frames, and asking for a
//! next hop's MAC with sonde's own ARP request or neighbour solicitation.
//!
//! A [`Link`] is opened while the process still holds CAP_NET_RAW and is
//! then split: each sending thread owns a [`LinkSender`], the receive
//! thread the [`Sniffer`].

use std::io;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::packet::{RawIpSender, RawSender, RecvBatch, SendRefusal, Sniffer, SnifferStats};
use super::route::{NextHop, RouteCache, RouteError};
use crate::scope::{Permit, Refusal, ScopeGate};

/// How a packet reaches its destination.
#[derive(Clone, Debug)]
pub enum Path {
    /// A whole frame to the next hop's MAC.
    Frame(NextHop),
    /// The kernel's raw IP socket: loopback (IPv4 to 127.0.0.0/8 injected
    /// as a frame is dropped as a martian), and, for `craft`, a spoofed
    /// source or a next hop the scope does not let sonde ask about.
    Kernel,
}

/// Why a packet was not sent.
#[derive(Debug)]
pub enum LinkError {
    /// The packet does not match its permit (a bug, never sent).
    Refused(SendRefusal),
    Io(io::Error),
}

impl std::fmt::Display for LinkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LinkError::Refused(r) => write!(f, "{r}"),
            LinkError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for LinkError {}

/// One sending thread's sockets: a frame sender on every interface the
/// run uses, and the kernel's raw IP socket (not bound to an interface).
pub struct LinkSender {
    /// By interface index; a run uses a few interfaces, so a list.
    frames: Vec<(u32, RawSender)>,
    kernel: RawIpSender,
}

impl LinkSender {
    /// Queue (frames) or send (kernel) one IP packet under `permit`.
    /// Queued frames leave at [`LinkSender::flush`].
    pub fn send(&mut self, permit: Permit, path: &Path, packet: &[u8]) -> Result<(), LinkError> {
        match path {
            Path::Frame(hop) => self
                .frames(hop.ifindex)
                .ok_or_else(|| LinkError::Io(not_opened(hop.ifindex)))?
                .queue(permit, hop, packet)
                .map_err(LinkError::Refused),
            Path::Kernel => self
                .kernel
                .send(permit, packet)
                .map_err(LinkError::Refused)?
                .map_err(LinkError::Io),
        }
    }

    /// Send every queued frame, on every interface.
    pub fn flush(&mut self) -> io::Result<usize> {
        let mut n = 0;
        for (_, f) in &mut self.frames {
            n += f.flush()?;
        }
        Ok(n)
    }

    /// Packets sent so far, every way.
    pub fn sent(&self) -> u64 {
        self.frames.iter().map(|(_, f)| f.sent).sum::<u64>() + self.kernel.sent
    }

    /// The frame sender on `ifindex` (for neighbour requests), if the
    /// link was opened on it.
    pub fn frames(&mut self, ifindex: u32) -> Option<&mut RawSender> {
        self.frames
            .iter_mut()
            .find(|(i, _)| *i == ifindex)
            .map(|(_, f)| f)
    }
}

fn not_opened(ifindex: u32) -> io::Error {
    io::Error::other(format!(
        "no socket was opened on interface {ifindex} (its route changed during the run?)"
    ))
}

/// One sending thread's way out, as the scan engine uses it: the
/// [`LinkSender`] over real sockets, or a simulated network in tests.
/// Every packet goes under a [`Permit`] the gate gave for it.
pub trait ProbeSender: Send {
    /// Queue (frames) or send (kernel) one IP packet under `permit`.
    fn send(&mut self, permit: Permit, path: &Path, packet: &[u8]) -> Result<(), LinkError>;
    /// Queue one whole ARP request or neighbour solicitation frame on
    /// `ifindex` under a neighbour permit.
    fn send_neighbour_request(
        &mut self,
        ifindex: u32,
        permit: Permit,
        frame: &[u8],
    ) -> Result<(), LinkError>;
    /// Send everything queued.
    fn flush(&mut self) -> io::Result<usize>;
    /// Packets sent so far, every way.
    fn sent(&self) -> u64;
}

/// One link's capture, as the scan engine reads it.
pub trait FrameSource: Send {
    /// The next batch of captured frames (0: none within the poll time).
    fn next_batch(&mut self, batch: &mut RecvBatch) -> io::Result<usize>;
    fn stats(&mut self) -> io::Result<SnifferStats>;
}

/// Where a scan's packets go and how targets are reached: the kernel's
/// routes and sockets ([`KernelNetwork`]), or a simulation.
pub trait Network: Send + Sync {
    /// This host's addresses: the sources the gate lets packets carry.
    fn local_addresses(&self) -> Result<crate::targets::IpSet, RouteError>;
    /// The routes, neighbours and interfaces (one cache per sending thread).
    fn routes(&self) -> Result<RouteCache, RouteError>;
    /// On each of `interfaces` a capture, and `senders` sending threads'
    /// ways out over all of them.
    #[allow(clippy::type_complexity)]
    fn open(
        &self,
        interfaces: &[Interface],
        senders: usize,
    ) -> Result<(Vec<Box<dyn ProbeSender>>, Vec<Box<dyn FrameSource>>), (&'static str, io::Error)>;
    /// Give up every privilege once everything is open.
    fn drop_privileges(&self) -> io::Result<()>;
}

/// The kernel's routes and sockets: what a scan runs on.
pub struct KernelNetwork;

impl Network for KernelNetwork {
    fn local_addresses(&self) -> Result<crate::targets::IpSet, RouteError> {
        super::route::local_addresses()
    }

    fn routes(&self) -> Result<RouteCache, RouteError> {
        RouteCache::load()
    }

    fn open(
        &self,
        interfaces: &[Interface],
        senders: usize,
    ) -> Result<(Vec<Box<dyn ProbeSender>>, Vec<Box<dyn FrameSource>>), (&'static str, io::Error)>
    {
        // Sniffer reads wait 50 ms at most; frames come in ring blocks.
        let link = Link::open(interfaces, senders, Duration::from_millis(50), true)?;
        Ok((
            link.senders
                .into_iter()
                .map(|s| Box::new(s) as Box<dyn ProbeSender>)
                .collect(),
            link.sniffers
                .into_iter()
                .map(|s| Box::new(s) as Box<dyn FrameSource>)
                .collect(),
        ))
    }

    fn drop_privileges(&self) -> io::Result<()> {
        super::privilege::drop_all()
    }
}

impl ProbeSender for LinkSender {
    fn send(&mut self, permit: Permit, path: &Path, packet: &[u8]) -> Result<(), LinkError> {
        LinkSender::send(self, permit, path, packet)
    }

    fn send_neighbour_request(
        &mut self,
        ifindex: u32,
        permit: Permit,
        frame: &[u8],
    ) -> Result<(), LinkError> {
        self.frames(ifindex)
            .ok_or_else(|| LinkError::Io(not_opened(ifindex)))?
            .queue_neighbour_request(permit, frame)
            .map_err(LinkError::Refused)
    }

    fn flush(&mut self) -> io::Result<usize> {
        LinkSender::flush(self)
    }

    fn sent(&self) -> u64 {
        LinkSender::sent(self)
    }
}

impl FrameSource for Sniffer {
    fn next_batch(&mut self, batch: &mut RecvBatch) -> io::Result<usize> {
        Sniffer::next_batch(self, batch)
    }

    fn stats(&mut self) -> io::Result<SnifferStats> {
        Sniffer::stats(self)
    }
}

/// The sockets of a run over one or more interfaces, opened together.
pub struct Link {
    pub senders: Vec<LinkSender>,
    /// One per interface, in the order asked.
    pub sniffers: Vec<Sniffer>,
}

/// One interface a run uses: its index, the addresses its replies come to
/// (the sniffer keeps only those) and the bytes its sniffer holds.
#[derive(Clone, Debug)]
pub struct Interface {
    pub ifindex: u32,
    pub ours: Vec<IpAddr>,
    pub queue: usize,
}

impl Link {
    /// Open, on each of `interfaces`, a sniffer for packets to its `ours`,
    /// and `senders` sending threads' sockets holding a frame sender on
    /// each. Sniffer reads wait at most `poll` and hold the interface's
    /// `queue` bytes: in a TPACKET_V3 ring when `ring` (a scan: frames in
    /// blocks, kernel timestamps), or in the socket's queue (`craft`: each
    /// frame read as it comes, for round-trip times).
    pub fn open(
        interfaces: &[Interface],
        senders: usize,
        poll: Duration,
        ring: bool,
    ) -> Result<Link, (&'static str, io::Error)> {
        let sniffers = interfaces
            .iter()
            .map(|i| {
                if ring {
                    Sniffer::open_ring(i.ifindex, &i.ours, poll, i.queue)
                } else {
                    Sniffer::open_with_queue(i.ifindex, &i.ours, poll, i.queue)
                }
                .map_err(|e| ("cannot open the sniffer (sonde needs CAP_NET_RAW)", e))
            })
            .collect::<Result<_, _>>()?;
        let senders = (0..senders.max(1))
            .map(|_| {
                Ok(LinkSender {
                    frames: interfaces
                        .iter()
                        .map(|i| {
                            RawSender::open(i.ifindex)
                                .map(|f| (i.ifindex, f))
                                .map_err(|e| {
                                    ("cannot open the raw sender (sonde needs CAP_NET_RAW)", e)
                                })
                        })
                        .collect::<Result<_, _>>()?,
                    kernel: RawIpSender::open()
                        .map_err(|e| ("cannot open the raw IP sender", e))?,
                })
            })
            .collect::<Result<_, (&'static str, io::Error)>>()?;
        Ok(Link { senders, sniffers })
    }
}

/// How long each round of asking for next hops waits after its last
/// request: a live host on the link answers within a millisecond (nmap's
/// ARP ping starts from a 100 ms timeout too); the later rounds are for
/// requests or answers that were lost, and for hosts slow to wake. The
/// scan's discovery and `craft` use the same rounds.
pub const ROUND_WAITS: [Duration; 3] = [
    Duration::from_millis(100),
    Duration::from_millis(250),
    Duration::from_millis(500),
];

/// Why a next hop could not be asked for or did not answer.
#[derive(Debug)]
pub enum AskError {
    Refused(Refusal),
    Route(RouteError),
    Link(LinkError),
    /// No answer after every round.
    Silent {
        next_hop: IpAddr,
    },
}

impl std::fmt::Display for AskError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AskError::Refused(r) => write!(f, "refused by scope: {r}"),
            AskError::Route(e) => write!(f, "{e}"),
            AskError::Link(e) => write!(f, "cannot send: {e}"),
            AskError::Silent { next_hop } => write!(
                f,
                "{next_hop} answered no ARP request or neighbour solicitation"
            ),
        }
    }
}

impl std::error::Error for AskError {}

/// Ask for the MAC of `next_hop` (on `ifindex`) from `src`, under the
/// gate, in [`ROUND_WAITS`] rounds, reading answers from `sniffer` into
/// `buf`; the answer is learned by `routes`.
#[allow(clippy::too_many_arguments)]
pub fn ask_neighbour(
    gate: &ScopeGate,
    routes: &mut RouteCache,
    sender: &mut LinkSender,
    sniffer: &mut Sniffer,
    buf: &mut [u8],
    ifindex: u32,
    src: IpAddr,
    next_hop: IpAddr,
) -> Result<(), AskError> {
    let mac = routes.link(ifindex).map_err(AskError::Route)?.mac;
    let mut request = Vec::with_capacity(86);
    crate::probe::neighbour::request(&mut request, mac, src, next_hop);
    for wait in ROUND_WAITS {
        let Some(mut batch) = gate
            .reserve_neighbour_requests(1, &|| false)
            .map_err(AskError::Refused)?
        else {
            continue;
        };
        let permit = batch
            .permit_neighbour_request(src, next_hop)
            .map_err(AskError::Refused)?;
        sender
            .frames(ifindex)
            .ok_or_else(|| AskError::Link(LinkError::Io(not_opened(ifindex))))?
            .queue_neighbour_request(permit, &request)
            .map_err(|r| AskError::Link(LinkError::Refused(r)))?;
        sender
            .flush()
            .map_err(|e| AskError::Link(LinkError::Io(e)))?;
        let asked = Instant::now();
        while asked.elapsed() < wait {
            let Ok(Some(f)) = sniffer.next(buf) else {
                continue;
            };
            if let Some((ip, mac)) = crate::probe::neighbour::answer(f)
                && ip == next_hop
            {
                routes.learn(ifindex, ip, mac);
                return Ok(());
            }
        }
    }
    Err(AskError::Silent { next_hop })
}
