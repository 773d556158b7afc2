//! `arp_spoofing`: ARP poisoning (and its IPv6 form through neighbour
//! advertisements) as it shows on the wire.
//!
//! Every ARP request and reply carries its sender's binding (IPv4 address
//! → MAC); a host announces only its own. What poisoning looks like:
//!
//! * `poisoning`: one MAC claims addresses that other MACs claimed before
//!   it, at least `min_conflicting_addresses` of them (the classic
//!   man-in-the-middle: one MAC claiming the gateway's address and the
//!   victim's);
//! * `address_conflict`: an address claimed by more than one MAC (one
//!   address moving between MACs: a poisoner's lone claim, or a duplicate
//!   address; reported only when no `poisoning` finding names that MAC);
//! * `gratuitous_storm`: at least `min_gratuitous` gratuitous ARPs
//!   (sender address = target address) from one MAC within
//!   `window_seconds`, the re-announcements poisoning tools send to keep
//!   caches wrong.
//!
//! ARP probes (sender 0.0.0.0, RFC 5227) claim nothing and are skipped.
//!
//! IP traffic shows bindings too, without any ARP: the Ethernet source of
//! a packet is the host that put it on the link, its own address's or, for
//! a router, every address it forwards. Poisoning moves traffic:
//!
//! * `traffic_moved`: packets from an address arrived through one MAC,
//!   then, from one moment on, through another (the old one falling
//!   silent), and that other MAC belongs to another host (it carried that
//!   host's own address before) or claimed some other address by ARP. The
//!   classic case: a poisoner answers a victim unasked that the gateway is
//!   at its MAC, and the victim's off-subnet traffic, which came through
//!   the router's MAC, now comes through the poisoner's, even when the
//!   gateway never sent an ARP the capture holds. A new device taking over
//!   an address (DHCP, a replaced card) moves one address to a MAC that
//!   carries nothing else, and is no finding.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hashbrown::HashMap;
use serde::{Deserialize, Serialize};

use super::{Anomaly, Severity, Span, push_example};
use crate::analyze::dissect::Addr;
use crate::wire::ethernet::mac_text;

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ArpSpoofingThresholds {
    /// Addresses a MAC must take over from other MACs to be `poisoning`.
    pub min_conflicting_addresses: u64,
    /// Gratuitous ARPs from one MAC within `window_seconds` for a storm.
    pub min_gratuitous: u64,
    pub window_seconds: f64,
}

impl Default for ArpSpoofingThresholds {
    fn default() -> Self {
        ArpSpoofingThresholds {
            // The gateway's address and one victim's.
            min_conflicting_addresses: 2,
            // A host announces itself a handful of times when it comes up
            // (RFC 5227: 2 announcements); tools repeat every second or two.
            min_gratuitous: 20,
            window_seconds: 10.0,
        }
    }
}

/// Addresses tracked; beyond this new addresses are not followed (a
/// capture of a /16's ARP would otherwise grow the table).
const MAX_ADDRESSES: usize = 20_000;
/// MACs remembered per address.
const MAX_MACS: usize = 8;

type Mac = [u8; 6];

struct Claim {
    mac: Mac,
    count: u64,
    first_ns: i64,
}

struct Address {
    /// In the order first seen: the first is the address's owner as far
    /// as the capture knows.
    claims: Vec<Claim>,
    span: Span,
    examples: Vec<u64>,
}

struct Gratuitous {
    /// Times of the recent ones, within the window.
    recent: std::collections::VecDeque<i64>,
    peak: u64,
    total: u64,
    span: Span,
    examples: Vec<u64>,
}

/// One MAC an address's packets came through.
#[derive(Clone, Copy)]
struct Carrier {
    mac: Mac,
    first_ns: i64,
    first_frame: u64,
}

/// The MACs one source address's IP packets came through, and whether
/// they moved from the older ones to the newest.
struct Sender {
    /// The first MAC (its time and frame are never reported), as
    /// [`mac_word`].
    first: u64,
    /// Later ones, in the order first seen (empty, unallocated, for
    /// nearly every address).
    later: Vec<Carrier>,
    /// Packets through the older MACs before the newest appeared, and
    /// through the older and the newest since.
    before: u32,
    old_since: u32,
    new_since: u32,
}

impl Sender {
    fn newest(&self) -> u64 {
        self.later.last().map_or(self.first, |c| mac_word(&c.mac))
    }

