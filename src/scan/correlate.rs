//! The scan's receive-side core: every captured packet in, what it means
//! for the scan out. No I/O and no clock of its own (quinn-proto's rule):
//! times are passed in, so it is tested by feeding it bytes, without root.
//!
//! ```
//! use sonde::probe::{CookieKey, Probe, ProbeTemplate, build};
//! use sonde::scan::correlate::{Correlation, Correlator};
//! use sonde::scope::ProbeKind;
//! let key = CookieKey::random();
//! let targets = [sonde::targets::AddrRange::single("198.18.1.10".parse().unwrap())].into_iter().collect();
//! let mut c = Correlator::new(key, targets, Vec::new(), 10);
//! // Our own probe, seen again on the wire (as on loopback).
//! let (src, dst) = ("198.18.0.2".parse().unwrap(), "198.18.1.10".parse().unwrap());
//! let probe = Probe { kind: ProbeKind::Syn, src, dst, port: Some(22) };
//! let mut buf = Vec::new();
//! build(&mut buf, &probe, &key.marks(src, dst, 22, ProbeKind::Syn), &ProbeTemplate::default(), None).unwrap();
//! assert!(matches!(c.on_packet(&buf, 0), Correlation::OwnProbe));
//! ```

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use super::{CaptureTime, ScanResult};
use crate::probe::{Classified, CookieKey, MarkSource, classify};
use crate::scope::ProbeKind;
use crate::targets::IpSet;
use crate::targets::index::IndexSpace;

/// The largest answered-bitmap kept (bits over every probe of the scan);
/// larger scans keep a set of the probes answered instead. Zeroed memory
/// is only mapped, so what a sparse scan touches is what it costs.
pub(crate) const MAX_BITMAP_BYTES: u64 = 4 << 30;

/// Which probes have their result: one bit per probe of the scan's index
/// spaces (a /16 x 1,000 ports: 8 MB, where a set of keys took 30 bytes
/// per reply), or a set when no spaces were given or they are too large.
#[derive(Clone)]
enum Answered {
    Set(HashSet<ProbeKey, foldhash::fast::RandomState>),
    Bits(Vec<(ProbeKind, IndexSpace, Vec<u64>)>),
}

impl Answered {
    fn for_spaces(spaces: Vec<(ProbeKind, IndexSpace)>) -> Answered {
        let bytes: u64 = spaces.iter().map(|(_, s)| s.len().div_ceil(8)).sum();
        if spaces.is_empty() || bytes > MAX_BITMAP_BYTES {
            return Answered::Set(HashSet::default());
        }
        Answered::Bits(
            spaces
                .into_iter()
                .map(|(k, s)| {
                    let words = s.len().div_ceil(64) as usize;
                    (k, s, vec![0u64; words])
                })
                .collect(),
        )
    }

    /// Mark `probe` answered: `Some(true)` the first time, `Some(false)`
    /// after, `None` for a probe outside the scan.
    fn insert(&mut self, probe: ProbeKey) -> Option<bool> {
        match self {
            Answered::Set(set) => Some(set.insert(probe)),
            Answered::Bits(spaces) => {
                let (s, w, m) = locate(spaces, &probe)?;
                let word = &mut spaces[s].2[w];
                let new = *word & m == 0;
                *word |= m;
                Some(new)
            }
        }
    }

    fn contains(&self, probe: &ProbeKey) -> bool {
        match self {
            Answered::Set(set) => set.contains(probe),
            Answered::Bits(spaces) => {
                locate(spaces, probe).is_some_and(|(s, w, m)| spaces[s].2[w] & m != 0)
            }
        }
    }
}

/// Which probes have their result, as the scan's receive threads keep it:
/// one copy for every link's correlator (a bit is set with one atomic OR,
/// so replies on two links never wait for each other) that the senders of
/// a retry pass and the checkpoints read as it is, without a lock and
/// without a copy per pass.
pub struct AnsweredBits {
    answered: SharedAnswered,
    /// With bits: per index space, one bit per target, set when one of its
    /// probes gets its first result; taken and cleared at each pass
    /// boundary ([`AnsweredBits::take_gained`]), so an added retry pass goes
    /// only to the targets a recent pass found something new on.
    gained: Vec<Box<[AtomicU64]>>,
}

/// Which targets got a new result between two pass boundaries, per index
/// space ([`AnsweredBits::take_gained`]): the bitmap's words that are not
/// zero, as (word index, word) in order. Sparse because a scan keeps
/// several (the passes its retries look back on), and a whole-IPv4 scan's
/// dense bitmap is 512 MiB.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GainedTargets(Vec<Vec<(u64, u64)>>);

