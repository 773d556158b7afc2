//! A resume's state checked against its own evidence (issue 26). A
//! resumed scan goes on from a stop point (each sending thread's next
//! position) and answered bits that a record and a state file say; both
//! can be edited and the audit log re-chained by hand. The capture cannot
//! be edited without `verify` naming it, and it holds every probe sent
//! and every reply: read again, it says what the state must be.
//!
//! - Every probe in the capture is placed in the plan (its kind's index
//!   space, the keyed order's position, the sending thread whose share
//!   holds it). A position the stop point says no pass has reached yet,
//!   sent anyway, is a stop point moved back: resuming from it would
//!   probe those pairs again. Positions sent more often than the passes
//!   so far allow say the same of the pass.
//! - The replies are matched again by the scan's own correlator, with the
//!   marks of the probes the capture holds in place of the run's key
//!   (which no record keeps), segment by segment as each segment's key
//!   matched them. Every reply matched must have its answered bit: a bit
//!   cleared makes a retry probe an answered pair again.
//! - Every answered bit must have something in the capture answering its
//!   probe. By address and port: a kill can lose a probe from the
//!   writer's buffer after its reply was written.
//!
//! A cut segment's state is its last checkpoint's: the frames after the
//! capture's length there are read for their probes' marks only (on
//! loopback, or when a ring fills mid-batch, a reply can be written
//! before its probe).
//!
//! A stop point moved forward (claiming probes sent that were not) is not
//! caught here: a position with no probe in the capture may be a target
//! found down, which the evidence does not list one by one.
//!
//! Pure: frames in, a verdict out, so it is tested without root.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use etherparse::{Icmpv4Type, Icmpv6Type, NetSlice, SlicedPacket, TransportSlice};

use super::StopPoint;
use super::correlate::{AnsweredSnapshot, Correlator};
use crate::probe::cookie::{MAX_DNS_QUESTIONS, SOURCE_PORTS};
use crate::probe::plan::ProbePlan;
use crate::probe::{MarkSource, Marks, ProbeTemplate};
use crate::scope::ProbeKind;
use crate::targets::IpSet;
use crate::targets::index::Shard;

/// The most positions counted (one byte each, over every kind): a scan
/// larger than this has its stop point checked by the budget only.
const MAX_COUNTED_POSITIONS: u64 = 1 << 30;
/// The most probes whose marks are kept for matching replies (about 24
/// bytes each); past it the answered bits are not checked.
const MAX_MARKED_PROBES: usize = 8 << 20;

/// The marks of the probes a capture holds, learned as it is read.
/// Each segment's probes are its own: a segment's key matched replies to
/// its own probes only.
#[derive(Default)]
pub struct CaptureMarks {
    by_probe: HashMap<u64, (u16, u32), foldhash::fast::FixedState>,
    /// The segment whose replies are being matched.
    segment: usize,
}

impl CaptureMarks {
    fn key(segment: usize, src: IpAddr, dst: IpAddr, port: u16, kind: ProbeKind) -> u64 {
        use std::hash::BuildHasher;
        foldhash::quality::FixedState::with_seed(0x5eed)
            .hash_one((segment, src, dst, port, kind as u8))
    }
}

impl MarkSource for CaptureMarks {
    fn marks_for(&self, src: IpAddr, dst: IpAddr, port: u16, kind: ProbeKind) -> Option<Marks> {
        let key = Self::key(self.segment, src, dst, port, kind);
        let &(source_port, v) = self.by_probe.get(&key)?;
        Some(Marks {
            source_port,
            tcp_isn: v,
            icmp_id: (v >> 16) as u16,
            icmp_seq: v as u16,
            dns_id: v as u16,
        })
    }
}

/// A probe of ours, read from the capture.
struct SeenProbe {
    kind: ProbeKind,
    src: IpAddr,
    dst: IpAddr,
    /// The destination port (0 for ICMP).
    port: u16,
    /// The index space's slot: the port, or the DNS question from 1.
    slot: Option<u16>,
    /// The marks it carried: (source port, ISN | id<<16|seq | DNS id).
    marks: (u16, u32),
}

/// What the capture says that the state does not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Disagreement {
    /// Probes at positions the stop point says were not reached in as
    /// many passes.
    SentPastStop { count: u64, first: String },
    /// Positions the stop point has passed in the first pass whose probe
    /// is not in the capture, to targets that could not be down.
    PassedNotSent { count: u64, first: String },
    /// Probes the scan's plan (targets, ports, seed, shard) does not hold.
    OutsidePlan { count: u64, first: String },
    /// Replies the capture holds to probes the answered bits call
    /// unanswered.
    AnsweredNotRecorded { count: u64, first: String },
    /// Answered bits with no reply in the capture.
    RecordedNotAnswered { count: u64, first: String },
}

