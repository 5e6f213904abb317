//! Watching an upload move, so that a stalled one fails without capping a slow one.
//!
//! reqwest offers a whole-request `timeout` (too short for 100 MB on a slow link, or too long to
//! notice a dead peer) and a `read_timeout`, which in reqwest 0.13 counts from the moment the
//! request is sent until the response headers arrive, so it too caps the whole upload. Instead
//! the body stream records when the connection last took a piece of it; the call fails when
//! nothing moved for the stall timeout, or when the answer does not come within the request
//! timeout after the last byte.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use filegate_application::media_ports::ByteStream;
use futures::{Stream, StreamExt};
use tokio::time::Instant;

/// How far an upload's body got, shared between the stream and the watchdog.
#[derive(Debug)]
pub(crate) struct Progress {
    started: Instant,
    /// Milliseconds from `started` to the last piece taken.
    last_ms: AtomicU64,
    sent: AtomicU64,
    /// The body's length, when known: reaching it means the body is done even if the
    /// connection never asks for its end.
    expected: Option<u64>,
    finished: AtomicBool,
    /// The blob stream's own error, which is not Meta's fault.
    source_error: Mutex<Option<String>>,
}

impl Progress {
    pub(crate) fn new(expected: Option<u64>) -> Arc<Self> {
        Arc::new(Self {
            started: Instant::now(),
            last_ms: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            expected,
            finished: AtomicBool::new(false),
            source_error: Mutex::new(None),
        })
    }

    fn touch(&self) {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    pub(crate) fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    pub(crate) fn finished(&self) -> bool {
        self.finished.load(Ordering::Relaxed)
    }

    pub(crate) fn source_error(&self) -> Option<String> {
        self.source_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Completes when the upload stopped moving: no piece taken for `stall` while sending, or
    /// no answer for `answer` after the last piece.
    pub(crate) async fn stalled(&self, stall: Duration, answer: Duration) {
        loop {
            let last = self.started + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let limit = if self.finished() { answer } else { stall };
            let deadline = last + limit;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// The blob stream, reporting to a [`Progress`] as the connection takes it.
pub(crate) struct Watched {
    inner: ByteStream,
    progress: Arc<Progress>,
}

impl Watched {
    pub(crate) fn new(inner: ByteStream, progress: Arc<Progress>) -> Self {
        Self { inner, progress }
    }
}

impl Stream for Watched {
    type Item = Result<Bytes, io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.inner.poll_next_unpin(cx);
        let p = &self.progress;
        match &polled {
            Poll::Ready(Some(Ok(chunk))) => {
                let sent =
                    p.sent.fetch_add(chunk.len() as u64, Ordering::Relaxed) + chunk.len() as u64;
                if p.expected.is_some_and(|n| sent >= n) {
                    p.finished.store(true, Ordering::Relaxed);
                }
                p.touch();
            }
            Poll::Ready(Some(Err(e))) => {
                *p.source_error
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(e.to_string());
                p.touch();
            }
            Poll::Ready(None) => {
                p.finished.store(true, Ordering::Relaxed);
                p.touch();
            }
            Poll::Pending => {}
        }
        polled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_stream_that_stops_moving_is_noticed() {
        let (stall, answer) = (Duration::from_millis(300), Duration::from_millis(100));
        let progress = Progress::new(None);
        let (tx, rx) = futures::channel::mpsc::unbounded::<Result<Bytes, io::Error>>();
        let mut watched = Watched::new(rx.boxed(), progress.clone());
        tx.unbounded_send(Ok(Bytes::from_static(b"abc"))).unwrap();
        assert_eq!(watched.next().await.unwrap().unwrap(), "abc");
        assert_eq!(progress.sent(), 3);
        let started = Instant::now();
        progress.stalled(stall, answer).await;
        assert!(started.elapsed() >= stall - Duration::from_millis(20));
        drop(tx);
        assert!(watched.next().await.is_none());
        assert!(progress.finished());
        let started = Instant::now();
        progress.stalled(stall, answer).await;
        assert!(started.elapsed() >= answer - Duration::from_millis(20));
        assert!(started.elapsed() < stall);
    }

    #[tokio::test]
    async fn a_body_of_known_length_is_done_at_its_last_byte() {
        let progress = Progress::new(Some(4));
        let chunks = vec![Ok(Bytes::from_static(b"ab")), Ok(Bytes::from_static(b"cd"))];
        let mut watched = Watched::new(futures::stream::iter(chunks).boxed(), progress.clone());
        watched.next().await.unwrap().unwrap();
        assert!(!progress.finished());
        watched.next().await.unwrap().unwrap();
        assert!(progress.finished());
    }
}
