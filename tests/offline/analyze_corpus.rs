//! `sonde analyze` agrees with tshark on the shared corpus of real captures.
//! Expected values: tests/corpus/expected.tsv, made by tests/corpus/expected.sh
//! (the command is in that script's header).

use std::path::PathBuf;

use sonde::analyze::{AnalyzeOptions, analyze};

fn corpus() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus");
    assert!(
        dir.is_dir(),
        "the shared capture corpus is missing at {}",
        dir.display()
    );
    dir
}

#[test]
fn counts_match_tshark_for_every_corpus_file() {
    let expected = include_str!("../corpus/expected.tsv");
    let mut lines = expected.lines();
    let header: Vec<&str> = lines.next().unwrap().split('\t').collect();
    let mut mismatches = Vec::new();
    let mut files = 0;
    for line in lines {
        let cols: Vec<&str> = line.split('\t').collect();
        let file = cols[0];
        let report = analyze(&[corpus().join(file)], &AnalyzeOptions::default())
            .unwrap_or_else(|e| panic!("{file}: {}", e.message));
        assert!(
            report.warnings.is_empty() || file.starts_with("malformed/"),
            "{file}: {:?}",
            report.warnings
        );
        files += 1;
        for (name, want) in header.iter().zip(&cols).skip(1) {
            let want: u64 = want.parse().unwrap();
            let got = match *name {
                "frames" => report.stats.summary.packets,
                "tcp_convs" => report.stats.summary.tcp_conversations as u64,
                "udp_convs" => report.stats.summary.udp_conversations as u64,
                proto => report.stats.protocols.get(proto).map_or(0, |c| c.packets),
            };
            if got != want {
                mismatches.push(format!("{file}: {name}: sonde {got}, tshark {want}"));
            }
        }
    }
    assert!(files >= 30, "only {files} corpus files listed");
    assert!(
        mismatches.is_empty(),
        "differences from tshark:\n{}",
        mismatches.join("\n")
    );
}

fn report(file: &str, opts: &AnalyzeOptions) -> sonde::analyze::Report {
    analyze(&[corpus().join(file)], opts).unwrap_or_else(|e| panic!("{file}: {}", e.message))
}

/// What shared/corpus/README.md says a good analysis reports.
#[test]
fn attack_captures_yield_their_findings() {
    let opts = AnalyzeOptions::default();
    let found = |file: &str, kind: &str, subtype: Option<&str>| {
        let r = report(file, &opts);
        let hit = r
            .anomalies
            .iter()
            .find(|a| a.kind == kind && (subtype.is_none() || a.subtype == subtype));
        assert!(
            hit.is_some(),
            "{file}: no {kind} {subtype:?} in {:?}",
            r.anomalies.iter().map(|a| &a.summary).collect::<Vec<_>>()
        );
        hit.unwrap().clone()
    };
    for f in [
        "dns-tunnel/dns2tcp.pcap",
        "dns-tunnel/dnscat2.pcap",
        "dns-tunnel/iodine.pcap",
        "dns-tunnel/sods.pcap",
    ] {
        let a = found(f, "dns_tunneling", None);
        assert!(
            a.domain.is_some() && a.evidence["score"] >= 0.5,
            "{f}: {a:?}"
        );
    }
    let flood = found("syn/synflood-spoofed.pcap", "syn_flood", None);
    assert_eq!(
        (flood.destinations.as_slice(), flood.ports.as_slice()),
        (&["10.10.10.10".to_string()][..], &[25565][..])
    );
    assert_eq!(flood.evidence["synacks"], 0.0);
    assert!(
        flood.evidence["distinct_sources"] > 37_000.0,
        "{:?}",
        flood.evidence
    );
    let scan = found("scan/synscan.pcapng", "port_scan", Some("vertical"));
    assert_eq!(scan.scan_type, Some("syn"));
    // nmap's 1,000 ports: counted exactly up to 256 per pair (memory stays
    // bounded on a /16 scan's capture), then estimated: 1,000 distinct
    // destination ports (tshark -r synscan.pcapng -Y "tcp.flags==0x002"
    // -T fields -e tcp.dstport | sort -u | wc -l), within a few percent.
    assert_eq!(
        scan.evidence["distinct_targets"], 256.0,
        "{:?}",
        scan.evidence
    );
    let est = scan.evidence["distinct_targets_estimated"];
    assert!((970.0..=1030.0).contains(&est), "estimated {est}");
    assert!(
        scan.summary.contains("(estimated; 256 counted exactly)"),
        "{}",
        scan.summary
    );
    assert_eq!(
        found("syn/mmt-28.xmas_can.pcap", "port_scan", None).scan_type,
        Some("xmas")
    );
    found(
        "frag/mmt-21.ip_frag_off.pcap",
        "ip_fragmentation",
        Some("overlap"),
    );
    found(
        "frag/mmt-21.ip_frag_off.pcap",
        "malformed_header",
        Some("tcp_data_offset"),
    );
    found(
        "frag/mmt-9.ip_frag_min_size.pcap",
        "ip_fragmentation",
        Some("tiny_first_fragment"),
    );
    found(
        "malformed/mmt-11.ip_size.pcap",
        "malformed_header",
        Some("truncated"),
    );
}

