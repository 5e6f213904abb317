//! Every error of contract sections 3 and 5 that the upload slice can produce, in the envelope.

use filegate_tests::{Chunk, Profile, TestApp, TestAppOptions};

use crate::support::{envelope, error_naming, png_bytes, random_bytes, random_pdf};

async fn open(app: &TestApp, total: u32) -> String {
    let body = envelope(
        app.post_chunk(Chunk::new(b"first", 0, total, "Message"))
            .await,
        200,
    )
    .await;
    body["data"]["fileId"].as_str().unwrap().to_owned()
}

pub async fn missing_or_invalid_fields_get_400_naming_the_field(profile: Profile) {
    let app = TestApp::spawn(profile).await;
    let ok = || Chunk::new(b"data", 0, 2, "Message");
    let cases: Vec<(Chunk, &str)> = vec![
        (Chunk { data: None, ..ok() }, "File"),
        (
            Chunk {
                data: Some(Vec::new()),
                ..ok()
            },
            "File",
        ),
        (
            Chunk {
                total_blocks: None,
                ..ok()
            },
            "TotalBlocks",
        ),
        (
            Chunk {
                total_blocks: Some("0".into()),
                ..ok()
            },
            "TotalBlocks",
        ),
        (
            Chunk {
                total_blocks: Some("50001".into()),
                ..ok()
            },
            "TotalBlocks",
        ),
        (
            Chunk {
                total_blocks: Some("two".into()),
                ..ok()
            },
            "TotalBlocks",
        ),
        (
            Chunk {
                block_index: None,
                ..ok()
            },
            "BlockIndex",
        ),
        (
            Chunk {
                block_index: Some("2".into()),
                ..ok()
            },
            "BlockIndex",
        ),
        (
            Chunk {
                block_index: Some("-1".into()),
                ..ok()
            },
            "BlockIndex",
        ),
        (
            Chunk {
                block_index: Some("1".into()),
                ..ok()
            },
            "FileId",
        ),
        (Chunk { mode: None, ..ok() }, "Mode"),
        (
            Chunk {
                mode: Some("Avatar".into()),
                ..ok()
            },
            "Mode",
        ),
        (ok().file_id("not-a-uuid"), "FileId"),
        (
            Chunk {
                current_block: Some("5".into()),
                ..ok()
            },
            "CurrentBlock",
        ),
        (
            Chunk {
                block_index: None,
                current_block: Some("0".into()),
                ..ok()
            },
            "CurrentBlock",
        ),
        // i64::MAX has no CurrentBlock: refused, not overflowed.
        (
            Chunk {
                block_index: Some(i64::MAX.to_string()),
                current_block: Some("1".into()),
                ..ok()
            },
            "BlockIndex",
        ),
        // Two values for one field: which was meant cannot be guessed.
        (
            ok().with_field("BlockIndex", "1"),
            "BlockIndex: sent more than once",
        ),
        (
            ok().with_field("mode", "Import"),
            "Mode: sent more than once",
        ),
    ];
    for (chunk, field) in cases {
        error_naming(app.post_chunk(chunk).await, 400, field).await;
    }
    let mut db = app.db().await;
    let sessions = db
        .count(
            "SELECT count(*) FROM upload_sessions",
            "SELECT count(*) FROM upload_sessions",
            None,
        )
        .await;
    assert_eq!(sessions, 0, "a rejected request leaves nothing behind");
}

