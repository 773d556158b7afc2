//! Results folded per host as they arrive, as nmap does: what a host
//! answers positively (open ports, echo replies, DNS answers) is kept in
//! full; everything else (closed ports, ICMP-filtered and unreachable ones)
//! becomes counts and port ranges by probe kind, state and reason. So the
//! report and the memory behind it grow with findings, not with every
//! closed port (issue 19); the NDJSON keeps the per-probe results that
//! `--record` asks for.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::probe::Verdict;
use crate::results::FoldedState;
pub use crate::results::{Folded, HostResults, RecordMode, ScanResult, is_finding};
use crate::scope::ProbeKind;
use crate::targets::PortSet;

/// Port ranges kept per folded group; a group scattered over more ranges
/// keeps its count only (a top-1000 scan's closed ports on a /16 would
/// otherwise hold hundreds of ranges per host).
pub const MAX_FOLDED_RANGES: usize = 64;

/// Every host's results, folded as they arrive.
#[derive(Clone, Default)]
pub struct HostTable {
    hosts: BTreeMap<IpAddr, HostResults>,
    /// Results per probe kind (for the unanswered counts).
    answered: [u64; 3],
}

impl HostTable {
    pub fn new() -> HostTable {
        HostTable::default()
    }

    pub fn add(&mut self, r: ScanResult) {
        self.answered[r.probe as usize] += 1;
        let host = self.hosts.entry(r.target).or_insert_with(|| HostResults {
            address: r.target,
            results: Vec::new(),
            not_shown: Vec::new(),
            services: Vec::new(),
        });
        if is_finding(&r.verdict) {
            host.results.push(r);
            return;
        }
        let (state, reason) = match r.verdict {
            Verdict::Closed => (FoldedState::Closed, "rst".to_string()),
            Verdict::Filtered {
                icmp_type,
                icmp_code,
            } => (
                FoldedState::Filtered,
                format!("icmp {icmp_type}/{icmp_code}"),
            ),
            Verdict::Unreachable {
                icmp_type,
                icmp_code,
            } => (
                FoldedState::Unreachable,
                format!("icmp {icmp_type}/{icmp_code}"),
            ),
            Verdict::Open | Verdict::Up | Verdict::DnsAnswer { .. } => unreachable!("findings"),
        };
        let group = match host
            .not_shown
            .iter_mut()
            .find(|g| g.probe == r.probe && g.state == state && g.reason == reason)
        {
            Some(g) => g,
            None => {
                host.not_shown.push(Folded {
                    probe: r.probe,
                    state,
                    reason,
                    count: 0,
                    ports: Some(PortSet::new()),
                });
                host.not_shown.last_mut().expect("pushed")
            }
        };
        group.count += 1;
        match (r.port, group.ports.as_mut()) {
            (Some(p), Some(ports)) => {
                ports.insert(p, p);
                if ports.ranges().len() > MAX_FOLDED_RANGES {
                    group.ports = None;
                }
            }
            (None, _) => group.ports = None,
            _ => {}
        }
    }

    /// Results per probe kind.
    pub fn answered(&self, kind: ProbeKind) -> u64 {
        self.answered[kind as usize]
    }

    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// The table a report's hosts describe (the report of an interrupted
    /// segment), so that a resumed scan folds on from it.
    pub fn from_hosts(hosts: Vec<HostResults>) -> HostTable {
        let mut table = HostTable::new();
        for host in hosts {
            for r in &host.results {
                table.answered[r.probe as usize] += 1;
            }
            for g in &host.not_shown {
                table.answered[g.probe as usize] += g.count;
            }
            table.hosts.insert(host.address, host);
        }
        table
    }

    /// Fold `other`'s hosts into this table (shards of one scan, whose
    /// probes are disjoint): findings joined, folded groups of the same
    /// kind, state and reason summed, their port ranges joined.
    pub fn absorb(&mut self, other: HostTable) {
        for (i, n) in other.answered.iter().enumerate() {
            self.answered[i] += n;
        }
        for (address, theirs) in other.hosts {
            let Some(mine) = self.hosts.get_mut(&address) else {
                self.hosts.insert(address, theirs);
                continue;
            };
            mine.results.extend(theirs.results);
            mine.services.extend(theirs.services);
            for g in theirs.not_shown {
                match mine
                    .not_shown
                    .iter_mut()
                    .find(|m| m.probe == g.probe && m.state == g.state && m.reason == g.reason)
                {
                    Some(m) => {
                        m.count += g.count;
                        m.ports = match (m.ports.take(), g.ports) {
                            (Some(mut a), Some(b)) => {
                                a.union_with(&b);
                                (a.ranges().len() <= MAX_FOLDED_RANGES).then_some(a)
                            }
                            _ => None,
                        };
                    }
                    None => mine.not_shown.push(g),
                }
            }
        }
    }

