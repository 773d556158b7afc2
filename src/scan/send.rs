//! The sending threads: each walks its share of a probe kind's keyed
//! order, takes permits from the gate in batches, builds each probe and
//! hands it to the frame sender (or, on loopback, the raw IP socket).
//! Nothing shared is locked per probe: a batch's probes go to the evidence
//! writer as one message, its send times to the correlator under one lock,
//! and a retry pass reads a copy of what was answered.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::correlate::AnsweredSnapshot;
use super::writer::{Batch, Frames, Outputs, SentBatch};
use super::{Key, Path, ScanConfig, ScanError, ScopeStop, Shared};
use crate::net::link::LinkSender;
use crate::net::route;
use crate::probe::CookieKey;
use crate::probe::plan::KindPlan;
use crate::scope::{Refusal, ScopeGate};
use crate::targets::index::Shard;

/// One pass of one probe kind, for one sending thread.
pub(super) struct Job<'a> {
    pub plan: &'a KindPlan,
    /// This thread's share of the permutation.
    pub share: Shard,
    pub pass: u32,
    /// Retry passes: which probes had their result when the pass began.
    pub answered: Option<&'a AnsweredSnapshot>,
    /// Where in its share the thread starts (0: the beginning; a resumed
    /// scan's stop point); `None`: its share of this pass and kind was done.
    pub from: Option<u64>,
}

/// One sending thread's view of the scan.
pub(super) struct Worker<'a, P> {
    /// This thread's index among the sending threads.
    pub(super) thread: usize,
    pub(super) config: &'a ScanConfig,
    pub(super) gate: &'a ScopeGate,
    pub(super) key: &'a CookieKey,
    pub(super) shared: &'a Shared,
    pub(super) outputs: &'a Outputs,
    pub(super) path_for: &'a P,
    pub(super) stop_sending: &'a AtomicBool,
    pub(super) probes: &'a AtomicU64,
    pub(super) probed: &'a [AtomicU64; 3],
    pub(super) sent: &'a AtomicU64,
    pub(super) skipped_down: &'a AtomicU64,
    pub(super) retried: &'a AtomicU64,
    /// Print the progress line (one thread does): the start and the total.
    pub(super) progress: Option<(Instant, u64)>,
}