pub async fn a_body_that_is_not_multipart_is_refused_in_the_envelope(profile: Profile) {
    let app = TestApp::spawn(profile).await;
    let send = |content_type: &'static str, body: &'static str| {
        app.http
            .post(app.url("/api/v1/Files/chunk"))
            .header("X-API-Key", &app.key)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    error_naming(
        send("application/json", "{}").await.unwrap(),
        415,
        "multipart/form-data",
    )
    .await;
    error_naming(
        send("multipart/form-data; boundary=xyz", "garbage without parts")
            .await
            .unwrap(),
        400,
        "multipart",
    )
    .await;
    error_naming(
        send("multipart/form-data", "--x\r\n").await.unwrap(),
        400,
        "boundary",
    )
    .await;
}

pub async fn a_missing_or_unknown_key_gets_401(profile: Profile) {
    let app = TestApp::spawn(profile).await;
    let resp = app
        .http
        .post(app.url("/api/v1/Files/chunk"))
        .multipart(Chunk::new(b"x", 0, 1, "Firm").into_form())
        .send()
        .await
        .unwrap();
    // The body was not read: the server says it closes the connection, so that a client does
    // not send its next request on it.
    assert_eq!(
        resp.headers()
            .get("connection")
            .map(|v| v.to_str().unwrap_or_default()),
        Some("close")
    );
    error_naming(resp, 401, "X-API-Key").await;
    let unknown = format!("fg_{}", "0".repeat(64));
    error_naming(
        app.post_chunk_as(&unknown, Chunk::new(b"x", 0, 1, "Firm"))
            .await,
        401,
        "not valid",
    )
    .await;
    error_naming(
        app.post_chunk_as("garbage", Chunk::new(b"x", 0, 1, "Firm"))
            .await,
        401,
        "not valid",
    )
    .await;
    let status = app
        .http
        .get(app.url(&format!("/api/v1/Files/{}", uuid::Uuid::new_v4())))
        .send()
        .await
        .unwrap();
    error_naming(status, 401, "X-API-Key").await;
}

pub async fn an_unknown_or_foreign_file_id_gets_404(profile: Profile) {
    let app = TestApp::spawn(profile).await;
    let unknown = uuid::Uuid::new_v4().to_string();
    error_naming(
        app.post_chunk(Chunk::new(b"x", 1, 2, "Message").file_id(&unknown))
            .await,
        404,
        &unknown,
    )
    .await;
    error_naming(app.status(&unknown).await, 404, &unknown).await;

    let id = open(&app, 2).await;
    let other_key = app
        .create_key(uuid::Uuid::new_v4(), uuid::Uuid::new_v4())
        .await;
    let foreign = app
        .post_chunk_as(&other_key, Chunk::new(b"x", 1, 2, "Message").file_id(&id))
        .await;
    error_naming(foreign, 404, &id).await;
    let foreign_status = app
        .http
        .get(app.url(&format!("/api/v1/Files/{id}")))
        .header("X-API-Key", &other_key)
        .send()
        .await
        .unwrap();
    error_naming(foreign_status, 404, &id).await;
}

pub async fn conflicting_chunks_get_409(profile: Profile) {
    let app = TestApp::spawn(profile).await;
    let id = open(&app, 3).await;
    error_naming(
        app.post_chunk(Chunk::new(b"x", 1, 4, "Message").file_id(&id))
            .await,
        409,
        "TotalBlocks",
    )
    .await;
    error_naming(
        app.post_chunk(Chunk::new(b"x", 1, 3, "Import").file_id(&id))
            .await,
        409,
        "Mode",
    )
    .await;

    let done = envelope(
        app.post_chunk(Chunk::new(b"whole", 0, 1, "Message")).await,
        200,
    )
    .await;
    let done_id = done["data"]["fileId"].as_str().unwrap();
    error_naming(
        app.post_chunk(Chunk::new(b"x", 0, 1, "Message").file_id(done_id))
            .await,
        409,
        "complete",
    )
    .await;
}

pub async fn a_chunk_over_the_limit_gets_413(profile: Profile) {
    let app = TestApp::spawn(profile).await;
    // The test server's limit is 1 MiB.
    let big = random_bytes(1024 * 1024 + 1);
    error_naming(
        app.post_chunk(Chunk::new(&big, 0, 1, "Message")).await,
        413,
        "maximum",
    )
    .await;
    let exact = random_bytes(1024 * 1024);
    envelope(
        app.post_chunk(Chunk::new(&exact, 0, 1, "Message")).await,
        200,
    )
    .await;
}

pub async fn a_chunk_far_over_the_limit_is_refused_without_reading_it_all(profile: Profile) {
    let app = TestApp::spawn(profile).await;
    // A streamed body of unknown length (no Content-Length), far larger than the limit.
    let boundary = "XyZ";
    let head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"File\"; filename=\"a.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    );
    let piece = bytes::Bytes::from(vec![7u8; 64 * 1024]);
    let stream = futures::stream::iter(
        std::iter::once(Ok::<_, std::io::Error>(bytes::Bytes::from(head)))
            .chain(std::iter::repeat_n(piece, 64 * 16).map(Ok)),
    );
    let resp = app
        .http
        .post(app.url("/api/v1/Files/chunk"))
        .header("X-API-Key", &app.key)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await;
    match resp {
        Ok(resp) => {
            error_naming(resp, 413, "maximum").await;
        }
        // The server may close the connection before the client has sent everything; then the
        // client sees the reset instead of the answer. Either way the server stopped reading.
        Err(e) => assert!(e.is_request() || e.is_body(), "unexpected error: {e}"),
    }
}

/// Writes a whole multipart chunk request (a `File` part of `file` in `mode`) on a fresh
/// connection before reading anything, as Python's http.client and Node's fetch do, then reads
/// the answer: its status and body. A write that fails (the server closed while the client was
/// still sending) is an error.
async fn whole_then_read(
    app: &TestApp,
    key: &str,
    mode: &str,
    file: &[u8],
) -> std::io::Result<(u16, serde_json::Value)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let boundary = "wholeThenRead";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"BlockIndex\"\r\n\r\n0\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"TotalBlocks\"\r\n\r\n2\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"Mode\"\r\n\r\n{mode}\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"File\"; filename=\"a.bin\"\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let addr = app.base.trim_start_matches("http://").to_owned();
    let head = format!(
        "POST /api/v1/Files/chunk HTTP/1.1\r\nHost: {addr}\r\nX-API-Key: {key}\r\n\
         Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    let mut conn = tokio::net::TcpStream::connect(&addr).await?;
    conn.write_all(head.as_bytes()).await?;
    for piece in body.chunks(64 * 1024) {
        conn.write_all(piece).await?;
    }
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer).await?;
    let text = String::from_utf8_lossy(&answer);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text}"));
    let json = text
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b.trim()).ok())
        .unwrap_or_else(|| panic!("no JSON envelope in {text}"));
    Ok((status, json))
}

