//! HTTP/1.x read over each TCP direction's byte stream, de-duplicated and
//! in order: a request or response counts once however its segments were
//! retransmitted, a head split over several segments is gathered (up to
//! [`MAX_HEAD`] bytes), and a message that starts inside a segment (after
//! a body, or pipelined behind another request) is found by following
//! each body to its end: `Content-Length`, chunked transfer coding, or the
//! connection's close (RFC 9112, section 6.3).
//!
//! Pure: fed one segment at a time (sequence number, flags, payload), with
//! no socket and no clock. A direction that loses its place (a segment not
//! captured inside a head or a chunked body, a head over the cap, a body
//! whose end cannot be told) waits for a segment that starts a message, as
//! a stream first seen mid-connection does.

use std::net::IpAddr;

use std::collections::hash_map::Entry;

use foldhash::HashMap;

use super::http::{self, Framing, HeadEnd, HttpMessage};
use super::http_stats::{HttpStats, StreamCounts};

/// The longest head gathered over several segments (servers refuse longer
/// ones: Apache's and nginx's defaults are 8 KB a line).
pub const MAX_HEAD: usize = 16 * 1024;
/// Requests remembered per connection while their responses are awaited.
const MAX_OUTSTANDING: u32 = 32;

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;

/// `a` after `b` in sequence space (RFC 1982 arithmetic).
fn after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

/// What a direction expects next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// A message head (or the rest of one, in `Dir::head`).
    Head,
    /// This many body bytes.
    Body(u64),
    Chunk(Chunk),
    /// Nothing more is HTTP: a body to the close, a tunnel (CONNECT, 101).
    ToClose,
    /// Its place lost: waiting for a segment that starts a message.
    Lost,
}

/// Where a chunked body is (RFC 9112, section 7.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chunk {
    /// In a chunk-size line: its value so far, whether any digit came,
    /// whether the extensions (or padding) began.
    Size {
        value: u64,
        digits: bool,
        ext: bool,
    },
    Data(u64),
    /// The line end after a chunk's data.
    DataEnd {
        cr: bool,
    },
    /// In the trailer section: bytes on the current line.
    Trailer {
        line: u32,
    },
}

/// Why a request's response needs it: HEAD's has no body, a successful
/// CONNECT's turns the connection into a tunnel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Asked {
    Other = 0,
    Head = 1,
    Connect = 2,
}

/// One direction of a connection.
#[derive(Debug)]
struct Dir {
    /// The sequence number of the next byte expected; `None` until the
    /// direction's first message.
    next: Option<u32>,
    state: State,
    /// A head being gathered over several segments.
    head: Vec<u8>,
    closed: bool,
}

impl Dir {
    fn new() -> Dir {
        Dir {
            next: None,
            state: State::Lost,
            head: Vec::new(),
            closed: false,
        }
    }
}

/// The HTTP state of one connection.
#[derive(Debug)]
struct Conn {
    /// The flow this is (its first frame): a slot reused by another flow
    /// starts afresh.
    flow: u64,
    dirs: [Dir; 2],
    /// The connection's endpoints (`a`, `b`) and its latest segment's time:
    /// who asked whom, for the web-scanner detector.
    ends: [IpAddr; 2],
    last_ns: i64,
    /// The frame of the segment last fed: where a message found ends.
    last_frame: u64,
    /// Requests not answered yet, oldest in the low bits, two bits each.
    asked: u64,
    asked_len: u32,
}

impl Conn {
    fn new(flow: u64, ends: [IpAddr; 2]) -> Conn {
        Conn {
            flow,
            dirs: [Dir::new(), Dir::new()],
            ends,
            last_ns: 0,
            last_frame: 0,
            asked: 0,
            asked_len: 0,
        }
    }

    fn push_asked(&mut self, a: Asked) {
        if self.asked_len < MAX_OUTSTANDING {
            self.asked |= (a as u64) << (2 * self.asked_len);
            self.asked_len += 1;
        }
    }

    fn pop_asked(&mut self) -> Asked {
        if self.asked_len == 0 {
            return Asked::Other;
        }
        let a = match self.asked & 3 {
            1 => Asked::Head,
            2 => Asked::Connect,
            _ => Asked::Other,
        };
        self.asked >>= 2;
        self.asked_len -= 1;
        a
    }
}

