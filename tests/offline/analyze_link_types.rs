//! Every supported link type, and pcapng with several interfaces each with
//! its own link type and timestamp resolution, on frames built here.

use etherparse::PacketBuilder;
use sonde::analyze::{AnalyzeOptions, Report, analyze};
use sonde::pcap::PcapWriter;

/// An IPv4 TCP SYN 198.18.0.2:40000 -> 198.18.1.10:80, from the IP header on.
fn ipv4_syn() -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ipv4([198, 18, 0, 2], [198, 18, 1, 10], 64)
        .tcp(40000, 80, 1, 1024)
        .syn()
        .write(&mut out, &[])
        .unwrap();
    out
}

fn write_and_analyze(linktype: u32, frames: &[Vec<u8>]) -> Report {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.pcap");
    let mut w = PcapWriter::new(std::fs::File::create(&path).unwrap(), linktype, 65535).unwrap();
    for (i, f) in frames.iter().enumerate() {
        w.write(1_767_225_600_000_000_000 + i as i64, f).unwrap();
    }
    w.flush().unwrap();
    analyze(&[path], &AnalyzeOptions::default()).unwrap()
}

fn count(r: &Report, proto: &str) -> u64 {
    r.stats.protocols.get(proto).map_or(0, |c| c.packets)
}

const MACS: [u8; 12] = [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];

#[test]
fn each_link_type_yields_the_tcp_packet() {
    let ip = ipv4_syn();
    let eth = [&MACS[..], &[0x08, 0x00], &ip].concat();
    let vlan = [&MACS[..], &[0x81, 0x00, 0x00, 0x0a, 0x08, 0x00], &ip].concat();
    let qinq = [
        &MACS[..],
        &[0x88, 0xa8, 0x00, 0x64, 0x81, 0x00, 0x00, 0x0a, 0x08, 0x00],
        &ip,
    ]
    .concat();
    let sll = [
        &[0, 0, 0, 1, 0, 6][..],
        &[2, 0, 0, 0, 0, 1, 0, 0],
        &[0x08, 0x00],
        &ip,
    ]
    .concat();
    let sll2 = [
        &[0x08, 0x00, 0, 0][..],
        &[0, 0, 0, 3],
        &[0, 1],
        &[0, 6],
        &[2, 0, 0, 0, 0, 1, 0, 0],
        &ip,
    ]
    .concat();
    let null = [&2u32.to_le_bytes()[..], &ip].concat();
    let lo = [&2u32.to_be_bytes()[..], &ip].concat();
    let cases: [(&str, u32, Vec<u8>, &str); 8] = [
        ("ethernet", 1, eth, "eth"),
        ("802.1Q", 1, vlan, "vlan"),
        ("QinQ", 1, qinq, "vlan"),
        ("linux cooked (SLL)", 113, sll, "sll"),
        ("linux cooked v2 (SLL2)", 276, sll2, "sll"),
        ("raw IP", 101, ip.clone(), "ip"),
        ("BSD null", 0, null, "ip"),
        ("BSD loop", 108, lo, "ip"),
    ];
    for (name, linktype, frame, link_proto) in cases {
        let r = write_and_analyze(linktype, &[frame]);
        assert_eq!(count(&r, "tcp"), 1, "{name}: {:?}", r.stats.protocols);
        assert_eq!(count(&r, "ip"), 1, "{name}");
        assert_eq!(count(&r, link_proto), 1, "{name}");
        assert!(r.anomalies.is_empty(), "{name}: {:?}", r.anomalies);
        assert_eq!(r.flows.list[0].server, "198.18.1.10:80", "{name}");
    }
}

#[test]
fn ipv6_extension_headers_and_first_fragment() {
    // IPv6 / hop-by-hop options / fragment header (offset 0, M=1) / UDP 5353 -> 53
    let mut pkt = vec![0x60, 0, 0, 0, 0, 0, 0, 64];
    pkt.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    pkt.extend_from_slice(&[
        0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ]);
    pkt.extend_from_slice(&[44, 0, 1, 4, 0, 0, 0, 0]); // hop-by-hop: next = fragment, PadN
    pkt.extend_from_slice(&[17, 0, 0, 1, 0, 0, 0x12, 0x34]); // fragment: next = UDP, offset 0, M
    pkt.extend_from_slice(&[0x14, 0xe9, 0x00, 0x35, 0x00, 0x30, 0, 0]);
    pkt.extend_from_slice(&[0; 32]);
    let plen = (pkt.len() - 40) as u16;
    pkt[4..6].copy_from_slice(&plen.to_be_bytes());
    let r = write_and_analyze(101, &[pkt]);
    assert_eq!(count(&r, "ipv6"), 1, "{:?}", r.stats.protocols);
    assert_eq!(count(&r, "ip_fragment"), 1);
    assert_eq!(
        count(&r, "udp"),
        1,
        "a first fragment keeps its transport header"
    );
    // Ports count the packets of flows by their service; a datagram that
    // never completed is in no flow (issue 27), only in the protocols.
    assert!(r.stats.ports.udp.is_empty(), "{:?}", r.stats.ports.udp);
}

/// pcapng: one section, two interfaces (Ethernet with microseconds, raw IP
/// with nanoseconds), a packet on each.
#[test]
fn pcapng_interfaces_keep_their_link_type_and_resolution() {
    let block = support::capture::pcapng_block;
    let shb = block(
        0x0a0d_0d0a,
        &[
            &0x1a2b_3c4du32.to_le_bytes()[..],
            &1u16.to_le_bytes(),
            &0u16.to_le_bytes(),
            &(-1i64).to_le_bytes(),
        ]
        .concat(),
    );
    let idb = |linktype: u16, tsresol: u8| {
        block(
            1,
            &[
                &linktype.to_le_bytes()[..],
                &[0, 0],
                &65535u32.to_le_bytes(),
                &9u16.to_le_bytes(),
                &1u16.to_le_bytes(),
                &[tsresol, 0, 0, 0],
                &[0, 0, 0, 0],
            ]
            .concat(),
        )
    };
    let epb = |if_id: u32, units: u64, data: &[u8]| {
        block(
            6,
            &[
                &if_id.to_le_bytes()[..],
                &((units >> 32) as u32).to_le_bytes(),
                &(units as u32).to_le_bytes(),
                &(data.len() as u32).to_le_bytes(),
                &(data.len() as u32).to_le_bytes(),
                data,
                &vec![0; (4 - data.len() % 4) % 4],
            ]
            .concat(),
        )
    };
    let ip = ipv4_syn();
    let eth = [&MACS[..], &[0x08, 0x00], &ip].concat();
    // 2026-01-01T00:00:00.000001Z in microseconds; 00:00:01.000000002Z in nanoseconds
    let file = [
        shb,
        idb(1, 6),
        idb(101, 9),
        epb(0, 1_767_225_600_000_001, &eth),
        epb(1, 1_767_225_601_000_000_002, &ip),
    ]
    .concat();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("two.pcapng");
    std::fs::write(&path, file).unwrap();
    let r = analyze(&[path], &AnalyzeOptions::default()).unwrap();
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    assert_eq!(r.input[0].link_types, vec!["ethernet", "raw"]);
    assert_eq!(r.stats.summary.packets, 2);
    assert_eq!(
        r.stats.summary.first_timestamp.as_deref(),
        Some("2026-01-01T00:00:00.000001Z")
    );
    assert_eq!(
        r.stats.summary.last_timestamp.as_deref(),
        Some("2026-01-01T00:00:01.000000002Z")
    );
    assert_eq!(count(&r, "tcp"), 2);
    assert_eq!(count(&r, "eth"), 1);
}
