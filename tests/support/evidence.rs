//! Reading what a scan left: packet counts by tshark, the report checked
//! against its schema.

use std::path::Path;
use std::process::Command;

/// SYNs (without ACK) from `source` in `pcap`, per (destination, port),
/// as tshark reads them.
pub fn syns_per_target(
    pcap: &Path,
    source: &str,
) -> std::collections::BTreeMap<(String, String), u32> {
    let out = Command::new("tshark")
        .args([
            "-r",
            pcap.to_str().unwrap(),
            "-Y",
            &format!("ip.src=={source} && tcp.flags.syn==1 && tcp.flags.ack==0"),
            "-T",
            "fields",
            "-e",
            "ip.dst",
            "-e",
            "tcp.dstport",
        ])
        .stderr(std::process::Stdio::null())
        .output()
        .expect("tshark (the test command installs it)");
    let mut syns = std::collections::BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if let Some((a, b)) = line.split_once('\t') {
            *syns.entry((a.to_string(), b.to_string())).or_default() += 1;
        }
    }
    syns
}

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

/// A scan report, validated against docs/scan-report.schema.json and read
/// as the one definition (`sonde::results::ScanReport`), losslessly: the
/// typed report written again is the JSON the run wrote.
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
    let typed: sonde::results::ScanReport = serde_json::from_value(r.clone())
        .unwrap_or_else(|e| panic!("{} is not a ScanReport: {e}", path.display()));
    assert_eq!(
        serde_json::to_value(&typed).unwrap(),
        r,
        "{}: the typed report does not write back as read",
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

/// Edit a run's `report.json` with `edit` and make the run directory hold
/// together again as a forger would: the report's `file_written` record
/// gets the new hash and size, and the audit chain is recomputed from
/// there (the records before it, which the report anchors to, are
/// unchanged and keep their hashes).
pub fn edit_report_and_rechain(run: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = run.join("report.json");
    let mut r: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut r);
    replace_file_and_rechain(run, "report.json", &serde_json::to_vec_pretty(&r).unwrap());
}

/// Replace a run's member `name` with `bytes` as a forger would: its
/// `file_written` records get the new hash and size, the chain is
/// recomputed, and the report's anchor in it follows.
pub fn replace_file_and_rechain(run: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(run.join(name), bytes).unwrap();
    rewrite_written(run, name, bytes);
    if name != "report.json" {
        reanchor_report(run);
    }
}

/// Pass every audit record through `edit` and recompute the hash chain,
/// as a forger would; the report's anchor follows.
pub fn edit_records_and_rechain(run: &Path, edit: impl FnMut(&mut serde_json::Value)) {
    rechain(run, edit);
    reanchor_report(run);
}

fn rewrite_written(run: &Path, name: &str, bytes: &[u8]) {
    use sha2::Digest;
    let sha = hex::encode(sha2::Sha256::digest(bytes));
    rechain(run, |rec| {
        if rec["event"] == "file_written" && rec["path"] == name {
            rec["sha256"] = sha.clone().into();
            rec["size"] = (bytes.len() as u64).into();
        }
    });
}

/// The report names the head of the records before it: set it to the
/// chain as it now is.
fn reanchor_report(run: &Path) {
    let path = run.join("report.json");
    let Ok(bytes) = std::fs::read(&path) else {
        return;
    };
    let mut r: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let n = r["audit"]["records"].as_u64().unwrap() as usize;
    let text = std::fs::read_to_string(run.join("audit.jsonl")).unwrap();
    let before: String = text.lines().take(n).map(|l| format!("{l}\n")).collect();
    let (_, head) = sonde::evidence::verify_chain(&before);
    r["audit"]["head"] = head.into();
    let bytes = serde_json::to_vec_pretty(&r).unwrap();
    std::fs::write(&path, &bytes).unwrap();
    rewrite_written(run, "report.json", &bytes);
}

fn rechain(run: &Path, mut edit: impl FnMut(&mut serde_json::Value)) {
    let text = std::fs::read_to_string(run.join("audit.jsonl")).unwrap();
    let mut log = sonde::evidence::AuditLog::new(Vec::new());
    for line in text.lines() {
        let mut rec: serde_json::Value = serde_json::from_str(line).unwrap();
        edit(&mut rec);
        let serde_json::Value::Object(mut m) = rec else {
            unreachable!()
        };
        let event = m.remove("event").unwrap();
        let time = m.remove("time").unwrap();
        log.append(event.as_str().unwrap(), time.as_str().unwrap(), m)
            .unwrap();
    }
    std::fs::write(run.join("audit.jsonl"), log.into_inner()).unwrap();
}

/// tshark's `-T fields` of `pcap`: one line per packet, the fields joined
/// by `|`.
pub fn tshark_fields(pcap: &Path, fields: &[&str]) -> Vec<String> {
    let mut cmd = std::process::Command::new("tshark");
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