/// Every connection's HTTP state, by flow-table slot.
#[derive(Debug, Default)]
pub struct HttpStreams {
    conns: HashMap<u32, Conn>,
    pub counts: StreamCounts,
}

/// One segment as the streams need it.
#[derive(Clone, Copy, Debug)]
pub struct StreamSegment<'a> {
    pub seq: u32,
    pub flags: u8,
    pub payload: &'a [u8],
    /// The capture time, and the connection's endpoints `a` and `b`.
    pub ts: i64,
    pub ends: [IpAddr; 2],
    /// The frame the segment came in (numbered from 1).
    pub frame: u64,
}

impl HttpStreams {
    /// One TCP segment of the flow in `slot` (`flow`: its first frame),
    /// from endpoint `a` when `from_a`. Messages found go to `stats`.
    pub fn segment(
        &mut self,
        slot: u32,
        flow: u64,
        from_a: bool,
        seg: StreamSegment<'_>,
        stats: &mut HttpStats,
    ) {
        let conn = match self.conns.entry(slot) {
            Entry::Occupied(e) => {
                let c = e.into_mut();
                if c.flow != flow {
                    // The slot's flow finished: this is another one.
                    let old = std::mem::replace(c, Conn::new(flow, seg.ends));
                    flush(old, stats);
                }
                c
            }
            Entry::Vacant(e) => {
                if !http::may_start_message(seg.payload) {
                    return;
                }
                e.insert(Conn::new(flow, seg.ends))
            }
        };
        let d = usize::from(!from_a);
        conn.last_ns = seg.ts;
        conn.last_frame = seg.frame;
        follow(conn, d, seg, stats, &mut self.counts);
        let done = seg.flags & RST != 0 || conn.dirs.iter().all(|d| d.closed);
        // Not HTTP after all (its first bytes only looked like it).
        let never = conn.dirs.iter().all(|d| d.next.is_none());
        if (done || never)
            && let Some(old) = self.conns.remove(&slot)
        {
            flush(old, stats);
        }
    }

    /// Count what the heads still being gathered say (the capture ended).
    pub fn finish(mut self, stats: &mut HttpStats) -> StreamCounts {
        let mut slots: Vec<u32> = self.conns.keys().copied().collect();
        slots.sort_unstable();
        for s in slots {
            if let Some(c) = self.conns.remove(&s) {
                flush(c, stats);
            }
        }
        self.counts
    }
}

/// Whether `payload` starts with an HTTP/1.x message head (whole or cut).
fn starts_message(payload: &[u8]) -> bool {
    http::may_start_message(payload) && http::parse_head(payload).is_some()
}

/// A connection ends: a head cut short still counts by its first line.
fn flush(mut c: Conn, stats: &mut HttpStats) {
    for d in 0..2 {
        cut_head(&mut c, d, stats);
    }
}

/// Count a head gathered so far (when its first line is there) and lose
/// the direction's place.
fn cut_head(c: &mut Conn, d: usize, stats: &mut HttpStats) {
    let head = std::mem::take(&mut c.dirs[d].head);
    // Only a whole first line says what the message was.
    if head.contains(&b'\n')
        && let Some(h) = http::parse_head(&head)
    {
        count(c, d, &h.message, stats);
    }
    c.dirs[d].state = State::Lost;
}

fn count(c: &mut Conn, d: usize, m: &HttpMessage<'_>, stats: &mut HttpStats) {
    if let HttpMessage::Request { method, .. } = m {
        c.push_asked(match *method {
            "HEAD" => Asked::Head,
            "CONNECT" => Asked::Connect,
            _ => Asked::Other,
        });
    }
    stats.add_between(m, c.ends[d], c.ends[1 - d], c.last_ns, c.last_frame);
}

