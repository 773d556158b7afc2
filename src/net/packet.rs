//! AF_PACKET: the raw sender and the sniffer.
//!
//! The sender writes whole Ethernet frames in batches with sendmmsg, with
//! PACKET_QDISC_BYPASS (the kernel's queueing layer would cap the rate and
//! show our probes to local sniffers twice). It takes nothing but a
//! [`Permit`] per packet, and checks that the packet it is handed goes to
//! the permit's address: a permit for one target cannot carry a packet to
//! another.
//!
//! ARP requests and neighbour solicitations (`probe::neighbour`) go out
//! through the same sender under neighbour permits, which name the address
//! asked about; the sender checks the frame asks about that address.
//!
//! [`RawIpSender`] is the scan's path on loopback (where the kernel drops
//! IPv4 to 127.0.0.0/8 injected as frames) and `craft`'s for next hops
//! whose MAC is unknown.
//!
//! The sniffer reads every frame of one interface through a kernel BPF
//! filter that keeps only IP packets addressed to our source address (the
//! replies) and ARP about our IPv4 address (neighbour discovery's
//! answers), and reads the kernel's drop counter (PACKET_STATISTICS).

use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use super::route::NextHop;
use super::sys::{check, setsockopt};
use crate::scope::Permit;

// linux/if_packet.h and asm-generic/socket.h
const PACKET_QDISC_BYPASS: libc::c_int = 20;
const PACKET_STATISTICS: libc::c_int = 6;
const SO_ATTACH_FILTER: libc::c_int = 26;

#[repr(C)]
#[derive(Default)]
struct TpacketStats {
    tp_packets: u32,
    tp_drops: u32,
}

fn packet_socket(protocol: u16, ifindex: u32) -> io::Result<OwnedFd> {
    // socket2 opens it (close-on-exec) and owns it; binding to a link
    // layer address has no safe form there.
    let fd: OwnedFd = socket2::Socket::new(
        socket2::Domain::PACKET,
        socket2::Type::RAW,
        Some(socket2::Protocol::from(i32::from(protocol.to_be()))),
    )?
    .into();
    // SAFETY: sockaddr_ll is plain data; zeroed is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = protocol.to_be();
    sll.sll_ifindex = ifindex as i32;
    // SAFETY: sll is a valid sockaddr_ll of the size passed.
    check(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    })?;
    Ok(fd)
}

/// Why a packet was not queued.
#[derive(Debug, PartialEq, Eq)]
pub enum SendRefusal {
    /// The packet's destination is not the permit's.
    NotPermitted {
        permit: IpAddr,
        packet: Option<IpAddr>,
    },
    /// The next hop is for another target.
    WrongNextHop { permit: IpAddr, hop: IpAddr },
    /// The packet's source is not the one the permit was issued for.
    WrongSource {
        permit: IpAddr,
        packet: Option<IpAddr>,
    },
}

impl std::fmt::Display for SendRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendRefusal::NotPermitted { permit, packet } => write!(
                f,
                "a permit for {permit} cannot send a packet to {packet:?}"
            ),
            SendRefusal::WrongNextHop { permit, hop } => {
                write!(f, "a permit for {permit} was given the next hop of {hop}")
            }
            SendRefusal::WrongSource { permit, packet } => write!(
                f,
                "a permit for source {permit} cannot send a packet from {packet:?}"
            ),
        }
    }
}

/// The destination address of an IP packet, if it has one.
fn destination(ip: &[u8]) -> Option<IpAddr> {
    crate::wire::ip::IpPacket::parse(ip).ok().map(|p| p.dst())
}

/// The source address of an IP packet, if it has one.
fn source(ip: &[u8]) -> Option<IpAddr> {
    crate::wire::ip::IpPacket::parse(ip).ok().map(|p| p.src())
}

