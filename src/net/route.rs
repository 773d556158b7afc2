//! Where a probe goes on the wire: the kernel's own route for a target
//! (RTM_GETROUTE, as `ip route get` asks it, so policy routing and metrics
//! count) and the next hop's MAC from the kernel's neighbour table
//! (RTM_GETNEIGH). Reading these tables sends nothing.
//!
//! The kernel's neighbour table is the warm start: the scan asks for the
//! rest itself (`scan::neighbours`, ARP and neighbour solicitations under
//! the gate) and teaches its [`RouteCache`] the answers. A next hop still
//! unknown is an error naming it. Wrong next-hop MACs are masscan's and
//! zmap's most reported bug; on-link targets use their own MAC, routed ones
//! the gateway's.

use std::net::IpAddr;

use netlink_packet_core::{
    NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

/// How to reach one target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NextHop {
    pub target: IpAddr,
    pub ifindex: u32,
    /// The source address the kernel would use.
    pub source: IpAddr,
    /// The gateway, for a routed target; `None` when the target is on-link.
    pub gateway: Option<IpAddr>,
    pub source_mac: [u8; 6],
    pub next_hop_mac: [u8; 6],
}

/// Why a target cannot be reached from here.
#[derive(Debug)]
pub enum RouteError {
    Netlink(std::io::Error),
    NoRoute {
        target: IpAddr,
        reason: String,
    },
    NeighbourUnknown {
        target: IpAddr,
        next_hop: IpAddr,
        ifname: String,
    },
    Interface {
        ifindex: u32,
        reason: String,
    },
}

impl std::fmt::Display for RouteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RouteError::Netlink(e) => write!(f, "cannot read the kernel's routing tables: {e}"),
            RouteError::NoRoute { target, reason } => write!(f, "no route to {target}: {reason}"),
            RouteError::NeighbourUnknown {
                target,
                next_hop,
                ifname,
            } => write!(
                f,
                "the MAC address of {next_hop} (next hop to {target} on {ifname}) is not in the neighbour table; \
                 it answered no ARP request or neighbour solicitation, or the scope does not cover it (a gateway outside the scope is not asked: ping {next_hop} to let the system resolve it)"
            ),
            RouteError::Interface { ifindex, reason } => write!(f, "interface {ifindex}: {reason}"),
        }
    }
}

impl std::error::Error for RouteError {}

fn socket() -> Result<Socket, RouteError> {
    let mut s = Socket::new(NETLINK_ROUTE).map_err(RouteError::Netlink)?;
    s.bind_auto().map_err(RouteError::Netlink)?;
    s.connect(&SocketAddr::new(0, 0))
        .map_err(RouteError::Netlink)?;
    Ok(s)
}

/// Send one request and collect the inner messages of the reply (up to Done
/// for a dump, or the single answer otherwise).
fn ask(request: RouteNetlinkMessage, flags: u16) -> Result<Vec<RouteNetlinkMessage>, RouteError> {
    let s = socket()?;
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    let mut req = NetlinkMessage::new(header, NetlinkPayload::from(request));
    req.finalize();
    let mut buf = vec![0; req.header.length as usize];
    req.serialize(&mut buf[..]);
    s.send(&buf, 0).map_err(RouteError::Netlink)?;
    let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
    let mut out = Vec::new();
    let mut rx = vec![0u8; 1 << 16];
    loop {
        let n = s.recv(&mut &mut rx[..], 0).map_err(RouteError::Netlink)?;
        let mut at = 0;
        while at < n {
            let msg: NetlinkMessage<RouteNetlinkMessage> = NetlinkMessage::deserialize(&rx[at..n])
                .map_err(|e| RouteError::Netlink(std::io::Error::other(e.to_string())))?;
            let len = msg.header.length as usize;
            match msg.payload {
                NetlinkPayload::Done(_) => return Ok(out),
                NetlinkPayload::Error(e) => {
                    return Err(RouteError::Netlink(e.to_io()));
                }
                NetlinkPayload::InnerMessage(m) => {
                    out.push(m);
                    if !dump {
                        return Ok(out);
                    }
                }
                _ => {}
            }
            if len == 0 {
                break;
            }
            at += len;
        }
    }
}

