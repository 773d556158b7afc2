//! Capture files: reading pcap and pcapng (over pcap-parser), writing pcap.

pub mod reader;
pub mod writer;

pub use reader::{CaptureReader, Frame, LinkType, ReadWarning};
pub use writer::PcapWriter;
