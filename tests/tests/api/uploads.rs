//! Successful uploads: the stored file holds exactly the bytes, at the path the mode prescribes.

use filegate_tests::{Chunk, Profile, TestApp};
use futures::future::join_all;
use serde_json::Value;

use crate::support::{envelope, png_bytes, random_bytes, random_pdf, split, upload_sequentially};

fn file_id(body: &Value) -> String {
    body["data"]["fileId"]
        .as_str()
        .expect("a fileId")
        .to_owned()
}

fn url(body: &Value) -> &str {
    body["data"]["url"].as_str().expect("a url")
}

pub async fn a_single_chunk_upload_is_complete_with_the_bytes_at_the_mode_path(profile: Profile) {
    let app = TestApp::spawn(profile).await;
    let data = png_bytes(10_000);
    let body = envelope(
        app.post_chunk(Chunk::new(&data, 0, 1, "Contact")).await,
        200,
    )
    .await;
    assert_eq!(body["message"], "File uploaded successfully");
    assert_eq!(body["data"]["isComplete"], true);
    let prefix = format!("contacts/{}", app.firm);
    app.assert_stored(url(&body), &prefix, &file_id(&body), "report.pdf", &data)
        .await;
}

pub async fn five_chunks_in_sequence_make_one_file(profile: Profile) {
    let app = TestApp::spawn(profile).await;
    let data = random_bytes(5 * 200_000 + 17);
    let last = upload_sequentially(&app, &data, 5, "Message").await;
    assert_eq!(last["data"]["isComplete"], true);
    let prefix = format!("messages/{}", app.firm);
    app.assert_stored(url(&last), &prefix, &file_id(&last), "report.pdf", &data)
        .await;
}

pub async fn chunks_out_of_order_and_four_in_parallel_make_one_file(profile: Profile) {
    let app = TestApp::spawn(profile).await;
    let data = random_bytes(9 * 100_000);
    let chunks = split(&data, 9);
    let first = envelope(
        app.post_chunk(Chunk::new(chunks[0], 0, 9, "Import")).await,
        200,
    )
    .await;
    assert_eq!(first["data"]["isComplete"], false);
    assert!(first["data"]["url"].is_null());
    let id = file_id(&first);
    // Indices 8 down to 1, four at a time.
    let order: Vec<usize> = (1..9).rev().collect();
    let mut answers = Vec::new();
    for batch in order.chunks(4) {
        let sends = batch
            .iter()
            .map(|&i| app.post_chunk(Chunk::new(chunks[i], i as u32, 9, "Import").file_id(&id)));
        for resp in join_all(sends).await {
            answers.push(envelope(resp, 200).await);
        }
    }
    let complete: Vec<_> = answers
        .iter()
        .filter(|a| a["data"]["isComplete"] == true)
        .collect();
    assert_eq!(
        complete.len(),
        1,
        "exactly the last chunk completes the file"
    );
    let prefix = format!("imports/{}", app.firm);
    app.assert_stored(url(complete[0]), &prefix, &id, "report.pdf", &data)
        .await;
}

pub async fn a_chunk_sent_twice_replaces_the_first_copy(profile: Profile) {
    let app = TestApp::spawn(profile).await;
    let data = random_pdf(300_000);
    let chunks = split(&data, 3);
    let first = envelope(
        app.post_chunk(Chunk::new(chunks[0], 0, 3, "Template"))
            .await,
        200,
    )
    .await;
    let id = file_id(&first);
    let wrong = random_bytes(chunks[1].len());
    let once = envelope(
        app.post_chunk(Chunk::new(&wrong, 1, 3, "Template").file_id(&id))
            .await,
        200,
    )
    .await;
    let twice = envelope(
        app.post_chunk(Chunk::new(chunks[1], 1, 3, "Template").file_id(&id))
            .await,
        200,
    )
    .await;
    assert_eq!(once["data"]["receivedBlocks"], 2);
    assert_eq!(
        twice["data"]["receivedBlocks"], 2,
        "a re-sent block is not counted twice"
    );
    let last = envelope(
        app.post_chunk(Chunk::new(chunks[2], 2, 3, "Template").file_id(&id))
            .await,
        200,
    )
    .await;
    assert_eq!(app.fetch(url(&last)).await, data);
}

async fn count_files(app: &TestApp, id: &str) -> i64 {
    let mut db = app.db().await;
    db.count(
        "SELECT count(*) FROM files WHERE id = $1::uuid",
        "SELECT count(*) FROM files WHERE id = ?1",
        Some(id),
    )
    .await
}

