//! Server settings: defaults, then an optional TOML file, then `SWITCHBOARD_*` environment
//! variables and command-line flags (the binary applies those last two through clap).

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use switchboard_core::limits::RateRules;
use switchboard_engine::EngineConfig;
use switchboard_store::Durability;

#[derive(Clone, Debug)]
pub struct Settings {
    /// This node's name in logs and metrics (`SWITCHBOARD_NODE_ID`; the host name and a random
    /// suffix by default).
    pub node_id: String,
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// `sqlite://PATH`; defaults to `DATA_DIR/switchboard.db`.
    pub database_url: Option<String>,
    /// The most connections this node holds to PostgreSQL (16 by default; unused on SQLite).
    pub database_pool_size: u32,
    /// `memory://` (the default) for one node; `redis://…` or `nats://…` for several.
    pub bus_url: Option<String>,
    /// Where live connections are counted for presence: `memory://` for one node, `redis://…`
    /// or `postgres://…` for several. Defaults to the bus URL when that is Redis, the database
    /// URL when the bus is NATS and the store PostgreSQL, else memory.
    pub presence_url: Option<String>,
    /// How long a node that stopped answering is remembered: its principals turn offline
    /// within this window (plus a third of it) after it dies.
    pub presence_window: Duration,
    /// Create the demo workspace on an empty store.
    pub demo: bool,
    pub durability: Durability,
    /// The largest WebSocket frame read, in bytes; larger ones close the socket with 1009.
    pub max_frame_bytes: usize,
    /// The largest HTTP request body, in bytes (413 beyond).
    pub max_body_bytes: usize,
    /// How long shutdown waits for connections to close.
    pub shutdown_grace: Duration,
    /// The most connections (HTTP and sockets) this process serves; more are answered 503.
    pub max_connections: usize,
    /// The most connections one client address may hold open (`None`, the default: no limit,
    /// since behind a proxy that does not say who its clients are they all share one address).
    pub max_connections_per_ip: Option<usize>,
    /// Peers whose `X-Forwarded-For` header is believed: the client is the nearest address in
    /// it that is not itself a trusted proxy.
    pub trusted_proxies: Vec<crate::client_ip::IpNet>,
    /// How long a client may take to send a request's headers (slow clients cannot hold
    /// connections open without asking anything).
    pub header_read_timeout: Duration,
    /// How long a Socket.IO client may take to connect to its namespace, and a cable client to
    /// have a subscription confirmed, before it is closed (native sockets authenticate in the
    /// upgrade request itself).
    pub auth_timeout: Duration,
    /// Where uploaded files are kept (`DATA_DIR/uploads` by default). Nodes serving one
    /// deployment share it (a network volume), since a file sent to one node is downloaded
    /// from any.
    pub uploads_dir: Option<PathBuf>,
    /// The largest file a conversation's party may upload, in bytes.
    pub upload_max_bytes: usize,
    /// The content types uploads may have (`image/*` matches every image type).
    pub upload_types: Vec<String>,
    /// How often Socket.IO connections are pinged, and how long a pong may take.
    pub socketio_ping_interval: Duration,
    pub socketio_ping_timeout: Duration,
    pub engine: EngineConfig,
}

