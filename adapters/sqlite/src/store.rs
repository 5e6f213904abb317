//! The metadata ports on SQLite: the SQL text and the binding of values in SQLite's
//! encodings. The rules these steps serve (completion, claims) live in the application.

use chrono::{DateTime, Utc};
use filegate_application::media_ports::OutgoingEvent;
use filegate_application::ports::{
    ClaimDecision, KeyStore, LockedSession, OutboxStore, SessionSnapshot, SessionTx, StagedBlock,
    StagedPart, StoreError, StoreHealth, StoredApiKey, TASK_KINDS, TaskClaim, TaskRecord,
    TaskStore, UploadStore,
};
use filegate_domain::{ApiKeyId, FileId, FileRecord, FirmId, SessionState, TaskId, UploadSession};
use filegate_sql_rows::{
    EventRow, PartRow, corrupt, file_columns, session_columns, session_state, task_columns, to_i64,
    unstorable,
};
use sqlx::sqlite::SqliteExecutor;
use sqlx::{Sqlite, Transaction};

use crate::SqliteStore;
use crate::encoding::{ApiKeyRow, FileRow, SnapshotRow, TaskRow, Text, time_text, uuid_text};
use crate::errors::store_error;

/// Starts a transaction that holds the database's write lock from its first statement (a plain
/// `BEGIN` takes it only at the first write, and a transaction that read before it cannot wait
/// for it: it fails with `SQLITE_BUSY`). The lock is what `SELECT ... FOR UPDATE` is in
/// Postgres: whoever holds it sees the block set as the previous holder left it.
const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";

impl StoreHealth for SqliteStore {
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
}

impl KeyStore for SqliteStore {
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
        row.map(ApiKeyRow::into_domain::<Text>).transpose()
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
}

impl UploadStore for SqliteStore {
    type Tx = SqliteSessionTx;

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
        let row: Option<SnapshotRow> = sqlx::query_as(concat!(
            "SELECT ",
            session_columns!(),
            ", (SELECT group_concat(block_index) FROM staged_blocks b
                WHERE b.file_id = s.file_id) AS received,
               (SELECT COALESCE(sum(size), 0) FROM staged_blocks b
                WHERE b.file_id = s.file_id) AS staged_bytes
             FROM upload_sessions s
             WHERE s.file_id = ?1 AND s.firm_id = ?2"
        ))
        .bind(uuid_text(file.as_uuid()))
        .bind(uuid_text(firm.as_uuid()))
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let (session, received, staged_bytes) = row.into_domain::<Text>()?;
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

    async fn lock_session(
        &self,
        file: FileId,
    ) -> Result<Option<(SqliteSessionTx, LockedSession)>, StoreError> {
        let id = uuid_text(file.as_uuid());
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
            return Ok(None);
        };
        let locked = LockedSession {
            total_blocks: u32::try_from(total)
                .map_err(|_| corrupt(format_args!("file {file}: total blocks {total}")))?,
            state: session_state(&state, file)?,
        };
        Ok(Some((SqliteSessionTx { tx, file, id }, locked)))
    }
}

/// A transaction holding the database's write lock, on one session.
#[derive(Debug)]
pub struct SqliteSessionTx {
    tx: Transaction<'static, Sqlite>,
    file: FileId,
    /// The file id in its stored form.
    id: String,
}

impl SessionTx for SqliteSessionTx {
    async fn committed_file(&mut self) -> Result<Option<FileRecord>, StoreError> {
        committed_file(&mut *self.tx, self.file).await
    }

