//! The scope gate: the one type that decides whether a packet may be sent.
//!
//! Sending needs a [`Permit`]. A permit has private fields and no public
//! constructor, so the only way to get one is [`Allowance::permit`], and the
//! only way to get an [`Allowance`] is [`ScopeGate::reserve`], which checks
//! the validity window and the probe budget and waits on the rate ceiling.
//! The sender takes permits by value, one per packet.
//!
//! ```compile_fail
//! // A permit cannot be made outside the gate.
//! let p = sonde::scope::Permit { dst: "127.0.0.1".parse().unwrap(), port: None, kind: sonde::scope::ProbeKind::Icmp };
//! ```

use std::fmt;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{Quota, RateLimiter};
use time::OffsetDateTime;

use super::{ProbeKind, Rule, RuleKind, Scope};
use crate::targets::{AddrRange, IpSet, PortSet, canonical_ip};

/// Networks no scope can open: "this network", broadcast, multicast and
/// reserved space. Probing them reaches hosts nobody listed.
pub const HARD_DENY: [(&str, &str); 5] = [
    ("0.0.0.0/8", "\"this network\" (RFC 1122)"),
    ("255.255.255.255/32", "limited broadcast"),
    ("224.0.0.0/4", "IPv4 multicast"),
    ("240.0.0.0/4", "reserved IPv4 space (class E)"),
    ("ff00::/8", "IPv6 multicast"),
];

fn hard_deny_ranges() -> impl Iterator<Item = (AddrRange, &'static str, &'static str)> {
    HARD_DENY.iter().map(|&(net, why)| {
        let (base, prefix) = net.split_once('/').expect("constant CIDR");
        let range = AddrRange::cidr(
            base.parse().expect("constant address"),
            prefix.parse().expect("constant prefix"),
        )
        .expect("constant block");
        (range, net, why)
    })
}

pub(super) fn hard_deny_set() -> IpSet {
    hard_deny_ranges().map(|(r, _, _)| r).collect()
}

/// Why something may not be sent.
#[derive(Clone, Debug, PartialEq)]
pub enum Refusal {
    HardDeny {
        target: String,
        network: &'static str,
        why: &'static str,
    },
    Denied {
        target: String,
        rule: String,
        reason: Option<String>,
    },
    NotCovered {
        target: String,
        address: IpAddr,
    },
    PortNotAllowed {
        target: String,
        port: u16,
        kind: ProbeKind,
        address: IpAddr,
    },
    KindNotAllowed {
        target: String,
        kind: ProbeKind,
        rule: Option<String>,
    },
    PortRequired {
        target: String,
        kind: ProbeKind,
    },
    NotYetValid {
        not_before: OffsetDateTime,
        now: OffsetDateTime,
    },
    Expired {
        not_after: OffsetDateTime,
        now: OffsetDateTime,
    },
    RateAboveCeiling {
        requested: f64,
        ceiling: f64,
    },
    /// Another run on this host is scanning under the same scope: the
    /// scope's `max_rate` is this host's ceiling, not each run's.
    CeilingInUse {
        /// The other run: its PID, run directory and start, when known.
        holder: Option<String>,
        ceiling: f64,
    },
    BudgetExhausted {
        max_probes: u64,
    },
    /// The run would need more probes than the scope's budget.
    BudgetTooSmall {
        planned: u64,
        max_probes: u64,
    },
    /// A packet's source is not one of this host's addresses, and the scope
    /// does not list it in `spoof_sources`: the replies would go elsewhere.
    SourceNotAllowed {
        source: IpAddr,
    },
    AllowanceSpent,
    /// A resumed run's scope file is not the one the run began under.
    ScopeChanged {
        path: String,
        was: String,
        now: String,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Refusal::*;
        match self {
            HardDeny {
                target,
                network,
                why,
            } => write!(
                f,
                "{target} is in {network} ({why}), which sonde never probes whatever the scope says"
            ),
            Denied {
                target,
                rule,
                reason,
            } => {
                write!(f, "{target} is denied by {rule}")?;
                if let Some(r) = reason {
                    write!(f, ": {r}")?;
                }
                Ok(())
            }
            NotCovered { target, address } => write!(
                f,
                "{target} is outside every allow rule ({address} is not listed); scopes are default deny"
            ),
            PortNotAllowed {
                target,
                port,
                kind,
                address,
            } => write!(
                f,
                "{target}: port {port} is not allowed for {kind} probes to {address} by any allow rule"
            ),
            KindNotAllowed {
                target,
                kind,
                rule: None,
            } => {
                write!(f, "{target}: {kind} probes are not allowed by this scope")
            }
            KindNotAllowed {
                target,
                kind,
                rule: Some(rule),
            } => {
                write!(
                    f,
                    "{target}: {kind} probes are not allowed there ({rule} does not list {kind})"
                )
            }
            PortRequired { target, kind } => {
                write!(
                    f,
                    "{target}: {kind} probes go to a port; give TARGET:PORT or -p"
                )
            }
            NotYetValid { not_before, now } => write!(
                f,
                "the scope's validity window opens at {} and it is now {}",
                rfc3339(*not_before),
                rfc3339(*now)
            ),
            Expired { not_after, now } => write!(
                f,
                "the scope's validity window closed at {} and it is now {}",
                rfc3339(*not_after),
                rfc3339(*now)
            ),
            RateAboveCeiling { requested, ceiling } => write!(
                f,
                "a rate of {requested} packets/s is above the scope's ceiling of {ceiling} packets/s"
            ),
            CeilingInUse { holder, ceiling } => write!(
                f,
                "another sonde run on this host is scanning under this scope ({}): the scope's ceiling of {ceiling} packets/s is this host's, not each run's; wait for that run to end, or stop it",
                holder.as_deref().unwrap_or("its PID could not be read")
            ),
            BudgetExhausted { max_probes } => {
                write!(f, "the scope's budget of {max_probes} probes is spent")
            }
            BudgetTooSmall {
                planned,
                max_probes,
            } => write!(
                f,
                "this run plans {planned} probes and the scope's budget (max_probes) is {max_probes}: \
                 narrow the targets or ports, or split the run across scopes that authorize it"
            ),
            SourceNotAllowed { source } => write!(
                f,
                "source address {source} is not an address of this host, so the targets' replies would go \
                 to another host; a scope allows spoofed sources only by listing them in spoof_sources \
                 (inside its allow rules)"
            ),
            AllowanceSpent => write!(f, "the reserved allowance is spent; reserve again"),
            ScopeChanged { path, was, now } => write!(
                f,
                "the scope file {path} changed since the run began (sha256 {was}, now {now}): a run resumes only under the authorization it began with"
            ),
        }
    }
}

