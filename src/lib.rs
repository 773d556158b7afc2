//! sonde: authorized active network probing, capture analysis and packet crafting.
//!
//! The data flows one way: a [`scope::ScopeGate`] decides what may be sent;
//! [`targets`] describes what to probe. See `docs/architecture.md`.

pub mod analyze;
pub mod cli;
pub mod clock;
pub mod craft;
pub mod error;
pub mod evidence;
pub mod net;
pub mod output;
pub mod pcap;
pub mod probe;
pub mod report;
pub mod results;
pub mod scan;
pub mod scope;
pub mod service;
pub mod targets;
pub mod text;
pub mod wire;

pub use error::{Error, Result};
