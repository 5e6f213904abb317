//! `filegate check` (issue 10): each inconsistency made by hand is found, and `--repair`
//! fixes the safe ones.

use std::time::{Duration, SystemTime};

use filegate_tests::{Chunk, Profile, TestApp};

use crate::support::{envelope, random_bytes, split};

/// Runs `filegate check [args]` against the app's stores: (exit success, stdout lines).
async fn check(app: &TestApp, args: &[&str]) -> (bool, Vec<String>) {
    let out = app
        .command()
        .arg("check")
        .args(args)
        .output()
        .await
        .expect("run filegate check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    (
        out.status.success(),
        stdout.lines().map(str::to_owned).collect(),
    )
}

/// Uploads one file of one chunk and answers its id and path relative to the blob root.
async fn one_chunk_file(app: &TestApp, data: &[u8]) -> (String, String) {
    let done = envelope(app.post_chunk(Chunk::new(data, 0, 1, "Import")).await, 200).await;
    let id = done["data"]["fileId"].as_str().unwrap().to_owned();
    let path = format!("imports/{}/{id}/report.pdf", app.firm);
    (id, path)
}

fn age(path: &std::path::Path) {
    let two_hours_ago = SystemTime::now() - Duration::from_secs(2 * 3600);
    std::fs::File::open(path)
        .unwrap()
        .set_modified(two_hours_ago)
        .unwrap();
}

fn has(lines: &[String], prefix: &str, repaired: bool) -> bool {
    lines
        .iter()
        .any(|l| l.starts_with(prefix) && l.ends_with("(repaired)") == repaired)
}

/// On disk: a file whose bytes were deleted, one cut short, bytes nobody answers for, staging
/// no upload uses (both aged past an hour) and a file without a checksum are each reported,
/// and the check fails; `--repair` removes the orphan bytes and staging and fills the
/// checksum, and the check still fails on the two records it must not touch. A clean store
/// passes.
#[tokio::test]
async fn check_finds_each_inconsistency_and_repairs_the_safe_ones() {
    let app = TestApp::spawn(Profile::Embedded).await;
    let (good, _) = one_chunk_file(&app, &random_bytes(1000)).await;
    let (clean, lines) = check(&app, &[]).await;
    assert!(clean, "a consistent store passes: {lines:?}");
    assert_eq!(
        lines.last().unwrap(),
        "checked: 0 findings, 0 repaired, 0 inconsistencies left"
    );

    let root = app.blob_root();
    let (lost, lost_path) = one_chunk_file(&app, &random_bytes(1000)).await;
    std::fs::remove_file(root.join(&lost_path)).unwrap();
    let (short, short_path) = one_chunk_file(&app, &random_bytes(1000)).await;
    std::fs::write(root.join(&short_path), b"short").unwrap();
    let orphan = root.join("imports/nobody/orphan.csv");
    std::fs::create_dir_all(orphan.parent().unwrap()).unwrap();
    std::fs::write(&orphan, b"a,b\n").unwrap();
    age(&orphan);
    let fresh = root.join("imports/nobody/fresh.csv");
    std::fs::write(&fresh, b"a,b\n").unwrap();
    let staging = root.join(".staging/00112233445566778899aabbccddeeff");
    std::fs::create_dir_all(&staging).unwrap();
    age(&staging);
    let data = random_bytes(2000);
    let halves = split(&data, 2);
    let first = envelope(
        app.post_chunk(Chunk::new(halves[0], 0, 2, "Import")).await,
        200,
    )
    .await;
    let open = first["data"]["fileId"].as_str().unwrap().to_owned();
    app.db()
        .await
        .execute(
            "UPDATE files SET sha256 = NULL",
            "UPDATE files SET sha256 = NULL",
        )
        .await;

    let (ok, lines) = check(&app, &[]).await;
    assert!(!ok, "inconsistencies fail the check: {lines:#?}");
    for prefix in [
        format!("record-without-bytes file={lost}"),
        format!("size-differs file={short}"),
        "bytes-without-record path=imports/nobody/orphan.csv size=4".to_owned(),
        "staging-without-session upload=00112233445566778899aabbccddeeff".to_owned(),
        format!("missing-checksum file={good}"),
    ] {
        assert!(has(&lines, &prefix, false), "{prefix} in {lines:#?}");
    }
    assert!(
        !lines.iter().any(|l| l.contains("fresh.csv")),
        "young bytes are no finding"
    );
    assert!(
        !lines.iter().any(|l| l.contains(&open)),
        "an open upload is no finding"
    );
    assert!(
        orphan.exists() && staging.exists(),
        "a check alone changes nothing"
    );

    let (ok, lines) = check(&app, &["--repair"]).await;
    assert!(!ok, "two records are left: {lines:#?}");
    assert!(has(
        &lines,
        "bytes-without-record path=imports/nobody/orphan.csv",
        true
    ));
    assert!(has(&lines, "staging-without-session", true));
    assert!(has(&lines, &format!("missing-checksum file={good}"), true));
    assert!(has(
        &lines,
        &format!("record-without-bytes file={lost}"),
        false
    ));
    assert_eq!(
        lines.last().unwrap(),
        "checked: 5 findings, 3 repaired, 2 inconsistencies left"
    );
    assert!(!orphan.exists() && !staging.exists() && fresh.exists());
    let status = envelope(app.status(&good).await, 200).await;
    assert_eq!(status["data"]["sha256"].as_str().map(str::len), Some(64));

    let (ok, lines) = check(&app, &[]).await;
    assert!(!ok);
    assert_eq!(
        lines.len(),
        3,
        "the two records and the summary: {lines:#?}"
    );
}

/// On Azure (Azurite): a record whose blob is not there and one whose size differs (made in
/// the metadata, since Azurite's blobs cannot be aged or cut by hand) are reported. The
/// container is shared with other tests, so other findings may be listed too.
#[tokio::test]
async fn check_reports_records_that_disagree_with_azure() {
    let app = TestApp::spawn(Profile::Azure).await;
    let done = envelope(
        app.post_chunk(Chunk::new(&random_bytes(3000), 0, 1, "Message"))
            .await,
        200,
    )
    .await;
    let moved = done["data"]["fileId"].as_str().unwrap().to_owned();
    let done = envelope(
        app.post_chunk(Chunk::new(&random_bytes(3000), 0, 1, "Message"))
            .await,
        200,
    )
    .await;
    let resized = done["data"]["fileId"].as_str().unwrap().to_owned();
    let filegate_tests::Db::Postgres(mut db) = app.db().await else {
        unreachable!("the Azure profile")
    };
    sqlx::query("UPDATE files SET blob_path = blob_path || '.gone' WHERE id = $1")
        .bind(uuid::Uuid::parse_str(&moved).unwrap())
        .execute(&mut db)
        .await
        .unwrap();
    sqlx::query("UPDATE files SET size = 2999 WHERE id = $1")
        .bind(uuid::Uuid::parse_str(&resized).unwrap())
        .execute(&mut db)
        .await
        .unwrap();
    let (ok, lines) = check(&app, &[]).await;
    assert!(!ok);
    assert!(
        has(&lines, &format!("record-without-bytes file={moved}"), false),
        "{lines:#?}"
    );
    assert!(
        has(&lines, &format!("size-differs file={resized}"), false)
            && lines
                .iter()
                .any(|l| l.contains("recorded=2999 stored=3000")),
        "{lines:#?}"
    );
}
