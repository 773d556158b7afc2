//! The capture of a run's kernel connections (service identification):
//! the scan's sniffer keeps only replies to crafted probes, and is closed
//! when the connections begin, so these packets need a socket of their
//! own. It is opened while CAP_NET_RAW is held, before the scan (a packet
//! socket cannot be opened after the capabilities are dropped), with
//! protocol 0: the kernel hands it nothing and does not even clone the
//! scan's packets for it (a socket bound to every protocol would cost each
//! probe sent a clone and a filter run). `start` binds it to every
//! protocol on every interface (binding needs no capability), and the
//! caller keeps the packets of its connections.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use super::sys::{check, setsockopt};

const PACKET_OUTGOING: u8 = 4;

/// Every IP packet on every interface, both ways, once the capture starts.
pub struct ConnectionCapture {
    fd: OwnedFd,
    /// Loopback's index: a packet on it is seen leaving and arriving; the
    /// leaving copy is skipped.
    loopback: u32,
}

impl ConnectionCapture {
    /// Open it, receiving nothing yet. Needs CAP_NET_RAW.
    pub fn open() -> io::Result<ConnectionCapture> {
        // Protocol 0: no packets until bound to one.
        let fd: OwnedFd =
            socket2::Socket::new(socket2::Domain::PACKET, socket2::Type::DGRAM, None)?.into();
        // SAFETY: the name is a NUL-terminated string.
        let loopback = unsafe { libc::if_nametoindex(c"lo".as_ptr()) };
        Ok(ConnectionCapture { fd, loopback })
    }

    /// From now on, receive every packet on every interface.
    pub fn start(&self) -> io::Result<()> {
        // SAFETY: sockaddr_ll is plain data; zeroed is a valid value.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        sll.sll_ifindex = 0;
        // SAFETY: sll is a valid sockaddr_ll of the size passed.
        check(unsafe {
            libc::bind(
                self.fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        })
        .map(|_| ())
    }

    /// The next IP packet into `buf` and when it was read (ns since the
    /// epoch); `Ok(None)` when `timeout` passed first. Loopback's leaving
    /// copies and non-IP packets are skipped.
    pub fn next(&self, buf: &mut [u8], timeout: Duration) -> io::Result<Option<(usize, i64)>> {
        let tv = libc::timeval {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_usec: timeout.subsec_micros() as libc::suseconds_t,
        };
        setsockopt(&self.fd, libc::SOL_SOCKET, libc::SO_RCVTIMEO, &tv)?;
        loop {
            // SAFETY: sockaddr_ll is plain data; zeroed is a valid value.
            let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            // SAFETY: buf and from are valid for the sizes passed; len is
            // from's size and is updated by the kernel.
            let n = unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    0,
                    (&mut from as *mut libc::sockaddr_ll).cast(),
                    &mut len,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                return match e.kind() {
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Ok(None),
                    io::ErrorKind::Interrupted => continue,
                    _ => Err(e),
                };
            }
            let proto = u16::from_be(from.sll_protocol);
            let ip = proto == libc::ETH_P_IP as u16 || proto == libc::ETH_P_IPV6 as u16;
            let loop_copy =
                from.sll_pkttype == PACKET_OUTGOING && from.sll_ifindex as u32 == self.loopback;
            if ip && !loop_copy {
                return Ok(Some((n as usize, crate::clock::now_nanos())));
            }
        }
    }
}