impl GainedTargets {
    /// The targets in `self` or in `other` (the same scan's spaces).
    pub fn union(&self, other: &GainedTargets) -> GainedTargets {
        let spaces = self.0.len().max(other.0.len());
        GainedTargets(
            (0..spaces)
                .map(|s| {
                    let (a, b) = (
                        self.0.get(s).map_or(&[][..], Vec::as_slice),
                        other.0.get(s).map_or(&[][..], Vec::as_slice),
                    );
                    let mut out = Vec::with_capacity(a.len().max(b.len()));
                    let (mut i, mut j) = (0, 0);
                    while i < a.len() || j < b.len() {
                        match (a.get(i), b.get(j)) {
                            (Some(&(x, w)), Some(&(y, v))) if x == y => {
                                out.push((x, w | v));
                                i += 1;
                                j += 1;
                            }
                            (Some(&(x, w)), Some(&(y, _))) if x < y => {
                                out.push((x, w));
                                i += 1;
                            }
                            (Some(&(x, w)), None) => {
                                out.push((x, w));
                                i += 1;
                            }
                            (_, Some(&(y, v))) => {
                                out.push((y, v));
                                j += 1;
                            }
                            (None, None) => unreachable!("the loop's condition"),
                        }
                    }
                    out
                })
                .collect(),
        )
    }

    /// Whether target `rank` of space `space` is in.
    fn contains(&self, space: usize, rank: u64) -> bool {
        let Some(words) = self.0.get(space) else {
            return false;
        };
        words
            .binary_search_by_key(&(rank / 64), |&(i, _)| i)
            .is_ok_and(|at| words[at].1 & (1 << (rank % 64)) != 0)
    }
}

enum SharedAnswered {
    /// Scans too large for bits (past [`MAX_BITMAP_BYTES`], 2^35 probes),
    /// and correlators given no index spaces: a set behind a lock, taken
    /// once per matched reply. Bits serve every scan this machine can send.
    Set(std::sync::Mutex<HashSet<ProbeKey, foldhash::fast::RandomState>>),
    Bits(Vec<(ProbeKind, IndexSpace, Box<[AtomicU64]>)>),
}

/// `n` zeroed words, only mapped until written: a sparse scan's bits cost
/// what its replies touch.
fn zeroed_words(n: usize) -> Box<[AtomicU64]> {
    let words = Box::<[AtomicU64]>::new_zeroed_slice(n);
    // SAFETY: `new_zeroed_slice` allocated `n` AtomicU64 of zero bytes,
    // and zero bytes are a valid AtomicU64 (it has u64's representation):
    // `AtomicU64::new(0)`.
    unsafe { words.assume_init() }
}

impl AnsweredBits {
    /// Nothing answered yet, one bit per probe of `spaces` (a set when
    /// there are none or they are too large).
    pub fn for_spaces(spaces: Vec<(ProbeKind, IndexSpace)>) -> AnsweredBits {
        let bytes: u64 = spaces.iter().map(|(_, s)| s.len().div_ceil(8)).sum();
        if spaces.is_empty() || bytes > MAX_BITMAP_BYTES {
            return AnsweredBits {
                answered: SharedAnswered::Set(Default::default()),
                gained: Vec::new(),
            };
        }
        AnsweredBits {
            gained: spaces
                .iter()
                .map(|(_, s)| zeroed_words(s.addresses().div_ceil(64) as usize))
                .collect(),
            answered: SharedAnswered::Bits(
                spaces
                    .into_iter()
                    .map(|(k, s)| {
                        let words = zeroed_words(s.len().div_ceil(64) as usize);
                        (k, s, words)
                    })
                    .collect(),
            ),
        }
    }

    /// The targets that got a new result since the last call (or since
    /// the scan began), and none from now on; `None` for a scan too large
    /// for bits.
    pub fn take_gained(&self) -> Option<GainedTargets> {
        if self.gained.is_empty() {
            return None;
        }
        // A word is read before it is cleared: writing every word would
        // map the whole bitmap, where a sparse scan touched a few pages. A
        // bit set between the read and the next call is taken then.
        Some(GainedTargets(
            self.gained
                .iter()
                .map(|g| {
                    g.iter()
                        .enumerate()
                        .filter(|(_, w)| w.load(Ordering::Relaxed) != 0)
                        .map(|(i, w)| (i as u64, w.swap(0, Ordering::Relaxed)))
                        .collect()
                })
                .collect(),
        ))
    }

    /// Whether `probe`'s target is among those `gained` names (for its
    /// kind); a probe outside the scan's spaces is not.
    pub fn target_gained(&self, gained: &GainedTargets, probe: &ProbeKey) -> bool {
        let SharedAnswered::Bits(spaces) = &self.answered else {
            return true;
        };
        let Some((s, w, m)) = locate(spaces, probe) else {
            return false;
        };
        let rank = (w as u64 * 64 + u64::from(m.trailing_zeros())) / spaces[s].1.per_address();
        gained.contains(s, rank)
    }

    /// Mark `probe` answered: `Some(true)` the first time (on any link),
    /// `Some(false)` after, `None` for a probe outside the scan.
    pub fn insert(&self, probe: ProbeKey) -> Option<bool> {
        match &self.answered {
            SharedAnswered::Set(set) => Some(set.lock().ok()?.insert(probe)),
            SharedAnswered::Bits(spaces) => {
                let (s, w, m) = locate(spaces, &probe)?;
                let new = spaces[s].2[w].fetch_or(m, Ordering::Relaxed) & m == 0;
                if new {
                    let i = w as u64 * 64 + u64::from(m.trailing_zeros());
                    let rank = i / spaces[s].1.per_address();
                    self.gained[s][(rank / 64) as usize]
                        .fetch_or(1 << (rank % 64), Ordering::Relaxed);
                }
                Some(new)
            }
        }
    }

