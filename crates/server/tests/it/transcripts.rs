//! Transcripts: created and appended over REST, followed live on
//! `/ws/transcript/:workspaceId/:transcriptId`.

use crate::common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_are_stored_in_order_and_published_live_to_followers() {
    let server = TestServer::start().await;
    let agent = server.demo["agent"]["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    let workspace = server.demo["accountId"].as_i64().unwrap();
    let (status, transcript) = server
        .post(
            "/api/v1/transcripts",
            &agent,
            json!({"title": "Call with Ada"}),
        )
        .await;
    assert_eq!(status, 201, "{transcript}");
    let id = transcript["id"].as_i64().unwrap();
    assert_eq!(transcript["workspaceId"], workspace);

    let ticket = server.ticket(&agent).await;
    let mut follower = server
        .connect(&format!("/ws/transcript/{workspace}/{id}?ticket={ticket}"))
        .await;
    let (status, segment) = server
        .post(
            &format!("/api/v1/transcripts/{id}/segments"),
            &agent,
            json!({"speaker": "agent", "text": "Hello, Ada", "startMs": 0, "endMs": 900}),
        )
        .await;
    assert_eq!(status, 201, "{segment}");
    assert_eq!(segment["seq"], 1);
    let update = follower.next_of("transcript.updated").await;
    assert_eq!(update["transcriptId"], id);
    assert_eq!(update["segment"]["text"], "Hello, Ada");
    assert_eq!(update["segment"]["seq"], 1);

    // The API key (a back end) appends too; the transcript reads back in order.
    server
        .post(
            &format!("/api/v1/transcripts/{id}/segments"),
            &server.api_key(),
            json!({"speaker": "visitor", "text": "Hi!", "startMs": 1000, "endMs": 1400}),
        )
        .await;
    assert_eq!(
        follower.next_of("transcript.updated").await["segment"]["seq"],
        2
    );
    let read = reqwest::Client::new()
        .get(server.url(&format!("/api/v1/transcripts/{id}")))
        .bearer_auth(&agent)
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    let texts: Vec<_> = read["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(texts, ["Hello, Ada", "Hi!"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_segments_and_strangers_are_refused() {
    let server = TestServer::start().await;
    let agent = server.demo["agent"]["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    let workspace = server.demo["accountId"].as_i64().unwrap();
    let (_, transcript) = server
        .post("/api/v1/transcripts", &agent, json!({"title": "T"}))
        .await;
    let id = transcript["id"].as_i64().unwrap();
    let segments = format!("/api/v1/transcripts/{id}/segments");
    for (body, code) in [
        (
            json!({"speaker": "a", "text": "", "startMs": 0, "endMs": 1}),
            "EMPTY_MESSAGE",
        ),
        (
            json!({"speaker": "a", "text": "x", "startMs": 5, "endMs": 1}),
            "INVALID_REQUEST",
        ),
        (json!({"speaker": "a", "text": "x"}), "INVALID_REQUEST"),
    ] {
        let (status, answer) = server.post(&segments, &agent, body).await;
        assert_eq!(status, 400, "{answer}");
        assert_eq!(answer["error"]["code"], code, "{answer}");
    }
    let (status, _) = server
        .post("/api/v1/transcripts", &agent, json!({"title": "  "}))
        .await;
    assert_eq!(status, 400);
    let (status, _) = server
        .post(
            "/api/v1/transcripts/999999/segments",
            &agent,
            json!({"speaker": "a", "text": "x", "startMs": 0, "endMs": 1}),
        )
        .await;
    assert_eq!(status, 404);
    // A visitor's credential has no transcripts.
    let pubsub = server
        .post(
            "/api/v1/session",
            &server.publishable_key(),
            json!({"agentId": "demo"}),
        )
        .await
        .1["pubsubToken"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, _) = server
        .post("/api/v1/transcripts", &pubsub, json!({"title": "mine"}))
        .await;
    assert_eq!(status, 403);
    // Another workspace's path is not found.
    let ticket = server.ticket(&agent).await;
    let mut wrong = server
        .connect(&format!(
            "/ws/transcript/{}/{id}?ticket={ticket}",
            workspace + 1
        ))
        .await;
    wrong.expect_refusal("NOT_FOUND", 4004).await;
}
