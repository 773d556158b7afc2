//! A reader for pcap (micro- and nanosecond, either byte order) and pcapng
//! (several interfaces, each with its own link type and timestamp
//! resolution), built on pcap-parser.
//!
//! A regular file is memory-mapped and parsed in place with pcap-parser's
//! zero-copy block parsers: no read() copies the file through the kernel
//! (that copy was a third of the analysis time). Anything else (a pipe, or
//! `--no-mmap`) is streamed through pcap-parser's reader with a 1 MiB
//! buffer. Either way a length field never makes sonde allocate what it
//! claims, and damage stops the read with a [`ReadWarning`] naming the byte
//! offset; what came before is kept.
//!
//! As with ripgrep's memory maps, a file truncated by another process while
//! sonde maps it can end the process with SIGBUS; `--no-mmap` avoids that
//! for captures still being written.

use std::fs::File;
use std::io::Read;

use nom::IResult;
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

/// The file format, once the slice reader has seen the file header.
#[derive(Clone, Copy)]
enum Format {
    Legacy { big_endian: bool },
    Ng { big_endian: bool },
}

enum Source {
    Stream(Box<dyn PcapReaderIterator + Send>),
    Mapped(memmap2::Mmap),
}

/// Reads the frames of one capture file.
pub struct CaptureReader {
    source: Source,
    /// For a mapped file: the bytes before this offset were released.
    released: u64,
    /// For a mapped file: the format and byte order in force.
    format: Format,
    name: String,
    offset: u64,
    legacy: Option<(LinkType, u64)>,
    interfaces: Vec<Interface>,
    done: bool,
    /// Frames whose interface was never described.
    pub skipped: u64,
}

