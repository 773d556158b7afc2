//! The receive threads, one per link: frames in batches from the link's
//! sniffer, through the link's own correlator, into the evidence, the
//! NDJSON stream and the link's host table. A thread owns its correlator:
//! the only state the links share is the answered bits, one atomic OR per
//! new result.

use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, Sender};
use std::time::{Duration, Instant};

use super::ScanResult;
use super::correlate::{Correlation, Correlator, ProbeKey, RecvCounters};
use super::hosts::RecordMode;
use super::live::Live;
use super::writer::{Batch, Frames, Outputs};
use crate::net::link::FrameSource;
use crate::net::packet::{RecvBatch, SnifferStats};
use crate::probe::Verdict;

/// One link's receive thread: what it owns, and the channels it reads and
/// answers on.
pub(super) struct LinkReceiver {
    /// The link's index among the scan's links.
    pub link: usize,
    pub sniffer: Box<dyn FrameSource>,
    /// This link's correlator (its answered bits are the scan's, shared).
    pub correlator: Correlator,
    /// Probes' send times, batch by batch, from the sending threads.
    pub send_times: Receiver<Vec<(ProbeKey, i64)>>,
    /// ARP replies and neighbour advertisements, for discovery (which
    /// hangs up when it is done).
    pub neighbours: Sender<(IpAddr, [u8; 6])>,
    pub record: RecordMode,
    pub keep_results: bool,
}

/// What a receive thread hands back when it ends.
#[derive(Default)]
pub(super) struct Received {
    pub sniffer: SnifferStats,
    pub counters: RecvCounters,
    /// Every result, when the caller asked to keep them.
    pub results: Vec<ScanResult>,
}

/// Run until `live.signals.stop_receiving`: correlate every frame the
/// link's sniffer captures, hand the evidence and results to the writer,
/// and fold the results into the link's host table.
pub(super) fn receive(live: &Live, outputs: &Outputs, r: LinkReceiver) -> Received {
    let LinkReceiver {
        link,
        mut sniffer,
        mut correlator,
        send_times,
        neighbours,
        record,
        keep_results,
    } = r;
    let mut batch = RecvBatch::new(64, 65536);
    let mut seen: Vec<(usize, Correlation)> = Vec::with_capacity(64);
    // Folded per host as they come (memory grows with findings);
    // every result is kept only when the caller asks.
    let mut results: Vec<ScanResult> = Vec::new();
    let mut counted = Instant::now();
    // Owned here, published as `live.gauges.reply_timeout_us`.
    let mut rtt = super::timing::RttEstimator::new();
    let gauges = &live.gauges;
    while !live.signals.stop_receiving.load(Ordering::Relaxed) {
        if counted.elapsed() >= Duration::from_millis(500) {
            if let Ok(stats) = sniffer.stats() {
                gauges.drops[link].store(stats.dropped, Ordering::Relaxed);
            }
            counted = Instant::now();
        }
        // A batch of frames per system call, and one message to the
        // evidence writer, not one per reply.
        let got = matches!(sniffer.next_batch(&mut batch), Ok(n) if n > 0);
        // The send times handed over while the batch was waited for: a
        // reply in it may be to a probe of the senders' last batch.
        for sent in send_times.try_iter() {
            correlator.on_sent_batch(sent);
        }
        if !got {
            continue;
        }
        // When each frame was captured (the kernel's time, with the ring):
        // round trips and the evidence's timestamps do not include how
        // long a block waited to be read.
        let times = batch.times();
        seen.clear();
        // The whole batch, from the correlator to the evidence writer and
        // the host table, is inside one checkpoint or after it.
        // (The host table's lock is this thread's but for a checkpoint's
        // copy.)
        let _cut = live.ck.cut.read();
        let Ok(mut hosts) = live.ck.hosts[link].lock() else {
            break;
        };
        for (i, f) in batch.frames().enumerate() {
            // An ARP reply or neighbour advertisement: for discovery.
            if let Some(answer) = crate::probe::neighbour::answer(f) {
                let _ = neighbours.send(answer);
                continue;
            }
            let ip = crate::wire::ethernet::payload_of(f);
            seen.push((i, correlator.on_packet(ip, times[i])));
        }
        // The evidence keeps packets from the targets and anything about
        // our probes (ICMP errors from routers); other traffic to us is
        // counted, not recorded. Our own probes (loopback) were
        // recorded by the sender.
        if outputs.records_replies && seen.iter().any(|(_, c)| c.is_evidence()) {
            let frames: Vec<&[u8]> = batch.frames().collect();
            let mut evidence = Frames::with_capacity(seen.len());
            for (i, c) in &seen {
                if c.is_evidence() {
                    evidence.push(times[*i], crate::wire::ethernet::payload_of(frames[*i]));
                }
            }
            outputs.send(Batch::Replies(evidence));
        }
        let mut lines = String::new();
        for (_, c) in seen.drain(..) {
            let Correlation::Matched(result) = c else {
                continue;
            };
            gauges.matched.fetch_add(1, Ordering::Relaxed);
            if let Some(us) = result.rtt_us {
                rtt.observe(Duration::from_micros(us));
                if let Some(t) = rtt.timeout() {
                    gauges.reply_timeout_us[link].store(t.as_micros() as u64, Ordering::Relaxed);
                }
            }
            gauges
                .last_result_ns
                .fetch_max(result.time.0, Ordering::Relaxed);
            if result.verdict == Verdict::Open {
                gauges.open.fetch_add(1, Ordering::Relaxed);
            }
            if outputs.records_results
                && record.records(&result.verdict)
                && let Ok(line) = serde_json::to_string(&result)
            {
                lines.push_str(&line);
                lines.push('\n');
            }
            if keep_results {
                results.push(result.clone());
            }
            hosts.add(result);
        }
        if !lines.is_empty() {
            outputs.send(Batch::Results(lines));
        }
    }
    Received {
        sniffer: sniffer.stats().unwrap_or_default(),
        counters: correlator.counters(),
        results,
    }
}
