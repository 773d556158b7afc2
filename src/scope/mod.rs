//! Scope files: what an engagement authorizes, and the one gate that decides
//! whether a packet may be sent.
//!
//! A [`Scope`] is parsed from TOML ([`Scope::from_toml`], format in
//! `docs/scope-format.md`). A [`ScopeGate`] built from it is the only place a
//! [`Permit`] can come from, and the sender takes nothing without one.
//!
//! ```
//! use sonde::scope::{Scope, ScopeGate, ProbeKind};
//! let scope = Scope::from_toml(r#"
//! [engagement]
//! id = "DOC-1"
//! client = "Example"
//! authorized_by = "A. Person"
//! contact = "secops@example.test"
//! not_before = 2020-01-01T00:00:00Z
//! not_after = 2999-01-01T00:00:00Z
//! [limits]
//! max_rate = 100
//! [[allow]]
//! targets = ["127.0.0.0/8"]
//! ports = "1-1024"
//! "#, "doc.toml").unwrap();
//! // The gate is told this host's addresses: packets carry one of them as
//! // their source (or one the scope lists in spoof_sources).
//! let here = "127.0.0.1".parse().unwrap();
//! let local = [sonde::targets::AddrRange::single(here)].into_iter().collect();
//! let gate = ScopeGate::new(scope, None).unwrap().with_local_sources(local);
//! let mut batch = gate.reserve(2).unwrap();
//! assert!(batch.permit(here, "127.0.0.1".parse().unwrap(), Some(22), ProbeKind::Syn).is_ok());
//! assert!(batch.permit(here, "127.0.0.1".parse().unwrap(), Some(8080), ProbeKind::Syn).is_err());
//! // Not this host's address: the replies would go to someone else.
//! assert!(batch.permit("127.0.0.9".parse().unwrap(), "127.0.0.1".parse().unwrap(), Some(22), ProbeKind::Syn).is_err());
//! ```

mod file;
mod gate;
mod parse;

use std::fmt;
use std::str::FromStr;

use time::OffsetDateTime;

use crate::targets::{IpSet, PortSet};

pub use file::{MAX_SCOPE_BYTES, ScopeFile, ScopeFileError};
pub(crate) use gate::rfc3339 as gate_time;
pub use gate::{
    Allowance, Decision, HARD_DENY, MAX_WAIT, MIN_RATE, Permit, Refusal, ScopeGate, judge_ports,
};
pub use parse::ScopeError;

/// The kinds of probe sonde sends; each scope says which it allows.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum ProbeKind {
    /// TCP SYN to a port.
    Syn,
    /// ICMP or ICMPv6 echo request; has no port.
    Icmp,
    /// DNS query over UDP to a port (53 unless said otherwise).
    Dns,
    /// A TCP connection through the kernel to an open port, to name the
    /// service behind it (issue 28): its packets are the kernel's, each
    /// connection under one permit.
    Service,
}

impl ProbeKind {
    pub const ALL: [ProbeKind; 4] = [
        ProbeKind::Syn,
        ProbeKind::Icmp,
        ProbeKind::Dns,
        ProbeKind::Service,
    ];
    /// The kinds sent as crafted packets by the scan engine.
    pub const RAW: [ProbeKind; 3] = [ProbeKind::Syn, ProbeKind::Icmp, ProbeKind::Dns];

    pub fn name(self) -> &'static str {
        match self {
            ProbeKind::Syn => "syn",
            ProbeKind::Icmp => "icmp",
            ProbeKind::Dns => "dns",
            ProbeKind::Service => "service",
        }
    }

    /// Whether the scan engine sends it as crafted packets (not a kernel
    /// connection).
    pub fn is_raw(self) -> bool {
        !matches!(self, ProbeKind::Service)
    }

    /// Whether probes of this kind go to a port.
    pub fn has_port(self) -> bool {
        !matches!(self, ProbeKind::Icmp)
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for ProbeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

impl FromStr for ProbeKind {
    type Err = String;
    fn from_str(s: &str) -> Result<ProbeKind, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "syn" | "tcp" => Ok(ProbeKind::Syn),
            "icmp" | "ping" | "echo" => Ok(ProbeKind::Icmp),
            "dns" => Ok(ProbeKind::Dns),
            "service" | "sv" | "version" => Ok(ProbeKind::Service),
            other => Err(format!(
                "unknown probe kind {other:?}: the kinds are syn, icmp, dns, service"
            )),
        }
    }
}

