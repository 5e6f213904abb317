//! Checksums of complete files computed after their commit, by reading the file back: for
//! files whose blocks did not arrive in order (the running digest of [`crate::digests`] could
//! not follow them), and for files stored before checksums existed. Serve runs
//! [`fill_checksums`] when a commit leaves a file without one and at every sweeper round;
//! `filegate check --repair` runs it over everything.

use filegate_domain::{BlobPath, FileRecord, Sha256Digest};
use futures::StreamExt;
use sha2::{Digest, Sha256};

use crate::housekeeping::SweepError;
use crate::ports::{BlobError, BlobStore, ChecksumStore, InventoryStore};

/// Why a stored file could not be hashed.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// The bytes are not the file the record describes: not something a checksum may paper
    /// over.
    #[error("the blob `{path}` holds {actual} bytes, but its record says {expected}")]
    SizeDiffers {
        path: BlobPath,
        expected: u64,
        actual: u64,
    },
}

/// The SHA-256 of a stored file's bytes, read back whole; refused when the blob's size is not
/// the record's.
pub async fn hash_file<B: BlobStore>(
    blobs: &B,
    file: &FileRecord,
) -> Result<Sha256Digest, HashError> {
    let mut read = blobs.read(&file.blob_path, None).await?;
    let mut hasher = Sha256::new();
    let mut actual = 0u64;
    while let Some(piece) = read.stream.next().await {
        let piece = piece?;
        actual += piece.len() as u64;
        hasher.update(&piece);
    }
    if actual != file.size {
        return Err(HashError::SizeDiffers {
            path: file.blob_path.clone(),
            expected: file.size,
            actual,
        });
    }
    Ok(Sha256Digest::from_bytes(hasher.finalize().into()))
}

/// What one pass of [`fill_checksums`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Filled {
    /// Files that got their checksum.
    pub filled: usize,
    /// Files that could not be hashed (logged): their bytes are missing or differ.
    pub failed: usize,
}

/// Hashes up to `limit` complete files without a checksum, newest first, and records each
/// checksum. A file that cannot be hashed is logged and left for `filegate check`.
pub async fn fill_checksums<M: ChecksumStore + InventoryStore, B: BlobStore>(
    store: &M,
    blobs: &B,
    limit: u32,
) -> Result<Filled, SweepError> {
    let mut done = Filled::default();
    for file in store.files_without_checksum(limit).await? {
        match hash_file(blobs, &file).await {
            Ok(digest) => {
                if store.set_checksum(file.id, &digest).await? {
                    done.filled += 1;
                }
            }
            // Deleted between the listing and the read: nothing to hash any more.
            Err(HashError::Blob(BlobError::NotFound(_)))
                if !store.blob_path_known(&file.blob_path).await? =>
            {
                tracing::debug!(file_id = %file.id, "a file was deleted before it was hashed");
            }
            Err(e) => {
                done.failed += 1;
                tracing::warn!(error = %e, file_id = %file.id, "a complete file could not be hashed");
            }
        }
    }
    Ok(done)
}
