//! Reading conversations, messages and notifications for the agent's dashboard and the API
//! key, with the same authorisation as everything else.

use crate::engine::Engine;
use crate::feed::message_event;
use crate::hub::Subscription;
use crate::EngineError;
use switchboard_core::policy::may_receive;
use switchboard_core::*;
use switchboard_store::{AssigneeFilter, ConversationFilter};

/// Whose conversations an agent asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AssigneeQuery {
    Me,
    Unassigned,
    All,
}

/// The most conversations or messages one page returns.
pub const MAX_PAGE: u32 = 500;

impl Engine {
    /// Conversations the principal may see, newest first.
    pub async fn list_conversations(
        &self,
        principal: &Principal,
        status: Option<ConversationStatus>,
        assignee: AssigneeQuery,
        before_id: Option<ConversationId>,
        limit: u32,
    ) -> Result<Vec<Conversation>, EngineError> {
        let (account_id, inbox_ids, me) = match principal {
            Principal::Integration { account_id } => (*account_id, None, None),
            Principal::Agent {
                account_id,
                agent_id,
                role,
            } => {
                let inboxes = match role {
                    AgentRole::Administrator => None,
                    AgentRole::Agent => Some(self.memberships.inboxes_of(*agent_id)),
                };
                (*account_id, inboxes, Some(*agent_id))
            }
            _ => return Err(DomainError::Forbidden.into()),
        };
        let assignee = match assignee {
            AssigneeQuery::All => AssigneeFilter::All,
            AssigneeQuery::Unassigned => AssigneeFilter::Unassigned,
            AssigneeQuery::Me => AssigneeFilter::Agent(me.ok_or(DomainError::InvalidField {
                field: "assignee",
                reason: "\"me\" needs an agent's token",
            })?),
        };
        Ok(self
            .store()
            .conversations(ConversationFilter {
                account_id,
                status,
                assignee,
                inbox_ids,
                before_id,
                limit: limit.clamp(1, MAX_PAGE),
            })
            .await?)
    }

    pub async fn get_conversation(
        &self,
        principal: &Principal,
        conversation_id: ConversationId,
    ) -> Result<Conversation, EngineError> {
        self.authorise(principal, conversation_id).await?;
        Ok(self
            .store()
            .conversation(conversation_id)
            .await?
            .ok_or(DomainError::NotFound)?)
    }

    /// Messages after `after_seq` in seq order that the principal may see (visitors never see
    /// private notes).
    pub async fn list_messages(
        &self,
        principal: &Principal,
        conversation_id: ConversationId,
        after_seq: Seq,
        limit: u32,
    ) -> Result<Vec<Message>, EngineError> {
        self.authorise(principal, conversation_id).await?;
        let messages = self
            .store()
            .messages_after(conversation_id, after_seq.max(0), limit.clamp(1, MAX_PAGE))
            .await?;
        Ok(messages
            .into_iter()
            .filter(|message| {
                !principal.is_visitor() || {
                    let event = message_event(message.clone());
                    may_receive(principal, &event, &*self.memberships)
                }
            })
            .collect())
    }

    /// A contact of the principal's account (agents and the integration), or the contact itself.
    pub async fn get_contact(
        &self,
        principal: &Principal,
        contact_id: ContactId,
    ) -> Result<Contact, EngineError> {
        let allowed = match principal {
            Principal::Agent { .. } | Principal::Integration { .. } => true,
            Principal::Contact {
                contact_id: own, ..
            }
            | Principal::SessionVisitor {
                contact_id: own, ..
            } => *own == contact_id,
            Principal::Publishable { .. } => false,
        };
        if !allowed {
            return Err(DomainError::NotFound.into());
        }
        Ok(self
            .store()
            .contact(principal.account_id(), contact_id)
            .await?
            .ok_or(DomainError::NotFound)?)
    }

    /// Replaces a contact's details and announces `contact.updated` to the account's agents.
    pub async fn update_contact(
        &self,
        principal: &Principal,
        contact_id: ContactId,
        details: ContactDetails,
    ) -> Result<Contact, EngineError> {
        self.get_contact(principal, contact_id).await?;
        let contact = self
            .store()
            .update_contact(principal.account_id(), contact_id, details)
            .await?
            .ok_or(DomainError::NotFound)?;
        self.publish(Event {
            account_id: contact.account_id,
            inbox_id: None,
            contact_id: None,
            kind: EventKind::ContactUpdated(contact.clone()),
        })
        .await?;
        Ok(contact)
    }

    pub async fn list_notifications(
        &self,
        principal: &Principal,
        limit: u32,
    ) -> Result<Vec<Notification>, EngineError> {
        let Principal::Agent {
            account_id,
            agent_id,
            ..
        } = principal
        else {
            return Err(DomainError::Forbidden.into());
        };
        Ok(self
            .store()
            .notifications(*account_id, *agent_id, limit.clamp(1, MAX_PAGE))
            .await?)
    }

    pub async fn read_notification(
        &self,
        principal: &Principal,
        notification_id: NotificationId,
    ) -> Result<Notification, EngineError> {
        let Principal::Agent {
            account_id,
            agent_id,
            ..
        } = principal
        else {
            return Err(DomainError::Forbidden.into());
        };
        Ok(self
            .store()
            .mark_notification_read(
                *account_id,
                *agent_id,
                notification_id,
                self.clock().now_ms(),
            )
            .await?
            .ok_or(DomainError::NotFound)?)
    }

    /// Subscribes an agent (or the integration) to everything in its account it may see, and
    /// to its own notifications.
    pub fn open_account_feed(&self, principal: &Principal) -> Result<Subscription, EngineError> {
        let topics = match principal {
            Principal::Agent {
                account_id,
                agent_id,
                ..
            } => vec![Topic::Account(*account_id), Topic::Agent(*agent_id)],
            Principal::Integration { account_id } => vec![Topic::Account(*account_id)],
            _ => return Err(DomainError::Forbidden.into()),
        };
        Ok(self
            .hub()
            .subscribe(principal.clone(), topics, self.config().outbound_queue))
    }
}
