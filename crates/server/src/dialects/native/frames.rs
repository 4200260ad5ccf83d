//! Native frames: decoding what a visitor sends, rendering what it receives. Pure functions,
//! tested frame by frame.

use axum::extract::ws::Utf8Bytes;
use serde_json::{json, Map, Value};
use switchboard_core::event::BotFailure;
use switchboard_core::*;

/// The error codes of `spec/native.md`, spelled as on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    AuthRequired,
    InvalidToken,
    SessionNotFound,
    SessionExpired,
    InvalidJson,
    EmptyMessage,
    UnknownType,
    PdpNotFound,
    RateLimited,
    MessageTooLarge,
    /// Extension: the bot was called and failed.
    AgentUnavailable,
    /// Extension: the server could not complete the request (storage down); retry later.
    ServerError,
    /// Extension (managed sockets): no such record, or not this credential's.
    NotFound,
    /// Extension (managed sockets): the credential may not do this.
    Forbidden,
    /// Extension (managed sockets): the ticket is unknown, used or expired.
    InvalidTicket,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::AuthRequired => "AUTH_REQUIRED",
            ErrorCode::InvalidToken => "INVALID_TOKEN",
            ErrorCode::SessionNotFound => "SESSION_NOT_FOUND",
            ErrorCode::SessionExpired => "SESSION_EXPIRED",
            ErrorCode::InvalidJson => "INVALID_JSON",
            ErrorCode::EmptyMessage => "EMPTY_MESSAGE",
            ErrorCode::UnknownType => "UNKNOWN_TYPE",
            ErrorCode::PdpNotFound => "PDP_NOT_FOUND",
            ErrorCode::RateLimited => "RATE_LIMITED",
            ErrorCode::MessageTooLarge => "MESSAGE_TOO_LARGE",
            ErrorCode::AgentUnavailable => "AGENT_UNAVAILABLE",
            ErrorCode::ServerError => "SERVER_ERROR",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::InvalidTicket => "INVALID_TICKET",
        }
    }
}

/// A frame a visitor sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientFrame {
    VisitorMessage {
        text: String,
        client_message_id: Option<String>,
    },
    Heartbeat,
    IframeEvent {
        event: String,
        selector: Option<String>,
        url: Option<String>,
    },
    Typing {
        is_typing: bool,
    },
    Read {
        seq: Seq,
    },
    Resume {
        last_seq: Seq,
    },
}

/// A frame that could not be decoded, with the error to answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameError {
    pub code: ErrorCode,
    pub message: String,
}

fn invalid(message: impl Into<String>) -> FrameError {
    FrameError {
        code: ErrorCode::InvalidJson,
        message: message.into(),
    }
}

fn optional_string(
    payload: &Map<String, Value>,
    field: &str,
) -> Result<Option<String>, FrameError> {
    match payload.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(_) => Err(invalid(format!("payload.{field} must be a string"))),
    }
}

fn required_seq(payload: &Map<String, Value>, field: &str) -> Result<Seq, FrameError> {
    match payload.get(field) {
        Some(Value::Number(number)) => number
            .as_i64()
            .filter(|seq| *seq >= 0)
            .ok_or_else(|| invalid(format!("payload.{field} must be a non-negative integer"))),
        _ => Err(invalid(format!(
            "payload.{field} must be a non-negative integer"
        ))),
    }
}

/// Splits a `{type, payload}` frame into its type and payload object.
fn split_frame(text: &str) -> Result<(String, Map<String, Value>), FrameError> {
    let value: Value = serde_json::from_str(text)
        .map_err(|error| invalid(format!("the frame is not valid JSON: {error}")))?;
    let Value::Object(mut frame) = value else {
        return Err(invalid(
            "the frame must be a JSON object with type and payload",
        ));
    };
    let kind = match frame.remove("type") {
        Some(Value::String(kind)) => kind,
        Some(_) => return Err(invalid("type must be a string")),
        None => return Err(invalid("the frame has no type")),
    };
    let payload = match frame.remove("payload") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(payload)) => payload,
        Some(_) => return Err(invalid("payload must be an object")),
    };
    Ok((kind, payload))
}

