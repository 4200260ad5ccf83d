//! The public inbox API for widgets (`spec/rest.md`): no secret, only the inbox's public
//! identifier and the contact's `source_id`, in the snake_case shapes of seed 004's product.
//! Messages, typing and read positions are the contact's own commands.

use super::{ApiError, AppState, JsonBody};
use crate::snake;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use switchboard_core::{Command, ContactDetails, Conversation, ConversationId};
use switchboard_engine::{Outcome, WidgetContact};

const BASE: &str = "/public/api/v1/inboxes/{inbox}/contacts";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/public/api/v1/inboxes/{inbox}", get(inbox))
        .route(BASE, post(create_contact))
        .route(
            &format!("{BASE}/{{source}}"),
            get(get_contact).patch(update_contact),
        )
        .route(
            &format!("{BASE}/{{source}}/conversations"),
            post(create_conversation).get(list_conversations),
        )
        .route(
            &format!("{BASE}/{{source}}/conversations/{{conversation}}/messages"),
            post(send_message).get(list_messages),
        )
        .route(
            &format!("{BASE}/{{source}}/conversations/{{conversation}}/toggle_typing"),
            post(toggle_typing),
        )
        .route(
            &format!("{BASE}/{{source}}/conversations/{{conversation}}/update_last_seen"),
            post(update_last_seen),
        )
}

/// The inbox as a widget sees it, with whether any agent of the account is online.
async fn inbox(
    State(state): State<AppState>,
    Path(inbox): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let inbox = state.engine.widget_inbox(&inbox).await?;
    let online = state.engine.account_is_online(inbox.account_id).await;
    Ok(Json(json!({
        "identifier": inbox.identifier,
        "name": inbox.name,
        "account_status": if online { "online" } else { "offline" },
    })))
}

/// The contact as its widget sees it, pubsub token included (the widget subscribes with it).
fn widget_contact(widget: &WidgetContact) -> Value {
    let mut value = snake::contact(&widget.contact);
    value["source_id"] = json!(widget.contact_inbox.source_id);
    value["pubsub_token"] = json!(widget.contact_inbox.pubsub_token);
    value
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ContactBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    phone_number: Option<String>,
    #[serde(default)]
    identifier: Option<String>,
    /// Accepted and not kept: the product's widgets send them.
    #[serde(default, rename = "custom_attributes")]
    _custom_attributes: Option<Value>,
    #[serde(default, rename = "additional_attributes")]
    _additional_attributes: Option<Value>,
}

impl ContactBody {
    /// These details over `base` (fields not given are kept).
    fn over(self, base: ContactDetails) -> ContactDetails {
        ContactDetails {
            name: self.name.or(base.name),
            email: self.email.or(base.email),
            phone_number: self.phone_number.or(base.phone_number),
            identifier: self.identifier.or(base.identifier),
        }
    }
}

async fn create_contact(
    State(state): State<AppState>,
    Path(inbox): Path<String>,
    JsonBody(body): JsonBody<ContactBody>,
) -> Result<Json<Value>, ApiError> {
    let widget = state
        .engine
        .create_widget_contact(&inbox, body.over(ContactDetails::default()))
        .await?;
    Ok(Json(widget_contact(&widget)))
}

async fn find(state: &AppState, inbox: &str, source: &str) -> Result<WidgetContact, ApiError> {
    Ok(state.engine.widget_contact(inbox, source).await?)
}

/// The widget's contact and one of its conversations, from a path that names both.
async fn find_conversation(
    state: &AppState,
    (inbox, source, conversation): (String, String, i64),
) -> Result<(WidgetContact, Conversation), ApiError> {
    let widget = find(state, &inbox, &source).await?;
    let conversation = state
        .engine
        .widget_conversation(&widget, ConversationId(conversation))
        .await?;
    Ok((widget, conversation))
}

async fn get_contact(
    State(state): State<AppState>,
    Path((inbox, source)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(widget_contact(&find(&state, &inbox, &source).await?)))
}