/// The packet must go where the permit says, from where the permit says.
pub(crate) fn check_addresses(permit: &Permit, ip_packet: &[u8]) -> Result<(), SendRefusal> {
    let dst = destination(ip_packet);
    if dst != Some(permit.dst()) || permit.is_neighbour_request() {
        return Err(SendRefusal::NotPermitted {
            permit: permit.dst(),
            packet: dst,
        });
    }
    let src = source(ip_packet);
    if src != Some(permit.src()) {
        return Err(SendRefusal::WrongSource {
            permit: permit.src(),
            packet: src,
        });
    }
    Ok(())
}

/// A neighbour request frame must ask about the permit's address, from
/// its source, under a neighbour permit.
pub(crate) fn check_neighbour_request(permit: &Permit, frame: &[u8]) -> Result<(), SendRefusal> {
    let asked = crate::probe::neighbour::asked(frame);
    if !permit.is_neighbour_request() || asked.map(|(_, t)| t) != Some(permit.dst()) {
        return Err(SendRefusal::NotPermitted {
            permit: permit.dst(),
            packet: asked.map(|(_, t)| t),
        });
    }
    if asked.map(|(s, _)| s) != Some(permit.src()) {
        return Err(SendRefusal::WrongSource {
            permit: permit.src(),
            packet: asked.map(|(s, _)| s),
        });
    }
    Ok(())
}

/// One message header per buffer, for sendmmsg and recvmmsg: each points at
/// its iovec, so `iovs` must outlive the headers' use.
fn message_headers(iovs: &mut [libc::iovec]) -> Vec<libc::mmsghdr> {
    iovs.iter_mut()
        .map(|iov| {
            // SAFETY: msghdr is plain data; zeroed is valid.
            let mut h: libc::msghdr = unsafe { std::mem::zeroed() };
            h.msg_iov = iov;
            h.msg_iovlen = 1;
            libc::mmsghdr {
                msg_hdr: h,
                msg_len: 0,
            }
        })
        .collect()
}

/// Batches Ethernet frames and sends them with sendmmsg.
pub struct RawSender {
    fd: OwnedFd,
    frames: Vec<Vec<u8>>,
    queued: usize,
    pub sent: u64,
}

impl RawSender {
    /// A sender on interface `ifindex` (needs CAP_NET_RAW).
    pub fn open(ifindex: u32) -> io::Result<RawSender> {
        // Protocol 0: this socket receives nothing.
        let fd = packet_socket(0, ifindex)?;
        // Best effort: kernels before 3.14 lack it, and sending still works.
        let _ = setsockopt(&fd, libc::SOL_PACKET, PACKET_QDISC_BYPASS, &1i32);
        Ok(RawSender {
            fd,
            frames: Vec::new(),
            queued: 0,
            sent: 0,
        })
    }

    /// Queue one IP packet for the permit's target, framed for `hop`.
    /// The permit is consumed: one permit, one packet.
    pub fn queue(
        &mut self,
        permit: Permit,
        hop: &NextHop,
        ip_packet: &[u8],
    ) -> Result<(), SendRefusal> {
        check_addresses(&permit, ip_packet)?;
        if hop.target != permit.dst() {
            return Err(SendRefusal::WrongNextHop {
                permit: permit.dst(),
                hop: hop.target,
            });
        }
        if self.queued == self.frames.len() {
            self.frames.push(Vec::with_capacity(128));
        }
        let frame = &mut self.frames[self.queued];
        frame.clear();
        frame.extend_from_slice(&hop.next_hop_mac);
        frame.extend_from_slice(&hop.source_mac);
        frame.extend_from_slice(&crate::wire::ethernet::ethertype_of_ip(ip_packet).to_be_bytes());
        frame.extend_from_slice(ip_packet);
        self.queued += 1;
        Ok(())
    }

    /// Queue one whole neighbour request frame (ARP request, neighbour
    /// solicitation, from `probe::neighbour::request`) under a neighbour
    /// permit: it must ask about the permit's address, from its source.
    pub fn queue_neighbour_request(
        &mut self,
        permit: Permit,
        frame: &[u8],
    ) -> Result<(), SendRefusal> {
        check_neighbour_request(&permit, frame)?;
        if self.queued == self.frames.len() {
            self.frames.push(Vec::with_capacity(128));
        }
        let f = &mut self.frames[self.queued];
        f.clear();
        f.extend_from_slice(frame);
        self.queued += 1;
        Ok(())
    }

