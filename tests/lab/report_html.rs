//! The HTML report in a real browser: Debian's Chromium, headless, with a
//! fresh profile and no network. Each page must load without a console
//! message (its content security policy forbids every fetch and script, so
//! anything not inline shows up there), hold its charts' SVG, and make a
//! screenshot. A control page proves the console check can fail.

use std::path::Path;
use std::process::Command;

use support::cli::{corpus, sonde};
use support::lab::Lab;

/// What Chromium made of a page.
struct Rendered {
    /// Console messages (errors, CSP violations, warnings) Chromium logged.
    console: Vec<String>,
    /// The DOM after loading.
    dom: String,
    /// The PNG screenshot.
    screenshot: Vec<u8>,
}

/// Load `page` in headless Chromium twice: once to dump the DOM with
/// logging on, once for a screenshot. Flags as the machine's notes give
/// them: without the background-networking ones Chromium tries to reach
/// Google's hosts.
fn chromium(page: &Path) -> Rendered {
    let work = tempfile::tempdir().unwrap();
    let flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--disable-extensions",
    ];
    let url = format!("file://{}", page.canonicalize().unwrap().display());
    let run = |profile: &str, extra: &[String]| {
        // The browser runs on the real clock: the suite's clock-moved run
        // (tests/run.sh, libfaketime) is for sonde, and Chromium hangs
        // under it.
        let out = Command::new("chromium")
            .env_remove("LD_PRELOAD")
            .env_remove("FAKETIME")
            .args(flags)
            .arg(format!(
                "--user-data-dir={}",
                work.path().join(profile).display()
            ))
            .args(extra)
            .arg(&url)
            .output()
            .expect("chromium (Debian's package; tests/run.sh installs it)");
        assert!(
            out.status.success(),
            "chromium failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };
    let dumped = run(
        "dom",
        &[
            "--enable-logging=stderr".into(),
            "--v=0".into(),
            "--dump-dom".into(),
        ],
    );
    let console = String::from_utf8_lossy(&dumped.stderr)
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(str::to_string)
        .collect();
    let shot = work.path().join("shot.png");
    run(
        "shot",
        &[
            format!("--screenshot={}", shot.display()),
            "--window-size=1200,2400".into(),
        ],
    );
    Rendered {
        console,
        dom: String::from_utf8_lossy(&dumped.stdout).into_owned(),
        screenshot: std::fs::read(&shot).expect("a screenshot"),
    }
}

fn assert_renders(page: &Path, charts: &[&str]) -> Rendered {
    let r = chromium(page);
    assert!(
        r.console.is_empty(),
        "{}: console messages: {:#?}",
        page.display(),
        r.console
    );
    for c in charts {
        assert!(
            r.dom.contains(&format!("<svg class=\"chart {c}\"")),
            "{}: no {c} chart",
            page.display()
        );
    }
    assert!(
        r.screenshot.starts_with(b"\x89PNG\r\n\x1a\n") && r.screenshot.len() > 20_000,
        "{}: screenshot of {} bytes",
        page.display(),
        r.screenshot.len()
    );
    r
}

const CHARTS: [&str; 4] = [
    "chart-timeline",
    "chart-protocols",
    "chart-talkers",
    "chart-ports",
];

#[test]
fn the_console_check_catches_a_page_that_fetches() {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("bad.html");
    // The report's own policy, and a page that breaks it: an image from a
    // file next to it (blocked before any load) and an inline script.
    std::fs::write(
        &page,
        r#"<!DOCTYPE html><html><head><meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:"></head><body><img src="missing.png"><script>console.error("x")</script></body></html>"#,
    )
    .unwrap();
    let r = chromium(&page);
    assert!(
        r.console
            .iter()
            .any(|l| l.contains("Content Security Policy")),
        "{:#?}",
        r.console
    );
}

#[test]
fn an_analysis_report_page_shows_every_section_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let (json, html) = (dir.path().join("r.json"), dir.path().join("r.html"));
    let (code, _, err) = sonde(&[
        "analyze",
        corpus("syn/synflood-spoofed.pcap").to_str().unwrap(),
        corpus("dns-tunnel/iodine.pcap").to_str().unwrap(),
        "--report",
        json.to_str().unwrap(),
        "--html",
        html.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let r = assert_renders(&html, &CHARTS);
    let anomalies = report["anomalies"].as_array().unwrap();
    assert!(anomalies.len() >= 2, "a flood and a tunnel");
    assert!(
        r.dom.contains(&format!("Anomalies ({})", anomalies.len())),
        "every anomaly is listed"
    );
    assert_eq!(r.dom.matches("class=\"anomaly\"").count(), anomalies.len());
    for a in anomalies {
        assert!(r.dom.contains(a["kind"].as_str().unwrap()));
    }
    // One bar per protocol, and the timeline's area.
    let protocols = report["protocols"].as_object().unwrap().len();
    let chart = r.dom.split("chart-protocols").nth(1).unwrap();
    let chart = &chart[..chart.find("</svg>").unwrap()];
    assert_eq!(chart.matches("class=\"bar\"").count(), protocols);
    assert!(r.dom.contains("class=\"area\""));
    // The page ties back to the JSON it was made from.
    let sha = sonde::evidence::file_sha256(&json).unwrap().0;
    assert!(r.dom.contains(&sha), "the report's sha256 is on the page");

    // sonde report renders the same JSON the same way.
    let again = dir.path().join("again.html");
    let (code, out, err) = sonde(&[
        "report",
        json.to_str().unwrap(),
        "--html",
        again.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("wrote"), "{out}");
    let strip = |p: &Path| {
        let page = std::fs::read_to_string(p).unwrap();
        page[page.find("</header>").unwrap()..].to_string()
    };
    assert_eq!(strip(&html), strip(&again));
}

#[test]
fn report_refuses_what_is_not_a_report() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.html");
    let other = dir.path().join("other.json");
    std::fs::write(&other, br#"{"hello": 1}"#).unwrap();
    let (code, _, err) = sonde(&[
        "report",
        other.to_str().unwrap(),
        "--html",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not a sonde report"), "{err}");
    let broken = dir.path().join("broken.json");
    std::fs::write(&broken, b"{\n  \"input\": [,]\n}").unwrap();
    let (code, _, err) = sonde(&[
        "report",
        broken.to_str().unwrap(),
        "--html",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("line 2, column"), "{err}");
    let (code, _, err) = sonde(&[
        "report",
        "/nonexistent.json",
        "--html",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("/nonexistent.json"), "{err}");
    assert!(!out.exists(), "no page for a bad input");
}

/// A lab scan's run directory as a page: authorization, open ports per
/// host, the capture's charts and anomalies, the compliance mapping.
#[test]
fn a_scan_report_page_shows_authorization_open_ports_and_controls() {
    let lab = Lab::new();
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let (code, _, err) = lab.sonde(&[
        "scan",
        "--scope",
        "scopes/lab.toml",
        "198.18.1.10",
        "198.18.1.11",
        "-p",
        "22,23,80,443",
        "--probe",
        "syn,icmp",
        "--wait",
        "0.5",
        "-o",
        run.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let html = dir.path().join("scan.html");
    let (code, _, err) = sonde(&[
        "report",
        run.to_str().unwrap(),
        "--html",
        html.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let r = assert_renders(&html, &CHARTS);
    for text in [
        "Run and authorization",
        "LAB-0001",
        "Open ports per host",
        "Compliance controls this evidence supports",
        "capture.pcap",
        "audit.jsonl",
    ] {
        assert!(r.dom.contains(text), "{text} missing");
    }
    // What answered, by port, before the hosts: 22, 80 and 443 are open
    // on both lab hosts.
    assert!(
        r.dom.contains("What answered, by port"),
        "by-port summary missing"
    );
    for port in ["22/tcp ssh", "80/tcp http", "443/tcp https"] {
        let cell = r
            .dom
            .split(&format!("<td>{port}</td>"))
            .nth(1)
            .unwrap_or_else(|| panic!("no row for {port}"));
        assert!(
            cell.starts_with("<td class=\"num\">2 hosts</td>"),
            "{port}: {cell:.80}"
        );
    }
    // 198.18.1.10 has 22 and 80 open in the lab.
    let row = r
        .dom
        .split("<code>198.18.1.10</code>")
        .nth(1)
        .expect("a row for 198.18.1.10");
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(row.contains("22, 80"), "{row}");
    for control in [
        "CC6.6", "CC6.7", "A.13.1", "A.13.2", "SC-7", "AC-17", "SI-4", "PR.AC", "PR.PT",
    ] {
        assert!(r.dom.contains(&format!("<td>{control}</td>")), "{control}");
    }
    let report = sonde::evidence::file_sha256(&run.join("report.json"))
        .unwrap()
        .0;
    assert!(r.dom.contains(&report));
}

/// Issue 27: the page has sections for HTTP (a scanner's User-Agent and an
/// attack in a URI marked), TLS (server names, JA4) and TCP analysis, and
/// each finding links to its flows in the flows table.
#[test]
fn an_analysis_page_has_http_tls_and_tcp_sections_and_findings_link_to_flows() {
    let dir = tempfile::tempdir().unwrap();
    let (json, html) = (dir.path().join("r.json"), dir.path().join("r.html"));
    let ours = |name: &str| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/corpus")
            .join(name)
    };
    let (code, _, err) = sonde(&[
        "analyze",
        ours("http_streams.pcap").to_str().unwrap(),
        ours("tls_loopback.pcap").to_str().unwrap(),
        corpus("scan/synscan.pcapng").to_str().unwrap(),
        "--flows",
        "all",
        "--report",
        json.to_str().unwrap(),
        "--html",
        html.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let page = std::fs::read_to_string(&html).unwrap();
    let section = |id: &str| {
        let start = page
            .find(&format!("<section id=\"{id}\">"))
            .unwrap_or_else(|| panic!("no {id} section"));
        let end = start + page[start..].find("</section>").unwrap();
        page[start..end].to_string()
    };
    let http = section("http");
    assert!(
        http.contains("sqlmap/1.7</code> <span class=\"sev sev-medium\">scanner: sqlmap"),
        "{http}"
    );
    assert!(
        http.contains(
            "UNION ALL SELECT 1,2--</code> <span class=\"sev sev-medium\">attack pattern"
        ),
        "{http}"
    );
    assert!(http.contains("1 with an attack pattern"), "{http}");
    let tls = section("tls");
    assert!(tls.contains("lab.sonde.test"), "{tls}");
    for ja4 in report["tls"]["top_ja4"].as_array().unwrap() {
        assert!(tls.contains(ja4["key"].as_str().unwrap()), "{tls}");
    }
    let tcp = section("tcp");
    assert!(tcp.contains("retransmissions") && tcp.contains("previous segment not captured"));
    // The port scan's flows: every link lands on a row of the flows table.
    let flows = section("flows");
    let scan = page.find("class=\"anomaly\"").expect("the scan's finding");
    let row = &page[scan..];
    let row = &row[row.find("<dt>Flows</dt>").unwrap()..];
    let row = &row[..row.find("</dd>").unwrap()];
    let links: Vec<&str> = row
        .split("href=\"#")
        .skip(1)
        .map(|l| &l[..l.find('"').unwrap()])
        .collect();
    assert_eq!(links.len(), 10, "the first ten, then how many more: {row}");
    assert!(row.contains("more below"), "{row}");
    for id in links {
        assert!(
            flows.contains(&format!("<tr id=\"{id}\">")),
            "{id} is not a flow row"
        );
        assert!(row.contains("172.16.0.8:"), "{row}");
    }
}
