//! Passes and retries: the first pass sends every probe of the plan; each
//! retry pass resends the probes still without a result. After the
//! `--retries` asked for, a retry pass that still found answers shows a
//! link losing packets, and another follows (up to `--max-retries`, within
//! the budget) until a pass finds nothing new, as nmap adds retries when
//! it sees drops. An added pass goes only to the targets a recent pass
//! found something new on, so a filtered host is not probed again and
//! again. How recent follows the loss ([`patience`]): nmap stops retrying
//! a host one try past the last try that got it an answer, which on a
//! link losing 10% of round trips leaves one host in 30 with a probe lost
//! twice and never sent again; sonde keeps retrying a host that answered
//! until, at the loss the run measures, an answer lost on every try since
//! is less likely than one in ten thousand.
//!
//! Each pass sends one probe kind after the other; each kind's order is
//! shared among the sending threads (thread t of T takes every T-th
//! position of this machine's shard). While the passes run, the monitor
//! watches the rate and tells the progress, and (when the caller takes
//! them) a timer takes checkpoints; every pass boundary is one too.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::correlate::GainedTargets;
use super::monitor::Monitor;
use super::progress::{RateShortfall, ScanEvent};
use super::send::{Job, SendContext, ShareEnd, Worker};
use super::{ScanError, ScopeStop, StopPoint};
use crate::net::link::ProbeSender;
use crate::net::route::RouteCache;
use crate::probe::plan::{KindPlan, ProbePlan};
use crate::results::{LinkReport, loss_estimate};
use crate::targets::index::Shard;

/// The pause between a pass and the retry pass after it (at most --wait),
/// before any round trip is known; after, four times the slowest one, at
/// least MIN_RETRY_PAUSE.
const RETRY_PAUSE: Duration = Duration::from_millis(250);
const MIN_RETRY_PAUSE: Duration = Duration::from_millis(20);

/// What the sending phase needs, borrowed from the run.
pub(super) struct Sending<'a> {
    /// What every sending thread shares.
    pub run: SendContext<'a>,
    pub plan: &'a ProbePlan,
    /// The run's links, recorded in every checkpoint.
    pub links: &'a [LinkReport],
}

/// What the sending phase did.
#[derive(Default)]
pub(super) struct Sent {
    /// Each pass and the results that came while it was sent and in the
    /// pause after it.
    pub answers_per_pass: Vec<(u32, u64)>,
    /// Where sending stopped when it stopped early; `None`: every pass ran.
    pub stopped_at: Option<StopPoint>,
    /// The scope's limit that stopped it.
    pub scope_stop: Option<ScopeStop>,
    pub shortfall: Option<RateShortfall>,
    /// How long the first pass and all of sending took.
    pub first_pass_seconds: f64,
    pub sending_seconds: f64,
    /// When the last pass's last probe left (ns since the epoch; 0: none).
    pub last_sent_ns: i64,
}

