//! The lifecycle of uploads (issue 10): an open upload that no chunk reaches expires.

use std::time::Duration;

use filegate_tests::{Chunk, Profile, TestApp, TestAppOptions};

use crate::support::{envelope, random_bytes, split};

/// With a one-second expiry and sweep, an upload left half-sent expires: its status and its
/// next chunk answer 410 in the envelope, and (on disk) its staged blocks are gone; a complete
/// file and an upload of a mode with a longer time are untouched.
pub async fn an_idle_upload_expires_answers_410_and_frees_its_blocks(profile: Profile) {
    let mut options = TestAppOptions::new(profile);
    options.env.extend([
        ("FILEGATE_UPLOADS__EXPIRE_AFTER_SECS".into(), "1".into()),
        (
            "FILEGATE_UPLOADS__EXPIRE_AFTER_SECS_BY_MODE__IMPORT".into(),
            "3600".into(),
        ),
        ("FILEGATE_UPLOADS__SWEEP_INTERVAL_SECS".into(), "1".into()),
    ]);
    let app = TestApp::spawn_with(options).await;
    let whole = random_bytes(1000);
    let done = envelope(
        app.post_chunk(Chunk::new(&whole, 0, 1, "Message")).await,
        200,
    )
    .await;
    let done = done["data"]["fileId"].as_str().unwrap().to_owned();
    let data = random_bytes(2 * 10_000);
    let chunks = split(&data, 2);
    let first = envelope(
        app.post_chunk(Chunk::new(chunks[0], 0, 2, "Message")).await,
        200,
    )
    .await;
    let id = first["data"]["fileId"].as_str().unwrap().to_owned();
    let expires = first["data"]["expiresAt"]
        .as_str()
        .expect("an open upload's expiresAt");
    let expires = chrono::DateTime::parse_from_rfc3339(expires).expect("RFC 3339");
    let now = chrono::Utc::now();
    assert!(
        expires > now - chrono::Duration::seconds(5)
            && expires <= now + chrono::Duration::seconds(5),
        "a second after the chunk: {expires} (now {now})"
    );
    let kept = envelope(
        app.post_chunk(Chunk::new(chunks[0], 0, 2, "Import")).await,
        200,
    )
    .await;
    let kept = kept["data"]["fileId"].as_str().unwrap().to_owned();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let gone = loop {
        let resp = app.status(&id).await;
        if resp.status().as_u16() == 410 || tokio::time::Instant::now() > deadline {
            break envelope(resp, 410).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        gone["message"].as_str().unwrap().contains("expired"),
        "{gone}"
    );
    let late = envelope(
        app.post_chunk(Chunk::new(chunks[1], 1, 2, "Message").file_id(&id))
            .await,
        410,
    )
    .await;
    assert!(
        late["message"]
            .as_str()
            .unwrap()
            .contains("start a new upload"),
        "{late}"
    );
    let status = envelope(app.status(&done).await, 200).await;
    assert_eq!(status["data"]["isComplete"], true, "a complete file stays");
    assert!(status["data"]["expiresAt"].is_null(), "{status}");
    let status = envelope(app.status(&kept).await, 200).await;
    assert_eq!(
        status["data"]["isComplete"], false,
        "an Import upload has an hour"
    );
    let expires = status["data"]["expiresAt"].as_str().expect("expiresAt");
    let expires = chrono::DateTime::parse_from_rfc3339(expires).expect("RFC 3339");
    assert!(
        expires > chrono::Utc::now() + chrono::Duration::minutes(55),
        "an hour after its last chunk: {expires}"
    );
    if profile == Profile::Embedded {
        // The blocks go right after the expiry is recorded, which the status may beat.
        let staged = || -> Vec<_> {
            std::fs::read_dir(app.blob_root().join(".staging"))
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect()
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while staged().len() > 1 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let left = staged();
        assert_eq!(
            left.len(),
            1,
            "only the Import upload still stages: {left:?}"
        );
    }
}

/// A firm deletes its files, complete or still uploading: 200 in the envelope, then status,
/// content and a second delete answer 404, the bytes are gone (on disk: the file and the
/// staging), another firm's key cannot delete, and the outbox holds one `file.deleted` event
/// per file beside the `file.completed` one.
pub async fn a_deleted_file_answers_404_and_its_bytes_are_gone(profile: Profile) {
    let app = TestApp::spawn(profile).await;
    let delete = |id: &str, key: &str| {
        app.http
            .delete(app.url(&format!("/api/v1/Files/{id}")))
            .header("X-API-Key", key)
            .send()
    };
    let data = random_bytes(5000);
    let done = envelope(
        app.post_chunk(Chunk::new(&data, 0, 1, "Message")).await,
        200,
    )
    .await;
    let done_url = done["data"]["url"].as_str().unwrap().to_owned();
    let done = done["data"]["fileId"].as_str().unwrap().to_owned();
    let chunks = split(&data, 2);
    let open = envelope(
        app.post_chunk(Chunk::new(chunks[0], 0, 2, "Message")).await,
        200,
    )
    .await;
    let open = open["data"]["fileId"].as_str().unwrap().to_owned();

    let stranger = app
        .create_key(uuid::Uuid::new_v4(), uuid::Uuid::new_v4())
        .await;
    envelope(delete(&done, &stranger).await.unwrap(), 404).await;
    for id in [&done, &open] {
        let answer = envelope(delete(id, &app.key).await.unwrap(), 200).await;
        assert_eq!(answer["data"]["fileId"], id.as_str(), "{answer}");
        envelope(app.status(id).await, 404).await;
        envelope(delete(id, &app.key).await.unwrap(), 404).await;
    }
    let content = app
        .http
        .get(app.url(&format!("/api/v1/Files/{done}/content")))
        .header("X-API-Key", &app.key)
        .send()
        .await
        .unwrap();
    envelope(content, 404).await;
    envelope(
        app.post_chunk(Chunk::new(chunks[1], 1, 2, "Message").file_id(&open))
            .await,
        404,
    )
    .await;
    if profile == Profile::Azure {
        let blob = app.http.get(&done_url).send().await.unwrap();
        assert_eq!(
            blob.status().as_u16(),
            404,
            "the blob is gone from the container"
        );
    }
    if profile == Profile::Embedded {
        let path = app
            .blob_root()
            .join(format!("messages/{}/{done}/report.pdf", app.firm));
        assert!(!path.exists(), "the deleted file is gone from disk");
        let staging: Vec<_> = std::fs::read_dir(app.blob_root().join(".staging"))
            .unwrap()
            .collect();
        assert!(staging.is_empty(), "the deleted upload's blocks are gone");
    }
    let mut db = app.db().await;
    let deleted = db
        .count(
            "SELECT count(*) FROM outbox WHERE routing_key = 'file.deleted.message'",
            "SELECT count(*) FROM outbox WHERE routing_key = 'file.deleted.message'",
            None,
        )
        .await;
    assert_eq!(deleted, 2, "one file.deleted event per file");
    let completed = db
        .count(
            "SELECT count(*) FROM outbox WHERE id = $1",
            "SELECT count(*) FROM outbox WHERE id = $1",
            Some(&done),
        )
        .await;
    assert_eq!(completed, 1, "the file.completed event is still there");
}

/// The outbox does not grow forever: with events off and a five-second retention, a committed
/// file's event is purged by the sweeper.
pub async fn old_outbox_events_are_purged(profile: Profile) {
    let mut options = TestAppOptions::new(profile);
    options.env.extend([
        ("FILEGATE_EVENTS__RETAIN_SECS".into(), "5".into()),
        ("FILEGATE_UPLOADS__SWEEP_INTERVAL_SECS".into(), "1".into()),
    ]);
    let app = TestApp::spawn_with(options).await;
    envelope(
        app.post_chunk(Chunk::new(&random_bytes(100), 0, 1, "Import"))
            .await,
        200,
    )
    .await;
    let mut db = app.db().await;
    let count = "SELECT count(*) FROM outbox";
    assert_eq!(db.count(count, count, None).await, 1, "the file's event");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while db.count(count, count, None).await > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        db.count(count, count, None).await,
        0,
        "purged after a second"
    );
}

/// With `limits.open_uploads_per_firm` = 2, a firm's third upload of several chunks gets 429
/// in the envelope with a `Retry-After` of at most an hour, and keeps nothing; a file of one
/// chunk and another firm still pass, and deleting an open upload frees a place.
pub async fn a_firm_past_its_open_upload_quota_gets_429(profile: Profile) {
    let mut options = TestAppOptions::new(profile);
    options
        .env
        .push(("FILEGATE_LIMITS__OPEN_UPLOADS_PER_FIRM".into(), "2".into()));
    let app = TestApp::spawn_with(options).await;
    let data = random_bytes(2 * 1000);
    let chunks = split(&data, 2);
    let mut open = Vec::new();
    for _ in 0..2 {
        let first = envelope(
            app.post_chunk(Chunk::new(chunks[0], 0, 2, "Import")).await,
            200,
        )
        .await;
        open.push(first["data"]["fileId"].as_str().unwrap().to_owned());
    }
    let sessions = || async {
        let sql = "SELECT count(*) FROM upload_sessions";
        app.db().await.count(sql, sql, None).await
    };
    let before = sessions().await;
    let refused = app.post_chunk(Chunk::new(chunks[0], 0, 2, "Import")).await;
    let retry_after: u64 = refused
        .headers()
        .get("retry-after")
        .expect("429 carries Retry-After")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let body = envelope(refused, 429).await;
    assert!(
        (1..=3600).contains(&retry_after),
        "at most an hour (the expiry is a day): {retry_after}"
    );
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("open uploads") && message.contains("limits.open_uploads_per_firm"),
        "{message}"
    );
    assert_eq!(sessions().await, before, "nothing kept");

    envelope(
        app.post_chunk(Chunk::new(&data, 0, 1, "Message")).await,
        200,
    )
    .await;
    let other = app
        .create_key(uuid::Uuid::new_v4(), uuid::Uuid::new_v4())
        .await;
    envelope(
        app.post_chunk_as(&other, Chunk::new(chunks[0], 0, 2, "Import"))
            .await,
        200,
    )
    .await;
    let deleted = app
        .http
        .delete(app.url(&format!("/api/v1/Files/{}", open[0])))
        .header("X-API-Key", &app.key)
        .send()
        .await
        .unwrap();
    envelope(deleted, 200).await;
    envelope(
        app.post_chunk(Chunk::new(chunks[0], 0, 2, "Import")).await,
        200,
    )
    .await;
}
