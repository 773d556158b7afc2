//! `report.json`: what a run (a scan, its resumed segments, or a merge of
//! shards) wrote as its report, one typed definition for writers and
//! readers. `docs/scan-report.schema.json` documents the same shape for
//! other tools; `tests/offline/scan_report_types.rs` checks the two agree.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::{Counters, EvidenceMode, HostResults, RecordMode};
use crate::scope::ProbeKind;

/// A run's report. `H` is the hosts member: [`HostResults`] for a reader
/// that uses them, `serde::de::IgnoredAny` for one that only checks the
/// head of a large report (verify), so one definition serves both.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScanReport<H = Vec<HostResults>> {
    pub sonde_version: String,
    /// The command line, as the process received it.
    pub command: Vec<String>,
    /// Who ran it: the invoking user under sudo, else the real user.
    pub operator: String,
    /// The scanning machine's host name.
    pub host: String,
    pub started: String,
    pub finished: String,
    pub run_directory: String,
    pub scope: ScopeRecord,
    pub parameters: Parameters,
    /// What makes shards parts of one scan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<Identity>,
    /// A merged run: its manifest and shards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merge: Option<MergeRecord>,
    pub interrupted: bool,
    pub output_error: Option<String>,
    pub planned_probes: u64,
    pub max_probes: Option<u64>,
    /// Why the scope ended sending early, if it did.
    pub scope_stopped: Option<String>,
    /// Results may miss replies when the kernel dropped packets or an
    /// output failed.
    pub possibly_incomplete: bool,
    pub counters: Counters,
    /// The rate asked for, the rate achieved, and what held it back.
    pub rate: RateReport,
    /// The scan's own ARP/NDP before the first probe.
    pub neighbour_discovery: NeighbourDiscovery,
    /// Every link the run went through, each with its targets (none
    /// for a merge: each shard's report has its own).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<LinkReport>,
    /// The passes sent and what each found (none for a merge).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passes: Option<PassReport>,
    pub probes: u64,
    /// Probes without a reply, per kind.
    pub unanswered: BTreeMap<ProbeKind, u64>,
    /// Each part of a run that was interrupted and resumed (none for a
    /// merge).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub segments: Vec<Segment>,
    /// Every file written before the report, with its hash and size.
    pub files: Vec<FileRecord>,
    /// The report's anchor in the audit chain.
    pub audit: AuditAnchor,
    pub compliance: Vec<ComplianceControl>,
    /// The analysis of the run's own capture (`docs/report.schema.json`;
    /// null when it could not be read).
    pub capture_analysis: Option<serde_json::Value>,
    /// What that analysis took (null when it failed).
    pub capture_analysis_cost: Option<AnalysisCost>,
    pub hosts: H,
}

impl<H> ScanReport<H> {
    /// The record of `name` among the files, if the run wrote it.
    pub fn file(&self, name: &str) -> Option<&FileRecord> {
        self.files.iter().find(|f| f.name == name)
    }

    /// The record of the file with `role` (`pcap`, `results`, ...).
    pub fn file_with_role(&self, role: &str) -> Option<&FileRecord> {
        self.files.iter().find(|f| f.role == role)
    }

    /// The SHA-256 of each capture the embedded analysis read, in order
    /// (the analysis report's `input`).
    pub fn analyzed_captures(&self) -> Vec<String> {
        #[derive(Deserialize)]
        struct Input {
            sha256: Option<String>,
        }
        #[derive(Deserialize)]
        struct Analysis {
            #[serde(default)]
            input: Vec<Input>,
        }
        self.capture_analysis
            .as_ref()
            .and_then(|a| Analysis::deserialize(a).ok())
            .map(|a| a.input.into_iter().filter_map(|i| i.sha256).collect())
            .unwrap_or_default()
    }

    /// The SYN ports scanned, when SYN probes were sent.
    pub fn syn_ports(&self) -> Option<crate::targets::PortSet> {
        if !self.parameters.probes.contains(&ProbeKind::Syn) {
            return None;
        }
        crate::targets::PortSet::parse(&self.parameters.ports).ok()
    }
}

/// The scope file the run was judged under.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeRecord {
    /// As given on the command line.
    pub path: String,
    pub absolute_path: String,
    pub sha256: String,
    pub engagement_id: String,
    pub client: String,
    pub authorized_by: String,
    pub contact: String,
    pub not_before: String,
    pub not_after: String,
    pub max_rate: f64,
}

/// The scan's parameters as the run resolved them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Parameters {
    pub targets: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
    pub ports: String,
    pub probes: Vec<ProbeKind>,
    pub rate: f64,
    pub retries: u32,
    pub wait_seconds: f64,
    pub wait_adaptive: bool,
    pub seed: u64,
    pub shard: String,
    pub dns_query: Vec<String>,
    #[serde(default)]
    pub interface: Option<String>,
    #[serde(default)]
    pub source_ip: Option<IpAddr>,
    pub senders: usize,
    pub record: RecordMode,
    pub evidence: EvidenceMode,
    pub sniffer_buffer: usize,
}

