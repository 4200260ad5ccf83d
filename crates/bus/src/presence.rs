//! The presence port: who has live connections, counted across every node, with expiry.
//!
//! Each node counts its own connections and reports them to a [`PresenceDirectory`] shared by
//! the cluster (Redis, or PostgreSQL through the store crate), or kept in this process for one
//! node ([`InMemoryPresence`]). A node
//! proves it is alive by sweeping every third of the window; a node silent for longer than the
//! window is forgotten by whichever node sweeps next, and the principals it alone held turn
//! offline. A forgotten node that wakes up rejoins with the counts it still holds.
//!
//! Architecture invariant: every operation is atomic across nodes, so two nodes counting the
//! same principal in at once see `0 → 1` and `1 → 2`, never `0 → 1` twice.

use crate::BusError;
use async_trait::async_trait;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchboard_core::{AccountId, AgentId, ContactId, InboxId};
use tokio::time::Instant;

/// Whose connections are counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Present {
    Agent {
        account_id: AccountId,
        agent_id: AgentId,
    },
    /// A contact, with the inbox its connection talks in when known (a demo session), so that
    /// its presence is told only to that inbox's agents.
    Contact {
        account_id: AccountId,
        contact_id: ContactId,
        inbox_id: Option<InboxId>,
    },
}

/// What one change did, counted across the cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PresenceChange {
    /// The principal's live connections before and after the change.
    pub before: u64,
    pub after: u64,
    /// For an agent: every agent of its account with live connections after the change (the
    /// agent itself included when it still has some), by id.
    pub agents_present: Vec<(AgentId, u64)>,
}

/// What a sweep found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Swept {
    /// Principals whose connections were all on forgotten nodes: offline now.
    pub gone: Vec<Present>,
    /// Principals this node holds that were offline while it was forgotten: online again.
    pub back: Vec<Present>,
}

#[async_trait]
pub trait PresenceDirectory: Send + Sync + 'static {
    /// Counts `delta` connections of `who` in (or out, when negative) on this node.
    async fn change(&self, who: Present, delta: i64) -> Result<PresenceChange, BusError>;
    /// The agents of `account_id` with live connections on any node, with their counts.
    async fn agents_present(&self, account_id: AccountId) -> Result<Vec<(AgentId, u64)>, BusError>;
    /// A contact's live connections on any node.
    async fn contact_connections(
        &self,
        account_id: AccountId,
        contact_id: ContactId,
    ) -> Result<u64, BusError>;
    /// Keeps this node alive and forgets nodes silent for longer than the window.
    async fn sweep(&self) -> Result<Swept, BusError>;
    /// Forgets this node's connections at once (a clean shutdown); who went offline with them.
    async fn leave(&self) -> Result<Vec<Present>, BusError>;
    /// How long a silent node is remembered.
    fn window(&self) -> Duration;
    /// Succeeds when the directory can be reached.
    async fn ping(&self) -> Result<(), BusError>;
}

// The fields counts are kept under, shared by every backend (public for the directories kept
// outside this crate: the store's PostgreSQL one): `a:ACCOUNT:AGENT` for agents,
// `c:ACCOUNT:CONTACT` for contacts, and `r:ACCOUNT:CONTACT:INBOX` remembering a contact's inbox
// so that the node announcing it gone can tell the right agents.

pub fn agent_field(account_id: AccountId, agent_id: AgentId) -> String {
    format!("a:{}:{}", account_id.0, agent_id.0)
}

pub fn agents_of(account_id: AccountId) -> String {
    format!("a:{}:", account_id.0)
}

pub fn contact_field(account_id: AccountId, contact_id: ContactId) -> String {
    format!("c:{}:{}", account_id.0, contact_id.0)
}

