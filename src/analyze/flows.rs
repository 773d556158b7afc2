//! Per-flow summaries: bidirectional 5-tuples with per-direction counters,
//! TCP flags, handshake state and application protocol.
//!
//! Flows idle for longer than the timeout are finished and leave the table,
//! so memory follows the number of *active* flows, not the capture's size.

use std::net::IpAddr;

use std::hash::BuildHasher;

use hashbrown::HashTable;
use serde::Serialize;

use super::dissect::{Addr, Dissected, Transport};
use super::tcp_analysis::{FlowEvents, TcpConnState, TcpEvents};
use super::tls::FlowTls;

pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const PSH: u8 = 0x08;
pub const ACK: u8 = 0x10;
pub const URG: u8 = 0x20;

/// The flow's endpoints in a fixed order (lower address/port first), so
/// both directions of a conversation find the same flow.
///
/// Both addresses come from one packet, so they share a family, kept once:
/// the addresses are plain 128-bit values, compared and hashed as integers,
/// and the key stays 40 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowKey {
    a: [u64; 2],
    b: [u64; 2],
    pub a_port: u16,
    pub b_port: u16,
    pub proto: u8,
    v6: bool,
}

/// Hashes the key as two 128-bit addresses and one packed word: the derived
/// hash would feed each field, and arrays with their lengths, per packet.
impl std::hash::Hash for FlowKey {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        h.write_u64(self.a[0]);
        h.write_u64(self.a[1]);
        h.write_u64(self.b[0]);
        h.write_u64(self.b[1]);
        h.write_u64(
            u64::from(self.proto)
                | u64::from(self.a_port) << 8
                | u64::from(self.b_port) << 24
                | u64::from(self.v6) << 40,
        );
    }
}

impl FlowKey {
    /// The key and whether `src` is endpoint `a`.
    pub fn of(proto: u8, src: IpAddr, sport: u16, dst: IpAddr, dport: u16) -> (FlowKey, bool) {
        let (src, dst) = (Addr::from(src), Addr::from(dst));
        // Endpoint order as (IpAddr, port) orders; mixed families (no
        // packet has them) would keep the family of `a`.
        let src_is_a = (src, sport) <= (dst, dport);
        let ((a, a_port), (b, b_port)) = if src_is_a {
            ((src, sport), (dst, dport))
        } else {
            ((dst, dport), (src, sport))
        };
        (
            FlowKey {
                a: a.halves(),
                b: b.halves(),
                a_port,
                b_port,
                proto,
                v6: a.is_ipv6(),
            },
            src_is_a,
        )
    }

    pub fn a(&self) -> Addr {
        Addr::from_halves(self.v6, self.a)
    }

    pub fn b(&self) -> Addr {
        Addr::from_halves(self.v6, self.b)
    }
}

/// Raw TCP options (at most 40 bytes) and their length.
pub type SynOptions = ([u8; 40], u8);

/// A flow while it is being counted. Two cache lines exactly: the table
/// writes a cold one for every new flow and reads it back when the flow
/// finishes, so the SYN's options live beside it (`FlowTable::syn_options`)
/// and the application protocol is a table index.
#[derive(Clone, Debug)]
#[repr(align(64))]
pub struct Flow {
    pub key: FlowKey,
    /// Whether endpoint `a` opened the flow (sent the first SYN, or the first packet).
    pub a_is_client: bool,
    pub first_ns: i64,
    pub last_ns: i64,
    pub first_frame: u64,
    /// Packets and bytes from client to server, and back.
    pub c2s: (u64, u64),
    pub s2c: (u64, u64),
    pub flags_c2s: u8,
    pub flags_s2c: u8,
    /// TCP flags of the flow's first packet.
    pub first_flags: u8,
    pub syns: u32,
    pub synacks: u32,
    pub final_ack: bool,
    pub data_in_syn: bool,
    /// Whether the table holds the options of the client's first SYN.
    pub has_syn_options: bool,
    /// Whether either side sent any payload.
    pub payload_c2s: bool,
    pub payload_s2c: bool,
    /// 1 + the index in [`APP_PROTOCOLS`]; 0 while unknown.
    app: u8,
    /// Where each endpoint's sequence numbers began (a SYN's, or one
    /// before the first seen), as tshark sets its base: endpoint `a`
    /// first; bit 0 (`a`) and bit 1 (`b`) of `base_set` say which are set.
    base_seq: [u32; 2],
    base_set: u8,
}

impl Flow {
    /// Where the sequence numbers of endpoint `a` (or `b`) began, if seen.
    fn base_seq(&self, a: bool) -> Option<u32> {
        let i = usize::from(!a);
        (self.base_set & (1 << i) != 0).then_some(self.base_seq[i])
    }