impl std::error::Error for Refusal {}

pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

/// What the gate says about a target, and which rule said it.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    Allowed { rule: String },
    Refused(Refusal),
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allowed { .. })
    }
}

/// Leave to send one packet of `kind` to `dst` (and `port`), issued by the gate.
#[must_use = "a permit is leave to send one packet"]
#[derive(Debug, PartialEq, Eq)]
pub struct Permit {
    src: IpAddr,
    dst: IpAddr,
    port: Option<u16>,
    /// `None`: an ARP request or neighbour solicitation asking for `dst`.
    kind: Option<ProbeKind>,
}

impl Permit {
    /// The source address the packet must carry.
    pub fn src(&self) -> IpAddr {
        self.src
    }
    pub fn dst(&self) -> IpAddr {
        self.dst
    }
    pub fn port(&self) -> Option<u16> {
        self.port
    }
    /// The probe's kind; `None` for a neighbour request.
    pub fn kind(&self) -> Option<ProbeKind> {
        self.kind
    }
    /// Leave to ask for `dst`'s MAC (ARP request, neighbour solicitation),
    /// not to probe it.
    pub fn is_neighbour_request(&self) -> bool {
        self.kind.is_none()
    }
}

/// A reservation of `n` packets against the rate ceiling; spend it on permits.
pub struct Allowance<'g> {
    gate: &'g ScopeGate,
    remaining: u32,
    /// Reserved for neighbour requests ([`ScopeGate::reserve_neighbour_requests`]):
    /// paced like probes, not charged to the probe budget.
    neighbour: bool,
}

