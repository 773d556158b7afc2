//! `sonde report REPORT.json --html OUT.html`: a page for people.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;

use super::write_err;
use crate::error::{Error, exit};
use crate::report::{PageInput, Source, render_html};

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A scan's report.json (or its run directory), or an analysis report.
    #[arg(value_name = "REPORT")]
    pub report: PathBuf,

    /// Write one self-contained HTML page here (inline CSS and SVG, no
    /// fetches); `-` writes it to standard output.
    #[arg(long, value_name = "FILE", required = true)]
    pub html: PathBuf,
}

/// Write the HTML page of `report` (parsed JSON read from `source`) to the
/// file `out`, or to `stdout` when `out` is `-`.
pub fn write_html(
    report: &PageInput,
    source: Source,
    out: &Path,
    stdout: &mut dyn Write,
) -> Result<(), Error> {
    let page = render_html(report, &source).map_err(|e| {
        Error::usage(
            e.to_string(),
            "give the report.json of a run directory, or a report from sonde analyze",
        )
    })?;
    if out == Path::new("-") {
        return stdout.write_all(page.as_bytes()).map_err(write_err);
    }
    std::fs::write(out, page)
        .map_err(|e| Error::runtime(format!("cannot write {}", out.display()), e))
}

pub fn run_report(args: ReportArgs, out: &mut dyn Write) -> Result<i32, Error> {
    let path = if args.report.is_dir() {
        args.report.join(crate::evidence::run_dir::REPORT)
    } else {
        args.report.clone()
    };
    let file = std::fs::File::open(&path).map_err(|source| Error::Input {
        what: format!("the report {}", path.display()),
        source,
    })?;
    let report =
        PageInput::from_reader(std::io::BufReader::with_capacity(1 << 16, file)).map_err(|e| {
            if e.is_io() {
                return Error::runtime(format!("cannot read {}", path.display()), e);
            }
            Error::usage(
                format!(
                    "{} is not JSON: line {}, column {}: {e}",
                    path.display(),
                    e.line(),
                    e.column()
                ),
                "give the report.json of a run directory, or a report from sonde analyze",
            )
        })?;
    // Hashed on its own pass: the page names the exact file it was made from.
    let (sha256, _) = crate::evidence::file_sha256(&path)
        .map_err(|e| Error::runtime(format!("cannot read {}", path.display()), e))?;
    write_html(
        &report,
        Source {
            name: path.display().to_string(),
            sha256,
        },
        &args.html,
        out,
    )?;
    if args.html != Path::new("-") {
        writeln!(out, "wrote {}", args.html.display()).map_err(write_err)?;
    }
    Ok(exit::OK)
}
