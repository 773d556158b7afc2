//! Service identification's connections (issue 28): one TCP connection
//! through the kernel per open port, under a permit of kind `service`,
//! driven by `service::probe::Identification`. Before each connection
//! the rate ceiling makes room for [`PACKETS_PER_CONNECTION`] packets (its
//! packets are the kernel's, so they are paced ahead, whatever the burst),
//! and it is charged one probe of the budget; every connect, read and handshake has a timeout; at most
//! [`MAX_READ`] bytes are read from one port.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::results::{CaptureTime, Protocol, ServiceKind, ServiceResult, TlsResult};
use crate::scope::{Permit, ProbeKind, Refusal, ScopeGate};
use crate::service::probe::{Action, Event, Found, Identification, MAX_READ, TlsSeen};
use crate::service::tls::CertificateInfo;

/// Packets of the rate ceiling one connection reserves: the handshake,
/// the request, a TLS handshake, the ACKs of 64 KiB read, the close.
pub const PACKETS_PER_CONNECTION: u32 = 48;
/// A read that went quiet this long after data came is over.
const IDLE: Duration = Duration::from_millis(300);

/// One port to identify.
#[derive(Clone, Debug)]
pub struct ServiceJob {
    pub target: IpAddr,
    pub port: u16,
    /// The name the HTTP request's Host names (the target as given).
    pub host: String,
    /// `Udp`: a DNS server (it answered the scan's DNS probes), asked
    /// `version.bind`; `Tcp`: a connection.
    pub protocol: Protocol,
}

/// How long a DNS server has to answer `version.bind`.
const DNS_WAIT: Duration = Duration::from_secs(2);

/// How hard to try.
#[derive(Clone, Debug)]
pub struct ServiceLimits {
    /// Connections open at once.
    pub concurrency: usize,
    pub connect_timeout: Duration,
    /// The most one port takes, every connection and wait included.
    pub per_port: Duration,
}

impl Default for ServiceLimits {
    fn default() -> ServiceLimits {
        ServiceLimits {
            concurrency: 32,
            connect_timeout: Duration::from_secs(3),
            per_port: Duration::from_secs(20),
        }
    }
}

/// Why identification stopped before every port was tried.
#[derive(Debug)]
pub enum ServiceStop {
    /// The scope refused (budget spent, window closed).
    Scope(Refusal),
    /// The caller said stop (Ctrl-C).
    Stopped,
}

/// Identify every job's service, `limits.concurrency` at a time; each
/// result goes to `on_result` as it is found (the NDJSON), and all come
/// back in job order. A scope refusal stops the rest (returned with the
/// results so far).
pub fn identify(
    jobs: &[ServiceJob],
    gate: &ScopeGate,
    limits: &ServiceLimits,
    stop: &(dyn Fn() -> bool + Sync),
    on_result: &(dyn Fn(&ServiceResult) + Sync),
) -> (Vec<ServiceResult>, Option<ServiceStop>) {
    let next = AtomicUsize::new(0);
    let halted = AtomicBool::new(false);
    let why: std::sync::Mutex<Option<ServiceStop>> = std::sync::Mutex::new(None);
    let results: std::sync::Mutex<Vec<(usize, ServiceResult)>> = std::sync::Mutex::new(Vec::new());
    let tls = tls_config();
    let workers = limits.concurrency.clamp(1, 256).min(jobs.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    if halted.load(Ordering::Acquire) {
                        return;
                    }
                    if stop() {
                        halted.store(true, Ordering::Release);
                        why.lock()
                            .expect("not poisoned")
                            .get_or_insert(ServiceStop::Stopped);
                        return;
                    }
                    let i = next.fetch_add(1, Ordering::AcqRel);
                    let Some(job) = jobs.get(i) else { return };
                    let r = match job.protocol {
                        Protocol::Tcp => identify_one(job, gate, limits, &tls, stop),
                        Protocol::Udp => ask_dns_version(job, gate, stop),
                    };
                    match r {
                        Ok(r) => {
                            on_result(&r);
                            results.lock().expect("not poisoned").push((i, r));
                        }
                        Err(e) => {
                            halted.store(true, Ordering::Release);
                            why.lock().expect("not poisoned").get_or_insert(e);
                            return;
                        }
                    }
                }
            });
        }
    });
    let mut all = results.into_inner().expect("not poisoned");
    all.sort_by_key(|(i, _)| *i);
    (
        all.into_iter().map(|(_, r)| r).collect(),
        why.into_inner().expect("not poisoned"),
    )
}

/// The source address the kernel would use toward `dst` (a UDP socket's
/// connect asks the routing table and sends nothing).
fn source_for(dst: IpAddr) -> std::io::Result<IpAddr> {
    let any: SocketAddr = match dst {
        IpAddr::V4(_) => "0.0.0.0:0".parse().expect("an address"),
        IpAddr::V6(_) => "[::]:0".parse().expect("an address"),
    };
    let s = UdpSocket::bind(any)?;
    s.connect(SocketAddr::new(dst, 9))?;
    Ok(s.local_addr()?.ip())
}

