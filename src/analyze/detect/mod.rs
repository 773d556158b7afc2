//! Attack and anomaly detectors. Each sees every frame (and finished flows,
//! where it needs them) and reports findings at the end as [`Anomaly`]s.
//! Thresholds have documented defaults (docs/report.md says where each comes
//! from) and can be overridden from a TOML file.

mod arp_spoofing;
mod beaconing;
pub(crate) mod cookie_replay;
mod dns_tunneling;
pub(crate) mod exploit_kit;
mod host_sweep;
mod ip_fragmentation;
mod malformed_header;
mod nxdomain_rewriting;
mod os_fingerprinting;
mod port_scan;
mod reflection;
mod ssh_guessing;
mod syn_flood;
pub(crate) mod web_scanner;

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::dissect::Dissected;
use super::dns::DnsMessage;
use super::flows::Flow;

pub use arp_spoofing::ArpSpoofingThresholds;
pub use beaconing::BeaconingThresholds;
pub use dns_tunneling::{DnsTunnelingThresholds, registered_domain, shannon_entropy};
pub use host_sweep::HostSweepThresholds;
pub use ip_fragmentation::FragmentationThresholds;
pub use malformed_header::MalformedThresholds;
pub use nxdomain_rewriting::NxdomainRewritingThresholds;
pub use os_fingerprinting::OsFingerprintingThresholds;
pub use port_scan::PortScanThresholds;
pub use reflection::ReflectionThresholds;
pub use ssh_guessing::SshGuessingThresholds;
pub use syn_flood::SynFloodThresholds;
pub use web_scanner::WebScannerThresholds;

/// Every detector's thresholds. Unknown keys in a thresholds file are errors.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Thresholds {
    pub syn_flood: SynFloodThresholds,
    pub port_scan: PortScanThresholds,
    pub dns_tunneling: DnsTunnelingThresholds,
    pub ip_fragmentation: FragmentationThresholds,
    pub malformed_header: MalformedThresholds,
    pub arp_spoofing: ArpSpoofingThresholds,
    pub reflection: ReflectionThresholds,
    pub os_fingerprinting: OsFingerprintingThresholds,
    pub password_guessing: SshGuessingThresholds,
    pub web_scanner: WebScannerThresholds,
    pub host_sweep: HostSweepThresholds,
    pub beaconing: BeaconingThresholds,
    pub nxdomain_rewriting: NxdomainRewritingThresholds,
}

impl Thresholds {
    /// Reject values no detector can use: rates, windows and timeouts must be
    /// positive and finite, ratios and scores finite and not negative.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("syn_flood.window_seconds", self.syn_flood.window_seconds),
            ("syn_flood.min_syn_rate", self.syn_flood.min_syn_rate),
            (
                "ip_fragmentation.reassembly_timeout_seconds",
                self.ip_fragmentation.reassembly_timeout_seconds,
            ),
            (
                "arp_spoofing.window_seconds",
                self.arp_spoofing.window_seconds,
            ),
            (
                "password_guessing.window_seconds",
                self.password_guessing.window_seconds,
            ),
            ("host_sweep.window_seconds", self.host_sweep.window_seconds),
            (
                "beaconing.min_period_seconds",
                self.beaconing.min_period_seconds,
            ),
            (
                "beaconing.max_period_seconds",
                self.beaconing.max_period_seconds,
            ),
        ];
        for (name, v) in positive {
            if !(v.is_finite() && v > 0.0) {
                return Err(format!("{name} must be a positive number, not {v}"));
            }
        }
        let non_negative = [
            (
                "syn_flood.max_synack_ratio",
                self.syn_flood.max_synack_ratio,
            ),
            ("dns_tunneling.min_score", self.dns_tunneling.min_score),
            (
                "web_scanner.min_client_error_share",
                self.web_scanner.min_client_error_share,
            ),
            (
                "host_sweep.monitoring_repeats",
                self.host_sweep.monitoring_repeats,
            ),
            ("beaconing.max_jitter", self.beaconing.max_jitter),
            (
                "beaconing.min_regular_share",
                self.beaconing.min_regular_share,
            ),
        ];
        for (name, v) in non_negative {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!("{name} must be a number of 0 or more, not {v}"));
            }
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
}

