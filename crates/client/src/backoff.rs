//! Reconnection delays: exponential from a base, capped, with full jitter so that many clients
//! dropped at once do not come back at once.

use std::time::Duration;

#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
    /// Give up after this many failed attempts in a row (0: never).
    pub max_attempts: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_millis(200),
            max: Duration::from_secs(10),
            max_attempts: 0,
        }
    }
}

impl Backoff {
    /// The delay before attempt `attempt` (1 for the first retry): a random point between half
    /// and all of `base * 2^(attempt-1)`, capped at `max`.
    pub fn delay(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(16);
        let ceiling = self.base.saturating_mul(1 << exponent).min(self.max);
        let mut bytes = [0u8; 4];
        let fraction = match getrandom::fill(&mut bytes) {
            Ok(()) => f64::from(u32::from_le_bytes(bytes)) / f64::from(u32::MAX),
            Err(_) => 0.5,
        };
        ceiling.mul_f64(0.5 + 0.5 * fraction)
    }

    pub fn gives_up_after(&self, attempt: u32) -> bool {
        self.max_attempts != 0 && attempt > self.max_attempts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_are_capped_and_jittered() {
        let backoff = Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_secs(1),
            max_attempts: 3,
        };
        for attempt in 1..=10 {
            let delay = backoff.delay(attempt);
            let ceiling = Duration::from_millis(100 * (1 << (attempt - 1).min(16)))
                .min(Duration::from_secs(1));
            assert!(
                delay >= ceiling / 2 && delay <= ceiling,
                "{attempt}: {delay:?}"
            );
        }
        assert!(!backoff.gives_up_after(3));
        assert!(backoff.gives_up_after(4));
        assert!(!Backoff::default().gives_up_after(1_000));
    }
}