    fn set_base_seq(&mut self, a: bool, seq: u32, syn: bool) {
        let i = usize::from(!a);
        if self.base_set & (1 << i) == 0 {
            self.base_seq[i] = if syn { seq } else { seq.wrapping_sub(1) };
            self.base_set |= 1 << i;
        }
    }

    /// A real conversation: both sides sent payload. Scanners' probes do not.
    pub fn is_conversation(&self) -> bool {
        self.payload_c2s && self.payload_s2c
    }
}

impl Flow {
    /// The TCP handshake as far as the capture shows it.
    pub fn handshake(&self) -> &'static str {
        if self.key.proto != 6 {
            return "none";
        }
        match (self.syns > 0, self.synacks > 0, self.final_ack) {
            (true, true, true) => "complete",
            (true, true, false) => "half_open",
            (true, false, _) if self.flags_s2c & RST != 0 => "refused",
            (true, false, _) => "syn_only",
            (false, true, _) => "synack_only",
            (false, false, _) => "midstream",
        }
    }

    pub fn is_half_open(&self) -> bool {
        matches!(self.handshake(), "half_open" | "syn_only")
    }

    fn closed_by(&self) -> &'static str {
        let f = self.flags_c2s | self.flags_s2c;
        if f & RST != 0 {
            "rst"
        } else if f & FIN != 0 {
            "fin"
        } else {
            "open"
        }
    }

    pub fn bytes(&self) -> u64 {
        self.c2s.1 + self.s2c.1
    }

    /// The application protocol, from the payload where it says so, else the port.
    pub fn app(&self) -> Option<&'static str> {
        APP_PROTOCOLS
            .get(usize::from(self.app).checked_sub(1)?)
            .copied()
    }

    /// `syn_options`: the client's SYN options, if the table kept them.
    pub fn summary(&self, syn_options: Option<&SynOptions>) -> FlowSummary {
        let k = &self.key;
        let (client, server) = if self.a_is_client {
            ((k.a().ip(), k.a_port), (k.b().ip(), k.b_port))
        } else {
            ((k.b().ip(), k.b_port), (k.a().ip(), k.a_port))
        };
        let tcp = k.proto == 6;
        let mut notes = Vec::new();
        if self.syns > 1 {
            notes.push(format!("repeated_syn ({} SYNs)", self.syns));
        }
        if self.data_in_syn {
            notes.push("data_in_syn".to_string());
        }
        FlowSummary {
            protocol: proto_name(k.proto),
            client: endpoint(client),
            server: endpoint(server),
            first_timestamp: crate::clock::timestamp(self.first_ns),
            last_timestamp: crate::clock::timestamp(self.last_ns),
            first_frame: self.first_frame,
            packets_client_to_server: self.c2s.0,
            bytes_client_to_server: self.c2s.1,
            packets_server_to_client: self.s2c.0,
            bytes_server_to_client: self.s2c.1,
            tcp_flags_client: tcp.then(|| crate::wire::tcp::flag_letters(self.flags_c2s)),
            tcp_flags_server: tcp.then(|| crate::wire::tcp::flag_letters(self.flags_s2c)),
            handshake: tcp.then(|| self.handshake()),
            closed_by: tcp.then(|| self.closed_by()),
            app_protocol: self.app(),
            syn_options: syn_options.map(|(raw, len)| describe_options(&raw[..usize::from(*len)])),
            tcp_analysis: None,
            tls: None,
            notes,
        }
    }
}

