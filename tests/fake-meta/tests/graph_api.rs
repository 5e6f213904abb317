//! The fake against a real HTTP client: what it accepts, what it refuses in Meta's words, what
//! it records, and its faults.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers outside #[test] functions fail the test the same way"
)]

use std::time::{Duration, Instant};

use filegate_fake_meta::{
    DEFAULT_ACCESS_TOKEN, FakeMeta, FakeMetaOptions, FakeState, Fault, FaultTarget, Operation,
};
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PHONE: &str = "106540352242922";
const WABA: &str = "102290129340398";

async fn fake() -> FakeMeta {
    FakeMeta::start(FakeMetaOptions::default()).await.unwrap()
}

fn http() -> reqwest::Client {
    reqwest::Client::new()
}

fn url(fake: &FakeMeta, path: &str) -> String {
    format!("{}/v21.0/{path}", fake.base_url())
}

/// `url` with query parameters (reqwest 0.13 builds queries only with its `query` feature).
fn with_query(url: String, pairs: &[(&str, &str)]) -> reqwest::Url {
    let mut url = reqwest::Url::parse(&url).unwrap();
    url.query_pairs_mut().extend_pairs(pairs);
    url
}

fn bearer() -> String {
    format!("Bearer {DEFAULT_ACCESS_TOKEN}")
}

fn oauth() -> String {
    format!("OAuth {DEFAULT_ACCESS_TOKEN}")
}

async fn json_of(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

/// Asserts Meta's error shape and returns the `error` object.
fn error_of(status: u16, body: &Value, want_status: u16, want_code: i64) -> Value {
    assert_eq!(status, want_status, "{body}");
    let e = &body["error"];
    assert_eq!(e["code"], want_code, "{body}");
    assert!(e["message"].is_string(), "{body}");
    assert!(e["type"].is_string(), "{body}");
    assert!(e["fbtrace_id"].is_string(), "{body}");
    e.clone()
}

async fn start_upload(fake: &FakeMeta, name: &str, length: usize, file_type: &str) -> String {
    let resp = http()
        .post(with_query(
            url(fake, "1234/uploads"),
            &[
                ("file_name", name),
                ("file_length", &length.to_string()),
                ("file_type", file_type),
            ],
        ))
        .header("Authorization", oauth())
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(resp).await;
    assert_eq!(status, 200, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("upload:") && id.contains("?sig="), "{id}");
    id
}

async fn send_bytes(fake: &FakeMeta, session: &str, offset: usize, bytes: Vec<u8>) -> (u16, Value) {
    let resp = http()
        .post(url(fake, session))
        .header("Authorization", oauth())
        .header("file_offset", offset.to_string())
        .body(bytes)
        .send()
        .await
        .unwrap();
    json_of(resp).await
}

async fn offset_of(fake: &FakeMeta, session: &str) -> u64 {
    let resp = http()
        .get(url(fake, session))
        .header("Authorization", oauth())
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(resp).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], session);
    body["file_offset"].as_u64().unwrap()
}

/// A finished upload's handle.
async fn handle_for(fake: &FakeMeta, file_type: &str, bytes: Vec<u8>) -> String {
    let session = start_upload(fake, "header.bin", bytes.len(), file_type).await;
    let (status, body) = send_bytes(fake, &session, 0, bytes).await;
    assert_eq!(status, 200, "{body}");
    body["h"].as_str().unwrap().to_owned()
}

async fn upload_media(fake: &FakeMeta, phone: &str, mime: &str, bytes: Vec<u8>) -> (u16, Value) {
    let form = Form::new()
        .text("messaging_product", "whatsapp")
        .text("type", mime.to_owned())
        .part(
            "file",
            Part::bytes(bytes)
                .file_name("file.bin")
                .mime_str(mime)
                .unwrap(),
        );
    let resp = http()
        .post(url(fake, &format!("{phone}/media")))
        .header("Authorization", bearer())
        .multipart(form)
        .send()
        .await
        .unwrap();
    json_of(resp).await
}