impl Allowance<'_> {
    pub fn remaining(&self) -> u32 {
        self.remaining
    }

    /// Leave to send one packet from `src` to `dst`, if the scope allows it.
    pub fn permit(
        &mut self,
        src: IpAddr,
        dst: IpAddr,
        port: Option<u16>,
        kind: ProbeKind,
    ) -> Result<Permit, Refusal> {
        if self.remaining == 0 || self.neighbour {
            return Err(Refusal::AllowanceSpent);
        }
        self.gate.check_source(src)?;
        if !self.gate.allows(dst, port, kind) {
            return Err(match self.gate.decide_addr(dst, port, kind) {
                Decision::Refused(r) => r,
                Decision::Allowed { rule } => {
                    unreachable!("allows() and decide() disagree on {dst} ({rule})")
                }
            });
        }
        self.remaining -= 1;
        self.gate.issued.fetch_add(1, Ordering::Relaxed);
        Ok(Permit {
            src,
            dst,
            port,
            kind: Some(kind),
        })
    }

    /// Leave to send one ARP request or neighbour solicitation from `src`
    /// asking for `dst`'s MAC: only for an address the scope lets sonde
    /// probe in some way (`ScopeGate::allows_neighbour_request`).
    pub fn permit_neighbour_request(
        &mut self,
        src: IpAddr,
        dst: IpAddr,
    ) -> Result<Permit, Refusal> {
        if self.remaining == 0 || !self.neighbour {
            return Err(Refusal::AllowanceSpent);
        }
        self.gate.check_source(src)?;
        if !self.gate.allows_neighbour_request(dst) {
            return Err(Refusal::NotCovered {
                target: format!("{dst} (ARP/neighbour solicitation)"),
                address: dst,
            });
        }
        self.remaining -= 1;
        Ok(Permit {
            src,
            dst,
            port: None,
            kind: None,
        })
    }
}

impl Drop for Allowance<'_> {
    /// What was reserved and not spent goes back to the budget.
    fn drop(&mut self) {
        if self.remaining > 0 && !self.neighbour {
            self.gate
                .reserved
                .fetch_sub(u64::from(self.remaining), Ordering::AcqRel);
        }
    }
}

/// The rules of a scope indexed for the per-packet question: per probe
/// kind, the addresses denied or allowed on every port as one set, and the
/// port-limited rules grouped by port list, so thousands of rules cost a
/// few binary searches per packet, not a walk over every rule.
struct RuleIndex {
    kinds: [KindRules; ProbeKind::ALL.len()],
}

#[derive(Default)]
struct KindRules {
    deny_all_ports: IpSet,
    deny_by_ports: ByPort,
    allow_all_ports: IpSet,
    allow_by_ports: ByPort,
}

/// Port-limited rules as the addresses they cover on each stretch of ports
/// where the same rules apply: one binary search for the port, one for the
/// address, however many rules there are.
#[derive(Default)]
struct ByPort {
    /// First port of each stretch, ascending; the stretch runs to the next.
    starts: Vec<u32>,
    /// Addresses covered on each stretch.
    sets: Vec<IpSet>,
}

impl ByPort {
    fn new(groups: Vec<(PortSet, IpSet)>) -> ByPort {
        let mut bounds: Vec<u32> = vec![1, 65_536];
        for (ports, _) in &groups {
            for &(lo, hi) in ports.ranges() {
                bounds.push(u32::from(lo));
                bounds.push(u32::from(hi) + 1);
            }
        }
        bounds.sort_unstable();
        bounds.dedup();
        bounds.pop(); // 65,536 ends the last stretch
        // Sweep the stretches in order, keeping the groups whose ports
        // cover the current one (a group's ranges are disjoint, so it
        // enters and leaves once per range).
        let mut events: Vec<(u32, bool, usize)> = Vec::new();
        for (g, (ports, _)) in groups.iter().enumerate() {
            for &(lo, hi) in ports.ranges() {
                events.push((u32::from(lo), true, g));
                events.push((u32::from(hi) + 1, false, g));
            }
        }
        events.sort_unstable();
        let mut active = std::collections::BTreeSet::new();
        let mut next = 0;
        let sets = bounds
            .iter()
            .map(|&start| {
                while next < events.len() && events[next].0 <= start {
                    let (_, enters, g) = events[next];
                    if enters {
                        active.insert(g);
                    } else {
                        active.remove(&g);
                    }
                    next += 1;
                }
                active
                    .iter()
                    .flat_map(|&g| groups[g].1.ranges())
                    .collect::<IpSet>()
            })
            .collect();
        ByPort {
            starts: bounds,
            sets,
        }
    }

    /// Whether every port's stretch denies `dst`.
    fn covers_every_port(&self, dst: IpAddr) -> bool {
        !self.starts.is_empty() && self.starts[0] == 1 && self.sets.iter().all(|s| s.contains(dst))
    }

    fn contains(&self, port: Option<u16>, dst: IpAddr) -> bool {
        let Some(port) = port else { return false };
        let i = self.starts.partition_point(|&s| s <= u32::from(port));
        i > 0 && self.sets[i - 1].contains(dst)
    }
}