/// A permit for `job` from `src`, charged one probe of the budget, after
/// the rate ceiling made room for `packets` (the permit's and the rest the
/// kernel will send for it, which are not probes).
fn permit_for(
    job: &ServiceJob,
    src: IpAddr,
    packets: u32,
    gate: &ScopeGate,
    stop: &dyn Fn() -> bool,
) -> Result<Permit, ServiceStop> {
    // One connection's packets are paced together, before it opens: were
    // every worker to pace its own in turn, all of them would finish
    // together and open at once, a burst the ceiling never allowed.
    static PACING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = PACING.lock().unwrap_or_else(|e| e.into_inner());
    match gate.pace(packets.saturating_sub(1), stop) {
        Ok(true) => {}
        Ok(false) => return Err(ServiceStop::Stopped),
        Err(r) => return Err(ServiceStop::Scope(r)),
    }
    let mut allowance = match gate.reserve_unless(1, stop) {
        Ok(Some(a)) => a,
        Ok(None) => return Err(ServiceStop::Stopped),
        Err(r) => return Err(ServiceStop::Scope(r)),
    };
    allowance
        .permit(src, job.target, Some(job.port), ProbeKind::Service)
        .map_err(ServiceStop::Scope)
}

/// Ask a DNS server `version.bind` over UDP (one query, one answer).
fn ask_dns_version(
    job: &ServiceJob,
    gate: &ScopeGate,
    stop: &dyn Fn() -> bool,
) -> Result<ServiceResult, ServiceStop> {
    let started = crate::clock::now_nanos();
    let mut found = Found::default();
    let mut read = 0u64;
    let asked = match source_for(job.target) {
        Err(e) => Err(format!("no route: {e}")),
        Ok(src) => {
            let permit = permit_for(job, src, 2, gate, stop)?;
            query_version(&permit, job.port, &mut read)
        }
    };
    let error = match asked {
        Ok(version) => {
            found.named = crate::service::Rules::builtin()
                .identify(crate::service::Field::DnsVersion, version.as_bytes());
            found.banner = Some(crate::service::probe::banner_text(version.as_bytes()));
            None
        }
        Err(e) => Some(e),
    };
    let mut r = result(job, found, 0, read, error, started);
    r.protocol = Protocol::Udp;
    if r.method == "table" {
        // It answered the scan's DNS probes: a DNS server, whatever it is.
        r.service = Some("domain".into());
    }
    Ok(r)
}

/// One `version.bind` query under `permit`; the version text.
fn query_version(permit: &Permit, port: u16, read: &mut u64) -> Result<String, String> {
    let socket =
        UdpSocket::bind(SocketAddr::new(permit.src(), 0)).map_err(|e| describe(&e, "bind"))?;
    socket
        .connect(SocketAddr::new(permit.dst(), port))
        .map_err(|e| describe(&e, "connect"))?;
    let id: u16 = rand::random();
    socket
        .send(&crate::service::dns::version_bind_query(id))
        .map_err(|e| describe(&e, "send"))?;
    let deadline = Instant::now() + DNS_WAIT;
    let mut buf = [0u8; 4096];
    loop {
        let _ = socket.set_read_timeout(Some(remaining(deadline)));
        let n = socket
            .recv(&mut buf)
            .map_err(|e| describe(&e, "version.bind"))?;
        *read += n as u64;
        match crate::service::dns::version_bind_answer(&buf[..n], id)? {
            Some(v) => return Ok(v),
            // Not the answer (another id): wait on for it.
            None if Instant::now() < deadline => {}
            None => return Err("version.bind: no answer".into()),
        }
    }
}

/// One connection, opened under a permit.
fn connect(
    job: &ServiceJob,
    gate: &ScopeGate,
    limits: &ServiceLimits,
    stop: &dyn Fn() -> bool,
) -> Result<Result<TcpStream, String>, ServiceStop> {
    let src = match source_for(job.target) {
        Ok(s) => s,
        Err(e) => return Ok(Err(format!("no route: {e}"))),
    };
    let permit = permit_for(job, src, PACKETS_PER_CONNECTION, gate, stop)?;
    let addr = SocketAddr::new(permit.dst(), job.port);
    let stream = match TcpStream::connect_timeout(&addr, limits.connect_timeout) {
        Ok(s) => s,
        Err(e) => return Ok(Err(describe(&e, "connect"))),
    };
    // The kernel chose the source the permit names (the same route).
    match stream.local_addr() {
        Ok(l) if l.ip() == permit.src() => {}
        Ok(l) => {
            return Ok(Err(format!(
                "the kernel used source {} where the permit named {}",
                l.ip(),
                permit.src()
            )));
        }
        Err(e) => return Ok(Err(describe(&e, "connect"))),
    }
    let _ = stream.set_nodelay(true);
    Ok(Ok(stream))
}

