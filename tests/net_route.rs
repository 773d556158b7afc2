//! Next-hop resolution in the lab: the kernel's route and neighbour tables,
//! for routed and on-link targets, IPv4 and IPv6. Nothing here sends a
//! probe; the neighbour entries come from ping inside the lab.

mod support;

use std::net::IpAddr;

use sonde::net::route::{RouteError, neighbours, parse_mac, resolve};
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
        (routed.gateway, routed.source, routed.ifname.as_str()),
        (Some(ip("198.18.0.1")), ip(US4), "vs")
    );
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
