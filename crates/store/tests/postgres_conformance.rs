//! Runs the store conformance suite on the PostgreSQL store, each test in a database of its own
//! on this machine's PostgreSQL, and checks what only several nodes can do to it.

use sqlx::{Connection, PgConnection};
use std::sync::Arc;
use std::time::Duration;
use switchboard_bus::testing::free_port;
use switchboard_store::conformance::{visitor_text, world, Fixture, World};
use switchboard_store::testing::{admin_url, TempDatabase};
use switchboard_store::{conformance_tests, PostgresStore, Store};

async fn fresh_postgres() -> Fixture {
    let database = TempDatabase::create().await;
    let store = PostgresStore::connect(&database.url).await.unwrap();
    Fixture {
        store: Arc::new(store),
        guard: Box::new(database),
    }
}

conformance_tests!(fresh_postgres());

/// The seqs stored in `world`'s conversation, in order.
async fn stored_seqs(store: &Arc<dyn Store>, world: &World) -> Vec<i64> {
    let stored = store
        .messages_after(world.session.conversation_id, 0, 1000)
        .await
        .unwrap();
    stored.iter().map(|message| message.seq).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_starting_together_migrate_once_and_share_gapless_seqs() {
    let database = TempDatabase::create().await;
    // Three "nodes" connect (and migrate) at the same moment.
    let connecting = (0..3).map(|_| PostgresStore::connect(&database.url));
    let nodes: Vec<Arc<dyn Store>> = futures_util::future::join_all(connecting)
        .await
        .into_iter()
        .map(|store| Arc::new(store.unwrap()) as Arc<dyn Store>)
        .collect();
    let world = world(&nodes[0]).await;
    // Each node appends 40 messages to the same conversation, concurrently.
    let mut writers = Vec::new();
    for (index, node) in nodes.iter().enumerate() {
        let node = node.clone();
        let message = visitor_text(&world, "x", None);
        writers.push(tokio::spawn(async move {
            for n in 0..40 {
                let mut message = message.clone();
                message.content = format!("node {index} message {n}");
                node.append_message(message).await.unwrap();
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    assert_eq!(
        stored_seqs(&nodes[1], &world).await,
        (1..=120).collect::<Vec<_>>()
    );
    // The same client message id from every node at once is stored once: the statements that
    // come later meet the unique index, take no seq, and answer with the first one's message.
    for round in 0..20 {
        let client_id = format!("dup-{round}");
        let at_once = nodes.iter().map(|node| {
            let node = node.clone();
            let message = visitor_text(&world, "once", Some(&client_id));
            async move { node.append_message(message).await.unwrap() }
        });
        let results = futures_util::future::join_all(at_once).await;
        assert_eq!(
            results.iter().filter(|appended| appended.created).count(),
            1
        );
        assert!(results.iter().all(|r| r.message == results[0].message));
    }
    // ... and took one seq each time.
    assert_eq!(
        stored_seqs(&nodes[2], &world).await,
        (1..=140).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_from_several_nodes_over_the_same_conversations_all_land() {
    let database = TempDatabase::create().await;
    let mut nodes: Vec<Arc<dyn Store>> = Vec::new();
    for _ in 0..3 {
        nodes.push(Arc::new(
            PostgresStore::connect(&database.url).await.unwrap(),
        ));
    }
    let (first, second) = (
        Arc::new(world(&nodes[0]).await),
        Arc::new(world(&nodes[0]).await),
    );
    // Every node appends batches that span both conversations, some in one order and some in
    // the other, many callers at once: they lock the same rows, and none may deadlock.
    let (callers, rounds) = (4, 15);
    let mut writers = Vec::new();
    for (index, node) in nodes.iter().enumerate() {
        for caller in 0..callers {
            let (node, first, second) = (node.clone(), first.clone(), second.clone());
            writers.push(tokio::spawn(async move {
                for round in 0..rounds {
                    let text = format!("node {index} caller {caller} round {round}");
                    let mut batch = vec![
                        visitor_text(&first, &text, None),
                        visitor_text(&second, &text, None),
                    ];
                    if (index + caller + round) % 2 == 1 {
                        batch.reverse();
                    }
                    for appended in node.append_messages(batch).await.unwrap() {
                        appended.unwrap();
                    }
                }
            }));
        }
    }
    for writer in writers {
        writer.await.unwrap();
    }
    let expected: Vec<i64> = (1..=(nodes.len() * callers * rounds) as i64).collect();
    for world in [&first, &second] {
        assert_eq!(
            stored_seqs(&nodes[2], world).await,
            expected,
            "every append landed, seqs gapless"
        );
    }
}

#[tokio::test]
async fn connections_the_server_ended_while_idle_are_replaced() {
    let database = TempDatabase::create().await;
    let store = PostgresStore::connect(&database.url).await.unwrap();
    store.ping().await.unwrap();

    // The server ends every session on the database, as a restart or a proxy's idle timeout
    // would, while the pool holds them idle.
    assert!(end_sessions_on(&database).await > 0);
    tokio::time::sleep(PostgresStore::PING_IF_IDLE_FOR + Duration::from_millis(200)).await;

    // The pool finds them dead before use and opens new ones: no request fails.
    store.ping().await.unwrap();
    assert_eq!(store.count_accounts().await.unwrap(), 0);
}

/// Ends every session PostgreSQL has open on `database`, as a restart or a failover would.
async fn end_sessions_on(database: &TempDatabase) -> usize {
    let mut admin = PgConnection::connect(&admin_url()).await.unwrap();
    let ended: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
    )
    .bind(&database.name)
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert!(ended.iter().all(|ended| *ended));
    ended.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_ended_while_in_steady_use_fail_one_request_not_one_each() {
    let database = TempDatabase::create().await;
    let store: Arc<dyn Store> = Arc::new(PostgresStore::connect(&database.url).await.unwrap());
    // A burst leaves the pool holding several connections, each idle well under the ping
    // threshold when the server ends them.
    let burst = (0..32).map(|_| store.count_accounts());
    for counted in futures_util::future::join_all(burst).await {
        counted.unwrap();
    }
    let ended = end_sessions_on(&database).await;
    assert!(ended >= 3, "the burst opened {ended} connections");
    // Let each session's end reach its socket.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(PostgresStore::PING_IF_IDLE_FOR > Duration::from_millis(500));

    let mut failed = 0;
    for _ in 0..(2 * ended) {
        if store.count_accounts().await.is_err() {
            failed += 1;
        }
    }
    assert!(
        failed <= 1,
        "{failed} of {} requests failed after {ended} connections ended",
        2 * ended
    );
    assert_eq!(store.count_accounts().await.unwrap(), 0);
}

#[tokio::test]
async fn an_unreachable_server_is_an_error() {
    let url = format!("postgres://postgres@127.0.0.1:{}/x", free_port());
    assert!(PostgresStore::connect(&url).await.is_err());
}

/// How many sessions PostgreSQL has open on `database`.
async fn sessions_on(database: &TempDatabase) -> i64 {
    let mut admin = PgConnection::connect(&admin_url()).await.unwrap();
    sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = $1")
        .bind(&database.name)
        .fetch_one(&mut admin)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_holds_no_more_connections_than_its_pool_size() {
    // The same burst of concurrent reads against a pool of two and a pool of eight.
    for (pool_size, at_most) in [(2, 2), (8, 8)] {
        let database = TempDatabase::create().await;
        let store: Arc<dyn Store> = Arc::new(
            PostgresStore::connect_with_pool(&database.url, pool_size)
                .await
                .unwrap(),
        );
        let world = world(&store).await;
        let reads = (0..64).map(|_| {
            let store = store.clone();
            let conversation = world.session.conversation_id;
            async move { store.messages_after(conversation, 0, 100).await.unwrap() }
        });
        futures_util::future::join_all(reads).await;
        let open = sessions_on(&database).await;
        assert!(
            (1..=at_most).contains(&open),
            "pool of {pool_size}: {open} sessions open"
        );
        if pool_size == 8 {
            assert!(open > 2, "a larger pool opens more under the same burst");
        }
    }
}