/// What makes shards parts of one scan: `sonde merge` joins only runs
/// whose identities agree but for the shard.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    pub scope_sha256: String,
    pub targets: Vec<String>,
    pub ports: String,
    pub probes: Vec<ProbeKind>,
    pub dns_query: Vec<String>,
    pub retries: u32,
    /// What the results file holds: shards that recorded different
    /// results are not one scan's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<RecordMode>,
    pub seed: u64,
    pub shard: String,
    /// Every shard's probes, one pass.
    pub index_space: u64,
}

/// A merged run's manifest name and shards.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MergeRecord {
    pub manifest: String,
    pub shards: Vec<ShardRecord>,
}

/// A merged run's manifest (`merge.json`): the scan's identity and the
/// shards it joined.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MergeManifest {
    pub identity: Identity,
    pub shards: Vec<ShardRecord>,
}

/// One shard of a merged run, as its own run directory recorded it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardRecord {
    /// `INDEX/COUNT`.
    pub shard: String,
    pub run_directory: String,
    pub report_sha256: String,
    pub audit_head: String,
    pub pcap_sha256: Option<String>,
    pub started: String,
    pub finished: String,
    pub host: String,
    pub operator: String,
    pub probes: u64,
    pub rate: RateReport,
}

/// The rate asked for, the rate achieved, and what held it back.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateReport {
    /// Packets per second the gate paced to.
    pub requested: f64,
    /// First-pass probes per second of the first pass (discovery and the
    /// retries excluded): the rate the scan ran at.
    pub achieved: f64,
    /// Seconds of sending, every pass.
    pub sending_seconds: f64,
    /// Seconds of neighbour discovery before the first probe.
    pub discovery_seconds: f64,
    /// Set when the rate stayed below 90% of the requested one for 5 s.
    pub shortfall: Option<RateShortfall>,
}

/// What limited the rate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LimitingStage {
    /// The sending threads never waited for the gate: they (their CPU,
    /// the kernel's send path) are the limit. More `--senders` may help.
    SenderCpu,
    /// The kernel dropped replies the receive thread did not take in time.
    ReceiverDrops,
    /// The threads waited for the gate and still fell short: bursts lost to
    /// scheduling on a loaded machine.
    Pacing,
}

impl LimitingStage {
    pub fn describe(self) -> &'static str {
        match self {
            LimitingStage::SenderCpu => {
                "the sending threads (CPU or the kernel's send path; more --senders may help)"
            }
            LimitingStage::ReceiverDrops => "the receive side (the kernel dropped replies)",
            LimitingStage::Pacing => "pacing on a loaded machine (the threads waited for the gate)",
        }
    }
}

/// A rate that stayed below 90% of the requested one for 5 seconds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateShortfall {
    pub requested: f64,
    /// Probes per second over the last second when it was noticed.
    pub achieved: f64,
    pub stage: LimitingStage,
    /// Seconds after sending began.
    pub after_seconds: f64,
}

/// What the scan's own ARP/NDP found before the first probe.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NeighbourDiscovery {
    /// Next hops whose MAC sonde asked for itself.
    pub asked: u64,
    /// Of those, the ones that answered.
    pub answered: u64,
    /// Requests sent (every round).
    pub requests_sent: u64,
    /// Targets that never answered: down, not probed.
    pub down: Vec<DownHosts>,
}

/// Targets found down before the first probe, folded into address ranges.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DownHosts {
    pub reason: DownReason,
    pub count: u64,
    /// Address ranges.
    pub addresses: Vec<String>,
}

/// Why a target was found down.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DownReason {
    /// It answered no ARP request (IPv4).
    NoArpReply,
    /// It answered no neighbour solicitation (IPv6).
    NoNdReply,
}

impl std::fmt::Display for DownReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl DownReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DownReason::NoArpReply => "no-arp-reply",
            DownReason::NoNdReply => "no-nd-reply",
        }
    }
}

/// One link of a run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkReport {
    /// The interface's name.
    pub interface: String,
    /// How its targets are reached: `on-link`, `via GATEWAY`, `through the kernel`.
    pub reached: String,
    /// Its targets, as address ranges.
    pub targets: Vec<String>,
    /// The source addresses of its probes.
    pub sources: Vec<IpAddr>,
}