    /// The frames queued and not yet sent.
    pub fn pending(&self) -> impl Iterator<Item = &[u8]> {
        self.frames[..self.queued].iter().map(Vec::as_slice)
    }

    /// Send everything queued in as few sendmmsg calls as the kernel allows.
    pub fn flush(&mut self) -> io::Result<usize> {
        let mut done = 0;
        while done < self.queued {
            let mut iovs: Vec<libc::iovec> = self.frames[done..self.queued]
                .iter()
                .map(|f| libc::iovec {
                    iov_base: f.as_ptr() as *mut libc::c_void,
                    iov_len: f.len(),
                })
                .collect();
            let mut msgs = message_headers(&mut iovs);
            // SAFETY: msgs and the iovecs and frames they point to live until the call returns.
            let n = unsafe {
                libc::sendmmsg(self.fd.as_raw_fd(), msgs.as_mut_ptr(), msgs.len() as u32, 0)
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                // Keep what was not sent queued: the caller decides.
                self.frames.rotate_left(done);
                self.queued -= done;
                return Err(e);
            }
            done += n as usize;
            self.sent += n as u64;
        }
        self.queued = 0;
        Ok(done)
    }
}

/// Sends whole IP packets through a raw IP socket (IPPROTO_RAW, the header
/// is ours): the kernel routes them and resolves the next hop's MAC itself,
/// as for any traffic. The scan uses it on loopback only (nothing to
/// resolve there, so it never waits); `craft` for a next hop whose MAC is
/// unknown. Slower than [`RawSender`], one syscall a packet.
pub struct RawIpSender {
    v4: Option<socket2::Socket>,
    v6: Option<socket2::Socket>,
    pub sent: u64,
}

impl RawIpSender {
    pub fn open() -> io::Result<RawIpSender> {
        // IPPROTO_RAW: the packets carry their own IP header.
        let open = |domain| {
            socket2::Socket::new(
                domain,
                socket2::Type::RAW,
                Some(socket2::Protocol::from(libc::IPPROTO_RAW)),
            )
        };
        Ok(RawIpSender {
            v4: Some(open(socket2::Domain::IPV4)?),
            v6: open(socket2::Domain::IPV6).ok(),
            sent: 0,
        })
    }

    /// Send one IP packet for the permit's target. The permit is consumed.
    pub fn send(
        &mut self,
        permit: Permit,
        ip_packet: &[u8],
    ) -> Result<io::Result<()>, SendRefusal> {
        check_addresses(&permit, ip_packet)?;
        let dst = permit.dst();
        let socket = match dst {
            IpAddr::V4(_) => self.v4.as_ref().ok_or("no IPv4 raw socket"),
            IpAddr::V6(_) => self.v6.as_ref().ok_or("no IPv6 raw socket"),
        };
        let sent = match socket {
            Ok(socket) => socket.send_to(
                ip_packet,
                &socket2::SockAddr::from(std::net::SocketAddr::new(dst, 0)),
            ),
            Err(why) => return Ok(Err(io::Error::other(why))),
        };
        if let Err(e) = sent {
            return Ok(Err(e));
        }
        self.sent += 1;
        Ok(Ok(()))
    }
}

/// Frames received in one [`Sniffer::next_batch`] call, with their times.
pub struct RecvBatch {
    /// recvmmsg's buffers (without a ring).
    bufs: Vec<Vec<u8>>,
    data: Vec<u8>,
    ends: Vec<usize>,
    times: Vec<i64>,
}

impl RecvBatch {
    /// Room for `slots` frames of up to `frame` bytes per system call
    /// without a ring (longer ones are cut); with a ring, a batch is a
    /// whole block of any number of frames.
    pub fn new(slots: usize, frame: usize) -> RecvBatch {
        RecvBatch {
            bufs: (0..slots.max(1)).map(|_| vec![0u8; frame]).collect(),
            data: Vec::new(),
            ends: Vec::new(),
            times: Vec::new(),
        }
    }