/// One finding.
#[derive(Clone, Debug, Serialize)]
pub struct Anomaly {
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subtype: Option<&'static str>,
    pub severity: Severity,
    pub summary: String,
    /// Measured values.
    pub evidence: BTreeMap<&'static str, f64>,
    /// The thresholds the measured values were held against.
    pub thresholds: BTreeMap<&'static str, f64>,
    pub sources: Vec<String>,
    pub destinations: Vec<String>,
    pub ports: Vec<u16>,
    pub first_timestamp: String,
    pub last_timestamp: String,
    /// Example frames, numbered from 1 as Wireshark numbers them.
    pub example_frames: Vec<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scan_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Anomaly {
    /// A finding with the fields every kind has; the rest start empty.
    pub(crate) fn new(
        kind: &'static str,
        subtype: Option<&'static str>,
        severity: Severity,
        summary: String,
        span: Span,
        example_frames: Vec<u64>,
    ) -> Anomaly {
        Anomaly {
            kind,
            subtype,
            severity,
            summary,
            evidence: BTreeMap::new(),
            thresholds: BTreeMap::new(),
            sources: Vec::new(),
            destinations: Vec::new(),
            ports: Vec::new(),
            first_timestamp: ts(span.first),
            last_timestamp: ts(span.last),
            example_frames,
            scan_type: None,
            domain: None,
            note: None,
        }
    }
}

/// The nearest a capture came to a detector's threshold: the measure, its
/// largest value and where it was seen.
#[derive(Clone, Debug, Serialize)]
pub struct Closest {
    pub measure: &'static str,
    pub value: f64,
    pub threshold: f64,
    /// The source, destination or pair the value was measured on.
    pub at: String,
}

impl Closest {
    /// The larger of `a` and `b` by value; on a tie, the one whose place
    /// sorts first (tables are walked in hash order: the report must not
    /// depend on it).
    pub(crate) fn max(a: Option<Closest>, b: Closest) -> Option<Closest> {
        match a {
            Some(a) if a.value > b.value || (a.value == b.value && a.at <= b.at) => Some(a),
            _ => Some(b),
        }
    }
}

/// One detector as it ran on the capture: what it looked for, its
/// thresholds, its findings, and how close the capture came where it
/// measures a rate or a count.
#[derive(Clone, Debug, Serialize)]
pub struct DetectorRun {
    pub name: &'static str,
    pub findings: usize,
    pub thresholds: serde_json::Value,
    pub closest: Vec<Closest>,
}

/// Frame numbers kept as examples per finding.
pub(crate) const EXAMPLES: usize = 5;

pub(crate) fn push_example(v: &mut Vec<u64>, frame: u64) {
    if v.len() < EXAMPLES {
        v.push(frame);
    }
}

/// Time span of a finding, first and last nanosecond timestamps.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Span {
    pub first: i64,
    pub last: i64,
}

impl Span {
    pub fn new(ts: i64) -> Span {
        Span {
            first: ts,
            last: ts,
        }
    }
    pub fn add(&mut self, ts: i64) {
        self.first = self.first.min(ts);
        self.last = self.last.max(ts);
    }
    /// Widen `span` to cover `first..=last`, or start it there.
    pub fn cover(span: &mut Option<Span>, first: i64, last: i64) {
        let s = span.get_or_insert(Span::new(first));
        s.add(first);
        s.add(last);
    }

    pub fn seconds(&self) -> f64 {
        (self.last - self.first) as f64 / 1e9
    }
}

pub(crate) fn ts(ns: i64) -> String {
    crate::clock::timestamp(ns)
}

pub(crate) fn addrs<'a>(it: impl IntoIterator<Item = &'a IpAddr>) -> Vec<String> {
    let mut v: Vec<IpAddr> = it.into_iter().copied().collect();
    v.sort();
    v.dedup();
    v.truncate(10);
    v.into_iter().map(|a| a.to_string()).collect()
}