/// The passes of a run: the retries asked for, the ones added because the
/// link lost packets, and what each pass found.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PassReport {
    /// `--retries`: the retry passes always sent (unanswered probes only).
    pub retries: u32,
    /// `--max-retries`: the most retry passes when passes keep finding answers.
    pub max_retries: u32,
    /// Retry passes added past `retries` because the one before still
    /// found answers.
    pub added: u32,
    /// Each pass sent (0: the first), with the results that came while it
    /// was sent and in the pause after it.
    pub answers: Vec<PassAnswers>,
    /// The share of results that only a retry pass got: how much the first
    /// pass lost to the link (about the round trip's loss rate).
    pub loss_estimate: f64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PassAnswers {
    pub pass: u32,
    pub results: u64,
}

/// The share of results that only a retry pass got, from the results of
/// each pass (pass, results): about the round trip's loss rate (rounded
/// to four places; 0 without results).
pub fn loss_estimate(found: &[(u32, u64)]) -> f64 {
    let total: u64 = found.iter().map(|p| p.1).sum();
    let later: u64 = found.iter().filter(|p| p.0 > 0).map(|p| p.1).sum();
    if total == 0 {
        0.0
    } else {
        ((later as f64 / total as f64) * 10_000.0).round() / 10_000.0
    }
}

impl PassReport {
    pub fn new(retries: u32, max_retries: u32, found: Vec<(u32, u64)>) -> PassReport {
        PassReport {
            retries,
            max_retries,
            added: found
                .iter()
                .filter(|p| p.0 > retries)
                .count()
                .try_into()
                .unwrap_or(u32::MAX),
            loss_estimate: loss_estimate(&found),
            answers: found
                .into_iter()
                .map(|(pass, results)| PassAnswers { pass, results })
                .collect(),
        }
    }
}

/// Where an interrupted scan stopped: the pass, the probe kind (its index
/// among the plan's kinds) and each sending thread's next position in its
/// share of that kind's order (`None`: its share was done). Every probe
/// before it was sent (or skipped as down) in that pass; none after.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StopPoint {
    pub pass: u32,
    pub kind: usize,
    pub next: Vec<Option<u64>>,
}

impl StopPoint {
    /// The start of `pass`, for `senders` threads.
    pub fn start_of(pass: u32, senders: usize) -> StopPoint {
        StopPoint {
            pass,
            kind: 0,
            next: vec![Some(0); senders],
        }
    }
}

/// One part of a run: the first, or one that `--resume` appended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Segment {
    /// 1 for the first.
    pub segment: u64,
    pub started: String,
    pub finished: String,
    pub probes: u64,
    pub sent: u64,
    pub interrupted: bool,
    /// Where sending stopped early (null: every pass ran).
    pub stopped_at: Option<StopPoint>,
    /// The segment was cut (killed outright, or its outputs failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cut: Option<SegmentCut>,
}

/// How a cut segment ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentCut {
    /// When its audit log ends.
    pub at: String,
    /// The checkpoint the next segment went on from (none: cut before
    /// its first checkpoint).
    pub checkpoint: Option<u64>,
}

/// A file the run wrote before its report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRecord {
    pub name: String,
    /// `pcap`, `results`, `sent-probes`, `merge-manifest`.
    pub role: String,
    pub sha256: String,
    pub size: u64,
}

/// The report's anchor in the audit chain: the records written before it
/// and the hash of the last one. The record after names the report's own
/// hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditAnchor {
    pub file: String,
    pub records: u64,
    pub head: String,
}

/// A compliance control this run's evidence supports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComplianceControl {
    pub framework: String,
    pub control: String,
    pub title: String,
    pub evidence: String,
}

/// What analyzing the run's capture took.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalysisCost {
    pub frames: u64,
    pub wall_seconds: f64,
    pub cpu_seconds: f64,
}

/// A run so far, as its last report (or a cut segment's checkpoint) says
/// it: what a resumed segment's report adds its own numbers to. A
/// checkpoint's state head holds more (its segment, its number, the
/// answered bits' length), which this ignores.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunSoFar {
    /// When the run's first segment started.
    #[serde(default)]
    pub started: Option<String>,
    #[serde(default)]
    pub hosts: Vec<HostResults>,
    #[serde(default)]
    pub counters: Counters,
    #[serde(default)]
    pub unanswered: BTreeMap<ProbeKind, u64>,
    #[serde(default)]
    pub probes: u64,
    #[serde(default)]
    pub segments: Vec<Segment>,
}

impl From<ScanReport> for RunSoFar {
    fn from(r: ScanReport) -> RunSoFar {
        RunSoFar {
            started: Some(r.started),
            hosts: r.hosts,
            counters: r.counters,
            unanswered: r.unanswered,
            probes: r.probes,
            segments: r.segments,
        }
    }
}

/// `a` plus `b`, kind by kind.
pub fn add_per_kind(a: &mut BTreeMap<ProbeKind, u64>, b: &BTreeMap<ProbeKind, u64>) {
    for (k, n) in b {
        *a.entry(*k).or_insert(0) += n;
    }
}

