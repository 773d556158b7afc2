//! The sending threads: each walks its share of a probe kind's keyed
//! order, takes permits from the gate in batches, builds each probe and
//! hands it to the frame sender (or, on loopback, the raw IP socket).
//! Nothing shared is locked per probe: a batch's probes go to the evidence
//! writer as one message, its send times to the receive threads as one
//! message each, its counts to the gauges as one add each, and a retry
//! pass reads the answered bits as the receive threads set them.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;

use super::correlate::GainedTargets;
use super::live::Live;
use super::writer::{Batch, Frames, Outputs, SentBatch};
use super::{Key, ScanConfig, ScanError, ScopeStop};
use crate::net::link::{self, ProbeSender};
use crate::net::route::{self, RouteError};
use crate::probe::CookieKey;
use crate::probe::plan::KindPlan;
use crate::scope::{Refusal, ScopeGate};
use crate::targets::index::Shard;

/// Where a probe for one target goes.
#[derive(Clone)]
pub(super) enum Path {
    /// How, and from which source: a whole frame to the next hop's MAC;
    /// or on loopback, through the kernel's raw IP socket, since the
    /// kernel drops IPv4 to 127.0.0.0/8 injected below its routing (a
    /// martian destination). There is no neighbour to wait for on
    /// loopback, so that path never blocks.
    Reach { how: link::Path, source: IpAddr },
    /// The target answered no ARP request or neighbour solicitation.
    Down,
}

/// How each target is reached, from a sending thread's routes.
pub(super) struct Paths {
    /// `--source-ip`: every probe's source instead of the route's.
    pub source: Option<IpAddr>,
    /// The interfaces the run opened (a target routed elsewhere stops it).
    pub opened: Vec<u32>,
}

impl Paths {
    pub fn path(&self, routes: &mut route::RouteCache, target: IpAddr) -> Result<Path, ScanError> {
        if let Some(s) = self.source
            && s.is_ipv4() != target.is_ipv4()
        {
            return Err(ScanError::SourceFamily { source: s, target });
        }
        let (hop_ifindex, _, route_source) = routes.next_hop(target).map_err(ScanError::Route)?;
        if !routes
            .link(hop_ifindex)
            .map_err(ScanError::Route)?
            .resolves_neighbours
        {
            return Ok(Path::Reach {
                how: link::Path::Kernel,
                source: self.source.unwrap_or(route_source),
            });
        }
        Ok(match routes.resolve(target) {
            // Policy routing can send one address of a part elsewhere than
            // the part's first: found here, before its probe.
            Ok(hop) if !self.opened.contains(&hop.ifindex) => {
                let name = |i| route::interface(i).map_or_else(|_| format!("if{i}"), |(n, _)| n);
                return Err(ScanError::RouteChanged {
                    target,
                    ifname: name(hop.ifindex),
                });
            }
            Ok(mut hop) => {
                hop.source = self.source.unwrap_or(hop.source);
                Path::Reach {
                    source: hop.source,
                    how: link::Path::Frame(hop),
                }
            }
            // Discovery asked for every unknown next hop before the first
            // probe: one still unknown is a target that did not answer.
            Err(RouteError::NeighbourUnknown { .. }) => Path::Down,
            Err(e) => return Err(ScanError::Route(e)),
        })
    }
}

/// One pass of one probe kind, for one sending thread.
pub(super) struct Job<'a> {
    pub plan: &'a KindPlan,
    /// This thread's share of the permutation.
    pub share: Shard,
    pub pass: u32,
    /// Where in its share the thread starts (0: the beginning; a resumed
    /// scan's stop point); `None`: its share of this pass and kind was done.
    pub from: Option<u64>,
    /// An added retry pass: only the targets the pass before found
    /// something new on (nmap retries a host no further than the last try
    /// that got it an answer, plus one).
    pub only: Option<&'a GainedTargets>,
}

/// Where a thread's share of a pass and kind ended.
pub(super) struct ShareEnd {
    /// The next position of the share when it stopped early (an
    /// interrupt, the scope, a failed output), `None` when it is done:
    /// where a resumed scan continues.
    pub next: Option<u64>,
    /// The scope's limit that stopped it.
    pub scope_stop: Option<ScopeStop>,
}

/// What every sending thread of a run shares, borrowed from the run.
pub(super) struct SendContext<'a> {
    pub config: &'a ScanConfig,
    pub gate: &'a ScopeGate,
    pub key: &'a CookieKey,
    pub live: &'a Live,
    pub outputs: &'a Outputs,
    pub paths: &'a Paths,
    /// The caller's: stop sending (Ctrl-C).
    pub interrupt: &'a AtomicBool,
    /// One per receive thread: the first probes' send times go to each.
    pub send_times: &'a [Sender<Vec<(Key, i64)>>],
}

