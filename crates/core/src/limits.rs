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
}

/// One role's limits. `None` (a key left out of a settings file) means unlimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleLimits {
    pub messages: Option<Rate>,
    pub typing: Option<Rate>,
    pub all: Option<Rate>,
}

impl RoleLimits {
    pub fn rate(&self, bucket: Bucket) -> Option<Rate> {
        match bucket {
            Bucket::Messages => self.messages,
            Bucket::Typing => self.typing,
            Bucket::All => self.all,
        }
    }

    pub const UNLIMITED: RoleLimits = RoleLimits {
        messages: None,
        typing: None,
        all: None,
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
            },
            agent: RoleLimits {
                messages: Some(Rate::per_minute(60)),
                typing: Some(Rate::per_second(10)),
                all: Some(Rate::per_minute(600)),
            },
            integration: RoleLimits {
                messages: None,
                typing: None,
                all: Some(Rate::per_minute(6_000)),
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

/// Whether every request `principal` makes counts against its all-events limit, not only the
/// events it sends: the account's API key, whose limit `model.md` states in requests.
pub fn counts_requests(principal: &Principal) -> bool {
    matches!(principal, Principal::Integration { .. })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AccountId, AgentId, AgentRole};

    #[test]
    fn only_the_api_key_is_limited_by_requests() {
        let account_id = AccountId(1);
        assert!(counts_requests(&Principal::Integration { account_id }));
        assert!(
            !counts_requests(&Principal::Publishable { account_id }),
            "the publishable key (it only starts sessions) is not"
        );
        assert!(!counts_requests(&Principal::Agent {
            account_id,
            agent_id: AgentId(2),
            role: AgentRole::Agent,
        }));
    }
}
