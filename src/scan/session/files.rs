//! The run directory's files as a session (or a merge) writes them: the
//! audit log, files created for the sudo user, hashes recorded, the
//! report streamed, the signature.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::evidence::RunDir;
use crate::evidence::run_dir;
use crate::scan::progress::{Observer, ScanEvent};

/// The run's audit log (always written: `RUN_DIR/audit.jsonl`).
pub type Audit = crate::evidence::AuditLog<std::fs::File>;

/// Now, as RFC 3339 text.
pub fn now_rfc3339() -> String {
    crate::clock::timestamp(crate::clock::now_nanos())
}

/// Append an audit record; a failing audit log stops the run (exit 1).
/// A record the disk took only part of (full) is cut off again, so the
/// log still ends with a whole record and its chain holds.
pub fn audit(log: &mut Audit, event: &str, fields: serde_json::Value) -> Result<(), Error> {
    let fields = match fields {
        serde_json::Value::Object(m) => m,
        _ => serde_json::Map::new(),
    };
    let before = log.get_ref().metadata().map(|m| m.len());
    log.append(event, &now_rfc3339(), fields).map_err(|e| {
        if let Ok(len) = before {
            let _ = log.get_ref().set_len(len);
        }
        Error::runtime("cannot write the audit log", e)
    })
}

/// Hash `name` in the run directory and record it in the audit log.
pub fn file_written(log: &mut Audit, dir: &RunDir, name: &str) -> Result<(String, u64), Error> {
    let path = dir.file(name);
    let (sha256, size) = crate::evidence::file_sha256(&path)
        .map_err(|e| Error::runtime(format!("cannot hash {}", path.display()), e))?;
    audit(
        log,
        "file_written",
        serde_json::json!({ "path": name, "sha256": sha256, "size": size }),
    )?;
    Ok((sha256, size))
}

/// Create `name` in the run directory; under sudo it belongs to the
/// invoking user, not root.
pub fn create_in(dir: &RunDir, name: &str) -> Result<std::fs::File, Error> {
    let p = dir.file(name);
    let f = std::fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .open(&p)
        .map_err(|e| Error::runtime(format!("cannot create {}", p.display()), e))?;
    crate::net::privilege::chown_to_invoker(&p)
        .map_err(|e| Error::runtime(format!("cannot give {} to the sudo user", p.display()), e))?;
    Ok(f)
}

/// Open `name` in the run directory to append to it: (file, its length).
pub fn append_to(dir: &RunDir, name: &str) -> Result<(std::fs::File, u64), Error> {
    let p = dir.file(name);
    let f = std::fs::OpenOptions::new()
        .append(true)
        .open(&p)
        .map_err(|e| Error::runtime(format!("cannot append to {}", p.display()), e))?;
    let len = f
        .metadata()
        .map_err(|e| Error::runtime(format!("cannot read {}", p.display()), e))?
        .len();
    Ok((f, len))
}

/// The one-writer lock of a run directory: refused (exit 1) while another
/// sonde writes it, naming that process.
pub fn lock_run_dir(dir: &Path) -> Result<crate::evidence::lock::HostLock, Error> {
    crate::evidence::lock::run_dir_lock(dir, &crate::evidence::lock::this_process(dir)).map_err(
        |e| match e {
            crate::evidence::lock::LockError::Held { holder } => Error::Runtime {
                context: format!(
                    "{} is being written by another sonde ({}): one writer per run directory; wait for it to end",
                    dir.display(),
                    holder.map_or_else(|| "its PID could not be read".into(), |h| h.to_string())
                ),
                source: None,
            },
            e => Error::runtime("cannot lock the run directory", e),
        },
    )
}

/// Sign the finished run (its report's hash and the log's final head) into
/// `file` (signature.json); the key's fingerprint.
pub fn sign_run(
    key: &ed25519_dalek::SigningKey,
    mut file: std::fs::File,
    dir: &RunDir,
    log: &Audit,
) -> Result<String, Error> {
    let (report_sha, _) = crate::evidence::file_sha256(&dir.file(run_dir::REPORT))
        .map_err(|e| Error::runtime("cannot hash the report to sign it", e))?;
    let sig = crate::evidence::signature::RunSignature::sign(key, &report_sha, log.head());
    serde_json::to_writer_pretty(&mut file, &sig)
        .map_err(std::io::Error::other)
        .and_then(|()| file.write_all(b"\n"))
        .and_then(|()| file.sync_all())
        .map_err(|e| Error::runtime("cannot write signature.json", e))?;
    Ok(crate::evidence::signature::fingerprint(
        &key.verifying_key(),
    ))
}

/// The report's anchor in `log`: the records so far and the last one's hash.
pub fn anchor(log: &Audit) -> crate::results::AuditAnchor {
    crate::results::AuditAnchor {
        file: run_dir::AUDIT.to_string(),
        records: log.records(),
        head: log.head().to_string(),
    }
}

/// Write `report` whole (the caller renames it into place).
pub fn write_report(
    file: std::fs::File,
    report: &crate::results::ScanReport,
) -> std::io::Result<()> {
    let mut w = std::io::BufWriter::with_capacity(1 << 16, file);
    serde_json::to_writer_pretty(&mut w, report)?;
    w.write_all(b"\n")?;
    w.flush()
}

/// Analyze `paths` as one capture set (a run's pcap, or a merge's shards'),
/// recording what it cost (`capture_analyzed`) or why it could not be read
/// (`analysis_failed`, and a note to `observer`); `name` replaces the
/// inputs' paths. (analysis, cost), both null when it failed.
pub fn analyze_captures(
    paths: &[PathBuf],
    name: Option<&str>,
    log: &mut Audit,
    observer: &dyn Observer,
) -> Result<
    (
        Option<serde_json::Value>,
        Option<crate::results::AnalysisCost>,
    ),
    Error,
> {
    let opts = crate::analyze::AnalyzeOptions::default();
    match crate::analyze::analyze_timed(paths, &opts) {
        Ok((mut report, t)) => {
            if let Some(name) = name {
                for input in &mut report.input {
                    input.path = name.to_string();
                }
            }
            let cost = crate::results::AnalysisCost {
                frames: t.frames,
                wall_seconds: (t.wall * 1000.0).round() / 1000.0,
                cpu_seconds: ((t.analysis_cpu + t.hashing_cpu) * 1000.0).round() / 1000.0,
            };
            audit(
                log,
                "capture_analyzed",
                serde_json::to_value(cost).unwrap_or_default(),
            )?;
            let value = serde_json::to_value(&report)
                .map_err(|e| Error::runtime("cannot encode the capture's analysis", e))?;
            Ok((Some(value), Some(cost)))
        }
        Err(e) => {
            observer.event(&ScanEvent::Note(format!(
                "warning: cannot analyze the capture: {}",
                e.message
            )));
            audit(
                log,
                "analysis_failed",
                serde_json::json!({ "error": e.message }),
            )?;
            Ok((None, None))
        }
    }
}
