//! File uploads (`spec/rest.md`): a conversation's party asks for an upload
//! (`POST /api/v1/uploads`), sends the file once to the single-use URL it gets (multipart,
//! field `file`, within 10 minutes), and finishes it into a file message
//! (`POST /api/v1/uploads/:token/finish`). Files are kept in the uploads directory
//! (`DATA_DIR/uploads`, or shared by the nodes of a deployment), named by a random id in a
//! folder per conversation; only the conversation's parties can download them. The token's
//! rules (single use, expiry, who finishes) are the engine's, kept in the store so that every
//! step may reach a different node; the bytes are here.

use super::{commanding_principal, principal, ApiError, AppState, JsonBody};
use crate::json;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use std::path::PathBuf;
use switchboard_core::{Attachment, ConversationId};
use switchboard_engine::uploads::UPLOAD_TTL_MS;

pub fn routes(max_bytes: usize) -> Router<AppState> {
    Router::new()
        .route("/api/v1/uploads", post(begin))
        .route(
            "/api/v1/uploads/{token}/file",
            // The multipart envelope around the file needs a little room beyond its limit.
            post(receive).layer(DefaultBodyLimit::max(max_bytes + 64 * 1024)),
        )
        .route("/api/v1/uploads/{token}/finish", post(finish))
        .route(
            "/api/v1/conversations/{conversation}/attachments/{file}",
            get(download),
        )
}

fn refusal(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(status, code, message)
}

fn upload_dir(state: &AppState, conversation_id: ConversationId) -> PathBuf {
    state
        .settings
        .uploads_dir()
        .join(conversation_id.0.to_string())
}

/// A file id is ours (hex) or it names no file: nothing else reaches the file system.
fn valid_file_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

fn allowed_type(state: &AppState, content_type: &str) -> bool {
    state
        .settings
        .upload_types
        .iter()
        .any(|allowed| match allowed.strip_suffix("/*") {
            Some(prefix) => content_type
                .split_once('/')
                .is_some_and(|(kind, _)| kind == prefix),
            None => allowed == content_type,
        })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Begin {
    conversation_id: i64,
}

async fn begin(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<Begin>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    // Only a party of the conversation may send a file into it (the engine checks).
    let principal = principal(&state, &headers).await?;
    let token = state
        .engine
        .begin_upload(&principal, ConversationId(body.conversation_id))
        .await?;
    let host = headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .unwrap_or("127.0.0.1");
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "token": token,
            "url": format!("http://{host}/api/v1/uploads/{token}/file"),
            "maxBytes": state.settings.upload_max_bytes,
            "expiresInSeconds": UPLOAD_TTL_MS / 1000,
        })),
    ))
}

async fn receive(
    State(state): State<AppState>,
    Path(token): Path<String>,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let conversation_id = state.engine.claim_upload(&token).await?;
    let stored = store_file(&state, conversation_id, multipart).await;
    state
        .engine
        .upload_received(&token, stored.as_ref().ok().cloned())
        .await?;
    let attachment = stored?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "fileName": attachment.file_name,
            "contentType": attachment.content_type,
            "size": attachment.size,
        })),
    ))
}

async fn store_file(
    state: &AppState,
    conversation_id: ConversationId,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<Attachment, ApiError> {
    let mut multipart = multipart.map_err(|rejection| {
        refusal(
            StatusCode::BAD_REQUEST,
            "INVALID_UPLOAD",
            format!(
                "send the file as multipart/form-data: {}",
                rejection.body_text()
            ),
        )
    })?;
    let too_large = || {
        refusal(
            StatusCode::PAYLOAD_TOO_LARGE,
            "UPLOAD_TOO_LARGE",
            format!(
                "files may be at most {} bytes",
                state.settings.upload_max_bytes
            ),
        )
    };
    while let Some(field) = multipart.next_field().await.map_err(|error| {
        if error.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large()
        } else {
            refusal(StatusCode::BAD_REQUEST, "INVALID_UPLOAD", error.body_text())
        }
    })? {
        if field.name() != Some("file") {
            continue;
        }
        let file_name = field
            .file_name()
            .map(|name| name.rsplit(['/', '\\']).next().unwrap_or(name).to_string())
            .filter(|name| !name.trim().is_empty())
            .unwrap_or_else(|| "file".to_string());
        let content_type = field
            .content_type()
            .unwrap_or("application/octet-stream")
            .to_string();
        if !allowed_type(state, &content_type) {
            return Err(refusal(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UPLOAD_TYPE_REFUSED",
                format!(
                    "files of type {content_type} are not accepted; accepted: {}",
                    state.settings.upload_types.join(", ")
                ),
            ));
        }
        let bytes = field.bytes().await.map_err(|error| {
            if error.status() == StatusCode::PAYLOAD_TOO_LARGE {
                too_large()
            } else {
                refusal(StatusCode::BAD_REQUEST, "INVALID_UPLOAD", error.body_text())
            }
        })?;
        if bytes.len() > state.settings.upload_max_bytes {
            return Err(too_large());
        }
        if bytes.is_empty() {
            return Err(refusal(
                StatusCode::BAD_REQUEST,
                "EMPTY_UPLOAD",
                "the file is empty",
            ));
        }
        // 128 random bits in hex.
        let file_id = switchboard_engine::generate_secret("");
        let dir = upload_dir(state, conversation_id);
        let attachment = Attachment {
            file_id,
            file_name,
            content_type,
            size: bytes.len() as u64,
        };
        let meta = serde_json::to_vec(&attachment).expect("an attachment serialises");
        let written = async {
            tokio::fs::create_dir_all(&dir).await?;
            tokio::fs::write(dir.join(&attachment.file_id), &bytes).await?;
            tokio::fs::write(dir.join(format!("{}.json", attachment.file_id)), meta).await
        }
        .await;
        return match written {
            Ok(()) => Ok(attachment),
            Err(error) => {
                tracing::error!(%error, "could not store an upload");
                Err(refusal(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "SERVER_ERROR",
                    "the file could not be stored; retry",
                ))
            }
        };
    }
    Err(refusal(
        StatusCode::BAD_REQUEST,
        "INVALID_UPLOAD",
        "the multipart body has no field named file",
    ))
}

async fn finish(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let principal = commanding_principal(&state, &headers).await?;
    let message = state.engine.finish_upload(&principal, &token).await?;
    Ok((StatusCode::CREATED, Json(json::message(&message))))
}

async fn download(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((conversation, file)): Path<(i64, String)>,
) -> Result<Response, ApiError> {
    let principal = principal(&state, &headers).await?;
    let conversation_id = ConversationId(conversation);
    state
        .engine
        .get_conversation(&principal, conversation_id)
        .await?;
    let not_found = || refusal(StatusCode::NOT_FOUND, "NOT_FOUND", "no such attachment");
    if !valid_file_id(&file) {
        return Err(not_found());
    }
    let dir = upload_dir(&state, conversation_id);
    let meta = tokio::fs::read(dir.join(format!("{file}.json")))
        .await
        .map_err(|_| not_found())?;
    let attachment: Attachment = serde_json::from_slice(&meta).map_err(|_| not_found())?;
    let bytes = tokio::fs::read(dir.join(&file))
        .await
        .map_err(|_| not_found())?;
    let disposition = format!(
        "attachment; filename=\"{}\"",
        attachment.file_name.replace(['"', '\\', '\r', '\n'], "_")
    );
    Ok((
        [
            (header::CONTENT_TYPE, attachment.content_type),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        Body::from(bytes),
    )
        .into_response())
}
