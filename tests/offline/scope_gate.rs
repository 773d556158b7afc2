//! The scope gate's decisions: a table of cases, and a property test that no
//! random target is ever allowed outside the allow set or inside a deny set.

use std::net::IpAddr;
use std::sync::Arc;

use proptest::prelude::*;
use sonde::scope::{Decision, ProbeKind, Refusal, Scope, ScopeGate};
use sonde::targets::{AddrRange, Resolver, TargetSpec};
use time::OffsetDateTime;
use time::macros::datetime;

const SCOPE: &str = r#"
probes = ["syn", "icmp", "dns"]

[engagement]
id = "T-1"
client = "test"
authorized_by = "tester"
contact = "t@example.test"
not_before = 2026-01-01T00:00:00Z
not_after = 2026-06-30T23:59:59Z

[limits]
max_rate = 500

[[allow]]
name = "web"
targets = ["198.18.1.0/24", "2001:db8:1::/64"]
ports = [80, 443]
probes = ["syn", "icmp"]

[[allow]]
name = "dns"
targets = ["198.18.2.53"]
ports = [53]
probes = ["dns"]

[[allow]]
name = "wide"
targets = ["198.18.4.0/22", "224.0.0.0/24", "ff02::/16"]

[[deny]]
name = "db"
targets = ["198.18.1.128/25", "2001:db8:1::dead"]
reason = "database tier"

[[deny]]
name = "no ssh"
targets = ["198.18.4.0/22"]
ports = [22]
"#;

/// The host's own address in these tests: the source every permit names.
fn src() -> IpAddr {
    "198.18.0.2".parse().unwrap()
}
const SRC: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(198, 18, 0, 2));

/// A gate whose host owns [`SRC`].
fn local(gate: ScopeGate) -> ScopeGate {
    gate.with_local_sources([AddrRange::single(src())].into_iter().collect())
}

const INSIDE: OffsetDateTime = datetime!(2026-03-01 12:00 UTC);

fn gate_at(now: OffsetDateTime) -> ScopeGate {
    let scope = Scope::from_toml(SCOPE, "table.toml").expect("test scope parses");
    ScopeGate::with_clock(scope, None, Arc::new(move || now)).expect("rate within ceiling")
}

fn decide(target: &str, port: Option<u16>, kind: ProbeKind, now: OffsetDateTime) -> Decision {
    let range = match TargetSpec::parse(target).unwrap() {
        TargetSpec::Range(r) => r,
        TargetSpec::Host(h) => h_resolve(&h),
        TargetSpec::Octets(_) => panic!("no octet ranges in these tables"),
    };
    gate_at(now).decide_at(range, port, kind, target, now)
}

struct LabNames;
impl Resolver for LabNames {
    fn resolve(&self, host: &str) -> Result<Vec<IpAddr>, String> {
        match host {
            "www.lab.test" => Ok(vec!["198.18.1.10".parse().unwrap()]),
            "db.lab.test" => Ok(vec!["198.18.1.200".parse().unwrap()]),
            "elsewhere.test" => Ok(vec!["192.0.2.1".parse().unwrap()]),
            _ => Err("unknown".into()),
        }
    }
}

fn h_resolve(host: &str) -> AddrRange {
    TargetSpec::Host(host.into())
        .resolve(host, &LabNames)
        .unwrap()[0]
        .range
}