/// The counted field and, for a contact in a known inbox, its route field.
pub fn fields(who: Present) -> (String, Option<String>) {
    match who {
        Present::Agent {
            account_id,
            agent_id,
        } => (agent_field(account_id, agent_id), None),
        Present::Contact {
            account_id,
            contact_id,
            inbox_id,
        } => (
            contact_field(account_id, contact_id),
            inbox_id.map(|inbox| format!("r:{}:{}:{}", account_id.0, contact_id.0, inbox.0)),
        ),
    }
}

fn numbers(rest: &str) -> Option<Vec<i64>> {
    rest.split(':').map(|part| part.parse().ok()).collect()
}

/// Turns counted and route fields back into principals: a contact once per inbox it was
/// routed to (once with no inbox when it had none).
pub fn principals(counted: &[String], routes: &[String]) -> Vec<Present> {
    let mut inboxes: BTreeMap<(i64, i64), BTreeSet<i64>> = BTreeMap::new();
    for route in routes {
        if let Some([account, contact, inbox]) = route
            .strip_prefix("r:")
            .and_then(numbers)
            .as_deref()
            .and_then(|parts| <[i64; 3]>::try_from(parts).ok())
            .as_ref()
        {
            inboxes
                .entry((*account, *contact))
                .or_default()
                .insert(*inbox);
        }
    }
    let mut found = BTreeSet::new();
    for field in counted {
        let (kind, rest) = field.split_at(field.len().min(2));
        let Some([account, id]) = numbers(rest).and_then(|parts| <[i64; 2]>::try_from(parts).ok())
        else {
            continue;
        };
        match kind {
            "a:" => {
                found.insert(Present::Agent {
                    account_id: AccountId(account),
                    agent_id: AgentId(id),
                });
            }
            "c:" => match inboxes.get(&(account, id)) {
                Some(routed) => found.extend(routed.iter().map(|inbox| Present::Contact {
                    account_id: AccountId(account),
                    contact_id: ContactId(id),
                    inbox_id: Some(InboxId(*inbox)),
                })),
                None => {
                    found.insert(Present::Contact {
                        account_id: AccountId(account),
                        contact_id: ContactId(id),
                        inbox_id: None,
                    });
                }
            },
            _ => {}
        }
    }
    found.into_iter().collect()
}

/// Parses `a:ACCOUNT:AGENT` into the agent id.
pub fn agent_of(field: &str) -> Option<AgentId> {
    field.rsplit(':').next()?.parse().ok().map(AgentId)
}

/// What this node has told the directory: its own counts, kept so that a node the others
/// forgot can rejoin with them.
#[derive(Clone, Debug, Default)]
pub struct Mirror {
    pub counts: HashMap<String, i64>,
}

impl Mirror {
    /// The route fields among the counts (for [`principals`]).
    pub fn routes(&self) -> Vec<String> {
        self.counts
            .keys()
            .filter(|field| field.starts_with("r:"))
            .cloned()
            .collect()
    }

    /// Applies a change; the delta actually applied (a count never goes below zero).
    pub fn apply(&mut self, field: &str, delta: i64) -> i64 {
        let count = self.counts.entry(field.to_string()).or_insert(0);
        let applied = delta.max(-*count);
        *count += applied;
        if *count == 0 {
            self.counts.remove(field);
        }
        applied
    }
}

/// Turns fields a directory answered with (counted and route fields mixed) into principals.
pub fn principals_among(found: Vec<String>) -> Vec<Present> {
    let (routes, counted): (Vec<String>, Vec<String>) =
        found.into_iter().partition(|field| field.starts_with("r:"));
    principals(&counted, &routes)
}

/// A presence directory shared by several nodes in another process (Redis, PostgreSQL): the
/// two calls [`NodeCounts`] needs to keep a node in it.
pub trait SharedDirectory: Send + Sync {
    /// Writes this node's counts (`mirror`) back, as it joins or after it was forgotten; the
    /// principals that were offline until now.
    fn rejoin(
        &self,
        mirror: &Mirror,
    ) -> impl std::future::Future<Output = Result<Vec<Present>, BusError>> + Send;
    /// One sweep, keeping this node alive (or, `leaving`, forgetting its counts too): who went
    /// offline, or `None` when this node was forgotten and must rejoin first.
    fn sweep_once(
        &self,
        leaving: bool,
    ) -> impl std::future::Future<Output = Result<Option<Vec<Present>>, BusError>> + Send;
}

