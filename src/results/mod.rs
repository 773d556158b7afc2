//! What a scan found, and the report that records it: one definition of
//! every type `scan` writes and `evidence`, `report`, `scan`'s resume and
//! merge read back (issue 25, item 2). Pure data: serde both ways, no I/O.
//!
//! `report.json` is a [`ScanReport`]; `results.ndjson` is one
//! [`ScanResult`] per line. A field renamed here is renamed for every
//! reader, and `docs/scan-report.schema.json` is checked against these
//! types (`tests/offline/scan_report_types.rs`).

pub mod compliance;
mod report;
mod service;

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::probe::Verdict;
use crate::scope::ProbeKind;
use crate::targets::PortSet;

pub use report::*;
pub use service::{
    EXPIRING_DAYS, Protocol, ServiceFinding, ServiceFindingKind, ServiceKind, ServiceResult,
    Severity, TlsResult,
};

/// What a scan's evidence keeps of the probes it sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EvidenceMode {
    /// Every probe and every reply in the pcap (the default: any tool
    /// reads it, and it shows the bytes as they left).
    #[default]
    Full,
    /// The replies in the pcap; the probes as what regenerates them
    /// exactly, hash-chained (`evidence::sent_log`), which `sonde verify`
    /// rebuilds.
    Compact,
}

impl EvidenceMode {
    pub fn name(self) -> &'static str {
        match self {
            EvidenceMode::Full => "full",
            EvidenceMode::Compact => "compact",
        }
    }
}

impl std::str::FromStr for EvidenceMode {
    type Err = String;
    fn from_str(s: &str) -> Result<EvidenceMode, String> {
        match s {
            "full" => Ok(EvidenceMode::Full),
            "compact" => Ok(EvidenceMode::Compact),
            other => Err(format!(
                "{other:?} is not an evidence mode: full (every probe and reply in the pcap; the default) or compact (replies in the pcap, probes in sent.jsonl)"
            )),
        }
    }
}

/// Which per-probe results the NDJSON stream records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordMode {
    /// Positive findings only: open ports, echo replies, DNS answers.
    Open,
    /// Every reply but a closed port's RST (counted per host in the
    /// report): the default, since closed ports are most of a scan's
    /// replies and the least of its findings.
    #[default]
    Answered,
    /// Every reply.
    All,
}

impl RecordMode {
    pub fn records(self, verdict: &Verdict) -> bool {
        match self {
            RecordMode::All => true,
            RecordMode::Answered => !matches!(verdict, Verdict::Closed),
            RecordMode::Open => is_finding(verdict),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            RecordMode::Open => "open",
            RecordMode::Answered => "answered",
            RecordMode::All => "all",
        }
    }
}

impl std::str::FromStr for RecordMode {
    type Err = String;
    fn from_str(s: &str) -> Result<RecordMode, String> {
        match s {
            "open" => Ok(RecordMode::Open),
            "answered" => Ok(RecordMode::Answered),
            "all" => Ok(RecordMode::All),
            other => Err(format!(
                "{other:?} is not a record mode: open, answered (the default) or all"
            )),
        }
    }
}

/// A positive answer, kept in full.
pub fn is_finding(verdict: &Verdict) -> bool {
    matches!(
        verdict,
        Verdict::Open | Verdict::Up | Verdict::DnsAnswer { .. }
    )
}

/// One result: the first valid reply to a probe. Read back through
/// [`ResultRecord`], which refuses a member it does not know.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "ResultRecord")]
pub struct ScanResult {
    pub target: IpAddr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    pub probe: ProbeKind,
    /// The DNS question, NAME:TYPE (DNS results only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub question: Option<Arc<str>>,
    /// nmap's name for the port's service (`ssh`; `domain` for DNS), as
    /// nmap prints it beside a port; none for ICMP or an unnamed port.
    /// Borrowed from the services table while scanning; owned when read
    /// back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<Cow<'static, str>>,
    #[serde(flatten)]
    pub verdict: Verdict,
    pub ttl: u8,
    /// Microseconds from the first probe of this target/port to the reply
    /// (kept for the first 100,000 probes of a scan).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtt_us: Option<u64>,
    /// When the reply was captured (RFC 3339 in JSON).
    pub time: CaptureTime,
}

