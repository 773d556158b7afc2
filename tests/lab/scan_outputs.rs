//! Outputs other tools import (issue 16): a lab scan of open, closed,
//! filtered and silent hosts written with -oX, -oG, -oL and -oJ. The XML
//! validates against Debian nmap's nmap.dtd, renders with nmap.xsl, and
//! python-libnmap reads exactly the lab's open ports from it; the
//! greppable and list files parse back to the same set; `sonde report
//! RUN_DIR --format ...` makes the same files again.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::Path;
use std::process::Command;

use support::lab::*;

const PORTS: [u16; 6] = [22, 23, 80, FILTERED_ICMP, OPEN_ON_WEB_HOST, FILTERED_DROP];

/// 198.18.1.1-20 (up; .9 drops pings, .10 has 8080 open, .11 rejects
/// 3306) and 198.18.1.200-205 (routed, silent: down).
fn targets() -> Vec<IpAddr> {
    (1..=20u8)
        .chain(200..=205)
        .map(|i| IpAddr::from([198, 18, 1, i]))
        .collect()
}

fn truth_open(lab: &Lab) -> BTreeSet<(IpAddr, u16)> {
    let mut open = BTreeSet::new();
    for ip in targets() {
        for p in PORTS {
            if lab.truth.tcp(ip, p) == PortState::Open {
                open.insert((ip, p));
            }
        }
    }
    open
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn port_list() -> String {
    PORTS.map(|p| p.to_string()).join(",")
}

#[test]
fn nmap_xml_greppable_and_list_outputs_hold_exactly_the_open_ports() {
    let lab = Lab::new();
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    let file = |name: &str| dir.path().join(name).display().to_string();
    let ports = port_list();
    let (code, out, err) = lab.sonde(&[
        "scan",
        "--scope",
        "scopes/lab.toml",
        "198.18.1.1-20",
        "198.18.1.200-205",
        "-p",
        &ports,
        "--probe",
        "syn,icmp",
        "--wait",
        "0.5",
        "-oX",
        &file("scan.xml"),
        "-oG",
        &file("scan.gnmap"),
        "-oL",
        &file("scan.lst"),
        "-oJ",
        &file("scan.ndjson"),
        "-o",
        run_dir.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let truth = truth_open(&lab);
    assert_eq!(
        truth.len(),
        20 * 2 + 1,
        "22 and 80 on every up host, 8080 on one"
    );

    // nmap's DTD and stylesheet, from Debian's nmap package.
    let xml = file("scan.xml");
    run(Command::new("xmllint").args(["--noout", "--dtdvalid", "/usr/share/nmap/nmap.dtd", &xml]));
    let html = run(Command::new("xsltproc").args(["/usr/share/nmap/nmap.xsl", &xml]));
    assert!(
        html.contains("198.18.1.10") && html.contains("8080"),
        "{html}"
    );

    // python-libnmap, as DefectDojo-style importers read it.
    let libnmap = run(Command::new("/usr/bin/python3").args([
        "-c",
        r#"
import sys
from libnmap.parser import NmapParser
r = NmapParser.parse_fromfile(sys.argv[1])
print("hosts", r.hosts_up, r.hosts_total)
for h in r.hosts:
    for port, proto in h.get_open_ports():
        print("open", h.address, port)
    for s in h.services:
        if s.state == "filtered":
            print("filtered", h.address, s.port, s.reason)
"#,
        &xml,
    ]));
    let mut from_xml = BTreeSet::new();
    let mut filtered = Vec::new();
    for line in libnmap.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        match f[0] {
            "open" => {
                from_xml.insert((f[1].parse().unwrap(), f[2].parse().unwrap()));
            }
            "filtered" => filtered.push(line.to_string()),
            _ => {}
        }
    }
    assert_eq!(from_xml, truth, "{libnmap}");
    // 20 hosts up (answered), 26 targets in all.
    assert!(libnmap.starts_with("hosts 20 26\n"), "{libnmap}");
    // No port is listed but the open ones: the rest is folded.
    assert_eq!(filtered, Vec::<String>::new(), "{libnmap}");
    let xml_text = std::fs::read_to_string(&xml).unwrap();
    // The ICMP-rejected port, folded with nmap's reason for it, on its host.
    let host_11 = xml_text
        .split("<host ")
        .find(|h| h.contains(&format!(r#"addr="{REJECT_HOST}""#)))
        .unwrap();
    assert!(
        host_11.contains(&format!(
            r#"<extrareasons reason="port-unreach" count="1" proto="tcp" ports="{FILTERED_ICMP}"/>"#
        )),
        "{host_11}"
    );
    // The dropped port got no answer anywhere: nmap's "filtered (no-response)".
    assert!(
        xml_text.contains(&format!(
            r#"<extrareasons reason="no-response" count="1" proto="tcp" ports="{FILTERED_DROP}"/>"#
        )),
        "{xml_text}"
    );

    // nmap's greppable lines, parsed as the usual scripts do.
    let mut from_grepable = BTreeSet::new();
    for line in std::fs::read_to_string(file("scan.gnmap")).unwrap().lines() {
        let Some(rest) = line.strip_prefix("Host: ") else {
            continue;
        };
        let ip: IpAddr = rest.split(' ').next().unwrap().parse().unwrap();
        if let Some(ports) = rest.split("Ports: ").nth(1) {
            for p in ports.split('\t').next().unwrap().split(", ") {
                let f: Vec<&str> = p.split('/').collect();
                if f[1] == "open" {
                    from_grepable.insert((ip, f[0].parse().unwrap()));
                }
            }
        }
    }
    assert_eq!(from_grepable, truth);

    // masscan's list.
    let list = std::fs::read_to_string(file("scan.lst")).unwrap();
    assert!(list.starts_with("#masscan\n") && list.ends_with("# end\n"));
    let from_list: BTreeSet<(IpAddr, u16)> = list
        .lines()
        .filter(|l| l.starts_with("open tcp "))
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f[3].parse().unwrap(), f[2].parse().unwrap())
        })
        .collect();
    assert_eq!(from_list, truth);
    // Echo replies too: every up host but the one that drops pings.
    assert_eq!(
        list.lines()
            .filter(|l| l.starts_with("open icmp 0 "))
            .count(),
        19
    );

    // -oJ is the run's result stream.
    assert_eq!(
        std::fs::read(file("scan.ndjson")).unwrap(),
        std::fs::read(run_dir.join("results.ndjson")).unwrap()
    );

    // Made again from the run directory: the same bytes.
    for (format, name) in [
        ("xml", "scan.xml"),
        ("grepable", "scan.gnmap"),
        ("list", "scan.lst"),
        ("ndjson", "scan.ndjson"),
    ] {
        let (code, again, err) =
            support::cli::sonde(&["report", run_dir.to_str().unwrap(), "--format", format]);
        assert_eq!(code, 0, "{err}");
        assert_eq!(
            again,
            std::fs::read_to_string(file(name)).unwrap(),
            "{format}"
        );
    }
    let (code, csv, err) =
        support::cli::sonde(&["report", run_dir.to_str().unwrap(), "--format", "csv"]);
    assert_eq!(code, 0, "{err}");
    assert!(csv.starts_with("target,protocol,port,probe,state,reason,"));
    assert!(
        csv.contains("198.18.1.10,tcp,8080,syn,open,syn-ack,http-proxy,"),
        "{csv}"
    );
    // The run still verifies: the exports live outside its evidence.
    let (code, out, _) = lab.sonde(&["verify", run_dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn xml_on_standard_output_moves_the_summary_to_standard_error() {
    let lab = Lab::new();
    let (code, out, err) = lab.sonde(&[
        "scan",
        "--scope",
        "scopes/lab.toml",
        "198.18.1.10",
        "-p",
        "22,8080",
        "--wait",
        "0.3",
        "-oX",
        "-",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("<?xml version=\"1.0\""), "{out}");
    assert!(out.trim_end().ends_with("</nmaprun>"), "{out}");
    assert!(err.contains("198.18.1.10: open 22,8080"), "{err}");
    assert!(err.contains("check it with: sonde verify"), "{err}");
}

#[test]
fn two_outputs_to_one_file_are_refused_before_anything_is_sent() {
    let (code, _, err) = support::cli::sonde(&[
        "scan",
        "--scope",
        "scopes/lab.toml",
        "198.18.1.10",
        "-oX",
        "-",
        "-oG",
        "-",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("the nmap XML and the greppable would both be written to -"),
        "{err}"
    );
}

#[test]
fn an_analysis_report_has_no_scan_results_to_export() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("analysis.json");
    std::fs::write(&report, r#"{"input": {}, "statistics": {}}"#).unwrap();
    let (code, _, err) =
        support::cli::sonde(&["report", report.to_str().unwrap(), "--format", "xml"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not a scan report"), "{err}");
    assert!(err.contains("give a scan's run directory"), "{err}");
    let (code, _, err) = support::cli::sonde(&[
        "report",
        Path::new("/nonexistent/run").to_str().unwrap(),
        "--format",
        "grepable",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("No such file"), "{err}");
}
