//! A scan's results in the formats other tools import: nmap XML (`-oX`),
//! nmap's greppable lines (`-oG`), masscan's list (`-oL`), CSV and the
//! NDJSON result stream (`-oJ`).
//!
//! Every format is derived from the run directory's `report.json` (its
//! per-host table: findings in full, the rest folded into counts by state
//! and reason) and, for CSV and NDJSON, `results.ndjson`: the same files
//! whether they are written at the end of `sonde scan` or afterwards by
//! `sonde report RUN_DIR --format ...`. The run directory stays the
//! evidence; these are views of it.

mod grepable;
mod list;
mod nmap_xml;
mod table;

use crate::probe::Verdict;
use crate::results::{HostResults, ScanReport, ScanResult};
use crate::scope::ProbeKind;
use crate::targets::{AddrRange, IpSet, PortSet};
use std::io::{self, BufRead, Write};

pub use table::{COLUMNS, write_csv};

/// The formats `sonde report --format` and `scan -oX/-oG/-oL/-oJ` write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// nmap XML (nmap.dtd): Metasploit, DefectDojo, python-libnmap, nmap.xsl.
    Xml,
    /// nmap's greppable lines (`-oG`).
    Grepable,
    /// masscan's list (`-oL`): `open tcp 22 ADDRESS TIME`.
    List,
    /// One line per recorded result, with a header.
    Csv,
    /// The NDJSON result stream (results.ndjson, as `--record` kept it).
    Ndjson,
}

impl ExportFormat {
    /// What the format is called in messages.
    pub fn name(self) -> &'static str {
        match self {
            ExportFormat::Xml => "nmap XML",
            ExportFormat::Grepable => "greppable",
            ExportFormat::List => "list",
            ExportFormat::Csv => "CSV",
            ExportFormat::Ndjson => "NDJSON",
        }
    }

    /// Whether the format is built from results.ndjson (else report.json).
    pub fn reads_results(self) -> bool {
        matches!(self, ExportFormat::Csv | ExportFormat::Ndjson)
    }
}

/// Why a report could not be exported.
#[derive(Debug)]
pub enum ExportError {
    /// The JSON is not a scan report (an analysis report, or something else).
    NotAScan(String),
    /// Reading or writing failed.
    Io(io::Error),
}

impl std::fmt::Display for ExportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExportError::NotAScan(why) => write!(f, "not a scan report: {why}"),
            ExportError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ExportError {}

impl From<io::Error> for ExportError {
    fn from(e: io::Error) -> ExportError {
        ExportError::Io(e)
    }
}

/// Read a scan's report.json; an analysis report or other JSON is refused
/// with what is missing.
pub fn read_scan(bytes: &[u8]) -> Result<ScanReport, ExportError> {
    let doc: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| ExportError::NotAScan(e.to_string()))?;
    if doc.get("parameters").is_none() || doc.get("hosts").is_none() {
        return Err(ExportError::NotAScan(
            "it has no \"parameters\" and \"hosts\" (an analysis report has no scan results)"
                .into(),
        ));
    }
    serde_json::from_value(doc).map_err(|e| ExportError::NotAScan(e.to_string()))
}

/// What the exports ask of a scan report beyond its fields.
pub trait ScanExport {
    /// How many addresses the scan's target list held.
    fn target_count(&self) -> u128;
    /// The addresses discovery found down, by reason.
    fn down(&self) -> Vec<(&'static str, AddrRange)>;
    /// How many addresses discovery found down.
    fn down_count(&self) -> u64;
    /// Seconds since the epoch of the scan's start and end.
    fn start_end(&self) -> (i64, i64);
}

impl ScanExport for ScanReport {
    fn target_count(&self) -> u128 {
        let mut set = IpSet::new();
        for t in &self.parameters.targets {
            if let Some(r) = parse_range(t) {
                set.insert(r);
            }
        }
        set.count(crate::targets::Family::V4) + set.count(crate::targets::Family::V6)
    }

    fn down(&self) -> Vec<(&'static str, AddrRange)> {
        self.neighbour_discovery
            .down
            .iter()
            .flat_map(|g| {
                g.addresses
                    .iter()
                    .filter_map(|a| parse_range(a).map(|r| (g.reason.as_str(), r)))
            })
            .collect()
    }

