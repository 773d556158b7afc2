//! Capture files: reading pcap and pcapng (over pcap-parser), writing pcap.

pub mod reader;
pub mod writer;

pub use reader::{CaptureReader, ChunkSource, Frame, LinkType, ReadWarning};
pub use writer::PcapWriter;