/// What a frame handed to the detectors is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameRole {
    /// An unfragmented packet (or no IP at all): every detector.
    Whole,
    /// One fragment, as captured: the fragment and header checks only.
    Fragment,
    /// A datagram put back together from its fragments: every detector
    /// but those, which saw the fragments themselves.
    Reassembled,
}

/// All detectors together.
pub struct Detectors {
    thresholds: Thresholds,
    syn_flood: syn_flood::SynFlood,
    port_scan: port_scan::PortScan,
    dns_tunneling: dns_tunneling::DnsTunneling,
    fragmentation: ip_fragmentation::Fragmentation,
    malformed: malformed_header::Malformed,
    arp_spoofing: arp_spoofing::ArpSpoofing,
    reflection: reflection::Reflection,
    os_fingerprinting: os_fingerprinting::OsFingerprinting,
    ssh_guessing: ssh_guessing::SshGuessing,
    host_sweep: host_sweep::HostSweep,
    beaconing: beaconing::Beaconing,
    nxdomain_rewriting: nxdomain_rewriting::NxdomainRewriting,
}

impl Detectors {
    pub fn new(t: &Thresholds) -> Detectors {
        Detectors {
            thresholds: t.clone(),
            syn_flood: syn_flood::SynFlood::new(t.syn_flood.clone()),
            port_scan: port_scan::PortScan::new(t.port_scan.clone()),
            dns_tunneling: dns_tunneling::DnsTunneling::new(t.dns_tunneling.clone()),
            fragmentation: ip_fragmentation::Fragmentation::new(t.ip_fragmentation.clone()),
            malformed: malformed_header::Malformed::new(t.malformed_header.clone()),
            arp_spoofing: arp_spoofing::ArpSpoofing::new(t.arp_spoofing.clone()),
            reflection: reflection::Reflection::new(t.reflection.clone()),
            os_fingerprinting: os_fingerprinting::OsFingerprinting::new(
                t.os_fingerprinting.clone(),
            ),
            ssh_guessing: ssh_guessing::SshGuessing::new(t.password_guessing.clone()),
            host_sweep: host_sweep::HostSweep::new(t.host_sweep.clone()),
            beaconing: beaconing::Beaconing::new(t.beaconing.clone()),
            nxdomain_rewriting: nxdomain_rewriting::NxdomainRewriting::new(
                t.nxdomain_rewriting.clone(),
            ),
        }
    }

    /// `snaplen_cut`: the frame was captured shorter than it was on the wire.
    // Inlined into the one caller: the call's register saves and restores
    // cost 20 instructions a frame.
    #[inline(always)]
    pub fn frame(
        &mut self,
        frame: u64,
        ts: i64,
        d: &Dissected<'_>,
        snaplen_cut: bool,
        dns: Option<&DnsMessage>,
        role: FrameRole,
    ) {
        if role != FrameRole::Reassembled {
            self.fragmentation.frame(frame, ts, d);
            self.malformed.frame(frame, ts, d, snaplen_cut);
        }
        // Which MAC carried each address's packets (a reassembled
        // datagram has no frame of its own; a tunnel's inner packet was
        // not put on this link by that MAC).
        if let (Some(ip), Some(mac), None) = (&d.ip, d.src_mac, d.tunnel) {
            self.arp_spoofing.ip_frame(frame, ts, ip.src, mac);
        }
        if role == FrameRole::Fragment {
            return;
        }
        self.syn_flood.frame(frame, ts, d);
        self.port_scan.frame(frame, ts, d);
        self.os_fingerprinting.frame(frame, ts, d);
        self.host_sweep.frame(frame, ts, d);
        if d.arp {
            self.arp_spoofing.frame(frame, ts, d.net);
        }
        if let (
            Some(super::dissect::Transport::Icmpv6 {
                kind: 135 | 136, ..
            }),
            Some(ip),
        ) = (d.transport, &d.ip)
        {
            self.arp_spoofing
                .ndp(frame, ts, ip.src, ip.dst, d.ip_payload);
        }
        if let (Some(m), Some(ip)) = (dns, &d.ip) {
            self.dns_tunneling.query(frame, ts, ip.src, ip.dst, m);
            self.nxdomain_rewriting.response(frame, ts, ip.src, m);
        }
    }