async fn post_json(fake: &FakeMeta, path: &str, body: &Value) -> (u16, Value) {
    let resp = http()
        .post(url(fake, path))
        .header("Authorization", bearer())
        .json(body)
        .send()
        .await
        .unwrap();
    json_of(resp).await
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

#[tokio::test]
async fn unknown_versions_and_paths_get_metas_error_json() {
    let fake = fake().await;
    let resp = http()
        .post(format!("{}/v20.0/{PHONE}/messages", fake.base_url()))
        .header("Authorization", bearer())
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(resp).await;
    error_of(status, &body, 400, 2500);
    let resp = http()
        .get(url(&fake, &format!("{PHONE}/nothing")))
        .header("Authorization", bearer())
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(resp).await;
    let e = error_of(status, &body, 400, 100);
    assert_eq!(e["type"], "GraphMethodException");
    assert_eq!(e["error_subcode"], 33);
}

#[tokio::test]
async fn a_wrong_or_missing_token_gets_401_with_code_190() {
    let fake = fake().await;
    for auth in [None, Some("Bearer nope"), Some("Basic abc")] {
        let mut req = http()
            .post(url(&fake, &format!("{PHONE}/messages")))
            .json(&json!({}));
        if let Some(auth) = auth {
            req = req.header("Authorization", auth);
        }
        let resp = req.send().await.unwrap();
        assert!(resp.headers().contains_key("www-authenticate"));
        let (status, body) = json_of(resp).await;
        let e = error_of(status, &body, 401, 190);
        assert_eq!(e["message"], "Invalid OAuth access token.");
        assert_eq!(e["type"], "OAuthException");
    }
    // Graph also takes the token as a query parameter, except for the upload's bytes.
    let resp = http()
        .post(with_query(
            url(&fake, "1234/uploads"),
            &[
                ("file_name", "a.pdf"),
                ("file_length", "3"),
                ("file_type", "application/pdf"),
                ("access_token", DEFAULT_ACCESS_TOKEN),
            ],
        ))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(resp).await;
    assert_eq!(status, 200, "{body}");
    let session = body["id"].as_str().unwrap();
    let resp = http()
        .post(format!(
            "{}&access_token={DEFAULT_ACCESS_TOKEN}",
            url(&fake, session)
        ))
        .header("file_offset", "0")
        .body("abc")
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(resp).await;
    error_of(status, &body, 401, 190);
}

#[tokio::test]
async fn a_resumable_upload_takes_bytes_at_its_offset_and_answers_a_handle() {
    let fake = fake().await;
    let data = pattern(300_000);
    let session = start_upload(&fake, "brochure.pdf", data.len(), "application/pdf").await;
    assert_eq!(offset_of(&fake, &session).await, 0);

    let (status, body) = send_bytes(&fake, &session, 0, data[..100_000].to_vec()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["file_offset"], 100_000);
    assert_eq!(offset_of(&fake, &session).await, 100_000);

    let (status, body) = send_bytes(&fake, &session, 0, data[..10].to_vec()).await;
    let e = error_of(status, &body, 400, 100);
    assert!(
        e["error_user_msg"].as_str().unwrap().contains("100000"),
        "{e}"
    );

    let (status, body) = send_bytes(&fake, &session, 100_000, data[100_000..].to_vec()).await;
    assert_eq!(status, 200, "{body}");
    let handle = body["h"].as_str().unwrap();
    assert!(handle.starts_with("2:"), "{handle}");
    assert_eq!(fake.uploaded_bytes(&session).unwrap(), data);
    let upload = fake.upload(&session).unwrap();
    assert_eq!(upload.handle.as_deref(), Some(handle));
    assert_eq!(
        (upload.file_name.as_str(), upload.file_length),
        ("brochure.pdf", 300_000)
    );

    let state = fake.state();
    assert_eq!(state.uploads[0].received, 300_000);
    assert_eq!(state.uploads[0].sha256.len(), 64);

    // A body past file_length is refused.
    let session = start_upload(&fake, "a.png", 4, "image/png").await;
    let (status, body) = send_bytes(&fake, &session, 0, vec![1; 5]).await;
    error_of(status, &body, 400, 100);
}

#[tokio::test]
async fn start_upload_refuses_what_meta_refuses() {
    let fake = fake().await;
    for (name, length, file_type, code) in [
        ("a.txt", "3", "text/plain", 100),
        ("a.pdf", "0", "application/pdf", 100),
        ("", "3", "application/pdf", 100),
    ] {
        let resp = http()
            .post(with_query(
                url(&fake, "1234/uploads"),
                &[
                    ("file_name", name),
                    ("file_length", length),
                    ("file_type", file_type),
                ],
            ))
            .header("Authorization", oauth())
            .send()
            .await
            .unwrap();
        let (status, body) = json_of(resp).await;
        error_of(status, &body, 400, code);
    }
    // A fake bound to one app refuses the others.
    let fake = FakeMeta::start(FakeMetaOptions {
        app_id: Some("777".to_owned()),
        ..FakeMetaOptions::default()
    })
    .await
    .unwrap();
    let resp = http()
        .post(with_query(
            url(&fake, "1234/uploads"),
            &[
                ("file_name", "a.pdf"),
                ("file_length", "3"),
                ("file_type", "application/pdf"),
            ],
        ))
        .header("Authorization", oauth())
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(resp).await;
    error_of(status, &body, 400, 100);
}

#[tokio::test]
async fn a_session_needs_its_signature() {
    let fake = fake().await;
    let session = start_upload(&fake, "a.png", 3, "image/png").await;
    let unsigned = session.split('?').next().unwrap();
    let (status, body) = send_bytes(&fake, unsigned, 0, vec![1, 2, 3]).await;
    error_of(status, &body, 400, 104);
    let (status, body) = send_bytes(&fake, "upload:nothing?sig=x", 0, vec![1]).await;
    error_of(status, &body, 400, 100);
}

#[tokio::test]
async fn a_body_cut_short_by_the_client_keeps_what_arrived() {
    let fake = fake().await;
    let session = start_upload(&fake, "clip.mp4", 100, "video/mp4").await;
    let mut tcp = tokio::net::TcpStream::connect(fake.addr()).await.unwrap();
    let head = format!(
        "POST /v21.0/{session} HTTP/1.1\r\nHost: x\r\nAuthorization: OAuth {DEFAULT_ACCESS_TOKEN}\r\nfile_offset: 0\r\nContent-Length: 100\r\n\r\n"
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.write_all(&[7u8; 40]).await.unwrap();
    tcp.flush().await.unwrap();
    drop(tcp);
    // The GET waits for the broken request to finish, so its offset is final.
    assert_eq!(offset_of(&fake, &session).await, 40);
    let (status, body) = send_bytes(&fake, &session, 40, vec![8u8; 60]).await;
    assert_eq!(status, 200, "{body}");
    let mut want = vec![7u8; 40];
    want.extend_from_slice(&[8u8; 60]);
    assert_eq!(fake.uploaded_bytes(&session).unwrap(), want);
}

#[tokio::test]
async fn media_upload_checks_product_type_and_size() {
    let fake = fake().await;
    let (status, body) = upload_media(&fake, PHONE, "image/png", pattern(1000)).await;
    assert_eq!(status, 200, "{body}");
    let media = fake.media(body["id"].as_str().unwrap()).unwrap();
    assert_eq!(media.bytes, pattern(1000));
    assert_eq!(media.phone_number_id, PHONE);
    assert_eq!(media.content_type, "image/png");
    assert_eq!(media.file_name.as_deref(), Some("file.bin"));

    let (status, body) = upload_media(&fake, PHONE, "image/webp", vec![0; 600 * 1024]).await;
    error_of(status, &body, 400, 131053);
    let (status, body) = upload_media(&fake, PHONE, "text/html", vec![0; 10]).await;
    let e = error_of(status, &body, 400, 100);
    assert!(
        e["error_user_msg"]
            .as_str()
            .unwrap()
            .contains("Param file must be"),
        "{e}"
    );
    let (status, body) =
        upload_media(&fake, PHONE, "image/jpeg", vec![0; 5 * 1024 * 1024 + 1]).await;
    error_of(status, &body, 400, 131053);

    let form = Form::new()
        .text("type", "image/png")
        .part("file", Part::bytes(vec![1]).mime_str("image/png").unwrap());
    let resp = http()
        .post(url(&fake, &format!("{PHONE}/media")))
        .header("Authorization", bearer())
        .multipart(form)
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(resp).await;
    let e = error_of(status, &body, 400, 100);
    assert!(
        e["message"].as_str().unwrap().contains("messaging_product"),
        "{e}"
    );
    assert_eq!(fake.state().media.len(), 1);
}

#[tokio::test]
async fn messages_need_a_media_id_issued_for_that_phone_number() {
    let fake = fake().await;
    let (_, body) = upload_media(&fake, PHONE, "image/jpeg", pattern(10)).await;
    let image = body["id"].as_str().unwrap().to_owned();
    let (_, body) = upload_media(&fake, PHONE, "application/pdf", pattern(10)).await;
    let pdf = body["id"].as_str().unwrap().to_owned();

    let message = json!({
        "messaging_product": "whatsapp", "recipient_type": "individual", "to": "5511999990000",
        "type": "image", "image": {"id": image, "caption": "Our new brochure"}
    });
    let (status, body) = post_json(&fake, &format!("{PHONE}/messages"), &message).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["messaging_product"], "whatsapp");
    assert_eq!(body["contacts"][0]["input"], "5511999990000");
    let wamid = body["messages"][0]["id"].as_str().unwrap();
    assert!(wamid.starts_with("wamid."));
    let sent = fake.messages();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].payload, message);
    assert_eq!(sent[0].id, wamid);

    let document = json!({
        "messaging_product": "whatsapp", "to": "5511999990000", "type": "document",
        "document": {"id": pdf, "filename": "brochure.pdf"}
    });
    let (status, body) = post_json(&fake, &format!("{PHONE}/messages"), &document).await;
    assert_eq!(status, 200, "{body}");

    for (phone, bad) in [
        (
            "999",
            json!({"messaging_product": "whatsapp", "to": "5511999990000", "type": "image", "image": {"id": image}}),
        ),
        (
            PHONE,
            json!({"messaging_product": "whatsapp", "to": "5511999990000", "type": "image", "image": {"id": pdf}}),
        ),
        (
            PHONE,
            json!({"messaging_product": "whatsapp", "to": "5511999990000", "type": "image", "image": {"id": "123"}}),
        ),
        (
            PHONE,
            json!({"messaging_product": "whatsapp", "to": "not a phone", "type": "image", "image": {"id": image}}),
        ),
        (
            PHONE,
            json!({"messaging_product": "whatsapp", "to": "5511999990000", "type": "image", "image": {"id": image, "filename": "x"}}),
        ),
    ] {
        let (status, body) = post_json(&fake, &format!("{phone}/messages"), &bad).await;
        error_of(status, &body, 400, 131009);
    }
    let (status, body) = post_json(
        &fake,
        &format!("{PHONE}/messages"),
        &json!({"to": "5511999990000", "type": "image", "image": {"id": image}}),
    )
    .await;
    error_of(status, &body, 400, 100);
    assert_eq!(fake.messages().len(), 2);
}