    /// The hosts in address order, findings sorted.
    pub fn into_hosts(self) -> Vec<HostResults> {
        self.hosts
            .into_values()
            .map(|mut h| {
                h.results.sort_unstable_by(|a, b| {
                    (a.port, a.probe, &a.question).cmp(&(b.port, b.probe, &b.question))
                });
                h.services
                    .sort_unstable_by_key(|s| (!s.protocol.is_tcp(), s.port));
                h.not_shown.sort_unstable_by(|a, b| {
                    (a.probe, a.state, &a.reason).cmp(&(b.probe, b.state, &b.reason))
                });
                h
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::CaptureTime;

    fn result(port: Option<u16>, probe: ProbeKind, verdict: Verdict) -> ScanResult {
        ScanResult {
            target: "198.18.1.10".parse().unwrap(),
            port,
            probe,
            question: None,
            // As the scan names them.
            service: port
                .and_then(crate::targets::ports::tcp_service)
                .map(std::borrow::Cow::Borrowed),
            verdict,
            ttl: 64,
            rtt_us: None,
            time: CaptureTime(0),
        }
    }

    #[test]
    fn findings_are_kept_and_the_rest_folded_by_state_and_reason() {
        let mut t = HostTable::new();
        for p in (1..=1000u16).filter(|p| *p != 22) {
            t.add(result(Some(p), ProbeKind::Syn, Verdict::Closed));
        }
        t.add(result(Some(22), ProbeKind::Syn, Verdict::Open));
        t.add(result(None, ProbeKind::Icmp, Verdict::Up));
        let filtered = Verdict::Filtered {
            icmp_type: 3,
            icmp_code: 13,
        };
        t.add(result(Some(3306), ProbeKind::Syn, filtered));
        t.add(result(Some(3307), ProbeKind::Syn, filtered));
        assert_eq!(t.answered(ProbeKind::Syn), 1002);
        let hosts = t.into_hosts();
        assert_eq!(hosts.len(), 1);
        let h = &hosts[0];
        assert_eq!(h.open_ports().collect::<Vec<_>>(), [22]);
        assert!(h.answers_ping());
        assert_eq!(h.not_shown.len(), 2);
        let closed = &h.not_shown[0];
        assert_eq!(
            (closed.state, closed.reason.as_str(), closed.count),
            (FoldedState::Closed, "rst", 999)
        );
        assert_eq!(closed.ports.as_ref().unwrap().to_string(), "1-21,23-1000");
        let f = &h.not_shown[1];
        assert_eq!(
            (f.state, f.reason.as_str(), f.count),
            (FoldedState::Filtered, "icmp 3/13", 2)
        );
        assert_eq!(f.ports.as_ref().unwrap().to_string(), "3306-3307");
        let json = serde_json::to_value(h).unwrap();
        assert_eq!(json["not_shown"][0]["ports"], "1-21,23-1000");
    }

    #[test]
    fn scattered_ports_keep_their_count_only() {
        let mut t = HostTable::new();
        for p in (1..=400u16).map(|p| p * 3) {
            t.add(result(Some(p), ProbeKind::Syn, Verdict::Closed));
        }
        let h = &t.into_hosts()[0];
        assert_eq!(h.not_shown[0].count, 400);
        assert_eq!(h.not_shown[0].ports, None);
        assert_eq!(
            serde_json::to_value(h).unwrap()["not_shown"][0]["ports"],
            serde_json::Value::Null
        );
    }

    #[test]
    fn record_modes() {
        let closed = Verdict::Closed;
        let filtered = Verdict::Filtered {
            icmp_type: 3,
            icmp_code: 1,
        };
        assert!(RecordMode::All.records(&closed));
        assert!(!RecordMode::Answered.records(&closed));
        assert!(RecordMode::Answered.records(&filtered));
        assert!(!RecordMode::Open.records(&filtered));
        assert!(RecordMode::Open.records(&Verdict::Open));
        assert_eq!("answered".parse::<RecordMode>(), Ok(RecordMode::default()));
        assert!("some".parse::<RecordMode>().is_err());
    }

    #[test]
    fn a_reports_hosts_read_back_fold_on_as_before() {
        let mut t = HostTable::new();
        t.add(result(Some(22), ProbeKind::Syn, Verdict::Open));
        for p in [23, 24, 25] {
            t.add(result(Some(p), ProbeKind::Syn, Verdict::Closed));
        }
        t.add(result(
            Some(3306),
            ProbeKind::Syn,
            Verdict::Filtered {
                icmp_type: 3,
                icmp_code: 13,
            },
        ));
        t.add(result(None, ProbeKind::Icmp, Verdict::Up));
        let json = serde_json::to_value(t.clone().into_hosts()).unwrap();
        let mut back = HostTable::from_hosts(serde_json::from_value(json.clone()).unwrap());
        assert_eq!(back.answered(ProbeKind::Syn), 5);
        assert_eq!(back.answered(ProbeKind::Icmp), 1);
        assert_eq!(
            serde_json::to_value(back.clone().into_hosts()).unwrap(),
            json
        );
        // Folding on: one more closed port joins its group.
        back.add(result(Some(26), ProbeKind::Syn, Verdict::Closed));
        t.add(result(Some(26), ProbeKind::Syn, Verdict::Closed));
        assert_eq!(
            serde_json::to_value(back.into_hosts()).unwrap(),
            serde_json::to_value(t.into_hosts()).unwrap()
        );
        assert!(
            serde_json::from_value::<Vec<HostResults>>(serde_json::json!([{"address": "x"}]))
                .is_err()
        );
    }

    #[test]
    fn shards_absorbed_fold_as_one_table() {
        // One table fed every result, and two fed halves, joined.
        let all: Vec<ScanResult> = (1..=40u16)
            .map(|p| {
                let v = if p == 22 {
                    Verdict::Open
                } else {
                    Verdict::Closed
                };
                result(Some(p), ProbeKind::Syn, v)
            })
            .collect();
        let mut whole = HostTable::new();
        let (mut a, mut b) = (HostTable::new(), HostTable::new());
        for (i, r) in all.into_iter().enumerate() {
            whole.add(r.clone());
            if i % 2 == 0 { a.add(r) } else { b.add(r) }
        }
        a.absorb(b);
        assert_eq!(a.answered(ProbeKind::Syn), 40);
        assert_eq!(
            serde_json::to_value(a.into_hosts()).unwrap(),
            serde_json::to_value(whole.into_hosts()).unwrap()
        );
    }
}
