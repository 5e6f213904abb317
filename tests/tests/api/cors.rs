//! CORS: a listed origin's preflight is answered, and every answer to it carries the CORS
//! headers, the server's own early limits included; an unlisted origin is served without them.

use filegate_tests::{Chunk, Profile, TestApp, TestAppOptions};

use crate::support::envelope;

const ORIGIN: &str = "https://crm.example";

fn allow_origin(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get("access-control-allow-origin")
        .map(|v| v.to_str().unwrap().to_owned())
}

pub async fn a_listed_origin_gets_cors_on_every_answer_and_others_none(profile: Profile) {
    let mut options = TestAppOptions::new(profile);
    options.env.extend([
        (
            "FILEGATE_HTTP__CORS_ALLOWED_ORIGINS".into(),
            format!("{ORIGIN},http://localhost:3000"),
        ),
        ("FILEGATE_RATE__REQUESTS_PER_SEC".into(), "1".into()),
        ("FILEGATE_RATE__BURST".into(), "2".into()),
    ]);
    let app = TestApp::spawn_with(options).await;
    let chunk_url = app.url("/api/v1/Files/chunk");

    // The preflight for a chunk upload with its key.
    let preflight = app
        .http
        .request(reqwest::Method::OPTIONS, &chunk_url)
        .header("Origin", ORIGIN)
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "x-api-key, content-type")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status().as_u16(), 204);
    assert_eq!(allow_origin(&preflight).as_deref(), Some(ORIGIN));
    let h = preflight.headers();
    assert_eq!(h["access-control-allow-methods"], "GET, POST, DELETE");
    let allowed = h["access-control-allow-headers"].to_str().unwrap();
    for name in [
        "X-API-Key",
        "Content-Type",
        "Range",
        "If-None-Match",
        "traceparent",
    ] {
        assert!(allowed.contains(name), "{allowed}");
    }

    // An answer, and errors: a wrong key (401), then the key's rate (429 with Retry-After).
    let ok = app
        .http
        .post(&chunk_url)
        .header("Origin", ORIGIN)
        .header("X-API-Key", &app.key)
        .multipart(Chunk::new(b"a,b\n", 0, 1, "Import").into_form())
        .send()
        .await
        .unwrap();
    assert_eq!(allow_origin(&ok).as_deref(), Some(ORIGIN));
    let exposed = ok.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_owned();
    for name in [
        "Retry-After",
        "ETag",
        "Content-Range",
        "Content-Disposition",
        "Repr-Digest",
    ] {
        assert!(exposed.contains(name), "{exposed}");
    }
    envelope(ok, 200).await;
    let unauthorized = app
        .http
        .get(app.url("/api/v1/Files/0195f7a2-1b2c-7d3e-8f90-123456789abc"))
        .header("Origin", ORIGIN)
        .header("X-API-Key", "fg_wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(allow_origin(&unauthorized).as_deref(), Some(ORIGIN));
    envelope(unauthorized, 401).await;
    let mut limited = None;
    for _ in 0..5 {
        let resp = app
            .http
            .get(app.url("/api/v1/Files/0195f7a2-1b2c-7d3e-8f90-123456789abc"))
            .header("Origin", ORIGIN)
            .header("X-API-Key", &app.key)
            .send()
            .await
            .unwrap();
        if resp.status().as_u16() == 429 {
            limited = Some(resp);
            break;
        }
    }
    let limited = limited.expect("the key's rate gives a 429");
    assert_eq!(allow_origin(&limited).as_deref(), Some(ORIGIN));
    assert!(limited.headers().contains_key("retry-after"));
    envelope(limited, 429).await;

    // An unlisted origin is served, without CORS headers; its preflight gets none either.
    let other = app
        .http
        .get(app.url("/health/live"))
        .header("Origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status().as_u16(), 200);
    assert_eq!(allow_origin(&other), None);
    let other_preflight = app
        .http
        .request(reqwest::Method::OPTIONS, &chunk_url)
        .header("Origin", "https://evil.example")
        .header("Access-Control-Request-Method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(allow_origin(&other_preflight), None);
    assert_ne!(other_preflight.status().as_u16(), 204);
}

/// The uploader and the try page are served without a key, with an ETag, and the module with
/// CORS headers for a listed origin (module scripts are fetched in CORS mode).
pub async fn the_uploader_and_the_try_page_are_served_with_etags(profile: Profile) {
    let mut options = TestAppOptions::new(profile);
    options
        .env
        .push(("FILEGATE_HTTP__CORS_ALLOWED_ORIGINS".into(), ORIGIN.into()));
    let app = TestApp::spawn_with(options).await;
    let script = app
        .http
        .get(app.url("/sdk/filegate.js"))
        .header("Origin", ORIGIN)
        .send()
        .await
        .unwrap();
    assert_eq!(script.status().as_u16(), 200);
    assert_eq!(allow_origin(&script).as_deref(), Some(ORIGIN));
    assert!(
        script.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    let etag = script.headers()["etag"].to_str().unwrap().to_owned();
    assert!(
        script
            .text()
            .await
            .unwrap()
            .contains("export async function upload")
    );
    let again = app
        .http
        .get(app.url("/sdk/filegate.js"))
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status().as_u16(), 304);
    let page = app.http.get(app.url("/try")).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.text().await.unwrap().contains("./sdk/filegate.js"));
}
