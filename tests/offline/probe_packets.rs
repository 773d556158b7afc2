//! Probe packets are correct (tshark validates every checksum and reads the
//! fields back) and replies are classified and validated by cookie.

use std::net::IpAddr;
use std::process::Command;

use etherparse::PacketBuilder;
use sonde::pcap::PcapWriter;
use sonde::pcap::writer::LINKTYPE_RAW;
use sonde::probe::{
    Classified, CookieKey, DnsQuestion, Probe, ProbeTemplate, Verdict, build, classify,
};
use sonde::scope::ProbeKind;

const US4: &str = "198.18.0.2";
const THEM4: &str = "198.18.1.10";
const US6: &str = "2001:db8::2";
const THEM6: &str = "2001:db8:1::10";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn key() -> CookieKey {
    CookieKey::from_parts(0x0123_4567_89ab_cdef, 0x0fed_cba9_8765_4321)
}

fn probe(kind: ProbeKind, us: &str, them: &str, port: Option<u16>) -> Vec<u8> {
    let m = key().marks(ip(us), ip(them), port.unwrap_or(0), kind);
    let q = DnsQuestion {
        name: "www.lab.sonde.test".into(),
        qtype: 1,
    };
    let mut buf = Vec::new();
    let p = Probe {
        kind,
        src: ip(us),
        dst: ip(them),
        port,
    };
    build(&mut buf, &p, &m, &ProbeTemplate::default(), Some(&q)).unwrap();
    buf
}

#[test]
fn tshark_validates_every_probe() {
    let probes = [
        probe(ProbeKind::Syn, US4, THEM4, Some(80)),
        probe(ProbeKind::Syn, US6, THEM6, Some(443)),
        probe(ProbeKind::Icmp, US4, THEM4, None),
        probe(ProbeKind::Icmp, US6, THEM6, None),
        probe(ProbeKind::Dns, US4, THEM4, Some(53)),
        probe(ProbeKind::Dns, US6, THEM6, Some(53)),
    ];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("probes.pcap");
    let mut w =
        PcapWriter::new(std::fs::File::create(&path).unwrap(), LINKTYPE_RAW, 65535).unwrap();
    for (i, p) in probes.iter().enumerate() {
        w.write(1_767_225_600_000_000_000 + i as i64, p).unwrap();
    }
    w.flush().unwrap();
    let fields = [
        "ip.checksum.status",
        "tcp.checksum.status",
        "udp.checksum.status",
        "icmp.checksum.status",
        "icmpv6.checksum.status",
        "tcp.flags.str",
        "tcp.options.mss_val",
        "dns.qry.name",
        "dns.flags.recdesired",
        "tcp.dstport",
    ];
    let mut cmd = Command::new("tshark");
    cmd.args([
        "-r",
        path.to_str().unwrap(),
        "-o",
        "ip.check_checksum:TRUE",
        "-o",
        "tcp.check_checksum:TRUE",
        "-o",
        "udp.check_checksum:TRUE",
        "-T",
        "fields",
        "-E",
        "separator=|",
    ]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().expect("tshark (installed by tests/run.sh)");
    let text = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split('|').collect()).collect();
    assert_eq!(rows.len(), 6, "{text}");
    // checksum status 1 = good (0 bad, 2 unverified)
    let good = |row: &[&str], col: usize| row[col] == "1";
    assert!(
        good(&rows[0], 0) && good(&rows[0], 1),
        "SYN v4: {:?}",
        rows[0]
    );
    assert!(good(&rows[1], 1), "SYN v6: {:?}", rows[1]);
    assert!(
        good(&rows[2], 0) && good(&rows[2], 3),
        "ICMP v4: {:?}",
        rows[2]
    );
    assert!(good(&rows[3], 4), "ICMPv6: {:?}", rows[3]);
    assert!(
        good(&rows[4], 0) && good(&rows[4], 2),
        "DNS v4: {:?}",
        rows[4]
    );
    assert!(good(&rows[5], 2), "DNS v6: {:?}", rows[5]);
    for row in &rows[..2] {
        assert!(
            row[5].contains('S') && !row[5].contains('A'),
            "SYN only: {row:?}"
        );
        assert_eq!(row[6], "1460", "MSS option: {row:?}");
    }
    assert_eq!((rows[0][9], rows[1][9]), ("80", "443"));
    for row in &rows[4..] {
        assert_eq!(
            (row[7], row[8]),
            ("www.lab.sonde.test", "1"),
            "DNS question and RD: {row:?}"
        );
    }
}

