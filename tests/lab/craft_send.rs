//! `sonde craft --send` on the wire: in the lab, a sent SYN's SYN-ACK and a
//! refusal that sends nothing; on loopback, each reply shown once. (The
//! byte-exact packets and the errors are in `tests/offline/craft.rs`.)

use support::cli::sonde_in_crate as sonde;
use support::evidence::tshark_fields;
use support::lab::*;

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
