//! The presence directory kept in PostgreSQL, for several nodes without Redis (a NATS bus, say):
//! each node's counts in `presence_counts`, the live nodes in `presence_nodes` with the
//! PostgreSQL time each is remembered until. Every operation is one call of a function the
//! migrations define, one transaction that serialises what it must (see `PRESENCE_MIGRATION`),
//! so it is atomic across nodes, and time is PostgreSQL's own, so nodes' clocks need not agree.
//! It keeps the Redis directory's rules and passes the same conformance suite.

use crate::postgres::{from_pg, migrate};
use crate::StoreError;
use async_trait::async_trait;
use sqlx::postgres::{PgPool, PgPoolOptions};
use std::sync::Mutex;
use std::time::Duration;
use switchboard_bus::presence::{
    agent_of, agents_of, contact_field, fields, principals, Mirror, PresenceChange,
    PresenceDirectory, Present, Swept,
};
use switchboard_bus::BusError;
use switchboard_core::{AccountId, AgentId, ContactId};

/// How long one call waits for PostgreSQL.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

pub struct PostgresPresence {
    pool: PgPool,
    node: String,
    window: Duration,
    /// Held across each call that writes, so a rejoin writes exactly what was told.
    mirror: tokio::sync::Mutex<Mirror>,
    /// Principals found back by a rejoin within a change, told by the next sweep.
    back: Mutex<Vec<Present>>,
}

fn failed(error: StoreError) -> BusError {
    BusError::Unreachable(Box::new(error))
}

/// Runs one call with the directory's time limit.
async fn within<T>(
    call: impl std::future::Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, BusError> {
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(answer) => answer.map_err(|error| failed(from_pg(error))),
        Err(elapsed) => Err(BusError::Unreachable(Box::new(elapsed))),
    }
}

fn agents_listed(fields: Vec<String>, counts: Vec<i64>) -> Vec<(AgentId, u64)> {
    let mut agents: Vec<(AgentId, u64)> = fields
        .iter()
        .zip(counts)
        .filter_map(|(field, count)| Some((agent_of(field)?, count.max(0) as u64)))
        .collect();
    agents.sort();
    agents
}

/// Splits fields into the counted ones and routes, for `principals`.
fn counted_and_routes(found: Vec<String>) -> Vec<Present> {
    let (routes, counted): (Vec<String>, Vec<String>) =
        found.into_iter().partition(|field| field.starts_with("r:"));
    principals(&counted, &routes)
}

impl PostgresPresence {
    /// Connects to `url` (the store's `postgres://…`) as `node`, remembered for `window` after
    /// its last word, and applies the store's pending migrations (the directory's tables are
    /// among them).
    pub async fn connect(url: &str, node: &str, window: Duration) -> Result<Self, BusError> {
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(CALL_TIMEOUT)
            .connect(url)
            .await
            .map_err(|error| failed(from_pg(error)))?;
        migrate(&pool).await.map_err(failed)?;
        let directory = PostgresPresence {
            pool,
            node: node.to_string(),
            window,
            mirror: tokio::sync::Mutex::default(),
            back: Mutex::default(),
        };
        // Joins with nothing; an earlier process with this node id is replaced.
        let mirror = directory.mirror.lock().await;
        directory.rejoin(&mirror).await?;
        drop(mirror);
        Ok(directory)
    }

    fn window_ms(&self) -> i64 {
        self.window.as_millis() as i64
    }

    /// Writes this node's counts back; who was offline until now.
    async fn rejoin(&self, mirror: &Mirror) -> Result<Vec<Present>, BusError> {
        let (fields, counts): (Vec<String>, Vec<i64>) = mirror
            .counts
            .iter()
            .map(|(field, count)| (field.clone(), *count))
            .unzip();
        let back: Vec<String> = within(
            sqlx::query_scalar("SELECT presence_rejoin($1, $2, $3, $4)")
                .bind(&self.node)
                .bind(self.window_ms())
                .bind(&fields)
                .bind(&counts)
                .fetch_one(&self.pool),
        )
        .await?;
        let routes: Vec<String> = fields
            .into_iter()
            .filter(|field| field.starts_with("r:"))
            .collect();
        Ok(principals(&back, &routes))
    }

