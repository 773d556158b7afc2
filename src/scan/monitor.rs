//! The monitor: one thread, while the scan sends, that reads the gauges
//! and tells the observer. It owns the rate watch (is the first pass as
//! fast as asked, and if not, which stage holds it back) and the progress
//! events, so no sending thread spends its time on either.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::ScanConfig;
use super::live::Gauges;
use super::progress::{RateShortfall, RateWatch, Sample, ScanEvent};
use crate::scope::ScopeGate;

/// How often the gauges are read.
const TICK: Duration = Duration::from_millis(100);
/// How often a progress event goes out (when asked for).
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

pub(super) struct Monitor<'a> {
    pub config: &'a ScanConfig,
    pub gate: &'a ScopeGate,
    pub gauges: &'a Gauges,
    /// When sending began (after discovery).
    pub started: Instant,
    /// This machine's probes in the first pass.
    pub total: u64,
}

impl Monitor<'_> {
    /// Watch until `done`: the rate shortfall, when there was one (it is
    /// told to the observer once, as it is found).
    pub fn run(&self, done: &AtomicBool) -> Option<RateShortfall> {
        let _ = crate::net::privilege::drop_in_this_thread();
        let mut watch = RateWatch::new(self.gate.rate());
        let mut shortfall = None;
        let mut last_progress = Instant::now();
        while !done.load(Ordering::Relaxed) {
            std::thread::sleep(TICK);
            let g = self.gauges;
            if g.first_pass.load(Ordering::Relaxed) {
                let sample = Sample {
                    at: self.started.elapsed().as_nanos() as i64,
                    sent: g.probes(),
                    paced_ns: self.gate.paced_nanos(),
                    drops: g.drops(),
                };
                if let Some(short) = watch.sample(sample) {
                    self.config.tell(&ScanEvent::RateShortfall(short.clone()));
                    shortfall = Some(short);
                }
            }
            if self.config.progress && last_progress.elapsed() >= PROGRESS_EVERY {
                last_progress = Instant::now();
                self.config.tell(&self.progress());
            }
        }
        shortfall
    }

    /// Where the scan stands, as the progress line reads it.
    fn progress(&self) -> ScanEvent {
        let g = self.gauges;
        let probes = g.probes();
        let rate = probes as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
        let found = g.matched();
        let open = g.open.load(Ordering::Relaxed);
        ScanEvent::Progress {
            probes,
            total: self.total,
            rate,
            open,
            other_replies: found.saturating_sub(open),
            eta_seconds: self.total.saturating_sub(probes) as f64 / rate.max(1.0),
            pass: g.pass.load(Ordering::Relaxed),
        }
    }
}
