//! Targets on the scanner's own link (issue 15): sonde resolves their MAC
//! addresses itself with ARP and neighbour solicitations, under the gate,
//! reports the silent ones down (`no-arp-reply`, `no-nd-reply`) without
//! probing them, and asks about no address the scope does not cover.
//! Checked against the lab's ground truth and a capture on the target side.

use std::collections::BTreeSet;

use support::evidence::{report_json, tshark_count};
use support::lab::*;

/// The lab's on-link IPv4 hosts: 198.18.0.10-19 answer ARP; every other
/// address of 198.18.0.0/24 but the gateway and the scanner is absent.
fn live(last_octet: u8) -> bool {
    (10..20).contains(&last_octet)
}

#[test]
fn on_link_hosts_are_resolved_by_our_own_arp_and_silent_ones_are_down() {
    let lab = Lab::new();
    let dir = tempfile::tempdir().unwrap();
    let capture = dir.path().join("target.pcap");
    let tshark = lab.capture_target_side("vt", &capture);
    let run = dir.path().join("run");
    let (code, out, err) = lab.sonde(&[
        "scan",
        "--scope",
        "scopes/lab.toml",
        "198.18.0.8-198.18.0.40",
        "-p",
        "22,23",
        "--probe",
        "syn,icmp",
        "--rate",
        "100000",
        "--wait",
        "0.5",
        "--record",
        "all",
        "-o",
        run.to_str().unwrap(),
    ]);
    tshark.stop();
    assert_eq!(code, 0, "{out}{err}");
    let r = report_json(&run.join("report.json"));
    let nd = &r["neighbour_discovery"];
    assert_eq!(nd["asked"], 33, "{nd}");
    assert_eq!(nd["answered"], 10, "{nd}");
    assert_eq!(nd["down"][0]["reason"], "no-arp-reply");
    assert_eq!(nd["down"][0]["count"], 23);
    assert_eq!(
        nd["down"][0]["addresses"],
        serde_json::json!(["198.18.0.8/31", "198.18.0.20-198.18.0.40"])
    );
    // Down hosts get no probe: 23 hosts x (2 ports + ping).
    assert_eq!(r["counters"]["skipped_down"], 69);
    assert!(
        out.contains("23 hosts down (no-arp-reply, not probed)"),
        "{out}"
    );
    // Exactly the ground truth for the live ones.
    for host in 10..20u8 {
        let ip = format!("198.18.0.{host}");
        assert!(
            out.contains(&format!("{ip}: open 22; answers ping")),
            "{ip}: {out}"
        );
    }
    let results = std::fs::read_to_string(run.join("results.ndjson")).unwrap();
    let mut seen = BTreeSet::new();
    for line in results.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let ip: std::net::Ipv4Addr = v["target"].as_str().unwrap().parse().unwrap();
        assert!(live(ip.octets()[3]), "a result for a down host: {line}");
        let expect = match (v["probe"].as_str().unwrap(), v["port"].as_u64()) {
            ("syn", Some(22)) => "open",
            ("syn", Some(23)) => "closed",
            ("icmp", None) => "up",
            other => panic!("{other:?}"),
        };
        assert_eq!(v["state"], expect, "{line}");
        seen.insert((
            ip,
            v["probe"].as_str().unwrap().to_string(),
            v["port"].as_u64(),
        ));
    }
    assert_eq!(seen.len(), 30, "every live host, every probe, once");
    // On the wire: ARP requests for the 33 addresses asked about (three
    // rounds for the silent ones), none for any other; no SYN to a down host.
    let asked_outside = "arp.opcode==1 && arp.src.proto_ipv4==198.18.0.2 && !(arp.dst.proto_ipv4 >= 198.18.0.8 && arp.dst.proto_ipv4 <= 198.18.0.40)";
    assert_eq!(tshark_count(&capture, asked_outside), 0);
    // Three rounds for each silent address; the live ones answered the
    // first (the scanner's kernel asks for them too, to send its RSTs).
    assert_eq!(
        tshark_count(
            &capture,
            "arp.opcode==1 && arp.src.proto_ipv4==198.18.0.2 && (arp.dst.proto_ipv4==198.18.0.8/31 || (arp.dst.proto_ipv4>=198.18.0.20 && arp.dst.proto_ipv4<=198.18.0.40))"
        ),
        23 * 3
    );
    for host in 10..20 {
        assert!(
            tshark_count(
                &capture,
                &format!(
                    "arp.opcode==1 && arp.src.proto_ipv4==198.18.0.2 && arp.dst.proto_ipv4==198.18.0.{host}"
                )
            ) >= 1
        );
    }
    assert_eq!(
        tshark_count(
            &capture,
            "tcp.flags.syn==1 && tcp.flags.ack==0 && (ip.dst==198.18.0.8/31 || (ip.dst>=198.18.0.20 && ip.dst<=198.18.0.40))"
        ),
        0
    );
    let (code, out, _) = lab.sonde(&["verify", run.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
}

/// Regression: when the kernel already knew every live target and every
/// address left to ask about was absent, no answer ever showed the link's
/// round trip, and discovery waited its three rounds in full (0.85 s) on a
/// link that answers within a millisecond. The first round now also asks a
/// few neighbours the kernel knows; their answers set the rounds' length.
#[test]
fn discovery_rounds_follow_the_link_even_when_every_address_asked_is_absent() {
    let lab = Lab::new();
    // The kernel learns the live hosts' MACs (ping resolves them).
    for host in 10..20 {
        let status = lab
            .scanner_command("ping")
            .args(["-c", "1", "-W", "1", &format!("198.18.0.{host}")])
            .status()
            .unwrap();
        assert!(status.success(), "198.18.0.{host} answers ping");
    }
    let dir = tempfile::tempdir().unwrap();
    let capture = dir.path().join("target.pcap");
    let tshark = lab.capture_target_side("vt", &capture);
    let run = dir.path().join("run");
    let (code, out, err) = lab.sonde(&[
        "scan",
        "--scope",
        "scopes/lab.toml",
        "198.18.0.10-198.18.0.40",
        "-p",
        "22",
        "--wait",
        "0.5",
        "-o",
        run.to_str().unwrap(),
    ]);
    tshark.stop();
    assert_eq!(code, 0, "{out}{err}");
    let r = report_json(&run.join("report.json"));
    let nd = &r["neighbour_discovery"];
    // Only the 21 absent ones are asked for (three rounds each); eight
    // known ones are asked once, to time the link.
    assert_eq!(nd["asked"], 21, "{nd}");
    assert_eq!(nd["answered"], 0, "{nd}");
    assert_eq!(nd["requests_sent"], 21 * 3 + 8, "{nd}");
    assert_eq!(nd["down"][0]["count"], 21, "{nd}");
    assert_eq!(
        tshark_count(
            &capture,
            "arp.opcode==1 && arp.src.proto_ipv4==198.18.0.2 && arp.dst.proto_ipv4>=198.18.0.10 && arp.dst.proto_ipv4<=198.18.0.17"
        ),
        8
    );
    // Full rounds take 0.85 s at the least; rounds of eight round trips
    // (at least 40 ms each) on a veth take about 0.15 s. The bound is far
    // from both, so that a busy machine cannot make it flaky.
    let discovery = r["rate"]["discovery_seconds"].as_f64().unwrap();
    assert!(discovery < 0.6, "discovery took {discovery} s");
    // The live hosts are scanned as before.
    for host in 10..20 {
        assert!(out.contains(&format!("198.18.0.{host}: open 22")), "{out}");
    }
}

#[test]
fn no_neighbour_request_for_an_address_the_scope_does_not_cover() {
    let lab = Lab::new();
    let dir = tempfile::tempdir().unwrap();
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/scopes/lab.toml")).unwrap();
    let scope = dir.path().join("deny.toml");
    std::fs::write(
        &scope,
        format!("{text}\n[[deny]]\ntargets = [\"198.18.0.15\", \"198.18.0.30\"]\n"),
    )
    .unwrap();
    let capture = dir.path().join("target.pcap");
    let tshark = lab.capture_target_side("vt", &capture);
    // Mixed in: the whole run is refused, nothing is sent at all.
    let (code, _, err) = lab.sonde(&[
        "scan",
        "--scope",
        scope.to_str().unwrap(),
        "198.18.0.8-198.18.0.40",
        "-p",
        "22",
    ]);
    assert_eq!(code, 3, "{err}");
    // Left out: everything else is asked about and probed, they are not.
    let (code, out, err) = lab.sonde(&[
        "scan",
        "--scope",
        scope.to_str().unwrap(),
        "198.18.0.8-198.18.0.14",
        "198.18.0.16-198.18.0.29",
        "198.18.0.31-198.18.0.40",
        "-p",
        "22",
        "--wait",
        "0.3",
    ]);
    tshark.stop();
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("198.18.0.16: open 22"), "{out}");
    for denied in ["198.18.0.15", "198.18.0.30"] {
        assert_eq!(
            tshark_count(&capture, &format!("arp.dst.proto_ipv4=={denied}")),
            0,
            "{denied}"
        );
        assert_eq!(tshark_count(&capture, &format!("ip.dst=={denied}")), 0);
    }
    assert!(tshark_count(&capture, "arp.dst.proto_ipv4==198.18.0.16") >= 1);
}

