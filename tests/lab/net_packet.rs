//! AF_PACKET in the lab: gated SYN probes go out through the raw sender,
//! the sniffer's BPF filter passes only packets addressed to us, and the
//! classifier reads open, closed and filtered exactly as the ground truth
//! says. Every packet goes to lab hosts in the test's own namespaces.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use sonde::net::packet::{RawSender, SendRefusal, Sniffer};
use sonde::net::route::{neighbours, resolve};
use sonde::probe::{Classified, CookieKey, Probe, ProbeTemplate, Verdict, build, classify};
use sonde::scope::{ProbeKind, Scope, ScopeGate};
use support::lab::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn lab_gate() -> ScopeGate {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/scopes/lab.toml")).unwrap();
    // Built inside the scanner namespace: its addresses are the sources.
    ScopeGate::new(Scope::from_toml(&text, "lab.toml").unwrap(), Some(1000.0))
        .unwrap()
        .with_local_sources(sonde::net::route::local_addresses().unwrap())
}

#[test]
fn gated_syn_probes_find_open_closed_and_filtered_ports() {
    let lab = Lab::new();
    let truth = lab.truth.clone();
    assert!(
        lab.scanner_command("ping")
            .args(["-c", "1", "-W", "2", "198.18.0.1"])
            .status()
            .unwrap()
            .success()
    );
    let results = lab.in_scanner(move || {
        let target = ip("198.18.1.10");
        let hop = resolve(target, &neighbours().unwrap()).unwrap();
        let key = CookieKey::random();
        let gate = lab_gate();
        let mut sniffer = Sniffer::open(
            hop.ifindex,
            &[hop.source, ip("2001:db8::2")],
            Duration::from_millis(100),
        )
        .unwrap();
        let mut sender = RawSender::open(hop.ifindex).unwrap();
        let ports = [22u16, 80, 8080, 23, 25, FILTERED_DROP];
        let mut batch = gate.reserve(ports.len() as u32).unwrap();
        let mut buf = Vec::new();
        for port in ports {
            let permit = batch
                .permit(hop.source, target, Some(port), ProbeKind::Syn)
                .unwrap();
            let probe = Probe {
                kind: ProbeKind::Syn,
                src: hop.source,
                dst: target,
                port: Some(port),
            };
            build(
                &mut buf,
                &probe,
                &key.marks(hop.source, target, port, ProbeKind::Syn),
                &ProbeTemplate::default(),
                None,
            )
            .unwrap();
            sender.queue(permit, &hop, &buf).unwrap();
        }
        assert_eq!(sender.flush().unwrap(), ports.len());

        // A permit for one address cannot carry a packet to another.
        let mut one = gate.reserve(1).unwrap();
        let permit = one
            .permit(hop.source, ip("198.18.1.11"), Some(80), ProbeKind::Syn)
            .unwrap();
        assert!(matches!(
            sender.queue(permit, &hop, &buf),
            Err(SendRefusal::NotPermitted { .. })
        ));

        let mut seen = Vec::new();
        let mut frame = vec![0u8; 65536];
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if let Some(f) = sniffer.next(&mut frame).unwrap() {
                let dst_is_us = matches!(f.get(12..14), Some([0x08, 0x00]))
                    && f.get(30..34) == Some(&[198, 18, 0, 2][..]);
                assert!(
                    dst_is_us,
                    "the filter passed a frame not addressed to us: {:02x?}",
                    &f[..f.len().min(40)]
                );
                seen.push(classify(&f[14..], &key));
            }
        }
        let stats = sniffer.stats().unwrap();
        (seen, stats, ports)
    });
    let (seen, stats, ports) = results;
    assert_eq!(stats.dropped, 0);
    assert!(
        stats.received as usize >= seen.len() && !seen.is_empty(),
        "{stats:?}"
    );
    for port in ports {
        let verdicts: Vec<Verdict> = seen
            .iter()
            .filter_map(|c| match c {
                Classified::Reply(r) if r.port == Some(port) => Some(r.verdict),
                _ => None,
            })
            .collect();
        match truth.tcp(ip("198.18.1.10"), port) {
            PortState::Open => assert_eq!(verdicts, vec![Verdict::Open], "port {port}"),
            PortState::Closed => assert_eq!(verdicts, vec![Verdict::Closed], "port {port}"),
            PortState::Filtered => assert!(verdicts.is_empty(), "port {port}: {verdicts:?}"),
        }
    }
    assert!(
        seen.iter().all(|c| !matches!(c, Classified::Invalid(_))),
        "{seen:?}"
    );
}

/// An on-link target nobody has talked to: its MAC is unknown, so the
/// AF_PACKET path refuses it, and the raw IP path sends anyway, the kernel
/// resolving the neighbour itself. The SYN-ACK comes back all the same.
#[test]
fn unknown_next_hops_go_through_the_kernel() {
    use sonde::net::packet::RawIpSender;
    use sonde::net::route::RouteError;
    let lab = Lab::new();
    let flushed = std::process::Command::new("ip")
        .args(["-n", &lab.scanner_ns, "neigh", "flush", "all"])
        .status()
        .unwrap();
    assert!(flushed.success());
    let (verdicts, refused) = lab.in_scanner(|| {
        let target = ip("198.18.0.15");
        let refused = matches!(
            resolve(target, &neighbours().unwrap()),
            Err(RouteError::NeighbourUnknown { .. })
        );
        let (ifindex, _, source) = sonde::net::route::route_to(target).unwrap();
        let key = CookieKey::random();
        let gate = lab_gate();
        let mut sniffer = Sniffer::open(ifindex, &[source], Duration::from_millis(100)).unwrap();
        let mut sender = RawIpSender::open().unwrap();
        let mut batch = gate.reserve(1).unwrap();
        let permit = batch
            .permit(source, target, Some(443), ProbeKind::Syn)
            .unwrap();
        let probe = Probe {
            kind: ProbeKind::Syn,
            src: source,
            dst: target,
            port: Some(443),
        };
        let mut buf = Vec::new();
        build(
            &mut buf,
            &probe,
            &key.marks(source, target, 443, ProbeKind::Syn),
            &ProbeTemplate::default(),
            None,
        )
        .unwrap();
        sender.send(permit, &buf).unwrap().unwrap();
        let mut frame = vec![0u8; 65536];
        let mut verdicts = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline && verdicts.is_empty() {
            if let Some(f) = sniffer.next(&mut frame).unwrap()
                && let Classified::Reply(r) = classify(&f[14..], &key)
            {
                verdicts.push((r.target, r.port, r.verdict));
            }
        }
        (verdicts, refused)
    });
    assert!(refused, "the AF_PACKET path should not guess a MAC");
    assert_eq!(
        verdicts,
        vec![(ip("198.18.0.15"), Some(443), Verdict::Open)]
    );
}