/// Two copies of the final chunk race. The one whose block is recorded first commits; the other
/// either overlapped (and answers the same committed file) or arrived after the commit (and is
/// told, with 409, that the file is already complete). Never two commits, never an error.
pub async fn two_racing_copies_of_the_final_chunk_commit_once_and_agree(profile: Profile) {
    let app = TestApp::spawn(profile).await;
    for round in 0..6 {
        let data = random_bytes(200_000);
        let chunks = split(&data, 2);
        let first = envelope(
            app.post_chunk(Chunk::new(chunks[0], 0, 2, "Message")).await,
            200,
        )
        .await;
        let id = file_id(&first);
        let (a, b) = tokio::join!(
            app.post_chunk(Chunk::new(chunks[1], 1, 2, "Message").file_id(&id)),
            app.post_chunk(Chunk::new(chunks[1], 1, 2, "Message").file_id(&id)),
        );
        let mut urls = Vec::new();
        for resp in [a, b] {
            let status = resp.status().as_u16();
            let body = envelope(resp, status).await;
            match status {
                200 => {
                    assert_eq!(body["data"]["isComplete"], true, "round {round}: {body}");
                    urls.push(url(&body).split('?').next().unwrap_or_default().to_owned());
                    assert_eq!(app.fetch(url(&body)).await, data);
                }
                409 => assert!(
                    body["message"]
                        .as_str()
                        .unwrap_or_default()
                        .contains("already complete"),
                    "{body}"
                ),
                other => panic!("round {round}: unexpected status {other}: {body}"),
            }
        }
        assert!(
            !urls.is_empty(),
            "round {round}: one of the two must have committed"
        );
        urls.dedup();
        assert_eq!(
            urls.len(),
            1,
            "round {round}: both answers name the same file"
        );
        assert_eq!(count_files(&app, &id).await, 1);
    }
}

/// The last two missing chunks race: whichever is recorded second commits, and both succeed.
pub async fn the_last_two_missing_chunks_racing_complete_the_file_once(profile: Profile) {
    let app = TestApp::spawn(profile).await;
    for round in 0..6 {
        let data = random_bytes(300_000);
        let chunks = split(&data, 3);
        let first = envelope(
            app.post_chunk(Chunk::new(chunks[0], 0, 3, "Import")).await,
            200,
        )
        .await;
        let id = file_id(&first);
        let (a, b) = tokio::join!(
            app.post_chunk(Chunk::new(chunks[1], 1, 3, "Import").file_id(&id)),
            app.post_chunk(Chunk::new(chunks[2], 2, 3, "Import").file_id(&id)),
        );
        let (a, b) = (envelope(a, 200).await, envelope(b, 200).await);
        let complete: Vec<_> = [&a, &b]
            .into_iter()
            .filter(|v| v["data"]["isComplete"] == true)
            .collect();
        assert!(
            !complete.is_empty(),
            "round {round}: the file must complete: {a} {b}"
        );
        assert_eq!(app.fetch(url(complete[0])).await, data);
        assert_eq!(count_files(&app, &id).await, 1);
    }
}

/// The status of an upload of 50,000 blocks stays small: runs of missing blocks, no lists.
pub async fn the_status_of_a_large_upload_is_compact(profile: Profile) {
    let app = TestApp::spawn(profile).await;
    let first = envelope(
        app.post_chunk(Chunk::new(b"first", 0, 50_000, "Message"))
            .await,
        200,
    )
    .await;
    let id = file_id(&first);
    envelope(
        app.post_chunk(Chunk::new(b"more", 9, 50_000, "Message").file_id(&id))
            .await,
        200,
    )
    .await;
    let resp = app.status(&id).await;
    let raw = resp.bytes().await.unwrap();
    assert!(raw.len() < 1024, "{} bytes: {raw:?}", raw.len());
    let status: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(
        status["data"]["missingRanges"],
        serde_json::json!([[1, 8], [10, 49_999]])
    );
    assert_eq!(status["data"]["receivedCount"], 2);
    assert!(status["data"].get("missingBlocks").is_none());
    assert!(status["data"].get("receivedBlocks").is_none());
}

pub async fn the_status_lists_what_is_missing_and_then_the_url(profile: Profile) {
    let app = TestApp::spawn(profile).await;
    let data = random_bytes(40_000);
    let chunks = split(&data, 4);
    let first = envelope(
        app.post_chunk(Chunk::new(chunks[0], 0, 4, "Message")).await,
        200,
    )
    .await;
    let id = file_id(&first);
    envelope(
        app.post_chunk(Chunk::new(chunks[2], 2, 4, "Message").file_id(&id))
            .await,
        200,
    )
    .await;
    let status = envelope(app.status(&id).await, 200).await;
    assert_eq!(status["data"]["receivedBlocks"], serde_json::json!([0, 2]));
    assert_eq!(status["data"]["missingBlocks"], serde_json::json!([1, 3]));
    assert_eq!(status["data"]["receivedCount"], 2);
    assert_eq!(
        status["data"]["missingRanges"],
        serde_json::json!([[1, 1], [3, 3]])
    );
    assert_eq!(status["data"]["isComplete"], false);
    assert_eq!(status["data"]["mode"], "Message");
    for i in [1usize, 3] {
        envelope(
            app.post_chunk(Chunk::new(chunks[i], i as u32, 4, "Message").file_id(&id))
                .await,
            200,
        )
        .await;
    }
    let status = envelope(app.status(&id).await, 200).await;
    assert_eq!(status["data"]["isComplete"], true);
    assert_eq!(status["data"]["size"], data.len());
    assert_eq!(app.fetch(url(&status)).await, data);
}

