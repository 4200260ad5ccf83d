//! The `switchboard` binary: `serve` and `account create` (`spec/rest.md`).

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use switchboard_server::Settings;
use tracing_subscriber::EnvFilter;

/// mimalloc returns freed memory to the system more eagerly than glibc's allocator and keeps
/// less per-thread slack, which is most of an idle connection's cost beyond its buffers.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "switchboard",
    version,
    about = "A self-hostable realtime server for customer-support chat"
)]
struct Cli {
    #[command(subcommand)]
    command: Commands,
    /// Log format: `text` or `json`.
    #[arg(
        long,
        global = true,
        env = "SWITCHBOARD_LOG_FORMAT",
        default_value = "text"
    )]
    log_format: String,
}

#[derive(Subcommand)]
enum Commands {
    /// Runs the server.
    Serve(ServeArgs),
    /// Manages accounts.
    Account {
        #[command(subcommand)]
        command: AccountCommand,
    },
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "SWITCHBOARD_LISTEN")]
    listen: Option<SocketAddr>,
    /// Where the embedded database and demo.json live.
    #[arg(long, env = "SWITCHBOARD_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// A TOML settings file (flags and environment variables override it).
    #[arg(long, env = "SWITCHBOARD_CONFIG")]
    config: Option<PathBuf>,
    /// The store: `sqlite://PATH` (default: DATA_DIR/switchboard.db).
    #[arg(long, env = "SWITCHBOARD_DATABASE_URL")]
    database_url: Option<String>,
    /// The most connections this node holds to PostgreSQL (default 16).
    #[arg(long, env = "SWITCHBOARD_DATABASE_POOL_SIZE", value_parser = clap::value_parser!(u32).range(1..))]
    database_pool_size: Option<u32>,
    /// The event bus: `memory://` (default), `redis://HOST:PORT[?prefix=NAME]` or
    /// `nats://HOST:PORT[?prefix=NAME]`.
    #[arg(long, env = "SWITCHBOARD_BUS_URL")]
    bus_url: Option<String>,
    /// Where presence is counted across nodes: `memory://`, `redis://…` or `postgres://…`
    /// (default: the bus URL when it is Redis, the database URL when the bus is NATS).
    #[arg(long, env = "SWITCHBOARD_PRESENCE_URL")]
    presence_url: Option<String>,
    /// How long a silent node's connections still count, in milliseconds (default 15000).
    #[arg(long, env = "SWITCHBOARD_PRESENCE_WINDOW_MS", value_parser = clap::value_parser!(u64).range(300..))]
    presence_window_ms: Option<u64>,
    /// Where uploaded files are kept (default: DATA_DIR/uploads); share it between nodes.
    #[arg(long, env = "SWITCHBOARD_UPLOADS_DIR")]
    uploads_dir: Option<PathBuf>,
    /// Do not create the demo workspace on an empty store.
    #[arg(long, env = "SWITCHBOARD_NO_DEMO")]
    no_demo: bool,
    /// This node's name in logs and metrics (the host name and a random suffix by default).
    #[arg(long, env = "SWITCHBOARD_NODE_ID")]
    node_id: Option<String>,
}

#[derive(Subcommand)]
enum AccountCommand {
    /// Creates an account and prints its keys (shown only once).
    Create {
        #[arg(long)]
        name: String,
        #[arg(long, env = "SWITCHBOARD_DATA_DIR", conflicts_with = "database_url")]
        data_dir: Option<PathBuf>,
        #[arg(long, env = "SWITCHBOARD_DATABASE_URL")]
        database_url: Option<String>,
        /// Print JSON: {"accountId", "apiKey", "publishableKey"}.
        #[arg(long)]
        json: bool,
    },
}

