//! The lab's ceiling for `benches/scan.sh`: valid SYN frames (an MSS
//! option, like every scanner's) sent as fast as one AF_PACKET socket takes
//! them, `sendmmsg` in batches of 1,024, with nothing else: no gate, no
//! permutation, no evidence, no receiving. What a scanner achieves is
//! compared with this.
//!
//! `syn_ceiling IFACE GATEWAY_MAC SOURCE HOSTS PORT,PORT,... [tx-ring]`
//! sends to 198.19.0.0 .. + HOSTS - 1, every port, host-major; with
//! `tx-ring`, through a PACKET_TX_RING (TPACKET_V2) instead of sendmmsg,
//! to see which of the two is faster here (issue 15). It refuses
//! any destination outside 198.18.0.0/15 (the benchmarking range): it is
//! meant to run inside the namespace the benchmark builds, and nowhere else.

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

fn main() {
    let args: Vec<String> = std::env::args().filter(|a| a != "--bench").collect();
    if args.len() != 6 && !(args.len() == 7 && args[6] == "tx-ring") {
        eprintln!("usage: syn_ceiling IFACE GATEWAY_MAC SOURCE HOSTS PORT,PORT,... [tx-ring]");
        std::process::exit(2);
    }
    let tx_ring = args.len() == 7;
    let ifname = &args[1];
    let gw: Vec<u8> = args[2]
        .split(':')
        .map(|h| u8::from_str_radix(h, 16).expect("a MAC"))
        .collect();
    let source: Ipv4Addr = args[3].parse().expect("a source address");
    let hosts: u32 = args[4].parse().expect("a host count");
    let ports: Vec<u16> = args[5]
        .split(',')
        .map(|p| p.parse().expect("a port"))
        .collect();
    let base = u32::from(Ipv4Addr::new(198, 19, 0, 0));
    let last = Ipv4Addr::from(base + hosts.saturating_sub(1));
    let bench_range =
        |a: Ipv4Addr| (u32::from(a) >> 17) == (u32::from(Ipv4Addr::new(198, 18, 0, 0)) >> 17);
    assert!(
        hosts > 0 && bench_range(last) && bench_range(source),
        "syn_ceiling sends only inside 198.18.0.0/15"
    );

    let name = std::ffi::CString::new(ifname.as_str()).expect("an interface name");
    // SAFETY: name is a valid C string.
    let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
    assert!(ifindex != 0, "no interface {ifname}");
    // SAFETY: plain socket(2); owned right away.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
    assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
    // SAFETY: fd is new and nobody else's.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_ll is plain data.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_ifindex = ifindex as i32;
    sll.sll_halen = 6;
    sll.sll_addr[..6].copy_from_slice(&gw);
    // SAFETY: sll is a valid sockaddr_ll of the size passed.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    assert!(rc == 0, "bind: {}", std::io::Error::last_os_error());
    let one: libc::c_int = 1;
    // SAFETY: one is a c_int of the size passed. (Bypassing the qdisc, as sonde does.)
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            20, // PACKET_QDISC_BYPASS
            (&one as *const libc::c_int).cast(),
            4,
        );
    }
    let mac = std::fs::read_to_string(format!("/sys/class/net/{ifname}/address"))
        .expect("the interface's MAC");
    let src_mac: Vec<u8> = mac
        .trim()
        .split(':')
        .map(|h| u8::from_str_radix(h, 16).expect("a MAC"))
        .collect();

    let total = u64::from(hosts) * ports.len() as u64;
    let build = |i: u64, f: &mut Vec<u8>| {
        let dst = Ipv4Addr::from(base + (i / ports.len() as u64) as u32);
        let port = ports[(i % ports.len() as u64) as usize];
        f.clear();
        etherparse::PacketBuilder::ethernet2(
            src_mac[..6].try_into().expect("six bytes"),
            gw[..6].try_into().expect("six bytes"),
        )
        .ipv4(source.octets(), dst.octets(), 64)
        .tcp(40_000 + (i % 20_000) as u16, port, i as u32, 1024)
        .syn()
        .options(&[etherparse::TcpOptionElement::MaximumSegmentSize(1460)])
        .expect("one MSS option fits")
        .write(f, &[])
        .expect("a Vec takes it");
    };
    let start = std::time::Instant::now();
    let sent = if tx_ring {
        send_tx_ring(&fd, total, &build)
    } else {
        send_mmsg(&fd, total, &build)
    };
    let secs = start.elapsed().as_secs_f64();
    println!("{sent} {secs:.3} {:.0}", sent as f64 / secs);
}

const BATCH: usize = 1024;

