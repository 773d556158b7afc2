//! The system-call helpers every socket of `net` uses: the packet
//! socket options socket2 does not cover.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

/// A libc return value as a result (negative: the errno).
pub(super) fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// Set a socket option whose value is a `T`.
pub(super) fn setsockopt<T>(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    // SAFETY: value points to a T of the size passed.
    check(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as u32,
        )
    })
    .map(|_| ())
}

/// Read and drop whatever is queued on `fd` now (packets that arrived
/// before a socket's filter was attached).
pub(super) fn drain(fd: &OwnedFd) {
    let socket = socket2::SockRef::from(fd);
    let mut junk = [std::mem::MaybeUninit::<u8>::uninit(); 2048];
    while matches!(socket.recv_with_flags(&mut junk, libc::MSG_DONTWAIT), Ok(n) if n > 0) {}
}