/// The kernel's route to `target`: outgoing interface, gateway and source.
pub fn route_to(target: IpAddr) -> Result<(u32, Option<IpAddr>, IpAddr), RouteError> {
    let mut msg = RouteMessage::default();
    let (family, bits, dst) = match target {
        IpAddr::V4(a) => (AddressFamily::Inet, 32, RouteAddress::Inet(a)),
        IpAddr::V6(a) => (AddressFamily::Inet6, 128, RouteAddress::Inet6(a)),
    };
    msg.header.address_family = family;
    msg.header.destination_prefix_length = bits;
    msg.attributes.push(RouteAttribute::Destination(dst));
    let reply = ask(RouteNetlinkMessage::GetRoute(msg), NLM_F_REQUEST).map_err(|e| match e {
        RouteError::Netlink(io) => RouteError::NoRoute {
            target,
            reason: io.to_string(),
        },
        other => other,
    })?;
    let Some(RouteNetlinkMessage::NewRoute(route)) = reply.into_iter().next() else {
        return Err(RouteError::NoRoute {
            target,
            reason: "the kernel sent no route".into(),
        });
    };
    let (mut oif, mut gateway, mut source) = (None, None, None);
    for a in route.attributes {
        match a {
            RouteAttribute::Oif(i) => oif = Some(i),
            RouteAttribute::Gateway(g) => gateway = addr(g),
            RouteAttribute::PrefSource(s) => source = addr(s),
            _ => {}
        }
    }
    let oif = oif.ok_or_else(|| RouteError::NoRoute {
        target,
        reason: "the route has no outgoing interface (unreachable, blackhole or local?)".into(),
    })?;
    let source = source.ok_or_else(|| RouteError::NoRoute {
        target,
        reason: "the route has no source address".into(),
    })?;
    Ok((oif, gateway, source))
}

/// The index of the interface named `name` in this network namespace.
pub fn interface_index(name: &str) -> Option<u32> {
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: c is a valid NUL-terminated string for the call's duration.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (i != 0).then_some(i)
}

/// Every address this host owns, as the kernel's local routing table says:
/// interface addresses, 127.0.0.0/8 and AnyIP blocks (`ip route add local
/// BLOCK dev lo`), IPv4 and IPv6. The gate lets packets carry these as
/// their source; replies to them come back here.
pub fn local_addresses() -> Result<crate::targets::IpSet, RouteError> {
    use netlink_packet_route::route::RouteType;
    let mut ranges = Vec::new();
    for family in [AddressFamily::Inet, AddressFamily::Inet6] {
        let mut msg = RouteMessage::default();
        msg.header.address_family = family;
        for m in ask(
            RouteNetlinkMessage::GetRoute(msg),
            NLM_F_DUMP | NLM_F_REQUEST,
        )? {
            let RouteNetlinkMessage::NewRoute(r) = m else {
                continue;
            };
            if r.header.kind != RouteType::Local {
                continue;
            }
            let prefix = r.header.destination_prefix_length;
            for a in &r.attributes {
                if let RouteAttribute::Destination(d) = a
                    && let Some(ip) = addr(d.clone())
                    && let Ok(range) = crate::targets::AddrRange::cidr(ip, prefix)
                {
                    ranges.push(range);
                }
            }
        }
    }
    Ok(ranges.into_iter().collect())
}

fn addr(a: RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v) => Some(IpAddr::V4(v)),
        RouteAddress::Inet6(v) => Some(IpAddr::V6(v)),
        _ => None,
    }
}

/// One usable entry of the kernel's neighbour table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Neighbour {
    pub ifindex: u32,
    pub ip: IpAddr,
    pub mac: [u8; 6],
}

