//! The floor for `benches/analyze.sh`: read a legacy pcap with pcap-parser
//! and slice every frame with etherparse, doing nothing else.
//! `cargo bench --bench bare_loop -- FILE.pcap`

fn main() {
    let path = std::env::args()
        .filter(|a| a != "--bench")
        .nth(1)
        .expect("usage: bare_loop FILE.pcap");
    // The whole file in memory: the floor leaves out I/O entirely.
    let map = std::fs::read(&path).expect("read");
    let start = std::time::Instant::now();
    let (mut rest, _) = pcap_parser::pcap::parse_pcap_header(&map).expect("pcap header");
    let (mut frames, mut tcp) = (0u64, 0u64);
    while let Ok((r, block)) = pcap_parser::pcap::parse_pcap_frame(rest) {
        rest = r;
        frames += 1;
        if let Ok(p) = etherparse::LaxSlicedPacket::from_ethernet(block.data)
            && matches!(p.transport, Some(etherparse::TransportSlice::Tcp(_)))
        {
            tcp += 1;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!("{frames} {tcp} {secs:.3} {:.0}", frames as f64 / secs);
}
