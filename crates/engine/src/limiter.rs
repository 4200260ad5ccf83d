//! Enforces the core's rate rules per principal, across all of its connections, with GCRA
//! limiters from `governor` driven by tokio's clock (so paused-time tests control them) plus an
//! offset that integration tests move forward through [`Limiter::advance`].
//!
//! Accounts may have rules of their own; the rest share the defaults. Allowances of principals
//! that have been quiet for a while are forgotten by [`Limiter::forget_idle`], so the maps do not
//! grow with every visitor ever seen.

use governor::clock::{Clock as GovernorClock, Reference};
use governor::state::keyed::HashMapStateStore;
use governor::{Quota, RateLimiter};
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchboard_core::limits::{Bucket, LimitRole, Rate, RateRules};
use switchboard_core::{AccountId, DomainError, Principal};

/// governor's clock: tokio's clock (so paused time moves it) plus a forward-only offset.
#[derive(Clone, Debug, Default)]
pub struct TokioClock {
    offset_nanos: Arc<AtomicU64>,
}

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
        let offset = Duration::from_nanos(self.offset_nanos.load(Ordering::Relaxed));
        TokioInstant(tokio::time::Instant::now().into_std() + offset)
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
    requests: Option<Keyed>,
}

impl RoleLimiters {
    fn each(&self) -> impl Iterator<Item = &Keyed> {
        [&self.messages, &self.typing, &self.all, &self.requests]
            .into_iter()
            .flatten()
    }
}

fn limiter(rate: Option<Rate>, clock: &TokioClock) -> Option<Keyed> {
    let rate = rate?;
    let count = NonZeroU32::new(rate.count)?;
    let period = Duration::from_millis(rate.period_ms) / rate.count;
    let quota = Quota::with_period(period)?.allow_burst(count);
    Some(RateLimiter::new(
        quota,
        HashMapStateStore::default(),
        clock.clone(),
    ))
}

/// One set of rules made into limiters, a set of limiters per role.
struct RuleSet {
    visitor: RoleLimiters,
    agent: RoleLimiters,
    integration: RoleLimiters,
}

impl RuleSet {
    fn new(rules: &RateRules, clock: &TokioClock) -> RuleSet {
        let role = |role: LimitRole| {
            let limits = rules.for_role(role);
            RoleLimiters {
                messages: limiter(limits.messages, clock),
                typing: limiter(limits.typing, clock),
                all: limiter(limits.all, clock),
                requests: limiter(limits.requests, clock),
            }
        };
        RuleSet {
            visitor: role(LimitRole::Visitor),
            agent: role(LimitRole::Agent),
            integration: role(LimitRole::Integration),
        }
    }

    fn role(&self, role: LimitRole) -> &RoleLimiters {
        match role {
            LimitRole::Visitor => &self.visitor,
            LimitRole::Agent => &self.agent,
            LimitRole::Integration => &self.integration,
        }
    }

    fn each(&self) -> impl Iterator<Item = &Keyed> {
        [&self.visitor, &self.agent, &self.integration]
            .into_iter()
            .flat_map(RoleLimiters::each)
    }
}

pub struct Limiter {
    clock: TokioClock,
    defaults: RuleSet,
    /// Accounts with rules of their own.
    accounts: HashMap<AccountId, RuleSet>,
}

impl Limiter {
    /// Limits by `rules`, except for the accounts in `per_account`, which have their own.
    pub fn new(rules: RateRules, per_account: &HashMap<AccountId, RateRules>) -> Limiter {
        let clock = TokioClock::default();
        Limiter {
            defaults: RuleSet::new(&rules, &clock),
            accounts: per_account
                .iter()
                .map(|(account, rules)| (*account, RuleSet::new(rules, &clock)))
                .collect(),
            clock,
        }
    }

