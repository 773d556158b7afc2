//! Craft specs: parse and build any text; whatever builds, the analyzer's
//! dissector takes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let source = |dst: std::net::IpAddr| {
        Some(if dst.is_ipv4() {
            "198.18.0.2".parse().unwrap()
        } else {
            "2001:db8::2".parse().unwrap()
        })
    };
    if let Ok(c) = sonde::craft::craft(text, &source) {
        let link = if c.ethernet {
            sonde::pcap::LinkType::Ethernet
        } else {
            sonde::pcap::LinkType::Raw
        };
        let _ = sonde::analyze::dissect::dissect(link, &c.bytes);
    }
});
