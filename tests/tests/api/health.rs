//! Probes and the API key lifecycle.

use filegate_tests::{Chunk, TestApp};

use crate::support::{envelope, error_naming};

#[tokio::test]
async fn liveness_and_readiness_answer_without_a_key() {
    let app = TestApp::spawn().await;
    envelope(
        app.http.get(app.url("/health/live")).send().await.unwrap(),
        200,
    )
    .await;
    let ready = envelope(
        app.http.get(app.url("/health/ready")).send().await.unwrap(),
        200,
    )
    .await;
    assert_eq!(ready["data"]["database"], "ok");
    assert_eq!(ready["data"]["blobStore"], "ok");
}

#[tokio::test]
async fn a_revoked_key_is_refused() {
    let app = TestApp::spawn().await;
    let firm = uuid::Uuid::new_v4();
    let key = app.create_key(firm, uuid::Uuid::new_v4()).await;
    envelope(
        app.post_chunk_as(&key, Chunk::new(b"x", 0, 1, "Firm"))
            .await,
        200,
    )
    .await;
    // The key id is printed on the first line of `keys create`; find it in the database.
    let mut db = app.db().await;
    let id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM api_keys WHERE firm_id = $1")
        .bind(firm)
        .fetch_one(&mut db)
        .await
        .unwrap();
    let out = app.revoke_key(&id.to_string()).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    error_naming(
        app.post_chunk_as(&key, Chunk::new(b"x", 0, 1, "Firm"))
            .await,
        401,
        "revoked",
    )
    .await;
}

#[tokio::test]
async fn the_spec_is_served_without_a_key() {
    let app = TestApp::spawn().await;
    let resp = app.http.get(app.url("/openapi.json")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let spec: serde_json::Value = resp.json().await.unwrap();
    assert!(
        spec["paths"]["/api/v1/Files/chunk"]["post"].is_object(),
        "{spec}"
    );
}