impl RuleIndex {
    fn new(scope: &Scope) -> RuleIndex {
        let kinds = ProbeKind::ALL.map(|kind| {
            let mut k = KindRules::default();
            let mut deny_all = Vec::new();
            let mut allow_all = Vec::new();
            let mut deny_ports: std::collections::HashMap<&PortSet, Vec<AddrRange>> =
                Default::default();
            let mut allow_ports: std::collections::HashMap<&PortSet, Vec<AddrRange>> =
                Default::default();
            for r in scope.deny.iter().chain(&scope.allow) {
                if r.probes.is_some_and(|p| !p.contains(kind)) {
                    continue;
                }
                // As Rule::applies_to: a port list narrows syn and dns; for
                // icmp an allow rule's list does not matter, a deny rule
                // with one does not apply.
                let (all, by_ports) = match r.kind {
                    RuleKind::Deny => (&mut deny_all, &mut deny_ports),
                    RuleKind::Allow => (&mut allow_all, &mut allow_ports),
                };
                match &r.ports {
                    None => all.extend(r.targets.ranges()),
                    Some(_) if !kind.has_port() && r.kind == RuleKind::Allow => {
                        all.extend(r.targets.ranges())
                    }
                    Some(_) if !kind.has_port() => {}
                    Some(p) => by_ports.entry(p).or_default().extend(r.targets.ranges()),
                }
            }
            k.deny_all_ports = deny_all.into_iter().collect();
            k.allow_all_ports = allow_all.into_iter().collect();
            k.deny_by_ports = ByPort::new(
                deny_ports
                    .into_iter()
                    .map(|(p, r)| (p.clone(), r.into_iter().collect()))
                    .collect(),
            );
            k.allow_by_ports = ByPort::new(
                allow_ports
                    .into_iter()
                    .map(|(p, r)| (p.clone(), r.into_iter().collect()))
                    .collect(),
            );
            k
        });
        RuleIndex { kinds }
    }

    /// Whether some port (any, for ICMP) of `dst` may be probed with `kind`.
    fn allows_some_port(&self, dst: IpAddr, kind: ProbeKind) -> bool {
        let k = &self.kinds[kind as usize];
        if k.deny_all_ports.contains(dst) {
            return false;
        }
        if k.allow_all_ports.contains(dst) {
            // Allowed on every port it is not denied on: a port-limited
            // deny rule cannot cover all 65,535 (it would be port-less).
            return !kind.has_port() || !k.deny_by_ports.covers_every_port(dst);
        }
        k.allow_by_ports
            .starts
            .iter()
            .zip(&k.allow_by_ports.sets)
            .any(|(&start, set)| {
                set.contains(dst) && !k.deny_by_ports.contains(Some(start as u16), dst)
            })
    }

    fn allows(&self, dst: IpAddr, port: Option<u16>, kind: ProbeKind) -> bool {
        let k = &self.kinds[kind as usize];
        !k.deny_all_ports.contains(dst)
            && !k.deny_by_ports.contains(port, dst)
            && (k.allow_all_ports.contains(dst) || k.allow_by_ports.contains(port, dst))
    }
}

type Now = Arc<dyn Fn() -> OffsetDateTime + Send + Sync>;

/// The one place that decides whether sonde may send a packet.
pub struct ScopeGate {
    scope: Scope,
    hard_deny: IpSet,
    rate: f64,
    burst: u32,
    limiter: RateLimiter<governor::state::NotKeyed, governor::state::InMemoryState, DefaultClock>,
    /// Permits issued.
    issued: AtomicU64,
    /// Time spent waiting for the rate ceiling (all threads), ns.
    paced_ns: AtomicU64,
    /// Permits issued plus those held in live allowances: what the budget
    /// is charged, so no number of threads can reserve past it.
    reserved: AtomicU64,
    index: RuleIndex,
    /// Addresses this host sends from (its own), set by the caller that
    /// knows them; empty until then, so no permit is issued.
    local_sources: IpSet,
    /// The scope's `spoof_sources` that its allow rules also cover.
    spoof_sources: IpSet,
    now: Now,
    /// A budget lease: permits (counted as `reserved`) up to this many only,
    /// below `max_probes`; the caller records each lease durably before it
    /// raises it, so a run killed outright is charged its lease, an upper
    /// bound of what it sent (issue 29). `None`: no lease.
    lease: Option<Arc<AtomicU64>>,
}

/// The longest the gate sleeps before asking again whether to stop.
pub const MAX_WAIT: Duration = Duration::from_millis(50);

/// The rate used when neither the user nor the scope asks for less.
pub const DEFAULT_RATE: f64 = 1000.0;

