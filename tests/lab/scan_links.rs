//! Every link the targets need, in one run (issue 25): the scanner's own
//! subnet (its own address goes over loopback, the rest over the veth),
//! and a target list mixing loopback, a lab host and `::1`. Exact against
//! the lab's ground truth.

use std::collections::BTreeSet;
use std::net::{IpAddr, TcpListener};

use support::evidence::{open_ports, report_json};
use support::lab::*;

/// A listener on port 22 of every address of the scanner's namespace (its
/// own address, 127.0.0.1 and ::1): the scanner host's own open port.
fn listen_on_the_scanner(lab: &Lab) -> TcpListener {
    lab.in_scanner(|| TcpListener::bind("[::]:22").expect("listen on the scanner's port 22"))
}

/// Regression (issue 25): `sonde scan 198.18.0.0/24` from 198.18.0.2 failed
/// with "the targets are reached through several interfaces (vs, lo)"
/// after creating its run directory. It is one run over both links, the
/// scanner's own address reported with its open port.
#[test]
fn the_scanners_own_subnet_is_scanned_in_one_run_own_address_included() {
    let lab = Lab::new();
    let _listener = listen_on_the_scanner(&lab);
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let (code, out, err) = lab.sonde(&[
        "scan",
        "--scope",
        "scopes/lab.toml",
        "198.18.0.0/24",
        "-p",
        "22,23",
        "--probe",
        "syn,icmp",
        "--rate",
        "50000",
        "-o",
        run.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let r = report_json(&run.join("report.json"));
    // The gateway (the target namespace's 198.18.0.1), the on-link hosts
    // and the scanner itself: port 22 open, nothing else.
    let mut expected: BTreeSet<(IpAddr, u64)> = (10..20u8)
        .map(|i| (format!("198.18.0.{i}").parse().unwrap(), 22))
        .collect();
    expected.insert((IpAddr::V4(GATEWAY_V4), 22));
    expected.insert((IpAddr::V4(SCANNER_V4), 22));
    assert_eq!(open_ports(&r), expected, "{out}");
    assert!(
        out.contains(&format!("{SCANNER_V4}: open 22; answers ping")),
        "{out}"
    );
    // Both links are in the report, each with its targets.
    let links = r["links"].as_array().expect("links in the report");
    let names: Vec<&str> = links
        .iter()
        .map(|l| l["interface"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["vs", "lo"], "{links:?}");
    assert_eq!(links[1]["targets"], serde_json::json!(["198.18.0.2"]));
    // Closed port 23 on every live host, the scanner's own among them.
    assert_eq!(support::evidence::folded(&r, "closed"), 12, "{r:#}");
    // The dry run shows which link each range uses.
    let (code, out, err) = lab.sonde(&[
        "scan",
        "--scope",
        "scopes/lab.toml",
        "198.18.0.0/24",
        "-p",
        "22,23",
        "--dry-run",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("198.18.0.2 via lo (through the kernel)"),
        "{out}"
    );
    assert!(
        out.contains("198.18.0.3-198.18.0.255 via vs (on-link"),
        "{out}"
    );
}

#[test]
fn loopback_a_lab_host_and_ipv6_loopback_in_one_target_list() {
    let lab = Lab::new();
    let _listener = listen_on_the_scanner(&lab);
    let dir = tempfile::tempdir().unwrap();
    // The lab's scope with loopback added.
    let scope = dir.path().join("scope.toml");
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/scopes/lab.toml")).unwrap();
    std::fs::write(
        &scope,
        text.replace(
            r#"targets = ["198.18.0.0/15", "2001:db8::/32"]"#,
            r#"targets = ["198.18.0.0/15", "2001:db8::/32", "127.0.0.1", "::1"]"#,
        ),
    )
    .unwrap();
    let run = dir.path().join("run");
    let (code, out, err) = lab.sonde(&[
        "scan",
        "--scope",
        scope.to_str().unwrap(),
        "127.0.0.1",
        &WEB_HOST_V4.to_string(),
        "::1",
        &WEB_HOST_V6.to_string(),
        "-p",
        &format!("22,{OPEN_ON_WEB_HOST},{FILTERED_DROP}"),
        "--rate",
        "10000",
        "-o",
        run.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let r = report_json(&run.join("report.json"));
    let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
    let expected: BTreeSet<(IpAddr, u64)> = [
        (ip("127.0.0.1"), 22),
        (ip("::1"), 22),
        (IpAddr::V4(WEB_HOST_V4), 22),
        (IpAddr::V4(WEB_HOST_V4), u64::from(OPEN_ON_WEB_HOST)),
        (IpAddr::V6(WEB_HOST_V6), 22),
        (IpAddr::V6(WEB_HOST_V6), u64::from(OPEN_ON_WEB_HOST)),
    ]
    .into_iter()
    .collect();
    assert_eq!(open_ports(&r), expected, "{out}");
    // Loopback's closed ports answer; the lab's dropped port does not.
    assert_eq!(support::evidence::folded(&r, "closed"), 4, "{r:#}");
    assert_eq!(r["unanswered"]["syn"], 2, "{r:#}");
    // The evidence verifies: one capture holds both links' packets.
    let (code, out, err) = lab.sonde(&["verify", run.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
}

/// Issue 25, item 5: with 5% of packets dropped each way on the target
/// side, default flags find every open port of the dense /24: retry passes
/// are added while they still find answers, and the report says so.
#[test]
fn retries_follow_the_loss_until_a_pass_finds_nothing_new() {
    let lab = Lab::new();
    // The target drops 5% of what comes in and 5% of what goes out.
    let drop = |chain: &str| {
        let ok = std::process::Command::new("ip")
            .args(["netns", "exec", &lab.target_ns, "iptables", "-I", chain])
            .args([
                "-m",
                "statistic",
                "--mode",
                "random",
                "--probability",
                "0.05",
            ])
            .args(["-j", "DROP"])
            .status()
            .unwrap()
            .success();
        assert!(ok, "iptables statistic in the target namespace");
    };
    drop("INPUT");
    drop("OUTPUT");
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let (code, out, err) = lab.sonde(&[
        "scan",
        "--scope",
        "scopes/lab.toml",
        "198.18.1.0/24",
        "-p",
        // 53 left out: dnsmasq's TCP port is not in the ground truth.
        "1-52,54-100,443,8080",
        "--rate",
        "50000",
        "-o",
        run.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let r = report_json(&run.join("report.json"));
    let truth = &lab.truth;
    let expected: BTreeSet<(IpAddr, u64)> = truth
        .up
        .iter()
        .filter(|ip| matches!(ip, IpAddr::V4(v) if v.octets()[..3] == [198, 18, 1]))
        .flat_map(|&ip| {
            (1..=100u16)
                .filter(|&p| p != 53)
                .chain([443, 8080])
                .filter(move |&p| truth.tcp(ip, p) == PortState::Open)
                .map(move |p| (ip, u64::from(p)))
        })
        .collect();
    let found = open_ports(&r);
    let missed: Vec<_> = expected.difference(&found).collect();
    let extra: Vec<_> = found.difference(&expected).collect();
    assert!(extra.is_empty(), "found beyond the ground truth: {extra:?}");
    // Recall at least 99.9%: with ~750 open ports, none missed.
    assert!(
        missed.len() * 1000 <= expected.len(),
        "missed {} of {}: {missed:?}; passes {}, counters {}",
        missed.len(),
        expected.len(),
        r["passes"],
        r["counters"]
    );
    let passes = &r["passes"];
    assert_eq!(passes["retries"], 1, "{passes}");
    assert_eq!(passes["max_retries"], 10, "{passes}");
    assert!(passes["added"].as_u64().unwrap() >= 1, "{passes}");
    // 5% each way loses about 10% of the round trips.
    let loss = passes["loss_estimate"].as_f64().unwrap();
    assert!((0.04..0.2).contains(&loss), "{passes}");
}

/// Without loss, one retry pass finds nothing new and none is added.
#[test]
fn a_lossless_link_gets_no_added_pass() {
    let lab = Lab::new();
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let (code, out, err) = lab.sonde(&[
        "scan",
        "--scope",
        "scopes/lab.toml",
        "198.18.1.0/26",
        "-p",
        "20-30",
        "--rate",
        "20000",
        "-o",
        run.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let r = report_json(&run.join("report.json"));
    assert_eq!(r["passes"]["added"], 0, "{}", r["passes"]);
    assert_eq!(r["passes"]["answers"][1]["results"], 0, "{}", r["passes"]);
}

/// A scan over two links (the scanner's own address over loopback, the
/// rest of its subnet over the veth) interrupted with SIGINT and resumed
/// ends with the ground truth on both links, and verifies.
#[test]
fn interrupted_and_resumed_across_links() {
    let lab = Lab::new();
    let _listener = listen_on_the_scanner(&lab);
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let child = lab
        .sonde_command()
        .args([
            "scan",
            "--scope",
            "scopes/lab.toml",
            "198.18.0.0/24",
            "-p",
            "1-2000",
            "--rate",
            "2000",
            "-o",
            run.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // 12 live hosts (the rest are down: no probe) x 2,000 ports at 2,000
    // pps: about 12 s; stopped after 2.
    std::thread::sleep(std::time::Duration::from_secs(2));
    let _ = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = report_json(&run.join("report.json"));
    assert!(!r["segments"][0]["stopped_at"].is_null(), "{r:#}");
    let (code, out, err) = lab.sonde(&["scan", "--resume", run.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    let r = report_json(&run.join("report.json"));
    // Ports 1-2000: 22, 80 and 443, the lab's open ones.
    let mut expected: BTreeSet<(IpAddr, u64)> = (10..20u8)
        .flat_map(|i| [22, 80, 443].map(|p| (format!("198.18.0.{i}").parse().unwrap(), p)))
        .collect();
    for p in [22, 80, 443] {
        expected.insert((IpAddr::V4(GATEWAY_V4), p));
    }
    expected.insert((IpAddr::V4(SCANNER_V4), 22));
    assert_eq!(open_ports(&r), expected);
    assert_eq!(r["segments"].as_array().unwrap().len(), 2, "{r:#}");
    let names: Vec<&str> = r["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["interface"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["vs", "lo"]);
    let (code, out, err) = lab.sonde(&["verify", run.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
}