fn describe(e: &std::io::Error, what: &str) -> String {
    match e.kind() {
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => {
            format!("{what} timed out")
        }
        std::io::ErrorKind::ConnectionRefused => format!("{what}: connection refused"),
        std::io::ErrorKind::ConnectionReset => format!("{what}: connection reset"),
        _ => format!("{what}: {e}"),
    }
}

/// A connection, plain or inside TLS.
enum Conn {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Conn {
    fn tcp(&self) -> &TcpStream {
        match self {
            Conn::Plain(s) => s,
            Conn::Tls(t) => &t.sock,
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(t) => t.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(t) => t.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(t) => t.flush(),
        }
    }
}

/// Identify one port: connections, reads and handshakes within
/// `limits.per_port`.
fn identify_one(
    job: &ServiceJob,
    gate: &ScopeGate,
    limits: &ServiceLimits,
    tls: &Arc<rustls::ClientConfig>,
    stop: &dyn Fn() -> bool,
) -> Result<ServiceResult, ServiceStop> {
    let started = crate::clock::now_nanos();
    let deadline = Instant::now() + limits.per_port;
    let mut id = Identification::new(job.port, &job.host);
    let mut connections = 0u32;
    let mut read_total = 0u64;
    let mut error = None;
    let mut conn = match connect(job, gate, limits, stop)? {
        Ok(s) => {
            connections += 1;
            Some(Conn::Plain(s))
        }
        Err(e) => {
            error = Some(e);
            None
        }
    };
    let mut action = if conn.is_some() {
        id.on(Event::Opened)
    } else {
        Action::Finish
    };
    while action != Action::Finish {
        let Some(c) = conn.as_mut() else { break };
        if Instant::now() >= deadline {
            error = Some(format!(
                "identification took its {} s",
                limits.per_port.as_secs()
            ));
            break;
        }
        let event = match action {
            Action::Listen(wait) => {
                let (bytes, e) = listen(c, wait, deadline, MAX_READ - read_total as usize);
                read_total += bytes.len() as u64;
                error = e.or(error);
                Event::Heard(bytes)
            }
            Action::Ask(request, wait) => {
                let _ = c.tcp().set_write_timeout(Some(remaining(deadline)));
                if let Err(e) = c.write_all(&request).and_then(|()| c.flush()) {
                    error = Some(describe(&e, "send"));
                    Event::Heard(Vec::new())
                } else {
                    let (bytes, e) = listen(c, wait, deadline, MAX_READ - read_total as usize);
                    read_total += bytes.len() as u64;
                    error = e.or(error);
                    Event::Heard(bytes)
                }
            }
            Action::StartTls => {
                let Some(Conn::Plain(tcp)) = conn.take() else {
                    break;
                };
                match handshake(tcp, tls, &job.host, deadline) {
                    Ok((t, seen)) => {
                        conn = Some(Conn::Tls(Box::new(t)));
                        Event::TlsUp(seen)
                    }
                    Err(why) => Event::TlsFailed(why),
                }
            }
            Action::Reconnect { .. } => {
                conn = None;
                match connect(job, gate, limits, stop)? {
                    Ok(s) => {
                        connections += 1;
                        conn = Some(Conn::Plain(s));
                        Event::Opened
                    }
                    Err(e) => {
                        error = Some(e);
                        break;
                    }
                }
            }
            Action::Finish => break,
        };
        action = id.on(event);
    }
    if let Some(Conn::Tls(t)) = conn.as_mut() {
        t.conn.send_close_notify();
        let _ = t.conn.complete_io(&mut t.sock);
    }
    drop(conn);
    Ok(result(
        job,
        id.finish(),
        connections,
        read_total,
        error,
        started,
    ))
}

fn remaining(deadline: Instant) -> Duration {
    deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1))
}

