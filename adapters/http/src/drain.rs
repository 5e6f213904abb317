//! Lingering close, as nginx does it. Many answers come before the request's body is read: a
//! bad key (401), a declared length over the limit (413), a refused type (415), a rate (429).
//! Closing the connection right after such an answer, while the client is still sending, makes
//! the kernel reset it, and clients that write the whole body before they read (Node's fetch,
//! Python's http.client) then see a broken pipe instead of the answer. So the unread rest of the
//! body is read and thrown away first, up to a bound of bytes and time; past the bound the
//! answer goes out with `Connection: close`, which is all that can be done.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use poem::http::{HeaderValue, header};
use poem::{Body, Endpoint, IntoResponse, Request, Response};

/// How much of an unread body is drained before the connection closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrainLimits {
    /// Bytes read and discarded at most (0 turns draining off). A request that declares a
    /// longer body is not drained at all.
    pub max_bytes: u64,
    /// How long draining may take.
    pub timeout: Duration,
}

impl Default for DrainLimits {
    /// 64 MiB and 10 s: a few chunks' worth, so that one careless client cannot make the server
    /// read for long (nginx lingers up to 30 s).
    fn default() -> Self {
        Self {
            max_bytes: 64 * 1024 * 1024,
            timeout: Duration::from_secs(10),
        }
    }
}

type Rest = BoxStream<'static, Result<Bytes, std::io::Error>>;

/// The request body, which hands what is left of it to the middleware when it is dropped
/// before its end.
struct Unread {
    inner: Option<Rest>,
    slot: Arc<Mutex<Option<Rest>>>,
    /// Whether the handler read anything: a client that waits for `100 Continue` has sent
    /// nothing of a body nobody asked for, and reading it now would ask for it.
    polled: Arc<std::sync::atomic::AtomicBool>,
}

impl Stream for Unread {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.polled
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let item = inner.poll_next_unpin(cx);
        if matches!(item, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            // Read to its end (or broken): nothing is left to drain.
            self.inner = None;
        }
        item
    }
}

impl Drop for Unread {
    fn drop(&mut self) {
        if let Some(rest) = self.inner.take()
            && let Ok(mut slot) = self.slot.lock()
        {
            *slot = Some(rest);
        }
    }
}

/// Wraps the whole application: every request with a body gets it through [`Unread`].
pub(crate) struct LingeringClose<E> {
    pub(crate) inner: E,
    pub(crate) limits: DrainLimits,
}

impl<E: Endpoint> Endpoint for LingeringClose<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        if self.limits.max_bytes == 0 || !has_body(&req) {
            return self.inner.call(req).await.map(IntoResponse::into_response);
        }
        let declared = req
            .header(header::CONTENT_LENGTH)
            .and_then(|v| v.parse::<u64>().ok());
        let expects_continue = req
            .header(header::EXPECT)
            .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
        let slot = Arc::new(Mutex::new(None));
        let polled = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let body = Unread {
            inner: Some(req.take_body().into_bytes_stream().boxed()),
            slot: slot.clone(),
            polled: polled.clone(),
        };
        req.set_body(Body::from_bytes_stream(body));
        let mut resp = self.inner.call(req).await?.into_response();
        let rest = slot.lock().ok().and_then(|mut s| s.take());
        if let Some(rest) = rest {
            let unasked = expects_continue && !polled.load(std::sync::atomic::Ordering::Relaxed);
            let drained = match declared {
                Some(len) if len > self.limits.max_bytes => false,
                // hyper has not sent `100 Continue`: the client sends nothing, nothing to drain.
                _ if unasked => false,
                _ => drain(rest, self.limits).await,
            };
            if !drained {
                resp.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
        }
        Ok(resp)
    }
}

/// Whether the request says a body follows.
fn has_body(req: &Request) -> bool {
    let length = req
        .header(header::CONTENT_LENGTH)
        .and_then(|v| v.parse::<u64>().ok());
    match length {
        Some(len) => len > 0,
        None => req.headers().contains_key(header::TRANSFER_ENCODING),
    }
}

/// Reads `rest` to its end and drops it; `false` when that took more bytes or time than the
/// limits allow, or the connection broke.
async fn drain(mut rest: Rest, limits: DrainLimits) -> bool {
    let work = async {
        let mut read = 0u64;
        while let Some(piece) = rest.next().await {
            let Ok(piece) = piece else {
                return false;
            };
            read += piece.len() as u64;
            if read > limits.max_bytes {
                return false;
            }
        }
        tracing::debug!(bytes = read, "drained the unread body before answering");
        true
    };
    tokio::time::timeout(limits.timeout, work)
        .await
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use poem::handler;
    use poem::http::StatusCode;
    use poem::test::TestClient;

    /// Reads the first piece of the body and answers at once, leaving the rest unread.
    #[handler]
    async fn early(body: Body) -> StatusCode {
        let mut stream = body.into_bytes_stream();
        let _ = stream.next().await;
        StatusCode::UNAUTHORIZED
    }

    fn pieces(n: usize, size: usize, counter: Arc<Mutex<usize>>) -> Body {
        let stream = futures::stream::iter(0..n).map(move |_| {
            if let Ok(mut c) = counter.lock() {
                *c += 1;
            }
            Ok::<_, std::io::Error>(Bytes::from(vec![b'x'; size]))
        });
        Body::from_bytes_stream(stream)
    }

    #[tokio::test]
    async fn an_early_answer_reads_the_rest_of_a_bounded_body_first() {
        let app = LingeringClose {
            inner: early,
            limits: DrainLimits {
                max_bytes: 10_000,
                timeout: Duration::from_secs(5),
            },
        };
        let client = TestClient::new(app);
        let read = Arc::new(Mutex::new(0));
        let resp = client
            .post("/")
            .header(header::CONTENT_LENGTH, "5000")
            .body(pieces(5, 1000, read.clone()))
            .send()
            .await;
        resp.assert_status(StatusCode::UNAUTHORIZED);
        assert!(resp.0.headers().get(header::CONNECTION).is_none());
        assert_eq!(*read.lock().unwrap(), 5, "every piece was read");

        // Longer than the bound: drained no further than the bound, and the answer says close.
        let read = Arc::new(Mutex::new(0));
        let resp = client
            .post("/")
            .header(header::TRANSFER_ENCODING, "chunked")
            .body(pieces(50, 1000, read.clone()))
            .send()
            .await;
        resp.assert_status(StatusCode::UNAUTHORIZED);
        resp.assert_header(header::CONNECTION, "close");
        assert_eq!(
            *read.lock().unwrap(),
            12,
            "the handler's piece, the bound's ten, and the one that passed it"
        );

        // A declared length past the bound is not drained at all.
        let read = Arc::new(Mutex::new(0));
        let resp = client
            .post("/")
            .header(header::CONTENT_LENGTH, "50000")
            .body(pieces(50, 1000, read.clone()))
            .send()
            .await;
        resp.assert_header(header::CONNECTION, "close");
        assert_eq!(*read.lock().unwrap(), 1, "only what the handler read");
    }
}