/// A reply built with etherparse.
fn tcp_reply(from: &str, to: &str, sport: u16, dport: u16, syn: bool, ack: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let b = match (ip(from), ip(to)) {
        (IpAddr::V4(a), IpAddr::V4(b)) => PacketBuilder::ipv4(a.octets(), b.octets(), 61),
        (IpAddr::V6(a), IpAddr::V6(b)) => PacketBuilder::ipv6(a.octets(), b.octets(), 61),
        _ => unreachable!(),
    };
    let t = b.tcp(sport, dport, 777, 65535).ack(ack);
    let t = if syn { t.syn() } else { t.rst() };
    t.write(&mut out, &[]).unwrap();
    out
}

fn reply_of(c: Classified) -> sonde::probe::Reply {
    match c {
        Classified::Reply(r) => r,
        other => panic!("not a reply: {other:?}"),
    }
}

#[test]
fn tcp_replies_open_closed_forged_unrelated() {
    for (us, them) in [(US4, THEM4), (US6, THEM6)] {
        let m = key().marks(ip(us), ip(them), 80, ProbeKind::Syn);
        let r = reply_of(classify(
            &tcp_reply(them, us, 80, m.source_port, true, m.tcp_isn.wrapping_add(1)),
            &key(),
        ));
        assert_eq!(
            (r.target, r.port, r.verdict, r.ttl),
            (ip(them), Some(80), Verdict::Open, 61)
        );
        let r = reply_of(classify(
            &tcp_reply(
                them,
                us,
                80,
                m.source_port,
                false,
                m.tcp_isn.wrapping_add(1),
            ),
            &key(),
        ));
        assert_eq!(r.verdict, Verdict::Closed);
        // right ports, wrong acknowledgment: a forged or stray reply
        assert!(matches!(
            classify(
                &tcp_reply(them, us, 80, m.source_port, true, m.tcp_isn),
                &key()
            ),
            Classified::Invalid(_)
        ));
        // another key (another run) does not accept it
        assert!(!matches!(
            classify(
                &tcp_reply(them, us, 80, m.source_port, true, m.tcp_isn.wrapping_add(1)),
                &CookieKey::from_parts(9, 9)
            ),
            Classified::Reply(_)
        ));
        // traffic to a port we never probed from
        assert_eq!(
            classify(&tcp_reply(them, us, 80, 1234, true, 1), &key()),
            Classified::Unrelated
        );
    }
}

#[test]
fn icmp_echo_and_errors_quoting_our_probes() {
    let m = key().marks(ip(US4), ip(THEM4), 0, ProbeKind::Icmp);
    let mut echo = Vec::new();
    PacketBuilder::ipv4(ip4(THEM4), ip4(US4), 63)
        .icmpv4_echo_reply(m.icmp_id, m.icmp_seq)
        .write(&mut echo, b"x")
        .unwrap();
    assert_eq!(reply_of(classify(&echo, &key())).verdict, Verdict::Up);
    let mut bad = Vec::new();
    PacketBuilder::ipv4(ip4(THEM4), ip4(US4), 63)
        .icmpv4_echo_reply(m.icmp_id, m.icmp_seq ^ 1)
        .write(&mut bad, b"x")
        .unwrap();
    assert!(matches!(classify(&bad, &key()), Classified::Invalid(_)));

    // a router answers our SYN with "administratively prohibited" (type 3 code 13), quoting it
    let syn = probe(ProbeKind::Syn, US4, THEM4, Some(8081));
    let quoted = &syn[..20 + 8];
    let mut unreach = Vec::new();
    PacketBuilder::ipv4(ip4("198.18.0.1"), ip4(US4), 64)
        .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::FilterProhibited,
        ))
        .write(&mut unreach, quoted)
        .unwrap();
    let r = reply_of(classify(&unreach, &key()));
    assert_eq!(
        (r.target, r.port, r.kind),
        (ip(THEM4), Some(8081), ProbeKind::Syn)
    );
    assert_eq!(
        r.verdict,
        Verdict::Filtered {
            icmp_type: 3,
            icmp_code: 13
        }
    );
    // the same error quoting a SYN that is not ours
    let mut forged = quoted.to_vec();
    forged[24] ^= 0xff; // its sequence number
    let mut unreach = Vec::new();
    PacketBuilder::ipv4(ip4("198.18.0.1"), ip4(US4), 64)
        .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::FilterProhibited,
        ))
        .write(&mut unreach, &forged)
        .unwrap();
    assert!(matches!(classify(&unreach, &key()), Classified::Invalid(_)));

    // ICMPv6 port unreachable quoting our DNS probe
    let dns = probe(ProbeKind::Dns, US6, THEM6, Some(53));
    let mut unreach6 = Vec::new();
    PacketBuilder::ipv6(ip6(THEM6), ip6(US6), 64)
        .icmpv6(etherparse::Icmpv6Type::DestinationUnreachable(
            etherparse::icmpv6::DestUnreachableCode::Port,
        ))
        .write(&mut unreach6, &dns[..48])
        .unwrap();
    let r = reply_of(classify(&unreach6, &key()));
    assert_eq!(
        (r.kind, r.port, r.verdict),
        (
            ProbeKind::Dns,
            Some(53),
            Verdict::Unreachable {
                icmp_type: 1,
                icmp_code: 4
            }
        )
    );
}