    /// Empty the batch (a simulated capture fills it with [`push`]).
    ///
    /// [`push`]: RecvBatch::push
    pub fn clear(&mut self) {
        self.data.clear();
        self.ends.clear();
        self.times.clear();
    }

    /// Add one frame captured at `nanos` (ns since the Unix epoch).
    pub fn push(&mut self, frame: &[u8], nanos: i64) {
        self.data.extend_from_slice(frame);
        self.ends.push(self.data.len());
        self.times.push(nanos);
    }

    /// The frames of the last call.
    pub fn frames(&self) -> impl Iterator<Item = &[u8]> {
        std::iter::once(0)
            .chain(self.ends.iter().copied())
            .zip(self.ends.iter().copied())
            .map(|(s, e)| &self.data[s..e])
    }

    /// When each frame was captured (ns since the Unix epoch): the
    /// kernel's time with a ring, the time of the call without.
    pub fn times(&self) -> &[i64] {
        &self.times
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
}

/// How long a ring block may wait before the kernel hands it over partly
/// filled: the latency a reply can gain at low rates.
const RING_RETIRE: Duration = Duration::from_millis(10);

/// Kernel counters of a sniffer socket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SnifferStats {
    /// Frames that passed the filter.
    pub received: u64,
    /// Frames the kernel dropped because sonde did not read fast enough.
    pub dropped: u64,
}

/// Reads frames addressed to our source addresses from one interface.
pub struct Sniffer {
    fd: OwnedFd,
    stats: SnifferStats,
    /// A TPACKET_V3 ring (the scan's receive thread), or none (`craft`:
    /// one frame per call, timed when read).
    ring: Option<super::ring::RxRing>,
    timeout: Duration,
    /// Frames of a ring block not yet handed out by `next`.
    pending: std::collections::VecDeque<Vec<u8>>,
}

impl Sniffer {
    /// A sniffer on `ifindex` keeping IPv4/IPv6 packets to one of `ours` (at most one of each family).
    pub fn open(ifindex: u32, ours: &[IpAddr], timeout: Duration) -> io::Result<Sniffer> {
        Sniffer::open_with_queue(ifindex, ours, timeout, Sniffer::DEFAULT_QUEUE)
    }

    /// The receive queue `open` asks for: 64 MiB.
    pub const DEFAULT_QUEUE: usize = 64 << 20;

    /// As `open`, with a receive queue of `queue` bytes (the kernel counts
    /// each packet's whole buffer, about 1 KiB for a small reply).
    pub fn open_with_queue(
        ifindex: u32,
        ours: &[IpAddr],
        timeout: Duration,
        queue: usize,
    ) -> io::Result<Sniffer> {
        let fd = packet_socket(libc::ETH_P_ALL as u16, ifindex)?;
        let program = filter_to(ours);
        let prog = libc::sock_fprog {
            len: program.len() as u16,
            filter: program.as_ptr() as *mut libc::sock_filter,
        };
        setsockopt(&fd, libc::SOL_SOCKET, SO_ATTACH_FILTER, &prog)?;
        // A deep receive queue: at 100k replies/s the default (~200 KiB)
        // overflows within milliseconds of any scheduling hiccup. FORCE lifts
        // the rmem_max cap for root; without it, take what the cap allows.
        let depth = libc::c_int::try_from(queue).unwrap_or(libc::c_int::MAX);
        if setsockopt(&fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &depth).is_err() {
            let _ = setsockopt(&fd, libc::SOL_SOCKET, libc::SO_RCVBUF, &depth);
        }
        let tv = libc::timeval {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_usec: timeout.subsec_micros() as libc::suseconds_t,
        };
        setsockopt(&fd, libc::SOL_SOCKET, libc::SO_RCVTIMEO, &tv)?;
        // Frames that arrived before the filter was attached: discard them.
        super::sys::drain(&fd);
        Ok(Sniffer {
            fd,
            stats: SnifferStats::default(),
            ring: None,
            timeout,
            pending: Default::default(),
        })
    }

