//! TCP analysis with tshark's `tcp.analysis.*` as the reference
//! definitions: per direction of each connection, the next sequence number
//! expected, the last acknowledgement and window, and from them
//! retransmissions (fast and spurious ones among them), duplicate ACKs,
//! out-of-order segments, segments not captured (a gap), ACKs of segments
//! not captured, zero windows and keep-alives. Counted in the report's
//! `tcp_analysis` section, in total and for the connections with the most.
//!
//! The rules, as Wireshark's packet-tcp.c applies them (simplified where
//! said): a segment that carries data (or SYN/FIN) below the next expected
//! sequence number is a retransmission: fast when the other side sent two
//! or more duplicate ACKs for it, out of order when it came within 3 ms of
//! the previous segment (Wireshark's threshold before a round trip is
//! known), spurious when the other side had acknowledged it already. A
//! segment above the next expected number follows a lost one; an empty
//! segment repeating the last ACK and window is a duplicate ACK; a
//! one-byte (or empty) segment one below the next number is a keep-alive.

use std::net::IpAddr;

use hashbrown::HashMap;
use serde::Serialize;

/// A connection's endpoints, `a` then `b` (the flow key's order), or one
/// direction: (source, source port, destination, destination port).
pub type Dir = (IpAddr, u16, IpAddr, u16);

const SYN: u8 = 0x02;
const FIN: u8 = 0x01;
const RST: u8 = 0x04;
const ACK: u8 = 0x10;

/// Connections whose events are kept apart (for the top list): the first
/// this many with any event; the totals count every one.
const MAX_CONNS: usize = 4_096;
/// Connections listed with their counts.
const TOP: usize = 20;
/// Wireshark's out-of-order threshold before a round trip is known.
const OOO_NS: i64 = 3_000_000;

/// One direction's TCP analysis state, kept beside its flow in the flow
/// table (`analyze::flows`): no lookup of its own per segment.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct TcpDirState {
    pub(crate) next: Option<u32>,
    /// The end of the data (payload bytes, not SYN or FIN) seen so far.
    pub(crate) data_next: Option<u32>,
    pub(crate) last_ack: Option<u32>,
    pub(crate) window: u16,
    pub(crate) dup_acks: u32,
    pub(crate) last_ns: i64,
}

/// A connection's TCP analysis state: both directions (endpoint `a`'s,
/// then `b`'s) and the events counted on it, for its flow summary.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct TcpConnState {
    pub(crate) dirs: [TcpDirState; 2],
    pub(crate) events: FlowEvents,
}

/// The events counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TcpEvents {
    /// Every retransmission, fast and spurious ones included (tshark's
    /// `tcp.analysis.retransmission`).
    pub retransmissions: u64,
    pub fast_retransmissions: u64,
    pub spurious_retransmissions: u64,
    pub duplicate_acks: u64,
    pub out_of_order: u64,
    /// A gap: tshark's "previous segment not captured".
    pub lost_segments: u64,
    /// tshark's "ACKed segment that wasn't captured".
    pub acked_unseen_segments: u64,
    pub zero_windows: u64,
    pub keep_alives: u64,
}

impl TcpEvents {
    fn total(&self) -> u64 {
        self.retransmissions
            + self.duplicate_acks
            + self.out_of_order
            + self.lost_segments
            + self.acked_unseen_segments
            + self.zero_windows
            + self.keep_alives
    }

    fn add(&mut self, o: &TcpEvents) {
        self.retransmissions += o.retransmissions;
        self.fast_retransmissions += o.fast_retransmissions;
        self.spurious_retransmissions += o.spurious_retransmissions;
        self.duplicate_acks += o.duplicate_acks;
        self.out_of_order += o.out_of_order;
        self.lost_segments += o.lost_segments;
        self.acked_unseen_segments += o.acked_unseen_segments;
        self.zero_windows += o.zero_windows;
        self.keep_alives += o.keep_alives;
    }
}

impl TcpEvents {
    fn values(&self) -> [u64; 9] {
        [
            self.retransmissions,
            self.fast_retransmissions,
            self.spurious_retransmissions,
            self.duplicate_acks,
            self.out_of_order,
            self.lost_segments,
            self.acked_unseen_segments,
            self.zero_windows,
            self.keep_alives,
        ]
    }

    fn from_values(v: [u64; 9]) -> TcpEvents {
        let [
            retransmissions,
            fast_retransmissions,
            spurious_retransmissions,
            duplicate_acks,
            out_of_order,
            lost_segments,
            acked_unseen_segments,
            zero_windows,
            keep_alives,
        ] = v;
        TcpEvents {
            retransmissions,
            fast_retransmissions,
            spurious_retransmissions,
            duplicate_acks,
            out_of_order,
            lost_segments,
            acked_unseen_segments,
            zero_windows,
            keep_alives,
        }
    }
}

/// One connection's events, kept beside its flow for the flow's summary:
/// 4-byte counts (they saturate), so every flow slot can hold them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowEvents([u32; 9]);

