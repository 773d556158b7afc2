//! Tunnels (issue 18, item 3): GRE, IP in IP (6in4), VXLAN and GTP-U
//! packets are entered; the inner packet is counted in protocols, flows,
//! talkers and detectors, the outer one in the protocols and the
//! `encapsulation` table. Each protocol count is checked against tshark on
//! the same generated capture.

use etherparse::{Ethernet2Header, IpNumber, Ipv4Header, PacketBuilder};
use support::capture::*;
use support::evidence::tshark_count;

const MS: i64 = 1_000_000;
const OUTER_A: &str = "198.18.200.1";
const OUTER_B: &str = "198.18.200.2";

/// An Ethernet/IPv4 frame from OUTER_A to OUTER_B of protocol `proto`.
fn outer_ip(proto: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    Ethernet2Header {
        source: [2, 0, 0, 0, 0, 0xa],
        destination: [2, 0, 0, 0, 0, 0xb],
        ether_type: etherparse::EtherType::IPV4,
    }
    .write(&mut out)
    .unwrap();
    Ipv4Header::new(
        payload.len() as u16,
        64,
        IpNumber(proto),
        ip(OUTER_A),
        ip(OUTER_B),
    )
    .unwrap()
    .write(&mut out)
    .unwrap();
    out.extend_from_slice(payload);
    out
}

/// An IPv4/TCP packet (no link layer) with `flags`.
fn inner_tcp(src: &str, dst: &str, sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ipv4(ip(src), ip(dst), 64)
        .tcp(sport, dport, 1, 1024)
        .write(&mut out, &[])
        .unwrap();
    out[20 + 13] = flags;
    out
}

/// An IPv6/TCP packet (no link layer).
fn inner_tcp6(sport: u16, dport: u16) -> Vec<u8> {
    let mut out = Vec::new();
    let a: std::net::Ipv6Addr = "2001:db8:1::1".parse().unwrap();
    let b: std::net::Ipv6Addr = "2001:db8:1::2".parse().unwrap();
    PacketBuilder::ipv6(a.octets(), b.octets(), 64)
        .tcp(sport, dport, 1, 1024)
        .write(&mut out, &[])
        .unwrap();
    out[40 + 13] = SYN;
    out
}

#[test]
fn gre_6in4_vxlan_and_gtpu_are_entered_and_counted_as_tshark_does() {
    let mut c = Capture::default();
    let mut t = 0;
    let mut push = |c: &mut Capture, f: Vec<u8>| {
        t += MS;
        c.push(t, f);
    };
    // GRE with a key: IPv4/TCP inside.
    for i in 0..10u16 {
        let mut g = vec![0x20, 0, 0x08, 0x00, 0, 0, 0, 42];
        g.extend(inner_tcp("198.18.5.1", "198.18.5.2", 40000 + i, 80, SYN));
        push(&mut c, outer_ip(47, &g));
    }
    // 6in4: IPv6/TCP inside IPv4.
    for i in 0..4u16 {
        push(&mut c, outer_ip(41, &inner_tcp6(41000 + i, 443)));
    }
    // VXLAN: Ethernet/IPv4/TCP inside UDP 4789; a vertical scan of 60
    // ports, which the port-scan detector must see.
    for p in 1..=60u16 {
        let mut v = vec![0x08, 0, 0, 0, 0, 0, 7, 0];
        v.extend(tcp("198.18.6.66", "198.18.6.10", 50000, p, SYN, &[]));
        push(&mut c, udp(OUTER_A, OUTER_B, 49152, 4789, &v));
    }
    // GTP-U: IPv4/TCP inside UDP 2152.
    for i in 0..5u16 {
        let inner = inner_tcp("10.45.0.2", "198.18.7.1", 42000 + i, 443, SYN);
        let mut g = vec![0x30, 0xff];
        g.extend_from_slice(&(inner.len() as u16).to_be_bytes());
        g.extend_from_slice(&[0, 0, 0, 1]);
        g.extend(inner);
        push(&mut c, udp(OUTER_A, OUTER_B, 2152, 2152, &g));
    }
    let dir = tempfile::tempdir().unwrap();
    let path = c.write(dir.path(), "tunnels.pcap");
    let r = sonde::analyze::analyze(
        std::slice::from_ref(&path),
        &sonde::analyze::AnalyzeOptions {
            flows: sonde::analyze::flows::FlowListing::All,
            ..Default::default()
        },
    )
    .unwrap();
    let json = serde_json::to_value(&r).unwrap();

    let enc = &json["encapsulation"];
    assert_eq!(enc["gre"]["packets"], 10, "{enc}");
    assert_eq!(enc["6in4"]["packets"], 4, "{enc}");
    assert_eq!(enc["vxlan"]["packets"], 60, "{enc}");
    assert_eq!(enc["gtp-u"]["packets"], 5, "{enc}");

    // Protocol counts: frames holding each protocol, outer or inner, once,
    // as tshark counts them.
    for (proto, filter) in [
        ("tcp", "tcp"),
        ("udp", "udp"),
        ("ip", "ip"),
        ("ipv6", "ipv6"),
    ] {
        assert_eq!(
            json["protocols"][proto]["packets"].as_u64().unwrap_or(0) as usize,
            tshark_count(&path, filter),
            "{proto}: {}",
            json["protocols"]
        );
    }
    assert_eq!(json["protocols"]["tcp"]["packets"], 79);

    // Flows and talkers are the inner packets'; the outer addresses carry
    // no flow of their own.
    let flows = json["flows"]["list"].as_array().unwrap();
    assert!(flows.iter().all(|f| {
        let s = f.to_string();
        !s.contains(OUTER_A) && !s.contains(OUTER_B)
    }));
    assert!(flows.iter().any(|f| f.to_string().contains("10.45.0.2")));
    assert!(
        flows
            .iter()
            .any(|f| f.to_string().contains("2001:db8:1::1"))
    );

    // The detectors see inside: the scan carried by VXLAN.
    let scan = r
        .anomalies
        .iter()
        .find(|a| a.kind == "port_scan")
        .unwrap_or_else(|| panic!("{:?}", r.anomalies));
    assert_eq!(scan.sources, vec!["198.18.6.66"]);
    assert_eq!(scan.destinations, vec!["198.18.6.10"]);
}

#[test]
fn ordinary_udp_on_tunnel_ports_is_left_alone() {
    // Not VXLAN (no I flag) and not a GTP-U T-PDU: counted as the UDP it is.
    let mut c = Capture::default();
    c.push(0, udp(OUTER_A, OUTER_B, 50000, 4789, &[0; 30]));
    c.push(
        MS,
        udp(
            OUTER_A,
            OUTER_B,
            2152,
            2152,
            &[0x32, 0x01, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0],
        ),
    );
    let r = c.analyze();
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["encapsulation"], serde_json::json!({}));
    assert_eq!(json["protocols"]["udp"]["packets"], 2);
}