#[test]
fn on_link_ipv6_hosts_are_resolved_by_neighbour_solicitation() {
    let lab = Lab::new();
    let dir = tempfile::tempdir().unwrap();
    let capture = dir.path().join("target.pcap");
    let tshark = lab.capture_target_side("vt", &capture);
    let run = dir.path().join("run");
    let (code, out, err) = lab.sonde(&[
        "scan",
        "--scope",
        "scopes/lab.toml",
        "2001:db8::1",
        "2001:db8::5",
        "-p",
        "22",
        "--wait",
        "0.3",
        "-o",
        run.to_str().unwrap(),
    ]);
    tshark.stop();
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("2001:db8::1: open 22"), "{out}");
    assert!(
        out.contains("1 hosts down (no-nd-reply, not probed): 2001:db8::5"),
        "{out}"
    );
    let r = report_json(&run.join("report.json"));
    assert_eq!(r["neighbour_discovery"]["down"][0]["reason"], "no-nd-reply");
    // Three solicitations for the silent one, each to its solicited-node group.
    assert_eq!(
        tshark_count(
            &capture,
            "icmpv6.type==135 && icmpv6.nd.ns.target_address==2001:db8::5 && ipv6.dst==ff02::1:ff00:5"
        ),
        3
    );
    assert_eq!(tshark_count(&capture, "ipv6.dst==2001:db8::5"), 0);
}