/// Feed one segment to direction `d` of `c`.
fn follow(
    c: &mut Conn,
    d: usize,
    seg: StreamSegment<'_>,
    stats: &mut HttpStats,
    counts: &mut StreamCounts,
) {
    // The first data byte follows a SYN's sequence number.
    let seq = seg.seq.wrapping_add(u32::from(seg.flags & SYN != 0));
    let len = seg.payload.len() as u32;
    let mut data = seg.payload;
    let mut at_segment_start = true;
    // The head of the direction's first message, parsed to tell it is one.
    let mut first_head = None;
    match c.dirs[d].next {
        None => {
            // The direction's first message: follow it from here.
            if !http::may_start_message(data) {
                mark_fin(c, d, seg);
                return;
            }
            let Some(h) = http::parse_head(data) else {
                mark_fin(c, d, seg);
                return;
            };
            first_head = Some(h);
            counts.directions += 1;
            c.dirs[d].state = State::Head;
        }
        Some(next) if after(seq, next) => {
            // Bytes between were not captured.
            let gap = u64::from(seq.wrapping_sub(next));
            let dir = &mut c.dirs[d];
            match dir.state {
                State::Body(n) if gap < n => dir.state = State::Body(n - gap),
                State::ToClose | State::Lost => {}
                _ => {
                    counts.gaps += 1;
                    cut_head(c, d, stats);
                }
            }
        }
        Some(next) => {
            // Data already seen (a retransmission) is skipped.
            let old = next.wrapping_sub(seq);
            if old >= len {
                mark_fin(c, d, seg);
                return;
            }
            data = &data[old as usize..];
            at_segment_start = old == 0;
        }
    }
    c.dirs[d].next = Some(seq.wrapping_add(len));
    if c.dirs[d].state == State::Lost && at_segment_start && starts_message(data) {
        c.dirs[d].state = State::Head;
    }
    let mut first = at_segment_start;
    while !data.is_empty() {
        let state = c.dirs[d].state;
        match state {
            State::Head => {
                if c.dirs[d].head.is_empty() {
                    // Empty lines between messages are allowed (RFC 9112, 2.2).
                    let skip = data
                        .iter()
                        .take_while(|&&b| b == b'\r' || b == b'\n')
                        .count();
                    data = &data[skip..];
                    if data.is_empty() {
                        break;
                    }
                    if !first {
                        counts.messages_inside_segments += 1;
                    }
                    let Some(h) = first_head.take().or_else(|| http::parse_head(data)) else {
                        // Not a message where one was due: the place is lost.
                        counts.unreadable += 1;
                        c.dirs[d].state = State::Lost;
                        break;
                    };
                    data = head_in_place(c, d, data, h, stats, counts);
                } else {
                    data = head_gathered(c, d, data, stats, counts);
                }
            }
            State::Body(n) => {
                let k = n.min(data.len() as u64);
                data = &data[k as usize..];
                c.dirs[d].state = if k == n {
                    State::Head
                } else {
                    State::Body(n - k)
                };
            }
            State::Chunk(ch) => {
                let (used, next) = chunked(ch, data);
                data = &data[used..];
                c.dirs[d].state = match next {
                    Some(Some(ch)) => State::Chunk(ch),
                    Some(None) => State::Head,
                    None => {
                        counts.unreadable += 1;
                        State::Lost
                    }
                };
            }
            State::ToClose | State::Lost => break,
        }
        first = false;
    }
    mark_fin(c, d, seg);
}

/// A FIN ends the direction: a head cut short still counts.
fn mark_fin(c: &mut Conn, d: usize, seg: StreamSegment<'_>) {
    if seg.flags & FIN != 0 {
        c.dirs[d].closed = true;
    }
}

/// A head `h` at the start of `data` (nothing gathered before it): read in
/// place when it ends within the segment, else gathered. Returns what
/// follows the head.
fn head_in_place<'a>(
    c: &mut Conn,
    d: usize,
    data: &'a [u8],
    h: http::Head<'_>,
    stats: &mut HttpStats,
    counts: &mut StreamCounts,
) -> &'a [u8] {
    match h.end {
        HeadEnd::Complete { len, framing } => {
            count(c, d, &h.message, stats);
            c.dirs[d].state = body_state(c, &h.message, framing);
            &data[len..]
        }
        HeadEnd::Cut if data.len() < MAX_HEAD => {
            c.dirs[d].head.extend_from_slice(data);
            &[]
        }
        HeadEnd::Cut => {
            counts.heads_over_cap += 1;
            count(c, d, &h.message, stats);
            c.dirs[d].state = State::Lost;
            &[]
        }
        HeadEnd::Unreadable => {
            counts.unreadable += 1;
            count(c, d, &h.message, stats);
            c.dirs[d].state = State::Lost;
            &[]
        }
    }
}

