//! CSV of the recorded results (results.ndjson, as `--record` kept them):
//! one row per result under a header, RFC 4180 quoting by the `csv` crate.

use std::io::{self, BufRead, Write};

use super::{ExportError, ResultView, reason};

/// The header, in column order.
pub const COLUMNS: [&str; 13] = [
    "target", "protocol", "port", "probe", "state", "reason", "service", "ttl", "rtt_us", "time",
    "question", "rcode", "answers",
];

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
        let r: ResultView = serde_json::from_str(&line).map_err(|e| {
            ExportError::NotAScan(format!("results.ndjson line {n} is not a result: {e}"))
        })?;
        let protocol = match r.probe.as_str() {
            "syn" => "tcp",
            "dns" => "udp",
            _ => "icmp",
        };
        let port = match (r.port, r.probe.as_str()) {
            (Some(p), _) => p.to_string(),
            (None, "dns") => "53".into(),
            _ => String::new(),
        };
        let opt = |v: Option<String>| v.unwrap_or_default();
        w.write_record([
            r.target.to_string(),
            protocol.to_string(),
            port,
            r.probe.clone(),
            r.state.clone(),
            reason(&r).to_string(),
            opt(r.service.clone()),
            r.ttl.to_string(),
            opt(r.rtt_us.map(|v| v.to_string())),
            r.time.clone(),
            opt(r.question.clone()),
            opt(r.rcode.map(|v| v.to_string())),
            opt(r.answers.map(|v| v.to_string())),
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
