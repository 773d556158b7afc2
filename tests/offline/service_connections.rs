//! Service identification's connections on loopback (no root): real TCP
//! servers on 127.0.0.1 that greet, answer HTTP, stay silent, flood,
//! close at once; every connection under the scope's permits, bounded in
//! time and bytes. The lab tests (tests/lab/service_lab.rs) run real Debian
//! services.

use std::io::{Read, Write};
use std::net::{IpAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sonde::net::service::{ServiceJob, ServiceLimits, ServiceStop, identify};
use sonde::results::ServiceResult;
use sonde::scope::{Refusal, Scope, ScopeGate};

fn scope(probes: &str, max_probes: Option<u64>) -> Scope {
    scope_at(probes, max_probes, 1000)
}

fn scope_at(probes: &str, max_probes: Option<u64>, max_rate: u32) -> Scope {
    let budget = max_probes.map_or(String::new(), |n| format!("max_probes = {n}\n"));
    Scope::from_toml(
        &format!(
            r#"
probes = [{probes}]
[engagement]
id = "T"
client = "t"
authorized_by = "t"
contact = "t@example.test"
not_before = 2024-01-01T00:00:00Z
not_after = 2099-12-31T23:59:59Z
[limits]
max_rate = {max_rate}
{budget}
[[allow]]
name = "loopback"
targets = ["127.0.0.0/8"]
"#
        ),
        "t.toml",
    )
    .unwrap()
}

/// A server on 127.0.0.1 that runs `serve` on every connection it takes;
/// its port, and how many connections it took.
fn server(serve: impl Fn(std::net::TcpStream) + Send + Sync + 'static) -> (u16, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let taken = Arc::new(AtomicUsize::new(0));
    let t = taken.clone();
    let serve = Arc::new(serve);
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            t.fetch_add(1, Ordering::SeqCst);
            let serve = serve.clone();
            std::thread::spawn(move || serve(s));
        }
    });
    (port, taken)
}

/// The gate as a scan on this host makes it: this host's own address may
/// be a source.
fn gate(scope: Scope) -> ScopeGate {
    let mut local = sonde::targets::IpSet::new();
    local.insert(sonde::targets::AddrRange::single(
        "127.0.0.1".parse().unwrap(),
    ));
    ScopeGate::new(scope, None)
        .unwrap()
        .with_local_sources(local)
}

fn job(port: u16) -> ServiceJob {
    ServiceJob {
        target: "127.0.0.1".parse::<IpAddr>().unwrap(),
        port,
        host: "127.0.0.1".into(),
        protocol: sonde::results::Protocol::Tcp,
    }
}

fn run(gate: &ScopeGate, ports: &[u16]) -> (Vec<ServiceResult>, Option<ServiceStop>) {
    let jobs: Vec<ServiceJob> = ports.iter().map(|&p| job(p)).collect();
    let seen = Mutex::new(0usize);
    let (results, stop) = identify(
        &jobs,
        gate,
        &ServiceLimits {
            per_port: Duration::from_secs(12),
            ..ServiceLimits::default()
        },
        &|| false,
        &|_| *seen.lock().unwrap() += 1,
    );
    assert_eq!(
        *seen.lock().unwrap(),
        results.len(),
        "every result reported"
    );
    (results, stop)
}