impl Settings {
    /// Defaults for a server storing its data under `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Settings {
        Settings {
            node_id: default_node_id(),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: data_dir.into(),
            database_url: None,
            database_pool_size: switchboard_store::PostgresStore::DEFAULT_POOL_SIZE,
            bus_url: None,
            presence_url: None,
            presence_window: Duration::from_secs(15),
            demo: true,
            durability: Durability::Full,
            max_frame_bytes: 64 * 1024,
            max_body_bytes: 1024 * 1024,
            shutdown_grace: Duration::from_secs(10),
            // One process may hold 20,000 open files here; some are the server's own.
            max_connections: 19_500,
            max_connections_per_ip: None,
            trusted_proxies: Vec::new(),
            header_read_timeout: Duration::from_secs(10),
            auth_timeout: Duration::from_secs(30),
            uploads_dir: None,
            upload_max_bytes: 10 * 1024 * 1024,
            upload_types: ["image/*", "application/pdf", "text/plain", "text/csv"]
                .map(String::from)
                .to_vec(),
            socketio_ping_interval: Duration::from_secs(25),
            socketio_ping_timeout: Duration::from_secs(20),
            engine: EngineConfig::default(),
        }
    }

    /// Where uploaded files are kept.
    pub fn uploads_dir(&self) -> PathBuf {
        self.uploads_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("uploads"))
    }

    /// Applies a TOML settings file over these settings.
    pub fn apply_file(&mut self, path: &Path) -> Result<(), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let file: FileSettings = toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_path_buf(),
            source,
        })?;
        file.apply(self)
    }
}

/// The host's name and four random hex digits: unique enough to tell nodes apart in logs.
pub fn default_node_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "node".to_string());
    let mut suffix = [0u8; 2];
    let _ = getrandom::fill(&mut suffix);
    format!("{host}-{}", hex_pair(suffix))
}

fn hex_pair(bytes: [u8; 2]) -> String {
    format!("{:02x}{:02x}", bytes[0], bytes[1])
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read settings file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("settings file {path} is not valid: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("invalid setting: {0}")]
    Invalid(String),
}

/// The settings file: every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    database_pool_size: Option<u32>,
    bus_url: Option<String>,
    presence_url: Option<String>,
    presence_window_ms: Option<u64>,
    demo: Option<bool>,
    /// `full` or `normal`.
    durability: Option<String>,
    max_frame_bytes: Option<usize>,
    max_body_bytes: Option<usize>,
    session_ttl_secs: Option<u64>,
    heartbeat_timeout_secs: Option<u64>,
    socketio_ping_interval_ms: Option<u64>,
    max_connections: Option<usize>,
    header_read_timeout_ms: Option<u64>,
    auth_timeout_ms: Option<u64>,
    uploads_dir: Option<PathBuf>,
    upload_max_bytes: Option<usize>,
    upload_types: Option<Vec<String>>,
    socketio_ping_timeout_ms: Option<u64>,
    outbound_queue: Option<usize>,
    max_message_bytes: Option<usize>,
    rate_limits: Option<RateRules>,
    /// Rules for single accounts, keyed by account id: `[account_rate_limits.7.visitor]`.
    account_rate_limits: Option<std::collections::BTreeMap<String, RateRules>>,
    max_connections_per_ip: Option<usize>,
    trusted_proxies: Option<Vec<String>>,
}

