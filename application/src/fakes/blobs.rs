//! An in-memory blob store, a fixed clock and predictable ids.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use filegate_domain::{ApiKeyId, BlobPath, BlockIndex, FileId};
use futures::StreamExt;
use uuid::Uuid;

use crate::ports::{BlobError, BlobRead, BlobStore, ChunkBody, Clock, IdSource, StagedPart};

#[derive(Debug, Default)]
struct BlobState {
    /// Staged parts by upload id, then part id.
    staged: HashMap<String, HashMap<String, Bytes>>,
    blobs: HashMap<String, Bytes>,
    commits: u32,
    reads: u32,
    /// Write times set by hand ([`InMemoryBlobs::set_modified`]); any other blob was
    /// written just now.
    modified: HashMap<String, chrono::DateTime<chrono::Utc>>,
    next: u64,
    /// The part lists (and sizes) commits were prepared for, and then committed, in turn.
    prepared: Vec<(Vec<String>, u64)>,
    committed: Vec<Vec<String>>,
}

/// A blob store in memory that can be told to fail its commits.
#[derive(Debug, Clone, Default)]
pub struct InMemoryBlobs {
    state: Arc<Mutex<BlobState>>,
    pub fail_commits: Arc<std::sync::atomic::AtomicBool>,
}

impl InMemoryBlobs {
    fn lock(&self) -> std::sync::MutexGuard<'_, BlobState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn blob(&self, path: &str) -> Option<Bytes> {
        self.lock().blobs.get(path).cloned()
    }

    pub fn commits(&self) -> u32 {
        self.lock().commits
    }

    /// The part lists and sizes [`BlobStore::prepare_commit`] was asked to prepare, in turn.
    pub fn prepared(&self) -> Vec<(Vec<String>, u64)> {
        self.lock().prepared.clone()
    }

    /// The part lists committed, in turn.
    pub fn committed_parts(&self) -> Vec<Vec<String>> {
        self.lock().committed.clone()
    }

    /// Blobs read so far (whole or a range).
    pub fn reads(&self) -> u32 {
        self.lock().reads
    }

    /// Replaces a committed blob's bytes behind the metadata's back, as a corrupt disk would.
    pub fn overwrite(&self, path: &str, data: Bytes) {
        self.lock().blobs.insert(path.to_owned(), data);
    }

    /// Makes a blob look written at `at`, as an old leftover would.
    pub fn set_modified(&self, path: &str, at: chrono::DateTime<chrono::Utc>) {
        self.lock().modified.insert(path.to_owned(), at);
    }

    /// Blobs there now.
    pub fn blob_count(&self) -> usize {
        self.lock().blobs.len()
    }

    /// Bytes staged and not yet discarded, across all uploads.
    pub fn staged_bytes(&self) -> u64 {
        self.lock()
            .staged
            .values()
            .flat_map(|parts| parts.values())
            .map(|part| part.len() as u64)
            .sum()
    }
}

impl BlobStore for InMemoryBlobs {
    async fn ping(&self) -> Result<(), BlobError> {
        Ok(())
    }

    async fn begin(&self, _path: &BlobPath) -> Result<String, BlobError> {
        let mut state = self.lock();
        state.next += 1;
        let upload_id = format!("upload-{}", state.next);
        state.staged.insert(upload_id.clone(), HashMap::new());
        Ok(upload_id)
    }

    async fn stage_block(
        &self,
        _path: &BlobPath,
        upload_id: &str,
        _index: BlockIndex,
        _total: filegate_domain::TotalBlocks,
        body: ChunkBody,
    ) -> Result<StagedPart, BlobError> {
        let (data, _held) = body.collect(usize::MAX).await.map_err(BlobError::Body)?;
        // Yield so that racing requests really interleave.
        tokio::task::yield_now().await;
        let mut state = self.lock();
        state.next += 1;
        let part_id = format!("{:032x}", state.next);
        let size = data.len() as u64;
        state
            .staged
            .get_mut(upload_id)
            .ok_or_else(|| BlobError::NotFound(format!("upload {upload_id}")))?
            .insert(part_id.clone(), data);
        Ok(StagedPart { part_id, size })
    }

    async fn put(&self, path: &BlobPath, body: ChunkBody) -> Result<u64, BlobError> {
        let (data, _held) = body.collect(usize::MAX).await.map_err(BlobError::Body)?;
        tokio::task::yield_now().await;
        if self.fail_commits.load(Ordering::SeqCst) {
            return Err(BlobError::Unavailable(anyhow::anyhow!("injected failure")));
        }
        let size = data.len() as u64;
        let mut state = self.lock();
        state.blobs.insert(path.as_str().to_owned(), data);
        state.commits += 1;
        Ok(size)
    }

