//! A streaming reader for pcap (micro- and nanosecond, either byte order)
//! and pcapng (several interfaces, each with its own link type and timestamp
//! resolution), built on pcap-parser's reader with a 1 MiB buffer.
//!
//! Memory is bounded by that buffer: a record is never buffered beyond it,
//! whatever its length field claims. Damage stops the read with a
//! [`ReadWarning`] naming the byte offset; what came before is kept.
//!
//! (A memory-mapped variant was measured: no faster once the buffer is no
//! longer shifted on every record, and it brings SIGBUS on a file truncated
//! while mapped, so sonde streams.)

use std::io::Read;

use pcap_parser::pcapng::Block;
use pcap_parser::traits::PcapReaderIterator;
use pcap_parser::{PcapBlockOwned, PcapError, create_reader};

/// The read buffer, and so the largest record sonde will hold (Wireshark's
/// own limit for a packet is 256 KiB).
pub const BUFFER: usize = 1 << 20;

/// Link-layer header types sonde dissects (tcpdump's LINKTYPE_ values).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LinkType {
    Null,
    Ethernet,
    Raw,
    Ipv4,
    Ipv6,
    LinuxSll,
    LinuxSll2,
    Loop,
    Other(i32),
}

impl LinkType {
    pub fn from_code(code: i32) -> LinkType {
        match code {
            0 => LinkType::Null,
            1 => LinkType::Ethernet,
            12 | 101 => LinkType::Raw,
            228 => LinkType::Ipv4,
            229 => LinkType::Ipv6,
            113 => LinkType::LinuxSll,
            276 => LinkType::LinuxSll2,
            108 => LinkType::Loop,
            other => LinkType::Other(other),
        }
    }

    pub fn name(self) -> String {
        match self {
            LinkType::Null => "null".into(),
            LinkType::Ethernet => "ethernet".into(),
            LinkType::Raw => "raw".into(),
            LinkType::Ipv4 => "ipv4".into(),
            LinkType::Ipv6 => "ipv6".into(),
            LinkType::LinuxSll => "linux_sll".into(),
            LinkType::LinuxSll2 => "linux_sll2".into(),
            LinkType::Loop => "loop".into(),
            LinkType::Other(c) => format!("linktype_{c}"),
        }
    }
}

/// One captured frame, borrowed from the reader.
#[derive(Debug)]
pub struct Frame<'a> {
    /// Nanoseconds since the Unix epoch.
    pub ts_nanos: i64,
    pub link: LinkType,
    /// Length on the wire.
    pub orig_len: u32,
    pub data: &'a [u8],
}

/// A pcapng timestamp in nanoseconds since the epoch. Any 64-bit count,
/// resolution and offset is accepted: the result saturates instead of
/// overflowing (a damaged interface block can claim anything).
fn epb_nanos(units: u64, resolution: u64, offset_secs: i64) -> i64 {
    let resolution = u128::from(resolution.max(1));
    let secs = i128::from(units) / resolution as i128 + i128::from(offset_secs);
    let frac = (u128::from(units) % resolution) * 1_000_000_000 / resolution;
    let nanos = secs
        .saturating_mul(1_000_000_000)
        .saturating_add(frac as i128);
    nanos.clamp(-i128::from(MAX_NANOS), i128::from(MAX_NANOS)) as i64
}

/// Timestamps are kept within ±2^62 ns (about ±146 years around 1970) so
/// that the difference of any two fits in an i64.
pub const MAX_NANOS: i64 = (1 << 62) - 1;

/// Why a capture could not be read to its end.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ReadWarning {
    pub file: String,
    /// Byte offset in the file where reading stopped.
    pub offset: u64,
    pub message: String,
}

struct Interface {
    link: LinkType,
    /// Timestamp units per second.
    resolution: u64,
    offset_secs: i64,
}

/// Reads the frames of one capture file.
pub struct CaptureReader {
    inner: Box<dyn PcapReaderIterator + Send>,
    name: String,
    offset: u64,
    legacy: Option<(LinkType, u64)>,
    interfaces: Vec<Interface>,
    done: bool,
    /// Frames whose interface was never described.
    pub skipped: u64,
}

fn header_warning(name: &str, e: PcapError<&[u8]>) -> ReadWarning {
    ReadWarning {
        file: name.to_string(),
        offset: 0,
        message: match e {
            PcapError::Eof => "the file is empty".to_string(),
            PcapError::HeaderNotRecognized => {
                "not a pcap or pcapng file (unknown magic number)".to_string()
            }
            other => format!("cannot read the file header: {other:?}"),
        },
    }
}

