//! Uploading a file in chunks, and reading where an upload stands.
//!
//! Block 0 without a `FileId` opens a session; every block is staged in the blob store first
//! and recorded in the metadata store second, so a recorded block is always really staged.
//! Completion is decided by [`crate::completion`] under the session's lock, with the commit
//! inside that decision, which is what makes the commit happen exactly once.

use std::num::NonZeroU32;
use std::ops::Range;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use filegate_domain::{
    BlobPath, BlockRuleError, ChunkMismatch, ExpiryPolicy, FileId, FileName, FileRecord,
    FileTooLarge, FirmId, Format, Hint, MediaType, Mode, RangeSpec, SNIFF_BYTES, SessionState,
    Sha256Digest, SizeCaps, TotalBlocks, TypeNotAllowed, Unsatisfiable, UploadSession,
    admit_format, sniff,
};
use futures::StreamExt;
use futures::stream::BoxStream;

use crate::completion::{self, BlockOutcome, CommitPlan, RecordError};
use crate::digests::{self, Candidate, RunningDigests};
use crate::housekeeping::SweepError;
use crate::inflight::{Hold, InFlight};
use crate::keys::Principal;
use crate::ports::{
    BlobError, BlobStore, BodyError, ChunkBody, Clock, DeletionStore, IdSource, Metrics, NoMetrics,
    SessionSnapshot, StagedBlock, StagedPart, UploadStore,
};

/// One chunk as received, before any rule is checked. Numbers are kept wide so that an
/// out-of-range value is reported as such rather than as a parse failure.
#[derive(Debug)]
pub struct ChunkCommand {
    pub file_id: Option<FileId>,
    pub block_index: i64,
    pub total_blocks: i64,
    pub mode: Mode,
    /// The part's filename as the client sent it (sanitized here).
    pub file_name: Option<String>,
    /// The part's declared content type.
    pub content_type: Option<String>,
    /// The chunk's bytes, as they arrive.
    pub data: ChunkBody,
    /// The SHA-256 the client declared for the chunk's bytes (`ChunkSha256`); a chunk that
    /// does not match is refused and nothing of it is kept.
    pub chunk_sha256: Option<Sha256Digest>,
}

/// What a client learns after a chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkReceipt {
    pub file_id: FileId,
    pub is_complete: bool,
    /// The blob store's own address for the file, once complete; `None` also when the store
    /// has none (then the content route serves it).
    pub url: Option<String>,
    pub received_blocks: u32,
    pub total_blocks: u32,
    /// When the upload expires unless another chunk arrives; `None` once complete.
    pub expires_at: Option<DateTime<Utc>>,
    /// The complete file's SHA-256, when it is known already (blocks that arrived in order).
    pub sha256: Option<Sha256Digest>,
}

/// The largest upload whose status lists every received and missing index.
pub const LISTED_BLOCKS_MAX: u32 = 1000;

/// The received and missing indices of an upload, ascending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockLists {
    pub received: Vec<u32>,
    pub missing: Vec<u32>,
}

/// Where an upload stands, for a client that wants to resume it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStatus {
    pub file_id: FileId,
    pub mode: Mode,
    pub file_name: String,
    pub content_type: String,
    pub is_complete: bool,
    pub url: Option<String>,
    pub total_blocks: u32,
    pub received_count: u32,
    /// The indices received and missing, ascending; only for an upload of at most
    /// [`LISTED_BLOCKS_MAX`] blocks (a larger one's lists would be hundreds of KB).
    pub lists: Option<BlockLists>,
    /// The missing indices as runs `[first, last]`, inclusive: always, and compact.
    pub missing_ranges: Vec<[u32; 2]>,
    /// Bytes staged so far, or the file's size once complete.
    pub size: u64,
    /// When the upload expires unless a chunk arrives; `None` once complete.
    pub expires_at: Option<DateTime<Utc>>,
    /// The complete file's SHA-256, once known.
    pub sha256: Option<Sha256Digest>,
}

