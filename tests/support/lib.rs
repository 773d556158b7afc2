//! Helpers shared by sonde's two test crates: `tests/offline` (no root)
//! and `tests/lab` (root: network namespaces). A library of its own, so
//! each test crate uses what it needs and nothing is dead code in either.

pub mod capture;
pub mod cli;
pub mod evidence;
pub mod lab;

use std::path::PathBuf;

/// The sonde crate's directory (the tests run from it: `scopes/...`).
pub fn crate_dir() -> PathBuf {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    dir.canonicalize().unwrap_or(dir)
}

/// The `sonde` binary cargo built for the running test crate. Cargo names
/// it to the test crates only (`CARGO_BIN_EXE_sonde`, at their compile
/// time); it sits in the profile's directory, one above the test binary's
/// `deps/`.
pub fn sonde_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("a test binary in target/<profile>/deps");
    let bin = profile.join(format!("sonde{}", std::env::consts::EXE_SUFFIX));
    assert!(bin.exists(), "no sonde binary at {}", bin.display());
    bin
}
