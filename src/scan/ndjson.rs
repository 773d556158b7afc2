//! The results file: JSON Lines handed to the file only as whole lines, so
//! a reader never meets half a result. When a write fails (a full disk) the
//! file is cut back to its last whole line and nothing more is written.

use std::io::{self, Write};

/// Lines are handed over once this much is pending.
const PENDING: usize = 64 * 1024;

pub struct NdjsonWriter {
    out: std::fs::File,
    /// Bytes the file holds, all of them whole lines.
    handed: u64,
    pending: Vec<u8>,
    broken: bool,
}

impl NdjsonWriter {
    pub fn new(out: std::fs::File) -> NdjsonWriter {
        NdjsonWriter {
            out,
            handed: 0,
            pending: Vec::with_capacity(PENDING + 1024),
            broken: false,
        }
    }

    fn hand_over(&mut self) -> io::Result<()> {
        if self.broken {
            return Err(io::Error::other("an earlier write to this file failed"));
        }
        let Some(last) = self.pending.iter().rposition(|&b| b == b'\n') else {
            return Ok(());
        };
        let whole = last + 1;
        if let Err(e) = self.out.write_all(&self.pending[..whole]) {
            self.broken = true;
            self.pending.clear();
            // Cut back to the last whole line (a part of this batch may be in).
            let _ = self.out.set_len(self.handed);
            return Err(e);
        }
        self.handed += whole as u64;
        self.pending.drain(..whole);
        Ok(())
    }
}

impl Write for NdjsonWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.broken {
            return Err(io::Error::other("an earlier write to this file failed"));
        }
        self.pending.extend_from_slice(buf);
        if self.pending.len() >= PENDING {
            self.hand_over()?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.hand_over()?;
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_whole_lines_reach_the_file() {
        let f = tempfile::NamedTempFile::new().unwrap();
        let mut w = NdjsonWriter::new(f.reopen().unwrap());
        write!(w, "{{\"a\":1}}").unwrap();
        w.flush().unwrap();
        assert_eq!(
            std::fs::read(f.path()).unwrap(),
            b"",
            "half a line stays pending"
        );
        writeln!(w).unwrap();
        write!(w, "{{\"b\"").unwrap();
        w.flush().unwrap();
        assert_eq!(std::fs::read(f.path()).unwrap(), b"{\"a\":1}\n");
    }

    #[test]
    fn a_failed_write_leaves_whole_lines_only() {
        // /dev/full: every write fails with ENOSPC.
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .expect("/dev/full (Linux)");
        let mut w = NdjsonWriter::new(full);
        writeln!(w, "{{\"a\":1}}").unwrap();
        assert_eq!(w.flush().unwrap_err().raw_os_error(), Some(libc::ENOSPC));
        assert!(writeln!(w, "x").is_err(), "nothing more after a failure");
    }
}
