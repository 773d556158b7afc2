//! Next-hop resolution in the lab: the kernel's route and neighbour tables,
//! for routed and on-link targets, IPv4 and IPv6. Nothing here sends a
//! probe; the neighbour entries come from ping inside the lab.

use std::net::IpAddr;

use sonde::net::route::{RouteCache, RouteError, interface, neighbours, resolve};
use sonde::wire::ethernet::parse_mac;
use support::lab::*;

/// The MAC of an interface inside a lab namespace, as `ip` reports it.
fn mac_in(ns: &str, ifname: &str) -> [u8; 6] {
    let out = std::process::Command::new("ip")
        .args(["-n", ns, "-o", "link", "show", ifname])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let mac = text
        .split("link/ether ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no MAC in {text}"));
    parse_mac(mac).unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn routed_and_on_link_targets_resolve_to_the_right_next_hop() {
    let lab = Lab::new();
    let gateway_mac = mac_in(&lab.target_ns, "vt");
    let scanner_mac = mac_in(&lab.scanner_ns, "vs");

    // With an empty neighbour table the gateway's MAC is unknown: a clear
    // error, and nothing sent (the lab's start-up traffic resolved it, so flush).
    let flushed = std::process::Command::new("ip")
        .args(["-n", &lab.scanner_ns, "neigh", "flush", "all"])
        .status()
        .unwrap();
    assert!(flushed.success());
    let before = lab.in_scanner(|| resolve(ip("198.18.1.10"), &neighbours().unwrap()));
    match before {
        Err(RouteError::NeighbourUnknown {
            next_hop,
            ref ifname,
            ..
        }) => {
            assert_eq!((next_hop, ifname.as_str()), (ip("198.18.0.1"), "vs"));
            assert!(
                before
                    .as_ref()
                    .unwrap_err()
                    .to_string()
                    .contains("ping 198.18.0.1")
            );
        }
        other => panic!("expected NeighbourUnknown, got {other:?}"),
    }

    // Resolve the neighbours the ordinary way, inside the lab.
    for target in ["198.18.0.1", "198.18.0.15", "2001:db8::1"] {
        let ok = lab
            .scanner_command("ping")
            .args(["-c", "1", "-W", "2", target])
            .status()
            .unwrap()
            .success();
        assert!(ok, "ping {target} inside the lab");
    }

    let hops = lab.in_scanner(|| {
        let n = neighbours().unwrap();
        ["198.18.1.10", "198.18.0.15", "2001:db8:1::10"].map(|t| resolve(ip(t), &n).unwrap())
    });
    let [routed, on_link, routed6] = hops;
    assert_eq!(
        (routed.gateway, routed.source),
        (Some(ip("198.18.0.1")), ip(US4))
    );
    let routed_if = lab.in_scanner(move || interface(routed.ifindex).unwrap().0);
    assert_eq!(routed_if, "vs");
    assert_eq!(
        (routed.next_hop_mac, routed.source_mac),
        (gateway_mac, scanner_mac)
    );
    assert_eq!(
        (on_link.gateway, on_link.source),
        (None, ip(US4)),
        "on-link: no gateway"
    );
    assert_eq!(
        on_link.next_hop_mac, gateway_mac,
        "198.18.0.15 lives on the target side's vt"
    );
    assert_eq!(
        (routed6.gateway, routed6.source),
        (Some(ip("2001:db8::1")), ip(US6))
    );
    assert_eq!(routed6.next_hop_mac, gateway_mac);

    // The scan's cache decides exactly as the kernel does per target, with
    // one kernel question per route for IPv4.
    let (cached, per_target_hops, lookups) = lab.in_scanner(|| {
        let n = neighbours().unwrap();
        let mut cache = RouteCache::load().unwrap();
        let targets: Vec<IpAddr> = (10..20)
            .map(|h| ip(&format!("198.18.1.{h}")))
            .chain((10..20).map(|h| ip(&format!("198.18.0.{h}"))))
            .chain(["198.18.0.1", "2001:db8:1::10"].map(ip))
            .collect();
        let neighbour_known = |t: &IpAddr| resolve(*t, &n).is_ok();
        let targets: Vec<IpAddr> = targets.into_iter().filter(neighbour_known).collect();
        let cached: Vec<_> = targets.iter().map(|t| cache.resolve(*t).unwrap()).collect();
        let direct: Vec<_> = targets.iter().map(|t| resolve(*t, &n).unwrap()).collect();
        (cached, direct, cache.kernel_lookups)
    });
    assert_eq!(cached, per_target_hops);
    assert!(
        cached.len() >= 13,
        "routed, gateway and IPv6 hops at least: {cached:?}"
    );
    // 198.18.1.0/24 (one route), 198.18.0.0/24 on-link (one), 198.18.0.1
    // (same on-link route) and one per IPv6 target.
    assert!(
        lookups <= 3,
        "{lookups} kernel lookups for {} targets",
        cached.len()
    );

    // A target without a route.
    let none = lab.in_scanner(|| resolve(ip("203.0.113.9"), &[]).map(|_| ()));
    assert!(
        matches!(none, Err(RouteError::NoRoute { .. }))
            || matches!(none, Err(RouteError::NeighbourUnknown { .. })),
        "{none:?}"
    );
}

const US4: &str = "198.18.0.2";
const US6: &str = "2001:db8::2";

/// With a policy rule in place the per-route argument no longer holds, so
/// the cache asks the kernel about every target, and still agrees with it.
#[test]
fn policy_rules_make_the_route_cache_ask_per_target() {
    let lab = Lab::new();
    let ok = lab
        .scanner_command("ip")
        .args([
            "rule",
            "add",
            "to",
            "198.18.1.16/28",
            "lookup",
            "main",
            "pref",
            "100",
        ])
        .status()
        .unwrap()
        .success();
    assert!(ok, "ip rule add");
    let (per_target, lookups) = lab.in_scanner(|| {
        let mut cache = RouteCache::load().unwrap();
        for h in 10..20 {
            cache.route(ip(&format!("198.18.1.{h}"))).unwrap();
        }
        (cache.per_target(), cache.kernel_lookups)
    });
    assert!(per_target);
    assert_eq!(lookups, 10);
}