/// What a node of a [`SharedDirectory`] keeps of its own, and the rules of joining, sweeping,
/// rejoining and leaving, written once for every such directory: the node's counts as told
/// (held across each call that writes, so a rejoin writes exactly what was told), and the
/// principals found back by a rejoin within a change, told by the next sweep.
#[derive(Default)]
pub struct NodeCounts {
    mirror: tokio::sync::Mutex<Mirror>,
    back: Mutex<Vec<Present>>,
}

impl NodeCounts {
    /// Joins with nothing; an earlier process with this node's id is replaced.
    pub async fn join(&self, directory: &impl SharedDirectory) -> Result<(), BusError> {
        let mirror = self.mirror.lock().await;
        directory.rejoin(&mirror).await?;
        Ok(())
    }

    /// The counts, held for a change: apply to them what the directory took.
    pub async fn lock(&self) -> tokio::sync::MutexGuard<'_, Mirror> {
        self.mirror.lock().await
    }

    /// Rejoins when a change found this node forgotten (`mirror`: the counts the change holds);
    /// who came back is told by the next sweep.
    pub async fn rejoin_within_change(
        &self,
        directory: &impl SharedDirectory,
        mirror: &Mirror,
    ) -> Result<(), BusError> {
        let back = directory.rejoin(mirror).await?;
        self.back.lock().expect("presence poisoned").extend(back);
        Ok(())
    }

    /// Keeps this node alive and forgets silent ones, rejoining first if this node was
    /// forgotten itself.
    pub async fn sweep(&self, directory: &impl SharedDirectory) -> Result<Swept, BusError> {
        let mirror = self.mirror.lock().await;
        let mut back = std::mem::take(&mut *self.back.lock().expect("presence poisoned"));
        let gone = match directory.sweep_once(false).await? {
            Some(gone) => gone,
            None => {
                back.extend(directory.rejoin(&mirror).await?);
                directory.sweep_once(false).await?.unwrap_or_default()
            }
        };
        Ok(Swept { gone, back })
    }

    /// Forgets this node's connections at once; who went offline with them.
    pub async fn leave(&self, directory: &impl SharedDirectory) -> Result<Vec<Present>, BusError> {
        let mut mirror = self.mirror.lock().await;
        let gone = directory.sweep_once(true).await?.unwrap_or_default();
        mirror.counts.clear();
        Ok(gone)
    }
}

/// The presence directory of nodes in one process: the single-node default, and the model the
/// Redis directory is checked against (several handles of one directory act as several nodes).
#[derive(Clone)]
pub struct InMemoryPresence {
    shared: Arc<Mutex<Nodes>>,
    node: Arc<str>,
    window: Duration,
    mirror: Arc<Mutex<Mirror>>,
    /// Principals found back by a rejoin that happened within a change, told by the next sweep.
    back: Arc<Mutex<Vec<Present>>>,
}

#[derive(Default)]
struct Nodes {
    alive_until: HashMap<Arc<str>, Instant>,
    counts: HashMap<Arc<str>, HashMap<String, i64>>,
}

impl Nodes {
    fn live(&self, now: Instant) -> Vec<Arc<str>> {
        self.alive_until
            .iter()
            .filter(|(_, until)| **until >= now)
            .map(|(node, _)| node.clone())
            .collect()
    }

    fn total(&self, live: &[Arc<str>], field: &str) -> u64 {
        live.iter()
            .filter_map(|node| self.counts.get(node)?.get(field))
            .sum::<i64>()
            .max(0) as u64
    }