    /// As `open_with_queue`, reading through a TPACKET_V3 ring of about
    /// `queue` bytes whose blocks are handed over when full or after
    /// `timeout` at the latest.
    pub fn open_ring(
        ifindex: u32,
        ours: &[IpAddr],
        timeout: Duration,
        queue: usize,
    ) -> io::Result<Sniffer> {
        // The socket's own queue stays small: the ring holds the frames.
        let mut s = Sniffer::open_with_queue(ifindex, ours, timeout, 1 << 20)?;
        s.ring = Some(super::ring::RxRing::new(&s.fd, queue, RING_RETIRE)?);
        Ok(s)
    }

    /// The next frame into `buf`; `Ok(None)` when the timeout passes.
    pub fn next<'b>(&mut self, buf: &'b mut [u8]) -> io::Result<Option<&'b [u8]>> {
        if let Some(ring) = &mut self.ring {
            if self.pending.is_empty() {
                let pending = &mut self.pending;
                ring.read_block(&self.fd, self.timeout, |f| {
                    pending.push_back(f.data.to_vec())
                })?;
            }
            return Ok(self.pending.pop_front().map(|f| {
                let n = f.len().min(buf.len());
                buf[..n].copy_from_slice(&f[..n]);
                &buf[..n]
            }));
        }
        // recv(2) through socket2's Read, which needs no unsafe.
        use std::io::Read;
        match (&*socket2::SockRef::from(&self.fd)).read(buf) {
            Ok(n) => Ok(Some(&buf[..n])),
            Err(e) => match e.kind() {
                io::ErrorKind::WouldBlock
                | io::ErrorKind::TimedOut
                | io::ErrorKind::Interrupted => Ok(None),
                _ => Err(e),
            },
        }
    }

    /// The next frames: with a ring, one whole block (waiting up to the
    /// timeout for it); without, up to the batch's slots in one recvmmsg
    /// (waiting for the first, then taking what is already queued).
    /// Returns how many; `Ok(0)` when the timeout passed.
    pub fn next_batch(&mut self, batch: &mut RecvBatch) -> io::Result<usize> {
        batch.clear();
        if let Some(ring) = &mut self.ring {
            while let Some(f) = self.pending.pop_front() {
                batch.push(&f, crate::clock::now_nanos());
            }
            ring.read_block(&self.fd, self.timeout, |f| batch.push(f.data, f.nanos))?;
            return Ok(batch.len());
        }
        let slots = batch.bufs.len();
        let mut iovs: Vec<libc::iovec> = batch
            .bufs
            .iter_mut()
            .map(|b| libc::iovec {
                iov_base: b.as_mut_ptr().cast(),
                iov_len: b.len(),
            })
            .collect();
        let mut msgs = message_headers(&mut iovs);
        // SAFETY: msgs and the iovecs they point to are valid for `slots`
        // entries and outlive the call.
        let n = unsafe {
            libc::recvmmsg(
                self.fd.as_raw_fd(),
                msgs.as_mut_ptr(),
                slots as u32,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock
                | io::ErrorKind::TimedOut
                | io::ErrorKind::Interrupted => Ok(0),
                _ => Err(e),
            };
        }
        let now = crate::clock::now_nanos();
        for (i, m) in msgs[..n as usize].iter().enumerate() {
            let len = (m.msg_len as usize).min(batch.bufs[i].len());
            let RecvBatch {
                bufs,
                data,
                ends,
                times,
            } = batch;
            data.extend_from_slice(&bufs[i][..len]);
            ends.push(data.len());
            times.push(now);
        }
        Ok(n as usize)
    }

    /// Add the kernel's counters since the last call (reading resets them).
    pub fn stats(&mut self) -> io::Result<SnifferStats> {
        let mut s = TpacketStats::default();
        let mut len = std::mem::size_of::<TpacketStats>() as libc::socklen_t;
        // SAFETY: s is a tpacket_stats of the size passed.
        check(unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                PACKET_STATISTICS,
                (&mut s as *mut TpacketStats).cast(),
                &mut len,
            )
        })?;
        self.stats.received += u64::from(s.tp_packets);
        self.stats.dropped += u64::from(s.tp_drops);
        Ok(self.stats)
    }
}

