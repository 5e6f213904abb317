//! A file's bytes on their way to Meta, checked against the SHA-256 on its record as they
//! pass. The last piece is held back until the digest is known to match, so that bytes that
//! changed in storage (a corrupt disk, a blob overwritten by hand) never reach Meta whole: the
//! upload fails instead, and the task never goes on to `/messages` or `/message_templates`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use filegate_domain::Sha256Digest;
use futures::StreamExt;
use futures::stream::BoxStream;
use sha2::{Digest, Sha256};

use crate::media_ports::ByteStream;
use crate::ports::BlobError;

/// Set when a verified stream found the bytes differ from the record: the Meta call that
/// read it then failed for that reason, not for a broken connection.
#[derive(Debug, Clone, Default)]
pub(super) struct Mismatch(Arc<AtomicBool>);

impl Mismatch {
    pub(super) fn found(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    fn set(&self) {
        self.0.store(true, Ordering::Release);
    }
}

struct State {
    inner: BoxStream<'static, Result<Bytes, BlobError>>,
    hasher: Sha256,
    /// Bytes still to hash without sending: a resumed upload goes on from an offset, but the
    /// digest needs every byte.
    skip: u64,
    held: Option<Bytes>,
    expected: Sha256Digest,
    mismatch: Mismatch,
    done: bool,
}

/// The whole file's bytes as `whole` streams them, sent from byte `from` on, each piece sent
/// only once the next has arrived, and the last only once the digest matches `expected`; on a
/// mismatch the stream ends with an error instead, and `mismatch` says so.
pub(super) fn verified(
    whole: BoxStream<'static, Result<Bytes, BlobError>>,
    from: u64,
    expected: Sha256Digest,
    mismatch: Mismatch,
) -> ByteStream {
    let state = State {
        inner: whole,
        hasher: Sha256::new(),
        skip: from,
        held: None,
        expected,
        mismatch,
        done: false,
    };
    futures::stream::unfold(state, |mut state| async move {
        loop {
            if state.done {
                return None;
            }
            match state.inner.next().await {
                Some(Ok(mut piece)) => {
                    state.hasher.update(&piece);
                    if state.skip > 0 {
                        let cut = usize::try_from(state.skip)
                            .unwrap_or(usize::MAX)
                            .min(piece.len());
                        state.skip -= cut as u64;
                        piece = piece.slice(cut..);
                    }
                    if piece.is_empty() {
                        continue;
                    }
                    if let Some(previous) = state.held.replace(piece) {
                        return Some((Ok(previous), state));
                    }
                }
                Some(Err(e)) => {
                    state.done = true;
                    return Some((Err(std::io::Error::other(e)), state));
                }
                None => {
                    state.done = true;
                    let actual =
                        Sha256Digest::from_bytes(std::mem::take(&mut state.hasher).finalize().into());
                    if actual != state.expected {
                        state.mismatch.set();
                        let e = std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            format!(
                                "checksum mismatch: the stored bytes hash to {actual}, the record says {}",
                                state.expected
                            ),
                        );
                        return Some((Err(e), state));
                    }
                    return state.held.take().map(|last| (Ok(last), state));
                }
            }
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::TryStreamExt;

    fn pieces(parts: &[&'static [u8]]) -> BoxStream<'static, Result<Bytes, BlobError>> {
        let parts: Vec<_> = parts.iter().map(|p| Ok(Bytes::from_static(p))).collect();
        futures::stream::iter(parts).boxed()
    }

    fn sha(data: &[u8]) -> Sha256Digest {
        Sha256Digest::from_bytes(Sha256::digest(data).into())
    }

    #[tokio::test]
    async fn matching_bytes_pass_whole_or_from_an_offset() {
        for (from, sent) in [(0, &b"hello world"[..]), (3, b"lo world"), (7, b"orld")] {
            let mismatch = Mismatch::default();
            let got: Vec<Bytes> = verified(
                pieces(&[b"hello", b" ", b"world"]),
                from,
                sha(b"hello world"),
                mismatch.clone(),
            )
            .try_collect()
            .await
            .unwrap();
            assert_eq!(got.concat(), sent, "from {from}");
            assert!(!mismatch.found());
        }
    }

    /// Bytes that differ end the stream with an error before the last piece, so the receiver
    /// never has them all.
    #[tokio::test]
    async fn differing_bytes_never_arrive_whole() {
        let mismatch = Mismatch::default();
        let mut stream = verified(
            pieces(&[b"hello", b" ", b"w0rld"]),
            0,
            sha(b"hello world"),
            mismatch.clone(),
        );
        let mut sent = Vec::new();
        let error = loop {
            match stream.next().await {
                Some(Ok(piece)) => sent.extend_from_slice(&piece),
                Some(Err(e)) => break e,
                None => panic!("the stream must fail"),
            }
        };
        assert_eq!(sent, b"hello ", "the last piece is held back");
        assert!(error.to_string().contains("checksum mismatch"), "{error}");
        assert!(mismatch.found());
        assert!(stream.next().await.is_none());
    }
}
