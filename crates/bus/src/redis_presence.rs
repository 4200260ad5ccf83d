//! The Redis presence directory: each node's counts in two hashes of its own
//! (`PREFIX:presence:NODE:agents` and `…:contacts`), the live nodes in the sorted set
//! `PREFIX:presence:nodes` scored by the Redis time each is remembered until. Every operation
//! is one Lua script, so it is atomic across nodes, and time is Redis's own (`TIME`), so nodes'
//! clocks need not agree. Keys are named inside the scripts: a single Redis server (or a
//! primary with replicas), not Redis Cluster.

use crate::presence::{
    agent_of, agents_of, contact_field, fields, principals, principals_among, Mirror, NodeCounts,
    PresenceChange, PresenceDirectory, Present, SharedDirectory, Swept,
};
use crate::redis_bus::split_prefix;
use crate::BusError;
use async_trait::async_trait;
use std::time::Duration;
use switchboard_core::{AccountId, AgentId, ContactId};

/// How long one call waits for Redis.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

const PREAMBLE: &str = r#"
local prefix, node, window = ARGV[1], ARGV[2], tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local nodes_key = prefix .. ':presence:nodes'
local function hash(n, kind) return prefix .. ':presence:' .. n .. ':' .. kind end
local function live_nodes() return redis.call('ZRANGEBYSCORE', nodes_key, now, '+inf') end
local function kind_of(field)
  if string.sub(field, 1, 2) == 'a:' then return 'agents' end
  return 'contacts'
end
local function total(live, field)
  local kind, sum = kind_of(field), 0
  for _, n in ipairs(live) do
    local count = redis.call('HGET', hash(n, kind), field)
    if count then sum = sum + tonumber(count) end
  end
  return sum
end
local function is_alive()
  local until_ms = redis.call('ZSCORE', nodes_key, node)
  return until_ms and tonumber(until_ms) >= now
end
local function keep_alive()
  redis.call('ZADD', nodes_key, now + window, node)
  redis.call('PEXPIRE', nodes_key, window * 20)
  redis.call('PEXPIRE', hash(node, 'agents'), window * 20)
  redis.call('PEXPIRE', hash(node, 'contacts'), window * 20)
