//! The ports: what the use cases need from the outside world, and nothing about how.

use std::future::Future;
use std::ops::Range;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;

use filegate_domain::{
    ApiKeyId, BlobPath, BlockIndex, BlockSet, FileId, FileRecord, FirmId, TaskId, UploadSession,
    UserId,
};

use crate::media_ports::OutgoingEvent;

/// A failure of the metadata store. `Unavailable` means the store could not be reached or is
/// overloaded: the request can be retried as it is.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the metadata store is unavailable")]
    Unavailable(#[source] anyhow::Error),
    #[error("the metadata store refused the operation: {0}")]
    Conflict(String),
    #[error(transparent)]
    Unknown(anyhow::Error),
}

/// A failure of the blob store, split by what the caller can do about it.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blob not found: {0}")]
    NotFound(String),
    /// The container (or root folder) does not exist: a deployment mistake, not a client one.
    #[error("the blob container is missing: {0}")]
    ContainerMissing(String),
    #[error("the blob store is unavailable")]
    Unavailable(#[source] anyhow::Error),
    #[error(transparent)]
    Unknown(anyhow::Error),
}

/// What an API key stands for, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredApiKey {
    pub id: ApiKeyId,
    /// SHA-256 of the whole key, lower-case hex. The key itself is never stored.
    pub hash: String,
    pub firm: FirmId,
    pub user: UserId,
    pub created_at: DateTime<Utc>,
}

/// One staged block as recorded: which index, the blob store's id for it, and its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedBlock {
    pub index: BlockIndex,
    pub part_id: String,
    pub size: u64,
}

/// What the store hands to the commit step once every block is present: the part ids in index
/// order and the file's size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitPlan {
    pub part_ids: Vec<String>,
    pub size: u64,
}

/// The result of recording one block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockOutcome {
    /// Recorded; the file still misses blocks.
    Staged { received: u32 },
    /// This request recorded the last missing block and committed the file.
    Committed(FileRecord),
    /// Another request committed the file while this one was staging its block.
    CommittedMeanwhile(FileRecord),
}

/// A failure of [`MetadataStore::record_block`]: either the store itself or the commit step
/// the caller supplied. Either way the transaction was rolled back.
#[derive(Debug, thiserror::Error)]
pub enum RecordError<E> {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the session does not exist")]
    SessionMissing,
    #[error("commit failed")]
    Commit(E),
}

/// A session as read back, with what it has received and, once committed, its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSnapshot {
    pub session: UploadSession,
    pub received: BlockSet,
    pub staged_bytes: u64,
    pub file: Option<FileRecord>,
}

/// Where a media task stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskStatus {
    /// Claimed by a delivery, or waiting for its next try.
    Pending,
    /// Sent: Meta's answer is recorded; a redelivery is acknowledged without a second send.
    Succeeded,
    /// Given up: dead-lettered with `last_error`.
    Failed,
}

impl TaskStatus {
    pub const fn as_str(&self) -> &'static str {
        match self {
            TaskStatus::Pending => "pending",
            TaskStatus::Succeeded => "succeeded",
            TaskStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(TaskStatus::Pending),
            "succeeded" => Some(TaskStatus::Succeeded),
            "failed" => Some(TaskStatus::Failed),
            _ => None,
        }
    }
}

/// A media task's recorded outcome and progress. Every step's result is recorded as soon as
/// Meta answers, so that a retry or a redelivery resumes after the last recorded step instead of
/// repeating it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRecord {
    pub id: TaskId,
    pub firm: FirmId,
    pub file: FileId,
    /// `message` or `template`.
    pub kind: String,
    pub status: TaskStatus,
    /// Deliveries that worked on it.
    pub attempts: u32,
    /// Message media: the id from `POST /{phone}/media`.
    pub media_id: Option<String>,
    /// Template media: the resumable upload session (`upload:...`), to resume after a break.
    pub upload_session: Option<String>,
    /// Template media: the handle `h`.
    pub handle: Option<String>,
    /// Message: Meta's message id (`wamid...`); template: the template id.
    pub result_id: Option<String>,
    pub last_error: Option<String>,
    /// Until when the current delivery holds the task; another delivery of the same task
    /// waits until then, so that two deliveries never send at the same time.
    pub lease_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The answer to a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskClaim {
    /// This delivery holds the task now (first sight, or an earlier delivery's lease ran out);
    /// `attempts` has been counted up and the lease set.
    Claimed(TaskRecord),
    /// Already succeeded or failed: nothing to do.
    Finished(TaskRecord),
    /// Another delivery holds a live lease.
    Busy(TaskRecord),
}

