//! `sonde verify AUDIT_LOG`: recompute the audit chain and the hash of
//! every file the log says was written; print each mismatch precisely.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use super::write_err;
use crate::error::{Error, exit};

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The audit log a run wrote (`sonde scan --audit FILE`).
    #[arg(value_name = "AUDIT_LOG")]
    pub audit: PathBuf,
}

pub fn run_verify(args: VerifyArgs, out: &mut dyn Write) -> Result<i32, Error> {
    let text = std::fs::read(&args.audit).map_err(|source| Error::Input {
        what: format!("the audit log {}", args.audit.display()),
        source,
    })?;
    let text = String::from_utf8_lossy(&text);
    let (problems, head) = crate::evidence::verify_chain(&text);
    let mut failures = 0usize;
    for p in &problems {
        writeln!(out, "BROKEN  {}: {p}", args.audit.display()).map_err(write_err)?;
        failures += 1;
    }
    // A run's log ends with run_finished: without it, records were cut off
    // the end (or the run never finished).
    let last_event = text
        .lines()
        .last()
        .and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .and_then(|r| r["event"].as_str().map(str::to_string));
    if last_event.as_deref() != Some("run_finished") {
        writeln!(
            out,
            "BROKEN  {}: the log does not end with run_finished (records were cut off the end, or the run did not finish)",
            args.audit.display()
        )
        .map_err(write_err)?;
        failures += 1;
    }
    if problems.is_empty() {
        writeln!(
            out,
            "ok      audit chain of {} records, head {head}",
            text.lines().count()
        )
        .map_err(write_err)?;
    }
    // Every file the run recorded, hashed again (relative paths are the
    // run's; they are looked up as written).
    for (i, line) in text.lines().enumerate() {
        let Ok(r) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if r["event"] != "file_written" {
            continue;
        }
        let (Some(path), Some(want), Some(size)) =
            (r["path"].as_str(), r["sha256"].as_str(), r["size"].as_u64())
        else {
            writeln!(
                out,
                "BROKEN  audit log line {}: a file_written record without path, sha256 and size",
                i + 1
            )
            .map_err(write_err)?;
            failures += 1;
            continue;
        };
        match crate::evidence::file_sha256(std::path::Path::new(path)) {
            Ok((found, n)) if found == want && n == size => {
                writeln!(out, "ok      {path} sha256 {found}").map_err(write_err)?;
            }
            Ok((found, n)) => {
                writeln!(
                    out,
                    "CHANGED {path}: expected sha256 {want} ({size} bytes), found {found} ({n} bytes)"
                )
                .map_err(write_err)?;
                failures += 1;
            }
            Err(e) => {
                writeln!(out, "MISSING {path}: {e} (expected sha256 {want})").map_err(write_err)?;
                failures += 1;
            }
        }
    }
    if failures > 0 {
        writeln!(out, "{failures} problem(s): the evidence does not hold").map_err(write_err)?;
        return Ok(exit::RUNTIME);
    }
    writeln!(out, "everything holds").map_err(write_err)?;
    Ok(exit::OK)
}
