//! What a scan is asked to do, typed: the command line builds one, a
//! library caller builds one, and the audit log records it (`scan_request`)
//! so that `--resume` reads it back as it was, targets resolved and seed
//! drawn, instead of parsing a command line again.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::Error;
use crate::evidence::EvidenceMode;
use crate::probe::DnsQuestion;
use crate::probe::cookie::MAX_DNS_QUESTIONS;
use crate::scan::hosts::RecordMode;
use crate::scope::{Decision, ProbeKind, Refusal, ScopeFile, ScopeGate};
use crate::targets::index::Shard;
use crate::targets::{Family, IpSet, PortSet};

/// The longest the cooldown lasts when `wait` is not given.
pub const DEFAULT_WAIT: f64 = 2.0;
/// The longest wait for late replies a request may ask: an hour.
pub const MAX_WAIT_SECONDS: f64 = 3600.0;

/// A scan as asked for. Options left `None` are chosen at the start
/// (the scope's targets and ports, a random seed, the senders for the
/// rate); the request the audit log records has them all filled in.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScanRequest {
    /// The scope file (the authorization) the run is judged under.
    pub scope: PathBuf,
    /// The addresses to probe; `None`: every address the scope allows for
    /// every kind asked.
    pub targets: Option<IpSet>,
    /// Taken out of the targets before anything is judged.
    pub exclude: IpSet,
    /// Ports of SYN probes; `None`: what the scope allows, or nmap's top
    /// 1,000 when it allows every port.
    pub ports: Option<PortSet>,
    pub probes: Vec<ProbeKind>,
    /// What each DNS probe asks (1 to `MAX_DNS_QUESTIONS`).
    pub dns_questions: Vec<DnsQuestion>,
    /// Probes per second; `None`: the scope's `max_rate`.
    pub rate: Option<f64>,
    pub retries: u32,
    pub max_retries: u32,
    /// Seconds to wait for late replies; `None`: adaptive, up to
    /// [`DEFAULT_WAIT`].
    pub wait: Option<f64>,
    pub seed: Option<u64>,
    pub shard: Shard,
    pub interface: Option<String>,
    pub source_ip: Option<IpAddr>,
    /// Sending threads; `None`: by the rate.
    pub senders: Option<usize>,
    /// Bytes of receive ring for the whole run.
    pub sniffer_buffer: Option<usize>,
    pub record: RecordMode,
    pub evidence: EvidenceMode,
}

impl ScanRequest {
    /// A SYN scan of `targets` under `scope` with every other option at its
    /// default, as `sonde scan --scope FILE TARGETS` asks.
    pub fn new(scope: impl Into<PathBuf>, targets: Option<IpSet>) -> ScanRequest {
        ScanRequest {
            scope: scope.into(),
            targets,
            exclude: IpSet::new(),
            ports: None,
            probes: vec![ProbeKind::Syn],
            dns_questions: vec![DnsQuestion {
                name: "example.com".into(),
                qtype: 1,
            }],
            rate: None,
            retries: 1,
            max_retries: 10,
            wait: None,
            seed: None,
            shard: Shard::WHOLE,
            interface: None,
            source_ip: None,
            senders: None,
            sniffer_buffer: None,
            record: RecordMode::default(),
            evidence: EvidenceMode::default(),
        }
    }