    /// Whether `probe` has its result (a retry skips it).
    pub fn contains(&self, probe: &ProbeKey) -> bool {
        match &self.answered {
            SharedAnswered::Set(set) => set.lock().is_ok_and(|s| s.contains(probe)),
            SharedAnswered::Bits(spaces) => locate(spaces, probe)
                .is_some_and(|(s, w, m)| spaces[s].2[w].load(Ordering::Relaxed) & m != 0),
        }
    }

    /// A copy, as it stands (a checkpoint's, taken while the receive
    /// threads wait at a batch boundary, is exact).
    pub fn snapshot(&self) -> AnsweredSnapshot {
        AnsweredSnapshot(match &self.answered {
            SharedAnswered::Set(set) => {
                Answered::Set(set.lock().map(|s| s.clone()).unwrap_or_default())
            }
            SharedAnswered::Bits(spaces) => Answered::Bits(
                spaces
                    .iter()
                    .map(|(k, s, w)| {
                        (
                            *k,
                            s.clone(),
                            w.iter().map(|x| x.load(Ordering::Relaxed)).collect(),
                        )
                    })
                    .collect(),
            ),
        })
    }

    /// As [`AnsweredSnapshot::to_bytes`], without a copy first (a
    /// checkpoint's: the receive threads wait at a batch boundary).
    pub fn to_bytes(&self) -> Option<Vec<u8>> {
        let SharedAnswered::Bits(spaces) = &self.answered else {
            return None;
        };
        Some(answered_bytes(spaces.iter().map(|(k, _, w)| {
            (*k, w.len(), w.iter().map(|x| x.load(Ordering::Relaxed)))
        })))
    }

    /// Count the probes `prior` marks answered as answered (an earlier
    /// segment's, for the same index spaces).
    pub fn absorb(&self, prior: &AnsweredSnapshot) {
        if let (SharedAnswered::Bits(mine), Answered::Bits(theirs)) = (&self.answered, &prior.0) {
            for ((k1, _, a), (k2, _, b)) in mine.iter().zip(theirs) {
                if k1 == k2 && a.len() == b.len() {
                    for (x, y) in a.iter().zip(b) {
                        x.fetch_or(*y, Ordering::Relaxed);
                    }
                }
            }
        }
    }
}

/// The answered-bits file ([`AnsweredSnapshot::to_bytes`]) of these
/// kinds' words.
fn answered_bytes<W: Iterator<Item = u64>>(
    spaces: impl Iterator<Item = (ProbeKind, usize, W)>,
) -> Vec<u8> {
    let mut out = b"sonde-answered 1\n".to_vec();
    for (kind, count, words) in spaces {
        let name = kind.name().as_bytes();
        out.push(name.len() as u8);
        out.extend_from_slice(name);
        out.extend_from_slice(&(count as u64).to_le_bytes());
        out.reserve(count * 8);
        for w in words {
            out.extend_from_slice(&w.to_le_bytes());
        }
    }
    out
}

/// Where `probe`'s bit is in per-kind words of either kind (plain, or
/// atomic): (space, word, mask).
fn locate<W>(
    spaces: &[(ProbeKind, IndexSpace, W)],
    probe: &ProbeKey,
) -> Option<(usize, usize, u64)> {
    let (target, port, kind, question) = *probe;
    let s = spaces.iter().position(|(k, _, _)| *k == kind)?;
    let i = spaces[s]
        .1
        .index_of(target, slot_of(kind, port, question))?;
    Some((s, (i / 64) as usize, 1u64 << (i % 64)))
}

/// The slot of `probe` in its kind's index space: a DNS probe's "port"
/// dimension is its question, from 1.
fn slot_of(kind: ProbeKind, port: Option<u16>, question: u8) -> Option<u16> {
    match kind {
        ProbeKind::Dns => Some(u16::from(question) + 1),
        _ => port,
    }
}

/// Which probes had their result at one moment: what a checkpoint saves,
/// a resume reads back and the state check compares.
pub struct AnsweredSnapshot(Answered);

impl AnsweredSnapshot {
    pub fn is_answered(&self, probe: &ProbeKey) -> bool {
        self.0.contains(probe)
    }

    /// The answered bits as a resumed scan reads them back: per index
    /// space, the kind's name length and name, the word count (u64 LE)
    /// and the words (LE). `None` for a scan too large for bits (it keeps
    /// a set, and a resume then retries without it).
    pub fn to_bytes(&self) -> Option<Vec<u8>> {
        let Answered::Bits(spaces) = &self.0 else {
            return None;
        };
        Some(answered_bytes(
            spaces
                .iter()
                .map(|(k, _, w)| (*k, w.len(), w.iter().copied())),
        ))
    }