impl std::fmt::Display for Disagreement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Disagreement::SentPastStop { count, first } => write!(
                f,
                "the capture holds {count} probe(s) its stop point says were not sent yet (the first: {first}): resuming from it would send them again"
            ),
            Disagreement::PassedNotSent { count, first } => write!(
                f,
                "its stop point has passed {count} position(s) of the first pass whose probe is not in the capture, to targets not on-link (so not skipped as down; the first: {first}): it claims probes never sent"
            ),
            Disagreement::OutsidePlan { count, first } => write!(
                f,
                "the capture holds {count} probe(s) outside the plan of its scan_request (the first: {first}): its seed, shard or targets are not the ones that sent them"
            ),
            Disagreement::AnsweredNotRecorded { count, first } => write!(
                f,
                "the capture holds replies to {count} probe(s) its answered bits call unanswered (the first: {first}): a retry would probe them again"
            ),
            Disagreement::RecordedNotAnswered { count, first } => write!(
                f,
                "its answered bits name {count} probe(s) the capture holds no reply to (the first: {first})"
            ),
        }
    }
}

/// What the check covered, for the audit record.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct StateChecked {
    /// Probes of the plan read from the capture.
    pub probes: u64,
    /// Replies matched again.
    pub replies: u64,
    /// The stop point was checked position by position.
    pub positions: bool,
    /// Positions the first pass passed were checked to be in the capture
    /// (but for on-link targets, which may have been down).
    pub passed_positions_sent: bool,
    /// The answered bits were compared bit for bit (both ways, or only
    /// "every bit has its reply" when a segment's start in the capture is
    /// not recorded).
    pub answered: &'static str,
}

/// The check, fed the capture's frames in order.
pub struct StateCheck<'a> {
    plan: &'a ProbePlan,
    targets: &'a IpSet,
    shard: Shard,
    senders: u64,
    stop: &'a StopPoint,
    dns_port: u16,
    /// Where each later segment began in the capture (bytes), sorted;
    /// `None`: not recorded (a run resumed by an older sonde).
    boundaries: Option<Vec<u64>>,
    /// The segment of the frame being read.
    segment: usize,
    /// Sends per position, per kind (`None`: too many to count).
    sends: Option<Vec<Vec<u8>>>,
    replay: Option<Correlator<CaptureMarks>>,
    /// Every probe something in the capture answers, matched by address
    /// and port alone: the probe of a reply may be missing from the
    /// capture (a kill lost the writer's buffer after the reply was
    /// written).
    loose: AnsweredSnapshot,
    state_covers: u64,
    /// The offset of the next record (classic pcap: a 24-byte header,
    /// then 16 bytes and the captured bytes per record), in the first
    /// reading and in the second.
    offset: u64,
    replay_offset: u64,
    checked: StateChecked,
    /// Targets reached on-link in some segment, the only ones a sender
    /// skips as down (`None`: not known, the check is not made).
    on_link: Option<IpSet>,
    past_stop: (u64, Option<String>),
    outside: (u64, Option<String>),
}

/// The scan whose state is checked, as its request resolved it.
#[derive(Clone, Copy)]
pub struct ScanShape<'a> {
    pub plan: &'a ProbePlan,
    pub targets: &'a IpSet,
    pub shard: Shard,
    pub senders: usize,
    /// How many DNS questions each DNS probe target is asked, of `dns_port`.
    pub questions: usize,
    pub dns_port: u16,
}