/// Decodes one text frame of a demo session.
pub fn decode_client_frame(text: &str) -> Result<ClientFrame, FrameError> {
    let (kind, payload) = split_frame(text)?;
    match kind.as_str() {
        "visitor_message" => {
            let text = optional_string(&payload, "text")?.unwrap_or_default();
            let client_message_id = optional_string(&payload, "clientMessageId")?;
            Ok(ClientFrame::VisitorMessage {
                text,
                client_message_id,
            })
        }
        "heartbeat" => Ok(ClientFrame::Heartbeat),
        "iframe_event" => Ok(ClientFrame::IframeEvent {
            event: optional_string(&payload, "event")?
                .ok_or_else(|| invalid("payload.event must be a string"))?,
            selector: optional_string(&payload, "selector")?,
            url: optional_string(&payload, "url")?,
        }),
        "typing" => match payload.get("isTyping") {
            Some(Value::Bool(is_typing)) => Ok(ClientFrame::Typing {
                is_typing: *is_typing,
            }),
            _ => Err(invalid("payload.isTyping must be true or false")),
        },
        "read" => Ok(ClientFrame::Read {
            seq: required_seq(&payload, "seq")?,
        }),
        "resume" => Ok(ClientFrame::Resume {
            last_seq: required_seq(&payload, "lastSeq")?,
        }),
        other => Err(FrameError {
            code: ErrorCode::UnknownType,
            message: format!("unknown message type {other:?}"),
        }),
    }
}

/// A command a managed chat socket sends about its conversation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChatCommand {
    Message {
        content: String,
        client_message_id: Option<String>,
        private: bool,
    },
    Typing {
        is_typing: bool,
        private: bool,
    },
    Read {
        seq: Seq,
    },
}

impl ChatCommand {
    pub fn into_command(self, conversation_id: ConversationId) -> Command {
        match self {
            ChatCommand::Message {
                content,
                client_message_id,
                private,
            } => Command::SendMessage {
                conversation_id,
                content,
                client_message_id,
                private,
            },
            ChatCommand::Typing { is_typing, private } => Command::SetTyping {
                conversation_id,
                is_typing,
                private,
            },
            ChatCommand::Read { seq } => Command::MarkRead {
                conversation_id,
                seq,
            },
        }
    }
}

/// A frame a managed socket (`/ws/chat`, `/ws/notifications`) sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ManagedFrame {
    Heartbeat,
    Resume { last_seq: Seq },
    Command(ChatCommand),
}

fn optional_bool(payload: &Map<String, Value>, field: &str) -> Result<bool, FrameError> {
    match payload.get(field) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(value)) => Ok(*value),
        Some(_) => Err(invalid(format!("payload.{field} must be true or false"))),
    }
}

/// Decodes one text frame of a managed socket.
pub fn decode_managed_frame(text: &str) -> Result<ManagedFrame, FrameError> {
    let (kind, payload) = split_frame(text)?;
    match kind.as_str() {
        "heartbeat" => Ok(ManagedFrame::Heartbeat),
        "resume" => Ok(ManagedFrame::Resume {
            last_seq: required_seq(&payload, "lastSeq")?,
        }),
        "message" => Ok(ManagedFrame::Command(ChatCommand::Message {
            content: optional_string(&payload, "content")?.unwrap_or_default(),
            client_message_id: optional_string(&payload, "clientMessageId")?,
            private: optional_bool(&payload, "private")?,
        })),
        "typing" => match payload.get("isTyping") {
            Some(Value::Bool(is_typing)) => Ok(ManagedFrame::Command(ChatCommand::Typing {
                is_typing: *is_typing,
                private: optional_bool(&payload, "isPrivate")?,
            })),
            _ => Err(invalid("payload.isTyping must be true or false")),
        },
        "read" => Ok(ManagedFrame::Command(ChatCommand::Read {
            seq: required_seq(&payload, "seq")?,
        })),
        other => Err(FrameError {
            code: ErrorCode::UnknownType,
            message: format!("unknown message type {other:?}"),
        }),
    }
}

