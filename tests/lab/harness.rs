//! The lab proves itself: open, closed and filtered ports and the DNS server
//! behave as the ground truth says, seen from the scanner namespace.

use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use support::lab::*;

fn connect(ip: IpAddr, port: u16) -> std::io::Result<TcpStream> {
    TcpStream::connect_timeout(&SocketAddr::new(ip, port), Duration::from_millis(700))
}

#[test]
fn lab_ports_and_dns_match_the_ground_truth() {
    let lab = Lab::new();
    let truth = lab.truth.clone();
    let web4 = IpAddr::V4(WEB_HOST_V4);
    let web6 = IpAddr::V6(WEB_HOST_V6);
    let onlink = IpAddr::V4("198.18.0.15".parse().unwrap());
    let results = lab.in_scanner(move || {
        let mut seen = Vec::new();
        for (ip, port) in [
            (web4, 80),
            (web4, 8080),
            (web6, 22),
            (web6, 8080),
            (onlink, 443),
            (web4, 23),
            (web6, 25),
            (web4, FILTERED_DROP),
            (web6, FILTERED_DROP),
            (IpAddr::V4(REJECT_HOST), FILTERED_ICMP),
        ] {
            let start = Instant::now();
            let r = connect(ip, port);
            seen.push((
                ip,
                port,
                r.map(|_| ()).map_err(|e| e.kind()),
                start.elapsed(),
            ));
        }
        seen
    });
    for (ip, port, result, took) in results {
        match truth.tcp(ip, port) {
            PortState::Open => assert!(result.is_ok(), "{ip}:{port} should be open: {result:?}"),
            PortState::Closed => assert_eq!(
                result,
                Err(ErrorKind::ConnectionRefused),
                "{ip}:{port} should be refused"
            ),
            PortState::Filtered if port == FILTERED_DROP => {
                assert_eq!(
                    result,
                    Err(ErrorKind::TimedOut),
                    "{ip}:{port} should time out"
                );
                assert!(
                    took >= Duration::from_millis(650),
                    "{ip}:{port} gave up after {took:?}"
                );
            }
            // ICMP port unreachable: the kernel reports it at once
            PortState::Filtered => assert!(
                result.is_err() && took < Duration::from_millis(650),
                "{ip}:{port}: {result:?} after {took:?}"
            ),
        }
    }
    let answer =
        lab.in_scanner(|| dns_query_a(IpAddr::V4(DNS_SERVER_V4), DNS_NAME, Duration::from_secs(2)));
    assert_eq!(answer, Ok(vec![WEB_HOST_V4]));
    let answer6 =
        lab.in_scanner(|| dns_query_a(IpAddr::V6(DNS_SERVER_V6), DNS_NAME, Duration::from_secs(2)));
    assert_eq!(answer6, Ok(vec![WEB_HOST_V4]));
}

#[test]
fn down_hosts_and_icmp_silent_host_do_not_answer_ping() {
    let lab = Lab::new();
    for (ip, want) in [
        ("198.18.1.10", true),
        ("198.18.0.12", true),
        ("2001:db8:1::10", true),
        ("198.18.1.205", false),
        ("2001:db8:1::25", false),
        ("198.18.1.9", false),
    ] {
        let ipaddr: IpAddr = ip.parse().unwrap();
        assert_eq!(lab.truth.answers_ping(ipaddr), want, "{ip}: ground truth");
        let status = lab
            .scanner_command("ping")
            .args(["-c", "1", "-W", "1", ip])
            .output()
            .expect("ping (iputils-ping)");
        assert_eq!(
            status.status.success(),
            want,
            "{ip}: ping {}",
            String::from_utf8_lossy(&status.stdout)
        );
    }
}

#[test]
fn labs_are_independent_and_torn_down() {
    let (a, b) = (Lab::new(), Lab::new());
    assert_ne!(a.scanner_ns, b.scanner_ns);
    let names = [a.scanner_ns.clone(), a.target_ns.clone()];
    drop(a);
    let list = String::from_utf8(
        std::process::Command::new("ip")
            .args(["netns", "list"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    for n in names {
        assert!(!list.contains(&n), "{n} still exists after drop");
    }
    // teardown also happens when a test panics
    let leaked = std::panic::catch_unwind(|| {
        let lab = Lab::new();
        let name = lab.target_ns.clone();
        std::panic::panic_any(name);
    })
    .unwrap_err();
    let name = leaked.downcast::<String>().unwrap();
    let list = String::from_utf8(
        std::process::Command::new("ip")
            .args(["netns", "list"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(!list.contains(name.as_str()), "{name} survived a panic");
    drop(b);
}
