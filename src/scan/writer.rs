//! The evidence writer: one thread owns the pcap, the NDJSON results and
//! (compact evidence) the sent-probe log. The sending threads and the
//! receive thread hand it whole batches over a channel, so nothing on the
//! per-probe path takes a lock. A slow disk slows the senders (at most
//! [`QUEUE`] of their batches wait), never the receive thread: a receive
//! thread waiting on the disk would let the kernel drop replies.

use std::io::Write;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, SyncSender, channel, sync_channel};
use std::time::{Duration, Instant};

use super::live::Live;
use crate::evidence::sent_log::{BatchDigest, SentLogWriter, runs};
use crate::pcap::PcapWriter;
use crate::probe::CookieKey;
use crate::scope::ProbeKind;

/// Senders' batches waiting for the writer; beyond this a sender waits.
pub const QUEUE: usize = 256;

/// How often the outputs reach the disk while the scan runs.
const FLUSH_EVERY: Duration = Duration::from_millis(500);

/// Whole IP packets, back to back, with the time each was captured or built.
#[derive(Default)]
pub(super) struct Frames {
    bytes: Vec<u8>,
    ends: Vec<usize>,
    times: Vec<i64>,
}

impl Frames {
    pub fn with_capacity(frames: usize) -> Frames {
        Frames {
            bytes: Vec::with_capacity(frames * 80),
            ends: Vec::with_capacity(frames),
            times: Vec::with_capacity(frames),
        }
    }

    pub fn push(&mut self, at: i64, frame: &[u8]) {
        self.bytes.extend_from_slice(frame);
        self.ends.push(self.bytes.len());
        self.times.push(at);
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (i64, &[u8])> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(self.ends.iter().copied())
            .zip(self.times.iter().copied())
            .map(|((s, e), t)| (t, &self.bytes[s..e]))
    }
}

/// Probes one sender built in one batch, and where in the plan each came from.
pub(super) struct SentBatch {
    pub kind: ProbeKind,
    pub pass: u32,
    /// The stride between this thread's positions.
    pub step: u64,
    pub frames: Frames,
    /// Per frame: its position in the kind's order and its source.
    pub origins: Vec<(u64, IpAddr)>,
}

