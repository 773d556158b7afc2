//! A streaming reader for pcap (micro- and nanosecond, either byte order)
//! and pcapng (several interfaces, each with its own link type and timestamp
//! resolution), built on pcap-parser's record parsers.
//!
//! Bytes arrive in chunks from a [`ChunkSource`]: a `Read`, or the
//! analysis' reading thread, which hashes them on the way. Records are
//! parsed where they lie in the chunk; only a record that straddles two
//! chunks is copied, into a carry buffer, so the bytes are not copied a
//! second time on their way to the dissector. (pcap-parser's own reader
//! copies every byte from its `Read` into its buffer.)
//!
//! Memory is bounded by [`BUFFER`]: a record is never assembled beyond it,
//! whatever its length field claims. Damage stops the read with a
//! [`ReadWarning`] naming the byte offset; what came before is kept.
//!
//! (A memory-mapped variant was measured: no faster than streaming, and it
//! brings SIGBUS on a file truncated while mapped, so sonde streams.)

use std::io::Read;

use pcap_parser::nom::{IResult, Needed};
use pcap_parser::pcap::{
    LegacyPcapBlock, parse_pcap_frame, parse_pcap_frame_be, parse_pcap_frame_modified,
    parse_pcap_header,
};
use pcap_parser::pcapng::{Block, parse_block_be, parse_block_le, parse_sectionheaderblock};
use pcap_parser::{PcapBlockOwned, PcapError};

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

/// A pcap record as a frame, given the file header's link type and
/// nanoseconds per tick of its timestamp fraction.
fn legacy_frame<'a>(legacy: Option<(LinkType, u64)>, b: &LegacyPcapBlock<'a>) -> Frame<'a> {
    let (link, ns_per_tick) = legacy.unwrap_or((LinkType::Ethernet, 1_000));
    let frac = u64::from(b.ts_usec) * ns_per_tick;
    Frame {
        ts_nanos: (i64::from(b.ts_sec) * 1_000_000_000 + frac as i64).min(MAX_NANOS),
        link,
        orig_len: b.origlen,
        data: &b.data[..b.data.len().min(b.caplen as usize)],
    }
}

