//! TCP analysis with tshark's `tcp.analysis.*` as the reference
//! definitions: per direction of each connection, the next sequence number
//! expected, the last acknowledgement and window, and from them
//! retransmissions (fast and spurious ones among them), duplicate ACKs,
//! out-of-order segments, segments not captured (a gap), ACKs of segments
//! not captured, zero windows and keep-alives. Counted in the report's
//! `tcp_analysis` section, in total and for the connections with the most.
//!
//! The rules are tshark 4.0's (packet-tcp.c, `tcp_analyze_sequence_number`),
//! in its order: a segment above the next expected sequence number follows
//! a lost one; an empty segment repeating the last ACK, window and sequence
//! number is a duplicate ACK; an ACK past what the other side sent without
//! a hole acknowledges a segment the capture missed (once per hole). A
//! segment that carries data (or SYN/FIN) is then a spurious retransmission
//! when its data was acknowledged already, whenever it comes; below the
//! next expected number, it is a fast retransmission within 20 ms of two or
//! more duplicate ACKs for it, out of order when it came within the initial
//! round trip (3 ms before one is known) of the highest segment, else a
//! retransmission. A one-byte (or empty) segment one below the next number
//! is a keep-alive.

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
/// A fast retransmission follows the last duplicate ACK within 20 ms.
const FAST_NS: i64 = 20_000_000;

/// One direction's TCP analysis state, kept beside its flow in the flow
/// table (`analyze::flows`): no lookup of its own per segment. The fields
/// are tshark's (`tcp_analyze_seq_info`); `known` says which sequence
/// fields are set (tshark keeps 0 for unset), so the state stays 40 bytes.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct TcpDirState {
    /// The highest sequence number sent plus one (`nextseq`).
    next: u32,
    /// The end of the data (payload bytes, not SYN or FIN) seen so far.
    data_next: u32,
    /// The end of the data sent without a hole (`maxseqtobeacked`): an ACK
    /// past it acknowledges a segment the capture missed.
    max_to_ack: u32,
    last_ack: u32,
    /// When `next` last advanced (`nextseqtime`), and the last ACK's time.
    next_ns: i64,
    last_ack_ns: i64,
    /// Duplicate ACKs in a row; `u32::MAX` marks an ACK of an unseen
    /// segment already reported (tshark's -1 in an unsigned counter).
    dup_acks: u32,
    window: u16,
    known: u8,
}

const NEXT: u8 = 1;
const DATA_NEXT: u8 = 2;
const MAX_TO_ACK: u8 = 4;
const LAST_ACK: u8 = 8;
const WAS_KEEP_ALIVE: u8 = 16;
const WAS_ZERO_WINDOW_PROBE: u8 = 32;

impl TcpDirState {
    fn get(&self, bit: u8, v: u32) -> Option<u32> {
        (self.known & bit != 0).then_some(v)
    }
    fn next(&self) -> Option<u32> {
        self.get(NEXT, self.next)
    }
    fn data_next(&self) -> Option<u32> {
        self.get(DATA_NEXT, self.data_next)
    }
    fn max_to_ack(&self) -> Option<u32> {
        self.get(MAX_TO_ACK, self.max_to_ack)
    }
    fn last_ack(&self) -> Option<u32> {
        self.get(LAST_ACK, self.last_ack)
    }
    fn flag(&self, bit: u8) -> bool {
        self.known & bit != 0
    }
    fn set_flag(&mut self, bit: u8, on: bool) {
        if on {
            self.known |= bit;
        } else {
            self.known &= !bit;
        }
    }
}

/// A connection's TCP analysis state: both directions (endpoint `a`'s,
/// then `b`'s), the handshake's times and the events counted on it, for
/// its flow summary.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TcpConnState {
    pub(crate) dirs: [TcpDirState; 2],
    /// The latest SYN's time (`i64::MIN` before one), and the initial
    /// round trip from it to the first pure ACK (0 while unknown, as
    /// tshark keeps it): the out-of-order threshold once known.
    syn_ns: i64,
    /// Nanoseconds, at most 4.29 s (a longer first round trip counts as
    /// that); [`IRTT_UNUSABLE`] when the first ACK came before the SYN in
    /// capture time. A `u32` keeps the state at 128 bytes, one per slot of
    /// the flow table.
    irtt_ns: u32,
    pub(crate) events: FlowEvents,
}

/// An initial round trip that cannot be used (measured negative).
const IRTT_UNUSABLE: u32 = u32::MAX;

