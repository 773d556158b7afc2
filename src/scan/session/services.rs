//! The session's service phase (`--probe syn,service`): after the scan's
//! passes, one connection per open port it found (`net::service`), each
//! result a `service` line of results.ndjson and the port's entry in the
//! report; the phase's start and end in the audit log.

use std::collections::HashSet;
use std::io::Write;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::files::{Audit, audit};
use crate::error::Error;
use crate::net::capture::ConnectionCapture;
use crate::net::service::{ServiceJob, ServiceLimits, ServiceStop, identify};
use crate::results::{Protocol, ServiceResult};
use crate::scan::progress::{Observer, ScanEvent};
use crate::scan::{ScanOutcome, ScopeStop};
use crate::scope::{Refusal, ScopeGate};

/// Identify the services on every open port of `outcome`'s hosts, adding
/// them to the hosts and appending them to `results` (results.ndjson).
pub(super) fn identify_open_ports(
    outcome: &mut ScanOutcome,
    gate: &ScopeGate,
    stop: &AtomicBool,
    results: std::fs::File,
    capture: Option<(ConnectionCapture, std::fs::File)>,
    log: &mut Audit,
    observer: &dyn Observer,
) -> Result<(), Error> {
    let mut jobs: Vec<ServiceJob> = Vec::new();
    for h in &outcome.hosts {
        for port in h.open_ports() {
            jobs.push(ServiceJob {
                target: h.address,
                port,
                host: h.address.to_string(),
                protocol: Protocol::Tcp,
            });
        }
        // A DNS server that answered the scan's questions: asked what it is.
        let mut dns_ports: Vec<u16> = h
            .results
            .iter()
            .filter(|r| matches!(r.verdict, crate::probe::Verdict::DnsAnswer { .. }))
            .map(|r| r.port.unwrap_or(53))
            .collect();
        dns_ports.sort_unstable();
        dns_ports.dedup();
        for port in dns_ports {
            jobs.push(ServiceJob {
                target: h.address,
                port,
                host: h.address.to_string(),
                protocol: Protocol::Udp,
            });
        }
    }
    let limits = ServiceLimits::default();
    audit(
        log,
        "services_started",
        serde_json::json!({
            "open_ports": jobs.len(),
            "concurrency": limits.concurrency,
            "per_port_seconds": limits.per_port.as_secs(),
            "packets_reserved_per_connection": crate::net::service::PACKETS_PER_CONNECTION,
        }),
    )?;
    if jobs.is_empty() {
        audit(
            log,
            "services_finished",
            serde_json::json!({ "identified": 0 }),
        )?;
        return Ok(());
    }
    observer.event(&ScanEvent::Note(format!(
        "identifying the services on {} open port{}",
        jobs.len(),
        if jobs.len() == 1 { "" } else { "s" }
    )));
    let out = Mutex::new((std::io::BufWriter::new(results), None::<std::io::Error>));
    // Every packet of the connections goes into the run's capture.
    let ends: HashSet<(IpAddr, u16, u8)> = jobs
        .iter()
        .map(|j| {
            let proto = if j.protocol == Protocol::Udp { 17 } else { 6 };
            (j.target, j.port, proto)
        })
        .collect();
    let capturing = AtomicBool::new(true);
    let (found, stopped, captured) = std::thread::scope(|sc| {
        let recorder = capture.map(|(cap, pcap)| {
            let capturing = &capturing;
            let ends = &ends;
            sc.spawn(move || record_connections(&cap, pcap, ends, capturing))
        });
        let (found, stopped) = identify(
            &jobs,
            gate,
            &limits,
            &|| stop.load(Ordering::Relaxed),
            &|r: &ServiceResult| {
                let mut o = out.lock().expect("not poisoned");
                if o.1.is_none() {
                    let w = serde_json::to_writer(&mut o.0, r)
                        .map_err(std::io::Error::other)
                        .and_then(|()| o.0.write_all(b"\n"));
                    if let Err(e) = w {
                        o.1 = Some(e);
                    }
                }
            },
        );
        // The last ACKs and FINs, then the capture ends.
        std::thread::sleep(CAPTURE_TAIL);
        capturing.store(false, Ordering::Release);
        let captured = recorder.map(|r| {
            r.join()
                .unwrap_or_else(|_| Err(std::io::Error::other("the capture thread failed")))
        });
        (found, stopped, captured)
    });
    let captured = match captured {
        Some(Ok(n)) => Some(n),
        Some(Err(e)) => return Err(Error::runtime("cannot capture the service connections", e)),
        None => None,
    };
    let (mut w, failed) = out.into_inner().expect("not poisoned");
    if let Some(e) = failed.or_else(|| w.flush().err()) {
        return Err(Error::runtime("cannot write the service results", e));
    }
    let identified = found.iter().filter(|r| r.product.is_some()).count();
    let connections: u64 = found.iter().map(|r| u64::from(r.connections)).sum();
    let stopped_why = match &stopped {
        None => None,
        Some(ServiceStop::Stopped) => Some("interrupted".to_string()),
        Some(ServiceStop::Scope(r)) => Some(r.to_string()),
    };
    audit(
        log,
        "services_finished",
        serde_json::json!({
            "ports": found.len(),
            "named": found.iter().filter(|r| r.service.is_some()).count(),
            "identified": identified,
            "connections": connections,
            "packets_captured": captured,
            "stopped": stopped_why,
        }),
    )?;
    match stopped {
        Some(ServiceStop::Stopped) => outcome.interrupted = true,
        Some(ServiceStop::Scope(r @ Refusal::Expired { .. })) => {
            outcome.scope_stop = Some(ScopeStop::WindowClosed(r));
        }
        Some(ServiceStop::Scope(r)) => outcome.scope_stop = Some(ScopeStop::BudgetSpent(r)),
        None => {}
    }
    for r in found {
        if let Some(h) = outcome.hosts.iter_mut().find(|h| h.address == r.target) {
            h.services.push(r);
        }
    }
    for h in &mut outcome.hosts {
        h.services
            .sort_unstable_by_key(|s| (s.protocol != Protocol::Tcp, s.port));
    }
    Ok(())
}

