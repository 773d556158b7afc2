//! `sonde craft`: one exact packet from a layered spec
//! (`ip(dst=198.18.1.5,ttl=3)/tcp(dport=80,flags=S)`), built without
//! sockets (`spec`, `build`, `fragment`), matched to its replies by `reply`.
//! Sending lives in the CLI, through the same gate as the scanner.

pub mod build;
pub mod fragment;
pub mod reply;
pub mod spec;

pub use build::{Crafted, TransportKind};
pub use spec::SpecError;

/// Parse and build a spec; `source_for(dst)` gives the default source.
pub fn craft(
    spec: &str,
    source_for: &dyn Fn(std::net::IpAddr) -> Option<std::net::IpAddr>,
) -> Result<Crafted, SpecError> {
    let layers = spec::parse(spec)?;
    build::build(spec, &layers, source_for)
}