    /// Read [`AnsweredSnapshot::to_bytes`] back for the scan whose index
    /// spaces are `spaces`: every kind and size must be the same.
    pub fn from_bytes(
        bytes: &[u8],
        spaces: &[(ProbeKind, IndexSpace)],
    ) -> Result<AnsweredSnapshot, String> {
        let mut rest = bytes
            .strip_prefix(b"sonde-answered 1\n".as_slice())
            .ok_or("not a sonde answered-probe file")?;
        let mut out = Vec::new();
        for (kind, space) in spaces {
            let (&n, r) = rest.split_first().ok_or("it ends early")?;
            let (name, r) = r
                .split_at_checked(n as usize)
                .ok_or("it ends inside a kind's name")?;
            if name != kind.name().as_bytes() {
                return Err(format!(
                    "it holds {} where the scan has {}",
                    String::from_utf8_lossy(name),
                    kind.name()
                ));
            }
            let (count, r) = r.split_at_checked(8).ok_or("it ends inside a count")?;
            let count = u64::from_le_bytes(count.try_into().expect("8 bytes"));
            if count != space.len().div_ceil(64) {
                return Err(format!(
                    "its {} bits are for another scan ({count} words, the scan has {})",
                    kind.name(),
                    space.len().div_ceil(64)
                ));
            }
            let len = usize::try_from(count)
                .ok()
                .and_then(|c| c.checked_mul(8))
                .ok_or("too large")?;
            let (words, r) = r.split_at_checked(len).ok_or("it ends inside the bits")?;
            out.push((
                *kind,
                space.clone(),
                words
                    .chunks_exact(8)
                    .map(|w| u64::from_le_bytes(w.try_into().expect("8 bytes")))
                    .collect(),
            ));
            rest = r;
        }
        if !rest.is_empty() {
            return Err("it holds more kinds than the scan".into());
        }
        Ok(AnsweredSnapshot(Answered::Bits(out)))
    }
}

/// How two answered-bit sets of one scan differ: the probes each has
/// answered that the other has not (how many, and the first, described).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AnsweredDifference {
    pub only_here: u64,
    pub first_only_here: Option<String>,
    pub only_there: u64,
    pub first_only_there: Option<String>,
}

impl AnsweredSnapshot {
    /// No probe answered, over `spaces` (a set when they are too large).
    pub fn empty(spaces: Vec<(ProbeKind, IndexSpace)>) -> AnsweredSnapshot {
        AnsweredSnapshot(Answered::for_spaces(spaces))
    }

    /// Mark `probe` answered (`None`: not a probe of the spaces).
    pub fn insert(&mut self, probe: ProbeKey) -> Option<bool> {
        self.0.insert(probe)
    }

    /// Compare with `other`, bit by bit; `None` when either keeps a set
    /// (a scan too large for bits) or their spaces differ.
    pub fn difference(&self, other: &AnsweredSnapshot) -> Option<AnsweredDifference> {
        let (Answered::Bits(a), Answered::Bits(b)) = (&self.0, &other.0) else {
            return None;
        };
        if a.len() != b.len() {
            return None;
        }
        let mut d = AnsweredDifference::default();
        for ((kind, space, x), (kind2, _, y)) in a.iter().zip(b) {
            if kind != kind2 || x.len() != y.len() {
                return None;
            }
            for (w, (&xw, &yw)) in x.iter().zip(y).enumerate() {
                for (diff, count, first) in [
                    (xw & !yw, &mut d.only_here, &mut d.first_only_here),
                    (yw & !xw, &mut d.only_there, &mut d.first_only_there),
                ] {
                    if diff == 0 {
                        continue;
                    }
                    *count += u64::from(diff.count_ones());
                    if first.is_none() {
                        let index = w as u64 * 64 + u64::from(diff.trailing_zeros());
                        *first = Some(describe(*kind, space, index));
                    }
                }
            }
        }
        Some(d)
    }
}

/// A probe of an index space, as a person reads it.
fn describe(kind: ProbeKind, space: &IndexSpace, index: u64) -> String {
    if index >= space.len() {
        return format!("{} probe {index} (past the scan's end)", kind.name());
    }
    let (target, slot) = space.get(index);
    match (kind, slot) {
        (ProbeKind::Dns, Some(q)) => format!("DNS question {} to {target}", q.saturating_sub(1)),
        (_, Some(port)) => format!("{} to {target} port {port}", kind.name()),
        (_, None) => format!("{} to {target}", kind.name()),
    }
}

/// One probe: target, port (the DNS server's for DNS), kind, and the DNS
/// question's index (0 for other kinds).
pub type ProbeKey = (IpAddr, Option<u16>, ProbeKind, u8);

