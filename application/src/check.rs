//! `filegate check`: the metadata held against the blob store, for an operator who must
//! answer for both. It finds records whose bytes are missing or of another size, bytes that no
//! record answers for, staging that no open upload uses, and complete files without a
//! checksum; with `repair` it fixes what is safe to fix: it removes the bytes and the staging
//! nobody answers for, and fills in the checksums. A record without its bytes is only
//! reported: its bytes may come back (a restored backup), and deleting the record would hide
//! the loss.

use std::time::Duration;

use chrono::{DateTime, Utc};
use filegate_domain::{BlobPath, FileId};

use crate::checksums::{HashError, hash_file};
use crate::housekeeping::SweepError;
use crate::ports::{BlobError, BlobStore, ChecksumStore, InventoryStore, UploadStore};

/// Bytes or staging younger than this may belong to an upload still arriving (a file of one
/// chunk is written before its record; staging exists before its session): not findings.
pub const MIN_AGE: Duration = Duration::from_secs(3600);

/// How many records are read at a time.
const PAGE: u32 = 500;

/// One inconsistency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// A complete file whose blob is not there.
    RecordWithoutBytes { file: FileId, path: BlobPath },
    /// A complete file whose blob has another size than its record says.
    SizeDiffers {
        file: FileId,
        path: BlobPath,
        recorded: u64,
        stored: u64,
    },
    /// A blob, older than [`MIN_AGE`], that no complete file or open upload answers for.
    BytesWithoutRecord { path: BlobPath, size: u64 },
    /// Staging, untouched for [`MIN_AGE`], that no open upload uses.
    StagingWithoutSession { upload_id: String },
    /// A complete file whose checksum is not known (not an inconsistency by itself: a file
    /// committed out of order gets its checksum moments later).
    MissingChecksum { file: FileId },
}

impl Finding {
    /// Whether `--repair` fixes it.
    pub fn repairable(&self) -> bool {
        !matches!(
            self,
            Finding::RecordWithoutBytes { .. } | Finding::SizeDiffers { .. }
        )
    }

    /// Whether it makes `check` fail: everything but a missing checksum.
    pub fn is_inconsistency(&self) -> bool {
        !matches!(self, Finding::MissingChecksum { .. })
    }
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Finding::RecordWithoutBytes { file, path } => {
                write!(f, "record-without-bytes file={file} path={path}")
            }
            Finding::SizeDiffers {
                file,
                path,
                recorded,
                stored,
            } => write!(
                f,
                "size-differs file={file} path={path} recorded={recorded} stored={stored}"
            ),
            Finding::BytesWithoutRecord { path, size } => {
                write!(f, "bytes-without-record path={path} size={size}")
            }
            Finding::StagingWithoutSession { upload_id } => {
                write!(f, "staging-without-session upload={upload_id}")
            }
            Finding::MissingChecksum { file } => write!(f, "missing-checksum file={file}"),
        }
    }
}

/// What a check found, and what it repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    pub findings: Vec<Finding>,
    /// The findings `repair` fixed (a subset of `findings`).
    pub repaired: Vec<Finding>,
}

impl CheckReport {
    /// The inconsistencies left: found and not repaired.
    pub fn unresolved(&self) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .filter(|f| f.is_inconsistency() && !self.repaired.contains(f))
    }
}