/// A small set of probe kinds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ProbeKinds(u8);

impl ProbeKinds {
    pub fn all() -> ProbeKinds {
        ProbeKind::ALL.into_iter().collect()
    }
    /// What a scope without a `probes` list allows: the crafted kinds.
    /// Connections to services are allowed only where a scope names them.
    pub fn crafted() -> ProbeKinds {
        ProbeKind::RAW.into_iter().collect()
    }
    pub fn contains(self, k: ProbeKind) -> bool {
        self.0 & k.bit() != 0
    }
    pub fn insert(&mut self, k: ProbeKind) {
        self.0 |= k.bit();
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    pub fn iter(self) -> impl Iterator<Item = ProbeKind> {
        ProbeKind::ALL
            .into_iter()
            .filter(move |k| self.contains(*k))
    }
}

impl FromIterator<ProbeKind> for ProbeKinds {
    fn from_iter<I: IntoIterator<Item = ProbeKind>>(iter: I) -> ProbeKinds {
        let mut s = ProbeKinds::default();
        for k in iter {
            s.insert(k);
        }
        s
    }
}

impl fmt::Display for ProbeKinds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.iter().map(ProbeKind::name).collect();
        f.write_str(&names.join(","))
    }
}

/// Who authorized the work, and when it may happen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Engagement {
    pub id: String,
    pub client: String,
    pub authorized_by: String,
    pub contact: String,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub notes: Option<String>,
}

/// Whether a rule grants or takes away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleKind {
    Allow,
    Deny,
}

/// One `[[allow]]` or `[[deny]]` table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub kind: RuleKind,
    /// Position among the rules of its kind, from 0.
    pub index: usize,
    pub name: Option<String>,
    /// Line of the rule's table in the scope file, from 1.
    pub line: usize,
    pub targets: IpSet,
    /// The rule's targets as written, for summaries.
    pub target_text: Vec<String>,
    /// `None`: every port.
    pub ports: Option<PortSet>,
    /// `None`: every kind the scope allows.
    pub probes: Option<ProbeKinds>,
    pub reason: Option<String>,
}

impl Rule {
    /// Whether this rule speaks about a probe of `kind` to `port`.
    ///
    /// ICMP has no port: an allow rule's port list does not keep ICMP from its
    /// targets, and a deny rule with a port list takes away only those ports,
    /// so it does not deny ICMP either.
    pub fn applies_to(&self, kind: ProbeKind, port: Option<u16>) -> bool {
        if self.probes.is_some_and(|p| !p.contains(kind)) {
            return false;
        }
        match (&self.ports, kind.has_port(), port) {
            (Some(ports), true, Some(p)) => ports.contains(p),
            (Some(_), false, _) => self.kind == RuleKind::Allow,
            _ => true,
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            RuleKind::Allow => "allow",
            RuleKind::Deny => "deny",
        };
        write!(f, "{kind}[{}]", self.index)?;
        if let Some(name) = &self.name {
            write!(f, " {name:?}")?;
        }
        write!(f, " (line {})", self.line)
    }
}

/// A parsed, validated scope file.
#[derive(Clone, Debug, PartialEq)]
pub struct Scope {
    pub engagement: Engagement,
    /// Ceiling on the send rate, packets per second.
    pub max_rate: f64,
    /// Ceiling on the number of probes one run may send.
    pub max_probes: Option<u64>,
    /// Probe kinds allowed anywhere in this scope.
    pub probes: ProbeKinds,
    pub allow: Vec<Rule>,
    pub deny: Vec<Rule>,
    /// Source addresses a packet may carry although they are not this
    /// host's (`spoof_sources`); empty unless the file lists them.
    pub spoof_sources: IpSet,
}

