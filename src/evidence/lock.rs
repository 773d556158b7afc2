//! Host-wide locks, so that what a scope promises per host holds across
//! processes, and a run directory has one writer:
//!
//! * a **scope lease**: one running scan per scope (by its SHA-256) on
//!   each network stack. The scope's `max_rate` is the client's ceiling for
//!   this sending host; two processes pacing to it each would put twice the
//!   ceiling on the wire. The second is refused, naming the first's PID and
//!   run directory.
//! * a **run-directory lock**: one `scan`, `scan --resume` or `merge`
//!   writing a run directory at a time (two resumes at once forked the
//!   audit chain).
//!
//! Each is an advisory `flock` on a file under `/run/sonde/` (or the
//! temporary directory where `/run` is not writable), held for the life of
//! the [`HostLock`] and released by the kernel when the process ends, also
//! by `kill -9`: no stale lock survives its holder. The file holds the
//! holder's PID, run directory and start time, for the refusal's message.
//! "One host" is one network namespace: a namespace is a network stack of
//! its own (the test lab's scanners are separate hosts).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Who holds a lock.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Holder {
    pub pid: u32,
    pub run_directory: String,
    pub since: String,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "PID {}, run directory {}, since {}",
            self.pid, self.run_directory, self.since
        )
    }
}

/// Why a lock was not taken.
#[derive(Debug)]
pub enum LockError {
    /// Another process holds it (its record, when it could be read).
    Held {
        holder: Option<Holder>,
    },
    Io(PathBuf, std::io::Error),
}

impl std::fmt::Display for LockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LockError::Held { holder: Some(h) } => write!(f, "held by another sonde ({h})"),
            LockError::Held { holder: None } => write!(f, "held by another sonde"),
            LockError::Io(p, e) => write!(f, "cannot use the lock file {}: {e}", p.display()),
        }
    }
}

impl std::error::Error for LockError {}

/// A held lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct HostLock {
    _file: File,
    pub path: PathBuf,
}

/// Where the locks live: `/run/sonde`, or `sonde-locks` in the temporary
/// directory when `/run` cannot be written (a binary given CAP_NET_RAW
/// instead of run as root).
pub fn lock_dir() -> PathBuf {
    let run = Path::new("/run/sonde");
    if std::fs::create_dir_all(run).is_ok() && writable(run) {
        return run.to_path_buf();
    }
    let tmp = std::env::temp_dir().join("sonde-locks");
    let _ = std::fs::create_dir_all(&tmp);
    tmp
}

fn writable(dir: &Path) -> bool {
    let probe = dir.join(format!(".probe-{}", std::process::id()));
    let ok = File::create(&probe).is_ok();
    let _ = std::fs::remove_file(&probe);
    ok
}

/// This process's network namespace (the inode of `/proc/self/ns/net`;
/// 0 where it cannot be read).
fn network_namespace() -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self/ns/net").map_or(0, |m| m.ino())
}

/// Take the lock named `name` in `dir` without waiting, recording `holder`.
pub fn acquire_in(dir: &Path, name: &str, holder: &Holder) -> Result<HostLock, LockError> {
    let path = dir.join(name);
    let io = |e| LockError::Io(path.clone(), e);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut text = String::new();
            let holder = file
                .read_to_string(&mut text)
                .ok()
                .and_then(|_| serde_json::from_str(&text).ok());
            return Err(LockError::Held { holder });
        }
        Err(TryLockError::Error(e)) => return Err(io(e)),
    }
    let record = serde_json::to_string(holder).map_err(|e| io(e.into()))?;
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| file.write_all(record.as_bytes()))
        .and_then(|()| file.flush())
        .map_err(io)?;
    Ok(HostLock { _file: file, path })
}

/// The lease of a scope's rate ceiling on this host's network stack.
pub fn scope_lease(scope_sha256: &str, holder: &Holder) -> Result<HostLock, LockError> {
    acquire_in(
        &lock_dir(),
        &format!("scope-{}-net{}.lock", scope_sha256, network_namespace()),
        holder,
    )
}

/// The one-writer lock of a run directory (by its canonical path).
pub fn run_dir_lock(dir: &Path, holder: &Holder) -> Result<HostLock, LockError> {
    let canonical = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let key = hex::encode(Sha256::digest(canonical.as_os_str().as_encoded_bytes()));
    acquire_in(&lock_dir(), &format!("run-{}.lock", &key[..32]), holder)
}

/// This process as a holder of a lock for `run_directory`.
pub fn this_process(run_directory: &Path) -> Holder {
    Holder {
        pid: std::process::id(),
        run_directory: run_directory.display().to_string(),
        since: crate::clock::timestamp(crate::clock::now_nanos()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(pid: u32) -> Holder {
        Holder {
            pid,
            run_directory: format!("run-{pid}"),
            since: "2026-12-07T00:00:00Z".into(),
        }
    }

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_record_until_it_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let first = acquire_in(dir.path(), "scope-x.lock", &holder(1)).unwrap();
        // flock locks belong to the open file: a second open in the same
        // process is refused as another process would be.
        match acquire_in(dir.path(), "scope-x.lock", &holder(2)) {
            Err(LockError::Held { holder: Some(h) }) => assert_eq!(h, holder(1)),
            other => panic!("{other:?}"),
        }
        // Another scope is another lock.
        let other = acquire_in(dir.path(), "scope-y.lock", &holder(3)).unwrap();
        drop(first);
        let again = acquire_in(dir.path(), "scope-x.lock", &holder(2)).unwrap();
        let text = std::fs::read_to_string(&again.path).unwrap();
        assert_eq!(serde_json::from_str::<Holder>(&text).unwrap(), holder(2));
        drop(other);
    }
}
