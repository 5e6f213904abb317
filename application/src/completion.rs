//! The completion rule, written once for every store: record a staged block under the
//! session's lock and, when that makes the set complete, commit the file exactly once.
//!
//! A store provides only the primitive steps ([`SessionTx`]) inside a transaction that holds
//! the session's lock (`SELECT ... FOR UPDATE` on Postgres, `BEGIN IMMEDIATE` on SQLite, a
//! per-session mutex in memory); this module decides what to do with them. Of two requests
//! racing to stage the last block, the lock lets exactly one see the set complete and run the
//! commit; the other waits, then finds the session committed.

use std::future::Future;

use filegate_domain::{FileId, FileRecord, SessionState, UploadSession};

use crate::events;
use crate::ports::{BlockUpsert, LockedSession, SessionTx, StagedBlock, StoreError, UploadStore};

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
    Staged {
        received: u32,
        /// The part of an earlier block of the same index, which this one replaced: its bytes
        /// may go.
        replaced: Option<String>,
    },
    /// This request recorded the last missing block and committed the file.
    Committed(FileRecord),
    /// Another request committed the file while this one was staging its block.
    CommittedMeanwhile(FileRecord),
}

/// A failure of [`record_block`]: either the store itself or the commit step
/// the caller supplied. Either way the transaction was rolled back.
#[derive(Debug, thiserror::Error)]
pub enum RecordError<E> {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the session does not exist")]
    SessionMissing,
    /// The sweeper expired the session before this block could be recorded.
    #[error("the upload expired")]
    Expired,
    #[error("commit failed")]
    Commit(E),
}

/// Records a staged block (replacing an earlier one with the same index) and, when that makes
/// the set complete, runs `commit` and stores its file record, all in one transaction holding
/// the session's lock: of two racing final blocks exactly one runs `commit`, and the other sees
/// its result. When `commit` fails, nothing of this call is kept.
///
/// The same transaction that stores the file record stores the `file.completed` event of
/// [`events::file_completed`] in the outbox, so that the event exists exactly when the file
/// does (the transactional outbox).
pub async fn record_block<S, F, Fut, E>(
    store: &S,
    file: FileId,
    block: StagedBlock,
    commit: F,
) -> Result<BlockOutcome, RecordError<E>>
where
    S: UploadStore,
    F: FnOnce(CommitPlan) -> Fut + Send,
    Fut: Future<Output = Result<FileRecord, E>> + Send,
    E: Send,
{
    let Some((tx, locked)) = store.lock_session(file).await? else {
        return Err(RecordError::SessionMissing);
    };
    record_locked(tx, locked, file, block, commit).await
}

/// [`record_block`] for a block the caller expects to leave the file incomplete (every chunk
/// but the last, as far as the session's snapshot told): the store records it in one step
/// where it can ([`UploadStore::record_incomplete_block`]); when it would complete the file
/// after all, or the session is no longer open, the rule above runs and decides.
pub async fn record_block_expecting_more<S, F, Fut, E>(
    store: &S,
    file: FileId,
    block: StagedBlock,
    commit: F,
) -> Result<BlockOutcome, RecordError<E>>
where
    S: UploadStore,
    F: FnOnce(CommitPlan) -> Fut + Send,
    Fut: Future<Output = Result<FileRecord, E>> + Send,
    E: Send,
{
    if let Some(BlockUpsert { received, replaced }) =
        store.record_incomplete_block(file, &block).await?
    {
        return Ok(BlockOutcome::Staged { received, replaced });
    }
    record_block(store, file, block, commit).await
}

/// [`UploadStore::record_incomplete_block`] made of the general steps, in one transaction on
/// the session's lock: the port's default, and what a store that overrides it must match.
pub async fn record_incomplete_block_in_steps<S: UploadStore>(
    store: &S,
    file: FileId,
    block: &StagedBlock,
) -> Result<Option<BlockUpsert>, StoreError> {
    let Some((mut tx, locked)) = store.lock_session(file).await? else {
        return Ok(None);
    };
    if locked.state != SessionState::Open {
        tx.rollback().await?;
        return Ok(None);
    }
    let upsert = tx.upsert_block(block).await?;
    if upsert.received >= locked.total_blocks {
        tx.rollback().await?;
        return Ok(None);
    }
    tx.commit().await?;
    Ok(Some(upsert))
}

