//! The receive thread: frames in batches from the sniffer, through the
//! correlator, into the evidence, the NDJSON stream and the per-host table.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::correlate::Correlation;
use super::hosts::RecordMode;
use super::writer::{Batch, Frames, Outputs};
use super::{ScanResult, Shared};
use crate::net::packet::{RecvBatch, Sniffer, SnifferStats};
use crate::probe::Verdict;

/// Run until `shared.stop`, for the `link`-th link: what the sniffer counted, every result when
/// `keep_results`, and the results folded per host.
pub(super) fn receive(
    shared: &Shared,
    link: usize,
    outputs: &Outputs,
    mut sniffer: Sniffer,
    record: RecordMode,
    keep_results: bool,
) -> (SnifferStats, Vec<ScanResult>) {
    let mut batch = RecvBatch::new(64, 65536);
    let mut seen: Vec<(usize, Correlation)> = Vec::with_capacity(64);
    // Folded per host as they come (memory grows with findings);
    // every result is kept only when the caller asks.
    let mut results: Vec<ScanResult> = Vec::new();
    let mut counted = Instant::now();
    // Owned here, published as `shared.reply_timeout_us`.
    let mut rtt = super::timing::RttEstimator::new();
    while !shared.stop.load(Ordering::Relaxed) {
        if counted.elapsed() >= Duration::from_millis(500) {
            if let Ok(stats) = sniffer.stats() {
                shared.drops[link].store(stats.dropped, Ordering::Relaxed);
            }
            counted = Instant::now();
        }
        // A batch of frames per system call, one turn of the
        // correlator's lock per batch, and one message to the
        // evidence writer, not one per reply.
        if !matches!(sniffer.next_batch(&mut batch), Ok(n) if n > 0) {
            continue;
        }
        // When each frame was captured (the kernel's time, with the ring):
        // round trips and the evidence's timestamps do not include how
        // long a block waited to be read.
        let times = batch.times();
        seen.clear();
        // The whole batch, from the correlator to the evidence writer and
        // the host table, is inside one checkpoint or after it.
        let _cut = shared.ck.cut.read();
        let Ok(mut hosts) = shared.ck.hosts[link].lock() else {
            break;
        };
        {
            let mut c = shared.correlator.lock().expect("correlator lock");
            for (i, f) in batch.frames().enumerate() {
                // An ARP reply or neighbour advertisement: for discovery.
                if let Some(answer) = crate::probe::neighbour::answer(f) {
                    shared.answers.lock().expect("answers lock").push(answer);
                    continue;
                }
                let ip = crate::wire::ethernet::payload_of(f);
                seen.push((i, c.on_packet(ip, times[i])));
            }
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
            shared.matched.fetch_add(1, Ordering::Relaxed);
            if let Some(us) = result.rtt_us {
                rtt.observe(Duration::from_micros(us));
                if let Some(t) = rtt.timeout() {
                    shared.reply_timeout_us[link].store(t.as_micros() as u64, Ordering::Relaxed);
                }
            }
            shared
                .last_result_ns
                .fetch_max(result.time.0, Ordering::Relaxed);
            if result.verdict == Verdict::Open {
                shared.open.fetch_add(1, Ordering::Relaxed);
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
    (sniffer.stats().unwrap_or_default(), results)
}