/// How long the capture runs on after the last connection: its closing
/// packets.
const CAPTURE_TAIL: Duration = Duration::from_millis(300);

/// Append every IP packet between this host and one of `ends` (address,
/// port, IP protocol: either direction) to the run's capture `pcap` until
/// `capturing` is cleared; how many.
fn record_connections(
    cap: &ConnectionCapture,
    pcap: std::fs::File,
    ends: &HashSet<(IpAddr, u16, u8)>,
    capturing: &AtomicBool,
) -> std::io::Result<u64> {
    let len = pcap.metadata()?.len();
    let snaplen = {
        use std::os::unix::fs::FileExt;
        let mut h = [0u8; 4];
        pcap.read_exact_at(&mut h, 16)?;
        u32::from_le_bytes(h)
    };
    let mut w = crate::pcap::PcapWriter::continuing(std::io::BufWriter::new(pcap), snaplen, len);
    cap.start()?;
    let mut buf = vec![0u8; 65_536];
    let mut n = 0u64;
    while capturing.load(Ordering::Acquire) {
        let Some((len, at)) = cap.next(&mut buf, Duration::from_millis(50))? else {
            continue;
        };
        let packet = &buf[..len];
        if is_ours(packet, ends) {
            w.write(at, packet)?;
            n += 1;
        }
    }
    w.flush()?;
    w.into_inner()
        .into_inner()
        .map_err(|e| e.into_error())?
        .sync_data()?;
    Ok(n)
}

/// Whether `packet` (IP) is of a connection to one of `ends`.
fn is_ours(packet: &[u8], ends: &HashSet<(IpAddr, u16, u8)>) -> bool {
    let Ok(ip) = crate::wire::ip::IpPacket::parse(packet) else {
        return false;
    };
    let proto = ip.protocol();
    let l4 = ip.after_header();
    let ports = match proto {
        6 => crate::wire::tcp::TcpPacket::new_checked(l4)
            .ok()
            .map(|t| (t.src_port(), t.dst_port())),
        17 => crate::wire::udp::UdpPacket::new_checked(l4)
            .ok()
            .map(|u| (u.src_port(), u.dst_port())),
        _ => None,
    };
    let Some((sport, dport)) = ports else {
        return false;
    };
    ends.contains(&(ip.dst(), dport, proto)) || ends.contains(&(ip.src(), sport, proto))
}
