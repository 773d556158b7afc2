//! A `PACKET_RX_RING` (TPACKET_V3) on an AF_PACKET socket: the kernel
//! writes captured frames into blocks of a ring shared with sonde, and
//! hands a block over when it is full or after a short timeout. Reading a
//! block of hundreds of frames costs no system call; waiting for the next
//! one costs one `poll`. This is how the receive side keeps up with replies
//! at line rate where a `recvfrom` per frame (or a `recvmmsg` per 64) did
//! not; libpcap and masscan's PF_RING path read the same way.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

/// The largest block: a block is handed over when full or after the
/// retire timeout, so at high rates 1 MiB (thousands of replies) per wake.
const MAX_BLOCK: usize = 1 << 20;
/// The smallest: a page (and room for two frame slots).
const MIN_BLOCK: usize = 4096;
/// A frame slot's size in the kernel's accounting (V3 packs frames
/// tightly in a block; this only bounds the frame count it reports).
const FRAME_SIZE: usize = 2048;

/// A mapped TPACKET_V3 receive ring.
pub(super) struct RxRing {
    map: *mut u8,
    len: usize,
    block_size: usize,
    blocks: usize,
    /// The block to read next.
    current: usize,
}

// SAFETY: the mapping is owned by this value alone; the kernel is the only
// other party, and it synchronizes through each block's status word.
unsafe impl Send for RxRing {}

impl Drop for RxRing {
    fn drop(&mut self) {
        // SAFETY: map and len are the mapping made in `RxRing::new`.
        unsafe {
            libc::munmap(self.map.cast(), self.len);
        }
    }
}

/// One frame of a block: its bytes and the kernel's capture time (ns).
pub(super) struct RingFrame<'a> {
    pub data: &'a [u8],
    pub nanos: i64,
}

impl RxRing {
    /// Make `fd` a TPACKET_V3 socket with a ring of about `bytes` (at least
    /// two blocks), blocks handed over after `retire` at the latest.
    pub(super) fn new(fd: &OwnedFd, bytes: usize, retire: Duration) -> io::Result<RxRing> {
        let version = libc::tpacket_versions::TPACKET_V3 as libc::c_int;
        super::sys::setsockopt(fd, libc::SOL_PACKET, libc::PACKET_VERSION, &version)?;
        // At least 8 blocks where the size allows, so one block being read
        // is a small part of the ring; a small ring (--sniffer-buffer 8k)
        // stays small, so its drops are what was asked for.
        let block_size = (bytes / 8).next_power_of_two().clamp(MIN_BLOCK, MAX_BLOCK);
        let blocks = (bytes / block_size).max(2);
        let req = libc::tpacket_req3 {
            tp_block_size: block_size as u32,
            tp_block_nr: blocks as u32,
            tp_frame_size: FRAME_SIZE as u32,
            tp_frame_nr: (block_size / FRAME_SIZE * blocks) as u32,
            tp_retire_blk_tov: retire.as_millis().clamp(1, 1000) as u32,
            tp_sizeof_priv: 0,
            tp_feature_req_word: 0,
        };
        super::sys::setsockopt(fd, libc::SOL_PACKET, libc::PACKET_RX_RING, &req)?;
        let len = block_size * blocks;
        // SAFETY: a fresh shared mapping of the ring the kernel just made
        // for this socket, of exactly its size.
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
        if map == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(RxRing {
            map: map.cast(),
            len,
            block_size,
            blocks,
            current: 0,
        })
    }

    fn block(&self, i: usize) -> *mut libc::tpacket_block_desc {
        // SAFETY: i < blocks, so the offset stays inside the mapping.
        unsafe { self.map.add(i * self.block_size).cast() }
    }

    /// Whether the current block is ours to read.
    fn ready(&self) -> bool {
        let b = self.block(self.current);
        // SAFETY: the block header lies at the block's start; the status
        // word is read volatile since the kernel writes it.
        let status =
            unsafe { std::ptr::read_volatile(std::ptr::addr_of!((*b).hdr.bh1.block_status)) };
        std::sync::atomic::fence(std::sync::atomic::Ordering::Acquire);
        status & libc::TP_STATUS_USER != 0
    }

    /// Wait up to `timeout` for the current block, then hand each of its
    /// frames to `each` and give the block back. Returns how many frames.
    pub(super) fn read_block(
        &mut self,
        fd: &OwnedFd,
        timeout: Duration,
        mut each: impl FnMut(RingFrame<'_>),
    ) -> io::Result<usize> {
        if !self.ready() {
            let mut p = libc::pollfd {
                fd: fd.as_raw_fd(),
                events: libc::POLLIN | libc::POLLERR,
                revents: 0,
            };
            // SAFETY: p is one valid pollfd.
            let rc = unsafe { libc::poll(&mut p, 1, timeout.as_millis().min(1000) as i32) };
            if rc < 0 {
                let e = io::Error::last_os_error();
                return if e.kind() == io::ErrorKind::Interrupted {
                    Ok(0)
                } else {
                    Err(e)
                };
            }
            if !self.ready() {
                return Ok(0);
            }
        }
        let b = self.block(self.current);
        // SAFETY: the block is ours (TP_STATUS_USER) until its status is
        // set back; the kernel wrote num_pkts frames from
        // offset_to_first_pkt on, each header's tp_next_offset leading to
        // the next, all inside the block. Offsets are still checked
        // against the block's size before any read.
        let block_size = self.block_size;
        let n = unsafe {
            let hdr = &(*b).hdr.bh1;
            let n = hdr.num_pkts as usize;
            let base = b.cast::<u8>();
            let mut off = hdr.offset_to_first_pkt as usize;
            for _ in 0..n {
                if off + std::mem::size_of::<libc::tpacket3_hdr>() > block_size {
                    break;
                }
                let ph = base.add(off).cast::<libc::tpacket3_hdr>();
                let (mac, snap) = ((*ph).tp_mac as usize, (*ph).tp_snaplen as usize);
                if off + mac + snap > block_size {
                    break;
                }
                each(RingFrame {
                    data: std::slice::from_raw_parts(base.add(off + mac), snap),
                    nanos: i64::from((*ph).tp_sec) * 1_000_000_000 + i64::from((*ph).tp_nsec),
                });
                let next = (*ph).tp_next_offset as usize;
                if next == 0 {
                    break;
                }
                off += next;
            }
            std::sync::atomic::fence(std::sync::atomic::Ordering::Release);
            std::ptr::write_volatile(
                std::ptr::addr_of_mut!((*b).hdr.bh1.block_status),
                libc::TP_STATUS_KERNEL,
            );
            n
        };
        self.current = (self.current + 1) % self.blocks;
        Ok(n)
    }
}