/// A result as `report.json` and `results.ndjson` write it: the verdict's
/// members flat beside the others.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResultRecord {
    target: IpAddr,
    #[serde(default)]
    port: Option<u16>,
    probe: ProbeKind,
    #[serde(default)]
    question: Option<Arc<str>>,
    #[serde(default)]
    service: Option<String>,
    state: String,
    #[serde(default)]
    icmp_type: Option<u8>,
    #[serde(default)]
    icmp_code: Option<u8>,
    #[serde(default)]
    rcode: Option<u8>,
    #[serde(default)]
    answers: Option<u16>,
    #[serde(default)]
    recursion_available: Option<bool>,
    ttl: u8,
    #[serde(default)]
    rtt_us: Option<u64>,
    time: CaptureTime,
}

impl TryFrom<ResultRecord> for ScanResult {
    type Error = String;

    fn try_from(r: ResultRecord) -> Result<ScanResult, String> {
        let icmp = || match (r.icmp_type, r.icmp_code) {
            (Some(t), Some(c)) => Ok((t, c)),
            _ => Err(format!(
                "a {} result without icmp_type and icmp_code",
                r.state
            )),
        };
        let verdict = match r.state.as_str() {
            "open" => Verdict::Open,
            "closed" => Verdict::Closed,
            "up" => Verdict::Up,
            "filtered" => {
                let (icmp_type, icmp_code) = icmp()?;
                Verdict::Filtered {
                    icmp_type,
                    icmp_code,
                }
            }
            "unreachable" => {
                let (icmp_type, icmp_code) = icmp()?;
                Verdict::Unreachable {
                    icmp_type,
                    icmp_code,
                }
            }
            "dns_answer" => match (r.rcode, r.answers, r.recursion_available) {
                (Some(rcode), Some(answers), Some(recursion_available)) => Verdict::DnsAnswer {
                    rcode,
                    answers,
                    recursion_available,
                },
                _ => {
                    return Err(
                        "a dns_answer result without rcode, answers and recursion_available".into(),
                    );
                }
            },
            other => {
                return Err(format!(
                    "state {other:?} is not one of open, closed, filtered, up, unreachable, dns_answer"
                ));
            }
        };
        Ok(ScanResult {
            target: r.target,
            port: r.port,
            probe: r.probe,
            question: r.question,
            service: r.service.map(Cow::Owned),
            verdict,
            ttl: r.ttl,
            rtt_us: r.rtt_us,
            time: r.time,
        })
    }
}

impl ScanResult {
    /// The state as the report names it: `open`, `closed`, `filtered`,
    /// `up`, `unreachable`, `dns_answer`.
    pub fn state(&self) -> &'static str {
        match self.verdict {
            Verdict::Open => "open",
            Verdict::Closed => "closed",
            Verdict::Filtered { .. } => "filtered",
            Verdict::Up => "up",
            Verdict::Unreachable { .. } => "unreachable",
            Verdict::DnsAnswer { .. } => "dns_answer",
        }
    }

    /// The ICMP error's (type, code), for a filtered or unreachable port.
    pub fn icmp(&self) -> Option<(u8, u8)> {
        match self.verdict {
            Verdict::Filtered {
                icmp_type,
                icmp_code,
            }
            | Verdict::Unreachable {
                icmp_type,
                icmp_code,
            } => Some((icmp_type, icmp_code)),
            _ => None,
        }
    }

    /// A DNS answer's (rcode, answers, recursion available).
    pub fn dns_answer(&self) -> Option<(u8, u16, bool)> {
        match self.verdict {
            Verdict::DnsAnswer {
                rcode,
                answers,
                recursion_available,
            } => Some((rcode, answers, recursion_available)),
            _ => None,
        }
    }
}