    async fn upsert_block(&mut self, block: &StagedBlock) -> Result<u32, StoreError> {
        let index = i64::from(block.index.get());
        // Nobody else writes in between (this transaction holds the write lock), so "was this
        // index staged before?" stays true until the count is updated.
        let previous: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM staged_blocks WHERE file_id = ?1 AND block_index = ?2)",
        )
        .bind(&self.id)
        .bind(index)
        .fetch_one(&mut *self.tx)
        .await
        .map_err(store_error)?;
        sqlx::query(
            "INSERT INTO staged_blocks (file_id, block_index, part_id, size, staged_at)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (file_id, block_index)
             DO UPDATE SET part_id = excluded.part_id, size = excluded.size,
                           staged_at = excluded.staged_at",
        )
        .bind(&self.id)
        .bind(index)
        .bind(&block.part_id)
        .bind(to_i64(block.size, "block size")?)
        .bind(time_text(Utc::now(), "the current time")?)
        .execute(&mut *self.tx)
        .await
        .map_err(store_error)?;
        let received: i64 = sqlx::query_scalar(
            "UPDATE upload_sessions SET received_blocks = received_blocks + ?2
             WHERE file_id = ?1
             RETURNING received_blocks",
        )
        .bind(&self.id)
        .bind(if previous { 0_i64 } else { 1 })
        .fetch_one(&mut *self.tx)
        .await
        .map_err(store_error)?;
        u32::try_from(received)
            .map_err(|_| corrupt(format_args!("file {}: block count {received}", self.file)))
    }

    async fn staged_parts(&mut self) -> Result<Vec<StagedPart>, StoreError> {
        let rows: Vec<PartRow> = sqlx::query_as(
            "SELECT part_id, size FROM staged_blocks WHERE file_id = ?1 ORDER BY block_index",
        )
        .bind(&self.id)
        .fetch_all(&mut *self.tx)
        .await
        .map_err(store_error)?;
        rows.into_iter().map(|r| r.into_domain(self.file)).collect()
    }

    async fn insert_file(&mut self, record: &FileRecord) -> Result<(), StoreError> {
        sqlx::query(concat!(
            "INSERT INTO files (",
            file_columns!(),
            ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
        ))
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
        .execute(&mut *self.tx)
        .await
        .map_err(store_error)?;
        Ok(())
    }

    async fn insert_event(&mut self, event: &OutgoingEvent) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO outbox (id, routing_key, payload, created_at)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(&event.id)
        .bind(&event.routing_key)
        .bind(&event.payload)
        .bind(time_text(Utc::now(), "the current time")?)
        .execute(&mut *self.tx)
        .await
        .map_err(store_error)?;
        Ok(())
    }

    async fn mark_committed(&mut self) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE upload_sessions SET state = 'committed', completed_at = ?2 WHERE file_id = ?1",
        )
        .bind(&self.id)
        .bind(time_text(Utc::now(), "the current time")?)
        .execute(&mut *self.tx)
        .await
        .map_err(store_error)?;
        Ok(())
    }

    async fn commit(self) -> Result<(), StoreError> {
        self.tx.commit().await.map_err(store_error)
    }

    async fn rollback(self) -> Result<(), StoreError> {
        self.tx.rollback().await.map_err(store_error)
    }
}