#[tokio::test]
async fn templates_need_the_handle_of_a_finished_upload() {
    let fake = fake().await;
    let handle = handle_for(&fake, "image/png", pattern(50)).await;
    let template = json!({
        "name": "spring_sale", "language": "en_US", "category": "MARKETING",
        "components": [
            {"type": "HEADER", "format": "IMAGE", "example": {"header_handle": [handle]}},
            {"type": "BODY", "text": "Our spring sale starts today."}
        ]
    });
    let (status, body) = post_json(&fake, &format!("{WABA}/message_templates"), &template).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "PENDING");
    assert_eq!(body["category"], "MARKETING");
    let templates = fake.templates();
    assert_eq!(templates[0].payload, template);
    assert_eq!(templates[0].id, body["id"].as_str().unwrap());

    let (status, body) = post_json(&fake, &format!("{WABA}/message_templates"), &template).await;
    let e = error_of(status, &body, 400, 100);
    assert_eq!(e["error_subcode"], 2388024);

    let mut unknown = template.clone();
    unknown["name"] = json!("other");
    unknown["components"][0]["example"]["header_handle"][0] = json!("2:bm9wZQ==:image/png:x");
    let (status, body) = post_json(&fake, &format!("{WABA}/message_templates"), &unknown).await;
    error_of(status, &body, 400, 100);

    let mut wrong_format = template.clone();
    wrong_format["name"] = json!("other");
    wrong_format["components"][0]["format"] = json!("VIDEO");
    let (status, body) =
        post_json(&fake, &format!("{WABA}/message_templates"), &wrong_format).await;
    error_of(status, &body, 400, 100);

    let mut bad_name = template.clone();
    bad_name["name"] = json!("Spring Sale");
    let (status, body) = post_json(&fake, &format!("{WABA}/message_templates"), &bad_name).await;
    error_of(status, &body, 400, 100);
    assert_eq!(fake.templates().len(), 1);
}