#[test]
fn ordinary_captures_yield_no_attack() {
    let opts = AnalyzeOptions::default();
    let mut files: Vec<String> = std::fs::read_dir(corpus().join("normal"))
        .unwrap()
        .map(|e| format!("normal/{}", e.unwrap().file_name().to_string_lossy()))
        .collect();
    files.push("frag/ip_frag_source.pcapng".into());
    files.push("frag/ipv6_fragments.pcapng".into());
    assert!(files.len() >= 14);
    for f in files {
        let r = report(&f, &opts);
        for a in &r.anomalies {
            assert!(
                ![
                    "syn_flood",
                    "dns_tunneling",
                    "ip_fragmentation",
                    "port_scan",
                    // ARP resolution, DHCP and neighbour solicitation
                    // captures: ordinary ARP is no poisoning (issue 18).
                    "arp_spoofing",
                    "reflection",
                    "os_fingerprinting"
                ]
                .contains(&a.kind),
                "{f}: unexpected {}: {}",
                a.kind,
                a.summary
            );
        }
    }
}

#[test]
fn flow_summaries_show_what_the_corpus_holds() {
    let opts = AnalyzeOptions {
        flows: sonde::analyze::flows::FlowListing::All,
        ..AnalyzeOptions::default()
    };
    let flows = |f: &str| report(f, &opts).flows.list;
    assert_eq!(
        flows("syn/mmt-3.SYNwithoutACK.pcap")[0].handshake,
        Some("syn_only")
    );
    assert!(
        flows("syn/mmt-13.data_in_SYN.pcap")[0]
            .notes
            .contains(&"data_in_syn".to_string())
    );
    let rst = flows("malformed/mmt-7.invalid_tcp_rst.pcap");
    assert!(rst.iter().any(|f| f.closed_by == Some("rst")), "{rst:?}");
    let two = flows("syn/mmt-16.two_successive_SYN.pcap");
    assert_eq!(two.len(), 2);
    assert!(
        two.iter()
            .all(|f| f.tcp_flags_client.as_deref() == Some("S"))
    );
    let web = flows("normal/http_google.pcapng");
    assert_eq!(
        (web[0].handshake, web[0].app_protocol),
        (Some("complete"), Some("http"))
    );
    let r = report("normal/http_google.pcapng", &opts);
    assert_eq!(r.http.hosts[0].value, "www.google.com");
    let r = report("dns-tunnel/iodine.pcap", &opts);
    assert!(
        r.dns.query_types.contains_key("NULL"),
        "{:?}",
        r.dns.query_types
    );
}

/// Issue 18: TCP analysis. Every corpus file's retransmissions (fast and
/// spurious among them), duplicate ACKs, out-of-order segments, segments
/// not captured, ACKs of segments not captured, zero windows and
/// keep-alives equal tshark's tcp.analysis flags
/// (tests/corpus/expected_tcp.sh produced expected_tcp.tsv).
#[test]
fn tcp_analysis_equals_tshark_on_every_corpus_file() {
    let expected = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/expected_tcp.tsv"),
    )
    .unwrap();
    let opts = AnalyzeOptions::default();
    let fields = [
        "retransmissions",
        "fast_retransmissions",
        "spurious_retransmissions",
        "duplicate_acks",
        "out_of_order",
        "lost_segments",
        "acked_unseen_segments",
        "zero_windows",
        "keep_alives",
    ];
    let mut files = 0;
    for line in expected.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        let r = serde_json::to_value(report(cols[0], &opts)).unwrap();
        for (i, field) in fields.iter().enumerate() {
            assert_eq!(
                r["tcp_analysis"][field].as_u64().unwrap(),
                cols[i + 1].parse::<u64>().unwrap(),
                "{}: {field}",
                cols[0]
            );
        }
        files += 1;
    }
    assert!(files >= 30, "{files}");
}

