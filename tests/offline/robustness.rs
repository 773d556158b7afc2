//! Hostile input never panics: mutated real captures through the whole
//! analysis, and random text through every parser that takes user input.
//! (A stable-Rust stand-in until coverage-guided fuzz targets exist.)

use std::io::Cursor;
use std::path::PathBuf;

use proptest::prelude::*;
use sonde::analyze::{AnalyzeOptions, Analyzer};
use sonde::pcap::CaptureReader;

fn corpus_file(name: &str) -> Vec<u8> {
    std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/corpus")
            .join(name),
    )
    .unwrap()
}

/// Read and analyze in-memory bytes the way `sonde analyze` does a file.
fn analyze_bytes(bytes: Vec<u8>) -> Option<u64> {
    let mut reader = CaptureReader::new(Cursor::new(bytes), "mutated").ok()?;
    let mut analyzer = Analyzer::new(&AnalyzeOptions::default());
    let mut warnings = Vec::new();
    loop {
        match reader.next_frame(|f| analyzer.frame(f.ts_nanos, f.link, f.orig_len, f.data)) {
            Ok(true) => {}
            Ok(false) => break,
            Err(w) => {
                warnings.push(w);
                break;
            }
        }
    }
    let report = analyzer.finish(Vec::new(), warnings);
    // The report must serialize: no NaN or infinity in any number.
    let json = serde_json::to_string(&report).unwrap();
    assert!(!json.contains("NaN") && !json.contains("null,\\\"evidence"));
    Some(report.stats.summary.packets)
}

/// Cases per property: 1,500 in CI, more when SONDE_FUZZ_CASES says so.
fn fuzz_cases() -> u32 {
    std::env::var("SONDE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1500)
}

const SEEDS: [&str; 6] = [
    "normal/dns.pcap",
    "normal/http_ip4and6.pcapng",
    "frag/mmt-21.ip_frag_off.pcap",
    "frag/ipv6_fragments.pcapng",
    "dns-tunnel/iodine.pcap",
    "syn/mmt-28.xmas_can.pcap",
];

#[derive(Debug, Clone)]
enum Mutation {
    Flip { at: usize, bit: u8 },
    Set { at: usize, value: u8 },
    Truncate { at: usize },
    Insert { at: usize, bytes: Vec<u8> },
    Remove { at: usize, len: usize },
    Duplicate { from: usize, len: usize, to: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::Flip { at, bit }),
        (
            any::<usize>(),
            prop_oneof![Just(0u8), Just(0xff), Just(0x7f), Just(0x80), any::<u8>()]
        )
            .prop_map(|(at, value)| Mutation::Set { at, value }),
        any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        (
            any::<usize>(),
            proptest::collection::vec(any::<u8>(), 1..16)
        )
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        (any::<usize>(), 1usize..64).prop_map(|(at, len)| Mutation::Remove { at, len }),
        (any::<usize>(), 1usize..200, any::<usize>())
            .prop_map(|(from, len, to)| Mutation::Duplicate { from, len, to }),
    ]
}

fn apply(mut b: Vec<u8>, muts: &[Mutation]) -> Vec<u8> {
    for m in muts {
        if b.is_empty() {
            break;
        }
        let n = b.len();
        match m {
            Mutation::Flip { at, bit } => b[at % n] ^= 1 << bit,
            Mutation::Set { at, value } => b[at % n] = *value,
            Mutation::Truncate { at } => b.truncate(at % n),
            Mutation::Insert { at, bytes } => {
                let at = at % n;
                b.splice(at..at, bytes.iter().copied());
            }
            Mutation::Remove { at, len } => {
                let at = at % n;
                b.drain(at..(at + len).min(n));
            }
            Mutation::Duplicate { from, len, to } => {
                let from = from % n;
                let piece: Vec<u8> = b[from..(from + len).min(n)].to_vec();
                let to = to % n;
                b.splice(to..to, piece);
            }
        }
    }
    b
}

