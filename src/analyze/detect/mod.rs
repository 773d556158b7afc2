//! Attack and anomaly detectors. Each sees every frame (and finished flows,
//! where it needs them) and reports findings at the end as [`Anomaly`]s.
//! Thresholds have documented defaults (docs/report.md says where each comes
//! from) and can be overridden from a TOML file.

mod arp_spoofing;
mod dns_tunneling;
mod ip_fragmentation;
mod malformed_header;
mod os_fingerprinting;
mod port_scan;
mod reflection;
mod syn_flood;

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::dissect::Dissected;
use super::dns::DnsMessage;
use super::flows::Flow;

pub use arp_spoofing::ArpSpoofingThresholds;
pub use dns_tunneling::{DnsTunnelingThresholds, registered_domain, shannon_entropy};
pub use ip_fragmentation::FragmentationThresholds;
pub use malformed_header::MalformedThresholds;
pub use os_fingerprinting::OsFingerprintingThresholds;
pub use port_scan::PortScanThresholds;
pub use reflection::ReflectionThresholds;
pub use syn_flood::SynFloodThresholds;

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

/// All detectors together.
pub struct Detectors {
    syn_flood: syn_flood::SynFlood,
    port_scan: port_scan::PortScan,
    dns_tunneling: dns_tunneling::DnsTunneling,
    fragmentation: ip_fragmentation::Fragmentation,
    malformed: malformed_header::Malformed,
    arp_spoofing: arp_spoofing::ArpSpoofing,
    reflection: reflection::Reflection,
    os_fingerprinting: os_fingerprinting::OsFingerprinting,
}

impl Detectors {
    pub fn new(t: &Thresholds) -> Detectors {
        Detectors {
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
    ) {
        self.syn_flood.frame(frame, ts, d);
        self.fragmentation.frame(frame, ts, d);
        self.malformed.frame(frame, ts, d, snaplen_cut);
        self.port_scan.frame(frame, ts, d);
        self.os_fingerprinting.frame(frame, ts, d);
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
        }
    }

    pub fn flow_finished(&mut self, f: &Flow) {
        self.syn_flood.flow_finished(f);
        self.port_scan.flow_finished(f);
        self.reflection.flow_finished(f);
    }

    /// Every finding, in a stable order: by first timestamp, then kind and summary.
    pub fn finish(self) -> Vec<Anomaly> {
        let mut all = Vec::new();
        all.extend(self.syn_flood.finish());
        // A fingerprinted host's odd probes (T7 is FIN+PSH+URG) are the
        // fingerprinting, not also a stealth scan.
        let (fingerprinted, os) = self.os_fingerprinting.finish();
        all.extend(self.port_scan.finish().into_iter().filter(|a| {
            a.subtype != Some("stealth_probes")
                || !fingerprinted.iter().any(|(s, d)| {
                    a.sources.first() == Some(&s.to_string())
                        && a.destinations.first() == Some(&d.to_string())
                })
        }));
        all.extend(os);
        all.extend(self.dns_tunneling.finish());
        all.extend(self.fragmentation.finish());
        all.extend(self.malformed.finish());
        all.extend(self.arp_spoofing.finish());
        all.extend(self.reflection.finish());
        all.sort_by(|a, b| {
            a.first_timestamp
                .cmp(&b.first_timestamp)
                .then(a.kind.cmp(b.kind))
                .then(a.summary.cmp(&b.summary))
        });
        all
    }
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
    fn thousands_are_grouped() {
        assert_eq!(super::thousands(0), "0");
        assert_eq!(super::thousands(999), "999");
        assert_eq!(super::thousands(6917), "6,917");
        assert_eq!(super::thousands(1_234_567), "1,234,567");
    }
}
