//! Target and port specs as users type them: nmap targets, -iL lists,
//! port lists, shards, DNS questions.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = sonde::targets::TargetSpec::parse(text);
    let _ = sonde::targets::PortSet::parse(text);
    let _ = sonde::targets::spec::parse_target_list(text, "fuzz.txt");
    let _ = sonde::targets::index::Shard::parse(text);
    let _ = sonde::probe::DnsQuestion::parse(text);
});