proptest! {
    // SONDE_FUZZ_CASES raises the count for a long campaign (see docs/robustness.md).
    #![proptest_config(ProptestConfig { cases: fuzz_cases(), ..ProptestConfig::default() })]

    #[test]
    fn mutated_captures_are_analyzed_without_panic(seed in 0..SEEDS.len(), muts in proptest::collection::vec(mutation(), 1..6)) {
        let bytes = apply(corpus_file(SEEDS[seed]), &muts);
        let _ = analyze_bytes(bytes);
    }

    #[test]
    fn craft_specs_never_panic(text in "(ether|ip|ipv6|tcp|udp|icmp|icmpv6|dns|raw|[a-z]{1,6})(\\((([a-z]{1,8})=(\"[^\"]{0,12}\"|[0-9a-fx:.;A-Z]{0,12}),?){0,4}\\))?(/(ip|ipv6|tcp|udp|icmp|icmpv6|dns|raw|ether)(\\((([a-z]{1,8})=([0-9a-fx:.;SAFRPUEC]{0,10}),?){0,4}\\))?){0,4}") {
        let _ = sonde::craft::craft(&text, &|_| Some("198.18.0.2".parse().unwrap()));
    }

    #[test]
    fn craft_specs_of_real_fields_never_panic(
        dst in prop_oneof![Just("198.18.1.5"), Just("2001:db8::5")],
        l4 in prop_oneof![Just("tcp"), Just("udp"), Just("icmp"), Just("icmpv6"), Just("dns"), Just("raw")],
        field in prop_oneof![Just("len"), Just("ihl"), Just("chksum"), Just("dataofs"), Just("frag"), Just("options"), Just("plen"), Just("flags"), Just("qd"), Just("pattern")],
        value in "[0-9]{1,6}|0x[0-9a-f]{1,5}|[A-Za-z:;.]{0,12}",
    ) {
        let ip = if dst.contains(':') { "ipv6" } else { "ip" };
        for spec in [format!("{ip}(dst={dst},{field}={value})/{l4}"), format!("{ip}(dst={dst})/{l4}({field}={value})")] {
            if let Ok(c) = sonde::craft::craft(&spec, &|_| Some(if dst.contains(':') { "2001:db8::2".parse().unwrap() } else { "198.18.0.2".parse().unwrap() })) {
                // Whatever was built, the analyzer's dissector takes it.
                let _ = sonde::analyze::dissect::dissect(sonde::pcap::LinkType::Raw, &c.bytes);
            }
        }
    }

    #[test]
    fn scope_parser_never_panics(text in "\\PC{0,400}") {
        let _ = sonde::scope::Scope::from_toml(&text, "fuzz.toml");
    }

    #[test]
    fn mutated_scope_files_never_panic(muts in proptest::collection::vec(mutation(), 1..5)) {
        let base = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/scopes/example-engagement.toml")).unwrap();
        let bytes = apply(base, &muts);
        if let Ok(text) = String::from_utf8(bytes) {
            let _ = sonde::scope::Scope::from_toml(&text, "fuzz.toml");
        }
    }

    #[test]
    fn target_and_port_parsers_never_panic(s in "[0-9a-fA-F:./\\-\\[\\], ]{0,60}|\\PC{0,60}") {
        let _ = sonde::targets::TargetSpec::parse(&s);
        let _ = sonde::targets::PortSet::parse(&s);
        let _ = sonde::targets::spec::split_target_port(&s);
        let _ = sonde::targets::spec::parse_target_list(&s, "list");
        let _ = sonde::targets::index::Shard::parse(&s);
    }

    #[test]
    fn random_frames_through_the_dissector(bytes in proptest::collection::vec(any::<u8>(), 0..200), link in 0usize..7) {
        use sonde::pcap::LinkType::*;
        let l = [Ethernet, Raw, LinuxSll, LinuxSll2, Null, Loop, Ipv6][link];
        let mut analyzer = Analyzer::new(&AnalyzeOptions::default());
        analyzer.frame(1, l, bytes.len() as u32, &bytes);
        let _ = sonde::probe::classify(&bytes, &sonde::probe::CookieKey::from_parts(1, 2));
        let _ = serde_json::to_string(&analyzer.finish(Vec::new(), Vec::new())).unwrap();
    }
}