/// What one captured packet means for the scan.
#[derive(Clone, Debug, PartialEq)]
pub enum Correlation {
    /// The first valid reply to one of our probes: its result.
    Matched(ScanResult),
    /// Another valid reply to a probe already answered.
    Duplicate,
    /// It carries our probe's addresses but fails the cookie check (or
    /// names a DNS question never asked): spoofed, stale or damaged.
    Invalid,
    /// One of our own probes, seen again (loopback shows both directions).
    OwnProbe,
    /// Nothing to do with our probes; `from_target` when a target sent it.
    Unrelated { from_target: bool },
}

impl Correlation {
    /// Whether the packet belongs in the evidence: anything from a target,
    /// and anything about our probes (an ICMP error from a router).
    pub fn is_evidence(&self) -> bool {
        !matches!(
            self,
            Correlation::OwnProbe | Correlation::Unrelated { from_target: false }
        )
    }
}

/// What the receive side counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RecvCounters {
    /// Packets seen, our own probes excluded.
    pub received: u64,
    pub matched: u64,
    pub invalid: u64,
    pub duplicates: u64,
}

/// Matches replies to probes: validates each by cookie, keeps the first per
/// probe, and times it against the probe's first send.
pub struct Correlator<K: MarkSource = CookieKey> {
    /// Where replies' marks come from: the run's key, or (a resume's
    /// check of its state) the probes of a capture.
    key: K,
    targets: IpSet,
    /// NAME:TYPE of each DNS question, by index.
    questions: Vec<Arc<str>>,
    /// Shared with the other links' correlators of the scan.
    answered: Arc<AnsweredBits>,
    /// First send time (ns) of the first `max_timed` probes: round-trip
    /// times without memory that grows with the scan.
    sent_at: HashMap<ProbeKey, i64, foldhash::fast::RandomState>,
    max_timed: usize,
    counters: RecvCounters,
}

impl<K: MarkSource> Correlator<K> {
    pub fn new(
        key: K,
        targets: IpSet,
        questions: Vec<Arc<str>>,
        max_timed: usize,
    ) -> Correlator<K> {
        Correlator {
            key,
            targets,
            questions,
            answered: Arc::new(AnsweredBits::for_spaces(Vec::new())),
            sent_at: HashMap::default(),
            max_timed,
            counters: RecvCounters::default(),
        }
    }

    /// Keep which probes are answered as one bit per probe of these index
    /// spaces (the scan's), instead of a set that grows with every reply.
    /// Count the probes `prior` marks answered (an earlier segment of a
    /// resumed scan) as answered: their replies are duplicates now, and a
    /// retry pass skips them. Call after [`Correlator::with_spaces`].
    pub fn with_answered(self, prior: &AnsweredSnapshot) -> Correlator<K> {
        self.answered.absorb(prior);
        self
    }

    pub fn with_spaces(mut self, spaces: Vec<(ProbeKind, IndexSpace)>) -> Correlator<K> {
        self.answered = Arc::new(AnsweredBits::for_spaces(spaces));
        self
    }

    /// Keep which probes are answered in `answered`, shared with other
    /// correlators of the same scan (one per link): a probe answered on
    /// one link is a duplicate on every other.
    pub fn sharing(mut self, answered: Arc<AnsweredBits>) -> Correlator<K> {
        self.answered = answered;
        self
    }

    /// Which probes are answered, as shared with the scan's other
    /// correlators and its senders.
    pub fn answered(&self) -> &Arc<AnsweredBits> {
        &self.answered
    }

    /// The source of the marks replies are checked against (a capture's
    /// probes learn as the capture is read).
    pub fn marks_mut(&mut self) -> &mut K {
        &mut self.key
    }

    /// Whether the send time of another probe would be kept.
    pub fn wants_send_times(&self) -> bool {
        self.sent_at.len() < self.max_timed
    }

    /// A probe left at `now` (ns): its first send is kept for the round
    /// trip, for the first `max_timed` probes.
    pub fn on_sent(&mut self, probe: ProbeKey, now: i64) {
        if self.sent_at.len() < self.max_timed {
            self.sent_at.entry(probe).or_insert(now);
        }
    }

    /// Whether `probe` has its result already (retries skip it).
    pub fn is_answered(&self, probe: &ProbeKey) -> bool {
        self.answered.contains(probe)
    }

    /// Probes of one batch left at the times given: as [`on_sent`] for
    /// each (the senders hand them over by channel, a batch at a time).
    ///
    /// [`on_sent`]: Correlator::on_sent
    pub fn on_sent_batch(&mut self, sent: impl IntoIterator<Item = (ProbeKey, i64)>) {
        for (probe, at) in sent {
            self.on_sent(probe, at);
        }
    }

    /// A copy of which probes have their result.
    pub fn answered_snapshot(&self) -> AnsweredSnapshot {
        self.answered.snapshot()
    }

