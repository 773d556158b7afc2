//! Offline analysis: captures to statistics, flows, DNS and HTTP summaries
//! and findings (`anomalies`).
//!
//! Several files are read as one capture, in time order: each file is read
//! in order, and the next frame overall is the earliest of the files' next
//! frames. With one file, frames are analyzed in place in the reader's
//! buffer; with several, each file's next frame is copied out once.
//!
//! Each input is read once, by a thread of its own that also computes its
//! SHA-256 and hands the bytes over in 1 MiB chunks (four in flight, buffers
//! recycled): the analysis thread does no I/O and hashing costs it no time.

pub mod describe;
pub mod detect;
pub mod dissect;
pub mod dns;
pub mod flows;
pub mod http;
pub mod http_stats;
pub mod http_stream;
pub mod quic;
mod reassembly;
pub mod stats;
pub mod tcp_analysis;
pub mod tls;
pub mod tunnel;

use std::collections::BTreeSet;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender, SyncSender};
use std::thread::JoinHandle;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::analyze::detect::{Anomaly, Detectors, Thresholds};
use crate::analyze::dissect::Transport;
use crate::analyze::flows::{FlowCounts, FlowListing, FlowSummary, FlowTable};
use crate::pcap::{CaptureReader, ChunkSource, Frame, LinkType, ReadWarning};
use stats::{Stats, StatsReport};

/// Options of one analysis.
#[derive(Clone, Debug)]
pub struct AnalyzeOptions {
    /// Entries in each top-N list (and flows listed with `FlowListing::Top`).
    pub top: usize,
    pub flows: FlowListing,
    pub thresholds: Thresholds,
    /// Flows idle this long are finished (memory follows active flows).
    pub flow_idle_timeout_seconds: f64,
}

impl Default for AnalyzeOptions {
    fn default() -> AnalyzeOptions {
        AnalyzeOptions {
            top: 10,
            flows: FlowListing::Top,
            thresholds: Thresholds::default(),
            flow_idle_timeout_seconds: 600.0,
        }
    }
}

/// One input file as the report describes it.
#[derive(Debug, Serialize)]
pub struct InputFile {
    pub path: String,
    pub size: u64,
    pub sha256: String,
    /// `gzip` or `zstd` when the file was compressed: it was decompressed
    /// as it was read; `size` and `sha256` are of the file as stored,
    /// offsets in warnings of the decompressed capture.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compression: Option<&'static str>,
    pub link_types: Vec<String>,
    pub packets: u64,
}

/// The report's `flows` section.
#[derive(Debug, Serialize)]
pub struct FlowsReport {
    pub count: FlowCounts,
    /// Which flows `list` holds: all, the top N by bytes, or none.
    pub listing: &'static str,
    pub list: Vec<FlowSummary>,
}

/// The analysis report.
#[derive(Debug, Serialize)]
pub struct Report {
    pub sonde_version: &'static str,
    pub input: Vec<InputFile>,
    #[serde(flatten)]
    pub stats: StatsReport,
    pub flows: FlowsReport,
    pub dns: dns::DnsReport,
    pub http: http_stats::HttpReport,
    pub tls: tls::TlsReport,
    pub tcp_analysis: tcp_analysis::TcpAnalysisReport,
    pub anomalies: Vec<Anomaly>,
    /// Every detector that ran: its thresholds, findings, and how close
    /// the capture came.
    pub detectors: Vec<detect::DetectorRun>,
    pub warnings: Vec<ReadWarning>,
}

/// Where the time went, for `--timings` (kept out of the report, which must
/// be the same on every run).
#[derive(Clone, Copy, Debug, Default)]
pub struct Timings {
    pub frames: u64,
    /// CPU seconds of the analysis thread (one core).
    pub analysis_cpu: f64,
    /// CPU seconds spent hashing inputs, on threads of their own.
    pub hashing_cpu: f64,
    pub wall: f64,
}

/// CPU seconds used so far by the calling thread.
fn thread_cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec; CLOCK_THREAD_CPUTIME_ID is always available on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

/// A file that cannot be analyzed at all.
#[derive(Debug)]
pub struct OpenError {
    pub path: PathBuf,
    pub message: String,
}

