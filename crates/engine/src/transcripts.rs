//! Transcripts: an account's running records of calls, appended segment by segment, each
//! published live as `transcript.updated` to whoever follows the transcript. Staff only.

use crate::engine::Engine;
use crate::hub::Subscription;
use crate::EngineError;
use switchboard_core::*;

/// The longest segment text accepted, in bytes.
pub const MAX_SEGMENT_BYTES: usize = 16 * 1024;

/// A segment to append.
pub struct NewSegment {
    pub speaker: String,
    pub text: String,
    pub start_ms: i64,
    pub end_ms: i64,
}

fn staff_account(principal: &Principal) -> Result<AccountId, EngineError> {
    match principal {
        Principal::Agent { account_id, .. } | Principal::Integration { account_id } => {
            Ok(*account_id)
        }
        _ => Err(DomainError::Forbidden.into()),
    }
}

impl Engine {
    pub async fn create_transcript(
        &self,
        principal: &Principal,
        title: &str,
    ) -> Result<Transcript, EngineError> {
        let account_id = staff_account(principal)?;
        if title.trim().is_empty() || title.len() > 500 {
            return Err(DomainError::InvalidField {
                field: "title",
                reason: "must be 1 to 500 bytes",
            }
            .into());
        }
        Ok(self
            .store()
            .create_transcript(account_id, title.trim(), self.clock().now_ms())
            .await?)
    }

    /// A transcript of the principal's account with its segments; not found otherwise.
    pub async fn get_transcript(
        &self,
        principal: &Principal,
        transcript_id: TranscriptId,
    ) -> Result<(Transcript, Vec<TranscriptSegment>), EngineError> {
        let account_id = staff_account(principal)?;
        let transcript = self
            .store()
            .transcript(account_id, transcript_id)
            .await?
            .ok_or(DomainError::NotFound)?;
        let segments = self.store().segments(transcript_id).await?;
        Ok((transcript, segments))
    }

    /// Appends a segment and publishes it as `transcript.updated`.
    pub async fn add_segment(
        &self,
        principal: &Principal,
        transcript_id: TranscriptId,
        segment: NewSegment,
    ) -> Result<TranscriptSegment, EngineError> {
        let account_id = staff_account(principal)?;
        if segment.text.trim().is_empty() {
            return Err(DomainError::EmptyMessage.into());
        }
        if segment.text.len() > MAX_SEGMENT_BYTES {
            return Err(DomainError::MessageTooLarge {
                limit_bytes: MAX_SEGMENT_BYTES,
            }
            .into());
        }
        if segment.start_ms < 0 || segment.end_ms < segment.start_ms {
            return Err(DomainError::InvalidField {
                field: "endMs",
                reason: "must not be before startMs, and neither negative",
            }
            .into());
        }
        self.store()
            .transcript(account_id, transcript_id)
            .await?
            .ok_or(DomainError::NotFound)?;
        let stored = self
            .store()
            .append_segment(
                transcript_id,
                &segment.speaker,
                &segment.text,
                segment.start_ms,
                segment.end_ms,
                self.clock().now_ms(),
            )
            .await?;
        self.publish(Event {
            account_id,
            inbox_id: None,
            contact_id: None,
            kind: EventKind::TranscriptUpdated(stored.clone()),
        })
        .await?;
        Ok(stored)
    }

    /// Follows a transcript of the principal's workspace (its account) live.
    pub async fn open_transcript_feed(
        &self,
        principal: &Principal,
        workspace_id: AccountId,
        transcript_id: TranscriptId,
    ) -> Result<Subscription, EngineError> {
        let account_id = staff_account(principal)?;
        if account_id != workspace_id {
            return Err(DomainError::NotFound.into());
        }
        self.store()
            .transcript(account_id, transcript_id)
            .await?
            .ok_or(DomainError::NotFound)?;
        Ok(self.hub().subscribe(
            principal.clone(),
            vec![Topic::Transcript(transcript_id)],
            self.config().outbound_queue,
        ))
    }
}
