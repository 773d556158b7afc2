//! Least privilege: once its raw sockets are open, sonde needs no
//! capability at all (sending on and reading from an open socket is not
//! checked again), so it gives every one of them up, for good, before it
//! starts any thread or reads a single reply. A bug in a parser then runs
//! without CAP_NET_RAW, CAP_NET_ADMIN or root's file overrides.
//!
//! Output files are created before this, as the invoking user when sonde
//! runs under sudo (`chown_to_invoker`), so the operator can read and move
//! the evidence without root.

use std::io;
use std::path::Path;

use caps::CapSet;

/// Clear the effective, permitted and inheritable sets and the ambient
/// set of the calling thread (threads started later inherit the empty sets).
/// The bounding set is left alone: lowering it needs CAP_SETPCAP, which the
/// permitted set no longer grants anyway, and nothing can regain a
/// capability that is in no set.
pub fn drop_all() -> io::Result<()> {
    drop_in_this_thread()
}

/// Under sudo, take the invoking user's group as the only supplementary
/// group: the run directory is the user's and writable by that group
/// (`share_with_invoker_group`), so the finished report can be renamed into
/// place after every capability is gone. Call it before starting any
/// thread: glibc applies setgroups to every thread and aborts the process
/// when a thread that already dropped CAP_SETGID cannot follow.
pub fn keep_invoker_group() -> io::Result<()> {
    if let Some((_, gid)) = invoker() {
        // SAFETY: one gid_t, valid for the call.
        if unsafe { libc::setgroups(1, &gid) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Clear every capability set of the calling thread only: for a helper
/// thread started before the sockets are open (signals, the evidence
/// watcher), which needs none and must not keep the ones it inherited.
pub fn drop_in_this_thread() -> io::Result<()> {
    let err = |e: caps::errors::CapsError| io::Error::other(e.to_string());
    caps::clear(None, CapSet::Ambient).map_err(err)?;
    caps::clear(None, CapSet::Inheritable).map_err(err)?;
    caps::clear(None, CapSet::Effective).map_err(err)?;
    caps::clear(None, CapSet::Permitted).map_err(err)?;
    Ok(())
}

/// The calling thread's effective capabilities (for tests and the report).
pub fn effective() -> io::Result<Vec<String>> {
    let set = caps::read(None, CapSet::Effective).map_err(|e| io::Error::other(e.to_string()))?;
    let mut names: Vec<String> = set.iter().map(|c| c.to_string()).collect();
    names.sort();
    Ok(names)
}

/// Under sudo, give `path` to the user who ran sudo (SUDO_UID/SUDO_GID), so
/// evidence files are theirs; otherwise leave it. Call before `drop_all`.
pub fn chown_to_invoker(path: &Path) -> io::Result<()> {
    let Some((uid, gid)) = invoker() else {
        return Ok(());
    };
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
}

/// Under sudo, let the invoking user's group write in the directory `path`
/// (mode g+w): sonde keeps that group when it drops every capability.
pub fn share_with_invoker_group(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if invoker().is_none() {
        return Ok(());
    }
    let mode = std::fs::metadata(path)?.permissions().mode();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode | 0o070))
}

/// The user who ran sudo (SUDO_UID, SUDO_GID), if sonde runs under sudo.
fn invoker() -> Option<(u32, u32)> {
    let parse = |v: &str| std::env::var(v).ok().and_then(|s| s.parse::<u32>().ok());
    Some((parse("SUDO_UID")?, parse("SUDO_GID")?))
}
