//! Retry delays: capped exponential backoff with jitter. One implementation for
//! every retry loop in the node — pushes (1 s doubling to 1 h), the court's
//! poller (per peer and per bundle), intake (per item) and the daemon's task
//! supervisor — so that no failure repeats in a hot loop and many nodes do not
//! retry in step.
//!
//! The schedule is `backon`'s [`ExponentialBuilder`] (factor 2, from `base`,
//! capped at `cap`). `backon` is the maintained choice: `backoff` is
//! unmaintained (RUSTSEC-2025-0012) and `exponential-backoff` 2 only iterates
//! too. Every caller keeps its attempt count in its own record (a delivery, an
//! intake item, a peer), not a live iterator, so [`exponential`] asks the
//! schedule for the delay of attempt `n`. The jitter stays ours: `backon`'s
//! adds up to 100 % of the delay, which would double the documented caps (a
//! push is retried at most an hour after the last, plus up to a quarter).

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

/// Past this many doublings any base reaches any cap (2^64 ns is 584 years),
/// so later attempts need not be walked to.
const LAST_DOUBLING: u32 = 64;

/// The delay before retry number `attempt + 1`: `base × 2^attempt`, capped at
/// `cap`, without jitter.
pub fn exponential(attempt: u32, base: Duration, cap: Duration) -> Duration {
    ExponentialBuilder::new()
        .with_min_delay(base)
        .with_max_delay(cap)
        .with_factor(2.0)
        .without_max_times()
        .build()
        .nth(attempt.min(LAST_DOUBLING) as usize)
        .unwrap_or(cap)
        .min(cap)
}

/// Up to 25 % random jitter on top of `d` (never below `d`).
pub fn with_jitter(d: Duration) -> Duration {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 4];
    let _ = ring::rand::SystemRandom::new().fill(&mut b);
    d + d.mul_f64(f64::from(u32::from_le_bytes(b)) / f64::from(u32::MAX) * 0.25)
}

/// [`exponential`] plus [`with_jitter`].
pub fn delay(attempt: u32, base: Duration, cap: Duration) -> Duration {
    with_jitter(exponential(attempt, base, cap))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_base_and_stops_at_the_cap() {
        let s = Duration::from_secs;
        assert_eq!(exponential(0, s(1), s(60)), s(1));
        assert_eq!(exponential(3, s(1), s(60)), s(8));
        assert_eq!(exponential(6, s(1), s(60)), s(60));
        assert_eq!(exponential(u32::MAX, s(1), s(60)), s(60));
        // Pushes: 1 s doubling, capped at an hour.
        let pushes: Vec<u64> = (0..14)
            .map(|n| exponential(n, s(1), s(3600)).as_secs())
            .collect();
        assert_eq!(
            pushes,
            [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 3600, 3600]
        );
        // A base above the cap is capped too.
        assert_eq!(exponential(0, s(10), s(5)), s(5));
        // Sub-second bases (intake's 100 ms for an item still being written).
        let ms = |n: u32| exponential(n, Duration::from_millis(100), s(1)).as_millis();
        assert_eq!(
            [ms(0), ms(1), ms(2), ms(3), ms(4)],
            [100, 200, 400, 800, 1000]
        );
        let d = delay(2, s(1), s(60));
        assert!(d >= s(4) && d <= s(5), "{d:?}");
    }
}
