//! Traces, black-box: the real binaries export OTLP/HTTP to a receiver in the test, and one
//! trace runs from a chunk request through its `file.completed` event, and from a task's
//! `traceparent` through the worker's Meta calls.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use filegate_adapter_rabbitmq::RabbitPublisher;
use filegate_fake_meta::{FakeMeta, FakeMetaOptions};
use filegate_tests::broker::{Broker, Names, broker_url};
use filegate_tests::otlp::OtlpReceiver;
use filegate_tests::worker::{TestWorker, WorkerOptions};
use filegate_tests::{Chunk, Profile, TestApp, TestAppOptions};
use lapin::types::AMQPValue;
use serde_json::{Value, json};
use uuid::Uuid;

/// A W3C traceparent of a caller's span: trace `trace`, span `span`, sampled.
fn traceparent(trace: &str, span: &str) -> String {
    format!("00-{trace}-{span}-01")
}

fn random_hex(bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

/// Export settings for a binary under test: to `receiver`, in batches every 100 ms.
fn otel_env(receiver: &OtlpReceiver) -> Vec<(String, String)> {
    vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT".into(), receiver.endpoint()),
        ("OTEL_BSP_SCHEDULE_DELAY".into(), "100".into()),
    ]
}

/// A file of one chunk: a small CSV import.
fn csv_chunk() -> Chunk {
    let mut chunk = Chunk::new(b"name\nAda\n", 0, 1, "Import");
    chunk.content_type = Some("text/csv".into());
    chunk
}

async fn post_chunk(app: &TestApp, chunk: Chunk, traceparent: &str) -> Value {
    let resp = reqwest::Client::new()
        .post(app.url("/api/v1/Files/chunk"))
        .header("X-API-Key", &app.key)
        .header("traceparent", traceparent)
        .multipart(chunk.into_form())
        .send()
        .await
        .expect("send chunk");
    assert_eq!(resp.status().as_u16(), 200);
    resp.json().await.expect("envelope")
}