#[derive(Debug, thiserror::Error)]
pub enum UploadChunkError {
    /// A request field breaks a rule; `field` is its name on the wire.
    #[error("{field}: {message}")]
    InvalidField {
        field: &'static str,
        message: String,
    },
    #[error("no upload with FileId {0} exists for this firm")]
    NotFound(FileId),
    #[error("{}", gone(.0))]
    Gone(FileId),
    /// The firm has as many open uploads as it may; a new one can start once one of them
    /// completes, is deleted, or expires (in `retry_after`).
    #[error(
        "this firm already has {limit} open uploads, as many as it may (limits.open_uploads_per_firm): \
         complete or delete one, or retry in {} s, when the next one expires",
        retry_after.as_secs()
    )]
    TooManyOpenUploads { limit: u32, retry_after: Duration },
    #[error("{0}")]
    Conflict(#[from] ChunkMismatch),
    /// The file is larger than its mode allows.
    #[error("{0}")]
    TooLarge(#[from] FileTooLarge),
    /// Block 0's bytes are not a format the mode takes.
    #[error("{0}")]
    TypeNotAllowed(#[from] TypeNotAllowed),
    /// The chunk's bytes stopped arriving or broke a rule while they were staged.
    #[error(transparent)]
    Body(BodyError),
    #[error("a backend is unavailable")]
    Unavailable(#[source] anyhow::Error),
    #[error(transparent)]
    Unknown(anyhow::Error),
}

/// A committed file being read, whole or a range of it.
pub struct FileContent {
    pub file: FileRecord,
    /// A strong validator: a committed file never changes, so its id and size identify its bytes.
    pub etag: String,
    /// The bytes being sent.
    pub range: Range<u64>,
    /// Whether a range was asked for (206) or the whole file is sent (200).
    pub partial: bool,
    pub stream: BoxStream<'static, Result<Bytes, BlobError>>,
}

impl std::fmt::Debug for FileContent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileContent")
            .field("file", &self.file.id)
            .field("range", &self.range)
            .field("partial", &self.partial)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    #[error("no file with id {0} exists for this firm")]
    NotFound(FileId),
    #[error("{}", gone(.0))]
    Gone(FileId),
    #[error("the upload of file {0} is not complete yet; its status lists the missing blocks")]
    NotComplete(FileId),
    #[error(transparent)]
    RangeNotSatisfiable(#[from] Unsatisfiable),
    #[error("a backend is unavailable")]
    Unavailable(#[source] anyhow::Error),
    #[error(transparent)]
    Unknown(anyhow::Error),
}

#[derive(Debug, thiserror::Error)]
pub enum FileStatusError {
    #[error("no file with id {0} exists for this firm")]
    NotFound(FileId),
    #[error("{}", gone(.0))]
    Gone(FileId),
    #[error("a backend is unavailable")]
    Unavailable(#[source] anyhow::Error),
    #[error(transparent)]
    Unknown(anyhow::Error),
}

#[derive(Debug, thiserror::Error)]
pub enum DeleteFileError {
    #[error("no file with id {0} exists for this firm")]
    NotFound(FileId),
    #[error("a backend is unavailable")]
    Unavailable(#[source] anyhow::Error),
    #[error(transparent)]
    Unknown(anyhow::Error),
}

crate::backend::classified_backend_errors!(
    UploadChunkError,
    FileStatusError,
    ContentError,
    DeleteFileError
);

impl<M: UploadStore + DeletionStore, B: BlobStore, C: Clock, I: IdSource> Uploads<M, B, C, I> {
    /// Deletes a file of this firm, complete or still open: its record becomes a tombstone
    /// (everything about it answers 404 from then on) and a `file.deleted` event goes to the
    /// outbox in the same transaction; then its bytes go, the blob and anything staged. A
    /// crash before the bytes are gone leaves them without a record, for `filegate check`.
    #[tracing::instrument(skip_all, fields(firm = %who.firm, file_id = %id))]
    pub async fn delete_file(&self, who: Principal, id: FileId) -> Result<(), DeleteFileError> {
        let snapshot = self
            .store
            .find_session(who.firm, id)
            .await?
            .filter(|s| s.session.state != SessionState::Deleted)
            .ok_or(DeleteFileError::NotFound(id))?;
        let session = snapshot.session;
        let event = crate::events::file_deleted(&session);
        if !self.store.mark_deleted(who.firm, id, &event).await? {
            // Another request deleted it first.
            return Err(DeleteFileError::NotFound(id));
        }
        tracing::info!(file_id = %id, "file deleted");
        self.digests.forget(id);
        if let Err(e) = self.blobs.delete(&session.blob_path).await {
            tracing::warn!(error = %e, file_id = %id, "a deleted file's blob could not be removed");
        }
        if !session.upload_id.is_empty()
            && let Err(e) = self.blobs.discard_staging(&session.upload_id).await
        {
            tracing::warn!(error = %e, file_id = %id, "a deleted upload's blocks could not be discarded");
        }
        Ok(())
    }
}

/// What a client is told about an upload the sweeper expired.
fn gone(id: &FileId) -> String {
    format!(
        "the upload of file {id} expired: no chunk arrived for longer than its mode allows, and \
         its blocks are gone; start a new upload"
    )
}

/// The upload use cases, generic over their ports.
#[derive(Debug, Clone)]
pub struct Uploads<M, B, C, I> {
    store: M,
    blobs: B,
    clock: C,
    ids: I,
    caps: SizeCaps,
    expiry: ExpiryPolicy,
    in_flight: InFlight,
    open_limit: Option<NonZeroU32>,
    digests: RunningDigests,
    /// Woken when a file is committed without its checksum, to hash it soon.
    checksum_wakeups: Option<futures::channel::mpsc::Sender<()>>,
    metrics: std::sync::Arc<dyn Metrics>,
}

/// The longest a client over its open-upload quota is told to wait: the next expiry may be a
/// day away, but a completed or deleted upload frees a place sooner.
pub const MAX_QUOTA_WAIT: Duration = Duration::from_secs(3600);

impl<M: UploadStore, B: BlobStore, C: Clock, I: IdSource> Uploads<M, B, C, I> {
    pub fn new(store: M, blobs: B, clock: C, ids: I) -> Self {
        Self {
            store,
            blobs,
            clock,
            ids,
            caps: SizeCaps::default(),
            expiry: ExpiryPolicy::default(),
            in_flight: InFlight::default(),
            open_limit: None,
            digests: RunningDigests::default(),
            checksum_wakeups: None,
            metrics: std::sync::Arc::new(NoMetrics),
        }
    }

    /// Where uploads opened, completed and expired, and chunks received, are counted.
    pub fn with_metrics(mut self, metrics: std::sync::Arc<dyn Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Where to say that a file was committed without its checksum (its blocks did not arrive
    /// in order), so that whoever listens hashes it soon ([`Uploads::fill_checksums`]).
    pub fn with_checksum_wakeups(mut self, wakeups: futures::channel::mpsc::Sender<()>) -> Self {
        self.checksum_wakeups = Some(wakeups);
        self
    }

    fn wake_checksums(&self) {
        if let Some(wakeups) = &self.checksum_wakeups {
            // Full: a wake-up is pending already. Closed: nobody listens; the sweeper's round
            // hashes it all the same.
            let _ = wakeups.clone().try_send(());
        }
    }

    /// Sets how many uploads a firm may have open at once (`None`: no limit).
    pub fn with_open_upload_limit(mut self, limit: Option<NonZeroU32>) -> Self {
        self.open_limit = limit;
        self
    }

    /// Refuses a new upload of a firm at its quota of open uploads, telling it when the next
    /// one expires (at least a second, at most [`MAX_QUOTA_WAIT`]). Counted before the upload
    /// is stored, so uploads opened at the same instant may pass the quota by as many as race.
    async fn admit_new_upload(&self, firm: FirmId) -> Result<(), UploadChunkError> {
        let Some(limit) = self.open_limit else {
            return Ok(());
        };
        if self.store.count_open_uploads(firm, limit.get()).await? < limit.get() {
            return Ok(());
        }
        let now = self.clock.now();
        let next_expiry = self
            .store
            .idlest_open_uploads(firm)
            .await?
            .into_iter()
            .map(|(mode, since)| self.expires_at(mode, since))
            .min();
        let wait = next_expiry
            .and_then(|at| (at - now).to_std().ok())
            .unwrap_or(Duration::ZERO);
        // Whole seconds, rounded up.
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        Err(UploadChunkError::TooManyOpenUploads {
            limit: limit.get(),
            retry_after: Duration::from_secs(secs).clamp(Duration::from_secs(1), MAX_QUOTA_WAIT),
        })
    }

    /// Replaces the default expiry times.
    pub fn with_expiry(mut self, expiry: ExpiryPolicy) -> Self {
        self.expiry = expiry;
        self
    }

    /// Expires every open upload that no chunk reached for its mode's time, and discards
    /// what it staged; answers how many. Safe to run on several servers at once: the store
    /// hands each upload to one sweeper.
    #[tracing::instrument(skip_all)]
    pub async fn sweep_expired(&self) -> Result<usize, SweepError> {
        let now = self.clock.now();
        let mut expired = 0;
        for mode in Mode::ALL {
            let idle_since = crate::system::earlier(now, self.expiry.after(mode));
            for upload in self.store.expire_idle(mode, idle_since).await? {
                expired += 1;
                self.digests.forget(upload.file_id);
                tracing::info!(file_id = %upload.file_id, %mode, "upload expired");
                self.metrics.upload_expired(mode);
                if upload.upload_id.is_empty() {
                    continue;
                }
                if let Err(e) = self.blobs.discard_staging(&upload.upload_id).await {
                    // The staging sweep at start takes it later.
                    tracing::warn!(error = %e, file_id = %upload.file_id, "an expired upload's blocks could not be discarded");
                }
            }
        }
        Ok(expired)
    }

    /// Replaces the default per-mode size caps.
    pub fn with_caps(mut self, caps: SizeCaps) -> Self {
        self.caps = caps;
        self
    }

    /// Stages one chunk and, when it is the last missing one, commits the file.
    #[tracing::instrument(skip_all, fields(firm = %who.firm, file_id, block_index = cmd.block_index, total_blocks = cmd.total_blocks, size))]
    pub async fn upload_chunk(
        &self,
        who: Principal,
        cmd: ChunkCommand,
    ) -> Result<ChunkReceipt, UploadChunkError> {
        let started = std::time::Instant::now();
        // Taken apart at once: the body must not be borrowed across an await (it is not Sync).
        let ChunkCommand {
            file_id,
            block_index,
            total_blocks,
            mode,
            file_name,
            content_type,
            mut data,
            chunk_sha256,
        } = cmd;
        let total = TotalBlocks::new(total_blocks).map_err(|e| invalid("TotalBlocks", e))?;
        let index = total
            .index(block_index)
            .map_err(|e| invalid("BlockIndex", e))?;
        // What this chunk may add before the file passes its mode's cap: a re-sent index
        // replaces bytes already counted (the commit checks the total again).
        let mut already = 0;
        let mut is_new = false;
        // Whether this block may be the last missing one, as far as the store told.
        let may_complete;
        let session = match file_id {
            Some(id) => {
                let snapshot = self
                    .store
                    .find_session(who.firm, id)
                    .await?
                    .filter(|s| s.session.state != SessionState::Deleted)
                    .ok_or(UploadChunkError::NotFound(id))?;
                if snapshot.session.state == SessionState::Expired {
                    return Err(UploadChunkError::Gone(id));
                }
                snapshot.session.admit(mode, total)?;
                let stored = Format::from_content_type(&snapshot.session.content_type);
                if index.is_first() {
                    // Block 0 again: its bytes must still be what the upload was opened as.
                    let (format, rest) =
                        first_bytes(data, mode, content_type.as_deref(), file_name.as_deref())
                            .await?;
                    data = rest;
                    if let Some(expected) = stored
                        && expected != format
                    {
                        return Err(ChunkMismatch::FormatDiffers {
                            expected: expected.describe(),
                            sent: format.describe(),
                        }
                        .into());
                    }
                }
                let adds = u32::from(!snapshot.received.contains(index));
                may_complete = snapshot.received.len() + adds == total.get();
                if !snapshot.received.contains(index) {
                    already = snapshot.staged_bytes;
                    self.caps.check(mode, stored, already)?;
                }
                snapshot.session
            }
            None if index.is_first() => {
                is_new = true;
                may_complete = total.get() == 1;
                // A file of one chunk is complete when this request ends: it never stays open.
                if !may_complete {
                    self.admit_new_upload(who.firm).await?;
                }
                // Before anything is stored: a refused type leaves nothing behind.
                let (format, rest) =
                    first_bytes(data, mode, content_type.as_deref(), file_name.as_deref()).await?;
                data = rest;
                self.prepare(who, mode, file_name, format.content_type(mode), total)
                    .await?
            }
            None => {
                return Err(UploadChunkError::InvalidField {
                    field: "FileId",
                    message: "is required when BlockIndex is greater than 0; use the fileId returned for block 0".into(),
                });
            }
        };
        tracing::Span::current().record("file_id", tracing::field::display(session.file_id));

        // Counted with the upload's other chunks in flight until this block is recorded.
        let hold = self.in_flight.hold(session.file_id);
        let cap = self.caps.cap(mode, session.format());
        let body = within_cap(data, mode, cap, already, hold.clone());
        if is_new && total.get() == 1 {
            return self
                .upload_whole(session, body, chunk_sha256, started)
                .await;
        }
        let running = match is_new {
            true => self.digests.start(session.file_id),
            false => self.digests.resume(session.file_id, index.get()),
        };
        let (body, tap) = digests::tap(
            body,
            chunk_sha256.is_some(),
            running,
            digests::Hashing::Offloaded,
        );
        let staged = self
            .blobs
            .stage_block(&session.blob_path, &session.upload_id, index, total, body)
            .await;
        let StagedPart { part_id, size } = match staged {
            Ok(part) => part,
            Err(e) => {
                self.digests.forget(session.file_id);
                return self.staging_failed(who, &session, total, e).await;
            }
        };
        let tapped = tap.take().await;
        if let Err(e) = self
            .verify_chunk(&session, is_new, chunk_sha256, tapped.chunk, &part_id)
            .await
        {
            self.digests.forget(session.file_id);
            return Err(e);
        }
        let mut running = tapped.file;
        if let Some(running) = &mut running {
            running.staged_as(&part_id);
        }
        let candidate = running.as_ref().and_then(|r| r.candidate(total.get()));
        tracing::Span::current().record("size", size);
        if may_complete {
            self.prepare_commit_ahead(&session, index.get(), &part_id, size)
                .await;
        }
        let block = StagedBlock {
            index,
            part_id,
            size,
        };
        // A new upload is stored only once its first block is staged, and by the transaction
        // that records it, so that a body or a commit that fails leaves no session behind.
        let commit = |plan| self.commit(&session, plan, candidate.as_ref());
        let outcome = if is_new {
            completion::record_first_block(&self.store, &session, block, commit).await
        } else if may_complete {
            completion::record_block(&self.store, session.file_id, block, commit).await
        } else {
            completion::record_block_expecting_more(&self.store, session.file_id, block, commit)
                .await
        };
        // Recorded (or refused): its bytes now count in the recorded total, or nowhere.
        drop(hold);
        match (&outcome, running) {
            // The next block in order goes on from here.
            (Ok(BlockOutcome::Staged { .. }), Some(running)) => {
                self.digests.carry_on(session.file_id, running)
            }
            (Ok(BlockOutcome::Staged { .. }), None) => {}
            // Complete, or the block was not recorded (and the digest has its bytes).
            _ => self.digests.forget(session.file_id),
        }
        if let Ok(done) = &outcome {
            self.metrics
                .chunk_received(mode, size, started.elapsed().as_secs_f64());
            if is_new {
                self.metrics.upload_opened(mode);
            }
            if matches!(done, BlockOutcome::Committed(_)) {
                self.metrics.upload_completed(mode);
            }
        }
        let expires_at = self.expires_at(session.mode, self.clock.now());
        let receipt =
            |file: Option<&FileRecord>, url: Option<String>, received: u32| ChunkReceipt {
                file_id: session.file_id,
                is_complete: file.is_some(),
                url,
                received_blocks: received,
                total_blocks: total.get(),
                expires_at: file.is_none().then_some(expires_at),
                sha256: file.and_then(|f| f.sha256),
            };
        match outcome {
            Ok(BlockOutcome::Staged { received, replaced }) => {
                // A re-sent index: the bytes it replaced are no longer referred to.
                if let Some(old) = replaced
                    && let Err(e) = self
                        .blobs
                        .discard_part(&session.blob_path, &session.upload_id, &old)
                        .await
                {
                    tracing::warn!(error = %e, part = old, "a replaced block could not be discarded");
                }
                Ok(receipt(None, None, received))
            }
            Ok(BlockOutcome::Committed(file)) => {
                tracing::info!(size = file.size, path = %file.blob_path, sha256_known = file.sha256.is_some(), "file committed");
                if file.sha256.is_none() {
                    self.wake_checksums();
                }
                // Only now that the commit is recorded: had the staging gone with the blob
                // commit, a crash before the record would leave nothing for the retry to
                // commit again. A staging folder left by a failure here is a leftover for the
                // sweeper, never a wrong answer.
                if let Err(e) = self.blobs.discard_staging(&session.upload_id).await {
                    tracing::warn!(error = %e, "the file is committed but its staged blocks could not be discarded");
                }
                let url = self.blobs.share_url(&file.blob_path).await?;
                Ok(receipt(Some(&file), url, total.get()))
            }
            Ok(BlockOutcome::CommittedMeanwhile(file)) => {
                let url = self.blobs.share_url(&file.blob_path).await?;
                Ok(receipt(Some(&file), url, total.get()))
            }
            Err(RecordError::SessionMissing) => Err(UploadChunkError::NotFound(session.file_id)),
            Err(RecordError::Expired) => Err(UploadChunkError::Gone(session.file_id)),
            Err(RecordError::Store(e)) => Err(e.into()),
            Err(RecordError::Commit(e)) => Err(e),
        }
    }

    /// Lets the blob store get the commit ready before the session's lock is taken, when the
    /// block just staged (`index`, as `part_id`) may be the last one: the parts it would
    /// commit are those recorded so far with this block in its place. A snapshot only; the
    /// commit compares it with what it finds under the lock. Any failure here just leaves the
    /// work to the commit.
    async fn prepare_commit_ahead(
        &self,
        session: &UploadSession,
        index: u32,
        part_id: &str,
        size: u64,
    ) {
        let recorded = match self.store.recorded_parts(session.file_id).await {
            Ok(parts) => parts,
            Err(e) => {
                tracing::debug!(error = %e, "could not read the parts to prepare the commit");
                return;
            }
        };
        let total = session.total_blocks.get() as usize;
        let mut parts: Vec<Option<(&str, u64)>> = vec![None; total];
        for part in &recorded {
            if let Some(slot) = parts.get_mut(part.index as usize) {
                *slot = Some((part.part_id.as_str(), part.size));
            }
        }
        if let Some(slot) = parts.get_mut(index as usize) {
            *slot = Some((part_id, size));
        }
        // A block the snapshot lacks is still on its way: the commit will not be this one's.
        let Some(parts) = parts.into_iter().collect::<Option<Vec<_>>>() else {
            return;
        };
        let file_size = parts
            .iter()
            .fold(0u64, |sum, (_, size)| sum.saturating_add(*size));
        let part_ids: Vec<String> = parts.iter().map(|(id, _)| (*id).to_owned()).collect();
        if let Err(e) = self
            .blobs
            .prepare_commit(&session.blob_path, &session.upload_id, &part_ids, file_size)
            .await
        {
            tracing::debug!(error = %e, "could not prepare the commit ahead");
        }
    }

    /// The answer to a chunk whose staging failed.
    async fn staging_failed(
        &self,
        who: Principal,
        session: &UploadSession,
        total: TotalBlocks,
        e: BlobError,
    ) -> Result<ChunkReceipt, UploadChunkError> {
        match e {
            BlobError::Body(e) => Err(UploadChunkError::Body(e)),
            // A store that drops its staging area once a commit is recorded (the local one) has
            // nowhere to put the block of a request that raced the commit; that request sees
            // the commit, once the commit's transaction has let go of the session.
            BlobError::NotFound(what) => {
                match completion::committed_file(&self.store, session.file_id).await? {
                    Some(file) => Ok(ChunkReceipt {
                        file_id: session.file_id,
                        is_complete: true,
                        url: self.blobs.share_url(&file.blob_path).await?,
                        received_blocks: total.get(),
                        total_blocks: total.get(),
                        expires_at: None,
                        sha256: file.sha256,
                    }),
                    // Or the sweeper expired it and discarded its staging.
                    None => {
                        let expired = self
                            .store
                            .find_session(who.firm, session.file_id)
                            .await?
                            .is_some_and(|s| s.session.state == SessionState::Expired);
                        if expired {
                            return Err(UploadChunkError::Gone(session.file_id));
                        }
                        Err(BlobError::NotFound(what).into())
                    }
                }
            }
            e => Err(e.into()),
        }
    }

    /// Refuses a chunk whose bytes do not hash to the `ChunkSha256` the client declared: its
    /// part (a new upload's whole staging) is discarded, and nothing of it was recorded.
    async fn verify_chunk(
        &self,
        session: &UploadSession,
        is_new: bool,
        declared: Option<Sha256Digest>,
        actual: Option<Sha256Digest>,
        part_id: &str,
    ) -> Result<(), UploadChunkError> {
        let Some(declared) = declared else {
            return Ok(());
        };
        if actual == Some(declared) {
            return Ok(());
        }
        let discarded = match is_new {
            true => self.blobs.discard_staging(&session.upload_id).await,
            false => {
                self.blobs
                    .discard_part(&session.blob_path, &session.upload_id, part_id)
                    .await
            }
        };
        if let Err(e) = discarded {
            tracing::warn!(error = %e, "a chunk that failed its checksum could not be discarded");
        }
        Err(checksum_mismatch(declared, actual))
    }

    /// Where an upload of this firm stands.
    #[tracing::instrument(skip_all)]
    pub async fn file_status(
        &self,
        who: Principal,
        id: FileId,
    ) -> Result<FileStatus, FileStatusError> {
        let SessionSnapshot {
            session,
            received,
            staged_bytes,
            last_activity,
            file,
        } = self
            .store
            .find_session(who.firm, id)
            .await?
            .ok_or(FileStatusError::NotFound(id))?;
        match session.state {
            SessionState::Expired => return Err(FileStatusError::Gone(id)),
            SessionState::Deleted => return Err(FileStatusError::NotFound(id)),
            SessionState::Open | SessionState::Committed => {}
        }
        let url = match (&file, session.state) {
            (Some(f), SessionState::Committed) => self.blobs.share_url(&f.blob_path).await?,
            _ => None,
        };
        Ok(FileStatus {
            file_id: session.file_id,
            mode: session.mode,
            file_name: session.file_name.to_string(),
            content_type: session.content_type.clone(),
            is_complete: file.is_some(),
            url,
            total_blocks: session.total_blocks.get(),
            received_count: received.len(),
            lists: (session.total_blocks.get() <= LISTED_BLOCKS_MAX).then(|| BlockLists {
                received: received.received().collect(),
                missing: received.missing().collect(),
            }),
            missing_ranges: received.missing_ranges(),
            size: file.as_ref().map_or(staged_bytes, |f| f.size),
            expires_at: file
                .is_none()
                .then(|| self.expires_at(session.mode, last_activity)),
            sha256: file.as_ref().and_then(|f| f.sha256),
        })
    }

    /// When an upload of `mode` last active at `since` expires.
    fn expires_at(&self, mode: Mode, since: DateTime<Utc>) -> DateTime<Utc> {
        crate::system::later(since, self.expiry.after(mode))
    }

    /// Streams a committed file of this firm, whole or the requested range.
    #[tracing::instrument(skip_all)]
    pub async fn open_content(
        &self,
        who: Principal,
        id: FileId,
        range: Option<RangeSpec>,
    ) -> Result<FileContent, ContentError> {
        let snapshot = self
            .store
            .find_session(who.firm, id)
            .await?
            .ok_or(ContentError::NotFound(id))?;
        match snapshot.session.state {
            SessionState::Expired => return Err(ContentError::Gone(id)),
            SessionState::Deleted => return Err(ContentError::NotFound(id)),
            SessionState::Open | SessionState::Committed => {}
        }
        let file = snapshot.file.ok_or(ContentError::NotComplete(id))?;
        let wanted = range.map(|r| r.resolve(file.size)).transpose()?;
        let partial = wanted.is_some();
        let read = self.blobs.read(&file.blob_path, wanted).await?;
        Ok(FileContent {
            etag: format!("\"{}-{}\"", file.id, file.size),
            range: read.range,
            partial,
            stream: read.stream,
            file,
        })
    }

    /// A new file sent as one chunk: the blob store writes it whole in one request, and one
    /// transaction stores its session, block, file record and event. When that transaction
    /// fails, the blob goes again: no session ever pointed at its path.
    async fn upload_whole(
        &self,
        session: UploadSession,
        body: ChunkBody,
        declared: Option<Sha256Digest>,
        started: std::time::Instant,
    ) -> Result<ChunkReceipt, UploadChunkError> {
        // The file is the chunk: one digest serves both.
        let (body, tap) = digests::tap(body, true, None, digests::Hashing::Inline);
        let size = match self.blobs.put(&session.blob_path, body).await {
            Ok(size) => size,
            Err(BlobError::Body(e)) => return Err(UploadChunkError::Body(e)),
            Err(e) => return Err(e.into()),
        };
        let sha256 = tap.take().await.chunk;
        if let Some(declared) = declared
            && sha256 != Some(declared)
        {
            if let Err(e) = self.blobs.delete(&session.blob_path).await {
                tracing::warn!(error = %e, path = %session.blob_path, "a file that failed its checksum could not be deleted");
            }
            return Err(checksum_mismatch(declared, sha256));
        }
        tracing::Span::current().record("size", size);
        let block = StagedBlock {
            index: filegate_domain::BlockIndex::FIRST,
            part_id: WHOLE_PART.to_owned(),
            size,
        };
        // A new file of one block: its session, block, record and event in one transaction
        // (nobody knows its id yet, so there is no lock to take or count to read).
        let file = FileRecord {
            sha256,
            ..self.record_of(&session, size)
        };
        let recorded = match self.caps.check(session.mode, session.format(), size) {
            Ok(()) => self
                .store
                .record_whole_file(
                    &session,
                    &block,
                    &file,
                    &crate::events::file_completed(&file),
                )
                .await
                .map_err(UploadChunkError::from),
            Err(e) => Err(e.into()),
        };
        if let Err(e) = recorded {
            if let Err(delete) = self.blobs.delete(&session.blob_path).await {
                tracing::warn!(error = %delete, path = %session.blob_path, "a file whose record failed could not be deleted");
            }
            return Err(e);
        }
        tracing::info!(size = file.size, path = %file.blob_path, "file committed");
        // A file of one chunk is opened and completed by this one request.
        self.metrics.upload_opened(session.mode);
        self.metrics.upload_completed(session.mode);
        self.metrics
            .chunk_received(session.mode, file.size, started.elapsed().as_secs_f64());
        Ok(ChunkReceipt {
            file_id: session.file_id,
            is_complete: true,
            url: self.blobs.share_url(&file.blob_path).await?,
            received_blocks: 1,
            total_blocks: 1,
            expires_at: None,
            sha256: file.sha256,
        })
    }

    /// A new session, its blob staging begun (unless it is a file of one block); stored by the
    /// caller once its block is staged.
    async fn prepare(
        &self,
        who: Principal,
        mode: Mode,
        file_name: Option<String>,
        content_type: &str,
        total: TotalBlocks,
    ) -> Result<UploadSession, UploadChunkError> {
        let file_id = self.ids.file_id();
        let file_name = FileName::sanitize(file_name.as_deref().unwrap_or_default());
        let blob_path = BlobPath::for_file(mode, who.firm, who.user, file_id, &file_name);
        // A file of one block is written whole (`BlobStore::put`): nothing to stage.
        let upload_id = if total.get() == 1 {
            String::new()
        } else {
            self.blobs.begin(&blob_path).await?
        };
        let session = UploadSession {
            file_id,
            firm: who.firm,
            user: who.user,
            mode,
            total_blocks: total,
            file_name,
            content_type: content_type.to_owned(),
            blob_path,
            upload_id,
            state: SessionState::Open,
            created_at: self.clock.now(),
        };
        Ok(session)
    }

    /// Commits the staged parts; the file's digest is `candidate`'s when it covered exactly
    /// these parts.
    #[tracing::instrument(skip_all, fields(file_id = %session.file_id))]
    async fn commit(
        &self,
        session: &UploadSession,
        plan: CommitPlan,
        candidate: Option<&Candidate>,
    ) -> Result<FileRecord, UploadChunkError> {
        // Racing chunks can pass the early checks together; the commit is the last word.
        self.caps.check(session.mode, session.format(), plan.size)?;
        let sha256 = candidate
            .filter(|c| c.covers(&plan.part_ids))
            .map(|c| c.digest);
        self.blobs
            .commit(
                &session.blob_path,
                &session.upload_id,
                plan.part_ids,
                plan.size,
            )
            .await?;
        Ok(FileRecord {
            sha256,
            ..self.record_of(session, plan.size)
        })
    }

    /// The file record of a session committed with `size` bytes.
    fn record_of(&self, session: &UploadSession, size: u64) -> FileRecord {
        FileRecord {
            id: session.file_id,
            firm: session.firm,
            user: session.user,
            mode: session.mode,
            url: self.blobs.location(&session.blob_path),
            blob_path: session.blob_path.clone(),
            file_name: session.file_name.clone(),
            content_type: session.content_type.clone(),
            size,
            created_at: self.clock.now(),
            sha256: None,
        }
    }
}

/// The part id recorded for a file written whole: there is no staged part to name.
const WHOLE_PART: &str = "whole";

/// Reads block 0's first bytes ahead and tells their format, refused (415) unless `mode`
/// takes it; an empty chunk is refused here too, as it would be while staging.
async fn first_bytes(
    data: ChunkBody,
    mode: Mode,
    declared: Option<&str>,
    file_name: Option<&str>,
) -> Result<(Format, ChunkBody), UploadChunkError> {
    let (prefix, data) = data
        .peek(SNIFF_BYTES)
        .await
        .map_err(UploadChunkError::Body)?;
    if prefix.is_empty() {
        return Err(UploadChunkError::Body(empty_chunk()));
    }
    let hint = Hint {
        declared,
        file_name: file_name.unwrap_or_default(),
    };
    let format = admit_format(mode, sniff(&prefix, hint))?;
    Ok((format, data))
}

fn empty_chunk() -> BodyError {
    BodyError::Invalid("File: the chunk is empty".into())
}

/// The chunk's bytes, cut off with [`BodyError::TooLarge`] as soon as the file would pass its
/// cap (`already` bytes of it are recorded, and the upload's other chunks in flight hold
/// theirs in `hold`), and refused when empty: both are found while the bytes arrive, so a
/// store never keeps them.
fn within_cap(
    body: ChunkBody,
    mode: Mode,
    (cap, media): (u64, Option<MediaType>),
    already: u64,
    hold: Hold,
) -> ChunkBody {
    struct State {
        stream: BoxStream<'static, Result<Bytes, BodyError>>,
        hold: Hold,
        received: u64,
        done: bool,
    }
    body.map_stream(move |stream| {
        let state = State {
            stream,
            hold,
            received: 0,
            done: false,
        };
        futures::stream::unfold(state, move |mut state| async move {
            if state.done {
                return None;
            }
            let item = match state.stream.next().await {
                Some(Ok(piece)) => {
                    state.received += piece.len() as u64;
                    match state.hold.grow(piece.len() as u64, already, cap) {
                        Ok(()) => Ok(piece),
                        Err(size) => Err(BodyError::TooLarge(
                            FileTooLarge {
                                mode,
                                media,
                                size,
                                cap,
                            }
                            .to_string(),
                        )),
                    }
                }
                Some(Err(e)) => Err(e),
                None if state.received == 0 => Err(empty_chunk()),
                None => return None,
            };
            state.done = item.is_err();
            Some((item, state))
        })
        .boxed()
    })
}

fn checksum_mismatch(declared: Sha256Digest, actual: Option<Sha256Digest>) -> UploadChunkError {
    UploadChunkError::InvalidField {
        field: "ChunkSha256",
        message: match actual {
            Some(actual) => format!(
                "the chunk's bytes hash to {actual}, not {declared}; nothing of it was kept: send it again"
            ),
            None => format!("the chunk's bytes do not hash to {declared}; nothing of it was kept"),
        },
    }
}

fn invalid(field: &'static str, e: BlockRuleError) -> UploadChunkError {
    UploadChunkError::InvalidField {
        field,
        message: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::{FixedClock, InMemoryBlobs, InMemoryStore, SeqIds, chunk_of};
    use crate::ports::OutboxStore;
    use uuid::Uuid;

    type Service = Uploads<InMemoryStore, InMemoryBlobs, FixedClock, SeqIds>;

    fn service() -> (Service, InMemoryBlobs) {
        let blobs = InMemoryBlobs::default();
        (
            Uploads::new(
                InMemoryStore::default(),
                blobs.clone(),
                FixedClock,
                SeqIds::default(),
            ),
            blobs,
        )
    }

    /// With the system's clock, which is the one the stores stamp blocks with: for the tests
    /// that compare the two.
    fn system_clock_service() -> (
        Uploads<InMemoryStore, InMemoryBlobs, crate::system::SystemClock, SeqIds>,
        InMemoryBlobs,
    ) {
        let blobs = InMemoryBlobs::default();
        let svc = Uploads::new(
            InMemoryStore::default(),
            blobs.clone(),
            crate::system::SystemClock,
            SeqIds::default(),
        );
        (svc, blobs)
    }

    fn who(firm: u128) -> Principal {
        crate::fakes::principal(firm)
    }

    fn chunk(file_id: Option<FileId>, index: i64, total: i64, data: &'static [u8]) -> ChunkCommand {
        crate::fakes::chunk_of(Mode::Message, file_id, index, total, data)
    }

    #[tokio::test]
    async fn a_single_chunk_upload_is_complete_at_once() {
        let (svc, blobs) = service();
        let receipt = svc
            .upload_chunk(who(1), chunk(None, 0, 1, b"hello"))
            .await
            .unwrap();
        assert!(receipt.is_complete);
        let url = receipt.url.unwrap();
        let path = url.strip_prefix("memory://").unwrap();
        assert_eq!(
            path,
            format!("messages/{}/{}/report.pdf", who(1).firm, receipt.file_id)
        );
        assert_eq!(blobs.blob(path).as_deref(), Some(&b"hello"[..]));
    }

    #[tokio::test]
    async fn chunks_after_the_first_may_come_in_any_order() {
        let (svc, blobs) = service();
        let first = svc
            .upload_chunk(who(1), chunk(None, 0, 4, b"aa"))
            .await
            .unwrap();
        let id = Some(first.file_id);
        assert!(!first.is_complete);
        assert!(
            !svc.upload_chunk(who(1), chunk(id, 3, 4, b"dd"))
                .await
                .unwrap()
                .is_complete
        );
        assert!(
            !svc.upload_chunk(who(1), chunk(id, 1, 4, b"bb"))
                .await
                .unwrap()
                .is_complete
        );
        let last = svc
            .upload_chunk(who(1), chunk(id, 2, 4, b"cc"))
            .await
            .unwrap();
        assert!(last.is_complete);
        let path = last
            .url
            .unwrap()
            .strip_prefix("memory://")
            .unwrap()
            .to_owned();
        assert_eq!(blobs.blob(&path).as_deref(), Some(&b"aabbccdd"[..]));
    }

    /// Every chunk but the first and the expected last is offered to the store's one-step
    /// record; the first opens the session and the last commits, on the general path.
    #[tokio::test]
    async fn chunks_in_the_middle_are_recorded_in_one_step() {
        let (svc, _) = service();
        let first = svc
            .upload_chunk(who(1), chunk(None, 0, 4, b"aa"))
            .await
            .unwrap();
        let id = Some(first.file_id);
        for (index, data) in [(1, b"bb"), (2, b"cc")] {
            let receipt = svc
                .upload_chunk(who(1), chunk(id, index, 4, data))
                .await
                .unwrap();
            assert_eq!(receipt.received_blocks, index as u32 + 1);
        }
        let last = svc
            .upload_chunk(who(1), chunk(id, 3, 4, b"dd"))
            .await
            .unwrap();
        assert!(last.is_complete);
        assert_eq!(
            svc.store
                .incomplete_blocks
                .load(std::sync::atomic::Ordering::SeqCst),
            2
        );
    }

    /// The block that may be the last gets its commit prepared before the session's lock,
    /// for the parts recorded with it in its place (a block sent again included): exactly the
    /// parts the commit then commits. A block whose snapshot still misses another prepares
    /// nothing.
    #[tokio::test]
    async fn the_last_blocks_commit_is_prepared_for_the_parts_it_commits() {
        let (svc, blobs) = service();
        let first = svc
            .upload_chunk(who(1), chunk(None, 0, 3, b"aa"))
            .await
            .unwrap();
        let id = Some(first.file_id);
        svc.upload_chunk(who(1), chunk(id, 1, 3, b"bx"))
            .await
            .unwrap();
        assert!(blobs.prepared().is_empty(), "block 2 is still missing");
        svc.upload_chunk(who(1), chunk(id, 1, 3, b"bb"))
            .await
            .unwrap();
        let last = svc
            .upload_chunk(who(1), chunk(id, 2, 3, b"c"))
            .await
            .unwrap();
        assert!(last.is_complete);
        let prepared = blobs.prepared();
        let committed = blobs.committed_parts();
        assert_eq!(prepared.len(), 1, "{prepared:?}");
        assert_eq!(committed.len(), 1, "{committed:?}");
        assert_eq!(prepared[0].0, committed[0]);
        assert_eq!(prepared[0].1, 5);
        let path = last.url.unwrap();
        let path = path.strip_prefix("memory://").unwrap();
        assert_eq!(blobs.blob(path).as_deref(), Some(&b"aabbc"[..]));
    }

    fn sha(data: &[u8]) -> Sha256Digest {
        use sha2::Digest;
        Sha256Digest::from_bytes(sha2::Sha256::digest(data).into())
    }

    fn with_sha(mut cmd: ChunkCommand, data: &[u8]) -> ChunkCommand {
        cmd.chunk_sha256 = Some(sha(data));
        cmd
    }

    /// Chunks sent in order give the file's SHA-256 at its commit, with no read back: in the
    /// completing answer, the status and the record. A file of one chunk too.
    #[tokio::test]
    async fn a_file_sent_in_order_has_its_checksum_at_once() {
        let (svc, blobs) = service();
        let first = svc
            .upload_chunk(who(1), with_sha(chunk(None, 0, 3, b"aa"), b"aa"))
            .await
            .unwrap();
        assert_eq!(first.sha256, None, "not complete yet");
        let id = Some(first.file_id);
        svc.upload_chunk(who(1), chunk(id, 1, 3, b"bb"))
            .await
            .unwrap();
        let last = svc
            .upload_chunk(who(1), chunk(id, 2, 3, b"cc"))
            .await
            .unwrap();
        assert!(last.is_complete);
        assert_eq!(last.sha256, Some(sha(b"aabbcc")));
        let status = svc.file_status(who(1), first.file_id).await.unwrap();
        assert_eq!(status.sha256, Some(sha(b"aabbcc")));
        let whole = svc
            .upload_chunk(who(1), with_sha(chunk(None, 0, 1, b"whole"), b"whole"))
            .await
            .unwrap();
        assert_eq!(whole.sha256, Some(sha(b"whole")));
        assert_eq!(blobs.reads(), 0, "nothing was read back");
        assert_eq!(svc.digests.running(), 0, "no digest left running");
    }

    /// Chunks out of order, or one sent again, leave the file's checksum unknown at its
    /// commit; the filler then reads the file back and records the right one.
    #[tokio::test]
    async fn a_file_sent_out_of_order_is_hashed_after_its_commit() {
        let (svc, blobs) = service();
        let (wakeups, mut woken) = futures::channel::mpsc::channel(1);
        let svc = svc.with_checksum_wakeups(wakeups);
        let first = svc
            .upload_chunk(who(1), chunk(None, 0, 3, b"aa"))
            .await
            .unwrap();
        let id = Some(first.file_id);
        svc.upload_chunk(who(1), chunk(id, 2, 3, b"cc"))
            .await
            .unwrap();
        let last = svc
            .upload_chunk(who(1), chunk(id, 1, 3, b"bb"))
            .await
            .unwrap();
        assert!(last.is_complete);
        assert_eq!(last.sha256, None);
        assert!(woken.try_recv().is_ok(), "the filler is woken");
        // In order, but block 1 sent again with other bytes before the last.
        let again = svc
            .upload_chunk(who(1), chunk(None, 0, 3, b"xx"))
            .await
            .unwrap();
        let again_id = Some(again.file_id);
        svc.upload_chunk(who(1), chunk(again_id, 1, 3, b"yy"))
            .await
            .unwrap();
        svc.upload_chunk(who(1), chunk(again_id, 1, 3, b"zz"))
            .await
            .unwrap();
        let done = svc
            .upload_chunk(who(1), chunk(again_id, 2, 3, b"ww"))
            .await
            .unwrap();
        assert_eq!(
            done.sha256, None,
            "the re-sent block ended the running digest"
        );

        let filled = crate::checksums::fill_checksums(&svc.store, &blobs, 10)
            .await
            .unwrap();
        assert_eq!(filled.filled, 2);
        let status = |id| svc.file_status(who(1), id);
        assert_eq!(
            status(first.file_id).await.unwrap().sha256,
            Some(sha(b"aabbcc"))
        );
        assert_eq!(
            status(again.file_id).await.unwrap().sha256,
            Some(sha(b"xxzzww"))
        );
        let again = crate::checksums::fill_checksums(&svc.store, &blobs, 10)
            .await
            .unwrap();
        assert_eq!(again.filled, 0, "nothing left to hash");
    }

    /// A chunk whose bytes do not match its `ChunkSha256` gets 400 naming the field, and
    /// nothing of it is kept: no session for a first chunk, no block for a later one, no file
    /// for a file of one chunk. The same chunk sent right then goes through.
    #[tokio::test]
    async fn a_chunk_failing_its_checksum_is_refused_and_not_kept() {
        let (svc, blobs) = service();
        let refused = |r: Result<ChunkReceipt, UploadChunkError>| match r {
            Err(UploadChunkError::InvalidField { field, message }) => {
                assert_eq!(field, "ChunkSha256");
                assert!(message.contains(&sha(b"aa").to_hex()), "{message}");
            }
            other => panic!("expected a refusal, got {other:?}"),
        };
        refused(
            svc.upload_chunk(who(1), with_sha(chunk(None, 0, 2, b"aa"), b"other"))
                .await,
        );
        assert_eq!(blobs.staged_bytes(), 0, "the first block's staging is gone");
        refused(
            svc.upload_chunk(who(1), with_sha(chunk(None, 0, 1, b"aa"), b"other"))
                .await,
        );
        assert_eq!(blobs.blob_count(), 0, "the file of one chunk is deleted");

        let first = svc
            .upload_chunk(who(1), with_sha(chunk(None, 0, 2, b"aa"), b"aa"))
            .await
            .unwrap();
        let id = Some(first.file_id);
        match svc
            .upload_chunk(who(1), with_sha(chunk(id, 1, 2, b"bb"), b"aa"))
            .await
        {
            Err(UploadChunkError::InvalidField { field, .. }) => assert_eq!(field, "ChunkSha256"),
            other => panic!("expected a refusal, got {other:?}"),
        }
        let status = svc.file_status(who(1), first.file_id).await.unwrap();
        assert_eq!(
            status.missing_ranges,
            vec![[1, 1]],
            "the refused block is not recorded"
        );
        assert_eq!(blobs.staged_bytes(), 2, "and its bytes are gone");
        let last = svc
            .upload_chunk(who(1), with_sha(chunk(id, 1, 2, b"bb"), b"bb"))
            .await
            .unwrap();
        assert!(last.is_complete);
        assert_eq!(
            last.sha256, None,
            "the refused block had ended the running digest"
        );
    }

    #[tokio::test]
    async fn a_resent_chunk_replaces_the_earlier_one() {
        let (svc, blobs) = service();
        let id = Some(
            svc.upload_chunk(who(1), chunk(None, 0, 2, b"xx"))
                .await
                .unwrap()
                .file_id,
        );
        svc.upload_chunk(who(1), chunk(id, 0, 2, b"aaa"))
            .await
            .unwrap();
        assert_eq!(
            blobs.staged_bytes(),
            3,
            "the replaced block's bytes are freed once the new one is recorded"
        );
        let last = svc
            .upload_chunk(who(1), chunk(id, 1, 2, b"bb"))
            .await
            .unwrap();
        let path = last
            .url
            .unwrap()
            .strip_prefix("memory://")
            .unwrap()
            .to_owned();
        assert_eq!(blobs.blob(&path).as_deref(), Some(&b"aaabb"[..]));
        assert_eq!(
            blobs.staged_bytes(),
            0,
            "the staging is discarded once the commit is recorded"
        );
    }

    #[tokio::test]
    async fn racing_final_chunks_commit_once_and_both_see_the_file() {
        let (svc, blobs) = service();
        let id = Some(
            svc.upload_chunk(who(1), chunk(None, 0, 2, b"aa"))
                .await
                .unwrap()
                .file_id,
        );
        let (a, b) = tokio::join!(
            svc.upload_chunk(who(1), chunk(id, 1, 2, b"bb")),
            svc.upload_chunk(who(1), chunk(id, 1, 2, b"bb")),
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert!(a.is_complete && b.is_complete);
        assert_eq!(a.url, b.url);
        assert_eq!(blobs.commits(), 1);
    }

    #[tokio::test]
    async fn a_chunk_for_a_committed_file_is_a_conflict() {
        let (svc, _) = service();
        let id = Some(
            svc.upload_chunk(who(1), chunk(None, 0, 1, b"aa"))
                .await
                .unwrap()
                .file_id,
        );
        let err = svc
            .upload_chunk(who(1), chunk(id, 0, 1, b"aa"))
            .await
            .unwrap_err();
        assert!(matches!(
            err,
            UploadChunkError::Conflict(ChunkMismatch::AlreadyCommitted)
        ));
    }

    #[tokio::test]
    async fn a_changed_total_or_mode_is_a_conflict() {
        let (svc, _) = service();
        let id = Some(
            svc.upload_chunk(who(1), chunk(None, 0, 3, b"aa"))
                .await
                .unwrap()
                .file_id,
        );
        let err = svc
            .upload_chunk(who(1), chunk(id, 1, 4, b"bb"))
            .await
            .unwrap_err();
        assert!(matches!(
            err,
            UploadChunkError::Conflict(ChunkMismatch::TotalBlocksDiffers { .. })
        ));
        let mut other_mode = chunk(id, 1, 3, b"bb");
        other_mode.mode = Mode::Import;
        let err = svc.upload_chunk(who(1), other_mode).await.unwrap_err();
        assert!(matches!(
            err,
            UploadChunkError::Conflict(ChunkMismatch::ModeDiffers { .. })
        ));
    }

    #[tokio::test]
    async fn another_firms_file_is_not_found() {
        let (svc, _) = service();
        let id = svc
            .upload_chunk(who(1), chunk(None, 0, 2, b"aa"))
            .await
            .unwrap()
            .file_id;
        let err = svc
            .upload_chunk(who(2), chunk(Some(id), 1, 2, b"bb"))
            .await
            .unwrap_err();
        assert!(matches!(err, UploadChunkError::NotFound(_)));
        assert!(matches!(
            svc.file_status(who(2), id).await,
            Err(FileStatusError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn rule_breaks_name_their_field() {
        let (svc, _) = service();
        let cases: [(ChunkCommand, &str); 4] = [
            (chunk(None, 0, 0, b"a"), "TotalBlocks"),
            (chunk(None, 2, 2, b"a"), "BlockIndex"),
            (chunk(None, 1, 2, b"a"), "FileId"),
            (chunk(None, 0, 2, b""), "File"),
        ];
        for (cmd, expected) in cases {
            match svc.upload_chunk(who(1), cmd).await {
                Err(UploadChunkError::InvalidField { field, .. }) => assert_eq!(field, expected),
                // An empty chunk is found while its bytes arrive.
                Err(UploadChunkError::Body(BodyError::Invalid(message))) => {
                    assert!(message.starts_with(&format!("{expected}:")), "{message}")
                }
                other => panic!("expected a field error naming {expected}, got {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn a_failed_commit_keeps_nothing_and_the_retry_completes() {
        let (svc, blobs) = service();
        let id = svc
            .upload_chunk(who(1), chunk(None, 0, 2, b"aa"))
            .await
            .unwrap()
            .file_id;
        blobs
            .fail_commits
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let err = svc
            .upload_chunk(who(1), chunk(Some(id), 1, 2, b"bb"))
            .await
            .unwrap_err();
        assert!(matches!(err, UploadChunkError::Unavailable(_)));
        let status = svc.file_status(who(1), id).await.unwrap();
        assert_eq!(
            (status.is_complete, status.missing_ranges.clone()),
            (false, vec![[1, 1]])
        );
        blobs
            .fail_commits
            .store(false, std::sync::atomic::Ordering::SeqCst);
        assert!(
            svc.upload_chunk(who(1), chunk(Some(id), 1, 2, b"bb"))
                .await
                .unwrap()
                .is_complete
        );
    }

    /// A file of one chunk is written whole; when its record then fails, the blob goes too, and
    /// the client's retry makes a new file.
    #[tokio::test]
    async fn a_single_chunk_whose_record_fails_leaves_no_blob() {
        let store = InMemoryStore::default();
        let blobs = InMemoryBlobs::default();
        let svc = Uploads::new(store.clone(), blobs.clone(), FixedClock, SeqIds::default());
        store
            .fail_new_sessions
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let err = svc
            .upload_chunk(who(1), chunk(None, 0, 1, b"tiny"))
            .await
            .unwrap_err();
        assert!(matches!(err, UploadChunkError::Unavailable(_)), "{err:?}");
        assert_eq!(blobs.commits(), 1, "the blob was written once");
        assert_eq!(blobs.blob_count(), 0, "and deleted when its record failed");
        store
            .fail_new_sessions
            .store(false, std::sync::atomic::Ordering::SeqCst);
        let receipt = svc
            .upload_chunk(who(1), chunk(None, 0, 1, b"tiny"))
            .await
            .unwrap();
        assert!(receipt.is_complete);
        assert_eq!(blobs.blob_count(), 1);
        assert_eq!(
            blobs.staged_bytes(),
            0,
            "a file of one chunk stages nothing"
        );
    }

    /// A firm deletes its file, complete or open: the bytes go, a `file.deleted` event of its
    /// own id is stored, and everything about the file answers "not found" from then on.
    #[tokio::test]
    async fn a_deleted_file_is_gone_with_its_bytes() {
        let (svc, blobs) = service();
        let done = svc
            .upload_chunk(who(1), chunk(None, 0, 1, b"whole"))
            .await
            .unwrap()
            .file_id;
        let open = svc
            .upload_chunk(who(1), chunk(None, 0, 2, b"half"))
            .await
            .unwrap()
            .file_id;
        assert!(matches!(
            svc.delete_file(who(2), done).await,
            Err(DeleteFileError::NotFound(_))
        ));
        svc.delete_file(who(1), done).await.unwrap();
        svc.delete_file(who(1), open).await.unwrap();
        assert_eq!(blobs.blob_count(), 0, "the committed blob is gone");
        assert_eq!(blobs.staged_bytes(), 0, "the open upload's blocks are gone");
        for id in [done, open] {
            assert!(matches!(
                svc.delete_file(who(1), id).await,
                Err(DeleteFileError::NotFound(_))
            ));
            assert!(matches!(
                svc.file_status(who(1), id).await,
                Err(FileStatusError::NotFound(_))
            ));
            assert!(matches!(
                svc.open_content(who(1), id, None).await,
                Err(ContentError::NotFound(_))
            ));
        }
        assert!(matches!(
            svc.upload_chunk(who(1), chunk(Some(open), 1, 2, b"late"))
                .await,
            Err(UploadChunkError::NotFound(_))
        ));
        let events = svc.store.unpublished_events(10).await.unwrap();
        let deleted: Vec<_> = events
            .iter()
            .filter(|e| e.routing_key == "file.deleted.message")
            .map(|e| e.id.clone())
            .collect();
        assert_eq!(
            deleted,
            vec![format!("{done}.deleted"), format!("{open}.deleted")]
        );
        assert!(
            events.iter().any(|e| e.id == done.to_string()),
            "the file.completed event stays beside it"
        );
    }

    /// A firm at its quota of open uploads cannot open another of several chunks: it is told
    /// when its next open upload expires (of any mode, capped at an hour), and nothing is
    /// kept. A file of one chunk, the next chunks of open uploads and another firm pass; a
    /// completed or deleted upload frees a place.
    #[tokio::test]
    async fn a_firm_at_its_quota_of_open_uploads_waits_for_the_next_to_end() {
        let (svc, blobs) = system_clock_service();
        let svc = svc.with_open_upload_limit(NonZeroU32::new(2)).with_expiry(
            ExpiryPolicy::new(Duration::from_secs(86_400))
                .with_mode(Mode::Import, Duration::from_secs(700)),
        );
        let first = svc
            .upload_chunk(who(1), chunk(None, 0, 2, b"aa"))
            .await
            .unwrap();
        let mut import = chunk(None, 0, 2, b"cc");
        import.mode = Mode::Import;
        let second = svc.upload_chunk(who(1), import).await.unwrap();
        let staged = blobs.staged_bytes();
        let refused = svc.upload_chunk(who(1), chunk(None, 0, 3, b"dd")).await;
        match refused {
            Err(e @ UploadChunkError::TooManyOpenUploads { .. }) => {
                let UploadChunkError::TooManyOpenUploads { limit, retry_after } = &e else {
                    unreachable!()
                };
                assert_eq!(*limit, 2);
                // The Import upload expires first: 700 s from now, in whole seconds rounded up.
                assert_eq!(*retry_after, Duration::from_secs(700));
                assert!(
                    e.to_string().contains("limits.open_uploads_per_firm"),
                    "{e}"
                );
            }
            other => panic!("expected the quota, got {other:?}"),
        }
        assert_eq!(
            blobs.staged_bytes(),
            staged,
            "nothing kept of the refused chunk"
        );
        svc.upload_chunk(who(1), chunk(None, 0, 1, b"whole"))
            .await
            .expect("a file of one chunk never stays open");
        svc.upload_chunk(who(2), chunk(None, 0, 2, b"ee"))
            .await
            .expect("another firm has a quota of its own");
        svc.upload_chunk(who(1), chunk(Some(first.file_id), 1, 2, b"bb"))
            .await
            .expect("an open upload goes on");
        let third = svc
            .upload_chunk(who(1), chunk(None, 0, 2, b"ff"))
            .await
            .expect("the completed upload freed a place");
        assert!(matches!(
            svc.upload_chunk(who(1), chunk(None, 0, 2, b"gg")).await,
            Err(UploadChunkError::TooManyOpenUploads { .. })
        ));
        svc.delete_file(who(1), second.file_id).await.unwrap();
        svc.upload_chunk(who(1), chunk(None, 0, 2, b"hh"))
            .await
            .expect("the deleted upload freed a place");
        assert_ne!(third.file_id, second.file_id);
    }

    /// Past the quota, the wait is at least a second (an upload already due to expire) and at
    /// most an hour (the next expiry a day away).
    #[tokio::test]
    async fn the_quota_wait_is_between_a_second_and_an_hour() {
        for (expiry, wait) in [(86_400, 3600), (0, 1)] {
            let (svc, _blobs) = system_clock_service();
            let svc = svc
                .with_open_upload_limit(NonZeroU32::new(1))
                .with_expiry(ExpiryPolicy::new(Duration::from_secs(expiry)));
            svc.upload_chunk(who(1), chunk(None, 0, 2, b"aa"))
                .await
                .unwrap();
            match svc.upload_chunk(who(1), chunk(None, 0, 2, b"bb")).await {
                Err(UploadChunkError::TooManyOpenUploads { retry_after, .. }) => {
                    assert_eq!(retry_after, Duration::from_secs(wait), "expiry {expiry}")
                }
                other => panic!("expected the quota, got {other:?}"),
            }
        }
    }

    /// An open upload's answers say when it expires unless a chunk arrives; a complete one's
    /// say nothing.
    #[tokio::test]
    async fn answers_of_an_open_upload_carry_its_expiry() {
        let (svc, _blobs) = service();
        let svc = svc.with_expiry(
            filegate_domain::ExpiryPolicy::new(std::time::Duration::from_secs(86_400))
                .with_mode(Mode::Message, std::time::Duration::from_secs(600)),
        );
        let first = svc
            .upload_chunk(who(1), chunk(None, 0, 2, b"aa"))
            .await
            .unwrap();
        let epoch = DateTime::<Utc>::UNIX_EPOCH;
        assert_eq!(
            first.expires_at,
            Some(epoch + chrono::Duration::seconds(600)),
            "the clock's now plus the mode's time"
        );
        let status = svc.file_status(who(1), first.file_id).await.unwrap();
        let expires = status.expires_at.expect("an open upload expires");
        assert!(
            expires >= epoch + chrono::Duration::seconds(600),
            "{expires}"
        );
        let last = svc
            .upload_chunk(who(1), chunk(Some(first.file_id), 1, 2, b"bb"))
            .await
            .unwrap();
        assert_eq!(last.expires_at, None);
        let done = svc.file_status(who(1), first.file_id).await.unwrap();
        assert_eq!(done.expires_at, None, "a complete file does not expire");
    }

    /// An upload idle past its mode's time is expired by the sweep: its blocks go, and a
    /// chunk, its status and its content answer Gone; a complete file stays as it was.
    #[tokio::test]
    async fn an_idle_upload_expires_and_answers_gone() {
        let blobs = InMemoryBlobs::default();
        let svc = Uploads::new(
            InMemoryStore::default(),
            blobs.clone(),
            crate::system::SystemClock,
            SeqIds::default(),
        )
        .with_expiry(
            filegate_domain::ExpiryPolicy::new(std::time::Duration::from_secs(3600))
                .with_mode(Mode::Message, std::time::Duration::ZERO),
        );
        let done = svc
            .upload_chunk(who(1), chunk(None, 0, 1, b"whole"))
            .await
            .unwrap();
        let open = svc
            .upload_chunk(who(1), chunk(None, 0, 2, b"half"))
            .await
            .unwrap()
            .file_id;
        let import = svc
            .upload_chunk(
                who(1),
                ChunkCommand {
                    mode: Mode::Import,
                    ..chunk(None, 0, 2, b"kept")
                },
            )
            .await
            .unwrap()
            .file_id;
        assert_eq!(blobs.staged_bytes(), 8);
        assert_eq!(
            svc.sweep_expired().await.unwrap(),
            1,
            "only the idle Message upload"
        );
        assert_eq!(blobs.staged_bytes(), 4, "its blocks are discarded");
        assert!(matches!(
            svc.upload_chunk(who(1), chunk(Some(open), 1, 2, b"late")).await,
            Err(UploadChunkError::Gone(id)) if id == open
        ));
        assert!(matches!(
            svc.file_status(who(1), open).await,
            Err(FileStatusError::Gone(_))
        ));
        assert!(matches!(
            svc.open_content(who(1), open, None).await,
            Err(ContentError::Gone(_))
        ));
        assert!(
            svc.file_status(who(1), done.file_id)
                .await
                .unwrap()
                .is_complete
        );
        assert!(!svc.file_status(who(1), import).await.unwrap().is_complete);
        assert_eq!(
            svc.sweep_expired().await.unwrap(),
            0,
            "each upload expires once"
        );
    }

    #[tokio::test]
    async fn content_is_served_whole_or_by_range_once_complete() {
        use futures::TryStreamExt;
        let (svc, _) = service();
        let id = svc
            .upload_chunk(who(1), chunk(None, 0, 2, b"hello "))
            .await
            .unwrap()
            .file_id;
        assert!(matches!(
            svc.open_content(who(1), id, None).await,
            Err(ContentError::NotComplete(_))
        ));
        svc.upload_chunk(who(1), chunk(Some(id), 1, 2, b"world"))
            .await
            .unwrap();
        let whole = svc.open_content(who(1), id, None).await.unwrap();
        assert!(!whole.partial);
        assert_eq!(
            whole
                .stream
                .map_ok(|b| b.to_vec())
                .try_concat()
                .await
                .unwrap(),
            b"hello world".to_vec()
        );
        let part = svc
            .open_content(who(1), id, Some(RangeSpec::Suffix(5)))
            .await
            .unwrap();
        assert_eq!((part.partial, part.range.clone()), (true, 6..11));
        assert_eq!(
            part.stream
                .map_ok(|b| b.to_vec())
                .try_concat()
                .await
                .unwrap(),
            b"world".to_vec()
        );
        let err = svc
            .open_content(who(1), id, Some(RangeSpec::From(11)))
            .await
            .unwrap_err();
        assert!(matches!(err, ContentError::RangeNotSatisfiable(_)));
        assert!(matches!(
            svc.open_content(who(2), id, None).await,
            Err(ContentError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn a_file_over_its_modes_cap_is_refused_as_soon_as_the_bytes_show_it() {
        let (svc, blobs) = service();
        let caps = filegate_domain::SizeCaps {
            message: 10,
            ..filegate_domain::SizeCaps::default()
        };
        let svc = svc.with_caps(caps);
        let big = ChunkCommand {
            data: Bytes::from_static(b"01234567890").into(),
            chunk_sha256: None,
            ..chunk(None, 0, 1, b"")
        };
        assert!(matches!(
            svc.upload_chunk(who(1), big).await,
            Err(UploadChunkError::Body(BodyError::TooLarge(_)))
        ));
        // The refused first chunk left no session behind.
        assert!(matches!(
            svc.file_status(who(1), FileId::from_uuid(Uuid::from_u128(1)))
                .await,
            Err(FileStatusError::NotFound(_))
        ));
        let id = Some(
            svc.upload_chunk(who(1), chunk(None, 0, 3, b"012345"))
                .await
                .unwrap()
                .file_id,
        );
        // Re-sending block 0 replaces it: still within the cap.
        svc.upload_chunk(who(1), chunk(id, 0, 3, b"012345"))
            .await
            .unwrap();
        let err = svc
            .upload_chunk(who(1), chunk(id, 1, 3, b"67890"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, UploadChunkError::Body(BodyError::TooLarge(ref m)) if m.contains("10")),
            "{err:?}"
        );
        assert_eq!(blobs.commits(), 0);
    }

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
    const JPEG: &[u8] = b"\xFF\xD8\xFF\xE0\0\x10JFIF\0";

    fn typed(
        mode: Mode,
        file_id: Option<FileId>,
        index: i64,
        total: i64,
        data: &'static [u8],
    ) -> ChunkCommand {
        ChunkCommand {
            file_name: Some("avatar.png".into()),
            content_type: Some("image/png".into()),
            ..crate::fakes::chunk_of(mode, file_id, index, total, data)
        }
    }

    /// Contract section 6: block 0's bytes decide the type, whatever was declared; a type the
    /// mode does not take is refused before anything is stored.
    #[tokio::test]
    async fn the_first_bytes_decide_the_type_and_a_refused_one_keeps_nothing() {
        let (svc, blobs) = service();
        for total in [1, 3] {
            let html = typed(
                Mode::Profile,
                None,
                0,
                total,
                b"<html><script>alert(1)</script>",
            );
            let err = svc.upload_chunk(who(1), html).await.unwrap_err();
            assert!(
                matches!(
                    err,
                    UploadChunkError::TypeNotAllowed(TypeNotAllowed {
                        mode: Mode::Profile,
                        found: None
                    })
                ),
                "{err:?}"
            );
            let pdf = typed(Mode::Import, None, 0, total, b"%PDF-1.7\n");
            let err = svc.upload_chunk(who(1), pdf).await.unwrap_err();
            assert!(
                err.to_string()
                    .starts_with("Import files must be a CSV file in UTF-8 text; the bytes sent are a PDF document"),
                "{err}"
            );
        }
        assert_eq!((blobs.blob_count(), blobs.staged_bytes()), (0, 0));
        assert!(matches!(
            svc.file_status(who(1), FileId::from_uuid(Uuid::from_u128(1)))
                .await,
            Err(FileStatusError::NotFound(_))
        ));
        // A JPEG declared as PNG is stored as what it is.
        let jpeg = svc
            .upload_chunk(who(1), typed(Mode::Profile, None, 0, 2, JPEG))
            .await
            .unwrap();
        let status = svc.file_status(who(1), jpeg.file_id).await.unwrap();
        assert_eq!(status.content_type, "image/jpeg");
        // Later blocks are not sniffed: they are the middle of a file.
        svc.upload_chunk(
            who(1),
            typed(Mode::Profile, Some(jpeg.file_id), 1, 2, b"\0\x01binary"),
        )
        .await
        .unwrap();
        // Text is a CSV in an import.
        let csv = svc
            .upload_chunk(who(1), chunk_of(Mode::Import, None, 0, 1, b"name,phone\n"))
            .await
            .unwrap();
        let status = svc.file_status(who(1), csv.file_id).await.unwrap();
        assert_eq!(status.content_type, "text/csv");
    }

    #[tokio::test]
    async fn block_zero_sent_again_must_be_of_the_same_format() {
        let (svc, _blobs) = service();
        let id = svc
            .upload_chunk(who(1), typed(Mode::Message, None, 0, 2, PNG))
            .await
            .unwrap()
            .file_id;
        let err = svc
            .upload_chunk(who(1), typed(Mode::Message, Some(id), 0, 2, JPEG))
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "block 0 was first sent as a PNG image; this copy of it is a JPEG image"
        );
        let err = svc
            .upload_chunk(
                who(1),
                typed(Mode::Message, Some(id), 0, 2, b"GIF89a\x01\0"),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(err, UploadChunkError::TypeNotAllowed(_)),
            "{err:?}"
        );
        svc.upload_chunk(who(1), typed(Mode::Message, Some(id), 0, 2, PNG))
            .await
            .unwrap();
    }

    /// In Message and Template the kind of media has its own cap, known from block 0's bytes:
    /// an image passes it mid-upload, while a document of the same size would not.
    #[tokio::test]
    async fn a_kind_of_media_is_capped_as_soon_as_block_zero_shows_it() {
        let (svc, blobs) = service();
        let caps = filegate_domain::SizeCaps {
            image: 20,
            ..filegate_domain::SizeCaps::default()
        };
        let svc = svc.with_caps(caps);
        let id = svc
            .upload_chunk(who(1), typed(Mode::Message, None, 0, 2, PNG))
            .await
            .unwrap()
            .file_id;
        let err = svc
            .upload_chunk(who(1), typed(Mode::Message, Some(id), 1, 2, b"0123456789"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, UploadChunkError::Body(BodyError::TooLarge(ref m)) if m.contains("Message image files may have at most 20 bytes")),
            "{err:?}"
        );
        let pdf = svc
            .upload_chunk(
                who(1),
                chunk_of(Mode::Message, None, 0, 2, b"%PDF-1.7\n0123456"),
            )
            .await
            .unwrap();
        svc.upload_chunk(
            who(1),
            chunk_of(Mode::Message, Some(pdf.file_id), 1, 2, b"0123456789"),
        )
        .await
        .unwrap();
        assert_eq!(blobs.commits(), 1);
    }

    /// Blocks sent in parallel see each other's bytes: together they cannot pass the cap, and
    /// once the first is refused or recorded its bytes count where they belong.
    #[tokio::test]
    async fn parallel_chunks_cannot_pass_the_cap_together() {
        let (svc, _blobs) = service();
        let caps = filegate_domain::SizeCaps {
            message: 20,
            ..filegate_domain::SizeCaps::default()
        };
        let svc = svc.with_caps(caps);
        let id = Some(
            svc.upload_chunk(who(1), chunk(None, 0, 3, b"0123456789"))
                .await
                .unwrap()
                .file_id,
        );
        // Block 1 is arriving: 6 of its bytes are in, more are coming.
        let (tx, rx) = futures::channel::mpsc::unbounded::<Result<Bytes, BodyError>>();
        tx.unbounded_send(Ok(Bytes::from_static(b"abcdef")))
            .unwrap();
        let slow = ChunkCommand {
            data: ChunkBody::new(rx.boxed()),
            chunk_sha256: None,
            ..chunk(id, 1, 3, b"")
        };
        let svc2 = svc.clone();
        let slow = tokio::spawn(async move { svc2.upload_chunk(who(1), slow).await });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        // 10 recorded + 6 in flight + 5 > 20: block 2 is refused while block 1 is arriving.
        let err = svc
            .upload_chunk(who(1), chunk(id, 2, 3, b"ABCDE"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, UploadChunkError::Body(BodyError::TooLarge(ref m)) if m.contains("21")),
            "{err:?}"
        );
        // Block 1 ends at 8 bytes and is recorded; block 2 of 2 bytes then fits exactly.
        tx.unbounded_send(Ok(Bytes::from_static(b"gh"))).unwrap();
        drop(tx);
        assert!(!slow.await.unwrap().unwrap().is_complete);
        let last = svc
            .upload_chunk(who(1), chunk(id, 2, 3, b"AB"))
            .await
            .unwrap();
        assert!(last.is_complete);
    }

    #[tokio::test]
    async fn the_status_lists_received_and_missing_blocks() {
        let (svc, _) = service();
        let id = svc
            .upload_chunk(who(1), chunk(None, 0, 4, b"aa"))
            .await
            .unwrap()
            .file_id;
        svc.upload_chunk(who(1), chunk(Some(id), 2, 4, b"ccc"))
            .await
            .unwrap();
        let status = svc.file_status(who(1), id).await.unwrap();
        assert_eq!(
            status.lists,
            Some(BlockLists {
                received: vec![0, 2],
                missing: vec![1, 3]
            })
        );
        assert_eq!(status.missing_ranges, vec![[1, 1], [3, 3]]);
        assert_eq!(status.received_count, 2);
        assert_eq!(status.size, 5);
        assert_eq!(status.file_name, "report.pdf");
        assert!(!status.is_complete && status.url.is_none());
    }

    /// An upload of many blocks answers runs of missing blocks, not every index.
    #[tokio::test]
    async fn a_large_upload_answers_runs_instead_of_lists() {
        let (svc, _) = service();
        let id = svc
            .upload_chunk(who(1), chunk(None, 0, 50_000, b"aa"))
            .await
            .unwrap()
            .file_id;
        svc.upload_chunk(who(1), chunk(Some(id), 7, 50_000, b"b"))
            .await
            .unwrap();
        let status = svc.file_status(who(1), id).await.unwrap();
        assert_eq!(status.lists, None);
        assert_eq!(status.missing_ranges, vec![[1, 6], [8, 49_999]]);
        assert_eq!(status.received_count, 2);
    }
}
