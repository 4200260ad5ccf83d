//! The agent's dashboard endpoints (agent access token, or the API key as the account's
//! integration): conversations, messages, typing, assignment, status, read, availability,
//! notifications, and WebSocket tickets.

use super::{commanding_principal, principal, ApiError, AppState, JsonBody};
use crate::json;
use crate::time_format::iso8601;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use switchboard_core::*;
use switchboard_engine::{AssigneeQuery, Outcome};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/conversations", get(list_conversations))
        .route("/api/v1/conversations/{id}", get(get_conversation))
        .route(
            "/api/v1/conversations/{id}/messages",
            get(list_messages).post(send_message),
        )
        .route("/api/v1/conversations/{id}/typing", post(typing))
        .route("/api/v1/conversations/{id}/assignments", post(assign))
        .route("/api/v1/conversations/{id}/status", post(set_status))
        .route("/api/v1/conversations/{id}/team", post(set_team))
        .route("/api/v1/conversations/{id}/read", post(mark_read))
        .route(
            "/api/v1/contacts/{id}",
            get(get_contact).patch(update_contact),
        )
        .route("/api/v1/profile", get(profile).patch(update_profile))
        .route("/api/v1/notifications", get(list_notifications))
        .route("/api/v1/notifications/{id}/read", post(read_notification))
        .route("/api/v1/ws/ticket", post(ticket))
}

fn bad_request(message: &str) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "INVALID_REQUEST", message)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListQuery {
    status: Option<String>,
    assignee: Option<String>,
    before: Option<i64>,
    limit: Option<u32>,
}

async fn list_conversations(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let principal = principal(&state, &headers).await?;
    let status = match query.status.as_deref() {
        None | Some("all") => None,
        Some(text) => Some(ConversationStatus::parse(text).ok_or_else(|| {
            bad_request("status must be open, pending, snoozed, resolved or all")
        })?),
    };
    let assignee = match query.assignee.as_deref() {
        None | Some("all") => AssigneeQuery::All,
        Some("me") => AssigneeQuery::Me,
        Some("unassigned") => AssigneeQuery::Unassigned,
        Some(_) => return Err(bad_request("assignee must be me, unassigned or all")),
    };
    let conversations = state
        .engine
        .list_conversations(
            &principal,
            status,
            assignee,
            query.before.map(ConversationId),
            query.limit.unwrap_or(50),
        )
        .await?;
    Ok(Json(conversations.iter().map(json::conversation).collect()))
}

