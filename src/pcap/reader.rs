//! A streaming reader for pcap (micro- and nanosecond, either byte order) and
//! pcapng (several interfaces, each with its own link type and timestamp
//! resolution), built on pcap-parser.
//!
//! Memory is bounded by the read buffer: a record is never buffered beyond
//! [`BUFFER`], whatever its length field claims. Damage stops the read
//! with a [`ReadWarning`] naming the byte offset; what came before is kept.

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

/// One captured frame, borrowed from the reader's buffer.
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

/// Streams the frames of one capture file.
pub struct CaptureReader<R: Read> {
    inner: Box<dyn PcapReaderIterator + Send>,
    name: String,
    offset: u64,
    legacy: Option<(LinkType, u64)>,
    interfaces: Vec<Interface>,
    done: bool,
    _source: std::marker::PhantomData<R>,
    /// Frames whose interface was never described or whose link type is unknown.
    pub skipped: u64,
}

impl<R: Read + Send + 'static> CaptureReader<R> {
    /// Open a capture; `name` labels warnings. Fails when the file is neither
    /// pcap nor pcapng (wrong magic) or is empty.
    pub fn new(source: R, name: &str) -> Result<CaptureReader<R>, ReadWarning> {
        let inner = create_reader(BUFFER, source).map_err(|e| ReadWarning {
            file: name.to_string(),
            offset: 0,
            message: match e {
                PcapError::Eof => "the file is empty".to_string(),
                PcapError::HeaderNotRecognized => {
                    "not a pcap or pcapng file (unknown magic number)".to_string()
                }
                other => format!("cannot read the file header: {other:?}"),
            },
        })?;
        Ok(CaptureReader {
            inner,
            name: name.to_string(),
            offset: 0,
            legacy: None,
            interfaces: Vec::new(),
            done: false,
            _source: std::marker::PhantomData,
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
    pub fn next_frame<F: FnMut(&Frame<'_>)>(&mut self, mut f: F) -> Result<bool, ReadWarning> {
        loop {
            if self.done {
                return Ok(false);
            }
            match self.inner.next() {
                Ok((len, block)) => {
                    let mut emitted = false;
                    match block {
                        PcapBlockOwned::LegacyHeader(h) => {
                            let res = if h.is_nanosecond_precision() {
                                1_000_000_000
                            } else {
                                1_000_000
                            };
                            self.legacy = Some((LinkType::from_code(h.network.0), res));
                        }
                        PcapBlockOwned::Legacy(b) => {
                            let (link, res) =
                                self.legacy.unwrap_or((LinkType::Ethernet, 1_000_000));
                            let frac = u64::from(b.ts_usec) * (1_000_000_000 / res);
                            let ts = i64::from(b.ts_sec) * 1_000_000_000 + frac as i64;
                            let data = &b.data[..b.data.len().min(b.caplen as usize)];
                            f(&Frame {
                                ts_nanos: ts,
                                link,
                                orig_len: b.origlen,
                                data,
                            });
                            emitted = true;
                        }
                        PcapBlockOwned::NG(Block::SectionHeader(_)) => self.interfaces.clear(),
                        PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                            self.interfaces.push(Interface {
                                link: LinkType::from_code(idb.linktype.0),
                                resolution: idb.ts_resolution().unwrap_or(1_000_000).max(1),
                                offset_secs: idb.ts_offset(),
                            });
                        }
                        PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                            match self.interfaces.get(epb.if_id as usize) {
                                Some(i) => {
                                    let units =
                                        (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
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
                                    emitted = true;
                                }
                                None => self.skipped += 1,
                            }
                        }
                        PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
                            match self.interfaces.first() {
                                Some(i) => {
                                    f(&Frame {
                                        ts_nanos: 0,
                                        link: i.link,
                                        orig_len: spb.origlen,
                                        data: spb.data,
                                    });
                                    emitted = true;
                                }
                                None => self.skipped += 1,
                            }
                        }
                        PcapBlockOwned::NG(_) => {}
                    }
                    self.inner.consume(len);
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
                    if let Err(e) = self.inner.refill() {
                        let msg = format!("read error: {e:?}");
                        return Err(self.warn(msg));
                    }
                }
                Err(PcapError::UnexpectedEof) => {
                    let left = self.inner.data().len();
                    return Err(self.warn(format!(
                        "the file ends inside a record ({left} bytes of it present)"
                    )));
                }
                // pcap-parser says this only when one record would not fit
                // the whole buffer: the length field is damaged or hostile.
                Err(PcapError::BufferTooSmall) => {
                    return Err(self.warn(format!(
                        "a record claims more than {} bytes; its length field is damaged",
                        BUFFER
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