const MAGIC_LE: [u8; 4] = [0xd4, 0xc3, 0xb2, 0xa1];
const MAGIC_BE: [u8; 4] = [0xa1, 0xb2, 0xc3, 0xd4];
const MAGIC_NS_LE: [u8; 4] = [0x4d, 0x3c, 0xb2, 0xa1];
const MAGIC_NS_BE: [u8; 4] = [0xa1, 0xb2, 0x3c, 0x4d];
const MAGIC_NG: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];

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
    fn with_source(source: Source, name: &str) -> CaptureReader {
        CaptureReader {
            source,
            released: 0,
            format: Format::Legacy { big_endian: false },
            name: name.to_string(),
            offset: 0,
            legacy: None,
            interfaces: Vec::new(),
            done: false,
            skipped: 0,
        }
    }

    /// Stream a capture from any reader; `name` labels warnings. Fails when
    /// the data is neither pcap nor pcapng (wrong magic) or is empty.
    pub fn new<R: Read + Send + 'static>(
        source: R,
        name: &str,
    ) -> Result<CaptureReader, ReadWarning> {
        let inner = create_reader(BUFFER, source).map_err(|e| header_warning(name, e))?;
        Ok(CaptureReader::with_source(Source::Stream(inner), name))
    }

    /// Open a capture file: memory-mapped when `mmap` is true and the file is
    /// a non-empty regular file, streamed otherwise.
    pub fn open(file: File, name: &str, mmap: bool) -> Result<CaptureReader, ReadWarning> {
        let regular = file
            .metadata()
            .map(|m| m.is_file() && m.len() > 0)
            .unwrap_or(false);
        if !(mmap && regular) {
            return CaptureReader::new(file, name);
        }
        // SAFETY: the map is only read. Another process truncating the file
        // while it is mapped is the documented SIGBUS risk (see module docs).
        let map = match unsafe { memmap2::Mmap::map(&file) } {
            Ok(m) => m,
            Err(_) => return CaptureReader::new(file, name),
        };
        let _ = map.advise(memmap2::Advice::Sequential);
        let magic: [u8; 4] = map
            .get(..4)
            .and_then(|m| m.try_into().ok())
            .unwrap_or([0; 4]);
        let format = match magic {
            MAGIC_LE | MAGIC_NS_LE => Format::Legacy { big_endian: false },
            MAGIC_BE | MAGIC_NS_BE => Format::Legacy { big_endian: true },
            MAGIC_NG => {
                // The byte-order magic follows the block type and length.
                let bom = map.get(8..12).unwrap_or(&[]);
                Format::Ng {
                    big_endian: bom == [0x1a, 0x2b, 0x3c, 0x4d],
                }
            }
            _ => return Err(header_warning(name, PcapError::HeaderNotRecognized)),
        };
        let header = match format {
            Format::Legacy { .. } => Some(
                pcap_parser::pcap::parse_pcap_header(&map)
                    .map(|(_, h)| h)
                    .ok(),
            ),
            Format::Ng { .. } => None,
        };
        let mut reader = CaptureReader::with_source(Source::Mapped(map), name);
        reader.format = format;
        if let Some(header) = header {
            match header {
                Some(h) => {
                    let res = if h.is_nanosecond_precision() {
                        1_000_000_000
                    } else {
                        1_000_000
                    };
                    reader.legacy = Some((LinkType::from_code(h.network.0), res));
                    reader.offset = 24;
                }
                None => {
                    return Err(ReadWarning {
                        file: name.to_string(),
                        offset: 0,
                        message: "cannot read the file header: it is cut short".to_string(),
                    });
                }
            }
        }
        Ok(reader)
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
        match self.source {
            Source::Stream(_) => self.next_streamed(f),
            Source::Mapped(_) => self.next_mapped(f),
        }
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
                let ts = i64::from(b.ts_sec) * 1_000_000_000 + frac as i64;
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
                        let secs = (units / i.resolution) as i64 + i.offset_secs;
                        let frac = (units % i.resolution) as u128 * 1_000_000_000
                            / u128::from(i.resolution);
                        let data = &epb.data[..epb.data.len().min(epb.caplen as usize)];
                        f(&Frame {
                            ts_nanos: secs * 1_000_000_000 + frac as i64,
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

    fn next_mapped<F: FnMut(&Frame<'_>)>(&mut self, mut f: F) -> Result<bool, ReadWarning> {
        let CaptureReader {
            source,
            format,
            offset,
            legacy,
            interfaces,
            skipped,
            released,
            ..
        } = self;
        let Source::Mapped(map) = source else {
            unreachable!()
        };
        // Hand pages already read back to the page cache every 8 MiB, so the
        // mapping does not grow the process's resident memory with the file.
        const RELEASE_EVERY: u64 = 8 << 20;
        if *offset >= *released + RELEASE_EVERY {
            let upto = (*offset & !0xfff) as usize;
            let from = *released as usize;
            // SAFETY: no frame borrowed from the map outlives the callback
            // that received it, and everything below `offset` has been handed
            // out already; the pages are re-read from the file if touched again.
            let _ = unsafe {
                map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, from, upto - from)
            };
            *released = upto as u64;
        }
        let failure = loop {
            let rest = &map[(*offset as usize).min(map.len())..];
            if rest.is_empty() {
                self.done = true;
                return Ok(false);
            }
            let parsed: IResult<&[u8], PcapBlockOwned<'_>, PcapError<&[u8]>> = match *format {
                Format::Legacy { big_endian: false } => pcap_parser::pcap::parse_pcap_frame(rest)
                    .map(|(r, b)| (r, PcapBlockOwned::Legacy(b))),
                Format::Legacy { big_endian: true } => pcap_parser::pcap::parse_pcap_frame_be(rest)
                    .map(|(r, b)| (r, PcapBlockOwned::Legacy(b))),
                Format::Ng { big_endian: false } => pcap_parser::pcapng::parse_block_le(rest)
                    .map(|(r, b)| (r, PcapBlockOwned::NG(b))),
                Format::Ng { big_endian: true } => pcap_parser::pcapng::parse_block_be(rest)
                    .map(|(r, b)| (r, PcapBlockOwned::NG(b))),
            };
            match parsed {
                Ok((remaining, block)) => {
                    // A new section may switch byte order.
                    if let PcapBlockOwned::NG(Block::SectionHeader(shb)) = &block {
                        *format = Format::Ng {
                            big_endian: shb.big_endian(),
                        };
                    }
                    let used = (rest.len() - remaining.len()) as u64;
                    let emitted = Self::block(legacy, interfaces, skipped, block, &mut f);
                    *offset += used;
                    if emitted {
                        return Ok(true);
                    }
                }
                Err(e) => {
                    // The whole file is here: a record that needs more is cut
                    // short, or its length field is damaged.
                    let claimed = claimed_len(rest, *format);
                    break if claimed > BUFFER as u64 {
                        format!(
                            "a record claims {claimed} bytes, more than {BUFFER}; its length field is damaged"
                        )
                    } else if let nom::Err::Incomplete(_) = e {
                        format!(
                            "the file ends inside a record ({} bytes of it present)",
                            rest.len()
                        )
                    } else {
                        format!("damaged record: {e:?}")
                    };
                }
            }
        };
        Err(self.warn(failure))
    }

    fn next_streamed<F: FnMut(&Frame<'_>)>(&mut self, mut f: F) -> Result<bool, ReadWarning> {
        loop {
            let Source::Stream(inner) = &mut self.source else {
                unreachable!()
            };
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

/// The length a record at the start of `rest` claims (0 when not even its header is there).
fn claimed_len(rest: &[u8], format: Format) -> u64 {
    let word = |at: usize, be: bool| -> u64 {
        rest.get(at..at + 4).map_or(0, |b| {
            let b: [u8; 4] = b.try_into().expect("four bytes");
            u64::from(if be {
                u32::from_be_bytes(b)
            } else {
                u32::from_le_bytes(b)
            })
        })
    };
    match format {
        Format::Legacy { big_endian } => word(8, big_endian),
        Format::Ng { big_endian } => word(4, big_endian),
    }
}