async fn get_conversation(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    let principal = principal(&state, &headers).await?;
    let conversation = state
        .engine
        .get_conversation(&principal, ConversationId(id))
        .await?;
    let mut value = json::conversation(&conversation);
    // Whether the visitor is connected now, on any node (a dashboard's starting point; changes
    // arrive as `presence.update`).
    let presence = state
        .engine
        .contact_presence(conversation.account_id, conversation.contact_id)
        .await;
    value["contactPresence"] = json!(presence.as_str());
    Ok(Json(value))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessagesQuery {
    after_seq: Option<i64>,
    limit: Option<u32>,
}

async fn list_messages(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Query(query): Query<MessagesQuery>,
) -> Result<Json<Value>, ApiError> {
    let principal = principal(&state, &headers).await?;
    let messages = state
        .engine
        .list_messages(
            &principal,
            ConversationId(id),
            query.after_seq.unwrap_or(0),
            query.limit.unwrap_or(100),
        )
        .await?;
    Ok(Json(messages.iter().map(json::message).collect()))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SendMessage {
    content: String,
    #[serde(default)]
    private: bool,
    #[serde(default)]
    client_message_id: Option<String>,
}

async fn send_message(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    JsonBody(body): JsonBody<SendMessage>,
) -> Result<Response, ApiError> {
    let principal = commanding_principal(&state, &headers).await?;
    let outcome = state
        .engine
        .execute(
            &principal,
            Command::SendMessage {
                conversation_id: ConversationId(id),
                content: body.content,
                client_message_id: body.client_message_id,
                private: body.private,
            },
        )
        .await?;
    match outcome {
        Outcome::Message { message, created } => {
            let status = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok((status, Json(json::message(&message))).into_response())
        }
        Outcome::Done => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Typing {
    is_typing: bool,
    #[serde(default)]
    is_private: bool,
}

async fn typing(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    JsonBody(body): JsonBody<Typing>,
) -> Result<Json<Value>, ApiError> {
    let principal = commanding_principal(&state, &headers).await?;
    state
        .engine
        .execute(
            &principal,
            Command::SetTyping {
                conversation_id: ConversationId(id),
                is_typing: body.is_typing,
                private: body.is_private,
            },
        )
        .await?;
    Ok(Json(json!({"isTyping": body.is_typing})))
}

/// Runs one command on conversation `id` and answers with the conversation after it.
async fn change_conversation(
    state: &AppState,
    headers: &HeaderMap,
    id: i64,
    command: impl FnOnce(ConversationId) -> Command,
) -> Result<Json<Value>, ApiError> {
    let principal = commanding_principal(state, headers).await?;
    let conversation_id = ConversationId(id);
    state
        .engine
        .execute(&principal, command(conversation_id))
        .await?;
    let conversation = state
        .engine
        .get_conversation(&principal, conversation_id)
        .await?;
    Ok(Json(json::conversation(&conversation)))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Assign {
    assignee_id: Option<i64>,
}

async fn assign(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    JsonBody(body): JsonBody<Assign>,
) -> Result<Json<Value>, ApiError> {
    change_conversation(&state, &headers, id, |conversation_id| Command::Assign {
        conversation_id,
        assignee_id: body.assignee_id.map(AgentId),
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetStatus {
    status: String,
}

async fn set_status(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    JsonBody(body): JsonBody<SetStatus>,
) -> Result<Json<Value>, ApiError> {
    let status = ConversationStatus::parse(&body.status)
        .ok_or_else(|| bad_request("status must be open, pending, snoozed or resolved"))?;
    change_conversation(&state, &headers, id, |conversation_id| Command::SetStatus {
        conversation_id,
        status,
    })
    .await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SetTeam {
    team_id: Option<i64>,
}

async fn set_team(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    JsonBody(body): JsonBody<SetTeam>,
) -> Result<Json<Value>, ApiError> {
    change_conversation(&state, &headers, id, |conversation_id| Command::SetTeam {
        conversation_id,
        team_id: body.team_id.map(TeamId),
    })
    .await
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct MarkRead {
    #[serde(default)]
    seq: Option<i64>,
}

async fn mark_read(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    // The body is optional: without one, everything up to the newest message is read.
    let body: MarkRead = if body.iter().all(u8::is_ascii_whitespace) {
        MarkRead::default()
    } else {
        serde_json::from_slice(&body).map_err(|error| {
            ApiError::new(StatusCode::BAD_REQUEST, "INVALID_JSON", error.to_string())
        })?
    };
    let seq = body.seq.unwrap_or(i64::MAX);
    change_conversation(&state, &headers, id, |conversation_id| Command::MarkRead {
        conversation_id,
        seq,
    })
    .await
}

async fn get_contact(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    let principal = principal(&state, &headers).await?;
    let contact = state.engine.get_contact(&principal, ContactId(id)).await?;
    Ok(Json(json::contact(&contact)))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UpdateContact {
    name: Option<String>,
    email: Option<String>,
    #[serde(alias = "phone_number")]
    phone_number: Option<String>,
    identifier: Option<String>,
}

/// Updates the given fields of a contact (absent fields keep their value).
async fn update_contact(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    JsonBody(body): JsonBody<UpdateContact>,
) -> Result<Json<Value>, ApiError> {
    let principal = principal(&state, &headers).await?;
    let current = state.engine.get_contact(&principal, ContactId(id)).await?;
    let details = ContactDetails {
        name: body.name.or(current.details.name),
        email: body.email.or(current.details.email),
        phone_number: body.phone_number.or(current.details.phone_number),
        identifier: body.identifier.or(current.details.identifier),
    };
    let contact = state
        .engine
        .update_contact(&principal, ContactId(id), details)
        .await?;
    Ok(Json(json::contact(&contact)))
}

async fn profile(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let principal = principal(&state, &headers).await?;
    let Principal::Agent {
        account_id,
        agent_id,
        ..
    } = principal
    else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
            "only an agent has a profile",
        ));
    };
    let agent = state
        .engine
        .store()
        .agent(account_id, agent_id)
        .await
        .map_err(switchboard_engine::EngineError::from)?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", "not found"))?;
    Ok(Json(json::agent(&agent)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateProfile {
    availability: String,
}

async fn update_profile(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<UpdateProfile>,
) -> Result<Json<Value>, ApiError> {
    let principal = principal(&state, &headers).await?;
    let availability = Availability::parse(&body.availability)
        .ok_or_else(|| bad_request("availability must be online, busy or offline"))?;
    let agent = state
        .engine
        .set_availability(&principal, availability)
        .await?;
    Ok(Json(json::agent(&agent)))
}

async fn list_notifications(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let principal = principal(&state, &headers).await?;
    let notifications = state.engine.list_notifications(&principal, 100).await?;
    let unread = notifications.iter().filter(|n| n.read_at.is_none()).count();
    Ok(Json(json!({
        "notifications": notifications.iter().map(json::notification).collect::<Vec<_>>(),
        "unreadCount": unread,
    })))
}

async fn read_notification(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    let principal = principal(&state, &headers).await?;
    let notification = state
        .engine
        .read_notification(&principal, NotificationId(id))
        .await?;
    Ok(Json(json::notification(&notification)))
}

async fn ticket(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let principal = principal(&state, &headers).await?;
    let (ticket, expires_at) = state.engine.issue_ticket(&principal).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"ticket": ticket, "expiresAt": iso8601(expires_at)})),
    )
        .into_response())
}
