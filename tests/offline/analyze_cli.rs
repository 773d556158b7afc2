//! `sonde analyze` through the binary: reports, several inputs, damaged
//! captures (read what can be read, warn with the byte offset), exit codes.

use std::path::Path;

use support::cli::{corpus, sonde};

fn analyze_json(path: &Path) -> (i32, serde_json::Value, String) {
    let (code, out, err) = sonde(&["analyze", path.to_str().unwrap()]);
    let json = if code == 0 {
        serde_json::from_str(&out).expect("report is JSON")
    } else {
        serde_json::Value::Null
    };
    (code, json, err)
}

#[test]
fn report_has_its_sections_and_is_deterministic() {
    let f = corpus("normal/http_ip4and6.pcapng");
    let (code, json, err) = analyze_json(&f);
    assert_eq!(code, 0, "{err}");
    for key in [
        "sonde_version",
        "input",
        "summary",
        "protocols",
        "top_talkers",
        "ports",
        "warnings",
    ] {
        assert!(json.get(key).is_some(), "no {key}");
    }
    assert_eq!(json["summary"]["packets"], 20);
    assert_eq!(json["input"][0]["link_types"][0], "ethernet");
    assert_eq!(json["ports"]["tcp"][0]["port"], 80);
    let (_, a, _) = sonde(&["analyze", f.to_str().unwrap()]);
    let (_, b, _) = sonde(&["analyze", f.to_str().unwrap()]);
    assert_eq!(a, b, "the same input must give a byte-identical report");
}

#[test]
fn several_files_are_one_capture_in_time_order() {
    let (a, b) = (
        corpus("normal/dns.pcap"),
        corpus("normal/tcp_handshake.pcapng"),
    );
    let (code, out, err) = sonde(&["analyze", b.to_str().unwrap(), a.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["summary"]["packets"], 7 + 3);
    assert_eq!(json["input"].as_array().unwrap().len(), 2);
    let (_, ja, _) = analyze_json(&a);
    let (_, jb, _) = analyze_json(&b);
    let first = std::cmp::min(
        ja["summary"]["first_timestamp"].as_str().unwrap(),
        jb["summary"]["first_timestamp"].as_str().unwrap(),
    );
    assert_eq!(json["summary"]["first_timestamp"], first);
}

#[test]
fn report_file_and_unwritable_report_path() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.json");
    let (code, stdout, _) = sonde(&[
        "analyze",
        corpus("normal/dns.pcap").to_str().unwrap(),
        "--report",
        out.to_str().unwrap(),
    ]);
    assert_eq!((code, stdout.as_str()), (0, ""));
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(json["summary"]["packets"], 7);
    let (code, _, err) = sonde(&[
        "analyze",
        corpus("normal/dns.pcap").to_str().unwrap(),
        "--report",
        "/nonexistent/dir/r.json",
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("cannot create report /nonexistent/dir/r.json"),
        "{err}"
    );
}

/// Damaged copies of a legacy pcap (dns-tunnel/iodine.pcap: 24-byte header,
/// then 16-byte record headers) and of a pcapng (normal/dns.pcap, whose
/// 28-byte section header is followed by an interface block).
#[test]
fn damaged_captures_yield_what_can_be_read_and_a_warning() {
    let good = std::fs::read(corpus("dns-tunnel/iodine.pcap")).unwrap();
    assert_eq!(
        &good[..4],
        &[0xd4, 0xc3, 0xb2, 0xa1],
        "legacy little-endian pcap"
    );
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };

    // cut inside the last record: 23 of 24 frames, a warning with the offset
    let cut = write("cut.pcap", &good[..good.len() - 10]);
    let (code, json, err) = analyze_json(&cut);
    assert_eq!(code, 0, "{err}");
    assert_eq!(json["summary"]["packets"], 23);
    let w = &json["warnings"][0];
    assert!(
        w["message"]
            .as_str()
            .unwrap()
            .contains("ends inside a record"),
        "{w}"
    );
    assert!(
        w["offset"].as_u64().unwrap() > 24 && w["offset"].as_u64().unwrap() < good.len() as u64
    );
    assert!(err.contains("warning") && err.contains("at byte"), "{err}");

    // a first record claiming about 4 GB: nothing allocated, nothing read, a warning at byte 24
    let mut huge = good.clone();
    huge[32..36].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
    let (code, json, _) = analyze_json(&write("huge.pcap", &huge));
    assert_eq!(code, 0);
    assert_eq!(json["summary"]["packets"], 0);
    assert_eq!(json["warnings"][0]["offset"], 24);
    assert!(
        json["warnings"][0]["message"]
            .as_str()
            .unwrap()
            .contains("length field"),
        "{json}"
    );

    // the same for a pcapng block length
    let mut ng = std::fs::read(corpus("normal/dns.pcap")).unwrap();
    assert_eq!(&ng[..4], &[0x0a, 0x0d, 0x0d, 0x0a], "pcapng");
    ng[32..36].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
    let (code, json, _) = analyze_json(&write("huge.pcapng", &ng));
    assert_eq!(code, 0);
    assert_eq!(json["summary"]["packets"], 0);
    assert_eq!(json["warnings"][0]["offset"], 28);

    // cut inside the file header, empty, garbage: not a capture at all, exit 2
    for (name, bytes, why) in [
        ("header.pcap", &good[..10], "cannot analyze"),
        ("empty.pcap", &[][..], "empty"),
        (
            "garbage.pcap",
            &b"this is not a capture file at all, just text"[..],
            "not a pcap or pcapng file",
        ),
    ] {
        let (code, _, err) = sonde(&["analyze", write(name, bytes).to_str().unwrap()]);
        assert_eq!(code, 2, "{name}: {err}");
        assert!(err.contains(why), "{name}: {err}");
    }
    let (code, _, err) = sonde(&["analyze", "/nonexistent.pcap"]);
    assert_eq!(code, 2, "{err}");
}