/// Every neighbour entry with a usable MAC (reachable, stale, delay, probe,
/// permanent); incomplete and failed ones are left out.
pub fn neighbours() -> Result<Vec<Neighbour>, RouteError> {
    let mut out = Vec::new();
    for m in ask(
        RouteNetlinkMessage::GetNeighbour(NeighbourMessage::default()),
        NLM_F_DUMP | NLM_F_REQUEST,
    )? {
        let RouteNetlinkMessage::NewNeighbour(n) = m else {
            continue;
        };
        let usable = matches!(
            n.header.state,
            NeighbourState::Reachable
                | NeighbourState::Stale
                | NeighbourState::Delay
                | NeighbourState::Probe
                | NeighbourState::Permanent
        );
        if !usable {
            continue;
        }
        let (mut ip, mut mac) = (None, None);
        for a in n.attributes {
            match a {
                NeighbourAttribute::Destination(NeighbourAddress::Inet(v)) => {
                    ip = Some(IpAddr::V4(v))
                }
                NeighbourAttribute::Destination(NeighbourAddress::Inet6(v)) => {
                    ip = Some(IpAddr::V6(v))
                }
                NeighbourAttribute::LinkLayerAddress(l) if l.len() == 6 => {
                    mac = Some([l[0], l[1], l[2], l[3], l[4], l[5]])
                }
                _ => {}
            }
        }
        if let (Some(ip), Some(mac)) = (ip, mac) {
            out.push(Neighbour {
                ifindex: n.header.ifindex,
                ip,
                mac,
            });
        }
    }
    Ok(out)
}

/// An interface's name and MAC address (RTM_GETLINK: right in any network
/// namespace, unlike /sys, which shows the namespace it was mounted in).
pub fn interface(ifindex: u32) -> Result<(String, [u8; 6]), RouteError> {
    link(ifindex).map(|l| (l.name, l.mac))
}

/// What the scanner needs to know of an interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub name: String,
    pub mac: [u8; 6],
    /// Next hops on it have MAC addresses to resolve (ARP/NDP): false for
    /// loopback and NOARP links, where frames carry any MAC.
    pub resolves_neighbours: bool,
}

/// An interface's name, MAC address and whether it resolves neighbours.
pub fn link(ifindex: u32) -> Result<Link, RouteError> {
    use netlink_packet_route::link::LinkFlags;
    use netlink_packet_route::link::{LinkAttribute, LinkMessage};
    let mut msg = LinkMessage::default();
    msg.header.index = ifindex;
    let reply = ask(RouteNetlinkMessage::GetLink(msg), NLM_F_REQUEST).map_err(|e| {
        RouteError::Interface {
            ifindex,
            reason: e.to_string(),
        }
    })?;
    let Some(RouteNetlinkMessage::NewLink(link)) = reply.into_iter().next() else {
        return Err(RouteError::Interface {
            ifindex,
            reason: "the kernel does not know it".into(),
        });
    };
    let (mut name, mut mac) = (None, None);
    for a in &link.attributes {
        match a {
            LinkAttribute::IfName(n) => name = Some(n.clone()),
            LinkAttribute::Address(a) if a.len() == 6 => {
                mac = Some([a[0], a[1], a[2], a[3], a[4], a[5]])
            }
            _ => {}
        }
    }
    let name = name.unwrap_or_else(|| format!("if{ifindex}"));
    let mac = mac.ok_or_else(|| RouteError::Interface {
        ifindex,
        reason: format!("{name} has no Ethernet address (loopback or a tunnel?)"),
    })?;
    let flags = link.header.flags;
    Ok(Link {
        name,
        mac,
        resolves_neighbours: !flags.contains(LinkFlags::Loopback)
            && !flags.contains(LinkFlags::Noarp),
    })
}

/// Everything needed to put a frame for `target` on the wire.
pub fn resolve(target: IpAddr, neighbours: &[Neighbour]) -> Result<NextHop, RouteError> {
    let (ifindex, gateway, source) = route_to(target)?;
    let (ifname, source_mac) = interface(ifindex)?;
    let next_hop = gateway.unwrap_or(target);
    let next_hop_mac = neighbours
        .iter()
        .find(|n| n.ifindex == ifindex && n.ip == next_hop)
        .map(|n| n.mac)
        .ok_or(RouteError::NeighbourUnknown {
            target,
            next_hop,
            ifname,
        })?;
    Ok(NextHop {
        target,
        ifindex,
        source,
        gateway,
        source_mac,
        next_hop_mac,
    })
}

