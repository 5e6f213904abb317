//! Assertions shared by the tests.

use filegate_tests::{Chunk, TestApp};
use serde_json::Value;

/// Reads an answer, checks that it is the envelope with the expected status, and returns it.
pub async fn envelope(resp: reqwest::Response, status: u16) -> Value {
    let got = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or_default().to_owned());
    let text = resp.text().await.expect("body");
    assert_eq!(got, status, "unexpected status; body: {text}");
    assert!(
        content_type
            .as_deref()
            .is_some_and(|c| c.starts_with("application/json")),
        "not JSON ({content_type:?}): {text}"
    );
    let body: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    let success = (200..300).contains(&status);
    assert_eq!(body["isSuccess"], Value::Bool(success), "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "no message: {body}"
    );
    if !success {
        assert!(body["data"].is_null(), "an error carries data: {body}");
    }
    body
}

/// Asserts an error envelope whose message names `needle`.
pub async fn error_naming(resp: reqwest::Response, status: u16, needle: &str) -> Value {
    let body = envelope(resp, status).await;
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(needle),
        "message `{message}` does not name `{needle}`"
    );
    body
}

/// Uploads `data` split into `parts` chunks sequentially; answers the last envelope.
pub async fn upload_sequentially(app: &TestApp, data: &[u8], parts: usize, mode: &str) -> Value {
    let chunks = split(data, parts);
    let total = chunks.len() as u32;
    let first = envelope(
        app.post_chunk(Chunk::new(chunks[0], 0, total, mode)).await,
        200,
    )
    .await;
    let id = first["data"]["fileId"].as_str().unwrap().to_owned();
    let mut last = first;
    for (i, chunk) in chunks.iter().enumerate().skip(1) {
        last = envelope(
            app.post_chunk(Chunk::new(chunk, i as u32, total, mode).file_id(&id))
                .await,
            200,
        )
        .await;
    }
    last
}

pub fn split(data: &[u8], parts: usize) -> Vec<&[u8]> {
    let size = data.len().div_ceil(parts);
    data.chunks(size).collect()
}

/// Random bytes that are UTF-8 text (letters, digits, commas and line breaks), so that a file
/// made of them is a CSV in Import and a plain-text document in Message: the type policy tells
/// types from the first bytes, and random binary is no type at all.
pub fn random_bytes(len: usize) -> Vec<u8> {
    use rand::RngCore;
    // 64 symbols: each random byte picks one by its low six bits.
    const ALPHABET: &[u8; 64] =
        b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789,\n";
    let mut data = vec![0u8; len];
    rand::rng().fill_bytes(&mut data);
    for b in &mut data {
        *b = ALPHABET[usize::from(*b & 63)];
    }
    data
}

/// Random bytes behind a PDF header: a PDF by its first bytes.
pub fn random_pdf(len: usize) -> Vec<u8> {
    let mut data = b"%PDF-1.7\n".to_vec();
    data.extend(random_bytes(len.saturating_sub(data.len())));
    data.truncate(len);
    data
}

/// A PNG by its first bytes, `len` long.
pub fn png_bytes(len: usize) -> Vec<u8> {
    let mut data = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    data.extend(random_bytes(len.saturating_sub(data.len())));
    data.truncate(len);
    data
}
