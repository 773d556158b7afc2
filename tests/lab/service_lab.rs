//! Service identification against real Debian services in the lab (issue
//! 28): OpenSSH's sshd, nginx over plain HTTP and over TLS with a
//! self-signed certificate, vsftpd, all started by the test inside the
//! lab's target namespace. The expected products and versions come from
//! the installed packages (`dpkg-query`), the certificate's from
//! `openssl x509`; the test command installs the packages when missing.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::lab::*;

/// The host the services listen on, inside the target namespace.
const SERVICE_HOST: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 20);
const SSH: u16 = 2222;
const HTTP: u16 = 8000;
const HTTPS: u16 = 8443;
const FTP: u16 = 2121;

/// A daemon in the target namespace, killed with the test.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn in_target(lab: &Lab, name: &'static str, program: &str, args: &[&str]) -> Daemon {
    let child = Command::new("ip")
        .args(["netns", "exec", &lab.target_ns, program])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {name}: {e} (the test command installs it)"));
    Daemon(child)
}

fn sh(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The upstream version of an installed Debian package: `1:9.2p1-2+deb12u10`
/// is `9.2p1`.
fn upstream_version(package: &str) -> String {
    let v = sh("dpkg-query", &["-W", "-f=${Version}", package]);
    let v = v.split_once(':').map_or(v.as_str(), |(_, r)| r);
    v.rsplit_once('-').map_or(v, |(u, _)| u).to_string()
}

/// Wait until `port` accepts a connection from the scanner side.
fn wait_for(lab: &Lab, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        let up = lab.in_scanner(move || {
            std::net::TcpStream::connect_timeout(
                &(SERVICE_HOST, port).into(),
                Duration::from_millis(300),
            )
            .is_ok()
        });
        if up {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("nothing listens on {SERVICE_HOST}:{port} after 15 s");
}

/// sshd, nginx (HTTP and TLS) and vsftpd on [`SERVICE_HOST`]; the
/// certificate's PEM path.
fn start_services(lab: &Lab, dir: &Path) -> (Vec<Daemon>, std::path::PathBuf) {
    let run = |args: &[&str]| {
        sh("ip", &[&["-n", &lab.target_ns][..], args].concat());
    };
    // One of the lab's hosts, or made one.
    run(&[
        "addr",
        "replace",
        &format!("{SERVICE_HOST}/32"),
        "dev",
        "lo",
    ]);
    let d = |name: &str| dir.join(name).display().to_string();
    // sshd with a host key of its own.
    std::fs::create_dir_all("/run/sshd").unwrap();
    sh(
        "ssh-keygen",
        &["-q", "-t", "ed25519", "-N", "", "-f", &d("hostkey")],
    );
    let sshd = in_target(
        lab,
        "sshd",
        "/usr/sbin/sshd",
        &[
            "-D",
            "-e",
            "-f",
            "/dev/null",
            "-h",
            &d("hostkey"),
            "-o",
            &format!("ListenAddress={SERVICE_HOST}:{SSH}"),
            "-o",
            "PidFile=none",
        ],
    );
    // nginx: plain HTTP and TLS with a self-signed certificate.
    sh(
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "20",
            "-keyout",
            &d("key.pem"),
            "-out",
            &d("cert.pem"),
            "-subj",
            "/CN=services.lab.sonde.test/O=Sonde Lab",
            "-addext",
            "subjectAltName=DNS:services.lab.sonde.test",
        ],
    );
    std::fs::write(
        dir.join("nginx.conf"),
        format!(
            "daemon off;\nmaster_process off;\npid {pid};\nerror_log {log};\nevents {{}}\n\
             http {{\n  access_log off;\n  client_body_temp_path {tmp};\n  proxy_temp_path {tmp};\n\
               fastcgi_temp_path {tmp};\n  uwsgi_temp_path {tmp};\n  scgi_temp_path {tmp};\n\
               default_type text/html;\n\
               server {{ listen {SERVICE_HOST}:{HTTP}; location / {{ return 200 \"<html><head><title>sonde lab</title></head></html>\"; }} }}\n\
               server {{ listen {SERVICE_HOST}:{HTTPS} ssl; ssl_certificate {cert}; ssl_certificate_key {key};\n\
                 location / {{ return 200 \"<html><head><title>sonde lab over TLS</title></head></html>\"; }} }}\n}}\n",
            pid = d("nginx.pid"),
            log = d("nginx.log"),
            // nginx gives its temporary directories to its worker user:
            // one of its own, not the test's.
            tmp = {
                let t = dir.join("nginx-temp");
                std::fs::create_dir_all(&t).unwrap();
                t.display().to_string()
            },
            cert = d("cert.pem"),
            key = d("key.pem"),
        ),
    )
    .unwrap();
    let nginx = in_target(lab, "nginx", "/usr/sbin/nginx", &["-c", &d("nginx.conf")]);
    std::fs::write(
        dir.join("vsftpd.conf"),
        format!(
            "listen=YES\nlisten_ipv6=NO\nlisten_address={SERVICE_HOST}\nlisten_port={FTP}\n\
             background=NO\nanonymous_enable=NO\nlocal_enable=YES\nwrite_enable=NO\n\
             secure_chroot_dir=/var/run/vsftpd/empty\nseccomp_sandbox=NO\n"
        ),
    )
    .unwrap();
    std::fs::create_dir_all("/var/run/vsftpd/empty").unwrap();
    let ftp = in_target(lab, "vsftpd", "/usr/sbin/vsftpd", &[&d("vsftpd.conf")]);
    for port in [SSH, HTTP, HTTPS, FTP] {
        wait_for(lab, port);
    }
    (vec![sshd, nginx, ftp], dir.join("cert.pem"))
}

fn report(run: &Path) -> sonde::results::ScanReport {
    let v = support::evidence::report_json(&run.join("report.json"));
    serde_json::from_value(v).unwrap()
}

#[test]
fn debian_services_are_named_as_their_packages_say() {
    let lab = Lab::new();
    let dir = tempfile::tempdir().unwrap();
    let (_daemons, cert) = start_services(&lab, dir.path());
    let run = dir.path().join("run");
    let ports = format!("{SSH},{HTTP},{HTTPS},{FTP}");
    let (code, out, err) = lab.sonde(&[
        "scan",
        "--scope",
        "scopes/lab.toml",
        &SERVICE_HOST.to_string(),
        &DNS_SERVER_V4.to_string(),
        "-p",
        &ports,
        "--probe",
        "dns",
        "-sV",
        "-o",
        run.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    let r = report(&run);
    // The lab's dnsmasq, asked version.bind over UDP.
    let dns = r
        .hosts
        .iter()
        .find(|h| h.address == std::net::IpAddr::V4(DNS_SERVER_V4))
        .unwrap();
    let d = &dns.services[0];
    assert_eq!(
        (
            d.protocol,
            d.port,
            d.service.as_deref(),
            d.product.as_deref()
        ),
        (
            sonde::results::Protocol::Udp,
            53,
            Some("domain"),
            Some("dnsmasq")
        )
    );
    assert_eq!(
        d.version.as_deref(),
        Some(upstream_version("dnsmasq-base").as_str())
    );
    let host = r
        .hosts
        .iter()
        .find(|h| h.address == std::net::IpAddr::V4(SERVICE_HOST))
        .unwrap();
    let by = |p: u16| {
        host.services
            .iter()
            .find(|s| s.port == p)
            .unwrap_or_else(|| panic!("no service on {p}: {:#?}", host.services))
    };
    let ssh = by(SSH);
    assert_eq!(
        (ssh.service.as_deref(), ssh.product.as_deref()),
        (Some("ssh"), Some("OpenSSH"))
    );
    assert_eq!(
        ssh.version.as_deref(),
        Some(upstream_version("openssh-server").as_str())
    );
    // The package that holds /usr/sbin/nginx (nginx-light, nginx-core...).
    let owner = sh("dpkg-query", &["-S", "/usr/sbin/nginx"]);
    let package = owner.split(':').next().unwrap().split(',').next().unwrap();
    let nginx_version = upstream_version(package.trim());
    let http = by(HTTP);
    assert_eq!(
        (
            http.service.as_deref(),
            http.product.as_deref(),
            http.version.as_deref()
        ),
        (Some("http"), Some("nginx"), Some(nginx_version.as_str()))
    );
    assert_eq!(
        http.http.as_ref().unwrap().title.as_deref(),
        Some("sonde lab")
    );
    assert_eq!(http.tunnel, None);
    let https = by(HTTPS);
    assert_eq!(
        (
            https.service.as_deref(),
            https.product.as_deref(),
            https.tunnel.as_deref()
        ),
        (Some("http"), Some("nginx"), Some("ssl"))
    );
    assert_eq!(
        https.http.as_ref().unwrap().title.as_deref(),
        Some("sonde lab over TLS")
    );
    let tls = https.tls.as_ref().unwrap();
    assert!(
        tls.version == "TLSv1.3" || tls.version == "TLSv1.2",
        "{tls:?}"
    );
    let c = &tls.chain[0];
    assert_eq!(c.subject, "CN=services.lab.sonde.test, O=Sonde Lab");
    assert!(c.self_signed);
    assert_eq!(c.subject_alt_names, ["services.lab.sonde.test"]);
    assert_eq!((c.key_type.as_str(), c.key_bits), ("RSA", Some(2048)));
    assert!((19..=20).contains(&c.days_left), "{}", c.days_left);
    let cert = cert.display().to_string();
    let fingerprint = sh(
        "openssl",
        &["x509", "-in", &cert, "-noout", "-fingerprint", "-sha256"],
    );
    assert_eq!(
        fingerprint
            .rsplit('=')
            .next()
            .unwrap()
            .replace(':', "")
            .to_lowercase(),
        c.sha256
    );
    // What a responder acts on: the certificate expires within 30 days
    // and is self-signed; FTP sends passwords in clear text.
    let kinds = |s: &sonde::results::ServiceResult| -> Vec<sonde::results::ServiceFindingKind> {
        s.findings.iter().map(|f| f.kind).collect()
    };
    use sonde::results::ServiceFindingKind as K;
    assert_eq!(
        kinds(https),
        [K::CertificateExpiring, K::SelfSignedCertificate]
    );
    assert_eq!(kinds(ssh), []);
    let ftp = by(FTP);
    assert_eq!(kinds(ftp), [K::CleartextAuthentication]);
    assert_eq!(
        (
            ftp.service.as_deref(),
            ftp.product.as_deref(),
            ftp.version.as_deref()
        ),
        (
            Some("ftp"),
            Some("vsftpd"),
            Some(upstream_version("vsftpd").as_str())
        )
    );
    // The terminal names them as nmap -sV does.
    assert!(out.contains(&format!("{SSH}/tcp ssh OpenSSH ")), "{out}");
    assert!(
        out.contains(&format!("{HTTPS}/tcp ssl/http nginx ")),
        "{out}"
    );
    // Each is a `service` line of results.ndjson.
    let ndjson = std::fs::read_to_string(run.join("results.ndjson")).unwrap();
    let lines: Vec<sonde::results::ServiceResult> = ndjson
        .lines()
        .filter(|l| l.contains("\"probe\":\"service\""))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5, "{ndjson}");
    // nmap XML: valid against nmap's DTD, and python-libnmap (as
    // DefectDojo-style importers) reads each service's product and version.
    let xml = dir.path().join("scan.xml");
    let (code, out, err) = lab.sonde(&[
        "report",
        run.to_str().unwrap(),
        "--format",
        "xml",
        "-o",
        xml.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    let xml = xml.display().to_string();
    sh(
        "xmllint",
        &["--noout", "--dtdvalid", "/usr/share/nmap/nmap.dtd", &xml],
    );
    // nmap's stylesheet renders it, products included.
    let html = sh("xsltproc", &["/usr/share/nmap/nmap.xsl", &xml]);
    assert!(
        html.contains("OpenSSH") && html.contains("vsftpd"),
        "{html}"
    );
    let libnmap = sh(
        "/usr/bin/python3",
        &[
            "-c",
            r#"
import sys
from libnmap.parser import NmapParser
r = NmapParser.parse_fromfile(sys.argv[1])
for h in r.hosts:
    for s in sorted(h.services, key=lambda s: s.port):
        print(s.port, s.service, s.banner_dict.get("product", ""), s.banner_dict.get("version", ""), s.tunnel, ",".join(c.cpestring for c in s.cpelist))
"#,
            &xml,
        ],
    );
    let ssh_version = upstream_version("openssh-server");
    let ftp_version = upstream_version("vsftpd");
    assert_eq!(
        libnmap.lines().collect::<Vec<_>>(),
        [
            format!("{FTP} ftp vsftpd {ftp_version}  cpe:/a:beasts:vsftpd:{ftp_version}"),
            format!("{SSH} ssh OpenSSH {ssh_version}  cpe:/a:openbsd:openssh:{ssh_version}"),
            format!("{HTTP} http nginx {nginx_version}  cpe:/a:f5:nginx:{nginx_version}"),
            format!("{HTTPS} http nginx {nginx_version} ssl cpe:/a:f5:nginx:{nginx_version}"),
            format!(
                "53 domain dnsmasq {dnsmasq}  cpe:/a:thekelleys:dnsmasq:{dnsmasq}",
                dnsmasq = upstream_version("dnsmasq-base")
            ),
        ],
        "{libnmap}"
    );
    // Every packet of the connections is in the run's capture, as tshark
    // reads it: the kernel's SYN beside the scan's, the TLS ClientHello and
    // the HTTP request; the embedded analysis saw the TLS server's hello.
    let pcap = run.join("capture.pcap");
    let count = |filter: &str| {
        support::evidence::tshark_count(&pcap, &format!("ip.addr == {SERVICE_HOST} && ({filter})"))
    };
    assert_eq!(
        count(&format!(
            "tcp.dstport == {SSH} && tcp.flags.syn == 1 && tcp.flags.ack == 0"
        )),
        2
    );
    assert_eq!(
        count(&format!(
            "tcp.srcport == {SSH} && tcp.flags.syn == 1 && tcp.flags.ack == 1"
        )),
        2
    );
    assert!(
        count(&format!("tcp.srcport == {SSH} && tcp.len > 0")) >= 1,
        "sshd's greeting"
    );
    assert_eq!(
        count(&format!(
            "tcp.dstport == {HTTPS} && tls.handshake.type == 1"
        )),
        1
    );
    assert_eq!(
        count(&format!(
            "tcp.dstport == {HTTP} && http.request.method == \"GET\""
        )),
        1
    );
    assert_eq!(
        support::evidence::tshark_count(
            &pcap,
            &format!("ip.dst == {DNS_SERVER_V4} && dns.qry.name == \"version.bind\""),
        ),
        1
    );
    let analysis = serde_json::to_string(&r.capture_analysis).unwrap();
    assert!(
        analysis.contains("\"ja4s\""),
        "the analysis names the TLS server's hello"
    );
    // The page: services per host, by product and version, and the
    // findings.
    let page = dir.path().join("page.html");
    let (code, out, err) = lab.sonde(&[
        "report",
        run.to_str().unwrap(),
        "--html",
        page.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    let page = std::fs::read_to_string(page).unwrap();
    assert!(
        page.contains("<h3>Services by product and version</h3>"),
        "{page}"
    );
    assert!(
        page.contains(&format!(
            "<td>http</td><td>nginx</td><td>{nginx_version}</td><td class=\"num\">2</td>"
        )),
        "{page}"
    );
    assert!(
        page.contains(&format!("{HTTPS}/ssl/http nginx {nginx_version}")),
        "{page}"
    );
    assert!(
        page.contains("passwords cross the network in clear text"),
        "{page}"
    );
    // And the run verifies.
    let (code, out, err) = lab.sonde(&["verify", run.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}\n{err}");
}

#[test]
fn a_scope_without_service_refuses_it_and_connects_nowhere() {
    let lab = Lab::new();
    let dir = tempfile::tempdir().unwrap();
    let capture = dir.path().join("target.pcap");
    let (_daemons, _) = start_services(&lab, dir.path());
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("scopes/lab.toml"))
            .unwrap()
            .replace(
                r#"probes = ["syn", "icmp", "dns", "service"]"#,
                r#"probes = ["syn", "icmp", "dns"]"#,
            );
    assert!(!text.contains("\"service\""));
    let scope = dir.path().join("no-service.toml");
    std::fs::write(&scope, text).unwrap();
    let cap = lab.capture_target_side("vt", &capture);
    let (code, out, err) = lab.sonde(&[
        "scan",
        "--scope",
        scope.to_str().unwrap(),
        &SERVICE_HOST.to_string(),
        "-p",
        &format!("{SSH}"),
        "--probe",
        "syn,service",
    ]);
    cap.stop();
    assert_eq!(code, 3, "{out}\n{err}");
    assert!(err.contains("service"), "{err}");
    assert_eq!(
        support::evidence::tshark_count(&capture, "tcp.flags.syn == 1 && tcp.flags.ack == 0"),
        0,
        "a refused scan sent nothing"
    );
}
