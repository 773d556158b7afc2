//! Scope files: any text through the TOML parser and the scope's checks,
//! and a gate built from whatever parses.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(scope) = sonde::scope::Scope::from_toml(text, "fuzz.toml") {
        let _ = sonde::scope::ScopeGate::new(scope, None);
    }
});
