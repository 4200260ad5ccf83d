//! The REST API (`spec/rest.md`): JSON in and out, `Authorization: Bearer <credential>`, errors
//! as `{"error": {"code", "message"}}` with the fitting status. This module holds the router,
//! the error format and the extractors, health, demo sessions and bots; `admin` and
//! `dashboard` hold the rest.

mod admin;
mod dashboard;
mod public;
mod transcripts;
pub mod uploads;

use crate::dialects::native;
use crate::time_format::iso8601;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use switchboard_core::bot::{BotKind, ScriptedRules};
use switchboard_core::{ContactDetails, DomainError, Principal, SessionId};
use switchboard_engine::{Engine, EngineError, NewWebhook};

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<Engine>,
    pub settings: Arc<crate::Settings>,
}

pub fn router(upload_max_bytes: usize) -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/v1/session", post(start_session))
        .route("/api/v1/session/{session_id}/end", post(end_session))
        .route(
            "/api/v1/session/{session_id}/iframe_events",
            get(iframe_events),
        )
        .route("/api/v1/bots", post(create_bot).get(admin::list_bots))
        .route(
            "/api/v1/bots/{bot_id}",
            axum::routing::delete(admin::delete_bot),
        )
        .route("/ws/session/{session_id}", get(native::session_socket))
        .route("/ws/chat/{thread_id}", get(native::chat_socket))
        .route("/ws/notifications", get(native::notifications_socket))
        .route(
            "/ws/transcript/{workspace_id}/{transcript_id}",
            get(native::transcript_socket),
        )
        .route("/cable", get(crate::dialects::cable::cable_socket))
        .merge(admin::routes())
        .merge(dashboard::routes())
        .merge(public::routes())
        .merge(transcripts::routes())
        .merge(uploads::routes(upload_max_bytes))
        .merge(crate::web::routes())
}

/// An error answered over HTTP.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after_ms: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after_ms: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({"error": {"code": self.code, "message": self.message}});
        if let Some(ms) = self.retry_after_ms {
            // The header has whole seconds; the body keeps the milliseconds every dialect uses.
            body["error"]["retryAfter"] = json!(ms);
        }
        let mut response = (self.status, Json(body)).into_response();
        if let Some(ms) = self.retry_after_ms {
            let seconds = ms.div_ceil(1000).max(1).to_string();
            if let Ok(value) = seconds.parse() {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        response
    }
}

impl From<EngineError> for ApiError {
    fn from(error: EngineError) -> ApiError {
        match error {
            EngineError::Domain(domain) => match domain {
                DomainError::EmptyMessage => {
                    ApiError::new(StatusCode::BAD_REQUEST, "EMPTY_MESSAGE", domain.to_string())
                }
                DomainError::MessageTooLarge { .. } => ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "MESSAGE_TOO_LARGE",
                    domain.to_string(),
                ),
                DomainError::RateLimited { retry_after_ms } => ApiError {
                    retry_after_ms: Some(retry_after_ms),
                    ..ApiError::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        "RATE_LIMITED",
                        domain.to_string(),
                    )
                },
                DomainError::NotFound => {
                    ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", "not found")
                }
                DomainError::Forbidden => {
                    ApiError::new(StatusCode::FORBIDDEN, "FORBIDDEN", domain.to_string())
                }
                DomainError::InvalidField { .. } => ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "INVALID_REQUEST",
                    domain.to_string(),
                ),
            },
            EngineError::Upload(refusal) => {
                use switchboard_engine::UploadRefusal;
                let (status, code) = match refusal {
                    UploadRefusal::NotFound => (StatusCode::NOT_FOUND, "UPLOAD_NOT_FOUND"),
                    UploadRefusal::Expired => (StatusCode::GONE, "UPLOAD_EXPIRED"),
                    UploadRefusal::Used => (StatusCode::CONFLICT, "UPLOAD_USED"),
                    UploadRefusal::NotReceived => (StatusCode::CONFLICT, "UPLOAD_NOT_RECEIVED"),
                };
                ApiError::new(status, code, refusal.to_string())
            }
            EngineError::Unauthenticated => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "UNAUTHORIZED",
                "missing or invalid credential",
            ),
            EngineError::AgentNotFound { .. } => {
                ApiError::new(StatusCode::NOT_FOUND, "PDP_NOT_FOUND", error.to_string())
            }
            EngineError::Conflict { .. } => {
                ApiError::new(StatusCode::CONFLICT, "CONFLICT", error.to_string())
            }
            EngineError::Store(_) | EngineError::Bus(_) => {
                tracing::error!(error = %error, source = ?std::error::Error::source(&error), "request failed");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "UNAVAILABLE",
                    "the server cannot complete this request now; retry later",
                )
            }
        }
    }
}

/// A JSON body whose rejections are answered in the API's error format.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(JsonBody(value)),
            Err(rejection) => Err(match &rejection {
                JsonRejection::MissingJsonContentType(_) => ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "INVALID_REQUEST",
                    "the body must be JSON with Content-Type: application/json",
                ),
                JsonRejection::JsonSyntaxError(_) => ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "INVALID_JSON",
                    rejection.body_text(),
                ),
                JsonRejection::JsonDataError(_) => ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "INVALID_REQUEST",
                    rejection.body_text(),
                ),
                JsonRejection::BytesRejection(_)
                    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE =>
                {
                    ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "PAYLOAD_TOO_LARGE",
                        "the request body is too large",
                    )
                }
                _ => ApiError::new(rejection.status(), "INVALID_REQUEST", rejection.body_text()),
            }),
        }
    }
}

/// The bearer credential of a request, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, credential) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| credential.trim())
}

