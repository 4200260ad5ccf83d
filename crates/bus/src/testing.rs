//! For tests of anything that runs on a networked bus: unique prefixes, and a private server
//! process that a test may kill and start again (the shared servers on a machine are never
//! disturbed). Not used by the server itself.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// A prefix no other run or test uses.
pub fn unique_prefix() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "t{}x{}x{}",
        std::process::id(),
        nanos % 1_000_000_000,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A port free right now on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A server process of our own, killed when dropped.
pub struct PrivateServer {
    pub port: u16,
    program: &'static str,
    args: Vec<String>,
    child: Option<Child>,
}

impl PrivateServer {
    /// `redis-server` on a fresh port, keeping nothing on disk.
    pub async fn redis() -> PrivateServer {
        let port = free_port();
        let args = [
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        .map(String::from)
        .to_vec();
        PrivateServer::start("redis-server", args, port).await
    }

    /// `nats-server` on a fresh port.
    pub async fn nats() -> PrivateServer {
        let port = free_port();
        let program = if std::path::Path::new("/usr/sbin/nats-server").exists() {
            "/usr/sbin/nats-server"
        } else {
            "nats-server"
        };
        let args = ["-a", "127.0.0.1", "-p", &port.to_string()]
            .map(String::from)
            .to_vec();
        PrivateServer::start(program, args, port).await
    }

    async fn start(program: &'static str, args: Vec<String>, port: u16) -> PrivateServer {
        let mut server = PrivateServer {
            port,
            program,
            args,
            child: None,
        };
        server.restart().await;
        server
    }

    /// Starts the process (again) and waits until it accepts connections.
    pub async fn restart(&mut self) {
        let child = Command::new(self.program)
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("{} could not start: {error}", self.program));
        self.child = Some(child);
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                // Something answers; make sure it is ours. The port was free when chosen, but
                // another process may have taken it since, and then ours exits at once on a
                // failed bind while the other one answers in its place.
                tokio::time::sleep(Duration::from_millis(100)).await;
                let exited = self.child.as_mut().and_then(|child| child.try_wait().ok()?);
                if let Some(status) = exited {
                    panic!(
                        "{} exited ({status}): port {} is held by another process",
                        self.program, self.port
                    );
                }
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("{} did not listen on {}", self.program, self.port);
    }

    /// Kills the process (SIGKILL: no goodbye to its clients).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        self.kill();
    }
}
