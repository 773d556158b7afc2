//! `sonde analyze CAPTURE... [--report FILE|-] [--top N]`

use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use super::write_err;
use crate::analyze::{AnalyzeOptions, analyze};
use crate::error::{Error, exit};

#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// Capture files (pcap or pcapng), analyzed together in time order.
    #[arg(value_name = "CAPTURE", required = true)]
    pub captures: Vec<PathBuf>,

    /// Where to write the JSON report ('-' for standard output, the default).
    #[arg(long, value_name = "FILE|-", default_value = "-")]
    pub report: String,

    /// Entries in each top-N list (talkers, ports).
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub top: usize,
}

pub fn run(args: AnalyzeArgs, out: &mut dyn Write) -> Result<i32, Error> {
    // Fail on an unwritable report path before reading gigabytes.
    let mut file = match args.report.as_str() {
        "-" => None,
        path => Some(
            std::fs::File::create(path)
                .map_err(|e| Error::runtime(format!("cannot create report {path}"), e))?,
        ),
    };
    let report = analyze(&args.captures, &AnalyzeOptions { top: args.top }).map_err(|e| {
        Error::usage(
            format!("cannot analyze {}: {}", e.path.display(), e.message),
            "give pcap or pcapng files",
        )
    })?;
    let mut json = serde_json::to_vec_pretty(&report)
        .map_err(|e| Error::runtime("cannot encode the report", e))?;
    json.push(b'\n');
    match file.as_mut() {
        Some(f) => f
            .write_all(&json)
            .map_err(|e| Error::runtime(format!("cannot write report {}", args.report), e))?,
        None => out.write_all(&json).map_err(write_err)?,
    }
    for w in &report.warnings {
        eprintln!(
            "sonde: warning: {}: at byte {}: {}",
            w.file, w.offset, w.message
        );
    }
    Ok(exit::OK)
}
