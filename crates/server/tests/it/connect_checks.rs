//! The connect checks of a session socket, each refusal and their order.

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_refusal_has_its_code_and_close() {
    let server = TestServer::start().await;
    let session = server.create_session().await;
    let other = server.create_session().await;

    let mut ws = server.connect(&format!("/ws/session/{}", session.id)).await;
    ws.expect_refusal("AUTH_REQUIRED", 4001).await;
    let mut ws = server
        .connect(&format!("/ws/session/{}?token=", session.id))
        .await;
    ws.expect_refusal("AUTH_REQUIRED", 4001).await;

    let mut ws = server
        .connect(&format!("/ws/session/{}?token=not.a.jwt", session.id))
        .await;
    ws.expect_refusal("INVALID_TOKEN", 4001).await;

    // A token signed with another key does not verify.
    let forged = {
        let mut parts: Vec<String> = session.token.split('.').map(str::to_string).collect();
        parts[2] = "AAAA".repeat(10);
        parts.join(".")
    };
    let mut ws = server
        .connect(&format!("/ws/session/{}?token={forged}", session.id))
        .await;
    ws.expect_refusal("INVALID_TOKEN", 4001).await;

    // A valid token for an id that does not exist.
    let mut ws = server
        .connect(&format!("/ws/session/sess_nope?token={}", session.token))
        .await;
    ws.expect_refusal("SESSION_NOT_FOUND", 4004).await;

    // A valid token of another session.
    let mut ws = server
        .connect(&format!("/ws/session/{}?token={}", other.id, session.token))
        .await;
    ws.expect_refusal("INVALID_TOKEN", 4001).await;

    // An ended session.
    server.end_session(&other).await;
    let mut ws = server.connect_session(&other).await;
    ws.expect_refusal("SESSION_EXPIRED", 4001).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checks_run_in_the_documented_order() {
    let server = TestServer::start().await;
    let session = server.create_session().await;
    // No token wins over an unknown session.
    let mut ws = server.connect("/ws/session/sess_nope").await;
    ws.expect_refusal("AUTH_REQUIRED", 4001).await;
    // A bad token wins over an unknown session.
    let mut ws = server.connect("/ws/session/sess_nope?token=garbage").await;
    ws.expect_refusal("INVALID_TOKEN", 4001).await;
    // An unknown session wins over a token of another session.
    let mut ws = server
        .connect(&format!("/ws/session/sess_nope?token={}", session.token))
        .await;
    ws.expect_refusal("SESSION_NOT_FOUND", 4004).await;
    // A token of another session wins over that session having ended.
    let ended = server.create_session().await;
    server.end_session(&ended).await;
    let mut ws = server
        .connect(&format!("/ws/session/{}?token={}", ended.id, session.token))
        .await;
    ws.expect_refusal("INVALID_TOKEN", 4001).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_whose_bot_is_gone_answers_pdp_not_found() {
    let server = TestServer::start().await;
    let session = server.create_session().await;
    let mut ws = server.connect_session(&session).await;
    let account = switchboard_core::AccountId(server.demo["accountId"].as_i64().unwrap());
    let store = server.engine().store();
    let bot = store.bot_by_name(account, "demo").await.unwrap().unwrap();
    assert!(store.delete_bot(account, bot.id).await.unwrap());
    ws.say("hello?", None).await;
    let error = ws.expect("error").await;
    assert_eq!(error["code"], "PDP_NOT_FOUND");
    // The connection stays open.
    ws.send("heartbeat", serde_json::json!({})).await;
    ws.expect("pong").await;
}
