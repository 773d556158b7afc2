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

pub mod detect;
pub mod dissect;
pub mod dns;
pub mod flows;
pub mod http;
pub mod stats;
mod time;

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
    pub http: http::HttpReport,
    pub anomalies: Vec<Anomaly>,
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
    http: http::HttpStats,
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
            http: http::HttpStats::default(),
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
        if let Some(Transport::Tcp {
            payload,
            valid: true,
            ..
        }) = d.transport
            && !payload.is_empty()
            && let Some(m) = http::parse(payload)
        {
            self.http.add(&m);
        }
        let snaplen_cut = (orig_len as usize) > data.len();
        self.detectors
            .frame(frame_no, ts, &d, snaplen_cut, dns_msg.as_ref());
        let (detectors, stats) = (&mut self.detectors, &mut self.stats);
        let in_flow = self.flows.add(frame_no, ts, orig_len, &d, &mut |f| {
            detectors.flow_finished(f);
            stats.flow_finished(f);
        });
        if let (false, Some(ip)) = (in_flow, &d.ip) {
            self.stats.talk(ip.src, ip.dst, orig_len);
        }
    }

    /// Finish every flow and detector; the report without its `input` and `warnings`.
    pub fn finish(self, input: Vec<InputFile>, warnings: Vec<ReadWarning>) -> Report {
        let (mut detectors, mut stats) = (self.detectors, self.stats);
        let (list, count) = self.flows.finish(&mut |f| {
            detectors.flow_finished(f);
            stats.flow_finished(f);
        });
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
            http: self.http.report(self.top),
            anomalies: detectors.finish(),
            warnings,
        }
    }
}

struct Source {
    reader: CaptureReader,
    hash: JoinHandle<std::io::Result<(String, f64, u64)>>,
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

    /// The input's description and the CPU seconds its hashing took.
    fn into_input(self) -> (InputFile, f64) {
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
            Ok(Ok((h, cpu, size))) => {
                // A pipe (standard input) has no size until it is read.
                info.size = info.size.max(size);
                (h, cpu)
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
    let (input, hashing): (Vec<InputFile>, Vec<f64>) =
        sources.into_iter().map(Source::into_input).unzip();
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

/// The reading thread: reads the file once, hashes every chunk and hands it
/// to the analysis thread. If the analysis stops early (damage), it goes on
/// hashing to the end, so the SHA-256 is always of the whole file.
fn read_and_hash(
    mut f: File,
    to_analysis: SyncSender<Vec<u8>>,
    recycled: Receiver<Vec<u8>>,
) -> std::io::Result<(String, f64, u64)> {
    let start = thread_cpu_seconds();
    let mut h = Sha256::new();
    let mut size = 0u64;
    let mut listening = true;
    let mut spare = vec![0u8; CHUNK];
    loop {
        let mut buf = if listening {
            recycled.try_recv().unwrap_or_default()
        } else {
            std::mem::take(&mut spare)
        };
        // A recycled buffer comes back cut to its last chunk's length.
        buf.resize(CHUNK, 0);
        let n = loop {
            match f.read(&mut buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        };
        if n == 0 {
            return Ok((
                hex::encode(h.finalize()),
                thread_cpu_seconds() - start,
                size,
            ));
        }
        size += n as u64;
        buf.truncate(n);
        h.update(&buf);
        if listening {
            if let Err(std::sync::mpsc::SendError(back)) = to_analysis.send(buf) {
                listening = false;
                spare = back;
            }
        } else {
            spare = buf;
        }
    }
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
    let reader = CaptureReader::from_chunks(Box::new(chunks), &path.display().to_string())
        .map_err(|w| err(w.message))?;
    Ok(Source {
        reader,
        hash,
        info: InputFile {
            path: path.display().to_string(),
            size,
            sha256: String::new(),
            link_types: Vec::new(),
            packets: 0,
        },
        links: BTreeSet::new(),
        pending: None,
        buf: Vec::with_capacity(2048),
    })
}