/// Rate honesty (issue 15): a rate one sending thread cannot reach is said
/// once on stderr and recorded, with the stage that held it back.
#[test]
fn a_rate_the_senders_cannot_reach_is_reported_with_its_stage() {
    use std::io::Read;
    let lab = Lab::new();
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let mut child = lab
        .sonde_command()
        .args([
            "scan",
            "--scope",
            "scopes/lab.toml",
            "198.18.1.0/24",
            "-p-",
            "--rate",
            "2000000",
            "--senders",
            "1",
            "--wait",
            "0.3",
            "-o",
            run.to_str().unwrap(),
        ])
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let mut buf = [0u8; 256];
        while let Ok(n) = stderr.read(&mut buf) {
            if n == 0 {
                break;
            }
            text.push_str(&String::from_utf8_lossy(&buf[..n]));
            // The whole line: it may arrive in pieces.
            if text
                .find("below 90%")
                .is_some_and(|at| text[at..].contains('\n'))
            {
                break;
            }
        }
        (text, stderr)
    });
    let started = std::time::Instant::now();
    while !reader.is_finished() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "no shortfall reported"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let (text, _stderr) = reader.join().unwrap();
    assert!(text.contains("the limit is the sending threads"), "{text}");
    let _ = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    child.wait().unwrap();
    let r = report_json(&run.join("report.json"));
    let short = &r["rate"]["shortfall"];
    assert_eq!(short["stage"], "sender-cpu", "{short}");
    assert_eq!(short["requested"], 2_000_000.0);
    assert!(short["achieved"].as_f64().unwrap() < 1_800_000.0);
    let audit = std::fs::read_to_string(run.join("audit.jsonl")).unwrap();
    assert!(audit.contains("\"event\":\"rate_shortfall\""), "{audit}");
}

/// craft --send to a host on the link that the kernel has not resolved:
/// sonde asks for its MAC itself, under the gate, then sends the frame; an
/// absent host is an error and gets nothing.
#[test]
fn craft_resolves_an_on_link_destination_itself() {
    let lab = Lab::new();
    let dir = tempfile::tempdir().unwrap();
    let capture = dir.path().join("target.pcap");
    let tshark = lab.capture_target_side("vt", &capture);
    let (code, out, err) = lab.sonde(&[
        "craft",
        "ip(dst=198.18.0.12)/tcp(dport=22,flags=S)",
        "--send",
        "--scope",
        "scopes/lab.toml",
        "--wait",
        "0.5",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("ip=198.18.0.12") && out.contains("flags=SA"),
        "{out}"
    );
    let (code, out, err) = lab.sonde(&[
        "craft",
        "ip(dst=198.18.0.50)/tcp(dport=22,flags=S)",
        "--send",
        "--scope",
        "scopes/lab.toml",
        "--wait",
        "0.2",
    ]);
    tshark.stop();
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("198.18.0.50 (the next hop to 198.18.0.50) answered no ARP request"),
        "{err}"
    );
    assert_eq!(
        tshark_count(&capture, "arp.opcode==1 && arp.dst.proto_ipv4==198.18.0.50"),
        3
    );
    assert_eq!(tshark_count(&capture, "ip.dst==198.18.0.50"), 0);
    assert!(tshark_count(&capture, "arp.opcode==1 && arp.dst.proto_ipv4==198.18.0.12") >= 1);
}