fn send_mmsg(fd: &OwnedFd, total: u64, build: &dyn Fn(u64, &mut Vec<u8>)) -> u64 {
    let mut frames: Vec<Vec<u8>> = (0..BATCH).map(|_| Vec::with_capacity(80)).collect();
    let (mut sent, mut i) = (0u64, 0u64);
    while i < total {
        let n = ((total - i) as usize).min(BATCH);
        for f in frames.iter_mut().take(n) {
            build(i, f);
            i += 1;
        }
        let mut iovs: Vec<libc::iovec> = frames[..n]
            .iter_mut()
            .map(|f| libc::iovec {
                iov_base: f.as_mut_ptr().cast(),
                iov_len: f.len(),
            })
            .collect();
        let mut msgs: Vec<libc::mmsghdr> = iovs
            .iter_mut()
            .map(|iov| {
                // SAFETY: msghdr is plain data.
                let mut h: libc::msghdr = unsafe { std::mem::zeroed() };
                h.msg_iov = iov;
                h.msg_iovlen = 1;
                libc::mmsghdr {
                    msg_hdr: h,
                    msg_len: 0,
                }
            })
            .collect();
        let mut off = 0;
        while off < n {
            // SAFETY: msgs and their iovecs are valid for n - off entries.
            let rc = unsafe {
                libc::sendmmsg(
                    fd.as_raw_fd(),
                    msgs[off..].as_mut_ptr(),
                    (n - off) as u32,
                    0,
                )
            };
            if rc < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.raw_os_error() == Some(libc::ENOBUFS)
                {
                    continue;
                }
                panic!("sendmmsg: {e}");
            }
            off += rc as usize;
        }
        sent += n as u64;
    }
    sent
}

/// A TPACKET_V2 transmit ring: frames written into shared slots, marked
/// ready, and sent by one `send` per batch.
fn send_tx_ring(fd: &OwnedFd, total: u64, build: &dyn Fn(u64, &mut Vec<u8>)) -> u64 {
    const FRAME: usize = 2048;
    const BLOCK: usize = 1 << 16;
    const BLOCKS: usize = 64;
    let slots = BLOCK / FRAME * BLOCKS;
    let version = libc::tpacket_versions::TPACKET_V2 as libc::c_int;
    let set = |name: libc::c_int, v: *const libc::c_void, len: usize| {
        // SAFETY: v points to len bytes of the option's value.
        let rc = unsafe { libc::setsockopt(fd.as_raw_fd(), libc::SOL_PACKET, name, v, len as u32) };
        assert!(
            rc == 0,
            "setsockopt {name}: {}",
            std::io::Error::last_os_error()
        );
    };
    set(
        libc::PACKET_VERSION,
        (&version as *const libc::c_int).cast(),
        4,
    );
    let req = libc::tpacket_req {
        tp_block_size: BLOCK as u32,
        tp_block_nr: BLOCKS as u32,
        tp_frame_size: FRAME as u32,
        tp_frame_nr: slots as u32,
    };
    set(
        libc::PACKET_TX_RING,
        (&req as *const libc::tpacket_req).cast(),
        std::mem::size_of::<libc::tpacket_req>(),
    );
    let len = BLOCK * BLOCKS;
    // SAFETY: the ring the kernel just made for this socket, of its size.
    let map = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd.as_raw_fd(),
            0,
        )
    };
    assert!(
        map != libc::MAP_FAILED,
        "mmap: {}",
        std::io::Error::last_os_error()
    );
    let base = map.cast::<u8>();
    // Where a V2 frame's data starts: after the aligned header.
    let data_off = (std::mem::size_of::<libc::tpacket2_hdr>() + 15) & !15;
    let mut frame = Vec::with_capacity(80);
    let (mut i, mut slot) = (0u64, 0usize);
    while i < total {
        let mut queued = 0;
        while queued < BATCH && i < total {
            // SAFETY: slot < slots, so the header lies inside the mapping.
            let hdr = unsafe { base.add(slot * FRAME).cast::<libc::tpacket2_hdr>() };
            // SAFETY: the status word is shared with the kernel.
            let status = unsafe { std::ptr::read_volatile(std::ptr::addr_of!((*hdr).tp_status)) };
            if status != libc::TP_STATUS_AVAILABLE {
                break; // the ring is full: send what is queued first
            }
            build(i, &mut frame);
            // SAFETY: the frame fits the slot after its header; the slot is
            // ours until its status says SEND_REQUEST.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    frame.as_ptr(),
                    base.add(slot * FRAME + data_off),
                    frame.len(),
                );
                (*hdr).tp_len = frame.len() as u32;
                std::sync::atomic::fence(std::sync::atomic::Ordering::Release);
                std::ptr::write_volatile(
                    std::ptr::addr_of_mut!((*hdr).tp_status),
                    libc::TP_STATUS_SEND_REQUEST,
                );
            }
            i += 1;
            queued += 1;
            slot = (slot + 1) % slots;
        }
        // SAFETY: a plain send kicking the ring.
        let rc = unsafe { libc::send(fd.as_raw_fd(), std::ptr::null(), 0, 0) };
        if rc < 0 {
            let e = std::io::Error::last_os_error();
            assert!(
                e.kind() == std::io::ErrorKind::WouldBlock
                    || e.raw_os_error() == Some(libc::ENOBUFS),
                "send: {e}"
            );
        }
    }
    // Wait until the kernel has taken every frame.
    loop {
        let busy = (0..slots).any(|s| {
            // SAFETY: as above.
            let status = unsafe {
                let hdr = base.add(s * FRAME).cast::<libc::tpacket2_hdr>();
                std::ptr::read_volatile(std::ptr::addr_of!((*hdr).tp_status))
            };
            status != libc::TP_STATUS_AVAILABLE
        });
        if !busy {
            break;
        }
        // SAFETY: as above.
        unsafe { libc::send(fd.as_raw_fd(), std::ptr::null(), 0, 0) };
    }
    // SAFETY: the mapping made above.
    unsafe { libc::munmap(map, len) };
    total
}
