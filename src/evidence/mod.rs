//! Evidence that holds up in an audit: an append-only, hash-chained audit
//! log of what a run did (`audit`). Issue 6 builds the run directory,
//! `sonde verify` and the HTML report on it.

pub mod audit;

pub use audit::{AuditLog, ChainProblem, GENESIS, verify_chain};

/// SHA-256 (hex) and size of a file, read in 64 KiB pieces.
pub fn file_sha256(path: &std::path::Path) -> std::io::Result<(String, u64)> {
    use sha2::Digest;
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hex::encode(h.finalize()), size))
}
