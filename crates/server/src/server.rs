//! Starting and stopping a server: open the store and the bus, start the engine, create the
//! demo workspace on an empty store, serve HTTP, and shut down gracefully.

use crate::config::Settings;
use crate::rest::{self, AppState};
use axum::extract::DefaultBodyLimit;
use serde_json::json;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use switchboard_bus::{Bus, InMemoryPresence, InProcessBus, PresenceDirectory, RedisPresence};
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
    #[error(
        "unsupported database URL {0:?}: use sqlite://PATH or postgres://USER@HOST:PORT/DATABASE"
    )]
    UnsupportedDatabase(String),
    #[error("unsupported bus URL {0:?}: use memory://, redis://HOST:PORT or nats://HOST:PORT")]
    UnsupportedBus(String),
    #[error(
        "unsupported presence URL {0:?}: use memory://, redis://HOST:PORT or \
         postgres://USER@HOST:PORT/DATABASE"
    )]
    UnsupportedPresence(String),
    #[error("cannot reach the bus: {0}")]
    Bus(#[from] switchboard_bus::BusError),
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

/// Opens the store named by the settings: SQLite under the data directory by default (or at
/// `sqlite://PATH`), PostgreSQL at `postgres://...` for several nodes.
pub async fn open_store(settings: &Settings) -> Result<Arc<dyn Store>, StartError> {
    std::fs::create_dir_all(&settings.data_dir).map_err(|source| StartError::DataDir {
        path: settings.data_dir.clone(),
        source,
    })?;
    let path = match settings.database_url.as_deref() {
        None => settings.data_dir.join("switchboard.db"),
        Some(url) if is_postgres(url) => {
            return Ok(Arc::new(
                switchboard_store::PostgresStore::connect_with_pool(
                    url,
                    settings.database_pool_size,
                )
                .await?,
            ));
        }
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

/// Opens the bus named by the settings: in-process by default, Redis (`redis://`) or NATS
/// (`nats://`) for several nodes. A networked bus must answer at start.
pub async fn open_bus(settings: &Settings) -> Result<Arc<dyn Bus>, StartError> {
    match settings.bus_url.as_deref() {
        None | Some("memory://") | Some("") => Ok(Arc::new(InProcessBus::new())),
        Some(url) if url.starts_with("redis://") => {
            Ok(Arc::new(switchboard_bus::RedisBus::connect(url).await?))
        }
        Some(url) if url.starts_with("nats://") => {
            Ok(Arc::new(switchboard_bus::NatsBus::connect(url).await?))
        }
        Some(other) => Err(StartError::UnsupportedBus(other.to_string())),
    }
}

fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Opens the presence directory the settings name: the one given, else Redis when the bus is
/// Redis, else the store's PostgreSQL when the bus is another networked one (NATS), else this
/// process's memory (with a warning when the bus says there are other nodes).
pub async fn open_presence(settings: &Settings) -> Result<Arc<dyn PresenceDirectory>, StartError> {
    let bus = settings.bus_url.as_deref().unwrap_or("");
    let database = settings.database_url.as_deref().unwrap_or("");
    let url = match settings.presence_url.as_deref() {
        Some(url) => url,
        None if bus.starts_with("redis://") => bus,
        None if bus.starts_with("nats://") && is_postgres(database) => database,
        None => {
            if bus.starts_with("nats://") {
                tracing::warn!(
                    "presence is counted per node: set SWITCHBOARD_PRESENCE_URL to a Redis or \
                     PostgreSQL URL (or store in PostgreSQL) so that every node sees every \
                     connection"
                );
            }
            "memory://"
        }
    };
    let (node, window) = (&settings.node_id, settings.presence_window);
    match url {
        "memory://" | "" => Ok(Arc::new(InMemoryPresence::single())),
        url if url.starts_with("redis://") => {
            Ok(Arc::new(RedisPresence::connect(url, node, window).await?))
        }
        url if is_postgres(url) => Ok(Arc::new(
            switchboard_store::PostgresPresence::connect(url, node, window).await?,
        )),
        other => Err(StartError::UnsupportedPresence(other.to_string())),
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
    let store = open_store(&settings).await?;
    let bus = open_bus(&settings).await?;
    let presence = open_presence(&settings).await?;
    let engine =
        Engine::start_with_presence(store.clone(), bus, presence, settings.engine.clone()).await?;
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
    let per_ip = settings
        .max_connections_per_ip
        .map(crate::client_ip::PerIpConnections::new);
    let trusted: Arc<[crate::client_ip::IpNet]> = settings.trusted_proxies.clone().into();
    let limits = ConnectionLimits {
        max_connections: settings.max_connections,
        header_read_timeout: settings.header_read_timeout,
        grace,
        per_ip: per_ip.clone(),
        trusted: trusted.clone(),
    };
    let node_id = settings.node_id.clone();
    let mut app = app(engine.clone(), Arc::new(settings));
    if let Some(counts) = per_ip {
        app = app.layer(axum::middleware::from_fn_with_state(
            crate::client_ip::ForwardedLimits { counts, trusted },
            crate::client_ip::limit_forwarded_sockets,
        ));
    }
    let (stop, stopped) = oneshot::channel::<()>();
    let serving_engine = engine.clone();
    let task = tokio::spawn(async move {
        let engine = serving_engine;
        serve(listener, app, engine.clone(), limits, stopped).await;
        engine.begin_shutdown();
        if !engine.connections_drained(grace).await {
            tracing::warn!(
                open = engine.n_open_connections(),
                "connections still open after the grace period"
            );
        }
        engine.write_pending_receipts().await;
        engine.flush_cursors().await;
        engine.leave_presence().await;
        tracing::info!("stopped");
    });
    tracing::info!(address = %local_addr, node = %node_id, "listening");
    Ok(RunningServer {
        local_addr,
        engine,
        demo,
        stop: Some(stop),
        task,
    })
}

/// Every route of the server (REST, the dialects' upgrades, the Socket.IO layer) with its body
/// limit and the refusal while stopping; what the accept loop serves, and what the REST fuzz
/// target calls without sockets.
pub fn app(engine: Arc<Engine>, settings: Arc<Settings>) -> axum::Router {
    let socketio = crate::dialects::socketio::layer(
        engine.clone(),
        crate::dialects::socketio::SocketIoSettings {
            max_payload_bytes: settings.max_frame_bytes as u64 * 4,
            outbound_queue: settings.engine.outbound_queue,
            ping_interval: settings.socketio_ping_interval,
            ping_timeout: settings.socketio_ping_timeout,
            connect_timeout: settings.auth_timeout,
        },
    );
    rest::router(settings.upload_max_bytes)
        .layer(DefaultBodyLimit::max(settings.max_body_bytes))
        .layer(socketio)
        .layer(axum::middleware::from_fn_with_state(
            engine.clone(),
            refuse_while_stopping,
        ))
        .with_state(AppState { engine, settings })
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

struct ConnectionLimits {
    max_connections: usize,
    header_read_timeout: std::time::Duration,
    grace: std::time::Duration,
    /// The per-address limit, when it is on.
    per_ip: Option<Arc<crate::client_ip::PerIpConnections>>,
    trusted: Arc<[crate::client_ip::IpNet]>,
}

/// Accepts connections until `stopped`: each served by hyper with WebSocket upgrades, a bound on
/// how long its request headers may take, and past `max_connections` a 503 and a close instead.
/// On stop, sockets are told to go away and HTTP requests in flight finish (within the grace).
async fn serve(
    listener: TcpListener,
    app: axum::Router,
    engine: Arc<Engine>,
    limits: ConnectionLimits,
    mut stopped: oneshot::Receiver<()>,
) {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto::Builder;
    use hyper_util::service::TowerToHyperService;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let builder = Arc::new(builder);
    let http_connections = Arc::new(AtomicUsize::new(0));
    let (closing, _) = tokio::sync::watch::channel(false);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = &mut stopped => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors, most likely: let connections close, then go on.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let open = http_connections.load(Ordering::Relaxed) + engine.n_open_connections();
        if open >= limits.max_connections {
            tokio::spawn(refuse(stream, Refusal::AtCapacity));
            continue;
        }
        // The per-address limit: direct peers are counted now, proxies' clients on upgrade.
        let (direct, forwarded_slot) = match &limits.per_ip {
            None => (None, None),
            Some(_) if crate::client_ip::is_trusted(&limits.trusted, peer.ip()) => {
                (None, Some(crate::client_ip::SlotHolder::default()))
            }
            Some(counts) => match counts.acquire(peer.ip().to_canonical()) {
                Some(slot) => (Some(slot), None),
                None => {
                    tokio::spawn(refuse(stream, Refusal::TooManyFromAddress));
                    continue;
                }
            },
        };
        let stream = crate::client_ip::CountedStream::new(stream, direct, forwarded_slot.clone());
        let app = crate::client_ip::WithConnection {
            app: app.clone(),
            info: crate::client_ip::ConnectionInfo {
                peer,
                forwarded_slot,
            },
        };
        http_connections.fetch_add(1, Ordering::Relaxed);
        let counter = http_connections.clone();
        let builder = builder.clone();
        let service = TowerToHyperService::new(app);
        let mut closing = closing.subscribe();
        tokio::spawn(async move {
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            tokio::pin!(connection);
            loop {
                tokio::select! {
                    result = connection.as_mut() => {
                        if let Err(error) = result {
                            tracing::debug!(%error, "connection ended with an error");
                        }
                        break;
                    }
                    _ = closing.wait_for(|closing| *closing) => {
                        connection.as_mut().graceful_shutdown();
                    }
                }
            }
            counter.fetch_sub(1, Ordering::Relaxed);
        });
    }
    // Sockets are told to go away at once; HTTP requests in flight finish.
    engine.begin_shutdown();
    let _ = closing.send(true);
    let deadline = tokio::time::Instant::now() + limits.grace;
    while http_connections.load(Ordering::Relaxed) > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

enum Refusal {
    /// The process holds as many connections as it may.
    AtCapacity,
    /// The peer's address holds as many as it may.
    TooManyFromAddress,
}

/// A connection refused before it is served: a plain answer saying why, then the close.
async fn refuse(mut stream: tokio::net::TcpStream, refusal: Refusal) {
    use tokio::io::AsyncWriteExt;
    let (status, retry_after, body) = match refusal {
        Refusal::AtCapacity => (
            "503 Service Unavailable",
            1,
            r#"{"error":{"code":"AT_CAPACITY","message":"this server holds as many connections as it can; retry shortly"}}"#,
        ),
        Refusal::TooManyFromAddress => {
            ("429 Too Many Requests", 5, crate::client_ip::TOO_MANY_BODY)
        }
    };
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\nretry-after: {retry_after}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
        let _ = stream.write_all(response.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}