#[tokio::test]
async fn rate_limits_and_server_errors_hit_the_next_requests_of_their_kind() {
    let fake = fake().await;
    fake.inject(Fault::rate_limit_code(Operation::SendMessage, 80007).times(2));
    fake.inject(Fault::server_error(FaultTarget::Any));
    let text = json!({"messaging_product": "whatsapp", "to": "5511999990000", "type": "text", "text": {"body": "hi"}});
    // The first send meets the rate limit (queued first), the media upload the server error.
    let (status, body) = post_json(&fake, &format!("{PHONE}/messages"), &text).await;
    let e = error_of(status, &body, 429, 80007);
    assert_eq!(e["type"], "OAuthException");
    let (status, body) = upload_media(&fake, PHONE, "image/png", vec![1]).await;
    let e = error_of(status, &body, 500, 2);
    assert_eq!(e["is_transient"], true);
    let (status, _) = post_json(&fake, &format!("{PHONE}/messages"), &text).await;
    assert_eq!(status, 429);
    let (status, body) = post_json(&fake, &format!("{PHONE}/messages"), &text).await;
    assert_eq!(status, 200, "{body}");
    assert!(fake.pending_faults().is_empty());
    assert_eq!(fake.requests_count(Operation::SendMessage), 3);
    assert_eq!(fake.requests_count(Operation::MediaUpload), 1);
    assert_eq!(fake.messages().len(), 1);
}