/// Regression: every edge the mutations above are aimed at, once, explicitly.
#[test]
fn damaged_header_fields() {
    let good = corpus_file("dns-tunnel/iodine.pcap");
    // snap length 0 and 0xffffffff in the file header: frames are still read
    for snaplen in [0u32, u32::MAX] {
        let mut b = good.clone();
        b[16..20].copy_from_slice(&snaplen.to_le_bytes());
        assert_eq!(analyze_bytes(b), Some(24), "snaplen {snaplen}");
    }
    // a record whose captured length exceeds its original length
    let mut b = good.clone();
    b[24 + 12..24 + 16].copy_from_slice(&1u32.to_le_bytes());
    assert_eq!(analyze_bytes(b), Some(24));
    // pcapng: an unknown block type between packets is skipped
    let ng = corpus_file("normal/http_ip4and6.pcapng");
    let mut with_unknown = ng.clone();
    let unknown = [0xde, 0xad, 0xbe, 0xef, 16, 0, 0, 0, 1, 2, 3, 4, 16, 0, 0, 0];
    let at = first_epb(&ng);
    with_unknown.splice(at..at, unknown);
    assert_eq!(analyze_bytes(with_unknown), Some(20));
    // cut in the middle of the 5th record's 16-byte header: 4 frames
    let mut at = 24;
    for _ in 0..4 {
        let caplen = u32::from_le_bytes(good[at + 8..at + 12].try_into().unwrap()) as usize;
        at += 16 + caplen;
    }
    assert_eq!(analyze_bytes(good[..at + 7].to_vec()), Some(4));
    // a record longer than a (non-zero) snaplen: read as recorded, no panic
    let mut b = good.clone();
    b[16..20].copy_from_slice(&64u32.to_le_bytes());
    assert_eq!(analyze_bytes(b), Some(24));
    // a wrong magic number: not a capture
    let mut b = good.clone();
    b[0..4].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
    assert_eq!(analyze_bytes(b), None);
    // pcapng: a block whose trailing length disagrees with its leading one
    let mut corrupt = ng.clone();
    let len = u32::from_le_bytes(ng[at_len(&ng)..at_len(&ng) + 4].try_into().unwrap()) as usize;
    let epb = first_epb(&ng);
    corrupt[epb + len - 4..epb + len].copy_from_slice(&7u32.to_le_bytes());
    let read = analyze_bytes(corrupt);
    assert!(
        read.is_none_or(|n| n < 20),
        "a corrupt block stops the reading: {read:?}"
    );
}

/// Offset of the first EPB's length field.
fn at_len(b: &[u8]) -> usize {
    first_epb(b) + 4
}

/// Offset of the first Enhanced Packet Block of a little-endian pcapng.
fn first_epb(b: &[u8]) -> usize {
    let mut at = 0;
    while at + 8 <= b.len() {
        let kind = u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
        let len = u32::from_le_bytes(b[at + 4..at + 8].try_into().unwrap()) as usize;
        if kind == 6 {
            return at;
        }
        at += len;
    }
    panic!("no EPB");
}

/// Regression (found by the mutation test above): a pcapng interface with
/// a huge if_tsoffset and a packet with the largest timestamp overflowed the
/// nanosecond arithmetic. They now saturate at the documented limit.
#[test]
fn pcapng_timestamp_overflow() {
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
    // if_tsoffset (option 14, 8 bytes) = i64::MAX seconds
    let idb = block(
        1,
        &[
            &101u16.to_le_bytes()[..],
            &[0, 0],
            &65535u32.to_le_bytes(),
            &14u16.to_le_bytes(),
            &8u16.to_le_bytes(),
            &i64::MAX.to_le_bytes(),
            &[0, 0, 0, 0],
        ]
        .concat(),
    );
    let ip = [
        0x45u8, 0, 0, 20, 0, 0, 0, 0, 64, 253, 0, 0, 198, 18, 0, 2, 198, 18, 1, 10,
    ];
    let epb = block(
        6,
        &[
            &0u32.to_le_bytes()[..],
            &u32::MAX.to_le_bytes(),
            &u32::MAX.to_le_bytes(),
            &20u32.to_le_bytes(),
            &20u32.to_le_bytes(),
            &ip,
        ]
        .concat(),
    );
    let file = [shb, idb, epb.clone(), epb].concat();
    assert_eq!(analyze_bytes(file), Some(2));
}

/// Regression (found by the mutation test in CI): an IPv6 hop-by-hop header
/// announcing a routing header that the packet does not contain. etherparse's
/// lax extension slice keeps the hop-by-hop header, and its iterator then
/// reads the missing routing header out of bounds (undefined behaviour that a
/// debug build aborts on). The dissector walks the chain itself now.
#[test]
fn ipv6_extension_chain_cut_short() {
    let mut ip6 = vec![0x60, 0, 0, 0];
    ip6.extend_from_slice(&8u16.to_be_bytes()); // payload length
    ip6.push(0); // next header: hop-by-hop
    ip6.push(64);
    ip6.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    ip6.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    // hop-by-hop: next header 43 (routing), length 0 (8 bytes), PadN
    ip6.extend_from_slice(&[43, 0, 1, 4, 0, 0, 0, 0]);
    for cut in [0usize, 1, 2, 7] {
        // a routing header shorter than it says, or missing entirely
        let mut frame = ip6.clone();
        frame.extend_from_slice(&[17, 4, 0, 0, 0, 0, 0, 0][..cut]);
        let mut analyzer = Analyzer::new(&AnalyzeOptions::default());
        analyzer.frame(0, sonde::pcap::LinkType::Raw, frame.len() as u32, &frame);
        let report = analyzer.finish(Vec::new(), Vec::new());
        assert_eq!(report.stats.summary.packets, 1, "cut {cut}");
    }
}