impl FlowEvents {
    fn add(&mut self, e: &TcpEvents) {
        for (c, v) in self.0.iter_mut().zip(e.values()) {
            *c = c.saturating_add(u32::try_from(v).unwrap_or(u32::MAX));
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|&c| c == 0)
    }

    pub fn events(&self) -> TcpEvents {
        TcpEvents::from_values(self.0.map(u64::from))
    }
}

/// `a` after `b` in sequence space (RFC 1982 arithmetic).
fn after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

#[derive(Default)]
pub struct TcpAnalysis {
    /// Events per connection (only those with events).
    per_conn: HashMap<Dir, TcpEvents>,
    total: TcpEvents,
}

/// One segment's header fields, read from the TCP header.
#[derive(Clone, Copy, Debug)]
pub struct Segment {
    pub flags: u8,
    pub seq: u32,
    pub ack: u32,
    pub window: u16,
    pub len: u32,
}

impl Segment {
    /// From the TCP header at the start of `tcp` and the payload length.
    pub fn read(tcp: &[u8], payload_len: usize) -> Option<Segment> {
        let be32 = |o: usize| -> Option<u32> {
            Some(u32::from_be_bytes(tcp.get(o..o + 4)?.try_into().ok()?))
        };
        Some(Segment {
            flags: *tcp.get(13)?,
            seq: be32(4)?,
            ack: be32(8)?,
            window: u16::from_be_bytes([*tcp.get(14)?, *tcp.get(15)?]),
            len: payload_len as u32,
        })
    }
}

impl TcpAnalysis {
    /// One segment of the connection `key`, from endpoint `a` when
    /// `from_a`, with its directions' state; whether it carries data not
    /// seen before (not a retransmission, a duplicate or out of order):
    /// HTTP is read from fresh data only, so a retransmitted request
    /// counts once.
    pub(crate) fn segment(
        &mut self,
        now: i64,
        conn: &mut TcpConnState,
        from_a: bool,
        key: impl FnOnce() -> Dir,
        s: Segment,
    ) -> bool {
        let state = &mut conn.dirs;
        let (mi, oi) = if from_a { (0, 1) } else { (1, 0) };
        let other = state[oi];
        let me = &mut state[mi];
        let (syn, fin, rst, ackf) = (
            s.flags & SYN != 0,
            s.flags & FIN != 0,
            s.flags & RST != 0,
            s.flags & ACK != 0,
        );
        let control = syn || fin || rst;
        let seq_len = s.len + u32::from(syn) + u32::from(fin);
        let mut ev = TcpEvents::default();
        if s.window == 0 && !control {
            ev.zero_windows += 1;
        }
        let keep_alive =
            s.len <= 1 && !control && me.next.is_some_and(|n| s.seq == n.wrapping_sub(1));
        if keep_alive {
            ev.keep_alives += 1;
        }
        if let Some(n) = me.next
            && after(s.seq, n)
            && !rst
        {
            ev.lost_segments += 1;
        }
        let dup = s.len == 0
            && !control
            && ackf
            && !keep_alive
            && me.last_ack == Some(s.ack)
            && me.window == s.window
            && me.next == Some(s.seq);
        if dup {
            ev.duplicate_acks += 1;
            me.dup_acks += 1;
        } else if ackf && me.last_ack != Some(s.ack) {
            me.dup_acks = 0;
        }
        if ackf
            && let Some(n) = other.next
            && after(s.ack, n)
            && !syn
        {
            ev.acked_unseen_segments += 1;
        }
        if seq_len > 0
            && !keep_alive
            && let Some(n) = me.next
            && after(n, s.seq)
        {
            if other.dup_acks >= 2 && other.last_ack == Some(s.seq) {
                ev.fast_retransmissions += 1;
                ev.retransmissions += 1;
            } else if now - me.last_ns < OOO_NS && n != s.seq.wrapping_add(seq_len) {
                ev.out_of_order += 1;
            } else if other
                .last_ack
                .is_some_and(|a| !after(s.seq.wrapping_add(seq_len), a))
            {
                ev.spurious_retransmissions += 1;
                ev.retransmissions += 1;
            } else {
                ev.retransmissions += 1;
            }
        }
        // Fresh: its data starts at or past the data seen so far (a capture
        // that begins mid-stream, or a first segment reusing the SYN's
        // number, is fresh; a second copy of a request is not).
        let fresh = s.len > 0 && me.data_next.is_none_or(|n| !after(n, s.seq));
        if s.len > 0 {
            let data_end = s.seq.wrapping_add(s.len);
            if me.data_next.is_none_or(|n| after(data_end, n)) {
                me.data_next = Some(data_end);
            }
        }
        let end = s.seq.wrapping_add(seq_len);
        match me.next {
            Some(n) if !after(end, n) => {}
            _ if seq_len > 0 || me.next.is_none() => me.next = Some(end),
            _ => {}
        }
        if ackf {
            me.last_ack = Some(s.ack);
        }
        me.window = s.window;
        me.last_ns = now;
        if ev.total() > 0 {
            self.total.add(&ev);
            conn.events.add(&ev);
            let key = key();
            if self.per_conn.len() < MAX_CONNS || self.per_conn.contains_key(&key) {
                self.per_conn.entry(key).or_default().add(&ev);
            }
        }
        fresh
    }