#[tokio::test]
async fn a_dropped_connection_keeps_the_bytes_read_before_it() {
    let fake = fake().await;
    let data = pattern(200_000);
    let session = start_upload(&fake, "a.pdf", data.len(), "application/pdf").await;
    fake.inject(Fault::drop_connection(Operation::ResumableUpload, 64_000));
    let err = http()
        .post(url(&fake, &session))
        .header("Authorization", oauth())
        .header("file_offset", "0")
        .body(data.clone())
        .send()
        .await
        .unwrap_err();
    assert!(!err.is_status(), "{err}");
    assert_eq!(offset_of(&fake, &session).await, 64_000);
    assert_eq!(fake.uploaded_bytes(&session).unwrap(), data[..64_000]);
    let (status, body) = send_bytes(&fake, &session, 64_000, data[64_000..].to_vec()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(fake.uploaded_bytes(&session).unwrap(), data);
}

#[tokio::test]
async fn a_delay_answers_late_after_doing_the_work() {
    let fake = fake().await;
    fake.inject(Fault::delay(
        Operation::SendMessage,
        Duration::from_millis(400),
    ));
    let text =
        json!({"messaging_product": "whatsapp", "to": "5511999990000", "text": {"body": "hi"}});
    let started = Instant::now();
    let (status, _) = post_json(&fake, &format!("{PHONE}/messages"), &text).await;
    assert_eq!(status, 200);
    assert!(started.elapsed() >= Duration::from_millis(400));
    // A client that gives up still leaves a sent message behind.
    fake.inject(Fault::delay(
        Operation::SendMessage,
        Duration::from_millis(2000),
    ));
    let err = http()
        .post(url(&fake, &format!("{PHONE}/messages")))
        .header("Authorization", bearer())
        .json(&text)
        .timeout(Duration::from_millis(300))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout());
    assert_eq!(fake.messages().len(), 2);
}

