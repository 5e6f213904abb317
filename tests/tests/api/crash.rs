//! Crash safety: the server killed with SIGKILL while it commits a file, then restarted. The
//! file is then either complete with exactly the right bytes, or still open and resumable;
//! never half-written and marked complete.

use std::time::Duration;

use filegate_tests::{Chunk, Profile, TestApp, TestAppOptions};

use crate::support::{envelope, random_bytes, split};

const CHUNK: usize = 8 * 1024 * 1024;

pub async fn a_server_killed_mid_commit_leaves_the_file_whole_or_resumable(profile: Profile) {
    let mut options = TestAppOptions::new(profile);
    options.max_chunk_bytes = CHUNK;
    let mut app = TestApp::spawn_with(options).await;
    // Kill at different moments around the final chunk: while it is sent, while the file is
    // committed, and after.
    for (round, delay_ms) in [5u64, 30, 60, 120, 250].into_iter().enumerate() {
        let data = random_bytes(4 * CHUNK);
        let chunks = split(&data, 4);
        let first = envelope(
            app.post_chunk(Chunk::new(chunks[0], 0, 4, "Import")).await,
            200,
        )
        .await;
        let id = first["data"]["fileId"].as_str().unwrap().to_owned();
        for (i, chunk) in chunks.iter().enumerate().take(3).skip(1) {
            let chunk = Chunk::new(chunk, i as u32, 4, "Import").file_id(&id);
            envelope(app.post_chunk(chunk).await, 200).await;
        }
        let last = Chunk::new(chunks[3], 3, 4, "Import").file_id(&id);
        let request = app
            .http
            .post(app.url("/api/v1/Files/chunk"))
            .header("X-API-Key", &app.key)
            .multipart(last.into_form())
            .send();
        let in_flight = tokio::spawn(request);
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        app.kill().await;
        let _ = in_flight.await;
        app.start_again().await;

        let status = envelope(app.status(&id).await, 200).await;
        if status["data"]["isComplete"] == true {
            let url = status["data"]["url"].as_str().unwrap();
            assert!(
                app.fetch(url).await == data,
                "round {round}: a complete file must have exactly the bytes sent"
            );
        } else {
            if profile == Profile::Embedded {
                // Nothing partial may sit at the final path; a whole file there is the
                // committed-but-not-recorded case, which the retry recognises.
                let path = app
                    .blob_root()
                    .join(format!("imports/{}/{id}/report.pdf", app.firm));
                if let Ok(on_disk) = std::fs::read(&path) {
                    assert!(
                        on_disk == data,
                        "round {round}: a partial file sits at the final path"
                    );
                }
            }
            let missing: Vec<u64> = status["data"]["missingBlocks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap())
                .collect();
            assert!(
                !missing.is_empty(),
                "round {round}: an open file lists what it misses: {status}"
            );
            let mut answer = serde_json::Value::Null;
            for i in missing {
                let chunk = Chunk::new(chunks[i as usize], i as u32, 4, "Import").file_id(&id);
                answer = envelope(app.post_chunk(chunk).await, 200).await;
            }
            assert_eq!(
                answer["data"]["isComplete"], true,
                "round {round}: resuming completes the file"
            );
            let url = answer["data"]["url"].as_str().unwrap();
            assert!(
                app.fetch(url).await == data,
                "round {round}: the resumed file has exactly the bytes sent"
            );
        }
    }
}

/// The window between the blob commit and its record, made deterministic: the database refuses
/// the file record (a trigger) after the blob store has committed the file. The upload stays
/// open and resumable, and the client's retry of its last chunk completes it with the right
/// bytes, leaving no staging behind.
pub async fn a_file_committed_but_not_recorded_completes_on_the_retry(profile: Profile) {
    let app = TestApp::spawn(profile).await;
    let data = random_bytes(3 * 100_000);
    let chunks = split(&data, 3);
    let first = envelope(
        app.post_chunk(Chunk::new(chunks[0], 0, 3, "Message")).await,
        200,
    )
    .await;
    let id = first["data"]["fileId"].as_str().unwrap().to_owned();
    envelope(
        app.post_chunk(Chunk::new(chunks[1], 1, 3, "Message").file_id(&id))
            .await,
        200,
    )
    .await;

    let mut db = app.db().await;
    db.execute(
        "CREATE FUNCTION refuse_files() RETURNS trigger LANGUAGE plpgsql AS
           $$ BEGIN RAISE EXCEPTION 'injected: the record fails'; END $$;
         CREATE TRIGGER refuse_files BEFORE INSERT ON files
           FOR EACH ROW EXECUTE FUNCTION refuse_files();",
        "CREATE TRIGGER refuse_files BEFORE INSERT ON files
           BEGIN SELECT RAISE(ABORT, 'injected: the record fails'); END;",
    )
    .await;
    let last = || Chunk::new(chunks[2], 2, 3, "Message").file_id(&id);
    let failed = app.post_chunk(last()).await;
    assert!(
        failed.status().is_server_error(),
        "the refused record must fail the request, got {}",
        failed.status()
    );
    if profile == Profile::Embedded {
        let path = app
            .blob_root()
            .join(format!("messages/{}/{id}/report.pdf", app.firm));
        assert!(
            std::fs::read(&path).expect("the blob commit happened") == data,
            "the blob store committed the whole file before the record failed"
        );
    }
    db.execute(
        "DROP TRIGGER refuse_files ON files; DROP FUNCTION refuse_files();",
        "DROP TRIGGER refuse_files;",
    )
    .await;

    let status = envelope(app.status(&id).await, 200).await;
    assert_eq!(status["data"]["isComplete"], false, "{status}");
    assert_eq!(status["data"]["missingBlocks"], serde_json::json!([2]));
    let done = envelope(app.post_chunk(last()).await, 200).await;
    assert_eq!(done["data"]["isComplete"], true, "{done}");
    let url = done["data"]["url"].as_str().unwrap();
    assert!(
        app.fetch(url).await == data,
        "the retried commit has exactly the bytes sent"
    );
    if profile == Profile::Embedded {
        let staging: Vec<_> = std::fs::read_dir(app.blob_root().join(".staging"))
            .unwrap()
            .collect();
        assert!(
            staging.is_empty(),
            "the staging is discarded once the commit is recorded"
        );
    }
}

/// A restart sweeps the staging that no open upload uses once it has been left alone for an
/// hour (here: aged by hand), and keeps an open upload's, however old, which then completes.
#[tokio::test]
async fn a_restart_sweeps_staging_that_no_open_upload_uses() {
    use std::time::{Duration, SystemTime};
    let mut app = TestApp::spawn(Profile::Embedded).await;
    let data = random_bytes(2 * 50_000);
    let chunks = split(&data, 2);
    let first = envelope(
        app.post_chunk(Chunk::new(chunks[0], 0, 2, "Message")).await,
        200,
    )
    .await;
    let id = first["data"]["fileId"].as_str().unwrap().to_owned();
    let staging = app.blob_root().join(".staging");
    let open: Vec<_> = std::fs::read_dir(&staging)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(open.len(), 1, "one open upload stages: {open:?}");
    let orphan = staging.join("0123456789abcdef0123456789abcdef");
    std::fs::create_dir(&orphan).unwrap();
    std::fs::write(
        orphan.join("blocks"),
        b"a block whose session was never stored",
    )
    .unwrap();
    let old = SystemTime::now() - Duration::from_secs(2 * 3600);
    for path in [
        orphan.join("blocks"),
        orphan.clone(),
        open[0].join("blocks"),
        open[0].clone(),
    ] {
        std::fs::File::open(&path)
            .unwrap()
            .set_modified(old)
            .unwrap();
    }

    app.restart().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while orphan.exists() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!orphan.exists(), "the orphan staging is swept at start");
    assert!(open[0].exists(), "an open upload's staging stays");
    let done = envelope(
        app.post_chunk(Chunk::new(chunks[1], 1, 2, "Message").file_id(&id))
            .await,
        200,
    )
    .await;
    assert_eq!(done["data"]["isComplete"], true);
    let url = done["data"]["url"].as_str().unwrap();
    assert!(app.fetch(url).await == data);
}

