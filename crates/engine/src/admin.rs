//! Administration of an account (with its API key, or by an administrator agent): agents and
//! their tokens, inboxes and their members, teams, bots, and key rotation.

use crate::credentials::{generate_secret, hash_secret};
use crate::engine::Engine;
use crate::EngineError;
use switchboard_core::bot::BotKind;
use switchboard_core::*;
use switchboard_store::NewAgent;

/// A new agent and its credentials, shown once.
#[derive(Clone, Debug)]
pub struct AgentCreated {
    pub agent: Agent,
    pub access_token: String,
    pub pubsub_token: String,
}

/// A webhook bot as asked for: what is not given takes the engine's defaults.
#[derive(Clone, Debug, Default)]
pub struct NewWebhook {
    pub url: String,
    pub secret: Option<String>,
    pub timeout_ms: Option<u64>,
    pub max_retries: Option<u32>,
}

/// The account a principal may administer.
pub(crate) fn administered_account(principal: &Principal) -> Result<AccountId, EngineError> {
    match principal {
        Principal::Integration { account_id } => Ok(*account_id),
        Principal::Agent {
            account_id,
            role: AgentRole::Administrator,
            ..
        } => Ok(*account_id),
        _ => Err(DomainError::Forbidden.into()),
    }
}

fn check_name(field: &'static str, name: &str) -> Result<String, EngineError> {
    let name = name.trim();
    if name.is_empty() || name.len() > 200 {
        return Err(DomainError::InvalidField {
            field,
            reason: "must be 1 to 200 bytes",
        }
        .into());
    }
    Ok(name.to_string())
}

impl Engine {
    pub async fn create_agent(
        &self,
        principal: &Principal,
        name: &str,
        email: &str,
        role: AgentRole,
    ) -> Result<AgentCreated, EngineError> {
        let account_id = administered_account(principal)?;
        let name = check_name("name", name)?;
        let email = email.trim();
        if !email.contains('@') || email.len() > 320 {
            return Err(DomainError::InvalidField {
                field: "email",
                reason: "must be an email address",
            }
            .into());
        }
        let access_token = generate_secret("sb_agent_");
        let pubsub_token = generate_secret("sb_pubsub_");
        let agent = self
            .store()
            .create_agent(
                NewAgent {
                    account_id,
                    name,
                    email: email.to_string(),
                    role,
                    access_token_hash: hash_secret(&access_token),
                    pubsub_token: pubsub_token.clone(),
                },
                self.clock().now_ms(),
            )
            .await?;
        Ok(AgentCreated {
            agent,
            access_token,
            pubsub_token,
        })
    }

    pub async fn list_agents(&self, principal: &Principal) -> Result<Vec<Agent>, EngineError> {
        let account_id = match principal {
            Principal::Integration { account_id } | Principal::Agent { account_id, .. } => {
                *account_id
            }
            _ => return Err(DomainError::Forbidden.into()),
        };
        Ok(self.store().agents(account_id).await?)
    }

    /// Replaces an agent's access and pubsub tokens; the old ones stop working at once.
    pub async fn rotate_agent_token(
        &self,
        principal: &Principal,
        agent_id: AgentId,
    ) -> Result<AgentCreated, EngineError> {
        let account_id = administered_account(principal)?;
        let agent = self
            .store()
            .agent(account_id, agent_id)
            .await?
            .ok_or(DomainError::NotFound)?;
        let access_token = generate_secret("sb_agent_");
        let pubsub_token = generate_secret("sb_pubsub_");
        self.store()
            .rotate_agent_token(
                account_id,
                agent_id,
                &hash_secret(&access_token),
                &pubsub_token,
            )
            .await?;
        Ok(AgentCreated {
            agent,
            access_token,
            pubsub_token,
        })
    }

    /// Replaces the account's API or publishable key; the old one stops working at once.
    pub async fn rotate_account_key(
        &self,
        principal: &Principal,
        kind: AccountKeyKind,
    ) -> Result<String, EngineError> {
        let Principal::Integration { account_id } = principal else {
            return Err(DomainError::Forbidden.into());
        };
        let key = match kind {
            AccountKeyKind::Api => generate_secret("sb_api_"),
            AccountKeyKind::Publishable => generate_secret("sb_pub_"),
        };
        self.store()
            .rotate_account_key(*account_id, kind, &hash_secret(&key))
            .await?;
        Ok(key)
    }

    pub async fn create_inbox(
        &self,
        principal: &Principal,
        name: &str,
        bot_name: Option<&str>,
    ) -> Result<Inbox, EngineError> {
        let account_id = administered_account(principal)?;
        let name = check_name("name", name)?;
        let bot_id = match bot_name {
            Some(bot_name) => Some(
                self.store()
                    .bot_by_name(account_id, bot_name)
                    .await?
                    .ok_or_else(|| EngineError::AgentNotFound {
                        name: bot_name.to_string(),
                    })?
                    .id,
            ),
            None => None,
        };
        Ok(self
            .store()
            .create_inbox(account_id, &name, &generate_secret("inbox_"), bot_id)
            .await?)
    }