fn header_text(delivery: &lapin::message::Delivery, name: &str) -> Option<String> {
    match delivery.properties.headers().as_ref()?.inner().get(name)? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

async fn a_chunk_request_and_its_event_share_one_trace(profile: Profile) {
    let receiver = OtlpReceiver::start().await;
    let names = Names::fresh();
    let broker = Broker::connect(&names).await;
    let listener = broker.bind_events("file.completed.#").await;
    let mut options = TestAppOptions::new(profile);
    options.env = names.env(&broker_url());
    options.env.extend([
        ("FILEGATE_EVENTS__ENABLED".into(), "true".into()),
        ("FILEGATE_EVENTS__POLL_INTERVAL_MS".into(), "100".into()),
    ]);
    options.env.extend(otel_env(&receiver));
    let app = TestApp::spawn_with(options).await;

    // The CRM's trace: each chunk request is a span of it.
    let trace = random_hex(16);
    let (first_parent, last_parent) = (random_hex(8), random_hex(8));
    let data = b"name,phone\nAda,+441234\nGrace,+441235\n";
    let (head, tail) = data.split_at(16);
    let mut chunk = Chunk::new(head, 0, 2, "Import");
    chunk.content_type = Some("text/csv".into());
    let body = post_chunk(&app, chunk, &traceparent(&trace, &first_parent)).await;
    let file = body["data"]["fileId"].as_str().unwrap().to_owned();
    let chunk = Chunk::new(tail, 1, 2, "Import").file_id(&file);
    let body = post_chunk(&app, chunk, &traceparent(&trace, &last_parent)).await;
    assert_eq!(body["data"]["isComplete"], true);

    broker
        .wait_ready(&listener, 1, Duration::from_secs(30))
        .await;
    let event = broker.get(&listener).await.unwrap();
    let payload: Value = serde_json::from_slice(&event.data).unwrap();
    assert_eq!(payload["fileId"], file.as_str());
    let header = header_text(&event, "traceparent").expect("the event carries a traceparent");
    assert_eq!(
        &header[3..35],
        trace.as_str(),
        "the event is in the committing request's trace: {header}"
    );

    let spans = receiver
        .wait_for_trace(
            &trace,
            &[
                "POST chunk",
                "upload_chunk",
                "commit",
                "store.upsert_block",
                "store.insert_event",
                "blob.stage_block",
                "blob.commit",
            ],
            Duration::from_secs(20),
        )
        .await;
    assert!(spans.iter().all(|s| s.service == "filegate"), "{spans:?}");
    let requests: Vec<_> = spans.iter().filter(|s| s.name == "POST chunk").collect();
    assert_eq!(requests.len(), 2, "one server span per chunk request");
    assert!(
        requests.iter().any(|s| s.parent_span_id == first_parent)
            && requests.iter().any(|s| s.parent_span_id == last_parent),
        "each request span is a child of the caller's span: {requests:?}"
    );
    // The event names the span that wrote it, a span of the last request's subtree.
    let event_parent = &header[36..52];
    assert!(
        spans.iter().any(|s| s.span_id == event_parent),
        "the event's parent span ({event_parent}) was exported: {spans:?}"
    );
    let commit = spans.iter().find(|s| s.name == "commit").unwrap();
    let last_request = requests
        .iter()
        .find(|s| s.parent_span_id == last_parent)
        .unwrap();
    let mut cursor = commit.parent_span_id.clone();
    while cursor != last_request.span_id {
        cursor = spans
            .iter()
            .find(|s| s.span_id == cursor)
            .unwrap_or_else(|| panic!("the commit's ancestry leads to the last request: {spans:?}"))
            .parent_span_id
            .clone();
    }
    broker.cleanup().await;
}

#[tokio::test]
async fn a_chunk_request_and_its_event_share_one_trace_azure() {
    a_chunk_request_and_its_event_share_one_trace(Profile::Azure).await;
}

#[tokio::test]
async fn a_chunk_request_and_its_event_share_one_trace_embedded() {
    a_chunk_request_and_its_event_share_one_trace(Profile::Embedded).await;
}

#[tokio::test]
async fn a_request_without_a_traceparent_starts_a_trace_of_its_own() {
    let receiver = OtlpReceiver::start().await;
    let mut options = TestAppOptions::new(Profile::Embedded);
    options.env.extend(otel_env(&receiver));
    let app = TestApp::spawn_with(options).await;
    let resp = reqwest::Client::new()
        .get(app.url(&format!("/api/v1/Files/{}", Uuid::now_v7())))
        .header("X-API-Key", &app.key)
        .header("traceparent", "not a traceparent")
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status().as_u16(),
        404,
        "a bad header never fails a request"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let span = loop {
        if let Some(s) = receiver
            .spans()
            .into_iter()
            .find(|s| s.name == "GET status")
        {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no request span arrived"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(span.parent_span_id, "", "a root span");
    assert_ne!(span.trace_id, "0".repeat(32));
}

#[tokio::test]
async fn spans_still_buffered_are_exported_on_sigterm() {
    let receiver = OtlpReceiver::start().await;
    let mut options = TestAppOptions::new(Profile::Embedded);
    options.env.extend(otel_env(&receiver));
    // No batch would leave before the test ends: only the shutdown can export it.
    options
        .env
        .push(("OTEL_BSP_SCHEDULE_DELAY".into(), "600000".into()));
    let mut app = TestApp::spawn_with(options).await;
    let trace = random_hex(16);
    let chunk = csv_chunk();
    post_chunk(&app, chunk, &traceparent(&trace, &random_hex(8))).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        receiver.spans().iter().all(|s| s.trace_id != trace),
        "nothing exported before the shutdown"
    );
    app.stop().await;
    receiver
        .wait_for_trace(
            &trace,
            &["POST chunk", "upload_chunk"],
            Duration::from_secs(5),
        )
        .await;
}

#[tokio::test]
async fn a_tasks_traceparent_reaches_the_workers_meta_calls() {
    let receiver = OtlpReceiver::start().await;
    let app = TestApp::spawn_with(TestAppOptions::new(Profile::Azure)).await;
    let meta = FakeMeta::start(FakeMetaOptions::default())
        .await
        .expect("start the fake Meta");
    let names = Names::fresh();
    let broker = Broker::connect(&names).await;
    let mut options = WorkerOptions::new(&names, &meta);
    options.env = otel_env(&receiver);
    let _worker = TestWorker::spawn(&app, options).await;

    let mut chunk = Chunk::new(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", 0, 1, "Message");
    chunk.content_type = Some("image/png".into());
    let resp = app.post_chunk(chunk).await;
    assert_eq!(resp.status().as_u16(), 200);
    let body: Value = resp.json().await.unwrap();
    let file = body["data"]["fileId"].as_str().unwrap().to_owned();

    let (trace, parent) = (random_hex(16), random_hex(8));
    let task = json!({
        "version": 1, "taskId": Uuid::now_v7(), "firmId": app.firm, "fileId": file,
        "message": { "phoneNumberId": "106540352242922", "to": "+4915112345678", "mediaType": "image" }
    });
    RabbitPublisher::new(names.settings(&broker_url()))
        .unwrap()
        .publish_task_in_trace(
            task.to_string().as_bytes(),
            Some(&traceparent(&trace, &parent)),
        )
        .await
        .expect("publish the task");

    let spans = receiver
        .wait_for_trace(
            &trace,
            &[
                "task",
                "handle_task",
                "blob.read",
                "meta.upload_message_media",
                "meta.send_message",
            ],
            Duration::from_secs(30),
        )
        .await;
    assert!(
        spans.iter().all(|s| s.service == "filegate-worker"),
        "{spans:?}"
    );
    let task_span = spans.iter().find(|s| s.name == "task").unwrap();
    assert_eq!(
        task_span.parent_span_id, parent,
        "the task continues the producer's span"
    );
    assert_eq!(meta.messages().len(), 1, "the message was sent");
    broker.cleanup().await;
}

#[tokio::test]
async fn otel_sdk_disabled_turns_tracing_off_even_with_an_endpoint() {
    let receiver = OtlpReceiver::start().await;
    let mut options = TestAppOptions::new(Profile::Embedded);
    options.env.extend(otel_env(&receiver));
    options
        .env
        .push(("OTEL_SDK_DISABLED".into(), "true".into()));
    let mut app = TestApp::spawn_with(options).await;
    let chunk = csv_chunk();
    post_chunk(&app, chunk, &traceparent(&random_hex(16), &random_hex(8))).await;
    // A stop exports whatever is buffered: with the SDK off there is nothing.
    app.stop().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(receiver.spans().is_empty(), "{:?}", receiver.spans());
}
