//! Keeping storage from growing with what nobody uses any more: the staging that no open
//! upload uses (a crash between a commit's record and the staging's removal leaves it behind,
//! and so does a first block whose session was never stored), and the temporary files of
//! writes a crash cut off. Serve's sweeper runs [`sweep_leftovers`] at start and every round.

use std::time::Duration;

use crate::ports::{BlobError, BlobStore, StoreError, UploadStore};

/// How long a staging must have been left alone before it may be taken for a leftover: far
/// longer than any block takes to arrive (a body that stalls is cut off after the idle
/// timeout), so that the staging of a first block still arriving, whose session is stored only
/// once the block is staged, is never taken for one.
pub const STALE_STAGING_AFTER: Duration = Duration::from_secs(3600);

/// How old a temporary file must be to count as a crash's leftover: far longer than any write
/// takes, so that another process's write in progress (on a shared folder) is never taken for
/// one.
pub const STALE_TEMPORARY_AFTER: Duration = Duration::from_secs(600);

/// What one sweep of leftovers removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Leftovers {
    /// Uploads whose staging went.
    pub staging: usize,
    /// Temporary files that went.
    pub temporaries: usize,
}

impl Leftovers {
    pub fn is_empty(&self) -> bool {
        self.staging == 0 && self.temporaries == 0
    }
}

/// Removes the staging no open upload uses and the temporary files of cut-off writes, each
/// once it is older than its threshold ([`STALE_STAGING_AFTER`], [`STALE_TEMPORARY_AFTER`]).
pub async fn sweep_leftovers<M: UploadStore, B: BlobStore>(
    store: &M,
    blobs: &B,
) -> Result<Leftovers, SweepError> {
    let staging = sweep_staging(store, blobs, STALE_STAGING_AFTER).await?;
    let temporaries = blobs.sweep_temporaries(STALE_TEMPORARY_AFTER).await?;
    Ok(Leftovers {
        staging,
        temporaries,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Removes the staging of every upload that no open session uses and that has been left alone
/// for `older_than`, and answers how many went.
pub async fn sweep_staging<M: UploadStore, B: BlobStore>(
    store: &M,
    blobs: &B,
    older_than: Duration,
) -> Result<usize, SweepError> {
    let mut removed = 0;
    for upload_id in blobs.stale_staging(older_than).await? {
        if store.upload_is_open(&upload_id).await? {
            continue;
        }
        blobs.discard_staging(&upload_id).await?;
        removed += 1;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::{FixedClock, InMemoryBlobs, InMemoryStore, SeqIds};
    use crate::keys::Principal;
    use crate::uploads::{ChunkCommand, Uploads};
    use bytes::Bytes;
    use filegate_domain::{ApiKeyId, FileId, FirmId, Mode, UserId};
    use uuid::Uuid;

    fn chunk(file_id: Option<FileId>, index: i64, data: &'static [u8]) -> ChunkCommand {
        ChunkCommand {
            file_id,
            block_index: index,
            total_blocks: 2,
            mode: Mode::Message,
            file_name: Some("a.pdf".into()),
            content_type: Some("application/pdf".into()),
            data: Bytes::from_static(data).into(),
            chunk_sha256: None,
        }
    }

    #[tokio::test]
    async fn the_sweep_keeps_open_uploads_and_removes_every_other_staging() {
        let (store, blobs) = (InMemoryStore::default(), InMemoryBlobs::default());
        let svc = Uploads::new(store.clone(), blobs.clone(), FixedClock, SeqIds::default());
        let who = Principal {
            key: ApiKeyId::from_uuid(Uuid::from_u128(1)),
            firm: FirmId::from_uuid(Uuid::from_u128(2)),
            user: UserId::from_uuid(Uuid::from_u128(3)),
        };
        svc.upload_chunk(who, chunk(None, 0, b"open"))
            .await
            .unwrap();
        // A staging no session uses: a first block whose session was never stored.
        let orphan = blobs
            .begin(&filegate_domain::BlobPath::from_stored("x/y/z".into()))
            .await
            .unwrap();
        blobs
            .stage_block(
                &filegate_domain::BlobPath::from_stored("x/y/z".into()),
                &orphan,
                filegate_domain::BlockIndex::FIRST,
                filegate_domain::TotalBlocks::new(1).unwrap(),
                Bytes::from_static(b"lost").into(),
            )
            .await
            .unwrap();
        assert_eq!(blobs.staged_bytes(), 8);
        let removed = sweep_staging(&store, &blobs, Duration::ZERO).await.unwrap();
        assert_eq!(removed, 1);
        assert_eq!(blobs.staged_bytes(), 4, "the open upload's block stays");
        assert_eq!(
            sweep_staging(&store, &blobs, Duration::ZERO).await.unwrap(),
            0,
            "a second sweep finds nothing"
        );
    }
}