/// The principal of a request's bearer credential (account key or agent token); 401 without.
/// The request is counted for principals limited by requests (the API key; 429 past it).
pub async fn principal(state: &AppState, headers: &HeaderMap) -> Result<Principal, ApiError> {
    let principal = commanding_principal(state, headers).await?;
    state.engine.count_request(&principal)?;
    Ok(principal)
}

/// [`principal`] for a request whose engine call counts it itself (it runs a command, or
/// stores a message), so the request is not counted twice.
pub async fn commanding_principal(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Principal, ApiError> {
    Ok(state.engine.authenticate(bearer(headers)).await?)
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

async fn readyz(State(state): State<AppState>) -> Response {
    match state.engine.ready().await {
        Ok(()) if !state.engine.is_shutting_down() => {
            Json(json!({"status": "ready"})).into_response()
        }
        Ok(()) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "SHUTTING_DOWN",
            "the server is shutting down",
        )
        .into_response(),
        Err(error) => ApiError::from(error).into_response(),
    }
}

/// This node's gauges in the Prometheus text format, each labelled with the node's id.
async fn metrics(State(state): State<AppState>) -> Response {
    let engine = &state.engine;
    let ready = engine.ready().await.is_ok() && !engine.is_shutting_down();
    let node = serde_json::Value::from(state.settings.node_id.as_str()).to_string();
    let gauges: [(&str, &str, usize); 4] = [
        (
            "switchboard_open_connections",
            "Sockets open on this node, every dialect.",
            engine.n_open_connections(),
        ),
        (
            "switchboard_hub_subscriptions",
            "Live subscriptions in this node's hub.",
            engine.hub().n_subscriptions(),
        ),
        (
            "switchboard_rate_limited_principals",
            "Principals with a rate-limit allowance in use.",
            engine.limiter().tracked(),
        ),
        (
            "switchboard_ready",
            "1 when the store and the bus answer and the node is not stopping.",
            usize::from(ready),
        ),
    ];
    let mut text = format!(
        "# HELP switchboard_info The node and its version.\n# TYPE switchboard_info gauge\nswitchboard_info{{node={node},version=\"{}\"}} 1\n",
        env!("CARGO_PKG_VERSION")
    );
    for (name, help, value) in gauges {
        text.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name}{{node={node}}} {value}\n"
        ));
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct StartSession {
    agent_id: String,
    #[serde(default)]
    visitor: Option<Visitor>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Visitor {
    name: Option<String>,
    email: Option<String>,
    #[serde(alias = "phone_number")]
    phone_number: Option<String>,
    identifier: Option<String>,
}

async fn start_session(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<StartSession>,
) -> Result<Response, ApiError> {
    let principal = principal(&state, &headers).await?;
    let visitor = body.visitor.unwrap_or_default();
    let started = state
        .engine
        .start_session(
            &principal,
            &body.agent_id,
            ContactDetails {
                name: visitor.name,
                email: visitor.email,
                phone_number: visitor.phone_number,
                identifier: visitor.identifier,
            },
        )
        .await?;
    let session = &started.session;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "sessionId": session.id.0,
            "token": started.token,
            "expiresAt": iso8601(session.expires_at),
            "conversationId": session.conversation_id.0,
            "pubsubToken": started.contact_pubsub_token,
        })),
    )
        .into_response())
}

async fn end_session(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(session_id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let principal = principal(&state, &headers).await?;
    let ended = state
        .engine
        .end_session(&principal, &SessionId(session_id))
        .await?;
    Ok(Json(json!({
        "sessionId": ended.id.0,
        "conversationId": ended.conversation_id.0,
        "endedAt": ended.ended_at.map(iso8601),
    })))
}

/// `GET /api/v1/session/:id/iframe_events`: what the visitor did in the demo page's iframe.
async fn iframe_events(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(session_id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let principal = principal(&state, &headers).await?;
    let events = state
        .engine
        .iframe_events(&principal, &SessionId(session_id))
        .await?;
    Ok(Json(serde_json::Value::Array(
        events
            .iter()
            .map(|event| {
                json!({
                    "event": event.event,
                    "selector": event.selector,
                    "url": event.url,
                    "conversationId": event.conversation_id.0,
                    "createdAt": iso8601(event.created_at),
                })
            })
            .collect(),
    )))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateBot {
    name: String,
    kind: String,
    /// For `scripted`: the rules (as in the shipped demo bot).
    rules: Option<ScriptedRules>,
    /// For `webhook`.
    url: Option<String>,
    secret: Option<String>,
    timeout_ms: Option<u64>,
    max_retries: Option<u32>,
}

async fn create_bot(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<CreateBot>,
) -> Result<Response, ApiError> {
    let principal = principal(&state, &headers).await?;
    let bot = match body.kind.as_str() {
        "scripted" => {
            let rules = Box::new(body.rules.unwrap_or_default());
            state
                .engine
                .create_bot(&principal, &body.name, BotKind::Scripted(rules))
                .await?
        }
        "webhook" => {
            let url = body.url.ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "INVALID_REQUEST",
                    "a webhook bot needs a url",
                )
            })?;
            let webhook = NewWebhook {
                url,
                secret: body.secret,
                timeout_ms: body.timeout_ms,
                max_retries: body.max_retries,
            };
            state
                .engine
                .create_webhook_bot(&principal, &body.name, webhook)
                .await?
        }
        _ => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "INVALID_REQUEST",
                "kind must be \"scripted\" or \"webhook\"",
            ))
        }
    };
    let mut answer = json!({"id": bot.id.0, "name": bot.name, "kind": bot.kind.kind_str()});
    if let BotKind::Webhook(settings) = &bot.kind {
        answer["url"] = json!(settings.url);
        answer["secret"] = json!(settings.secret);
        answer["timeoutMs"] = json!(settings.timeout_ms);
        answer["maxRetries"] = json!(settings.max_retries);
    }
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}
