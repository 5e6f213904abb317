//! `MetadataStore` on SQLite.

use std::future::Future;

use chrono::{DateTime, Utc};
use filegate_application::ports::{
    BlockOutcome, CommitPlan, MetadataStore, RecordError, SessionSnapshot, StagedBlock, StoreError,
    StoredApiKey,
};
use filegate_domain::{
    ApiKeyId, BlockSet, FileId, FileRecord, FirmId, SessionState, UploadSession,
};
use sqlx::sqlite::SqliteExecutor;

use crate::SqliteStore;
use crate::errors::{corrupt, store_error};
use crate::rows::{
    ApiKeyRow, FileRow, SnapshotRow, indices, time_text, to_i64, unsigned, uuid_text,
};

/// Starts a transaction that holds the database's write lock from its first statement (a plain
/// `BEGIN` takes it only at the first write, and a transaction that read before it cannot wait
/// for it: it fails with `SQLITE_BUSY`). The lock is what `SELECT ... FOR UPDATE` is in
/// Postgres: whoever holds it sees the block set as the previous holder left it.
const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";

impl MetadataStore for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        let pending = self.pending_migrations().await?;
        if pending.is_empty() {
            Ok(())
        } else {
            Err(StoreError::Unavailable(anyhow::anyhow!(
                "the database is reachable but its schema is not migrated (pending migrations: {pending:?})"
            )))
        }
    }

    async fn insert_api_key(&self, key: &StoredApiKey) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO api_keys (id, key_hash, firm_id, user_id, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .bind(uuid_text(key.id.as_uuid()))
        .bind(&key.hash)
        .bind(uuid_text(key.firm.as_uuid()))
        .bind(uuid_text(key.user.as_uuid()))
        .bind(time_text(key.created_at, "api key creation time")?)
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(())
    }

    async fn find_api_key(&self, hash: &str) -> Result<Option<StoredApiKey>, StoreError> {
        let row: Option<ApiKeyRow> = sqlx::query_as(
            "SELECT id, key_hash, firm_id, user_id, created_at FROM api_keys
             WHERE key_hash = ?1 AND revoked_at IS NULL",
        )
        .bind(hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?;
        row.map(ApiKeyRow::into_domain).transpose()
    }

    async fn revoke_api_key(&self, id: ApiKeyId, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL")
                .bind(uuid_text(id.as_uuid()))
                .bind(time_text(at, "api key revocation time")?)
                .execute(&self.pool)
                .await
                .map_err(store_error)?;
        Ok(done.rows_affected() > 0)
    }

    async fn count_api_keys(&self) -> Result<u64, StoreError> {
        let live: i64 =
            sqlx::query_scalar("SELECT count(*) FROM api_keys WHERE revoked_at IS NULL")
                .fetch_one(&self.pool)
                .await
                .map_err(store_error)?;
        u64::try_from(live).map_err(|_| corrupt(format_args!("negative key count {live}")))
    }

    async fn open_session(&self, session: &UploadSession) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO upload_sessions
                 (file_id, firm_id, user_id, mode, total_blocks, file_name, content_type, blob_path,
                  upload_id, state, created_at, completed_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11,
                     CASE WHEN ?10 = 'committed' THEN ?12 END)",
        )
        .bind(uuid_text(session.file_id.as_uuid()))
        .bind(uuid_text(session.firm.as_uuid()))
        .bind(uuid_text(session.user.as_uuid()))
        .bind(session.mode.as_str())
        .bind(i64::from(session.total_blocks.get()))
        .bind(session.file_name.as_str())
        .bind(&session.content_type)
        .bind(session.blob_path.as_str())
        .bind(&session.upload_id)
        .bind(session.state.as_str())
        .bind(time_text(session.created_at, "session creation time")?)
        .bind(time_text(Utc::now(), "the current time")?)
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(())
    }

    async fn find_session(
        &self,
        firm: FirmId,
        file: FileId,
    ) -> Result<Option<SessionSnapshot>, StoreError> {
        // One statement is one read snapshot: the session and its blocks agree.
        let row: Option<SnapshotRow> = sqlx::query_as(
            "SELECT s.file_id, s.firm_id, s.user_id, s.mode, s.total_blocks, s.file_name,
                    s.content_type, s.blob_path, s.upload_id, s.state, s.created_at,
                    (SELECT group_concat(block_index) FROM staged_blocks b
                     WHERE b.file_id = s.file_id) AS received,
                    (SELECT COALESCE(sum(size), 0) FROM staged_blocks b
                     WHERE b.file_id = s.file_id) AS staged_bytes
             FROM upload_sessions s
             WHERE s.file_id = ?1 AND s.firm_id = ?2",
        )
        .bind(uuid_text(file.as_uuid()))
        .bind(uuid_text(firm.as_uuid()))
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let session = row.session.into_domain()?;
        let received = BlockSet::from_indices(
            session.total_blocks,
            indices(row.received.as_deref(), file)?,
        )
        .map_err(|e| corrupt(format_args!("file {file}: {e}")))?;
        let staged_bytes = unsigned(row.staged_bytes, "staged blocks of file", file)?;
        // The session row was read first, and a file row is written in the transaction that
        // commits its session and never removed, so a commit landing in between shows as
        // "open, no file yet", never as "committed without a file".
        let file_record = match session.state {
            SessionState::Committed => {
                Some(committed_file(&self.pool, file).await?.ok_or_else(|| {
                    corrupt(format_args!(
                        "file {file}: committed session without a file row"
                    ))
                })?)
            }
            SessionState::Open => None,
        };
        Ok(Some(SessionSnapshot {
            session,
            received,
            staged_bytes,
            file: file_record,
        }))
    }

    async fn record_block<F, Fut, E>(
        &self,
        file: FileId,
        block: StagedBlock,
        commit: F,
    ) -> Result<BlockOutcome, RecordError<E>>
    where
        F: FnOnce(CommitPlan) -> Fut + Send,
        Fut: Future<Output = Result<FileRecord, E>> + Send,
        E: Send,
    {
        let id = uuid_text(file.as_uuid());
        let index = i64::from(block.index.get());
        let size = to_i64(block.size, "block size")?;
        // Queues (up to the busy timeout) behind any other writer of the database, so that
        // racing final blocks take turns; a dropped transaction rolls back and lets go.
        let mut tx = self
            .pool
            .begin_with(BEGIN_WRITE)
            .await
            .map_err(store_error)?;

        let locked: Option<(i64, String)> =
            sqlx::query_as("SELECT total_blocks, state FROM upload_sessions WHERE file_id = ?1")
                .bind(&id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(store_error)?;
        let Some((total, state)) = locked else {
            return Err(RecordError::SessionMissing);
        };
        match SessionState::parse(&state) {
            Some(SessionState::Open) => {}
            Some(SessionState::Committed) => {
                let record = committed_file(&mut *tx, file).await?.ok_or_else(|| {
                    corrupt(format_args!(
                        "file {file}: committed session without a file row"
                    ))
                })?;
                tx.commit().await.map_err(store_error)?;
                return Ok(BlockOutcome::CommittedMeanwhile(record));
            }
            None => {
                return Err(corrupt(format_args!(
                    "upload session {file}: unknown state `{state}`"
                ))
                .into());
            }
        }

        // Upserts the block and keeps the session's count of distinct indices; nobody else
        // writes in between, so "was this index staged before?" stays true until the update.
        let previous: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM staged_blocks WHERE file_id = ?1 AND block_index = ?2)",
        )
        .bind(&id)
        .bind(index)
        .fetch_one(&mut *tx)
        .await
        .map_err(store_error)?;
        let now = time_text(Utc::now(), "the current time")?;
        sqlx::query(
            "INSERT INTO staged_blocks (file_id, block_index, part_id, size, staged_at)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (file_id, block_index)
             DO UPDATE SET part_id = excluded.part_id, size = excluded.size,
                           staged_at = excluded.staged_at",
        )
        .bind(&id)
        .bind(index)
        .bind(&block.part_id)
        .bind(size)
        .bind(&now)
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        let received: i64 = sqlx::query_scalar(
            "UPDATE upload_sessions SET received_blocks = received_blocks + ?2
             WHERE file_id = ?1
             RETURNING received_blocks",
        )
        .bind(&id)
        .bind(if previous { 0_i64 } else { 1 })
        .fetch_one(&mut *tx)
        .await
        .map_err(store_error)?;

        if received < total {
            tx.commit().await.map_err(store_error)?;
            let received = u32::try_from(received)
                .map_err(|_| corrupt(format_args!("file {file}: block count {received}")))?;
            return Ok(BlockOutcome::Staged { received });
        }

        let parts: Vec<(String, i64)> = sqlx::query_as(
            "SELECT part_id, size FROM staged_blocks WHERE file_id = ?1 ORDER BY block_index",
        )
        .bind(&id)
        .fetch_all(&mut *tx)
        .await
        .map_err(store_error)?;
        if usize::try_from(total).ok() != Some(parts.len()) {
            return Err(corrupt(format_args!(
                "file {file}: the session counts {received} blocks but {} are staged",
                parts.len()
            ))
            .into());
        }
        let mut plan = CommitPlan {
            part_ids: Vec::with_capacity(parts.len()),
            size: 0,
        };
        for (part_id, part_size) in parts {
            plan.size = plan
                .size
                .checked_add(unsigned(part_size, "staged block of file", file)?)
                .ok_or_else(|| {
                    corrupt(format_args!("file {file}: the staged sizes overflow u64"))
                })?;
            plan.part_ids.push(part_id);
        }

        // The commit runs while this transaction holds the write lock, which is what makes it
        // run once; every other writer of the database waits meanwhile.
        let record = match commit(plan).await {
            Ok(record) => record,
            Err(e) => {
                if let Err(rollback) = tx.rollback().await {
                    // The transaction is rolled back when the connection is dropped either way.
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
        insert_file(&mut *tx, &record).await?;
        let completed_at = time_text(Utc::now(), "the current time")?;
        sqlx::query(
            "UPDATE upload_sessions SET state = 'committed', completed_at = ?2 WHERE file_id = ?1",
        )
        .bind(&id)
        .bind(completed_at)
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        Ok(BlockOutcome::Committed(record))
    }
}

async fn committed_file<'c>(
    exec: impl SqliteExecutor<'c>,
    file: FileId,
) -> Result<Option<FileRecord>, StoreError> {
    let row: Option<FileRow> = sqlx::query_as(
        "SELECT id, firm_id, user_id, mode, blob_path, url, file_name, content_type, size, created_at
         FROM files WHERE id = ?1",
    )
    .bind(uuid_text(file.as_uuid()))
    .fetch_optional(exec)
    .await
    .map_err(store_error)?;
    row.map(FileRow::into_domain).transpose()
}

async fn insert_file<'c>(
    exec: impl SqliteExecutor<'c>,
    record: &FileRecord,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO files
             (id, firm_id, user_id, mode, blob_path, url, file_name, content_type, size, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )
    .bind(uuid_text(record.id.as_uuid()))
    .bind(uuid_text(record.firm.as_uuid()))
    .bind(uuid_text(record.user.as_uuid()))
    .bind(record.mode.as_str())
    .bind(record.blob_path.as_str())
    .bind(&record.url)
    .bind(record.file_name.as_str())
    .bind(&record.content_type)
    .bind(to_i64(record.size, "file size")?)
    .bind(time_text(record.created_at, "file creation time")?)
    .execute(exec)
    .await
    .map_err(store_error)?;
    Ok(())
}