    /// One sweep, or `None` when this node was forgotten and must rejoin first.
    async fn sweep_once(&self, leaving: bool) -> Result<Option<Vec<Present>>, BusError> {
        let gone: Option<Vec<String>> = within(
            sqlx::query_scalar("SELECT presence_sweep($1, $2, $3)")
                .bind(&self.node)
                .bind(self.window_ms())
                .bind(leaving)
                .fetch_one(&self.pool),
        )
        .await?;
        Ok(gone.map(counted_and_routes))
    }

    /// One change, or `None` when this node was forgotten and must rejoin first.
    async fn change_once(
        &self,
        field: &str,
        applied: i64,
        route: &str,
        listing: &str,
    ) -> Result<Option<PresenceChange>, BusError> {
        type Answer = (
            Option<i64>,
            Option<i64>,
            Option<Vec<String>>,
            Option<Vec<i64>>,
        );
        let (before, after, agents, counts): Answer = within(
            sqlx::query_as(
                "SELECT before_count, after_count, agent_fields, agent_counts \
                 FROM presence_change($1, $2, $3, $4, $5, $6)",
            )
            .bind(&self.node)
            .bind(self.window_ms())
            .bind(field)
            .bind(applied)
            .bind(route)
            .bind(listing)
            .fetch_one(&self.pool),
        )
        .await?;
        let (Some(before), Some(after)) = (before, after) else {
            return Ok(None);
        };
        Ok(Some(PresenceChange {
            before: before.max(0) as u64,
            after: after.max(0) as u64,
            agents_present: agents_listed(agents.unwrap_or_default(), counts.unwrap_or_default()),
        }))
    }
}

#[async_trait]
impl PresenceDirectory for PostgresPresence {
    async fn change(&self, who: Present, delta: i64) -> Result<PresenceChange, BusError> {
        let (field, route) = fields(who);
        let route = route.unwrap_or_default();
        let listing = match who {
            Present::Agent { account_id, .. } => agents_of(account_id),
            Present::Contact { .. } => String::new(),
        };
        let mut mirror = self.mirror.lock().await;
        // Never below zero on this node; applied to the mirror only once PostgreSQL has it.
        let applied = delta.max(-mirror.counts.get(&field).copied().unwrap_or(0));
        let change = match self.change_once(&field, applied, &route, &listing).await? {
            Some(change) => change,
            None => {
                let back = self.rejoin(&mirror).await?;
                self.back.lock().expect("presence poisoned").extend(back);
                self.change_once(&field, applied, &route, &listing)
                    .await?
                    .ok_or_else(|| {
                        BusError::Unreachable(
                            "the presence directory forgot this node again".into(),
                        )
                    })?
            }
        };
        mirror.apply(&field, applied);
        if !route.is_empty() {
            mirror.apply(&route, applied);
        }
        Ok(change)
    }

    async fn agents_present(&self, account_id: AccountId) -> Result<Vec<(AgentId, u64)>, BusError> {
        let (fields, counts): (Vec<String>, Vec<i64>) = within(
            sqlx::query_as("SELECT fields, counts FROM presence_agents($1, presence_now())")
                .bind(agents_of(account_id))
                .fetch_one(&self.pool),
        )
        .await?;
        Ok(agents_listed(fields, counts))
    }

    async fn contact_connections(
        &self,
        account_id: AccountId,
        contact_id: ContactId,
    ) -> Result<u64, BusError> {
        let total: i64 = within(
            sqlx::query_scalar("SELECT presence_total($1, presence_now())")
                .bind(contact_field(account_id, contact_id))
                .fetch_one(&self.pool),
        )
        .await?;
        Ok(total.max(0) as u64)
    }

    async fn sweep(&self) -> Result<Swept, BusError> {
        let mirror = self.mirror.lock().await;
        let mut back = std::mem::take(&mut *self.back.lock().expect("presence poisoned"));
        let gone = match self.sweep_once(false).await? {
            Some(gone) => gone,
            None => {
                back.extend(self.rejoin(&mirror).await?);
                self.sweep_once(false).await?.unwrap_or_default()
            }
        };
        Ok(Swept { gone, back })
    }

    async fn leave(&self) -> Result<Vec<Present>, BusError> {
        let mut mirror = self.mirror.lock().await;
        let gone = self.sweep_once(true).await?.unwrap_or_default();
        mirror.counts.clear();
        Ok(gone)
    }

    fn window(&self) -> Duration {
        self.window
    }

    async fn ping(&self) -> Result<(), BusError> {
        within(sqlx::query("SELECT 1").execute(&self.pool))
            .await
            .map(|_| ())
    }
}