impl<P> Worker<'_, P>
where
    P: Fn(&mut route::RouteCache, IpAddr) -> Result<Path, ScanError> + Sync,
{
    /// Send this thread's share of one kind's probes for one pass. Returns
    /// the next position of the share when it stopped early (an interrupt,
    /// the scope), `None` when the share is done: where a resumed scan
    /// continues.
    pub(super) fn send(
        &self,
        routes: &mut route::RouteCache,
        link: &mut LinkSender,
        job: Job<'_>,
    ) -> Result<Option<u64>, ScanError> {
        let Job {
            plan,
            share,
            pass,
            answered,
            from,
        } = job;
        let Some(from) = from else {
            return Ok(None);
        };
        let kind = plan.kind;
        let config = self.config;
        let sent_before = link.sent();
        let mut buf = Vec::with_capacity(128);
        let mut last_progress = Instant::now();
        let mut walk = share.positions_from(plan.len(), from).peekable();
        let mut timed: Vec<(Key, i64)> = Vec::new();
        let result = (|| {
            while walk.peek().is_some() {
                // Checked every batch (about 10 ms of traffic).
                if self.stop_sending.load(Ordering::Relaxed)
                    || self.shared.output_failed.load(Ordering::Relaxed)
                    || self.shared.scope_stopped.load(Ordering::Relaxed)
                {
                    break;
                }
                if let Some((started, total)) = self.progress
                    && last_progress.elapsed() >= Duration::from_secs(1)
                {
                    last_progress = Instant::now();
                    let probes = self.probes.load(Ordering::Relaxed);
                    let secs = started.elapsed().as_secs_f64();
                    let rate = probes as f64 / secs.max(1e-9);
                    let found = self.shared.matched.load(Ordering::Relaxed);
                    let open = self.shared.open.load(Ordering::Relaxed);
                    let eta = total.saturating_sub(probes) as f64 / rate.max(1.0);
                    config.tell(&super::progress::ScanEvent::Progress {
                        probes,
                        total,
                        rate,
                        open,
                        other_replies: found.saturating_sub(open),
                        eta_seconds: eta,
                        pass,
                    });
                }
                let stop = || {
                    self.stop_sending.load(Ordering::Relaxed)
                        || self.shared.output_failed.load(Ordering::Relaxed)
                        || self.shared.scope_stopped.load(Ordering::Relaxed)
                };
                let mut batch = match self.gate.reserve_unless(self.gate.burst(), &stop) {
                    Ok(Some(b)) => b,
                    Ok(None) => break,
                    // The scope's limits end the run, not the process:
                    // sending stops, the cooldown and the evidence follow.
                    Err(r @ (Refusal::Expired { .. } | Refusal::BudgetExhausted { .. })) => {
                        let stop = match r {
                            Refusal::Expired { .. } => ScopeStop::WindowClosed(r),
                            _ => ScopeStop::BudgetSpent(r),
                        };
                        self.shared
                            .scope_stop
                            .lock()
                            .expect("scope stop lock")
                            .get_or_insert(stop);
                        self.shared.scope_stopped.store(true, Ordering::Relaxed);
                        break;
                    }
                    Err(r) => return Err(ScanError::Refused(r)),
                };
                // Counted per batch, not per probe: the counters are shared
                // by every sending thread.
                let (mut new, mut again, mut down) = (0u64, 0u64, 0u64);
                let wanted = batch.remaining() as usize;
                let mut sent = SentBatch {
                    kind,
                    pass,
                    step: share.count,
                    frames: Frames::with_capacity(if self.outputs.records_sent {
                        wanted
                    } else {
                        0
                    }),
                    origins: Vec::new(),
                };
                let timing = pass == 0 && !self.shared.timed_full.load(Ordering::Relaxed);
                let mut walked = 0u32;
                while batch.remaining() > 0 {
                    // Positions of down targets take no permit: in a sparse
                    // range a batch can walk many of them, so the stop is
                    // looked at within the batch too.
                    walked += 1;
                    if walked.is_multiple_of(256) && stop() {
                        break;
                    }
                    let Some(position) = walk.next() else { break };
                    let p = plan.at_position(position);
                    let (target, port, question) = (p.target, p.port, p.question);
                    let k: Key = (target, port, kind, question);
                    if pass == 0 {
                        new += 1;
                    } else if answered.is_some_and(|a| a.is_answered(&k)) {
                        continue;
                    } else {
                        again += 1;
                    }
                    let path = (self.path_for)(routes, target)?;
                    let (how, source) = match &path {
                        Path::Reach { how, source } => (how, *source),
                        Path::Down => {
                            if pass == 0 {
                                new -= 1;
                                down += 1;
                            } else {
                                again -= 1;
                            }
                            continue;
                        }
                    };
                    let permit = batch
                        .permit(source, target, port, kind)
                        .map_err(ScanError::Refused)?;
                    p.build(
                        &mut buf,
                        source,
                        self.key,
                        &config.template,
                        &config.dns_questions,
                    )
                    .map_err(|e| {
                        ScanError::Io("cannot build a probe", std::io::Error::other(e.to_string()))
                    })?;
                    let at = crate::clock::now_nanos();
                    if timing {
                        timed.push((k, at));
                    }
                    if self.outputs.records_sent {
                        sent.frames.push(at, &buf);
                        sent.origins.push((position, source));
                    }
                    link.send(permit, how, &buf).map_err(|e| {
                        ScanError::Io("cannot send", std::io::Error::other(e.to_string()))
                    })?;
                }
                self.probes.fetch_add(new, Ordering::Relaxed);
                self.skipped_down.fetch_add(down, Ordering::Relaxed);
                self.probed[kind as usize].fetch_add(new, Ordering::Relaxed);
                self.retried.fetch_add(again, Ordering::Relaxed);
                if !timed.is_empty() {
                    // Send times for round-trip times, kept for a bounded
                    // number of probes: memory must not grow with the scan.
                    let mut c = self.shared.correlator.lock().expect("correlator lock");
                    c.on_sent_batch(timed.drain(..));
                    if !c.wants_send_times() {
                        self.shared.timed_full.store(true, Ordering::Relaxed);
                    }
                }
                // The batch's evidence is handed over before its frames
                // leave (at the flush below), so in the pcap a probe comes
                // before its reply, as on the wire; then the thread's
                // position moves on. A checkpoint sees all three or none
                // (`checkpoint`).
                let _cut = self.shared.ck.cut.read();
                if !sent.frames.is_empty() && !self.outputs.send(Batch::Sent(sent)) {
                    break;
                }
                link.flush().map_err(|e| ScanError::Io("cannot send", e))?;
                self.shared
                    .ck
                    .live
                    .advance(self.thread, walk.peek().copied());
            }
            Ok(walk.peek().copied())
        })();
        // The sockets live across passes: count this call's sends only.
        self.sent
            .fetch_add(link.sent() - sent_before, Ordering::Relaxed);
        result
    }
}
