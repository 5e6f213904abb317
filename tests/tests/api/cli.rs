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
    uploader_in(app, file, "Import", CHUNK, extra)
}

fn uploader_in(
    app: &TestApp,
    file: &std::path::Path,
    mode: &str,
    chunk: usize,
    extra: &[&str],
) -> Command {
    let mut cmd = Command::new(binary());
    cmd.arg("upload")
        .arg(file)
        .args([
            "--mode",
            mode,
            "--server",
            &app.base,
            "--chunk-size",
            &chunk.to_string(),
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

/// A legacy Excel file (an OLE compound file) whose directory, which names its kind, lies past
/// a 512-byte block 0, under a name without an extension: the service cannot tell its kind
/// from block 0, but the uploader reads the file's head, and declares it.
#[tokio::test]
async fn the_uploader_declares_the_type_the_first_chunk_cannot_show() {
    let app = TestApp::spawn(Profile::Embedded).await;
    let mut data = random_bytes(4096);
    data[..512].fill(0);
    data[..8].copy_from_slice(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]);
    data[0x1E..0x20].copy_from_slice(&9u16.to_le_bytes());
    data[0x30..0x34].copy_from_slice(&0u32.to_le_bytes());
    // Directory sector 0 (at 512): the root entry, then a stream named `Workbook`.
    data[512..1024].fill(0);
    let name: Vec<u8> = "Workbook"
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    data[640..640 + name.len()].copy_from_slice(&name);
    data[640 + 0x40..640 + 0x42].copy_from_slice(&(name.len() as u16 + 2).to_le_bytes());
    let file = std::env::temp_dir().join(format!("ledger-{}", uuid::Uuid::new_v4().simple()));
    std::fs::write(&file, &data).unwrap();

    // A client that declares nothing is refused: block 0 alone does not say.
    let undeclared = Chunk {
        content_type: None,
        file_name: Some("ledger".into()),
        ..Chunk::new(&data[..512], 0, 8, "Message")
    };
    let refused = app.post_chunk(undeclared).await;
    assert_eq!(refused.status().as_u16(), 415);

    let done = run_json(uploader_in(&app, &file, "Message", 512, &[])).await;
    let id = done["fileId"].as_str().unwrap();
    let status = envelope(app.status(id).await, 200).await;
    assert_eq!(status["data"]["contentType"], "application/vnd.ms-excel");
    assert_eq!(app.fetch(done["url"].as_str().unwrap()).await, data);
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
