use super::*;

/// A scan report as sonde writes it: one host with open, closed (folded,
/// ports scattered), ICMP-filtered and unanswered ports; one that answered
/// ping only; one DNS server.
pub(crate) static REPORT: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| complete(PARTIAL));

/// `partial` over a complete report ([`ScanReport::example`]): the members
/// it names replace the example's (objects member by member).
pub(crate) fn complete(partial: &str) -> String {
    fn over(base: &mut serde_json::Value, top: serde_json::Value) {
        match (base, top) {
            (serde_json::Value::Object(b), serde_json::Value::Object(t)) => {
                for (k, v) in t {
                    over(b.entry(k).or_insert(serde_json::Value::Null), v);
                }
            }
            (b, t) => *b = t,
        }
    }
    let mut base = serde_json::to_value(ScanReport::example()).unwrap();
    over(&mut base, serde_json::from_str(partial).unwrap());
    serde_json::to_string_pretty(&base).unwrap()
}

const PARTIAL: &str = r#"{
  "sonde_version": "0.1.0",
  "command": ["sonde", "scan", "--scope", "s.toml", "198.18.0.0/28", "-p", "20-25,3306"],
  "started": "2026-11-30T01:00:00Z",
  "finished": "2026-11-30T01:00:03.5Z",
  "interrupted": false,
  "parameters": {"targets": ["198.18.0.0/28"], "ports": "20-25,3306",
                 "probes": ["syn", "icmp", "dns"], "dns_query": ["example.com:A"]},
  "neighbour_discovery": {"asked": 16, "answered": 3, "requests_sent": 16,
     "down": [{"reason": "no-arp-reply", "count": 13, "addresses": ["198.18.0.0/30", "198.18.0.6-198.18.0.15"]}]},
  "hosts": [
    {"address": "198.18.0.4", "results": [
       {"target": "198.18.0.4", "port": 22, "probe": "syn", "service": "ssh", "state": "open", "ttl": 64, "time": "2026-11-30T01:00:01Z"},
       {"target": "198.18.0.4", "port": 3306, "probe": "syn", "service": "mysql", "state": "filtered", "icmp_type": 3, "icmp_code": 13, "ttl": 63, "time": "2026-11-30T01:00:01Z"},
       {"target": "198.18.0.4", "probe": "icmp", "state": "up", "ttl": 64, "time": "2026-11-30T01:00:02Z"}],
     "not_shown": [{"probe": "syn", "state": "closed", "reason": "rst", "count": 4, "ports": null}],
     "services": [{"target": "198.18.0.4", "port": 22, "probe": "service", "service": "ssh", "product": "OpenSSH",
                   "version": "9.2p1", "extrainfo": "Debian-2+deb12u3; protocol 2.0", "cpe": "cpe:/a:openbsd:openssh:9.2p1",
                   "method": "probed", "conf": 10, "banner": "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\\r\\n",
                   "connections": 1, "bytes_read": 40, "time": "2026-11-30T01:00:03Z"}]},
    {"address": "198.18.0.5", "results": [
       {"target": "198.18.0.5", "probe": "icmp", "state": "up", "ttl": 64, "time": "2026-11-30T01:00:02Z"},
       {"target": "198.18.0.5", "probe": "dns", "question": "example.com A", "service": "domain", "state": "dns_answer", "rcode": 0, "answers": 1, "recursion_available": true, "ttl": 64, "time": "2026-11-30T01:00:02Z"}],
     "not_shown": [{"probe": "syn", "state": "closed", "reason": "rst", "count": 5, "ports": "20-21,23-25"}]}
  ]
}"#;