    /// A packet with payload from a flow's client to its server: a beat
    /// of a heartbeat, when the server's port is one no common service
    /// uses.
    #[inline]
    #[allow(clippy::too_many_arguments)]
    pub fn client_payload(
        &mut self,
        frame: u64,
        ts: i64,
        client: IpAddr,
        server: IpAddr,
        port: u16,
        proto: u8,
        len: usize,
    ) {
        if beaconing::unusual_port(port) {
            self.beaconing
                .client_payload(frame, ts, client, server, port, proto, len);
        }
    }

    pub fn flow_finished(&mut self, f: &Flow) {
        self.syn_flood.flow_finished(f);
        self.port_scan.flow_finished(f);
        self.reflection.flow_finished(f);
        self.ssh_guessing.flow_finished(f);
    }

    /// Every finding (`more`: those found outside the detectors, from the
    /// HTTP exchanges), in a stable order: by first timestamp, then kind
    /// and summary.
    pub fn finish(
        self,
        more: Vec<Anomaly>,
        web_closest: Vec<Closest>,
    ) -> (Vec<Anomaly>, Vec<DetectorRun>) {
        let t = &self.thresholds;
        let mut closest: BTreeMap<&'static str, Vec<Closest>> = BTreeMap::from([
            ("syn_flood", self.syn_flood.closest().into_iter().collect()),
            ("port_scan", self.port_scan.closest()),
            (
                "reflection",
                self.reflection.closest().into_iter().collect(),
            ),
            (
                "password_guessing",
                self.ssh_guessing.closest().into_iter().collect(),
            ),
            ("web_scanner", web_closest),
            (
                "host_sweep",
                self.host_sweep.closest().into_iter().collect(),
            ),
            ("beaconing", self.beaconing.closest().into_iter().collect()),
        ]);
        let json = |v: &dyn erased::Ser| v.value();
        let runs: Vec<(&'static str, serde_json::Value)> = vec![
            ("syn_flood", json(&t.syn_flood)),
            ("port_scan", json(&t.port_scan)),
            ("dns_tunneling", json(&t.dns_tunneling)),
            ("ip_fragmentation", json(&t.ip_fragmentation)),
            ("malformed_header", json(&t.malformed_header)),
            ("arp_spoofing", json(&t.arp_spoofing)),
            ("reflection", json(&t.reflection)),
            ("os_fingerprinting", json(&t.os_fingerprinting)),
            ("password_guessing", json(&t.password_guessing)),
            ("web_scanner", json(&t.web_scanner)),
            ("host_sweep", json(&t.host_sweep)),
            ("beaconing", json(&t.beaconing)),
            ("nxdomain_rewriting", json(&t.nxdomain_rewriting)),
            // No thresholds: one replay is a finding.
            ("cookie_replay", serde_json::json!({})),
            (
                "exploit_kit",
                serde_json::json!({
                    "max_seconds_to_payload": exploit_kit::MAX_SECONDS_TO_PAYLOAD
                }),
            ),
        ];
        let mut all = more;
        all.extend(self.syn_flood.finish());
        // A fingerprinted host's odd probes (T7 is FIN+PSH+URG) are the
        // fingerprinting, not also a stealth scan.
        let (fingerprinted, os) = self.os_fingerprinting.finish();
        // An SMB sweep is also a horizontal scan of its port: it is
        // reported once, as the sweep (it says more).
        let sweeps = self.host_sweep.finish();
        all.extend(self.port_scan.finish().into_iter().filter(|a| {
            let fingerprinting = a.subtype == Some("stealth_probes")
                && fingerprinted.iter().any(|(s, d)| {
                    a.sources.first() == Some(&s.to_string())
                        && a.destinations.first() == Some(&d.to_string())
                });
            let swept = a.subtype == Some("horizontal")
                && sweeps.iter().any(|w| {
                    w.subtype == Some("smb")
                        && w.sources == a.sources
                        && a.ports.iter().all(|p| w.ports.contains(p))
                });
            !fingerprinting && !swept
        }));
        all.extend(sweeps);
        all.extend(self.beaconing.finish());
        all.extend(self.nxdomain_rewriting.finish());
        all.extend(os);
        all.extend(self.dns_tunneling.finish());
        let mut reflection = self.reflection.finish();
        // Fragments of a flood's answers that never completed are its
        // debris: folded into the flood, not findings of their own.
        for f in self.fragmentation.finish() {
            let flood = (f.subtype == Some("incomplete"))
                .then(|| {
                    reflection.iter_mut().find(|r| {
                        r.subtype == Some("udp_amplification")
                            && !f.destinations.is_empty()
                            && f.destinations.iter().all(|d| r.destinations.contains(d))
                    })
                })
                .flatten();
            match flood {
                Some(r) => {
                    *r.evidence
                        .entry("incomplete_fragmented_datagrams")
                        .or_default() += f.evidence.get("count").copied().unwrap_or(0.0);
                }
                None => all.push(f),
            }
        }
        all.extend(self.malformed.finish());
        all.extend(self.arp_spoofing.finish());
        all.extend(reflection);
        all.extend(self.ssh_guessing.finish());
        all.sort_by(|a, b| {
            a.first_timestamp
                .cmp(&b.first_timestamp)
                .then(a.kind.cmp(b.kind))
                .then(a.summary.cmp(&b.summary))
        });
        let runs = runs
            .into_iter()
            .map(|(name, thresholds)| DetectorRun {
                name,
                findings: all.iter().filter(|a| a.kind == name).count(),
                thresholds,
                closest: closest.remove(name).unwrap_or_default(),
            })
            .collect();
        (all, runs)
    }
}