/// Read what arrives within `wait` (never past `deadline`), stopping once
/// data came and the line was quiet for [`IDLE`], or the peer closed, or
/// `room` bytes were read. (bytes, why it ended badly).
fn listen(
    c: &mut Conn,
    wait: Duration,
    deadline: Instant,
    room: usize,
) -> (Vec<u8>, Option<String>) {
    let until = (Instant::now() + wait).min(deadline);
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let now = Instant::now();
        if now >= until || out.len() >= room {
            return (out, None);
        }
        let timeout = if out.is_empty() {
            until - now
        } else {
            IDLE.min(until - now)
        };
        let _ = c
            .tcp()
            .set_read_timeout(Some(timeout.max(Duration::from_millis(1))));
        match c.read(&mut buf) {
            Ok(0) => return (out, None),
            Ok(n) => out.extend_from_slice(&buf[..n.min(room - out.len())]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if !out.is_empty() {
                    return (out, None);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            // A TLS close without close_notify, or a reset: what came counts.
            Err(e) => return (out, Some(describe(&e, "read"))),
        }
    }
}

/// TLS over `tcp`, accepting any certificate (recorded, not trusted):
/// identification wants to see what a service presents, valid or not.
fn handshake(
    tcp: TcpStream,
    config: &Arc<rustls::ClientConfig>,
    host: &str,
    deadline: Instant,
) -> Result<
    (
        rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
        TlsSeen,
    ),
    String,
> {
    let name = match host.parse::<IpAddr>() {
        Ok(ip) => rustls::pki_types::ServerName::IpAddress(ip.into()),
        Err(_) => rustls::pki_types::ServerName::try_from(host.to_string())
            .map_err(|e| format!("{host:?} is not a TLS server name: {e}"))?,
    };
    let mut conn =
        rustls::ClientConnection::new(config.clone(), name).map_err(|e| format!("TLS: {e}"))?;
    let mut tcp = tcp;
    while conn.is_handshaking() {
        let left = remaining(deadline);
        let _ = tcp.set_read_timeout(Some(left));
        let _ = tcp.set_write_timeout(Some(left));
        if Instant::now() >= deadline {
            return Err("TLS handshake timed out".into());
        }
        match conn.complete_io(&mut tcp) {
            Ok((0, 0)) if conn.is_handshaking() => {
                return Err("TLS handshake: the service closed the connection".into());
            }
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err("TLS handshake timed out".into());
            }
            Err(e) => return Err(format!("TLS handshake failed: {e}")),
        }
    }
    let seen = TlsSeen {
        version: conn
            .protocol_version()
            .map(|v| match v {
                rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3".to_string(),
                rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2".to_string(),
                other => format!("{other:?}"),
            })
            .unwrap_or_default(),
        cipher: conn
            .negotiated_cipher_suite()
            .map(|c| format!("{:?}", c.suite()))
            .unwrap_or_default(),
        alpn: conn
            .alpn_protocol()
            .map(|p| crate::text::visible(&String::from_utf8_lossy(p)).into_owned()),
        chain: conn
            .peer_certificates()
            .map(|c| c.iter().map(|d| d.as_ref().to_vec()).collect())
            .unwrap_or_default(),
    };
    Ok((rustls::StreamOwned::new(conn, tcp), seen))
}

/// A client configuration that records every certificate and trusts none
/// of them: the handshake's signatures are still checked (the server holds
/// the key of the certificate it presents).
fn tls_config() -> Arc<rustls::ClientConfig> {
    // ring, not aws-lc-rs: no C toolchain beyond cc, a short build. ring
    // lacks post-quantum key exchange (hence rustls's deprecation note);
    // identification reads what a service presents and keeps no secret,
    // so the key exchange's future strength protects nothing here.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports TLS 1.2 and 1.3")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(RecordEvery(provider)))
        .with_no_client_auth();
    // HTTP/1.1 is what identification speaks inside.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

#[derive(Debug)]
struct RecordEvery(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for RecordEvery {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The record of one port.
fn result(
    job: &ServiceJob,
    found: Found,
    connections: u32,
    bytes_read: u64,
    error: Option<String>,
    started: i64,
) -> ServiceResult {
    let now = started.div_euclid(1_000_000_000);
    let (service, method, conf) = match &found.named {
        Some(n) => (Some(n.service.clone()), "probed", 10),
        None => match crate::targets::ports::tcp_service(job.port) {
            Some(s) => (Some(s.to_string()), "table", 3),
            None => (None, "table", 0),
        },
    };
    let named = found.named.unwrap_or_default();
    let tls = found.tls.map(|t| TlsResult {
        version: t.version,
        cipher: t.cipher,
        alpn: t.alpn,
        chain: t
            .chain
            .iter()
            .filter_map(|der| CertificateInfo::from_der(der, now).ok())
            .collect(),
    });
    let mut r = ServiceResult {
        target: job.target,
        port: job.port,
        protocol: job.protocol,
        probe: ServiceKind::Service,
        service,
        product: named.product,
        version: named.version,
        extrainfo: named.extrainfo,
        hostname: named.hostname,
        cpe: named.cpe,
        tunnel: tls.as_ref().map(|_| "ssl".to_string()),
        method: method.to_string(),
        conf,
        banner: found.banner,
        http: found.http,
        tls,
        error: found.tls_error.map(|e| e.to_string()).or(error),
        findings: Vec::new(),
        connections,
        bytes_read,
        time: CaptureTime(started),
    };
    r.findings = r.assess();
    r
}
