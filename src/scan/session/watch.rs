//! What watches a running scan besides the scan: the stop signals and the
//! run directory's files.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::files::{Audit, audit, now_rfc3339};
use crate::error::{Error, exit};
use crate::evidence::RunDir;
use crate::evidence::run_dir;
use crate::scan::progress::{Observer, ScanEvent};

/// SIGINT, SIGTERM and SIGHUP during a scan: the first stops sending (the
/// flag the scan polls) and is remembered with its time for the audit log;
/// the evidence is completed and the run can be resumed. A second SIGINT
/// or SIGTERM exits at once, removing the unfinished report. A closed
/// terminal or a dropped SSH session sends SIGHUP, often twice (the kernel
/// and the shell): a later SIGHUP changes nothing, so the evidence of a
/// dropped session is always complete.
pub(super) struct Interrupts {
    first: Arc<std::sync::Mutex<Option<(i32, String)>>>,
}

impl Interrupts {
    pub fn install(
        stop: Arc<AtomicBool>,
        partial_report: PathBuf,
        observer: Arc<dyn Observer>,
    ) -> Result<Interrupts, Error> {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])
            .map_err(|e| Error::runtime("cannot install the Ctrl-C handler", e))?;
        let first = Arc::new(std::sync::Mutex::new(None));
        let seen = first.clone();
        std::thread::Builder::new()
            .name("sonde-signals".into())
            .spawn(move || {
                // It needs no privilege: it only sets a flag and may exit.
                if crate::net::privilege::drop_in_this_thread().is_err() {
                    return;
                }
                for signal in signals.forever() {
                    let Ok(mut first) = seen.lock() else { return };
                    if first.is_none() {
                        *first = Some((signal, now_rfc3339()));
                        stop.store(true, Ordering::Relaxed);
                        continue;
                    }
                    if signal == SIGHUP {
                        continue;
                    }
                    let _ = std::fs::remove_file(&partial_report);
                    observer.event(&ScanEvent::Note(
                        "second signal: exiting at once; the pcap, results and audit log keep what was written, and no report is written".into(),
                    ));
                    std::process::exit(exit::RUNTIME);
                }
            })
            .map_err(|e| Error::runtime("cannot start the signal thread", e))?;
        Ok(Interrupts { first })
    }

    /// The first signal and when it arrived (RFC 3339), if one did.
    fn first(&self) -> Option<(i32, String)> {
        self.first.lock().ok().and_then(|f| f.clone())
    }

    /// Record the first signal in the audit log, if one came: whether it did.
    pub fn record(&self, log: &mut Audit) -> Result<bool, Error> {
        let Some((signal, at)) = self.first() else {
            return Ok(false);
        };
        audit(
            log,
            "interrupt_received",
            serde_json::json!({ "signal": signal, "received": at }),
        )?;
        Ok(true)
    }
}

/// The run directory and the files a scan writes, as they were created:
/// a path that no longer leads to the same file (removed, moved, replaced)
/// means the evidence is going nowhere, and the scan stops.
pub(super) struct Watched {
    entries: Vec<(String, PathBuf, (u64, u64))>,
}

impl Watched {
    pub fn new(dir: &RunDir, files: &[(&str, &std::fs::File)]) -> Result<Watched, Error> {
        use std::os::unix::fs::MetadataExt;
        let id = |m: std::fs::Metadata| (m.dev(), m.ino());
        let mut entries = vec![(
            format!("the run directory {}", dir.path().display()),
            dir.path().to_path_buf(),
            id(std::fs::metadata(dir.path())
                .map_err(|e| Error::runtime("cannot read the run directory", e))?),
        )];
        for (name, f) in files {
            entries.push((
                format!("{name} in the run directory"),
                dir.file(name),
                id(f.metadata()
                    .map_err(|e| Error::runtime(format!("cannot read {name}"), e))?),
            ));
        }
        entries.push((
            format!("{} in the run directory", run_dir::AUDIT),
            dir.file(run_dir::AUDIT),
            id(std::fs::metadata(dir.file(run_dir::AUDIT))
                .map_err(|e| Error::runtime("cannot read the audit log", e))?),
        ));
        Ok(Watched { entries })
    }

    /// The first watched path that no longer leads to its file.
    pub fn first_lost(&self) -> Option<String> {
        use std::os::unix::fs::MetadataExt;
        self.entries
            .iter()
            .find_map(|(what, path, id)| match std::fs::metadata(path) {
                Ok(m) if (m.dev(), m.ino()) == *id => None,
                Ok(_) => Some(format!("{what} was replaced")),
                Err(_) => Some(format!("{what} disappeared (removed or moved)")),
            })
    }
}