/// More of a head begun in an earlier segment.
fn head_gathered<'a>(
    c: &mut Conn,
    d: usize,
    data: &'a [u8],
    stats: &mut HttpStats,
    counts: &mut StreamCounts,
) -> &'a [u8] {
    let had = c.dirs[d].head.len();
    let take = data.len().min(MAX_HEAD - had);
    c.dirs[d].head.extend_from_slice(&data[..take]);
    let head = std::mem::take(&mut c.dirs[d].head);
    let parsed = http::parse_head(&head);
    let rest = match parsed.as_ref().map(|h| h.end) {
        Some(HeadEnd::Complete { len, framing }) => {
            let h = parsed.as_ref().expect("parsed");
            counts.heads_reassembled += 1;
            count(c, d, &h.message, stats);
            c.dirs[d].state = body_state(c, &h.message, framing);
            // The head began `had` bytes before this segment's data.
            &data[len - had..]
        }
        Some(HeadEnd::Cut) if head.len() < MAX_HEAD => {
            c.dirs[d].head = head;
            return &[];
        }
        Some(end) => {
            if end == HeadEnd::Cut {
                counts.heads_over_cap += 1;
            } else {
                counts.unreadable += 1;
            }
            let h = parsed.as_ref().expect("parsed");
            count(c, d, &h.message, stats);
            c.dirs[d].state = State::Lost;
            &[]
        }
        None => {
            counts.unreadable += 1;
            c.dirs[d].state = State::Lost;
            &[]
        }
    };
    // Keep the buffer's allocation for the next head only if it is small.
    let mut head = head;
    head.clear();
    if head.capacity() <= 4096 {
        c.dirs[d].head = head;
    }
    rest
}

/// What follows a head: its body, as the head (and for a response, the
/// request it answers) says.
fn body_state(c: &mut Conn, m: &HttpMessage<'_>, framing: Framing) -> State {
    let by_framing = |unsaid: State| match framing {
        Framing::Length(0) => State::Head,
        Framing::Length(n) => State::Body(n),
        Framing::Chunked => State::Chunk(Chunk::Size {
            value: 0,
            digits: false,
            ext: false,
        }),
        Framing::Unsaid => unsaid,
        Framing::Unknown => State::ToClose,
    };
    match m {
        HttpMessage::Request { .. } => by_framing(State::Head),
        // Switching protocols: what follows is no longer HTTP/1.
        HttpMessage::Response { status: 101, .. } => State::ToClose,
        // An interim response: the final one follows, for the same request.
        HttpMessage::Response {
            status: 100..=199, ..
        } => State::Head,
        HttpMessage::Response { status, .. } => match c.pop_asked() {
            Asked::Connect if (200..300).contains(status) => State::ToClose,
            Asked::Head => State::Head,
            _ if matches!(status, 204 | 304) => State::Head,
            _ => by_framing(State::ToClose),
        },
    }
}