pub(super) fn frame(kind: &str, payload: Value) -> Utf8Bytes {
    frame_of(kind, &payload)
}

/// `{"payload":…,"type":kind}` written straight from `payload`, with no [`Value`] built around
/// it: the frames sent for every message use it. The keys come in the order a [`Value`] object
/// prints them (sorted), so the text is the same either way.
fn frame_of(kind: &str, payload: &impl serde::Serialize) -> Utf8Bytes {
    #[derive(serde::Serialize)]
    struct Frame<'a, P> {
        payload: &'a P,
        #[serde(rename = "type")]
        kind: &'a str,
    }
    let text = serde_json::to_string(&Frame { payload, kind }).expect("a frame serialises");
    Utf8Bytes::from(text)
}

pub fn error_frame(code: ErrorCode, message: &str) -> Utf8Bytes {
    frame("error", json!({"code": code.as_str(), "message": message}))
}

pub fn rate_limited_frame(retry_after_ms: u64) -> Utf8Bytes {
    frame(
        "error",
        json!({
            "code": ErrorCode::RateLimited.as_str(),
            "message": "rate limit exceeded",
            "retryAfter": retry_after_ms,
        }),
    )
}

/// The `error` frame answering a refused command, on any native socket.
pub fn engine_error_frame(error: switchboard_engine::EngineError) -> Utf8Bytes {
    use switchboard_engine::EngineError;
    match error {
        EngineError::Domain(DomainError::RateLimited { retry_after_ms }) => {
            rate_limited_frame(retry_after_ms)
        }
        other => {
            let (code, message) = describe_engine_error(other);
            error_frame(code, &message)
        }
    }
}

/// The error code and message an engine refusal is told to a client as, in every dialect.
pub fn describe_engine_error(error: switchboard_engine::EngineError) -> (ErrorCode, String) {
    use switchboard_engine::EngineError;
    match error {
        EngineError::Domain(DomainError::EmptyMessage) => {
            (ErrorCode::EmptyMessage, "Message text is empty".into())
        }
        EngineError::Domain(DomainError::MessageTooLarge { limit_bytes }) => (
            ErrorCode::MessageTooLarge,
            format!("Message text is larger than {limit_bytes} bytes"),
        ),
        EngineError::Domain(DomainError::RateLimited { retry_after_ms }) => (
            ErrorCode::RateLimited,
            format!("rate limit exceeded; retry after {retry_after_ms} ms"),
        ),
        EngineError::Domain(error @ DomainError::InvalidField { .. }) => {
            (ErrorCode::InvalidJson, error.to_string())
        }
        EngineError::Domain(DomainError::NotFound) => (ErrorCode::NotFound, "not found".into()),
        EngineError::Domain(DomainError::Forbidden) => (
            ErrorCode::Forbidden,
            "not allowed for this credential".into(),
        ),
        EngineError::AgentNotFound { .. } => (
            ErrorCode::PdpNotFound,
            "the agent configuration for this session is missing".into(),
        ),
        other => {
            tracing::error!(error = %other, "a socket command failed");
            (
                ErrorCode::ServerError,
                "the server could not process this; retry".into(),
            )
        }
    }
}

pub fn pong_frame(now: UnixMillis) -> Utf8Bytes {
    frame("pong", json!({"ts": now}))
}

pub fn ack_frame(message: &Message) -> Utf8Bytes {
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Ack<'a> {
        client_message_id: &'a Option<String>,
        id: i64,
        seq: Seq,
    }
    frame_of(
        "ack",
        &Ack {
            client_message_id: &message.client_message_id,
            id: message.id.0,
            seq: message.seq,
        },
    )
}

fn agent_id(actor_name: &Sender) -> String {
    match actor_name {
        Sender::Bot { name, .. } => name.clone(),
        Sender::Agent(id) => format!("agent:{id}"),
        Sender::Integration(_) => "integration".into(),
        Sender::System => "system".into(),
        Sender::Contact(id) => format!("contact:{id}"),
    }
}