impl Sending<'_> {
    /// Send every pass through `sockets`, one sending thread per socket,
    /// each with its own routes.
    pub fn run(
        &self,
        routes: &mut [RouteCache],
        sockets: &mut [Box<dyn ProbeSender>],
    ) -> Result<Sent, ScanError> {
        let started = Instant::now();
        let done = AtomicBool::new(false);
        let config = self.run.config;
        std::thread::scope(|sc| {
            // Checkpoints every `checkpoint_every` while sending, and never
            // closer than 20 times what the last one took: a /8's answered
            // bits are 100 MB to copy and sync, and checkpoints must stay a
            // small part of the run (about 5% of one thread at most).
            if config.checkpoints.is_some() {
                sc.spawn(|| {
                    let _ = crate::net::privilege::drop_in_this_thread();
                    let mut last = Instant::now();
                    let mut every = config.checkpoint_every;
                    while !done.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(20));
                        if last.elapsed() >= every {
                            let took = Instant::now();
                            self.checkpoint();
                            every = config.checkpoint_every.max(took.elapsed() * 20);
                            last = Instant::now();
                        }
                    }
                });
            }
            let monitor = Monitor {
                config,
                gate: self.run.gate,
                gauges: &self.run.live.gauges,
                started,
                total: self
                    .plan
                    .kinds()
                    .iter()
                    .map(|k| k.len().div_ceil(config.shard.count))
                    .sum(),
            };
            let done = &done;
            let monitor = sc.spawn(move || monitor.run(done));
            let sent = self.passes(routes, sockets, started);
            let sending_seconds = started.elapsed().as_secs_f64();
            done.store(true, Ordering::Relaxed);
            let shortfall = monitor.join().unwrap_or(None);
            sent.map(|s| Sent {
                shortfall,
                sending_seconds,
                ..s
            })
        })
    }

    fn passes(
        &self,
        routes: &mut [RouteCache],
        sockets: &mut [Box<dyn ProbeSender>],
        started: Instant,
    ) -> Result<Sent, ScanError> {
        let (config, live) = (self.run.config, self.run.live);
        let gauges = &live.gauges;
        let senders = sockets.len();
        let kinds = self.plan.kinds();
        let mut sent = Sent::default();
        let resume_at = config.resume.as_ref().map(|r| &r.at);
        let last_possible = config.max_retries.max(config.retries);
        let mut pass = resume_at.map_or(0, |at| at.pass);
        // The first pass this segment sends whole: the targets a pass
        // found something new on are known from its end.
        let whole_from = resume_at.map_or(0, |at| at.pass + 1);
        // The targets each recent pass found something new on, newest
        // last, as many passes as the loss asks to look back.
        let mut recent: VecDeque<GainedTargets> = VecDeque::new();
        loop {
            // A pass added past --retries goes only to the targets a recent
            // pass found something new on: a host where retrying brought
            // nothing for that long (filtered, or every answer already in)
            // is not probed again; a host that never answered never is.
            let only = match recent.front() {
                Some(first) if pass > config.retries && pass > whole_from => Some(
                    recent
                        .iter()
                        .skip(1)
                        .fold(first.clone(), |all, g| all.union(g)),
                ),
                _ => None,
            };
            let only = only.as_ref();
            let matched_before = gauges.matched();
            gauges.first_pass.store(pass == 0, Ordering::Relaxed);
            gauges.pass.store(pass, Ordering::Relaxed);
            for (kind_index, kind_plan) in kinds.iter().enumerate() {
                // A resumed scan starts at its stop point.
                let starts: Vec<Option<u64>> = match resume_at {
                    Some(at) if pass == at.pass && kind_index < at.kind => continue,
                    Some(at) if pass == at.pass && kind_index == at.kind => at.next.clone(),
                    _ => vec![Some(0); senders],
                };
                {
                    let _cut = live.ck.cut.read();
                    live.ck.live.begin(pass, kind_index, &starts);
                }
                let mut next = Vec::with_capacity(senders);
                for end in self.send_kind(routes, sockets, kind_plan, pass, &starts, only)? {
                    next.push(end.next);
                    if sent.scope_stop.is_none() {
                        sent.scope_stop = end.scope_stop;
                    }
                }
                if self.run.interrupt.load(Ordering::Relaxed)
                    || live.signals.output_failed()
                    || live.signals.scope_stopped()
                {
                    sent.stopped_at = Some(StopPoint {
                        pass,
                        kind: kind_index,
                        next,
                    });
                    return Ok(sent);
                }
            }
            if pass == 0 {
                sent.first_pass_seconds = started.elapsed().as_secs_f64();
            }
            // When this pass's last probe left: the cooldown's quiet is
            // counted from it, not from after the pause below (which
            // already waited for its replies).
            sent.last_sent_ns = crate::clock::now_nanos();
            // The pass's probes reach the disk before its replies are waited for.
            self.run.outputs.flush();
            if live.signals.output_failed() {
                return Ok(sent);
            }
            // A pass boundary is a checkpoint: the pass whole, no kind of
            // it left.
            {
                let _cut = live.ck.cut.read();
                live.ck.live.begin(pass, kinds.len(), &vec![None; senders]);
            }
            self.checkpoint();
            // Give replies to this pass's last probes time before deciding
            // what to retry: the reply timeout the round trips show (at
            // least MIN_RETRY_PAUSE), before any, a quarter second, which
            // covers any LAN and most routed round trips; a later reply
            // still counts, its probe is merely sent twice. (In slices: a
            // Ctrl-C stops the scan, not the nap.)
            let may_follow = pass < config.retries || (config.retries > 0 && pass < last_possible);
            if may_follow {
                let pause = match gauges.reply_timeout_us() {
                    0 => RETRY_PAUSE,
                    us => Duration::from_micros(us).clamp(MIN_RETRY_PAUSE, RETRY_PAUSE),
                };
                let until = Instant::now() + config.wait.min(pause);
                while Instant::now() < until && !self.run.interrupt.load(Ordering::Relaxed) {
                    std::thread::sleep(
                        crate::scope::MAX_WAIT.min(until.saturating_duration_since(Instant::now())),
                    );
                }
            }
            let found = gauges.matched().saturating_sub(matched_before);
            sent.answers_per_pass.push((pass, found));
            recent.extend(live.answered.take_gained());
            let keep = patience(loss_estimate(&sent.answers_per_pass), last_possible);
            while recent.len() > keep {
                recent.pop_front();
            }
            let next = pass < config.retries || (may_follow && pass > 0 && found > 0);
            if !next || self.run.interrupt.load(Ordering::Relaxed) {
                return Ok(sent);
            }
            pass += 1;
            if pass > config.retries {
                config.tell(&ScanEvent::PassAdded {
                    pass,
                    new_answers: found,
                });
            }
        }
    }

    /// One pass of one kind: every sending thread its share, from
    /// `starts`; where each share ended.
    fn send_kind(
        &self,
        routes: &mut [RouteCache],
        sockets: &mut [Box<dyn ProbeSender>],
        plan: &KindPlan,
        pass: u32,
        starts: &[Option<u64>],
        only: Option<&GainedTargets>,
    ) -> Result<Vec<ShareEnd>, ScanError> {
        let senders = sockets.len();
        let shard = self.run.config.shard;
        let ends: Vec<Result<ShareEnd, ScanError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = routes
                .iter_mut()
                .zip(sockets.iter_mut())
                .enumerate()
                .map(|(t, (routes, link))| {
                    let share = Shard {
                        index: shard.index + shard.count * t as u64,
                        count: shard.count * senders as u64,
                    };
                    let worker = Worker {
                        thread: t,
                        run: &self.run,
                    };
                    let from = starts.get(t).copied().flatten();
                    std::thread::Builder::new()
                        .name(format!("sonde-send-{t}"))
                        .spawn_scoped(scope, move || {
                            let job = Job {
                                plan,
                                share,
                                pass,
                                from,
                                only,
                            };
                            worker.send(routes, link.as_mut(), job)
                        })
                })
                .collect();
            // Every thread joined, whatever the first one returned.
            handles
                .into_iter()
                .map(|h| match h {
                    Ok(h) => h.join().unwrap_or_else(|_| {
                        Err(ScanError::Io(
                            "a sending thread failed",
                            std::io::Error::other("panic"),
                        ))
                    }),
                    Err(e) => Err(ScanError::Io("cannot start a sending thread", e)),
                })
                .collect()
        });
        ends.into_iter().collect()
    }

    /// Take a checkpoint (when the caller takes them): a consistent cut of
    /// the state, the writer's marker behind the evidence it covers.
    pub fn checkpoint(&self) {
        let Some(tx) = &self.run.config.checkpoints else {
            return;
        };
        let (live, gauges) = (self.run.live, &self.run.live.gauges);
        live.ck.take(
            || {
                (
                    gauges.probes(),
                    gauges.retried.load(Ordering::Relaxed),
                    gauges.matched(),
                    live.answered.to_bytes(),
                    self.run.outputs.checkpoint_marker(),
                )
            },
            |marker| marker?.recv().ok(),
            |mut c| {
                c.links = self.links.to_vec();
                let _ = tx.send(c);
            },
        );
    }
}

