//! Enforces the core's rate rules per principal, across all of its connections, with GCRA
//! limiters from `governor` driven by tokio's clock (so paused-time tests control them).

use governor::clock::{Clock as GovernorClock, Reference};
use governor::state::keyed::HashMapStateStore;
use governor::{Quota, RateLimiter};
use std::num::NonZeroU32;
use std::time::{Duration, Instant};
use switchboard_core::limits::{Bucket, LimitRole, Rate, RateRules};
use switchboard_core::{DomainError, Principal};

/// governor's clock, read from tokio's so paused time moves it.
#[derive(Clone, Copy, Debug, Default)]
pub struct TokioClock;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct TokioInstant(Instant);

impl Reference for TokioInstant {
    fn duration_since(&self, earlier: Self) -> governor::nanos::Nanos {
        self.0.saturating_duration_since(earlier.0).into()
    }

    fn saturating_sub(&self, duration: governor::nanos::Nanos) -> Self {
        TokioInstant(
            self.0
                .checked_sub(Duration::from(duration))
                .unwrap_or(self.0),
        )
    }
}

impl std::ops::Add<governor::nanos::Nanos> for TokioInstant {
    type Output = TokioInstant;
    fn add(self, other: governor::nanos::Nanos) -> TokioInstant {
        TokioInstant(self.0 + Duration::from(other))
    }
}

impl GovernorClock for TokioClock {
    type Instant = TokioInstant;
    fn now(&self) -> TokioInstant {
        TokioInstant(tokio::time::Instant::now().into_std())
    }
}

/// Who a limit is counted for: the same visitor on two tabs shares one allowance.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum LimitKey {
    Contact(i64),
    Agent(i64),
    Account(i64),
}

fn key_of(principal: &Principal) -> LimitKey {
    match principal {
        Principal::Contact { contact_id, .. } | Principal::SessionVisitor { contact_id, .. } => {
            LimitKey::Contact(contact_id.0)
        }
        Principal::Agent { agent_id, .. } => LimitKey::Agent(agent_id.0),
        Principal::Integration { account_id } | Principal::Publishable { account_id } => {
            LimitKey::Account(account_id.0)
        }
    }
}

type Keyed = RateLimiter<
    LimitKey,
    HashMapStateStore<LimitKey>,
    TokioClock,
    governor::middleware::NoOpMiddleware<TokioInstant>,
>;

struct RoleLimiters {
    messages: Option<Keyed>,
    typing: Option<Keyed>,
    all: Option<Keyed>,
}

fn limiter(rate: Option<Rate>) -> Option<Keyed> {
    let rate = rate?;
    let count = NonZeroU32::new(rate.count)?;
    let period = Duration::from_millis(rate.period_ms) / rate.count;
    let quota = Quota::with_period(period)?.allow_burst(count);
    Some(RateLimiter::new(
        quota,
        HashMapStateStore::default(),
        TokioClock,
    ))
}

pub struct Limiter {
    visitor: RoleLimiters,
    agent: RoleLimiters,
    integration: RoleLimiters,
}

impl Limiter {
    pub fn new(rules: RateRules) -> Limiter {
        let role = |role: LimitRole| {
            let limits = rules.for_role(role);
            RoleLimiters {
                messages: limiter(limits.messages),
                typing: limiter(limits.typing),
                all: limiter(limits.all),
            }
        };
        Limiter {
            visitor: role(LimitRole::Visitor),
            agent: role(LimitRole::Agent),
            integration: role(LimitRole::Integration),
        }
    }

    /// Counts one event of `bucket` (and of the all-events bucket) for `principal`, or says how
    /// long to wait.
    pub fn check(&self, principal: &Principal, bucket: Option<Bucket>) -> Result<(), DomainError> {
        let role = match LimitRole::of(principal) {
            LimitRole::Visitor => &self.visitor,
            LimitRole::Agent => &self.agent,
            LimitRole::Integration => &self.integration,
        };
        let key = key_of(principal);
        let specific = match bucket {
            Some(Bucket::Messages) => role.messages.as_ref(),
            Some(Bucket::Typing) => role.typing.as_ref(),
            Some(Bucket::All) | None => None,
        };
        for limiter in [specific, role.all.as_ref()].into_iter().flatten() {
            if let Err(not_until) = limiter.check_key(&key) {
                let wait = not_until.wait_time_from(TokioClock.now());
                return Err(DomainError::RateLimited {
                    retry_after_ms: wait.as_millis().max(1) as u64,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_core::*;

    fn visitor(contact: i64) -> Principal {
        Principal::Contact {
            account_id: AccountId(1),
            contact_id: ContactId(contact),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn ten_messages_a_minute_then_a_retry_after() {
        let limiter = Limiter::new(RateRules::default());
        for _ in 0..10 {
            limiter.check(&visitor(1), Some(Bucket::Messages)).unwrap();
        }
        let Err(DomainError::RateLimited { retry_after_ms }) =
            limiter.check(&visitor(1), Some(Bucket::Messages))
        else {
            panic!("the eleventh message must be limited");
        };
        assert!((1..=6_000).contains(&retry_after_ms), "{retry_after_ms}");
        // Another visitor is unaffected.
        limiter.check(&visitor(2), Some(Bucket::Messages)).unwrap();
        tokio::time::advance(Duration::from_millis(retry_after_ms)).await;
        limiter.check(&visitor(1), Some(Bucket::Messages)).unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn typing_is_limited_per_second() {
        let limiter = Limiter::new(RateRules::default());
        for _ in 0..3 {
            limiter.check(&visitor(1), Some(Bucket::Typing)).unwrap();
        }
        assert!(limiter.check(&visitor(1), Some(Bucket::Typing)).is_err());
        tokio::time::advance(Duration::from_secs(1)).await;
        limiter.check(&visitor(1), Some(Bucket::Typing)).unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn unlimited_rules_never_refuse() {
        let limiter = Limiter::new(RateRules::UNLIMITED);
        for _ in 0..1_000 {
            limiter.check(&visitor(1), Some(Bucket::Messages)).unwrap();
        }
    }
}
