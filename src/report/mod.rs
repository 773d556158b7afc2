//! Reports for people: one self-contained HTML page from a scan report
//! (`report.json` of a run directory) or an analysis report. The page holds
//! everything inline (CSS, SVG charts, no script), and its content security
//! policy forbids every fetch, so it renders the same offline, attached to
//! a ticket, years later.

pub mod export;
pub mod input;
pub mod svg;

use std::fmt::Write;

use serde::de::IgnoredAny;
use serde_json::Value;

use crate::results::ScanReport;

use input::HostsSummary;
pub use input::PageInput;
use svg::{Bar, bar_chart, human, timeline_chart};

/// Where the JSON came from, printed on the page so it can be tied back to
/// the evidence.
pub struct Source {
    pub name: String,
    pub sha256: String,
}

/// A JSON document that is neither kind of sonde report.
#[derive(Debug)]
pub struct NotAReport(pub String);

impl std::fmt::Display for NotAReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NotAReport {}

/// Escape text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Controls and bidirectional overrides from captures or scope
            // files are shown, not obeyed.
            c if crate::text::is_unsafe(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            _ => out.push(c),
        }
    }
    out
}

const STYLE: &str = r#"
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2430;background:#f5f6f8}
header{background:#1d2430;color:#fff;padding:18px 32px}
header h1{margin:0;font-size:22px}
header p{margin:4px 0 0;color:#c9d1dc;font-size:13px;word-break:break-all}
main{padding:8px 32px 40px;max-width:1100px}
section{background:#fff;border:1px solid #dde1e7;border-radius:6px;margin:16px 0;padding:8px 20px 16px}
h2{font-size:17px;margin:12px 0 8px}
h3{font-size:15px;margin:14px 0 6px}
table{border-collapse:collapse;width:100%;margin:6px 0}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #eceef2;vertical-align:top}
th{background:#f0f2f5;font-weight:600}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
code,.hash{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px;word-break:break-all}
dl.kv{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px;margin:6px 0}
dl.kv dt{font-weight:600;color:#4a5566}
dl.kv dd{margin:0;word-break:break-word}
.sev{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;color:#fff}
.sev-high{background:#b42318}.sev-medium{background:#c4660d}.sev-low{background:#5b6b7f}.sev-info{background:#5b6b7f}
.flag{color:#b42318;font-weight:600}
.ok{color:#177245;font-weight:600}
.muted{color:#6b7584}
svg.chart{max-width:100%;height:auto;display:block;margin:6px 0}
svg .bar{fill:#3a6ea5}
svg .area{fill:#3a6ea5;fill-opacity:.35;stroke:#3a6ea5;stroke-width:1}
svg .axis{stroke:#8a94a3;stroke-width:1}
svg text{font:12px system-ui,sans-serif;fill:#1d2430}
svg text.value{fill:#4a5566}
table.files td:first-child{white-space:nowrap}
.anomaly{border-left:4px solid #c4660d;padding:4px 12px;margin:10px 0;background:#fffaf5}
"#;

/// Render `report` (a scan report or an analysis report) as one HTML page.
///
/// ```
/// use sonde::report::{PageInput, Source, render_html};
///
/// let analysis = serde_json::json!({
///     "sonde_version": "0.1.0",
///     "input": [{"path": "a.pcap", "packets": 2}],
///     "summary": {"packets": 2},
///     "protocols": {"tcp": {"packets": 2, "bytes": 120}},
///     "timeline": {"bucket_seconds": 1, "start": "2026-11-26T12:00:00Z",
///                  "packets": [2], "bytes": [120]},
///     "anomalies": [],
/// });
/// let source = Source { name: "a.json".into(), sha256: "00".into() };
/// let page = render_html(&PageInput::from_value(analysis), &source).unwrap();
/// assert!(page.contains(r#"<svg class="chart chart-protocols""#));
/// assert!(page.contains("default-src 'none'"));
/// ```
pub fn render_html(input: &PageInput, source: &Source) -> Result<String, NotAReport> {
    let report = &input.doc;
    let null = Value::Null;
    // A scan report is read as its one definition (its hosts were
    // summarized while it was parsed); an analysis report as JSON.
    let scan: Option<ScanReport<IgnoredAny>> = if report.get("capture_analysis").is_some() {
        let mut head = report.clone();
        head["hosts"] = Value::Array(Vec::new());
        Some(serde_json::from_value(head).map_err(|e| {
            NotAReport(format!(
                "{} is not a scan report this sonde reads: {e}",
                source.name
            ))
        })?)
    } else {
        None
    };
    let analysis = match &scan {
        Some(s) => s.capture_analysis.as_ref().unwrap_or(&null),
        None if report.get("input").is_some() && report.get("summary").is_some() => report,
        None => {
            return Err(NotAReport(format!(
                "{} is not a sonde report: expected a scan report (with capture_analysis) or an analysis report (with input and summary)",
                source.name
            )));
        }
    };
    let title = match &scan {
        Some(s) => format!("sonde scan report: {}", s.scope.engagement_id),
        None => format!(
            "sonde analysis report: {}",
            analysis["input"]
                .as_array()
                .map(|a| a
                    .iter()
                    .filter_map(|i| i["path"].as_str())
                    .collect::<Vec<_>>()
                    .join(", "))
                .unwrap_or_default()
        ),
    };
    let version = match &scan {
        Some(s) => s.sonde_version.as_str(),
        None => report["sonde_version"].as_str().unwrap_or("?"),
    };
    let mut h = String::new();
    let _ = write!(
        h,
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:"><meta name="viewport" content="width=device-width, initial-scale=1"><title>{t}</title><style>{STYLE}</style></head><body><header><h1>{t}</h1><p>from <code>{name}</code>, sha256 <span class="hash">{sha}</span>; written by sonde {v}</p></header><main>"#,
        t = escape(&title),
        name = escape(&source.name),
        sha = escape(&source.sha256),
        v = escape(version),
    );
    if let Some(s) = &scan {
        run_section(&mut h, s);
        hosts_section(&mut h, input.hosts.as_ref());
    } else {
        input_section(&mut h, analysis);
    }
    if analysis.is_null() {
        h.push_str(
            r#"<section><h2>On the wire</h2><p class="flag">The run's capture could not be analyzed; the scan results above still hold.</p></section>"#,
        );
    } else {
        traffic_sections(&mut h, analysis);
        http_section(&mut h, analysis);
        tls_section(&mut h, analysis);
        tcp_section(&mut h, analysis);
        anomalies_section(&mut h, analysis);
        flows_section(&mut h, analysis);
    }
    if let Some(s) = &scan {
        compliance_section(&mut h, s);
    }
    h.push_str("</main></body></html>\n");
    Ok(h)
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "—".into(),
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(text).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or(0.0)
}

/// Thousands separators for counts.
fn count(v: &Value) -> String {
    let Some(n) = v.as_u64() else {
        return text(v);
    };
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn kv(h: &mut String, rows: &[(&str, String)]) {
    h.push_str(r#"<dl class="kv">"#);
    for (k, v) in rows {
        let _ = write!(h, "<dt>{}</dt><dd>{}</dd>", escape(k), v);
    }
    h.push_str("</dl>");
}

/// A count with thousands separators.
fn thousands(n: u64) -> String {
    count(&Value::from(n))
}

fn run_section(h: &mut String, s: &ScanReport<IgnoredAny>) {
    let scope = &s.scope;
    h.push_str("<section><h2>Run and authorization</h2>");
    let mut status = String::new();
    if s.interrupted {
        status.push_str(r#"<span class="flag">interrupted</span> "#);
    }
    if let Some(e) = &s.output_error {
        let _ = write!(
            status,
            r#"<span class="flag">output failed: {}</span> "#,
            escape(e)
        );
    }
    if s.possibly_incomplete {
        status.push_str(r#"<span class="flag">results possibly incomplete</span>"#);
    }
    if status.is_empty() {
        status = r#"<span class="ok">completed</span>"#.into();
    }
    kv(
        h,
        &[
            ("Engagement", escape(&scope.engagement_id)),
            ("Client", escape(&scope.client)),
            ("Authorized by", escape(&scope.authorized_by)),
            ("Contact", escape(&scope.contact)),
            (
                "Validity window",
                format!(
                    "{} to {}",
                    escape(&scope.not_before),
                    escape(&scope.not_after)
                ),
            ),
            (
                "Scope file",
                format!(
                    r#"<code>{}</code>, sha256 <span class="hash">{}</span>"#,
                    escape(&scope.path),
                    escape(&scope.sha256)
                ),
            ),
            ("Operator", escape(&s.operator)),
            ("Host", escape(&s.host)),
            (
                "Started / finished (UTC)",
                format!("{} / {}", escape(&s.started), escape(&s.finished)),
            ),
            (
                "Command",
                format!("<code>{}</code>", escape(&s.command.join(" "))),
            ),
            ("Outcome", status),
        ],
    );
    let p = &s.parameters;
    let c = &s.counters;
    h.push_str("<h3>Parameters and counters</h3>");
    kv(
        h,
        &[
            ("Targets", escape(&p.targets.join(", "))),
            ("Ports", escape(&p.ports)),
            (
                "Probes",
                escape(
                    &p.probes
                        .iter()
                        .map(|k| k.name())
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
            ),
            (
                "Rate",
                format!(
                    "{} packets/s (scope ceiling {})",
                    escape(&Value::from(p.rate).to_string()),
                    escape(&Value::from(scope.max_rate).to_string())
                ),
            ),
            (
                "Sent / replies / invalid / kernel drops",
                format!(
                    "{} / {} / {} / {}",
                    thousands(c.sent),
                    thousands(c.matched),
                    thousands(c.invalid),
                    thousands(c.kernel_drops)
                ),
            ),
        ],
    );
    h.push_str("<h3>Evidence files</h3><table class=\"files\"><tr><th>file</th><th class=\"num\">bytes</th><th>sha256</th></tr>");
    for f in &s.files {
        let _ = write!(
            h,
            r#"<tr><td><code>{}</code></td><td class="num">{}</td><td class="hash">{}</td></tr>"#,
            escape(&f.name),
            thousands(f.size),
            escape(&f.sha256)
        );
    }
    let _ = write!(
        h,
        r#"<tr><td><code>{}</code></td><td class="num muted">—</td><td class="hash">head {} after {} records (the next record holds this report's hash)</td></tr></table>"#,
        escape(&s.audit.file),
        escape(&s.audit.head),
        thousands(s.audit.records)
    );
    h.push_str(r#"<p class="muted">Check every hash again with <code>sonde verify RUN_DIR</code>.</p></section>"#);
}

fn hosts_section(h: &mut String, hosts: Option<&HostsSummary>) {
    h.push_str("<section><h2>Open ports per host</h2>");
    let empty = HostsSummary::default();
    let hosts = hosts.unwrap_or(&empty);
    let _ = write!(
        h,
        "<p>{} answered ({} with open ports); hosts that answered nothing are left out.</p>",
        plural(hosts.answered, "host", "hosts"),
        hosts.with_open
    );
    if !hosts.by_port.is_empty() {
        // What answered first, by port, the most common first: on a large
        // scan this is the page's summary, the hosts follow.
        h.push_str(r#"<h3>What answered, by port</h3><table class="by-port"><tr><th>port</th><th class="num">hosts open</th></tr>"#);
        let mut ports: Vec<(&u16, &usize)> = hosts.by_port.iter().collect();
        ports.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for (port, n) in ports.iter().take(MAX_PORT_ROWS) {
            let name = crate::targets::ports::tcp_service(**port).unwrap_or("");
            let _ = write!(
                h,
                r#"<tr><td>{port}/tcp {}</td><td class="num">{}</td></tr>"#,
                escape(name),
                plural(**n, "host", "hosts")
            );
        }
        h.push_str("</table>");
        if ports.len() > MAX_PORT_ROWS {
            let _ = write!(
                h,
                r#"<p class="muted">{} more ports are in report.json.</p>"#,
                ports.len() - MAX_PORT_ROWS
            );
        }
    }
    if !hosts.ranges.is_empty() {
        // Every answering host, folded by range: a /16 is 256 lines.
        h.push_str(r#"<h3>By range</h3><table class="ranges"><tr><th>range</th><th class="num">hosts answered</th><th class="num">with open ports</th><th>most open ports (hosts)</th></tr>"#);
        for r in &hosts.ranges {
            let mut ports: Vec<(&u16, &usize)> = r.ports.iter().collect();
            ports.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            let top: Vec<String> = ports
                .iter()
                .take(6)
                .map(|(p, n)| format!("{p} ({n})"))
                .collect();
            let _ = write!(
                h,
                r#"<tr><td><code>{}</code></td><td class="num">{}</td><td class="num">{}</td><td>{}{}</td></tr>"#,
                escape(&r.range),
                r.hosts,
                r.with_open,
                escape(&top.join(", ")),
                if ports.len() > 6 { ", ..." } else { "" }
            );
        }
        h.push_str("</table>");
        if hosts.hosts_in_unlisted_ranges > 0 {
            let _ = write!(
                h,
                r#"<p class="muted">{} more answering hosts, in ranges past the first {}, are in report.json.</p>"#,
                hosts.hosts_in_unlisted_ranges,
                crate::report::input::MAX_RANGE_ROWS
            );
        }
    }
    if !hosts.rows.is_empty() {
        let _ = write!(
            h,
            "<h3>Hosts, the busiest first</h3><p class=\"muted\">{} of {}: most open ports first.</p>",
            hosts.rows.len(),
            hosts.answered
        );
        h.push_str(
            r#"<table class="hosts"><tr><th>host</th><th>open</th><th class="num">closed</th><th class="num">filtered</th><th>ping</th><th>DNS</th><th>services</th></tr>"#,
        );
        for row in &hosts.rows {
            let open: Vec<String> = row.open.iter().map(u16::to_string).collect();
            let _ = write!(
                h,
                r#"<tr><td><code>{}</code></td><td>{}</td><td class="num">{}</td><td class="num">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
                escape(&row.address),
                if open.is_empty() {
                    r#"<span class="muted">none</span>"#.to_string()
                } else {
                    escape(&open.join(", "))
                },
                row.closed,
                row.filtered,
                if row.up { "answers" } else { "" },
                escape(&row.dns.join("; ")),
                row.services
                    .iter()
                    .map(|s| escape(s))
                    .collect::<Vec<_>>()
                    .join("<br>")
            );
        }
        h.push_str("</table>");
    }
    if !hosts.by_product.is_empty() {
        h.push_str(
            r#"<h3>Services by product and version</h3><table class="services"><tr><th>service</th><th>product</th><th>version</th><th class="num">ports</th></tr>"#,
        );
        let mut rows: Vec<_> = hosts.by_product.iter().collect();
        rows.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for ((service, product, version), n) in rows {
            let _ = write!(
                h,
                r#"<tr><td>{}</td><td>{}</td><td>{}</td><td class="num">{n}</td></tr>"#,
                escape(service),
                escape(product),
                escape(version)
            );
        }
        h.push_str("</table>");
    }
    if !hosts.findings.is_empty() {
        h.push_str("<h3>Service findings</h3><ul class=\"service-findings\">");
        for (severity, summary) in &hosts.findings {
            let sev = match severity {
                crate::results::Severity::High => "high",
                crate::results::Severity::Medium => "medium",
                crate::results::Severity::Low => "low",
            };
            let _ = write!(
                h,
                r#"<li><span class="sev sev-{sev}">{sev}</span> {}</li>"#,
                escape(summary)
            );
        }
        h.push_str("</ul>");
        if hosts.findings_not_listed > 0 {
            let _ = write!(
                h,
                r#"<p class="muted">{} more service findings are in report.json.</p>"#,
                hosts.findings_not_listed
            );
        }
    }
    if hosts.answered > hosts.rows.len() {
        let _ = write!(
            h,
            r#"<p class="muted">{} more hosts are in report.json.</p>"#,
            hosts.answered - hosts.rows.len()
        );
    }
    h.push_str("</section>");
}

/// Ports listed in the by-port summary at most.
const MAX_PORT_ROWS: usize = 50;

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn input_section(h: &mut String, a: &Value) {
    h.push_str("<section><h2>Input</h2><table><tr><th>file</th><th class=\"num\">bytes</th><th class=\"num\">packets</th><th>link types</th><th>sha256</th></tr>");
    for i in a["input"].as_array().into_iter().flatten() {
        let _ = write!(
            h,
            r#"<tr><td><code>{}</code></td><td class="num">{}</td><td class="num">{}</td><td>{}</td><td class="hash">{}</td></tr>"#,
            escape(&text(&i["path"])),
            count(&i["size"]),
            count(&i["packets"]),
            escape(&text(&i["link_types"])),
            escape(&text(&i["sha256"]))
        );
    }
    h.push_str("</table>");
    for w in a["warnings"].as_array().into_iter().flatten() {
        let _ = write!(
            h,
            r#"<p class="flag">{}: at byte {}: {}</p>"#,
            escape(&text(&w["file"])),
            escape(&text(&w["offset"])),
            escape(&text(&w["message"]))
        );
    }
    h.push_str("</section>");
}

fn traffic_sections(h: &mut String, a: &Value) {
    let sum = &a["summary"];
    h.push_str("<section><h2>On the wire</h2>");
    kv(
        h,
        &[
            ("Packets", count(&sum["packets"])),
            ("Bytes", count(&sum["bytes"])),
            (
                "First / last packet (UTC)",
                format!(
                    "{} / {}",
                    escape(&text(&sum["first_timestamp"])),
                    escape(&text(&sum["last_timestamp"]))
                ),
            ),
            (
                "Duration",
                format!("{} s", escape(&human(num(&sum["duration_seconds"])))),
            ),
            (
                "Average rate",
                format!(
                    "{} packets/s, {}bit/s",
                    escape(&human(num(&sum["packets_per_second"]))),
                    escape(&human(num(&sum["bits_per_second"])))
                ),
            ),
            (
                "TCP / UDP conversations",
                format!(
                    "{} / {}",
                    count(&sum["tcp_conversations"]),
                    count(&sum["udp_conversations"])
                ),
            ),
        ],
    );

    // Packets per second over time.
    let t = &a["timeline"];
    let step = num(&t["bucket_seconds"]).max(0.001);
    let pps: Vec<f64> = t["packets"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| num(v) / step)
        .collect();
    let _ = write!(
        h,
        "<h3>Packets per second over time</h3><p class=\"muted\">from {}</p>",
        escape(&text(&t["start"]))
    );
    h.push_str(&timeline_chart(
        "chart-timeline",
        "Packets per second over time",
        &pps,
        step,
        "packets/s",
    ));

    // Protocol distribution.
    h.push_str("<h3>Protocol distribution</h3>");
    let bars: Vec<Bar> = a["protocols"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, c)| Bar {
            label: name.clone(),
            value: num(&c["packets"]),
            note: format!(
                "{} pkts, {} B",
                count(&c["packets"]),
                human(num(&c["bytes"]))
            ),
        })
        .collect();
    h.push_str(&bar_chart("chart-protocols", "Packets per protocol", &bars));

    // Top talkers.
    h.push_str("<h3>Top talkers</h3>");
    let talkers = |list: &Value| -> Vec<Bar> {
        list.as_array()
            .into_iter()
            .flatten()
            .map(|t| Bar {
                label: text(&t["address"]),
                value: num(&t["packets"]),
                note: format!(
                    "{} pkts, {} B",
                    count(&t["packets"]),
                    human(num(&t["bytes"]))
                ),
            })
            .collect()
    };
    let by = &a["top_talkers"]["by_packets"];
    h.push_str("<p>Sources by packets</p>");
    h.push_str(&bar_chart(
        "chart-talkers",
        "Top sources by packets",
        &talkers(&by["sources"]),
    ));
    h.push_str("<p>Destinations by packets</p>");
    h.push_str(&bar_chart(
        "chart-talkers-destinations",
        "Top destinations by packets",
        &talkers(&by["destinations"]),
    ));
    h.push_str("<p>Pairs by bytes</p>");
    h.push_str(&bar_chart(
        "chart-talkers-pairs",
        "Top pairs by bytes",
        &talkers(&a["top_talkers"]["by_bytes"]["pairs"]),
    ));

    // Port frequency.
    h.push_str("<h3>Port frequency (destination ports)</h3>");
    let ports = |proto: &str| -> Vec<Bar> {
        a["ports"][proto]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| Bar {
                label: format!("{proto}/{}", text(&p["port"])),
                value: num(&p["packets"]),
                note: format!("{} pkts", count(&p["packets"])),
            })
            .collect()
    };
    let mut bars = ports("tcp");
    bars.extend(ports("udp"));
    h.push_str(&bar_chart(
        "chart-ports",
        "Packets per destination port",
        &bars,
    ));

    // DNS, when there was any.
    if num(&a["dns"]["queries"]) > 0.0 || num(&a["dns"]["responses"]) > 0.0 {
        h.push_str(
            "<h3>DNS</h3><table><tr><th>top queried name</th><th class=\"num\">queries</th></tr>",
        );
        for q in a["dns"]["top_queried"].as_array().into_iter().flatten() {
            let _ = write!(
                h,
                r#"<tr><td><code>{}</code></td><td class="num">{}</td></tr>"#,
                escape(&text(&q["name"])),
                count(&q["queries"])
            );
        }
        h.push_str("</table>");
    }
    h.push_str("</section>");
}

/// A table of `(label, count)` rows from a list of objects (`value_key`,
/// `count` and the analysis's `flag`, marked), or from an object of counts.
fn count_table(h: &mut String, heading: &str, rows: &Value, value_key: &str) {
    let items: Vec<(String, String, Option<&str>)> = match rows {
        Value::Array(list) => list
            .iter()
            .map(|r| (text(&r[value_key]), count(&r["count"]), r["flag"].as_str()))
            .collect(),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| (k.clone(), count(v), None))
            .collect(),
        _ => Vec::new(),
    };
    if items.is_empty() {
        return;
    }
    let _ = write!(
        h,
        r#"<table><tr><th>{}</th><th class="num">count</th></tr>"#,
        escape(heading)
    );
    for (label, n, flag) in items {
        let mark = flag.map_or_else(String::new, |why| {
            format!(r#" <span class="sev sev-medium">{}</span>"#, escape(why))
        });
        let _ = write!(
            h,
            r#"<tr><td><code>{}</code>{mark}</td><td class="num">{}</td></tr>"#,
            escape(&label),
            n
        );
    }
    h.push_str("</table>");
}

/// HTTP: hosts, methods, status codes, user agents (a scanner's marked)
/// and the most requested URIs (attack patterns marked), when the capture
/// holds any.
fn http_section(h: &mut String, a: &Value) {
    let http = &a["http"];
    if num(&http["requests"]) == 0.0 && num(&http["responses"]) == 0.0 {
        return;
    }
    h.push_str(r#"<section id="http"><h2>HTTP</h2>"#);
    kv(
        h,
        &[
            ("Requests", count(&http["requests"])),
            ("Responses", count(&http["responses"])),
        ],
    );
    count_table(h, "host", &http["hosts"], "value");
    count_table(h, "method", &http["methods"], "value");
    count_table(h, "status code", &http["status_codes"], "value");
    count_table(h, "user agent", &http["user_agents"], "value");
    let flagged = http["uris"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|u| u["flag"].is_string())
        .count();
    let _ = write!(
        h,
        "<p>Most requested URIs: {} with an attack pattern (SQL injection, path traversal, probes for known flaws).</p>",
        flagged
    );
    count_table(h, "URI", &http["uris"], "value");
    h.push_str("</section>");
}

/// TLS: versions, ALPN, server names, JA4 and JA4S, and the handshakes.
fn tls_section(h: &mut String, a: &Value) {
    let tls = &a["tls"];
    if num(&tls["client_hellos"]) == 0.0
        && num(&tls["server_hellos"]) == 0.0
        && num(&tls["quic_client_hellos"]) == 0.0
    {
        return;
    }
    h.push_str(r#"<section id="tls"><h2>TLS</h2>"#);
    kv(
        h,
        &[
            (
                "ClientHello / ServerHello",
                format!(
                    "{} / {}",
                    count(&tls["client_hellos"]),
                    count(&tls["server_hellos"])
                ),
            ),
            (
                "QUIC Initial ClientHello",
                count(&tls["quic_client_hellos"]),
            ),
        ],
    );
    count_table(h, "version", &tls["versions"], "key");
    count_table(h, "ALPN", &tls["alpn"], "key");
    count_table(h, "server name (SNI)", &tls["top_server_names"], "key");
    count_table(h, "JA4 (client)", &tls["top_ja4"], "key");
    count_table(h, "JA4S (server)", &tls["top_ja4s"], "key");
    let shakes = tls["handshakes"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    if !shakes.is_empty() {
        h.push_str("<table><tr><th>client</th><th>server</th><th>SNI</th><th>offered</th><th>chosen</th><th>JA4</th><th>JA4S</th></tr>");
        for s in shakes {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}:{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td><code>{}</code></td><td><code>{}</code></td></tr>",
                escape(&text(&s["client"])),
                escape(&text(&s["server"])),
                escape(&text(&s["port"])),
                escape(&text(&s["sni"])),
                escape(&text(&s["version_offered"])),
                escape(&text(&s["version"])),
                escape(&text(&s["ja4"])),
                escape(&text(&s["ja4s"])),
            );
        }
        h.push_str("</table>");
        if num(&tls["handshakes_not_listed"]) > 0.0 {
            let _ = write!(
                h,
                r#"<p class="muted">{} more handshakes not listed.</p>"#,
                count(&tls["handshakes_not_listed"])
            );
        }
    }
    h.push_str("</section>");
}

/// The counters of TCP analysis (as Wireshark's expert information names
/// them), and the connections with the most trouble, worst first.
const TCP_COUNTERS: [(&str, &str); 9] = [
    ("retransmissions", "retransmissions"),
    ("fast_retransmissions", "fast retransmissions"),
    ("spurious_retransmissions", "spurious retransmissions"),
    ("duplicate_acks", "duplicate ACKs"),
    ("out_of_order", "out-of-order"),
    ("lost_segments", "previous segment not captured"),
    ("acked_unseen_segments", "ACKed segment not captured"),
    ("zero_windows", "zero windows"),
    ("keep_alives", "keep-alives"),
];

fn tcp_section(h: &mut String, a: &Value) {
    let t = &a["tcp_analysis"];
    if !t.is_object() {
        return;
    }
    h.push_str(r#"<section id="tcp"><h2>TCP analysis</h2>"#);
    let rows: Vec<(&str, String)> = TCP_COUNTERS
        .iter()
        .map(|(k, label)| (*label, count(&t[*k])))
        .collect();
    kv(h, &rows);
    let worst = t["top_connections"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    if worst.is_empty() {
        h.push_str("<p>No connection had any of these.</p></section>");
        return;
    }
    h.push_str(
        "<p>Connections with the most of these, worst first:</p><table><tr><th>connection</th>",
    );
    for (_, label) in TCP_COUNTERS {
        let _ = write!(h, r#"<th class="num">{}</th>"#, escape(label));
    }
    h.push_str("</tr>");
    for c in worst {
        let _ = write!(
            h,
            "<tr><td>{}:{} &harr; {}:{}</td>",
            escape(&text(&c["a"])),
            escape(&text(&c["a_port"])),
            escape(&text(&c["b"])),
            escape(&text(&c["b_port"]))
        );
        for (k, _) in TCP_COUNTERS {
            let _ = write!(h, r#"<td class="num">{}</td>"#, count(&c[k]));
        }
        h.push_str("</tr>");
    }
    h.push_str("</table></section>");
}

/// The address part of `ip:port` or `[ip]:port`.
fn host_of(endpoint: &str) -> &str {
    match endpoint.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => {
            host.trim_start_matches('[').trim_end_matches(']')
        }
        _ => endpoint,
    }
}

/// The anchor of a listed flow: its first frame, which no other flow has.
fn flow_anchor(f: &Value) -> String {
    format!("flow-{}", text(&f["first_frame"]))
}

/// The listed flows between a finding's sources and destinations (either
/// direction), as links to the flows table.
fn finding_flows(an: &Value, flows: &[Value]) -> Option<String> {
    const SHOWN: usize = 10;
    let set = |k: &str| -> std::collections::HashSet<String> {
        an[k]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect()
    };
    let (sources, destinations) = (set("sources"), set("destinations"));
    if sources.is_empty() && destinations.is_empty() {
        return None;
    }
    let touches =
        |x: &str, side: &std::collections::HashSet<String>| side.is_empty() || side.contains(x);
    let linked: Vec<&Value> = flows
        .iter()
        .filter(|f| {
            let (c, s) = (
                host_of(f["client"].as_str().unwrap_or("")),
                host_of(f["server"].as_str().unwrap_or("")),
            );
            (touches(c, &sources) && touches(s, &destinations))
                || (touches(s, &sources) && touches(c, &destinations))
        })
        .collect();
    if linked.is_empty() {
        return Some("none among the flows listed below".into());
    }
    let mut out: Vec<String> = linked
        .iter()
        .take(SHOWN)
        .map(|f| {
            format!(
                r##"<a href="#{}">{} {} &rarr; {}</a>"##,
                escape(&flow_anchor(f)),
                escape(&text(&f["protocol"])),
                escape(&text(&f["client"])),
                escape(&text(&f["server"]))
            )
        })
        .collect();
    if linked.len() > SHOWN {
        out.push(format!("and {} more below", linked.len() - SHOWN));
    }
    Some(out.join(", "))
}

/// The flows the report lists, each with an anchor findings link to.
fn flows_section(h: &mut String, a: &Value) {
    let flows = a["flows"]["list"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    if flows.is_empty() {
        return;
    }
    let which = match a["flows"]["listing"].as_str() {
        Some("all") => "every flow, in first-frame order",
        _ => "the largest by bytes (analyze --flows all lists every one)",
    };
    let _ = write!(
        h,
        r#"<section id="flows"><h2>Flows</h2><p class="muted">{} of {} flows: {which}.</p>"#,
        flows.len(),
        count(&a["flows"]["count"]["total"]),
    );
    h.push_str(r#"<table><tr><th>protocol</th><th>client</th><th>server</th><th>first (UTC)</th><th class="num">packets &rarr;</th><th class="num">packets &larr;</th><th class="num">bytes &rarr;</th><th class="num">bytes &larr;</th><th>application</th></tr>"#);
    for f in flows {
        let _ = write!(
            h,
            r#"<tr id="{}"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td>{}</td></tr>"#,
            escape(&flow_anchor(f)),
            escape(&text(&f["protocol"])),
            escape(&text(&f["client"])),
            escape(&text(&f["server"])),
            escape(&text(&f["first_timestamp"])),
            count(&f["packets_client_to_server"]),
            count(&f["packets_server_to_client"]),
            count(&f["bytes_client_to_server"]),
            count(&f["bytes_server_to_client"]),
            escape(&text(&f["app_protocol"])),
        );
    }
    h.push_str("</table></section>");
}

/// Each detector that ran, its findings and the nearest the capture came.
fn detectors_table(h: &mut String, a: &Value) {
    let Some(runs) = a["detectors"].as_array().filter(|r| !r.is_empty()) else {
        return;
    };
    h.push_str(
        r#"<table class="detectors"><tr><th>detector</th><th class="num">findings</th><th>closest the capture came</th><th>thresholds</th></tr>"#,
    );
    for r in runs {
        let closest: Vec<String> = r["closest"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                format!(
                    "{} {} of {} ({})",
                    escape(&text(&c["measure"])),
                    escape(&human(num(&c["value"]))),
                    escape(&human(num(&c["threshold"]))),
                    escape(&text(&c["at"]))
                )
            })
            .collect();
        let thresholds: Vec<String> = r["thresholds"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| format!("{} = {}", escape(k), escape(&text(v))))
            .collect();
        let _ = write!(
            h,
            r#"<tr><td>{}</td><td class="num">{}</td><td>{}</td><td><small>{}</small></td></tr>"#,
            escape(&text(&r["name"])),
            count(&r["findings"]),
            if closest.is_empty() {
                "not measured".to_string()
            } else {
                closest.join("<br>")
            },
            thresholds.join(", ")
        );
    }
    h.push_str("</table>");
}

fn anomalies_section(h: &mut String, a: &Value) {
    let list = a["anomalies"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    let _ = write!(h, "<section><h2>Anomalies ({})</h2>", list.len());
    if list.is_empty() {
        // Never a green "clean": what was looked for, and how close the
        // capture came, so a reader can judge what the silence is worth.
        h.push_str(
            "<p>No finding. The detectors below ran with these thresholds; \
             a finding needs the measured value to reach its threshold.</p>",
        );
    }
    detectors_table(h, a);
    let flows = a["flows"]["list"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    for an in list {
        let sev = text(&an["severity"]);
        let _ = write!(
            h,
            r#"<div class="anomaly"><h3><span class="sev sev-{sevc}">{sev}</span> {kind}: {summary}</h3>"#,
            sevc = escape(&sev.to_ascii_lowercase()),
            sev = escape(&sev),
            kind = escape(&text(&an["kind"])),
            summary = escape(&text(&an["summary"])),
        );
        let mut rows: Vec<(&str, String)> = vec![
            (
                "When (UTC)",
                format!(
                    "{} to {}",
                    escape(&text(&an["first_timestamp"])),
                    escape(&text(&an["last_timestamp"]))
                ),
            ),
            ("Sources", escape(&text(&an["sources"]))),
            ("Destinations", escape(&text(&an["destinations"]))),
        ];
        if an["ports"].as_array().is_some_and(|p| !p.is_empty()) {
            rows.push(("Ports", escape(&text(&an["ports"]))));
        }
        rows.push(("Example frames", escape(&text(&an["example_frames"]))));
        if let Some(links) = finding_flows(an, flows) {
            rows.push(("Flows", links));
        }
        for extra in ["subtype", "scan_type", "domain", "note"] {
            if let Some(v) = an.get(extra)
                && !v.is_null()
            {
                rows.push((extra, escape(&text(v))));
            }
        }
        kv(h, &rows);
        h.push_str(
            r#"<table class="evidence"><tr><th>evidence</th><th class="num">measured</th></tr>"#,
        );
        for (k, v) in an["evidence"].as_object().into_iter().flatten() {
            let _ = write!(
                h,
                r#"<tr><td>{}</td><td class="num">{}</td></tr>"#,
                escape(k),
                escape(&human(num(v)))
            );
        }
        h.push_str("</table>");
        if let Some(t) = an["thresholds"].as_object().filter(|t| !t.is_empty()) {
            h.push_str(r#"<table class="thresholds"><tr><th>threshold</th><th class="num">value</th></tr>"#);
            for (k, v) in t {
                let _ = write!(
                    h,
                    r#"<tr><td>{}</td><td class="num">{}</td></tr>"#,
                    escape(k),
                    escape(&human(num(v)))
                );
            }
            h.push_str("</table>");
        }
        h.push_str("</div>");
    }
    h.push_str("</section>");
}

fn compliance_section(h: &mut String, s: &ScanReport<IgnoredAny>) {
    h.push_str("<section><h2>Compliance controls this evidence supports</h2><table><tr><th>framework</th><th>control</th><th>title</th><th>supported by</th></tr>");
    for c in &s.compliance {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&c.framework),
            escape(&c.control),
            escape(&c.title),
            escape(&c.evidence)
        );
    }
    h.push_str("</table><p class=\"muted\">A fixed mapping (docs/evidence.md): what the evidence can be used for, not a claim that a control is met.</p></section>");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 27: a /16 where every host answered made a 17.5 MB page. The
    /// hosts part is now the by-port summary, 256 ranges and the busiest
    /// thousand hosts.
    #[test]
    fn a_slash_16_page_is_folded() {
        let doc = crate::report::input::tests::a_slash_16(&[12]);
        let summary = crate::report::input::PageInput::from_slice(&doc)
            .unwrap()
            .hosts
            .unwrap();
        let mut h = String::new();
        hosts_section(&mut h, Some(&summary));
        assert!(h.len() < 400_000, "{} bytes", h.len());
        assert!(h.contains("65536 hosts answered"), "{}", &h[..300]);
        assert_eq!(h.matches("/24</code>").count(), 256);
        assert!(h.contains("<td>22 (256), 80 (256), 443 (256), 8080 (256)</td>"));
        assert!(h.contains("1000 of 65536: most open ports first"));
        assert!(h.contains("64536 more hosts are in report.json"));
        let busiest = h.find("<code>198.18.0.12</code>").unwrap();
        assert!(busiest < h.find("<code>198.18.0.0</code></td><td>22").unwrap());
    }

    fn source() -> Source {
        Source {
            name: "r.json".into(),
            sha256: "00".into(),
        }
    }

    #[test]
    fn other_json_is_refused() {
        let e = render_html(
            &PageInput::from_value(serde_json::json!({"a": 1})),
            &source(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("not a sonde report"), "{e}");
    }

    #[test]
    fn bidi_and_control_characters_are_shown_not_obeyed() {
        assert_eq!(
            escape("ENG-\u{202E}txt.exe\u{1b}[2J<"),
            "ENG-\\u{202e}txt.exe\\u{1b}[2J&lt;"
        );
        assert_eq!(escape("line\nbreak\ttab"), "line\nbreak\ttab");
    }

    #[test]
    fn text_from_the_capture_is_escaped() {
        let a = serde_json::json!({
            "sonde_version": "x",
            "input": [{"path": "<script>alert(1)</script>", "packets": 1}],
            "summary": {"packets": 1},
            "timeline": {"bucket_seconds": 1, "start": null, "packets": [], "bytes": []},
            "anomalies": [{"kind": "dns_tunneling", "severity": "high",
                "summary": "<img src=x onerror=alert(1)>", "evidence": {"score": 1.0}}],
        });
        let page = render_html(&PageInput::from_value(a), &source()).unwrap();
        assert!(
            !page.contains("<script>") && !page.contains("<img"),
            "{page}"
        );
        assert!(page.contains("&lt;script&gt;"));
    }
}