/// Everything that looks at frames, fed one frame at a time.
pub struct Analyzer {
    stats: Stats,
    flows: FlowTable,
    detectors: Detectors,
    dns: dns::DnsStats,
    http: http_stats::HttpStats,
    http_streams: http_stream::HttpStreams,
    tls: tls::TlsStats,
    tcp: tcp_analysis::TcpAnalysis,
    reassembly: reassembly::Reassembler,
    frames: u64,
    top: usize,
    listing: FlowListing,
}

impl Analyzer {
    pub fn new(opts: &AnalyzeOptions) -> Analyzer {
        Analyzer {
            stats: Stats::default(),
            flows: FlowTable::new(opts.flow_idle_timeout_seconds, opts.flows, opts.top),
            detectors: Detectors::new(&opts.thresholds),
            dns: dns::DnsStats::default(),
            http: http_stats::HttpStats::with_web_thresholds(opts.thresholds.web_scanner.clone()),
            http_streams: http_stream::HttpStreams::default(),
            tls: tls::TlsStats::default(),
            tcp: tcp_analysis::TcpAnalysis::default(),
            reassembly: reassembly::Reassembler::default(),
            frames: 0,
            top: opts.top,
            listing: opts.flows,
        }
    }

    /// Analyze one frame; frames are numbered from 1 in the order given.
    pub fn frame(&mut self, ts: i64, link: LinkType, orig_len: u32, data: &[u8]) {
        self.frames += 1;
        let frame_no = self.frames;
        let mut d = dissect::Dissected::default();
        dissect::dissect_into(link, data, &mut d);
        self.stats.add(ts, orig_len, &d);
        let snaplen_cut = (orig_len as usize) > data.len();
        if let Some(ip) = d.ip
            && let Some(f) = ip.fragment
        {
            // A fragment is fragment evidence; its datagram, once whole,
            // is what reaches flows and the other detectors (a frame
            // captured short cannot be put back).
            self.detectors.frame(
                frame_no,
                ts,
                &d,
                snaplen_cut,
                None,
                detect::FrameRole::Fragment,
            );
            if !snaplen_cut
                && let reassembly::Reassembled::Whole(payload) = self.reassembly.add(
                    ts,
                    ip.src,
                    ip.dst,
                    ip.proto,
                    f.id,
                    f.offset,
                    f.more,
                    d.ip_payload,
                )
                && let Some(packet) =
                    reassembly::Reassembler::packet(ip.src, ip.dst, ip.proto, &payload)
            {
                // The datagram is counted in the frame of its last
                // fragment, with that frame's length, as tshark counts it;
                // the other fragments' frames are counted on their own.
                let mut whole = dissect::Dissected::default();
                dissect::dissect_into(LinkType::Raw, &packet, &mut whole);
                self.datagram(
                    frame_no,
                    ts,
                    orig_len,
                    &whole,
                    false,
                    detect::FrameRole::Reassembled,
                );
            } else {
                self.stats.talk(ip.src, ip.dst, orig_len);
            }
            return;
        }
        self.datagram(
            frame_no,
            ts,
            orig_len,
            &d,
            snaplen_cut,
            detect::FrameRole::Whole,
        );
    }