/// Sessions, blocks, files and API keys.
pub trait MetadataStore: Clone + Send + Sync + 'static {
    /// Answers whether the store is reachable and migrated.
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn insert_api_key(
        &self,
        key: &StoredApiKey,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The live (not revoked) key with this hash.
    fn find_api_key(
        &self,
        hash: &str,
    ) -> impl Future<Output = Result<Option<StoredApiKey>, StoreError>> + Send;

    /// Marks a key revoked; answers whether a live key was found.
    fn revoke_api_key(
        &self,
        id: ApiKeyId,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Counts live keys (the first start creates one when there is none).
    fn count_api_keys(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Stores a new, open session. Its file id is fresh, so this never conflicts in practice;
    /// a duplicate id is reported as `StoreError::Conflict`.
    fn open_session(
        &self,
        session: &UploadSession,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The session of this firm with this id (another firm's session is `None`).
    fn find_session(
        &self,
        firm: FirmId,
        file: FileId,
    ) -> impl Future<Output = Result<Option<SessionSnapshot>, StoreError>> + Send;

    /// Claims a task for one delivery, atomically: creates its record (status pending,
    /// attempts 1) on first sight, or counts up `attempts` and takes the lease when the task is
    /// pending and no live lease is held (`lease_until` absent or before `now`). `firm`, `file`
    /// and `kind` are only used when the record is created.
    fn claim_task(
        &self,
        id: TaskId,
        firm: FirmId,
        file: FileId,
        kind: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> impl Future<Output = Result<TaskClaim, StoreError>> + Send;

    /// Writes a task's progress and outcome (every field but id, firm, file, kind and
    /// created_at), as the holder of its lease.
    fn save_task(&self, task: &TaskRecord) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn find_task(
        &self,
        id: TaskId,
    ) -> impl Future<Output = Result<Option<TaskRecord>, StoreError>> + Send;

    /// The oldest events not yet published, at most `limit`, oldest first.
    fn unpublished_events(
        &self,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<OutgoingEvent>, StoreError>> + Send;

    /// Marks events published (by id); unknown ids are ignored.
    fn mark_events_published(
        &self,
        ids: &[String],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records a staged block (replacing an earlier one with the same index) and, when that
    /// makes the set complete, runs `commit` and stores its file record, all in one transaction
    /// holding the session's lock: of two racing final blocks exactly one runs `commit`, and the
    /// other sees its result. When `commit` fails, nothing of this call is kept.
    ///
    /// The same transaction that stores the file record stores the `file.completed` event of
    /// [`crate::events::file_completed`] in the outbox, so that the event exists exactly when
    /// the file does (the transactional outbox).
    fn record_block<F, Fut, E>(
        &self,
        file: FileId,
        block: StagedBlock,
        commit: F,
    ) -> impl Future<Output = Result<BlockOutcome, RecordError<E>>> + Send
    where
        F: FnOnce(CommitPlan) -> Fut + Send,
        Fut: Future<Output = Result<FileRecord, E>> + Send,
        E: Send;
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

/// The time, as a port so that tests can fix it.
pub trait Clock: Clone + Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

/// Fresh identifiers and secrets.
pub trait IdSource: Clone + Send + Sync + 'static {
    fn file_id(&self) -> FileId;
    fn api_key_id(&self) -> ApiKeyId;
    /// 32 random bytes for a new API key.
    fn secret(&self) -> [u8; 32];
}