async fn update_contact(
    State(state): State<AppState>,
    Path((inbox, source)): Path<(String, String)>,
    JsonBody(body): JsonBody<ContactBody>,
) -> Result<Json<Value>, ApiError> {
    let mut widget = find(&state, &inbox, &source).await?;
    let details = body.over(widget.contact.details.clone());
    widget.contact = state
        .engine
        .update_contact(&widget.principal(), widget.contact.id, details)
        .await?;
    Ok(Json(widget_contact(&widget)))
}

async fn conversation_json(
    state: &AppState,
    conversation: Conversation,
) -> Result<Value, ApiError> {
    let view = state.engine.conversation_view(conversation).await?;
    Ok(snake::conversation(&view))
}

async fn create_conversation(
    State(state): State<AppState>,
    Path((inbox, source)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let widget = find(&state, &inbox, &source).await?;
    let conversation = state.engine.create_widget_conversation(&widget).await?;
    Ok(Json(conversation_json(&state, conversation).await?))
}

async fn list_conversations(
    State(state): State<AppState>,
    Path((inbox, source)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let widget = find(&state, &inbox, &source).await?;
    let mut listed = Vec::new();
    for conversation in state.engine.widget_conversations(&widget).await? {
        listed.push(conversation_json(&state, conversation).await?);
    }
    Ok(Json(Value::Array(listed)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MessageBody {
    content: String,
    /// Makes a retry idempotent: the same `echo_id` returns the message stored the first time.
    #[serde(default)]
    echo_id: Option<String>,
}

async fn send_message(
    State(state): State<AppState>,
    Path(path): Path<(String, String, i64)>,
    JsonBody(body): JsonBody<MessageBody>,
) -> Result<Json<Value>, ApiError> {
    let (widget, conversation) = find_conversation(&state, path).await?;
    let outcome = state
        .engine
        .execute(
            &widget.principal(),
            Command::SendMessage {
                conversation_id: conversation.id,
                content: body.content,
                client_message_id: body.echo_id,
                private: false,
            },
        )
        .await?;
    match outcome {
        Outcome::Message { message, .. } => Ok(Json(snake::message(
            &message,
            widget.inbox.id.0,
            Some(&widget.contact),
            None,
        ))),
        Outcome::Done => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "SERVER_ERROR",
            "the message was not stored",
        )),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Page {
    #[serde(default)]
    after_seq: Option<i64>,
    #[serde(default)]
    limit: Option<u32>,
}

async fn list_messages(
    State(state): State<AppState>,
    Path(path): Path<(String, String, i64)>,
    Query(page): Query<Page>,
) -> Result<Json<Value>, ApiError> {
    let (widget, conversation) = find_conversation(&state, path).await?;
    let messages = state
        .engine
        .list_messages(
            &widget.principal(),
            conversation.id,
            page.after_seq.unwrap_or(0),
            page.limit.unwrap_or(100),
        )
        .await?;
    Ok(Json(
        messages
            .iter()
            .map(|message| snake::message(message, widget.inbox.id.0, Some(&widget.contact), None))
            .collect(),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TypingBody {
    typing_status: String,
}

async fn toggle_typing(
    State(state): State<AppState>,
    Path(path): Path<(String, String, i64)>,
    JsonBody(body): JsonBody<TypingBody>,
) -> Result<StatusCode, ApiError> {
    let is_typing = match body.typing_status.as_str() {
        "on" => true,
        "off" => false,
        _ => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "INVALID_FIELD",
                "typing_status must be \"on\" or \"off\"",
            ))
        }
    };
    let (widget, conversation) = find_conversation(&state, path).await?;
    state
        .engine
        .execute(
            &widget.principal(),
            Command::SetTyping {
                conversation_id: conversation.id,
                is_typing,
                private: false,
            },
        )
        .await?;
    Ok(StatusCode::OK)
}

async fn update_last_seen(
    State(state): State<AppState>,
    Path(path): Path<(String, String, i64)>,
) -> Result<StatusCode, ApiError> {
    let (widget, conversation) = find_conversation(&state, path).await?;
    state
        .engine
        .execute(
            &widget.principal(),
            Command::MarkRead {
                conversation_id: conversation.id,
                seq: conversation.last_seq,
            },
        )
        .await?;
    Ok(StatusCode::OK)
}
