//! Checkpoints: while a scan sends, every few seconds and at every pass
//! boundary, a consistent cut of its state (where each sending thread is,
//! which probes are answered, the hosts' results) and the lengths its
//! evidence files had, flushed and synced, when that state was taken.
//! The caller records them (the session's `scan_checkpoint`), so a run
//! killed outright (`kill -9`, the OOM killer, a power cut) verifies up to
//! its last checkpoint and resumes from it.
//!
//! Consistency: sending threads publish their next position, and receive
//! threads fold a batch of replies, under the read side of one lock, each
//! after handing the batch's evidence to the writer. A checkpoint takes
//! the write side, copies the state and queues a marker to the writer
//! behind every batch that state covers, then lets go: the files' lengths
//! the writer answers with (after flushing and syncing them) hold exactly
//! the evidence of that state, and the receive threads wait only for the
//! copy, never for the disk.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, RwLock};

use super::StopPoint;
use super::hosts::{HostResults, HostTable};

/// One checkpoint: what the scan had done when it was taken.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    /// Where sending stood: every probe before it was sent (or skipped as
    /// down) and is in the files' prefixes; a pass boundary has `kind`
    /// equal to the number of probe kinds.
    pub at: StopPoint,
    /// First-pass probes and retries this segment sent, so far.
    pub probes: u64,
    pub retried: u64,
    /// Results so far (this segment).
    pub matched: u64,
    /// Every host's results so far (the run's: a resumed segment's table
    /// starts from the segments before).
    pub hosts: Vec<HostResults>,
    /// Which probes are answered, every segment's
    /// ([`super::correlate::AnsweredSnapshot::to_bytes`]; `None` for a scan
    /// too large for bits).
    pub answered: Option<Vec<u8>>,
    /// Each synced file's name and its length at the checkpoint.
    pub files: Vec<(&'static str, u64)>,
    /// The links the segment's targets are reached through (how: on-link,
    /// via a gateway, through the kernel). Only an on-link target can be
    /// skipped as down: a resume's check of its stop point needs to know.
    pub links: Vec<crate::results::LinkReport>,
}

/// Where the sending threads stand, published batch by batch.
pub(super) struct LivePoint {
    pass: AtomicU32,
    kind: AtomicUsize,
    /// Each thread's next position; [`DONE`]: its share is done.
    next: Vec<AtomicU64>,
}

/// A thread whose share of this pass and kind is done.
const DONE: u64 = u64::MAX;

impl LivePoint {
    pub fn new(senders: usize) -> LivePoint {
        LivePoint {
            pass: AtomicU32::new(0),
            kind: AtomicUsize::new(0),
            next: (0..senders).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Sending of `kind` in `pass` begins at `starts`. Called between
    /// kinds, when no sending thread runs, under the read side.
    pub fn begin(&self, pass: u32, kind: usize, starts: &[Option<u64>]) {
        self.pass.store(pass, Ordering::Relaxed);
        self.kind.store(kind, Ordering::Relaxed);
        for (slot, s) in self.next.iter().zip(starts) {
            slot.store(s.unwrap_or(DONE), Ordering::Relaxed);
        }
    }

    /// Thread `t` goes on at `next` (`None`: done).
    pub fn advance(&self, t: usize, next: Option<u64>) {
        if let Some(slot) = self.next.get(t) {
            slot.store(next.unwrap_or(DONE), Ordering::Relaxed);
        }
    }

    fn read(&self) -> StopPoint {
        StopPoint {
            pass: self.pass.load(Ordering::Relaxed),
            kind: self.kind.load(Ordering::Relaxed),
            next: self
                .next
                .iter()
                .map(|n| match n.load(Ordering::Relaxed) {
                    DONE => None,
                    p => Some(p),
                })
                .collect(),
        }
    }
}

/// The state a checkpoint copies, and the lock that makes the copy a cut.
pub(super) struct CheckpointState {
    /// Read side: a sending thread's hand-over and position, a receive
    /// thread's batch. Write side: the copy.
    pub cut: RwLock<()>,
    pub live: LivePoint,
    /// One table per receive thread (link), folded at the end.
    pub hosts: Vec<Mutex<HostTable>>,
    /// Checkpoints one at a time, in order.
    taking: Mutex<()>,
}

impl CheckpointState {
    pub fn new(senders: usize, tables: Vec<HostTable>) -> CheckpointState {
        CheckpointState {
            cut: RwLock::new(()),
            live: LivePoint::new(senders),
            hosts: tables.into_iter().map(Mutex::new).collect(),
            taking: Mutex::new(()),
        }
    }

    /// Take a checkpoint: `copy` runs under the write side and returns the
    /// scan's counters and answered bits and queues the writer's marker;
    /// `wait` then waits for the marker's answer (the synced files'
    /// lengths, `None` when the writer is gone), and `deliver` hands the
    /// checkpoint on. Checkpoints are delivered in the order taken.
    pub fn take<M>(
        &self,
        copy: impl FnOnce() -> (u64, u64, u64, Option<Vec<u8>>, M),
        wait: impl FnOnce(M) -> Option<Vec<(&'static str, u64)>>,
        deliver: impl FnOnce(Checkpoint),
    ) {
        let Ok(_one) = self.taking.lock() else { return };
        let (at, hosts, counters) = {
            let Ok(_cut) = self.cut.write() else { return };
            let at = self.live.read();
            let mut table = HostTable::new();
            for h in &self.hosts {
                if let Ok(h) = h.lock() {
                    table.absorb(h.clone());
                }
            }
            (at, table.into_hosts(), copy())
        };
        let (probes, retried, matched, answered, marker) = counters;
        let Some(files) = wait(marker) else { return };
        deliver(Checkpoint {
            at,
            probes,
            retried,
            matched,
            hosts,
            answered,
            files,
            links: Vec::new(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_point_reads_back_as_a_stop_point() {
        let live = LivePoint::new(3);
        live.begin(1, 2, &[Some(4), None, Some(0)]);
        live.advance(2, Some(9));
        live.advance(0, None);
        assert_eq!(
            live.read(),
            StopPoint {
                pass: 1,
                kind: 2,
                next: vec![None, None, Some(9)]
            }
        );
    }

    #[test]
    fn a_checkpoint_carries_the_copy_and_the_lengths() {
        let state = CheckpointState::new(1, vec![HostTable::new(), HostTable::new()]);
        state.live.begin(0, 0, &[Some(7)]);
        let mut got = None;
        state.take(
            || (5, 1, 2, Some(vec![1, 2]), "marker"),
            |m| {
                assert_eq!(m, "marker");
                Some(vec![("capture.pcap", 124)])
            },
            |c| got = Some(c),
        );
        let c = got.expect("delivered");
        assert_eq!(c.at.next, vec![Some(7)]);
        assert_eq!((c.probes, c.retried, c.matched), (5, 1, 2));
        assert_eq!(c.files, vec![("capture.pcap", 124)]);
        // The writer gone: nothing is delivered.
        let mut delivered = false;
        state.take(|| (0, 0, 0, None, ()), |()| None, |_| delivered = true);
        assert!(!delivered);
    }
}