    /// Counts one event of `bucket` (and of the all-events bucket) for `principal`, or says how
    /// long to wait.
    pub fn check(&self, principal: &Principal, bucket: Option<Bucket>) -> Result<(), DomainError> {
        let rules = self
            .accounts
            .get(&principal.account_id())
            .unwrap_or(&self.defaults);
        let role = rules.role(LimitRole::of(principal));
        let key = key_of(principal);
        // An event counts in its kind's bucket and in all events; a request that is not an
        // event only in requests.
        let counted = match bucket {
            Some(Bucket::Messages) => [role.messages.as_ref(), role.all.as_ref()],
            Some(Bucket::Typing) => [role.typing.as_ref(), role.all.as_ref()],
            Some(Bucket::All) | None => [None, role.all.as_ref()],
            Some(Bucket::Requests) => [role.requests.as_ref(), None],
        };
        for limiter in counted.into_iter().flatten() {
            if let Err(not_until) = limiter.check_key(&key) {
                let wait = not_until.wait_time_from(self.clock.now());
                // Rounded up: a client that waits exactly this long is let through.
                let retry_after_ms = wait.as_nanos().div_ceil(1_000_000).max(1) as u64;
                return Err(DomainError::RateLimited { retry_after_ms });
            }
        }
        Ok(())
    }

    /// Forgets the allowances of principals whose buckets have refilled: they would be allowed
    /// their full burst anyway, so keeping them only costs memory.
    pub fn forget_idle(&self) {
        for limiter in self
            .defaults
            .each()
            .chain(self.accounts.values().flat_map(RuleSet::each))
        {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    /// How many principals have an allowance in use (for metrics and tests).
    pub fn tracked(&self) -> usize {
        self.defaults
            .each()
            .chain(self.accounts.values().flat_map(RuleSet::each))
            .map(|limiter| limiter.len())
            .sum()
    }

    /// Moves the limiter's clock forward by `by` (never back). Integration tests use it to
    /// step through a minute without waiting for one; nothing else should.
    pub fn advance(&self, by: Duration) {
        self.clock
            .offset_nanos
            .fetch_add(by.as_nanos() as u64, Ordering::Relaxed);
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
        let limiter = Limiter::new(RateRules::default(), &HashMap::new());
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
        let limiter = Limiter::new(RateRules::default(), &HashMap::new());
        for _ in 0..3 {
            limiter.check(&visitor(1), Some(Bucket::Typing)).unwrap();
        }
        assert!(limiter.check(&visitor(1), Some(Bucket::Typing)).is_err());
        tokio::time::advance(Duration::from_secs(1)).await;
        limiter.check(&visitor(1), Some(Bucket::Typing)).unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn an_account_with_rules_of_its_own_is_limited_by_them() {
        let mut generous = RateRules::default();
        generous.visitor.messages = Some(Rate::per_minute(100));
        let limiter = Limiter::new(
            RateRules::default(),
            &HashMap::from([(AccountId(2), generous)]),
        );
        let elsewhere = Principal::Contact {
            account_id: AccountId(2),
            contact_id: ContactId(1),
        };
        for _ in 0..50 {
            limiter.check(&elsewhere, Some(Bucket::Messages)).unwrap();
        }
        // Its all-events rule (the default's 50 a minute) still holds.
        assert!(limiter.check(&elsewhere, Some(Bucket::Messages)).is_err());
        // Account 1 keeps the defaults.
        for _ in 0..10 {
            limiter.check(&visitor(1), Some(Bucket::Messages)).unwrap();
        }
        assert!(limiter.check(&visitor(1), Some(Bucket::Messages)).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn advancing_the_clock_refills_and_quiet_principals_are_forgotten() {
        let limiter = Limiter::new(RateRules::default(), &HashMap::new());
        for _ in 0..10 {
            limiter.check(&visitor(1), Some(Bucket::Messages)).unwrap();
        }
        assert!(limiter.check(&visitor(1), Some(Bucket::Messages)).is_err());
        assert!(limiter.tracked() > 0);
        limiter.advance(Duration::from_secs(60));
        for _ in 0..10 {
            limiter.check(&visitor(1), Some(Bucket::Messages)).unwrap();
        }
        limiter.advance(Duration::from_secs(120));
        limiter.forget_idle();
        assert_eq!(
            limiter.tracked(),
            0,
            "two quiet minutes later nothing is owed"
        );
        for _ in 0..10 {
            limiter.check(&visitor(1), Some(Bucket::Messages)).unwrap();
        }
    }

    #[tokio::test(start_paused = true)]
    async fn unlimited_rules_never_refuse() {
        let limiter = Limiter::new(RateRules::UNLIMITED, &HashMap::new());
        for _ in 0..1_000 {
            limiter.check(&visitor(1), Some(Bucket::Messages)).unwrap();
        }
    }
}
