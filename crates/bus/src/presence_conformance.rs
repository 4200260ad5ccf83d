//! The presence conformance suite: one set of checks every [`PresenceDirectory`] passes. A
//! backend's tests call [`presence_conformance_tests!`](crate::presence_conformance_tests) with
//! an async expression building a [`PresenceFixture`]: two nodes on one directory, forgotten
//! after [`WINDOW`] of silence.

use crate::presence::{PresenceDirectory, Present};
use std::any::Any;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use switchboard_core::{AccountId, AgentId, ContactId, InboxId};

/// The window the fixture's nodes are built with.
pub const WINDOW: Duration = Duration::from_millis(600);

pub struct PresenceFixture {
    pub node_a: Arc<dyn PresenceDirectory>,
    pub node_b: Arc<dyn PresenceDirectory>,
    pub guard: Box<dyn Any + Send>,
}

#[macro_export]
macro_rules! presence_conformance_tests {
    ($make:expr) => {
        $crate::presence_conformance_tests!(@each $make;
            counts_are_summed_across_nodes,
            agents_are_listed_by_account,
            a_count_never_goes_below_zero,
            a_silent_node_is_forgotten_with_what_only_it_held,
            a_forgotten_node_rejoins_with_what_it_holds,
            a_node_that_leaves_takes_its_principals_at_once,
            concurrent_changes_see_each_transition_once,
        );
    };
    (@each $make:expr; $($check:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $check() {
            let fixture: $crate::presence_conformance::PresenceFixture = $make.await;
            $crate::presence_conformance::$check(&fixture).await;
        }
    )*};
}

/// A unique account id per run, so runs sharing a directory never count each other's.
fn fresh_account() -> AccountId {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    AccountId((nanos % (i64::MAX as u128)) as i64)
}

fn agent(account_id: AccountId, id: i64) -> Present {
    Present::Agent {
        account_id,
        agent_id: AgentId(id),
    }
}

fn contact(account_id: AccountId, id: i64, inbox: Option<i64>) -> Present {
    Present::Contact {
        account_id,
        contact_id: ContactId(id),
        inbox_id: inbox.map(InboxId),
    }
}

async fn counts(directory: &dyn PresenceDirectory, who: Present, delta: i64) -> (u64, u64) {
    let change = directory.change(who, delta).await.unwrap();
    (change.before, change.after)
}

pub async fn counts_are_summed_across_nodes(fixture: &PresenceFixture) {
    let (a, b) = (&*fixture.node_a, &*fixture.node_b);
    let account = fresh_account();
    let ada = agent(account, 1);
    assert_eq!(counts(a, ada, 1).await, (0, 1));
    let change = b.change(ada, 1).await.unwrap();
    assert_eq!((change.before, change.after), (1, 2));
    assert_eq!(change.agents_present, vec![(AgentId(1), 2)]);
    assert_eq!(
        a.agents_present(account).await.unwrap(),
        vec![(AgentId(1), 2)]
    );
    assert_eq!(counts(a, ada, -1).await, (2, 1));
    let change = b.change(ada, -1).await.unwrap();
    assert_eq!((change.before, change.after), (1, 0));
    assert_eq!(change.agents_present, vec![]);

    let visitor = contact(account, 7, Some(3));
    assert_eq!(counts(a, visitor, 1).await, (0, 1));
    assert_eq!(counts(b, contact(account, 7, None), 1).await, (1, 2));
    assert_eq!(
        b.contact_connections(account, ContactId(7)).await.unwrap(),
        2
    );
    assert_eq!(counts(b, contact(account, 7, None), -1).await, (2, 1));
    assert_eq!(counts(a, visitor, -1).await, (1, 0));
    assert_eq!(
        a.contact_connections(account, ContactId(7)).await.unwrap(),
        0
    );
}

pub async fn agents_are_listed_by_account(fixture: &PresenceFixture) {
    let (a, b) = (&*fixture.node_a, &*fixture.node_b);
    let first = fresh_account();
    let second = AccountId(first.0.wrapping_add(1));
    a.change(agent(first, 1), 1).await.unwrap();
    b.change(agent(first, 2), 3).await.unwrap();
    b.change(agent(second, 1), 1).await.unwrap();
    a.change(contact(first, 1, None), 1).await.unwrap();
    assert_eq!(
        b.agents_present(first).await.unwrap(),
        vec![(AgentId(1), 1), (AgentId(2), 3)]
    );
    assert_eq!(
        a.agents_present(second).await.unwrap(),
        vec![(AgentId(1), 1)]
    );
    let change = a.change(agent(second, 5), 1).await.unwrap();
    assert_eq!(
        change.agents_present,
        vec![(AgentId(1), 1), (AgentId(5), 1)]
    );
}

