//! Writes a mixed capture for the analysis benchmark:
//! `cargo bench --bench gen_capture -- OUT.pcap PACKETS`
//!
//! The mix: TCP connections (handshake, an HTTP request and response, data
//! segments, FIN close) between 20,000 clients and 200 servers, DNS queries
//! and responses over UDP, ICMP echoes, IPv6 TCP, and a few fragmented
//! datagrams, with timestamps 10 µs apart. Deterministic for a given count.

use std::io::BufWriter;

use etherparse::PacketBuilder;
use sonde::pcap::PcapWriter;

const MAC_A: [u8; 6] = [2, 0, 0, 0, 0, 1];
const MAC_B: [u8; 6] = [2, 0, 0, 0, 0, 2];

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn main() {
    let args: Vec<String> = std::env::args().filter(|a| a != "--bench").collect();
    let (Some(out), Some(count)) = (args.get(1), args.get(2).and_then(|n| n.parse::<u64>().ok()))
    else {
        eprintln!("usage: cargo bench --bench gen_capture -- OUT.pcap PACKETS");
        std::process::exit(2);
    };
    let file = std::fs::File::create(out).expect("create output");
    let mut w = PcapWriter::new(BufWriter::with_capacity(1 << 20, file), 1, 65535).expect("header");
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let mut t: i64 = 1_767_225_600_000_000_000;
    let mut n = 0u64;
    let mut buf = Vec::with_capacity(2048);
    let body = vec![b'x'; 1500];
    let emit = |w: &mut PcapWriter<_>, buf: &Vec<u8>, n: &mut u64, t: &mut i64| {
        w.write(*t, buf).expect("write");
        *n += 1;
        *t += 10_000;
    };
    while n < count {
        let r = rng.next();
        let client = [
            10,
            (r >> 8) as u8 % 80,
            (r >> 16) as u8,
            1 + (r >> 24) as u8 % 250,
        ];
        let server = [198, 18, 1, 1 + (r >> 32) as u8 % 200];
        let sport = 1024 + (r >> 40) as u16 % 60000;
        match r % 100 {
            0..=69 => {
                // a TCP connection: SYN, SYN-ACK, ACK, request, response, 3 data, FIN, FIN, ACK
                let seq = [
                    (0x02u8, 0usize, true),
                    (0x12, 0, false),
                    (0x10, 0, true),
                    (0x18, 1, true),
                    (0x18, 2, false),
                    (0x10, 3, false),
                    (0x10, 3, false),
                    (0x10, 3, false),
                    (0x11, 0, true),
                    (0x11, 0, false),
                    (0x10, 0, true),
                ];
                for &(flags, what, c2s) in &seq {
                    let payload: &[u8] = match what {
                        1 => b"GET /index.html HTTP/1.1\r\nHost: www.bench.test\r\nUser-Agent: bench/1\r\n\r\n",
                        2 => b"HTTP/1.1 200 OK\r\nContent-Length: 1400\r\n\r\n",
                        3 => &body[..(r as usize >> 3) % 1400],
                        _ => &[],
                    };
                    buf.clear();
                    let (s, d, sp, dp) = if c2s {
                        (client, server, sport, 80)
                    } else {
                        (server, client, 80, sport)
                    };
                    PacketBuilder::ethernet2(MAC_A, MAC_B)
                        .ipv4(s, d, 64)
                        .tcp(sp, dp, 1, 64240)
                        .write(&mut buf, payload)
                        .unwrap();
                    buf[14 + 20 + 13] = flags;
                    emit(&mut w, &buf, &mut n, &mut t);
                }
            }
            70..=84 => {
                // DNS query and response
                let name = format!("host{}.example{}.test", r % 5000, (r >> 20) % 50);
                let mut q = vec![(r >> 8) as u8, r as u8, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
                for l in name.split('.') {
                    q.push(l.len() as u8);
                    q.extend_from_slice(l.as_bytes());
                }
                q.extend_from_slice(&[0, 0, 1, 0, 1]);
                buf.clear();
                PacketBuilder::ethernet2(MAC_A, MAC_B)
                    .ipv4(client, [198, 18, 1, 53], 64)
                    .udp(sport, 53)
                    .write(&mut buf, &q)
                    .unwrap();
                emit(&mut w, &buf, &mut n, &mut t);
                q[2] = 0x81;
                q[3] = 0x80;
                buf.clear();
                PacketBuilder::ethernet2(MAC_A, MAC_B)
                    .ipv4([198, 18, 1, 53], client, 64)
                    .udp(53, sport)
                    .write(&mut buf, &q)
                    .unwrap();
                emit(&mut w, &buf, &mut n, &mut t);
            }
            85..=92 => {
                // ICMP echo request and reply
                for (s, d, ty) in [(client, server, 8u8), (server, client, 0u8)] {
                    buf.clear();
                    let b = PacketBuilder::ethernet2(MAC_A, MAC_B).ipv4(s, d, 64);
                    let b = if ty == 8 {
                        b.icmpv4_echo_request(1, r as u16)
                    } else {
                        b.icmpv4_echo_reply(1, r as u16)
                    };
                    b.write(&mut buf, &[0u8; 56]).unwrap();
                    emit(&mut w, &buf, &mut n, &mut t);
                }
            }
            93..=98 => {
                // IPv6 TCP SYN and SYN-ACK
                let mut c6 = [0u8; 16];
                c6[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
                c6[8..16].copy_from_slice(&r.to_be_bytes());
                let mut s6 = [0u8; 16];
                s6[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
                s6[15] = 1 + (r >> 32) as u8 % 50;
                for (s, d, sp, dp, f) in [(c6, s6, sport, 443, 0x02u8), (s6, c6, 443, sport, 0x12)]
                {
                    buf.clear();
                    PacketBuilder::ethernet2(MAC_A, MAC_B)
                        .ipv6(s, d, 64)
                        .tcp(sp, dp, 1, 64240)
                        .write(&mut buf, &[])
                        .unwrap();
                    buf[14 + 40 + 13] = f;
                    emit(&mut w, &buf, &mut n, &mut t);
                }
            }
            _ => {
                // a UDP datagram in two IPv4 fragments
                let id = (r >> 16) as u16;
                for (off, more, len) in [(0u16, true, 1480usize), (1480, false, 600)] {
                    let mut h = etherparse::Ipv4Header::new(
                        len as u16,
                        64,
                        etherparse::IpNumber::UDP,
                        client,
                        server,
                    )
                    .unwrap();
                    h.identification = id;
                    h.more_fragments = more;
                    h.fragment_offset = etherparse::IpFragOffset::try_new(off / 8).unwrap();
                    h.header_checksum = h.calc_header_checksum();
                    buf.clear();
                    etherparse::Ethernet2Header {
                        source: MAC_A,
                        destination: MAC_B,
                        ether_type: etherparse::EtherType::IPV4,
                    }
                    .write(&mut buf)
                    .unwrap();
                    h.write(&mut buf).unwrap();
                    if off == 0 {
                        buf.extend_from_slice(&[0x30, 0x39, 0x00, 0x35, 0x08, 0x50, 0, 0]);
                        buf.extend_from_slice(&body[..len - 8]);
                    } else {
                        buf.extend_from_slice(&body[..len]);
                    }
                    emit(&mut w, &buf, &mut n, &mut t);
                }
            }
        }
    }
    w.flush().expect("flush");
    eprintln!("wrote {n} packets to {out}");
}
