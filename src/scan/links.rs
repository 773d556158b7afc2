//! The targets grouped by how they leave this host, as nmap groups them:
//! one group per interface (on-link targets, targets behind a gateway,
//! and this host's own addresses, which the kernel routes over loopback).
//! A run opens one link per group and drives every group under one gate,
//! one rate, one budget, one correlator and one capture.
//!
//! The grouping itself is pure: it is given where each part of the target
//! set is routed, so it is tested with made-up routes.

pub use crate::results::LinkReport;
use std::collections::BTreeSet;
use std::net::IpAddr;

use crate::targets::{AddrRange, IpSet};

/// Where one address leaves: (interface index, gateway, source address),
/// as the kernel answers a route question.
pub type Route = (u32, Option<IpAddr>, IpAddr);

/// The targets that leave through one interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Egress {
    pub ifindex: u32,
    /// The interface's name (`eth0`, `lo`).
    pub name: String,
    /// The interface has no neighbours to ask for (loopback, tunnels):
    /// its probes go through the kernel's raw IP socket.
    pub through_kernel: bool,
    pub targets: IpSet,
    /// The addresses replies come back to (the routes' sources, or the
    /// one `--source-ip` gives).
    pub sources: Vec<IpAddr>,
    /// Gateways in front of some of the targets.
    pub gateways: BTreeSet<IpAddr>,
    /// Some targets are on the link itself (no gateway).
    pub on_link: bool,
}

impl Egress {
    /// How the group is reached, for the dry run and the report:
    /// `lo (this host, through the kernel)`, `eth0 (on-link)`,
    /// `eth0 (via 198.18.0.254)`, or both of the last two.
    pub fn describe(&self) -> String {
        let how = if self.through_kernel {
            "through the kernel".to_string()
        } else {
            let mut parts = Vec::new();
            if self.on_link {
                parts.push("on-link".to_string());
            }
            for g in &self.gateways {
                parts.push(format!("via {g}"));
            }
            parts.join(", ")
        };
        format!("{} ({how})", self.name)
    }
}

impl From<&Egress> for LinkReport {
    fn from(g: &Egress) -> LinkReport {
        let described = g.describe();
        LinkReport {
            interface: g.name.clone(),
            reached: described
                .strip_prefix(&format!("{} (", g.name))
                .and_then(|d| d.strip_suffix(')'))
                .unwrap_or(&described)
                .to_string(),
            targets: g.targets.ranges().map(|r| r.to_string()).collect(),
            sources: g.sources.clone(),
        }
    }
}