/// Checks the whole store; with `repair`, fixes what is safe to fix. `now` is the time ages
/// count from.
pub async fn check<M, B>(
    store: &M,
    blobs: &B,
    repair: bool,
    now: DateTime<Utc>,
) -> Result<CheckReport, SweepError>
where
    M: InventoryStore + UploadStore + ChecksumStore,
    B: BlobStore,
{
    let mut report = CheckReport::default();
    // Records against bytes.
    let mut after = None;
    loop {
        let page = store.live_files(after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        for file in page {
            let stored = match blobs.read(&file.blob_path, Some(0..0)).await {
                Ok(read) => read.size,
                Err(BlobError::NotFound(_)) => {
                    report.findings.push(Finding::RecordWithoutBytes {
                        file: file.id,
                        path: file.blob_path.clone(),
                    });
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            if stored != file.size {
                report.findings.push(Finding::SizeDiffers {
                    file: file.id,
                    path: file.blob_path.clone(),
                    recorded: file.size,
                    stored,
                });
                continue;
            }
            if file.sha256.is_some() {
                continue;
            }
            let finding = Finding::MissingChecksum { file: file.id };
            report.findings.push(finding.clone());
            if repair {
                match hash_file(blobs, &file).await {
                    Ok(digest) => {
                        store.set_checksum(file.id, &digest).await?;
                        report.repaired.push(finding);
                    }
                    // Changed under us; the next check sees it.
                    Err(HashError::SizeDiffers { .. }) => {}
                    Err(HashError::Blob(e)) => return Err(e.into()),
                }
            }
        }
    }
    // Bytes against records.
    let old = crate::system::earlier(now, MIN_AGE);
    for blob in blobs.list_blobs().await? {
        if blob.modified > old || store.blob_path_known(&blob.path).await? {
            continue;
        }
        let finding = Finding::BytesWithoutRecord {
            path: blob.path.clone(),
            size: blob.size,
        };
        report.findings.push(finding.clone());
        if repair {
            blobs.delete(&blob.path).await?;
            report.repaired.push(finding);
        }
    }
    // Staging against sessions.
    for upload_id in blobs.stale_staging(MIN_AGE).await? {
        if store.upload_is_open(&upload_id).await? {
            continue;
        }
        let finding = Finding::StagingWithoutSession {
            upload_id: upload_id.clone(),
        };
        report.findings.push(finding.clone());
        if repair {
            blobs.discard_staging(&upload_id).await?;
            report.repaired.push(finding);
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use filegate_domain::Mode;

    use super::*;
    use crate::fakes::{FixedClock, InMemoryBlobs, InMemoryStore, SeqIds};
    use crate::uploads::{ChunkCommand, Uploads};

    fn who() -> crate::keys::Principal {
        crate::fakes::principal(2)
    }

    fn chunk(file_id: Option<FileId>, index: i64, total: i64, data: &'static [u8]) -> ChunkCommand {
        crate::fakes::chunk_of(Mode::Import, file_id, index, total, data)
    }

    /// Each inconsistency made by hand is found; a repair fixes all but the record without
    /// bytes, and a second check finds only that one.
    #[tokio::test]
    async fn every_inconsistency_is_found_and_the_safe_ones_repaired() {
        let (store, blobs) = (InMemoryStore::default(), InMemoryBlobs::default());
        let svc = Uploads::new(store.clone(), blobs.clone(), FixedClock, SeqIds::default());
        let good = svc
            .upload_chunk(who(), chunk(None, 0, 1, b"good"))
            .await
            .unwrap();
        let lost = svc
            .upload_chunk(who(), chunk(None, 0, 1, b"lost"))
            .await
            .unwrap();
        let short = svc
            .upload_chunk(who(), chunk(None, 0, 1, b"short"))
            .await
            .unwrap();
        // Out of order: committed without its checksum.
        let first = svc
            .upload_chunk(who(), chunk(None, 0, 3, b"a"))
            .await
            .unwrap();
        svc.upload_chunk(who(), chunk(Some(first.file_id), 2, 3, b"c"))
            .await
            .unwrap();
        svc.upload_chunk(who(), chunk(Some(first.file_id), 1, 3, b"b"))
            .await
            .unwrap();
        let open = svc
            .upload_chunk(who(), chunk(None, 0, 2, b"o"))
            .await
            .unwrap();
        let path_of = |id: FileId| {
            let store = store.clone();
            async move {
                store
                    .find_session(who().firm, id)
                    .await
                    .unwrap()
                    .unwrap()
                    .session
                    .blob_path
            }
        };
        blobs.delete(&path_of(lost.file_id).await).await.unwrap();
        blobs.overwrite(
            path_of(short.file_id).await.as_str(),
            Bytes::from_static(b"sh"),
        );
        let orphan = BlobPath::from_stored("imports/x/y/orphan.csv".into());
        blobs
            .put(&orphan, Bytes::from_static(b"nobody").into())
            .await
            .unwrap();
        blobs.set_modified(orphan.as_str(), Utc::now() - chrono::Duration::hours(2));
        // Young: may be a file of one chunk whose record is being written.
        let young = BlobPath::from_stored("imports/x/y/young.csv".into());
        blobs
            .put(&young, Bytes::from_static(b"young").into())
            .await
            .unwrap();
        let stray = blobs.begin(&orphan).await.unwrap();

        let report = check(&store, &blobs, false, Utc::now()).await.unwrap();
        let found: Vec<String> = report.findings.iter().map(ToString::to_string).collect();
        let expected = [
            format!("record-without-bytes file={}", lost.file_id),
            format!("size-differs file={}", short.file_id),
            format!("missing-checksum file={}", first.file_id),
            "bytes-without-record path=imports/x/y/orphan.csv size=6".to_owned(),
            format!("staging-without-session upload={stray}"),
        ];
        for want in &expected {
            assert!(
                found.iter().any(|f| f.starts_with(want.as_str())),
                "{want} in {found:#?}"
            );
        }
        assert_eq!(found.len(), expected.len(), "{found:#?}");
        assert!(
            report.repaired.is_empty(),
            "a check without repair changes nothing"
        );
        assert_eq!(report.unresolved().count(), 4);
        assert!(!found.iter().any(|f| f.contains(&good.file_id.to_string())));
        assert!(!found.iter().any(|f| f.contains(&open.file_id.to_string())));

        let repaired = check(&store, &blobs, true, Utc::now()).await.unwrap();
        assert_eq!(repaired.repaired.len(), 3);
        let left: Vec<String> = repaired.unresolved().map(ToString::to_string).collect();
        assert_eq!(left.len(), 2, "{left:?}");
        assert!(
            blobs.blob(orphan.as_str()).is_none(),
            "the orphan blob is gone"
        );
        assert!(blobs.blob(young.as_str()).is_some(), "the young one stays");
        let again = check(&store, &blobs, false, Utc::now()).await.unwrap();
        let left: Vec<String> = again.findings.iter().map(ToString::to_string).collect();
        assert_eq!(
            left.len(),
            2,
            "only the record without bytes and the short file: {left:?}"
        );
        let status = svc.file_status(who(), first.file_id).await.unwrap();
        assert!(status.sha256.is_some(), "the checksum was filled in");
    }
}