#[tokio::test]
async fn faults_and_state_are_reachable_over_http() {
    let fake = fake().await;
    let control = |path: &str| format!("{}/_fake/{path}", fake.base_url());
    let resp = http()
        .post(control("faults"))
        .json(&json!([
            {"target": "media_upload", "kind": "rate_limit", "code": 130429},
            {"target": "any", "kind": "server_error", "times": 3}
        ]))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(resp).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["pending"].as_array().unwrap().len(), 2);
    let (status, body) = upload_media(&fake, PHONE, "image/png", vec![1]).await;
    error_of(status, &body, 429, 130429);
    let resp = http().delete(control("faults")).send().await.unwrap();
    let (_, body) = json_of(resp).await;
    assert_eq!(body["pending"], json!([]));

    let resp = http()
        .post(control("faults"))
        .json(&json!({"target": "resumable_upload", "kind": "drop_connection", "after_bytes": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = http().get(control("faults")).send().await.unwrap();
    let (_, body) = json_of(resp).await;
    assert_eq!(body["pending"][0]["after_bytes"], 5);

    let bad = http()
        .post(control("faults"))
        .body("{\"kind\":\"nope\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);

    let (status, body) = upload_media(&fake, PHONE, "image/png", pattern(100)).await;
    assert_eq!(status, 200, "{body}");
    let state: FakeState = http()
        .get(control("state"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(state.media.len(), 1);
    assert_eq!(state.media[0].size, 100);
    assert_eq!(state.media[0].id, body["id"].as_str().unwrap());
    assert_eq!(state.media[0].sha256.len(), 64);
    assert_eq!(state.requests[&Operation::MediaUpload], 2);
    assert_eq!(state.pending_faults.len(), 1);

    let resp = http().post(control("reset")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(fake.state().media.is_empty());
    assert!(fake.pending_faults().is_empty());
    assert_eq!(
        http()
            .get(control("nothing"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

#[tokio::test]
async fn a_stall_pauses_reading_the_body() {
    let fake = fake().await;
    let session = start_upload(&fake, "a.pdf", 10, "application/pdf").await;
    fake.inject(Fault::stall(
        Operation::ResumableUpload,
        4,
        Duration::from_millis(300),
    ));
    let started = Instant::now();
    let (status, body) = send_bytes(&fake, &session, 0, pattern(10)).await;
    assert_eq!(status, 200, "{body}");
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(fake.uploaded_bytes(&session).unwrap(), pattern(10));
}

#[tokio::test]
async fn serve_runs_until_its_shutdown_future_completes() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(filegate_fake_meta::serve(
        listener,
        FakeMetaOptions::default(),
        async {
            let _ = stopped.await;
        },
    ));
    let resp = http()
        .get(format!("http://{addr}/_fake/state"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
    let mut tcp = tokio::net::TcpStream::connect(addr).await;
    if let Ok(tcp) = &mut tcp {
        // The port may be reused by the OS, but nothing answers on it any more.
        let mut buf = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_millis(200), tcp.read(&mut buf)).await;
        assert!(!matches!(read, Ok(Ok(1))));
    }
}
