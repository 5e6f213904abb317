//! Sorting `object_store` failures into what the caller can do about them.
//!
//! `object_store` keeps its HTTP status type private (`RetryError` lives in a private module),
//! so a status is recognised from the error text (`status code: 503`) and transport failures
//! from the public `HttpError` in the source chain. The mapping is pinned by the contract tests
//! against Azurite (container missing, closed port).

use std::error::Error as StdError;

use filegate_application::ports::BlobError;
use object_store::client::{HttpError, HttpErrorKind};

/// The Azure error of a request against a container that does not exist, as its XML body
/// says it. Matched with its tags: a file may well be named `ContainerNotFound.txt`, but a
/// sanitized name never holds `<` or `>`.
const CONTAINER_NOT_FOUND: &str = "<Code>ContainerNotFound</Code>";

/// What the blob store is being asked to do, for the error message.
pub(crate) struct Context<'a> {
    pub action: &'static str,
    pub path: &'a str,
    /// Already formatted for `BlobError::ContainerMissing`.
    pub container_missing: &'a str,
}

pub(crate) fn map(err: object_store::Error, cx: &Context<'_>) -> BlobError {
    let text = err.to_string();
    if text.contains(CONTAINER_NOT_FOUND) {
        return BlobError::ContainerMissing(cx.container_missing.to_owned());
    }
    if matches!(err, object_store::Error::NotFound { .. }) {
        return BlobError::NotFound(cx.path.to_owned());
    }
    let transient = is_transport_failure(&err) || status_of(&text).is_some_and(is_transient_status);
    let err = anyhow::Error::new(err).context(format!("{} `{}`", cx.action, cx.path));
    if transient {
        BlobError::Unavailable(err)
    } else {
        BlobError::Unknown(err)
    }
}

/// A status the service may answer differently a moment later.
fn is_transient_status(status: u16) -> bool {
    status >= 500 || status == 429 || status == 408
}

/// The HTTP status in an `object_store` error text, if the failure was an HTTP answer.
pub(crate) fn status_of(text: &str) -> Option<u16> {
    const MARK: &str = "status code: ";
    let at = text.find(MARK)? + MARK.len();
    text.get(at..at + 3)?.parse().ok()
}

/// The request never got an answer: refused, reset, timed out.
fn is_transport_failure(err: &object_store::Error) -> bool {
    let mut current: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = current {
        if let Some(http) = e.downcast_ref::<HttpError>() {
            return matches!(
                http.kind(),
                HttpErrorKind::Connect
                    | HttpErrorKind::Request
                    | HttpErrorKind::Timeout
                    | HttpErrorKind::Interrupted
            );
        }
        current = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cx() -> Context<'static> {
        Context {
            action: "reading",
            path: "a/b",
            container_missing: "uploads",
        }
    }

    fn generic(source: Box<dyn StdError + Send + Sync>) -> object_store::Error {
        object_store::Error::Generic {
            store: "MicrosoftAzure",
            source,
        }
    }

    #[test]
    fn the_status_is_read_from_the_text() {
        assert_eq!(
            status_of(
                "Error performing GET x in 1ms - Server returned non-2xx status code: 503 Service Unavailable: "
            ),
            Some(503)
        );
        assert_eq!(status_of("no status here"), None);
    }

    #[test]
    fn failures_are_sorted_by_what_the_caller_can_do() {
        let e = map(generic("Server returned non-2xx status code: 404 Not Found: <Code>ContainerNotFound</Code>".into()), &cx());
        assert!(matches!(e, BlobError::ContainerMissing(c) if c == "uploads"));
        let e = map(
            object_store::Error::NotFound {
                path: "a/b".into(),
                source: "BlobNotFound".into(),
            },
            &cx(),
        );
        assert!(matches!(e, BlobError::NotFound(p) if p == "a/b"));
        let e = map(
            generic("Server returned non-2xx status code: 503 Service Unavailable: busy".into()),
            &cx(),
        );
        assert!(matches!(e, BlobError::Unavailable(_)));
        let e = map(
            generic(Box::new(HttpError::new(
                HttpErrorKind::Connect,
                std::io::Error::other("refused"),
            ))),
            &cx(),
        );
        assert!(matches!(e, BlobError::Unavailable(_)));
        let e = map(
            generic(
                "Server returned non-2xx status code: 403 Forbidden: AuthenticationFailed".into(),
            ),
            &cx(),
        );
        assert!(matches!(e, BlobError::Unknown(_)));
    }
}