fn init_logging(format: &str, node: Option<&str>) {
    let filter = EnvFilter::try_from_env("SWITCHBOARD_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let json = format == "json";
    let writer = NodeTagged {
        tag: node.map(|node| {
            if json {
                format!("{{\"node\":{},", serde_json::Value::from(node))
            } else {
                format!("node={node} ")
            }
        }),
        json,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Writes log lines to stderr, each carrying the node's id: `node=ID ` before a text line,
/// a `"node"` field first in a JSON one (the formatter writes each line in one piece).
#[derive(Clone)]
struct NodeTagged {
    tag: Option<String>,
    json: bool,
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for NodeTagged {
    type Writer = NodeTagged;

    fn make_writer(&'a self) -> NodeTagged {
        self.clone()
    }
}

impl std::io::Write for NodeTagged {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        let mut stderr = std::io::stderr().lock();
        match &self.tag {
            Some(tag) if self.json && line.first() == Some(&b'{') => {
                stderr.write_all(tag.as_bytes())?;
                stderr.write_all(&line[1..])?;
            }
            Some(tag) if !self.json => {
                stderr.write_all(tag.as_bytes())?;
                stderr.write_all(line)?;
            }
            _ => stderr.write_all(line)?,
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut settings = Settings::new("./data");
    if let Some(path) = &args.config {
        settings.apply_file(path)?;
    }
    if let Some(listen) = args.listen {
        settings.listen = listen;
    }
    if let Some(data_dir) = args.data_dir {
        settings.data_dir = data_dir;
    }
    if args.database_url.is_some() {
        settings.database_url = args.database_url;
    }
    if let Some(size) = args.database_pool_size {
        settings.database_pool_size = size;
    }
    if args.bus_url.is_some() {
        settings.bus_url = args.bus_url;
    }
    if args.presence_url.is_some() {
        settings.presence_url = args.presence_url;
    }
    if let Some(ms) = args.presence_window_ms {
        settings.presence_window = std::time::Duration::from_millis(ms);
    }
    if args.uploads_dir.is_some() {
        settings.uploads_dir = args.uploads_dir;
    }
    if args.no_demo {
        settings.demo = false;
    }
    if let Some(node_id) = args.node_id {
        settings.node_id = node_id;
    }
    let data_dir = settings.data_dir.clone();
    let server = switchboard_server::start(settings)
        .await
        .context("switchboard could not start")?;
    let address = server.local_addr;
    if server.demo.is_some() {
        let demo_path = data_dir.join("demo.json");
        eprintln!(
            "\nSwitchboard is running on http://{address}\n\
             A demo workspace was created; its keys are in {}\n\
             Try it:\n  \
             KEY=$(python3 -c 'import json;print(json.load(open(\"{}\"))[\"publishableKey\"])')\n  \
             curl -s -X POST http://{address}/api/v1/session -H \"Authorization: Bearer $KEY\" \\\n    \
             -H 'Content-Type: application/json' -d '{{\"agentId\":\"demo\"}}'\n",
            demo_path.display(),
            demo_path.display(),
        );
    }
    server.run_until(shutdown_signal()).await;
    Ok(())
}

async fn create_account(
    name: String,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    json: bool,
) -> anyhow::Result<()> {
    let mut settings = Settings::new(data_dir.unwrap_or_else(|| PathBuf::from("./data")));
    settings.database_url = database_url;
    let store = switchboard_server::server::open_store(&settings).await?;
    let bus = std::sync::Arc::new(switchboard_bus::InProcessBus::new());
    let engine = switchboard_engine::Engine::start(store, bus, settings.engine.clone()).await?;
    let created = engine.create_account(&name).await?;
    if json {
        println!(
            "{}",
            serde_json::json!({
                "accountId": created.account.id.0,
                "apiKey": created.api_key,
                "publishableKey": created.publishable_key,
            })
        );
    } else {
        println!("account {} ({})", created.account.id, created.account.name);
        println!("api key:         {}", created.api_key);
        println!("publishable key: {}", created.publishable_key);
        println!("These keys are shown only once.");
    }
    Ok(())
}

/// At most this many threads in tokio's blocking pool, where SQLite reads (the store keeps
/// up to eight idle reader connections) and upload files run. Uncapped, the pool starts a thread for each
/// such task that finds none idle at that instant and keeps it ten seconds: during `idle`'s
/// 19,000 connections a server held up to 139 threads, each with its stack and allocator heap
/// resident (about 380 KiB), and its memory per connection moved with their number.
const BLOCKING_THREADS: usize = 16;

/// The server's runtime: tokio's multi-threaded scheduler with a capped blocking pool.
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(BLOCKING_THREADS)
        .build()
}

fn main() -> anyhow::Result<()> {
    runtime()?.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let mut cli = Cli::parse();
    // Chosen before logging starts, so every line of this node carries it.
    let node_id = match &mut cli.command {
        Commands::Serve(args) => Some(
            args.node_id
                .get_or_insert_with(switchboard_server::config::default_node_id)
                .clone(),
        ),
        _ => None,
    };
    init_logging(&cli.log_format, node_id.as_deref());
    match cli.command {
        Commands::Serve(args) => serve(args).await,
        Commands::Account {
            command:
                AccountCommand::Create {
                    name,
                    data_dir,
                    database_url,
                    json,
                },
        } => create_account(name, data_dir, database_url, json).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::sync::{Arc, Mutex};

    #[test]
    fn blocking_work_shares_a_capped_pool_of_threads() {
        let runtime = runtime().unwrap();
        let threads = Arc::new(Mutex::new(HashSet::new()));
        runtime.block_on(async {
            let tasks: Vec<_> = (0..BLOCKING_THREADS * 4)
                .map(|_| {
                    let threads = threads.clone();
                    tokio::task::spawn_blocking(move || {
                        threads.lock().unwrap().insert(std::thread::current().id());
                        std::thread::sleep(std::time::Duration::from_millis(10));
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
        });
        assert!(threads.lock().unwrap().len() <= BLOCKING_THREADS);
    }
}