fn endpoint((ip, port): (IpAddr, u16)) -> String {
    match ip {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

pub fn proto_name(p: u8) -> &'static str {
    match p {
        6 => "tcp",
        17 => "udp",
        1 => "icmp",
        58 => "icmpv6",
        _ => "ip",
    }
}

/// What the report shows of a flow.
#[derive(Clone, Debug, Serialize)]
pub struct FlowSummary {
    pub protocol: &'static str,
    pub client: String,
    pub server: String,
    pub first_timestamp: String,
    pub last_timestamp: String,
    pub first_frame: u64,
    pub packets_client_to_server: u64,
    pub bytes_client_to_server: u64,
    pub packets_server_to_client: u64,
    pub bytes_server_to_client: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp_flags_client: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp_flags_server: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handshake: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closed_by: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_protocol: Option<&'static str>,
    /// The options of the client's SYN (`mss=1460,sackok,ts,nop,ws=7`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub syn_options: Option<String>,
    /// The connection's TCP analysis events, when it had any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp_analysis: Option<TcpEvents>,
    /// What its TLS hellos said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<FlowTls>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// Which flows the report lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FlowListing {
    All,
    Top,
    None,
}

/// Active flows kept at most; past this the least recently seen quarter is
/// finished early (as if idle), which bounds memory on floods of new flows.
pub const MAX_ACTIVE_FLOWS: usize = 65_536;

// Slot numbers fit the low 16 bits of the sort keys below.
const _: () = assert!(MAX_ACTIVE_FLOWS <= 1 << 16);

/// A flow's first frame and slot as one word that sorts by first frame
/// (unique per flow), the slot in the low 16 bits. Sorting words instead
/// of (frame, slot) pairs halves the cost of ordering a full table. Frame
/// numbers stay far below 2^48 (five years of frames at 2M a second).
fn by_first_frame(first_frame: u64, slot: usize) -> u64 {
    (first_frame << 16) | slot as u64
}

/// The slot of a [`by_first_frame`] key.
fn slot_of(key: u64) -> usize {
    (key & 0xffff) as usize
}

/// `seen` entry of a free slot (timestamps never come near it: `MAX_NANOS`).
const FREE: i64 = i64::MAX;

/// What the report lists of a finished flow besides the flow itself.
#[derive(Clone, Debug)]
struct KeptFlow {
    flow: Flow,
    syn_options: Option<SynOptions>,
    tcp_events: FlowEvents,
    tls: Option<Box<FlowTls>>,
}

/// The table of active flows and what finished flows left behind.
///
/// Active flows live in a slab (`flows`, free slots reused) and are found
/// through `index`, a hash table of slot numbers compared against the key
/// in the slab. At 4 bytes a bucket the index of a full table fits in the
/// L2 cache, where a map of whole flows would spread 28 MB of buckets, and
/// the one slab access is the flow that must be updated anyway. `seen`
/// mirrors each slot's (last timestamp, first frame) in a dense array, so
/// finding idle or oldest flows reads 16 bytes per flow instead of whole
/// flows, and never depends on the hash table's (randomly seeded) order.
pub struct FlowTable {
    index: HashTable<u32>,
    hasher: foldhash::fast::RandomState,
    flows: Vec<Flow>,
    /// The client's SYN options per slot, valid where `has_syn_options`.
    syn_options: Vec<SynOptions>,
    /// TCP analysis state per slot.
    pub(crate) tcp_state: Vec<TcpConnState>,
    /// What the TLS hellos of a slot's flow said (few flows have any).
    tls: foldhash::HashMap<u32, Box<FlowTls>>,
    seen: Vec<(i64, u64)>,
    free: Vec<u32>,
    idle_timeout_ns: i64,
    listing: FlowListing,
    top: usize,
    /// Finished flows kept for the report (all, or the largest `top`).
    kept: Vec<KeptFlow>,
    pub flows_seen: u64,
    pub tcp_flows: u64,
    pub udp_flows: u64,
    /// Flows finished early because the table was full.
    pub evicted: u64,
    since_sweep: u32,
    /// Reused between evictions: last timestamp, first frame and slot in one word.
    ages: Vec<u128>,
    /// Bytes of the smallest flow in a full top list (the list only grows).
    floor: Option<u64>,
}

impl FlowTable {
    pub fn new(idle_timeout_secs: f64, listing: FlowListing, top: usize) -> FlowTable {
        FlowTable {
            // Sized for a full table up front: growing would rehash every
            // key, reading each flow back from the slab (a cache miss
            // apiece), and move the slab. The index's control bytes (128 KB)
            // are written now; vector capacity no flow uses is never touched.
            index: HashTable::with_capacity(MAX_ACTIVE_FLOWS),
            hasher: foldhash::fast::RandomState::default(),
            flows: Vec::with_capacity(MAX_ACTIVE_FLOWS),
            syn_options: Vec::with_capacity(MAX_ACTIVE_FLOWS),
            tcp_state: Vec::with_capacity(MAX_ACTIVE_FLOWS),
            tls: Default::default(),
            seen: Vec::with_capacity(MAX_ACTIVE_FLOWS),
            free: Vec::new(),
            idle_timeout_ns: (idle_timeout_secs * 1e9) as i64,
            listing,
            top,
            kept: Vec::new(),
            flows_seen: 0,
            tcp_flows: 0,
            udp_flows: 0,
            evicted: 0,
            since_sweep: 0,
            ages: Vec::new(),
            floor: None,
        }
    }

    /// Count one frame; `finished` receives flows that timed out. Returns
    /// whether the frame was counted in a flow.
    pub fn add(
        &mut self,
        frame: u64,
        ts: i64,
        wire_len: u32,
        d: &Dissected<'_>,
        finished: &mut impl FnMut(&Flow),
    ) -> Option<(usize, bool)> {
        let Some(ip) = &d.ip else { return None };
        let (proto, sport, dport, flags, payload, valid) = match d.transport {
            Some(Transport::Tcp {
                sport,
                dport,
                flags,
                payload,
                valid,
                ..
            }) => (6, sport, dport, flags, payload, valid),
            Some(Transport::Udp {
                sport,
                dport,
                payload,
            }) => (17, sport, dport, 0, payload, true),
            Some(Transport::Icmp { .. }) => (1, 0, 0, 0, &[][..], true),
            Some(Transport::Icmpv6 { .. }) => (58, 0, 0, 0, &[][..], true),
            None if ip.fragment.is_some_and(|f| f.offset > 0) => return None,
            None => (ip.proto, 0, 0, 0, &[][..], true),
        };
        // A TCP header that cannot be trusted opens no flow (as tshark).
        if !valid {
            return None;
        }
        self.since_sweep += 1;
        if self.since_sweep >= 1 << 16 {
            self.since_sweep = 0;
            self.sweep(ts, finished);
        }
        let (key, src_is_a) = FlowKey::of(proto, ip.src, sport, ip.dst, dport);
        let hash = self.hasher.hash_one(key);
        let flows = &self.flows;
        let mut found = self
            .index
            .find(hash, |&i| flows[i as usize].key == key)
            .map(|&i| i as usize);
        // tshark's connection identity (`tcp.stream`): a SYN whose sequence
        // number is not where its sender's side of the flow began starts a
        // new connection on the same addresses and ports (a client reusing
        // its port, or a new SYN after a RST), however recent the old one.
        let seq = (proto == 6)
            .then(|| d.ip_payload.get(4..8))
            .flatten()
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
        if let (Some(slot), Some(seq)) = (found, seq)
            && flags & (SYN | ACK) == SYN
            && self.flows[slot]
                .base_seq(src_is_a)
                .is_some_and(|b| b != seq)
        {
            self.close(slot, finished);
            found = None;
        }
        let slot = match found {
            Some(i) => i,
            None => {
                if self.index.len() >= MAX_ACTIVE_FLOWS {
                    self.evict_oldest(finished);
                }
                // The sender of a first packet is the client, unless that packet is a SYN-ACK.
                let synack = proto == 6 && flags & (SYN | ACK) == SYN | ACK;
                self.flows_seen += 1;
                match proto {
                    6 => self.tcp_flows += 1,
                    17 => self.udp_flows += 1,
                    _ => {}
                }
                self.open(
                    hash,
                    Flow {
                        key,
                        a_is_client: src_is_a != synack,
                        first_ns: ts,
                        last_ns: ts,
                        first_frame: frame,
                        c2s: (0, 0),
                        s2c: (0, 0),
                        flags_c2s: 0,
                        flags_s2c: 0,
                        first_flags: flags,
                        syns: 0,
                        synacks: 0,
                        final_ack: false,
                        data_in_syn: false,
                        has_syn_options: false,
                        payload_c2s: false,
                        payload_s2c: false,
                        app: 0,
                        base_seq: [0; 2],
                        base_set: 0,
                    },
                )
            }
        };
        let flow = &mut self.flows[slot];
        if let Some(seq) = seq {
            flow.set_base_seq(src_is_a, seq, flags & SYN != 0);
        }
        flow.last_ns = flow.last_ns.max(ts);
        self.seen[slot].0 = flow.last_ns;
        let len = u64::from(wire_len);
        let from_client = src_is_a == flow.a_is_client;
        if from_client {
            flow.c2s.0 += 1;
            flow.c2s.1 += len;
            flow.flags_c2s |= flags;
            flow.payload_c2s |= !payload.is_empty();
        } else {
            flow.s2c.0 += 1;
            flow.s2c.1 += len;
            flow.flags_s2c |= flags;
            flow.payload_s2c |= !payload.is_empty();
        }
        if proto == 6 {
            match flags & (SYN | ACK | RST) {
                SYN => {
                    flow.syns += 1;
                    flow.data_in_syn |= !payload.is_empty();
                    if !flow.has_syn_options {
                        // Options sit between the fixed 20 bytes and the data offset.
                        let tcp = d.ip_payload;
                        let end = tcp
                            .get(12)
                            .map_or(20, |b| usize::from(b >> 4) * 4)
                            .clamp(20, tcp.len().max(20));
                        let raw = tcp.get(20..end).unwrap_or(&[]);
                        let (opts, len) = &mut self.syn_options[slot];
                        opts[..raw.len()].copy_from_slice(raw);
                        *len = raw.len() as u8;
                        flow.has_syn_options = true;
                    }
                }
                x if x == SYN | ACK => flow.synacks += 1,
                ACK if from_client && flow.synacks > 0 => flow.final_ack = true,
                _ => {}
            }
        }
        if flow.app == 0 {
            flow.app = app_protocol(proto, sport.min(dport), sport.max(dport), payload);
        }
        Some((slot, src_is_a))
    }

    /// The protocol of the flow in `slot` and its server's port.
    pub(crate) fn service(&self, slot: usize) -> (u8, u16) {
        let f = &self.flows[slot];
        let port = if f.a_is_client {
            f.key.b_port
        } else {
            f.key.a_port
        };
        (f.key.proto, port)
    }

    /// Whether endpoint `a` of the flow in `slot` is its client.
    pub(crate) fn client_is_a(&self, slot: usize) -> bool {
        self.flows[slot].a_is_client
    }

    /// The first frame of the flow in `slot` (unique to it: a slot is reused).
    pub(crate) fn first_frame(&self, slot: usize) -> u64 {
        self.flows[slot].first_frame
    }

    /// The TLS record of the flow in `slot`, made on first use.
    pub(crate) fn tls_mut(&mut self, slot: usize) -> &mut FlowTls {
        self.tls.entry(slot as u32).or_default()
    }

    /// The key of the flow in `slot`.
    pub(crate) fn key(&self, slot: usize) -> FlowKey {
        self.flows[slot].key
    }

    /// Put a new flow in a free slot (or a new one) and index it.
    fn open(&mut self, hash: u64, flow: Flow) -> usize {
        let seen = (flow.last_ns, flow.first_frame);
        let slot = match self.free.pop() {
            Some(i) => {
                self.flows[i as usize] = flow;
                self.seen[i as usize] = seen;
                self.tcp_state[i as usize] = Default::default();
                i as usize
            }
            None => {
                self.flows.push(flow);
                self.syn_options.push(([0; 40], 0));
                self.tcp_state.push(Default::default());
                self.seen.push(seen);
                self.flows.len() - 1
            }
        };
        let (flows, hasher) = (&self.flows, &self.hasher);
        self.index.insert_unique(hash, slot as u32, |&i| {
            hasher.hash_one(flows[i as usize].key)
        });
        slot
    }

    /// Finish the flow in `slot`: hand it to `finished`, keep what the
    /// report lists, free the slot.
    fn close(&mut self, slot: usize, finished: &mut impl FnMut(&Flow)) {
        let hash = self.hasher.hash_one(self.flows[slot].key);
        if let Ok(e) = self.index.find_entry(hash, |&i| i as usize == slot) {
            e.remove();
        }
        self.seen[slot].0 = FREE;
        self.free.push(slot as u32);
        finished(&self.flows[slot]);
        self.keep(slot);
    }

    fn sweep(&mut self, now: i64, finished: &mut impl FnMut(&Flow)) {
        let cutoff = now.saturating_sub(self.idle_timeout_ns);
        // Finish in the order the flows began, so the report does not
        // depend on where they sit in the slab.
        let mut expired: Vec<u64> = self
            .seen
            .iter()
            .enumerate()
            .filter(|(_, s)| s.0 < cutoff)
            .map(|(i, s)| by_first_frame(s.1, i))
            .collect();
        expired.sort_unstable();
        for key in expired {
            self.close(slot_of(key), finished);
        }
    }

    fn evict_oldest(&mut self, finished: &mut impl FnMut(&Flow)) {
        let mut ages = std::mem::take(&mut self.ages);
        ages.clear();
        // Last timestamp (sign bit flipped, so it orders as unsigned), then
        // first frame and slot: one 128-bit word per flow.
        ages.extend(
            self.seen
                .iter()
                .enumerate()
                .filter(|(_, s)| s.0 != FREE)
                .map(|(i, s)| {
                    let last = (s.0 as u64) ^ (1 << 63);
                    (u128::from(last) << 64) | u128::from(by_first_frame(s.1, i))
                }),
        );
        // The least recently seen quarter, ties by first frame (unique).
        let n = ages.len() / 4;
        ages.select_nth_unstable(n);
        let oldest = &mut ages[..n];
        oldest.sort_unstable();
        for &key in oldest.iter() {
            self.close(slot_of(key as u64), finished);
        }
        self.evicted += n as u64;
        self.ages = ages;
    }

    /// Keep a copy of the finished flow in `slot` if the report may list it.
    fn keep(&mut self, slot: usize) {
        let tls = if self.tls.is_empty() {
            None
        } else {
            self.tls.remove(&(slot as u32))
        };
        let f = &self.flows[slot];
        let kept = |f: &Flow| KeptFlow {
            flow: f.clone(),
            syn_options: f.has_syn_options.then(|| self.syn_options[slot]),
            tcp_events: self.tcp_state[slot].events,
            tls,
        };
        match self.listing {
            FlowListing::None => {}
            FlowListing::All => self.kept.push(kept(f)),
            FlowListing::Top => {
                // A flow smaller than the last of a full list cannot enter it.
                if self.floor.is_some_and(|floor| f.bytes() < floor) {
                    return;
                }
                self.kept.push(kept(f));
                // Trim lazily: keep at most twice the list, cut back to `top`.
                if self.kept.len() >= 2 * self.top.max(1) {
                    self.trim();
                }
            }
        }
    }

    fn trim(&mut self) {
        // First frames are unique, so the unstable sort is deterministic.
        self.kept
            .sort_unstable_by(|KeptFlow { flow: x, .. }, KeptFlow { flow: y, .. }| {
                y.bytes()
                    .cmp(&x.bytes())
                    .then(x.first_frame.cmp(&y.first_frame))
            });
        self.kept.truncate(self.top);
        if self.kept.len() == self.top {
            self.floor = self.kept.last().map(|k| k.flow.bytes());
        }
    }

    /// Finish every flow; returns the flows the report lists.
    pub fn finish(mut self, finished: &mut impl FnMut(&Flow)) -> (Vec<FlowSummary>, FlowCounts) {
        let mut active: Vec<u64> = self
            .seen
            .iter()
            .enumerate()
            .filter(|(_, s)| s.0 != FREE)
            .map(|(i, s)| by_first_frame(s.1, i))
            .collect();
        active.sort_unstable();
        for key in active {
            self.close(slot_of(key), finished);
        }
        match self.listing {
            FlowListing::Top => self.trim(),
            _ => self.kept.sort_by_key(|k| k.flow.first_frame),
        }
        let counts = FlowCounts {
            total: self.flows_seen,
            tcp: self.tcp_flows,
            udp: self.udp_flows,
            evicted_early: self.evicted,
        };
        let list = self
            .kept
            .iter()
            .map(|k| {
                let mut s = k.flow.summary(k.syn_options.as_ref());
                s.tcp_analysis = (!k.tcp_events.is_empty()).then(|| k.tcp_events.events());
                s.tls = k.tls.as_deref().cloned();
                s
            })
            .collect();
        (list, counts)
    }
}

#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct FlowCounts {
    pub total: u64,
    pub tcp: u64,
    pub udp: u64,
    /// Flows finished before going idle because the table was full: a
    /// conversation that continued afterwards is counted again.
    pub evicted_early: u64,
}

