//! The content route: the file with its type, length, ETag and single ranges; and the embedded
//! profile's first start.

use filegate_tests::{Chunk, Profile, TestApp, TestAppOptions};

use crate::support::{envelope, error_naming, png_bytes, random_bytes, split};

async fn complete_file(app: &TestApp, data: &[u8]) -> String {
    let chunks = split(data, 2);
    let mut chunk = Chunk::new(chunks[0], 0, 2, "Message");
    chunk.content_type = Some("image/png".into());
    chunk.file_name = Some("photo.png".into());
    let first = envelope(app.post_chunk(chunk).await, 200).await;
    let id = first["data"]["fileId"].as_str().unwrap().to_owned();
    envelope(
        app.post_chunk(Chunk::new(chunks[1], 1, 2, "Message").file_id(&id))
            .await,
        200,
    )
    .await;
    id
}

fn get(app: &TestApp, id: &str) -> reqwest::RequestBuilder {
    app.http
        .get(app.url(&format!("/api/v1/Files/{id}/content")))
        .header("X-API-Key", &app.key)
}

pub async fn the_content_route_streams_the_file_with_its_headers(profile: Profile) {
    let app = TestApp::spawn(profile).await;
    let data = png_bytes(300_001);
    let id = complete_file(&app, &data).await;
    let resp = get(&app, &id).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let headers = resp.headers().clone();
    assert_eq!(headers["content-type"], "image/png");
    assert_eq!(headers["content-length"], data.len().to_string().as_str());
    assert_eq!(headers["accept-ranges"], "bytes");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(
        headers["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("inline;"),
        "a PNG is shown in place"
    );
    let etag = headers["etag"].to_str().unwrap().to_owned();
    assert!(
        etag.starts_with('"') && etag.ends_with('"'),
        "a strong ETag: {etag}"
    );
    assert_eq!(resp.bytes().await.unwrap().to_vec(), data);

    let not_modified = get(&app, &id)
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(not_modified.status().as_u16(), 304);
}

/// Markup (HTML, SVG) is no type any mode takes, whatever it is declared as: 415, nothing kept.
/// Text that is kept is served as an attachment, never inline, and never sniffed; a range
/// header's unit is read in any case.
pub async fn active_content_is_refused_or_served_as_an_attachment(profile: Profile) {
    let app = TestApp::spawn(profile).await;
    let page: &[u8] = b"<html><script>alert(1)</script></html>";
    for (mode, content_type) in [
        ("Profile", "image/png"),
        ("Import", "text/csv"),
        ("Message", "image/svg+xml"),
        ("Firm", "text/html"),
    ] {
        let mut chunk = Chunk::new(page, 0, 1, mode);
        chunk.content_type = Some(content_type.into());
        chunk.file_name = Some("avatar.png".into());
        error_naming(
            app.post_chunk(chunk).await,
            415,
            "the bytes sent are of no type this service recognizes; nothing was kept",
        )
        .await;
    }
    app.assert_no_files().await;
    let mut chunk = Chunk::new(b"alert(1) // plain words", 0, 1, "Message");
    chunk.content_type = Some("text/html".into());
    chunk.file_name = Some("page.html".into());
    let done = envelope(app.post_chunk(chunk).await, 200).await;
    let id = done["data"]["fileId"].as_str().unwrap().to_owned();
    let resp = get(&app, &id).send().await.unwrap();
    let headers = resp.headers();
    assert_eq!(
        headers["content-type"], "text/plain",
        "the type the bytes show"
    );
    assert_eq!(headers["x-content-type-options"], "nosniff");
    let disposition = headers["content-disposition"].to_str().unwrap();
    assert!(disposition.starts_with("attachment;"), "{disposition}");
    let ranged = get(&app, &id)
        .header("Range", "BYTES=0-5")
        .send()
        .await
        .unwrap();
    assert_eq!(
        ranged.status().as_u16(),
        206,
        "the unit is case-insensitive"
    );
    assert_eq!(ranged.bytes().await.unwrap().as_ref(), b"alert(");
}

pub async fn a_single_range_gets_206_with_just_those_bytes(profile: Profile) {
    let app = TestApp::spawn(profile).await;
    let data = random_bytes(100_000);
    let id = complete_file(&app, &data).await;
    for (header, range) in [
        ("bytes=10-19", 10..20),
        ("bytes=99990-", 99_990..100_000),
        ("bytes=-5", 99_995..100_000),
    ] {
        let resp = get(&app, &id).header("Range", header).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 206, "{header}");
        let content_range = resp.headers()["content-range"].to_str().unwrap().to_owned();
        assert_eq!(
            content_range,
            format!("bytes {}-{}/100000", range.start, range.end - 1)
        );
        assert_eq!(
            resp.headers()["content-length"],
            (range.end - range.start).to_string().as_str()
        );
        assert_eq!(
            resp.bytes().await.unwrap().to_vec(),
            data[range].to_vec(),
            "{header}"
        );
    }
    let past_the_end = get(&app, &id)
        .header("Range", "bytes=100000-")
        .send()
        .await
        .unwrap();
    assert_eq!(past_the_end.headers()["content-range"], "bytes */100000");
    error_naming(past_the_end, 416, "outside").await;
}

pub async fn content_of_an_open_unknown_or_foreign_file_is_refused(profile: Profile) {
    let app = TestApp::spawn(profile).await;
    let open = envelope(
        app.post_chunk(Chunk::new(b"part", 0, 2, "Message")).await,
        200,
    )
    .await;
    let open_id = open["data"]["fileId"].as_str().unwrap();
    error_naming(
        get(&app, open_id).send().await.unwrap(),
        409,
        "not complete",
    )
    .await;
    let unknown = uuid::Uuid::new_v4().to_string();
    error_naming(get(&app, &unknown).send().await.unwrap(), 404, &unknown).await;
    let done = complete_file(&app, b"some bytes").await;
    let other_key = app
        .create_key(uuid::Uuid::new_v4(), uuid::Uuid::new_v4())
        .await;
    let foreign = app
        .http
        .get(app.url(&format!("/api/v1/Files/{done}/content")))
        .header("X-API-Key", other_key)
        .send()
        .await
        .unwrap();
    error_naming(foreign, 404, &done).await;
    let malformed = error_naming(get(&app, "nope").send().await.unwrap(), 400, "fileId").await;
    let message = malformed["message"].as_str().unwrap();
    assert!(
        message.contains("uuid") && !message.contains("param"),
        "names the path's own parameter: {message}"
    );
}

/// With no key in the store, `serve` creates one and prints it once; it works at once.
pub async fn the_first_start_prints_a_working_key(profile: Profile) {
    let mut options = TestAppOptions::new(profile);
    options.create_key = false;
    let mut app = TestApp::spawn_with(options).await;
    let banner = app.banner.join("\n");
    let key = app
        .banner
        .iter()
        .find_map(|l| l.trim().strip_prefix("key:"))
        .map(|k| k.trim().to_owned())
        .unwrap_or_else(|| panic!("no key in the banner:\n{banner}"));
    app.key = key;
    envelope(
        app.post_chunk(Chunk::new(&png_bytes(64), 0, 1, "Firm"))
            .await,
        200,
    )
    .await;
    app.restart().await;
    assert!(
        app.banner.iter().all(|l| !l.contains("key:")),
        "a second start prints no new key"
    );
}
