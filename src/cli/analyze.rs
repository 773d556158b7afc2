//! `sonde analyze CAPTURE... [--report FILE|-] [--top N]`

use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use super::write_err;
use crate::analyze::detect::Thresholds;
use crate::analyze::flows::FlowListing;
use crate::analyze::{AnalyzeOptions, analyze_timed};
use crate::error::{Error, exit};

#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// Capture files (pcap or pcapng), analyzed together in time order; `-`
    /// reads one from standard input (e.g. `tcpdump -w - | sonde analyze -`).
    #[arg(value_name = "CAPTURE", required = true)]
    pub captures: Vec<PathBuf>,

    /// Where to write the JSON report ('-' for standard output, the default).
    #[arg(long, value_name = "FILE|-", default_value = "-")]
    pub report: String,

    /// Also write the report as one self-contained HTML page (as `sonde
    /// report --html`; `-` for standard output, with --report FILE).
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,

    /// Entries in each top-N list (talkers, ports, domains, and flows with --flows top).
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub top: usize,

    /// Detector thresholds to override (TOML; docs/report.md lists the keys and defaults).
    #[arg(long, value_name = "FILE")]
    pub thresholds: Option<PathBuf>,

    /// Which flows the report lists: all, the top N by bytes, or none (all are counted).
    #[arg(long, value_enum, default_value_t = FlowListing::Top)]
    pub flows: FlowListing,

    /// Print where the time went (analysis and hashing CPU seconds, packets/s per core) on stderr.
    #[arg(long)]
    pub timings: bool,
}

/// Read a thresholds file; errors name the line and column.
pub fn load_thresholds(path: &std::path::Path) -> Result<Thresholds, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Input {
        what: format!("thresholds file {}", path.display()),
        source,
    })?;
    let thresholds: Thresholds = toml::from_str(&text).map_err(|e| {
        let at = e.span().map_or(0, |s| s.start).min(text.len());
        let line = text[..at].matches('\n').count() + 1;
        let column = text[..at].rfind('\n').map_or(at, |nl| at - nl - 1) + 1;
        Error::usage(
            format!("invalid thresholds file {}:{line}:{column}: {}", path.display(), e.message().trim()),
            "sections are [syn_flood], [port_scan], [dns_tunneling], [ip_fragmentation], [malformed_header]; docs/report.md lists every key",
        )
    })?;
    thresholds.validate().map_err(|m| {
        Error::usage(
            format!("invalid thresholds file {}: {m}", path.display()),
            "docs/report.md lists every key with its default",
        )
    })?;
    Ok(thresholds)
}

pub fn run(args: AnalyzeArgs, out: &mut dyn Write) -> Result<i32, Error> {
    // Both on standard output would be one stream of two documents.
    if args.html.as_deref() == Some(std::path::Path::new("-")) && args.report == "-" {
        return Err(Error::usage(
            "--html - and the JSON report would both go to standard output",
            "write the report to a file with --report FILE, or the page with --html FILE",
        ));
    }
    // Fail on an unwritable report path before reading gigabytes; an
    // existing report is replaced only by a whole new one.
    let mut file = match args.report.as_str() {
        "-" => None,
        path => Some(
            crate::output::OutputFile::create(std::path::Path::new(path))
                .map_err(|e| Error::runtime(format!("cannot create report {path}"), e))?,
        ),
    };
    let thresholds = match &args.thresholds {
        Some(p) => load_thresholds(p)?,
        None => Thresholds::default(),
    };
    let opts = AnalyzeOptions {
        top: args.top,
        flows: args.flows,
        thresholds,
        ..AnalyzeOptions::default()
    };
    let (report, timings) = analyze_timed(&args.captures, &opts).map_err(|e| {
        // The hint fits the failure: a missing path is not a format problem.
        let hint = if e.path == std::path::Path::new("-") {
            "standard input must carry a pcap or pcapng stream (tcpdump -w -)"
        } else if !e.path.exists() {
            "check the path: no such file"
        } else if e.path.is_dir() {
            "give the capture file itself"
        } else {
            "give pcap or pcapng files (tcpdump -w, tshark -w, Wireshark's save)"
        };
        Error::usage(
            format!("cannot analyze {}: {}", e.path.display(), e.message),
            hint,
        )
    })?;
    let mut json = serde_json::to_vec_pretty(&report)
        .map_err(|e| Error::runtime("cannot encode the report", e))?;
    json.push(b'\n');
    if let Some(html) = &args.html {
        let value: serde_json::Value = serde_json::from_slice(&json)
            .map_err(|e| Error::runtime("cannot encode the report", e))?;
        let sha256 = {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(&json))
        };
        let name = match args.report.as_str() {
            "-" => "the analysis report (standard output)".to_string(),
            p => p.to_string(),
        };
        super::report::write_html(
            &crate::report::PageInput::from_value(value),
            crate::report::Source { name, sha256 },
            html,
            out,
        )?;
    }
    match file.take() {
        Some(mut f) => f
            .write_all(&json)
            .and_then(|()| f.commit())
            .map_err(|e| Error::runtime(format!("cannot write report {}", args.report), e))?,
        None => out.write_all(&json).map_err(write_err)?,
    }
    if args.timings {
        let per_core = if timings.analysis_cpu > 0.0 {
            timings.frames as f64 / timings.analysis_cpu
        } else {
            0.0
        };
        say!(
            "sonde: timings: {} frames; analysis thread {:.3} s CPU ({per_core:.0} frames/s on one core); hashing {:.3} s CPU on its own thread; wall {:.3} s",
            timings.frames,
            timings.analysis_cpu,
            timings.hashing_cpu,
            timings.wall
        );
    }
    for w in &report.warnings {
        say!(
            "sonde: warning: {}: at byte {}: {}",
            w.file,
            w.offset,
            w.message
        );
    }
    let over = report.http.streams.heads_over_cap;
    if over > 0 {
        say!(
            "sonde: warning: {over} HTTP message head(s) longer than {} KB were counted by their first line only; their connections' later messages were found again only where a segment starts one (http.streams in the report)",
            crate::analyze::http_stream::MAX_HEAD / 1024
        );
    }
    Ok(exit::OK)
}
