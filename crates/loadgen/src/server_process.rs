//! A Switchboard server run as its own process for a benchmark: the release `switchboard`
//! binary built beside the load generator, on a free loopback port and a temporary data
//! directory, stopped when dropped.

use serde_json::Value;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tempfile::TempDir;

/// Settings for benchmarks: no rate limits (the load is the point).
pub const UNLIMITED: &str =
    "[rate_limits.visitor]\n[rate_limits.agent]\n[rate_limits.integration]\n";

pub struct ServerProcess {
    child: Child,
    /// `127.0.0.1:port`.
    pub base: String,
    /// The demo workspace's `demo.json`.
    pub demo: Value,
    _dir: TempDir,
}

impl ServerProcess {
    /// Starts the server with `settings` (TOML) and waits until it answers.
    pub async fn start(settings: &str) -> ServerProcess {
        ServerProcess::start_node(settings, &[], None).await
    }

    /// Starts a server with `settings` (TOML) and extra command-line `args` and waits until it
    /// answers. Its demo workspace is `demo` when given (a node joining a store another node
    /// filled; start it with `--no-demo`), else the one it wrote itself.
    pub async fn start_node(settings: &str, args: &[String], demo: Option<Value>) -> ServerProcess {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("switchboard.toml");
        std::fs::write(&config, settings).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let binary = std::env::current_exe()
            .expect("the load generator knows where it is")
            .with_file_name("switchboard");
        let child = Command::new(binary)
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--config",
            ])
            .arg(&config)
            .arg("--data-dir")
            .arg(dir.path())
            .args(args)
            .env("SWITCHBOARD_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("build the server first: cargo build --release --bin switchboard");
        let base = format!("127.0.0.1:{port}");
        let http = reqwest::Client::new();
        for _ in 0..400 {
            let ready = http.get(format!("http://{base}/readyz")).send().await;
            if ready.is_ok_and(|response| response.status().is_success()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let demo = demo.unwrap_or_else(|| {
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("demo.json")).unwrap())
                .unwrap()
        });
        ServerProcess {
            child,
            base,
            demo,
            _dir: dir,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU time (user + system) a process has used so far, from `/proc/<pid>/stat`; clock ticks
/// are taken as 100 a second, as on every Linux x86-64 kernel.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name (field 2) may hold spaces; fields are counted after its ')'.
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |index: usize| -> f64 {
        fields
            .get(index)
            .and_then(|value| value.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the name.
    (ticks(11) + ticks(12)) / 100.0
}
