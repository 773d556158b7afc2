//! Reading what a scan left: packet counts by tshark, the report checked
//! against its schema.
#![allow(dead_code)] // each test binary uses a different part

use std::path::Path;
use std::process::Command;

/// Packets of `pcap` matching the display filter, as tshark counts them.
pub fn tshark_count(pcap: &Path, filter: &str) -> usize {
    let out = Command::new("tshark")
        .args(["-r", pcap.to_str().unwrap(), "-Y", filter])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).lines().count()
}

/// A scan report, validated against docs/scan-report.schema.json.
pub fn report_json(path: &Path) -> serde_json::Value {
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../../docs/scan-report.schema.json")).unwrap();
    // capture_analysis refers to the analysis report's schema by its $id.
    let analysis: serde_json::Value =
        serde_json::from_str(include_str!("../../docs/report.schema.json")).unwrap();
    let registry = jsonschema::Registry::new()
        .add(analysis["$id"].as_str().unwrap(), &analysis)
        .unwrap()
        .prepare()
        .unwrap();
    let validator = jsonschema::options()
        .with_registry(&registry)
        .build(&schema)
        .expect("a valid JSON Schema");
    let text = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let r: serde_json::Value = serde_json::from_slice(&text).expect("the report is JSON");
    let errors: Vec<String> = validator
        .iter_errors(&r)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{} does not match the schema: {errors:#?}",
        path.display()
    );
    r
}

/// How many results of `state` a scan report folded into its hosts'
/// `not_shown` counts.
pub fn folded(report: &serde_json::Value, state: &str) -> u64 {
    report["hosts"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|h| h["not_shown"].as_array().into_iter().flatten())
        .filter(|f| f["state"] == state)
        .map(|f| f["count"].as_u64().unwrap())
        .sum()
}

/// The open (address, port) pairs a scan report's hosts hold.
pub fn open_ports(
    report: &serde_json::Value,
) -> std::collections::BTreeSet<(std::net::IpAddr, u64)> {
    report["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|h| h["results"].as_array().unwrap().iter())
        .filter(|r| r["state"] == "open")
        .map(|r| {
            (
                r["target"].as_str().unwrap().parse().unwrap(),
                r["port"].as_u64().unwrap(),
            )
        })
        .collect()
}
