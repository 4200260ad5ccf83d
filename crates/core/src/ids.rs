//! Typed identifiers for every record, so an agent id can never be passed where a conversation
//! id is expected.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! integer_id {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {$(
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    )*};
}

integer_id! {
    /// A tenant ("workspace").
    AccountId,
    /// A human agent (a "user" in the ActionCable dialect).
    AgentId,
    /// A bot agent.
    BotId,
    /// A website widget.
    InboxId,
    /// A visitor.
    ContactId,
    /// A conversation ("thread").
    ConversationId,
    /// A stored message.
    MessageId,
    /// A team of agents, for routing.
    TeamId,
    /// A notification to one agent.
    NotificationId,
    /// A live transcript (of a call or an audio conversation).
    TranscriptId,
}

/// A live demo session. Opaque and unguessable, as it appears in URLs.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SessionId(pub String);

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A message's position in its conversation: 1, 2, 3, ... with no gap.
pub type Seq = i64;
