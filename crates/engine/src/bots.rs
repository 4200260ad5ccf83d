//! Bot agents at work: after a visitor's message is stored, the conversation's bot shows that
//! it is typing, answers (from its rules, or by calling its webhook), and stops typing. A bot
//! that cannot answer tells the visitor so; it never leaves them in silence.

use crate::engine::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::sync::Arc;
use std::time::Duration;
use switchboard_core::bot::{BotKind, BotReply, WebhookSettings};
use switchboard_core::event::BotFailure;
use switchboard_core::*;

/// Answers `message` with bot `bot_id` on a task of its own, so the visitor's acknowledgement
/// never waits for a bot. A conversation a human has taken over (`assignee_id`, as the message
/// was stored) gets no bot answer.
pub(crate) fn answer_in_background(
    engine: Arc<Engine>,
    bot_id: BotId,
    message: Message,
    assignee_id: Option<AgentId>,
) {
    if assignee_id.is_some() {
        return;
    }
    tokio::spawn(async move { answer(&engine, bot_id, message).await });
}

/// Answers a contact's `message` with the bot of the conversation's inbox, if it has one.
pub(crate) fn answer_for_inbox_in_background(
    engine: Arc<Engine>,
    scope: ConversationScope,
    message: Message,
    assignee_id: Option<AgentId>,
) {
    if assignee_id.is_some() {
        return;
    }
    tokio::spawn(async move {
        match engine.store().inbox(scope.account_id, scope.inbox_id).await {
            Ok(Some(Inbox {
                bot_id: Some(bot_id),
                ..
            })) => answer(&engine, bot_id, message).await,
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "could not find the inbox's bot"),
        }
    });
}

async fn answer(engine: &Engine, bot_id: BotId, message: Message) {
    let account_id = message.account_id;
    let conversation_id = message.conversation_id;
    let bot = match engine.store().bot(account_id, bot_id).await {
        Ok(Some(bot)) => bot,
        Ok(None) => {
            let failure = EventKind::BotFailed {
                conversation_id,
                bot_name: String::new(),
                failure: BotFailure::ConfigurationMissing,
            };
            engine.publish_bot_event(conversation_id, failure).await;
            return;
        }
        Err(error) => {
            tracing::error!(%error, "could not load a bot");
            let failure = EventKind::BotFailed {
                conversation_id,
                bot_name: String::new(),
                failure: BotFailure::Unavailable,
            };
            engine.publish_bot_event(conversation_id, failure).await;
            return;
        }
    };
    // A scripted bot knows at once whether it will answer; one with no rule for this text
    // and no fallback stays silent rather than flashing a typing indicator.
    if let BotKind::Scripted(rules) = &bot.kind {
        if rules.answer(&message.content).is_none() {
            return;
        }
    }
    let actor = Actor::Bot {
        id: bot.id,
        name: bot.name.clone(),
    };
    engine
        .publish_bot_event(
            conversation_id,
            EventKind::TypingOn {
                conversation_id,
                actor: actor.clone(),
                private: false,
            },
        )
        .await;
    let reply = match &bot.kind {
        BotKind::Scripted(rules) => Ok(rules.answer(&message.content).cloned()),
        BotKind::Webhook(settings) => call_webhook(engine, settings, &bot, &message).await,
    };
    let stored = match reply {
        Ok(Some(reply)) => engine
            .store_bot_reply(
                &conversation_id,
                account_id,
                &bot,
                reply,
                message.id.to_string(),
            )
            .await
            .map(|_| ())
            .map_err(|error| tracing::error!(%error, "could not store a bot reply")),
        Ok(None) => Ok(()),
        Err(()) => Err(()),
    };
    if stored.is_err() {
        let failure = EventKind::BotFailed {
            conversation_id,
            bot_name: bot.name.clone(),
            failure: BotFailure::Unavailable,
        };
        engine.publish_bot_event(conversation_id, failure).await;
    }
    engine
        .publish_bot_event(
            conversation_id,
            EventKind::TypingOff {
                conversation_id,
                actor,
            },
        )
        .await;
}

