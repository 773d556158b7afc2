//! `--evidence compact` in the lab: the pcap holds the replies only, the
//! sent-probe log rebuilds exactly the probes that reached the targets
//! (checked against a capture on the target side), `sonde verify` holds on
//! an intact run and names the record of a changed one.

use std::collections::BTreeMap;

use support::evidence::{report_json, tshark_count};
use support::lab::*;

/// IP packets from `src` in a capture taken on an Ethernet interface.
fn probes_captured(pcap: &std::path::Path, sources: &[&[u8]]) -> BTreeMap<Vec<u8>, usize> {
    let f = std::fs::File::open(pcap).unwrap();
    let mut r = sonde::pcap::reader::CaptureReader::new(f, "target side").unwrap();
    let mut out = BTreeMap::new();
    r.for_each_frame(|fr| {
        let Some(ip) = fr.data.get(14..) else { return };
        let src: &[u8] = match ip.first().map(|b| b >> 4) {
            Some(4) if ip.len() >= 20 => &ip[12..16],
            Some(6) if ip.len() >= 40 => &ip[8..24],
            _ => return,
        };
        if sources.contains(&src) {
            *out.entry(ip.to_vec()).or_insert(0) += 1;
        }
    })
    .unwrap();
    out
}

#[test]
fn compact_evidence_rebuilds_exactly_the_probes_the_targets_received() {
    let lab = Lab::new();
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let capture = dir.path().join("target-side.pcap");
    let tshark = lab.capture_target_side("vt", &capture);
    // Two sending threads (a stride of 2 in the log), a retry pass, both
    // families, SYN and echo probes.
    let (code, out, err) = lab.sonde(&[
        "scan",
        "--scope",
        "scopes/lab.toml",
        "198.18.1.0/28",
        "2001:db8:1::10",
        "-p",
        "22,23,80",
        "--probe",
        "syn,icmp",
        "--rate",
        "2000",
        "--senders",
        "2",
        "--retries",
        "1",
        "--wait",
        "1",
        "--evidence",
        "compact",
        "-o",
        run.to_str().unwrap(),
    ]);
    tshark.stop();
    assert_eq!(code, 0, "{out}{err}");
    let r = report_json(&run.join("report.json"));
    assert_eq!(r["parameters"]["evidence"], "compact");
    let roles: Vec<&str> = r["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["capture.pcap", "results.ndjson", "sent.jsonl"]);
    let audit = std::fs::read_to_string(run.join("audit.jsonl")).unwrap();
    assert!(audit.contains("\"evidence\":\"compact\""), "{audit}");

    // The pcap: replies, no probe.
    let pcap = run.join("capture.pcap");
    assert_eq!(
        tshark_count(&pcap, "ip.src==198.18.0.2 || ipv6.src==2001:db8::2"),
        0
    );
    let matched = r["counters"]["matched"].as_u64().unwrap();
    assert!(matched > 0);
    assert!(tshark_count(&pcap, "ip.dst==198.18.0.2 || ipv6.dst==2001:db8::2") as u64 >= matched);

    // The log rebuilds every probe sent, and they are byte for byte the
    // probes the targets' side captured (retries included: a multiset).
    let mut rebuilt: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
    let log = std::io::BufReader::new(std::fs::File::open(run.join("sent.jsonl")).unwrap());
    let replay = sonde::evidence::sent_log::replay_each(log, |p| {
        *rebuilt.entry(p.to_vec()).or_insert(0) += 1;
    })
    .unwrap();
    assert_eq!(replay.problems, Vec::<String>::new());
    let sent = r["counters"]["sent"].as_u64().unwrap();
    assert_eq!(replay.probes, sent);
    assert!(
        r["counters"]["retried"].as_u64().unwrap() > 0,
        "a retry pass ran"
    );
    let v4: [u8; 4] = [198, 18, 0, 2];
    let v6: [u8; 16] = "2001:db8::2"
        .parse::<std::net::Ipv6Addr>()
        .unwrap()
        .octets();
    let received = probes_captured(&capture, &[&v4, &v6]);
    // The target side also sees the scanner's neighbour solicitations and
    // its kernel's RSTs to SYN-ACKs; every SYN and echo request there is a
    // probe the log rebuilds, and back.
    let probes_only = |m: &BTreeMap<Vec<u8>, usize>| -> BTreeMap<Vec<u8>, usize> {
        m.iter()
            .filter(|(p, _)| {
                let (proto, l4) = if p[0] >> 4 == 4 {
                    (p[9], usize::from(p[0] & 0xf) * 4)
                } else {
                    (p[6], 40)
                };
                match proto {
                    6 => p.get(l4 + 13) == Some(&0x02),
                    1 => p.get(l4) == Some(&8),
                    58 => p.get(l4) == Some(&128),
                    _ => false,
                }
            })
            .map(|(p, n)| (p.clone(), *n))
            .collect()
    };
    assert_eq!(probes_only(&received), rebuilt);

    // verify: intact, then a changed record is named by its line.
    let (code, vout, verr) = lab.sonde(&["verify", run.to_str().unwrap()]);
    assert_eq!(code, 0, "{vout}{verr}");
    assert!(vout.contains("probes rebuilt"), "{vout}");
    let text = std::fs::read_to_string(run.join("sent.jsonl")).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut rec: serde_json::Value = serde_json::from_str(&lines[1]).unwrap();
    let first = rec["runs"][0][0].as_u64().unwrap();
    // Other positions of the same thread's share (stride 2), inside the
    // plan: the run moved back by one stride, or its first probe alone
    // moved forward.
    rec["runs"][0] = if first >= 2 {
        serde_json::json!([first - 2, rec["runs"][0][1]])
    } else {
        serde_json::json!([first + 2, 1])
    };
    lines[1] = rec.to_string();
    std::fs::write(run.join("sent.jsonl"), lines.join("\n") + "\n").unwrap();
    let (code, vout, _) = lab.sonde(&["verify", run.to_str().unwrap()]);
    assert_ne!(code, 0, "{vout}");
    // Named by its line: the rebuilt probes hash otherwise, or a moved
    // position names a target the record's source cannot reach.
    assert!(vout.contains("BROKEN    sent.jsonl: line 2: "), "{vout}");
}