/// TCP options as `mss=1460,sackok,ts,nop,ws=7` (etherparse decodes them);
/// a damaged option list ends with `malformed`.
pub fn describe_options(raw: &[u8]) -> String {
    use etherparse::TcpOptionElement::*;
    let mut out: Vec<String> = Vec::new();
    for o in etherparse::TcpOptionsIterator::from_slice(raw) {
        out.push(match o {
            Ok(Noop) => "nop".into(),
            Ok(MaximumSegmentSize(v)) => format!("mss={v}"),
            Ok(WindowScale(v)) => format!("ws={v}"),
            Ok(SelectiveAcknowledgementPermitted) => "sackok".into(),
            Ok(SelectiveAcknowledgement(..)) => "sack".into(),
            Ok(Timestamp(..)) => "ts".into(),
            Err(_) => {
                out.push("malformed".into());
                break;
            }
        });
    }
    out.join(",")
}

/// 1 + the index of `name` in [`APP_PROTOCOLS`], computed at compile time
/// (a name missing from the table does not compile).
const fn app(name: &str) -> u8 {
    let mut i = 0;
    while i < APP_PROTOCOLS.len() {
        if str_eq(APP_PROTOCOLS[i], name) {
            return i as u8 + 1;
        }
        i += 1;
    }
    panic!("application protocol missing from APP_PROTOCOLS")
}

