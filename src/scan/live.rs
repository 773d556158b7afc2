//! What the threads of a running scan tell each other, without a lock:
//! signals that stop a side, and live figures that one side writes and
//! others only read (the monitor's progress line and rate watch, the
//! retry pause, the cooldown, the checkpoints).
//!
//! Results are not kept here. Each thread owns what it finds and hands it
//! back when it ends: a sending thread where its share stopped and why, a
//! receive thread its correlator's counters and results, the writer the
//! first output that failed, the monitor the rate shortfall. What passes
//! from one thread to another while the scan runs goes by channel: probes'
//! send times to the receive threads, ARP and ND answers to discovery,
//! evidence to the writer.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use super::checkpoint::CheckpointState;
use super::correlate::AnsweredBits;
use crate::scope::ProbeKind;

/// The scan's shared state while it runs.
pub(super) struct Live {
    pub signals: Signals,
    pub gauges: Gauges,
    /// Which probes are answered: set by every link's correlator, read by
    /// the senders of a retry pass and by checkpoints.
    pub answered: Arc<AnsweredBits>,
    /// What a checkpoint copies, and the lock that makes its copy a cut
    /// (taken for reading once per batch, for writing once per checkpoint).
    pub ck: CheckpointState,
}

/// Signals that stop one side of the scan.
#[derive(Default)]
pub(super) struct Signals {
    /// The receive threads end (after the cooldown).
    pub stop_receiving: AtomicBool,
    /// An output failed (the writer keeps why): sending stops.
    pub output_failed: AtomicBool,
    /// The scope ended sending (the sender that met it says why).
    pub scope_stopped: AtomicBool,
}

impl Signals {
    pub fn output_failed(&self) -> bool {
        self.output_failed.load(Ordering::Relaxed)
    }

    pub fn scope_stopped(&self) -> bool {
        self.scope_stopped.load(Ordering::Relaxed)
    }
}

/// Live figures, each written by one side (per batch, never per probe)
/// and read by the others.
pub(super) struct Gauges {
    /// Written by the sending threads: first-pass probes, per kind too,
    /// retries, targets skipped as down.
    pub probes: AtomicU64,
    pub probed: [AtomicU64; 3],
    pub retried: AtomicU64,
    pub skipped_down: AtomicU64,
    /// Frames the sockets took (every pass).
    pub sent: AtomicU64,
    /// Probes whose send time was handed to the receive threads (the
    /// first [`super::MAX_TIMED_PROBES`]).
    pub timed: AtomicUsize,
    /// Written by the pass loop: the pass being sent, and whether it is
    /// the first (the rate is watched then only).
    pub pass: AtomicU32,
    pub first_pass: AtomicBool,
    /// Written by the receive threads: results and open ports so far,
    /// when the last result came (ns since the epoch, 0 before).
    pub matched: AtomicU64,
    pub open: AtomicU64,
    pub last_result_ns: AtomicI64,
    /// Per link (its receive thread's): how long a reply may take (µs, 0
    /// before the first round trip), and the kernel's drops so far.
    pub reply_timeout_us: Vec<AtomicU64>,
    pub drops: Vec<AtomicU64>,
}

impl Gauges {
    pub fn new(links: usize) -> Gauges {
        Gauges {
            probes: AtomicU64::new(0),
            probed: Default::default(),
            retried: AtomicU64::new(0),
            skipped_down: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            timed: AtomicUsize::new(0),
            pass: AtomicU32::new(0),
            first_pass: AtomicBool::new(false),
            matched: AtomicU64::new(0),
            open: AtomicU64::new(0),
            last_result_ns: AtomicI64::new(0),
            reply_timeout_us: (0..links).map(|_| AtomicU64::new(0)).collect(),
            drops: (0..links).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// How long a reply may take (µs; 0 before the first round trip): the
    /// slowest link's estimate.
    pub fn reply_timeout_us(&self) -> u64 {
        self.reply_timeout_us
            .iter()
            .map(|t| t.load(Ordering::Relaxed))
            .max()
            .unwrap_or(0)
    }

    /// The kernel's drops so far on every link.
    pub fn drops(&self) -> u64 {
        self.drops.iter().map(|d| d.load(Ordering::Relaxed)).sum()
    }

    /// First-pass probes sent so far.
    pub fn probes(&self) -> u64 {
        self.probes.load(Ordering::Relaxed)
    }

    pub fn matched(&self) -> u64 {
        self.matched.load(Ordering::Relaxed)
    }

    /// First-pass probes of `kind`.
    pub fn probed(&self, kind: ProbeKind) -> u64 {
        self.probed[kind as usize].load(Ordering::Relaxed)
    }
}