impl Default for TcpConnState {
    fn default() -> Self {
        TcpConnState {
            dirs: Default::default(),
            syn_ns: i64::MIN,
            irtt_ns: 0,
            events: FlowEvents::default(),
        }
    }
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
        let (syn, fin, rst, ackf) = (
            s.flags & SYN != 0,
            s.flags & FIN != 0,
            s.flags & RST != 0,
            s.flags & ACK != 0,
        );
        // The initial round trip: from the latest SYN to the first pure ACK.
        if syn && !ackf {
            conn.syn_ns = now;
        } else if !syn && ackf && conn.irtt_ns == 0 && conn.syn_ns != i64::MIN {
            let d = now - conn.syn_ns;
            if d != 0 {
                conn.irtt_ns = u32::try_from(d)
                    .map(|v| v.min(IRTT_UNUSABLE - 1))
                    .unwrap_or(if d > 0 {
                        IRTT_UNUSABLE - 1
                    } else {
                        IRTT_UNUSABLE
                    });
            }
        }
        let ooo_threshold = if conn.irtt_ns > 0 && conn.irtt_ns != IRTT_UNUSABLE {
            i64::from(conn.irtt_ns)
        } else {
            OOO_NS
        };
        let mi = usize::from(!from_a);
        let [x, y] = &mut conn.dirs;
        let (me, other) = if mi == 0 { (x, y) } else { (y, x) };
        let control = syn || fin || rst;
        let seq_len = s.len + u32::from(syn) + u32::from(fin);
        let ack = ackf.then_some(s.ack);
        let mut ev = TcpEvents::default();
        // tshark 4.0's tcp_analyze_sequence_number, in its order.
        let zero_window_probe = s.len == 1
            && me.next() == Some(s.seq)
            && other.window == 0
            && other.last_ack().is_some();
        let mut keep_alive = false;
        'fwd: {
            if zero_window_probe {
                break 'fwd;
            }
            if s.window == 0 && !control {
                ev.zero_windows += 1;
            }
            if let Some(n) = me.next()
                && after(s.seq, n)
                && !rst
            {
                ev.lost_segments += 1;
            }
            keep_alive =
                s.len <= 1 && !control && me.next().is_some_and(|n| s.seq == n.wrapping_sub(1));
            if keep_alive {
                ev.keep_alives += 1;
            }
            let repeats = s.len == 0
                && !control
                && s.window == me.window
                && me.next() == Some(s.seq)
                && me.last_ack() == ack;
            if repeats
                && (other.flag(WAS_KEEP_ALIVE)
                    || (s.window == 0 && other.flag(WAS_ZERO_WINDOW_PROBE)))
            {
                // The answer to a keep-alive or a window probe.
                break 'fwd;
            }
            if repeats && s.window != 0 {
                me.dup_acks = if me.dup_acks == u32::MAX {
                    1
                } else {
                    me.dup_acks + 1
                };
                ev.duplicate_acks += 1;
            }
        }
        if ack != me.last_ack() {
            me.dup_acks = 0;
        }
        // An ACK past what the other side sent without a hole: a segment
        // the capture missed. Once per hole, as tshark counts it.
        if let Some(a) = ack
            && let Some(m) = other.max_to_ack()
            && after(a, m)
        {
            match other.next() {
                Some(n) if after(n, m) => {
                    other.max_to_ack = n;
                    ev.acked_unseen_segments += 1;
                }
                _ => {
                    if other.dup_acks == 0 {
                        ev.acked_unseen_segments += 1;
                    }
                    other.dup_acks = u32::MAX;
                }
            }
        }
        // Retransmissions: data (or SYN or FIN) that does not advance the
        // sequence number.
        if seq_len > 0 && !keep_alive {
            let mut not_advanced = me.next().is_some_and(|n| after(n, s.seq));
            if s.len > 1 && me.next().is_some_and(|n| n.wrapping_sub(1) == s.seq) {
                not_advanced = false;
            }
            let spurious = s.len > 0
                && other
                    .last_ack()
                    .is_some_and(|a| !after(s.seq.wrapping_add(s.len), a));
            if spurious {
                ev.spurious_retransmissions += 1;
                ev.retransmissions += 1;
            } else if not_advanced
                && other.dup_acks >= 2
                && other.last_ack() == Some(s.seq)
                && now - other.last_ack_ns < FAST_NS
            {
                ev.fast_retransmissions += 1;
                ev.retransmissions += 1;
            } else if not_advanced
                && now - me.next_ns < ooo_threshold
                && me.next() != Some(s.seq.wrapping_add(seq_len))
            {
                ev.out_of_order += 1;
            } else if not_advanced {
                ev.retransmissions += 1;
            }
        }
        // Fresh: its data starts at or past the data seen so far (a capture
        // that begins mid-stream, or a first segment reusing the SYN's
        // number, is fresh; a second copy of a request is not).
        let fresh = s.len > 0 && me.data_next().is_none_or(|n| !after(n, s.seq));
        if s.len > 0 {
            let data_end = s.seq.wrapping_add(s.len);
            if me.data_next().is_none_or(|n| after(data_end, n)) {
                me.data_next = data_end;
                me.known |= DATA_NEXT;
            }
        }
        let end = s.seq.wrapping_add(seq_len);
        if !zero_window_probe && me.next().is_none_or(|n| after(end, n)) {
            me.next = end;
            me.known |= NEXT;
            me.next_ns = now;
        }
        if me.max_to_ack().is_none_or(|m| m == s.seq) && !zero_window_probe {
            me.max_to_ack = me.next;
            me.set_flag(MAX_TO_ACK, me.flag(NEXT));
        }
        me.window = s.window;
        me.last_ack = s.ack;
        me.set_flag(LAST_ACK, ackf);
        me.last_ack_ns = now;
        me.set_flag(WAS_KEEP_ALIVE, keep_alive);
        me.set_flag(WAS_ZERO_WINDOW_PROBE, zero_window_probe);
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
    /// segment, an out-of-order segment, three duplicate ACKs, a fast
    /// retransmission, a zero window and a keep-alive.
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
        // Part of the hole, 1 ms after the highest segment (within the
        // 10 ms initial round trip) and not acknowledged: out of order.
        seg_at(
            &mut t,
            &mut st,
            41 * ms,
            true,
            seg(ACK, 1150, 5001, 64240, 20),
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

#[cfg(test)]
mod size_tests {
    /// Every slot of the flow table holds one (65,536 of them): the 5M
    /// benchmark capture's peak memory is held under 64 MB with it.
    #[test]
    fn the_direction_state_stays_40_bytes() {
        assert_eq!(std::mem::size_of::<super::TcpDirState>(), 40);
    }

    /// Two directions, the SYN's time, the initial round trip and the
    /// event counters: 128 bytes (136 with the round trip as an `i64`).
    #[test]
    fn the_connection_state_is_128_bytes() {
        assert_eq!(std::mem::size_of::<super::TcpConnState>(), 128);
    }
}
