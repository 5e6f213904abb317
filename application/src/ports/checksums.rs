//! The checksum port: complete files whose SHA-256 is not known yet, and a place to put it.

use std::future::Future;

use filegate_domain::{FileId, FileRecord, Sha256Digest};

use super::StoreError;

/// Checksums of complete files, filled in after their commit.
pub trait ChecksumStore: Clone + Send + Sync + 'static {
    /// Complete files, not deleted, whose checksum is not known, newest first (a file just
    /// committed is hashed before one whose bytes are missing, which would fail again), at
    /// most `limit`.
    fn files_without_checksum(
        &self,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<FileRecord>, StoreError>> + Send;

    /// Records a file's checksum unless it has one already; answers whether it did.
    fn set_checksum(
        &self,
        file: FileId,
        digest: &Sha256Digest,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}