/// The odds, at most, that an answer is lost on every try after its host
/// last answered and so never comes in: one in ten thousand.
const GIVE_UP_ODDS: f64 = 1e-4;

/// How many passes in a row without a new result a target that answered
/// may have before added passes leave it: the fewest such that a probe lost
/// on each of them at the round trip's `loss` is less likely than
/// [`GIVE_UP_ODDS`], at least 1 (nmap's rule) and at most `most` (the
/// passes there can be).
pub(crate) fn patience(loss: f64, most: u32) -> usize {
    let most = most.max(1) as usize;
    if loss.is_nan() || loss <= 0.0 {
        return 1;
    }
    if loss >= 1.0 {
        return most;
    }
    let passes = (GIVE_UP_ODDS.ln() / loss.ln()).ceil();
    (passes as usize).clamp(1, most)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patience_grows_with_the_loss_within_the_passes_there_can_be() {
        // No loss seen: nmap's one pass past the last answer.
        assert_eq!(patience(0.0, 10), 1);
        assert_eq!(patience(f64::NAN, 10), 1);
        // 0.5% of round trips lost: two tries lost in a row, 1 in 40,000.
        assert_eq!(patience(0.005, 10), 2);
        // 5% each way (9.75% of round trips): four passes (0.0975^3 is
        // 1 in 1,080, too likely; 0.0975^4 is 1 in 11,000).
        assert_eq!(patience(0.0975, 10), 4);
        // Half lost: as many as --max-retries allows.
        assert_eq!(patience(0.5, 10), 10);
        assert_eq!(patience(1.0, 3), 3);
        assert_eq!(patience(0.3, 0), 1);
    }
}
