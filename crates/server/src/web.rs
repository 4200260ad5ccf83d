//! The web pages the binary serves itself: the landing page (`/`, carrying the widget for the
//! demo inbox), the widget script (`/widget.js`), the agent dashboard (`/dashboard`), the live
//! demo page (`/demo`) and its sample app (`/demo/app/...`). The scripts are built from
//! `web/src` by `web/build.mjs` into `assets/`, and embedded here at compile time, so
//! `switchboard serve` needs nothing else at run time.

use crate::rest::AppState;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

const INDEX: &str = include_str!("../assets/index.html");
const DASHBOARD: &str = include_str!("../assets/dashboard.html");
const DEMO: &str = include_str!("../assets/demo.html");
const DEMO_APP: &str = include_str!("../assets/demo-app.html");
const WIDGET_JS: &str = include_str!("../assets/widget.js");
const DASHBOARD_JS: &str = include_str!("../assets/dashboard.js");
const DEMO_JS: &str = include_str!("../assets/demo.js");

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route(
            "/favicon.ico",
            get(|| async { axum::http::StatusCode::NO_CONTENT }),
        )
        .route("/widget.js", get(|| async { script(WIDGET_JS) }))
        .route("/dashboard", get(|| async { page(DASHBOARD.to_string()) }))
        .route("/dashboard.js", get(|| async { script(DASHBOARD_JS) }))
        .route("/demo", get(demo))
        .route("/demo.js", get(|| async { script(DEMO_JS) }))
        .route("/demo/app", get(|| async { page(DEMO_APP.to_string()) }))
        .route(
            "/demo/app/{*page}",
            get(|| async { page(DEMO_APP.to_string()) }),
        )
}

fn page(html: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        html,
    )
        .into_response()
}

fn script(code: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            // The widget is loaded by other sites' pages.
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        ],
        code,
    )
        .into_response()
}

/// A field of the demo workspace's `demo.json`, when this server created one.
fn demo_field(state: &AppState, field: &str) -> Option<String> {
    let text = std::fs::read_to_string(state.settings.data_dir.join("demo.json")).ok()?;
    let demo: serde_json::Value = serde_json::from_str(&text).ok()?;
    demo[field].as_str().map(str::to_string)
}

/// Makes a value safe inside an HTML attribute or text.
fn escape(value: &str) -> String {
    value
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

async fn index(State(state): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    let host = headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .unwrap_or("127.0.0.1:8080");
    let origin = escape(&format!("http://{host}"));
    let (inbox, widget) = match demo_field(&state, "inboxIdentifier") {
        Some(inbox) => {
            let inbox = escape(&inbox);
            let tag = format!(r#"<script src="/widget.js" data-inbox="{inbox}"></script>"#);
            (inbox, tag)
        }
        None => ("YOUR_INBOX_IDENTIFIER".to_string(), String::new()),
    };
    page(
        INDEX
            .replace("{{ORIGIN}}", &origin)
            .replace("{{INBOX}}", &inbox)
            .replace("{{WIDGET}}", &widget),
    )
}

async fn demo(State(state): State<AppState>) -> Response {
    let key = demo_field(&state, "publishableKey").unwrap_or_default();
    page(DEMO.replace("{{KEY}}", &escape(&key)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn injected_values_cannot_break_out_of_html() {
        assert_eq!(
            escape(r#""><script>'&"#),
            "&quot;&gt;&lt;script&gt;&#39;&amp;"
        );
    }
}
