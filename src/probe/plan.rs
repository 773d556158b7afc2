//! What a scan sends, as a function: for each probe kind an index space
//! (targets × ports, or × DNS questions) walked in a keyed order. A
//! position in that order names exactly one probe. The scan's senders,
//! the correlator's bitmap and `sonde verify`'s rebuild of a compact
//! run's probes all read probes from here, so they cannot disagree.
//!
//! ```
//! use sonde::probe::plan::ProbePlan;
//! use sonde::scope::ProbeKind;
//! use sonde::targets::{AddrRange, IpSet, PortSet};
//! let targets: IpSet = [AddrRange::cidr("198.18.0.0".parse().unwrap(), 30).unwrap()]
//!     .into_iter()
//!     .collect();
//! let plan = ProbePlan::new(&targets, &PortSet::parse("22,80").unwrap(),
//!     &[ProbeKind::Syn], 1, 53, 7).unwrap();
//! let syn = plan.kind(ProbeKind::Syn).unwrap();
//! assert_eq!(syn.len(), 8);
//! let p = syn.at_position(0);
//! assert!(targets.contains(p.target) && [22, 80].contains(&p.port.unwrap()));
//! ```

use std::net::IpAddr;

use super::build::{BuildError, DnsQuestion, Probe, ProbeTemplate, build};
use super::cookie::CookieKey;
use super::order::Permutation;
use crate::scope::ProbeKind;
use crate::targets::index::{IndexError, IndexSpace};
use crate::targets::{IpSet, PortSet};

/// One probe as the plan names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlannedProbe {
    pub kind: ProbeKind,
    pub target: IpAddr,
    /// The destination port (SYN: the port scanned; DNS: the DNS port).
    pub port: Option<u16>,
    /// The DNS question's index (0 for other kinds).
    pub question: u8,
}

impl PlannedProbe {
    /// Build this probe from `src` into `buf`: its marks from `key` (the DNS
    /// id carrying the question's index), the header values of `template`,
    /// the question from `questions`. The scan's senders and `sonde
    /// verify`'s rebuild of a compact run both build through here, so the
    /// bytes rebuilt are the bytes sent.
    pub fn build(
        &self,
        buf: &mut Vec<u8>,
        src: IpAddr,
        key: &CookieKey,
        template: &ProbeTemplate,
        questions: &[DnsQuestion],
    ) -> Result<(), BuildError> {
        let mut marks = key.marks(src, self.target, self.port.unwrap_or(0), self.kind);
        marks.dns_id = marks.dns_id_for(self.question);
        let probe = Probe {
            kind: self.kind,
            src,
            dst: self.target,
            port: self.port,
        };
        build(
            buf,
            &probe,
            &marks,
            template,
            questions.get(usize::from(self.question)),
        )
    }
}

/// One kind's probes: its index space and the keyed order it is sent in.
#[derive(Clone, Debug)]
pub struct KindPlan {
    pub kind: ProbeKind,
    pub space: IndexSpace,
    pub order: Permutation,
    dns_port: u16,
}

impl KindPlan {
    pub fn len(&self) -> u64 {
        self.space.len()
    }

    pub fn is_empty(&self) -> bool {
        self.space.is_empty()
    }

    /// The probe at `index` of the space (not of the order).
    pub fn at_index(&self, index: u64) -> PlannedProbe {
        let (target, slot) = self.space.get(index);
        let (port, question) = match self.kind {
            // DNS: the "port" dimension is the question, from 1 (port sets
            // start at 1); every DNS probe goes to the DNS port.
            ProbeKind::Dns => (
                Some(self.dns_port),
                slot.unwrap_or(1).saturating_sub(1) as u8,
            ),
            _ => (slot, 0),
        };
        PlannedProbe {
            kind: self.kind,
            target,
            port,
            question,
        }
    }

    /// The probe sent at `position` of the keyed order (`position < len`).
    pub fn at_position(&self, position: u64) -> PlannedProbe {
        self.at_index(self.order.apply(position))
    }
}