#[derive(Debug)]
enum Want {
    Allow(&'static str),
    Refuse(fn(&Refusal) -> bool),
}

#[test]
fn decision_table() {
    use ProbeKind::*;
    use Want::*;
    let expired = datetime!(2026-07-01 00:00 UTC);
    let early = datetime!(2025-12-31 23:59:59 UTC);
    let cases: Vec<(&str, Option<u16>, ProbeKind, OffsetDateTime, Want)> = vec![
        (
            "198.18.1.10",
            Some(80),
            Syn,
            INSIDE,
            Allow("allow[0] \"web\""),
        ),
        (
            "198.18.1.0/25",
            Some(443),
            Syn,
            INSIDE,
            Allow("allow[0] \"web\""),
        ),
        ("198.18.1.10", None, Icmp, INSIDE, Allow("allow[0]")),
        // deny beats allow, for one address and for a range touching the deny
        (
            "198.18.1.200",
            Some(80),
            Syn,
            INSIDE,
            Refuse(
                |r| matches!(r, Refusal::Denied { rule, .. } if rule.contains("deny[0] \"db\"")),
            ),
        ),
        (
            "198.18.1.0/24",
            Some(80),
            Syn,
            INSIDE,
            Refuse(|r| matches!(r, Refusal::Denied { .. })),
        ),
        // port-specific deny only takes that port
        (
            "198.18.5.1",
            Some(22),
            Syn,
            INSIDE,
            Refuse(|r| matches!(r, Refusal::Denied { rule, .. } if rule.contains("no ssh"))),
        ),
        (
            "198.18.5.1",
            Some(23),
            Syn,
            INSIDE,
            Allow("allow[2] \"wide\""),
        ),
        ("198.18.5.1", None, Icmp, INSIDE, Allow("allow[2]")),
        // outside every rule
        (
            "198.18.3.1",
            Some(80),
            Syn,
            INSIDE,
            Refuse(|r| matches!(r, Refusal::NotCovered { .. })),
        ),
        (
            "198.18.0.255-198.18.1.5",
            Some(80),
            Syn,
            INSIDE,
            Refuse(
                |r| matches!(r, Refusal::NotCovered { address, .. } if address.to_string() == "198.18.0.255"),
            ),
        ),
        // hard deny beats an allow rule that lists multicast
        (
            "224.0.0.1",
            None,
            Icmp,
            INSIDE,
            Refuse(|r| {
                matches!(
                    r,
                    Refusal::HardDeny {
                        network: "224.0.0.0/4",
                        ..
                    }
                )
            }),
        ),
        (
            "255.255.255.255",
            None,
            Icmp,
            INSIDE,
            Refuse(|r| matches!(r, Refusal::HardDeny { .. })),
        ),
        (
            "ff02::1",
            None,
            Icmp,
            INSIDE,
            Refuse(|r| {
                matches!(
                    r,
                    Refusal::HardDeny {
                        network: "ff00::/8",
                        ..
                    }
                )
            }),
        ),
        (
            "0.0.0.0",
            Some(80),
            Syn,
            INSIDE,
            Refuse(|r| matches!(r, Refusal::HardDeny { .. })),
        ),
        (
            "240.0.0.1",
            Some(80),
            Syn,
            INSIDE,
            Refuse(|r| matches!(r, Refusal::HardDeny { .. })),
        ),
        // validity window
        (
            "198.18.1.10",
            Some(80),
            Syn,
            expired,
            Refuse(|r| matches!(r, Refusal::Expired { .. })),
        ),
        (
            "198.18.1.10",
            Some(80),
            Syn,
            early,
            Refuse(|r| matches!(r, Refusal::NotYetValid { .. })),
        ),
        // port not allowed
        (
            "198.18.1.10",
            Some(22),
            Syn,
            INSIDE,
            Refuse(|r| matches!(r, Refusal::PortNotAllowed { port: 22, .. })),
        ),
        // probe kind not allowed by the rule
        (
            "198.18.1.10",
            Some(80),
            Dns,
            INSIDE,
            Refuse(|r| matches!(r, Refusal::KindNotAllowed { rule: Some(_), .. })),
        ),
        (
            "198.18.2.53",
            Some(53),
            Dns,
            INSIDE,
            Allow("allow[1] \"dns\""),
        ),
        (
            "198.18.2.53",
            Some(53),
            Syn,
            INSIDE,
            Refuse(|r| matches!(r, Refusal::KindNotAllowed { .. })),
        ),
        (
            "198.18.1.10",
            None,
            Syn,
            INSIDE,
            Refuse(|r| matches!(r, Refusal::PortRequired { .. })),
        ),
        // IPv6
        ("2001:db8:1::1", Some(443), Syn, INSIDE, Allow("allow[0]")),
        (
            "2001:db8:1::dead",
            Some(443),
            Syn,
            INSIDE,
            Refuse(|r| matches!(r, Refusal::Denied { .. })),
        ),
        (
            "2001:db8:2::1",
            Some(443),
            Syn,
            INSIDE,
            Refuse(|r| matches!(r, Refusal::NotCovered { .. })),
        ),
        ("2001:db8:1::/120", Some(80), Syn, INSIDE, Allow("allow[0]")),
        // host names: the resolved address is judged
        ("www.lab.test", Some(80), Syn, INSIDE, Allow("allow[0]")),
        (
            "db.lab.test",
            Some(80),
            Syn,
            INSIDE,
            Refuse(|r| matches!(r, Refusal::Denied { .. })),
        ),
        (
            "elsewhere.test",
            Some(80),
            Syn,
            INSIDE,
            Refuse(|r| matches!(r, Refusal::NotCovered { .. })),
        ),
    ];
    for (target, port, kind, now, want) in cases {
        let got = decide(target, port, kind, now);
        match (&want, &got) {
            (Allow(rule), Decision::Allowed { rule: by }) => assert!(
                by.contains(rule),
                "{target} {port:?} {kind}: allowed by {by}, wanted {rule}"
            ),
            (Refuse(check), Decision::Refused(r)) => assert!(
                check(r),
                "{target} {port:?} {kind}: refused for the wrong reason: {r}"
            ),
            _ => panic!("{target} {port:?} {kind}: got {got:?}, wanted {want:?}"),
        }
    }
}

#[test]
fn refusal_names_the_target_and_the_rule() {
    let Decision::Refused(r) = decide("198.18.1.200", Some(80), ProbeKind::Syn, INSIDE) else {
        panic!()
    };
    let text = r.to_string();
    assert!(
        text.contains("198.18.1.200")
            && text.contains("deny[0] \"db\" (line 31)")
            && text.contains("database tier"),
        "{text}"
    );
}

#[test]
fn rate_above_ceiling_is_refused() {
    let scope = Scope::from_toml(SCOPE, "t").unwrap();
    let err = ScopeGate::with_clock(scope.clone(), Some(501.0), Arc::new(|| INSIDE))
        .err()
        .unwrap();
    assert!(matches!(err, Refusal::RateAboveCeiling { .. }), "{err}");
    assert_eq!(
        ScopeGate::with_clock(scope.clone(), None, Arc::new(|| INSIDE))
            .unwrap()
            .rate(),
        500.0
    );
    assert_eq!(
        ScopeGate::with_clock(scope, Some(100.0), Arc::new(|| INSIDE))
            .unwrap()
            .rate(),
        100.0
    );
}

#[test]
fn permits_need_an_allowance_and_stop_when_the_window_closes() {
    let now = Arc::new(std::sync::Mutex::new(INSIDE));
    let clock = now.clone();
    let scope = Scope::from_toml(SCOPE, "t").unwrap();
    let gate = local(
        ScopeGate::with_clock(scope, Some(500.0), Arc::new(move || *clock.lock().unwrap()))
            .unwrap(),
    );
    let dst: IpAddr = "198.18.1.10".parse().unwrap();
    let mut batch = gate.reserve(2).unwrap();
    assert_eq!(batch.remaining(), 2);
    let p = batch.permit(SRC, dst, Some(80), ProbeKind::Syn).unwrap();
    assert_eq!(
        (p.dst(), p.port(), p.kind()),
        (dst, Some(80), Some(ProbeKind::Syn))
    );
    assert!(
        batch
            .permit(SRC, "198.18.3.1".parse().unwrap(), Some(80), ProbeKind::Syn)
            .is_err()
    );
    let _ = batch.permit(SRC, dst, Some(443), ProbeKind::Syn).unwrap();
    assert_eq!(
        batch.permit(SRC, dst, Some(443), ProbeKind::Syn),
        Err(Refusal::AllowanceSpent)
    );
    assert_eq!(gate.issued(), 2);
    // the run outlives not_after: the next reservation is refused
    *now.lock().unwrap() = datetime!(2026-07-01 00:00:01 UTC);
    assert!(matches!(
        gate.reserve(1).err(),
        Some(Refusal::Expired { .. })
    ));
}

#[test]
fn probe_budget_is_enforced() {
    let text = SCOPE.replace("max_rate = 500", "max_rate = 500\nmax_probes = 3");
    let gate = local(
        ScopeGate::with_clock(
            Scope::from_toml(&text, "t").unwrap(),
            None,
            Arc::new(|| INSIDE),
        )
        .unwrap(),
    );
    let dst: IpAddr = "198.18.1.10".parse().unwrap();
    let mut sent = 0;
    while let Ok(mut batch) = gate.reserve(2) {
        while batch.permit(SRC, dst, Some(80), ProbeKind::Syn).is_ok() {
            sent += 1;
        }
    }
    assert_eq!(sent, 3);
}

#[test]
fn reserve_paces_to_the_rate_ceiling() {
    // 200 permits at 500/s with a burst of 5 take about 390 ms, never less than 380.
    let scope = Scope::from_toml(SCOPE, "t").unwrap();
    let gate = ScopeGate::with_clock(scope, Some(500.0), Arc::new(|| INSIDE)).unwrap();
    let start = std::time::Instant::now();
    let mut n = 0;
    while n < 200 {
        n += gate.reserve(200 - n).unwrap().remaining();
    }
    assert!(
        start.elapsed() >= std::time::Duration::from_millis(380),
        "{:?}",
        start.elapsed()
    );
}

fn addr_strategy() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        // dense around the rules' edges, and anywhere at all
        (0u32..1024).prop_map(|i| IpAddr::from([198, 18, (i >> 8) as u8 * 2 % 8, i as u8])),
        any::<u32>().prop_map(|v| IpAddr::from(v.to_be_bytes())),
        (0u16..0x400).prop_map(|v| IpAddr::from([
            0x2001,
            0xdb8,
            1,
            0,
            0,
            0,
            0,
            v.wrapping_add(0xde00)
        ])),
        any::<u128>().prop_map(|v| IpAddr::from(v.to_be_bytes())),
    ]
}