/// The slowest rate a scan paces to: a packet every 100 seconds. Anything
/// slower is a typo (`--rate 1e-19` once overflowed the pacer's period);
/// the command line and the scope parser refuse it as an input error.
pub const MIN_RATE: f64 = 0.01;

impl ScopeGate {
    /// A gate for `scope`, sending at `requested` packets/s (default: the
    /// lower of [`DEFAULT_RATE`] and the ceiling). Refuses a rate above the
    /// ceiling and a window that is not open now.
    pub fn new(scope: Scope, requested: Option<f64>) -> Result<ScopeGate, Refusal> {
        let gate = ScopeGate::with_clock(scope, requested, Arc::new(OffsetDateTime::now_utc))?;
        gate.check_window(gate.now())?;
        Ok(gate)
    }

    /// As [`ScopeGate::new`] with the wall clock replaced, and without the
    /// up-front window check (for `scope check` and tests): every
    /// [`ScopeGate::reserve`] still checks the window.
    pub fn with_clock(
        scope: Scope,
        requested: Option<f64>,
        now: Now,
    ) -> Result<ScopeGate, Refusal> {
        let rate = match requested {
            Some(r) if r > scope.max_rate => {
                return Err(Refusal::RateAboveCeiling {
                    requested: r,
                    ceiling: scope.max_rate,
                });
            }
            Some(r) if r.is_finite() && r > 0.0 => r,
            Some(r) => {
                return Err(Refusal::RateAboveCeiling {
                    requested: r,
                    ceiling: scope.max_rate,
                });
            }
            None => DEFAULT_RATE.min(scope.max_rate),
        };
        // A burst of about 10 ms of traffic lets the sender batch without
        // ever exceeding the ceiling measured over any second.
        let burst = ((rate / 100.0).ceil() as u32).clamp(1, 65_536);
        // Never slower than MIN_RATE: a longer period overflows the pacer.
        let period = Duration::from_secs_f64(1.0 / rate.max(MIN_RATE)).max(Duration::from_nanos(1));
        let quota = Quota::with_period(period)
            .expect("period is positive")
            .allow_burst(NonZeroU32::new(burst).expect("burst is at least 1"));
        let mut spoof_sources = scope.spoof_sources.clone();
        let mut allowed = IpSet::new();
        for kind in ProbeKind::ALL {
            allowed.union_with(&scope.allowed_addresses(kind));
        }
        let mut outside = spoof_sources.clone();
        outside.subtract(&allowed);
        spoof_sources.subtract(&outside);
        Ok(ScopeGate {
            hard_deny: hard_deny_set(),
            index: RuleIndex::new(&scope),
            scope,
            rate,
            burst,
            limiter: RateLimiter::direct(quota),
            issued: AtomicU64::new(0),
            paced_ns: AtomicU64::new(0),
            reserved: AtomicU64::new(0),
            local_sources: IpSet::new(),
            spoof_sources,
            now,
            lease: None,
        })
    }

    /// Grant probes under a budget only up to `lease` (see [`ScopeGate`]'s
    /// `lease`): sending waits at the lease until the caller raises it.
    pub fn with_lease(mut self, lease: Arc<AtomicU64>) -> ScopeGate {
        self.lease = Some(lease);
        self
    }

    /// Permits issued plus those held in live allowances (what a budget is
    /// charged so far).
    pub fn reserved(&self) -> u64 {
        self.reserved.load(Ordering::Acquire)
    }

    /// The addresses of this host (`net::route::local_addresses`): packets
    /// may carry these as their source. Any other source needs the scope's
    /// `spoof_sources`.
    pub fn with_local_sources(mut self, local: IpSet) -> ScopeGate {
        self.local_sources = local.canonical();
        self
    }

    /// Whether a packet may carry `src` as its source address: one of this
    /// host's, or one the scope's `spoof_sources` lists inside its allow rules.
    pub fn check_source(&self, src: IpAddr) -> Result<(), Refusal> {
        let c = canonical_ip(src);
        if self.local_sources.contains(c) || self.spoof_sources.contains(c) {
            Ok(())
        } else {
            Err(Refusal::SourceNotAllowed { source: src })
        }
    }

    /// Refuse a run that plans more probes than the scope's budget, before
    /// its first packet.
    pub fn check_plan(&self, planned: u64) -> Result<(), Refusal> {
        match self.scope.max_probes {
            Some(max) if planned > max => Err(Refusal::BudgetTooSmall {
                planned,
                max_probes: max,
            }),
            _ => Ok(()),
        }
    }