/// One sending thread's view of the scan.
pub(super) struct Worker<'a> {
    /// This thread's index among the sending threads.
    pub thread: usize,
    pub run: &'a SendContext<'a>,
}

impl Worker<'_> {
    /// Send this thread's share of one kind's probes for one pass. A
    /// retry pass skips the probes answered by then.
    pub(super) fn send(
        &self,
        routes: &mut route::RouteCache,
        link: &mut dyn ProbeSender,
        job: Job<'_>,
    ) -> Result<ShareEnd, ScanError> {
        let Job {
            plan,
            share,
            pass,
            from,
            only,
        } = job;
        let mut end = ShareEnd {
            next: None,
            scope_stop: None,
        };
        let Some(from) = from else {
            return Ok(end);
        };
        let kind = plan.kind;
        let config = self.run.config;
        let sent_before = link.sent();
        let mut buf = Vec::with_capacity(128);
        let mut walk = share.positions_from(plan.len(), from).peekable();
        let mut timed: Vec<(Key, i64)> = Vec::new();
        let result = (|| {
            while walk.peek().is_some() {
                let stop = || {
                    self.run.interrupt.load(Ordering::Relaxed)
                        || self.run.live.signals.output_failed()
                        || self.run.live.signals.scope_stopped()
                };
                // Checked every batch (about 10 ms of traffic).
                if stop() {
                    break;
                }
                let mut batch = match self.run.gate.reserve_unless(self.run.gate.burst(), &stop) {
                    Ok(Some(b)) => b,
                    Ok(None) => break,
                    // The scope's limits end the run, not the process:
                    // sending stops, the cooldown and the evidence follow.
                    Err(r @ (Refusal::Expired { .. } | Refusal::BudgetExhausted { .. })) => {
                        let stop = match r {
                            Refusal::Expired { .. } => ScopeStop::WindowClosed(r),
                            _ => ScopeStop::BudgetSpent(r),
                        };
                        end.scope_stop = Some(stop);
                        self.run
                            .live
                            .signals
                            .scope_stopped
                            .store(true, Ordering::Relaxed);
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
                    frames: Frames::with_capacity(if self.run.outputs.records_sent {
                        wanted
                    } else {
                        0
                    }),
                    origins: Vec::new(),
                };
                // Send times for round-trip times, kept for a bounded
                // number of probes: memory must not grow with the scan.
                let timing = pass == 0
                    && self.run.live.gauges.timed.load(Ordering::Relaxed) < super::MAX_TIMED_PROBES;
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
                    } else if self.run.live.answered.contains(&k)
                        || only.is_some_and(|g| !self.run.live.answered.target_gained(g, &k))
                    {
                        continue;
                    } else {
                        again += 1;
                    }
                    let path = self.run.paths.path(routes, target)?;
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
                        self.run.key,
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
                    if self.run.outputs.records_sent {
                        sent.frames.push(at, &buf);
                        sent.origins.push((position, source));
                    }
                    link.send(permit, how, &buf).map_err(|e| {
                        ScanError::Io("cannot send", std::io::Error::other(e.to_string()))
                    })?;
                }
                let gauges = &self.run.live.gauges;
                gauges.probes.fetch_add(new, Ordering::Relaxed);
                gauges.skipped_down.fetch_add(down, Ordering::Relaxed);
                gauges.probed[kind as usize].fetch_add(new, Ordering::Relaxed);
                gauges.retried.fetch_add(again, Ordering::Relaxed);
                if !timed.is_empty() {
                    // Every link's receive thread gets them: the reply
                    // comes back on the link its target is reached by.
                    gauges.timed.fetch_add(timed.len(), Ordering::Relaxed);
                    if let Some((last, rest)) = self.run.send_times.split_last() {
                        for tx in rest {
                            let _ = tx.send(timed.clone());
                        }
                        let _ = last.send(std::mem::take(&mut timed));
                    }
                }
                // The batch's evidence is handed over before its frames
                // leave (at the flush below), so in the pcap a probe comes
                // before its reply, as on the wire; then the thread's
                // position moves on. A checkpoint sees all three or none
                // (`checkpoint`).
                let _cut = self.run.live.ck.cut.read();
                if !sent.frames.is_empty() && !self.run.outputs.send(Batch::Sent(sent)) {
                    break;
                }
                link.flush().map_err(|e| ScanError::Io("cannot send", e))?;
                self.run
                    .live
                    .ck
                    .live
                    .advance(self.thread, walk.peek().copied());
            }
            Ok(walk.peek().copied())
        })();
        // The sockets live across passes: count this call's sends only.
        self.run
            .live
            .gauges
            .sent
            .fetch_add(link.sent() - sent_before, Ordering::Relaxed);
        end.next = result?;
        Ok(end)
    }
}