fn kind_strategy() -> impl Strategy<Value = ProbeKind> {
    prop_oneof![
        Just(ProbeKind::Syn),
        Just(ProbeKind::Icmp),
        Just(ProbeKind::Dns)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn never_allowed_outside_allow_or_inside_deny(ip in addr_strategy(), port in 1u16..=65535, kind in kind_strategy()) {
        let gate = gate_at(INSIDE);
        let scope = gate.scope();
        let port = kind.has_port().then_some(port);
        let allowed = gate.decide_addr(ip, port, kind).is_allowed();
        prop_assert_eq!(allowed, gate.allows(ip, port, kind), "the fast path disagrees with decide() on {} {:?} {}", ip, port, kind);
        let in_allow = scope.allow.iter().any(|r| r.applies_to(kind, port) && r.targets.contains(ip));
        let in_deny = scope.deny.iter().any(|r| r.applies_to(kind, port) && r.targets.contains(ip));
        let hard = sonde::scope::HARD_DENY.iter().any(|(net, _)| {
            let (b, p) = net.split_once('/').unwrap();
            AddrRange::cidr(b.parse().unwrap(), p.parse().unwrap()).unwrap().contains(ip)
        });
        if allowed {
            prop_assert!(in_allow && !in_deny && !hard, "{ip} {port:?} {kind} allowed: allow={in_allow} deny={in_deny} hard={hard}");
        } else {
            prop_assert!(!in_allow || in_deny || hard, "{ip} {port:?} {kind} refused though only allowed");
        }
    }
}

/// A random scope: allow and deny rules over overlapping prefixes of the
/// lab ranges, with and without port lists and probe kinds.
fn random_scope() -> impl Strategy<Value = String> {
    let prefix = prop_oneof![
        (0u8..4, 0u8..=255, 20u8..=32)
            .prop_map(|(b, c, len)| format!("198.18.{}.{c}/{len}", b % 4)),
        (0u16..8, 112u8..=128).prop_map(|(h, len)| format!("2001:db8:1::{:x}/{len}", h * 0x1000)),
        Just("198.18.0.0/22".to_string()),
    ];
    let rule = (
        proptest::collection::vec(prefix, 1..3),
        proptest::option::of(proptest::collection::vec(1u16..100, 1..4)),
        proptest::option::of(prop_oneof![Just("syn"), Just("icmp"), Just("dns")]),
    );
    (
        proptest::collection::vec(rule.clone(), 1..4),
        proptest::collection::vec(rule, 0..4),
    )
        .prop_map(|(allow, deny)| {
            let mut text = String::from(
                "[engagement]\nid = \"P\"\nclient = \"c\"\nauthorized_by = \"a\"\ncontact = \"c@example.test\"\n\
                 not_before = 2026-01-01T00:00:00Z\nnot_after = 2026-06-30T23:59:59Z\n[limits]\nmax_rate = 100\n",
            );
            for (section, rules) in [("allow", allow), ("deny", deny)] {
                for (i, (targets, ports, kind)) in rules.into_iter().enumerate() {
                    text += &format!("[[{section}]]\nname = \"{section}{i}\"\ntargets = {targets:?}\n");
                    if let Some(p) = ports {
                        text += &format!("ports = {p:?}\n");
                    }
                    if let Some(k) = kind {
                        text += &format!("probes = [\"{k}\"]\n");
                    }
                }
            }
            text
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1500))]

    /// Random scopes, random targets (addresses, ranges and names resolving
    /// anywhere), random ports, kinds and moments inside and outside the
    /// window: the gate allows only what some allow rule covers, no deny
    /// rule touches, and only inside the window; a range is allowed only if
    /// every address of it is.
    #[test]
    fn no_target_escapes_a_random_scope(
        text in random_scope(),
        ip in prop_oneof![
            3 => (0u8..4, any::<u8>()).prop_map(|(b, c)| IpAddr::from([198, 18, b, c])),
            1 => (0u16..0x8000).prop_map(|h| IpAddr::from([0x2001, 0xdb8, 1, 0, 0, 0, 0, h])),
            1 => addr_strategy(),
        ],
        span in 0u128..300,
        port in 1u16..100,
        kind in kind_strategy(),
        moment in prop_oneof![Just(INSIDE), Just(datetime!(2025-12-31 23:59:59 UTC)), Just(datetime!(2026-07-01 00:00:00 UTC))],
        by_name in any::<bool>(),
    ) {
        let scope = Scope::from_toml(&text, "random.toml").unwrap_or_else(|e| panic!("{e}\n{text}"));
        let gate = ScopeGate::with_clock(scope, None, Arc::new(move || moment)).unwrap();
        let scope = gate.scope();
        let port = kind.has_port().then_some(port);
        // Mapped and compatible IPv6 forms are judged as their IPv4 address.
        let covered = |a: IpAddr| {
            let a = sonde::targets::canonical_ip(a);
            scope.allow.iter().any(|r| r.applies_to(kind, port) && r.targets.contains(a))
                && !scope.deny.iter().any(|r| r.applies_to(kind, port) && r.targets.contains(a))
        };
        let open = moment == INSIDE;
        // One address, possibly reached through a host name.
        let target = if by_name {
            struct Anywhere(IpAddr);
            impl Resolver for Anywhere {
                fn resolve(&self, _: &str) -> Result<Vec<IpAddr>, String> { Ok(vec![self.0]) }
            }
            TargetSpec::Host("host.example".into()).resolve("host.example", &Anywhere(ip)).unwrap()[0].range
        } else {
            AddrRange::single(ip)
        };
        // The per-packet answer (rules indexed by kind and port) agrees
        // with the plain walk over every rule.
        let hard = sonde::scope::HARD_DENY.iter().any(|(net, _)| {
            let (b, p) = net.split_once('/').unwrap();
            AddrRange::cidr(b.parse().unwrap(), p.parse().unwrap()).unwrap().contains(sonde::targets::canonical_ip(ip))
        });
        prop_assert_eq!(gate.allows(ip, port, kind), covered(ip) && !hard, "{} {:?} {} by\n{}", ip, port, kind, text);
        let d = gate.decide_at(target, port, kind, "t", moment);
        prop_assert!(!d.is_allowed() || (open && covered(ip)), "{ip} {port:?} {kind} at {moment} allowed by\n{text}");
        if open && covered(ip) && !sonde::scope::HARD_DENY.iter().any(|(net, _)| {
            let (b, p) = net.split_once('/').unwrap();
            AddrRange::cidr(b.parse().unwrap(), p.parse().unwrap()).unwrap().contains(sonde::targets::canonical_ip(ip))
        }) {
            prop_assert!(d.is_allowed(), "{ip} {port:?} {kind} refused though allowed by\n{text}");
        }
        // A range: allowed only if every address is.
        let first = sonde::targets::range::addr_value(ip);
        let width = if ip.is_ipv4() { u128::from(u32::MAX) } else { u128::MAX };
        let last = first.saturating_add(span).min(width);
        let family = if ip.is_ipv4() { sonde::targets::Family::V4 } else { sonde::targets::Family::V6 };
        let range = AddrRange::new(ip, family.addr(last));
        if let Ok(range) = range
            && gate.decide_at(range, port, kind, "r", moment).is_allowed()
        {
            for v in first..=last {
                let a = family.addr(v);
                prop_assert!(open && covered(a), "{a} inside an allowed range {range} is not allowed by\n{text}");
            }
        }
    }
}