/// A big-endian, nanosecond-resolution pcap with raw IPv4 frames, built here.
#[test]
fn big_endian_nanosecond_raw_ip_pcap() {
    let mut f = Vec::new();
    f.extend_from_slice(&0xa1b2_3c4du32.to_be_bytes()); // nanosecond magic, big-endian
    f.extend_from_slice(&2u16.to_be_bytes());
    f.extend_from_slice(&4u16.to_be_bytes());
    f.extend_from_slice(&[0; 8]);
    f.extend_from_slice(&65535u32.to_be_bytes());
    f.extend_from_slice(&101u32.to_be_bytes()); // LINKTYPE_RAW
    // IPv4 + UDP 1234 -> 53, 12 bytes of payload
    let pkt: Vec<u8> = [
        &[
            0x45, 0, 0, 40, 0, 1, 0, 0, 64, 17, 0, 0, 198, 18, 0, 2, 198, 18, 1, 53,
        ][..],
        &[0x04, 0xd2, 0, 53, 0, 20, 0, 0],
        &[0; 12],
    ]
    .concat();
    for (sec, nsec) in [
        (1_700_000_000u32, 123_456_789u32),
        (1_700_000_001, 987_654_321),
    ] {
        f.extend_from_slice(&sec.to_be_bytes());
        f.extend_from_slice(&nsec.to_be_bytes());
        f.extend_from_slice(&(pkt.len() as u32).to_be_bytes());
        f.extend_from_slice(&(pkt.len() as u32).to_be_bytes());
        f.extend_from_slice(&pkt);
    }
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("be-ns.pcap");
    std::fs::write(&p, &f).unwrap();
    let (code, json, err) = analyze_json(&p);
    assert_eq!(code, 0, "{err}");
    assert_eq!(json["input"][0]["link_types"][0], "raw");
    assert_eq!(
        json["summary"]["first_timestamp"],
        "2023-11-14T22:13:20.123456789Z"
    );
    assert_eq!(
        json["summary"]["last_timestamp"],
        "2023-11-14T22:13:21.987654321Z"
    );
    assert_eq!(json["protocols"]["udp"]["packets"], 2);
    assert_eq!(json["protocols"]["dns"]["packets"], 2);
    assert_eq!(json["ports"]["udp"][0]["port"], 53);
}