/// Nanoseconds since the Unix epoch, written as RFC 3339. A result holds no
/// heap data, so a scan's memory is a fixed size per reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct CaptureTime(pub i64);

impl CaptureTime {
    /// Whole seconds since the epoch.
    pub fn seconds(self) -> i64 {
        self.0.div_euclid(1_000_000_000)
    }
}

impl std::fmt::Display for CaptureTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::clock::timestamp(self.0))
    }
}

impl Serialize for CaptureTime {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::clock::timestamp(self.0))
    }
}

impl<'de> Deserialize<'de> for CaptureTime {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<CaptureTime, D::Error> {
        let text = Cow::<'de, str>::deserialize(d)?;
        let t = time::OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339)
            .map_err(|e| {
                serde::de::Error::custom(format!("{text:?} is not an RFC 3339 time: {e}"))
            })?;
        i64::try_from(t.unix_timestamp_nanos())
            .map(CaptureTime)
            .map_err(|_| serde::de::Error::custom(format!("{text:?} is out of range")))
    }
}

/// Counters of one run (of a resumed run, every segment's; of a merged
/// run, every shard's).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Counters {
    pub sent: u64,
    /// Probes not sent because their target answered no ARP request or
    /// neighbour solicitation (down).
    pub skipped_down: u64,
    pub received: u64,
    pub matched: u64,
    pub invalid: u64,
    pub duplicates: u64,
    pub retried: u64,
    pub kernel_drops: u64,
}

impl std::ops::AddAssign for Counters {
    fn add_assign(&mut self, o: Counters) {
        self.sent += o.sent;
        self.skipped_down += o.skipped_down;
        self.received += o.received;
        self.matched += o.matched;
        self.invalid += o.invalid;
        self.duplicates += o.duplicates;
        self.retried += o.retried;
        self.kernel_drops += o.kernel_drops;
    }
}

/// The state of a folded group: every answer that is not a finding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FoldedState {
    Closed,
    Filtered,
    Unreachable,
}

impl FoldedState {
    pub fn as_str(self) -> &'static str {
        match self {
            FoldedState::Closed => "closed",
            FoldedState::Filtered => "filtered",
            FoldedState::Unreachable => "unreachable",
        }
    }
}

impl std::fmt::Display for FoldedState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Results of one kind, state and reason on one host, folded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Folded {
    pub probe: ProbeKind,
    pub state: FoldedState,
    /// `rst`, or `icmp TYPE/CODE`.
    pub reason: String,
    pub count: u64,
    /// The ports as ranges (`1-21,23-79`); `None` when they were scattered
    /// over too many ranges, or for ICMP.
    #[serde(with = "ports_text")]
    pub ports: Option<PortSet>,
}

mod ports_text {
    use super::PortSet;
    use serde::Deserialize;

    pub fn serialize<S: serde::Serializer>(p: &Option<PortSet>, s: S) -> Result<S::Ok, S::Error> {
        match p {
            Some(p) => s.serialize_str(&p.to_string()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<PortSet>, D::Error> {
        match Option::<String>::deserialize(d)? {
            Some(text) => PortSet::parse(&text)
                .map(Some)
                .map_err(|e| serde::de::Error::custom(format!("ports {text:?}: {e}"))),
            None => Ok(None),
        }
    }
}

/// One host's results.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostResults {
    pub address: IpAddr,
    /// Positive findings in full, sorted by port, kind and question.
    pub results: Vec<ScanResult>,
    /// Everything else, folded.
    pub not_shown: Vec<Folded>,
    /// What runs on the open ports (`--probe syn,service`), by port.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<ServiceResult>,
}

impl HostResults {
    pub fn open_ports(&self) -> impl Iterator<Item = u16> + '_ {
        self.results
            .iter()
            .filter(|r| r.verdict == Verdict::Open)
            .filter_map(|r| r.port)
    }

    pub fn answers_ping(&self) -> bool {
        self.results.iter().any(|r| r.verdict == Verdict::Up)
    }
}