    /// One IP datagram (or a frame without one): flows, detectors and the
    /// application layers.
    fn datagram(
        &mut self,
        frame_no: u64,
        ts: i64,
        orig_len: u32,
        d: &dissect::Dissected<'_>,
        snaplen_cut: bool,
        role: detect::FrameRole,
    ) {
        let dns_msg = match d.transport {
            Some(Transport::Udp {
                sport,
                dport,
                payload,
            }) if sport == 53 || dport == 53 => dns::parse(payload, false),
            Some(Transport::Tcp {
                sport,
                dport,
                payload,
                valid: true,
                ..
            }) if (sport == 53 || dport == 53) && !payload.is_empty() => dns::parse(payload, true),
            _ => None,
        };
        if let Some(m) = &dns_msg {
            self.dns.add(m);
        }
        self.detectors
            .frame(frame_no, ts, d, snaplen_cut, dns_msg.as_ref(), role);
        let (detectors, stats) = (&mut self.detectors, &mut self.stats);
        let in_flow = self.flows.add(frame_no, ts, orig_len, d, &mut |f| {
            detectors.flow_finished(f);
            stats.flow_finished(f);
        });
        if let (None, Some(ip)) = (in_flow, &d.ip) {
            self.stats.talk(ip.src, ip.dst, orig_len);
        }
        if let Some((slot, _)) = in_flow {
            let (proto, port) = self.flows.service(slot);
            self.stats.service_port(proto, port);
        }
        // What the client says to the server, for heartbeats.
        if let (Some((slot, src_is_a)), Some(ip)) = (in_flow, &d.ip) {
            let (proto, dport, len) = match d.transport {
                Some(Transport::Tcp { dport, payload, .. }) => (6, dport, payload.len()),
                Some(Transport::Udp { dport, payload, .. }) => (17, dport, payload.len()),
                _ => (0, 0, 0),
            };
            if len > 0 && self.flows.client_is_a(slot) == src_is_a {
                self.detectors
                    .client_payload(frame_no, ts, ip.src, ip.dst, dport, proto, len);
            }
        }
        // QUIC: a client's Initial packet carries its TLS ClientHello.
        if let (
            Some(Transport::Udp {
                sport,
                dport,
                payload,
            }),
            Some(ip),
        ) = (d.transport, &d.ip)
        {
            if quic::may_be_initial(payload)
                && let Some(c) = quic::client_hello(payload)
                && let Some(hello) = self.tls.quic_hello((ip.src, sport), (ip.dst, dport), c)
                && let Some((slot, _)) = in_flow
            {
                self.flows.tls_mut(slot).take(hello);
            }
            return;
        }
        let Some(Transport::Tcp {
            sport,
            dport,
            payload,
            valid: true,
            ..
        }) = d.transport
        else {
            return;
        };
        // TCP analysis, on the state kept beside the flow; whether the
        // segment carries data not seen before.
        let mut fresh = true;
        if let Some((slot, src_is_a)) = in_flow
            && let Some(seg) = tcp_analysis::Segment::read(d.ip_payload, payload.len())
        {
            let key = self.flows.key(slot);
            let endpoints = move || (key.a().ip(), key.a_port, key.b().ip(), key.b_port);
            fresh = self.tcp.segment(
                ts,
                &mut self.flows.tcp_state[slot],
                src_is_a,
                endpoints,
                seg,
            );
            // HTTP over each direction's byte stream: what was seen
            // before is skipped, heads are gathered, bodies followed.
            if !payload.is_empty() || seg.flags & (flows::FIN | flows::RST) != 0 {
                self.http_streams.segment(
                    slot as u32,
                    self.flows.first_frame(slot),
                    src_is_a,
                    http_stream::StreamSegment {
                        seq: seg.seq,
                        flags: seg.flags,
                        payload,
                        ts,
                        ends: [key.a().ip(), key.b().ip()],
                        frame: frame_no,
                    },
                    &mut self.http,
                );
            }
        }
        // A retransmitted hello is the same hello.
        if payload.is_empty() || !fresh {
            return;
        }
        if let Some(ip) = &d.ip
            && let Some(hello) = self.tls.segment(ip.src, sport, ip.dst, dport, payload)
            && let Some((slot, _)) = in_flow
        {
            self.flows.tls_mut(slot).take(hello);
        }
    }

    /// Finish every flow and detector; the report without its `input` and `warnings`.
    pub fn finish(self, input: Vec<InputFile>, warnings: Vec<ReadWarning>) -> Report {
        let (mut detectors, mut stats) = (self.detectors, self.stats);
        let (list, count) = self.flows.finish(&mut |f| {
            detectors.flow_finished(f);
            stats.flow_finished(f);
        });
        let mut http = self.http;
        let streams = self.http_streams.finish(&mut http);
        let web = std::mem::take(&mut http.web);
        let web_closest = web.closest();
        let mut web_findings = web.finish();
        web_findings.extend(std::mem::take(&mut http.cookies).finish());
        web_findings.extend(std::mem::take(&mut http.exploit_kit).finish());
        let (anomalies, detectors_run) = detectors.finish(web_findings, web_closest);
        let http_report = http.report(self.top, streams);
        let listing = match self.listing {
            FlowListing::All => "all",
            FlowListing::Top => "top",
            FlowListing::None => "none",
        };
        Report {
            sonde_version: env!("CARGO_PKG_VERSION"),
            input,
            stats: stats.report(self.top, count.tcp, count.udp),
            flows: FlowsReport {
                count,
                listing,
                list,
            },
            dns: self.dns.report(self.top),
            http: http_report,
            tls: self.tls.report(self.top),
            tcp_analysis: self.tcp.report(),
            anomalies,
            detectors: detectors_run,
            warnings,
        }
    }
}

