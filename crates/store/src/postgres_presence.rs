//! The presence directory kept in PostgreSQL, for several nodes without Redis (a NATS bus, say):
//! each node's counts in `presence_counts`, the live nodes in `presence_nodes` with the
//! PostgreSQL time each is remembered until. Every operation is one call of a function the
//! migrations define, one transaction that serialises what it must (see `PRESENCE_MIGRATION`),
//! so it is atomic across nodes, and time is PostgreSQL's own, so nodes' clocks need not agree.
//! Changes queue for one task that makes whatever waits in one call (`presence_changes`), in
//! order. It keeps the Redis directory's rules and passes the same conformance suite.

use crate::postgres::{from_pg, migrate};
use crate::StoreError;
use async_trait::async_trait;
use sqlx::postgres::{PgPool, PgPoolOptions};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use switchboard_bus::presence::{
    agent_of, agents_of, contact_field, fields, principals, principals_among, Mirror, NodeCounts,
    PresenceChange, PresenceDirectory, Present, SharedDirectory, Swept,
};
use switchboard_bus::BusError;
use switchboard_core::{AccountId, AgentId, ContactId};
use tokio::sync::{mpsc, oneshot};

/// How long one call waits for PostgreSQL.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

pub struct PostgresPresence {
    directory: Arc<Directory>,
    /// Changes queue here for the one task that makes them, many to a call.
    changes: mpsc::UnboundedSender<Queued>,
}

struct Directory {
    pool: PgPool,
    node: String,
    window: Duration,
    counts: NodeCounts,
}

/// A change waiting for the changes task, and where its answer goes.
struct Queued {
    who: Present,
    delta: i64,
    answer: oneshot::Sender<Result<PresenceChange, BusError>>,
}

/// At most this many queued changes go in one call.
const MAX_CHANGES_PER_CALL: usize = 256;

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
        let directory = Arc::new(Directory {
            pool,
            node: node.to_string(),
            window,
            counts: NodeCounts::default(),
        });
        directory.counts.join(&*directory).await?;
        let (changes, queue) = mpsc::unbounded_channel();
        tokio::spawn(make_changes(directory.clone(), queue));
        Ok(PostgresPresence { directory, changes })
    }
}

/// Makes the queued changes: whatever waits when a call is free goes in the next one, so a
/// storm of connections costs PostgreSQL a few calls, not one each, and is counted in order.
async fn make_changes(directory: Arc<Directory>, mut queue: mpsc::UnboundedReceiver<Queued>) {
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_CHANGES_PER_CALL {
            match queue.try_recv() {
                Ok(queued) => batch.push(queued),
                Err(_) => break,
            }
        }
        let asked: Vec<(Present, i64)> = batch
            .iter()
            .map(|queued| (queued.who, queued.delta))
            .collect();
        match directory.change_all(&asked).await {
            Ok(changes) => {
                for (queued, change) in batch.into_iter().zip(changes) {
                    let _ = queued.answer.send(Ok(change));
                }
            }
            Err(error) => {
                let reason = error.to_string();
                for queued in batch {
                    let _ = queued
                        .answer
                        .send(Err(BusError::Unreachable(reason.clone().into())));
                }
            }
        }
    }
}

/// One change, made ready for the call: its fields, the delta this node can apply (never
/// below zero here) and which account's agents to list.
struct Prepared {
    field: String,
    route: String,
    applied: i64,
    listing: String,
}

impl Directory {
    fn window_ms(&self) -> i64 {
        self.window.as_millis() as i64
    }

    /// Makes `asked` in order, in one call (two when this node was forgotten and rejoins
    /// first); what each did.
    async fn change_all(&self, asked: &[(Present, i64)]) -> Result<Vec<PresenceChange>, BusError> {
        let mut mirror = self.counts.lock().await;
        // Applied against this node's counts as the earlier changes of the batch leave them.
        let mut counts: HashMap<String, i64> = HashMap::new();
        let prepared: Vec<Prepared> = asked
            .iter()
            .map(|(who, delta)| {
                let (field, route) = fields(*who);
                let count = counts
                    .entry(field.clone())
                    .or_insert_with(|| mirror.counts.get(&field).copied().unwrap_or(0));
                let applied = (*delta).max(-*count);
                *count += applied;
                let listing = match who {
                    Present::Agent { account_id, .. } => agents_of(*account_id),
                    Present::Contact { .. } => String::new(),
                };
                Prepared {
                    field,
                    route: route.unwrap_or_default(),
                    applied,
                    listing,
                }
            })
            .collect();
        let changes = match self.call_changes(&prepared).await? {
            Some(changes) => changes,
            None => {
                self.counts.rejoin_within_change(self, &mirror).await?;
                self.call_changes(&prepared).await?.ok_or_else(|| {
                    BusError::Unreachable("the presence directory forgot this node again".into())
                })?
            }
        };
        for change in &prepared {
            mirror.apply(&change.field, change.applied);
            if !change.route.is_empty() {
                mirror.apply(&change.route, change.applied);
            }
        }
        Ok(changes)
    }