pub async fn an_upload_survives_a_server_restart_between_chunks(profile: Profile) {
    let mut app = TestApp::spawn(profile).await;
    let data = random_bytes(300_000);
    let chunks = split(&data, 3);
    let first = envelope(
        app.post_chunk(Chunk::new(chunks[0], 0, 3, "Import")).await,
        200,
    )
    .await;
    let id = file_id(&first);
    envelope(
        app.post_chunk(Chunk::new(chunks[1], 1, 3, "Import").file_id(&id))
            .await,
        200,
    )
    .await;
    app.restart().await;
    let last = envelope(
        app.post_chunk(Chunk::new(chunks[2], 2, 3, "Import").file_id(&id))
            .await,
        200,
    )
    .await;
    assert_eq!(last["data"]["isComplete"], true);
    assert_eq!(app.fetch(url(&last)).await, data);
}

pub async fn the_legacy_fields_and_a_case_insensitive_path_work(profile: Profile) {
    let app = TestApp::spawn(profile).await;
    let data = png_bytes(20_000);
    let chunks = split(&data, 2);
    let legacy = |bytes: &[u8], current: u32| Chunk {
        block_index: None,
        current_block: Some(current.to_string()),
        ..Chunk::new(bytes, 0, 2, "User")
    };
    let send = |chunk: Chunk| {
        app.http
            .post(app.url("/API/V1/files/CHUNK"))
            .header("X-API-Key", &app.key)
            .multipart(chunk.into_form())
            .send()
    };
    let first = envelope(send(legacy(chunks[0], 1)).await.unwrap(), 200).await;
    let id = file_id(&first);
    let last = envelope(send(legacy(chunks[1], 2).file_id(&id)).await.unwrap(), 200).await;
    assert_eq!(last["data"]["isComplete"], true);
    // `User` is read as Profile: the file goes under the user.
    let prefix = format!("profiles/{}", app.user);
    app.assert_stored(url(&last), &prefix, &id, "report.pdf", &data)
        .await;
}

pub async fn the_stored_name_is_the_sanitized_first_file_name(profile: Profile) {
    let app = TestApp::spawn(profile).await;
    let data = b"a,b\n1,2\n";
    let chunk = Chunk {
        file_name: Some("../../etc/pass wd?.csv".into()),
        ..Chunk::new(data, 0, 1, "Import")
    };
    let body = envelope(app.post_chunk(chunk).await, 200).await;
    let prefix = format!("imports/{}", app.firm);
    // The storage path uses a plain-ASCII form of the name; the status keeps the display name.
    app.assert_stored(url(&body), &prefix, &file_id(&body), "pass_wd_.csv", data)
        .await;
    let status = envelope(app.status(&file_id(&body)).await, 200).await;
    assert_eq!(status["data"]["fileName"], "pass wd_.csv");
}

/// A File part sent before the fields that say what it is can't be streamed: it is held until
/// they arrive, and the upload works as usual.
pub async fn a_file_sent_before_its_fields_is_buffered_and_stored(profile: Profile) {
    let app = TestApp::spawn(profile).await;
    let data = png_bytes(3 * 150_000 + 11);
    let chunks = split(&data, 3);
    let first = envelope(
        app.post_chunk(Chunk::new(chunks[0], 0, 3, "Firm").file_first())
            .await,
        200,
    )
    .await;
    let id = file_id(&first);
    envelope(
        app.post_chunk(Chunk::new(chunks[1], 1, 3, "Firm").file_id(&id))
            .await,
        200,
    )
    .await;
    let last = envelope(
        app.post_chunk(
            Chunk::new(chunks[2], 2, 3, "Firm")
                .file_id(&id)
                .file_first(),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(last["data"]["isComplete"], true);
    let prefix = format!("firms/{}", app.firm);
    app.assert_stored(url(&last), &prefix, &id, "report.pdf", &data)
        .await;
}

/// A field that comes after a streamed File would decide about bytes already on their way to
/// storage: the chunk is refused (400, naming the field) and not recorded.
pub async fn a_field_after_a_streamed_file_is_refused_and_not_recorded(profile: Profile) {
    let app = TestApp::spawn(profile).await;
    let first = envelope(
        app.post_chunk(Chunk::new(b"first", 0, 2, "Message")).await,
        200,
    )
    .await;
    let id = file_id(&first);
    let late = Chunk::new(b"second", 1, 2, "Message")
        .file_id(&id)
        .then_field("CurrentBlock", "2");
    let resp = app.post_chunk(late).await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.expect("an envelope");
    let message = body["message"].as_str().expect("a message");
    assert!(
        message.contains("CurrentBlock") && message.contains("before File"),
        "{message}"
    );
    let status = envelope(app.status(&id).await, 200).await;
    assert_eq!(status["data"]["isComplete"], false);
    assert_eq!(status["data"]["missingBlocks"], serde_json::json!([1]));
}
