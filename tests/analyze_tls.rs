//! The `tls` section (issue 18, item 5) on a real capture: three
//! handshakes openssl made on loopback (tests/corpus/tls_loopback.pcap).
//! The expected values come from tshark's dissection of the same file:
//! `bash tests/corpus/expected_tls.sh` prints each ClientHello's JA4
//! (computed from tshark's cipher, extension and signature-algorithm
//! fields; tshark 4.0 has no JA4 field) and server name.

use std::path::Path;

fn report() -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/tls_loopback.pcap");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sonde"))
        .args(["analyze", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn handshakes_names_versions_and_ja4_as_tshark_dissects_them() {
    let r = report();
    let tls = &r["tls"];
    assert_eq!(tls["client_hellos"], 3);
    assert_eq!(tls["server_hellos"], 3);
    let h = tls["handshakes"].as_array().unwrap();
    let row = |i: usize, k: &str| h[i][k].as_str().map(str::to_string);
    // From expected_tls.sh.
    assert_eq!(
        row(0, "ja4").unwrap(),
        "t13d3111h2_e8f1e7e78f70_1f22a2ca17c4"
    );
    assert_eq!(row(0, "sni").unwrap(), "lab.sonde.test");
    assert_eq!(row(0, "alpn_offered").unwrap(), "h2");
    assert_eq!(row(0, "version").unwrap(), "TLS 1.3");
    // TLS 1.3 chooses ALPN in EncryptedExtensions: not visible.
    assert_eq!(row(0, "alpn"), None);
    assert_eq!(
        row(1, "ja4").unwrap(),
        "t12d2808h1_d943125447b4_e7e480e5a997"
    );
    // Server names as sent (case kept).
    assert_eq!(row(1, "sni").unwrap(), "Other.Sonde.Test");
    assert_eq!(row(1, "version").unwrap(), "TLS 1.2");
    assert_eq!(row(1, "alpn").unwrap(), "http/1.1");
    assert_eq!(
        row(2, "ja4").unwrap(),
        "t13i310900_e8f1e7e78f70_1f22a2ca17c4"
    );
    assert_eq!(row(2, "sni"), None);
    assert_eq!(tls["versions"]["TLS 1.3"], 2);
    assert_eq!(tls["versions"]["TLS 1.2"], 1);
    assert_eq!(tls["alpn"]["http/1.1"], 1);
    assert_eq!(tls["top_server_names"].as_array().unwrap().len(), 2);
}