/// The kernel's routing decisions for a whole scan, one netlink question per
/// route instead of per target.
///
/// Why caching per route is exact: every target whose longest matching
/// prefix, over the routes of *all* tables, is the same prefix P matches the
/// same set of routes in every table (a route holding one of them and not the
/// other would be longer than P), so the kernel decides the same interface,
/// gateway and IPv4 source for all of them. The cache therefore asks the
/// kernel (`route_to`) for the first target under each P and reuses the
/// answer. Two things break that argument and switch the cache to one
/// question per target: policy rules other than the default
/// local/main/default lookups (they may select by source, mark, port or a
/// destination prefix), and IPv6, whose source address selection (RFC 6724)
/// depends on the destination itself. The neighbour table is read once.
pub struct RouteCache {
    /// Every route prefix in every table: (is IPv4, network bits, length).
    prefixes: Vec<(bool, u128, u8)>,
    /// Ask the kernel for every target: policy routing is in use.
    per_target: bool,
    decided: std::collections::HashMap<(bool, u128, u8), Decision>,
    /// Per-address answers where prefixes cannot be cached (IPv6, policy
    /// routing): a scan asks once per address, not once per probe (every
    /// port of an address has the same route). Cleared when full.
    per_address: std::collections::HashMap<IpAddr, Decision>,
    interfaces: std::collections::HashMap<u32, Link>,
    /// The kernel's neighbour table at load, then what the scan learns itself.
    neighbours: std::collections::HashMap<(u32, IpAddr), [u8; 6]>,
    /// Questions put to the kernel (for tests and the report).
    pub kernel_lookups: u64,
    /// A fixed table ([`RouteCache::fixed`]): nothing is asked of the kernel.
    fixed: bool,
}

type Decision = (u32, Option<IpAddr>, IpAddr);

/// Per-address route answers kept at most (about 4 MB).
const MAX_PER_ADDRESS: usize = 1 << 16;

fn bits(a: IpAddr) -> (bool, u128) {
    match a {
        IpAddr::V4(v) => (true, u128::from(u32::from(v))),
        IpAddr::V6(v) => (false, u128::from(v)),
    }
}

impl RouteCache {
    /// Read the route, rule and neighbour tables.
    pub fn load() -> Result<RouteCache, RouteError> {
        use netlink_packet_route::rule::{RuleAttribute, RuleMessage};
        let mut prefixes = Vec::new();
        let mut per_target = false;
        for m in ask(
            RouteNetlinkMessage::GetRoute(RouteMessage::default()),
            NLM_F_DUMP | NLM_F_REQUEST,
        )? {
            let RouteNetlinkMessage::NewRoute(r) = m else {
                continue;
            };
            // Source-specific routes (IPv6 "from") depend on more than the target.
            if r.header.source_prefix_length != 0 {
                per_target = true;
            }
            let len = r.header.destination_prefix_length;
            let dst = r.attributes.iter().find_map(|a| match a {
                RouteAttribute::Destination(d) => addr(d.clone()),
                _ => None,
            });
            let (v4, net) = match (dst, r.header.address_family) {
                (Some(d), _) => bits(d),
                (None, AddressFamily::Inet) => (true, 0),
                (None, AddressFamily::Inet6) => (false, 0),
                _ => continue,
            };
            prefixes.push((v4, net, len));
        }
        for m in ask(
            RouteNetlinkMessage::GetRule(RuleMessage::default()),
            NLM_F_DUMP | NLM_F_REQUEST,
        )? {
            let RouteNetlinkMessage::NewRule(r) = m else {
                continue;
            };
            // Multicast routing families have rules of their own.
            if !matches!(r.header.family, AddressFamily::Inet | AddressFamily::Inet6) {
                continue;
            }
            let table = r
                .attributes
                .iter()
                .find_map(|a| match a {
                    RuleAttribute::Table(t) => Some(*t),
                    _ => None,
                })
                .unwrap_or(u32::from(r.header.table));
            let selects = r.header.action != netlink_packet_route::rule::RuleAction::ToTable
                || r.header.dst_len != 0
                || r.header.src_len != 0
                || r.header.tos != 0
                || r.attributes.iter().any(|a| {
                    !matches!(
                        a,
                        RuleAttribute::Table(_)
                            | RuleAttribute::Priority(_)
                            | RuleAttribute::Protocol(_)
                            // u32::MAX: "not set"
                            | RuleAttribute::SuppressPrefixLen(u32::MAX)
                            | RuleAttribute::SuppressIfGroup(u32::MAX)
                    )
                });
            if selects || !(253..=255).contains(&table) {
                per_target = true;
            }
        }
        let neighbours = neighbours()?
            .into_iter()
            .map(|n| ((n.ifindex, n.ip), n.mac))
            .collect();
        Ok(RouteCache {
            prefixes,
            per_target,
            decided: Default::default(),
            per_address: Default::default(),
            interfaces: Default::default(),
            neighbours,
            kernel_lookups: 0,
            fixed: false,
        })
    }