    /// What no scan can be asked: checked before anything is created.
    pub fn check(&self) -> Result<(), Error> {
        if self.probes.is_empty() {
            return Err(Error::usage(
                "no probe kind asked for",
                "--probe syn,icmp,dns",
            ));
        }
        if self.probes.contains(&ProbeKind::Service)
            && !self.probes.contains(&ProbeKind::Syn)
            && !self.probes.contains(&ProbeKind::Dns)
        {
            return Err(Error::usage(
                "service identification asks the ports the SYN probes find open (and the DNS servers the DNS probes find), and neither syn nor dns was asked for",
                "--probe syn,service (or -sV, which adds both)",
            ));
        }
        if self.dns_questions.is_empty() || self.dns_questions.len() > MAX_DNS_QUESTIONS {
            return Err(Error::usage(
                format!(
                    "{} DNS questions; a scan asks 1 to {MAX_DNS_QUESTIONS}",
                    self.dns_questions.len()
                ),
                "split the questions over several scans",
            ));
        }
        if let Some(w) = self.wait
            && !(w.is_finite() && (0.0..=MAX_WAIT_SECONDS).contains(&w))
        {
            return Err(Error::usage(
                format!("a wait of {w} seconds: expected 0 to {MAX_WAIT_SECONDS}"),
                "e.g. --wait 2",
            ));
        }
        if let Some(r) = self.rate
            && !(r.is_finite() && r >= crate::scope::MIN_RATE)
        {
            return Err(Error::usage(
                format!(
                    "a rate of {r} packets per second: below the slowest pace sonde keeps, {} (one every 100 s)",
                    crate::scope::MIN_RATE
                ),
                "e.g. --rate 1000",
            ));
        }
        // Shards of different orders overlap and leave gaps.
        if self.shard.count > 1 && self.seed.is_none() {
            return Err(Error::usage(
                format!(
                    "--shard {} without --seed: each machine would draw its own probe order, and the shares would overlap and leave gaps",
                    self.shard
                ),
                "give every shard the same --seed N (any number, e.g. from `od -An -N8 -tu8 /dev/urandom`)",
            ));
        }
        Ok(())
    }

    /// The longest cooldown, in seconds.
    pub fn wait_seconds(&self) -> f64 {
        self.wait.unwrap_or(DEFAULT_WAIT)
    }

    /// The sending threads for `rate`: one thread paces 50,000 pps easily;
    /// above that the kernel's share of each send wants every core.
    pub fn senders_for(&self, rate: f64) -> usize {
        match self.senders {
            Some(n) => n,
            None if rate >= 50_000.0 => std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(4),
            None => 1,
        }
    }
}

/// A request judged before anything is created or sent: the scope file,
/// the gate, the targets (exclusions taken out), the ports, and every
/// refusal (a dry run lists them all; a scan stops at them).
pub struct Prepared {
    pub file: ScopeFile,
    pub gate: ScopeGate,
    pub targets: IpSet,
    pub ports: PortSet,
    pub refusals: Vec<Refusal>,
}

impl Prepared {
    /// `request` with everything the start chose filled in: what the audit
    /// log records, and what a resume runs again.
    pub fn resolved(&self, request: &ScanRequest, seed: u64, senders: usize) -> ScanRequest {
        ScanRequest {
            scope: std::fs::canonicalize(&request.scope).unwrap_or_else(|_| request.scope.clone()),
            targets: Some(self.targets.clone()),
            ports: Some(self.ports.clone()),
            seed: Some(seed),
            senders: Some(senders),
            rate: Some(self.gate.rate()),
            ..request.clone()
        }
    }

    /// The number of target addresses.
    pub fn addresses(&self) -> u128 {
        self.targets.count(Family::V4) + self.targets.count(Family::V6)
    }
}

/// Load the scope, build the gate and judge every target of `request`
/// for every kind asked. `at` judges the window at another instant (a dry
/// run only: a real scan is judged by the clock).
pub fn prepare(request: &ScanRequest, at: Option<OffsetDateTime>) -> Result<Prepared, Error> {
    prepare_on(request, at, &crate::net::link::KernelNetwork)
}