#[test]
fn a_greeting_an_http_answer_and_the_hostile_ones_each_end_with_a_clear_result() {
    let gate = gate(scope(r#""syn", "service""#, None));
    let (ssh, _) = server(|mut s| {
        let _ = s.write_all(b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n");
        std::thread::sleep(Duration::from_secs(3));
    });
    // Silent until asked, then HTTP.
    let (http, _) = server(|mut s| {
        let mut buf = [0u8; 1024];
        let n = s.read(&mut buf).unwrap_or(0);
        if buf[..n].starts_with(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n") {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nContent-Length: 40\r\n\r\n<html><title>Welcome to nginx!</title>");
        }
    });
    // Says nothing, ever.
    let (silent, _) = server(|s| {
        std::thread::sleep(Duration::from_secs(20));
        drop(s);
    });
    // 10 MB at once.
    let (flood, _) = server(|mut s| {
        let chunk = vec![b'A'; 64 * 1024];
        for _ in 0..160 {
            if s.write_all(&chunk).is_err() {
                return;
            }
        }
    });
    // Closes at once.
    let (closes, _) = server(drop);
    // TLS-looking garbage first.
    let (garbage, _) = server(|mut s| {
        let _ = s.write_all(b"\x16\x03\x01\x00\x05\xde\xad\xbe\xef\x00");
        std::thread::sleep(Duration::from_secs(3));
    });
    let t0 = Instant::now();
    let (r, stop) = run(&gate, &[ssh, http, silent, flood, closes, garbage]);
    assert!(stop.is_none(), "{stop:?}");
    assert!(t0.elapsed() < Duration::from_secs(20), "{:?}", t0.elapsed());
    let by = |p: u16| r.iter().find(|x| x.port == p).unwrap();

    let s = by(ssh);
    assert_eq!(
        (
            s.service.as_deref(),
            s.product.as_deref(),
            s.version.as_deref()
        ),
        (Some("ssh"), Some("OpenSSH"), Some("9.2p1"))
    );
    assert_eq!(
        (s.method.as_str(), s.conf, s.connections),
        ("probed", 10, 1)
    );
    assert_eq!(s.cpe.as_deref(), Some("cpe:/a:openbsd:openssh:9.2p1"));

    let h = by(http);
    assert_eq!(
        (
            h.service.as_deref(),
            h.product.as_deref(),
            h.version.as_deref()
        ),
        (Some("http"), Some("nginx"), Some("1.22.1"))
    );
    assert_eq!(
        h.http.as_ref().unwrap().title.as_deref(),
        Some("Welcome to nginx!")
    );

    // Silent: asked HTTP, heard nothing; named from the table if at all.
    let q = by(silent);
    assert_eq!(q.method, "table");
    assert_eq!((q.banner.as_deref(), q.bytes_read), (None, 0));

    // The flood: read up to 64 KiB, never more.
    let f = by(flood);
    assert!(f.bytes_read <= 64 * 1024, "{}", f.bytes_read);
    assert!(f.bytes_read > 0);
    assert!(f.banner.as_ref().unwrap().len() <= 520);

    let c = by(closes);
    assert_eq!((c.bytes_read, c.product.as_deref()), (0, None));

    let g = by(garbage);
    assert_eq!(
        g.banner.as_deref(),
        Some("\\x16\\x03\\x01\\x00\\x05\\xde\\xad\\xbe\\xef\\x00")
    );
    assert_eq!(g.product, None);
}

#[test]
fn a_scope_without_service_refuses_before_any_connection() {
    let gate = gate(scope(r#""syn""#, None));
    let (port, taken) = server(drop);
    let (r, stop) = run(&gate, &[port]);
    assert!(r.is_empty());
    match stop {
        Some(ServiceStop::Scope(e @ Refusal::KindNotAllowed { .. })) => {
            assert!(e.to_string().contains("service"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        taken.load(Ordering::SeqCst),
        0,
        "no connection reached the server"
    );
}

#[test]
fn the_budget_counts_connections_and_stops_them() {
    let gate = gate(scope(r#""syn", "service""#, Some(2)));
    let (port, taken) = server(|mut s| {
        let _ = s.write_all(b"220 (vsFTPd 3.0.3)\r\n");
    });
    let (r, stop) = run(&gate, &[port, port, port, port]);
    assert_eq!(r.len(), 2, "{r:?}");
    assert!(
        matches!(
            stop,
            Some(ServiceStop::Scope(Refusal::BudgetExhausted { .. }))
        ),
        "{stop:?}"
    );
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(taken.load(Ordering::SeqCst), 2);
    assert_eq!(r[0].product.as_deref(), Some("vsftpd"));
}

/// The kernel's packets are paced ahead: at max_rate 480, 48 packets a
/// connection, ten connections a second at most, whatever the burst.
#[test]
fn connections_are_paced_under_the_rate_ceiling() {
    let gate = gate(scope_at(r#""syn", "service""#, None, 480));
    let times = Arc::new(Mutex::new(Vec::new()));
    let t = times.clone();
    let (port, _) = server(move |mut s| {
        t.lock().unwrap().push(Instant::now());
        let _ = s.write_all(b"220 (vsFTPd 3.0.3)\r\n");
    });
    let started = Instant::now();
    let (r, stop) = run(&gate, &[port; 15]);
    assert!(stop.is_none());
    assert_eq!(r.len(), 15);
    let times = times.lock().unwrap();
    assert_eq!(times.len(), 15);
    // 15 connections at 10 a second: at least 1.3 s (the bucket starts
    // with one burst's room).
    let span = *times.iter().max().unwrap() - started;
    assert!(span >= Duration::from_millis(1300), "{span:?}");
    // No second holds more than 10 (+1 for a window's edge).
    for a in times.iter() {
        let within = times
            .iter()
            .filter(|b| **b >= *a && **b < *a + Duration::from_secs(1))
            .count();
        assert!(within <= 11, "{within} connections within a second");
    }
}

/// A TLS port answering garbage: the handshake fails with a clear error,
/// within the deadline.
#[test]
fn garbage_on_a_tls_port_is_a_failed_handshake() {
    // 8443 is a TLS port; on a loopback address of this test's own.
    let l = TcpListener::bind("127.0.0.88:8443").unwrap();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let mut buf = [0u8; 512];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\ngarbage, not TLS");
        }
    });
    let mut local = sonde::targets::IpSet::new();
    local.insert(sonde::targets::AddrRange::single(
        "127.0.0.1".parse().unwrap(),
    ));
    let gate = ScopeGate::new(scope(r#""syn", "service""#, None), None)
        .unwrap()
        .with_local_sources(local);
    let jobs = [ServiceJob {
        target: "127.0.0.88".parse().unwrap(),
        port: 8443,
        host: "127.0.0.88".into(),
        protocol: sonde::results::Protocol::Tcp,
    }];
    let t0 = Instant::now();
    let (r, stop) = identify(&jobs, &gate, &ServiceLimits::default(), &|| false, &|_| {});
    assert!(stop.is_none(), "{stop:?}");
    assert!(t0.elapsed() < Duration::from_secs(10));
    let e = r[0].error.as_deref().unwrap();
    assert!(e.starts_with("TLS handshake failed"), "{e}");
    assert!(r[0].tls.is_none());
}