impl ScanReport {
    /// A small finished report as a scan of one host writes it (one open
    /// port, the rest folded), for tests and examples: every member set.
    ///
    /// ```
    /// let report = sonde::results::ScanReport::example();
    /// let text = serde_json::to_string(&report).unwrap();
    /// let back: sonde::results::ScanReport = serde_json::from_str(&text).unwrap();
    /// assert_eq!(back.hosts, report.hosts);
    /// assert_eq!(back.hosts[0].open_ports().collect::<Vec<_>>(), [22]);
    /// ```
    pub fn example() -> ScanReport {
        use super::{CaptureTime, Folded, FoldedState, ScanResult};
        use crate::probe::Verdict;
        let zeros = "0".repeat(64);
        let target: IpAddr = "198.18.1.10".parse().expect("an address");
        ScanReport {
            sonde_version: env!("CARGO_PKG_VERSION").to_string(),
            command: vec!["sonde".into(), "scan".into()],
            operator: "tester".into(),
            host: "lab".into(),
            started: "2026-12-07T06:00:00Z".into(),
            finished: "2026-12-07T06:00:02Z".into(),
            run_directory: "run".into(),
            scope: ScopeRecord {
                path: "scope.toml".into(),
                absolute_path: "/lab/scope.toml".into(),
                sha256: zeros.clone(),
                engagement_id: "LAB-1".into(),
                client: "Lab".into(),
                authorized_by: "Lab owner".into(),
                contact: "lab@example.org".into(),
                not_before: "2026-01-01T00:00:00Z".into(),
                not_after: "2099-01-01T00:00:00Z".into(),
                max_rate: 1000.0,
            },
            parameters: Parameters {
                targets: vec!["198.18.1.10".into()],
                exclude: Vec::new(),
                ports: "20-25".into(),
                probes: vec![ProbeKind::Syn],
                rate: 1000.0,
                retries: 1,
                wait_seconds: 1.0,
                wait_adaptive: true,
                seed: 7,
                shard: "1/1".into(),
                dns_query: vec!["example.com:A".into()],
                interface: None,
                source_ip: None,
                senders: 1,
                record: RecordMode::Answered,
                evidence: EvidenceMode::Full,
                sniffer_buffer: 4096,
            },
            identity: Some(Identity {
                scope_sha256: zeros.clone(),
                targets: vec!["198.18.1.10".into()],
                ports: "20-25".into(),
                probes: vec![ProbeKind::Syn],
                dns_query: vec!["example.com:A".into()],
                retries: 1,
                record: Some(RecordMode::Answered),
                seed: 7,
                shard: "1/1".into(),
                index_space: 6,
            }),
            merge: None,
            interrupted: false,
            output_error: None,
            planned_probes: 6,
            max_probes: None,
            scope_stopped: None,
            possibly_incomplete: false,
            counters: Counters {
                sent: 6,
                received: 6,
                matched: 6,
                ..Counters::default()
            },
            rate: RateReport {
                requested: 1000.0,
                achieved: 1000.0,
                sending_seconds: 0.01,
                discovery_seconds: 0.0,
                shortfall: None,
            },
            neighbour_discovery: NeighbourDiscovery::default(),
            links: vec![LinkReport {
                interface: "veth0".into(),
                reached: "on-link".into(),
                targets: vec!["198.18.1.10".into()],
                sources: vec!["198.18.0.1".parse().expect("an address")],
            }],
            passes: Some(PassReport::new(1, 10, vec![(0, 6)])),
            probes: 6,
            unanswered: BTreeMap::new(),
            segments: vec![Segment {
                segment: 1,
                started: "2026-12-07T06:00:00Z".into(),
                finished: "2026-12-07T06:00:02Z".into(),
                probes: 6,
                sent: 6,
                interrupted: false,
                stopped_at: None,
                cut: None,
            }],
            files: vec![FileRecord {
                name: "capture.pcap".into(),
                role: "pcap".into(),
                sha256: zeros.clone(),
                size: 24,
            }],
            audit: AuditAnchor {
                file: "audit.jsonl".into(),
                records: 1,
                head: zeros,
            },
            compliance: super::compliance::controls(),
            capture_analysis: None,
            capture_analysis_cost: None,
            hosts: vec![HostResults {
                address: target,
                results: vec![ScanResult {
                    target,
                    port: Some(22),
                    probe: ProbeKind::Syn,
                    question: None,
                    service: Some("ssh".into()),
                    verdict: Verdict::Open,
                    ttl: 64,
                    rtt_us: Some(120),
                    time: CaptureTime(1_796_623_201_000_000_000),
                }],
                not_shown: vec![Folded {
                    probe: ProbeKind::Syn,
                    state: FoldedState::Closed,
                    reason: "rst".into(),
                    count: 5,
                    ports: crate::targets::PortSet::parse("20-21,23-25").ok(),
                }],
                services: Vec::new(),
            }],
        }
    }
}