/// The body POSTed to a webhook bot.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WebhookRequest<'a> {
    event: &'static str,
    account_id: i64,
    conversation_id: i64,
    bot: &'a str,
    message: WebhookMessage<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WebhookMessage<'a> {
    id: i64,
    seq: i64,
    content: &'a str,
    sender_type: &'static str,
    sender_id: i64,
    client_message_id: Option<&'a str>,
    created_at: i64,
}

/// What a webhook bot answers. An empty object (or 204) means it chose not to reply.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WebhookReply {
    #[serde(default)]
    text: String,
    #[serde(default)]
    speech: Option<String>,
    /// The same `{action, ...}` objects as the native `agent_response`.
    #[serde(default)]
    iframe_commands: Vec<IframeCommand>,
    #[serde(default)]
    suggestions: Vec<String>,
    #[serde(default)]
    lead_form: Option<WebhookLeadForm>,
}

#[derive(Deserialize)]
struct WebhookLeadForm {
    fields: Vec<String>,
    cta: WebhookCta,
}

#[derive(Deserialize)]
struct WebhookCta {
    text: String,
    url: String,
}

/// `sha256=<hex>` of HMAC-SHA256 over `"{timestamp}.{body}"`, sent as
/// `X-Switchboard-Signature` with the timestamp in `X-Switchboard-Timestamp`.
pub fn webhook_signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

async fn call_webhook(
    engine: &Engine,
    settings: &WebhookSettings,
    bot: &Bot,
    message: &Message,
) -> Result<Option<BotReply>, ()> {
    let body = serde_json::to_vec(&WebhookRequest {
        event: "message.created",
        account_id: message.account_id.0,
        conversation_id: message.conversation_id.0,
        bot: &bot.name,
        message: WebhookMessage {
            id: message.id.0,
            seq: message.seq,
            content: &message.content,
            sender_type: message.sender.kind_str(),
            sender_id: message.sender.id_number(),
            client_message_id: message.client_message_id.as_deref(),
            created_at: message.created_at,
        },
    })
    .expect("the webhook request serialises");
    let mut backoff = Duration::from_millis(200);
    for attempt in 0..=settings.max_retries {
        if attempt > 0 {
            tokio::time::sleep(backoff).await;
            backoff *= 2;
        }
        let timestamp = engine.clock().now_ms() / 1000;
        let response = engine
            .http
            .post(&settings.url)
            .timeout(Duration::from_millis(settings.timeout_ms))
            .header("content-type", "application/json")
            .header("x-switchboard-timestamp", timestamp.to_string())
            .header(
                "x-switchboard-signature",
                webhook_signature(&settings.secret, timestamp, &body),
            )
            .body(body.clone())
            .send()
            .await;
        let response = match response {
            Ok(response) => response,
            Err(error) => {
                tracing::warn!(bot = %bot.name, attempt, %error, "webhook bot unreachable");
                continue;
            }
        };
        let status = response.status();
        if status.is_server_error() || status.as_u16() == 429 {
            tracing::warn!(bot = %bot.name, attempt, %status, "webhook bot failed; retrying");
            continue;
        }
        if !status.is_success() {
            tracing::warn!(bot = %bot.name, %status, "webhook bot refused the request");
            return Err(());
        }
        if status.as_u16() == 204 {
            return Ok(None);
        }
        let bytes = match response.bytes().await {
            Ok(bytes) => bytes,
            Err(error) => {
                tracing::warn!(bot = %bot.name, attempt, %error, "webhook reply cut off");
                continue;
            }
        };
        let reply: WebhookReply = match serde_json::from_slice(&bytes) {
            Ok(reply) => reply,
            Err(error) => {
                tracing::warn!(bot = %bot.name, %error, "webhook reply is not the expected JSON");
                return Err(());
            }
        };
        if reply.text.trim().is_empty() {
            return Ok(None);
        }
        return Ok(Some(BotReply {
            text: reply.text,
            speech: reply.speech,
            iframe_commands: reply.iframe_commands,
            suggestions: reply.suggestions,
            lead_form: reply.lead_form.map(|form| LeadForm {
                fields: form.fields,
                cta_text: form.cta.text,
                cta_url: form.cta.url,
            }),
        }));
    }
    Err(())
}
