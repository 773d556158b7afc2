//! `sonde verify DIR|REPORT|AUDIT_LOG`: recompute every hash a run recorded
//! and its audit chain; print each mismatch precisely.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use super::write_err;
use crate::error::{Error, exit};

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// A run directory (`sonde scan -o DIR`), its report.json, or an audit log.
    #[arg(value_name = "DIR|REPORT")]
    pub target: PathBuf,
}

pub fn run_verify(args: VerifyArgs, out: &mut dyn Write) -> Result<i32, Error> {
    let findings =
        crate::evidence::verify::verify(&args.target).map_err(|source| Error::Input {
            what: format!(
                "{} (give a run directory, its report.json or its audit.jsonl)",
                args.target.display()
            ),
            source,
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
    writeln!(out, "everything holds").map_err(write_err)?;
    Ok(exit::OK)
}