    /// One call of `presence_changes`, or `None` when this node was forgotten.
    async fn call_changes(
        &self,
        prepared: &[Prepared],
    ) -> Result<Option<Vec<PresenceChange>>, BusError> {
        type Row = (i32, i64, i64, Option<Vec<String>>, Option<Vec<i64>>);
        let column = |pick: fn(&Prepared) -> &String| -> Vec<&str> {
            prepared
                .iter()
                .map(|change| pick(change).as_str())
                .collect()
        };
        let applied: Vec<i64> = prepared.iter().map(|change| change.applied).collect();
        let rows: Vec<Row> = within(
            sqlx::query_as(
                "SELECT n, before_count, after_count, agent_fields, agent_counts \
                 FROM presence_changes($1, $2, $3, $4, $5, $6) ORDER BY n",
            )
            .bind(&self.node)
            .bind(self.window_ms())
            .bind(column(|change| &change.field))
            .bind(&applied)
            .bind(column(|change| &change.route))
            .bind(column(|change| &change.listing))
            .fetch_all(&self.pool),
        )
        .await?;
        if rows.is_empty() {
            return Ok(None);
        }
        if rows.len() != prepared.len() {
            return Err(BusError::Unreachable(
                "the presence directory answered a different number of changes".into(),
            ));
        }
        Ok(Some(
            rows.into_iter()
                .map(|(_, before, after, agents, counts)| PresenceChange {
                    before: before.max(0) as u64,
                    after: after.max(0) as u64,
                    agents_present: agents_listed(
                        agents.unwrap_or_default(),
                        counts.unwrap_or_default(),
                    ),
                })
                .collect(),
        ))
    }
}

impl SharedDirectory for Directory {
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
        Ok(principals(&back, &mirror.routes()))
    }

    async fn sweep_once(&self, leaving: bool) -> Result<Option<Vec<Present>>, BusError> {
        let gone: Option<Vec<String>> = within(
            sqlx::query_scalar("SELECT presence_sweep($1, $2, $3)")
                .bind(&self.node)
                .bind(self.window_ms())
                .bind(leaving)
                .fetch_one(&self.pool),
        )
        .await?;
        Ok(gone.map(principals_among))
    }
}

#[async_trait]
impl PresenceDirectory for PostgresPresence {
    async fn change(&self, who: Present, delta: i64) -> Result<PresenceChange, BusError> {
        let (answer, answered) = oneshot::channel();
        self.changes
            .send(Queued { who, delta, answer })
            .map_err(|_| BusError::Unreachable("the presence directory has stopped".into()))?;
        answered
            .await
            .map_err(|_| BusError::Unreachable("the presence directory has stopped".into()))?
    }

    async fn agents_present(&self, account_id: AccountId) -> Result<Vec<(AgentId, u64)>, BusError> {
        let (fields, counts): (Vec<String>, Vec<i64>) = within(
            sqlx::query_as("SELECT fields, counts FROM presence_agents($1, presence_now())")
                .bind(agents_of(account_id))
                .fetch_one(&self.directory.pool),
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
                .fetch_one(&self.directory.pool),
        )
        .await?;
        Ok(total.max(0) as u64)
    }

    async fn sweep(&self) -> Result<Swept, BusError> {
        self.directory.counts.sweep(&*self.directory).await
    }

    async fn leave(&self) -> Result<Vec<Present>, BusError> {
        self.directory.counts.leave(&*self.directory).await
    }

    fn window(&self) -> Duration {
        self.directory.window
    }

    async fn ping(&self) -> Result<(), BusError> {
        within(sqlx::query("SELECT 1").execute(&self.directory.pool))
            .await
            .map(|_| ())
    }
}