/// Classic BPF: accept an Ethernet frame carrying IPv4 to `ours`' IPv4
/// address, ARP about it, or IPv6 to its IPv6 address; drop everything else.
pub fn filter_to(ours: &[IpAddr]) -> Vec<libc::sock_filter> {
    const LD_H_ABS: u16 = 0x28;
    const LD_W_ABS: u16 = 0x20;
    const JEQ_K: u16 = 0x15;
    const RET_K: u16 = 0x06;
    let op = |code: u16, jt: u8, jf: u8, k: u32| libc::sock_filter { code, jt, jf, k };
    let v4 = ours.iter().find_map(|a| match a {
        IpAddr::V4(v) => Some(u32::from(*v)),
        _ => None,
    });
    let v6 = ours.iter().find_map(|a| match a {
        IpAddr::V6(v) => Some(v.octets()),
        _ => None,
    });
    #[derive(Clone, Copy)]
    enum Target {
        Next,
        Accept,
        Drop,
        V6,
        ArpEnd,
    }
    // Layout: load the EtherType; the ARP test (replies to our neighbour
    // requests: ARP addressed to our IPv4 address); the IPv4 test; the IPv6
    // test (neighbour advertisements are IPv6 to us); accept; drop.
    // Built with symbolic targets first, then the jumps are made relative.
    let mut p = vec![op(LD_H_ABS, 0, 0, 12)];
    let mut body: Vec<(u16, u32, Target, Target)> = Vec::new(); // (code, k, if true, if false)
    let mut arp_end = 0;
    if let Some(a) = v4 {
        body.push((JEQ_K, 0x0806, Target::Next, Target::ArpEnd));
        body.push((LD_W_ABS, 38, Target::Next, Target::Next)); // ARP target protocol address
        body.push((JEQ_K, a, Target::Accept, Target::Drop));
        arp_end = body.len();
        body.push((LD_H_ABS, 12, Target::Next, Target::Next)); // the EtherType again
        body.push((JEQ_K, 0x0800, Target::Next, Target::V6));
        body.push((LD_W_ABS, 30, Target::Next, Target::Next)); // IPv4 destination (untagged frames)
        body.push((JEQ_K, a, Target::Accept, Target::Drop));
    }
    let v6_start = body.len();
    if let Some(a) = v6 {
        body.push((JEQ_K, 0x86dd, Target::Next, Target::Drop));
        for w in 0..4 {
            let word = u32::from_be_bytes([a[4 * w], a[4 * w + 1], a[4 * w + 2], a[4 * w + 3]]);
            // IPv6 destination: bytes 24..40 of the header, after 14 of Ethernet
            body.push((LD_W_ABS, 38 + 4 * w as u32, Target::Next, Target::Next));
            body.push((
                JEQ_K,
                word,
                if w == 3 { Target::Accept } else { Target::Next },
                Target::Drop,
            ));
        }
    }
    let accept = body.len();
    let drop = accept + 1;
    // A v4 test that fails on EtherType jumps to the v6 block (or drop);
    // body index i is program index i + 1, and jumps count from the next one.
    for (i, &(code, k, jt, jf)) in body.iter().enumerate() {
        let rel = |t: Target| -> u8 {
            let to = match t {
                Target::Next => i + 1,
                Target::Accept => accept,
                Target::Drop => drop,
                Target::V6 if v6.is_some() => v6_start,
                Target::V6 => drop,
                Target::ArpEnd => arp_end,
            };
            (to - i - 1) as u8
        };
        if code == JEQ_K {
            p.push(op(code, rel(jt), rel(jf), k));
        } else {
            p.push(op(code, 0, 0, k));
        }
    }
    p.push(op(RET_K, 0, 0, 0x0004_0000)); // accept: up to 256 KiB
    p.push(op(RET_K, 0, 0, 0)); // drop
    // First of all, drop what this host sends: on loopback every packet
    // passes the tap twice, once outgoing and once incoming, and a reply
    // must be seen once. (The kernel's ancillary load of the packet type.)
    const SKF_AD_PKTTYPE: u32 = 0xffff_f000 + 4;
    const PACKET_OUTGOING: u32 = 4;
    let to_drop = (p.len() + 2 - 1 - 2) as u8; // from after the jump to the last instruction
    let mut program = vec![
        op(LD_W_ABS, 0, 0, SKF_AD_PKTTYPE),
        op(JEQ_K, to_drop, 0, PACKET_OUTGOING),
    ];
    program.extend(p);
    program
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Run a classic BPF program the way the kernel does for the few
    /// instructions `filter_to` uses; `outgoing` is the packet type the
    /// ancillary load reads.
    fn run(program: &[libc::sock_filter], frame: &[u8], outgoing: bool) -> bool {
        let mut acc: u32 = 0;
        let mut pc = 0usize;
        loop {
            let i = program[pc];
            pc += 1;
            match i.code {
                0x28 => {
                    let k = i.k as usize;
                    let Some(b) = frame.get(k..k + 2) else {
                        return false;
                    };
                    acc = u32::from(u16::from_be_bytes([b[0], b[1]]));
                }
                0x20 if i.k == 0xffff_f000 + 4 => acc = if outgoing { 4 } else { 0 },
                0x20 => {
                    let k = i.k as usize;
                    let Some(b) = frame.get(k..k + 4) else {
                        return false;
                    };
                    acc = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
                }
                0x15 => pc += usize::from(if acc == i.k { i.jt } else { i.jf }),
                0x06 => return i.k != 0,
                other => panic!("unexpected BPF code {other:#x}"),
            }
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_filter_keeps_ip_to_us_and_arp_about_us_only() {
        use crate::probe::neighbour::request;
        let ours = [ip("198.18.0.2"), ip("2001:db8::2")];
        let program = filter_to(&ours);
        let me = [2, 0, 0, 0, 0, 2];
        let mut frame = Vec::new();
        // Another host asking for our address: ARP about us is kept.
        request(
            &mut frame,
            [2, 0, 0, 0, 0, 9],
            ip("198.18.0.9"),
            ip("198.18.0.2"),
        );
        assert!(run(&program, &frame, false));
        // ARP about someone else is not; nor what we send ourselves.
        request(&mut frame, me, ip("198.18.0.2"), ip("198.18.0.10"));
        assert!(!run(&program, &frame, false));
        request(
            &mut frame,
            [2, 0, 0, 0, 0, 9],
            ip("198.18.0.9"),
            ip("198.18.0.2"),
        );
        assert!(!run(&program, &frame, true));
        // IPv4 and IPv6 to us are kept, to others not.
        let eth = |ty: [u8; 2], ip: &[u8]| {
            let mut f = vec![0u8; 12];
            f.extend_from_slice(&ty);
            f.extend_from_slice(ip);
            f
        };
        let mut v4 = vec![0x45u8; 20];
        v4[16..20].copy_from_slice(&[198, 18, 0, 2]);
        assert!(run(&program, &eth([8, 0], &v4), false));
        v4[19] = 3;
        assert!(!run(&program, &eth([8, 0], &v4), false));
        let mut v6 = vec![0x60u8; 40];
        v6[24..40].copy_from_slice(&ip6("2001:db8::2"));
        assert!(run(&program, &eth([0x86, 0xdd], &v6), false));
        v6[39] = 3;
        assert!(!run(&program, &eth([0x86, 0xdd], &v6), false));
        // Only IPv6 ours: ARP and IPv4 are dropped.
        let v6_only = filter_to(&[ip("2001:db8::2")]);
        request(
            &mut frame,
            [2, 0, 0, 0, 0, 9],
            ip("198.18.0.9"),
            ip("198.18.0.2"),
        );
        assert!(!run(&v6_only, &frame, false));
    }

    fn ip6(s: &str) -> [u8; 16] {
        s.parse::<std::net::Ipv6Addr>().unwrap().octets()
    }
}