    /// The MAC the address's packets moved to, from which, when they did:
    /// enough packets through the old one, then through the new one, and
    /// the old one (nearly) silent since.
    fn moved(&self) -> Option<(Mac, Carrier)> {
        let new = *self.later.last()?;
        let old = match self.later.len() {
            1 => mac_from_word(self.first),
            n => self.later[n - 2].mac,
        };
        (self.before >= MIN_MOVED_PACKETS
            && self.new_since >= MIN_MOVED_PACKETS
            && self.old_since.saturating_mul(10) <= self.new_since)
            .then_some((old, new))
    }
}

/// Source addresses followed through IP traffic: a move is seen on the
/// first ones (all a router forwards move together).
const MAX_SENDERS: usize = 2_048;

/// Packets an address must have sent through its old MAC, and then
/// through its new one, for a move to count.
const MIN_MOVED_PACKETS: u32 = 3;

pub struct ArpSpoofing {
    t: ArpSpoofingThresholds,
    addresses: HashMap<IpAddr, Address>,
    gratuitous: HashMap<Mac, Gratuitous>,
    /// Keyed by the integer form of the address: compared and hashed per
    /// packet.
    senders: HashMap<Addr, Sender>,
    untracked: u64,
}

/// A MAC as one integer: compared per packet without a call to `bcmp`.
fn mac_word(m: &Mac) -> u64 {
    u64::from_be_bytes([0, 0, m[0], m[1], m[2], m[3], m[4], m[5]])
}

fn mac_from_word(w: u64) -> Mac {
    let b = w.to_be_bytes();
    [b[2], b[3], b[4], b[5], b[6], b[7]]
}

impl ArpSpoofing {
    pub fn new(t: ArpSpoofingThresholds) -> ArpSpoofing {
        ArpSpoofing {
            t,
            addresses: HashMap::default(),
            gratuitous: HashMap::default(),
            senders: HashMap::default(),
            untracked: 0,
        }
    }

    /// An IP packet from `src` whose frame came from `mac`.
    #[inline]
    pub fn ip_frame(&mut self, frame: u64, now: i64, src: IpAddr, mac: Mac) {
        let unicast = match src {
            IpAddr::V4(a) => !(a.is_unspecified() || a.is_multicast() || a.is_broadcast()),
            IpAddr::V6(a) => !(a.is_unspecified() || a.is_multicast()),
        };
        if !unicast || mac[0] & 1 != 0 {
            return;
        }
        let carrier = Carrier {
            mac,
            first_ns: now,
            first_frame: frame,
        };
        let word = mac_word(&mac);
        let key = Addr::from(src);
        if let Some(s) = self.senders.get_mut(&key) {
            if s.newest() == word {
                if s.later.is_empty() {
                    s.before = s.before.saturating_add(1);
                } else {
                    s.new_since = s.new_since.saturating_add(1);
                }
            } else if s.first == word || s.later.iter().any(|c| c.mac == mac) {
                s.old_since = s.old_since.saturating_add(1);
            } else if s.later.len() + 1 < MAX_MACS {
                // A newer MAC: what came before it is the old route.
                s.before = s
                    .before
                    .saturating_add(s.old_since)
                    .saturating_add(s.new_since);
                s.old_since = 0;
                s.new_since = 1;
                s.later.push(carrier);
            }
        } else if self.senders.len() < MAX_SENDERS {
            self.senders.insert(
                key,
                Sender {
                    first: word,
                    later: Vec::new(),
                    before: 1,
                    old_since: 0,
                    new_since: 0,
                },
            );
        }
    }

    /// One ARP packet (the bytes from the ARP header on).
    pub fn frame(&mut self, frame: u64, now: i64, arp: &[u8]) {
        // Ethernet/IPv4 ARP only: htype 1, ptype 0x0800, hlen 6, plen 4.
        if arp.len() < 28 || arp[0..6] != [0, 1, 8, 0, 6, 4] {
            return;
        }
        let op = u16::from_be_bytes([arp[6], arp[7]]);
        if op != 1 && op != 2 {
            return;
        }
        let mac: Mac = arp[8..14].try_into().expect("6 bytes");
        let sender = Ipv4Addr::new(arp[14], arp[15], arp[16], arp[17]);
        let target = Ipv4Addr::new(arp[24], arp[25], arp[26], arp[27]);
        if sender.is_unspecified() {
            return;
        }
        self.claim(frame, now, IpAddr::V4(sender), mac, sender == target);
    }

