//! Capture files: reading pcap and pcapng (over pcap-parser).

pub mod reader;

pub use reader::{CaptureReader, Frame, LinkType, ReadWarning};
