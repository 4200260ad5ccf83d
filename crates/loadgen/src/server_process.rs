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

/// The machine's CPU time so far, all cores together, from the first line of `/proc/stat`:
/// busy (user, nice, system, irq, softirq, steal) and idle (idle, iowait), in clock ticks.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct MachineTicks {
    pub busy: u64,
    pub idle: u64,
}

impl MachineTicks {
    /// Parses the `cpu` line of `/proc/stat`; zeros when it is not there.
    pub fn parse(stat: &str) -> MachineTicks {
        let Some(line) = stat.lines().find(|line| line.starts_with("cpu ")) else {
            return MachineTicks::default();
        };
        let fields: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .map(|field| field.parse().unwrap_or(0))
            .collect();
        let field = |index: usize| fields.get(index).copied().unwrap_or(0);
        // user nice system idle iowait irq softirq steal (guest time is counted in user).
        MachineTicks {
            busy: field(0) + field(1) + field(2) + field(5) + field(6) + field(7),
            idle: field(3) + field(4),
        }
    }

    pub fn since(self, earlier: MachineTicks) -> MachineTicks {
        MachineTicks {
            busy: self.busy.saturating_sub(earlier.busy),
            idle: self.idle.saturating_sub(earlier.idle),
        }
    }

    /// The share of the cores that was busy, in percent; `None` over no time.
    pub fn busy_percent(self) -> Option<f64> {
        let total = self.busy + self.idle;
        (total > 0).then(|| self.busy as f64 * 100.0 / total as f64)
    }
}

/// The machine's CPU time so far (see [`MachineTicks`]).
pub fn machine_ticks() -> MachineTicks {
    MachineTicks::parse(&std::fs::read_to_string("/proc/stat").unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::MachineTicks;

    #[test]
    fn machine_ticks_count_busy_and_idle_time_of_all_cores() {
        let stat = "cpu  100 5 50 800 20 3 2 10 0 0\ncpu0 50 2 25 400 10 1 1 5 0 0\n";
        let ticks = MachineTicks::parse(stat);
        assert_eq!(
            ticks,
            MachineTicks {
                busy: 170,
                idle: 820
            }
        );
        let later = MachineTicks::parse("cpu  200 5 100 900 20 3 2 10 0 0\n");
        let run = later.since(ticks);
        assert_eq!(
            run,
            MachineTicks {
                busy: 150,
                idle: 100
            }
        );
        assert_eq!(run.busy_percent(), Some(60.0));
        assert_eq!(MachineTicks::parse("").busy_percent(), None);
    }
}
