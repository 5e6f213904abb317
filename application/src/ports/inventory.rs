//! The inventory port: what the metadata says exists, for `filegate check` to hold against
//! what the blob store holds.

use std::future::Future;

use filegate_domain::{BlobPath, FileId, FileRecord};

use super::StoreError;

/// How many of the things an operator watches the metadata holds now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreCounts {
    /// Uploads open: not complete, expired or deleted.
    pub open_uploads: u64,
    /// File events not published yet.
    pub outbox_backlog: u64,
}

/// The complete files and the blob paths the metadata answers for.
pub trait InventoryStore: Clone + Send + Sync + 'static {
    /// The counts `/metrics` shows as gauges.
    fn counts(&self) -> impl Future<Output = Result<StoreCounts, StoreError>> + Send;

    /// Complete files that are not deleted, in file id order, after `after` (from the first
    /// when `None`), at most `limit`: a page of the whole list.
    fn live_files(
        &self,
        after: Option<FileId>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<FileRecord>, StoreError>> + Send;

    /// Whether a blob at this path belongs to something the metadata answers for: a complete
    /// file that is not deleted, or an open upload (a file of one chunk is written before its
    /// record).
    fn blob_path_known(
        &self,
        path: &BlobPath,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}