    /// The account's inboxes with their members' ids.
    pub async fn list_inboxes(
        &self,
        principal: &Principal,
    ) -> Result<Vec<(Inbox, Vec<AgentId>)>, EngineError> {
        let account_id = match principal {
            Principal::Integration { account_id } | Principal::Agent { account_id, .. } => {
                *account_id
            }
            _ => return Err(DomainError::Forbidden.into()),
        };
        let inboxes = self.store().inboxes(account_id).await?;
        let memberships = self.store().memberships().await?;
        Ok(inboxes
            .into_iter()
            .map(|inbox| {
                let mut members: Vec<AgentId> = memberships
                    .iter()
                    .filter(|(_, inbox_id)| *inbox_id == inbox.id)
                    .map(|(agent_id, _)| *agent_id)
                    .collect();
                members.sort();
                (inbox, members)
            })
            .collect())
    }

    /// Adds or removes an agent from an inbox; takes effect on live sockets at once.
    pub async fn set_inbox_member(
        &self,
        principal: &Principal,
        inbox_id: InboxId,
        agent_id: AgentId,
        member: bool,
    ) -> Result<(), EngineError> {
        let account_id = administered_account(principal)?;
        self.store()
            .set_inbox_member(account_id, inbox_id, agent_id, member)
            .await?;
        self.memberships.set(agent_id, inbox_id, member);
        // Every node routes by its own copy of the memberships; each applies this on receipt.
        let event = Event {
            account_id,
            inbox_id: None,
            contact_id: None,
            kind: EventKind::InboxMembershipChanged {
                agent_id,
                inbox_id,
                member,
            },
        };
        if let Err(error) = self.publish(event).await {
            tracing::warn!(%error, "could not tell the other nodes of a membership change");
        }
        Ok(())
    }

    pub async fn create_team(
        &self,
        principal: &Principal,
        name: &str,
    ) -> Result<Team, EngineError> {
        let account_id = administered_account(principal)?;
        let name = check_name("name", name)?;
        Ok(self.store().create_team(account_id, &name).await?)
    }

    pub async fn list_teams(&self, principal: &Principal) -> Result<Vec<Team>, EngineError> {
        let account_id = match principal {
            Principal::Integration { account_id } | Principal::Agent { account_id, .. } => {
                *account_id
            }
            _ => return Err(DomainError::Forbidden.into()),
        };
        Ok(self.store().teams(account_id).await?)
    }

    /// Creates a bot in the principal's account.
    pub async fn create_bot(
        &self,
        principal: &Principal,
        name: &str,
        kind: BotKind,
    ) -> Result<Bot, EngineError> {
        let account_id = administered_account(principal)?;
        let name = name.trim();
        if name.is_empty() || name.len() > 64 {
            return Err(DomainError::InvalidField {
                field: "name",
                reason: "must be 1 to 64 bytes",
            }
            .into());
        }
        if let BotKind::Webhook(settings) = &kind {
            if !(settings.url.starts_with("http://") || settings.url.starts_with("https://")) {
                return Err(DomainError::InvalidField {
                    field: "url",
                    reason: "must be an http or https URL",
                }
                .into());
            }
        }
        Ok(self.store().create_bot(account_id, name, &kind).await?)
    }

    /// Creates a webhook bot: a secret is generated when none is given, and the timeout
    /// (0.1–60 s) and retries (at most 10) default to the engine's settings within bounds.
    pub async fn create_webhook_bot(
        &self,
        principal: &Principal,
        name: &str,
        webhook: NewWebhook,
    ) -> Result<Bot, EngineError> {
        let config = self.config();
        let settings = switchboard_core::bot::WebhookSettings {
            url: webhook.url,
            secret: webhook.secret.unwrap_or_else(|| generate_secret("whsec_")),
            timeout_ms: webhook
                .timeout_ms
                .unwrap_or(config.webhook_timeout.as_millis() as u64)
                .clamp(100, 60_000),
            max_retries: webhook
                .max_retries
                .unwrap_or(config.webhook_max_retries)
                .min(10),
        };
        self.create_bot(principal, name, BotKind::Webhook(settings))
            .await
    }

    pub async fn list_bots(&self, principal: &Principal) -> Result<Vec<Bot>, EngineError> {
        let account_id = administered_account(principal)?;
        Ok(self.store().bots(account_id).await?)
    }

    pub async fn delete_bot(
        &self,
        principal: &Principal,
        bot_id: BotId,
    ) -> Result<(), EngineError> {
        let account_id = administered_account(principal)?;
        if self.store().delete_bot(account_id, bot_id).await? {
            Ok(())
        } else {
            Err(DomainError::NotFound.into())
        }
    }

    /// Sets the calling agent's own availability.
    pub async fn set_availability(
        &self,
        principal: &Principal,
        availability: Availability,
    ) -> Result<Agent, EngineError> {
        let Principal::Agent {
            account_id,
            agent_id,
            ..
        } = principal
        else {
            return Err(DomainError::Forbidden.into());
        };
        let before = self
            .store()
            .agent(*account_id, *agent_id)
            .await?
            .map_or(Availability::Online, |agent| agent.availability);
        let agent = self
            .store()
            .set_availability(*account_id, *agent_id, availability)
            .await?;
        self.availability_changed(*account_id, *agent_id, before, availability)
            .await;
        Ok(agent)
    }
}
