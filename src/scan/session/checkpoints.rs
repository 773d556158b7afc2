//! The session's side of checkpoints ([`crate::scan::checkpoint`]): each
//! one the scan delivers is made durable and anchored. The capture's and
//! the results' prefixes (synced by the writer) are hashed, incrementally,
//! so a checkpoint costs the bytes written since the last one; the state
//! (hosts and answered bits) goes to one of two slot files, alternately,
//! so a write cut short never spoils the last good one; then a
//! `scan_checkpoint` record names all of it, and the audit log is synced.

use std::io::{Seek, Write};
use std::os::unix::fs::FileExt;

use sha2::{Digest, Sha256};

use super::files::{Audit, audit, create_in};
use crate::error::Error;
use crate::evidence::RunDir;
use crate::scan::checkpoint::Checkpoint;

/// The two state slots, written alternately.
pub const SLOTS: [&str; 2] = ["checkpoint-a.bin", "checkpoint-b.bin"];

/// A file's prefix, hashed as it grows.
struct Prefix {
    name: &'static str,
    file: std::fs::File,
    hasher: Sha256,
    hashed: u64,
}

impl Prefix {
    /// The SHA-256 of the first `len` bytes (at least those hashed before).
    fn hash_to(&mut self, len: u64) -> std::io::Result<String> {
        if len < self.hashed {
            return Err(std::io::Error::other(format!(
                "{} shrank from {} to {len} bytes during the scan",
                self.name, self.hashed
            )));
        }
        let mut buf = vec![0u8; 1 << 20];
        while self.hashed < len {
            let want = ((len - self.hashed) as usize).min(buf.len());
            self.file.read_exact_at(&mut buf[..want], self.hashed)?;
            self.hasher.update(&buf[..want]);
            self.hashed += want as u64;
        }
        Ok(hex::encode(self.hasher.clone().finalize()))
    }
}

/// What the session keeps between checkpoints.
pub(super) struct Checkpointer {
    segment: u64,
    taken: u64,
    prefixes: Vec<Prefix>,
    slots: [std::fs::File; 2],
}

impl Checkpointer {
    /// Created with the outputs, before the first packet: the two slots
    /// (given to the sudo user), and a reading handle on each file a
    /// checkpoint measures.
    pub fn new(dir: &RunDir, segment: u64, files: &[&'static str]) -> Result<Checkpointer, Error> {
        let mut prefixes = Vec::new();
        for name in files {
            prefixes.push(Prefix {
                name,
                file: std::fs::File::open(dir.file(name))
                    .map_err(|e| Error::runtime(format!("cannot read {name}"), e))?,
                hasher: Sha256::new(),
                hashed: 0,
            });
        }
        // A resumed segment reuses the slots of the segments before.
        let slot = |name: &str| -> Result<std::fs::File, Error> {
            if dir.file(name).exists() {
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(dir.file(name))
                    .map_err(|e| Error::runtime(format!("cannot open {name}"), e))
            } else {
                create_in(dir, name)
            }
        };
        Ok(Checkpointer {
            segment,
            taken: 0,
            prefixes,
            slots: [slot(SLOTS[0])?, slot(SLOTS[1])?],
        })
    }

    /// Make `c` durable and record it.
    pub fn record(&mut self, c: Checkpoint, log: &mut Audit) -> Result<(), Error> {
        let mut files = Vec::new();
        for (name, len) in &c.files {
            let Some(p) = self.prefixes.iter_mut().find(|p| p.name == *name) else {
                continue;
            };
            let sha256 = p
                .hash_to(*len)
                .map_err(|e| Error::runtime(format!("cannot hash {name} at a checkpoint"), e))?;
            files.push(serde_json::json!({ "path": name, "size": len, "sha256": sha256 }));
        }
        // The state: a JSON head (the hosts) and the answered bits, streamed
        // to the slot. A /16 where every host answers has an 80 MB head: a
        // JSON tree of it, then its bytes, then the state's, held three
        // copies at once (535 MB of a 1.4M-probe scan's peak).
        #[derive(serde::Serialize)]
        struct StateHead<'a> {
            segment: u64,
            checkpoint: u64,
            hosts: &'a [crate::results::HostResults],
            answered_bytes: Option<usize>,
        }
        let head = StateHead {
            segment: self.segment,
            checkpoint: self.taken + 1,
            hosts: &c.hosts,
            answered_bytes: c.answered.as_ref().map(Vec::len),
        };
        let which = (self.taken % 2) as usize;
        let slot = &mut self.slots[which];
        let (state_size, state_sha256) = slot
            .set_len(0)
            .and_then(|()| slot.rewind())
            .and_then(|()| write_state(&mut *slot, &head, c.answered.as_deref()))
            .and_then(|written| slot.sync_data().map(|()| written))
            .map_err(|e| Error::runtime(format!("cannot write {}", SLOTS[which]), e))?;
        self.taken += 1;
        audit(
            log,
            "scan_checkpoint",
            serde_json::json!({
                "segment": self.segment,
                "checkpoint": self.taken,
                "pass": c.at.pass,
                "kind": c.at.kind,
                "next": c.at.next,
                "probes": c.probes,
                "retried": c.retried,
                "matched": c.matched,
                "files": files,
                // Once per segment: how its targets are reached.
                "links": (self.taken == 1).then_some(&c.links),
                "state": {
                    "path": SLOTS[which],
                    "size": state_size,
                    "sha256": state_sha256,
                },
            }),
        )?;
        log.get_ref()
            .sync_data()
            .map_err(|e| Error::runtime("cannot sync the audit log", e))
    }
}

