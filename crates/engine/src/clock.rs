//! The engine's clock: wall time in Unix milliseconds, advanced by tokio's clock so that tests
//! with paused time move session expiry, heartbeats and rate limits together.

use switchboard_core::UnixMillis;
use tokio::time::Instant;

#[derive(Clone, Copy, Debug)]
pub struct Clock {
    base_unix_ms: UnixMillis,
    base_instant: Instant,
}

impl Clock {
    /// A clock that starts at the system's wall time now.
    pub fn system() -> Clock {
        let base_unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_millis() as UnixMillis)
            .unwrap_or(0);
        Clock {
            base_unix_ms,
            base_instant: Instant::now(),
        }
    }

    pub fn now_ms(&self) -> UnixMillis {
        self.base_unix_ms + self.base_instant.elapsed().as_millis() as UnixMillis
    }

    /// The tokio instant at which wall time reaches `at`.
    pub fn instant_at(&self, at: UnixMillis) -> Instant {
        let from_base = (at - self.base_unix_ms).max(0) as u64;
        self.base_instant + std::time::Duration::from_millis(from_base)
    }
}
