//! `nxdomain_rewriting`: a resolver that answers a name which cannot exist
//! with an address, instead of NXDOMAIN: an ISP's or a captive portal's
//! "search assistance", or a hijacked resolver sending every typo to a
//! server of its choosing (ads, phishing, interception).
//!
//! Names that cannot exist ([`crate::analyze::dns::cannot_exist`]): one
//! under a special-use domain that never resolves (`.invalid`, `.test`,
//! `.example`, `.onion`) is enough; random single labels (Chromium asks
//! three at start-up to find such resolvers) count when at least
//! `min_random_names` of them get the same address from one resolver. A
//! local resolver answering its own single-label host names (`printer`,
//! `fileserver`) gives each its own address, and is no finding.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::{Anomaly, Severity, Span, push_example};
use crate::analyze::dns::DnsMessage;

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct NxdomainRewritingThresholds {
    /// Distinct random single-label names one resolver answers with the
    /// same address.
    pub min_random_names: u64,
}

impl Default for NxdomainRewritingThresholds {
    fn default() -> Self {
        // Chromium's three probes; two agreeing are already no chance.
        NxdomainRewritingThresholds {
            min_random_names: 2,
        }
    }
}

/// Resolvers and addresses followed, and names kept per address.
const MAX_PAIRS: usize = 1_024;
const MAX_NAMES: usize = 32;

#[derive(Default)]
struct Rewrites {
    /// Distinct names answered, in the order first seen.
    names: Vec<String>,
    more_names: bool,
    reserved: u64,
    random: u64,
    answers: u64,
    span: Option<Span>,
    examples: Vec<u64>,
}

pub struct NxdomainRewriting {
    t: NxdomainRewritingThresholds,
    /// (resolver, address it answers with)
    pairs: BTreeMap<(IpAddr, IpAddr), Rewrites>,
}

impl NxdomainRewriting {
    pub fn new(t: NxdomainRewritingThresholds) -> NxdomainRewriting {
        NxdomainRewriting {
            t,
            pairs: BTreeMap::new(),
        }
    }

    /// A DNS response from `resolver`.
    pub fn response(&mut self, frame: u64, ts: i64, resolver: IpAddr, m: &DnsMessage) {
        let Some(addr) = m.rewritten_to else { return };
        let key = (resolver, addr);
        if !self.pairs.contains_key(&key) && self.pairs.len() >= MAX_PAIRS {
            return;
        }
        let r = self.pairs.entry(key).or_default();
        r.answers += 1;
        Span::cover(&mut r.span, ts, ts);
        push_example(&mut r.examples, frame);
        if r.names.contains(&m.qname) {
            return;
        }
        if m.qname.contains('.') {
            r.reserved += 1;
        } else {
            r.random += 1;
        }
        if r.names.len() < MAX_NAMES {
            r.names.push(m.qname.clone());
        } else {
            r.more_names = true;
        }
    }

    pub fn finish(self) -> Vec<Anomaly> {
        let thresholds = BTreeMap::from([("min_random_names", self.t.min_random_names as f64)]);
        let mut out = Vec::new();
        for ((resolver, addr), r) in &self.pairs {
            if r.reserved == 0 && r.random < self.t.min_random_names {
                continue;
            }
            let Some(span) = r.span else { continue };
            let mut shown: Vec<&str> = r.names.iter().take(5).map(String::as_str).collect();
            if r.names.len() > 5 || r.more_names {
                shown.push("...");
            }
            out.push(Anomaly {
                evidence: BTreeMap::from([
                    ("answers", r.answers as f64),
                    ("reserved_names", r.reserved as f64),
                    ("random_single_label_names", r.random as f64),
                ]),
                thresholds: thresholds.clone(),
                sources: vec![resolver.to_string()],
                destinations: vec![addr.to_string()],
                note: Some(format!(
                    "names that cannot exist answered with {addr}: {}; a resolver should answer them NXDOMAIN",
                    shown.join(", ")
                )),
                ..Anomaly::new(
                    "nxdomain_rewriting",
                    None,
                    Severity::Medium,
                    format!(
                        "resolver {resolver} answers names that do not exist with {addr} ({}): NXDOMAIN rewriting",
                        shown.join(", ")
                    ),
                    span,
                    r.examples.clone(),
                )
            });
        }
        out
    }
}