    /// Charge the budget with `probes` an earlier segment of this run sent
    /// (a resumed scan): the scope's budget is per run, not per process.
    pub fn with_spent(self, probes: u64) -> ScopeGate {
        self.issued.fetch_add(probes, Ordering::AcqRel);
        self.reserved.fetch_add(probes, Ordering::AcqRel);
        self
    }

    /// Probes the budget still allows (`None`: no budget).
    pub fn budget_left(&self) -> Option<u64> {
        self.scope
            .max_probes
            .map(|m| m.saturating_sub(self.reserved.load(Ordering::Acquire)))
    }

    pub fn scope(&self) -> &Scope {
        &self.scope
    }
    /// The rate this gate paces to, packets per second.
    pub fn rate(&self) -> f64 {
        self.rate
    }
    /// The largest allowance one [`ScopeGate::reserve`] hands out.
    pub fn burst(&self) -> u32 {
        self.burst
    }
    /// Permits issued so far.
    pub fn issued(&self) -> u64 {
        self.issued.load(Ordering::Relaxed)
    }
    pub fn now(&self) -> OffsetDateTime {
        (self.now)()
    }

    /// Whether the validity window is open at `now`.
    pub fn check_window(&self, now: OffsetDateTime) -> Result<(), Refusal> {
        let e = &self.scope.engagement;
        if now < e.not_before {
            return Err(Refusal::NotYetValid {
                not_before: e.not_before,
                now,
            });
        }
        if now > e.not_after {
            return Err(Refusal::Expired {
                not_after: e.not_after,
                now,
            });
        }
        Ok(())
    }

