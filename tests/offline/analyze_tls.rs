//! The `tls` section (issue 18, item 5) on a real capture: three
//! handshakes openssl made on loopback (tests/corpus/tls_loopback.pcap).
//! The expected values come from tshark's dissection of the same file:
//! `bash tests/corpus/expected_tls.sh` prints each ClientHello's JA4
//! (computed from tshark's cipher, extension and signature-algorithm
//! fields; tshark 4.0 has no JA4 field) and server name, and each
//! ServerHello's JA4S (from tshark's version, cipher, extension and ALPN
//! fields).

use std::path::Path;

use support::cli::{analyze_json, analyze_test_corpus};

fn report() -> serde_json::Value {
    analyze_test_corpus("tls_loopback.pcap", &["--flows", "all"])
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
    // JA4S, from expected_tls.sh's last three lines.
    assert_eq!(row(0, "ja4s").unwrap(), "t130200_1302_a56c5b993250");
    assert_eq!(row(1, "ja4s").unwrap(), "t1205h1_c02c_1ece00aee4e9");
    assert_eq!(row(2, "ja4s").unwrap(), "t130200_1302_a56c5b993250");
    assert_eq!(tls["top_ja4s"][0]["key"], "t130200_1302_a56c5b993250");
    assert_eq!(tls["top_ja4s"][0]["count"], 2);
}

/// Issue 18, item 5: each TLS flow's summary says what its hellos said,
/// as the handshake list does.
#[test]
fn each_tls_flow_lists_its_server_name_versions_and_ja4() {
    let r = report();
    let flows = r["flows"]["list"].as_array().unwrap();
    let handshakes = r["tls"]["handshakes"].as_array().unwrap();
    assert_eq!(flows.len(), 3);
    for h in handshakes {
        let client = format!("{}:", h["client"].as_str().unwrap());
        let f = flows
            .iter()
            .find(|f| {
                f["client"].as_str().unwrap().starts_with(&client)
                    && f["tls"]["ja4"] == h["ja4"]
                    && f["tls"]["sni"] == h["sni"]
            })
            .unwrap_or_else(|| panic!("no flow for {h}"));
        for k in ["alpn_offered", "version_offered", "version", "alpn", "ja4s"] {
            assert_eq!(f["tls"][k], h[k], "{k}: {f}");
        }
    }
}

/// Regression: a retransmitted ClientHello was counted as a second hello.
#[test]
fn a_retransmitted_client_hello_counts_once() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/tls_loopback.pcap");
    let bytes = std::fs::read(&src).unwrap();
    // Classic pcap: a 24-byte file header, then records with 16-byte headers.
    let mut out = bytes[..24].to_vec();
    let mut at = 24;
    let mut copied = 0;
    while at + 16 <= bytes.len() {
        let caplen = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
        let record = &bytes[at..at + 16 + caplen];
        out.extend_from_slice(record);
        // Ethernet 14, IPv4 20, TCP with its data offset: a ClientHello?
        let frame = &record[16..];
        let tcp = &frame[34..];
        let payload = &tcp[usize::from(tcp[12] >> 4) * 4..];
        if copied == 0 && payload.len() > 5 && payload[0] == 0x16 && payload[5] == 1 {
            out.extend_from_slice(record);
            copied += 1;
        }
        at += 16 + caplen;
    }
    assert_eq!(copied, 1);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("retransmitted.pcap");
    std::fs::write(&path, out).unwrap();
    let r = analyze_json(&path, &[]);
    assert_eq!(r["tls"]["client_hellos"], 3, "{}", r["tls"]);
    assert_eq!(r["tcp_analysis"]["retransmissions"], 1);
}

/// Issue 18, item 5: QUIC Initial SNI. Two QUIC v1 handshakes aioquic made
/// on loopback (tests/corpus/quic_initial.pcap); the JA4 values are those
/// expected_tls.sh computes from tshark's own decryption of the Initials.
#[test]
fn quic_initial_client_hellos_give_server_names_and_ja4() {
    let r = analyze_test_corpus("quic_initial.pcap", &["--flows", "all"]);
    let tls = &r["tls"];
    assert_eq!(tls["client_hellos"], 2, "{tls}");
    assert_eq!(tls["quic_client_hellos"], 2, "{tls}");
    let h = tls["handshakes"].as_array().unwrap();
    assert_eq!(h[0]["sni"], "Quic.Sonde.Test");
    assert_eq!(h[0]["alpn_offered"], "h3");
    assert_eq!(h[0]["ja4"], "q13d0307h3_55b375c5d22e_1cecd519fee8");
    assert_eq!(h[0]["port"], 4433);
    assert_eq!(h[1]["sni"], "other.sonde.test");
    assert_eq!(h[1]["ja4"], "q13d0307hp_55b375c5d22e_1cecd519fee8");
    // and in the flows they came in
    let flows = r["flows"]["list"].as_array().unwrap();
    let named: Vec<&str> = flows
        .iter()
        .filter_map(|f| f["tls"]["sni"].as_str())
        .collect();
    assert_eq!(named, ["Quic.Sonde.Test", "other.sonde.test"], "{flows:?}");
}
