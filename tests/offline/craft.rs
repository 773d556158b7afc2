//! `sonde craft`: byte-exact packets against Scapy's for the same specs
//! (tests/craft/fixtures.tsv, made by tests/craft/fixtures.py), the round
//! trip through --write to `sonde analyze` and tshark, errors that point
//! at the field. (Sending, in the lab and on loopback, is in
//! `tests/lab/craft_send.rs`.)

use std::process::Command;

use support::cli::sonde_in_crate as sonde;
use support::evidence::tshark_fields;

fn fixtures() -> Vec<(String, String, Vec<u8>)> {
    include_str!("../craft/fixtures.tsv")
        .lines()
        .map(|l| {
            let mut f = l.split('\t');
            let (spec, expr, hex) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
            (
                spec.to_string(),
                expr.to_string(),
                hex::decode(hex).unwrap(),
            )
        })
        .collect()
}

#[test]
fn packets_are_byte_exact_with_scapy() {
    let no_route = |_| None;
    let table = fixtures();
    assert!(table.len() >= 12);
    for (spec, expr, expected) in table {
        let crafted =
            sonde::craft::craft(&spec, &no_route).unwrap_or_else(|e| panic!("{spec}: {e}"));
        assert_eq!(
            hex::encode(&crafted.bytes),
            hex::encode(&expected),
            "\nsonde: {spec}\nscapy: {expr}"
        );
    }
}

#[test]
fn written_packets_read_back_the_same_in_tshark_and_analyze() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("one.pcap");
    let spec = "ip(src=198.18.0.2,dst=198.18.1.5,ttl=7,id=99)/tcp(sport=1234,dport=8080,flags=SA,seq=5,options=mss:1400;nop;ws:3)/raw(text=\"hi\")";
    let (code, out, err) = sonde(&["craft", spec, "--write", pcap.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("wrote 1 packet"), "{out}");
    let row = tshark_fields(
        &pcap,
        &[
            "ip.src",
            "ip.dst",
            "ip.ttl",
            "ip.id",
            "ip.checksum.status",
            "tcp.srcport",
            "tcp.dstport",
            "tcp.flags.str",
            "tcp.seq_raw",
            "tcp.options.mss_val",
            "tcp.options.wscale.shift",
            "tcp.checksum.status",
            "tcp.len",
        ],
    );
    assert_eq!(row.len(), 1);
    let f: Vec<&str> = row[0].split('|').collect();
    assert_eq!(
        &f[..4],
        &["198.18.0.2", "198.18.1.5", "7", "0x0063"],
        "{row:?}"
    );
    assert_eq!(&f[5..7], &["1234", "8080"]);
    assert!(f[7].contains('A') && f[7].contains('S'), "{row:?}");
    assert_eq!(&f[8..11], &["5", "1400", "3"], "{row:?}");
    assert_eq!(f[12], "2");
    // Checksum status 2 = good, when tshark is asked to verify.
    let verified = Command::new("tshark")
        .args([
            "-r",
            pcap.to_str().unwrap(),
            "-o",
            "ip.check_checksum:TRUE",
            "-o",
            "tcp.check_checksum:TRUE",
            "-Y",
            "ip.checksum.status==1 && tcp.checksum.status==1",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&verified.stdout).lines().count(),
        1,
        "checksums good"
    );

    // The analyzer sees the same packet.
    let (code, out, err) = sonde(&["analyze", pcap.to_str().unwrap(), "--flows", "all"]);
    assert_eq!(code, 0, "{err}");
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["summary"]["packets"], 1);
    assert_eq!(r["protocols"]["tcp"]["packets"], 1, "{}", r["protocols"]);
    let flow = &r["flows"];
    assert!(flow.to_string().contains("8080"), "{flow}");

    // Fragments: three pieces that tshark reassembles into the same UDP
    // datagram (tshark's ip.frag_offset counts 8-byte units).
    let frag = dir.path().join("frag.pcap");
    let (code, _, err) = sonde(&[
        "craft",
        "ip(src=198.18.0.2,dst=198.18.1.5,id=777)/udp(sport=9,dport=9)/raw(pattern=5a,len=40)",
        "--fragment",
        "16",
        "--write",
        frag.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let rows = tshark_fields(&frag, &["ip.frag_offset", "ip.flags.mf", "ip.id"]);
    assert_eq!(
        rows,
        vec!["0|1|0x0309", "2|1|0x0309", "4|0|0x0309"],
        "{rows:?}"
    );
    let reassembled = tshark_fields(&frag, &["udp.length"]);
    assert_eq!(
        reassembled.iter().filter(|l| l.as_str() == "48").count(),
        1,
        "{reassembled:?}"
    );
    // An explicit, overlapping list.
    let (code, _, err) = sonde(&[
        "craft",
        "ip(src=198.18.0.2,dst=198.18.1.5)/udp/raw(len=40)",
        "--fragments",
        "0:24,8:40",
        "--write",
        frag.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let rows = tshark_fields(&frag, &["ip.frag_offset", "ip.flags.mf", "ip.len"]);
    assert_eq!(rows, vec!["0|1|44", "1|0|60"], "{rows:?}");
}

#[test]
fn bad_specs_point_at_the_layer_and_field() {
    for (spec, expect) in [
        ("ip(dst=198.18.1.5)/tcp(dprt=80)", "did you mean \"dport\""),
        ("ip(dst=198.18.1.5)/tpc(dport=80)", "did you mean \"tcp\""),
        ("ip(dst=198.18.1.5,ttl=256)", "from 0 to 255"),
        ("ip(dst=198.18.1.5)/tcp(flags=SX)", "TCP flag letters"),
        ("ip(dst=198.18.1.5", "not closed"),
        ("tcp(dport=80)", "needs an ip or ipv6 layer"),
        ("ip(src=198.18.0.2)", "needs dst="),
        (
            "ip(dst=198.18.1.5)/dns(qd=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.com)",
            "DNS labels hold at most 63",
        ),
        (
            "ip(dst=198.18.1.5)/raw(file=\"/nonexistent/x\")",
            "readable file",
        ),
        ("ip(dst=198.18.1.5)/raw(file=/x)", "quote values"),
        ("ip(dst=198.18.1.5)/ether", "only be the first layer"),
    ] {
        let (code, _, err) = sonde(&["craft", spec]);
        assert_eq!(code, 2, "{spec}: {err}");
        assert!(err.contains(expect), "{spec}: {err}");
        assert!(
            err.contains('^') && !err.contains("panicked"),
            "{spec}: {err}"
        );
    }
    let (code, _, err) = sonde(&["craft", "ip(dst=198.18.1.5)/udp", "--fragment", "12"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("multiple of 8"), "{err}");
}

/// Regression (issue 16): `craft --dump` stopped at UDP; a DNS layer is
/// shown as the analyzer decodes it.
#[test]
fn dump_shows_the_dns_layer() {
    let (code, out, err) = sonde(&[
        "craft",
        "ip(dst=198.18.1.53)/udp(dport=53)/dns(id=4660,qd=www.lab.sonde.test:AAAA)",
        "--dump",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(
            "dns    id 4660 query rcode NOERROR answers 0 question www.lab.sonde.test AAAA"
        ),
        "{out}"
    );
}
