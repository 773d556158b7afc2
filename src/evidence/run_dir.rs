//! The run directory: one directory per scan holding all of its evidence,
//! under fixed names, so a report, its capture and its audit log travel
//! together and `sonde verify DIR` knows where to look.

use std::io;
use std::path::{Path, PathBuf};

/// Every packet sent and received (pcap).
pub const PCAP: &str = "capture.pcap";
/// Compact evidence: what regenerates every probe sent, hash-chained
/// (`sent_log`); the pcap then holds the replies only.
pub const SENT: &str = "sent.jsonl";
/// One JSON line per result, written as results arrive.
pub const RESULTS: &str = "results.ndjson";
/// The hash-chained audit log (JSON Lines).
pub const AUDIT: &str = "audit.jsonl";
/// The run's report: scan results, the capture's analysis, hashes.
pub const REPORT: &str = "report.json";
/// The report while it is written; renamed to [`REPORT`] when whole, so a
/// `report.json` is never a truncated one.
pub const REPORT_PARTIAL: &str = "report.json.partial";

/// A run directory that exists and held nothing when the run began.
#[derive(Clone, Debug)]
pub struct RunDir {
    path: PathBuf,
}

/// Why a run directory cannot be used.
#[derive(Debug)]
pub enum RunDirError {
    /// The directory already holds files: evidence is never overwritten.
    NotEmpty(PathBuf),
    /// The path exists and is not a directory.
    NotADirectory(PathBuf),
    Io(PathBuf, io::Error),
}

impl std::fmt::Display for RunDirError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunDirError::NotEmpty(p) => write!(
                f,
                "the output directory {} already holds files; a run never overwrites evidence",
                p.display()
            ),
            RunDirError::NotADirectory(p) => {
                write!(f, "the output path {} is not a directory", p.display())
            }
            RunDirError::Io(p, e) => {
                write!(f, "cannot create the output directory {}: {e}", p.display())
            }
        }
    }
}

impl std::error::Error for RunDirError {}

impl RunDir {
    /// Use `path` (created when missing, refused unless empty), or a new
    /// `sonde-run-YYYYMMDDTHHMMSSZ` in the current directory named after
    /// `now_nanos` (UTC), with `-2`, `-3`, ... when that name is taken.
    pub fn create(path: Option<&Path>, now_nanos: i64) -> Result<RunDir, RunDirError> {
        match path {
            Some(p) => Self::use_given(p),
            None => {
                let base = default_name(now_nanos);
                for n in 1u32.. {
                    let name = if n == 1 {
                        base.clone()
                    } else {
                        format!("{base}-{n}")
                    };
                    let p = PathBuf::from(&name);
                    match std::fs::create_dir(&p) {
                        Ok(()) => return Ok(RunDir { path: p }),
                        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                        Err(e) => return Err(RunDirError::Io(p, e)),
                    }
                }
                unreachable!("u32 names run out only after four billion runs in one second")
            }
        }
    }

    fn use_given(p: &Path) -> Result<RunDir, RunDirError> {
        match std::fs::create_dir_all(p) {
            Ok(()) => {}
            Err(e) if p.exists() && !p.is_dir() => {
                let _ = e;
                return Err(RunDirError::NotADirectory(p.to_path_buf()));
            }
            Err(e) => return Err(RunDirError::Io(p.to_path_buf(), e)),
        }
        if !p.is_dir() {
            return Err(RunDirError::NotADirectory(p.to_path_buf()));
        }
        let mut entries = std::fs::read_dir(p).map_err(|e| RunDirError::Io(p.to_path_buf(), e))?;
        if entries.next().is_some() {
            return Err(RunDirError::NotEmpty(p.to_path_buf()));
        }
        Ok(RunDir {
            path: p.to_path_buf(),
        })
    }

    /// A run directory that exists (a resumed run goes on in it).
    pub fn existing(path: &Path) -> Result<RunDir, RunDirError> {
        if !path.is_dir() {
            return Err(RunDirError::NotADirectory(path.to_path_buf()));
        }
        Ok(RunDir {
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `name` inside the directory.
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

/// `sonde-run-20261126T203205Z`: sorts by time, safe in any file system.
pub fn default_name(now_nanos: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(now_nanos))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "sonde-run-{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names_are_utc_timestamps() {
        // 2026-11-26T20:32:05Z
        assert_eq!(
            default_name(1_795_725_125_000_000_000),
            "sonde-run-20261126T203205Z"
        );
    }

    #[test]
    fn a_given_directory_must_be_new_or_empty() {
        let t = tempfile::tempdir().unwrap();
        let fresh = t.path().join("a/b");
        assert!(
            RunDir::create(Some(&fresh), 0).is_ok(),
            "created with parents"
        );
        assert!(RunDir::create(Some(&fresh), 0).is_ok(), "empty is fine");
        std::fs::write(fresh.join(PCAP), b"x").unwrap();
        assert!(matches!(
            RunDir::create(Some(&fresh), 0),
            Err(RunDirError::NotEmpty(_))
        ));
        let file = t.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        assert!(matches!(
            RunDir::create(Some(&file), 0),
            Err(RunDirError::NotADirectory(_))
        ));
    }
}
