//! Running the sonde binary outside any namespace, and the shared corpus.

use std::path::PathBuf;
use std::process::Command;

/// A file of ../shared/corpus (real public captures).
pub fn corpus(file: &str) -> PathBuf {
    crate::crate_dir().join("../shared/corpus").join(file)
}

/// Run the sonde binary: (exit code, stdout, stderr).
pub fn sonde(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(crate::sonde_bin())
        .args(args)
        .output()
        .expect("run sonde");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Run the sonde binary from the crate's directory (for `scopes/...`).
pub fn sonde_in_crate(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(crate::sonde_bin())
        .args(args)
        .current_dir(crate::crate_dir())
        .output()
        .expect("run sonde");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `sonde analyze` a capture of the crate's `tests/corpus/` with `args`;
/// the report (the analysis must succeed).
pub fn analyze_test_corpus(file: &str, args: &[&str]) -> serde_json::Value {
    let path = crate::crate_dir().join("tests/corpus").join(file);
    analyze_json(&path, args)
}

/// `sonde analyze PATH ARGS...`: the report (the analysis must succeed).
pub fn analyze_json(path: &std::path::Path, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["analyze", path.to_str().expect("a UTF-8 path")];
    all.extend_from_slice(args);
    let (code, stdout, stderr) = sonde(&all);
    assert_eq!(code, 0, "{stderr}");
    serde_json::from_str(&stdout).expect("a JSON report")
}