/// Read a chunked body from `data`: the bytes used, and then `Some(Some)`
/// to go on, `Some(None)` at the body's end, `None` on a malformed body.
fn chunked(mut ch: Chunk, data: &[u8]) -> (usize, Option<Option<Chunk>>) {
    let mut i = 0;
    while i < data.len() {
        let b = data[i];
        match &mut ch {
            Chunk::Data(n) => {
                let k = (*n).min((data.len() - i) as u64);
                i += k as usize;
                *n -= k;
                if *n == 0 {
                    ch = Chunk::DataEnd { cr: false };
                }
                continue;
            }
            Chunk::Size { value, digits, ext } => match b {
                b'\n' if !*digits => return (i, None),
                b'\n' if *value == 0 => ch = Chunk::Trailer { line: 0 },
                b'\n' => ch = Chunk::Data(*value),
                b'\r' => {}
                _ if *ext => {}
                b';' | b' ' | b'\t' => *ext = true,
                _ => {
                    let Some(v) = (b as char).to_digit(16) else {
                        return (i, None);
                    };
                    if *value >> 60 != 0 {
                        return (i, None);
                    }
                    *value = (*value << 4) | u64::from(v);
                    *digits = true;
                }
            },
            Chunk::DataEnd { cr } => match b {
                b'\r' if !*cr => *cr = true,
                b'\n' => {
                    ch = Chunk::Size {
                        value: 0,
                        digits: false,
                        ext: false,
                    }
                }
                _ => return (i, None),
            },
            Chunk::Trailer { line } => match b {
                b'\n' if *line == 0 => return (i + 1, Some(None)),
                b'\n' => *line = 0,
                b'\r' => {}
                _ => *line = line.saturating_add(1),
            },
        }
        i += 1;
    }
    (i, Some(Some(ch)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACK: u8 = 0x10;
    const PSH: u8 = 0x08;
    const ENDS: [std::net::IpAddr; 2] = [
        std::net::IpAddr::V4(std::net::Ipv4Addr::new(198, 18, 0, 1)),
        std::net::IpAddr::V4(std::net::Ipv4Addr::new(198, 18, 0, 2)),
    ];

    /// Feeds segments of one connection: (from the client?, seq, flags, bytes).
    fn run(segments: &[(bool, u32, u8, &[u8])]) -> (HttpStats, StreamCounts) {
        let mut streams = HttpStreams::default();
        let mut stats = HttpStats::default();
        for (i, &(from_a, seq, flags, payload)) in segments.iter().enumerate() {
            streams.segment(
                7,
                1,
                from_a,
                StreamSegment {
                    seq,
                    flags,
                    payload,
                    ts: 0,
                    ends: ENDS,
                    frame: i as u64 + 1,
                },
                &mut stats,
            );
        }
        let counts = streams.finish(&mut stats);
        (stats, counts)
    }

    fn uris(stats: &HttpStats) -> Vec<String> {
        let mut v: Vec<String> = stats
            .report(100, Default::default())
            .uris
            .into_iter()
            .map(|k| k.value)
            .collect();
        v.sort();
        v
    }

    #[test]
    fn pipelined_requests_in_one_segment_count_each() {
        let reqs = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\nHEAD /c HTTP/1.1\r\n\r\n";
        let resp: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcHTTP/1.1 404 Nope\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 999\r\n\r\n";
        let (stats, counts) = run(&[(true, 100, PSH | ACK, reqs), (false, 500, PSH | ACK, resp)]);
        assert_eq!((stats.requests, stats.responses), (3, 3));
        assert_eq!(uris(&stats), ["/a", "/b", "/c"]);
        // The HEAD's response has no body, whatever its Content-Length says.
        assert_eq!(counts.messages_inside_segments, 4);
    }

    #[test]
    fn a_head_split_over_three_segments_counts_once() {
        let (stats, counts) = run(&[
            (true, 1, ACK, b"GET /split HT"),
            (true, 14, ACK, b"TP/1.1\r\nHost: a"),
            (true, 29, ACK, b".test\r\n\r\n"),
        ]);
        assert_eq!(stats.requests, 1);
        assert_eq!(uris(&stats), ["/split"]);
        assert_eq!(stats.report(5, Default::default()).hosts[0].value, "a.test");
        assert_eq!(counts.heads_reassembled, 1);
    }

    #[test]
    fn a_body_that_looks_like_a_request_is_not_one() {
        let body = b"GET /inside-the-body HTTP/1.1\r\n\r\n";
        let head = format!(
            "POST /upload HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let next = b"GET /after HTTP/1.1\r\n\r\n";
        let s1 = head.len() as u32 + 1;
        let s2 = s1 + body.len() as u32;
        let (stats, _) = run(&[
            (true, 1, ACK, head.as_bytes()),
            (true, s1, ACK, body),
            (true, s2, ACK, next),
        ]);
        assert_eq!(uris(&stats), ["/after", "/upload"]);
    }

    #[test]
    fn chunked_bodies_are_followed_to_the_next_response() {
        let r1: &[u8] =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nHTTP/\r\n1a;ext=1\r\n";
        let r2: &[u8] = b"abcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Trailer: 1\r\n\r\nHTTP/1.1 304 Not Modified\r\n\r\n";
        let (stats, counts) = run(&[
            (
                true,
                1,
                ACK,
                b"GET / HTTP/1.1\r\n\r\nGET /again HTTP/1.1\r\n\r\n",
            ),
            (false, 1, ACK, r1),
            (false, 1 + r1.len() as u32, ACK, r2),
        ]);
        assert_eq!(stats.responses, 2);
        assert_eq!(counts.unreadable, 0);
    }

    #[test]
    fn a_retransmission_and_a_partial_overlap_add_nothing_twice() {
        let a: &[u8] = b"GET /one HTTP/1.1\r\n\r\nGET /tw";
        let b: &[u8] = b"GET /two HTTP/1.1\r\n\r\n";
        let (stats, _) = run(&[
            (true, 1, ACK, a),
            (true, 1, ACK, a),
            // resends the start of /two and completes it
            (true, 22, ACK, b),
            (true, 22, ACK, b),
        ]);
        assert_eq!(uris(&stats), ["/one", "/two"]);
        assert_eq!(stats.requests, 2);
    }

    #[test]
    fn a_lost_body_segment_is_skipped_and_a_lost_head_resynchronizes() {
        let head: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n";
        let h = head.len() as u32;
        let (stats, counts) = run(&[
            (
                true,
                1,
                ACK,
                b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n",
            ),
            (false, 1, ACK, head),
            // 60 body bytes never captured; the last 40 come
            (false, 1 + h + 60, ACK, &[b'x'; 40]),
            (
                false,
                1 + h + 100,
                ACK,
                b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
            ),
            // client: a head cut by a lost segment, then a new request
            (true, 39, ACK, b"GET /c HTTP/1.1\r\nHo"),
            (true, 200, ACK, b"st: lost\r\n\r\n"),
            (true, 300, ACK, b"GET /d HTTP/1.1\r\n\r\n"),
        ]);
        assert_eq!(stats.responses, 2);
        assert_eq!(uris(&stats), ["/a", "/b", "/c", "/d"]);
        assert_eq!(counts.gaps, 1);
    }

    #[test]
    fn a_head_over_the_cap_counts_by_its_first_line() {
        let mut big = b"GET /big HTTP/1.1\r\nX-Pad: ".to_vec();
        big.extend(std::iter::repeat_n(b'p', MAX_HEAD));
        let (stats, counts) = run(&[
            (true, 1, ACK, &big[..1000]),
            (true, 1001, ACK, &big[1000..]),
        ]);
        assert_eq!(uris(&stats), ["/big"]);
        assert_eq!(counts.heads_over_cap, 1);
    }

    #[test]
    fn a_head_with_more_headers_than_parsed_at_once_is_followed_to_its_body() {
        let mut head = b"POST /many HTTP/1.1\r\n".to_vec();
        for i in 0..200 {
            head.extend(format!("X-{i}: v\r\n").bytes());
        }
        head.extend(b"Content-Length: 3\r\n\r\nGETGET /next HTTP/1.1\r\n\r\n");
        let (stats, counts) = run(&[(true, 1, ACK, &head)]);
        assert_eq!(uris(&stats), ["/many", "/next"]);
        assert_eq!(counts.unreadable, 0);
    }

    #[test]
    fn a_response_to_the_close_and_a_tunnel_end_the_following() {
        let (stats, _) = run(&[
            (true, 1, ACK, b"CONNECT a:443 HTTP/1.1\r\n\r\n"),
            (
                false,
                1,
                ACK,
                b"HTTP/1.1 200 Connection established\r\n\r\n",
            ),
            (false, 40, ACK, b"HTTP/1.1 200 inside the tunnel\r\n\r\n"),
        ]);
        assert_eq!(stats.responses, 1);
    }

    #[test]
    fn interim_responses_count_and_keep_the_request_waiting() {
        let (stats, _) = run(&[
            (true, 1, ACK, b"HEAD /x HTTP/1.1\r\nExpect: 100-continue\r\n\r\n"),
            (
                false,
                1,
                ACK,
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nHTTP/1.1 400 Bad\r\n\r\n",
            ),
        ]);
        // 100, then the HEAD's 200 (no body), then another response
        assert_eq!(stats.responses, 3);
    }

    #[test]
    fn a_slot_reused_by_another_flow_starts_afresh_and_cut_heads_count_at_the_end() {
        let mut streams = HttpStreams::default();
        let mut stats = HttpStats::default();
        let seg = |seq, payload| StreamSegment {
            seq,
            flags: ACK,
            payload,
            ts: 0,
            ends: ENDS,
            frame: 1,
        };
        streams.segment(
            3,
            10,
            true,
            seg(1, b"GET /first HTTP/1.1\r\nHo"),
            &mut stats,
        );
        streams.segment(
            3,
            99,
            true,
            seg(5000, b"GET /second HTTP/1.1\r\n"),
            &mut stats,
        );
        let counts = streams.finish(&mut stats);
        assert_eq!(uris(&stats), ["/first", "/second"]);
        assert_eq!(counts.directions, 2);
    }
}
