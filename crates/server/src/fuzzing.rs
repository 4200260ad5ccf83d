//! Entry points for the fuzz targets in `fuzz/` and for the test that replays their committed
//! corpora on every run: each takes arbitrary bytes and decodes them the way the server does,
//! checking what must hold whatever arrives. A panic here is a bug in the server, not in the
//! input.

use crate::dialects::cable::frames as cable;
use crate::dialects::native::frames as native;
use crate::dialects::socketio::events as socketio;
use crate::Settings;
use axum::body::Body;
use axum::http::Request;
use std::sync::Arc;

/// A native dialect text frame, as a session socket and a managed socket read it.
pub fn native_frame(data: &[u8]) {
    // The WebSocket layer refuses text that is not UTF-8 before any decoding.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(frame) = native::decode_client_frame(text) {
        // Whatever decodes renders back into a frame without panicking.
        let _ = format!("{frame:?}");
    }
    let _ = native::decode_managed_frame(text);
}

/// A Socket.IO client event: the first line is the event's name, the rest its payload (JSON,
/// or anything else, which the server reads as no payload).
pub fn socketio_event(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (name, payload) = text.split_once('\n').unwrap_or(("send-message", &text));
    let payload = serde_json::from_str(payload).unwrap_or(serde_json::Value::Null);
    match socketio::client_event(name, &payload) {
        Ok(socketio::ClientEvent::Command(command)) => {
            // A command is about the conversation the payload names.
            assert_eq!(
                Ok(command.conversation_id()),
                socketio::conversation_id(&payload)
            );
            assert!(socketio::CLIENT_EVENTS.contains(&name));
        }
        Ok(socketio::ClientEvent::Join { .. }) => assert_eq!(name, "join-conversation"),
        Err(reason) => assert!(!reason.is_empty()),
    }
}

/// An ActionCable frame: the command, then its identifier and its `message` data.
pub fn cable_frame(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Some(command) = cable::decode_command(text) else {
        return;
    };
    let _ = cable::room_identifier(&command.identifier);
    let _ = cable::action(command.data.as_deref());
    // Identifiers are echoed exactly; the frames that echo them stay valid JSON.
    for frame in [
        cable::confirm(&command.identifier),
        cable::reject(&command.identifier),
    ] {
        let echoed: serde_json::Value = serde_json::from_str(&frame).expect("valid JSON");
        assert_eq!(echoed["identifier"], command.identifier.as_str());
    }
}

/// The whole HTTP application (every REST route and upgrade, with the demo workspace's keys) on
/// a throwaway SQLite store, driven without sockets.
pub struct RestTarget {
    runtime: tokio::runtime::Runtime,
    app: axum::Router,
    /// Substituted for `$API`, `$PK`, `$AGENT`, `$INBOX` in inputs, so the fuzzer reaches the
    /// authenticated routes.
    keys: [(&'static str, String); 4],
    _dir: tempfile::TempDir,
}

impl RestTarget {
    pub fn new() -> RestTarget {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut settings = Settings::new(dir.path());
        // Every request is one principal here; limits would only hide the routes behind 429.
        settings.engine.rate_rules = switchboard_core::limits::RateRules::UNLIMITED;
        let (app, keys) = runtime.block_on(async {
            let store = crate::server::open_store(&settings).await.expect("a store");
            let bus: Arc<dyn switchboard_bus::Bus> = Arc::new(switchboard_bus::InProcessBus::new());
            let engine = switchboard_engine::Engine::start(store, bus, settings.engine.clone())
                .await
                .expect("an engine");
            let demo = engine
                .create_demo_workspace()
                .await
                .expect("the demo workspace");
            let keys = [
                ("$API", demo.account.api_key.clone()),
                ("$PK", demo.account.publishable_key.clone()),
                ("$AGENT", demo.agent_access_token.clone()),
                ("$INBOX", demo.inbox.identifier.clone()),
            ];
            (crate::server::app(engine, Arc::new(settings)), keys)
        });
        RestTarget {
            runtime,
            app,
            keys,
            _dir: dir,
        }
    }

    /// One request written as `METHOD PATH`, header lines, a blank line, then the body. The
    /// server must answer it, and never with a 5xx.
    pub fn request(&self, data: &[u8]) {
        let text = String::from_utf8_lossy(data);
        let mut text = text.into_owned();
        for (placeholder, key) in &self.keys {
            text = text.replace(placeholder, key);
        }
        let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
        let mut lines = head.lines();
        let Some((method, path)) = lines.next().and_then(|line| line.split_once(' ')) else {
            return;
        };
        let mut request = Request::builder().method(method.trim()).uri(path.trim());
        for line in lines {
            if let Some((name, value)) = line.split_once(':') {
                request = request.header(name.trim(), value.trim());
            }
        }
        // Requests the HTTP layer itself would refuse never reach the application.
        let Ok(request) = request.body(Body::from(body.to_string())) else {
            return;
        };
        let status = self.runtime.block_on(async {
            let mut app = self.app.clone();
            let response = tower_service::Service::call(&mut app, request)
                .await
                .expect("the router is infallible");
            let status = response.status();
            // The body is read whole, as a client would.
            let _ = axum::body::to_bytes(response.into_body(), 1 << 24).await;
            status
        });
        assert!(
            !status.is_server_error(),
            "{method} {path} answered {status}"
        );
    }
}

impl Default for RestTarget {
    fn default() -> Self {
        RestTarget::new()
    }
}
