//! Offline analysis: captures to statistics (and, to come, flows and findings).
//!
//! Several files are read as one capture, in time order: each file is read
//! in order, and the next frame overall is the earliest of the files' next
//! frames.

pub mod dissect;
pub mod stats;

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::pcap::{CaptureReader, LinkType, ReadWarning};
use stats::{Stats, StatsReport};

/// Options of one analysis.
#[derive(Clone, Debug)]
pub struct AnalyzeOptions {
    /// Entries in each top-N list.
    pub top: usize,
}

impl Default for AnalyzeOptions {
    fn default() -> AnalyzeOptions {
        AnalyzeOptions { top: 10 }
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

/// The analysis report (the sections implemented so far).
#[derive(Debug, Serialize)]
pub struct Report {
    pub sonde_version: &'static str,
    pub input: Vec<InputFile>,
    #[serde(flatten)]
    pub stats: StatsReport,
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
    while let Some(i) = (0..sources.len())
        .filter(|&i| sources[i].pending.is_some())
        .min_by_key(|&i| sources[i].pending.map(|p| p.0))
    {
        let s = &mut sources[i];
        let (ts, link, orig_len) = s.pending.expect("chosen source has a frame");
        s.links.insert(link);
        s.info.packets += 1;
        let d = dissect::dissect(link, &s.buf);
        stats.add(ts, orig_len, &d);
        s.advance(&mut warnings);
    }
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
        stats: stats.report(opts.top),
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
