//! The scan's own neighbour discovery, before the first probe.
//!
//! Every target's next hop (the target itself on a directly connected link,
//! else its gateway) needs a MAC address before a frame can be built. The
//! kernel's neighbour table is only a warm start: for the rest sonde sends
//! ARP requests and neighbour solicitations itself, each under a permit for
//! the address it asks about, paced by the same gate, in up to three rounds
//! ([`ROUND_WAITS`]). The receive thread hands the answers over. A target
//! that never answers is down (`no-arp-reply`, `no-nd-reply`) and gets no
//! probe; nothing ever waits in the kernel's neighbour queue.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::ScanError;
use crate::net::link::ProbeSender;
use crate::net::route::{RouteCache, RouteError};
use crate::probe::neighbour;
use crate::scope::ScopeGate;
use crate::targets::IpSet;

/// How long each round waits for answers after its last request (the same
/// rounds as `craft`'s single next hop), at most: once an answer has come,
/// a round waits [`ADAPTIVE_FACTOR`] times the slowest answer seen so far
/// (at least [`MIN_ROUND_WAIT`]), as nmap's timeouts follow the round
/// trips it measures. On a LAN, where answers come within a millisecond or
/// two (read every 5 ms here), the three rounds take about 0.12 s, not
/// 0.85; [`TIMING_SAMPLES`] known neighbours asked in the first round show
/// the round trip even when every address asked for is absent.
pub use crate::net::link::ROUND_WAITS;

/// Later rounds wait this many times the slowest answer seen.
pub const ADAPTIVE_FACTOR: u32 = 8;

/// The shortest a round waits once the link's round trip is known.
pub const MIN_ROUND_WAIT: Duration = Duration::from_millis(40);

/// Next hops the kernel knows that the first round asks too, to measure
/// the link's round trip.
pub const TIMING_SAMPLES: usize = 8;

/// Answers the receive threads have seen, (address, MAC), as they hand
/// them over.
pub(super) type Answers = std::sync::mpsc::Receiver<(IpAddr, [u8; 6])>;

/// What discovery found.
#[derive(Clone, Debug, Default)]
pub struct Discovery {
    /// Next hops whose MAC sonde asked for itself.
    pub asked: u64,
    /// Of those, the ones that answered.
    pub answered: u64,
    /// Requests sent (every round).
    pub requests_sent: u64,
    /// Targets that answered no ARP request: down, not probed.
    pub no_arp_reply: IpSet,
    /// Targets that answered no neighbour solicitation: down, not probed.
    pub no_nd_reply: IpSet,
    /// What was learned: (interface, address, MAC).
    pub learned: Vec<(u32, IpAddr, [u8; 6])>,
}

impl Discovery {
    /// Whether `target` is down (answered no request).
    pub fn is_down(&self, target: IpAddr) -> bool {
        self.no_arp_reply.contains(target) || self.no_nd_reply.contains(target)
    }
}

