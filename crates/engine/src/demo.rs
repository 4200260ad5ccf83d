//! The demo workspace a fresh server creates, so it is useful out of the box: an account, an
//! inbox, the `demo` scripted bot and one administrator.

use crate::credentials::{generate_secret, hash_secret};
use crate::engine::{AccountCreated, Engine};
use crate::EngineError;
use switchboard_core::bot::{BotKind, ScriptedRules};
use switchboard_core::*;
use switchboard_store::NewAgent;

/// The rules of the shipped `demo` bot.
pub fn demo_rules() -> ScriptedRules {
    serde_json::from_str(include_str!("demo_bot.json")).expect("the shipped demo rules parse")
}

/// Everything a newcomer needs to try the demo workspace (written to `DIR/demo.json`).
#[derive(Clone, Debug)]
pub struct DemoWorkspace {
    pub account: AccountCreated,
    pub inbox: Inbox,
    pub bot: Bot,
    pub agent: Agent,
    pub agent_access_token: String,
    pub agent_pubsub_token: String,
}

impl Engine {
    /// Creates the demo workspace.
    pub async fn create_demo_workspace(&self) -> Result<DemoWorkspace, EngineError> {
        let account = self.create_account("Demo workspace").await?;
        let account_id = account.account.id;
        let bot = self
            .store()
            .create_bot(
                account_id,
                "demo",
                &BotKind::Scripted(Box::new(demo_rules())),
            )
            .await?;
        let inbox = self
            .store()
            .create_inbox(
                account_id,
                "Website",
                &generate_secret("inbox_"),
                Some(bot.id),
            )
            .await?;
        let agent_access_token = generate_secret("sb_agent_");
        let agent_pubsub_token = generate_secret("sb_pubsub_");
        let agent = self
            .store()
            .create_agent(
                NewAgent {
                    account_id,
                    name: "Demo Admin".into(),
                    email: "admin@demo.invalid".into(),
                    role: AgentRole::Administrator,
                    access_token_hash: hash_secret(&agent_access_token),
                    pubsub_token: agent_pubsub_token.clone(),
                },
                self.clock().now_ms(),
            )
            .await?;
        Ok(DemoWorkspace {
            account,
            inbox,
            bot,
            agent,
            agent_access_token,
            agent_pubsub_token,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_rules_drive_the_demo_page() {
        let rules = demo_rules();
        let dashboard = rules.answer("Show me the dashboard").unwrap();
        assert!(matches!(
            dashboard.iframe_commands[0],
            IframeCommand::Navigate { .. }
        ));
        assert!(dashboard
            .iframe_commands
            .iter()
            .any(|command| matches!(command, IframeCommand::Highlight { .. })));
        let pricing = rules.answer("What does it cost?").unwrap();
        assert!(pricing.lead_form.is_some());
        let fallback = rules.answer("qwerty").unwrap();
        assert!(fallback.iframe_commands.is_empty());
        assert!(!fallback.suggestions.is_empty());
    }
}