    /// One IP packet captured at `now` (ns since the epoch).
    pub fn on_packet(&mut self, ip: &[u8], now: i64) -> Correlation {
        let verdict = classify(ip, &self.key);
        if matches!(verdict, Classified::OwnProbe) {
            return Correlation::OwnProbe;
        }
        self.counters.received += 1;
        let r = match verdict {
            Classified::Reply(r) => r,
            Classified::Invalid(_) => {
                self.counters.invalid += 1;
                return Correlation::Invalid;
            }
            Classified::OwnProbe | Classified::Unrelated => {
                let from_target = source_of(ip).is_some_and(|s| self.targets.contains(s));
                return Correlation::Unrelated { from_target };
            }
        };
        let question = match r.kind {
            ProbeKind::Dns => match self.questions.get(usize::from(r.question)) {
                Some(q) => Some(q.clone()),
                // The cookie bits matched but no such question was asked.
                None => {
                    self.counters.invalid += 1;
                    return Correlation::Invalid;
                }
            },
            _ => None,
        };
        let probe: ProbeKey = (r.target, r.port, r.kind, r.question);
        match self.answered.insert(probe) {
            Some(true) => {}
            Some(false) => {
                self.counters.duplicates += 1;
                return Correlation::Duplicate;
            }
            // The cookie holds, but the scan never sent that probe.
            None => {
                self.counters.invalid += 1;
                return Correlation::Invalid;
            }
        }
        self.counters.matched += 1;
        let rtt_us = self
            .sent_at
            .get(&probe)
            .map(|&sent| (now.saturating_sub(sent).max(0) / 1000) as u64);
        let service = match r.kind {
            ProbeKind::Syn => r.port.and_then(crate::targets::ports::tcp_service),
            ProbeKind::Dns => Some("domain"),
            ProbeKind::Icmp | ProbeKind::Service => None,
        }
        .map(std::borrow::Cow::Borrowed);
        Correlation::Matched(ScanResult {
            target: r.target,
            port: r.port,
            probe: r.kind,
            question,
            service,
            verdict: r.verdict,
            ttl: r.ttl,
            rtt_us,
            time: CaptureTime(now),
        })
    }

    pub fn counters(&self) -> RecvCounters {
        self.counters
    }
}