    /// A fixed table instead of the kernel's, for a simulated network (the
    /// scan engine's tests without root): each route as (network, prefix
    /// length, interface, gateway, source), the interfaces, the neighbours
    /// known. Nothing is asked of the kernel; an address no route covers
    /// has none.
    pub fn fixed(
        routes: &[(IpAddr, u8, u32, Option<IpAddr>, IpAddr)],
        links: Vec<(u32, Link)>,
        neighbours: &[(u32, IpAddr, [u8; 6])],
    ) -> RouteCache {
        let mut prefixes = Vec::new();
        let mut decided = std::collections::HashMap::new();
        for &(net, len, ifindex, gateway, source) in routes {
            let (v4, bits) = bits(net);
            prefixes.push((v4, bits, len));
            decided.insert((v4, bits, len), (ifindex, gateway, source));
        }
        RouteCache {
            prefixes,
            per_target: false,
            decided,
            per_address: Default::default(),
            interfaces: links.into_iter().collect(),
            neighbours: neighbours
                .iter()
                .map(|&(i, ip, mac)| ((i, ip), mac))
                .collect(),
            kernel_lookups: 0,
            fixed: true,
        }
    }

    /// Whether every target is looked up on its own (policy routing).
    pub fn per_target(&self) -> bool {
        self.per_target
    }

    /// The longest route prefix holding `target`, the cache key.
    fn key(&self, target: IpAddr) -> (bool, u128, u8) {
        let (v4, t) = bits(target);
        let width: u32 = if v4 { 32 } else { 128 };
        let mut best = (v4, 0, 0);
        let mut found = false;
        for &(pv4, net, len) in &self.prefixes {
            if pv4 != v4 || u32::from(len) > width || (found && len <= best.2) {
                continue;
            }
            let shift = width - u32::from(len);
            let matches = len == 0 || (t >> shift) == (net >> shift);
            if matches {
                best = (v4, net, len);
                found = true;
            }
        }
        best
    }

    /// `range` cut where some route prefix starts or ends inside it: every
    /// part has one longest matching prefix, so one route question per
    /// part tells where all of its addresses go (exact without policy
    /// routing; with it, or for IPv6's source selection, each address is
    /// still routed on its own when its probe is sent).
    pub fn split_at_prefixes(
        &self,
        range: crate::targets::AddrRange,
    ) -> Vec<crate::targets::AddrRange> {
        let v4 = range.family() == crate::targets::Family::V4;
        let width: u32 = if v4 { 32 } else { 128 };
        let (lo, hi) = (range.start_value(), range.end_value());
        let mut cuts: Vec<u128> = Vec::new();
        for &(pv4, net, len) in &self.prefixes {
            if pv4 != v4 || u32::from(len) > width || len == 0 {
                continue;
            }
            let size = 1u128 << (width - u32::from(len)).min(127);
            let start = net & !(size - 1);
            let end = start.saturating_add(size - 1);
            if start > lo && start <= hi {
                cuts.push(start);
            }
            if end >= lo && end < hi {
                cuts.push(end + 1);
            }
        }
        cuts.sort_unstable();
        cuts.dedup();
        let family = range.family();
        let mut parts = Vec::with_capacity(cuts.len() + 1);
        let mut from = lo;
        for c in cuts {
            parts.push((from, c - 1));
            from = c;
        }
        parts.push((from, hi));
        parts
            .into_iter()
            .filter_map(|(a, b)| {
                crate::targets::AddrRange::new(family.addr(a), family.addr(b)).ok()
            })
            .collect()
    }