    /// Forgets every node whose time is up; the counted fields and routes they held.
    fn reap(&mut self, now: Instant) -> (Vec<String>, Vec<String>) {
        let dead: Vec<Arc<str>> = self
            .alive_until
            .iter()
            .filter(|(_, until)| **until < now)
            .map(|(node, _)| node.clone())
            .collect();
        let (mut counted, mut routes) = (BTreeSet::new(), BTreeSet::new());
        for node in dead {
            self.alive_until.remove(&node);
            for field in self.counts.remove(&node).unwrap_or_default().into_keys() {
                if field.starts_with("r:") {
                    routes.insert(field);
                } else {
                    counted.insert(field);
                }
            }
        }
        (counted.into_iter().collect(), routes.into_iter().collect())
    }
}

impl InMemoryPresence {
    /// One node, never forgotten while the process lives.
    pub fn single() -> InMemoryPresence {
        InMemoryPresence::cluster("this-node", Duration::from_secs(3600 * 24 * 365))
    }

    /// The first node of a directory whose nodes are forgotten after `window` of silence.
    pub fn cluster(node: &str, window: Duration) -> InMemoryPresence {
        let directory = InMemoryPresence {
            shared: Arc::default(),
            node: node.into(),
            window,
            mirror: Arc::default(),
            back: Arc::default(),
        };
        directory.join();
        directory
    }

    /// Another node on the same directory.
    pub fn node(&self, node: &str) -> InMemoryPresence {
        let directory = InMemoryPresence {
            shared: self.shared.clone(),
            node: node.into(),
            window: self.window,
            mirror: Arc::default(),
            back: Arc::default(),
        };
        directory.join();
        directory
    }

    fn join(&self) {
        let mut nodes = self.shared.lock().expect("presence poisoned");
        nodes
            .alive_until
            .insert(self.node.clone(), Instant::now() + self.window);
        nodes.counts.entry(self.node.clone()).or_default();
    }

    fn is_alive(&self, nodes: &Nodes, now: Instant) -> bool {
        nodes
            .alive_until
            .get(&self.node)
            .is_some_and(|until| *until >= now)
    }

    /// Writes this node's counts back after it was forgotten; the principals that were offline
    /// meanwhile.
    fn rejoin(&self, nodes: &mut Nodes, now: Instant) -> Vec<Present> {
        nodes.alive_until.remove(&self.node);
        nodes.counts.remove(&self.node);
        let live = nodes.live(now);
        let mirror = self.mirror.lock().expect("presence poisoned").clone();
        let back: Vec<String> = mirror
            .counts
            .keys()
            .filter(|field| !field.starts_with("r:") && nodes.total(&live, field) == 0)
            .cloned()
            .collect();
        let routes: Vec<String> = mirror
            .counts
            .keys()
            .filter(|field| field.starts_with("r:"))
            .cloned()
            .collect();
        nodes.counts.insert(self.node.clone(), mirror.counts);
        nodes
            .alive_until
            .insert(self.node.clone(), now + self.window);
        principals(&back, &routes)
    }
}

#[async_trait]
impl PresenceDirectory for InMemoryPresence {
    async fn change(&self, who: Present, delta: i64) -> Result<PresenceChange, BusError> {
        let now = Instant::now();
        let mut nodes = self.shared.lock().expect("presence poisoned");
        if !self.is_alive(&nodes, now) {
            let back = self.rejoin(&mut nodes, now);
            self.back.lock().expect("presence poisoned").extend(back);
        }
        nodes
            .alive_until
            .insert(self.node.clone(), now + self.window);
        let live = nodes.live(now);
        let (field, route) = fields(who);
        let before = nodes.total(&live, &field);
        let applied = {
            let mut mirror = self.mirror.lock().expect("presence poisoned");
            let applied = mirror.apply(&field, delta);
            if let Some(route) = &route {
                mirror.apply(route, applied);
            }
            applied
        };
        let mine = nodes.counts.entry(self.node.clone()).or_default();
        for field in std::iter::once(&field).chain(route.as_ref()) {
            let count = mine.entry(field.clone()).or_insert(0);
            *count += applied;
            if *count <= 0 {
                mine.remove(field);
            }
        }
        let after = nodes.total(&live, &field);
        let agents_present = match who {
            Present::Agent { account_id, .. } => agents_present(&nodes, &live, account_id),
            Present::Contact { .. } => Vec::new(),
        };
        Ok(PresenceChange {
            before,
            after,
            agents_present,
        })
    }