    fn down_count(&self) -> u64 {
        self.neighbour_discovery.down.iter().map(|g| g.count).sum()
    }

    fn start_end(&self) -> (i64, i64) {
        (epoch(&self.started), epoch(&self.finished))
    }
}

/// `ADDRESS`, `FIRST-LAST` or `BASE/PREFIX`, as the report writes ranges.
pub fn parse_range(s: &str) -> Option<AddrRange> {
    if let Some((base, prefix)) = s.split_once('/') {
        return AddrRange::cidr(base.parse().ok()?, prefix.parse().ok()?).ok();
    }
    if let Some((a, b)) = s.split_once('-') {
        return AddrRange::new(a.parse().ok()?, b.parse().ok()?).ok();
    }
    s.parse().ok().map(AddrRange::single)
}

/// Seconds since the epoch of an RFC 3339 time (0 if it is not one).
pub fn epoch(s: &str) -> i64 {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_or(0, |t| t.unix_timestamp())
}

/// nmap's way of writing a time: `Mon Nov 30 01:02:03 2026` (UTC here).
pub fn nmap_time(s: &str) -> String {
    let Ok(t) = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
    else {
        return s.to_string();
    };
    let f = time::macros::format_description!(
        "[weekday repr:short] [month repr:short] [day padding:space] [hour]:[minute]:[second] [year]"
    );
    t.format(&f).unwrap_or_else(|_| s.to_string())
}

/// A host's SYN ports, accounted as nmap lists them.
#[derive(Debug, Default)]
pub struct PortAccount<'a> {
    /// Listed one by one: open ports, and filtered or unreachable ones
    /// whose ICMP error named them (with their result).
    pub listed: Vec<&'a ScanResult>,
    /// Folded: (state, reason, count, ports if known).
    pub folded: Vec<(&'static str, &'a str, u64, Option<&'a PortSet>)>,
    /// Ports that got no answer at all: nmap's "filtered (no-response)",
    /// with their ranges when every other port's is known.
    pub no_response: u64,
    pub no_response_ports: Option<PortSet>,
}

/// What the exports ask of a host's results.
pub trait HostExport {
    /// Account for every SYN port of `scanned` on this host.
    fn syn_account(&self, scanned: &PortSet) -> PortAccount<'_>;
    /// The host's echo reply, if it answered ping.
    fn echo(&self) -> Option<&ScanResult>;
    /// The host's DNS answers.
    fn dns(&self) -> impl Iterator<Item = &ScanResult>;
    /// Why the host is up, as nmap says it: the reply that showed it, and
    /// that reply's TTL.
    fn up_reason(&self) -> (&'static str, u8);
}

impl HostExport for HostResults {
    fn syn_account(&self, scanned: &PortSet) -> PortAccount<'_> {
        let mut a = PortAccount::default();
        let mut known = PortSet::new();
        let mut all_known = true;
        for r in &self.results {
            if r.probe == ProbeKind::Syn
                && let Some(p) = r.port
            {
                a.listed.push(r);
                known.insert(p, p);
            }
        }
        let mut accounted = a.listed.len() as u64;
        for f in self.not_shown.iter().filter(|f| f.probe == ProbeKind::Syn) {
            a.folded
                .push((f.state.as_str(), &f.reason, f.count, f.ports.as_ref()));
            accounted += f.count;
            match &f.ports {
                Some(ports) => known.union_with(ports),
                None => all_known = false,
            }
        }
        a.no_response = (scanned.len() as u64).saturating_sub(accounted);
        if a.no_response > 0 && all_known {
            let mut rest = PortSet::new();
            for p in scanned.iter().filter(|p| !known.contains(*p)) {
                rest.insert(p, p);
            }
            a.no_response_ports = Some(rest);
        }
        a
    }

    fn echo(&self) -> Option<&ScanResult> {
        self.results
            .iter()
            .find(|r| r.probe == ProbeKind::Icmp && r.verdict == Verdict::Up)
    }

