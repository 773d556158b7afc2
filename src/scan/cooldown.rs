//! The cooldown: after the last probe, wait for late replies. It ends at
//! `--wait`, when every probe sent has its result (only duplicates could
//! come), or (adaptive) once replies have stopped for twice the reply
//! timeout the round trips show.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::live::Gauges;

/// The shortest quiet that ends an adaptive cooldown (nmap -T5's shortest
/// reply timeout).
pub(super) const MIN_QUIET: Duration = Duration::from_millis(50);

/// Wait out the cooldown; how long it lasted. `probes`: first-pass probes
/// sent; `sent_end`: when the last probe left (ns since the epoch, 0: none
/// was sent). Quiet is counted from it, since a pass's pause has already
/// waited for its replies.
pub(super) fn wait(
    gauges: &Gauges,
    wait: Duration,
    adaptive: bool,
    probes: u64,
    sent_end: i64,
) -> Duration {
    let started = Instant::now();
    let until = started + wait;
    let sent_end = match sent_end {
        0 => crate::clock::now_nanos(),
        t => t,
    };
    while Instant::now() < until && gauges.matched() < probes {
        if adaptive
            && quiet_long_enough(
                gauges.reply_timeout_us(),
                sent_end.max(gauges.last_result_ns.load(Ordering::Relaxed)),
                crate::clock::now_nanos(),
                wait,
            )
        {
            break;
        }
        std::thread::sleep(
            Duration::from_millis(10).min(until.saturating_duration_since(Instant::now())),
        );
    }
    started.elapsed()
}

/// The adaptive cooldown's test: no result for twice the reply timeout
/// (see [`super::timing`]; at least [`MIN_QUIET`], at most `wait`) since
/// `last` (the last probe or the last result, whichever is later). Before
/// any round trip is known (`timeout_us` 0), never: the full `wait`.
fn quiet_long_enough(timeout_us: u64, last: i64, now: i64, wait: Duration) -> bool {
    if timeout_us == 0 {
        return false;
    }
    let quiet = (Duration::from_micros(timeout_us) * 2).clamp(MIN_QUIET, wait.max(MIN_QUIET));
    now.saturating_sub(last) >= quiet.as_nanos() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i64 = 1_000_000;

    #[test]
    fn quiet_is_twice_the_reply_timeout_within_its_bounds() {
        let wait = Duration::from_secs(2);
        // No round trip yet: never quiet.
        assert!(!quiet_long_enough(0, 0, 10_000 * MS, wait));
        // 100 ms timeout: 200 ms of quiet.
        assert!(!quiet_long_enough(100_000, 0, 199 * MS, wait));
        assert!(quiet_long_enough(100_000, 0, 200 * MS, wait));
        // A LAN's tiny timeout still waits MIN_QUIET.
        assert!(!quiet_long_enough(100, 0, 49 * MS, wait));
        assert!(quiet_long_enough(100, 0, 50 * MS, wait));
        // A slow path waits no longer than --wait.
        assert!(quiet_long_enough(5_000_000, 0, 2_000 * MS, wait));
    }

    #[test]
    fn the_cooldown_ends_when_every_probe_has_its_result() {
        let g = Gauges::new(1);
        g.matched.store(10, Ordering::Relaxed);
        let took = wait(&g, Duration::from_secs(5), false, 10, 0);
        assert!(took < Duration::from_secs(1), "{took:?}");
    }
}