impl TaskStore for SqliteStore {
    async fn claim_task(
        &self,
        id: TaskId,
        firm: FirmId,
        file: FileId,
        kind: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<TaskClaim, StoreError> {
        if !TASK_KINDS.contains(&kind) {
            return Err(unstorable(format_args!(
                "media task {id}: unknown kind `{kind}` (expected one of {TASK_KINDS:?})"
            )));
        }
        let task = uuid_text(id.as_uuid());
        let now_text = time_text(now, "the claim time")?;
        let lease_text = time_text(lease_until, "the lease's end")?;
        // The write lock, taken up front, makes the read, the decision and the write one step:
        // of two concurrent claims the second sees what the first left.
        let mut tx = self
            .pool
            .begin_with(BEGIN_WRITE)
            .await
            .map_err(store_error)?;

        let created: Option<TaskRow> = sqlx::query_as(concat!(
            "INSERT INTO media_tasks
                 (id, firm_id, file_id, kind, status, attempts, lease_until, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, 'pending', 1, ?5, ?6, ?6)
             ON CONFLICT (id) DO NOTHING
             RETURNING ",
            task_columns!()
        ))
        .bind(&task)
        .bind(uuid_text(firm.as_uuid()))
        .bind(uuid_text(file.as_uuid()))
        .bind(kind)
        .bind(&lease_text)
        .bind(&now_text)
        .fetch_optional(&mut *tx)
        .await
        .map_err(store_error)?;
        if let Some(row) = created {
            let record = row.into_domain::<Text>()?;
            tx.commit().await.map_err(store_error)?;
            return Ok(TaskClaim::Claimed(record));
        }

        let existing: Option<TaskRow> = sqlx::query_as(concat!(
            "SELECT ",
            task_columns!(),
            " FROM media_tasks WHERE id = ?1"
        ))
        .bind(&task)
        .fetch_optional(&mut *tx)
        .await
        .map_err(store_error)?;
        let current = existing
            .ok_or_else(|| {
                StoreError::Unknown(anyhow::anyhow!(
                    "media task {id} was neither created nor found while claiming it"
                ))
            })?
            .into_domain::<Text>()?;
        let claim = match ClaimDecision::of(&current, now) {
            ClaimDecision::Finished => TaskClaim::Finished(current),
            ClaimDecision::Busy => TaskClaim::Busy(current),
            ClaimDecision::Take => {
                let row: TaskRow = sqlx::query_as(concat!(
                    "UPDATE media_tasks
                     SET attempts = attempts + 1, lease_until = ?2, updated_at = ?3
                     WHERE id = ?1
                     RETURNING ",
                    task_columns!()
                ))
                .bind(&task)
                .bind(&lease_text)
                .bind(&now_text)
                .fetch_one(&mut *tx)
                .await
                .map_err(store_error)?;
                TaskClaim::Claimed(row.into_domain::<Text>()?)
            }
        };
        tx.commit().await.map_err(store_error)?;
        Ok(claim)
    }

    async fn save_task(&self, task: &TaskRecord) -> Result<(), StoreError> {
        let lease_until = task
            .lease_until
            .map(|at| time_text(at, "the lease's end"))
            .transpose()?;
        let saved = sqlx::query(
            "UPDATE media_tasks
             SET status = ?2, attempts = ?3, media_id = ?4, upload_session = ?5, handle = ?6,
                 result_id = ?7, last_error = ?8, lease_until = ?9, updated_at = ?10
             WHERE id = ?1",
        )
        .bind(uuid_text(task.id.as_uuid()))
        .bind(task.status.as_str())
        .bind(i64::from(task.attempts))
        .bind(&task.media_id)
        .bind(&task.upload_session)
        .bind(&task.handle)
        .bind(&task.result_id)
        .bind(&task.last_error)
        .bind(lease_until)
        .bind(time_text(task.updated_at, "task update time")?)
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        if saved.rows_affected() == 0 {
            return Err(StoreError::Unknown(anyhow::anyhow!(
                "cannot save media task {}: there is no such task (a task is created by claiming it)",
                task.id
            )));
        }
        Ok(())
    }

    async fn find_task(&self, id: TaskId) -> Result<Option<TaskRecord>, StoreError> {
        let row: Option<TaskRow> = sqlx::query_as(concat!(
            "SELECT ",
            task_columns!(),
            " FROM media_tasks WHERE id = ?1"
        ))
        .bind(uuid_text(id.as_uuid()))
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?;
        row.map(TaskRow::into_domain::<Text>).transpose()
    }
}

impl OutboxStore for SqliteStore {
    async fn unpublished_events(&self, limit: u32) -> Result<Vec<OutgoingEvent>, StoreError> {
        let rows: Vec<EventRow> = sqlx::query_as(
            "SELECT id, routing_key, payload FROM outbox
             WHERE published_at IS NULL
             ORDER BY created_at, id
             LIMIT ?1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(rows.into_iter().map(OutgoingEvent::from).collect())
    }

    async fn mark_events_published(&self, ids: &[String]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let now = time_text(Utc::now(), "the current time")?;
        // One transaction (one fsync) for the batch; SQLite has no array parameter, and one
        // prepared statement per id keeps clear of its limit on parameters.
        let mut tx = self
            .pool
            .begin_with(BEGIN_WRITE)
            .await
            .map_err(store_error)?;
        for id in ids {
            // An event published twice (at least once) keeps the time of its first publication.
            sqlx::query(
                "UPDATE outbox SET published_at = ?2 WHERE id = ?1 AND published_at IS NULL",
            )
            .bind(id)
            .bind(&now)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        }
        tx.commit().await.map_err(store_error)?;
        Ok(())
    }
}

async fn committed_file<'c>(
    exec: impl SqliteExecutor<'c>,
    file: FileId,
) -> Result<Option<FileRecord>, StoreError> {
    let row: Option<FileRow> = sqlx::query_as(concat!(
        "SELECT ",
        file_columns!(),
        " FROM files WHERE id = ?1"
    ))
    .bind(uuid_text(file.as_uuid()))
    .fetch_optional(exec)
    .await
    .map_err(store_error)?;
    row.map(FileRow::into_domain::<Text>).transpose()
}