#[test]
fn thresholds_file_overrides_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let f = corpus("scan/synscan.pcapng");
    let strict = dir.path().join("t.toml");
    std::fs::write(&strict, "[port_scan]\nmin_ports_vertical = 5000\n").unwrap();
    let (code, out, err) = sonde(&[
        "analyze",
        f.to_str().unwrap(),
        "--thresholds",
        strict.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        json["anomalies"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["kind"] != "port_scan"),
        "{json}"
    );
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[port_scan]\nmin_ports = 5\n").unwrap();
    let (code, _, err) = sonde(&[
        "analyze",
        f.to_str().unwrap(),
        "--thresholds",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("bad.toml:2:1") && err.contains("unknown field `min_ports`"),
        "{err}"
    );
}

#[test]
fn flows_listing_options() {
    let f = corpus("normal/tcp_ports.pcapng");
    let count = |args: &[&str]| {
        let mut a = vec!["analyze", f.to_str().unwrap()];
        a.extend_from_slice(args);
        let (_, out, _) = sonde(&a);
        let json: serde_json::Value = serde_json::from_str(&out).unwrap();
        (
            json["flows"]["list"].as_array().unwrap().len(),
            json["flows"]["count"]["total"].as_u64().unwrap(),
        )
    };
    let (all, total) = count(&["--flows", "all"]);
    assert_eq!(all as u64, total);
    assert_eq!(count(&["--flows", "top", "--top", "3"]).0, 3.min(all));
    assert_eq!(count(&["--flows", "none"]).0, 0);
}

/// Regression: damage early in a capture larger than the reading thread's
/// chunks in flight left that thread blocked on a full channel while the
/// analysis waited for its hash.
#[test]
fn damage_early_in_a_large_capture_neither_hangs_nor_skips_the_hash() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.pcap");
    let mut w =
        sonde::pcap::PcapWriter::new(std::fs::File::create(&path).unwrap(), 1, 65535).unwrap();
    let frame = [0u8; 1400];
    for i in 0..6000 {
        w.write(1_767_225_600_000_000_000 + i, &frame).unwrap();
    }
    w.flush().unwrap();
    drop(w);
    let mut bytes = std::fs::read(&path).unwrap();
    // the tenth record claims 4 GB; about 8 MB follow it
    let at = 24 + 9 * (16 + 1400);
    bytes[at + 8..at + 12].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let p = path.clone();
    std::thread::spawn(move || tx.send(sonde(&["analyze", p.to_str().unwrap()])).unwrap());
    let (code, out, err) = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("sonde analyze hung");
    assert_eq!(code, 0, "{err}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["summary"]["packets"], 9);
    assert_eq!(json["warnings"][0]["offset"], at as u64);
    use sha2::Digest;
    assert_eq!(
        json["input"][0]["sha256"],
        hex::encode(sha2::Sha256::digest(&bytes)),
        "the hash covers the whole file"
    );
}

/// Regression (issue 16): `sonde analyze BIG --flows all | head -1`
/// printed "error: cannot write output: Broken pipe" and exited 1. A reader
/// that goes away ends sonde quietly with exit 0, as coreutils do.
#[test]
fn a_closed_pipe_ends_quietly() {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sonde"))
        .args(["analyze", "--flows", "all"])
        .arg(corpus("syn/synflood-spoofed.pcap"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert_eq!(first.trim(), "{");
    // The reader is dropped here, with megabytes of flows still to come.
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}

/// Regression (issue 16): `--html -` wrote a file named `-`. It writes the
/// page to standard output; with the JSON report there too, it is refused.
#[test]
fn html_to_standard_output() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("r.json");
    let f = corpus("normal/dns.pcap");
    let (code, out, err) = sonde(&[
        "analyze",
        f.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
        "--html",
        "-",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("<!DOCTYPE html>"),
        "{}",
        &out[..out.len().min(80)]
    );
    assert!(!std::path::Path::new("-").exists());
    let (code, page, err) = sonde(&["report", report.to_str().unwrap(), "--html", "-"]);
    assert_eq!(code, 0, "{err}");
    assert!(page.starts_with("<!DOCTYPE html>") && !page.contains("wrote "));
    let (code, _, err) = sonde(&["analyze", f.to_str().unwrap(), "--html", "-"]);
    assert_eq!(code, 2);
    assert!(err.contains("both go to standard output"), "{err}");
}

/// Regression (issue 16): a compressed capture said "unknown magic
/// number", and a missing file got the hint "give pcap or pcapng files".
/// Each error names what the file is.
#[test]
fn errors_name_what_the_input_is() {
    let dir = tempfile::tempdir().unwrap();
    let gz = dir.path().join("c.pcap.gz");
    std::fs::write(&gz, [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]).unwrap();
    let (code, _, err) = sonde(&["analyze", gz.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        err.contains("gzip-compressed, and the gzip stream is damaged or cut short"),
        "{err}"
    );
    // Text inside gzip: named as what it is, after decompression.
    let text = dir.path().join("notes.txt.gz");
    let gzip = std::process::Command::new("sh")
        .args([
            "-c",
            &format!("echo hello world | gzip > {}", text.display()),
        ])
        .status()
        .unwrap();
    assert!(gzip.success());
    let (code, _, err) = sonde(&["analyze", text.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        err.contains("text, not a capture (it starts with 68 65 6c 6c) (after gzip decompression)"),
        "{err}"
    );
    let missing = dir.path().join("nope.pcap");
    let (code, _, err) = sonde(&["analyze", missing.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("hint: check the path"), "{err}");
    let (code, _, err) = sonde(&["analyze", dir.path().to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("is a directory"), "{err}");
    let elf = dir.path().join("x.bin");
    std::fs::write(&elf, [0x7f, b'E', b'L', b'F', 2, 1, 1, 0]).unwrap();
    let (_, _, err) = sonde(&["analyze", elf.to_str().unwrap()]);
    assert!(err.contains("it starts with 7f 45 4c 46"), "{err}");
}

/// Issue 16: `analyze -` reads a capture from standard input (a pipe has
/// no size until read: the report gives the bytes read and their hash, as
/// for the same file by name).
#[test]
fn a_capture_on_standard_input() {
    use std::io::Write;
    let f = corpus("normal/dns.pcap");
    let bytes = std::fs::read(&f).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sonde"))
        .args(["analyze", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let piped: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let (_, named, _) = sonde(&["analyze", f.to_str().unwrap()]);
    let named: serde_json::Value = serde_json::from_str(&named).unwrap();
    assert_eq!(piped["input"][0]["path"], "-");
    for k in ["size", "sha256", "packets"] {
        assert_eq!(piped["input"][0][k], named["input"][0][k], "{k}");
    }
    assert_eq!(piped["summary"], named["summary"]);
}

/// Issue 16: `analyze x.pcap.gz` said "unknown magic number". gzip and zstd
/// captures are decompressed as they are read: the same analysis as the
/// capture inside, with the size and SHA-256 of the file as stored; a file
/// cut short gives what was read and a warning.
#[test]
fn gzip_and_zstd_captures_are_read_as_the_capture_inside() {
    use sha2::Digest;
    let f = corpus("dns-tunnel/sods.pcap");
    let dir = tempfile::tempdir().unwrap();
    let (_, plain, _) = analyze_json(&f);
    // zstd's decoder hands out data one window behind what it decoded, so
    // a cut-short file loses its last window: a small window (1 KiB) here,
    // so that the cut file still holds packets.
    for (kind, cmd) in [("gzip", "gzip -c"), ("zstd", "zstd -q -c --zstd=wlog=10")] {
        let packed = dir.path().join(format!("sods.pcap.{kind}"));
        let ok = std::process::Command::new("sh")
            .args([
                "-c",
                &format!("{cmd} {} > {}", f.display(), packed.display()),
            ])
            .status()
            .unwrap();
        assert!(ok.success(), "{cmd}");
        let (code, r, err) = analyze_json(&packed);
        assert_eq!(code, 0, "{kind}: {err}");
        let bytes = std::fs::read(&packed).unwrap();
        let input = &r["input"][0];
        assert_eq!(input["compression"], kind);
        assert_eq!(input["size"], bytes.len() as u64, "{kind}");
        assert_eq!(
            input["sha256"],
            hex::encode(sha2::Sha256::digest(&bytes)),
            "{kind}: the hash is of the file as stored"
        );
        assert_eq!(input["packets"], plain["input"][0]["packets"]);
        for section in [
            "summary",
            "protocols",
            "top_talkers",
            "flows",
            "dns",
            "anomalies",
        ] {
            assert_eq!(r[section], plain[section], "{kind}: {section}");
        }
        assert!(plain["input"][0].get("compression").is_none());
        // Cut short: what was read, and a warning naming the stream.
        let cut = dir.path().join(format!("cut.pcap.{kind}"));
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        let (code, r, err) = analyze_json(&cut);
        assert_eq!(code, 0, "{kind}: {err}");
        let packets = r["input"][0]["packets"].as_u64().unwrap();
        assert!(packets > 0 && packets < 986, "{kind}: {packets}");
        assert!(
            err.contains(&format!("the {kind} stream is damaged or cut short")),
            "{kind}: {err}"
        );
    }
}

/// Regression (issue 26): `analyze BAD --report existing.json` and `report
/// DIR --format xml -o existing.xml` with a bad input exited 2 and left
/// the existing file empty. Outputs are written whole under a temporary
/// name and renamed; on error the old file is untouched and nothing else
/// is left in its directory.
#[test]
fn a_failed_run_leaves_an_existing_output_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.pcap");
    std::fs::write(&bad, b"this is not a capture").unwrap();
    let report = dir.path().join("existing.json");
    std::fs::write(&report, b"{\"the\": \"old report\"}\n").unwrap();
    let page = dir.path().join("existing.html");
    std::fs::write(&page, b"<p>old page</p>\n").unwrap();
    let (code, _, err) = sonde(&[
        "analyze",
        bad.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
        "--html",
        page.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(
        std::fs::read(&report).unwrap(),
        b"{\"the\": \"old report\"}\n"
    );
    assert_eq!(std::fs::read(&page).unwrap(), b"<p>old page</p>\n");
    let xml = dir.path().join("existing.xml");
    std::fs::write(&xml, b"<old/>\n").unwrap();
    let (code, _, err) = sonde(&[
        "report",
        report.to_str().unwrap(),
        "--format",
        "xml",
        "-o",
        xml.to_str().unwrap(),
    ]);
    assert_ne!(code, 0, "{err}");
    assert_eq!(std::fs::read(&xml).unwrap(), b"<old/>\n");
    // No temporary file is left beside them.
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["bad.pcap", "existing.html", "existing.json", "existing.xml"]
    );
    // A good run replaces the old report whole.
    let (code, _, err) = sonde(&[
        "analyze",
        corpus("normal/dns.pcap").to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert!(v["summary"].is_object(), "{v}");
}

/// Issue 27: a capture with no finding never reads "clean". The report
/// lists every detector that ran with its thresholds and how close the
/// capture came (the busiest SYN rate, the widest scan); the page says
/// "No finding" and shows them.
#[test]
fn a_capture_without_findings_says_what_ran_and_how_close_it_came() {
    let dir = tempfile::tempdir().unwrap();
    let (json, html) = (dir.path().join("r.json"), dir.path().join("r.html"));
    let (code, _, err) = support::cli::sonde(&[
        "analyze",
        support::cli::corpus("normal/tcp_ports.pcapng")
            .to_str()
            .unwrap(),
        "--report",
        json.to_str().unwrap(),
        "--html",
        html.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(r["anomalies"].as_array().unwrap().len(), 0);
    let runs = r["detectors"].as_array().unwrap();
    let names: Vec<&str> = runs.iter().map(|d| d["name"].as_str().unwrap()).collect();
    for name in [
        "syn_flood",
        "port_scan",
        "dns_tunneling",
        "ip_fragmentation",
        "malformed_header",
        "arp_spoofing",
        "reflection",
        "os_fingerprinting",
        "password_guessing",
        "web_scanner",
    ] {
        assert!(names.contains(&name), "{name} in {names:?}");
    }
    let syn = runs.iter().find(|d| d["name"] == "syn_flood").unwrap();
    assert_eq!(syn["findings"], 0);
    assert_eq!(syn["thresholds"]["min_syn_rate"], 100.0);
    let closest = &syn["closest"][0];
    assert_eq!(closest["measure"], "peak_syn_rate");
    assert!(closest["value"].as_f64().unwrap() > 0.0, "{closest}");
    assert!(closest["value"].as_f64().unwrap() < 100.0, "{closest}");
    // Every conversation here is a real one: no probe to measure a scan by.
    let scan = runs.iter().find(|d| d["name"] == "port_scan").unwrap();
    assert_eq!(scan["closest"].as_array().map(Vec::len), Some(0), "{scan}");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("No finding."), "the page says so");
    assert!(!page.contains("No detector fired"), "no green 'clean'");
    assert!(page.contains("peak_syn_rate"), "how close the capture came");
    assert!(page.contains("min_syn_rate = 100"), "the thresholds");
}
