//! The blob store port: block staging and committed blobs.

use std::future::Future;
use std::ops::Range;

use bytes::Bytes;
use filegate_domain::{BlobPath, BlockIndex};
use futures::stream::BoxStream;

use futures::StreamExt;

use super::{BlobError, StagedPart};

/// Why a chunk's bytes stopped arriving, as the driving adapter saw it. The blob store passes
/// it on untouched ([`BlobError::Body`]), so that the client learns what it did.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// More bytes than a limit allows (the chunk limit, the mode's size cap).
    #[error("{0}")]
    TooLarge(String),
    /// The body broke a rule of the form (malformed framing, an empty chunk, a field after the
    /// file).
    #[error("{0}")]
    Invalid(String),
    /// No byte arrived for longer than the idle timeout.
    #[error("no byte of the request body arrived for {0} seconds")]
    Stalled(u64),
    /// The connection broke before the body was complete.
    #[error("the request body was cut off: {0}")]
    Broken(String),
}

/// A chunk's bytes as they arrive from the client. A store reads it as it stages, so that a
/// request holds a bounded buffer rather than the whole chunk.
pub struct ChunkBody(BoxStream<'static, Result<Bytes, BodyError>>);

impl ChunkBody {
    pub fn new(stream: BoxStream<'static, Result<Bytes, BodyError>>) -> Self {
        Self(stream)
    }

    /// The next piece; `None` once the body is complete.
    pub async fn next(&mut self) -> Option<Result<Bytes, BodyError>> {
        self.0.next().await
    }

    /// The whole body in one buffer, for stores that take a block as one payload; at most
    /// `limit` bytes are collected (a longer body is [`BodyError::TooLarge`]). A body that
    /// arrives as one piece is handed on without a copy.
    pub async fn collect(mut self, limit: usize) -> Result<Bytes, BodyError> {
        let mut first: Option<Bytes> = None;
        let mut joined: Option<bytes::BytesMut> = None;
        let mut len = 0usize;
        while let Some(piece) = self.next().await {
            let piece = piece?;
            len += piece.len();
            if len > limit {
                return Err(BodyError::TooLarge(format!(
                    "the chunk is larger than {limit} bytes"
                )));
            }
            match (&first, &mut joined) {
                (None, _) => first = Some(piece),
                (Some(head), None) => {
                    let mut buf = bytes::BytesMut::with_capacity(len);
                    buf.extend_from_slice(head);
                    buf.extend_from_slice(&piece);
                    joined = Some(buf);
                }
                (Some(_), Some(buf)) => buf.extend_from_slice(&piece),
            }
        }
        Ok(match joined {
            Some(buf) => buf.freeze(),
            None => first.unwrap_or_default(),
        })
    }

    /// The stream, for adapters that pipe it on.
    pub fn into_stream(self) -> BoxStream<'static, Result<Bytes, BodyError>> {
        self.0
    }
}

impl From<Bytes> for ChunkBody {
    fn from(data: Bytes) -> Self {
        Self(futures::stream::once(async move { Ok(data) }).boxed())
    }
}

impl From<&'static [u8]> for ChunkBody {
    fn from(data: &'static [u8]) -> Self {
        Bytes::from_static(data).into()
    }
}

impl std::fmt::Debug for ChunkBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChunkBody")
    }
}

/// A blob being read: its full size and the requested bytes as a stream.
pub struct BlobRead {
    pub size: u64,
    pub range: Range<u64>,
    pub stream: BoxStream<'static, Result<Bytes, BlobError>>,
}

impl std::fmt::Debug for BlobRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobRead")
            .field("size", &self.size)
            .field("range", &self.range)
            .finish()
    }
}

/// Block staging and committed blobs.
pub trait BlobStore: Clone + Send + Sync + 'static {
    /// Answers whether the store is reachable and its container exists.
    fn ping(&self) -> impl Future<Output = Result<(), BlobError>> + Send;

    /// Prepares staging for a new file; answers the store's upload id (may be empty).
    fn begin(&self, path: &BlobPath) -> impl Future<Output = Result<String, BlobError>> + Send;

    /// Stages one block from its bytes as they arrive and answers its part id and size. A
    /// block is durable once this answers; when the body fails ([`BlobError::Body`]) or the
    /// store does, nothing of the block is kept under a part id anyone was given.
    fn stage_block(
        &self,
        path: &BlobPath,
        upload_id: &str,
        index: BlockIndex,
        body: ChunkBody,
    ) -> impl Future<Output = Result<StagedPart, BlobError>> + Send;

    /// Commits the staged parts in the given order as the blob at `path`, atomically: the blob
    /// either appears whole or not at all. `size` is the expected total, used to recognise a
    /// commit that already happened before a crash.
    fn commit(
        &self,
        path: &BlobPath,
        upload_id: &str,
        part_ids: Vec<String>,
        size: u64,
    ) -> impl Future<Output = Result<(), BlobError>> + Send;

    /// Streams a committed blob, whole or a byte range of it.
    fn read(
        &self,
        path: &BlobPath,
        range: Option<Range<u64>>,
    ) -> impl Future<Output = Result<BlobRead, BlobError>> + Send;

    fn delete(&self, path: &BlobPath) -> impl Future<Output = Result<(), BlobError>> + Send;

    /// The blob's plain address, stored in the file record.
    fn location(&self, path: &BlobPath) -> String;

    /// The address handed to clients: the plain one, or a read-only signed one with an expiry
    /// when the container is private. `None` when the store has no address of its own that a
    /// client could use (the local file system): clients then read the file through the
    /// service's content route.
    fn share_url(
        &self,
        path: &BlobPath,
    ) -> impl Future<Output = Result<Option<String>, BlobError>> + Send;
}
