//! Starting and stopping a server: open the store and the bus, start the engine, create the
//! demo workspace on an empty store, serve HTTP, and shut down gracefully.

use crate::config::Settings;
use crate::rest::{self, AppState};
use axum::extract::DefaultBodyLimit;
use serde_json::json;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use switchboard_bus::{Bus, InProcessBus};
use switchboard_engine::demo::DemoWorkspace;
use switchboard_engine::{Engine, EngineError};
use switchboard_store::{SqliteStore, Store, StoreError};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("unsupported database URL {0:?}: this build stores in SQLite (sqlite://PATH)")]
    UnsupportedDatabase(String),
    #[error("unsupported bus URL {0:?}: this build has the in-process bus (memory://)")]
    UnsupportedBus(String),
    #[error("cannot open the store: {0}")]
    Store(#[from] StoreError),
    #[error("cannot start the engine: {0}")]
    Engine(#[from] EngineError),
    #[error("cannot listen on {address}: {source}")]
    Listen {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    DemoFile {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Opens the store named by the settings (SQLite under the data directory by default).
pub fn open_store(settings: &Settings) -> Result<Arc<dyn Store>, StartError> {
    std::fs::create_dir_all(&settings.data_dir).map_err(|source| StartError::DataDir {
        path: settings.data_dir.clone(),
        source,
    })?;
    let path = match settings.database_url.as_deref() {
        None => settings.data_dir.join("switchboard.db"),
        Some(url) => match url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            Some(path) if !path.is_empty() => PathBuf::from(path),
            _ => return Err(StartError::UnsupportedDatabase(url.to_string())),
        },
    };
    Ok(Arc::new(SqliteStore::open(path, settings.durability)?))
}

fn open_bus(settings: &Settings) -> Result<Arc<dyn Bus>, StartError> {
    match settings.bus_url.as_deref() {
        None | Some("memory://") | Some("") => Ok(Arc::new(InProcessBus::new())),
        Some(other) => Err(StartError::UnsupportedBus(other.to_string())),
    }
}

/// A server that is running; dropping it does not stop it, [`RunningServer::shutdown`] does.
pub struct RunningServer {
    pub local_addr: SocketAddr,
    pub engine: Arc<Engine>,
    /// The demo workspace, when this start created it.
    pub demo: Option<DemoWorkspace>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl RunningServer {
    /// Stops accepting, closes every socket with 1001, waits for them (up to the grace period)
    /// and returns when the server has stopped.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }

    /// Runs until `signal` completes, then shuts down.
    pub async fn run_until(self, signal: impl std::future::Future<Output = ()>) {
        signal.await;
        tracing::info!("shutting down");
        self.shutdown().await;
    }
}

/// The `demo.json` a fresh server writes.
pub fn demo_json(demo: &DemoWorkspace) -> serde_json::Value {
    json!({
        "accountId": demo.account.account.id.0,
        "apiKey": demo.account.api_key,
        "publishableKey": demo.account.publishable_key,
        "inboxId": demo.inbox.id.0,
        "inboxIdentifier": demo.inbox.identifier,
        "botAgentId": demo.bot.name,
        "agent": {
            "id": demo.agent.id.0,
            "name": demo.agent.name,
            "accessToken": demo.agent_access_token,
            "pubsubToken": demo.agent_pubsub_token,
        },
    })
}

/// Starts a server with `settings` and returns once it is listening.
pub async fn start(settings: Settings) -> Result<RunningServer, StartError> {
    let store = open_store(&settings)?;
    let bus = open_bus(&settings)?;
    let engine = Engine::start(store.clone(), bus, settings.engine.clone()).await?;
    let demo = if settings.demo && store.count_accounts().await? == 0 {
        let demo = engine.create_demo_workspace().await?;
        let path = settings.data_dir.join("demo.json");
        let text = serde_json::to_string_pretty(&demo_json(&demo)).expect("demo.json serialises");
        std::fs::write(&path, text + "\n").map_err(|source| StartError::DemoFile {
            path: path.clone(),
            source,
        })?;
        Some(demo)
    } else {
        None
    };
    let listener =
        TcpListener::bind(settings.listen)
            .await
            .map_err(|source| StartError::Listen {
                address: settings.listen,
                source,
            })?;
    let local_addr = listener.local_addr().map_err(|source| StartError::Listen {
        address: settings.listen,
        source,
    })?;
    let grace = settings.shutdown_grace;
    let max_body = settings.max_body_bytes;
    let upload_max = settings.upload_max_bytes;
    let state = AppState {
        engine: engine.clone(),
        settings: Arc::new(settings),
        uploads: Arc::default(),
    };
    let socketio = crate::dialects::socketio::layer(
        engine.clone(),
        crate::dialects::socketio::SocketIoSettings {
            max_payload_bytes: state.settings.max_frame_bytes as u64 * 4,
            outbound_queue: state.settings.engine.outbound_queue,
            ping_interval: state.settings.socketio_ping_interval,
            ping_timeout: state.settings.socketio_ping_timeout,
        },
    );
    let app = rest::router(upload_max)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(socketio)
        .layer(axum::middleware::from_fn_with_state(
            engine.clone(),
            refuse_while_stopping,
        ))
        .with_state(state);
    let (stop, stopped) = oneshot::channel::<()>();
    let serving_engine = engine.clone();
    let task = tokio::spawn(async move {
        let engine = serving_engine;
        let signal_engine = engine.clone();
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
                // Sockets are told to go away at once; HTTP requests in flight finish.
                signal_engine.begin_shutdown();
            })
            .await;
        if let Err(error) = served {
            tracing::error!(%error, "the HTTP server failed");
        }
        engine.begin_shutdown();
        if !engine.connections_drained(grace).await {
            tracing::warn!(
                open = engine.n_open_connections(),
                "connections still open after the grace period"
            );
        }
        engine.flush_cursors().await;
        tracing::info!("stopped");
    });
    tracing::info!(address = %local_addr, "listening");
    Ok(RunningServer {
        local_addr,
        engine,
        demo,
        stop: Some(stop),
        task,
    })
}

/// While the server shuts down, new requests (sockets included) are told to come back: a
/// client reconnecting then must not land on a server about to go away. Health checks still
/// answer, so a load balancer sees the server leave.
async fn refuse_while_stopping(
    axum::extract::State(engine): axum::extract::State<Arc<Engine>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let health = matches!(request.uri().path(), "/healthz" | "/readyz");
    if engine.is_shutting_down() && !health {
        return (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            [(axum::http::header::RETRY_AFTER, "1")],
            axum::Json(serde_json::json!({"error": {
                "code": "SHUTTING_DOWN",
                "message": "the server is restarting; retry shortly",
            }})),
        )
            .into_response();
    }
    next.run(request).await
}
