//! A scope file as a run uses it: read (bounded), hashed, parsed.

use std::fmt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{Scope, ScopeError};

/// The largest scope file read: 64 MiB (a million rules).
pub const MAX_SCOPE_BYTES: u64 = 64 << 20;

/// A scope file as loaded: the parsed scope, its path and the SHA-256 of
/// its bytes (what the audit log and the report name).
#[derive(Clone, Debug)]
pub struct ScopeFile {
    pub scope: Scope,
    pub path: PathBuf,
    pub sha256: String,
}

/// Why a scope file cannot be used.
#[derive(Debug)]
pub enum ScopeFileError {
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Over [`MAX_SCOPE_BYTES`]: a "file" that is /dev/zero was read until
    /// memory ran out (issue 26).
    TooLarge {
        path: PathBuf,
    },
    NotUtf8 {
        path: PathBuf,
        valid_up_to: usize,
    },
    Parse(ScopeError),
}

impl fmt::Display for ScopeFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScopeFileError::Read { path, source } => {
                write!(f, "cannot read scope file {}: {source}", path.display())
            }
            ScopeFileError::TooLarge { path } => write!(
                f,
                "scope file {} is over {} MiB: not read further",
                path.display(),
                MAX_SCOPE_BYTES >> 20
            ),
            ScopeFileError::NotUtf8 { path, valid_up_to } => write!(
                f,
                "scope file {} is not UTF-8 text (byte {valid_up_to} is not)",
                path.display()
            ),
            ScopeFileError::Parse(e) => write!(f, "invalid scope file {e}"),
        }
    }
}

impl std::error::Error for ScopeFileError {}

impl ScopeFile {
    /// Read, hash and parse the scope file at `path`.
    pub fn load(path: &Path) -> Result<ScopeFile, ScopeFileError> {
        let bytes = {
            use std::io::Read;
            let mut bytes = Vec::new();
            std::fs::File::open(path)
                .and_then(|f| f.take(MAX_SCOPE_BYTES + 1).read_to_end(&mut bytes))
                .map_err(|source| ScopeFileError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
            if bytes.len() as u64 > MAX_SCOPE_BYTES {
                return Err(ScopeFileError::TooLarge {
                    path: path.to_path_buf(),
                });
            }
            bytes
        };
        let sha256 = hex::encode(Sha256::digest(&bytes));
        let text = String::from_utf8(bytes).map_err(|e| ScopeFileError::NotUtf8 {
            path: path.to_path_buf(),
            valid_up_to: e.utf8_error().valid_up_to(),
        })?;
        let scope =
            Scope::from_toml(&text, &path.display().to_string()).map_err(ScopeFileError::Parse)?;
        Ok(ScopeFile {
            scope,
            path: path.to_path_buf(),
            sha256,
        })
    }
}