/// Group the target set's `parts` by egress: parts cut where a route may
/// change (see `RouteCache::split_at_prefixes`), so that `route`'s answer
/// for a part's first address holds for all of it; `interface` names an interface and says whether its probes go
/// through the kernel. Groups come in the order their interfaces are first
/// met; `source` replaces every route's source of its family.
pub fn group<R, I>(
    parts: &[AddrRange],
    mut route: R,
    mut interface: I,
    source: Option<IpAddr>,
) -> Result<Vec<Egress>, crate::net::route::RouteError>
where
    R: FnMut(IpAddr) -> Result<Route, crate::net::route::RouteError>,
    I: FnMut(u32) -> Result<(String, bool), crate::net::route::RouteError>,
{
    let mut groups: Vec<(Egress, Vec<AddrRange>)> = Vec::new();
    {
        for &part in parts {
            let (ifindex, gateway, route_source) = route(part.first())?;
            let i = match groups.iter().position(|(g, _)| g.ifindex == ifindex) {
                Some(i) => i,
                None => {
                    let (name, through_kernel) = interface(ifindex)?;
                    groups.push((
                        Egress {
                            ifindex,
                            name,
                            through_kernel,
                            targets: IpSet::new(),
                            sources: Vec::new(),
                            gateways: BTreeSet::new(),
                            on_link: false,
                        },
                        Vec::new(),
                    ));
                    groups.len() - 1
                }
            };
            let (g, parts) = &mut groups[i];
            parts.push(part);
            let from = source
                .filter(|s| s.is_ipv4() == part.first().is_ipv4())
                .unwrap_or(route_source);
            if !g.sources.contains(&from) {
                g.sources.push(from);
            }
            match gateway {
                Some(gw) if !g.through_kernel => {
                    g.gateways.insert(gw);
                }
                _ => g.on_link = true,
            }
        }
    }
    Ok(groups
        .into_iter()
        .map(|(mut g, parts)| {
            // Collected at once: sorting and merging, not an insert per part.
            g.targets = parts.into_iter().collect();
            g
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::route::RouteError;

    fn set(ranges: &[(&str, &str)]) -> IpSet {
        ranges
            .iter()
            .map(|(a, b)| AddrRange::new(a.parse().unwrap(), b.parse().unwrap()).unwrap())
            .collect()
    }

    /// A host on 198.18.0.1/16 (interface 2), a gateway 198.18.0.254 to
    /// 198.19.0.0/16, loopback (interface 1) for its own addresses.
    fn lab_route(ip: IpAddr) -> Result<Route, RouteError> {
        let me: IpAddr = "198.18.0.1".parse().unwrap();
        let v = crate::targets::range::addr_value(ip);
        let on_link = |a: &str, b: &str| {
            let a: IpAddr = a.parse().unwrap();
            let b: IpAddr = b.parse().unwrap();
            (crate::targets::range::addr_value(a)..=crate::targets::range::addr_value(b))
                .contains(&v)
        };
        Ok(if ip == me {
            (1, None, me)
        } else if ip.is_loopback() {
            (1, None, ip)
        } else if on_link("198.18.0.0", "198.18.255.255") {
            (2, None, me)
        } else if on_link("198.19.0.0", "198.19.255.255") {
            (2, Some("198.18.0.254".parse().unwrap()), me)
        } else {
            (
                3,
                Some("192.0.2.1".parse().unwrap()),
                "192.0.2.2".parse().unwrap(),
            )
        })
    }

    /// The prefixes of the lab: the /16, the gateway's /16, the host's /32.
    fn lab_split(r: AddrRange) -> Vec<AddrRange> {
        let cuts = ["198.18.0.1", "198.18.0.2", "198.19.0.0", "198.20.0.0"];
        let mut parts = Vec::new();
        let mut from = r.start_value();
        for c in cuts {
            let c = crate::targets::range::addr_value(c.parse().unwrap());
            if c > from && c <= r.end_value() {
                parts.push((from, c - 1));
                from = c;
            }
        }
        parts.push((from, r.end_value()));
        parts
            .into_iter()
            .map(|(a, b)| AddrRange::new(r.family().addr(a), r.family().addr(b)).unwrap())
            .collect()
    }

    fn parts(targets: &IpSet) -> Vec<AddrRange> {
        targets.ranges().flat_map(lab_split).collect()
    }

    fn name(i: u32) -> Result<(String, bool), RouteError> {
        Ok(match i {
            1 => ("lo".into(), true),
            2 => ("cs0".into(), false),
            _ => ("wan0".into(), false),
        })
    }

    /// Regression (issue 25): the scanner's own /16 was refused because its
    /// own address goes through loopback: "the targets are reached through
    /// several interfaces (cs0, lo)". It is two groups of one run.
    #[test]
    fn the_scanners_own_subnet_is_two_groups_own_address_through_loopback() {
        let targets = set(&[("198.18.0.0", "198.18.255.255")]);
        let groups = group(&parts(&targets), lab_route, name, None).unwrap();
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].name, "cs0");
        assert_eq!(
            groups[0].targets,
            set(&[
                ("198.18.0.0", "198.18.0.0"),
                ("198.18.0.2", "198.18.255.255")
            ])
        );
        assert_eq!(groups[0].describe(), "cs0 (on-link)");
        assert_eq!(groups[1].name, "lo");
        assert!(groups[1].through_kernel);
        assert_eq!(groups[1].targets, set(&[("198.18.0.1", "198.18.0.1")]));
        assert_eq!(
            groups[1].sources,
            vec!["198.18.0.1".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(groups[1].describe(), "lo (through the kernel)");
    }

    #[test]
    fn loopback_lab_and_routed_targets_each_find_their_link() {
        let targets = set(&[
            ("127.0.0.1", "127.0.0.1"),
            ("198.18.1.1", "198.18.1.9"),
            ("198.19.5.0", "198.19.5.255"),
        ]);
        let groups = group(&parts(&targets), lab_route, name, None).unwrap();
        assert_eq!(groups.len(), 2, "{groups:?}");
        assert_eq!(groups[0].name, "lo");
        assert_eq!(
            groups[0].sources,
            vec!["127.0.0.1".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(groups[1].name, "cs0");
        assert_eq!(groups[1].describe(), "cs0 (on-link, via 198.18.0.254)");
        assert_eq!(groups[1].targets.count(crate::targets::Family::V4), 9 + 256);
    }

    #[test]
    fn a_given_source_replaces_the_routes_source_of_its_family_only() {
        let targets = set(&[("198.18.1.1", "198.18.1.1"), ("::1", "::1")]);
        let route = |ip: IpAddr| -> Result<Route, RouteError> {
            Ok(if ip.is_ipv6() {
                (1, None, ip)
            } else {
                lab_route(ip)?
            })
        };
        let src: IpAddr = "198.18.0.9".parse().unwrap();
        let groups = group(&parts(&targets), route, name, Some(src)).unwrap();
        assert_eq!(groups[0].sources, vec![src]);
        assert_eq!(groups[1].sources, vec!["::1".parse::<IpAddr>().unwrap()]);
    }

    #[test]
    fn a_route_error_is_passed_on() {
        let targets = set(&[("198.18.1.1", "198.18.1.1")]);
        let err = group(
            &parts(&targets),
            |ip| {
                Err(RouteError::NoRoute {
                    target: ip,
                    reason: "unreachable".into(),
                })
            },
            name,
            None,
        );
        assert!(err.is_err());
    }
}
