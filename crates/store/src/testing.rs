//! For tests that need a PostgreSQL database of their own: [`TempDatabase`] creates one with a
//! unique name on the server at `SWITCHBOARD_TEST_POSTGRES` (this machine's,
//! `postgres://postgres@127.0.0.1:5432/postgres`, by default) and drops it when dropped. An
//! unreachable server fails the test; nothing here skips. Not used by the server itself.

use sqlx::{AssertSqlSafe, Connection, PgConnection};
use std::sync::atomic::{AtomicU32, Ordering};

/// The server tests create their databases on.
pub fn admin_url() -> String {
    std::env::var("SWITCHBOARD_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// A database that exists as long as this value.
pub struct TempDatabase {
    pub name: String,
    /// A URL for the database itself.
    pub url: String,
}

impl TempDatabase {
    pub async fn create() -> TempDatabase {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let name = format!(
            "sb_test_{}_{}_{}",
            std::process::id(),
            nanos % 1_000_000_000,
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let admin = admin_url();
        let mut connection = PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|error| panic!("PostgreSQL at {admin} must be reachable: {error}"));
        sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut connection)
            .await
            .unwrap();
        let _ = connection.close().await;
        let base = admin
            .rsplit_once('/')
            .map_or(admin.as_str(), |(base, _)| base);
        TempDatabase {
            url: format!("{base}/{name}"),
            name,
        }
    }
}

impl Drop for TempDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Dropped from async code too: a thread of its own with a runtime of its own.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async {
                if let Ok(mut connection) = PgConnection::connect(&admin_url()).await {
                    let _ = sqlx::raw_sql(AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut connection)
                    .await;
                    let _ = connection.close().await;
                }
            });
        })
        .join();
    }
}
