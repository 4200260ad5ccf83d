//! The ActionCable dialect and the public inbox API: seed 004's clients — the stock npm
//! `@rails/actioncable` consumer and raw frames as the document writes them — against the real
//! server (`tests/cable/seed004.test.mjs`).

use crate::common::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documents_clients_work_unchanged() {
    let server = TestServer::start().await;
    crate::common::run_node_suite(
        &server,
        "cable",
        "seed004.test.mjs",
        &["@rails/actioncable", "ws"],
    )
    .await;
}
