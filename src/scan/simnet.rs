//! A simulated network for the engine's tests without root: one Ethernet
//! link (interface 2, `sim0`) from the scanner, 198.18.0.2/24, to hosts on
//! it. A host answers ARP, SYN-ACK on its open ports and RST on the others;
//! an address that is not a host answers nothing, not even ARP. `loss`
//! drops that share of frames each way. Whether a frame is lost is a hash
//! of what it is (the probe or ARP request, which try of it, which way),
//! never of when it passed: the threads' interleaving changes from run to
//! run, and a test must see the same losses every time. Every packet the engine hands over is checked against its
//! permit as the real senders check it.

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::net::link::{FrameSource, Interface, LinkError, Network, Path, ProbeSender};
use crate::net::packet::{
    RecvBatch, SendRefusal, SnifferStats, check_addresses, check_neighbour_request,
};
use crate::net::route::{Link, RouteCache, RouteError};
use crate::scope::Permit;

pub(crate) const SCANNER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const SCANNER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
const IFINDEX: u32 = 2;

/// A scope for the simulated link (198.18.0.0/24, SYN and ICMP), for
/// tests: `id` names the engagement (one scope is leased to one run at a
/// time on a host, and tests run at once), `limits` is the `[limits]`
/// table's body, `rules` more rules after the allow rule.
pub(crate) fn scope_toml(id: &str, limits: &str, rules: &str) -> String {
    format!(
        r#"probes = ["syn", "icmp"]
[engagement]
id = "{id}"
client = "the engine's tests"
authorized_by = "the test"
contact = "root@localhost"
not_before = 2020-01-01T00:00:00Z
not_after = 2099-12-31T23:59:59Z
[limits]
{limits}
[[allow]]
targets = ["198.18.0.0/24"]
{rules}"#
    )
}

/// The simulated link and what is on it.
pub(crate) struct SimNet {
    /// Each host and its open ports.
    hosts: BTreeMap<Ipv4Addr, Vec<u16>>,
    /// Hosts that answer ARP and drop every probe (a firewall's DROP).
    filtered: Vec<Ipv4Addr>,
    /// Frames lost each way, per thousand.
    loss_per_mille: u64,
    /// Exceptions to the loss: each (target, port) probe's first N tries
    /// are lost, whatever `loss_per_mille` says, and nothing else to them.
    lost_tries: BTreeMap<(Ipv4Addr, u16), u32>,
    /// Hosts whose frames are never lost at random.
    lossless: Vec<Ipv4Addr>,
    wire: Arc<Mutex<Wire>>,
}

/// The link's state: frames on their way to the scanner, and counts.
#[derive(Default)]
struct Wire {
    to_scanner: VecDeque<Vec<u8>>,
    /// Probes (IP packets) that reached the wire, per (target, port).
    probes: BTreeMap<(Ipv4Addr, u16), u32>,
    arp_requests: u64,
    /// ARP requests per address asked for.
    arp_asked: BTreeMap<Ipv4Addr, u32>,
}

impl SimNet {
    pub fn new(hosts: &[(Ipv4Addr, &[u16])], loss_per_mille: u64) -> SimNet {
        SimNet {
            hosts: hosts.iter().map(|(h, p)| (*h, p.to_vec())).collect(),
            filtered: Vec::new(),
            loss_per_mille,
            lost_tries: BTreeMap::new(),
            lossless: Vec::new(),
            wire: Arc::default(),
        }
    }

    /// `host` loses nothing at random; its probe to `port` is lost on its
    /// first `tries` tries.
    pub fn with_lost_tries(mut self, host: Ipv4Addr, port: u16, tries: u32) -> SimNet {
        self.lossless.push(host);
        self.lost_tries.insert((host, port), tries);
        self
    }

    /// Also `filtered` hosts: they answer ARP and drop every probe.
    pub fn with_filtered(mut self, filtered: &[Ipv4Addr]) -> SimNet {
        self.filtered = filtered.to_vec();
        self
    }

    /// How often each (target, port) was probed on the wire.
    pub fn probes(&self) -> BTreeMap<(Ipv4Addr, u16), u32> {
        self.wire.lock().expect("wire").probes.clone()
    }