/// Answers given before the body is read (a wrong key, a declared length over the limit, a
/// type the mode refuses) reach a client that writes its whole body before it reads: the
/// server drains the unread rest first (up to `http.drain_max_bytes`) instead of closing a
/// connection the client is still writing to. (With `http.drain_max_bytes = 0` the first write
/// after the 401 fails with a broken pipe: checked by hand when this was written.)
pub async fn early_answers_reach_a_client_that_sends_its_whole_body_first(profile: Profile) {
    let app = TestApp::spawn(profile).await;
    let text = random_bytes(10 * 1024 * 1024);
    let cases: [(&str, &str, Vec<u8>, u16, &str); 3] = [
        ("fg_wrong", "Import", text.clone(), 401, "key"),
        (
            &app.key,
            "Import",
            random_bytes(20 * 1024 * 1024),
            413,
            "maximum",
        ),
        (
            &app.key,
            "Profile",
            [b"<html>".as_slice(), &text[..900 * 1024]].concat(),
            415,
            "Profile files must be",
        ),
    ];
    for (key, mode, file, status, needle) in cases {
        let (got, body) = whole_then_read(&app, key, mode, &file)
            .await
            .unwrap_or_else(|e| panic!("the {status} did not reach the client: {e}"));
        assert_eq!(got, status, "{body}");
        assert_eq!(body["isSuccess"], false);
        let message = body["message"].as_str().unwrap();
        assert!(message.contains(needle), "{message}");
    }
    app.assert_no_files().await;
}

