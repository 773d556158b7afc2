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

use super::packet::{RawIpSender, RawSender, SendRefusal, Sniffer};
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

/// One sending thread's sockets.
pub struct LinkSender {
    frames: RawSender,
    kernel: RawIpSender,
}

impl LinkSender {
    /// Queue (frames) or send (kernel) one IP packet under `permit`.
    /// Queued frames leave at [`LinkSender::flush`].
    pub fn send(&mut self, permit: Permit, path: &Path, packet: &[u8]) -> Result<(), LinkError> {
        match path {
            Path::Frame(hop) => self
                .frames
                .queue(permit, hop, packet)
                .map_err(LinkError::Refused),
            Path::Kernel => self
                .kernel
                .send(permit, packet)
                .map_err(LinkError::Refused)?
                .map_err(LinkError::Io),
        }
    }

    /// Send every queued frame.
    pub fn flush(&mut self) -> io::Result<usize> {
        self.frames.flush()
    }

    /// Packets sent so far, both ways.
    pub fn sent(&self) -> u64 {
        self.frames.sent + self.kernel.sent
    }

    /// The frame sender, for neighbour requests.
    pub fn frames(&mut self) -> &mut RawSender {
        &mut self.frames
    }
}

/// An interface's sockets, opened together.
pub struct Link {
    pub ifindex: u32,
    pub senders: Vec<LinkSender>,
    pub sniffer: Sniffer,
}

impl Link {
    /// Open `senders` senders and a sniffer for packets to `ours` on
    /// `ifindex`, whose reads wait at most `poll`, holding `queue` bytes:
    /// in a TPACKET_V3 ring when `ring` (a scan: frames in blocks, kernel
    /// timestamps), or in the socket's queue (`craft`: each frame read as
    /// it comes, for round-trip times).
    pub fn open(
        ifindex: u32,
        ours: &[IpAddr],
        senders: usize,
        poll: Duration,
        (queue, ring): (usize, bool),
    ) -> Result<Link, (&'static str, io::Error)> {
        let sniffer = if ring {
            Sniffer::open_ring(ifindex, ours, poll, queue)
        } else {
            Sniffer::open_with_queue(ifindex, ours, poll, queue)
        }
        .map_err(|e| ("cannot open the sniffer (sonde needs CAP_NET_RAW)", e))?;
        let senders = (0..senders.max(1))
            .map(|_| {
                Ok(LinkSender {
                    frames: RawSender::open(ifindex)
                        .map_err(|e| ("cannot open the raw sender (sonde needs CAP_NET_RAW)", e))?,
                    kernel: RawIpSender::open()
                        .map_err(|e| ("cannot open the raw IP sender", e))?,
                })
            })
            .collect::<Result<_, (&'static str, io::Error)>>()?;
        Ok(Link {
            ifindex,
            senders,
            sniffer,
        })
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
            .frames
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
