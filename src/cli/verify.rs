//! `sonde verify DIR|REPORT|AUDIT_LOG`: recompute every hash a run recorded
//! and its audit chain; print each mismatch precisely.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use super::write_err;
use crate::error::{Error, exit};
use crate::evidence::verify::Status;

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// A run directory (`sonde scan -o DIR`), its report.json, or an audit log.
    #[arg(value_name = "DIR|REPORT")]
    pub target: PathBuf,

    /// The report's SHA-256 as kept outside the directory (the scan prints it).
    #[arg(long = "report-sha256", value_name = "HEX", value_parser = sha256_hex)]
    pub report_sha256: Option<String>,

    /// The audit log's final head as kept outside the directory (the scan prints it).
    #[arg(long = "audit-head", value_name = "HEX", value_parser = sha256_hex)]
    pub audit_head: Option<String>,

    /// The run must be signed (signature.json) with this Ed25519 public key
    /// (PEM, from `sonde keygen`), or with one of several given.
    #[arg(long = "pubkey", value_name = "FILE")]
    pub pubkey: Vec<PathBuf>,
}

fn sha256_hex(s: &str) -> Result<String, String> {
    if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(format!(
            "{s:?} is not a SHA-256: 64 hexadecimal digits, as the scan printed them"
        ))
    }
}

pub fn run_verify(args: VerifyArgs, out: &mut dyn Write) -> Result<i32, Error> {
    let mut trusted_keys = Vec::new();
    for p in &args.pubkey {
        trusted_keys.push(
            crate::evidence::signature::load_public_key(p)
                .map_err(|e| Error::usage(e, "give a public key from sonde keygen (NAME.pub)"))?,
        );
    }
    let anchors = crate::evidence::verify::Anchors {
        report_sha256: args.report_sha256.clone(),
        audit_head: args.audit_head.clone(),
        trusted_keys,
    };
    let findings =
        crate::evidence::verify::verify_anchored(&args.target, &anchors).map_err(|source| {
            Error::Input {
                what: format!(
                    "{} (give a run directory, its report.json or its audit.jsonl)",
                    args.target.display()
                ),
                source,
            }
        })?;
    let mut failures = 0usize;
    for f in &findings {
        writeln!(out, "{f}").map_err(write_err)?;
        if f.status.is_failure() {
            failures += 1;
        }
    }
    if failures > 0 {
        writeln!(out, "{failures} problem(s): the evidence does not hold").map_err(write_err)?;
        return Ok(exit::RUNTIME);
    }
    if findings.iter().any(|f| f.status == Status::Cut) {
        writeln!(
            out,
            "cut: the evidence holds up to the run's last checkpoint; the run did not finish (resume it with sonde scan --resume)"
        )
        .map_err(write_err)?;
        return Ok(exit::CUT);
    }
    writeln!(out, "everything holds").map_err(write_err)?;
    Ok(exit::OK)
}