/// Requests that hyper refuses before the service sees them (a garbage request line, two
/// different Content-Length headers, too many headers) are answered in the envelope too.
pub async fn requests_hyper_refuses_are_answered_in_the_envelope(profile: Profile) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn(profile).await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let many_headers: String = (0..200).map(|i| format!("X-H{i}: v\r\n")).collect();
    let cases = [
        ("GARBAGE\r\n\r\n".to_owned(), 400, "not valid HTTP/1.1"),
        (
            format!(
                "POST /api/v1/Files/chunk HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 5\r\n\
                 Content-Length: 6\r\n\r\nhello!"
            ),
            400,
            "conflicting Content-Length",
        ),
        (
            format!("GET /health/live HTTP/1.1\r\nHost: {addr}\r\n{many_headers}\r\n"),
            431,
            "headers are too many",
        ),
    ];
    for (request, status, needle) in cases {
        let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
        conn.write_all(request.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        conn.read_to_end(&mut answer).await.unwrap();
        let text = String::from_utf8_lossy(&answer);
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(
            head.starts_with(&format!("HTTP/1.1 {status} ")),
            "{status}: {head}"
        );
        assert!(head.contains("content-type: application/json"), "{head}");
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["isSuccess"], false);
        assert!(json["message"].as_str().unwrap().contains(needle), "{body}");
    }
    // A well-formed request on the same server is untouched.
    let live = app.http.get(app.url("/health/live")).send().await.unwrap();
    assert_eq!(live.status().as_u16(), 200);
}

pub async fn unknown_routes_and_methods_answer_in_the_envelope(profile: Profile) {
    let app = TestApp::spawn(profile).await;
    error_naming(
        app.http.get(app.url("/nope")).send().await.unwrap(),
        404,
        "route",
    )
    .await;
    let resp = app
        .http
        .get(app.url("/api/v1/Files/chunk"))
        .header("X-API-Key", &app.key)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    assert!(
        status == 405 || status == 400,
        "GET on the chunk route: {status}"
    );
    envelope(resp, status).await;
}

pub async fn a_file_over_its_modes_cap_gets_413_and_keeps_nothing(profile: Profile) {
    let mut options = TestAppOptions::new(profile);
    options
        .env
        .push(("FILEGATE_LIMITS__PROFILE_BYTES".into(), "1000".into()));
    let app = TestApp::spawn_with(options).await;
    let big = png_bytes(1001);
    error_naming(
        app.post_chunk(Chunk::new(&big, 0, 1, "Profile")).await,
        413,
        "at most 1000",
    )
    .await;
    let first = envelope(
        app.post_chunk(Chunk::new(&big[..600], 0, 2, "Profile"))
            .await,
        200,
    )
    .await;
    let id = first["data"]["fileId"].as_str().unwrap().to_owned();
    let second = app
        .post_chunk(Chunk::new(&big[600..], 1, 2, "Profile").file_id(&id))
        .await;
    error_naming(second, 413, "Profile files may have at most 1000 bytes").await;
    let status = envelope(app.status(&id).await, 200).await;
    assert_eq!(status["data"]["isComplete"], false);
    assert_eq!(
        status["data"]["missingBlocks"],
        serde_json::json!([1]),
        "the refused block is not kept"
    );
    // Other modes keep their own caps.
    envelope(app.post_chunk(Chunk::new(&big, 0, 1, "Contact")).await, 200).await;
}

/// In Message, the kind of media that block 0's bytes show has its own cap
/// (`limits.image_bytes` here): a PNG, whatever it was declared as, is stored as a PNG and gets
/// 413 naming its kind once it passes that cap, while a PDF of the same size is accepted.
pub async fn a_kind_of_media_over_its_cap_gets_413_as_soon_as_block_zero_shows_it(
    profile: Profile,
) {
    let mut options = TestAppOptions::new(profile);
    options
        .env
        .push(("FILEGATE_LIMITS__IMAGE_BYTES".into(), "1000".into()));
    let app = TestApp::spawn_with(options).await;
    let png = png_bytes(1500);
    // Declared as a PDF (Chunk::new's default): the bytes decide.
    let first = envelope(
        app.post_chunk(Chunk::new(&png[..800], 0, 2, "Message"))
            .await,
        200,
    )
    .await;
    let id = first["data"]["fileId"].as_str().unwrap().to_owned();
    let status = envelope(app.status(&id).await, 200).await;
    assert_eq!(status["data"]["contentType"], "image/png");
    error_naming(
        app.post_chunk(Chunk::new(&png[800..], 1, 2, "Message").file_id(&id))
            .await,
        413,
        "Message image files may have at most 1000 bytes",
    )
    .await;
    let pdf = random_pdf(1500);
    let done = envelope(app.post_chunk(Chunk::new(&pdf, 0, 1, "Message")).await, 200).await;
    assert_eq!(done["data"]["isComplete"], true);
}

