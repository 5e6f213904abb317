//! The upload port: sessions, their staged blocks and the committed file, drawn as primitive
//! steps inside a transaction that holds one session's lock. The rule built from the steps
//! (when a file is complete, that it commits once) is [`crate::completion`]'s, not a store's.

use std::future::Future;

use chrono::{DateTime, Utc};
use filegate_domain::{
    BlockIndex, BlockSet, FileId, FileRecord, FirmId, Mode, SessionState, UploadSession,
};

use super::StoreError;
use crate::media_ports::OutgoingEvent;

/// One staged block as recorded: which index, the blob store's id for it, and its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedBlock {
    pub index: BlockIndex,
    pub part_id: String,
    pub size: u64,
}

/// What recording a block changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockUpsert {
    /// Distinct indices now staged.
    pub received: u32,
    /// The part an earlier block of the same index had, which nothing refers to any more.
    pub replaced: Option<String>,
}

/// An upload the sweeper expired: its session, and the blob store's id for its staging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiredUpload {
    pub file_id: FileId,
    pub upload_id: String,
}

/// A session as read back, with what it has received and, once committed, its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSnapshot {
    pub session: UploadSession,
    pub received: BlockSet,
    pub staged_bytes: u64,
    /// The session's creation or its newest recorded block, whichever is later: what its
    /// expiry counts from.
    pub last_activity: DateTime<Utc>,
    pub file: Option<FileRecord>,
}

/// A staged part as the commit needs it, in block order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedPart {
    pub part_id: String,
    pub size: u64,
}

/// A recorded block's part with its index, as a read outside the session's lock sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedPart {
    pub index: u32,
    pub part_id: String,
    pub size: u64,
}

/// What the lock found: the session's shape and state as the previous holder left them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockedSession {
    pub total_blocks: u32,
    pub state: SessionState,
}

impl From<&UploadSession> for LockedSession {
    fn from(session: &UploadSession) -> Self {
        Self {
            total_blocks: session.total_blocks.get(),
            state: session.state,
        }
    }
}

