//! `sonde craft`: byte-exact packets against Scapy's for the same specs
//! (tests/craft/fixtures.tsv, made by tests/craft/fixtures.py), the round
//! trip through --write to `sonde analyze` and tshark, errors that point
//! at the field, and, in the lab, a sent SYN's SYN-ACK and a refusal that
//! sends nothing.

mod support;

use std::process::Command;

use support::lab::*;

fn sonde(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sonde"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn fixtures() -> Vec<(String, String, Vec<u8>)> {
    include_str!("craft/fixtures.tsv")
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

fn tshark_fields(pcap: &std::path::Path, fields: &[&str]) -> Vec<String> {
    let mut cmd = Command::new("tshark");
    cmd.args([
        "-r",
        pcap.to_str().unwrap(),
        "-T",
        "fields",
        "-E",
        "separator=|",
    ]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
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

#[test]
fn a_sent_syn_shows_the_syn_ack_and_out_of_scope_is_refused() {
    let lab = Lab::new();
    let dir = tempfile::tempdir().unwrap();
    let capture = dir.path().join("target-side.pcap");
    let tshark = lab.capture_target_side("any", &capture);
    let evidence = dir.path().join("craft.pcap");
    // An open port: the SYN-ACK is shown, matched to each of the two SYNs.
    let (code, out, err) = lab.sonde(&[
        "craft",
        "ip(dst=198.18.1.10)/tcp(sport=41000,dport=80,flags=S,options=mss:1460)",
        "--send",
        "--scope",
        "scopes/lab.toml",
        "--count",
        "2",
        "--interval",
        "0.3",
        "--pcap",
        evidence.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.matches("flags=SA").count(), 2, "{out}");
    assert!(
        out.contains("ip=198.18.1.10") && out.contains("rtt="),
        "{out}"
    );
    let rows = tshark_fields(&evidence, &["ip.src", "tcp.flags.str"]);
    assert_eq!(rows.len(), 4, "two SYNs and two SYN-ACKs: {rows:?}");
    // A closed port answers RST; ICMP echo gets its reply; IPv6 works too.
    let (code, out, err) = lab.sonde(&[
        "craft",
        "ip(dst=198.18.1.10)/tcp(dport=23)",
        "--send",
        "--scope",
        "scopes/lab.toml",
        "--wait",
        "0.5",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("flags=RA"), "{out}");
    let (code, out, err) = lab.sonde(&[
        "craft",
        "ipv6(dst=2001:db8:1::10)/icmpv6(id=9,seq=3)",
        "--send",
        "--scope",
        "scopes/lab.toml",
        "--wait",
        "0.5",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("echo-reply id=9 icmp_seq=3"), "{out}");

    // A scope that denies the host: refused, exit 3, nothing sent.
    let scope = dir.path().join("deny.toml");
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/scopes/lab.toml")).unwrap();
    std::fs::write(
        &scope,
        format!("{text}\n[[deny]]\nname = \"not this host\"\ntargets = [\"198.18.1.11\"]\n"),
    )
    .unwrap();
    let (code, out, err) = lab.sonde(&[
        "craft",
        "ip(dst=198.18.1.11)/tcp(dport=80)",
        "--send",
        "--scope",
        scope.to_str().unwrap(),
        "--count",
        "3",
    ]);
    assert_eq!(code, 3, "{out}{err}");
    assert!(
        err.contains("198.18.1.11") && err.contains("not this host"),
        "{err}"
    );
    tshark.stop();
    let reached = tshark_fields(&capture, &["ip.dst"]);
    assert!(
        reached.iter().any(|d| d == "198.18.1.10"),
        "the allowed sends show on the wire"
    );
    assert!(
        !reached.iter().any(|d| d == "198.18.1.11"),
        "a refused craft reached its target: {reached:?}"
    );
}

/// Regression: on loopback the tap sees every packet twice (outgoing and
/// incoming), and each reply was shown twice. The sniffer's filter now
/// drops what the host itself sends.
#[test]
fn loopback_replies_are_seen_once() {
    let (code, out, err) = sonde(&[
        "craft",
        "ip(dst=127.0.0.1)/tcp(sport=45001,dport=9)",
        "--send",
        "--scope",
        "scopes/loopback.toml",
        "--count",
        "2",
        "--interval",
        "0.2",
        "--wait",
        "0.3",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.matches("flags=RA").count(), 2, "{out}");
    assert!(out.contains("2 packet(s) sent, 2 replies"), "{out}");
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
