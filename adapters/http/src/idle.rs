//! A request body that moves no byte for a while is given up.
//!
//! The chunk body is read by hand, so the server's connection idle timeout alone would not end
//! a request whose client sent most of a chunk and stalled: a graceful close waits for the
//! request in flight, and the request waits for bytes that never come. Timing each read of the
//! body ends it with a typed error, which the chunk parser answers with 408 in the envelope.

use std::io;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};

/// How long a request body may go without a byte (`None`: forever); put into the request data
/// by the router.
#[derive(Debug, Clone, Copy)]
pub struct BodyIdleTimeout(pub Option<Duration>);

/// The body moved no byte for the idle timeout.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the request body sent no byte for {} s; the request was given up", .0.as_secs())]
pub struct BodyStalled(pub Duration);

/// Wraps a body stream so that a read that waits longer than `idle` yields [`BodyStalled`] (as
/// an `io::Error` of kind `TimedOut`, which is what body readers carry) and then ends. `None`
/// leaves the stream untimed.
pub fn stall_limited<S>(
    stream: S,
    idle: Option<Duration>,
) -> impl Stream<Item = Result<Bytes, io::Error>> + Send + 'static
where
    S: Stream<Item = Result<Bytes, io::Error>> + Send + 'static,
{
    futures::stream::unfold(
        (Box::pin(stream), false),
        move |(mut stream, stalled)| async move {
            if stalled {
                return None;
            }
            let next = match idle {
                Some(idle) => match tokio::time::timeout(idle, stream.next()).await {
                    Ok(next) => next,
                    Err(_) => {
                        let err = io::Error::new(io::ErrorKind::TimedOut, BodyStalled(idle));
                        return Some((Err(err), (stream, true)));
                    }
                },
                None => stream.next().await,
            };
            next.map(|item| (item, (stream, false)))
        },
    )
}

/// The stall behind a failed read of the body, if a stall is what broke it.
pub fn stall_of(err: &io::Error) -> Option<BodyStalled> {
    err.get_ref()
        .and_then(|e| e.downcast_ref::<BodyStalled>())
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_body_that_keeps_moving_is_read_whole() {
        let pieces = futures::stream::iter([Ok(Bytes::from_static(b"ab")), Ok(Bytes::new())]);
        let read: Vec<_> = stall_limited(pieces, Some(Duration::from_millis(200)))
            .collect()
            .await;
        assert_eq!(read.len(), 2);
        assert!(read.iter().all(Result::is_ok));
    }

    #[tokio::test]
    async fn a_body_that_stalls_ends_with_a_stall_that_the_form_reader_passes_on() {
        let first = futures::stream::iter([Ok(Bytes::from_static(b"--b\r\n"))]);
        let stalling = first.chain(futures::stream::pending());
        let idle = Duration::from_millis(50);
        let stream = stall_limited(stalling, Some(idle)).boxed();
        let mut multipart = crate::multipart::Multipart::new(stream, "b", u64::MAX);
        let err = tokio::time::timeout(Duration::from_secs(5), multipart.next_part())
            .await
            .expect("the stall ends the read well before 5 s")
            .expect_err("a stalled body is an error");
        let crate::multipart::MultipartError::Read(err) = err else {
            panic!("a stall is a failed read, got {err:?}");
        };
        let stall = stall_of(&err).expect("the error is the stall");
        assert_eq!(stall.0, idle);
    }

    #[test]
    fn other_read_errors_are_not_stalls() {
        assert!(stall_of(&io::Error::other("reset")).is_none());
        assert!(stall_of(&io::Error::new(io::ErrorKind::TimedOut, "slow")).is_none());
    }
}
