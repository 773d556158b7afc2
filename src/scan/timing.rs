//! How long to wait for a reply, from the round trips measured so far.
//!
//! The estimate is the one TCP (RFC 6298) and nmap use: a smoothed round
//! trip and its mean deviation, the timeout being `srtt + 4 × rttvar`,
//! never less than the slowest round trip actually seen. A fixed multiple
//! of the slowest round trip (what sonde used before) waits eight times a
//! queueing peak: at 500,000 pps on a veth the replies' round trips reach
//! 50 ms, and the cooldown waited 0.4 s for answers that were all in.
//! Pure: the receive thread feeds it and publishes [`RttEstimator::timeout`].

use std::time::Duration;

/// A running round-trip estimate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RttEstimator {
    /// Smoothed round trip (µs), 0 before the first sample.
    srtt_us: u64,
    /// Mean deviation (µs).
    rttvar_us: u64,
    /// The slowest round trip seen (µs).
    max_us: u64,
    /// Samples seen.
    samples: u64,
}

impl RttEstimator {
    /// A new estimate, with nothing measured.
    pub fn new() -> RttEstimator {
        RttEstimator::default()
    }

    /// Take one measured round trip into account.
    pub fn observe(&mut self, rtt: Duration) {
        let r = rtt.as_micros().min(u128::from(u64::MAX)) as u64;
        if self.samples == 0 {
            // RFC 6298 2.2: the first measurement sets srtt, rttvar = r/2.
            self.srtt_us = r;
            self.rttvar_us = r / 2;
        } else {
            // 2.3: rttvar = 3/4 rttvar + 1/4 |srtt - r|; srtt = 7/8 srtt + 1/8 r.
            // In u128: no sum here can overflow.
            let delta = u128::from(self.srtt_us.abs_diff(r));
            self.rttvar_us = ((3 * u128::from(self.rttvar_us) + delta) / 4) as u64;
            self.srtt_us = ((7 * u128::from(self.srtt_us) + u128::from(r)) / 8) as u64;
        }
        self.max_us = self.max_us.max(r);
        self.samples += 1;
    }

    /// The round trips measured so far.
    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// The slowest round trip seen.
    pub fn max(&self) -> Duration {
        Duration::from_micros(self.max_us)
    }

    /// How long a reply may take: `srtt + 4 × rttvar`, and at least the
    /// slowest round trip seen; `None` before the first measurement.
    pub fn timeout(&self) -> Option<Duration> {
        (self.samples > 0).then(|| {
            Duration::from_micros(
                self.srtt_us
                    .saturating_add(self.rttvar_us.saturating_mul(4))
                    .max(self.max_us),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn nothing_measured_gives_no_timeout() {
        assert_eq!(RttEstimator::new().timeout(), None);
    }

    #[test]
    fn the_first_sample_sets_srtt_and_half_of_it_as_deviation() {
        let mut e = RttEstimator::new();
        e.observe(ms(10));
        // 10 + 4 × 5 ms.
        assert_eq!(e.timeout(), Some(ms(30)));
    }

    #[test]
    fn steady_round_trips_shrink_the_timeout_towards_them() {
        let mut e = RttEstimator::new();
        for _ in 0..200 {
            e.observe(ms(2));
        }
        let t = e.timeout().unwrap();
        assert!(t >= ms(2) && t < Duration::from_micros(2_100), "{t:?}");
    }

    #[test]
    fn the_timeout_never_falls_below_the_slowest_round_trip_seen() {
        let mut e = RttEstimator::new();
        e.observe(ms(50));
        for _ in 0..500 {
            e.observe(ms(1));
        }
        assert_eq!(e.max(), ms(50));
        assert_eq!(e.timeout(), Some(ms(50)));
    }

    #[test]
    fn a_queueing_peak_widens_the_timeout_by_its_deviation() {
        let mut e = RttEstimator::new();
        for _ in 0..100 {
            e.observe(ms(1));
        }
        let calm = e.timeout().unwrap();
        for r in [20, 40, 30, 25] {
            e.observe(ms(r));
        }
        let busy = e.timeout().unwrap();
        assert!(busy > calm && busy >= ms(40), "{calm:?} -> {busy:?}");
        assert_eq!(e.samples(), 104);
    }

    #[test]
    fn huge_round_trips_saturate_instead_of_overflowing() {
        let mut e = RttEstimator::new();
        e.observe(Duration::MAX);
        e.observe(Duration::MAX);
        assert!(e.timeout().is_some());
    }
}