/// The source address of an IP packet.
fn source_of(ip: &[u8]) -> Option<IpAddr> {
    crate::wire::ip::IpPacket::parse(ip).ok().map(|p| p.src())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::probe::{DnsQuestion, Probe, ProbeTemplate, Verdict, build};
    use crate::targets::AddrRange;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    const US: &str = "198.18.0.2";
    const TARGET: &str = "198.18.1.10";

    /// The gained targets are sparse (the words with a bit), their union
    /// merges words, and a lookup finds each bit and nothing else.
    #[test]
    fn gained_targets_union_and_lookup() {
        let a = GainedTargets(vec![vec![(0, 0b1), (5, 1 << 63)], vec![(2, 0b10)]]);
        let b = GainedTargets(vec![vec![(0, 0b100), (3, 1)]]);
        let u = a.union(&b);
        assert_eq!(
            u,
            GainedTargets(vec![
                vec![(0, 0b101), (3, 1), (5, 1 << 63)],
                vec![(2, 0b10)]
            ])
        );
        assert_eq!(u, b.union(&a), "the union is symmetric");
        for (space, rank) in [(0, 0), (0, 2), (0, 192), (0, 383), (1, 129)] {
            assert!(u.contains(space, rank), "{space} {rank}");
        }
        for (space, rank) in [(0, 1), (0, 64), (0, 382), (0, 1 << 40), (1, 128), (2, 0)] {
            assert!(!u.contains(space, rank), "{space} {rank}");
        }
    }

    fn correlator(key: &CookieKey) -> Correlator {
        let targets = [AddrRange::single(ip(TARGET))].into_iter().collect();
        Correlator::new(*key, targets, vec![Arc::from("example.com:A")], 2)
    }

    fn probe(key: &CookieKey, kind: ProbeKind, port: Option<u16>) -> Vec<u8> {
        let p = Probe {
            kind,
            src: ip(US),
            dst: ip(TARGET),
            port,
        };
        let q = DnsQuestion {
            name: "example.com".into(),
            qtype: 1,
        };
        let mut buf = Vec::new();
        build(
            &mut buf,
            &p,
            &key.marks(ip(US), ip(TARGET), port.unwrap_or(0), kind),
            &ProbeTemplate::default(),
            Some(&q),
        )
        .unwrap();
        buf
    }

    /// The target's answer to a SYN probe: SYN-ACK (open) or RST (closed),
    /// acknowledging the probe's sequence number (+1), as a stack does.
    pub(crate) fn tcp_answer(syn: &[u8], flags: u8) -> Vec<u8> {
        let mut r = syn.to_vec();
        // Swap addresses and ports.
        r[12..16].copy_from_slice(&syn[16..20]);
        r[16..20].copy_from_slice(&syn[12..16]);
        r[20..22].copy_from_slice(&syn[22..24]);
        r[22..24].copy_from_slice(&syn[20..22]);
        let seq = u32::from_be_bytes([syn[24], syn[25], syn[26], syn[27]]);
        r[24..28].copy_from_slice(&0x1234_5678u32.to_be_bytes());
        r[28..32].copy_from_slice(&seq.wrapping_add(1).to_be_bytes());
        r[33] = flags;
        checksums(&mut r);
        r
    }

    fn checksums(ip: &mut [u8]) {
        use etherparse::checksum::Sum16BitWords;
        ip[10..12].copy_from_slice(&[0, 0]);
        let h = Sum16BitWords::new()
            .add_slice(&ip[..20])
            .ones_complement()
            .to_be();
        ip[10..12].copy_from_slice(&h.to_be_bytes());
        let len = ip.len() - 20;
        ip[36..38].copy_from_slice(&[0, 0]);
        let t = Sum16BitWords::new()
            .add_slice(&ip[12..20])
            .add_2bytes([0, 6])
            .add_2bytes((len as u16).to_be_bytes())
            .add_slice(&ip[20..])
            .ones_complement()
            .to_be();
        ip[36..38].copy_from_slice(&t.to_be_bytes());
    }

    #[test]
    fn a_syn_ack_is_open_once_then_a_duplicate_and_times_its_round_trip() {
        let key = CookieKey::random();
        let mut c = correlator(&key);
        let syn = probe(&key, ProbeKind::Syn, Some(22));
        c.on_sent((ip(TARGET), Some(22), ProbeKind::Syn, 0), 1_000_000);
        assert_eq!(c.on_packet(&syn, 1_000_100), Correlation::OwnProbe);
        let answer = tcp_answer(&syn, 0x12);
        let Correlation::Matched(r) = c.on_packet(&answer, 1_250_000) else {
            panic!("no match");
        };
        assert_eq!(
            (r.target, r.port, r.probe, r.verdict, r.rtt_us),
            (
                ip(TARGET),
                Some(22),
                ProbeKind::Syn,
                Verdict::Open,
                Some(250)
            )
        );
        assert_eq!(c.on_packet(&answer, 1_300_000), Correlation::Duplicate);
        assert!(c.is_answered(&(ip(TARGET), Some(22), ProbeKind::Syn, 0)));
        assert_eq!(
            c.counters(),
            RecvCounters {
                received: 2,
                matched: 1,
                invalid: 0,
                duplicates: 1
            }
        );
    }

    #[test]
    fn a_rst_is_closed_and_a_forged_ack_is_invalid() {
        let key = CookieKey::random();
        let mut c = correlator(&key);
        let syn = probe(&key, ProbeKind::Syn, Some(23));
        let rst = tcp_answer(&syn, 0x14);
        let Correlation::Matched(r) = c.on_packet(&rst, 5) else {
            panic!("no match");
        };
        assert_eq!(r.verdict, Verdict::Closed);
        assert_eq!(r.rtt_us, None, "never sent as far as the correlator knows");
        // An answer to our probe's ports whose acknowledgment is not the
        // probe's cookie + 1: a blind guess, or a stale connection.
        let mut forged = tcp_answer(&probe(&key, ProbeKind::Syn, Some(80)), 0x12);
        forged[31] ^= 0x55;
        checksums(&mut forged);
        assert_eq!(c.on_packet(&forged, 6), Correlation::Invalid);
        assert!(Correlation::Invalid.is_evidence());
        // A reply to a probe made with another key is not about ours.
        let other = CookieKey::random();
        let stranger = tcp_answer(&probe(&other, ProbeKind::Syn, Some(80)), 0x12);
        assert!(matches!(
            c.on_packet(&stranger, 7),
            Correlation::Unrelated { .. } | Correlation::Invalid
        ));
    }

    #[test]
    fn other_traffic_is_unrelated_and_kept_only_from_targets() {
        let key = CookieKey::random();
        let mut c = correlator(&key);
        let mut syn = probe(&key, ProbeKind::Syn, Some(22));
        // A SYN from a target to us is no answer to anything.
        syn[12..16].copy_from_slice(&[198, 18, 1, 10]);
        syn[16..20].copy_from_slice(&[198, 18, 0, 2]);
        checksums(&mut syn);
        let got = c.on_packet(&syn, 0);
        assert_eq!(got, Correlation::Unrelated { from_target: true });
        assert!(got.is_evidence());
        syn[12..16].copy_from_slice(&[198, 18, 9, 9]);
        checksums(&mut syn);
        let got = c.on_packet(&syn, 0);
        assert_eq!(got, Correlation::Unrelated { from_target: false });
        assert!(!got.is_evidence());
        assert_eq!(
            c.on_packet(&[0x45, 0], 0),
            Correlation::Unrelated { from_target: false }
        );
    }

    #[test]
    fn answered_bits_saved_and_read_back_carry_into_a_resumed_segment() {
        let key = CookieKey::random();
        let targets: IpSet = [AddrRange::single(ip(TARGET))].into_iter().collect();
        let ports = crate::targets::PortSet::parse("22,23,80").unwrap();
        let spaces = vec![(
            ProbeKind::Syn,
            IndexSpace::new(&targets, Some(&ports)).unwrap(),
        )];
        let mut c = correlator(&key).with_spaces(spaces.clone());
        let syn = probe(&key, ProbeKind::Syn, Some(23));
        assert!(matches!(
            c.on_packet(&tcp_answer(&syn, 0x14), 1),
            Correlation::Matched(_)
        ));
        let bytes = c.answered_snapshot().to_bytes().unwrap();
        let back = AnsweredSnapshot::from_bytes(&bytes, &spaces).unwrap();
        assert!(back.is_answered(&(ip(TARGET), Some(23), ProbeKind::Syn, 0)));
        assert!(!back.is_answered(&(ip(TARGET), Some(22), ProbeKind::Syn, 0)));
        // The next segment has another key; the earlier answer counts.
        let key2 = CookieKey::random();
        let mut c2 = correlator(&key2)
            .with_spaces(spaces.clone())
            .with_answered(&back);
        assert!(c2.is_answered(&(ip(TARGET), Some(23), ProbeKind::Syn, 0)));
        let again = probe(&key2, ProbeKind::Syn, Some(23));
        assert_eq!(
            c2.on_packet(&tcp_answer(&again, 0x14), 2),
            Correlation::Duplicate
        );
        // Bits of another scan's shape are refused, as is another file.
        let other = vec![(
            ProbeKind::Syn,
            IndexSpace::new(
                &targets,
                Some(&crate::targets::PortSet::parse("1-1000").unwrap()),
            )
            .unwrap(),
        )];
        assert!(AnsweredSnapshot::from_bytes(&bytes, &other).is_err());
        assert!(AnsweredSnapshot::from_bytes(b"hello", &spaces).is_err());
        assert!(AnsweredSnapshot::from_bytes(&bytes[..bytes.len() - 1], &spaces).is_err());
    }

    #[test]
    fn a_bitmap_over_the_scans_probes_answers_as_the_set_does() {
        let key = CookieKey::random();
        let targets: IpSet = [AddrRange::single(ip(TARGET))].into_iter().collect();
        let ports = crate::targets::PortSet::parse("22,23,80").unwrap();
        let spaces = vec![(
            ProbeKind::Syn,
            IndexSpace::new(&targets, Some(&ports)).unwrap(),
        )];
        let mut c = correlator(&key).with_spaces(spaces);
        let syn = probe(&key, ProbeKind::Syn, Some(23));
        assert!(matches!(
            c.on_packet(&tcp_answer(&syn, 0x14), 1),
            Correlation::Matched(_)
        ));
        assert_eq!(
            c.on_packet(&tcp_answer(&syn, 0x14), 2),
            Correlation::Duplicate
        );
        assert!(c.is_answered(&(ip(TARGET), Some(23), ProbeKind::Syn, 0)));
        assert!(!c.is_answered(&(ip(TARGET), Some(22), ProbeKind::Syn, 0)));
        // A valid answer to a port the scan never probed is no result.
        let other = probe(&key, ProbeKind::Syn, Some(443));
        assert_eq!(
            c.on_packet(&tcp_answer(&other, 0x12), 3),
            Correlation::Invalid
        );
    }

    /// Two links' correlators share one set of answered bits: a reply to
    /// a probe seen on both (two threads at once) is its result once, and
    /// a duplicate on the other.
    #[test]
    fn two_links_correlators_share_the_answered_bits_and_count_each_probe_once() {
        let key = CookieKey::random();
        let targets: IpSet = [AddrRange::single(ip(TARGET))].into_iter().collect();
        let ports = crate::targets::PortSet::parse("1-2000").unwrap();
        let spaces = vec![(
            ProbeKind::Syn,
            IndexSpace::new(&targets, Some(&ports)).unwrap(),
        )];
        let first = correlator(&key).with_spaces(spaces);
        let shared = first.answered().clone();
        let replies: Vec<Vec<u8>> = (1..=2000)
            .map(|p| tcp_answer(&probe(&key, ProbeKind::Syn, Some(p)), 0x14))
            .collect();
        let links = [first, correlator(&key).sharing(shared.clone())];
        let matched: Vec<u64> = std::thread::scope(|s| {
            let handles: Vec<_> = links
                .into_iter()
                .map(|mut c| {
                    let replies = &replies;
                    s.spawn(move || {
                        for r in replies {
                            c.on_packet(r, 1);
                        }
                        let n = c.counters();
                        assert_eq!(n.matched + n.duplicates, 2000);
                        n.matched
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(matched.iter().sum::<u64>(), 2000, "{matched:?}");
        // The bits as a checkpoint writes them, and as a copy writes them.
        let bytes = shared.to_bytes().unwrap();
        assert_eq!(Some(bytes), shared.snapshot().to_bytes());
        assert!((1..=2000).all(|p| shared.contains(&(ip(TARGET), Some(p), ProbeKind::Syn, 0))));
    }

    #[test]
    fn send_times_are_kept_for_the_first_probes_only() {
        let key = CookieKey::random();
        let mut c = correlator(&key);
        for port in 1..=5 {
            c.on_sent((ip(TARGET), Some(port), ProbeKind::Syn, 0), 0);
        }
        assert!(!c.wants_send_times());
        assert_eq!(c.sent_at.len(), 2, "bounded by max_timed");
    }
}