impl<'a> StateCheck<'a> {
    /// `stop` must hold one position per sending thread of `scan`. The
    /// state covers the capture's first `state_covers` bytes (a
    /// checkpoint's; `None`: all of it): the frames after are read for
    /// their probes' marks only. `boundaries`: where each later segment
    /// began in the capture (`None`: not recorded).
    pub fn new(
        scan: ScanShape<'a>,
        stop: &'a StopPoint,
        boundaries: Option<Vec<u64>>,
        state_covers: Option<u64>,
    ) -> StateCheck<'a> {
        let ScanShape {
            plan,
            targets,
            shard,
            senders,
            questions,
            dns_port,
        } = scan;
        let total: u64 = plan.kinds().iter().map(|k| k.len()).sum();
        let sends = (total <= MAX_COUNTED_POSITIONS).then(|| {
            plan.kinds()
                .iter()
                .map(|k| vec![0u8; k.len() as usize])
                .collect()
        });
        let spaces = plan
            .kinds()
            .iter()
            .map(|k| (k.kind, k.space.clone()))
            .collect();
        let names = (0..questions.clamp(1, MAX_DNS_QUESTIONS))
            .map(|i| Arc::from(i.to_string()))
            .collect();
        let replay =
            Correlator::new(CaptureMarks::default(), targets.clone(), names, 0).with_spaces(spaces);
        StateCheck {
            plan,
            targets,
            shard,
            senders: senders.max(1) as u64,
            stop,
            dns_port,
            boundaries,
            segment: 0,
            sends,
            replay: Some(replay),
            loose: AnsweredSnapshot::empty(
                plan.kinds()
                    .iter()
                    .map(|k| (k.kind, k.space.clone()))
                    .collect(),
            ),
            state_covers: state_covers.unwrap_or(u64::MAX),
            offset: 24,
            replay_offset: 24,
            checked: StateChecked::default(),
            on_link: None,
            past_stop: (0, None),
            outside: (0, None),
        }
    }

    /// The targets that were on-link in some segment: every other target's
    /// positions the stop point has passed in the first pass must be in
    /// the capture (a stop point moved forward claims probes never sent).
    pub fn with_on_link(mut self, on_link: IpSet) -> StateCheck<'a> {
        self.on_link = Some(on_link);
        self
    }

    /// The segment the frame at `at` (bytes into the capture) belongs to.
    fn segment_at(&mut self, at: u64) -> usize {
        if let Some(b) = &self.boundaries {
            while b.get(self.segment).is_some_and(|&s| at >= s) {
                self.segment += 1;
            }
        }
        self.segment
    }

    /// The next frame of the capture (a raw IP packet, as captured), the
    /// first reading: the probes are placed in the plan and their marks
    /// learnt. A reply can come before its probe in the capture (on
    /// loopback the kernel answers before the sender's batch is written),
    /// so the replies are matched in a second reading ([`StateCheck::replay`]).
    pub fn on_frame(&mut self, ip: &[u8]) {
        let at = self.offset;
        self.offset += 16 + ip.len() as u64;
        let segment = self.segment_at(at);
        let covered = self.offset <= self.state_covers;
        if let Some(p) = self.probe_of(ip) {
            self.on_probe(p, segment, covered);
        }
    }

    /// The second reading begins, from the capture's first frame.
    pub fn begin_replay(&mut self) {
        self.segment = 0;
        self.replay_offset = 24;
    }

    /// The next frame of the second reading: the replies.
    pub fn replay(&mut self, ip: &[u8]) {
        let at = self.replay_offset;
        self.replay_offset += 16 + ip.len() as u64;
        let segment = self.segment_at(at);
        if self.replay_offset > self.state_covers || self.probe_of(ip).is_some() {
            return;
        }
        if let Some(key) = reply_key(ip, self.dns_port) {
            self.loose.insert(key);
        }
        if let Some(r) = &mut self.replay {
            r.marks_mut().segment = segment;
            if matches!(
                r.on_packet(ip, 0),
                super::correlate::Correlation::Matched(_)
            ) {
                self.checked.replies += 1;
            }
        }
    }

    /// One of our probes, when `ip` is one: to a target, shaped as sonde
    /// crafts them (a kernel connection's SYN, from service
    /// identification, carries other options and another window).
    fn probe_of(&self, ip: &[u8]) -> Option<SeenProbe> {
        let p = SlicedPacket::from_ip(ip).ok()?;
        let (src, dst): (IpAddr, IpAddr) = match &p.net {
            Some(NetSlice::Ipv4(v4)) => (
                v4.header().source_addr().into(),
                v4.header().destination_addr().into(),
            ),
            Some(NetSlice::Ipv6(v6)) => (
                v6.header().source_addr().into(),
                v6.header().destination_addr().into(),
            ),
            _ => return None,
        };
        if !self.targets.contains(crate::targets::canonical_ip(dst)) {
            return None;
        }
        let ours = |port: u16| SOURCE_PORTS.contains(&port);
        let (kind, port, slot, marks) = match &p.transport {
            Some(TransportSlice::Tcp(t))
                if t.syn()
                    && !t.ack()
                    && !t.rst()
                    && ours(t.source_port())
                    && t.data_offset() == 6
                    && t.window_size() == ProbeTemplate::default().window =>
            {
                let port = t.destination_port();
                (
                    ProbeKind::Syn,
                    port,
                    Some(port),
                    (t.source_port(), t.sequence_number()),
                )
            }
            Some(TransportSlice::Udp(u))
                if u.destination_port() == self.dns_port && ours(u.source_port()) =>
            {
                let d = u.payload();
                if d.len() < 12 || d[2] & 0x80 != 0 {
                    return None;
                }
                let id = u16::from_be_bytes([d[0], d[1]]);
                let mask = (MAX_DNS_QUESTIONS - 1) as u16;
                (
                    ProbeKind::Dns,
                    self.dns_port,
                    Some((id & mask) + 1),
                    (u.source_port(), u32::from(id & !mask)),
                )
            }
            Some(TransportSlice::Icmpv4(i)) => match i.icmp_type() {
                Icmpv4Type::EchoRequest(e) => (
                    ProbeKind::Icmp,
                    0,
                    None,
                    (0, u32::from(e.id) << 16 | u32::from(e.seq)),
                ),
                _ => return None,
            },
            Some(TransportSlice::Icmpv6(i)) => match i.icmp_type() {
                Icmpv6Type::EchoRequest(e) => (
                    ProbeKind::Icmp,
                    0,
                    None,
                    (0, u32::from(e.id) << 16 | u32::from(e.seq)),
                ),
                _ => return None,
            },
            _ => return None,
        };
        Some(SeenProbe {
            kind,
            src,
            dst,
            port,
            slot,
            marks,
        })
    }

    fn on_probe(&mut self, p: SeenProbe, segment: usize, covered: bool) {
        if let Some(r) = &mut self.replay {
            let marks = &mut r.marks_mut().by_probe;
            if marks.len() >= MAX_MARKED_PROBES {
                self.replay = None;
            } else {
                let key = CaptureMarks::key(segment, p.src, p.dst, p.port, p.kind);
                marks.insert(key, p.marks);
            }
        }
        let describe = |p: &SeenProbe| match (p.kind, p.slot) {
            (ProbeKind::Dns, Some(q)) => format!("DNS question {} to {}", q - 1, p.dst),
            (_, Some(port)) => format!("{} to {} port {port}", p.kind.name(), p.dst),
            (_, None) => format!("{} to {}", p.kind.name(), p.dst),
        };
        if !covered {
            return;
        }
        let target = crate::targets::canonical_ip(p.dst);
        let placed = self
            .plan
            .kinds()
            .iter()
            .enumerate()
            .find(|(_, k)| k.kind == p.kind)
            .and_then(|(ki, k)| {
                let index = k.space.index_of(target, p.slot)?;
                let position = k.order.position_of(index);
                let in_shard = position >= self.shard.index
                    && (position - self.shard.index).is_multiple_of(self.shard.count);
                in_shard.then_some((ki, position))
            });
        let Some((kind_index, position)) = placed else {
            self.outside.0 += 1;
            self.outside.1.get_or_insert_with(|| describe(&p));
            return;
        };
        self.checked.probes += 1;
        let allowed = self.passes_reaching(kind_index, position);
        let Some(sends) = &mut self.sends else {
            return;
        };
        let slot = &mut sends[kind_index][position as usize];
        *slot = slot.saturating_add(1);
        let count = *slot;
        if u32::from(count) > allowed {
            self.past_stop.0 += 1;
            let thread = (position - self.shard.index) / self.shard.count % self.senders;
            let stop = self.stop;
            self.past_stop.1.get_or_insert_with(|| {
                format!(
                    "{}, position {position} of sending thread {thread}, sent {} time(s) where the stop point (pass {}, kind {}, next {:?}) allows {allowed}",
                    describe(&p),
                    count,
                    stop.pass,
                    stop.kind,
                    stop.next.get(thread as usize).copied().flatten()
                )
            });
        }
    }

    /// First-pass positions the stop point has passed with no probe in
    /// the capture, to targets not on-link: how many, and the first.
    fn passed_not_sent(&self, on_link: &IpSet, sends: &[Vec<u8>]) -> (u64, Option<String>) {
        let (mut count, mut first) = (0, None);
        for (ki, k) in self.plan.kinds().iter().enumerate() {
            let mut position = self.shard.index;
            while position < k.len() {
                if sends[ki][position as usize] == 0 && self.passes_reaching(ki, position) >= 1 {
                    let p = k.at_position(position);
                    if !on_link.contains(p.target) {
                        count += 1;
                        first.get_or_insert_with(|| {
                            let what = match (p.kind, p.port) {
                                (ProbeKind::Dns, _) => {
                                    format!("DNS question {} to {}", p.question, p.target)
                                }
                                (_, Some(port)) => {
                                    format!("{} to {} port {port}", p.kind.name(), p.target)
                                }
                                (_, None) => format!("{} to {}", p.kind.name(), p.target),
                            };
                            format!("{what}, position {position}")
                        });
                    }
                }
                position += self.shard.count;
            }
        }
        (count, first)
    }

    /// How many passes have reached `position` of kind `kind_index` by
    /// the stop point: every pass before its own, and its own when the
    /// kind was done or the position's thread had passed it.
    fn passes_reaching(&self, kind_index: usize, position: u64) -> u32 {
        let stop = self.stop;
        let thread = ((position - self.shard.index) / self.shard.count % self.senders) as usize;
        let reached = kind_index < stop.kind
            || (kind_index == stop.kind
                && match stop.next.get(thread) {
                    Some(Some(next)) => position < *next,
                    // The thread's share was done, or (a record with
                    // fewer threads, refused before) nothing says.
                    Some(None) | None => true,
                });
        stop.pass.saturating_add(u32::from(reached))
    }

    /// The verdict: `recorded` is the state's answered bits (`None`: it
    /// names none).
    pub fn finish(
        mut self,
        recorded: Option<&AnsweredSnapshot>,
    ) -> Result<StateChecked, Disagreement> {
        if let (count @ 1.., Some(first)) = self.outside {
            return Err(Disagreement::OutsidePlan { count, first });
        }
        if let (count @ 1.., Some(first)) = self.past_stop {
            return Err(Disagreement::SentPastStop { count, first });
        }
        self.checked.positions = self.sends.is_some();
        if let (Some(on_link), Some(sends)) = (&self.on_link, &self.sends) {
            let (count, first) = self.passed_not_sent(on_link, sends);
            if let Some(first) = first {
                return Err(Disagreement::PassedNotSent { count, first });
            }
            self.checked.passed_positions_sent = true;
        }
        self.checked.answered = "not checked (too many probes)";
        let spaces = || {
            self.plan
                .kinds()
                .iter()
                .map(|k| (k.kind, k.space.clone()))
                .collect()
        };
        // No bits recorded: none may be answered.
        let none;
        let recorded = match recorded {
            Some(r) => r,
            None => {
                none = AnsweredSnapshot::empty(spaces());
                &none
            }
        };
        // Every bit has something in the capture answering its probe.
        match recorded.difference(&self.loose) {
            None => {
                self.checked.answered = "not checked (a scan too large for bits)";
                return Ok(self.checked);
            }
            Some(d) if d.only_here > 0 => {
                return Err(Disagreement::RecordedNotAnswered {
                    count: d.only_here,
                    first: d.first_only_here.unwrap_or_default(),
                });
            }
            Some(_) => self.checked.answered = "every bit has its reply",
        }
        // Every reply the scan's correlator matched has its bit. Where a
        // segment began must be known: a late reply to an earlier
        // segment's probe is in the capture, and the later segment's key
        // did not match it.
        if let (Some(replay), Some(_)) = (&self.replay, &self.boundaries)
            && let Some(d) = recorded.difference(&replay.answered_snapshot())
        {
            if d.only_there > 0 {
                return Err(Disagreement::AnsweredNotRecorded {
                    count: d.only_there,
                    first: d.first_only_there.unwrap_or_default(),
                });
            }
            self.checked.answered = "both ways";
        }
        Ok(self.checked)
    }
}