/// Issue 18: TCP analysis per flow. Each connection's events in its flow
/// summary equal tshark's flags on that connection
/// (tests/corpus/expected_tcp_flows.sh produced expected_tcp_flows.tsv),
/// and no other flow lists any.
#[test]
fn per_flow_tcp_analysis_equals_tshark_per_connection() {
    use std::collections::BTreeMap;
    let expected = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/corpus/expected_tcp_flows.tsv"),
    )
    .unwrap();
    // file → (endpoint, endpoint, field) → count
    let mut want: BTreeMap<String, BTreeMap<(String, String, String), u64>> = BTreeMap::new();
    for line in expected.lines() {
        let c: Vec<&str> = line.split('\t').collect();
        // tshark's flag names, as the report names its fields
        let field = match c[3] {
            "ack_lost_segment" => "acked_unseen_segments".to_string(),
            "out_of_order" => "out_of_order".to_string(),
            f => format!("{f}s"),
        };
        want.entry(c[0].to_string()).or_default().insert(
            (c[1].to_string(), c[2].to_string(), field),
            c[4].parse().unwrap(),
        );
    }
    assert!(want.len() >= 6, "{want:?}");
    let opts = AnalyzeOptions {
        flows: sonde::analyze::flows::FlowListing::All,
        ..AnalyzeOptions::default()
    };
    for (file, want) in want {
        let r = serde_json::to_value(report(&file, &opts)).unwrap();
        let mut got = BTreeMap::new();
        for f in r["flows"]["list"].as_array().unwrap() {
            let Some(events) = f["tcp_analysis"].as_object() else {
                continue;
            };
            let (a, b) = (
                f["client"].as_str().unwrap().to_string(),
                f["server"].as_str().unwrap().to_string(),
            );
            let (a, b) = if b < a { (b, a) } else { (a, b) };
            for (field, n) in events {
                let n = n.as_u64().unwrap();
                if n > 0 {
                    *got.entry((a.clone(), b.clone(), field.clone()))
                        .or_insert(0) += n;
                }
            }
        }
        assert_eq!(got, want, "{file}");
    }
}

/// Issue 27: connection identity and the sequence rules, as tshark 4.0 has
/// them. A new SYN with another initial sequence number on the same ports
/// starts a new connection (34 reused-port connections were merged into
/// earlier ones, with false retransmissions and lost segments); data the
/// receiver acknowledged is a spurious retransmission however soon it comes;
/// out of order is judged against the highest segment's time and the
/// initial round trip; an ACK of a segment the capture missed counts once
/// per hole. tests/corpus/make_tcp_identity.py wrote the capture;
/// tests/corpus/expected_tcp_identity.sh (tshark) the expected values.
#[test]
fn tcp_connection_identity_and_sequence_rules_equal_tshark() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let expected = std::fs::read_to_string(dir.join("expected_tcp_identity.tsv")).unwrap();
    let mut lines = expected.lines();
    let names: Vec<&str> = lines.next().unwrap().split('\t').collect();
    let values: Vec<u64> = lines
        .next()
        .unwrap()
        .split('\t')
        .map(|v| v.parse().unwrap())
        .collect();
    let r = serde_json::to_value(
        sonde::analyze::analyze(&[dir.join("tcp_identity.pcap")], &AnalyzeOptions::default())
            .unwrap_or_else(|e| panic!("{}", e.message)),
    )
    .unwrap();
    for (name, want) in names.iter().zip(values) {
        let got = match *name {
            "conversations" => r["flows"]["count"]["tcp"].as_u64(),
            "ack_lost_segment" => r["tcp_analysis"]["acked_unseen_segments"].as_u64(),
            "out_of_order" => r["tcp_analysis"]["out_of_order"].as_u64(),
            flag => r["tcp_analysis"][format!("{flag}s")].as_u64(),
        };
        assert_eq!(got, Some(want), "{name}");
    }
}
