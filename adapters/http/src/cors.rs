//! CORS for browser front ends on other origins. The key travels in a header (`X-API-Key`), not
//! a cookie, so any listed origin, or `*`, may call the API without credentials. This layer
//! wraps everything that answers (the routes, the envelope, the rate limit, the byte budget), so
//! that errors carry the headers too: a browser hides from the page any answer without them,
//! envelope included. A request from an unlisted origin is served as if CORS did not exist
//! (poem's own `Cors` answers 403 in plain text), so same-origin pages always work.

use poem::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use poem::{Endpoint, IntoResponse, Request, Response};

const ALLOWED_METHODS: &str = "GET, POST, DELETE";
const ALLOWED_HEADERS: &str =
    "X-API-Key, Content-Type, Range, If-None-Match, traceparent, tracestate";
const EXPOSED_HEADERS: &str = "Retry-After, ETag, Content-Range, Content-Disposition, Repr-Digest";
/// How long a browser may keep a preflight's answer.
const MAX_AGE_SECS: &str = "600";

/// The origins allowed to call the API from a browser.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CorsPolicy {
    /// Exact origins (`https://crm.example`), or `*` for any. Empty: CORS is off.
    pub allowed_origins: Vec<String>,
}

impl CorsPolicy {
    /// The `Access-Control-Allow-Origin` value for a request from `origin`, if it is allowed.
    fn allow(&self, origin: &str) -> Option<HeaderValue> {
        if self.allowed_origins.iter().any(|o| o == "*") {
            return Some(HeaderValue::from_static("*"));
        }
        let origin = origin.trim_end_matches('/');
        self.allowed_origins
            .iter()
            .any(|o| o.trim_end_matches('/').eq_ignore_ascii_case(origin))
            .then(|| HeaderValue::from_str(origin).ok())
            .flatten()
    }

    fn is_off(&self) -> bool {
        self.allowed_origins.is_empty()
    }

    fn is_any(&self) -> bool {
        self.allowed_origins.iter().any(|o| o == "*")
    }
}

pub(crate) struct Cors<E> {
    pub(crate) inner: E,
    pub(crate) policy: CorsPolicy,
}

impl<E: Endpoint> Endpoint for Cors<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let allowed = match req.header(header::ORIGIN) {
            Some(origin) if !self.policy.is_off() => self.policy.allow(origin),
            _ => None,
        };
        let Some(allow) = allowed else {
            let mut resp = self.inner.call(req).await?.into_response();
            if !self.policy.is_off() && !self.policy.is_any() {
                // The answer differs by Origin: a cache must not hand this one to a listed
                // origin.
                resp.headers_mut()
                    .append(header::VARY, HeaderValue::from_static("Origin"));
            }
            return Ok(resp);
        };
        let preflight = req.method() == Method::OPTIONS
            && req
                .headers()
                .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
        if preflight {
            let mut resp = StatusCode::NO_CONTENT.into_response();
            let headers = resp.headers_mut();
            common(headers, allow);
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static(ALLOWED_METHODS),
            );
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static(ALLOWED_HEADERS),
            );
            headers.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static(MAX_AGE_SECS),
            );
            return Ok(resp);
        }
        let mut resp = match self.inner.call(req).await {
            Ok(resp) => resp.into_response(),
            Err(e) => e.into_response(),
        };
        let headers = resp.headers_mut();
        common(headers, allow);
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSED_HEADERS),
        );
        Ok(resp)
    }
}

/// The headers of every CORS answer; `Vary: Origin` since the answer depends on it.
fn common(headers: &mut HeaderMap, allow: HeaderValue) {
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow);
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_match_exactly_or_by_a_star() {
        let policy = CorsPolicy {
            allowed_origins: vec!["https://crm.example".into()],
        };
        assert_eq!(
            policy.allow("https://crm.example"),
            Some(HeaderValue::from_static("https://crm.example"))
        );
        assert_eq!(
            policy.allow("https://CRM.example/"),
            Some(HeaderValue::from_static("https://CRM.example"))
        );
        assert_eq!(policy.allow("https://crm.example.evil"), None);
        assert_eq!(policy.allow("http://crm.example"), None);
        let any = CorsPolicy {
            allowed_origins: vec!["*".into()],
        };
        assert_eq!(any.allow("null"), Some(HeaderValue::from_static("*")));
        assert!(CorsPolicy::default().is_off());
    }
}