/// The sweeper of a running server (a round a second here) removes, without a restart, the
/// leftovers that appear while it runs: staging no open upload uses and temporary files of
/// writes a crash cut off, once they are older than their thresholds; fresh ones stay, since
/// they may be a write in progress.
#[tokio::test]
async fn a_running_server_sweeps_leftovers_every_round() {
    use std::time::SystemTime;
    let mut options = TestAppOptions::new(Profile::Embedded);
    options
        .env
        .push(("FILEGATE_UPLOADS__SWEEP_INTERVAL_SECS".into(), "1".into()));
    let app = TestApp::spawn_with(options).await;
    // A first file makes the folders a commit writes into.
    let whole = random_bytes(1000);
    let done = envelope(
        app.post_chunk(Chunk::new(&whole, 0, 1, "Message")).await,
        200,
    )
    .await;
    assert_eq!(done["data"]["isComplete"], true);
    // Let the start-up round pass: what follows appears while the server runs.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let root = app.blob_root();
    let staging = root.join(".staging");
    std::fs::create_dir_all(&staging).unwrap();
    let orphan = staging.join("fedcba9876543210fedcba9876543210");
    std::fs::create_dir(&orphan).unwrap();
    std::fs::write(
        orphan.join("blocks"),
        b"a block whose session was never stored",
    )
    .unwrap();
    let old_part = staging.join(".r0_10.tmp");
    std::fs::write(&old_part, b"a block cut off by a crash").unwrap();
    let old_commit = root.join(".filegate-commit-0123abcd.tmp");
    std::fs::write(&old_commit, b"a commit cut off by a crash").unwrap();
    let fresh_commit = root.join(".filegate-commit-4567cdef.tmp");
    std::fs::write(&fresh_commit, b"a commit in progress").unwrap();
    let two_hours_ago = SystemTime::now() - Duration::from_secs(2 * 3600);
    for path in [&orphan.join("blocks"), &orphan, &old_part, &old_commit] {
        std::fs::File::open(path)
            .unwrap()
            .set_modified(two_hours_ago)
            .unwrap();
    }

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while (orphan.exists() || old_part.exists() || old_commit.exists())
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!orphan.exists(), "the orphan staging is swept");
    assert!(!old_part.exists(), "an old block temporary is swept");
    assert!(!old_commit.exists(), "an old commit temporary is swept");
    assert!(fresh_commit.exists(), "a fresh temporary stays");
    let url = done["data"]["url"].as_str().unwrap();
    assert!(app.fetch(url).await == whole, "the file is untouched");
}
