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
    /// Whole records not yet handed to `out`.
    pending: Vec<u8>,
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
            pending: Vec::with_capacity(PENDING + 2048),
        })
    }

    /// Write one frame captured at `ts_nanos` (since the Unix epoch).
    pub fn write(&mut self, ts_nanos: i64, frame: &[u8]) -> io::Result<()> {
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
        self.out.write_all(&self.pending)?;
        self.pending.clear();
        Ok(())
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
}
