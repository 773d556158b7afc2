//! `sonde report REPORT.json --html OUT.html`: a page for people;
//! `sonde report RUN_DIR --format xml|grepable|list|csv|ndjson`: the scan's
//! results in a format other tools import (see `report::export`).

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;

use super::write_err;
use crate::error::{Error, exit};
use crate::report::export::{ExportError, ExportFormat, export};
use crate::report::{PageInput, Source, render_html};

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["html", "format"])))]
pub struct ReportArgs {
    /// A scan's report.json (or its run directory), or an analysis report.
    #[arg(value_name = "REPORT")]
    pub report: PathBuf,

    /// Write one self-contained HTML page here (inline CSS and SVG, no
    /// fetches); `-` writes it to standard output.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,

    /// Write a scan's results as nmap XML, nmap greppable, masscan list,
    /// CSV or NDJSON (csv and ndjson read the run directory's
    /// results.ndjson, as --record kept it).
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<ExportFormat>,

    /// Where --format writes (default `-`, standard output).
    #[arg(long, short = 'o', value_name = "FILE", requires = "format")]
    pub output: Option<PathBuf>,
}

impl ReportArgs {
    /// Whether the command writes a document (not terminal text) to
    /// standard output.
    pub fn writes_stdout_document(&self) -> bool {
        let dash = |p: &Option<PathBuf>| p.as_deref() == Some(Path::new("-"));
        dash(&self.html) || (self.format.is_some() && (self.output.is_none() || dash(&self.output)))
    }
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
    // An existing page is replaced only by a whole new one.
    crate::output::OutputFile::create(out)
        .and_then(|mut f| {
            f.write_all(page.as_bytes())?;
            f.commit()
        })
        .map_err(|e| Error::runtime(format!("cannot write {}", out.display()), e))
}

pub fn run_report(args: ReportArgs, out: &mut dyn Write) -> Result<i32, Error> {
    if let Some(format) = args.format {
        return run_export(&args.report, format, args.output.as_deref(), out);
    }
    let Some(html) = args.html else {
        return Err(Error::usage(
            "nothing to write",
            "give --html FILE or --format FORMAT",
        ));
    };
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
        &html,
        out,
    )?;
    if html != Path::new("-") {
        writeln!(out, "wrote {}", html.display()).map_err(write_err)?;
    }
    Ok(exit::OK)
}

/// Write `format` of the run at `run` (a run directory or its report.json)
/// to `output` (`None` or `-`: `stdout`).
pub fn run_export(
    run: &Path,
    format: ExportFormat,
    output: Option<&Path>,
    stdout: &mut dyn Write,
) -> Result<i32, Error> {
    let dir = if run.is_dir() {
        run.to_path_buf()
    } else {
        run.parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
    };
    let report_path = if run.is_dir() {
        run.join(crate::evidence::run_dir::REPORT)
    } else {
        run.to_path_buf()
    };
    let report = std::fs::read(&report_path).map_err(|source| Error::Input {
        what: format!("the report {}", report_path.display()),
        source,
    })?;
    let results_path = dir.join(crate::evidence::run_dir::RESULTS);
    let mut results = if format.reads_results() {
        let file = std::fs::File::open(&results_path).map_err(|source| Error::Input {
            what: format!(
                "{} (the {} is made from it)",
                results_path.display(),
                format.name()
            ),
            source,
        })?;
        Some(std::io::BufReader::with_capacity(1 << 16, file))
    } else {
        None
    };
    let to_stdout = output.is_none_or(|p| p == Path::new("-"));
    let mut file_out: Option<std::io::BufWriter<crate::output::OutputFile>> = None;
    let sink: &mut dyn Write = if to_stdout {
        stdout
    } else {
        let p = output.expect("a path");
        // Committed only once the export is whole: an existing file is
        // never left empty by a bad input.
        file_out = Some(std::io::BufWriter::new(
            crate::output::OutputFile::create(p)
                .map_err(|e| Error::runtime(format!("cannot create {}", p.display()), e))?,
        ));
        file_out.as_mut().expect("just set")
    };
    export(
        format,
        &report,
        results.as_mut().map(|r| r as &mut dyn std::io::BufRead),
        sink,
    )
    .map_err(|e| match e {
        ExportError::Io(e) if to_stdout => write_err(e),
        ExportError::Io(e) => Error::runtime(
            format!(
                "cannot write the {} to {}",
                format.name(),
                output.map_or("-".into(), |p| p.display().to_string())
            ),
            e,
        ),
        ExportError::NotAScan(why) => Error::usage(
            format!("{} is not a scan report: {why}", report_path.display()),
            "give a scan's run directory or its report.json (sonde analyze reports have no scan results)",
        ),
    })?;
    if let Some(f) = file_out {
        let p = output.expect("a path");
        f.into_inner()
            .map_err(|e| e.into_error())
            .and_then(|f| f.commit())
            .map_err(|e| Error::runtime(format!("cannot write {}", p.display()), e))?;
    }
    Ok(exit::OK)
}