/// As [`prepare`], for a scan over `network` (its addresses are the
/// sources the gate allows).
pub fn prepare_on(
    request: &ScanRequest,
    at: Option<OffsetDateTime>,
    network: &dyn crate::net::link::Network,
) -> Result<Prepared, Error> {
    request.check()?;
    let file = ScopeFile::load(&request.scope)?;
    // The gate refuses a rate above the ceiling and a closed window; it
    // knows this host's addresses, the only sources it lets packets carry
    // unless the scope lists spoofed ones.
    let local = network
        .local_addresses()
        .map_err(|e| Error::runtime("cannot read this host's addresses", e))?;
    let gate = match at {
        Some(at) => {
            let gate =
                ScopeGate::with_clock(file.scope.clone(), request.rate, Arc::new(move || at))?;
            gate.check_window(at)?;
            gate
        }
        None => ScopeGate::new(file.scope.clone(), request.rate)?,
    }
    .with_local_sources(local);
    let scope = gate.scope();
    let kinds = &request.probes;
    let mut targets = match &request.targets {
        Some(t) => t.clone(),
        // Everything the scope allows for every kind asked.
        None => {
            let mut all = scope.allowed_addresses(kinds[0]);
            for k in &kinds[1..] {
                let other = scope.allowed_addresses(*k);
                let mut not_other = all.clone();
                not_other.subtract(&other);
                all.subtract(&not_other);
            }
            all
        }
    };
    // Exclusions only narrow: they are taken out before anything is judged.
    let before_exclusion = !targets.is_empty();
    targets.subtract(&request.exclude);
    if before_exclusion && targets.is_empty() {
        return Err(Error::usage(
            "nothing to scan: --exclude/--excludefile leave no target",
            "exclude less, or name other targets",
        ));
    }
    if targets.is_empty() {
        return Err(Error::usage(
            "nothing to scan: no targets given and the scope allows none for these probe kinds",
            "name targets, or check the scope with sonde scope check",
        ));
    }
    let ports = request
        .ports
        .clone()
        .unwrap_or_else(|| scope.default_syn_ports());

    // Refuse anything out of scope before a single packet is sent.
    let mut refusals = Vec::new();
    for kind in kinds {
        for range in targets.ranges() {
            let port_list = match kind {
                // Connections go to the open ports among these.
                ProbeKind::Syn | ProbeKind::Service => Some(ports.clone()),
                ProbeKind::Dns => Some(PortSet::single(53)),
                ProbeKind::Icmp => None,
            };
            if let Decision::Refused(r) = crate::scope::judge_ports(
                &gate,
                &range,
                port_list.as_ref(),
                *kind,
                &range.to_string(),
                gate.now(),
            ) {
                refusals.push(r);
            }
        }
    }
    Ok(Prepared {
        file,
        gate,
        targets,
        ports,
        refusals,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resolved_request_reads_back_as_written() {
        let mut targets = IpSet::new();
        targets.insert("198.18.0.0/24".parse().unwrap());
        targets.insert("198.18.5.3-198.18.5.9".parse().unwrap());
        targets.insert("2001:db8::1".parse().unwrap());
        let mut r = ScanRequest::new("/tmp/scope.toml", Some(targets));
        r.ports = Some(PortSet::parse("22,80,1000-2000").unwrap());
        r.probes = vec![ProbeKind::Syn, ProbeKind::Dns];
        r.dns_questions = vec![DnsQuestion::parse("example.org:AAAA").unwrap()];
        r.seed = Some(u64::MAX);
        r.shard = Shard::parse("2/4").unwrap();
        r.wait = Some(1.5);
        r.source_ip = Some("198.18.0.2".parse().unwrap());
        let text = serde_json::to_string(&r).unwrap();
        let back: ScanRequest = serde_json::from_str(&text).unwrap();
        assert_eq!(back, r);
        assert!(text.contains(r#""shard":"2/4""#), "{text}");
        assert!(text.contains(r#""ports":"22,80,1000-2000""#), "{text}");
    }

    #[test]
    fn a_request_with_an_unknown_field_is_not_read() {
        let r = ScanRequest::new("/tmp/scope.toml", None);
        let mut v = serde_json::to_value(&r).unwrap();
        v["max_rate_override"] = serde_json::json!(1e9);
        assert!(serde_json::from_value::<ScanRequest>(v).is_err());
    }

    #[test]
    fn shards_without_a_seed_are_refused() {
        let mut r = ScanRequest::new("/tmp/scope.toml", None);
        r.shard = Shard::parse("1/2").unwrap();
        assert!(r.check().is_err());
        r.seed = Some(7);
        assert!(r.check().is_ok());
    }
}