#[test]
fn dns_answers_carry_rcode_answers_and_recursion() {
    let m = key().marks(ip(US4), ip(THEM4), 53, ProbeKind::Dns);
    let mut resp = sonde::probe::build::dns_query(
        m.dns_id,
        &DnsQuestion {
            name: "www.lab.sonde.test".into(),
            qtype: 1,
        },
    )
    .unwrap();
    resp[2] |= 0x80; // QR
    resp[3] = 0x80 | 3; // RA, NXDOMAIN
    let mut pkt = Vec::new();
    PacketBuilder::ipv4(ip4(THEM4), ip4(US4), 64)
        .udp(53, m.source_port)
        .write(&mut pkt, &resp)
        .unwrap();
    let r = reply_of(classify(&pkt, &key()));
    assert_eq!(
        r.verdict,
        Verdict::DnsAnswer {
            rcode: 3,
            answers: 0,
            recursion_available: true
        }
    );
    resp[0] ^= 0xff; // another id
    let mut pkt = Vec::new();
    PacketBuilder::ipv4(ip4(THEM4), ip4(US4), 64)
        .udp(53, m.source_port)
        .write(&mut pkt, &resp)
        .unwrap();
    assert!(matches!(classify(&pkt, &key()), Classified::Invalid(_)));
}

#[test]
fn our_own_probes_are_not_replies_and_garbage_is_unrelated() {
    assert_eq!(
        classify(&probe(ProbeKind::Syn, US4, THEM4, Some(80)), &key()),
        Classified::OwnProbe
    );
    assert_eq!(
        classify(&probe(ProbeKind::Icmp, US4, THEM4, None), &key()),
        Classified::OwnProbe
    );
    for len in 0..60 {
        let junk: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
        let _ = classify(&junk, &key());
    }
}

fn ip4(s: &str) -> [u8; 4] {
    s.parse::<std::net::Ipv4Addr>().unwrap().octets()
}
fn ip6(s: &str) -> [u8; 16] {
    s.parse::<std::net::Ipv6Addr>().unwrap().octets()
}

/// Regression: on loopback every probe sent is also received, and the scan
/// recorded each probe twice in its evidence. Our own probes are now known
/// by their cookie and skipped; someone else's requests are not ours.
#[test]
fn own_probes_coming_back_in_on_loopback_are_recognized() {
    for (kind, port) in [
        (ProbeKind::Syn, Some(80)),
        (ProbeKind::Icmp, None),
        (ProbeKind::Dns, Some(53)),
    ] {
        for (us, them) in [(US4, THEM4), (US6, THEM6), ("127.0.0.1", "127.0.0.1")] {
            let p = probe(kind, us, them, port);
            assert!(
                matches!(classify(&p, &key()), Classified::OwnProbe),
                "{kind:?} {us} -> {them}"
            );
            let other = CookieKey::from_parts(1, 2);
            assert!(
                matches!(classify(&p, &other), Classified::Unrelated),
                "another run's {kind:?} probe is not ours"
            );
        }
    }
}

