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

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hashbrown::HashMap;
use serde::{Deserialize, Serialize};

use super::{Anomaly, Severity, Span, push_example};

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

pub struct ArpSpoofing {
    t: ArpSpoofingThresholds,
    addresses: HashMap<IpAddr, Address>,
    gratuitous: HashMap<Mac, Gratuitous>,
    untracked: u64,
}

fn mac_text(m: &Mac) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

impl ArpSpoofing {
    pub fn new(t: ArpSpoofingThresholds) -> ArpSpoofing {
        ArpSpoofing {
            t,
            addresses: HashMap::default(),
            gratuitous: HashMap::default(),
            untracked: 0,
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
        if self.untracked > 0
            && let Some(first) = out.first_mut()
        {
            first.note = Some(format!(
                "{}; {} ARP packets about addresses beyond the first {MAX_ADDRESSES} were not followed",
                first.note.clone().unwrap_or_default(),
                self.untracked
            ));
        }
        out
    }
}
