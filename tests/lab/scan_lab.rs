//! `scan::run` in the lab against the ground truth: a /24 of routed hosts,
//! on-link hosts and IPv6 hosts; SYN to open, closed and filtered ports,
//! ICMP echo, DNS to dnsmasq.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use sonde::probe::{DnsQuestion, ProbeTemplate, Verdict};
use sonde::scan::{ScanConfig, run};
use sonde::scope::{ProbeKind, Scope, ScopeGate};
use sonde::targets::index::Shard;
use sonde::targets::{AddrRange, IpSet, PortSet};
use support::lab::*;

fn cidr(s: &str) -> AddrRange {
    let (b, p) = s.split_once('/').unwrap();
    AddrRange::cidr(b.parse().unwrap(), p.parse().unwrap()).unwrap()
}

fn gate(rate: f64) -> ScopeGate {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/scopes/lab.toml")).unwrap();
    // Called inside the scanner namespace: its addresses are the sources.
    ScopeGate::new(Scope::from_toml(&text, "lab.toml").unwrap(), Some(rate))
        .unwrap()
        .with_local_sources(sonde::net::route::local_addresses().unwrap())
}

/// Scan the lab at `rate` and compare every probed port with the ground truth.
fn ground_truth_at(rate: f64, ports: &str) {
    let lab = Lab::new();
    let truth = lab.truth.clone();
    let targets: IpSet = [
        cidr("198.18.1.0/24"),
        cidr("198.18.0.10/31"),
        cidr("2001:db8:1::/123"),
    ]
    .into_iter()
    .collect();
    let ports = PortSet::parse(ports).unwrap();
    let config = ScanConfig {
        resume: None,
        checkpoints: None,
        checkpoint_every: std::time::Duration::from_secs(5),
        targets: targets.clone(),
        ports: ports.clone(),
        kinds: vec![ProbeKind::Syn, ProbeKind::Icmp],
        dns_questions: vec![DnsQuestion {
            name: DNS_NAME.into(),
            qtype: 1,
        }],
        dns_port: 53,
        retries: 1,
        max_retries: 1,
        wait: Duration::from_secs(1),
        adaptive_wait: false,
        seed: 7,
        shard: Shard::WHOLE,
        template: ProbeTemplate::default(),
        progress: false,
        observer: None,
        interface: None,
        source: None,
        // Two sending threads at 100,000 pps: the shares must still cover
        // the ground truth exactly.
        senders: if rate >= 50_000.0 { 2 } else { 1 },
        sniffer_queue: sonde::net::packet::Sniffer::DEFAULT_QUEUE,
        record: sonde::scan::hosts::RecordMode::All,
        keep_results: true,
    };
    let outcome = lab.in_scanner(move || {
        run(
            &config,
            &gate(rate),
            Default::default(),
            &std::sync::atomic::AtomicBool::new(false),
        )
        .unwrap()
    });
    let mut got: BTreeMap<(IpAddr, Option<u16>, ProbeKind), Verdict> = BTreeMap::new();
    for r in &outcome.results {
        got.insert((r.target, r.port, r.probe), r.verdict);
    }
    let mut checked = 0;
    for range in targets.ranges() {
        for i in 0..range.len() {
            let ip = range.nth(i).unwrap();
            for port in ports.iter() {
                let v = got.get(&(ip, Some(port), ProbeKind::Syn));
                match truth.tcp(ip, port) {
                    PortState::Open => assert_eq!(v, Some(&Verdict::Open), "{ip}:{port}"),
                    PortState::Closed => assert_eq!(v, Some(&Verdict::Closed), "{ip}:{port}"),
                    PortState::Filtered => assert!(
                        v.is_none() || matches!(v, Some(Verdict::Filtered { .. })),
                        "{ip}:{port}: {v:?}"
                    ),
                }
                checked += 1;
            }
            let up = got.get(&(ip, None, ProbeKind::Icmp));
            assert_eq!(
                up == Some(&Verdict::Up),
                truth.answers_ping(ip),
                "{ip} ping: {up:?}"
            );
        }
    }
    assert!(checked > 256 * 6, "{checked}");
    assert_eq!(outcome.counters.invalid, 0);
    assert_eq!(outcome.counters.kernel_drops, 0);
    assert_eq!(
        outcome.probes,
        targets.ranges().map(|r| r.len() as u64).sum::<u64>() * (ports.len() as u64 + 1)
    );
}

#[test]
fn syn_icmp_and_dns_results_equal_the_ground_truth_at_1000_pps() {
    ground_truth_at(1000.0, "22,23,80,8080,8081,3306");
}

#[test]
fn results_equal_the_ground_truth_at_100000_pps() {
    ground_truth_at(100_000.0, "1-50,80,443,3306,8080,8081");
}

#[test]
fn dns_probes_get_the_lab_resolver_answer() {
    let lab = Lab::new();
    let targets: IpSet = [
        AddrRange::single(IpAddr::V4(DNS_SERVER_V4)),
        AddrRange::single(IpAddr::V6(DNS_SERVER_V6)),
    ]
    .into_iter()
    .collect();
    let config = ScanConfig {
        resume: None,
        checkpoints: None,
        checkpoint_every: std::time::Duration::from_secs(5),
        targets,
        ports: PortSet::single(53),
        kinds: vec![ProbeKind::Dns],
        // The lab's A and TXT records, and a name the lab's resolver does
        // not serve (it has no upstream: REFUSED).
        dns_questions: vec![
            DnsQuestion::parse(&format!("{DNS_NAME}:A")).unwrap(),
            DnsQuestion::parse("lab.sonde.test:TXT").unwrap(),
            DnsQuestion::parse("missing.sonde.test").unwrap(),
        ],
        dns_port: 53,
        retries: 1,
        max_retries: 1,
        wait: Duration::from_millis(500),
        adaptive_wait: false,
        seed: 1,
        shard: Shard::WHOLE,
        template: ProbeTemplate::default(),
        progress: false,
        observer: None,
        interface: None,
        source: None,
        senders: 1,
        sniffer_queue: sonde::net::packet::Sniffer::DEFAULT_QUEUE,
        record: sonde::scan::hosts::RecordMode::All,
        keep_results: true,
    };
    let outcome = lab.in_scanner(move || {
        run(
            &config,
            &gate(100.0),
            Default::default(),
            &std::sync::atomic::AtomicBool::new(false),
        )
        .unwrap()
    });
    // Every (server, question) pair has its own result, told apart by the
    // question bits of the DNS id.
    assert_eq!(outcome.results.len(), 6, "{:?}", outcome.results);
    for r in &outcome.results {
        let Verdict::DnsAnswer { rcode, answers, .. } = r.verdict else {
            panic!("{r:?}");
        };
        let expected = match r.question.as_deref() {
            Some(q) if q == format!("{DNS_NAME}:A") => (0, 1),
            Some("lab.sonde.test:TXT") => (0, 1),
            Some("missing.sonde.test:A") => (5, 0),
            other => panic!("unexpected question {other:?}"),
        };
        assert_eq!((rcode, answers), expected, "{r:?}");
    }
}