impl CaptureReader {
    /// Read a capture from any reader; `name` labels warnings. Fails when
    /// the data is neither pcap nor pcapng (wrong magic) or is empty.
    pub fn new<R: Read + Send + 'static>(
        source: R,
        name: &str,
    ) -> Result<CaptureReader, ReadWarning> {
        let inner = create_reader(BUFFER, source).map_err(|e| header_warning(name, e))?;
        Ok(CaptureReader {
            inner,
            name: name.to_string(),
            offset: 0,
            legacy: None,
            interfaces: Vec::new(),
            done: false,
            skipped: 0,
        })
    }

    fn warn(&mut self, message: String) -> ReadWarning {
        self.done = true;
        ReadWarning {
            file: self.name.clone(),
            offset: self.offset,
            message,
        }
    }

    /// Hand the next frame to `f`. Returns `Ok(false)` at the end of the
    /// file, `Err` when damage stops the read.
    pub fn next_frame<F: FnMut(&Frame<'_>)>(&mut self, f: F) -> Result<bool, ReadWarning> {
        if self.done {
            return Ok(false);
        }
        self.next_streamed(f)
    }

    /// Apply one block: remember headers and interfaces, hand frames to `f`.
    /// Returns whether a frame was handed over.
    fn block<F: FnMut(&Frame<'_>)>(
        legacy: &mut Option<(LinkType, u64)>,
        interfaces: &mut Vec<Interface>,
        skipped: &mut u64,
        block: PcapBlockOwned<'_>,
        f: &mut F,
    ) -> bool {
        match block {
            PcapBlockOwned::LegacyHeader(h) => {
                let res = if h.is_nanosecond_precision() {
                    1_000_000_000
                } else {
                    1_000_000
                };
                *legacy = Some((LinkType::from_code(h.network.0), res));
            }
            PcapBlockOwned::Legacy(b) => {
                let (link, res) = legacy.unwrap_or((LinkType::Ethernet, 1_000_000));
                let frac = u64::from(b.ts_usec) * (1_000_000_000 / res);
                let ts = (i64::from(b.ts_sec) * 1_000_000_000 + frac as i64).min(MAX_NANOS);
                let data = &b.data[..b.data.len().min(b.caplen as usize)];
                f(&Frame {
                    ts_nanos: ts,
                    link,
                    orig_len: b.origlen,
                    data,
                });
                return true;
            }
            PcapBlockOwned::NG(Block::SectionHeader(_)) => interfaces.clear(),
            PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => interfaces.push(Interface {
                link: LinkType::from_code(idb.linktype.0),
                resolution: idb.ts_resolution().unwrap_or(1_000_000).max(1),
                offset_secs: idb.ts_offset(),
            }),
            PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                match interfaces.get(epb.if_id as usize) {
                    Some(i) => {
                        let units = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
                        let data = &epb.data[..epb.data.len().min(epb.caplen as usize)];
                        f(&Frame {
                            ts_nanos: epb_nanos(units, i.resolution, i.offset_secs),
                            link: i.link,
                            orig_len: epb.origlen,
                            data,
                        });
                        return true;
                    }
                    None => *skipped += 1,
                }
            }
            PcapBlockOwned::NG(Block::SimplePacket(spb)) => match interfaces.first() {
                Some(i) => {
                    f(&Frame {
                        ts_nanos: 0,
                        link: i.link,
                        orig_len: spb.origlen,
                        data: spb.data,
                    });
                    return true;
                }
                None => *skipped += 1,
            },
            PcapBlockOwned::NG(_) => {}
        }
        false
    }

    fn next_streamed<F: FnMut(&Frame<'_>)>(&mut self, mut f: F) -> Result<bool, ReadWarning> {
        loop {
            let inner = &mut self.inner;
            match inner.next() {
                Ok((len, block)) => {
                    let emitted = Self::block(
                        &mut self.legacy,
                        &mut self.interfaces,
                        &mut self.skipped,
                        block,
                        &mut f,
                    );
                    // No shift here: refill() moves only the partial record left at the end.
                    inner.consume_noshift(len);
                    self.offset += len as u64;
                    if emitted {
                        return Ok(true);
                    }
                }
                Err(PcapError::Eof) => {
                    self.done = true;
                    return Ok(false);
                }
                Err(PcapError::Incomplete(_)) => {
                    if let Err(e) = inner.refill() {
                        let msg = format!("read error: {e:?}");
                        return Err(self.warn(msg));
                    }
                }
                Err(PcapError::UnexpectedEof) => {
                    let left = inner.data().len();
                    return Err(self.warn(format!(
                        "the file ends inside a record ({left} bytes of it present)"
                    )));
                }
                // pcap-parser says this only when one record would not fit
                // the whole buffer: the length field is damaged or hostile.
                Err(PcapError::BufferTooSmall) => {
                    return Err(self.warn(format!(
                        "a record claims more than {BUFFER} bytes; its length field is damaged"
                    )));
                }
                Err(e) => {
                    let msg = format!("damaged record: {e:?}");
                    return Err(self.warn(msg));
                }
            }
        }
    }
}
