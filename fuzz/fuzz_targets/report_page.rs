//! Evidence read back: any bytes as a report through the page renderer
//! (the streaming reader and every section), and as an audit log through
//! the chain check. Reports and logs are files someone may have edited.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let source = sonde::report::Source {
        name: "fuzz.json".into(),
        sha256: String::new(),
    };
    if let Ok(input) = sonde::report::PageInput::from_slice(data) {
        let _ = sonde::report::render_html(&input, &source);
    }
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = sonde::report::render_html(&sonde::report::PageInput::from_value(v), &source);
    }
    let _ = sonde::evidence::verify_chain(&String::from_utf8_lossy(data));
});
