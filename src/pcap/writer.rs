//! A pcap writer: nanosecond-resolution legacy pcap, the format tcpdump,
//! tshark and Wireshark all read without a warning. Records are gathered in
//! a buffer and handed to the underlying writer only in whole records, so a
//! process that exits at once (a second Ctrl-C) leaves a file that is valid
//! up to its last whole record.

use std::io::{self, Write};

/// LINKTYPE_ETHERNET.
pub const LINKTYPE_ETHERNET: u32 = 1;
/// LINKTYPE_RAW (raw IPv4/IPv6).
pub const LINKTYPE_RAW: u32 = 101;

const MAGIC_NANOS: u32 = 0xa1b2_3c4d;

pub struct PcapWriter<W: Write> {
    out: W,
    snaplen: u32,
    records: u64,
    /// Bytes `out` has accepted, all of them whole records.
    handed: u64,
    /// Whole records not yet handed to `out`.
    pending: Vec<u8>,
    /// A hand-over failed: the file ends at `handed` (or must be cut to
    /// it), and nothing more is written.
    broken: bool,
}

/// Records are handed over once this much is pending.
const PENDING: usize = 64 * 1024;

impl<W: Write> PcapWriter<W> {
    /// Write the file header for `linktype`; frames longer than `snaplen` are cut to it.
    pub fn new(mut out: W, linktype: u32, snaplen: u32) -> io::Result<PcapWriter<W>> {
        let mut h = [0u8; 24];
        h[0..4].copy_from_slice(&MAGIC_NANOS.to_le_bytes());
        h[4..6].copy_from_slice(&2u16.to_le_bytes());
        h[6..8].copy_from_slice(&4u16.to_le_bytes());
        h[16..20].copy_from_slice(&snaplen.to_le_bytes());
        h[20..24].copy_from_slice(&linktype.to_le_bytes());
        out.write_all(&h)?;
        out.flush()?;
        Ok(PcapWriter {
            out,
            snaplen,
            records: 0,
            handed: h.len() as u64,
            broken: false,
            pending: Vec::with_capacity(PENDING + 2048),
        })
    }

    /// Append to a capture this writer wrote before (a resumed scan): `out`
    /// is positioned at its end, `len` bytes long, every one of them a
    /// header or a whole record.
    pub fn continuing(out: W, snaplen: u32, len: u64) -> PcapWriter<W> {
        PcapWriter {
            out,
            snaplen,
            records: 0,
            handed: len,
            broken: false,
            pending: Vec::with_capacity(PENDING + 2048),
        }
    }

    /// Write one frame captured at `ts_nanos` (since the Unix epoch).
    pub fn write(&mut self, ts_nanos: i64, frame: &[u8]) -> io::Result<()> {
        if self.broken {
            return Err(io::Error::other("an earlier write to this pcap failed"));
        }
        let cap = frame.len().min(self.snaplen as usize);
        let ts = ts_nanos.max(0);
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&((ts / 1_000_000_000) as u32).to_le_bytes());
        h[4..8].copy_from_slice(&((ts % 1_000_000_000) as u32).to_le_bytes());
        h[8..12].copy_from_slice(&(cap as u32).to_le_bytes());
        h[12..16].copy_from_slice(&(frame.len() as u32).to_le_bytes());
        self.pending.extend_from_slice(&h);
        self.pending.extend_from_slice(&frame[..cap]);
        self.records += 1;
        if self.pending.len() >= PENDING {
            self.hand_over()?;
        }
        Ok(())
    }

    pub fn records(&self) -> u64 {
        self.records
    }

    fn hand_over(&mut self) -> io::Result<()> {
        if self.broken {
            return Err(io::Error::other("an earlier write to this pcap failed"));
        }
        if let Err(e) = self.out.write_all(&self.pending) {
            self.broken = true;
            return Err(e);
        }
        self.handed += self.pending.len() as u64;
        self.pending.clear();
        Ok(())
    }

    /// How many bytes of the file are whole records (and the header).
    pub fn whole_bytes(&self) -> u64 {
        self.handed
    }

    /// Hand every pending record to the writer and flush it.
    pub fn flush(&mut self) -> io::Result<()> {
        self.hand_over()?;
        self.out.flush()
    }

    /// The writer, after flushing what is pending.
    pub fn into_inner(mut self) -> W {
        let _ = self.flush();
        self.out
    }
}

impl PcapWriter<std::fs::File> {
    /// After a failed write (a full disk), cut the file back to its last
    /// whole record so it stays valid; what was pending is given up.
    pub fn cut_to_whole_records(&mut self) -> io::Result<()> {
        self.broken = true;
        self.pending.clear();
        self.out.set_len(self.handed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pcap::CaptureReader;

    #[test]
    fn round_trip_through_the_reader() {
        let mut w = PcapWriter::new(Vec::new(), LINKTYPE_RAW, 64).unwrap();
        w.write(1_700_000_000_123_456_789, &[0x45; 40]).unwrap();
        w.write(1_700_000_001_000_000_000, &[0x45; 100]).unwrap();
        let bytes = w.into_inner();
        let mut r = CaptureReader::new(std::io::Cursor::new(bytes), "mem").unwrap();
        let mut seen = Vec::new();
        while r
            .next_frame(|f| seen.push((f.ts_nanos, f.data.len(), f.orig_len)))
            .unwrap()
        {}
        assert_eq!(
            seen,
            vec![
                (1_700_000_000_123_456_789, 40, 40),
                (1_700_000_001_000_000_000, 64, 100)
            ]
        );
    }

    /// A writer that accepts `room` bytes, then fails like a full disk
    /// (after taking part of the chunk, as write(2) does).
    struct Full {
        data: Vec<u8>,
        room: usize,
    }

    impl Write for Full {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            let n = b.len().min(self.room - self.data.len().min(self.room));
            if n == 0 {
                return Err(io::Error::from_raw_os_error(28));
            }
            self.data.extend_from_slice(&b[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_full_disk_leaves_whole_records_and_stops_writing() {
        let mut w = PcapWriter::new(
            Full {
                data: Vec::new(),
                room: 100_000,
            },
            LINKTYPE_RAW,
            65535,
        )
        .unwrap();
        let mut failed = false;
        for _ in 0..2000 {
            if w.write(0, &[0x45; 100]).is_err() {
                failed = true;
                break;
            }
        }
        assert!(failed);
        let whole = w.whole_bytes();
        assert_eq!((whole - 24) % 116, 0, "whole records only");
        assert!(
            w.write(0, &[0x45; 10]).is_err() && w.flush().is_err(),
            "nothing after a failure"
        );
        let data = w.into_inner().data;
        assert!(
            data.len() as u64 >= whole,
            "the file holds at least the whole records"
        );
    }
}
