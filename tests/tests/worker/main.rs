//! The media worker, black-box: the real `filegate worker` against the real RabbitMQ, Postgres
//! and Azurite, with the project's fake Meta server (a real HTTP server with fault injection).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use filegate_adapter_rabbitmq::RabbitPublisher;
use filegate_fake_meta::{FakeMeta, FakeMetaOptions, Fault, Operation};
use filegate_tcp_proxy::TcpProxy;
use filegate_tests::broker::{Broker, Names, broker_addr, broker_url, url_via};
use filegate_tests::worker::{TestWorker, WorkerOptions};
use filegate_tests::{Chunk, Profile, TestApp, TestAppOptions};
use serde_json::{Value, json};
use uuid::Uuid;

const CHUNK: usize = 8 * 1024 * 1024;

struct Setup {
    app: TestApp,
    meta: FakeMeta,
    names: Names,
    broker: Broker,
    worker: TestWorker,
}

impl Setup {
    async fn new() -> Self {
        Self::with(|_| {}).await
    }

    async fn with(tweak: impl FnOnce(&mut WorkerOptions)) -> Self {
        let mut options = TestAppOptions::new(Profile::Azure);
        options.max_chunk_bytes = CHUNK;
        let app = TestApp::spawn_with(options).await;
        let meta = FakeMeta::start(FakeMetaOptions::default())
            .await
            .expect("start the fake Meta");
        let names = Names::fresh();
        let broker = Broker::connect(&names).await;
        let mut worker_options = WorkerOptions::new(&names, &meta);
        tweak(&mut worker_options);
        let worker = TestWorker::spawn(&app, worker_options).await;
        Self {
            app,
            meta,
            names,
            broker,
            worker,
        }
    }

    /// Uploads a complete file and answers its id.
    async fn file(&self, data: &[u8], mode: &str, content_type: &str, name: &str) -> String {
        let parts: Vec<&[u8]> = data.chunks(CHUNK).collect();
        let total = parts.len() as u32;
        let mut id: Option<String> = None;
        for (i, part) in parts.iter().enumerate() {
            let mut chunk = Chunk::new(part, i as u32, total, mode);
            chunk.content_type = Some(content_type.into());
            chunk.file_name = Some(name.into());
            if let Some(id) = &id {
                chunk = chunk.file_id(id);
            }
            let resp = self.app.post_chunk(chunk).await;
            assert_eq!(resp.status().as_u16(), 200);
            let body: Value = resp.json().await.unwrap();
            id = Some(body["data"]["fileId"].as_str().unwrap().to_owned());
        }
        id.unwrap()
    }

    async fn publish(&self, body: &[u8]) {
        let publisher = RabbitPublisher::new(self.names.settings(&broker_url())).unwrap();
        publisher
            .publish_task(body)
            .await
            .expect("publish the task");
    }

    fn message_task(&self, task: Uuid, file: &str, media_type: &str) -> Vec<u8> {
        json!({
            "version": 1, "taskId": task, "firmId": self.app.firm, "fileId": file,
            "message": { "phoneNumberId": "106540352242922", "to": "+4915112345678", "mediaType": media_type, "caption": "Your invoice" }
        })
        .to_string()
        .into_bytes()
    }

    fn template_task(&self, task: Uuid, file: &str) -> Vec<u8> {
        json!({
            "version": 1, "taskId": task, "firmId": self.app.firm, "fileId": file,
            "template": { "wabaId": "102290129340398", "name": "spring_sale", "language": "en_US", "category": "MARKETING",
                          "components": [{ "type": "BODY", "text": "Our spring sale starts today!" }] }
        })
        .to_string()
        .into_bytes()
    }

    /// The task's recorded status and attempts.
    async fn task(&self, task: Uuid) -> Option<(String, i32, Option<String>)> {
        let filegate_tests::Db::Postgres(mut db) = self.app.db().await else {
            unreachable!("the Azure profile")
        };
        sqlx::query_as::<_, (String, i32, Option<String>)>(
            "SELECT status, attempts, result_id FROM media_tasks WHERE id = $1",
        )
        .bind(task)
        .fetch_optional(&mut db)
        .await
        .unwrap()
    }