    async fn commit(
        &self,
        path: &BlobPath,
        upload_id: &str,
        part_ids: Vec<String>,
        size: u64,
    ) -> Result<(), BlobError> {
        tokio::task::yield_now().await;
        if self.fail_commits.load(Ordering::SeqCst) {
            return Err(BlobError::Unavailable(anyhow::anyhow!("injected failure")));
        }
        let mut state = self.lock();
        let mut whole = Vec::new();
        for id in &part_ids {
            let Some(part) = state.staged.get(upload_id).and_then(|parts| parts.get(id)) else {
                // As on the real stores: parts gone, and the blob there with exactly `size`
                // bytes, is a commit that already happened.
                return match state.blobs.get(path.as_str()) {
                    Some(blob) if blob.len() as u64 == size => Ok(()),
                    _ => Err(BlobError::Unknown(anyhow::anyhow!("unknown part {id}"))),
                };
            };
            whole.extend_from_slice(part);
        }
        state
            .blobs
            .insert(path.as_str().to_owned(), Bytes::from(whole));
        state.commits += 1;
        state.committed.push(part_ids);
        Ok(())
    }

    async fn prepare_commit(
        &self,
        _path: &BlobPath,
        _upload_id: &str,
        part_ids: &[String],
        size: u64,
    ) -> Result<(), BlobError> {
        self.lock().prepared.push((part_ids.to_vec(), size));
        Ok(())
    }

    async fn discard_staging(&self, upload_id: &str) -> Result<(), BlobError> {
        self.lock().staged.remove(upload_id);
        Ok(())
    }

    /// Every upload with a staging, whatever its age: the fake keeps no times.
    async fn stale_staging(
        &self,
        _older_than: std::time::Duration,
    ) -> Result<Vec<String>, BlobError> {
        Ok(self.lock().staged.keys().cloned().collect())
    }

    async fn discard_part(
        &self,
        _path: &BlobPath,
        upload_id: &str,
        part_id: &str,
    ) -> Result<(), BlobError> {
        if let Some(parts) = self.lock().staged.get_mut(upload_id) {
            parts.remove(part_id);
        }
        Ok(())
    }

    async fn read(
        &self,
        path: &BlobPath,
        range: Option<Range<u64>>,
    ) -> Result<BlobRead, BlobError> {
        let blob = self
            .blob(path.as_str())
            .ok_or_else(|| BlobError::NotFound(path.to_string()))?;
        self.lock().reads += 1;
        let size = blob.len() as u64;
        let range = range.unwrap_or(0..size);
        let part = blob.slice(range.start as usize..range.end as usize);
        Ok(BlobRead {
            size,
            range,
            stream: futures::stream::once(async move { Ok(part) }).boxed(),
        })
    }

    async fn list_blobs(&self) -> Result<Vec<crate::ports::ListedBlob>, BlobError> {
        let state = self.lock();
        let mut listed: Vec<_> = state
            .blobs
            .iter()
            .map(|(path, data)| crate::ports::ListedBlob {
                path: BlobPath::from_stored(path.clone()),
                size: data.len() as u64,
                modified: state
                    .modified
                    .get(path)
                    .copied()
                    .unwrap_or_else(chrono::Utc::now),
            })
            .collect();
        listed.sort_by(|a, b| a.path.as_str().cmp(b.path.as_str()));
        Ok(listed)
    }

    async fn delete(&self, path: &BlobPath) -> Result<(), BlobError> {
        self.lock().blobs.remove(path.as_str());
        Ok(())
    }

    fn location(&self, path: &BlobPath) -> String {
        format!("memory://{path}")
    }

    async fn share_url(&self, path: &BlobPath) -> Result<Option<String>, BlobError> {
        Ok(Some(self.location(path)))
    }
}

#[derive(Debug, Clone, Default)]
pub struct FixedClock;

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH
    }
}

/// Sequential ids, so that tests can predict them.
#[derive(Debug, Clone, Default)]
pub struct SeqIds(Arc<AtomicU64>);

impl IdSource for SeqIds {
    fn file_id(&self) -> FileId {
        FileId::from_uuid(Uuid::from_u128(u128::from(
            self.0.fetch_add(1, Ordering::SeqCst) + 1,
        )))
    }

    fn api_key_id(&self) -> ApiKeyId {
        ApiKeyId::from_uuid(Uuid::from_u128(u128::from(
            self.0.fetch_add(1, Ordering::SeqCst) + 1,
        )))
    }

    fn secret(&self) -> [u8; 32] {
        let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
        let mut s = [0u8; 32];
        s[..8].copy_from_slice(&n.to_be_bytes());
        s
    }
}