    /// An ICMPv6 neighbour advertisement (type 136: its target address at
    /// the MAC of its target link-layer option) or solicitation (135: its
    /// source at the MAC of its source link-layer option; a duplicate
    /// address detection from :: claims nothing), the message from its
    /// ICMPv6 header on. An unsolicited advertisement to all nodes is the
    /// IPv6 form of a gratuitous ARP.
    pub fn ndp(&mut self, frame: u64, now: i64, src: IpAddr, dst: IpAddr, icmp: &[u8]) {
        let (Some(&kind), Some(target)) = (icmp.first(), icmp.get(8..24)) else {
            return;
        };
        let (ip, want_option) = match kind {
            136 => (
                IpAddr::V6(Ipv6Addr::from(
                    <[u8; 16]>::try_from(target).expect("16 bytes"),
                )),
                2,
            ),
            135 if !src.is_unspecified() => (src, 1),
            _ => return,
        };
        // Options from byte 24: type, length in 8-byte units, data.
        let mut at = 24;
        while let (Some(&ty), Some(&len)) = (icmp.get(at), icmp.get(at + 1)) {
            let len = usize::from(len) * 8;
            if len == 0 {
                return;
            }
            if ty == want_option
                && let Some(m) = icmp.get(at + 2..at + 8)
            {
                let mac: Mac = m.try_into().expect("6 bytes");
                let all_nodes = dst == IpAddr::V6(Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1));
                let solicited = icmp.get(4).is_some_and(|f| f & 0x40 != 0);
                self.claim(frame, now, ip, mac, kind == 136 && all_nodes && !solicited);
                return;
            }
            at += len;
        }
    }

    /// `ip` is at `mac`, as one packet says; `gratuitous` when the host
    /// announces itself unasked.
    fn claim(&mut self, frame: u64, now: i64, sender: IpAddr, mac: Mac, gratuitous: bool) {
        if gratuitous {
            let window = (self.t.window_seconds * 1e9) as i64;
            let g = self.gratuitous.entry(mac).or_insert_with(|| Gratuitous {
                recent: Default::default(),
                peak: 0,
                total: 0,
                span: Span::new(now),
                examples: Vec::new(),
            });
            g.total += 1;
            g.span.add(now);
            push_example(&mut g.examples, frame);
            g.recent.push_back(now);
            while g.recent.front().is_some_and(|&t| t < now - window) {
                g.recent.pop_front();
            }
            g.peak = g.peak.max(g.recent.len() as u64);
        }
        if !self.addresses.contains_key(&sender) && self.addresses.len() >= MAX_ADDRESSES {
            self.untracked += 1;
            return;
        }
        let a = self.addresses.entry(sender).or_insert_with(|| Address {
            claims: Vec::new(),
            span: Span::new(now),
            examples: Vec::new(),
        });
        let known = a.claims.iter().position(|c| c.mac == mac);
        match known {
            Some(i) => a.claims[i].count += 1,
            None if a.claims.len() < MAX_MACS => {
                a.claims.push(Claim {
                    mac,
                    count: 1,
                    first_ns: now,
                });
                if a.claims.len() > 1 {
                    a.span = Span::new(now);
                }
            }
            None => {}
        }
        if a.claims.len() > 1 {
            a.span.add(now);
            push_example(&mut a.examples, frame);
        }
    }

    /// `traffic_moved` findings: addresses whose packets moved to a MAC
    /// that is another host's or claimed other addresses by ARP. Where the
    /// MAC is already a `poisoning` finding's, the move is added to it.
    fn traffic_moves(
        &self,
        out: &mut Vec<Anomaly>,
        poisoners: &[Mac],
        thresholds: &BTreeMap<&'static str, f64>,
    ) {
        let mut moved: BTreeMap<Mac, Vec<(IpAddr, Mac, Carrier)>> = BTreeMap::new();
        for (ip, s) in &self.senders {
            if let Some((old, new)) = s.moved() {
                moved.entry(new.mac).or_default().push((ip.ip(), old, new));
            }
        }
        for (mac, mut list) in moved {
            list.sort_by_key(|(ip, _, _)| *ip);
            let is_moved = |ip: &IpAddr| list.iter().any(|(m, _, _)| m == ip);
            // The MAC's own addresses: first seen through it, never moved.
            let mut own: Vec<IpAddr> = self
                .senders
                .iter()
                .filter(|(_, s)| s.first == mac_word(&mac) && s.later.is_empty())
                .map(|(ip, _)| ip.ip())
                .filter(|ip| !is_moved(ip))
                .collect();
            own.sort();
            // Addresses it claimed by ARP, other than those that moved to it.
            let mut claimed: Vec<IpAddr> = self
                .addresses
                .iter()
                .filter(|(ip, a)| !is_moved(ip) && a.claims.iter().any(|c| c.mac == mac))
                .map(|(ip, _)| *ip)
                .collect();
            claimed.sort();
            if own.is_empty() && claimed.is_empty() {
                continue;
            }
            // The MAC the traffic came through before, the most common one.
            let mut olds: BTreeMap<Mac, usize> = BTreeMap::new();
            for (_, old, _) in &list {
                *olds.entry(*old).or_default() += 1;
            }
            let old_mac = olds
                .iter()
                .max_by_key(|(m, n)| (**n, std::cmp::Reverse(**m)))
                .map(|(m, _)| *m)
                .unwrap_or(mac);
            let mut span = Span::new(list[0].2.first_ns);
            let mut frames: Vec<u64> = Vec::new();
            for (_, _, new) in &list {
                span.add(new.first_ns);
                frames.push(new.first_frame);
            }
            frames.sort_unstable();
            frames.truncate(super::EXAMPLES);
            let names = |v: &[IpAddr]| {
                let mut t: Vec<String> = v.iter().take(5).map(|ip| ip.to_string()).collect();
                if v.len() > 5 {
                    t.push(format!("{} more", v.len() - 5));
                }
                t.join(", ")
            };
            let whose = if claimed.is_empty() {
                format!("the MAC of {}", names(&own))
            } else {
                format!("a MAC that claimed {} by ARP", names(&claimed))
            };
            let moved_ips: Vec<IpAddr> = list.iter().map(|(ip, _, _)| *ip).collect();
            let note = format!(
                "packets from {} came through {} and, from {}, through {} ({whose})",
                names(&moved_ips),
                mac_text(&old_mac),
                super::ts(span.first),
                mac_text(&mac),
            );
            if poisoners.contains(&mac)
                && let Some(p) = out.iter_mut().find(|a| {
                    a.subtype == Some("poisoning")
                        && a.note
                            .as_deref()
                            .is_some_and(|n| n.starts_with(&format!("MAC {} ", mac_text(&mac))))
                })
            {
                p.evidence
                    .insert("addresses_whose_traffic_moved", list.len() as f64);
                p.note = Some(format!("{}; {note}", p.note.clone().unwrap_or_default()));
                continue;
            }
            out.push(Anomaly {
                evidence: BTreeMap::from([
                    ("addresses_whose_traffic_moved", list.len() as f64),
                    ("arp_claims_of_other_addresses", claimed.len() as f64),
                    ("own_addresses", own.len() as f64),
                ]),
                thresholds: thresholds.clone(),
                sources: super::addrs(&moved_ips),
                note: Some(note),
                ..Anomaly::new(
                    "arp_spoofing",
                    Some("traffic_moved"),
                    if claimed.is_empty() {
                        Severity::Medium
                    } else {
                        Severity::High
                    },
                    format!(
                        "traffic from {} address{} moved from MAC {} to MAC {}, {whose}: a man in the middle",
                        list.len(),
                        if list.len() == 1 { "" } else { "es" },
                        mac_text(&old_mac),
                        mac_text(&mac),
                    ),
                    span,
                    frames,
                )
            });
        }
    }

    pub fn finish(self) -> Vec<Anomaly> {
        let th = &self.t;
        let thresholds = BTreeMap::from([
            (
                "min_conflicting_addresses",
                th.min_conflicting_addresses as f64,
            ),
            ("min_gratuitous", th.min_gratuitous as f64),
            ("window_seconds", th.window_seconds),
        ]);
        let mut out = Vec::new();
        // Per MAC, the addresses it took over from an earlier claimant.
        let mut taken: BTreeMap<Mac, Vec<(IpAddr, &Address)>> = BTreeMap::new();
        let mut conflicts: Vec<(IpAddr, &Address)> = Vec::new();
        for (ip, a) in &self.addresses {
            if a.claims.len() < 2 {
                continue;
            }
            conflicts.push((*ip, a));
            for c in &a.claims[1..] {
                taken.entry(c.mac).or_default().push((*ip, a));
            }
        }
        let mut poisoners = Vec::new();
        for (mac, mut addrs) in taken {
            if (addrs.len() as u64) < th.min_conflicting_addresses {
                continue;
            }
            poisoners.push(mac);
            addrs.sort_by_key(|(ip, _)| *ip);
            let mut span = addrs[0].1.span;
            let mut examples = Vec::new();
            let mut claims = 0;
            let owners: Vec<String> = addrs
                .iter()
                .map(|(ip, a)| {
                    span.add(a.span.first);
                    span.add(a.span.last);
                    for e in &a.examples {
                        push_example(&mut examples, *e);
                    }
                    claims += a
                        .claims
                        .iter()
                        .find(|c| c.mac == mac)
                        .map_or(0, |c| c.count);
                    format!("{ip} (was {})", mac_text(&a.claims[0].mac))
                })
                .collect();
            examples.sort_unstable();
            out.push(Anomaly {
                evidence: BTreeMap::from([
                    ("addresses_taken_over", addrs.len() as f64),
                    ("claims", claims as f64),
                ]),
                thresholds: thresholds.clone(),
                sources: addrs.iter().map(|(ip, _)| ip.to_string()).collect(),
                note: Some(format!(
                    "MAC {} claims {}",
                    mac_text(&mac),
                    owners.join(", ")
                )),
                ..Anomaly::new(
                    "arp_spoofing",
                    Some("poisoning"),
                    Severity::High,
                    format!(
                        "ARP poisoning: MAC {} claims {} addresses other MACs held ({})",
                        mac_text(&mac),
                        addrs.len(),
                        addrs
                            .iter()
                            .map(|(ip, _)| ip.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    span,
                    examples,
                )
            });
        }
        conflicts.sort_by_key(|(ip, _)| *ip);
        for (ip, a) in conflicts {
            if a.claims[1..].iter().any(|c| poisoners.contains(&c.mac)) {
                continue;
            }
            let macs: Vec<String> = a
                .claims
                .iter()
                .map(|c| format!("{} ({} claims)", mac_text(&c.mac), c.count))
                .collect();
            let moved_at = a.claims[1].first_ns;
            out.push(Anomaly {
                evidence: BTreeMap::from([
                    ("macs", a.claims.len() as f64),
                    (
                        "claims",
                        a.claims.iter().map(|c| c.count).sum::<u64>() as f64,
                    ),
                ]),
                thresholds: thresholds.clone(),
                sources: vec![ip.to_string()],
                note: Some(format!("claimed by {}", macs.join(", "))),
                ..Anomaly::new(
                    "arp_spoofing",
                    Some("address_conflict"),
                    Severity::Medium,
                    format!(
                        "{ip} is claimed by {} MACs: it moved from {} to {} at {}",
                        a.claims.len(),
                        mac_text(&a.claims[0].mac),
                        mac_text(&a.claims[1].mac),
                        super::ts(moved_at)
                    ),
                    a.span,
                    a.examples.clone(),
                )
            });
        }
        self.traffic_moves(&mut out, &poisoners, &thresholds);
        let mut storms: Vec<(&Mac, &Gratuitous)> = self
            .gratuitous
            .iter()
            .filter(|(_, g)| g.peak >= th.min_gratuitous)
            .collect();
        storms.sort_by_key(|(m, _)| **m);
        for (mac, g) in storms {
            out.push(Anomaly {
                evidence: BTreeMap::from([
                    ("gratuitous_arps", g.total as f64),
                    ("peak_in_window", g.peak as f64),
                ]),
                thresholds: thresholds.clone(),
                note: Some(format!("MAC {}", mac_text(mac))),
                ..Anomaly::new(
                    "arp_spoofing",
                    Some("gratuitous_storm"),
                    Severity::Medium,
                    format!(
                        "{} gratuitous ARPs from MAC {} ({} within {} s)",
                        g.total,
                        mac_text(mac),
                        g.peak,
                        th.window_seconds
                    ),
                    g.span,
                    g.examples.clone(),
                )
            });
        }
        super::note_untracked(
            &mut out,
            self.untracked,
            format_args!("ARP packets about addresses beyond the first {MAX_ADDRESSES}"),
        );
        out
    }
}