fn actor_agent_id(actor: &Actor) -> Option<String> {
    match actor {
        Actor::Bot { name, .. } => Some(name.clone()),
        Actor::Agent(id) => Some(format!("agent:{id}")),
        Actor::Contact(_) => None,
    }
}

/// The frames a message is shown to a visitor as: an `agent_response` for every outgoing
/// message, and a `lead_form` after it when the message carries one.
pub fn message_frames(message: &Message) -> Vec<Utf8Bytes> {
    if message.private
        || !matches!(
            message.message_type,
            MessageType::Outgoing | MessageType::Template
        )
    {
        return Vec::new();
    }
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct AgentResponse<'a> {
        agent_id: String,
        iframe_commands: Vec<Value>,
        seq: Seq,
        speech: &'a str,
        suggestions: &'a [String],
        text: &'a str,
    }
    let attributes = &message.attributes;
    let mut frames = vec![frame_of(
        "agent_response",
        &AgentResponse {
            agent_id: agent_id(&message.sender),
            iframe_commands: attributes
                .iframe_commands
                .iter()
                .map(crate::json::iframe_command)
                .collect(),
            seq: message.seq,
            speech: attributes.speech.as_deref().unwrap_or(&message.content),
            suggestions: &attributes.suggestions,
            text: &message.content,
        },
    )];
    if let Some(form) = &attributes.lead_form {
        frames.push(frame(
            "lead_form",
            json!({"fields": form.fields, "cta": {"text": form.cta_text, "url": form.cta_url}}),
        ));
    }
    frames
}

/// Renders an event for a demo-session visitor. Events a visitor has no frame for render to
/// nothing; session end is handled by the connection (it closes with 1000).
pub fn render_for_visitor(event: &Event) -> Vec<Utf8Bytes> {
    match &event.kind {
        EventKind::MessageCreated(message) => message_frames(message),
        EventKind::TypingOn { actor, .. } | EventKind::TypingOff { actor, .. } => {
            let is_typing = matches!(event.kind, EventKind::TypingOn { .. });
            match actor_agent_id(actor) {
                Some(agent_id) => vec![frame(
                    "typing_indicator",
                    json!({"agentId": agent_id, "isTyping": is_typing}),
                )],
                None => Vec::new(),
            }
        }
        EventKind::BotFailed { failure, .. } => vec![match failure {
            BotFailure::ConfigurationMissing => error_frame(
                ErrorCode::PdpNotFound,
                "the agent configuration for this session is missing",
            ),
            BotFailure::Unavailable => error_frame(
                ErrorCode::AgentUnavailable,
                "the agent could not answer; please try again",
            ),
        }],
        // Nothing else reaches a session socket (`session_shows`); session end is the
        // connection's business.
        _ => Vec::new(),
    }
}

