//! Uploads in flight: a conversation's party is granted a single-use upload token (10
//! minutes); the file is received once under it and finished, by the same principal, into a
//! file message. The bytes themselves are the server's business (where files are kept); the
//! rules of the token are here. In memory, like tickets: a token outlives neither its time nor
//! the process.

use crate::engine::Engine;
use crate::{generate_secret, EngineError};
use std::collections::HashMap;
use std::sync::Mutex;
use switchboard_core::*;

/// How long an upload token stays valid.
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

#[derive(Default)]
pub(crate) struct Uploads {
    pending: Mutex<HashMap<String, Pending>>,
}

struct Pending {
    principal: Principal,
    conversation_id: ConversationId,
    expires_at: UnixMillis,
    state: State,
}

enum State {
    Waiting,
    Receiving,
    Received(Attachment),
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
        let mut pending = self.uploads.pending.lock().expect("uploads poisoned");
        pending.retain(|_, upload| upload.expires_at > now);
        pending.insert(
            token.clone(),
            Pending {
                principal: principal.clone(),
                conversation_id,
                expires_at: now + UPLOAD_TTL_MS,
                state: State::Waiting,
            },
        );
        Ok(token)
    }

    /// Takes the token's single use for receiving a file; the conversation it goes to.
    pub fn claim_upload(&self, token: &str) -> Result<ConversationId, UploadRefusal> {
        let mut pending = self.uploads.pending.lock().expect("uploads poisoned");
        let upload = pending.get_mut(token).ok_or(UploadRefusal::NotFound)?;
        if upload.expires_at <= self.clock().now_ms() {
            pending.remove(token);
            return Err(UploadRefusal::Expired);
        }
        if !matches!(upload.state, State::Waiting) {
            return Err(UploadRefusal::Used);
        }
        upload.state = State::Receiving;
        Ok(upload.conversation_id)
    }

    /// Ends a claim: with the stored file, or (`None`, the file was refused) back to waiting.
    pub fn upload_received(&self, token: &str, attachment: Option<Attachment>) {
        if let Some(upload) = self
            .uploads
            .pending
            .lock()
            .expect("uploads poisoned")
            .get_mut(token)
        {
            upload.state = match attachment {
                Some(attachment) => State::Received(attachment),
                None => State::Waiting,
            };
        }
    }

    /// Finishes the upload into a file message, for the principal that began it only.
    pub async fn finish_upload(
        &self,
        principal: &Principal,
        token: &str,
    ) -> Result<Message, EngineError> {
        let (conversation_id, attachment) = {
            let mut pending = self.uploads.pending.lock().expect("uploads poisoned");
            let upload = pending
                .get(token)
                .filter(|upload| upload.principal == *principal)
                .ok_or(UploadRefusal::NotFound)?;
            let State::Received(attachment) = &upload.state else {
                return Err(UploadRefusal::NotReceived.into());
            };
            let taken = (upload.conversation_id, attachment.clone());
            pending.remove(token);
            taken
        };
        self.send_attachment(
            principal,
            conversation_id,
            attachment,
            Some(token.to_string()),
        )
        .await
    }
}
