//! The two system-call helpers every socket of `net` uses.

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
    let mut junk = [0u8; 2048];
    // SAFETY: junk is a valid buffer of its length.
    while unsafe {
        libc::recv(
            fd.as_raw_fd(),
            junk.as_mut_ptr().cast(),
            junk.len(),
            libc::MSG_DONTWAIT,
        )
    } > 0
    {}
}
