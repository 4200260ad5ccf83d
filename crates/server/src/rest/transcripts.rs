//! Transcripts over REST (`spec/rest.md`): create one, append segments (each published live on
//! `/ws/transcript/:workspaceId/:transcriptId`), read one back with its segments.

use super::{principal, ApiError, AppState, JsonBody};
use crate::json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::Value;
use switchboard_core::TranscriptId;
use switchboard_engine::NewSegment;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/transcripts", post(create))
        .route("/api/v1/transcripts/{id}", get(show))
        .route("/api/v1/transcripts/{id}/segments", post(append))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Create {
    title: String,
}

async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<Create>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let principal = principal(&state, &headers).await?;
    let transcript = state
        .engine
        .create_transcript(&principal, &body.title)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json::transcript(&transcript, &[])),
    ))
}

async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    let principal = principal(&state, &headers).await?;
    let (transcript, segments) = state
        .engine
        .get_transcript(&principal, TranscriptId(id))
        .await?;
    Ok(Json(json::transcript(&transcript, &segments)))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Segment {
    speaker: String,
    text: String,
    start_ms: i64,
    end_ms: i64,
}

async fn append(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    JsonBody(body): JsonBody<Segment>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let principal = principal(&state, &headers).await?;
    let segment = state
        .engine
        .add_segment(
            &principal,
            TranscriptId(id),
            NewSegment {
                speaker: body.speaker,
                text: body.text,
                start_ms: body.start_ms,
                end_ms: body.end_ms,
            },
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json::transcript_segment(&segment)),
    ))
}