    /// Reserve up to `n` packets (at most [`ScopeGate::burst`]): checks the
    /// window and the probe budget, then blocks until the rate ceiling has
    /// room. A run that outlives `not_after` is refused here.
    pub fn reserve(&self, n: u32) -> Result<Allowance<'_>, Refusal> {
        Ok(self.reserve_unless(n, &|| false)?.expect("never stopped"))
    }

    /// As [`ScopeGate::reserve`], but gives up (`Ok(None)`) as soon as
    /// `stop()` says so: it is asked at least every [`MAX_WAIT`] while the
    /// gate waits for the rate ceiling or for budget other threads hold, so
    /// a Ctrl-C is never kept waiting behind a slow rate.
    pub fn reserve_unless(
        &self,
        n: u32,
        stop: &dyn Fn() -> bool,
    ) -> Result<Option<Allowance<'_>>, Refusal> {
        self.check_window(self.now())?;
        let mut n = n.clamp(1, self.burst);
        match self.scope.max_probes {
            // Charged before the packets exist, atomically: two threads
            // never both see the same probes left.
            Some(max) => {
                let mut taken = self.reserved.load(Ordering::Acquire);
                loop {
                    // A lease below the budget: wait at it until raised.
                    let cap = self
                        .lease
                        .as_ref()
                        .map_or(max, |l| l.load(Ordering::Acquire).min(max));
                    let left = cap.saturating_sub(taken);
                    if left == 0 {
                        if cap >= max && self.issued() >= max {
                            return Err(Refusal::BudgetExhausted { max_probes: max });
                        }
                        // Another thread holds the rest in an allowance it
                        // may not spend; what it leaves comes back when its
                        // batch ends (about 10 ms).
                        if stop() {
                            return Ok(None);
                        }
                        std::thread::sleep(Duration::from_micros(500));
                        taken = self.reserved.load(Ordering::Acquire);
                        continue;
                    }
                    let want = n.min(u32::try_from(left).unwrap_or(u32::MAX));
                    match self.reserved.compare_exchange_weak(
                        taken,
                        taken + u64::from(want),
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    ) {
                        Ok(_) => {
                            n = want;
                            break;
                        }
                        Err(now) => taken = now,
                    }
                }
            }
            None => {
                self.reserved.fetch_add(u64::from(n), Ordering::AcqRel);
            }
        }
        // From here the allowance exists and its Drop returns what is unused.
        let allowance = Allowance {
            gate: self,
            remaining: n,
            neighbour: false,
        };
        Ok(self.wait_for_rate(n, stop).then_some(allowance))
    }

    /// Wait until the rate ceiling has room for `n` packets, in slices of at
    /// most [`MAX_WAIT`]; false when `stop()` said so first.
    fn wait_for_rate(&self, n: u32, stop: &dyn Fn() -> bool) -> bool {
        let cells = NonZeroU32::new(n).expect("n is at least 1");
        let clock = DefaultClock::default();
        loop {
            match self.limiter.check_n(cells) {
                Ok(Ok(())) => return true,
                Ok(Err(not_until)) => {
                    if stop() {
                        return false;
                    }
                    let nap = not_until.wait_time_from(clock.now()).min(MAX_WAIT);
                    std::thread::sleep(nap);
                    self.paced_ns
                        .fetch_add(nap.as_nanos() as u64, Ordering::Relaxed);
                }
                Err(_) => unreachable!("n is clamped to the burst size"),
            }
        }
    }

    /// Nanoseconds sending threads have slept waiting for the rate ceiling,
    /// summed over threads: near zero while sending falls short of the
    /// rate means the senders, not the gate, are the limit.
    pub fn paced_nanos(&self) -> u64 {
        self.paced_ns.load(Ordering::Relaxed)
    }

    /// Wait until the rate ceiling has room for `n` more packets that are
    /// not probes (the kernel's packets of a connection a permit allowed),
    /// in burst-sized slices: paced with the probes, charged nothing of
    /// the budget. False when `stop()` said so first.
    pub fn pace(&self, n: u32, stop: &dyn Fn() -> bool) -> Result<bool, Refusal> {
        self.check_window(self.now())?;
        let mut left = n;
        while left > 0 {
            let slice = left.min(self.burst);
            if !self.wait_for_rate(slice, stop) {
                return Ok(false);
            }
            left -= slice;
        }
        Ok(true)
    }

    /// Reserve up to `n` neighbour requests (ARP, neighbour solicitations):
    /// the window is checked and the rate ceiling paces them with the
    /// probes, but they are not probes and leave the probe budget alone.
    pub fn reserve_neighbour_requests(
        &self,
        n: u32,
        stop: &dyn Fn() -> bool,
    ) -> Result<Option<Allowance<'_>>, Refusal> {
        self.check_window(self.now())?;
        let n = n.clamp(1, self.burst);
        Ok(self.wait_for_rate(n, stop).then_some(Allowance {
            gate: self,
            remaining: n,
            neighbour: true,
        }))
    }

    /// Whether sonde may ask for `dst`'s MAC: the scope lets it probe `dst`
    /// with some kind on some port (and no hard deny covers it).
    pub fn allows_neighbour_request(&self, dst: IpAddr) -> bool {
        let dst = canonical_ip(dst);
        !self.hard_deny.contains(dst)
            && self
                .scope
                .probes
                .iter()
                .any(|kind| self.index.allows_some_port(dst, kind))
    }

    /// The per-packet question, answered without allocating: the same
    /// decision as [`ScopeGate::decide`] for one address, minus the words.
    pub fn allows(&self, dst: IpAddr, port: Option<u16>, kind: ProbeKind) -> bool {
        let dst = canonical_ip(dst);
        !self.hard_deny.contains(dst)
            && self.scope.probes.contains(kind)
            && (port.is_some() || !kind.has_port())
            && self.index.allows(dst, port, kind)
    }

    /// The decision for one address, without time or rate: allowed, or why not.
    pub fn decide_addr(&self, dst: IpAddr, port: Option<u16>, kind: ProbeKind) -> Decision {
        self.decide(AddrRange::single(dst), port, kind, &dst.to_string())
    }

    /// The decision for every address of `range` at once; `label` names the
    /// target in a refusal. Allowed only if every address is allowed.
    /// IPv4-mapped and IPv4-compatible IPv6 addresses are judged as the
    /// IPv4 addresses they stand for.
    pub fn decide(
        &self,
        range: AddrRange,
        port: Option<u16>,
        kind: ProbeKind,
        label: &str,
    ) -> Decision {
        let mut first = None;
        for part in range.canonical_parts() {
            match self.decide_canonical(part, port, kind, label) {
                Decision::Allowed { rule } => {
                    first.get_or_insert(rule);
                }
                refused => return refused,
            }
        }
        Decision::Allowed {
            rule: first.unwrap_or_default(),
        }
    }

    fn decide_canonical(
        &self,
        range: AddrRange,
        port: Option<u16>,
        kind: ProbeKind,
        label: &str,
    ) -> Decision {
        let target = |p: Option<u16>| match p {
            Some(p) if kind.has_port() => format!("{label} port {p}/{kind}"),
            _ => format!("{label} ({kind})"),
        };
        let refuse = |r: Refusal| Decision::Refused(r);
        if self.hard_deny.intersects(range) {
            let (_, network, why) = hard_deny_ranges()
                .find(|(r, _, _)| self.hard_deny_hit(r, range))
                .expect("an intersecting block exists");
            return refuse(Refusal::HardDeny {
                target: target(port),
                network,
                why,
            });
        }
        if !self.scope.probes.contains(kind) {
            return refuse(Refusal::KindNotAllowed {
                target: target(port),
                kind,
                rule: None,
            });
        }
        if kind.has_port() && port.is_none() {
            return refuse(Refusal::PortRequired {
                target: target(port),
                kind,
            });
        }
        if let Some(rule) = self
            .scope
            .deny
            .iter()
            .find(|r| r.applies_to(kind, port) && r.targets.intersects(range))
        {
            return refuse(Refusal::Denied {
                target: target(port),
                rule: rule.to_string(),
                reason: rule.reason.clone(),
            });
        }
        // Fast path: one allow rule covers the whole range.
        let applicable = || self.scope.allow.iter().filter(|r| r.applies_to(kind, port));
        if let Some(rule) = applicable().find(|r| r.targets.contains_range(range)) {
            return Decision::Allowed {
                rule: rule.to_string(),
            };
        }
        let covered = IpSet::union_of(applicable().map(|r| &r.targets));
        let Some(missing) = covered.first_missing(range) else {
            let rule = applicable()
                .find(|r| r.targets.contains(range.first()))
                .map_or_else(String::new, Rule::to_string);
            return Decision::Allowed {
                rule: format!("{rule} and others"),
            };
        };
        // Say why the uncovered address is refused: another port, another kind, or nothing.
        let at = AddrRange::single(missing);
        let mut touching = self.scope.allow.iter().filter(|r| r.targets.intersects(at));
        match touching.next() {
            None => refuse(Refusal::NotCovered {
                target: target(port),
                address: missing,
            }),
            Some(rule) if rule.probes.is_some_and(|p| !p.contains(kind)) => {
                refuse(Refusal::KindNotAllowed {
                    target: target(port),
                    kind,
                    rule: Some(rule.to_string()),
                })
            }
            Some(_) => refuse(Refusal::PortNotAllowed {
                target: target(port),
                port: port.unwrap_or(0),
                kind,
                address: missing,
            }),
        }
    }

    fn hard_deny_hit(&self, block: &AddrRange, range: AddrRange) -> bool {
        let set: IpSet = [*block].into_iter().collect();
        set.intersects(range)
    }

    /// The decision at time `now`: the window first, then [`ScopeGate::decide`].
    pub fn decide_at(
        &self,
        range: AddrRange,
        port: Option<u16>,
        kind: ProbeKind,
        label: &str,
        now: OffsetDateTime,
    ) -> Decision {
        match self.check_window(now) {
            Err(r) => Decision::Refused(r),
            Ok(()) => self.decide(range, port, kind, label),
        }
    }
}

