//! `filegate upload`, the command-line client, against a running server.

use std::process::Stdio;
use std::time::Duration;

use filegate_tests::{Chunk, Profile, TestApp, TestAppOptions, binary, free_port};
use serde_json::Value;
use tokio::process::Command;

use crate::support::{envelope, random_bytes};

fn sha(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

const CHUNK: usize = 256 * 1024;

fn uploader(app: &TestApp, file: &std::path::Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(binary());
    cmd.arg("upload")
        .arg(file)
        .args([
            "--mode",
            "Import",
            "--server",
            &app.base,
            "--chunk-size",
            &CHUNK.to_string(),
            "--json",
        ])
        .args(extra)
        .env("FILEGATE_API_KEY", &app.key)
        .env("FILEGATE_LOG__LEVEL", "error")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

async fn run_json(mut cmd: Command) -> Value {
    let out = cmd.output().await.expect("run filegate upload");
    assert!(
        out.status.success(),
        "upload failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("not one JSON line ({e}): {stdout}"))
}

fn temp_file(data: &[u8]) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!(
        "filegate-cli-{}.csv",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::write(&path, data).expect("write the file to upload");
    path
}

#[tokio::test]
async fn the_uploader_sends_a_file_in_parallel_chunks_and_prints_one_json_line() {
    let app = TestApp::spawn(Profile::Embedded).await;
    let data = random_bytes(12 * CHUNK - 100);
    let file = temp_file(&data);
    let done = run_json(uploader(&app, &file, &["--parallel", "4"])).await;
    assert_eq!(done["totalBlocks"], 12);
    assert_eq!(done["sentBlocks"], 12);
    assert_eq!(done["size"], data.len());
    assert_eq!(app.fetch(done["url"].as_str().unwrap()).await, data);
    // Out of order (four in flight): the service's checksum came after the commit, and the
    // uploader waited for it and compared.
    assert_eq!(done["sha256"], sha(&data));
    assert_eq!(done["verified"], true);
    let _ = std::fs::remove_file(file);
}

#[tokio::test]
async fn the_uploader_resumes_an_interrupted_upload_with_only_the_missing_blocks() {
    let app = TestApp::spawn(Profile::Embedded).await;
    let data = random_bytes(6 * CHUNK);
    let file = temp_file(&data);
    // An earlier run got blocks 0 and 3 through before it was interrupted.
    let blocks: Vec<&[u8]> = data.chunks(CHUNK).collect();
    let first = envelope(
        app.post_chunk(Chunk::new(blocks[0], 0, 6, "Import")).await,
        200,
    )
    .await;
    let id = first["data"]["fileId"].as_str().unwrap().to_owned();
    envelope(
        app.post_chunk(Chunk::new(blocks[3], 3, 6, "Import").file_id(&id))
            .await,
        200,
    )
    .await;

    let done = run_json(uploader(&app, &file, &["--resume", &id])).await;
    assert_eq!(done["fileId"], id.as_str());
    assert_eq!(done["sentBlocks"], 4, "only the missing blocks are sent");
    assert_eq!(app.fetch(done["url"].as_str().unwrap()).await, data);
    assert_eq!(done["verified"], true);

    // Resuming a complete upload sends nothing and answers the same file.
    let again = run_json(uploader(&app, &file, &["--resume", &id])).await;
    assert_eq!(again["sentBlocks"], 0);
    let _ = std::fs::remove_file(file);
}

#[tokio::test]
async fn the_uploader_retries_while_the_server_is_away() {
    let mut options = TestAppOptions::new(Profile::Embedded);
    options.port = Some(free_port());
    let mut app = TestApp::spawn_with(options).await;
    let data = random_bytes(3 * CHUNK);
    let file = temp_file(&data);
    app.stop().await;
    let upload = uploader(&app, &file, &["--tries", "8"]).output();
    let upload = tokio::spawn(upload);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    app.start_again().await;
    let out = upload.await.unwrap().expect("run filegate upload");
    assert!(
        out.status.success(),
        "upload failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let done: Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
    assert_eq!(app.fetch(done["url"].as_str().unwrap()).await, data);
    let _ = std::fs::remove_file(file);
}

#[tokio::test]
async fn the_uploader_stops_at_once_on_a_refused_key() {
    let mut app = TestApp::spawn(Profile::Embedded).await;
    app.key = "fg_wrong".into();
    let file = temp_file(b"a,b\n");
    let out = uploader(&app, &file, &[]).output().await.unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("401"), "{stderr}");
    let _ = std::fs::remove_file(file);
}

/// The uploader compares the stored file's SHA-256 with the local file's: when they differ
/// (here the record is changed, as a corrupt store would change the bytes) it fails, saying
/// both.
#[tokio::test]
async fn the_uploader_fails_when_the_stored_files_checksum_differs() {
    let app = TestApp::spawn(Profile::Embedded).await;
    let data = random_bytes(2 * CHUNK);
    let file = temp_file(&data);
    let done = run_json(uploader(&app, &file, &[])).await;
    assert_eq!(done["sha256"], sha(&data));
    let id = done["fileId"].as_str().unwrap().to_owned();
    let filegate_tests::Db::Sqlite(mut db) = app.db().await else {
        unreachable!("the embedded profile")
    };
    sqlx::query("UPDATE files SET sha256 = ?2 WHERE id = ?1")
        .bind(&id)
        .bind("0".repeat(64))
        .execute(&mut db)
        .await
        .unwrap();
    let out = uploader(&app, &file, &["--resume", &id])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&"0".repeat(64)) && stderr.contains(&sha(&data)),
        "{stderr}"
    );
    let _ = std::fs::remove_file(file);
}