/// [`record_block`] for the first block of a new upload: the session is stored by the same
/// transaction that records the block (and, for a file of one block, commits it), so a new
/// file costs one transaction less, and a first block whose commit fails leaves no session.
pub async fn record_first_block<S, F, Fut, E>(
    store: &S,
    session: &UploadSession,
    block: StagedBlock,
    commit: F,
) -> Result<BlockOutcome, RecordError<E>>
where
    S: UploadStore,
    F: FnOnce(CommitPlan) -> Fut + Send,
    Fut: Future<Output = Result<FileRecord, E>> + Send,
    E: Send,
{
    let (tx, locked) = store.open_and_lock(session).await?;
    record_locked(tx, locked, session.file_id, block, commit).await
}

/// The rule itself, on a transaction that holds the session's lock.
async fn record_locked<T, F, Fut, E>(
    mut tx: T,
    locked: LockedSession,
    file: FileId,
    block: StagedBlock,
    commit: F,
) -> Result<BlockOutcome, RecordError<E>>
where
    T: SessionTx,
    F: FnOnce(CommitPlan) -> Fut + Send,
    Fut: Future<Output = Result<FileRecord, E>> + Send,
    E: Send,
{
    if locked.state == SessionState::Committed {
        let record = tx.committed_file().await?.ok_or_else(|| {
            StoreError::Unknown(anyhow::anyhow!(
                "file {file}: committed session without a file record"
            ))
        })?;
        tx.commit().await?;
        return Ok(BlockOutcome::CommittedMeanwhile(record));
    }

    match locked.state {
        SessionState::Expired => {
            tx.rollback().await?;
            return Err(RecordError::Expired);
        }
        // A deleted upload is gone for its firm too.
        SessionState::Deleted => {
            tx.rollback().await?;
            return Err(RecordError::SessionMissing);
        }
        SessionState::Open | SessionState::Committed => {}
    }
    let BlockUpsert { received, replaced } = tx.upsert_block(&block).await?;
    if received < locked.total_blocks {
        tx.commit().await?;
        return Ok(BlockOutcome::Staged { received, replaced });
    }

    let parts = tx.staged_parts().await?;
    if parts.len() != locked.total_blocks as usize {
        return Err(StoreError::Unknown(anyhow::anyhow!(
            "file {file}: the session counts {received} blocks but {} are staged",
            parts.len()
        ))
        .into());
    }
    let mut plan = CommitPlan {
        part_ids: Vec::with_capacity(parts.len()),
        size: 0,
    };
    for part in parts {
        plan.size = plan.size.checked_add(part.size).ok_or_else(|| {
            StoreError::Unknown(anyhow::anyhow!(
                "file {file}: the staged sizes overflow u64"
            ))
        })?;
        plan.part_ids.push(part.part_id);
    }

    // The commit runs while the session stays locked, which is what makes it run once.
    let record = match commit(plan).await {
        Ok(record) => record,
        Err(e) => {
            if let Err(rollback) = tx.rollback().await {
                // The transaction is discarded either way (its connection is dropped).
                tracing::warn!(error = %rollback, %file, "rollback after a failed commit failed");
            }
            return Err(RecordError::Commit(e));
        }
    };
    if record.id != file {
        return Err(StoreError::Unknown(anyhow::anyhow!(
            "the commit of file {file} returned the record of file {}",
            record.id
        ))
        .into());
    }
    tx.insert_file(&record).await?;
    // The transactional outbox: the event is kept exactly when the file is.
    tx.insert_event(&events::file_completed(&record)).await?;
    tx.mark_committed().await?;
    tx.commit().await?;
    Ok(BlockOutcome::Committed(record))
}

/// The session's committed file, read under the session's lock: a commit in flight is waited
/// for rather than missed, so that a request that raced it (and found the staging area gone)
/// sees its outcome instead of a half-done state.
pub async fn committed_file<S: UploadStore>(
    store: &S,
    file: FileId,
) -> Result<Option<FileRecord>, StoreError> {
    let Some((mut tx, locked)) = store.lock_session(file).await? else {
        return Ok(None);
    };
    let record = match locked.state {
        SessionState::Committed => tx.committed_file().await?,
        SessionState::Open | SessionState::Expired | SessionState::Deleted => None,
    };
    // Nothing was written; letting go of the lock is all that is left.
    tx.rollback().await?;
    Ok(record)
}