struct Source {
    reader: CaptureReader,
    hash: JoinHandle<std::io::Result<ReadOutcome>>,
    info: InputFile,
    links: BTreeSet<LinkType>,
    /// The next frame, copied out of the reader: (timestamp, link, wire length).
    pending: Option<(i64, LinkType, u32)>,
    buf: Vec<u8>,
}

impl Source {
    fn advance(&mut self, warnings: &mut Vec<ReadWarning>) {
        let buf = &mut self.buf;
        let mut next = None;
        if let Err(w) = self.reader.next_frame(|f| {
            buf.clear();
            buf.extend_from_slice(f.data);
            next = Some((f.ts_nanos, f.link, f.orig_len));
        }) {
            warnings.push(w);
        }
        self.pending = next;
    }

    /// The input's description and the CPU seconds its hashing took; a
    /// damaged compressed stream is a warning.
    fn into_input(self, warnings: &mut Vec<ReadWarning>) -> (InputFile, f64) {
        let Source {
            reader,
            hash,
            mut info,
            links,
            ..
        } = self;
        // Hang up first: a reading thread blocked on a full channel (the
        // analysis stopped early at damage) then goes on hashing to the end.
        drop(reader);
        let (sha256, cpu) = match hash.join() {
            Ok(Ok(r)) => {
                // A pipe (standard input) has no size until it is read.
                info.size = info.size.max(r.size);
                info.compression = r.compression;
                if let Some((offset, message)) = r.damage {
                    warnings.push(ReadWarning {
                        file: info.path.clone(),
                        offset,
                        message,
                    });
                }
                (r.sha256, r.cpu)
            }
            Ok(Err(e)) => (format!("unreadable: {e}"), 0.0),
            Err(_) => ("unreadable: the hashing thread failed".to_string(), 0.0),
        };
        info.sha256 = sha256;
        info.link_types = links.iter().map(|l| l.name()).collect();
        (info, cpu)
    }
}

/// Analyze `paths` as one capture.
pub fn analyze(paths: &[PathBuf], opts: &AnalyzeOptions) -> Result<Report, OpenError> {
    analyze_timed(paths, opts).map(|(report, _)| report)
}

/// [`analyze`], also saying where the time went.
pub fn analyze_timed(
    paths: &[PathBuf],
    opts: &AnalyzeOptions,
) -> Result<(Report, Timings), OpenError> {
    let (wall, cpu) = (std::time::Instant::now(), thread_cpu_seconds());
    let mut warnings = Vec::new();
    let mut sources = Vec::new();
    for path in paths {
        sources.push(open(path)?);
    }
    let mut analyzer = Analyzer::new(opts);
    if let [s] = sources.as_mut_slice() {
        // One file: analyze in the reader's buffer, no copy.
        let (links, packets) = (&mut s.links, &mut s.info.packets);
        let mut last_link = None;
        if let Err(w) = s.reader.for_each_frame(|f: &Frame<'_>| {
            // Almost always the link type of the frame before.
            if last_link != Some(f.link) {
                links.insert(f.link);
                last_link = Some(f.link);
            }
            *packets += 1;
            analyzer.frame(f.ts_nanos, f.link, f.orig_len, f.data);
        }) {
            warnings.push(w);
        }
    } else {
        for s in &mut sources {
            s.advance(&mut warnings);
        }
        while let Some(i) = (0..sources.len())
            .filter(|&i| sources[i].pending.is_some())
            .min_by_key(|&i| sources[i].pending.map(|p| p.0))
        {
            let s = &mut sources[i];
            let (ts, link, orig_len) = s.pending.expect("chosen source has a frame");
            s.links.insert(link);
            s.info.packets += 1;
            analyzer.frame(ts, link, orig_len, &s.buf);
            s.advance(&mut warnings);
        }
    }
    let frames = analyzer.frames;
    // Joining the hashing threads waits without using this thread's CPU.
    let (input, hashing): (Vec<InputFile>, Vec<f64>) = sources
        .into_iter()
        .map(|s| s.into_input(&mut warnings))
        .unzip();
    let report = analyzer.finish(input, warnings);
    let analysis_cpu = thread_cpu_seconds() - cpu;
    let timings = Timings {
        frames,
        analysis_cpu,
        hashing_cpu: hashing.iter().sum(),
        wall: wall.elapsed().as_secs_f64(),
    };
    Ok((report, timings))
}