/// The probe a packet answers, by addresses and ports alone (no marks):
/// a SYN-ACK or RST from a target's port, an echo reply, a DNS response,
/// an ICMP error quoting a packet to a target.
fn reply_key(ip: &[u8], dns_port: u16) -> Option<super::correlate::ProbeKey> {
    let p = etherparse::LaxSlicedPacket::from_ip(ip).ok()?;
    let src: IpAddr = match &p.net {
        Some(etherparse::LaxNetSlice::Ipv4(v4)) => v4.header().source_addr().into(),
        Some(etherparse::LaxNetSlice::Ipv6(v6)) => v6.header().source_addr().into(),
        _ => return None,
    };
    let src = crate::targets::canonical_ip(src);
    let mask = (MAX_DNS_QUESTIONS - 1) as u16;
    let quoted = |inner: &[u8]| -> Option<super::correlate::ProbeKey> {
        let q = etherparse::LaxSlicedPacket::from_ip(inner).ok()?;
        let dst: IpAddr = match &q.net {
            Some(etherparse::LaxNetSlice::Ipv4(v4)) => v4.header().destination_addr().into(),
            Some(etherparse::LaxNetSlice::Ipv6(v6)) => v6.header().destination_addr().into(),
            _ => return None,
        };
        let dst = crate::targets::canonical_ip(dst);
        let payload = q.net.as_ref()?.ip_payload_ref()?;
        let b = payload.payload;
        let dport = u16::from_be_bytes([*b.get(2)?, *b.get(3)?]);
        match payload.ip_number.0 {
            6 => Some((dst, Some(dport), ProbeKind::Syn, 0)),
            17 => {
                let question = b
                    .get(8..10)
                    .map_or(0, |id| (u16::from_be_bytes([id[0], id[1]]) & mask) as u8);
                Some((dst, Some(dport), ProbeKind::Dns, question))
            }
            1 | 58 => Some((dst, None, ProbeKind::Icmp, 0)),
            _ => None,
        }
    };
    match &p.transport {
        Some(TransportSlice::Tcp(t)) if t.rst() || (t.syn() && t.ack()) => {
            Some((src, Some(t.source_port()), ProbeKind::Syn, 0))
        }
        Some(TransportSlice::Udp(u)) if u.source_port() == dns_port => {
            let d = u.payload();
            (d.len() >= 12 && d[2] & 0x80 != 0).then(|| {
                let id = u16::from_be_bytes([d[0], d[1]]);
                (src, Some(dns_port), ProbeKind::Dns, (id & mask) as u8)
            })
        }
        Some(TransportSlice::Icmpv4(i)) => match i.icmp_type() {
            Icmpv4Type::EchoReply(_) => Some((src, None, ProbeKind::Icmp, 0)),
            Icmpv4Type::DestinationUnreachable(_) | Icmpv4Type::TimeExceeded(_) => {
                quoted(i.payload())
            }
            _ => None,
        },
        Some(TransportSlice::Icmpv6(i)) => match i.icmp_type() {
            Icmpv6Type::EchoReply(_) => Some((src, None, ProbeKind::Icmp, 0)),
            Icmpv6Type::DestinationUnreachable(_) | Icmpv6Type::TimeExceeded(_) => {
                quoted(i.payload())
            }
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::CookieKey;
    use crate::scan::correlate::tests::tcp_answer;
    use crate::targets::{AddrRange, PortSet};

    const US: &str = "198.18.0.2";

    fn targets() -> IpSet {
        [AddrRange::cidr("198.18.1.0".parse().unwrap(), 29).unwrap()]
            .into_iter()
            .collect()
    }

    fn plan(seed: u64) -> ProbePlan {
        ProbePlan::new(
            &targets(),
            &PortSet::parse("22,80,443").unwrap(),
            &[ProbeKind::Syn],
            1,
            53,
            seed,
        )
        .unwrap()
    }

    /// The first pass of two sending threads up to `next`, as the scan
    /// sends it with `key`, and the targets' answers: port 22 open, 80
    /// closed, 443 silent.
    fn first_pass(key: &CookieKey, next: [u64; 2]) -> Vec<Vec<u8>> {
        let plan = plan(7);
        let syn = &plan.kinds()[0];
        let mut frames = Vec::new();
        for position in 0..syn.len() {
            if position >= next[(position % 2) as usize] {
                continue;
            }
            let p = syn.at_position(position);
            let mut buf = Vec::new();
            p.build(
                &mut buf,
                US.parse().unwrap(),
                key,
                &ProbeTemplate::default(),
                &[],
            )
            .unwrap();
            frames.push(buf.clone());
            match p.port {
                Some(22) => frames.push(tcp_answer(&buf, 0x12)),
                Some(80) => frames.push(tcp_answer(&buf, 0x14)),
                _ => {}
            }
        }
        frames
    }

    /// The answered bits the scan itself kept for `frames`.
    fn recorded(key: &CookieKey, frames: &[Vec<u8>]) -> AnsweredSnapshot {
        let plan = plan(7);
        let spaces = plan
            .kinds()
            .iter()
            .map(|k| (k.kind, k.space.clone()))
            .collect();
        let mut c = Correlator::new(*key, targets(), vec![Arc::from("q")], 0).with_spaces(spaces);
        for f in frames {
            c.on_packet(f, 0);
        }
        c.answered_snapshot()
    }

    fn check(
        seed: u64,
        stop: &StopPoint,
        frames: &[Vec<u8>],
        bits: Option<&AnsweredSnapshot>,
        boundaries: Option<Vec<u64>>,
    ) -> Result<StateChecked, Disagreement> {
        let plan = plan(seed);
        let targets = targets();
        let scan = ScanShape {
            plan: &plan,
            targets: &targets,
            shard: Shard::WHOLE,
            senders: 2,
            questions: 1,
            dns_port: 53,
        };
        feed(StateCheck::new(scan, stop, boundaries, None), frames, bits)
    }

    /// Both readings of `frames`, then the verdict on `bits`.
    fn feed(
        mut c: StateCheck<'_>,
        frames: &[Vec<u8>],
        bits: Option<&AnsweredSnapshot>,
    ) -> Result<StateChecked, Disagreement> {
        for f in frames {
            c.on_frame(f);
        }
        c.begin_replay();
        for f in frames {
            c.replay(f);
        }
        c.finish(bits)
    }

    fn stop(pass: u32, next: [Option<u64>; 2]) -> StopPoint {
        StopPoint {
            pass,
            kind: 0,
            next: next.to_vec(),
        }
    }

    #[test]
    fn an_honest_stop_point_and_its_bits_agree_with_the_capture() {
        let key = CookieKey::random();
        let frames = first_pass(&key, [10, 13]);
        let bits = recorded(&key, &frames);
        let got = check(
            7,
            &stop(0, [Some(10), Some(13)]),
            &frames,
            Some(&bits),
            Some(vec![]),
        )
        .unwrap();
        assert_eq!(got.probes, 5 + 6, "positions 0,2,..,8 and 1,3,..,11");
        assert!(got.positions);
        assert_eq!(got.answered, "both ways");
        assert!(got.replies > 0);
        // A thread whose share was done counts as having passed every
        // position; the stop at the next pass allows one more send each.
        let whole = first_pass(&key, [24, 24]);
        let bits = recorded(&key, &whole);
        assert!(check(7, &stop(0, [None, None]), &whole, Some(&bits), Some(vec![])).is_ok());
        let mut twice = whole.clone();
        twice.extend(first_pass(&key, [24, 24]));
        assert!(check(7, &stop(1, [None, None]), &twice, Some(&bits), Some(vec![])).is_ok());
        assert!(
            check(
                7,
                &stop(1, [Some(0), Some(0)]),
                &twice,
                Some(&bits),
                Some(vec![])
            )
            .is_err()
        );
    }

    /// Regression (issue 26): a forged stop point moved back made 130
    /// pairs be probed twice.
    #[test]
    fn a_stop_point_moved_back_is_refused() {
        let key = CookieKey::random();
        let frames = first_pass(&key, [10, 13]);
        let bits = recorded(&key, &frames);
        let err = check(
            7,
            &stop(0, [Some(4), Some(13)]),
            &frames,
            Some(&bits),
            Some(vec![]),
        )
        .unwrap_err();
        let Disagreement::SentPastStop { count, first } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(*count, 3, "positions 4, 6 and 8 of thread 0");
        assert!(first.contains("position 4 of sending thread 0"), "{first}");
        // The pass moved back: the retries sent are more than one pass allows.
        let whole = first_pass(&key, [24, 24]);
        let mut twice = whole.clone();
        twice.extend(first_pass(&key, [24, 24]));
        let bits = recorded(&key, &twice);
        assert!(matches!(
            check(7, &stop(0, [None, None]), &twice, Some(&bits), Some(vec![])),
            Err(Disagreement::SentPastStop { count: 24, .. })
        ));
        // Another seed: another order, so the capture's probes sit at
        // positions the stop point has not reached.
        assert!(
            check(
                8,
                &stop(0, [Some(10), Some(13)]),
                &frames,
                None,
                Some(vec![])
            )
            .is_err()
        );
    }

    /// Regression (issue 26): a stop point moved forward printed "first
    /// pass was sent whole" when 128 positions were never sent. Positions
    /// passed with no probe are refused unless their target was on-link
    /// (skipped as down is the one honest reason).
    #[test]
    fn a_stop_point_moved_forward_is_refused_unless_the_targets_may_be_down() {
        let key = CookieKey::random();
        let frames = first_pass(&key, [10, 13]);
        let bits = recorded(&key, &frames);
        let plan = plan(7);
        let targets = targets();
        let scan = ScanShape {
            plan: &plan,
            targets: &targets,
            shard: Shard::WHOLE,
            senders: 2,
            questions: 1,
            dns_port: 53,
        };
        let run = |stop: &StopPoint, on_link: IpSet| {
            let c = StateCheck::new(scan, stop, Some(vec![]), None).with_on_link(on_link);
            feed(c, &frames, Some(&bits))
        };
        // As sent: nothing passed is missing.
        let got = run(&stop(0, [Some(10), Some(13)]), IpSet::new()).unwrap();
        assert!(got.passed_positions_sent);
        // Moved forward to the end of the pass: 13 positions never sent.
        let forward = stop(0, [None, None]);
        let err = run(&forward, IpSet::new()).unwrap_err();
        assert!(
            matches!(&err, Disagreement::PassedNotSent { count: 13, first } if first.contains("position 10")),
            "{err:?}"
        );
        // The same targets reached on-link: they may have been down.
        assert!(run(&forward, targets.clone()).is_ok());
    }

    #[test]
    fn answered_bits_must_be_the_captures_replies() {
        let key = CookieKey::random();
        let frames = first_pass(&key, [24, 24]);
        let at = stop(0, [None, None]);
        // Cleared: a retry would probe answered pairs again.
        let cleared = recorded(&key, &[]);
        let err = check(7, &at, &frames, Some(&cleared), Some(vec![])).unwrap_err();
        assert!(
            matches!(err, Disagreement::AnsweredNotRecorded { count: 16, .. }),
            "{err:?}"
        );
        // None recorded at all is the same.
        assert!(matches!(
            check(7, &at, &frames, None, Some(vec![])),
            Err(Disagreement::AnsweredNotRecorded { count: 16, .. })
        ));
        // Set without a reply in the capture.
        let bare: Vec<Vec<u8>> = frames.iter().filter(|f| f[33] == 0x02).cloned().collect();
        let err = check(7, &at, &bare, Some(&recorded(&key, &frames)), Some(vec![])).unwrap_err();
        assert!(
            matches!(err, Disagreement::RecordedNotAnswered { count: 16, .. }),
            "{err:?}"
        );
        // Replies to probes of another key are not matched: no bit is
        // asked of them (the capture's probes carry this key's marks).
        let other = CookieKey::random();
        let mut stray = bare.clone();
        stray.extend(
            first_pass(&other, [24, 24])
                .into_iter()
                .filter(|f| f[33] != 0x02),
        );
        let got = check(7, &at, &stray, Some(&cleared), Some(vec![])).unwrap();
        assert_eq!(got.replies, 0);
    }

    #[test]
    fn a_late_reply_to_an_earlier_segment_is_not_asked_of_the_bits() {
        let (k1, k2) = (CookieKey::random(), CookieKey::random());
        // Segment 1 sent thread 0's first positions; their replies came
        // only after segment 2 (another key) began.
        let seg1 = first_pass(&k1, [6, 0]);
        let (probes, replies): (Vec<_>, Vec<_>) = seg1.into_iter().partition(|f| f[33] == 0x02);
        let boundary = 24 + probes.iter().map(|f| 16 + f.len() as u64).sum::<u64>();
        let mut frames = probes;
        frames.extend(replies);
        // Segment 2's correlator (key 2) matched none of them.
        let bits = recorded(&k2, &frames);
        let at = stop(0, [Some(6), Some(0)]);
        assert!(check(7, &at, &frames, Some(&bits), Some(vec![boundary])).is_ok());
        // Without the boundary the bits are only checked one way.
        let got = check(7, &at, &frames, Some(&bits), None).unwrap();
        assert_eq!(got.answered, "every bit has its reply");
    }

    /// ICMP echo and DNS probes, IPv4 and IPv6: placed, answered, checked
    /// both ways (the lab's resume tests scan SYN only).
    #[test]
    fn echo_and_dns_probes_over_both_families_agree_with_their_bits() {
        use crate::probe::DnsQuestion;
        let targets: IpSet = [
            AddrRange::cidr("198.18.1.0".parse().unwrap(), 30).unwrap(),
            AddrRange::cidr("2001:db8::".parse().unwrap(), 126).unwrap(),
        ]
        .into_iter()
        .collect();
        let kinds = [ProbeKind::Icmp, ProbeKind::Dns];
        let plan = ProbePlan::new(&targets, &PortSet::new(), &kinds, 2, 53, 11).unwrap();
        let questions = [
            DnsQuestion {
                name: "example.com".into(),
                qtype: 1,
            },
            DnsQuestion {
                name: "example.org".into(),
                qtype: 28,
            },
        ];
        let key = CookieKey::random();
        let mut frames = Vec::new();
        for k in plan.kinds() {
            for position in 0..k.len() {
                let p = k.at_position(position);
                let src: IpAddr = if p.target.is_ipv4() {
                    US.parse().unwrap()
                } else {
                    "2001:db8::ff".parse().unwrap()
                };
                let mut buf = Vec::new();
                p.build(&mut buf, src, &key, &ProbeTemplate::default(), &questions)
                    .unwrap();
                frames.push(buf.clone());
                // Every other probe answered.
                if position % 2 == 1 {
                    continue;
                }
                let v4 = p.target.is_ipv4();
                let (a, b, alen, ip_len) = if v4 { (12, 16, 4, 20) } else { (8, 24, 16, 40) };
                let mut r = buf.clone();
                r[a..a + alen].copy_from_slice(&buf[b..b + alen]);
                r[b..b + alen].copy_from_slice(&buf[a..a + alen]);
                match p.kind {
                    ProbeKind::Icmp => r[ip_len] = if v4 { 0 } else { 129 },
                    _ => {
                        r[ip_len..ip_len + 2].copy_from_slice(&buf[ip_len + 2..ip_len + 4]);
                        r[ip_len + 2..ip_len + 4].copy_from_slice(&buf[ip_len..ip_len + 2]);
                        r[ip_len + 8 + 2] |= 0x80;
                    }
                }
                frames.push(r);
            }
        }
        let spaces: Vec<_> = plan
            .kinds()
            .iter()
            .map(|k| (k.kind, k.space.clone()))
            .collect();
        let names = vec![Arc::from("example.com:A"), Arc::from("example.org:AAAA")];
        let mut real = Correlator::new(key, targets.clone(), names, 0).with_spaces(spaces);
        let matched = frames
            .iter()
            .filter(|f| {
                matches!(
                    real.on_packet(f, 0),
                    super::super::correlate::Correlation::Matched(_)
                )
            })
            .count();
        assert_eq!(
            matched, 12,
            "4 echo replies and 8 DNS answers of 8 and 16 probes"
        );
        let bits = real.answered_snapshot();
        let scan = ScanShape {
            plan: &plan,
            targets: &targets,
            shard: Shard::WHOLE,
            senders: 1,
            questions: 2,
            dns_port: 53,
        };
        let run = |stop: &StopPoint| {
            feed(
                StateCheck::new(scan, stop, Some(vec![]), None),
                &frames,
                Some(&bits),
            )
        };
        let done = StopPoint {
            pass: 0,
            kind: 2,
            next: vec![None],
        };
        let got = run(&done).unwrap();
        assert_eq!((got.probes, got.replies), (24, 12));
        assert_eq!(got.answered, "both ways");
        // The DNS kind's stop moved back to its start.
        let back = StopPoint {
            pass: 0,
            kind: 1,
            next: vec![Some(0)],
        };
        assert!(matches!(
            run(&back),
            Err(Disagreement::SentPastStop { count: 16, .. })
        ));
    }

    /// On loopback the kernel answers a probe before the sender's batch
    /// reaches the writer: the reply comes first in the capture.
    #[test]
    fn a_reply_written_before_its_probe_is_matched() {
        let key = CookieKey::random();
        let mut frames = first_pass(&key, [24, 24]);
        for pair in frames.chunks_mut(2) {
            if pair.len() == 2 && pair[1][33] != 0x02 {
                pair.swap(0, 1);
            }
        }
        let bits = recorded(&key, &frames);
        let got = check(
            7,
            &stop(0, [None, None]),
            &frames,
            Some(&bits),
            Some(vec![]),
        )
        .unwrap();
        assert_eq!(got.answered, "both ways");
        assert_eq!(got.replies, 16);
    }

    #[test]
    fn a_probe_outside_the_plan_is_refused() {
        let key = CookieKey::random();
        let mut frames = first_pass(&key, [2, 2]);
        let p = crate::probe::Probe {
            kind: ProbeKind::Syn,
            src: US.parse().unwrap(),
            dst: "198.18.1.3".parse().unwrap(),
            port: Some(8080),
        };
        let mut buf = Vec::new();
        crate::probe::build(
            &mut buf,
            &p,
            &key.marks(p.src, p.dst, 8080, ProbeKind::Syn),
            &ProbeTemplate::default(),
            None,
        )
        .unwrap();
        frames.push(buf);
        let err = check(7, &stop(0, [Some(2), Some(2)]), &frames, None, Some(vec![])).unwrap_err();
        assert!(
            matches!(&err, Disagreement::OutsidePlan { count: 1, first } if first.contains("port 8080")),
            "{err:?}"
        );
    }
}
