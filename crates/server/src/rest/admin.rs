//! Administration endpoints (account API key, or an administrator agent): agents, inboxes and
//! their members, teams, bots, and key rotation.

use super::{principal, ApiError, AppState, JsonBody};
use crate::json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use switchboard_core::*;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/agents", post(create_agent).get(list_agents))
        .route(
            "/api/v1/agents/{agent_id}/rotate_token",
            post(rotate_agent_token),
        )
        .route("/api/v1/inboxes", post(create_inbox).get(list_inboxes))
        .route("/api/v1/inboxes/{inbox_id}/members", post(add_members))
        .route(
            "/api/v1/inboxes/{inbox_id}/members/{agent_id}",
            delete(remove_member),
        )
        .route("/api/v1/teams", post(create_team).get(list_teams))
        .route("/api/v1/account/rotate_key", post(rotate_key))
        .route("/api/v1/account", axum::routing::get(account))
}

/// The caller's account and whether it is online (an agent is online).
async fn account(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let principal = principal(&state, &headers).await?;
    if principal.is_visitor() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
            "not for visitors",
        ));
    }
    let account_id = principal.account_id();
    let online = state.engine.account_is_online(account_id).await;
    Ok(Json(json!({
        "id": account_id.0,
        "status": if online { "online" } else { "offline" },
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateAgent {
    name: String,
    email: String,
    #[serde(default)]
    role: Option<String>,
}

async fn create_agent(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<CreateAgent>,
) -> Result<Response, ApiError> {
    let principal = principal(&state, &headers).await?;
    let role = match body.role.as_deref() {
        None => AgentRole::Agent,
        Some(text) => AgentRole::parse(text).ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "INVALID_REQUEST",
                "role must be \"agent\" or \"administrator\"",
            )
        })?,
    };
    let created = state
        .engine
        .create_agent(&principal, &body.name, &body.email, role)
        .await?;
    let mut answer = json::agent(&created.agent);
    answer["accessToken"] = json!(created.access_token);
    answer["pubsubToken"] = json!(created.pubsub_token);
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

async fn list_agents(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let principal = principal(&state, &headers).await?;
    let agents = state.engine.list_agents(&principal).await?;
    let mut listed = Vec::with_capacity(agents.len());
    for agent in &agents {
        let mut value = json::agent(agent);
        let presence = state
            .engine
            .agent_presence(agent.account_id, agent.id)
            .await;
        value["presence"] = json!(presence.as_str());
        listed.push(value);
    }
    Ok(Json(Value::Array(listed)))
}

async fn rotate_agent_token(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(agent_id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    let principal = principal(&state, &headers).await?;
    let rotated = state
        .engine
        .rotate_agent_token(&principal, AgentId(agent_id))
        .await?;
    Ok(Json(json!({
        "id": rotated.agent.id.0,
        "accessToken": rotated.access_token,
        "pubsubToken": rotated.pubsub_token,
    })))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateInbox {
    name: String,
    /// The name of a bot of the account that answers in this inbox.
    #[serde(default)]
    bot_agent_id: Option<String>,
}

async fn create_inbox(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<CreateInbox>,
) -> Result<Response, ApiError> {
    let principal = principal(&state, &headers).await?;
    let inbox = state
        .engine
        .create_inbox(&principal, &body.name, body.bot_agent_id.as_deref())
        .await?;
    Ok((StatusCode::CREATED, Json(json::inbox(&inbox, Some(&[])))).into_response())
}

async fn list_inboxes(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let principal = principal(&state, &headers).await?;
    let inboxes = state.engine.list_inboxes(&principal).await?;
    Ok(Json(
        inboxes
            .iter()
            .map(|(inbox, members)| json::inbox(inbox, Some(members)))
            .collect(),
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Members {
    agent_ids: Vec<i64>,
}

async fn add_members(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(inbox_id): Path<i64>,
    JsonBody(body): JsonBody<Members>,
) -> Result<Json<Value>, ApiError> {
    let principal = principal(&state, &headers).await?;
    for agent_id in &body.agent_ids {
        state
            .engine
            .set_inbox_member(&principal, InboxId(inbox_id), AgentId(*agent_id), true)
            .await?;
    }
    members_of(&state, &principal, inbox_id).await
}

async fn remove_member(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((inbox_id, agent_id)): Path<(i64, i64)>,
) -> Result<Json<Value>, ApiError> {
    let principal = principal(&state, &headers).await?;
    state
        .engine
        .set_inbox_member(&principal, InboxId(inbox_id), AgentId(agent_id), false)
        .await?;
    members_of(&state, &principal, inbox_id).await
}

async fn members_of(
    state: &AppState,
    principal: &Principal,
    inbox_id: i64,
) -> Result<Json<Value>, ApiError> {
    let inboxes = state.engine.list_inboxes(principal).await?;
    let (inbox, members) = inboxes
        .iter()
        .find(|(inbox, _)| inbox.id.0 == inbox_id)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", "not found"))?;
    Ok(Json(json::inbox(inbox, Some(members))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateTeam {
    name: String,
}

async fn create_team(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<CreateTeam>,
) -> Result<Response, ApiError> {
    let principal = principal(&state, &headers).await?;
    let team = state.engine.create_team(&principal, &body.name).await?;
    Ok((StatusCode::CREATED, Json(json::team(&team))).into_response())
}

async fn list_teams(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let principal = principal(&state, &headers).await?;
    let teams = state.engine.list_teams(&principal).await?;
    Ok(Json(teams.iter().map(json::team).collect()))
}

pub async fn list_bots(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let principal = principal(&state, &headers).await?;
    let bots = state.engine.list_bots(&principal).await?;
    Ok(Json(bots.iter().map(json::bot).collect()))
}

pub async fn delete_bot(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(bot_id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    let principal = principal(&state, &headers).await?;
    state.engine.delete_bot(&principal, BotId(bot_id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateKey {
    /// `api` or `publishable`.
    kind: String,
}

async fn rotate_key(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<RotateKey>,
) -> Result<Json<Value>, ApiError> {
    let principal = principal(&state, &headers).await?;
    let (kind, field) = match body.kind.as_str() {
        "api" => (AccountKeyKind::Api, "apiKey"),
        "publishable" => (AccountKeyKind::Publishable, "publishableKey"),
        _ => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "INVALID_REQUEST",
                "kind must be \"api\" or \"publishable\"",
            ))
        }
    };
    let key = state.engine.rotate_account_key(&principal, kind).await?;
    Ok(Json(json!({ field: key })))
}