end
local function agents_listing(live, listing, out)
  local sums = {}
  for _, n in ipairs(live) do
    local all = redis.call('HGETALL', hash(n, 'agents'))
    for i = 1, #all, 2 do
      if string.sub(all[i], 1, #listing) == listing then
        sums[all[i]] = (sums[all[i]] or 0) + tonumber(all[i + 1])
      end
    end
  end
  for field, count in pairs(sums) do
    if count > 0 then
      table.insert(out, field)
      table.insert(out, tostring(count))
    end
  end
  return out
end
"#;

// ARGV[4] field, ARGV[5] delta, ARGV[6] route field or '', ARGV[7] agents to list or ''.
const CHANGE: &str = r#"
if not is_alive() then return {'rejoin'} end
local live = live_nodes()
local field, delta, route, listing = ARGV[4], tonumber(ARGV[5]), ARGV[6], ARGV[7]
local before = total(live, field)
local mine = hash(node, kind_of(field))
local function bump(f)
  local count = redis.call('HINCRBY', mine, f, delta)
  if count <= 0 then redis.call('HDEL', mine, f) end
end
if delta ~= 0 then
  bump(field)
  if route ~= '' then bump(route) end
end
local after = total(live, field)
keep_alive()
local out = {tostring(before), tostring(after)}
if listing ~= '' then agents_listing(live, listing, out) end
return out
"#;

// ARGV[4] agents to list.
const AGENTS: &str = r#"
return agents_listing(live_nodes(), ARGV[4], {})
"#;

// ARGV[4] field.
const TOTAL: &str = r#"
return tostring(total(live_nodes(), ARGV[4]))
"#;

// ARGV[4] 'leave' or 'stay'.
const SWEEP: &str = r#"
local leaving = ARGV[4] == 'leave'
if leaving then
  redis.call('ZADD', nodes_key, 0, node)
elseif not is_alive() then
  return {'rejoin'}
end
local dead = redis.call('ZRANGEBYSCORE', nodes_key, '-inf', '(' .. now)
local counted, routes = {}, {}
for _, n in ipairs(dead) do
  redis.call('ZREM', nodes_key, n)
  for _, kind in ipairs({'agents', 'contacts'}) do
    local key = hash(n, kind)
    local all = redis.call('HGETALL', key)
    redis.call('DEL', key)
    for i = 1, #all, 2 do
      if string.sub(all[i], 1, 2) == 'r:' then routes[all[i]] = true else counted[all[i]] = true end
    end
  end
end
if not leaving then keep_alive() end
local live = live_nodes()
local out = {'swept'}
local gone_contacts = {}
for field, _ in pairs(counted) do
  if total(live, field) == 0 then
    table.insert(out, field)
    gone_contacts[field] = true
  end
end
for route, _ in pairs(routes) do
  local account, contact = string.match(route, '^r:(%-?%d+):(%-?%d+):')
  if account and gone_contacts['c:' .. account .. ':' .. contact] then table.insert(out, route) end
end
return out
"#;

// ARGV[4..] field, count pairs: everything this node holds.
const REJOIN: &str = r#"
redis.call('ZREM', nodes_key, node)
redis.call('DEL', hash(node, 'agents'), hash(node, 'contacts'))
local live = live_nodes()
local out = {}
for i = 4, #ARGV, 2 do
  local field = ARGV[i]
  if string.sub(field, 1, 2) ~= 'r:' and total(live, field) == 0 then table.insert(out, field) end
  redis.call('HSET', hash(node, kind_of(field)), field, ARGV[i + 1])
end
keep_alive()
return out
"#;

pub struct RedisPresence {
    connection: redis::aio::ConnectionManager,
    prefix: String,
    node: String,
    window: Duration,
    scripts: Scripts,
    counts: NodeCounts,
}

struct Scripts {
    change: redis::Script,
    agents: redis::Script,
    total: redis::Script,
    sweep: redis::Script,
    rejoin: redis::Script,
}

fn script(body: &str) -> redis::Script {
    redis::Script::new(&format!("{PREAMBLE}\n{body}"))
}

fn failed(error: impl std::error::Error + Send + Sync + 'static) -> BusError {
    BusError::Unreachable(Box::new(error))
}

impl RedisPresence {
    /// Connects to `url` (`redis://HOST:PORT[/DB][?prefix=NAME]`, the bus's form) as `node`,
    /// remembered for `window` after its last word.
    pub async fn connect(url: &str, node: &str, window: Duration) -> Result<Self, BusError> {
        let (url, prefix) = split_prefix(url);
        let client = redis::Client::open(url.as_str()).map_err(failed)?;
        let connection = tokio::time::timeout(CALL_TIMEOUT, client.get_connection_manager())
            .await
            .map_err(failed)?
            .map_err(failed)?;
        let directory = RedisPresence {
            connection,
            prefix,
            node: node.to_string(),
            window,
            scripts: Scripts {
                change: script(CHANGE),
                agents: script(AGENTS),
                total: script(TOTAL),
                sweep: script(SWEEP),
                rejoin: script(REJOIN),
            },
            counts: NodeCounts::default(),
        };
        directory.counts.join(&directory).await?;
        Ok(directory)
    }

    async fn run<T: redis::FromRedisValue>(
        &self,
        script: &redis::Script,
        extra: &[String],
    ) -> Result<T, BusError> {
        let mut invocation = script.prepare_invoke();
        invocation
            .arg(&self.prefix)
            .arg(&self.node)
            .arg(self.window.as_millis() as u64);
        for arg in extra {
            invocation.arg(arg);
        }
        let mut connection = self.connection.clone();
        tokio::time::timeout(CALL_TIMEOUT, invocation.invoke_async(&mut connection))
            .await
            .map_err(failed)?
            .map_err(failed)
    }
}

impl SharedDirectory for RedisPresence {
    async fn rejoin(&self, mirror: &Mirror) -> Result<Vec<Present>, BusError> {
        let mut extra = Vec::with_capacity(mirror.counts.len() * 2);
        for (field, count) in &mirror.counts {
            extra.push(field.clone());
            extra.push(count.to_string());
        }
        let back: Vec<String> = self.run(&self.scripts.rejoin, &extra).await?;
        Ok(principals(&back, &mirror.routes()))
    }

    async fn sweep_once(&self, leaving: bool) -> Result<Option<Vec<Present>>, BusError> {
        let how = if leaving { "leave" } else { "stay" };
        let reply: Vec<String> = self.run(&self.scripts.sweep, &[how.to_string()]).await?;
        match reply.split_first() {
            Some((status, found)) if status == "swept" => {
                Ok(Some(principals_among(found.to_vec())))
            }
            _ => Ok(None),
        }
    }
}

fn parse_count(text: &str) -> u64 {
    text.parse::<i64>().unwrap_or(0).max(0) as u64
}

fn parse_agents(pairs: &[String]) -> Vec<(AgentId, u64)> {
    let mut agents: Vec<(AgentId, u64)> = pairs
        .chunks_exact(2)
        .filter_map(|pair| Some((agent_of(&pair[0])?, parse_count(&pair[1]))))
        .collect();
    agents.sort();
    agents
}

#[async_trait]
impl PresenceDirectory for RedisPresence {
    async fn change(&self, who: Present, delta: i64) -> Result<PresenceChange, BusError> {
        let (field, route) = fields(who);
        let listing = match who {
            Present::Agent { account_id, .. } => agents_of(account_id),
            Present::Contact { .. } => String::new(),
        };
        let mut mirror = self.counts.lock().await;
        // Never below zero on this node; applied to the mirror only once Redis has it.
        let applied = delta.max(-mirror.counts.get(&field).copied().unwrap_or(0));
        let extra = [
            field.clone(),
            applied.to_string(),
            route.clone().unwrap_or_default(),
            listing.clone(),
        ];
        let mut reply: Vec<String> = self.run(&self.scripts.change, &extra).await?;
        if reply.first().is_some_and(|status| status == "rejoin") {
            self.counts.rejoin_within_change(self, &mirror).await?;
            reply = self.run(&self.scripts.change, &extra).await?;
        }
        mirror.apply(&field, applied);
        if let Some(route) = &route {
            mirror.apply(route, applied);
        }
        drop(mirror);
        let [before, after, agents @ ..] = reply.as_slice() else {
            return Err(failed(std::io::Error::other(
                "the presence directory answered a change with nothing",
            )));
        };
        Ok(PresenceChange {
            before: parse_count(before),
            after: parse_count(after),
            agents_present: parse_agents(agents),
        })
    }

    async fn agents_present(&self, account_id: AccountId) -> Result<Vec<(AgentId, u64)>, BusError> {
        let pairs: Vec<String> = self
            .run(&self.scripts.agents, &[agents_of(account_id)])
            .await?;
        Ok(parse_agents(&pairs))
    }

    async fn contact_connections(
        &self,
        account_id: AccountId,
        contact_id: ContactId,
    ) -> Result<u64, BusError> {
        let total: String = self
            .run(
                &self.scripts.total,
                &[contact_field(account_id, contact_id)],
            )
            .await?;
        Ok(parse_count(&total))
    }

    async fn sweep(&self) -> Result<Swept, BusError> {
        self.counts.sweep(self).await
    }

    async fn leave(&self) -> Result<Vec<Present>, BusError> {
        self.counts.leave(self).await
    }

    fn window(&self) -> Duration {
        self.window
    }

    async fn ping(&self) -> Result<(), BusError> {
        let mut connection = self.connection.clone();
        tokio::time::timeout(
            CALL_TIMEOUT,
            redis::cmd("PING").query_async::<()>(&mut connection),
        )
        .await
        .map_err(failed)?
        .map_err(failed)
    }
}
