//! Output files that are whole or absent: written under a temporary name
//! beside their final one and renamed into place once complete. A failure
//! halfway (a bad input found late, a full disk) leaves an existing file
//! as it was, never emptied or cut (issue 26: `analyze BAD --report
//! existing.json` left `existing.json` empty).

use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A file being written; [`OutputFile::commit`] puts it in place. Dropped
/// without a commit, the temporary file is removed and the final path is
/// untouched.
pub struct OutputFile {
    sink: Sink,
    path: PathBuf,
}

enum Sink {
    /// A regular file (or a new one): written aside, renamed into place.
    Temp(tempfile::NamedTempFile),
    /// A device, a FIFO or a socket (`--report /dev/null`, a pipe):
    /// written as it is. Renaming over it would replace the device with a
    /// regular file (run as root, `/dev/null` became one).
    Direct(std::fs::File),
}

impl OutputFile {
    /// Start writing `path`: a temporary file in the same directory (so
    /// the rename is atomic), created at once, so an unwritable directory
    /// is an error before any work is done. A path that names something
    /// other than a regular file is opened and written in place.
    pub fn create(path: &Path) -> io::Result<OutputFile> {
        if let Ok(meta) = std::fs::metadata(path)
            && !meta.is_file()
            && !meta.is_dir()
        {
            let f = std::fs::OpenOptions::new().write(true).open(path)?;
            return Ok(OutputFile {
                sink: Sink::Direct(f),
                path: path.to_path_buf(),
            });
        }
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let name = path
            .file_name()
            .map_or_else(|| "output".into(), |n| n.to_string_lossy().into_owned());
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".partial")
            .tempfile_in(dir)
            .map_err(without_temp_path)?;
        Ok(OutputFile {
            sink: Sink::Temp(tmp),
            path: path.to_path_buf(),
        })
    }

    /// Flush and rename the finished file into place, replacing what was
    /// there; the file keeps the permissions a new file gets (0600 from
    /// the temporary file widened to 0644, as `File::create` would under a
    /// usual umask). A device or FIFO is only flushed.
    pub fn commit(self) -> io::Result<()> {
        match self.sink {
            Sink::Direct(mut f) => f.flush(),
            Sink::Temp(mut tmp) => {
                tmp.flush()?;
                {
                    use std::os::unix::fs::PermissionsExt;
                    let f = tmp.as_file();
                    f.set_permissions(std::fs::Permissions::from_mode(0o644))?;
                }
                tmp.persist(&self.path).map(|_| ()).map_err(|e| e.error)
            }
        }
    }

    /// Where the file goes once committed.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Write for OutputFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.sink {
            Sink::Temp(t) => t.write(buf),
            Sink::Direct(f) => f.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match &mut self.sink {
            Sink::Temp(t) => t.flush(),
            Sink::Direct(f) => f.flush(),
        }
    }
}

/// tempfile names its temporary file in an error (`... at path
/// "/dir/.name.XXXX.partial"`); the user named the final path, and the
/// caller's message does: keep the system's own error, without the name.
fn without_temp_path(e: io::Error) -> io::Error {
    // tempfile's error keeps the kind and says "{system's error} at path
    // {path:?}", and hands out no way to the system's error itself.
    let text = e.to_string();
    match text.split_once(" at path \"") {
        Some((system, _)) => io::Error::new(e.kind(), system.to_string()),
        None => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: `craft --write /nonexistent/x.pcap` said "... at path
    /// \"/nonexistent/.x.pcap.XPWLbJ.partial\"", a file the user never named.
    #[test]
    fn an_unwritable_directory_is_the_systems_error_without_the_temporary_name() {
        let dir = tempfile::tempdir().unwrap();
        let e = OutputFile::create(&dir.path().join("missing/x.pcap"))
            .err()
            .expect("no such directory");
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert_eq!(e.to_string(), "No such file or directory (os error 2)");
    }

    /// Regression: `analyze --report /dev/null` run as root renamed a
    /// regular file over /dev/null. A FIFO (as safe to make in a test)
    /// stands for the device: it must stay a FIFO and get the bytes.
    #[test]
    fn an_output_to_a_fifo_or_device_is_written_in_place_not_replaced() {
        use std::os::unix::fs::FileTypeExt;
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || std::fs::read(fifo).unwrap())
        };
        let mut out = OutputFile::create(&fifo).unwrap();
        out.write_all(b"{\"report\": 1}").unwrap();
        out.commit().unwrap();
        assert_eq!(reader.join().unwrap(), b"{\"report\": 1}");
        assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
    }

    #[test]
    fn an_output_dropped_before_its_commit_leaves_the_old_file_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.json");
        std::fs::write(&path, b"old report").unwrap();
        let mut out = OutputFile::create(&path).unwrap();
        out.write_all(b"half a new").unwrap();
        drop(out);
        assert_eq!(std::fs::read(&path).unwrap(), b"old report");
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        let mut out = OutputFile::create(&path).unwrap();
        out.write_all(b"new report").unwrap();
        out.commit().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new report");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn an_unwritable_directory_is_an_error_at_create() {
        assert!(OutputFile::create(Path::new("/nonexistent-dir/x.json")).is_err());
    }
}