fn export_str(format: ExportFormat, results: Option<&str>) -> String {
    let mut out = Vec::new();
    let mut r = results.map(|s| std::io::BufReader::new(s.as_bytes()));
    export(
        format,
        REPORT.as_bytes(),
        r.as_mut().map(|r| r as &mut dyn BufRead),
        &mut out,
    )
    .unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn nmap_xml_has_hosts_ports_reasons_and_runstats() {
    // One element per line, as nmap writes it; compared without the breaks.
    let x = export_str(ExportFormat::Xml, None).replace('\n', "");
    assert!(
        x.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?><!DOCTYPE nmaprun>"),
        "{x}"
    );
    assert!(
        x.contains(
            r#"<scaninfo type="syn" protocol="tcp" numservices="7" services="20-25,3306"/>"#
        ),
        "{x}"
    );
    assert!(x.contains(r#"<scaninfo type="udp" protocol="udp" numservices="1" services="53"/>"#));
    assert!(x.contains(r#"<status state="up" reason="echo-reply" reason_ttl="64"/>"#));
    // -sV's service: nmap's attributes and its CPE.
    assert!(x.contains(r#"<port protocol="tcp" portid="22"><state state="open" reason="syn-ack" reason_ttl="64"/><service name="ssh" product="OpenSSH" version="9.2p1" extrainfo="Debian-2+deb12u3; protocol 2.0" method="probed" conf="10"><cpe>cpe:/a:openbsd:openssh:9.2p1</cpe></service></port>"#), "{x}");
    assert!(x.contains(r#"<state state="filtered" reason="admin-prohibited" reason_ttl="63"/>"#));
    // 4 closed (ports unknown), and no port of .4 unanswered: 1 + 1 + 4 = 6
    // of 7, so one port (unknown which) got no response.
    assert!(x.contains(r#"<extraports state="closed" count="4"><extrareasons reason="reset" count="4" proto="tcp"/></extraports>"#), "{x}");
    assert!(x.contains(r#"<extraports state="filtered" count="1"><extrareasons reason="no-response" count="1" proto="tcp"/></extraports>"#), "{x}");
    // .5: every port's fate known, so the unanswered ones are named.
    assert!(
        x.contains(r#"<extrareasons reason="no-response" count="2" proto="tcp" ports="22,3306"/>"#),
        "{x}"
    );
    assert!(x.contains(r#"<script id="dns-answer" output="question example.com A; rcode 0 (NOERROR); 1 answer; recursion available"/>"#), "{x}");
    assert!(x.contains(r#"<hosts up="2" down="14" total="16"/>"#), "{x}");
    assert!(x.contains(r#"elapsed="3""#));
    assert!(x.contains(r#"exit="success""#));
}

#[test]
fn greppable_lists_ports_and_the_ignored_state() {
    let g = export_str(ExportFormat::Grepable, None);
    let lines: Vec<&str> = g.lines().collect();
    assert!(
        lines[0]
            .starts_with("# sonde 0.1.0 scan initiated Mon Nov 30 01:00:00 2026 as: sonde scan")
    );
    assert_eq!(lines[1], "Host: 198.18.0.4 ()\tStatus: Up");
    assert_eq!(
        lines[2],
        "Host: 198.18.0.4 ()\tPorts: 22/open/tcp//ssh//OpenSSH 9.2p1 (Debian-2+deb12u3; protocol 2.0)/, 3306/filtered/tcp//mysql///\tIgnored State: closed (4)"
    );
    assert_eq!(
        lines[4],
        "Host: 198.18.0.5 ()\tPorts: 22/filtered/tcp//ssh///, 3306/filtered/tcp//mysql///, 53/open/udp//domain///\tIgnored State: closed (5)"
    );
    assert_eq!(
        lines[5],
        "# sonde done at Mon Nov 30 01:00:03 2026 -- 16 IP addresses (2 hosts up) scanned in 3 seconds"
    );
}

#[test]
fn masscan_list_has_findings_only() {
    let l = export_str(ExportFormat::List, None);
    assert_eq!(
        l,
        "#masscan\nopen tcp 22 198.18.0.4 1796000401\nopen icmp 0 198.18.0.4 1796000402\nopen icmp 0 198.18.0.5 1796000402\nopen udp 53 198.18.0.5 1796000402\n# end\n"
    );
}

#[test]
fn csv_quotes_fields_and_names_bad_lines() {
    let ndjson = r#"{"target":"198.18.0.5","probe":"dns","question":"a,b A","state":"dns_answer","rcode":3,"answers":0,"recursion_available":false,"ttl":64,"time":"2026-11-30T01:00:01Z"}
{"target":"198.18.0.4","port":22,"probe":"syn","service":"ssh","state":"open","ttl":64,"rtt_us":120,"time":"2026-11-30T01:00:01.5Z"}
{"target":"198.18.0.4","port":443,"probe":"service","service":"http","product":"nginx","version":"1.22.1","tunnel":"ssl","method":"probed","conf":10,"connections":1,"bytes_read":300,"time":"2026-11-30T01:00:03Z"}
"#;
    let c = export_str(ExportFormat::Csv, Some(ndjson));
    let lines: Vec<&str> = c.lines().collect();
    assert_eq!(lines[0], COLUMNS.join(","));
    assert_eq!(
        lines[1],
        "198.18.0.5,udp,53,dns,dns_answer,udp-response,,64,,2026-11-30T01:00:01Z,\"a,b A\",3,0,,,"
    );
    assert_eq!(
        lines[2],
        "198.18.0.4,tcp,22,syn,open,syn-ack,ssh,64,120,2026-11-30T01:00:01.5Z,,,,,,"
    );
    assert_eq!(
        lines[3],
        "198.18.0.4,tcp,443,service,open,probed,ssl/http,,,2026-11-30T01:00:03Z,,,,nginx,1.22.1,"
    );
    let mut out = Vec::new();
    let err = export(
        ExportFormat::Csv,
        REPORT.as_bytes(),
        Some(&mut std::io::BufReader::new("{}\n".as_bytes())),
        &mut out,
    )
    .unwrap_err();
    assert!(err.to_string().contains("line 1 is not a result"), "{err}");
}

#[test]
fn an_analysis_report_is_not_a_scan() {
    let err = read_scan(br#"{"input": {}, "statistics": {}}"#).unwrap_err();
    assert!(err.to_string().contains("not a scan report"), "{err}");
}

/// Regression (issue 26): control characters in a scope file's or a run
/// directory's name reached nmap XML attributes raw (xmllint then refused
/// the file) and broke `-oG` lines. They are escaped, visibly.
#[test]
fn control_characters_in_names_are_escaped_in_xml_and_greppable() {
    let mut v: serde_json::Value = serde_json::from_str(&REPORT).unwrap();
    assert_eq!(v["command"][3], "s.toml");
    v["command"][3] = "s\u{1b}[2J\u{1}\ttab\nline.toml".into();
    let report = v.to_string();
    assert_ne!(report, *REPORT);
    let run = |format| {
        let mut out = Vec::new();
        export(format, report.as_bytes(), None, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    };
    let x = run(ExportFormat::Xml);
    assert!(!x.chars().any(|c| c.is_control() && c != '\n'), "{x:?}");
    assert!(x.contains(r"s\u{1b}[2J\u{1}\u{9}tab\u{a}line.toml"), "{x}");
    let g = run(ExportFormat::Grepable);
    let first = g.lines().next().unwrap();
    assert!(
        first.ends_with(r"s\u{1b}[2J\u{1}\u{9}tab\u{a}line.toml 198.18.0.0/28 -p 20-25,3306"),
        "{first}"
    );
    assert_eq!(g.lines().count(), 6, "{g}");
}
