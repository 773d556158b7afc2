//! Every report sonde writes validates against docs/report.schema.json: the
//! whole corpus, with every flow listed, and captures that raise every kind
//! of finding.

use std::path::PathBuf;

use sonde::analyze::flows::FlowListing;
use sonde::analyze::{AnalyzeOptions, analyze};

fn validator() -> jsonschema::Validator {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/report.schema.json"
    ))
    .unwrap();
    let schema: serde_json::Value = serde_json::from_str(&text).expect("the schema is JSON");
    jsonschema::validator_for(&schema).expect("the schema is a valid JSON Schema")
}

#[test]
fn every_corpus_report_matches_the_schema() {
    let v = validator();
    let corpus = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus");
    let opts = AnalyzeOptions {
        flows: FlowListing::All,
        ..AnalyzeOptions::default()
    };
    let mut kinds = std::collections::BTreeSet::new();
    let mut checked = 0;
    let mut files = Vec::new();
    for dir in std::fs::read_dir(&corpus).unwrap() {
        let dir = dir.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(&dir).unwrap() {
            files.push(f.unwrap().path());
        }
    }
    // The repository's own capture with TLS handshakes (tests/offline/analyze_tls.rs).
    files.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/tls_loopback.pcap"));
    {
        for f in files {
            let report = analyze(std::slice::from_ref(&f), &opts).unwrap();
            let json = serde_json::to_value(&report).unwrap();
            let errors: Vec<String> = v
                .iter_errors(&json)
                .map(|e| format!("{} at {}", e, e.instance_path()))
                .collect();
            assert!(errors.is_empty(), "{}: {errors:#?}", f.display());
            for a in &report.anomalies {
                kinds.insert(a.kind);
            }
            checked += 1;
        }
    }
    assert!(checked >= 30, "{checked} files");
    assert_eq!(
        kinds.len(),
        5,
        "the corpus should exercise every finding kind: {kinds:?}"
    );
}

#[test]
fn the_schema_rejects_what_it_should() {
    let v = validator();
    let corpus = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/corpus/syn/synflood-spoofed.pcap");
    let mut json =
        serde_json::to_value(analyze(&[corpus], &AnalyzeOptions::default()).unwrap()).unwrap();
    assert!(v.is_valid(&json));
    json["anomalies"][0]["kind"] = "made_up".into();
    assert!(!v.is_valid(&json));
    json["anomalies"][0]["kind"] = "syn_flood".into();
    json["surprise"] = 1.into();
    assert!(!v.is_valid(&json));
}