const CHUNK: usize = 1 << 20;
/// Chunks in flight between the reading and the analysis thread.
const IN_FLIGHT: usize = 4;

/// What the reading thread found: the SHA-256 and size of the file as
/// stored, its CPU time, its compression, and where decompression failed
/// (offset in the decompressed capture, message).
struct ReadOutcome {
    sha256: String,
    cpu: f64,
    size: u64,
    compression: Option<&'static str>,
    damage: Option<(u64, String)>,
}

/// The file as stored, hashed as it is read: whatever reads through it
/// (the capture reader directly, or a decompressor), the SHA-256 is of the
/// file's own bytes.
struct HashingReader {
    file: File,
    sha: Sha256,
    size: u64,
}

impl Read for HashingReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read(buf)?;
        self.sha.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
}

/// Decompress zstd frames from `source` into `sink` until the file ends:
/// frames one after the other (`zstd` writes one; `cat a.zst b.zst` is
/// two), each through ruzstd's streaming decoder.
fn zstd_frames(
    source: &mut dyn std::io::BufRead,
    sink: &mut dyn FnMut(&[u8]) -> bool,
) -> std::io::Result<()> {
    // ruzstd hands out decoded data one window behind (the window stays
    // for back-references until the frame ends): a file cut short loses
    // its last window (up to 8 MiB at zstd's default levels).
    let mut buf = vec![0u8; 128 << 10];
    while !source.fill_buf()?.is_empty() {
        let mut frame = ruzstd::decoding::StreamingDecoder::new(&mut *source)
            .map_err(|e| std::io::Error::other(format!("not a zstd frame: {e}")))?;
        loop {
            let n = match frame.read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if n == 0 {
                break;
            }
            if !sink(&buf[..n]) {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// The compression a file's first bytes announce, if sonde reads it.
fn compression_of(head: &[u8]) -> Option<&'static str> {
    match head {
        [0x1f, 0x8b, ..] => Some("gzip"),
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Some("zstd"),
        _ => None,
    }
}

/// The reading thread's end of the channels: buffers come back from the
/// analysis for reuse; once the analysis hangs up, nothing more is sent.
struct Handover {
    to_analysis: SyncSender<Vec<u8>>,
    recycled: Receiver<Vec<u8>>,
    spare: Option<Vec<u8>>,
    /// Bytes handed over (of the decompressed capture).
    delivered: u64,
}

impl Handover {
    /// A buffer to fill: one the analysis gave back, or a new one.
    fn buffer(&mut self) -> Vec<u8> {
        self.recycled
            .try_recv()
            .ok()
            .or_else(|| self.spare.take())
            .unwrap_or_default()
    }

    /// Hand `buf` over; false once the analysis has hung up.
    fn send(&mut self, buf: Vec<u8>) -> bool {
        self.delivered += buf.len() as u64;
        match self.to_analysis.send(buf) {
            Ok(()) => true,
            Err(std::sync::mpsc::SendError(back)) => {
                self.spare = Some(back);
                false
            }
        }
    }

    /// Hand a copy of `data` over.
    fn deliver(&mut self, data: &[u8]) -> bool {
        let mut buf = self.buffer();
        buf.clear();
        buf.extend_from_slice(data);
        self.send(buf)
    }
}

/// The reading thread: reads the file once, hashes it and hands it to the
/// analysis thread in chunks, decompressing a gzip or zstd file on the
/// way. If the analysis stops early (damage), it goes on reading the file
/// to its end, so the SHA-256 is always of the whole file.
fn read_and_hash(
    file: File,
    to_analysis: SyncSender<Vec<u8>>,
    recycled: Receiver<Vec<u8>>,
) -> std::io::Result<ReadOutcome> {
    let start = thread_cpu_seconds();
    // Reads of a whole chunk bypass this buffer; it only lets the first
    // bytes be looked at before anyone reads them.
    let mut source = std::io::BufReader::with_capacity(
        64 << 10,
        HashingReader {
            file,
            sha: Sha256::new(),
            size: 0,
        },
    );
    let head = loop {
        match std::io::BufRead::fill_buf(&mut source) {
            Ok(head) => break head,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    };
    let compression = compression_of(head);
    let mut handover = Handover {
        to_analysis,
        recycled,
        spare: None,
        delivered: 0,
    };
    let mut damage = None;
    match compression {
        None => loop {
            // Read straight into the buffer that is handed over: no copy.
            let mut buf = handover.buffer();
            buf.resize(CHUNK, 0);
            let n = loop {
                match source.read(&mut buf) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            };
            buf.truncate(n);
            if n == 0 || !handover.send(buf) {
                break;
            }
        },
        Some(kind) => {
            let result = if kind == "gzip" {
                // Several gzip members one after the other are one stream
                // (`cat a.gz b.gz`, as gunzip reads them).
                let mut gz = flate2::bufread::MultiGzDecoder::new(&mut source);
                let mut buf = vec![0u8; CHUNK];
                loop {
                    match gz.read(&mut buf) {
                        Ok(0) => break Ok(()),
                        Ok(n) => {
                            if !handover.deliver(&buf[..n]) {
                                break Ok(());
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => break Err(e),
                    }
                }
            } else {
                zstd_frames(&mut source, &mut |data| handover.deliver(data))
            };
            if let Err(e) = result {
                damage = Some((
                    handover.delivered,
                    format!(
                        "the {kind} stream is damaged or cut short: {e} (the capture up to here was read)"
                    ),
                ));
            }
        }
    }
    drop(handover);
    // The rest of the file, hashed (after damage, or bytes past the end
    // of the compressed stream).
    std::io::copy(&mut source, &mut std::io::sink())?;
    let reader = source.into_inner();
    Ok(ReadOutcome {
        sha256: hex::encode(reader.sha.finalize()),
        cpu: thread_cpu_seconds() - start,
        size: reader.size,
        compression,
        damage,
    })
}

/// The analysis thread's side: the chunks the reading thread sends, parsed
/// in place by the capture reader, their buffers sent back for reuse.
struct Chunks {
    from_reader: Receiver<Vec<u8>>,
    recycle: Sender<Vec<u8>>,
}

impl ChunkSource for Chunks {
    fn next_chunk(&mut self, spent: Vec<u8>) -> std::io::Result<Option<Vec<u8>>> {
        if spent.capacity() > 0 {
            let _ = self.recycle.send(spent);
        }
        // Err: the reading thread finished (end of file, or an error it reports itself).
        Ok(self.from_reader.recv().ok())
    }
}

fn open(path: &Path) -> Result<Source, OpenError> {
    let err = |message: String| OpenError {
        path: path.to_path_buf(),
        message,
    };
    // `-` is standard input, read as a stream (a pipe from tcpdump -w -).
    let file = if path == Path::new("-") {
        File::open("/dev/stdin")
    } else {
        File::open(path)
    }
    .map_err(|e| err(e.to_string()))?;
    let meta = file.metadata().map_err(|e| err(e.to_string()))?;
    if meta.is_dir() {
        return Err(err(
            "is a directory, not a capture file (for a scan's run directory, analyze its capture.pcap)"
                .into(),
        ));
    }
    let size = meta.len();
    let (to_analysis, from_reader) = std::sync::mpsc::sync_channel(IN_FLIGHT);
    let (recycle, recycled) = std::sync::mpsc::channel();
    let hash = std::thread::Builder::new()
        .name("sonde-read".into())
        .spawn(move || read_and_hash(file, to_analysis, recycled))
        .map_err(|e| err(format!("cannot start the reading thread: {e}")))?;
    let chunks = Chunks {
        from_reader,
        recycle,
    };
    let reader = match CaptureReader::from_chunks(Box::new(chunks), &path.display().to_string()) {
        Ok(r) => r,
        Err(w) => {
            // The reading thread, hung up on, reads to the end and says
            // whether the bytes were decompressed (not for standard input,
            // which may never end).
            let mut message = w.message;
            if path != Path::new("-")
                && let Ok(Ok(r)) = hash.join()
                && let Some(kind) = r.compression
            {
                message = match r.damage {
                    Some((_, damage)) => format!("{kind}-compressed, and {damage}; {message}"),
                    None => format!("{message} (after {kind} decompression)"),
                };
            }
            return Err(err(message));
        }
    };
    Ok(Source {
        reader,
        hash,
        info: InputFile {
            path: path.display().to_string(),
            size,
            sha256: String::new(),
            compression: None,
            link_types: Vec::new(),
            packets: 0,
        },
        links: BTreeSet::new(),
        pending: None,
        buf: Vec::with_capacity(2048),
    })
}
