//! The public inbox API's side of the engine: a widget knows only its inbox's public identifier
//! and its contact's `source_id` there. Contacts and conversations are created and found here;
//! messages, typing and read positions go through [`Engine::execute`] as that contact.

use crate::credentials::{generate_secret, hash_secret};
use crate::engine::Engine;
use crate::EngineError;
use switchboard_core::*;
use switchboard_store::{NewContactInbox, StoreError};

/// A widget's contact: who it is, its place in the inbox, and the inbox.
#[derive(Clone, Debug)]
pub struct WidgetContact {
    pub inbox: Inbox,
    pub contact: Contact,
    pub contact_inbox: ContactInbox,
}

impl WidgetContact {
    /// The principal the widget acts as.
    pub fn principal(&self) -> Principal {
        Principal::Contact {
            account_id: self.contact.account_id,
            contact_id: self.contact.id,
        }
    }
}

/// Everything a conversation is shown with in the snake_case shapes: its contact, its
/// assignee and the contact's place in the inbox.
#[derive(Clone, Debug)]
pub struct ConversationView {
    pub conversation: Conversation,
    pub contact: Option<Contact>,
    pub assignee: Option<Agent>,
    pub contact_inbox: Option<ContactInbox>,
}

impl Engine {
    /// The inbox a widget is configured with; not found when no inbox has this identifier.
    pub async fn widget_inbox(&self, identifier: &str) -> Result<Inbox, EngineError> {
        Ok(self
            .store()
            .inbox_by_identifier(identifier)
            .await?
            .ok_or(DomainError::NotFound)?)
    }

    /// Creates a widget's contact in an inbox, with a fresh `source_id` and pubsub token, and
    /// announces `contact.created` to the account's agents.
    pub async fn create_widget_contact(
        &self,
        identifier: &str,
        details: ContactDetails,
    ) -> Result<WidgetContact, EngineError> {
        let inbox = self.widget_inbox(identifier).await?;
        let pubsub_token = generate_secret("sb_contact_");
        let created = self
            .store()
            .create_contact_inbox(NewContactInbox {
                account_id: inbox.account_id,
                inbox_id: inbox.id,
                source_id: uuid_like(),
                pubsub_token_hash: hash_secret(&pubsub_token),
                pubsub_token,
                details,
                now: self.clock().now_ms(),
            })
            .await;
        let (contact, contact_inbox) = match created {
            Ok(created) => created,
            Err(StoreError::Conflict { .. }) => {
                return Err(EngineError::Conflict {
                    what: "contact source_id",
                })
            }
            Err(error) => return Err(error.into()),
        };
        self.publish(Event {
            account_id: contact.account_id,
            inbox_id: Some(inbox.id),
            contact_id: None,
            kind: EventKind::ContactCreated(contact.clone()),
        })
        .await?;
        Ok(WidgetContact {
            inbox,
            contact,
            contact_inbox,
        })
    }

    /// A widget's contact by its `source_id`; not found when the inbox or the contact is not.
    pub async fn widget_contact(
        &self,
        identifier: &str,
        source_id: &str,
    ) -> Result<WidgetContact, EngineError> {
        let inbox = self.widget_inbox(identifier).await?;
        let (contact, contact_inbox) = self
            .store()
            .contact_inbox(inbox.id, source_id)
            .await?
            .ok_or(DomainError::NotFound)?;
        Ok(WidgetContact {
            inbox,
            contact,
            contact_inbox,
        })
    }

    /// The widget contact's conversations in its inbox, oldest first.
    pub async fn widget_conversations(
        &self,
        widget: &WidgetContact,
    ) -> Result<Vec<Conversation>, EngineError> {
        Ok(self
            .store()
            .contact_conversations(widget.inbox.id, widget.contact.id)
            .await?)
    }

    /// Opens a conversation for the widget's contact and announces `conversation.created`.
    pub async fn create_widget_conversation(
        &self,
        widget: &WidgetContact,
    ) -> Result<Conversation, EngineError> {
        let conversation = self
            .store()
            .create_conversation(
                widget.inbox.account_id,
                widget.inbox.id,
                widget.contact.id,
                self.clock().now_ms(),
            )
            .await?;
        self.publish(Event::in_conversation(
            &conversation.scope(),
            EventKind::ConversationCreated(conversation.clone()),
        ))
        .await?;
        Ok(conversation)
    }

    /// A widget contact's conversation; not found when it is not one of the contact's.
    pub async fn widget_conversation(
        &self,
        widget: &WidgetContact,
        conversation_id: ConversationId,
    ) -> Result<Conversation, EngineError> {
        let conversation = self
            .get_conversation(&widget.principal(), conversation_id)
            .await?;
        if conversation.inbox_id != widget.inbox.id {
            return Err(DomainError::NotFound.into());
        }
        Ok(conversation)
    }

    /// A conversation with what its snake_case shape shows (contact, assignee, the contact's
    /// place in the inbox). Lookups that find nothing leave their part empty.
    pub async fn conversation_view(
        &self,
        conversation: Conversation,
    ) -> Result<ConversationView, EngineError> {
        let store = self.store();
        let contact = store
            .contact(conversation.account_id, conversation.contact_id)
            .await?;
        let assignee = match conversation.assignee_id {
            Some(agent_id) => store.agent(conversation.account_id, agent_id).await?,
            None => None,
        };
        let contact_inbox = store
            .contact_inbox_of(conversation.inbox_id, conversation.contact_id)
            .await?;
        Ok(ConversationView {
            conversation,
            contact,
            assignee,
            contact_inbox,
        })
    }
}

impl Engine {
    /// A conversation's view by id, for rendering an event already authorised by the hub.
    pub async fn conversation_view_of(
        &self,
        conversation_id: ConversationId,
    ) -> Result<Option<ConversationView>, EngineError> {
        match self.store().conversation(conversation_id).await? {
            Some(conversation) => Ok(Some(self.conversation_view(conversation).await?)),
            None => Ok(None),
        }
    }

    /// An agent as events show it (name and availability), for rendering.
    pub async fn agent_card(
        &self,
        account_id: AccountId,
        agent_id: AgentId,
    ) -> Result<Option<Agent>, EngineError> {
        Ok(self.store().agent(account_id, agent_id).await?)
    }

    /// A contact as events show it, for rendering.
    pub async fn contact_card(
        &self,
        account_id: AccountId,
        contact_id: ContactId,
    ) -> Result<Option<Contact>, EngineError> {
        Ok(self.store().contact(account_id, contact_id).await?)
    }
}

/// A random identifier in the 8-4-4-4-12 shape widgets expect of a `source_id`.
fn uuid_like() -> String {
    let hex = generate_secret("");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}
