//! Rate-limit rules (`spec/model.md`): how many events of each kind a principal may send, per
//! role. The engine enforces them; the numbers and who gets which live here.

use crate::principal::Principal;
use serde::{Deserialize, Serialize};

/// A rate: `count` events per `period_ms`, with bursts up to `count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    pub count: u32,
    pub period_ms: u64,
}

impl Rate {
    pub const fn per_minute(count: u32) -> Rate {
        Rate {
            count,
            period_ms: 60_000,
        }
    }

    pub const fn per_second(count: u32) -> Rate {
        Rate {
            count,
            period_ms: 1_000,
        }
    }
}

/// The kinds of events limited separately.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Bucket {
    Messages,
    Typing,
    /// Every event counts here, whatever its kind.
    All,
    /// A REST request that runs no command (a read, say), for roles whose requests are limited
    /// apart from their events ([`request_bucket`]).
    Requests,
}

/// One role's limits. `None` (a key left out of a settings file) means unlimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleLimits {
    pub messages: Option<Rate>,
    pub typing: Option<Rate>,
    pub all: Option<Rate>,
    /// REST requests that run no command, counted apart from events (agents' reads).
    pub requests: Option<Rate>,
}

impl RoleLimits {
    pub fn rate(&self, bucket: Bucket) -> Option<Rate> {
        match bucket {
            Bucket::Messages => self.messages,
            Bucket::Typing => self.typing,
            Bucket::All => self.all,
            Bucket::Requests => self.requests,
        }
    }

    pub const UNLIMITED: RoleLimits = RoleLimits {
        messages: None,
        typing: None,
        all: None,
        requests: None,
    };
}

/// The limits for every role. In a settings file a role left out keeps its default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateRules {
    pub visitor: RoleLimits,
    pub agent: RoleLimits,
    pub integration: RoleLimits,
}

impl Default for RateRules {
    fn default() -> Self {
        RateRules {
            visitor: RoleLimits {
                messages: Some(Rate::per_minute(10)),
                typing: Some(Rate::per_second(3)),
                all: Some(Rate::per_minute(50)),
                requests: None,
            },
            agent: RoleLimits {
                messages: Some(Rate::per_minute(60)),
                typing: Some(Rate::per_second(10)),
                all: Some(Rate::per_minute(600)),
                // A dashboard's reads, generously: they are not events, and 600 a minute
                // would starve a busy agent's screen; this keeps a leaked or looping agent
                // token from reading the store as fast as it can.
                requests: Some(Rate::per_minute(6_000)),
            },
            integration: RoleLimits {
                messages: None,
                typing: None,
                all: Some(Rate::per_minute(6_000)),
                requests: None,
            },
        }
    }
}

impl RateRules {
    /// No limits at all (benchmarks, tests of other things).
    pub const UNLIMITED: RateRules = RateRules {
        visitor: RoleLimits::UNLIMITED,
        agent: RoleLimits::UNLIMITED,
        integration: RoleLimits::UNLIMITED,
    };

    pub fn for_role(&self, role: LimitRole) -> &RoleLimits {
        match role {
            LimitRole::Visitor => &self.visitor,
            LimitRole::Agent => &self.agent,
            LimitRole::Integration => &self.integration,
        }
    }
}

/// Which role's limits apply to a principal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LimitRole {
    Visitor,
    Agent,
    Integration,
}

impl LimitRole {
    pub fn of(principal: &Principal) -> LimitRole {
        match principal {
            Principal::Contact { .. } | Principal::SessionVisitor { .. } => LimitRole::Visitor,
            Principal::Agent { .. } => LimitRole::Agent,
            Principal::Integration { .. } | Principal::Publishable { .. } => LimitRole::Integration,
        }
    }
}

/// Where a REST request of `principal` that runs no command (a read, an administrative
/// change) is counted: the account's API key, whose limit `model.md` states in requests,
/// against its all-events limit; an agent against its requests limit, apart from its events;
/// visitors and the publishable key nowhere (their reads are of their own conversation, and
/// the publishable key only starts sessions).
pub fn request_bucket(principal: &Principal) -> Option<Bucket> {
    match principal {
        Principal::Integration { .. } => Some(Bucket::All),
        Principal::Agent { .. } => Some(Bucket::Requests),
        Principal::Publishable { .. }
        | Principal::Contact { .. }
        | Principal::SessionVisitor { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AccountId, AgentId, AgentRole};

    #[test]
    fn requests_count_as_events_for_the_api_key_and_apart_for_agents() {
        let account_id = AccountId(1);
        assert_eq!(
            request_bucket(&Principal::Integration { account_id }),
            Some(Bucket::All)
        );
        assert_eq!(
            request_bucket(&Principal::Agent {
                account_id,
                agent_id: AgentId(2),
                role: AgentRole::Agent,
            }),
            Some(Bucket::Requests)
        );
        assert_eq!(
            request_bucket(&Principal::Publishable { account_id }),
            None,
            "the publishable key (it only starts sessions) is not limited by requests"
        );
        assert_eq!(
            RateRules::default().agent.requests,
            Some(Rate::per_minute(6_000))
        );
    }
}