    async fn wait_status(
        &self,
        task: Uuid,
        status: &str,
        within: Duration,
    ) -> (String, i32, Option<String>) {
        let deadline = Instant::now() + within;
        loop {
            if let Some(t) = self.task(task).await
                && t.0 == status
            {
                return t;
            }
            assert!(
                Instant::now() < deadline,
                "task {task} is not {status}: {:?}",
                self.task(task).await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn done(self) {
        self.broker.cleanup().await;
    }
}

fn bytes(len: usize) -> Vec<u8> {
    use rand::RngCore;
    let mut data = vec![0u8; len];
    rand::rng().fill_bytes(&mut data);
    data
}

fn png(len: usize) -> Vec<u8> {
    let mut data = b"\x89PNG\r\n\x1a\n".to_vec();
    data.extend(bytes(len));
    data
}

fn header(delivery: &lapin::message::Delivery, name: &str) -> String {
    let headers = delivery.properties.headers().clone().unwrap_or_default();
    match headers.inner().get(name) {
        Some(lapin::types::AMQPValue::LongString(s)) => s.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

#[tokio::test]
async fn a_message_task_sends_the_file_as_whatsapp_media_once() {
    let metrics_addr = std::net::SocketAddr::from(([127, 0, 0, 1], filegate_tests::free_port()));
    let s = Setup::with(|o| o.metrics_addr = Some(metrics_addr)).await;
    let data = png(40_000);
    let file = s.file(&data, "Message", "image/png", "invoice.png").await;
    let task = Uuid::new_v4();
    s.publish(&s.message_task(task, &file, "image")).await;
    let (_, attempts, result) = s
        .wait_status(task, "succeeded", Duration::from_secs(30))
        .await;
    assert_eq!(attempts, 1);
    let messages = s.meta.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(
        Some(messages[0].id.clone()),
        result,
        "Meta's message id is recorded"
    );
    let payload = &messages[0].payload;
    assert_eq!(payload["type"], "image");
    assert_eq!(payload["image"]["caption"], "Your invoice");
    let media = s
        .meta
        .media(payload["image"]["id"].as_str().unwrap())
        .expect("the media the message names");
    assert!(media.bytes == data, "Meta got exactly the file's bytes");
    assert_eq!(media.content_type, "image/png");
    s.broker
        .wait_ready(&s.names.queue, 0, Duration::from_secs(5))
        .await;
    // The worker counted the task and its two calls to Meta, with no ids in its labels.
    let page = reqwest::get(format!("http://{metrics_addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "filegate_tasks_total{outcome=\"sent\"} 1",
        "filegate_meta_call_duration_seconds_count{call=\"upload_message_media\"} 1",
        "filegate_meta_call_duration_seconds_count{call=\"send_message\"} 1",
    ] {
        assert!(page.contains(line), "`{line}` missing from:\n{page}");
    }
    assert!(!page.contains(&task.to_string()) && !page.contains(&file));
    s.done().await;
}

#[tokio::test]
async fn a_template_task_resumes_a_broken_upload_and_creates_the_template() {
    let s = Setup::new().await;
    let data = {
        let mut d = b"%PDF-1.7\n".to_vec();
        d.extend(bytes(3 * 1024 * 1024));
        d
    };
    let file = s
        .file(&data, "Template", "application/pdf", "catalog.pdf")
        .await;
    s.meta.inject(Fault::drop_connection(
        Operation::ResumableUpload,
        1_000_000,
    ));
    let task = Uuid::new_v4();
    s.publish(&s.template_task(task, &file)).await;
    let (_, _, result) = s
        .wait_status(task, "succeeded", Duration::from_secs(30))
        .await;
    let uploads = s.meta.uploads();
    assert_eq!(uploads.len(), 1, "one upload session, resumed");
    assert!(
        uploads[0].bytes == data,
        "the bytes at Meta are the blob's, after the resume"
    );
    assert!(
        s.meta.requests_count(Operation::ResumableUpload) >= 2,
        "the upload was resumed"
    );
    let templates = s.meta.templates();
    assert_eq!(templates.len(), 1);
    assert_eq!(Some(templates[0].id.clone()), result);
    let header = &templates[0].payload["components"][0];
    assert_eq!(header["type"], "HEADER");
    assert_eq!(header["format"], "DOCUMENT");
    assert_eq!(
        header["example"]["header_handle"][0],
        json!(uploads[0].handle.clone().unwrap())
    );
    s.done().await;
}

#[tokio::test]
async fn a_rate_limited_send_is_retried_and_then_sent_once() {
    let s = Setup::new().await;
    let file = s.file(&png(1000), "Message", "image/png", "a.png").await;
    s.meta.inject(Fault::rate_limit(Operation::SendMessage));
    let task = Uuid::new_v4();
    s.publish(&s.message_task(task, &file, "image")).await;
    let (_, attempts, _) = s
        .wait_status(task, "succeeded", Duration::from_secs(30))
        .await;
    assert_eq!(attempts, 2, "one 429, one success");
    assert_eq!(s.meta.messages().len(), 1);
    assert_eq!(
        s.meta.requests_count(Operation::MediaUpload),
        1,
        "the media id of the first try is reused"
    );
    s.done().await;
}

#[tokio::test]
async fn a_permanent_error_sends_the_task_to_dead_letters_with_its_reason() {
    let s = Setup::with(|o| o.meta_token = "a-revoked-token".into()).await;
    let file = s.file(&png(1000), "Message", "image/png", "a.png").await;
    let task = Uuid::new_v4();
    s.publish(&s.message_task(task, &file, "image")).await;
    s.broker
        .wait_ready(&s.names.dead_queue, 1, Duration::from_secs(30))
        .await;
    let dead = s.broker.get(&s.names.dead_queue).await.unwrap();
    assert!(
        header(&dead, "x-filegate-reason").contains("OAuth"),
        "{}",
        header(&dead, "x-filegate-reason")
    );
    assert!(!header(&dead, "x-filegate-attempts").is_empty());
    let (status, attempts, _) = s.task(task).await.unwrap();
    assert_eq!(
        (status.as_str(), attempts),
        ("failed", 1),
        "a permanent error is not retried"
    );
    assert!(s.meta.messages().is_empty());
    s.done().await;
}

/// A file whose stored bytes no longer hash to the SHA-256 on its record (here the record is
/// changed, as a corrupt disk would change the bytes) is never sent: the task goes to dead
/// letters with "checksum mismatch" at once, and Meta neither has the media nor a message.
#[tokio::test]
async fn a_file_failing_its_checksum_is_dead_lettered_and_never_sent() {
    let s = Setup::new().await;
    let data = png(3_000_000);
    let file = s.file(&data, "Message", "image/png", "a.png").await;
    let filegate_tests::Db::Postgres(mut db) = s.app.db().await else {
        unreachable!("the Azure profile")
    };
    let changed = sqlx::query("UPDATE files SET sha256 = $2 WHERE id = $1 AND sha256 IS NOT NULL")
        .bind(Uuid::parse_str(&file).unwrap())
        .bind("0".repeat(64))
        .execute(&mut db)
        .await
        .unwrap();
    assert_eq!(
        changed.rows_affected(),
        1,
        "sent in order: its checksum is known"
    );
    let task = Uuid::new_v4();
    s.publish(&s.message_task(task, &file, "image")).await;
    s.broker
        .wait_ready(&s.names.dead_queue, 1, Duration::from_secs(30))
        .await;
    let dead = s.broker.get(&s.names.dead_queue).await.unwrap();
    let reason = header(&dead, "x-filegate-reason");
    assert!(reason.starts_with("checksum mismatch"), "{reason}");
    let (status, attempts, _) = s.task(task).await.unwrap();
    assert_eq!((status.as_str(), attempts), ("failed", 1));
    assert!(s.meta.messages().is_empty(), "no message sent");
    assert!(s.meta.media_count() == 0, "no media completed at Meta");
    s.done().await;
}

#[tokio::test]
async fn a_task_delivered_twice_is_sent_once() {
    let s = Setup::new().await;
    let file = s.file(&png(1000), "Message", "image/png", "a.png").await;
    let task = Uuid::new_v4();
    let body = s.message_task(task, &file, "image");
    s.publish(&body).await;
    s.wait_status(task, "succeeded", Duration::from_secs(30))
        .await;
    s.publish(&body).await;
    s.broker
        .wait_ready(&s.names.queue, 0, Duration::from_secs(10))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(s.meta.messages().len(), 1);
    assert_eq!(s.broker.ready(&s.names.dead_queue).await, 0);
    s.done().await;
}

#[tokio::test]
async fn malformed_and_invalid_tasks_go_to_dead_letters() {
    let s = Setup::new().await;
    let import = s.file(b"a,b\n1,2\n", "Import", "text/csv", "c.csv").await;
    s.publish(b"{ this is not json").await;
    s.publish(&s.message_task(Uuid::new_v4(), &import, "document"))
        .await;
    s.publish(&s.message_task(Uuid::new_v4(), &Uuid::new_v4().to_string(), "image"))
        .await;
    s.broker
        .wait_ready(&s.names.dead_queue, 3, Duration::from_secs(30))
        .await;
    let mut reasons = Vec::new();
    while let Some(dead) = s.broker.get(&s.names.dead_queue).await {
        reasons.push(header(&dead, "x-filegate-reason"));
    }
    reasons.sort();
    assert!(
        reasons.iter().any(|r| r.contains("malformed")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("only Message and Template")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("does not exist")),
        "{reasons:?}"
    );
    assert!(s.meta.messages().is_empty());
    s.done().await;
}

#[tokio::test]
async fn a_worker_killed_mid_task_is_restarted_and_the_task_is_done_once() {
    let mut s = Setup::with(|o| o.lease_secs = 2).await;
    let file = s.file(&png(200_000), "Message", "image/png", "a.png").await;
    // Meta takes the media but answers slowly: the worker dies while it waits.
    s.meta.inject(Fault::delay(
        Operation::MediaUpload,
        Duration::from_secs(10),
    ));
    let task = Uuid::new_v4();
    s.publish(&s.message_task(task, &file, "image")).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while s.meta.requests_count(Operation::MediaUpload) == 0 {
        assert!(Instant::now() < deadline, "the worker never reached Meta");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    s.worker.kill().await;
    s.worker.start(&s.app).await;
    let (_, attempts, _) = s
        .wait_status(task, "succeeded", Duration::from_secs(40))
        .await;
    assert!(attempts >= 2, "the restarted worker took the task over");
    assert_eq!(s.meta.messages().len(), 1, "the message is sent once");
    s.done().await;
}

#[tokio::test]
async fn file_events_wait_in_the_outbox_while_rabbitmq_is_away_and_arrive_after() {
    let names = Names::fresh();
    let broker = Broker::connect(&names).await;
    let listener = broker.bind_events("file.completed.#").await;
    let proxy = TcpProxy::start(broker_addr()).await.unwrap();
    let mut options = TestAppOptions::new(Profile::Azure);
    options.env = names.env(&url_via(proxy.addr()));
    options
        .env
        .push(("FILEGATE_EVENTS__ENABLED".into(), "true".into()));
    options
        .env
        .push(("FILEGATE_EVENTS__POLL_INTERVAL_MS".into(), "100".into()));
    let app = TestApp::spawn_with(options).await;

    proxy.cut();
    let mut chunk = Chunk::new(b"name,phone\nAda,+441234\n", 0, 1, "Import");
    chunk.content_type = Some("text/csv".into());
    let resp = app.post_chunk(chunk).await;
    let body: Value = resp.json().await.unwrap();
    let file = body["data"]["fileId"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        broker.ready(&listener).await,
        0,
        "nothing can arrive while the broker is cut off"
    );

    proxy.restore();
    broker
        .wait_ready(&listener, 1, Duration::from_secs(40))
        .await;
    let event = broker.get(&listener).await.unwrap();
    assert_eq!(event.routing_key.as_str(), "file.completed.import");
    let payload: Value = serde_json::from_slice(&event.data).unwrap();
    assert_eq!(payload["fileId"], file.as_str());
    assert_eq!(payload["type"], "file.completed");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(broker.ready(&listener).await, 0, "published once");
    broker.cleanup().await;
}

/// The worker streams from the blob store into Meta: sending a 50 MiB file must not grow its
/// resident memory by anything like the file's size (Linux: /proc/PID/status).
#[tokio::test]
async fn sending_a_50_mib_file_does_not_grow_the_workers_memory_with_it() {
    let s = Setup::new().await;
    let mut data = b"%PDF-1.7\n".to_vec();
    data.extend(bytes(50 * 1024 * 1024));
    let file = s.file(&data, "Message", "application/pdf", "big.pdf").await;
    // Warm the worker up with a small task first, so that the baseline includes its pools.
    let warm = s.file(&png(1000), "Message", "image/png", "a.png").await;
    let warm_task = Uuid::new_v4();
    s.publish(&s.message_task(warm_task, &warm, "image")).await;
    s.wait_status(warm_task, "succeeded", Duration::from_secs(30))
        .await;
    let (baseline, _) = s.worker.memory();
    s.worker.reset_peak_memory();

    let task = Uuid::new_v4();
    let body = json!({
        "version": 1, "taskId": task, "firmId": s.app.firm, "fileId": file,
        "message": { "phoneNumberId": "106540352242922", "to": "4915112345678", "mediaType": "document", "fileName": "big.pdf" }
    });
    s.publish(body.to_string().as_bytes()).await;
    s.wait_status(task, "succeeded", Duration::from_secs(120))
        .await;
    let (_, peak) = s.worker.memory();
    let growth = peak.saturating_sub(baseline);
    println!(
        "worker RSS: baseline {} MiB, peak {} MiB, growth {} MiB",
        baseline >> 20,
        peak >> 20,
        growth >> 20
    );
    assert!(
        growth < 32 * 1024 * 1024,
        "the worker grew by {} MiB while sending 50 MiB",
        growth >> 20
    );
    let media_id = s.meta.messages()[1].payload["document"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        s.meta.media(&media_id).unwrap().bytes == data,
        "Meta got exactly the 50 MiB"
    );
    s.done().await;
}

/// The `filegate-fake-meta` binary runs the fake for local use: it prints where it listens and
/// answers Meta's calls and its own state route.
#[tokio::test]
async fn the_fake_meta_binary_serves_the_fake() {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(filegate_tests::fake_meta_binary())
        .args(["--addr", "127.0.0.1:0", "--token", "local-token"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let token_line = lines.next_line().await.unwrap();
    assert_eq!(token_line.as_deref(), Some("fake-meta token: local-token"));
    let address_line = lines
        .next_line()
        .await
        .unwrap()
        .expect("fake-meta printed its address");
    let base = address_line
        .strip_prefix("fake-meta listening on ")
        .unwrap_or_else(|| panic!("not the address line: {address_line}"))
        .to_owned();
    let http = reqwest::Client::new();
    let state: Value = http
        .get(format!("{base}/_fake/state"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(state["messages"].as_array().unwrap().is_empty());
    let refused = http
        .post(format!(
            "{base}/v21.0/1234/uploads?file_name=a.pdf&file_length=10&file_type=application/pdf"
        ))
        .header("Authorization", "OAuth wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 401);
    let session: Value = http
        .post(format!(
            "{base}/v21.0/1234/uploads?file_name=a.pdf&file_length=10&file_type=application/pdf"
        ))
        .header("Authorization", "OAuth local-token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        session["id"].as_str().unwrap().starts_with("upload:"),
        "{session}"
    );
    // SIGTERM, as a container stop sends it, ends the fake cleanly.
    let pid = child.id().unwrap().to_string();
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(sent.success());
    let exit = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("fake-meta stopped within 10 s of SIGTERM")
        .unwrap();
    assert!(exit.success(), "{exit}");
}
