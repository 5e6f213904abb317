//! The browser side, served by the service itself: the JavaScript uploader at
//! `/sdk/filegate.js` (an ES module; module scripts are fetched in CORS mode, which the CORS
//! layer answers for listed origins) and the `/try` page that uses it. Both are compiled into
//! the binary, so the embedded default serves them with nothing else installed. No key is
//! needed to load them; the page asks for one.

use poem::http::{HeaderValue, StatusCode, header};
use poem::{Endpoint, Request, Response};

const FILEGATE_JS: &str = include_str!("../../../clients/js/filegate.js");
const TRY_HTML: &str = include_str!("../../../clients/js/try.html");

/// A strong ETag of `text`: FNV-1a over its bytes, fixed for a given binary.
fn etag(text: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("\"{hash:016x}\"")
}

/// Serves one compiled-in text with its ETag; `If-None-Match` gets 304.
pub(crate) struct Asset {
    body: &'static str,
    content_type: &'static str,
    etag: String,
}

impl Asset {
    pub(crate) fn script() -> Self {
        Self {
            body: FILEGATE_JS,
            content_type: "text/javascript; charset=utf-8",
            etag: etag(FILEGATE_JS),
        }
    }

    pub(crate) fn try_page() -> Self {
        Self {
            body: TRY_HTML,
            content_type: "text/html; charset=utf-8",
            etag: etag(TRY_HTML),
        }
    }
}

impl Endpoint for Asset {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let fresh = req
            .header(header::IF_NONE_MATCH)
            .is_some_and(|tags| tags.split(',').any(|t| t.trim() == self.etag));
        let builder = Response::builder()
            .header(header::ETAG, self.etag.as_str())
            // Revalidated each time: cheap with the ETag, and never stale after an upgrade.
            .header(header::CACHE_CONTROL, "no-cache")
            .header(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
        if fresh {
            return Ok(builder.status(StatusCode::NOT_MODIFIED).finish());
        }
        Ok(builder
            .header(header::CONTENT_TYPE, self.content_type)
            .body(self.body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_etag_follows_the_text() {
        assert_eq!(etag("a"), etag("a"));
        assert_ne!(etag("a"), etag("b"));
        assert!(
            Asset::script()
                .body
                .contains("export async function upload")
        );
        assert!(Asset::try_page().body.contains("./sdk/filegate.js"));
    }
}
