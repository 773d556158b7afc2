//! Evidence that holds up in an audit: an append-only, hash-chained audit
//! log of what a run did (`audit`). Issue 6 builds the run directory,
//! `sonde verify` and the HTML report on it.

pub mod audit;

pub use audit::{AuditLog, ChainProblem, GENESIS, verify_chain};