/// Hand the whole pcap records at the start of `data` to `f`; the bytes
/// they took. A record cut at the end (or a damaged one) is left for the
/// careful path.
fn whole_records<'a, P, F>(
    data: &'a [u8],
    legacy: Option<(LinkType, u64)>,
    parse: P,
    f: &mut F,
) -> usize
where
    P: Fn(&'a [u8]) -> IResult<&'a [u8], LegacyPcapBlock<'a>, PcapError<&'a [u8]>>,
    F: FnMut(&Frame<'_>),
{
    let mut rest = data;
    while let Ok((rem, b)) = parse(rest) {
        f(&legacy_frame(legacy, &b));
        rest = rem;
    }
    data.len() - rest.len()
}

/// The first four bytes of a pcapng file (a section header block's type).
const NG_MAGIC: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];

/// Bytes a parser asked for (at least one).
fn needed(n: Needed) -> usize {
    match n {
        Needed::Size(n) => n.get(),
        Needed::Unknown => 1,
    }
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

/// Where a reader's bytes come from, a chunk at a time.
pub trait ChunkSource: Send {
    /// The next bytes of the file (a non-empty vector), or `None` at its
    /// end. `spent` is the previous chunk's buffer, for reuse.
    fn next_chunk(&mut self, spent: Vec<u8>) -> std::io::Result<Option<Vec<u8>>>;
}

/// Chunks read from any `Read`.
struct ReadChunks<R>(R);

/// Chunk size for a plain `Read` source.
const READ_CHUNK: usize = 1 << 16;

impl<R: Read + Send> ChunkSource for ReadChunks<R> {
    fn next_chunk(&mut self, mut buf: Vec<u8>) -> std::io::Result<Option<Vec<u8>>> {
        buf.resize(READ_CHUNK, 0);
        loop {
            match self.0.read(&mut buf) {
                Ok(0) => return Ok(None),
                Ok(n) => {
                    buf.truncate(n);
                    return Ok(Some(buf));
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// The record layout of a pcap file.
#[derive(Clone, Copy)]
enum Legacy {
    Little,
    Big,
    /// Kuznetzov's modified format (8 more bytes a record).
    Modified,
}

impl Legacy {
    fn parse(self, data: &[u8]) -> IResult<&[u8], LegacyPcapBlock<'_>, PcapError<&[u8]>> {
        match self {
            Legacy::Little => parse_pcap_frame(data),
            Legacy::Big => parse_pcap_frame_be(data),
            Legacy::Modified => parse_pcap_frame_modified(data),
        }
    }
}

#[derive(Clone, Copy)]
enum Format {
    Legacy(Legacy),
    /// pcapng, in the byte order of the current section.
    Ng {
        big_endian: bool,
    },
}

/// Reads the frames of one capture file.
pub struct CaptureReader {
    source: Box<dyn ChunkSource>,
    name: String,
    format: Format,
    /// The current chunk and how far it has been read.
    chunk: Vec<u8>,
    pos: usize,
    /// A record being assembled across chunks; when not empty, it comes
    /// before `chunk[pos..]`.
    carry: Vec<u8>,
    /// The source has no more chunks.
    exhausted: bool,
    /// Bytes of the file consumed so far.
    offset: u64,
    /// A pcap file's link type and nanoseconds per timestamp tick.
    legacy: Option<(LinkType, u64)>,
    interfaces: Vec<Interface>,
    done: bool,
    /// Frames whose interface was never described.
    pub skipped: u64,
}

/// What a parser made of the bytes at hand.
enum Step {
    /// A block was applied: its length, and whether it was a frame.
    Block(usize, bool),
    /// This many more bytes are needed.
    Need(usize),
    Damaged(String),
}

/// What a file that is no pcap or pcapng is, from its first bytes: a
/// compressed capture or text says so, anything else shows its start.
fn not_a_capture(data: &[u8]) -> String {
    let start: Vec<String> = data.iter().take(4).map(|b| format!("{b:02x}")).collect();
    let kind = match data {
        [0x1f, 0x8b, ..] => Some("gzip-compressed: decompress it first (gunzip -k FILE)"),
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Some("zstd-compressed: decompress it first (zstd -d FILE)"),
        [0xfd, b'7', b'z', b'X', ..] => Some("xz-compressed: decompress it first (unxz -k FILE)"),
        [b'B', b'Z', b'h', ..] => Some("bzip2-compressed: decompress it first (bunzip2 -k FILE)"),
        _ if data
            .iter()
            .take(64)
            .all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace()) =>
        {
            Some("text, not a capture")
        }
        _ => None,
    };
    match kind {
        Some(k) => format!(
            "not a pcap or pcapng file: {k} (it starts with {})",
            start.join(" ")
        ),
        None => format!(
            "not a pcap or pcapng file: it starts with {}, not a pcap or pcapng magic number",
            start.join(" ")
        ),
    }
}

impl CaptureReader {
    /// Read a capture from any reader; `name` labels warnings. Fails when
    /// the data is neither pcap nor pcapng (wrong magic) or is empty.
    pub fn new<R: Read + Send + 'static>(
        source: R,
        name: &str,
    ) -> Result<CaptureReader, ReadWarning> {
        Self::from_chunks(Box::new(ReadChunks(source)), name)
    }

    /// Read a capture from a source of chunks.
    pub fn from_chunks(
        source: Box<dyn ChunkSource>,
        name: &str,
    ) -> Result<CaptureReader, ReadWarning> {
        let mut r = CaptureReader {
            source,
            name: name.to_string(),
            format: Format::Ng { big_endian: false },
            chunk: Vec::new(),
            pos: 0,
            carry: Vec::new(),
            exhausted: false,
            offset: 0,
            legacy: None,
            interfaces: Vec::new(),
            done: false,
            skipped: 0,
        };
        r.read_file_header()?;
        Ok(r)
    }

    /// Tell pcapng from pcap (probing pcapng first, as pcap-parser does)
    /// and take in a pcap file header.
    fn read_file_header(&mut self) -> Result<(), ReadWarning> {
        use pcap_parser::nom::Err::Incomplete;
        loop {
            if self.carry.is_empty() && self.pos == self.chunk.len() {
                match self.next_chunk() {
                    Ok(true) => continue,
                    Ok(false) => return Err(self.header_error("the file is empty".to_string())),
                    Err(e) => return Err(self.header_error(format!("cannot read the file: {e}"))),
                }
            }
            let data: &[u8] = if self.carry.is_empty() {
                &self.chunk[self.pos..]
            } else {
                &self.carry
            };
            let need = match parse_sectionheaderblock(data) {
                Ok(_) => {
                    self.format = Format::Ng { big_endian: false };
                    return Ok(());
                }
                Err(Incomplete(n)) if data.starts_with(&NG_MAGIC) => n,
                Err(Incomplete(n)) if data.len() < NG_MAGIC.len() => n,
                Err(_) => match parse_pcap_header(data) {
                    Ok((_, h)) => {
                        self.format = Format::Legacy(if h.is_modified_format() {
                            Legacy::Modified
                        } else if h.is_bigendian() {
                            Legacy::Big
                        } else {
                            Legacy::Little
                        });
                        let size = h.size();
                        Self::block(
                            &mut self.legacy,
                            &mut self.interfaces,
                            &mut self.skipped,
                            PcapBlockOwned::from(h),
                            &mut |_| {},
                        );
                        self.consume(size);
                        return Ok(());
                    }
                    Err(Incomplete(n)) => n,
                    Err(_) => {
                        let what = not_a_capture(data);
                        return Err(self.header_error(what));
                    }
                },
            };
            match self.more(needed(need)) {
                Ok(true) => {}
                Ok(false) => {
                    // Everything the file held is in `carry` now.
                    let have = self.carry.len();
                    return Err(self.header_error(format!(
                        "cannot read the file header: the file ends after {have} bytes"
                    )));
                }
                Err(e) => {
                    return Err(self.header_error(format!("cannot read the file header: {e}")));
                }
            }
        }
    }

    fn header_error(&mut self, message: String) -> ReadWarning {
        self.done = true;
        ReadWarning {
            file: self.name.clone(),
            offset: 0,
            message,
        }
    }

    fn consume(&mut self, n: usize) {
        if self.carry.is_empty() {
            self.pos += n;
        } else {
            self.carry.drain(..n);
        }
        self.offset += n as u64;
    }

    /// Take the source's next chunk; false at its end.
    fn next_chunk(&mut self) -> std::io::Result<bool> {
        let spent = std::mem::take(&mut self.chunk);
        self.pos = 0;
        match self.source.next_chunk(spent)? {
            Some(c) => {
                self.chunk = c;
                Ok(true)
            }
            None => {
                self.exhausted = true;
                Ok(false)
            }
        }
    }

    /// Make `need` more bytes contiguous with those at hand: what is left
    /// of the chunk moves into `carry`, topped up from the chunks after.
    /// Ok(false) when the file ends first.
    fn more(&mut self, need: usize) -> std::io::Result<bool> {
        if self.carry.is_empty() {
            self.carry.extend_from_slice(&self.chunk[self.pos..]);
            self.pos = self.chunk.len();
        }
        let mut need = need;
        while need > 0 {
            if self.pos == self.chunk.len() {
                if !self.next_chunk()? {
                    return Ok(false);
                }
                continue;
            }
            let take = need.min(self.chunk.len() - self.pos);
            self.carry
                .extend_from_slice(&self.chunk[self.pos..self.pos + take]);
            self.pos += take;
            need -= take;
        }
        Ok(true)
    }

    fn warn(&mut self, message: String) -> ReadWarning {
        self.done = true;
        ReadWarning {
            file: self.name.clone(),
            offset: self.offset,
            message,
        }
    }

    /// Parse one block from the bytes at hand and apply it.
    fn step<F: FnMut(&Frame<'_>)>(&mut self, f: &mut F) -> Step {
        use pcap_parser::nom::Err;
        let data: &[u8] = if self.carry.is_empty() {
            &self.chunk[self.pos..]
        } else {
            &self.carry
        };
        let parsed = match self.format {
            // Every record of a pcap file is a frame: straight to `f`.
            Format::Legacy(layout) => match layout.parse(data) {
                Ok((rem, b)) => {
                    f(&legacy_frame(self.legacy, &b));
                    return Step::Block(data.len() - rem.len(), true);
                }
                Err(e) => Err(e),
            },
            Format::Ng { big_endian } => {
                let parse = if big_endian {
                    parse_block_be
                } else {
                    parse_block_le
                };
                parse(data).map(|(rem, b)| {
                    if let Block::SectionHeader(shb) = &b {
                        self.format = Format::Ng {
                            big_endian: shb.big_endian(),
                        };
                    }
                    (rem, PcapBlockOwned::from(b))
                })
            }
        };
        match parsed {
            Ok((rem, block)) => {
                let used = data.len() - rem.len();
                let emitted = Self::block(
                    &mut self.legacy,
                    &mut self.interfaces,
                    &mut self.skipped,
                    block,
                    f,
                );
                Step::Block(used, emitted)
            }
            Err(Err::Incomplete(n)) => Step::Need(needed(n)),
            Err(Err::Error(e) | Err::Failure(e)) => Step::Damaged(format!("damaged record: {e:?}")),
        }
    }

    /// Hand every frame left to `f`, in order. Returns `Err` when damage
    /// stops the read (the frames before it were handed over).
    ///
    /// The same frames as calling [`CaptureReader::next_frame`] until it
    /// returns `Ok(false)`, but the records of a pcap file that lie whole
    /// in the chunk at hand are parsed in one loop, with the parser chosen
    /// once: the per-frame call, bookkeeping and indirect parser call of
    /// `next_frame` cost as much as parsing the record.
    pub fn for_each_frame<F: FnMut(&Frame<'_>)>(&mut self, mut f: F) -> Result<(), ReadWarning> {
        loop {
            if let Format::Legacy(layout) = self.format
                && self.carry.is_empty()
                && !self.done
            {
                let (data, legacy) = (&self.chunk[self.pos..], self.legacy);
                let used = match layout {
                    Legacy::Little => whole_records(data, legacy, parse_pcap_frame, &mut f),
                    Legacy::Big => whole_records(data, legacy, parse_pcap_frame_be, &mut f),
                    Legacy::Modified => {
                        whole_records(data, legacy, parse_pcap_frame_modified, &mut f)
                    }
                };
                self.consume(used);
            }
            // A record across chunks, the end of the file, damage, pcapng.
            if !self.next_frame(&mut f)? {
                return Ok(());
            }
        }
    }

    /// Hand the next frame to `f`. Returns `Ok(false)` at the end of the
    /// file, `Err` when damage stops the read.
    pub fn next_frame<F: FnMut(&Frame<'_>)>(&mut self, mut f: F) -> Result<bool, ReadWarning> {
        if self.done {
            return Ok(false);
        }
        loop {
            if self.carry.is_empty() && self.pos == self.chunk.len() {
                match self.next_chunk() {
                    Ok(true) => continue,
                    Ok(false) => {
                        self.done = true;
                        return Ok(false);
                    }
                    Err(e) => return Err(self.warn(format!("read error: {e}"))),
                }
            }
            let need = match self.step(&mut f) {
                Step::Block(used, emitted) => {
                    self.consume(used);
                    if emitted {
                        return Ok(true);
                    }
                    continue;
                }
                Step::Need(n) => n,
                Step::Damaged(msg) => return Err(self.warn(msg)),
            };
            let have = if self.carry.is_empty() {
                self.chunk.len() - self.pos
            } else {
                self.carry.len()
            };
            // One record that would not fit the buffer: its length field
            // is damaged or hostile.
            if have + need >= BUFFER {
                return Err(self.warn(format!(
                    "a record claims more than {BUFFER} bytes; its length field is damaged"
                )));
            }
            match self.more(need) {
                Ok(true) => {}
                Ok(false) => {
                    let left = self.carry.len();
                    return Err(self.warn(format!(
                        "the file ends inside a record ({left} bytes of it present)"
                    )));
                }
                Err(e) => return Err(self.warn(format!("read error: {e}"))),
            }
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
                // Nanoseconds per tick of the fraction field, worked out
                // once here rather than divided out on every frame.
                let ns_per_tick = if h.is_nanosecond_precision() {
                    1
                } else {
                    1_000
                };
                *legacy = Some((LinkType::from_code(h.network.0), ns_per_tick));
            }
            PcapBlockOwned::Legacy(b) => {
                f(&legacy_frame(*legacy, &b));
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
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out `bytes` in chunks whose sizes cycle through `sizes`.
    struct Pieces {
        bytes: Vec<u8>,
        at: usize,
        sizes: Vec<usize>,
        turn: usize,
    }

    impl ChunkSource for Pieces {
        fn next_chunk(&mut self, _spent: Vec<u8>) -> std::io::Result<Option<Vec<u8>>> {
            if self.at == self.bytes.len() {
                return Ok(None);
            }
            let n = self.sizes[self.turn % self.sizes.len()].min(self.bytes.len() - self.at);
            self.turn += 1;
            self.at += n;
            Ok(Some(self.bytes[self.at - n..self.at].to_vec()))
        }
    }

    type Read = (Vec<(i64, LinkType, u32, Vec<u8>)>, Option<ReadWarning>);

    /// A reader of `bytes` handed over in chunks of `sizes`.
    fn reader(bytes: &[u8], sizes: &[usize]) -> Result<CaptureReader, ReadWarning> {
        let source = Pieces {
            bytes: bytes.to_vec(),
            at: 0,
            sizes: sizes.to_vec(),
            turn: 0,
        };
        CaptureReader::from_chunks(Box::new(source), "t")
    }

    fn keep(frames: &mut Vec<(i64, LinkType, u32, Vec<u8>)>, f: &Frame<'_>) {
        frames.push((f.ts_nanos, f.link, f.orig_len, f.data.to_vec()));
    }

    /// Every frame through `next_frame`, and the warning that stopped it.
    fn read_all(bytes: &[u8], sizes: &[usize]) -> Result<Read, ReadWarning> {
        let mut r = reader(bytes, sizes)?;
        let mut frames = Vec::new();
        loop {
            match r.next_frame(|f| keep(&mut frames, f)) {
                Ok(true) => {}
                Ok(false) => return Ok((frames, None)),
                Err(w) => return Ok((frames, Some(w))),
            }
        }
    }

    /// [`read_all`] through `for_each_frame`.
    fn read_all_at_once(bytes: &[u8], sizes: &[usize]) -> Result<Read, ReadWarning> {
        let mut frames = Vec::new();
        let end = reader(bytes, sizes)?.for_each_frame(|f| keep(&mut frames, f));
        Ok((frames, end.err()))
    }

    fn corpus(file: &str) -> Vec<u8> {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/corpus")
            .join(file);
        std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    /// Records straddling chunk boundaries (down to one byte a chunk) read
    /// exactly as when the whole file is one chunk, damaged files included:
    /// same frames, same warning at the same offset.
    #[test]
    fn chunk_boundaries_anywhere_read_the_same() {
        for file in [
            "normal/dns.pcap",
            "normal/http_ip4and6.pcapng",
            "frag/ipv6_fragments.pcapng",
            "dns-tunnel/iodine.pcap",
        ] {
            let good = corpus(file);
            let cuts = [
                good.len(),
                good.len() - 1,
                good.len() - 10,
                good.len() / 2,
                40,
                30,
            ];
            for cut in cuts {
                let bytes = &good[..cut];
                let whole = read_all(bytes, &[usize::MAX]);
                for sizes in [
                    &[1][..],
                    &[3, 1, 7],
                    &[64],
                    &[1000, 13],
                    &[4096],
                    &[usize::MAX],
                ] {
                    assert_eq!(
                        read_all(bytes, sizes),
                        whole,
                        "{file} cut at {cut}, chunks {sizes:?}"
                    );
                    assert_eq!(
                        read_all_at_once(bytes, sizes),
                        whole,
                        "{file} cut at {cut}, chunks {sizes:?}, all frames at once"
                    );
                }
                if cut == good.len() {
                    let (frames, warning) = whole.unwrap();
                    assert!(!frames.is_empty() && warning.is_none(), "{file}");
                }
            }
        }
    }

    /// A record whose length field is damaged stops both ways of reading
    /// at the same frame, with the same warning (naming the same offset).
    #[test]
    fn a_damaged_record_length_stops_every_way_of_reading_alike() {
        let mut bytes = corpus("dns-tunnel/iodine.pcap");
        // Walk the records (little-endian pcap) to the tenth; claim 2 GB.
        let mut at = 24;
        for _ in 0..10 {
            let caplen = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap());
            at += 16 + caplen as usize;
        }
        bytes[at + 8..at + 12].copy_from_slice(&0x8000_0000u32.to_le_bytes());
        let whole = read_all(&bytes, &[usize::MAX]).unwrap();
        assert_eq!(whole.0.len(), 10);
        let warning = whole.1.clone().expect("a warning");
        assert!(warning.message.contains("damaged"), "{}", warning.message);
        for sizes in [&[1][..], &[3, 1, 7], &[4096], &[usize::MAX]] {
            assert_eq!(read_all(&bytes, sizes).unwrap(), whole, "chunks {sizes:?}");
            assert_eq!(
                read_all_at_once(&bytes, sizes).unwrap(),
                whole,
                "chunks {sizes:?}"
            );
        }
    }

    #[test]
    fn files_too_short_for_a_header_are_refused_with_the_reason() {
        let pcap = corpus("dns-tunnel/iodine.pcap");
        let ng = corpus("normal/dns.pcap");
        for (bytes, why) in [
            (&[][..], "the file is empty"),
            (&pcap[..10], "ends after 10 bytes"),
            (&ng[..2], "ends after 2 bytes"),
            (&ng[..20], "ends after 20 bytes"),
            (&b"not a capture at all"[..], "text, not a capture"),
        ] {
            for sizes in [&[1][..], &[usize::MAX]] {
                let e = read_all(bytes, sizes).unwrap_err();
                assert!(e.message.contains(why), "{}: {}", bytes.len(), e.message);
            }
        }
    }
}