/// A scope over 198.18.0.0/16 (and its IPv4-mapped form) with a budget,
/// one denied host and, maybe, spoofed sources.
fn budget_scope(budget: u64, denied: u8, spoof: bool) -> Scope {
    let spoof = if spoof {
        "spoof_sources = [\"198.18.5.0/24\"]\n"
    } else {
        ""
    };
    let text = format!(
        "{spoof}[engagement]\nid = \"B\"\nclient = \"c\"\nauthorized_by = \"a\"\ncontact = \"c@example.test\"\n\
         not_before = 2026-01-01T00:00:00Z\nnot_after = 2026-06-30T23:59:59Z\n\
         [limits]\nmax_rate = 2000000\nmax_probes = {budget}\n\
         [[allow]]\ntargets = [\"198.18.0.0/16\", \"::ffff:0:0/96\"]\n\
         [[deny]]\ntargets = [\"198.18.0.{denied}\"]\n"
    );
    Scope::from_toml(&text, "budget.toml").unwrap_or_else(|e| panic!("{e}\n{text}"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Regression (issue 14, finding 1): with several sending threads
    /// reserving at once, the budget was exceeded up to 4x. Any number of
    /// threads, any batch size: exactly `max_probes` permits, never one more.
    #[test]
    fn permits_never_exceed_max_probes_whatever_the_threads(
        budget in 1u64..3000,
        threads in 1usize..5,
        ask in 1u32..2000,
        denied in any::<u8>(),
    ) {
        let gate = local(
            ScopeGate::with_clock(budget_scope(budget, denied, false), Some(1_000_000.0), Arc::new(|| INSIDE))
                .unwrap(),
        );
        let issued = std::sync::atomic::AtomicU64::new(0);
        std::thread::scope(|s| {
            for t in 0..threads {
                let (gate, issued) = (&gate, &issued);
                s.spawn(move || {
                    let dst = IpAddr::from([198, 18, 1, t as u8]);
                    while let Ok(mut batch) = gate.reserve(ask) {
                        // Some threads leave part of an allowance unspent.
                        let spend = if t % 2 == 0 { batch.remaining() } else { batch.remaining().div_ceil(2) };
                        for _ in 0..spend {
                            let _sent = batch.permit(SRC, dst, Some(80), ProbeKind::Syn).unwrap();
                            issued.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        prop_assert_eq!(issued.load(std::sync::atomic::Ordering::Relaxed), budget);
        prop_assert_eq!(gate.issued(), budget);
        let spent = matches!(gate.reserve(1).err(), Some(Refusal::BudgetExhausted { .. }));
        prop_assert!(spent, "the budget is not reported spent");
    }

    /// Regression (issue 14, finding 5): `::ffff:198.18.128.2` got around a
    /// deny rule for 198.18.128.2. No form of a denied address gets a
    /// permit or an "allowed"; the plan check refuses what the budget
    /// cannot cover; sources are this host's or listed spoofed ones.
    #[test]
    fn no_permit_for_a_denied_address_in_any_form_nor_from_a_foreign_source(
        denied in any::<u8>(),
        other in any::<u8>(),
        spoof in any::<bool>(),
        src_host in any::<u8>(),
        src_net in prop_oneof![Just(0u8), Just(5), Just(9)],
        planned in 1u64..2000,
    ) {
        let gate = local(
            ScopeGate::with_clock(budget_scope(1000, denied, spoof), Some(1000.0), Arc::new(|| INSIDE)).unwrap(),
        );
        let v4 = std::net::Ipv4Addr::new(198, 18, 0, denied);
        let forms: [IpAddr; 3] = [v4.into(), v4.to_ipv6_mapped().into(), v4.to_ipv6_compatible().into()];
        let mut batch = gate.reserve(10).unwrap();
        for f in forms {
            prop_assert!(!gate.allows(f, Some(80), ProbeKind::Syn), "{f}");
            prop_assert!(!gate.decide_addr(f, Some(80), ProbeKind::Syn).is_allowed(), "{f}");
            prop_assert!(batch.permit(SRC, f, Some(80), ProbeKind::Syn).is_err(), "{f}");
            let block = AddrRange::cidr(f, if f.is_ipv4() { 24 } else { 120 }).unwrap();
            prop_assert!(!gate.decide(block, Some(80), ProbeKind::Syn, "b").is_allowed(), "{block}");
        }
        if other != denied {
            let ok = std::net::Ipv4Addr::new(198, 18, 0, other);
            prop_assert!(gate.allows(ok.to_ipv6_mapped().into(), Some(80), ProbeKind::Syn));
        }
        prop_assert_eq!(gate.check_plan(planned).is_ok(), planned <= 1000);
        let src = IpAddr::from([198, 18, src_net, src_host]);
        let may = src == SRC || (spoof && src_net == 5);
        prop_assert_eq!(gate.check_source(src).is_ok(), may, "{}", src);
        prop_assert_eq!(
            batch.permit(src, IpAddr::from([198, 18, 1, 1]), Some(80), ProbeKind::Syn).is_ok(),
            may
        );
    }

    /// Regression (issue 14, finding 3): `ports = [-1024]` was read as
    /// 1-1024. Integers are ports 1-65535, strings closed ranges; anything
    /// else is an error, and what parses is exactly what was written.
    #[test]
    fn scope_ports_are_exactly_what_the_file_says(
        items in proptest::collection::vec(
            prop_oneof![
                (-70000i64..70000).prop_map(|n| n.to_string()),
                (1u16..=65535, 0u16..100).prop_map(|(a, w)| format!("\"{a}-{}\"", a.saturating_add(w))),
                (1u16..=65535).prop_map(|a| format!("\"-{a}\"")),
                (1u16..=65535).prop_map(|a| format!("\"{a}-\"")),
            ],
            1..5,
        ),
    ) {
        let text = format!(
            "[engagement]\nid = \"P\"\nclient = \"c\"\nauthorized_by = \"a\"\ncontact = \"c@example.test\"\n\
             not_before = 2026-01-01T00:00:00Z\nnot_after = 2026-06-30T23:59:59Z\n[limits]\nmax_rate = 100\n\
             [[allow]]\ntargets = [\"198.18.0.0/24\"]\nports = [{}]\n",
            items.join(", ")
        );
        let mut expected = sonde::targets::PortSet::new();
        let mut valid = true;
        for item in &items {
            if let Some(range) = item.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
                match range.split_once('-') {
                    Some((a, b)) if !a.is_empty() && !b.is_empty() => {
                        expected.insert(a.parse().unwrap(), b.parse().unwrap())
                    }
                    _ => valid = false,
                }
            } else {
                match item.parse::<i64>().unwrap() {
                    n @ 1..=65535 => expected.insert(n as u16, n as u16),
                    _ => valid = false,
                }
            }
        }
        match Scope::from_toml(&text, "ports.toml") {
            Ok(scope) => {
                prop_assert!(valid, "accepted {items:?}");
                prop_assert_eq!(scope.allow[0].ports.clone(), Some(expected));
            }
            Err(e) => {
                prop_assert!(!valid, "refused {items:?}: {e}");
                prop_assert_eq!(e.line, 12);
                prop_assert!(e.column >= 10, "{e}");
            }
        }
    }
}

/// Regression (issue 15): a sending thread waiting on a slow rate ignored
/// Ctrl-C for as long as the wait. `reserve_unless` asks whether to stop at
/// least every `MAX_WAIT` and gives the budget back when it does.
#[test]
fn a_wait_for_the_rate_ceiling_ends_when_told_to_stop() {
    let text = SCOPE.replace("max_rate = 500", "max_rate = 500\nmax_probes = 10");
    let scope = Scope::from_toml(&text, "t").unwrap();
    // Half a packet a second: the second reservation would wait 2 s.
    let gate = local(ScopeGate::with_clock(scope, Some(0.5), Arc::new(|| INSIDE)).unwrap());
    let first = gate.reserve_unless(1, &|| false).unwrap().unwrap();
    drop(first);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let started = std::time::Instant::now();
    std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(std::time::Duration::from_millis(100));
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        });
        let waited = gate
            .reserve_unless(1, &|| stop.load(std::sync::atomic::Ordering::Relaxed))
            .unwrap();
        assert!(waited.is_none(), "stopped, not granted");
    });
    assert!(
        started.elapsed() < std::time::Duration::from_millis(1000),
        "{:?}",
        started.elapsed()
    );
    // Nothing was issued, and what was reserved went back to the budget.
    assert_eq!(gate.issued(), 0);
    assert_eq!(gate.budget_left(), Some(10));
}
