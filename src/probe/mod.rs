//! Probes: building them and classifying what comes back. Pure: bytes in,
//! bytes or verdicts out, no sockets (those live in `net`, with the scanner).

pub mod build;
pub mod classify;
pub mod cookie;
pub mod neighbour;
pub mod order;
pub mod plan;

pub use build::{DnsQuestion, Probe, ProbeTemplate, build, qtype_name};
pub use classify::{Classified, Reply, Verdict, classify};
pub use cookie::{CookieKey, MarkSource, Marks};