/// Every probe kind in both families, byte for byte as Scapy 2.5 builds the
/// same fields (the marks of `key()`), e.g.:
///
/// ```text
/// /usr/bin/python3 -c 'from scapy.all import *; print(raw(IP(src="198.18.0.2",
///   dst="198.18.1.10",flags="DF",id=0)/TCP(sport=50646,dport=22,seq=2918666100,
///   window=1024,flags="S",options=[("MSS",1460)])).hex())'
/// ```
///
/// (ICMP: `ICMP(type=8,id=19163,seq=8298)/b"sonde authorized probe"`; DNS:
/// `UDP(sport=53618,dport=53)/DNS(id=22240,rd=1,qd=DNSQR(qname=
/// "www.lab.sonde.test",qtype="A"))`; IPv6 likewise with `IPv6(hlim=64)` and
/// `ICMPv6EchoRequest(id=51271,seq=25027,data=...)`.) The wire views read
/// the marks back.
#[test]
fn every_probe_kind_is_byte_identical_to_scapys() {
    use sonde::wire::icmp::IcmpPacket;
    use sonde::wire::ip::IpPacket;
    use sonde::wire::tcp::{TcpPacket, flags};
    use sonde::wire::udp::UdpPacket;
    let golden = [
        (
            ProbeKind::Syn,
            US4,
            THEM4,
            Some(22),
            "4500002c000040004006ad9bc6120002c612010ac5d60016adf74f740000000060020400439d0000020405b4",
        ),
        (
            ProbeKind::Icmp,
            US4,
            THEM4,
            None,
            "45000032000040004001ad9ac6120002c612010a08003c524adb206a736f6e646520617574686f72697a65642070726f6265",
        ),
        (
            ProbeKind::Dns,
            US4,
            THEM4,
            Some(53),
            "45000040000040004011ad7cc6120002c612010ad1720035002cb1ee56e00100000100000000000003777777036c616205736f6e646504746573740000010001",
        ),
        (
            ProbeKind::Syn,
            US6,
            THEM6,
            Some(22),
            "600000000018064020010db800000000000000000000000220010db8000100000000000000000010c7090016b008cb2a0000000060020400f64e0000020405b4",
        ),
        (
            ProbeKind::Icmp,
            US6,
            THEM6,
            None,
            "60000000001e3a4020010db800000000000000000000000220010db80001000000000000000000108000a9aec84761c3736f6e646520617574686f72697a65642070726f6265",
        ),
        (
            ProbeKind::Dns,
            US6,
            THEM6,
            Some(53),
            "60000000002c114020010db800000000000000000000000220010db80001000000000000000000109e060035002cfba672400100000100000000000003777777036c616205736f6e646504746573740000010001",
        ),
    ];
    for (kind, us, them, port, want) in golden {
        let bytes = probe(kind, us, them, port);
        assert_eq!(hex::encode(&bytes), want, "{kind} {us} > {them}");
        let m = key().marks(ip(us), ip(them), port.unwrap_or(0), kind);
        let p = IpPacket::parse(&bytes).unwrap();
        assert_eq!((p.src(), p.dst()), (ip(us), ip(them)));
        let l4 = p.after_header();
        match kind {
            ProbeKind::Syn => {
                let t = TcpPacket::new_checked(l4).unwrap();
                assert_eq!(
                    (
                        t.src_port(),
                        t.dst_port(),
                        t.seq_number(),
                        t.flags(),
                        t.window()
                    ),
                    (m.source_port, 22, m.tcp_isn, flags::SYN, 1024)
                );
            }
            ProbeKind::Icmp => {
                let i = IcmpPacket::new_checked(l4).unwrap();
                assert_eq!((i.echo_ident(), i.echo_seq_no()), (m.icmp_id, m.icmp_seq));
                assert_eq!(i.payload(), sonde::probe::build::ECHO_PAYLOAD);
            }
            ProbeKind::Dns => {
                let u = UdpPacket::new_checked(l4).unwrap();
                assert_eq!((u.src_port(), u.dst_port()), (m.source_port, 53));
                assert_eq!(
                    u16::from_be_bytes([u.payload()[0], u.payload()[1]]),
                    m.dns_id
                );
            }
            ProbeKind::Service => unreachable!("no crafted service probe is golden"),
        }
    }
}