    async fn agents_present(&self, account_id: AccountId) -> Result<Vec<(AgentId, u64)>, BusError> {
        let nodes = self.shared.lock().expect("presence poisoned");
        let live = nodes.live(Instant::now());
        Ok(agents_present(&nodes, &live, account_id))
    }

    async fn contact_connections(
        &self,
        account_id: AccountId,
        contact_id: ContactId,
    ) -> Result<u64, BusError> {
        let nodes = self.shared.lock().expect("presence poisoned");
        let live = nodes.live(Instant::now());
        Ok(nodes.total(&live, &contact_field(account_id, contact_id)))
    }

    async fn sweep(&self) -> Result<Swept, BusError> {
        let now = Instant::now();
        let mut nodes = self.shared.lock().expect("presence poisoned");
        let mut back = std::mem::take(&mut *self.back.lock().expect("presence poisoned"));
        if !self.is_alive(&nodes, now) {
            back.extend(self.rejoin(&mut nodes, now));
        }
        nodes
            .alive_until
            .insert(self.node.clone(), now + self.window);
        let (counted, routes) = nodes.reap(now);
        let live = nodes.live(now);
        let counted: Vec<String> = counted
            .into_iter()
            .filter(|field| nodes.total(&live, field) == 0)
            .collect();
        Ok(Swept {
            gone: principals(&counted, &routes),
            back,
        })
    }

    async fn leave(&self) -> Result<Vec<Present>, BusError> {
        let now = Instant::now();
        let mut nodes = self.shared.lock().expect("presence poisoned");
        let mine = nodes.counts.remove(&self.node).unwrap_or_default();
        nodes.alive_until.remove(&self.node);
        self.mirror
            .lock()
            .expect("presence poisoned")
            .counts
            .clear();
        let live = nodes.live(now);
        let (mut counted, mut routes) = (Vec::new(), Vec::new());
        for field in mine.into_keys() {
            if field.starts_with("r:") {
                routes.push(field);
            } else if nodes.total(&live, &field) == 0 {
                counted.push(field);
            }
        }
        Ok(principals(&counted, &routes))
    }

    fn window(&self) -> Duration {
        self.window
    }

    async fn ping(&self) -> Result<(), BusError> {
        Ok(())
    }
}

fn agents_present(nodes: &Nodes, live: &[Arc<str>], account_id: AccountId) -> Vec<(AgentId, u64)> {
    let prefix = agents_of(account_id);
    let mut sums: BTreeMap<AgentId, i64> = BTreeMap::new();
    for node in live {
        for (field, count) in nodes.counts.get(node).into_iter().flatten() {
            if let Some(agent) = field.strip_prefix(&prefix).and(agent_of(field)) {
                *sums.entry(agent).or_default() += count;
            }
        }
    }
    sums.into_iter()
        .filter(|(_, count)| *count > 0)
        .map(|(agent, count)| (agent, count as u64))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_principals_round_trip() {
        let agent = Present::Agent {
            account_id: AccountId(3),
            agent_id: AgentId(9),
        };
        let contact = Present::Contact {
            account_id: AccountId(3),
            contact_id: ContactId(-4),
            inbox_id: Some(InboxId(12)),
        };
        let (agent_counted, _) = fields(agent);
        let (contact_counted, route) = fields(contact);
        assert_eq!(
            principals(&[agent_counted, contact_counted], &[route.unwrap()]),
            vec![agent, contact]
        );
        assert_eq!(principals(&["junk".into(), "a:x:1".into()], &[]), vec![]);
    }
}
