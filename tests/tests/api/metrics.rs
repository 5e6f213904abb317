//! `GET /metrics`: Prometheus text, with no key, counting what the service did.

use filegate_tests::{Chunk, Profile, TestApp, TestAppOptions, free_port};

use crate::support::{envelope, random_bytes, split};

async fn page(app: &TestApp, url: &str) -> String {
    let resp = app.http.get(url).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200, "GET {url}");
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    resp.text().await.unwrap()
}

fn assert_lines(page: &str, lines: &[&str]) {
    for line in lines {
        assert!(page.contains(line), "`{line}` missing from:\n{page}");
    }
}

/// An upload of two chunks, and one left open, are counted by mode and route; the open one
/// shows in the gauge; no file id appears anywhere.
pub async fn metrics_count_uploads_and_answers_without_ids(profile: Profile) {
    let app = TestApp::spawn(profile).await;
    let data = random_bytes(30_000);
    let chunks = split(&data, 2);
    let first = envelope(
        app.post_chunk(Chunk::new(chunks[0], 0, 2, "Message")).await,
        200,
    )
    .await;
    let id = first["data"]["fileId"].as_str().unwrap().to_owned();
    envelope(
        app.post_chunk(Chunk::new(chunks[1], 1, 2, "Message").file_id(&id))
            .await,
        200,
    )
    .await;
    let open = envelope(
        app.post_chunk(Chunk::new(b"a,b\n", 0, 3, "Import")).await,
        200,
    )
    .await;
    let open_id = open["data"]["fileId"].as_str().unwrap().to_owned();
    envelope(app.status(&id).await, 200).await;
    // No key is needed.
    let text = page(&app, &app.url("/metrics")).await;
    assert_lines(
        &text,
        &[
            "filegate_uploads_opened_total{mode=\"Message\"} 1",
            "filegate_uploads_completed_total{mode=\"Message\"} 1",
            "filegate_uploads_opened_total{mode=\"Import\"} 1",
            "filegate_received_bytes_total{mode=\"Message\"} 30000",
            "filegate_chunk_duration_seconds_count 3",
            "filegate_http_answers_total{route=\"chunk\",status=\"200\"} 3",
            "filegate_http_answers_total{route=\"status\",status=\"200\"} 1",
            "filegate_open_uploads 1",
            "filegate_outbox_backlog 1",
            "filegate_open_connections ",
            "filegate_inflight_bytes 0",
        ],
    );
    assert!(!text.contains(&id) && !text.contains(&open_id), "{text}");
    assert!(!text.contains(&app.firm.to_string()));
}

/// With `telemetry.metrics_addr`, the metrics move to a listener of their own and leave the
/// API port.
pub async fn metrics_move_to_their_own_listener(profile: Profile) {
    let addr = format!("127.0.0.1:{}", free_port());
    let mut options = TestAppOptions::new(profile);
    options
        .env
        .push(("FILEGATE_TELEMETRY__METRICS_ADDR".into(), addr.clone()));
    let app = TestApp::spawn_with(options).await;
    envelope(
        app.post_chunk(Chunk::new(b"x,y\n", 0, 1, "Import")).await,
        200,
    )
    .await;
    let text = page(&app, &format!("http://{addr}/metrics")).await;
    assert_lines(
        &text,
        &["filegate_uploads_completed_total{mode=\"Import\"} 1"],
    );
    let on_api = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(on_api.status().as_u16(), 404);
}