    pub fn arp_requests(&self) -> u64 {
        self.wire.lock().expect("wire").arp_requests
    }
}

fn host_mac(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [2, 0, o[0], o[1], o[2], o[3]]
}

fn ethernet(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + payload.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// Which way a frame goes, for the loss hash.
#[derive(Clone, Copy)]
enum Leg {
    Probe = 0,
    Reply = 1,
    ArpRequest = 2,
}

/// Whether the `try_no`th sending of `(target, port)` is lost on `leg`:
/// SplitMix64's finaliser over the frame's identity.
fn lost(per_mille: u64, leg: Leg, target: Ipv4Addr, port: u16, try_no: u32) -> bool {
    if per_mille == 0 {
        return false;
    }
    let mut z = (u64::from(u32::from(target)) << 32 | u64::from(port) << 16 | leg as u64)
        .wrapping_add(u64::from(try_no).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) % 1000 < per_mille
}

impl Network for SimNet {
    fn local_addresses(&self) -> Result<crate::targets::IpSet, RouteError> {
        Ok([crate::targets::AddrRange::single(IpAddr::V4(SCANNER))]
            .into_iter()
            .collect())
    }

    fn routes(&self) -> Result<RouteCache, RouteError> {
        Ok(RouteCache::fixed(
            &[(
                IpAddr::V4(Ipv4Addr::new(198, 18, 0, 0)),
                24,
                IFINDEX,
                None,
                IpAddr::V4(SCANNER),
            )],
            vec![(
                IFINDEX,
                Link {
                    name: "sim0".into(),
                    mac: SCANNER_MAC,
                    resolves_neighbours: true,
                },
            )],
            &[],
        ))
    }

    fn open(
        &self,
        interfaces: &[Interface],
        senders: usize,
    ) -> Result<(Vec<Box<dyn ProbeSender>>, Vec<Box<dyn FrameSource>>), (&'static str, io::Error)>
    {
        if interfaces.iter().any(|i| i.ifindex != IFINDEX) {
            return Err(("no such simulated interface", io::Error::other("sim")));
        }
        let senders = (0..senders.max(1))
            .map(|_| {
                Box::new(SimSender {
                    hosts: self.hosts.clone(),
                    filtered: self.filtered.clone(),
                    loss_per_mille: self.loss_per_mille,
                    lost_tries: self.lost_tries.clone(),
                    lossless: self.lossless.clone(),
                    wire: self.wire.clone(),
                    queued: Vec::new(),
                    sent: 0,
                }) as Box<dyn ProbeSender>
            })
            .collect();
        let sniffers = interfaces
            .iter()
            .map(|_| {
                Box::new(SimSniffer {
                    wire: self.wire.clone(),
                    received: 0,
                }) as Box<dyn FrameSource>
            })
            .collect();
        Ok((senders, sniffers))
    }

    fn drop_privileges(&self) -> io::Result<()> {
        Ok(())
    }
}

struct SimSender {
    hosts: BTreeMap<Ipv4Addr, Vec<u16>>,
    filtered: Vec<Ipv4Addr>,
    loss_per_mille: u64,
    lost_tries: BTreeMap<(Ipv4Addr, u16), u32>,
    lossless: Vec<Ipv4Addr>,
    wire: Arc<Mutex<Wire>>,
    /// Whole frames queued until the flush, as the real sender's.
    queued: Vec<Vec<u8>>,
    sent: u64,
}

impl SimSender {
    /// What the link does with one frame from the scanner.
    fn deliver(&self, wire: &mut Wire, frame: &[u8]) {
        let ethertype = u16::from_be_bytes([frame[12], frame[13]]);
        let payload = &frame[14..];
        if ethertype == 0x0806 {
            wire.arp_requests += 1;
            let asked = Ipv4Addr::new(payload[24], payload[25], payload[26], payload[27]);
            let try_no = wire.arp_asked.entry(asked).or_default();
            *try_no += 1;
            let there = self.hosts.contains_key(&asked) || self.filtered.contains(&asked);
            if lost(self.loss_per_mille, Leg::ArpRequest, asked, 0, *try_no) || !there {
                return;
            }
            let mut arp = vec![0, 1, 8, 0, 6, 4, 0, 2];
            arp.extend_from_slice(&host_mac(asked));
            arp.extend_from_slice(&asked.octets());
            arp.extend_from_slice(&SCANNER_MAC);
            arp.extend_from_slice(&SCANNER.octets());
            let reply = ethernet(SCANNER_MAC, host_mac(asked), 0x0806, &arp);
            wire.to_scanner.push_back(reply);
            return;
        }
        // A TCP SYN probe (the only kind these tests send).
        let ip = payload;
        let target = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
        let port = u16::from_be_bytes([ip[22], ip[23]]);
        let try_no = wire.probes.entry((target, port)).or_default();
        *try_no += 1;
        let try_no = *try_no;
        let per_mille = if self.lossless.contains(&target) {
            0
        } else {
            self.loss_per_mille
        };
        if self.lost_tries.get(&(target, port)) >= Some(&try_no)
            || lost(per_mille, Leg::Probe, target, port, try_no)
            // The answer is lost on the way back.
            || lost(per_mille, Leg::Reply, target, port, try_no)
        {
            return;
        }
        let Some(open) = self.hosts.get(&target) else {
            return;
        };
        let flags = if open.contains(&port) { 0x12 } else { 0x14 };
        let reply = super::correlate::tests::tcp_answer(ip, flags);
        wire.to_scanner
            .push_back(ethernet(SCANNER_MAC, host_mac(target), 0x0800, &reply));
    }
}

impl ProbeSender for SimSender {
    fn send(&mut self, permit: Permit, path: &Path, packet: &[u8]) -> Result<(), LinkError> {
        check_addresses(&permit, packet).map_err(LinkError::Refused)?;
        let Path::Frame(hop) = path else {
            return Err(LinkError::Io(io::Error::other("no kernel path on sim0")));
        };
        if hop.target != permit.dst() {
            return Err(LinkError::Refused(SendRefusal::WrongNextHop {
                permit: permit.dst(),
                hop: hop.target,
            }));
        }
        let ethertype = if packet[0] >> 4 == 4 { 0x0800 } else { 0x86dd };
        self.queued.push(ethernet(
            hop.next_hop_mac,
            hop.source_mac,
            ethertype,
            packet,
        ));
        Ok(())
    }

    fn send_neighbour_request(
        &mut self,
        ifindex: u32,
        permit: Permit,
        frame: &[u8],
    ) -> Result<(), LinkError> {
        if ifindex != IFINDEX {
            return Err(LinkError::Io(io::Error::other(
                "no such simulated interface",
            )));
        }
        check_neighbour_request(&permit, frame).map_err(LinkError::Refused)?;
        self.queued.push(frame.to_vec());
        Ok(())
    }

    fn flush(&mut self) -> io::Result<usize> {
        let n = self.queued.len();
        let mut wire = self.wire.lock().expect("wire");
        for f in std::mem::take(&mut self.queued) {
            self.deliver(&mut wire, &f);
        }
        self.sent += n as u64;
        Ok(n)
    }

    fn sent(&self) -> u64 {
        self.sent
    }
}

struct SimSniffer {
    wire: Arc<Mutex<Wire>>,
    received: u64,
}

impl FrameSource for SimSniffer {
    fn next_batch(&mut self, batch: &mut RecvBatch) -> io::Result<usize> {
        batch.clear();
        {
            let mut wire = self.wire.lock().expect("wire");
            let now = crate::clock::now_nanos();
            while let Some(f) = wire.to_scanner.pop_front() {
                batch.push(&f, now);
            }
        }
        if batch.is_empty() {
            // As a ring's poll waits for a block.
            std::thread::sleep(Duration::from_millis(2));
        }
        self.received += batch.len() as u64;
        Ok(batch.len())
    }

    fn stats(&mut self) -> io::Result<SnifferStats> {
        Ok(SnifferStats {
            received: self.received,
            dropped: 0,
        })
    }
}