const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// Every name [`app_protocol`] gives.
const APP_PROTOCOLS: [&str; 13] = [
    "http",
    "ssh",
    "tls",
    "dns",
    "smtp",
    "dhcp",
    "ntp",
    "mdns",
    "llmnr",
    "netbios-ns",
    "snmp",
    "rdp",
    "smb",
];

/// The application protocol, from the payload where it says so, else the port.
/// The application protocol as 1 + its index in [`APP_PROTOCOLS`] (0:
/// unknown): a number, so the flow need not compare names per packet.
fn app_protocol(proto: u8, low: u16, high: u16, payload: &[u8]) -> u8 {
    if proto == 6 && !payload.is_empty() {
        const METHODS: [&[u8]; 9] = [
            b"GET ",
            b"POST ",
            b"HEAD ",
            b"PUT ",
            b"DELETE ",
            b"OPTIONS ",
            b"PATCH ",
            b"CONNECT ",
            b"TRACE ",
        ];
        if payload.starts_with(b"HTTP/1.") || METHODS.iter().any(|m| payload.starts_with(m)) {
            return const { app("http") };
        }
        if payload.starts_with(b"SSH-") {
            return const { app("ssh") };
        }
        if payload.len() > 2 && payload[0] == 0x16 && payload[1] == 3 {
            return const { app("tls") };
        }
    }
    let by_port = |p: u16| match (proto, p) {
        (_, 53) => const { app("dns") },
        (6, 80 | 8080 | 8000) => const { app("http") },
        (6, 443 | 8443) => const { app("tls") },
        (6, 22) => const { app("ssh") },
        (6, 25 | 587) => const { app("smtp") },
        (17, 67 | 68) => const { app("dhcp") },
        (17, 123) => const { app("ntp") },
        (17, 5353) => const { app("mdns") },
        (17, 5355) => const { app("llmnr") },
        (17, 137) => const { app("netbios-ns") },
        (17, 161) => const { app("snmp") },
        (6, 3389) => const { app("rdp") },
        (6, 445) => const { app("smb") },
        _ => 0,
    };
    match by_port(low) {
        0 => by_port(high),
        code => code,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::dissect::dissect;
    use crate::pcap::LinkType;

    const S: i64 = 1_000_000_000;

    /// A raw IPv4 UDP datagram of flow `id` (10.0.x.1:port, x and port
    /// from the id) to 198.18.0.1:53 with `len` payload bytes.
    fn udp(id: u32, len: usize) -> Vec<u8> {
        let mut out = Vec::new();
        etherparse::PacketBuilder::ipv4([10, 0, (id >> 16) as u8, 1], [198, 18, 0, 1], 64)
            .udp(id as u16, 53)
            .write(&mut out, &vec![0u8; len])
            .unwrap();
        out
    }

    /// Feed `(ts, sport, payload len)` frames; returns the table and the
    /// first frames of the flows `finished` saw, in order.
    fn feed(table: &mut FlowTable, frames: &[(i64, u32, usize)]) -> Vec<u64> {
        let mut done = Vec::new();
        for (n, &(ts, sport, len)) in frames.iter().enumerate() {
            let data = udp(sport, len);
            let d = dissect(LinkType::Raw, &data);
            assert!(
                table
                    .add(n as u64 + 1, ts, data.len() as u32, &d, &mut |f| {
                        done.push(f.first_frame)
                    })
                    .is_some()
            );
        }
        done
    }

    #[test]
    fn application_protocol_by_payload_then_by_port() {
        let name = |proto, low, high, payload: &[u8]| {
            let code = app_protocol(proto, low, high, payload);
            (code != 0).then(|| APP_PROTOCOLS[usize::from(code) - 1])
        };
        assert_eq!(name(6, 80, 40000, b"SSH-2.0-OpenSSH"), Some("ssh"));
        assert_eq!(name(6, 4444, 40000, b"GET / HTTP/1.1"), Some("http"));
        assert_eq!(name(6, 4444, 40000, b"\x16\x03\x01\x02"), Some("tls"));
        assert_eq!(name(6, 443, 40000, b""), Some("tls"));
        assert_eq!(name(17, 53, 40000, b""), Some("dns"));
        assert_eq!(name(17, 1234, 5353, b""), Some("mdns"));
        assert_eq!(name(17, 445, 40000, b""), None);
        assert_eq!(name(6, 445, 40000, b""), Some("smb"));
        assert_eq!(name(6, 1234, 40000, b"hello"), None);
    }

    /// The integer ranking picks endpoint `a` exactly as comparing
    /// (IpAddr, port) pairs does, across families, equal addresses and ports.
    #[test]
    fn flow_keys_order_endpoints_as_address_and_port_pairs_do() {
        let addrs: Vec<IpAddr> = [
            "0.0.0.0",
            "10.0.0.1",
            "10.0.0.2",
            "198.18.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::ffff:10.0.0.1",
            "2001:db8::1",
            "ffff::",
        ]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
        for &x in &addrs {
            for &y in &addrs {
                for (xp, yp) in [(0, 0), (80, 443), (443, 80), (65535, 1)] {
                    let (key, x_is_a) = FlowKey::of(6, x, xp, y, yp);
                    assert_eq!(x_is_a, (x, xp) <= (y, yp), "{x}:{xp} {y}:{yp}");
                    let (back, y_is_a) = FlowKey::of(6, y, yp, x, xp);
                    assert_eq!(key, back);
                    assert_eq!(y_is_a, (y, yp) <= (x, xp));
                }
            }
        }
    }

    #[test]
    fn a_flow_fills_two_cache_lines() {
        assert_eq!(std::mem::size_of::<Flow>(), 128);
    }

    #[test]
    fn an_idle_flow_is_finished_and_a_later_packet_opens_a_new_one() {
        let mut t = FlowTable::new(10.0, FlowListing::All, 10);
        // Port 1 goes quiet at 0 s; the sweep runs every 65,536 frames.
        let mut frames = vec![(0, 1, 0)];
        frames.extend((0..(1 << 16)).map(|i| (11 * S + i, 2, 0)));
        frames.push((12 * S, 1, 0));
        let done = feed(&mut t, &frames);
        assert_eq!(done, [1], "only the idle flow finished during the capture");
        let (list, count) = t.finish(&mut |_| {});
        assert_eq!(count.total, 3, "port 1 counted again after going idle");
        let firsts: Vec<u64> = list.iter().map(|f| f.first_frame).collect();
        assert_eq!(firsts, [1, 2, frames.len() as u64]);
    }

    #[test]
    fn a_full_table_finishes_its_least_recently_seen_quarter_first() {
        let mut t = FlowTable::new(600.0, FlowListing::None, 10);
        let n = MAX_ACTIVE_FLOWS as u32;
        // Flows 0..n; flow 0 is seen again last, so it is the most recent;
        // flows 1..=n/4 are then the oldest.
        let mut frames: Vec<(i64, u32, usize)> = (0..n).map(|p| (i64::from(p), p, 0)).collect();
        frames.push((i64::from(n), 0, 0));
        // One more flow does not fit.
        frames.push((i64::from(n) + 1, n, 0));
        let done = feed(&mut t, &frames);
        let expected: Vec<u64> = (2..=u64::from(n / 4) + 1).collect();
        assert_eq!(
            done, expected,
            "flows 1..=n/4 in the order they were last seen"
        );
        assert_eq!(t.evicted, u64::from(n / 4));
        assert_eq!(t.index.len(), MAX_ACTIVE_FLOWS - n as usize / 4 + 1);
        // A packet of an evicted flow opens it again in a reused slot; the
        // flows that stayed are still found.
        let again = feed(
            &mut t,
            &[(i64::from(n) + 2, 1, 0), (i64::from(n) + 3, 0, 0)],
        );
        assert!(again.is_empty());
        let (_, count) = t.finish(&mut |_| {});
        assert_eq!(count.total, u64::from(n) + 2);
        assert_eq!(count.evicted_early, u64::from(n / 4));
    }

    #[test]
    fn the_top_listing_holds_the_largest_flows_whatever_order_they_finish_in() {
        // Sizes that rise and fall, so the lazy trim and its floor are both exercised.
        let sizes: Vec<usize> = (0..200).map(|i| (i * 37) % 101).collect();
        let frames: Vec<(i64, u32, usize)> = sizes
            .iter()
            .enumerate()
            .map(|(i, &len)| (i as i64 * S, i as u32, len))
            .collect();
        // A 1 s idle timeout finishes every flow at the sweep or the end.
        let mut top = FlowTable::new(1.0, FlowListing::Top, 7);
        let mut all = FlowTable::new(1.0, FlowListing::All, 7);
        feed(&mut top, &frames);
        feed(&mut all, &frames);
        let (top, _) = top.finish(&mut |_| {});
        let (mut all, _) = all.finish(&mut |_| {});
        let bytes = |f: &FlowSummary| f.bytes_client_to_server + f.bytes_server_to_client;
        all.sort_by(|a, b| {
            bytes(b)
                .cmp(&bytes(a))
                .then(a.first_frame.cmp(&b.first_frame))
        });
        let want: Vec<u64> = all.iter().take(7).map(|f| f.first_frame).collect();
        let got: Vec<u64> = top.iter().map(|f| f.first_frame).collect();
        assert_eq!(got, want);
    }
}