/// Request bytes held in memory are bounded across requests: a chunk that would have to be
/// held past `http.max_inflight_bytes` gets 503 with Retry-After and keeps nothing. A File sent
/// last streams: to the local store it holds nothing, so it passes; the Azure store sends a
/// block as one payload, so there it is held and refused the same way.
pub async fn a_chunk_past_the_memory_budget_gets_503_and_keeps_nothing(profile: Profile) {
    let mut options = TestAppOptions::new(profile);
    options
        .env
        .push(("FILEGATE_HTTP__MAX_INFLIGHT_BYTES".into(), "100000".into()));
    let app = TestApp::spawn_with(options).await;
    let data = random_bytes(300_000);

    let held = app
        .post_chunk(Chunk::new(&data, 0, 1, "Message").file_first())
        .await;
    assert_eq!(
        held.headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("5"),
        "a 503 says when to retry"
    );
    error_naming(held, 503, "retry").await;

    let streamed = app.post_chunk(Chunk::new(&data, 0, 1, "Message")).await;
    match profile {
        Profile::Embedded => {
            let body = envelope(streamed, 200).await;
            assert_eq!(body["data"]["isComplete"], true);
        }
        Profile::Azure => {
            error_naming(streamed, 503, "retry").await;
        }
    }
    // Small chunks still fit.
    envelope(
        app.post_chunk(Chunk::new(&data[..50_000], 0, 1, "Message").file_first())
            .await,
        200,
    )
    .await;
}

/// On Azure a streamed chunk goes on as 8 MiB blocks while it arrives, so a request holds two
/// of them at most, not the chunk: a 40 MiB chunk passes a 20 MiB budget in a file of 2 chunks.
/// In a file of 50,000 chunks each may be one Azure block only (Azure commits at most 50,000),
/// so there the chunk is held whole, and the same chunk gets 503.
#[tokio::test]
async fn an_azure_chunk_is_held_a_few_mebibytes_at_a_time_within_the_files_block_share() {
    let mut options = TestAppOptions::new(Profile::Azure);
    options.max_chunk_bytes = 64 * 1024 * 1024;
    options.env.push((
        "FILEGATE_HTTP__MAX_INFLIGHT_BYTES".into(),
        (20 * 1024 * 1024).to_string(),
    ));
    let app = TestApp::spawn_with(options).await;
    let data = random_pdf(40 * 1024 * 1024);

    let body = envelope(
        app.post_chunk(Chunk::new(&data, 0, 2, "Message")).await,
        200,
    )
    .await;
    let id = body["data"]["fileId"].as_str().unwrap().to_owned();
    let done = envelope(
        app.post_chunk(Chunk::new(b"%%EOF\n", 1, 2, "Message").file_id(&id))
            .await,
        200,
    )
    .await;
    assert_eq!(done["data"]["isComplete"], true);
    let mut whole = data.clone();
    whole.extend_from_slice(b"%%EOF\n");
    let url = done["data"]["url"].as_str().unwrap();
    assert!(app.fetch(url).await == whole, "the file comes back whole");

    let held = app
        .post_chunk(Chunk::new(&data, 0, 50_000, "Message"))
        .await;
    error_naming(held, 503, "retry").await;
}

