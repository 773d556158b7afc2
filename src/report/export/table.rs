//! CSV of the recorded results (results.ndjson, as `--record` kept them):
//! one row per result under a header, RFC 4180 quoting by the `csv` crate.

use std::io::{self, BufRead, Write};

use super::{ExportError, reason};
use crate::results::ScanResult;
use crate::scope::ProbeKind;

/// The header, in column order.
pub const COLUMNS: [&str; 16] = [
    "target",
    "protocol",
    "port",
    "probe",
    "state",
    "reason",
    "service",
    "ttl",
    "rtt_us",
    "time",
    "question",
    "rcode",
    "answers",
    "product",
    "version",
    "extrainfo",
];

/// A line of results.ndjson: a probe's result, or a port's service.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum Line {
    Service(Box<crate::results::ServiceResult>),
    Result(ScanResult),
}

/// Write one CSV row per line of `results` (NDJSON results) to `out`.
pub fn write_csv(results: &mut dyn BufRead, out: &mut dyn Write) -> Result<(), ExportError> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(COLUMNS).map_err(csv_err)?;
    let mut line = String::new();
    let mut n = 0u64;
    loop {
        line.clear();
        if results.read_line(&mut line)? == 0 {
            break;
        }
        n += 1;
        if line.trim().is_empty() {
            continue;
        }
        let line: Line = serde_json::from_str(&line).map_err(|e| {
            ExportError::NotAScan(format!(
                "results.ndjson line {n} is not a result or a service: {e}"
            ))
        })?;
        let r = match line {
            Line::Result(r) => r,
            Line::Service(s) => {
                let opt = |v: &Option<String>| v.clone().unwrap_or_default();
                w.write_record([
                    s.target.to_string(),
                    s.protocol.name().into(),
                    s.port.to_string(),
                    "service".into(),
                    "open".into(),
                    s.method.clone(),
                    match (&s.service, &s.tunnel) {
                        (Some(n), Some(_)) => format!("ssl/{n}"),
                        (n, _) => opt(n),
                    },
                    String::new(),
                    String::new(),
                    s.time.to_string(),
                    String::new(),
                    String::new(),
                    String::new(),
                    opt(&s.product),
                    opt(&s.version),
                    opt(&s.extrainfo),
                ])
                .map_err(csv_err)?;
                continue;
            }
        };
        let protocol = match r.probe {
            ProbeKind::Syn | ProbeKind::Service => "tcp",
            ProbeKind::Dns => "udp",
            ProbeKind::Icmp => "icmp",
        };
        let port = match (r.port, r.probe) {
            (Some(p), _) => p.to_string(),
            (None, ProbeKind::Dns) => "53".into(),
            _ => String::new(),
        };
        let dns = r.dns_answer();
        let opt = |v: Option<String>| v.unwrap_or_default();
        w.write_record([
            r.target.to_string(),
            protocol.to_string(),
            port,
            r.probe.name().to_string(),
            r.state().to_string(),
            reason(&r).to_string(),
            opt(r.service.as_deref().map(str::to_string)),
            r.ttl.to_string(),
            opt(r.rtt_us.map(|v| v.to_string())),
            r.time.to_string(),
            opt(r.question.as_deref().map(str::to_string)),
            opt(dns.map(|d| d.0.to_string())),
            opt(dns.map(|d| d.1.to_string())),
            String::new(),
            String::new(),
            String::new(),
        ])
        .map_err(csv_err)?;
    }
    w.flush()?;
    Ok(())
}

fn csv_err(e: csv::Error) -> ExportError {
    match e.into_kind() {
        csv::ErrorKind::Io(e) => ExportError::Io(e),
        other => ExportError::Io(io::Error::other(format!("{other:?}"))),
    }
}
