//! Offline analysis: captures to statistics, flows, DNS and HTTP summaries
//! and findings (`anomalies`).
//!
//! Several files are read as one capture, in time order: each file is read
//! in order, and the next frame overall is the earliest of the files' next
//! frames.

pub mod detect;
pub mod dissect;
pub mod dns;
pub mod flows;
pub mod http;
pub mod stats;

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::analyze::detect::{Anomaly, Detectors, Thresholds};
use crate::analyze::dissect::Transport;
use crate::analyze::flows::{FlowCounts, FlowListing, FlowSummary, FlowTable};
use crate::pcap::{CaptureReader, LinkType, ReadWarning};
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

/// The report's `flows` section.
#[derive(Debug, Serialize)]
pub struct FlowsReport {
    pub count: FlowCounts,
    /// Which flows `list` holds: all, the top N by bytes, or none.
    pub listing: &'static str,
    pub list: Vec<FlowSummary>,
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

/// The analysis report (the sections implemented so far).
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

/// A file that cannot be analyzed at all.
#[derive(Debug)]
pub struct OpenError {
    pub path: PathBuf,
    pub message: String,
}

/// Reads the file while hashing it, so the SHA-256 costs no second pass.
struct Hashing<R> {
    inner: R,
    hash: std::sync::Arc<std::sync::Mutex<Sha256>>,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.lock().expect("hash lock").update(&buf[..n]);
        Ok(n)
    }
}

struct Source {
    reader: CaptureReader<Hashing<BufReader<File>>>,
    hash: std::sync::Arc<std::sync::Mutex<Sha256>>,
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
        match self.reader.next_frame(|f| {
            buf.clear();
            buf.extend_from_slice(f.data);
            next = Some((f.ts_nanos, f.link, f.orig_len));
        }) {
            Ok(_) => {}
            Err(w) => warnings.push(w),
        }
        self.pending = next;
    }
}

/// Analyze `paths` as one capture.
pub fn analyze(paths: &[PathBuf], opts: &AnalyzeOptions) -> Result<Report, OpenError> {
    let mut warnings = Vec::new();
    let mut sources = Vec::new();
    for path in paths {
        sources.push(open(path)?);
    }
    for s in &mut sources {
        s.advance(&mut warnings);
    }
    let mut stats = Stats::default();
    let mut flows = FlowTable::new(opts.flow_idle_timeout_seconds, opts.flows, opts.top);
    let mut detectors = Detectors::new(&opts.thresholds);
    let mut dns_stats = dns::DnsStats::default();
    let mut http_stats = http::HttpStats::default();
    let mut frame_no = 0u64;
    while let Some(i) = (0..sources.len())
        .filter(|&i| sources[i].pending.is_some())
        .min_by_key(|&i| sources[i].pending.map(|p| p.0))
    {
        let s = &mut sources[i];
        let (ts, link, orig_len) = s.pending.expect("chosen source has a frame");
        s.links.insert(link);
        s.info.packets += 1;
        frame_no += 1;
        let d = dissect::dissect(link, &s.buf);
        stats.add(ts, orig_len, &d);
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
            dns_stats.add(m);
        }
        if let Some(Transport::Tcp {
            payload,
            valid: true,
            ..
        }) = d.transport
            && !payload.is_empty()
            && let Some(m) = http::parse(payload)
        {
            http_stats.add(&m);
        }
        let snaplen_cut = (orig_len as usize) > s.buf.len();
        detectors.frame(frame_no, ts, &d, snaplen_cut, dns_msg.as_ref());
        flows.add(frame_no, ts, orig_len, &d, &mut |f| {
            detectors.flow_finished(f)
        });
        s.advance(&mut warnings);
    }
    let listing = match opts.flows {
        FlowListing::All => "all",
        FlowListing::Top => "top",
        FlowListing::None => "none",
    };
    let (list, count) = flows.finish(&mut |f| detectors.flow_finished(f));
    let input = sources
        .into_iter()
        .map(|mut s| {
            // A read stopped by damage has not seen the whole file: hash it anew.
            s.info.sha256 = if warnings.iter().any(|w: &ReadWarning| w.file == s.info.path) {
                hash_file(Path::new(&s.info.path)).unwrap_or_default()
            } else {
                hex::encode(s.hash.lock().expect("hash lock").clone().finalize())
            };
            s.info.link_types = s.links.iter().map(|l| l.name()).collect();
            s.info
        })
        .collect();
    Ok(Report {
        sonde_version: env!("CARGO_PKG_VERSION"),
        input,
        stats: stats.report(opts.top, count.tcp, count.udp),
        flows: FlowsReport {
            count,
            listing,
            list,
        },
        dns: dns_stats.report(opts.top),
        http: http_stats.report(opts.top),
        anomalies: detectors.finish(),
        warnings,
    })
}

fn hash_file(path: &Path) -> std::io::Result<String> {
    let mut h = Sha256::new();
    let mut f = File::open(path)?;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match f.read(&mut buf)? {
            0 => return Ok(hex::encode(h.finalize())),
            n => h.update(&buf[..n]),
        }
    }
}

fn open(path: &Path) -> Result<Source, OpenError> {
    let err = |message: String| OpenError {
        path: path.to_path_buf(),
        message,
    };
    let file = File::open(path).map_err(|e| err(e.to_string()))?;
    let size = file.metadata().map_err(|e| err(e.to_string()))?.len();
    let hash = std::sync::Arc::new(std::sync::Mutex::new(Sha256::new()));
    let reader = Hashing {
        inner: BufReader::with_capacity(1 << 16, file),
        hash: hash.clone(),
    };
    let reader =
        CaptureReader::new(reader, &path.display().to_string()).map_err(|w| err(w.message))?;
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
