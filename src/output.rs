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
    tmp: tempfile::NamedTempFile,
    path: PathBuf,
}

impl OutputFile {
    /// Start writing `path`: a temporary file in the same directory (so
    /// the rename is atomic), created at once, so an unwritable directory
    /// is an error before any work is done.
    pub fn create(path: &Path) -> io::Result<OutputFile> {
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
            .tempfile_in(dir)?;
        Ok(OutputFile {
            tmp,
            path: path.to_path_buf(),
        })
    }

    /// Flush and rename the finished file into place, replacing what was
    /// there; the file keeps the permissions a new file gets (0600 from
    /// the temporary file widened to 0644, as `File::create` would under a
    /// usual umask).
    pub fn commit(mut self) -> io::Result<()> {
        self.tmp.flush()?;
        {
            use std::os::unix::fs::PermissionsExt;
            let f = self.tmp.as_file();
            f.set_permissions(std::fs::Permissions::from_mode(0o644))?;
        }
        self.tmp
            .persist(&self.path)
            .map(|_| ())
            .map_err(|e| e.error)
    }

    /// Where the file goes once committed.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Write for OutputFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tmp.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.tmp.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