/// Find the MAC of every next hop of `targets` that `routes` does not know,
/// learning each answer into `routes`. `source` overrides the route's
/// source address (it must be ours or a spoofed source the scope allows).
#[allow(clippy::too_many_arguments)]
pub(super) fn discover(
    targets: &IpSet,
    routes: &mut RouteCache,
    gate: &ScopeGate,
    sender: &mut dyn ProbeSender,
    answers: &Answers,
    stop: &AtomicBool,
    source: Option<IpAddr>,
) -> Result<Discovery, ScanError> {
    // The next hops to ask for: address -> (interface, our source, is a
    // gateway). A gateway is asked for once, whatever number of targets lie
    // behind it.
    let mut pending: HashMap<IpAddr, (u32, IpAddr, bool)> = HashMap::new();
    // A few next hops the kernel already knows, asked too in the first
    // round (they are not waited for): their answers measure the link's
    // round trip, so that even when every address asked for is absent the
    // rounds follow the link, not their full length.
    let mut timing: Vec<(IpAddr, u32, IpAddr, bool)> = Vec::new();
    for range in targets.ranges() {
        for i in 0..range.len() {
            let Some(target) = range.nth(i) else { break };
            let (ifindex, next_hop, route_source) =
                routes.next_hop(target).map_err(ScanError::Route)?;
            let from = source
                .filter(|s| s.is_ipv4() == target.is_ipv4())
                .unwrap_or(route_source);
            match routes
                .neighbour_mac(ifindex, next_hop)
                .map_err(ScanError::Route)?
            {
                None => {
                    pending.insert(next_hop, (ifindex, from, next_hop != target));
                }
                // Only targets themselves (a gateway may lie outside the
                // scope) on a link with neighbours (else the MAC is zeros).
                Some(mac)
                    if mac != [0; 6]
                        && next_hop == target
                        && timing.len() < TIMING_SAMPLES
                        && !timing.iter().any(|t| t.0 == next_hop) =>
                {
                    timing.push((next_hop, ifindex, from, false));
                }
                Some(_) => {}
            }
        }
    }
    if pending.is_empty() {
        timing.clear();
    }
    let mut found = Discovery {
        asked: pending.len() as u64,
        ..Discovery::default()
    };
    let mut frame = Vec::with_capacity(86);
    // The slowest answer seen after a round's last request left: once the
    // link has shown how fast it answers, later rounds (for the addresses
    // still silent) wait a multiple of that, not their full length.
    let mut slowest: Option<Duration> = None;
    for (round, full_wait) in ROUND_WAITS.into_iter().enumerate() {
        if pending.is_empty() || stop.load(Ordering::Relaxed) {
            break;
        }
        let mut asks: Vec<(IpAddr, u32, IpAddr, bool)> = pending
            .iter()
            .map(|(hop, (ifindex, src, gw))| (*hop, *ifindex, *src, *gw))
            .collect();
        asks.sort_unstable();
        if round == 0 {
            // First: their answers come while the rest is being sent.
            asks.splice(0..0, timing.drain(..));
        }
        let mut asks = asks.into_iter().peekable();
        while asks.peek().is_some() && !stop.load(Ordering::Relaxed) {
            let Some(mut batch) = gate
                .reserve_neighbour_requests(gate.burst(), &|| stop.load(Ordering::Relaxed))
                .map_err(ScanError::Refused)?
            else {
                break;
            };
            while batch.remaining() > 0 {
                let Some((next_hop, ifindex, src, is_gateway)) = asks.next() else {
                    break;
                };
                let permit = match batch.permit_neighbour_request(src, next_hop) {
                    Ok(p) => p,
                    // A gateway the scope does not cover may not be asked:
                    // the kernel must know it (any traffic through it, or a
                    // ping, resolves it).
                    Err(_) if is_gateway => {
                        return Err(ScanError::Route(RouteError::NeighbourUnknown {
                            target: next_hop,
                            next_hop,
                            ifname: routes
                                .link(ifindex)
                                .map_or_else(|_| format!("if{ifindex}"), |l| l.name.clone()),
                        }));
                    }
                    Err(r) => return Err(ScanError::Refused(r)),
                };
                let mac = routes.link(ifindex).map_err(ScanError::Route)?.mac;
                neighbour::request(&mut frame, mac, src, next_hop);
                sender
                    .send_neighbour_request(ifindex, permit, &frame)
                    .map_err(|e| ScanError::Io("sender", std::io::Error::other(e.to_string())))?;
                found.requests_sent += 1;
            }
            sender
                .flush()
                .map_err(|e| ScanError::Io("cannot send", e))?;
        }
        // Wait for this round's answers; stop early once every next hop
        // answered, or on Ctrl-C.
        // Once an answer has shown the link's round trip, the round waits
        // ADAPTIVE_FACTOR times the slowest (at least MIN_ROUND_WAIT),
        // re-judged as answers come; before that, its full length.
        let sent_end = Instant::now();
        loop {
            let wait = slowest.map_or(full_wait, |s| {
                (s * ADAPTIVE_FACTOR).clamp(MIN_ROUND_WAIT, full_wait)
            });
            if sent_end.elapsed() >= wait || stop.load(Ordering::Relaxed) {
                break;
            }
            let got: Vec<_> = answers.try_iter().collect();
            if !got.is_empty() {
                let after = sent_end.elapsed();
                slowest = Some(slowest.map_or(after, |s| s.max(after)));
            }
            for (ip, mac) in got {
                if let Some((ifindex, _, _)) = pending.remove(&ip) {
                    routes.learn(ifindex, ip, mac);
                    found.learned.push((ifindex, ip, mac));
                    found.answered += 1;
                }
            }
            if pending.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    if stop.load(Ordering::Relaxed) {
        return Ok(found);
    }
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    for (next_hop, (ifindex, _, is_gateway)) in pending {
        if is_gateway {
            return Err(ScanError::GatewayDown {
                gateway: next_hop,
                ifname: routes
                    .link(ifindex)
                    .map_or_else(|_| format!("if{ifindex}"), |l| l.name.clone()),
            });
        }
        let single = crate::targets::AddrRange::single(next_hop);
        if next_hop.is_ipv4() {
            v4.push(single);
        } else {
            v6.push(single);
        }
    }
    // Collected at once: sorting and merging, not an insert per address.
    found.no_arp_reply = v4.into_iter().collect();
    found.no_nd_reply = v6.into_iter().collect();
    Ok(found)
}
