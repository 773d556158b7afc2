//! Capture bytes (pcap or pcapng) through the reader and the whole
//! analysis, report serialization included: no panic, no unbounded
//! allocation, whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sonde::analyze::{AnalyzeOptions, Analyzer};
use sonde::pcap::CaptureReader;

fuzz_target!(|data: &[u8]| {
    let Ok(mut reader) = CaptureReader::new(std::io::Cursor::new(data.to_vec()), "fuzz") else {
        return;
    };
    let mut analyzer = Analyzer::new(&AnalyzeOptions::default());
    let mut warnings = Vec::new();
    loop {
        match reader.next_frame(|f| analyzer.frame(f.ts_nanos, f.link, f.orig_len, f.data)) {
            Ok(true) => {}
            Ok(false) => break,
            Err(w) => {
                warnings.push(w);
                break;
            }
        }
    }
    let report = analyzer.finish(Vec::new(), warnings);
    let json = serde_json::to_string(&report).expect("a report always serializes");
    assert!(!json.contains("NaN"));
});
