//! The engine's settings, with the defaults a single node starts with.

use std::collections::HashMap;
use std::time::Duration;
use switchboard_core::limits::RateRules;
use switchboard_core::AccountId;

#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// How long a demo session (and its token) lives.
    pub session_ttl: Duration,
    /// A connection that sends nothing for this long is closed.
    pub heartbeat_timeout: Duration,
    /// A typing indicator not refreshed for this long is turned off by the server.
    pub typing_timeout: Duration,
    /// Frames that may wait for a slow connection before it is cut off.
    pub outbound_queue: usize,
    /// The largest message text, in bytes.
    pub max_message_bytes: usize,
    /// Messages fetched from the store per replay page.
    pub replay_page: u32,
    pub rate_rules: RateRules,
    /// Accounts whose principals are limited by rules of their own instead of `rate_rules`.
    pub account_rate_rules: HashMap<AccountId, RateRules>,
    /// Webhook bots created without their own settings use these.
    pub webhook_timeout: Duration,
    pub webhook_max_retries: u32,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            session_ttl: Duration::from_secs(30 * 60),
            heartbeat_timeout: Duration::from_secs(90),
            typing_timeout: Duration::from_secs(30),
            outbound_queue: 1024,
            max_message_bytes: switchboard_core::message::DEFAULT_MAX_MESSAGE_BYTES,
            replay_page: 500,
            rate_rules: RateRules::default(),
            account_rate_rules: HashMap::new(),
            webhook_timeout: Duration::from_secs(10),
            webhook_max_retries: 2,
        }
    }
}