/// Upload sessions and the transaction that completes them.
pub trait UploadStore: Clone + Send + Sync + 'static {
    /// A transaction holding one session's lock. Dropping it without [`SessionTx::commit`]
    /// rolls it back.
    type Tx: SessionTx;

    /// Stores a new, open session. Its file id is fresh, so this never conflicts in practice;
    /// a duplicate id is reported as `StoreError::Conflict`.
    fn open_session(
        &self,
        session: &UploadSession,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The session of this firm with this id (another firm's session is `None`). Never waits
    /// for a session's lock: a commit in progress shows as "open, no file yet".
    fn find_session(
        &self,
        firm: FirmId,
        file: FileId,
    ) -> impl Future<Output = Result<Option<SessionSnapshot>, StoreError>> + Send;

    /// The parts recorded for the session so far, in index order, read without its lock: a
    /// snapshot to prepare a likely commit ahead, which the commit, under the lock, compares
    /// with the parts it then finds.
    fn recorded_parts(
        &self,
        file: FileId,
    ) -> impl Future<Output = Result<Vec<RecordedPart>, StoreError>> + Send;

    /// Expires every open session of `mode` that nothing reached since `idle_since` (neither
    /// its creation nor a recorded block), and answers them. Each session is expired once: of
    /// sweepers racing on one store exactly one answers it. A session being recorded to (its
    /// lock held) is either expired before, and the record then sees it expired, or after.
    fn expire_idle(
        &self,
        mode: Mode,
        idle_since: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<ExpiredUpload>, StoreError>> + Send;

    /// How many open uploads (neither committed, expired nor deleted) the firm has, counting
    /// no further than `up_to`: enough to tell whether it is at its quota, at a cost that does
    /// not grow past it.
    fn count_open_uploads(
        &self,
        firm: FirmId,
        up_to: u32,
    ) -> impl Future<Output = Result<u32, StoreError>> + Send;

    /// For each mode the firm has open uploads of, when the longest-idle of them was last
    /// active (its creation or newest block): when the firm's next open upload expires
    /// follows from these and the modes' expiry times.
    fn idlest_open_uploads(
        &self,
        firm: FirmId,
    ) -> impl Future<Output = Result<Vec<(Mode, DateTime<Utc>)>, StoreError>> + Send;

    /// Whether an open session stages its blocks under this blob store upload id: the staging
    /// of any other upload (committed, or never given a session) is a leftover.
    fn upload_is_open(
        &self,
        upload_id: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Begins a transaction that stores a new session and holds its lock, so that a new
    /// upload's first block is recorded (and, for a file of one block, committed) in the same
    /// transaction that creates the session: one transaction instead of two, and a first block
    /// that fails leaves no session. A duplicate id is `StoreError::Conflict`.
    fn open_and_lock(
        &self,
        session: &UploadSession,
    ) -> impl Future<Output = Result<(Self::Tx, LockedSession), StoreError>> + Send;

    /// Records a new file of one block, complete: its session (committed), its block, its file
    /// record and the record's outbox event, in one transaction. Nobody can know of the file
    /// before this answers (its id is new), so there is nothing to wait for or count, and a
    /// store can do it in fewer statements than the general path
    /// ([`Self::open_and_lock`], then the block, the record, the event and the state). A
    /// duplicate id is `StoreError::Conflict`, and then nothing is kept.
    fn record_whole_file(
        &self,
        session: &UploadSession,
        block: &StagedBlock,
        record: &FileRecord,
        event: &OutgoingEvent,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        async move {
            let (mut tx, _) = self.open_and_lock(session).await?;
            tx.upsert_block(block).await?;
            tx.insert_file(record).await?;
            tx.insert_event(event).await?;
            tx.mark_committed().await?;
            tx.commit().await
        }
    }

    /// Records a block of an open upload when it leaves the upload incomplete, as one step
    /// under the session's lock: most chunks of a file are such blocks, and a store that can do
    /// it in one round trip (Postgres, a function of migration 0011) saves the five others of
    /// the general path (`BEGIN`, the lock, the previous part, the count, `COMMIT`), each a
    /// wake-up of the database on a machine it shares. `None`, with nothing changed, when the
    /// block is not such a block (no session, a session no longer open, or this block would
    /// complete it): the caller then takes the general path ([`Self::lock_session`] and the
    /// completion rule), which decides what those mean.
    fn record_incomplete_block(
        &self,
        file: FileId,
        block: &StagedBlock,
    ) -> impl Future<Output = Result<Option<BlockUpsert>, StoreError>> + Send {
        crate::completion::record_incomplete_block_in_steps(self, file, block)
    }

    /// Begins a transaction and takes the session's lock, waiting for the current holder:
    /// whoever holds it sees the block set as the previous holder left it, committed or not.
    /// `None` when there is no such session.
    fn lock_session(
        &self,
        file: FileId,
    ) -> impl Future<Output = Result<Option<(Self::Tx, LockedSession)>, StoreError>> + Send;
}

/// The steps of the completion rule, inside one transaction on one locked session.
pub trait SessionTx: Send + Sized {
    /// The committed file of this session, if there is one.
    fn committed_file(
        &mut self,
    ) -> impl Future<Output = Result<Option<FileRecord>, StoreError>> + Send;

    /// Records a staged block, replacing an earlier one with the same index, and answers how
    /// many distinct indices are now staged and the part it replaced, if any.
    fn upsert_block(
        &mut self,
        block: &StagedBlock,
    ) -> impl Future<Output = Result<BlockUpsert, StoreError>> + Send;

    /// Every staged part, in block order.
    fn staged_parts(&mut self) -> impl Future<Output = Result<Vec<StagedPart>, StoreError>> + Send;

    fn insert_file(
        &mut self,
        record: &FileRecord,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Stores an event in the outbox. Writing an event whose id is already there keeps the
    /// first and does not fail the transaction.
    fn insert_event(
        &mut self,
        event: &OutgoingEvent,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Marks the session committed (with the time of completion).
    fn mark_committed(&mut self) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn commit(self) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn rollback(self) -> impl Future<Output = Result<(), StoreError>> + Send;
}