pub(super) enum Batch {
    Sent(SentBatch),
    /// Captured packets that are evidence (replies, ICMP errors about probes).
    Replies(Frames),
    /// NDJSON lines.
    Results(String),
    /// Reach the disk, then answer.
    Flush(SyncSender<()>),
    /// A checkpoint's marker: everything before it reaches the disk and is
    /// synced; the answer is each synced file's length.
    Checkpoint(SyncSender<Vec<(&'static str, u64)>>),
}

/// The handle senders and the receive thread write through.
#[derive(Clone)]
pub(super) struct Outputs {
    tx: Sender<Batch>,
    /// Senders' batches handed over and not yet written.
    pending_sent: Arc<AtomicUsize>,
    /// Whether there is a pcap of the sent probes (full evidence) or a
    /// sent-probe log (compact): senders skip copying frames for neither.
    pub records_sent: bool,
    /// Whether there is a pcap for replies.
    pub records_replies: bool,
    /// Whether there is an NDJSON stream of results.
    pub records_results: bool,
}

impl Outputs {
    /// Hand a batch over; `false` once the writer is gone (it returns its
    /// failure when joined). A sender's batch waits while [`QUEUE`]
    /// of them are not yet written; a reply batch never waits.
    pub fn send(&self, b: Batch) -> bool {
        if matches!(b, Batch::Sent(_)) {
            while self.pending_sent.load(Ordering::Acquire) >= QUEUE {
                std::thread::sleep(Duration::from_micros(200));
            }
            self.pending_sent.fetch_add(1, Ordering::AcqRel);
        }
        self.tx.send(b).is_ok()
    }

    /// Queue a checkpoint's marker behind everything handed over so far;
    /// the answer (the synced files' lengths) comes on the receiver.
    /// `None`: the writer is gone.
    pub fn checkpoint_marker(&self) -> Option<Receiver<Vec<(&'static str, u64)>>> {
        let (ack, answer) = sync_channel(1);
        self.tx.send(Batch::Checkpoint(ack)).ok()?;
        Some(answer)
    }

    /// Wait until everything handed over so far is on the disk.
    pub fn flush(&self) {
        let (ack, done) = sync_channel(1);
        if self.tx.send(Batch::Flush(ack)).is_ok() {
            let _ = done.recv();
        }
    }
}

/// Where the evidence goes.
pub(super) struct Sinks {
    pub pcap: Option<PcapWriter<std::fs::File>>,
    pub ndjson: Option<Box<dyn Write + Send>>,
    /// Compact evidence: the sent probes go here, not into the pcap.
    pub sent_log: Option<SentLogWriter<std::fs::File>>,
    /// Revealed at the end of the sent-probe log.
    pub key: CookieKey,
    /// The sent-probe log's records being gathered (one per sending
    /// thread, kind, pass and source).
    pub open: Vec<OpenRecord>,
    /// The files a checkpoint syncs and measures, by name.
    pub sync: Vec<(&'static str, std::fs::File)>,
}

/// The first output that failed: the writer keeps why (the outcome's
/// `output_error`) and raises the signal that stops sending.
struct Failure<'a> {
    signal: &'a std::sync::atomic::AtomicBool,
    first: Option<String>,
}

impl Failure<'_> {
    fn failed(&self) -> bool {
        self.signal.load(Ordering::Relaxed)
    }

    /// Note a failed write: the first failure is kept and stops the scan
    /// (the evidence must not silently miss what was sent).
    fn check(&mut self, what: &str, r: std::io::Result<()>) {
        if let Err(e) = r {
            if self.first.is_none() {
                self.first = Some(format!("cannot write {what}: {e}"));
            }
            self.signal.store(true, Ordering::Relaxed);
        }
    }
}

/// Probes gathered into one record of the sent-probe log at most.
const MAX_RECORD: usize = 1 << 16;

/// A record of the sent-probe log being gathered: consecutive batches of
/// one thread, kind, pass and source.
pub(super) struct OpenRecord {
    t: i64,
    kind: ProbeKind,
    pass: u32,
    src: IpAddr,
    step: u64,
    positions: Vec<u64>,
    digest: BatchDigest,
}

impl Sinks {
    /// Start the writer thread: the handle to write through, and the
    /// thread, which ends when every handle is dropped and returns the
    /// first output that failed (it raised `live.signals.output_failed`).
    pub fn start(
        self,
        live: Arc<Live>,
    ) -> std::io::Result<(Outputs, std::thread::JoinHandle<Option<String>>)> {
        let (tx, rx) = channel();
        let pending_sent = Arc::new(AtomicUsize::new(0));
        let outputs = Outputs {
            tx,
            pending_sent: pending_sent.clone(),
            records_sent: self.pcap.is_some() || self.sent_log.is_some(),
            records_replies: self.pcap.is_some(),
            records_results: self.ndjson.is_some(),
        };
        let handle = std::thread::Builder::new()
            .name("sonde-write".into())
            .spawn(move || {
                let _ = crate::net::privilege::drop_in_this_thread();
                let mut failure = Failure {
                    signal: &live.signals.output_failed,
                    first: None,
                };
                self.run(rx, &mut failure, &pending_sent);
                failure.first
            })?;
        Ok((outputs, handle))
    }

