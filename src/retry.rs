//! Retry delays: capped exponential backoff with jitter. One implementation for
//! every retry loop in the node — pushes, the court's poller (per peer and per
//! bundle) and intake (per item) — so that no failure repeats in a hot loop and
//! many nodes do not retry in step.

use std::time::Duration;

/// The delay before retry number `attempt + 1`: `base × 2^attempt`, capped at
/// `cap`, without jitter.
pub fn exponential(attempt: u32, base: Duration, cap: Duration) -> Duration {
    base.saturating_mul(1u32 << attempt.min(20)).min(cap)
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
        let d = delay(2, s(1), s(60));
        assert!(d >= s(4) && d <= s(5), "{d:?}");
    }
}
