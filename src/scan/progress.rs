//! Rate honesty: is the scan sending at the rate asked for, and if not,
//! which stage holds it back. Pure: fed samples of the counters with their
//! times, so it is tested without a network.

pub use crate::results::{LimitingStage, RateShortfall};
use std::collections::VecDeque;

/// How long the achieved rate must stay below 90% of the requested one
/// before it is reported.
pub const SHORTFALL_AFTER_NS: i64 = 5_000_000_000;
/// The window the achieved rate is measured over.
pub const WINDOW_NS: i64 = 1_000_000_000;

/// What a running scan tells its caller: the library never writes to a
/// terminal itself; the command line draws these, a library caller logs
/// them or ignores them.
#[derive(Clone, Debug, PartialEq)]
pub enum ScanEvent {
    /// Once a second while sending (when `ScanConfig::progress`).
    Progress {
        /// Probes sent so far (first pass), and the whole plan's.
        probes: u64,
        total: u64,
        /// Probes per second since sending began.
        rate: f64,
        open: u64,
        /// Results other than open ports.
        other_replies: u64,
        /// Seconds left at this rate.
        eta_seconds: f64,
        /// 0 for the first pass, then each retry pass.
        pass: u32,
    },
    /// The rate stayed below 90% of the one asked for.
    RateShortfall(RateShortfall),
    /// Sending is over; the cooldown waits up to this many seconds.
    SendingDone { probes: u64, wait_seconds: f64 },
    /// Retry pass `pass` is added past `--retries`: the pass before found
    /// `new_answers` (the link loses packets).
    PassAdded { pass: u32, new_answers: u64 },
    /// Something the person running the scan should read (a warning, a
    /// hint), one line, without the `sonde: ` prefix.
    Note(String),
}

/// Who receives a scan's [`ScanEvent`]s; called from the scan's threads.
pub trait Observer: Send + Sync {
    fn event(&self, event: &ScanEvent);
}

/// One reading of the counters.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sample {
    /// Nanoseconds on any monotonic clock.
    pub at: i64,
    /// Probes sent so far (first pass).
    pub sent: u64,
    /// `ScopeGate::paced_nanos` so far.
    pub paced_ns: u64,
    /// Kernel drops on the receive side so far.
    pub drops: u64,
}

/// Watches samples; reports a shortfall once.
pub struct RateWatch {
    requested: f64,
    started: Option<i64>,
    window: VecDeque<Sample>,
    below_since: Option<i64>,
    reported: bool,
}

impl RateWatch {
    pub fn new(requested: f64) -> RateWatch {
        RateWatch {
            requested,
            started: None,
            window: VecDeque::new(),
            below_since: None,
            reported: false,
        }
    }

    /// The achieved rate over the last window, once a window is full.
    pub fn achieved(&self) -> Option<f64> {
        let (first, last) = (self.window.front()?, self.window.back()?);
        let span = last.at - first.at;
        (span >= WINDOW_NS).then(|| (last.sent - first.sent) as f64 * 1e9 / span as f64)
    }

    /// Take a sample; returns the shortfall the first time it is found.
    pub fn sample(&mut self, s: Sample) -> Option<RateShortfall> {
        let started = *self.started.get_or_insert(s.at);
        self.window.push_back(s);
        while self
            .window
            .get(1)
            .is_some_and(|second| s.at - second.at >= WINDOW_NS)
        {
            self.window.pop_front();
        }
        let achieved = self.achieved()?;
        if achieved >= 0.9 * self.requested {
            self.below_since = None;
            return None;
        }
        let since = *self.below_since.get_or_insert(s.at);
        if self.reported || s.at - since < SHORTFALL_AFTER_NS {
            return None;
        }
        self.reported = true;
        let first = self.window.front().expect("a full window");
        let span = (s.at - first.at) as f64;
        let stage = if s.drops > first.drops {
            LimitingStage::ReceiverDrops
        } else if ((s.paced_ns - first.paced_ns) as f64) < 0.05 * span {
            LimitingStage::SenderCpu
        } else {
            LimitingStage::Pacing
        };
        Some(RateShortfall {
            requested: self.requested,
            achieved,
            stage,
            after_seconds: (s.at - started) as f64 / 1e9,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Samples every 100 ms at `pps`, the gate waiting `paced` of the time.
    fn feed(
        w: &mut RateWatch,
        from: i64,
        secs: i64,
        pps: u64,
        paced: f64,
        drops: u64,
    ) -> Vec<RateShortfall> {
        let mut out = Vec::new();
        for i in 0..=secs * 10 {
            let at = from + i * 100_000_000;
            let s = Sample {
                at,
                sent: (at as u64 / 1_000_000) * pps / 1000,
                paced_ns: (at as f64 * paced) as u64,
                drops: drops * (at as u64 / 1_000_000_000),
            };
            out.extend(w.sample(s));
        }
        out
    }

    #[test]
    fn on_rate_nothing_is_reported() {
        let mut w = RateWatch::new(100_000.0);
        assert!(feed(&mut w, 0, 30, 100_000, 0.5, 0).is_empty());
        assert!((w.achieved().unwrap() - 100_000.0).abs() < 1_000.0);
    }

    #[test]
    fn five_seconds_below_ninety_percent_is_reported_once_with_its_stage() {
        let mut w = RateWatch::new(100_000.0);
        let got = feed(&mut w, 0, 20, 60_000, 0.0, 0);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].stage, LimitingStage::SenderCpu);
        assert!((got[0].achieved - 60_000.0).abs() < 1_000.0);
        assert!(
            (5.9..=6.2).contains(&got[0].after_seconds),
            "{}",
            got[0].after_seconds
        );

        let mut w = RateWatch::new(100_000.0);
        assert_eq!(
            feed(&mut w, 0, 20, 60_000, 0.5, 3)[0].stage,
            LimitingStage::ReceiverDrops
        );
        let mut w = RateWatch::new(100_000.0);
        assert_eq!(
            feed(&mut w, 0, 20, 60_000, 0.5, 0)[0].stage,
            LimitingStage::Pacing
        );
    }

    #[test]
    fn a_short_dip_is_not_a_shortfall() {
        let mut w = RateWatch::new(1_000.0);
        assert!(feed(&mut w, 0, 3, 500, 0.0, 0).is_empty());
        assert!(feed(&mut w, 3_100_000_000, 10, 1_000, 0.5, 0).is_empty());
    }
}
