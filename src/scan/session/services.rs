//! The session's service phase (`--probe syn,service`): after the scan's
//! passes, one connection per open port it found (`net::service`), each
//! result a `service` line of results.ndjson and the port's entry in the
//! report; the phase's start and end in the audit log.

use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use super::files::{Audit, audit};
use crate::error::Error;
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
