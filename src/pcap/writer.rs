//! A pcap writer: nanosecond-resolution legacy pcap, the format tcpdump,
//! tshark and Wireshark all read without a warning. Records are written
//! whole, so a file cut short by a crash is valid up to its last record.

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
}

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
        Ok(PcapWriter {
            out,
            snaplen,
            records: 0,
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
        // One buffer per record keeps a record whole even if the writer is a raw file.
        let mut rec = Vec::with_capacity(16 + cap);
        rec.extend_from_slice(&h);
        rec.extend_from_slice(&frame[..cap]);
        self.out.write_all(&rec)?;
        self.records += 1;
        Ok(())
    }

    pub fn records(&self) -> u64 {
        self.records
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    pub fn into_inner(self) -> W {
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