impl FileSettings {
    fn apply(self, settings: &mut Settings) -> Result<(), ConfigError> {
        if let Some(listen) = self.listen {
            settings.listen = listen;
        }
        if let Some(data_dir) = self.data_dir {
            settings.data_dir = data_dir;
        }
        if self.database_url.is_some() {
            settings.database_url = self.database_url;
        }
        if let Some(size) = self.database_pool_size {
            if size == 0 {
                return Err(ConfigError::Invalid(
                    "database_pool_size must be at least 1".into(),
                ));
            }
            settings.database_pool_size = size;
        }
        if self.bus_url.is_some() {
            settings.bus_url = self.bus_url;
        }
        if self.presence_url.is_some() {
            settings.presence_url = self.presence_url;
        }
        if let Some(ms) = self.presence_window_ms {
            if ms < 300 {
                return Err(ConfigError::Invalid(
                    "presence_window_ms must be at least 300".into(),
                ));
            }
            settings.presence_window = Duration::from_millis(ms);
        }
        if let Some(demo) = self.demo {
            settings.demo = demo;
        }
        match self.durability.as_deref() {
            Some("normal") => settings.durability = Durability::Normal,
            Some("full") => settings.durability = Durability::Full,
            Some(other) => tracing::warn!(durability = other, "unknown durability; keeping full"),
            None => {}
        }
        if let Some(bytes) = self.max_frame_bytes {
            settings.max_frame_bytes = bytes;
        }
        if let Some(bytes) = self.max_body_bytes {
            settings.max_body_bytes = bytes;
        }
        if let Some(secs) = self.session_ttl_secs {
            settings.engine.session_ttl = Duration::from_secs(secs);
        }
        if let Some(secs) = self.heartbeat_timeout_secs {
            settings.engine.heartbeat_timeout = Duration::from_secs(secs);
        }
        if self.uploads_dir.is_some() {
            settings.uploads_dir = self.uploads_dir;
        }
        if let Some(bytes) = self.upload_max_bytes {
            settings.upload_max_bytes = bytes;
        }
        if let Some(types) = self.upload_types {
            settings.upload_types = types;
        }
        if let Some(max) = self.max_connections {
            settings.max_connections = max;
        }
        if let Some(ms) = self.header_read_timeout_ms {
            settings.header_read_timeout = Duration::from_millis(ms);
        }
        if let Some(ms) = self.auth_timeout_ms {
            settings.auth_timeout = Duration::from_millis(ms);
        }
        if let Some(ms) = self.socketio_ping_interval_ms {
            settings.socketio_ping_interval = Duration::from_millis(ms);
        }
        if let Some(ms) = self.socketio_ping_timeout_ms {
            settings.socketio_ping_timeout = Duration::from_millis(ms);
        }
        if let Some(queue) = self.outbound_queue {
            settings.engine.outbound_queue = queue;
        }
        if let Some(bytes) = self.max_message_bytes {
            settings.engine.max_message_bytes = bytes;
        }
        if let Some(rules) = self.rate_limits {
            settings.engine.rate_rules = rules;
        }
        for (account, rules) in self.account_rate_limits.unwrap_or_default() {
            let id = account.parse::<i64>().map_err(|_| {
                ConfigError::Invalid(format!(
                    "account_rate_limits: {account:?} is not an account id"
                ))
            })?;
            settings
                .engine
                .account_rate_rules
                .insert(switchboard_core::AccountId(id), rules);
        }
        if let Some(max) = self.max_connections_per_ip {
            settings.max_connections_per_ip = Some(max);
        }
        if let Some(proxies) = self.trusted_proxies {
            settings.trusted_proxies = proxies
                .iter()
                .map(|text| {
                    text.parse::<crate::client_ip::IpNet>().map_err(|_| {
                        ConfigError::Invalid(format!(
                            "trusted_proxies: {text:?} is not an address or network"
                        ))
                    })
                })
                .collect::<Result<_, _>>()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_file(text: &str) -> Result<Settings, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("switchboard.toml");
        std::fs::write(&path, text).unwrap();
        let mut settings = Settings::new(dir.path());
        settings.apply_file(&path).map(|()| settings)
    }

    #[test]
    fn the_postgres_pool_size_is_read_from_the_file_and_must_be_positive() {
        assert_eq!(from_file("").unwrap().database_pool_size, 16);
        assert_eq!(
            from_file("database_pool_size = 40\n")
                .unwrap()
                .database_pool_size,
            40
        );
        let error = from_file("database_pool_size = 0\n")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("database_pool_size must be at least 1"),
            "{error}"
        );
        let error = from_file("database_pool_size = -3\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("database_pool_size"), "{error}");
    }

    #[test]
    fn uploads_go_under_the_data_directory_unless_a_shared_one_is_named() {
        let settings = from_file("").unwrap();
        assert_eq!(settings.uploads_dir(), settings.data_dir.join("uploads"));
        let settings = from_file("uploads_dir = \"/mnt/shared/uploads\"\n").unwrap();
        assert_eq!(
            settings.uploads_dir(),
            std::path::PathBuf::from("/mnt/shared/uploads")
        );
    }
}
