//! The blob store port: block staging and committed blobs.

use std::future::Future;
use std::ops::Range;

use bytes::Bytes;
use filegate_domain::{BlobPath, BlockIndex};
use futures::stream::BoxStream;

use super::BlobError;

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

    /// Stages one block and answers its part id. The bytes are moved, not copied.
    fn stage_block(
        &self,
        path: &BlobPath,
        upload_id: &str,
        index: BlockIndex,
        data: Bytes,
    ) -> impl Future<Output = Result<String, BlobError>> + Send;

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
