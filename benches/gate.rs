//! The gate's per-packet question with thousands of rules (issue 14,
//! finding 8: 5,000 deny rules cut the scan rate by a quarter when every
//! probe walked every rule). Prints `ScopeGate::allows` per second with no
//! deny rule, 5,000 deny rules on one port list each, and 5,000 with the
//! same port list, next to a walk over every rule (what the gate did
//! before), measured in the same run:
//!
//! ```sh
//! cargo bench --bench gate
//! ```

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use sonde::scope::{ProbeKind, Scope, ScopeGate};

fn scope(deny: usize, same_ports: bool) -> Scope {
    let mut text = String::from(
        "[engagement]\nid = \"B\"\nclient = \"c\"\nauthorized_by = \"a\"\ncontact = \"c@example.test\"\n\
         not_before = 2024-01-01T00:00:00Z\nnot_after = 2099-01-01T00:00:00Z\n[limits]\nmax_rate = 1000\n\
         [[allow]]\ntargets = [\"198.18.0.0/15\"]\n",
    );
    for i in 0..deny {
        let port = if same_ports { 1 } else { 1 + i % 1000 };
        text += &format!(
            "[[deny]]\ntargets = [\"198.19.{}.{}\"]\nports = [{port}]\n",
            (i / 256) % 256,
            i % 256
        );
    }
    Scope::from_toml(&text, "bench.toml").unwrap()
}

/// Decisions per second over a /16 x 24 ports.
fn rate(f: impl Fn(IpAddr, u16) -> bool) -> f64 {
    let started = Instant::now();
    let mut allowed = 0u64;
    let n = 2_000_000u32;
    for i in 0..n {
        let ip = IpAddr::V4(Ipv4Addr::from(
            0xc613_0000 + (i.wrapping_mul(2_654_435_761) >> 16),
        ));
        allowed += u64::from(f(black_box(ip), (i % 24) as u16 + 1));
    }
    black_box(allowed);
    f64::from(n) / started.elapsed().as_secs_f64()
}

fn main() {
    println!(
        "{:<38} {:>14} {:>14} {:>7}",
        "scope", "gate/s", "rule walk/s", "ratio"
    );
    for (name, deny, same) in [
        ("no deny rule", 0, false),
        ("5,000 deny rules, 1,000 port lists", 5_000, false),
        ("5,000 deny rules, one port list", 5_000, true),
    ] {
        let s = scope(deny, same);
        let gate = ScopeGate::new(s.clone(), None).unwrap();
        let indexed = rate(|ip, port| gate.allows(ip, Some(port), ProbeKind::Syn));
        let walk = rate(|ip, port| {
            let k = ProbeKind::Syn;
            !s.deny
                .iter()
                .any(|r| r.applies_to(k, Some(port)) && r.targets.contains(ip))
                && s.allow
                    .iter()
                    .any(|r| r.applies_to(k, Some(port)) && r.targets.contains(ip))
        });
        println!(
            "{name:<38} {indexed:>14.0} {walk:>14.0} {:>6.0}x",
            indexed / walk
        );
    }
}