/// Write a state file to `out`: the head's length (8 bytes,
/// little-endian), the head (JSON), then the answered bits, if any. The
/// head is encoded twice, once to count its bytes and once to the file,
/// rather than held: (bytes written, their SHA-256 in hex).
pub fn write_state(
    out: impl Write,
    head: &impl serde::Serialize,
    bits: Option<&[u8]>,
) -> std::io::Result<(u64, String)> {
    let mut count = Counted {
        inner: std::io::sink(),
        hasher: None,
        written: 0,
    };
    serde_json::to_writer(&mut count, head)?;
    let mut w = Counted {
        inner: std::io::BufWriter::with_capacity(1 << 16, out),
        hasher: Some(Sha256::new()),
        written: 0,
    };
    w.write_all(&count.written.to_le_bytes())?;
    serde_json::to_writer(&mut w, head)?;
    if w.written != 8 + count.written {
        return Err(std::io::Error::other(
            "the state's head encoded to two lengths",
        ));
    }
    if let Some(bits) = bits {
        w.write_all(bits)?;
    }
    w.flush()?;
    let sha256 = w.hasher.take().map(|h| hex::encode(h.finalize()));
    Ok((w.written, sha256.unwrap_or_default()))
}

/// A writer that counts (and may hash) what passes through it.
struct Counted<W> {
    inner: W,
    hasher: Option<Sha256>,
    written: u64,
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        if let Some(h) = &mut self.hasher {
            h.update(&buf[..n]);
        }
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Read a state slot as a checkpoint wrote it: (head, answered bits).
pub fn read_state(bytes: &[u8]) -> Result<(serde_json::Value, Option<Vec<u8>>), String> {
    let len = bytes
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
        .ok_or("shorter than its header")?;
    let end = usize::try_from(len)
        .ok()
        .and_then(|l| l.checked_add(8))
        .filter(|&e| e <= bytes.len())
        .ok_or("its head runs past its end")?;
    let head: serde_json::Value =
        serde_json::from_slice(&bytes[8..end]).map_err(|e| format!("its head: {e}"))?;
    let bits = match head["answered_bytes"].as_u64() {
        Some(n) if end as u64 + n == bytes.len() as u64 => Some(bytes[end..].to_vec()),
        Some(_) => return Err("its answered bits are not the length its head says".into()),
        None => None,
    };
    Ok((head, bits))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_written_streaming_reads_back_with_its_length_and_hash() {
        let head = serde_json::json!({ "segment": 2, "hosts": [{ "address": "198.18.1.1" }], "answered_bytes": 3 });
        let mut file = Vec::new();
        let (size, sha256) = write_state(&mut file, &head, Some(&[1, 2, 3])).unwrap();
        assert_eq!(size, file.len() as u64);
        assert_eq!(sha256, hex::encode(Sha256::digest(&file)));
        let (read, bits) = read_state(&file).unwrap();
        assert_eq!(read, head);
        assert_eq!(bits.as_deref(), Some(&[1u8, 2, 3][..]));
        // Without bits, the head alone.
        let head = serde_json::json!({ "segment": 1, "hosts": [] });
        let mut file = Vec::new();
        write_state(&mut file, &head, None).unwrap();
        assert_eq!(read_state(&file).unwrap(), (head, None));
    }
}