    fn run(mut self, rx: Receiver<Batch>, failure: &mut Failure<'_>, pending_sent: &AtomicUsize) {
        let mut flushed = Instant::now();
        loop {
            let b = match rx.recv_timeout(FLUSH_EVERY) {
                Ok(b) => Some(b),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            if matches!(b, Some(Batch::Sent(_))) {
                pending_sent.fetch_sub(1, Ordering::AcqRel);
            }
            match b {
                // After a failure, batches are taken and dropped: the
                // senders have stopped and must not wait on a full queue.
                Some(Batch::Flush(ack)) if failure.failed() => {
                    let _ = ack.send(());
                }
                // No checkpoint after a failure: the answer never comes.
                Some(Batch::Checkpoint(_)) if failure.failed() => {}
                Some(_) if failure.failed() => {}
                Some(Batch::Sent(s)) => self.sent(s, failure),
                Some(Batch::Replies(f)) => self.pcap(&f, failure),
                Some(Batch::Results(lines)) => {
                    if let Some(n) = &mut self.ndjson {
                        let r = n.write_all(lines.as_bytes());
                        failure.check("the NDJSON results", r);
                    }
                }
                Some(Batch::Flush(ack)) => {
                    self.flush(failure);
                    flushed = Instant::now();
                    let _ = ack.send(());
                }
                Some(Batch::Checkpoint(ack)) => {
                    self.flush(failure);
                    flushed = Instant::now();
                    if let Some(lengths) = self.sync(failure) {
                        let _ = ack.send(lengths);
                    }
                }
                None => {}
            }
            if flushed.elapsed() >= FLUSH_EVERY {
                self.flush(failure);
                flushed = Instant::now();
            }
        }
        self.flush(failure);
        if let Some(log) = self.sent_log.take()
            && !failure.failed()
        {
            let r = log.finish(&self.key).map(drop);
            failure.check("the sent-probe log", r);
        }
    }

    fn sent(&mut self, s: SentBatch, failure: &mut Failure<'_>) {
        if self.pcap.is_some() && self.sent_log.is_none() {
            self.pcap(&s.frames, failure);
            return;
        }
        if self.sent_log.is_none() {
            return;
        }
        // Batches of one thread (one residue of the stride), kind, pass and
        // source go on in one record until the outputs are flushed (twice
        // a second) or it holds MAX_RECORD probes: at low rates a batch is
        // a probe or two, and a record per batch would cost more than the
        // pcap it replaces.
        let mut r = Ok(());
        for ((t, frame), &(pos, src)) in s.frames.iter().zip(&s.origins) {
            let same = |o: &OpenRecord| {
                (o.kind, o.pass, o.src, o.step) == (s.kind, s.pass, src, s.step)
                    && o.positions.first().map(|p| p % o.step) == Some(pos % s.step)
            };
            let at = match self.open.iter().position(same) {
                Some(i) if self.open[i].positions.len() < MAX_RECORD => i,
                found => {
                    if let Some(i) = found {
                        let full = self.open.remove(i);
                        r = r.and(self.write_record(full));
                    }
                    self.open.push(OpenRecord {
                        t,
                        kind: s.kind,
                        pass: s.pass,
                        src,
                        step: s.step,
                        positions: Vec::new(),
                        digest: BatchDigest::default(),
                    });
                    self.open.len() - 1
                }
            };
            let o = &mut self.open[at];
            o.digest.add(frame);
            o.positions.push(pos);
        }
        failure.check("the sent-probe log", r);
    }

    /// Write every open record of the sent-probe log, oldest first.
    fn close_records(&mut self) -> std::io::Result<()> {
        let mut open = std::mem::take(&mut self.open);
        open.sort_by_key(|o| o.t);
        let mut r = Ok(());
        for o in open {
            r = r.and(self.write_record(o));
        }
        r
    }

    fn write_record(&mut self, o: OpenRecord) -> std::io::Result<()> {
        let Some(log) = self.sent_log.as_mut() else {
            return Ok(());
        };
        let runs = runs(o.positions, o.step);
        log.record(o.t, o.kind, o.pass, o.src, o.step, runs, o.digest)
    }

    fn pcap(&mut self, frames: &Frames, failure: &mut Failure<'_>) {
        let Some(p) = &mut self.pcap else { return };
        let mut r = Ok(());
        for (t, f) in frames.iter() {
            r = p.write(t, f);
            if r.is_err() {
                break;
            }
        }
        if r.is_err() {
            let _ = p.cut_to_whole_records();
        }
        failure.check("the pcap", r);
    }

    /// Sync every checkpointed file to the disk: their lengths, or `None`
    /// when one failed (the failure stops the scan, as any output's).
    fn sync(&mut self, failure: &mut Failure<'_>) -> Option<Vec<(&'static str, u64)>> {
        if failure.failed() {
            return None;
        }
        let mut lengths = Vec::with_capacity(self.sync.len());
        for (name, f) in &self.sync {
            let r = f.sync_data().and_then(|()| f.metadata()).map(|m| m.len());
            match r {
                Ok(len) => lengths.push((*name, len)),
                Err(e) => {
                    failure.check(name, Err(e));
                    return None;
                }
            }
        }
        Some(lengths)
    }

    fn flush(&mut self, failure: &mut Failure<'_>) {
        let r = self.close_records();
        failure.check("the sent-probe log", r);
        if let Some(p) = &mut self.pcap {
            let r = p.flush();
            if r.is_err() {
                let _ = p.cut_to_whole_records();
            }
            failure.check("the pcap", r);
        }
        if let Some(n) = &mut self.ndjson {
            let r = n.flush();
            failure.check("the NDJSON results", r);
        }
        if let Some(l) = &mut self.sent_log {
            let r = l.flush();
            failure.check("the sent-probe log", r);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_keep_each_packet_and_its_time() {
        let mut f = Frames::with_capacity(2);
        f.push(5, b"abc");
        f.push(7, b"");
        f.push(9, b"de");
        let got: Vec<(i64, &[u8])> = f.iter().collect();
        assert_eq!(got, vec![(5, &b"abc"[..]), (7, &b""[..]), (9, &b"de"[..])]);
        assert!(!f.is_empty());
    }
}
