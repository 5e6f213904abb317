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