    /// The kernel's interface, gateway and source for `target`.
    pub fn route(&mut self, target: IpAddr) -> Result<Decision, RouteError> {
        if self.fixed {
            return self.decided.get(&self.key(target)).copied().ok_or_else(|| {
                RouteError::NoRoute {
                    target,
                    reason: "no route in the fixed table".into(),
                }
            });
        }
        if self.per_target || target.is_ipv6() {
            if let Some(d) = self.per_address.get(&target) {
                return Ok(*d);
            }
            self.kernel_lookups += 1;
            let d = route_to(target)?;
            if self.per_address.len() >= MAX_PER_ADDRESS {
                self.per_address.clear();
            }
            self.per_address.insert(target, d);
            return Ok(d);
        }
        let key = self.key(target);
        if let Some(d) = self.decided.get(&key) {
            return Ok(*d);
        }
        self.kernel_lookups += 1;
        let d = route_to(target)?;
        self.decided.insert(key, d);
        Ok(d)
    }

    /// The interface `ifindex`, read once.
    pub fn link(&mut self, ifindex: u32) -> Result<&Link, RouteError> {
        if self.fixed && !self.interfaces.contains_key(&ifindex) {
            return Err(RouteError::Interface {
                ifindex,
                reason: "not in the fixed table".into(),
            });
        }
        if let std::collections::hash_map::Entry::Vacant(e) = self.interfaces.entry(ifindex) {
            e.insert(link(ifindex)?);
        }
        Ok(&self.interfaces[&ifindex])
    }

    /// Where a frame for `target` goes first: the interface, the next hop
    /// (the gateway, or the target itself on its link) and the source.
    pub fn next_hop(&mut self, target: IpAddr) -> Result<(u32, IpAddr, IpAddr), RouteError> {
        let (ifindex, gateway, source) = self.route(target)?;
        Ok((ifindex, gateway.unwrap_or(target), source))
    }

    /// The MAC of `next_hop` on `ifindex`, if it is known (the kernel's
    /// table at load, or [`RouteCache::learn`]); the zero address on links
    /// that resolve no neighbours (loopback).
    pub fn neighbour_mac(
        &mut self,
        ifindex: u32,
        next_hop: IpAddr,
    ) -> Result<Option<[u8; 6]>, RouteError> {
        if !self.link(ifindex)?.resolves_neighbours {
            return Ok(Some([0; 6]));
        }
        Ok(self.neighbours.get(&(ifindex, next_hop)).copied())
    }

    /// Remember `ip`'s MAC on `ifindex`, learned from its ARP reply or
    /// neighbour advertisement.
    pub fn learn(&mut self, ifindex: u32, ip: IpAddr, mac: [u8; 6]) {
        self.neighbours.insert((ifindex, ip), mac);
    }

    /// Everything needed to put a frame for `target` on the wire. A next
    /// hop whose MAC is unknown is an error naming it (built from cached
    /// names: no kernel question per target).
    pub fn resolve(&mut self, target: IpAddr) -> Result<NextHop, RouteError> {
        let (ifindex, gateway, source) = self.route(target)?;
        let next_hop = gateway.unwrap_or(target);
        let source_mac = self.link(ifindex)?.mac;
        let Some(next_hop_mac) = self.neighbour_mac(ifindex, next_hop)? else {
            return Err(RouteError::NeighbourUnknown {
                target,
                next_hop,
                ifname: self.link(ifindex)?.name.clone(),
            });
        };
        Ok(NextHop {
            target,
            ifindex,
            source,
            gateway,
            source_mac,
            next_hop_mac,
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn macs() {
        assert_eq!(
            crate::wire::ethernet::parse_mac("02:00:5e:10:ff:0a"),
            Some([2, 0, 0x5e, 0x10, 0xff, 0x0a])
        );
        assert_eq!(crate::wire::ethernet::parse_mac("02:00:5e:10:ff"), None);
        assert_eq!(crate::wire::ethernet::parse_mac("zz:00:5e:10:ff:0a"), None);
    }
}