    fn dns(&self) -> impl Iterator<Item = &ScanResult> {
        self.results.iter().filter(|r| r.probe == ProbeKind::Dns)
    }

    fn up_reason(&self) -> (&'static str, u8) {
        let first = |pred: &dyn Fn(&ScanResult) -> bool| self.results.iter().find(|r| pred(r));
        if let Some(r) = first(&|r| r.probe == ProbeKind::Icmp && r.verdict == Verdict::Up) {
            return ("echo-reply", r.ttl);
        }
        if let Some(r) = first(&|r| r.probe == ProbeKind::Syn && r.verdict == Verdict::Open) {
            return ("syn-ack", r.ttl);
        }
        if let Some(r) = first(&|r| r.probe == ProbeKind::Dns) {
            return ("udp-response", r.ttl);
        }
        if self
            .not_shown
            .iter()
            .any(|f| f.probe == ProbeKind::Syn && f.reason == "rst")
        {
            return ("reset", 0);
        }
        if let Some(r) = self.results.first() {
            return (icmp_reason(r), r.ttl);
        }
        ("user-set", 0)
    }
}

/// nmap's reason for a port or host a result showed.
pub fn reason(r: &ScanResult) -> &'static str {
    match (r.probe, r.verdict) {
        (ProbeKind::Syn, Verdict::Open) => "syn-ack",
        (ProbeKind::Syn, Verdict::Closed) => "reset",
        (ProbeKind::Icmp, Verdict::Up) => "echo-reply",
        (ProbeKind::Dns, _) => "udp-response",
        _ => icmp_reason(r),
    }
}

/// nmap's names for ICMP errors (its reason.cc).
pub fn icmp_reason(r: &ScanResult) -> &'static str {
    let (t, c) = r.icmp().unzip();
    icmp_name(t, c)
}

fn icmp_name(icmp_type: Option<u8>, icmp_code: Option<u8>) -> &'static str {
    match (icmp_type, icmp_code) {
        (Some(3), Some(0)) => "net-unreach",
        (Some(3), Some(1)) => "host-unreach",
        (Some(3), Some(2)) => "proto-unreach",
        (Some(3), Some(3)) => "port-unreach",
        (Some(3), Some(9)) => "net-prohibited",
        (Some(3), Some(10)) => "host-prohibited",
        (Some(3), Some(13)) => "admin-prohibited",
        (Some(11), _) => "time-exceeded",
        (Some(1 | 129), _) => "host-unreach",
        _ => "unknown-response",
    }
}

/// nmap's reason for a folded group (`rst`, or `icmp TYPE/CODE`).
pub fn folded_reason(reason: &str) -> String {
    if reason == "rst" {
        return "reset".into();
    }
    let mut it = reason
        .trim_start_matches("icmp ")
        .split('/')
        .map(|n| n.parse::<u8>().ok());
    let (t, c) = (it.next().flatten(), it.next().flatten());
    icmp_name(t, c).to_string()
}

/// A port state as nmap names it (sonde's `unreachable` is nmap's
/// `filtered`: an ICMP error other than admin-prohibited).
pub fn nmap_state(state: &str) -> &str {
    match state {
        "unreachable" => "filtered",
        s => s,
    }
}

/// Write `format` of the run whose report.json holds `report` (and whose
/// results.ndjson `results` reads, for CSV and NDJSON) to `out`.
pub fn export(
    format: ExportFormat,
    report: &[u8],
    results: Option<&mut dyn BufRead>,
    out: &mut dyn Write,
) -> Result<(), ExportError> {
    let scan = read_scan(report)?;
    match format {
        ExportFormat::Xml => nmap_xml::write(&scan, out)?,
        ExportFormat::Grepable => grepable::write(&scan, out)?,
        ExportFormat::List => list::write(&scan, out)?,
        ExportFormat::Csv | ExportFormat::Ndjson => {
            let Some(results) = results else {
                return Err(ExportError::Io(io::Error::other(
                    "the run directory has no results.ndjson",
                )));
            };
            if format == ExportFormat::Csv {
                write_csv(results, out)?;
            } else {
                io::copy(results, out)?;
            }
        }
    }
    out.flush()?;
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests;