/// The kinds of event a demo-session socket is sent: messages (every one, for its cursor, even
/// those it does not show), typing, bot failures and the session's end. The rest is for agents.
pub fn session_shows(kind: &EventKind) -> bool {
    match kind {
        EventKind::MessageCreated(_)
        | EventKind::TypingOn { .. }
        | EventKind::TypingOff { .. }
        | EventKind::BotFailed { .. }
        | EventKind::SessionEnded { .. } => true,
        EventKind::MessageUpdated(_)
        | EventKind::ConversationRead { .. }
        | EventKind::ConversationCreated(_)
        | EventKind::ConversationStatusChanged(_)
        | EventKind::AssigneeChanged(_)
        | EventKind::TeamChanged(_)
        | EventKind::AgentJoined { .. }
        | EventKind::AgentLeft { .. }
        | EventKind::NotificationCreated(_)
        | EventKind::ContactCreated(_)
        | EventKind::ContactUpdated(_)
        | EventKind::PresenceUpdate { .. }
        | EventKind::AccountStatusUpdated { .. }
        | EventKind::TranscriptUpdated(_)
        | EventKind::InboxMembershipChanged { .. } => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Result<ClientFrame, (ErrorCode, &str)>) {
        let decoded = decode_client_frame(input);
        match expected {
            Ok(frame) => assert_eq!(decoded, Ok(frame), "{input}"),
            Err((code, fragment)) => {
                let error = decoded.expect_err(input);
                assert_eq!(error.code, code, "{input}");
                assert!(
                    error.message.contains(fragment),
                    "{input}: {}",
                    error.message
                );
            }
        }
    }

    #[test]
    fn decodes_every_client_frame() {
        check(
            r#"{"type":"visitor_message","payload":{"text":"Show me the dashboard"}}"#,
            Ok(ClientFrame::VisitorMessage {
                text: "Show me the dashboard".into(),
                client_message_id: None,
            }),
        );
        check(
            r#"{"type":"visitor_message","payload":{"text":"hi","clientMessageId":"c1"}}"#,
            Ok(ClientFrame::VisitorMessage {
                text: "hi".into(),
                client_message_id: Some("c1".into()),
            }),
        );
        check(
            r#"{"type":"heartbeat","payload":{}}"#,
            Ok(ClientFrame::Heartbeat),
        );
        check(r#"{"type":"heartbeat"}"#, Ok(ClientFrame::Heartbeat));
        check(
            r##"{"type":"iframe_event","payload":{"event":"click","selector":"#btn","url":"/dashboard"}}"##,
            Ok(ClientFrame::IframeEvent {
                event: "click".into(),
                selector: Some("#btn".into()),
                url: Some("/dashboard".into()),
            }),
        );
        check(
            r#"{"type":"typing","payload":{"isTyping":true}}"#,
            Ok(ClientFrame::Typing { is_typing: true }),
        );
        check(
            r#"{"type":"read","payload":{"seq":42}}"#,
            Ok(ClientFrame::Read { seq: 42 }),
        );
        check(
            r#"{"type":"resume","payload":{"lastSeq":41}}"#,
            Ok(ClientFrame::Resume { last_seq: 41 }),
        );
    }

    #[test]
    fn refuses_malformed_frames_with_the_documented_codes() {
        check("not json", Err((ErrorCode::InvalidJson, "not valid JSON")));
        check("[1,2]", Err((ErrorCode::InvalidJson, "JSON object")));
        check(
            r#"{"payload":{}}"#,
            Err((ErrorCode::InvalidJson, "no type")),
        );
        check(
            r#"{"type":7}"#,
            Err((ErrorCode::InvalidJson, "type must be a string")),
        );
        check(
            r#"{"type":"heartbeat","payload":[]}"#,
            Err((ErrorCode::InvalidJson, "payload must be an object")),
        );
        check(
            r#"{"type":"dance","payload":{}}"#,
            Err((ErrorCode::UnknownType, "dance")),
        );
        check(
            r#"{"type":"visitor_message","payload":{"text":5}}"#,
            Err((ErrorCode::InvalidJson, "payload.text")),
        );
        check(
            r#"{"type":"typing","payload":{}}"#,
            Err((ErrorCode::InvalidJson, "isTyping")),
        );
        check(
            r#"{"type":"read","payload":{"seq":-1}}"#,
            Err((ErrorCode::InvalidJson, "seq")),
        );
        check(
            r#"{"type":"resume","payload":{"lastSeq":"x"}}"#,
            Err((ErrorCode::InvalidJson, "lastSeq")),
        );
        check(
            r#"{"type":"iframe_event","payload":{}}"#,
            Err((ErrorCode::InvalidJson, "event")),
        );
    }

    #[test]
    fn decodes_managed_frames() {
        assert_eq!(
            decode_managed_frame(r#"{"type":"heartbeat"}"#),
            Ok(ManagedFrame::Heartbeat)
        );
        assert_eq!(
            decode_managed_frame(r#"{"type":"message","payload":{"content":"hi","private":true}}"#),
            Ok(ManagedFrame::Command(ChatCommand::Message {
                content: "hi".into(),
                client_message_id: None,
                private: true
            }))
        );
        assert_eq!(
            decode_managed_frame(r#"{"type":"typing","payload":{"isTyping":false}}"#),
            Ok(ManagedFrame::Command(ChatCommand::Typing {
                is_typing: false,
                private: false
            }))
        );
        assert_eq!(
            decode_managed_frame(r#"{"type":"resume","payload":{"lastSeq":3}}"#),
            Ok(ManagedFrame::Resume { last_seq: 3 })
        );
        assert_eq!(
            decode_managed_frame(r#"{"type":"message","payload":{"private":"yes"}}"#)
                .unwrap_err()
                .code,
            ErrorCode::InvalidJson
        );
        assert_eq!(
            decode_managed_frame(r#"{"type":"visitor_message","payload":{}}"#)
                .unwrap_err()
                .code,
            ErrorCode::UnknownType
        );
    }

    #[test]
    fn renders_a_bot_reply_with_its_lead_form() {
        let message = Message {
            id: MessageId(9),
            account_id: AccountId(1),
            conversation_id: ConversationId(2),
            seq: 4,
            sender: Sender::Bot {
                id: BotId(1),
                name: "demo".into(),
            },
            message_type: MessageType::Outgoing,
            content_type: ContentType::Form,
            content: "Plans start free.".into(),
            attributes: MessageAttributes {
                speech: None,
                iframe_commands: vec![IframeCommand::Navigate {
                    url: "/pricing".into(),
                }],
                suggestions: vec!["Talk to a human".into()],
                lead_form: Some(LeadForm {
                    fields: vec!["email".into(), "company".into()],
                    cta_text: "Start Free Trial".into(),
                    cta_url: "https://example.com/signup".into(),
                }),
                attachment: None,
            },
            private: false,
            status: MessageStatus::Sent,
            client_message_id: None,
            created_at: 0,
            updated_at: 0,
        };
        let expected = [
            json!({"type": "agent_response", "payload": {
                "text": "Plans start free.", "speech": "Plans start free.",
                "iframeCommands": [{"action": "navigate", "url": "/pricing"}],
                "suggestions": ["Talk to a human"], "agentId": "demo", "seq": 4}}),
            json!({"type": "lead_form", "payload": {
                "fields": ["email", "company"],
                "cta": {"text": "Start Free Trial", "url": "https://example.com/signup"}}}),
        ];
        // Written straight from the record, the text is exactly what the Value prints.
        let texts: Vec<String> = message_frames(&message)
            .iter()
            .map(|frame| frame.as_str().to_string())
            .collect();
        let expected_texts: Vec<String> = expected.iter().map(Value::to_string).collect();
        assert_eq!(texts, expected_texts);
        let spoken = Message {
            attributes: MessageAttributes {
                speech: Some("Plans start at zero.".into()),
                ..message.attributes.clone()
            },
            ..message.clone()
        };
        let first: Value = serde_json::from_str(message_frames(&spoken)[0].as_str()).unwrap();
        assert_eq!(first["payload"]["speech"], "Plans start at zero.");
        assert_eq!(first["payload"]["text"], "Plans start free.");
        let incoming = Message {
            message_type: MessageType::Incoming,
            ..message.clone()
        };
        assert!(message_frames(&incoming).is_empty());
        let note = Message {
            private: true,
            ..message
        };
        assert!(message_frames(&note).is_empty());
    }

    #[test]
    fn acknowledges_with_the_text_the_value_form_prints() {
        let mut message = Message {
            id: MessageId(9),
            account_id: AccountId(1),
            conversation_id: ConversationId(2),
            seq: 4,
            sender: Sender::Contact(ContactId(3)),
            message_type: MessageType::Incoming,
            content_type: ContentType::Text,
            content: "hi".into(),
            attributes: MessageAttributes::default(),
            private: false,
            status: MessageStatus::Sent,
            client_message_id: Some("c-\"1\"".into()),
            created_at: 0,
            updated_at: 0,
        };
        let expected = |client_message_id: Value| {
            json!({"type": "ack", "payload": {"clientMessageId": client_message_id, "id": 9, "seq": 4}})
                .to_string()
        };
        assert_eq!(ack_frame(&message).as_str(), expected(json!("c-\"1\"")));
        message.client_message_id = None;
        assert_eq!(ack_frame(&message).as_str(), expected(Value::Null));
    }
}