pub async fn a_count_never_goes_below_zero(fixture: &PresenceFixture) {
    let (a, b) = (&*fixture.node_a, &*fixture.node_b);
    let account = fresh_account();
    let ada = agent(account, 1);
    b.change(ada, 1).await.unwrap();
    // Node a never counted ada in: its count-out changes nothing.
    assert_eq!(counts(a, ada, -1).await, (1, 1));
    assert_eq!(counts(a, ada, 1).await, (1, 2));
}

/// Sweeps `node` every quarter window for `for_how_long`, collecting who went.
async fn keep_sweeping(node: &dyn PresenceDirectory, for_how_long: Duration) -> BTreeSet<Present> {
    let mut gone = BTreeSet::new();
    let until = tokio::time::Instant::now() + for_how_long;
    while tokio::time::Instant::now() < until {
        gone.extend(node.sweep().await.unwrap().gone);
        tokio::time::sleep(WINDOW / 4).await;
    }
    gone
}

pub async fn a_silent_node_is_forgotten_with_what_only_it_held(fixture: &PresenceFixture) {
    let (a, b) = (&*fixture.node_a, &*fixture.node_b);
    let account = fresh_account();
    a.change(agent(account, 1), 1).await.unwrap();
    a.change(contact(account, 9, Some(4)), 2).await.unwrap();
    // Held by both nodes: stays.
    a.change(agent(account, 2), 1).await.unwrap();
    b.change(agent(account, 2), 1).await.unwrap();

    let gone = keep_sweeping(b, WINDOW * 2).await;
    assert_eq!(
        gone,
        BTreeSet::from([agent(account, 1), contact(account, 9, Some(4))])
    );
    assert_eq!(
        b.agents_present(account).await.unwrap(),
        vec![(AgentId(2), 1)]
    );
    assert_eq!(
        b.contact_connections(account, ContactId(9)).await.unwrap(),
        0
    );
}

pub async fn a_forgotten_node_rejoins_with_what_it_holds(fixture: &PresenceFixture) {
    let (a, b) = (&*fixture.node_a, &*fixture.node_b);
    let account = fresh_account();
    a.change(agent(account, 1), 1).await.unwrap();
    a.change(contact(account, 9, Some(4)), 1).await.unwrap();
    keep_sweeping(b, WINDOW * 2).await;
    assert_eq!(b.agents_present(account).await.unwrap(), vec![]);

    // Node a wakes up: its next sweep writes back what it holds and says who is back.
    let swept = a.sweep().await.unwrap();
    assert_eq!(
        swept.back.into_iter().collect::<BTreeSet<_>>(),
        BTreeSet::from([agent(account, 1), contact(account, 9, Some(4))])
    );
    assert_eq!(
        b.agents_present(account).await.unwrap(),
        vec![(AgentId(1), 1)]
    );
    // And counting goes on from there.
    assert_eq!(counts(a, agent(account, 1), -1).await, (1, 0));

    // A node that wakes up by changing something first rejoins too, and its next sweep tells.
    keep_sweeping(b, WINDOW * 2).await;
    assert_eq!(counts(a, agent(account, 3), 1).await, (0, 1));
    let swept = a.sweep().await.unwrap();
    assert_eq!(swept.back, vec![contact(account, 9, Some(4))]);
    assert_eq!(
        b.contact_connections(account, ContactId(9)).await.unwrap(),
        1
    );
}

pub async fn a_node_that_leaves_takes_its_principals_at_once(fixture: &PresenceFixture) {
    let (a, b) = (&*fixture.node_a, &*fixture.node_b);
    let account = fresh_account();
    a.change(agent(account, 1), 1).await.unwrap();
    a.change(agent(account, 2), 1).await.unwrap();
    b.change(agent(account, 2), 1).await.unwrap();
    let gone = a.leave().await.unwrap();
    assert_eq!(gone, vec![agent(account, 1)]);
    assert_eq!(
        b.agents_present(account).await.unwrap(),
        vec![(AgentId(2), 1)]
    );
}

pub async fn concurrent_changes_see_each_transition_once(fixture: &PresenceFixture) {
    let account = fresh_account();
    let ada = agent(account, 1);
    let mut changes = Vec::new();
    for n in 0..40 {
        let node = if n % 2 == 0 {
            fixture.node_a.clone()
        } else {
            fixture.node_b.clone()
        };
        changes.push(tokio::spawn(
            async move { node.change(ada, 1).await.unwrap() },
        ));
    }
    let mut befores = Vec::new();
    for change in changes {
        let change = change.await.unwrap();
        assert_eq!(change.after, change.before + 1);
        befores.push(change.before);
    }
    befores.sort_unstable();
    assert_eq!(befores, (0..40).collect::<Vec<u64>>());
    assert_eq!(
        fixture.node_a.agents_present(account).await.unwrap(),
        vec![(AgentId(1), 40)]
    );
}
