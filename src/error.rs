//! The library's error type and the exit code each kind of failure maps to.

use std::fmt;

use crate::scope::{Refusal, ScopeError, ScopeFileError};
use crate::targets::{PortError, TargetError};

/// Exit codes, as documented in the README.
pub mod exit {
    pub const OK: i32 = 0;
    pub const RUNTIME: i32 = 1;
    pub const INPUT: i32 = 2;
    pub const REFUSED: i32 = 3;
    /// `verify`: the run was cut before it finished; its evidence holds up
    /// to its last checkpoint.
    pub const CUT: i32 = 4;
}

#[derive(Debug)]
pub enum Error {
    /// A scope file that cannot be used (exit 2).
    Scope(ScopeError),
    /// A target that cannot be understood or resolved (exit 2).
    Target(TargetError),
    /// A bad port list (exit 2).
    Ports(PortError),
    /// Bad command-line input (exit 2).
    Usage { message: String, hint: String },
    /// An input file that cannot be read (exit 2).
    Input {
        what: String,
        source: std::io::Error,
    },
    /// The scope refuses (exit 3).
    Refused(Vec<Refusal>),
    /// Something failed while running (exit 1).
    Runtime {
        context: String,
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Refused(_) => exit::REFUSED,
            Error::Runtime { .. } => exit::RUNTIME,
            _ => exit::INPUT,
        }
    }

    /// Whether this is a write to a pipe whose reader has gone.
    pub fn is_broken_pipe(&self) -> bool {
        let Error::Runtime {
            source: Some(source),
            ..
        } = self
        else {
            return false;
        };
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(source.as_ref());
        while let Some(c) = cause {
            if let Some(io) = c.downcast_ref::<std::io::Error>()
                && io.kind() == std::io::ErrorKind::BrokenPipe
            {
                return true;
            }
            if let Some(j) = c.downcast_ref::<serde_json::Error>()
                && j.io_error_kind() == Some(std::io::ErrorKind::BrokenPipe)
            {
                return true;
            }
            cause = c.source();
        }
        false
    }

    pub fn usage(message: impl Into<String>, hint: impl Into<String>) -> Error {
        Error::Usage {
            message: message.into(),
            hint: hint.into(),
        }
    }

    pub fn runtime(
        context: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Error {
        Error::Runtime {
            context: context.into(),
            source: Some(Box::new(source)),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Scope(e) => write!(f, "invalid scope file {e}"),
            Error::Target(e) => write!(f, "{e}"),
            Error::Ports(e) => write!(f, "{e}"),
            Error::Usage { message, hint } => write!(f, "{message}\nhint: {hint}"),
            Error::Input { what, source } => write!(f, "cannot read {what}: {source}"),
            Error::Refused(refusals) => {
                write!(f, "refused by scope:")?;
                for r in refusals {
                    write!(f, "\n  - {r}")?;
                }
                Ok(())
            }
            Error::Runtime {
                context,
                source: Some(s),
            } => write!(f, "{context}: {s}"),
            Error::Runtime {
                context,
                source: None,
            } => write!(f, "{context}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<ScopeError> for Error {
    fn from(e: ScopeError) -> Error {
        Error::Scope(e)
    }
}
impl From<ScopeFileError> for Error {
    fn from(e: ScopeFileError) -> Error {
        match e {
            ScopeFileError::Read { path, source } => Error::Input {
                what: format!("scope file {}", path.display()),
                source,
            },
            e @ ScopeFileError::TooLarge { .. } => Error::usage(
                e.to_string(),
                "a scope file is TOML text; name the file itself",
            ),
            e @ ScopeFileError::NotUtf8 { .. } => {
                Error::usage(e.to_string(), "scope files are TOML, which is UTF-8 text")
            }
            ScopeFileError::Parse(e) => Error::Scope(e),
        }
    }
}

impl From<TargetError> for Error {
    fn from(e: TargetError) -> Error {
        Error::Target(e)
    }
}
impl From<PortError> for Error {
    fn from(e: PortError) -> Error {
        Error::Ports(e)
    }
}
impl From<Refusal> for Error {
    fn from(r: Refusal) -> Error {
        Error::Refused(vec![r])
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
