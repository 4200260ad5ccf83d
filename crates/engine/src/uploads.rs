//! Uploads in flight: a conversation's party is granted a single-use upload token (10
//! minutes); the file is received once under it and finished, by the same principal, into a
//! file message. The bytes themselves are the server's business (where files are kept); the
//! rules of the token are here. The token is kept hashed in the store with its stage, so an
//! upload begun on one node may be sent to and finished on any other: each step moves the
//! stored upload on from the stage it expects, and of two nodes taking the same step at once
//! one does. A finished upload is kept until it expires, known to no one.

use crate::credentials::hash_secret;
use crate::engine::Engine;
use crate::{generate_secret, EngineError};
use switchboard_core::*;
use switchboard_store::{UploadRecord, UploadStage};

/// How long an upload token stays valid for sending the file, and then for finishing it.
pub const UPLOAD_TTL_MS: UnixMillis = 10 * 60 * 1000;

/// Why an upload token cannot be used now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UploadRefusal {
    #[error("no such upload: it was never begun, has expired or was finished")]
    NotFound,
    #[error("the upload URL has expired")]
    Expired,
    #[error("this upload URL has been used already")]
    Used,
    #[error("send the file to the upload URL before finishing")]
    NotReceived,
}

impl Engine {
    /// Grants `principal`, a party of the conversation, a single-use upload token.
    pub async fn begin_upload(
        &self,
        principal: &Principal,
        conversation_id: ConversationId,
    ) -> Result<String, EngineError> {
        self.get_conversation(principal, conversation_id).await?;
        let token = generate_secret("up_");
        let now = self.clock().now_ms();
        let upload = UploadRecord {
            owner: principal.clone(),
            conversation_id,
            expires_at: now + UPLOAD_TTL_MS,
            stage: UploadStage::Waiting,
        };
        self.store()
            .put_upload(&hash_secret(&token), &upload, now)
            .await?;
        Ok(token)
    }

    /// Takes the token's single use for receiving a file; the conversation it goes to.
    pub async fn claim_upload(&self, token: &str) -> Result<ConversationId, EngineError> {
        let hash = hash_secret(token);
        let upload = self
            .store()
            .upload(&hash)
            .await?
            .filter(|upload| upload.stage != UploadStage::Finished)
            .ok_or(UploadRefusal::NotFound)?;
        if upload.expires_at <= self.clock().now_ms() {
            return Err(UploadRefusal::Expired.into());
        }
        if upload.stage != UploadStage::Waiting
            || !self
                .store()
                .advance_upload(
                    &hash,
                    &UploadStage::Waiting,
                    &UploadStage::Receiving,
                    upload.expires_at,
                )
                .await?
        {
            return Err(UploadRefusal::Used.into());
        }
        Ok(upload.conversation_id)
    }

    /// Ends a claim: with the stored file, which may then be finished within the token's
    /// lifetime from now, or (`None`, the file was refused) back to waiting for one.
    pub async fn upload_received(
        &self,
        token: &str,
        attachment: Option<Attachment>,
    ) -> Result<(), EngineError> {
        let hash = hash_secret(token);
        let (next, expires_at) = match attachment {
            Some(attachment) => (
                UploadStage::Received(attachment),
                self.clock().now_ms() + UPLOAD_TTL_MS,
            ),
            None => match self.store().upload(&hash).await? {
                Some(upload) => (UploadStage::Waiting, upload.expires_at),
                None => return Ok(()),
            },
        };
        self.store()
            .advance_upload(&hash, &UploadStage::Receiving, &next, expires_at)
            .await?;
        Ok(())
    }

    /// Finishes the upload into a file message, for the principal that began it only. The
    /// token is the message's `client_message_id`: two nodes finishing it at once store one
    /// message and both answer with it; afterwards the token is known to no one.
    pub async fn finish_upload(
        &self,
        principal: &Principal,
        token: &str,
    ) -> Result<Message, EngineError> {
        let hash = hash_secret(token);
        let upload = self
            .store()
            .upload(&hash)
            .await?
            .filter(|upload| upload.owner == *principal)
            .filter(|upload| upload.expires_at > self.clock().now_ms())
            .filter(|upload| upload.stage != UploadStage::Finished)
            .ok_or(UploadRefusal::NotFound)?;
        let UploadStage::Received(attachment) = &upload.stage else {
            return Err(UploadRefusal::NotReceived.into());
        };
        let message = self
            .send_attachment(
                principal,
                upload.conversation_id,
                attachment.clone(),
                Some(token.to_string()),
            )
            .await?;
        self.store()
            .advance_upload(
                &hash,
                &upload.stage,
                &UploadStage::Finished,
                upload.expires_at,
            )
            .await?;
        Ok(message)
    }
}
