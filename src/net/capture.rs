//! The capture of a run's kernel connections (service identification):
//! the scan's sniffer keeps only replies to crafted probes, and is closed
//! when the connections begin, so these packets need a socket of their
//! own. It is opened while CAP_NET_RAW is held, before the scan (a packet
//! socket cannot be opened after the capabilities are dropped), with a
//! filter that keeps nothing, so the scan's traffic never queues on it;
//! `start` swaps in a filter that keeps every IP packet, and the caller
//! keeps those of its connections.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use super::sys::{check, setsockopt};

const SO_ATTACH_FILTER: libc::c_int = 26;
const PACKET_OUTGOING: u8 = 4;

/// Every IP packet on every interface, both ways, once the capture starts.
pub struct ConnectionCapture {
    fd: OwnedFd,
    /// Loopback's index: a packet on it is seen leaving and arriving; the
    /// leaving copy is skipped.
    loopback: u32,
}

/// A classic BPF program of one instruction: keep `k` bytes of each
/// packet (0: none).
fn keep(k: u32) -> [libc::sock_filter; 1] {
    [libc::sock_filter {
        code: 0x06, // BPF_RET | BPF_K
        jt: 0,
        jf: 0,
        k,
    }]
}

fn attach(fd: &OwnedFd, program: &[libc::sock_filter]) -> io::Result<()> {
    let prog = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_ptr() as *mut libc::sock_filter,
    };
    setsockopt(fd, libc::SOL_SOCKET, SO_ATTACH_FILTER, &prog)
}

impl ConnectionCapture {
    /// Open it, keeping nothing yet. Needs CAP_NET_RAW.
    pub fn open() -> io::Result<ConnectionCapture> {
        // SAFETY: plain socket(2); the fd is owned right away.
        let raw = check(unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
                i32::from((libc::ETH_P_ALL as u16).to_be()),
            )
        })?;
        // SAFETY: raw is a new, valid descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        attach(&fd, &keep(0))?;
        // Packets that arrived before the filter: dropped.
        super::sys::drain(&fd);
        // SAFETY: the name is a NUL-terminated string.
        let loopback = unsafe { libc::if_nametoindex(c"lo".as_ptr()) };
        Ok(ConnectionCapture { fd, loopback })
    }

    /// From now on, keep every IP packet (whole, up to 64 KiB).
    pub fn start(&self) -> io::Result<()> {
        attach(&self.fd, &keep(65_535))
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
