//! Checksums (issue 10): chunks checked against `ChunkSha256`, every complete file's SHA-256 in
//! its status and its content's `Repr-Digest`.

use std::time::Duration;

use base64::Engine;
use filegate_tests::{Chunk, Profile, TestApp};
use sha2::{Digest, Sha256};

use crate::support::{envelope, random_bytes, split};

fn sha(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Chunks sent in order, each with its `ChunkSha256`: the completing answer and the status
/// carry the file's SHA-256 at once, and the content route sends it as `Repr-Digest`, for a
/// range too.
pub async fn a_file_sent_in_order_carries_its_sha256(profile: Profile) {
    let app = TestApp::spawn(profile).await;
    let data = random_bytes(3 * 40_000);
    let chunks = split(&data, 3);
    let first = envelope(
        app.post_chunk(Chunk::new(chunks[0], 0, 3, "Message").sha256(&sha(chunks[0])))
            .await,
        200,
    )
    .await;
    assert!(first["data"]["sha256"].is_null(), "not complete yet");
    let id = first["data"]["fileId"].as_str().unwrap().to_owned();
    let mut last = serde_json::Value::Null;
    for (i, chunk) in chunks.iter().enumerate().skip(1) {
        last = envelope(
            app.post_chunk(
                Chunk::new(chunk, i as u32, 3, "Message")
                    .file_id(&id)
                    .sha256(&sha(chunk).to_uppercase()),
            )
            .await,
            200,
        )
        .await;
    }
    assert_eq!(last["data"]["isComplete"], true);
    assert_eq!(last["data"]["sha256"], sha(&data));
    let status = envelope(app.status(&id).await, 200).await;
    assert_eq!(status["data"]["sha256"], sha(&data));

    let expected = format!(
        "sha-256=:{}:",
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&data))
    );
    for range in [None, Some("bytes=10-99")] {
        let mut req = app
            .http
            .get(app.url(&format!("/api/v1/Files/{id}/content")))
            .header("X-API-Key", &app.key);
        if let Some(range) = range {
            req = req.header("Range", range);
        }
        let resp = req.send().await.unwrap();
        assert!(resp.status().is_success(), "{range:?}: {}", resp.status());
        assert_eq!(
            resp.headers()
                .get("repr-digest")
                .map(|v| v.to_str().unwrap().to_owned()),
            Some(expected.clone()),
            "{range:?}"
        );
    }
}

/// Chunks out of order: the completing answer has no SHA-256 yet, and the status shows the
/// right one soon after (the file is read back once, in the background).
pub async fn a_file_sent_out_of_order_gets_its_sha256_soon(profile: Profile) {
    let app = TestApp::spawn(profile).await;
    let data = random_bytes(3 * 30_000);
    let chunks = split(&data, 3);
    let first = envelope(
        app.post_chunk(Chunk::new(chunks[0], 0, 3, "Import")).await,
        200,
    )
    .await;
    let id = first["data"]["fileId"].as_str().unwrap().to_owned();
    for i in [2usize, 1] {
        envelope(
            app.post_chunk(Chunk::new(chunks[i], i as u32, 3, "Import").file_id(&id))
                .await,
            200,
        )
        .await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let status = loop {
        let status = envelope(app.status(&id).await, 200).await;
        if !status["data"]["sha256"].is_null() || tokio::time::Instant::now() > deadline {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status["data"]["isComplete"], true);
    assert_eq!(status["data"]["sha256"], sha(&data));
}

/// A chunk whose bytes do not match its `ChunkSha256`, or whose `ChunkSha256` is not 64 hex
/// digits, gets 400 naming the field, and nothing of it is recorded; sent right, it goes in.
pub async fn a_chunk_failing_its_sha256_gets_400_and_is_not_kept(profile: Profile) {
    let app = TestApp::spawn(profile).await;
    let data = random_bytes(2 * 20_000);
    let chunks = split(&data, 2);
    let wrong = sha(b"something else");
    for (declared, says) in [(wrong.as_str(), "hash to"), ("abc", "64 hex digits")] {
        let body = envelope(
            app.post_chunk(Chunk::new(chunks[0], 0, 2, "Message").sha256(declared))
                .await,
            400,
        )
        .await;
        let message = body["message"].as_str().unwrap();
        assert!(
            message.starts_with("ChunkSha256") && message.contains(says),
            "{message}"
        );
    }
    let whole = envelope(
        app.post_chunk(Chunk::new(&data, 0, 1, "Message").sha256(&wrong))
            .await,
        400,
    )
    .await;
    assert!(
        whole["message"]
            .as_str()
            .unwrap()
            .starts_with("ChunkSha256")
    );
    let sessions = {
        let sql = "SELECT count(*) FROM upload_sessions";
        app.db().await.count(sql, sql, None).await
    };
    assert_eq!(sessions, 0, "no upload was opened");

    let first = envelope(
        app.post_chunk(Chunk::new(chunks[0], 0, 2, "Message").sha256(&sha(chunks[0])))
            .await,
        200,
    )
    .await;
    let id = first["data"]["fileId"].as_str().unwrap().to_owned();
    envelope(
        app.post_chunk(
            Chunk::new(chunks[1], 1, 2, "Message")
                .file_id(&id)
                .sha256(&wrong),
        )
        .await,
        400,
    )
    .await;
    let status = envelope(app.status(&id).await, 200).await;
    assert_eq!(status["data"]["missingBlocks"], serde_json::json!([1]));
    let done = envelope(
        app.post_chunk(
            Chunk::new(chunks[1], 1, 2, "Message")
                .file_id(&id)
                .sha256(&sha(chunks[1])),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(done["data"]["isComplete"], true);
    let url = done["data"]["url"].as_str().unwrap();
    assert!(app.fetch(url).await == data);
}