/// Judge a range against a whole port list (the dry run, `scope check`
/// and a scan's start judge every target so). The decision can change only
/// where some rule's port list starts or ends, so one port per segment
/// between those boundaries stands for the segment.
pub fn judge_ports(
    gate: &ScopeGate,
    range: &crate::targets::AddrRange,
    ports: Option<&PortSet>,
    kind: ProbeKind,
    label: &str,
    now: OffsetDateTime,
) -> Decision {
    let Some(ports) = ports.filter(|_| kind.has_port()) else {
        let port = if kind == ProbeKind::Dns {
            Some(53)
        } else {
            None
        };
        return gate.decide_at(*range, port, kind, label, now);
    };
    let scope = gate.scope();
    let mut cuts: Vec<u32> = vec![1, 65536];
    for r in scope.allow.iter().chain(&scope.deny) {
        for &(s, e) in r.ports.iter().flat_map(|p| p.ranges()) {
            cuts.push(u32::from(s));
            cuts.push(u32::from(e) + 1);
        }
    }
    cuts.sort_unstable();
    cuts.dedup();
    let mut first_allowed = None;
    for &(s, e) in ports.ranges() {
        let (s, e) = (u32::from(s), u32::from(e));
        let mut p = s;
        while p <= e {
            let next_cut = cuts.iter().copied().find(|&c| c > p).unwrap_or(65536);
            match gate.decide_at(*range, Some(p as u16), kind, label, now) {
                Decision::Refused(r) => return Decision::Refused(r),
                allowed => first_allowed = first_allowed.or(Some(allowed)),
            }
            p = next_cut.min(e + 1).max(p + 1);
        }
    }
    first_allowed.expect("a port list is never empty")
}
