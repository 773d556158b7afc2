//! What a request would send, judged as the scan judges it, with nothing
//! sent and nothing written: `sonde scan --dry-run` in the library. The
//! counts are the plan's (its index spaces, this shard's share), the links
//! are the ones the run would open, and the refusals are every one the
//! scan would stop at, not only the first.

use time::OffsetDateTime;

use super::ScanError;
use super::links::Egress;
use super::request::{Prepared, ScanRequest, prepare_on};
use crate::error::Error;
use crate::net::link::Network;
use crate::scope::{ProbeKind, Refusal};

/// How many probes of one kind the scan would send.
#[derive(Clone, Debug, PartialEq)]
pub struct KindCount {
    pub kind: ProbeKind,
    /// Per address: ports for SYN, questions for DNS, 1 for ICMP. For
    /// service probes, an upper bound: one connection per open port the
    /// SYN probes find, none counted ahead.
    pub per_address: u128,
    /// This shard's share of `addresses × per_address`; `None` for service
    /// probes (they depend on what the scan finds).
    pub probes: Option<u128>,
}

/// A dry run's findings.
pub struct Preview {
    /// The scope, gate, targets, ports and every refusal, including the
    /// budget's and the source's.
    pub prepared: Prepared,
    /// Which link each part of the targets leaves through, as the run
    /// groups them, or why the run would fail there.
    pub links: Result<Vec<Egress>, ScanError>,
    pub kinds: Vec<KindCount>,
    /// Probes of the first pass in all (this shard).
    pub total: u128,
    /// The first pass at the gate's rate.
    pub first_pass_seconds: f64,
    /// The scope's hint when a refusal is a denied range the targets
    /// could exclude.
    pub exclude_hint: Option<String>,
}

impl Preview {
    /// Whether the scope allows every probe (a dry run exits 0).
    pub fn allowed(&self) -> bool {
        self.prepared.refusals.is_empty()
    }

    /// The number of target addresses.
    pub fn addresses(&self) -> u128 {
        self.prepared.addresses()
    }
}

/// Judge `request` at `at` (or now) over `network` without sending or
/// creating anything. An error is one a scan would meet before judging
/// (a scope file that cannot be read, no target left); refusals are in
/// the preview.
pub fn preview(
    request: &ScanRequest,
    at: Option<OffsetDateTime>,
    network: &dyn Network,
) -> Result<Preview, Error> {
    let mut prepared = prepare_on(request, at, network)?;
    let addresses = prepared.addresses();
    let links = network
        .routes()
        .map_err(ScanError::Route)
        .and_then(|mut r| {
            super::egress_groups(
                &prepared.targets,
                request.source_ip,
                request.interface.as_deref(),
                &mut r,
            )
        });
    // This machine's share of an index space of `n`, as the plan splits it.
    let (index, count) = (
        u128::from(request.shard.index),
        u128::from(request.shard.count),
    );
    let share = |n: u128| {
        if n > index {
            (n - index).div_ceil(count)
        } else {
            0
        }
    };
    let ports = prepared.ports.len() as u128;
    let kinds: Vec<KindCount> = request
        .probes
        .iter()
        .map(|&kind| {
            let per_address = match kind {
                ProbeKind::Syn | ProbeKind::Service => ports,
                ProbeKind::Icmp => 1,
                ProbeKind::Dns => request.dns_questions.len() as u128,
            };
            let probes = (kind != ProbeKind::Service).then(|| share(addresses * per_address));
            KindCount {
                kind,
                per_address,
                probes,
            }
        })
        .collect();
    let total: u128 = kinds.iter().filter_map(|k| k.probes).sum();
    let gate = &prepared.gate;
    let mut more: Vec<Refusal> = Vec::new();
    if let Err(r) = gate.check_plan(u64::try_from(total).unwrap_or(u64::MAX)) {
        more.push(r);
    }
    if let Some(s) = request.source_ip
        && let Err(r) = gate.check_source(s)
    {
        more.push(r);
    }
    let first_pass_seconds = total as f64 / gate.rate();
    prepared.refusals.extend(more);
    let exclude_hint = prepared
        .refusals
        .iter()
        .any(|r| matches!(r, Refusal::Denied { .. }))
        .then(|| prepared.gate.scope().exclude_hint(&prepared.targets))
        .flatten();
    Ok(Preview {
        prepared,
        links,
        kinds,
        total,
        first_pass_seconds,
        exclude_hint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::simnet::SimNet;
    use crate::targets::IpSet;
    use std::net::Ipv4Addr;

    fn scope(dir: &std::path::Path, limits: &str) -> std::path::PathBuf {
        let path = dir.join("scope.toml");
        std::fs::write(
            &path,
            crate::scan::simnet::scope_toml(
                "PREVIEW-1",
                &format!("max_rate = 1000\n{limits}"),
                "[[deny]]\ntargets = [\"198.18.0.128/25\"]\nreason = \"tests\"\n",
            ),
        )
        .unwrap();
        path
    }

    fn targets(spec: &str) -> Option<IpSet> {
        let mut s = IpSet::new();
        s.insert(spec.parse().unwrap());
        Some(s)
    }

    /// The dry run counts what the plan sends (this shard's share), names
    /// the link, and allows a scope-conforming request.
    #[test]
    fn a_dry_run_counts_the_shards_probes_and_names_the_link() {
        let dir = tempfile::tempdir().unwrap();
        let net = SimNet::new(&[(Ipv4Addr::new(198, 18, 0, 10), &[22])], 0);
        let mut r = ScanRequest::new(scope(dir.path(), ""), targets("198.18.0.10-198.18.0.19"));
        r.ports = Some(crate::targets::PortSet::parse("1-100").unwrap());
        r.probes = vec![ProbeKind::Syn, ProbeKind::Icmp];
        r.shard = crate::targets::index::Shard::parse("2/3").unwrap();
        r.seed = Some(7);
        let p = preview(&r, None, &net).unwrap();
        assert!(p.allowed(), "{:?}", p.prepared.refusals);
        assert_eq!(p.addresses(), 10);
        // 1,000 SYN probes: indices 1, 4, ..., 997 are the second shard's.
        assert_eq!(p.kinds[0].probes, Some(333));
        assert_eq!(p.kinds[1].probes, Some(3));
        assert_eq!(p.total, 336);
        assert!((p.first_pass_seconds - 0.336).abs() < 1e-9);
        let links = p.links.as_ref().unwrap();
        assert_eq!(links.len(), 1);
        assert_eq!(links[0].describe(), "sim0 (on-link)");
    }

    /// Every refusal the scan would stop at is listed, the budget's among
    /// them, with the scope's hint for a denied range.
    #[test]
    fn a_dry_run_lists_every_refusal_and_the_exclude_hint() {
        let dir = tempfile::tempdir().unwrap();
        let net = SimNet::new(&[], 0);
        let r = ScanRequest::new(
            scope(dir.path(), "max_probes = 100"),
            targets("198.18.0.100-198.18.0.140"),
        );
        let p = preview(&r, None, &net).unwrap();
        assert!(!p.allowed());
        let refusals = &p.prepared.refusals;
        assert!(
            refusals.iter().any(|r| matches!(r, Refusal::Denied { .. })),
            "{refusals:?}"
        );
        assert!(
            refusals.iter().any(|r| matches!(
                r,
                Refusal::BudgetTooSmall {
                    max_probes: 100,
                    ..
                }
            )),
            "{refusals:?}"
        );
        let hint = p.exclude_hint.expect("a denied range has a hint");
        assert!(hint.contains("198.18.0.128"), "{hint}");
    }
}
