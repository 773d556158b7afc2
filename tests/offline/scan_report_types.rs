//! `docs/scan-report.schema.json` and the one definition of a scan report
//! (`sonde::results::ScanReport`) say the same thing (issue 25, item 2): a
//! report with every member set validates against the schema, names every
//! member the schema documents, and reads back as itself; a member either
//! one does not know is refused by both. Every lab test's report is also
//! read as the type, losslessly (tests/support/evidence.rs).

use std::collections::BTreeSet;

use serde_json::{Value, json};
use sonde::results::{
    DownHosts, DownReason, LimitingStage, MergeRecord, RateShortfall, ScanReport, ScanResult,
    SegmentCut, ShardRecord, StopPoint,
};

fn schema() -> Value {
    serde_json::from_str(include_str!("../../docs/scan-report.schema.json")).unwrap()
}

fn validator() -> jsonschema::Validator {
    let analysis: Value =
        serde_json::from_str(include_str!("../../docs/report.schema.json")).unwrap();
    let registry = jsonschema::Registry::new()
        .add(analysis["$id"].as_str().unwrap(), &analysis)
        .unwrap()
        .prepare()
        .unwrap();
    jsonschema::options()
        .with_registry(&registry)
        .build(&schema())
        .expect("a valid JSON Schema")
}

fn errors(v: &jsonschema::Validator, doc: &Value) -> Vec<String> {
    v.iter_errors(doc)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect()
}

/// A report with every optional member set: a merge, a cut segment, a
/// rate shortfall, hosts down, every kind of result.
fn maximal() -> ScanReport {
    let mut r = ScanReport::example();
    r.rate.shortfall = Some(RateShortfall {
        requested: 1000.0,
        achieved: 700.0,
        stage: LimitingStage::Pacing,
        after_seconds: 5.0,
    });
    r.neighbour_discovery.down.push(DownHosts {
        reason: DownReason::NoArpReply,
        count: 2,
        addresses: vec!["198.18.1.11-198.18.1.12".into()],
    });
    r.max_probes = Some(100);
    r.scope_stopped = Some("the budget".into());
    r.output_error = Some("disk full".into());
    r.parameters.interface = Some("veth0".into());
    r.parameters.source_ip = Some("198.18.0.1".parse().unwrap());
    r.parameters.exclude = vec!["198.18.1.99".into()];
    r.capture_analysis_cost = Some(sonde::results::AnalysisCost {
        frames: 12,
        wall_seconds: 0.01,
        cpu_seconds: 0.01,
    });
    let mut cut = r.segments[0].clone();
    cut.cut = Some(SegmentCut {
        at: "2026-12-07T06:00:01Z".into(),
        checkpoint: Some(1),
    });
    cut.stopped_at = Some(StopPoint {
        pass: 0,
        kind: 0,
        next: vec![Some(3), None],
    });
    r.segments.insert(0, cut);
    r.segments[1].segment = 2;
    r.unanswered.insert(sonde::scope::ProbeKind::Syn, 1);
    r.merge = Some(MergeRecord {
        manifest: "merge.json".into(),
        shards: vec![ShardRecord {
            shard: "1/1".into(),
            run_directory: "/runs/a".into(),
            report_sha256: "0".repeat(64),
            audit_head: "0".repeat(64),
            pcap_sha256: Some("0".repeat(64)),
            started: r.started.clone(),
            finished: r.finished.clone(),
            host: "lab".into(),
            operator: "tester".into(),
            probes: 6,
            rate: r.rate.clone(),
        }],
    });
    // Every state a result has, with every member it can carry.
    let t = r.hosts[0].address;
    let one = |json: Value| -> ScanResult { serde_json::from_value(json).unwrap() };
    r.hosts[0].results.extend([
        one(
            json!({"target": t, "port": 3306, "probe": "syn", "service": "mysql",
                   "state": "filtered", "icmp_type": 3, "icmp_code": 13, "ttl": 63,
                   "rtt_us": 90, "time": "2026-12-07T06:00:01Z"}),
        ),
        one(
            json!({"target": t, "probe": "dns", "question": "example.com:A",
                   "service": "domain", "state": "dns_answer", "rcode": 0, "answers": 1,
                   "recursion_available": true, "ttl": 64, "time": "2026-12-07T06:00:01Z"}),
        ),
    ]);
    // A service with every member: TLS with a certificate, HTTP inside.
    r.hosts[0].services.push(
        serde_json::from_value(json!({
            "target": t, "port": 53, "protocol": "udp", "probe": "service", "service": "domain",
            "product": "dnsmasq", "version": "2.90", "method": "probed", "conf": 10,
            "banner": "dnsmasq-2.90", "connections": 0, "bytes_read": 60,
            "time": "2026-12-07T06:00:01Z"
        }))
        .unwrap(),
    );
    r.hosts[0].services.push(
        serde_json::from_value(json!({
            "target": t, "port": 443, "probe": "service", "service": "http",
            "product": "nginx", "version": "1.22.1", "extrainfo": "Debian",
            "hostname": "www.lab", "cpe": "cpe:/a:f5:nginx:1.22.1", "tunnel": "ssl",
            "method": "probed", "conf": 10, "banner": "HTTP/1.1 200 OK\\r\\n",
            "http": {"status": 301, "reason": "Moved Permanently", "server": "nginx/1.22.1",
                     "location": "https://elsewhere.example/", "title": "Moved"},
            "tls": {"version": "TLSv1.3", "cipher": "TLS13_AES_256_GCM_SHA384", "alpn": "http/1.1",
                    "chain": [{"subject": "CN=www.lab", "issuer": "CN=www.lab",
                               "subject_alt_names": ["www.lab"], "serial": "1234",
                               "not_before": "2026-12-07T00:00:00Z", "not_after": "2027-12-07T00:00:00Z",
                               "days_left": 365, "key_type": "RSA", "key_bits": 2048,
                               "signature_algorithm": "sha256WithRSAEncryption", "self_signed": true,
                               "sha256": "0".repeat(64)}]},
            "error": "read: connection reset",
            "findings": [{"kind": "self_signed_certificate", "severity": "medium", "summary": "self-signed"}],
            "connections": 2, "bytes_read": 512,
            "time": "2026-12-07T06:00:01Z"
        }))
        .unwrap(),
    );
    r
}