/// Every kind's probes of one scan.
#[derive(Clone, Debug)]
pub struct ProbePlan {
    kinds: Vec<KindPlan>,
}

impl ProbePlan {
    /// The plan for `kinds` over `targets`: SYN probes to `ports`, DNS
    /// probes asking `questions` questions of `dns_port`, ICMP one per
    /// address; each kind's order keyed by `seed` and the kind.
    pub fn new(
        targets: &IpSet,
        ports: &PortSet,
        kinds: &[ProbeKind],
        questions: usize,
        dns_port: u16,
        seed: u64,
    ) -> Result<ProbePlan, IndexError> {
        // Service identification connects through the kernel after the
        // scan; the plan holds the crafted kinds only.
        let kinds = kinds
            .iter()
            .filter(|k| k.is_raw())
            .map(|&kind| {
                let slots = match kind {
                    ProbeKind::Syn => Some(ports.clone()),
                    ProbeKind::Dns => {
                        let mut s = PortSet::new();
                        s.insert(1, questions.clamp(1, usize::from(u16::MAX)) as u16);
                        Some(s)
                    }
                    ProbeKind::Icmp => None,
                    ProbeKind::Service => unreachable!("filtered out above"),
                };
                let space = IndexSpace::new(targets, slots.as_ref())?;
                let order =
                    Permutation::new(space.len(), seed ^ (kind as u64).wrapping_mul(0x9e37_79b9));
                Ok(KindPlan {
                    kind,
                    space,
                    order,
                    dns_port,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(ProbePlan { kinds })
    }

    pub fn kinds(&self) -> &[KindPlan] {
        &self.kinds
    }

    pub fn kind(&self, kind: ProbeKind) -> Option<&KindPlan> {
        self.kinds.iter().find(|k| k.kind == kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::targets::AddrRange;

    fn targets() -> IpSet {
        [AddrRange::cidr("198.18.0.0".parse().unwrap(), 29).unwrap()]
            .into_iter()
            .collect()
    }

    #[test]
    fn every_position_names_a_distinct_probe_of_the_scan() {
        let plan = ProbePlan::new(
            &targets(),
            &PortSet::parse("22,80,443").unwrap(),
            &[ProbeKind::Syn, ProbeKind::Icmp, ProbeKind::Dns],
            3,
            5353,
            99,
        )
        .unwrap();
        for k in plan.kinds() {
            let mut seen = std::collections::HashSet::new();
            for pos in 0..k.len() {
                let p = k.at_position(pos);
                assert_eq!(p.kind, k.kind);
                assert!(targets().contains(p.target));
                match k.kind {
                    ProbeKind::Syn => assert!([22, 80, 443].contains(&p.port.unwrap())),
                    ProbeKind::Dns => {
                        assert_eq!(p.port, Some(5353));
                        assert!(p.question < 3);
                    }
                    ProbeKind::Icmp => assert_eq!((p.port, p.question), (None, 0)),
                    ProbeKind::Service => panic!("the plan holds crafted kinds only"),
                }
                assert!(seen.insert((p.target, p.port, p.question)), "{p:?} twice");
            }
        }
        assert_eq!(plan.kind(ProbeKind::Dns).unwrap().len(), 8 * 3);
    }

    #[test]
    fn the_order_depends_on_seed_and_kind() {
        let ports = PortSet::parse("1-100").unwrap();
        let a = ProbePlan::new(&targets(), &ports, &[ProbeKind::Syn], 1, 53, 1).unwrap();
        let b = ProbePlan::new(&targets(), &ports, &[ProbeKind::Syn], 1, 53, 2).unwrap();
        let first = |p: &ProbePlan| {
            (0..20)
                .map(|i| p.kinds()[0].at_position(i))
                .collect::<Vec<_>>()
        };
        assert_ne!(first(&a), first(&b));
        assert_eq!(
            first(&a),
            first(&ProbePlan::new(&targets(), &ports, &[ProbeKind::Syn], 1, 53, 1).unwrap())
        );
    }
}