    pub fn report(self) -> TcpAnalysisReport {
        let mut conns: Vec<(Dir, TcpEvents)> = self.per_conn.into_iter().collect();
        conns.sort_by(|a, b| b.1.total().cmp(&a.1.total()).then(a.0.cmp(&b.0)));
        TcpAnalysisReport {
            events: self.total,
            top_connections: conns
                .into_iter()
                .take(TOP)
                .map(|((a, ap, b, bp), events)| ConnEvents {
                    a: a.to_string(),
                    a_port: ap,
                    b: b.to_string(),
                    b_port: bp,
                    events,
                })
                .collect(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ConnEvents {
    pub a: String,
    pub a_port: u16,
    pub b: String,
    pub b_port: u16,
    #[serde(flatten)]
    pub events: TcpEvents,
}

/// The report's `tcp_analysis` section.
#[derive(Debug, Serialize)]
pub struct TcpAnalysisReport {
    #[serde(flatten)]
    pub events: TcpEvents,
    /// The connections with the most events (up to 20).
    pub top_connections: Vec<ConnEvents>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(flags: u8, seq: u32, ack: u32, window: u16, len: u32) -> Segment {
        Segment {
            flags,
            seq,
            ack,
            window,
            len,
        }
    }

    /// A connection through the events the corpus does not show: a lost
    /// segment, three duplicate ACKs, a fast retransmission, an
    /// out-of-order segment, a zero window and a keep-alive.
    #[test]
    fn every_event_on_a_made_up_connection() {
        let (a, b): (IpAddr, IpAddr) = (
            "198.18.0.2".parse().unwrap(),
            "198.18.1.10".parse().unwrap(),
        );
        let (key, a_is_a) = ((a, 40000, b, 80), true);
        let mut st = TcpConnState::default();
        let mut t = TcpAnalysis::default();
        let ms = 1_000_000;
        let seg_at =
            |t: &mut TcpAnalysis, st: &mut TcpConnState, at: i64, from_a: bool, s: Segment| {
                t.segment(at, st, from_a == a_is_a, || key, s)
            };
        seg_at(&mut t, &mut st, 10 * ms, true, seg(SYN, 1000, 0, 64240, 0));
        seg_at(
            &mut t,
            &mut st,
            15 * ms,
            false,
            seg(SYN | ACK, 5000, 1001, 65535, 0),
        );
        seg_at(
            &mut t,
            &mut st,
            20 * ms,
            true,
            seg(ACK, 1001, 5001, 64240, 0),
        );
        assert!(seg_at(
            &mut t,
            &mut st,
            30 * ms,
            true,
            seg(ACK, 1001, 5001, 64240, 100)
        ));
        // 1101..1201 is lost: the next one leaves a gap.
        seg_at(
            &mut t,
            &mut st,
            40 * ms,
            true,
            seg(ACK, 1201, 5001, 64240, 100),
        );
        for i in 0..3 {
            seg_at(
                &mut t,
                &mut st,
                (50 + i) * ms,
                false,
                seg(ACK, 5001, 1101, 65535, 0),
            );
        }
        // The lost one again, after three duplicate ACKs: fast.
        assert!(!seg_at(
            &mut t,
            &mut st,
            60 * ms,
            true,
            seg(ACK, 1101, 5001, 64240, 100)
        ));
        // An old segment within 3 ms of the previous one: out of order.
        seg_at(
            &mut t,
            &mut st,
            61 * ms,
            true,
            seg(ACK, 1001, 5001, 64240, 50),
        );
        // The receiver's window closes.
        seg_at(&mut t, &mut st, 200 * ms, false, seg(ACK, 5001, 1301, 0, 0));
        // A keep-alive: one byte below the next sequence number.
        seg_at(
            &mut t,
            &mut st,
            900 * ms,
            true,
            seg(ACK, 1300, 5001, 64240, 1),
        );
        // The flow's own counts equal the totals (one connection).
        let own = st.events.events();
        let r = t.report();
        let e = r.events;
        assert_eq!(own, e);
        assert_eq!(e.lost_segments, 1, "{e:?}");
        assert_eq!(
            e.duplicate_acks, 2,
            "the first repeats no earlier ACK: {e:?}"
        );
        assert_eq!(e.fast_retransmissions, 1, "{e:?}");
        assert_eq!(e.retransmissions, 1, "{e:?}");
        assert_eq!(e.out_of_order, 1, "{e:?}");
        assert_eq!(e.zero_windows, 1, "{e:?}");
        assert_eq!(e.keep_alives, 1, "{e:?}");
        assert_eq!(r.top_connections.len(), 1);
    }
}