impl Scope {
    /// The ports a SYN scan probes when none are named: the ports the scope
    /// allows SYN probes to, or nmap's top 1,000 when it allows them all.
    /// `scan` and `scope check` share it, so the check judges what the scan
    /// would send.
    pub fn default_syn_ports(&self) -> PortSet {
        let allowed = self.allowed_ports(ProbeKind::Syn);
        if allowed.len() < 65_535 {
            allowed
        } else {
            PortSet::top(1000).expect("1000 is within the list")
        }
    }

    /// The addresses of `targets` that a deny rule names: what `--exclude`
    /// would take out so the rest can be judged on its own.
    pub fn denied_part(&self, targets: &IpSet) -> IpSet {
        // Every deny rule's ranges sorted and merged once: a union per rule
        // was quadratic (a dry run of a 100,000-rule scope that hit one
        // deny rule took 9.2 s, issue 26).
        let denied = IpSet::union_of(self.deny.iter().map(|r| &r.targets));
        // targets ∩ denied = targets − (targets − denied)
        let mut outside = targets.clone();
        outside.subtract(&denied);
        let mut inside = targets.clone();
        inside.subtract(&outside);
        inside
    }

    /// The hint a refusal by deny rules gets: the `--exclude` that carves
    /// the denied addresses out (exclusions only narrow), when there are any.
    pub fn exclude_hint(&self, targets: &IpSet) -> Option<String> {
        let part = self.denied_part(targets);
        if part.is_empty() {
            return None;
        }
        // A few ranges fit a command line; a scope of thousands of deny
        // rules gave a note of half a megabyte.
        const LISTED: usize = 16;
        let ranges: Vec<String> = part.ranges().map(|r| r.to_string()).collect();
        if ranges.len() <= LISTED {
            let list = ranges.join(",");
            return Some(format!(
                "note: deny rules cover {list} of the targets; --exclude {list} takes that out, and the rest is judged on its own"
            ));
        }
        let addresses =
            part.count(crate::targets::Family::V4) + part.count(crate::targets::Family::V6);
        Some(format!(
            "note: deny rules cover {} separate ranges ({addresses} addresses) of the targets, the first {LISTED}: {}; --excludefile FILE with the deny rules' targets (one per line) takes them out, and the rest is judged on its own",
            ranges.len(),
            ranges[..LISTED].join(",")
        ))
    }

    /// Parse and validate a scope file's text; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Scope, ScopeError> {
        parse::parse(text, origin)
    }

    /// Addresses some allow rule grants for `kind`, less hard-denied ones and
    /// those taken away by deny rules that apply to every port.
    pub fn allowed_addresses(&self, kind: ProbeKind) -> IpSet {
        if !self.probes.contains(kind) {
            return IpSet::new();
        }
        // Each side sorted and merged once, then one subtraction: rule by
        // rule was quadratic (a dry run of a 100,000-rule scope that hit
        // one deny rule took 20 s, issue 26).
        let mut set = IpSet::union_of(
            self.allow
                .iter()
                .filter(|r| r.probes.is_none_or(|p| p.contains(kind)))
                .map(|r| &r.targets),
        );
        set.subtract(&IpSet::union_of(
            self.deny
                .iter()
                .filter(|r| r.probes.is_none_or(|p| p.contains(kind)) && r.ports.is_none())
                .map(|r| &r.targets),
        ));
        set.subtract(&gate::hard_deny_set());
        set
    }

    /// Ports some allow rule grants for `kind` (all ports when a rule lists none).
    pub fn allowed_ports(&self, kind: ProbeKind) -> PortSet {
        let mut ports = PortSet::new();
        for r in self
            .allow
            .iter()
            .filter(|r| r.probes.is_none_or(|p| p.contains(kind)))
        {
            match &r.ports {
                Some(p) => ports.union_with(p),
                None => return PortSet::all(),
            }
        }
        ports
    }
}