#[test]
fn a_report_with_every_member_set_validates_and_reads_back_as_itself() {
    let r = maximal();
    let doc = serde_json::to_value(&r).unwrap();
    let v = validator();
    assert_eq!(errors(&v, &doc), Vec::<String>::new());
    let back: ScanReport = serde_json::from_value(doc.clone()).unwrap();
    assert_eq!(serde_json::to_value(&back).unwrap(), doc);
    // The small example too.
    let small = serde_json::to_value(ScanReport::example()).unwrap();
    assert_eq!(errors(&v, &small), Vec::<String>::new());
}

/// Every member the schema documents (objects' `properties`, through
/// arrays, `$defs` references and `oneOf` branches), as `a.b[].c` paths,
/// that `doc` does not have.
fn undocumented_in(
    schema: &Value,
    node: &Value,
    doc: &Value,
    path: &str,
    out: &mut BTreeSet<String>,
) {
    if let Some(r) = node["$ref"]
        .as_str()
        .and_then(|r| r.strip_prefix("#/$defs/"))
    {
        return undocumented_in(schema, &schema["$defs"][r], doc, path, out);
    }
    for branch in node["oneOf"].as_array().into_iter().flatten() {
        if branch["type"] == "object" && doc.is_object() {
            undocumented_in(schema, branch, doc, path, out);
        }
    }
    if let Some(items) = node.get("items")
        && let Some(elements) = doc.as_array()
    {
        // A member of the items' schema is named if any element has it.
        let mut missing_in_all: Option<BTreeSet<String>> = None;
        for e in elements {
            let mut m = BTreeSet::new();
            undocumented_in(schema, items, e, &format!("{path}[]"), &mut m);
            missing_in_all = Some(match missing_in_all {
                None => m,
                Some(all) => all.intersection(&m).cloned().collect(),
            });
        }
        out.extend(missing_in_all.unwrap_or_default());
    }
    for (k, sub) in node["properties"].as_object().into_iter().flatten() {
        let here = if path.is_empty() {
            k.clone()
        } else {
            format!("{path}.{k}")
        };
        match doc.get(k) {
            Some(d) => undocumented_in(schema, sub, d, &here, out),
            None => {
                out.insert(here);
            }
        }
    }
}

#[test]
fn the_type_writes_every_member_the_schema_documents() {
    let schema = schema();
    let doc = serde_json::to_value(maximal()).unwrap();
    let mut missing = BTreeSet::new();
    undocumented_in(&schema, &schema, &doc, "", &mut missing);
    assert!(
        missing.is_empty(),
        "the schema documents members ScanReport never writes: {missing:?}"
    );
}

#[test]
fn a_member_neither_knows_is_refused_by_both() {
    let v = validator();
    let base = serde_json::to_value(maximal()).unwrap();
    for pointer in [
        "",
        "/scope",
        "/parameters",
        "/counters",
        "/rate",
        "/identity",
        "/segments/0",
        "/hosts/0",
        "/hosts/0/results/0",
        "/hosts/0/services/0",
        "/hosts/0/services/1/tls",
        "/hosts/0/services/1/tls/chain/0",
        "/hosts/0/services/1/http",
        "/hosts/0/services/1/findings/0",
        "/merge/shards/0",
    ] {
        let mut doc = base.clone();
        doc.pointer_mut(pointer)
            .unwrap_or_else(|| panic!("{pointer}"))
            .as_object_mut()
            .unwrap()
            .insert("surprise".into(), json!(1));
        assert!(
            !v.is_valid(&doc),
            "the schema takes a surprise at {pointer:?}"
        );
        assert!(
            serde_json::from_value::<ScanReport>(doc).is_err(),
            "the type takes a surprise at {pointer:?}"
        );
    }
}