/// The content URL of the embedded profile is built from the request only within bounds: an
/// unlisted `Host` gets 400 before anything is kept; `X-Forwarded-*` from a peer not listed in
/// `http.trusted_proxies` are ignored; from a listed one they are believed, but only `http` or
/// `https`; with `http.public_url` set the request names nothing.
#[tokio::test]
async fn urls_are_built_only_from_listed_hosts_and_trusted_proxies() {
    let post = |app: &TestApp, headers: &[(&str, &str)]| {
        let mut req = app
            .http
            .post(app.url("/api/v1/Files/chunk"))
            .header("X-API-Key", &app.key)
            .multipart(Chunk::new(b"a,b\n", 0, 1, "Import").into_form());
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        req.send()
    };
    let app = TestApp::spawn(Profile::Embedded).await;
    error_naming(
        post(&app, &[("Host", "evil.example")]).await.unwrap(),
        400,
        "Host: `evil.example`",
    )
    .await;
    let sql = "SELECT count(*) FROM upload_sessions";
    assert_eq!(
        app.db().await.count(sql, sql, None).await,
        0,
        "nothing kept"
    );
    let ignored = envelope(
        post(
            &app,
            &[
                ("X-Forwarded-Proto", "javascript:alert(1)//"),
                ("X-Forwarded-Host", "evil.example"),
            ],
        )
        .await
        .unwrap(),
        200,
    )
    .await;
    let url = ignored["data"]["url"].as_str().unwrap();
    assert!(
        url.starts_with(&app.base),
        "forwarded headers of an untrusted peer: {url}"
    );

    let mut options = TestAppOptions::new(Profile::Embedded);
    options.env.push((
        "FILEGATE_HTTP__TRUSTED_PROXIES".into(),
        "127.0.0.1, ::1".into(),
    ));
    options.env.push((
        "FILEGATE_HTTP__ALLOWED_HOSTS".into(),
        "files.example,localhost".into(),
    ));
    let proxied = TestApp::spawn_with(options).await;
    error_naming(
        post(&proxied, &[("X-Forwarded-Proto", "javascript:alert(1)//")])
            .await
            .unwrap(),
        400,
        "X-Forwarded-Proto",
    )
    .await;
    let done = envelope(
        post(
            &proxied,
            &[
                ("X-Forwarded-Proto", "https"),
                ("X-Forwarded-Host", "files.example"),
            ],
        )
        .await
        .unwrap(),
        200,
    )
    .await;
    let url = done["data"]["url"].as_str().unwrap();
    assert!(
        url.starts_with("https://files.example/api/v1/Files/"),
        "{url}"
    );

    let mut options = TestAppOptions::new(Profile::Embedded);
    options.env.push((
        "FILEGATE_HTTP__PUBLIC_URL".into(),
        "https://cdn.example/base/".into(),
    ));
    let public = TestApp::spawn_with(options).await;
    let done = envelope(
        post(&public, &[("Host", "evil.example")]).await.unwrap(),
        200,
    )
    .await;
    let url = done["data"]["url"].as_str().unwrap();
    assert!(
        url.starts_with("https://cdn.example/base/api/v1/Files/"),
        "{url}"
    );
}

/// With `rate.requests_per_sec` = 1 and `rate.burst` = 2, a key's third request in a row gets
/// 429 in the envelope with `Retry-After` of at least a second; another key has a bucket of its
/// own, the probes are never limited, and after the wait the key is served again.
pub async fn a_key_over_its_rate_gets_429_with_retry_after(profile: Profile) {
    let mut options = TestAppOptions::new(profile);
    options.env.extend([
        ("FILEGATE_RATE__REQUESTS_PER_SEC".into(), "1".into()),
        ("FILEGATE_RATE__BURST".into(), "2".into()),
    ]);
    let app = TestApp::spawn_with(options).await;
    let unknown = uuid::Uuid::new_v4().to_string();
    for _ in 0..2 {
        envelope(app.status(&unknown).await, 404).await;
    }
    let limited = app.status(&unknown).await;
    let retry_after: u64 = limited
        .headers()
        .get("retry-after")
        .expect("Retry-After")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    error_naming(limited, 429, "rate.requests_per_sec").await;
    let other = app
        .create_key(uuid::Uuid::new_v4(), uuid::Uuid::new_v4())
        .await;
    let resp = app
        .http
        .get(app.url(&format!("/api/v1/Files/{unknown}")))
        .header("X-API-Key", &other)
        .send()
        .await
        .unwrap();
    envelope(resp, 404).await;
    for _ in 0..5 {
        let live = app.http.get(app.url("/health/live")).send().await.unwrap();
        assert_eq!(live.status().as_u16(), 200, "probes are never limited");
    }
    tokio::time::sleep(std::time::Duration::from_secs(retry_after)).await;
    envelope(app.status(&unknown).await, 404).await;
}