/// Thresholds as JSON, whatever their type.
mod erased {
    pub trait Ser {
        fn value(&self) -> serde_json::Value;
    }
    impl<T: serde::Serialize> Ser for T {
        fn value(&self) -> serde_json::Value {
            serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
        }
    }
}

/// Say on the first finding what a detector's bounded tables could not
/// follow (`what`: "12 packets past the first 16,384 series"), so a
/// reader knows the counts may be short.
pub(crate) fn note_untracked(out: &mut [Anomaly], untracked: u64, what: std::fmt::Arguments<'_>) {
    if untracked == 0 {
        return;
    }
    if let Some(first) = out.first_mut() {
        let said = format!("{untracked} {what} were not followed");
        first.note = Some(match first.note.take() {
            Some(before) => format!("{before}; {said}"),
            None => said,
        });
    }
}

/// FNV-1a over `b`: tells identical byte strings from different ones
/// (retransmitted fragments, repeated URIs) without keeping them.
pub(crate) fn fnv(b: &[u8]) -> u64 {
    fnv_parts(&[b])
}

/// [`fnv`] over the concatenation of `parts`, without making it.
pub(crate) fn fnv_parts(parts: &[&[u8]]) -> u64 {
    parts
        .iter()
        .flat_map(|p| p.iter())
        .fold(0xcbf2_9ce4_8422_2325, |h, &x| {
            (h ^ u64::from(x)).wrapping_mul(0x0100_0000_01b3)
        })
}

/// `6917` as `6,917`: counts a responder reads aloud.
pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod count_text_tests {
    #[test]
    fn what_was_not_followed_is_said_on_the_first_finding() {
        use super::{Anomaly, Severity, Span};
        let a = || Anomaly::new("k", None, Severity::Low, "s".into(), Span::new(0), vec![]);
        let mut out = vec![a(), a()];
        super::note_untracked(&mut out, 0, format_args!("x"));
        assert_eq!(out[0].note, None);
        super::note_untracked(
            &mut out,
            12,
            format_args!("packets past the first {} series", 16),
        );
        assert_eq!(
            out[0].note.as_deref(),
            Some("12 packets past the first 16 series were not followed")
        );
        assert_eq!(out[1].note, None);
    }

    #[test]
    fn hashing_parts_is_hashing_their_concatenation() {
        assert_eq!(super::fnv_parts(&[b"ab", b"", b"cd"]), super::fnv(b"abcd"));
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(super::thousands(0), "0");
        assert_eq!(super::thousands(999), "999");
        assert_eq!(super::thousands(6917), "6,917");
        assert_eq!(super::thousands(1_234_567), "1,234,567");
    }
}
