//! The metadata ports on Postgres: the SQL text and the binding of values. The rules these
//! steps serve (completion, claims) live in the application.

use chrono::{DateTime, Utc};
use filegate_application::media_ports::OutgoingEvent;
use filegate_application::ports::{
    ClaimDecision, KeyStore, LockedSession, OutboxStore, SessionSnapshot, SessionTx, StagedBlock,
    StagedPart, StoreError, StoreHealth, StoredApiKey, TASK_KINDS, TaskClaim, TaskRecord,
    TaskStore, UploadStore,
};
use filegate_domain::{ApiKeyId, FileId, FileRecord, FirmId, SessionState, TaskId, UploadSession};
use filegate_sql_rows::{
    PartRow, corrupt, file_columns, session_columns, session_state, task_columns, to_i32, to_i64,
    unstorable,
};
use sqlx::postgres::PgExecutor;
use sqlx::{Postgres, Transaction};

use crate::PgStore;
use crate::encoding::{ApiKeyRow, FileRow, Pg, SnapshotRow, TaskRow};
use crate::errors::store_error;

impl StoreHealth for PgStore {
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

impl KeyStore for PgStore {
    async fn insert_api_key(&self, key: &StoredApiKey) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO api_keys (id, key_hash, firm_id, user_id, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(*key.id.as_uuid())
        .bind(&key.hash)
        .bind(*key.firm.as_uuid())
        .bind(*key.user.as_uuid())
        .bind(key.created_at)
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(())
    }

    async fn find_api_key(&self, hash: &str) -> Result<Option<StoredApiKey>, StoreError> {
        let row: Option<ApiKeyRow> = sqlx::query_as(
            "SELECT id, key_hash, firm_id, user_id, created_at FROM api_keys
             WHERE key_hash = $1 AND revoked_at IS NULL",
        )
        .bind(hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?;
        row.map(ApiKeyRow::into_domain::<Pg>).transpose()
    }

    async fn revoke_api_key(&self, id: ApiKeyId, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
                .bind(*id.as_uuid())
                .bind(at)
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

impl UploadStore for PgStore {
    type Tx = PgSessionTx;

    async fn open_session(&self, session: &UploadSession) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO upload_sessions
                 (file_id, firm_id, user_id, mode, total_blocks, file_name, content_type, blob_path,
                  upload_id, state, created_at, completed_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11,
                     CASE WHEN $10 = 'committed' THEN now() END)",
        )
        .bind(*session.file_id.as_uuid())
        .bind(*session.firm.as_uuid())
        .bind(*session.user.as_uuid())
        .bind(session.mode.as_str())
        .bind(to_i32(session.total_blocks.get(), "total blocks")?)
        .bind(session.file_name.as_str())
        .bind(&session.content_type)
        .bind(session.blob_path.as_str())
        .bind(&session.upload_id)
        .bind(session.state.as_str())
        .bind(session.created_at)
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
        let row: Option<SnapshotRow> = sqlx::query_as(concat!(
            "SELECT ",
            session_columns!(),
            ", b.received, b.staged_bytes
             FROM upload_sessions s
             CROSS JOIN LATERAL (
                 SELECT string_agg(block_index::text, ',' ORDER BY block_index) AS received,
                        COALESCE(sum(size), 0)::bigint AS staged_bytes
                 FROM staged_blocks WHERE file_id = s.file_id
             ) b
             WHERE s.file_id = $1 AND s.firm_id = $2"
        ))
        .bind(*file.as_uuid())
        .bind(*firm.as_uuid())
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let (session, received, staged_bytes) = row.into_domain::<Pg>()?;
        // The session row was read first, so a commit landing in between shows as "open, no
        // file yet", never as "committed without a file".
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
    ) -> Result<Option<(PgSessionTx, LockedSession)>, StoreError> {
        let id = *file.as_uuid();
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        // The lock every request for this file queues on.
        let locked: Option<(i32, String)> = sqlx::query_as(
            "SELECT total_blocks, state FROM upload_sessions WHERE file_id = $1 FOR UPDATE",
        )
        .bind(id)
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
        Ok(Some((PgSessionTx { tx, file }, locked)))
    }
}

/// A transaction holding one session's row lock.
#[derive(Debug)]
pub struct PgSessionTx {
    tx: Transaction<'static, Postgres>,
    file: FileId,
}

impl SessionTx for PgSessionTx {
    async fn committed_file(&mut self) -> Result<Option<FileRecord>, StoreError> {
        committed_file(&mut *self.tx, self.file).await
    }

    async fn upsert_block(&mut self, block: &StagedBlock) -> Result<u32, StoreError> {
        // Upserts the block and keeps the session's count of distinct indices in the same
        // statement; all parts of one statement see the same snapshot, so `previous` tells
        // whether this index was already staged before the upsert.
        let received: i32 = sqlx::query_scalar(
            "WITH previous AS (
                 SELECT 1 FROM staged_blocks WHERE file_id = $1 AND block_index = $2
             ), staged AS (
                 INSERT INTO staged_blocks (file_id, block_index, part_id, size, staged_at)
                 VALUES ($1, $2, $3, $4, now())
                 ON CONFLICT (file_id, block_index)
                 DO UPDATE SET part_id = EXCLUDED.part_id, size = EXCLUDED.size, staged_at = now()
             )
             UPDATE upload_sessions
             SET received_blocks = received_blocks + CASE WHEN EXISTS (SELECT 1 FROM previous) THEN 0 ELSE 1 END
             WHERE file_id = $1
             RETURNING received_blocks",
        )
        .bind(*self.file.as_uuid())
        .bind(to_i32(block.index.get(), "block index")?)
        .bind(&block.part_id)
        .bind(to_i64(block.size, "block size")?)
        .fetch_one(&mut *self.tx)
        .await
        .map_err(store_error)?;
        u32::try_from(received).map_err(|_| {
            corrupt(format_args!(
                "file {}: negative block count {received}",
                self.file
            ))
        })
    }

    async fn staged_parts(&mut self) -> Result<Vec<StagedPart>, StoreError> {
        let rows: Vec<PartRow> = sqlx::query_as(
            "SELECT part_id, size FROM staged_blocks WHERE file_id = $1 ORDER BY block_index",
        )
        .bind(*self.file.as_uuid())
        .fetch_all(&mut *self.tx)
        .await
        .map_err(store_error)?;
        rows.into_iter().map(|r| r.into_domain(self.file)).collect()
    }

    async fn insert_file(&mut self, record: &FileRecord) -> Result<(), StoreError> {
        sqlx::query(concat!(
            "INSERT INTO files (",
            file_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        ))
        .bind(*record.id.as_uuid())
        .bind(*record.firm.as_uuid())
        .bind(*record.user.as_uuid())
        .bind(record.mode.as_str())
        .bind(record.blob_path.as_str())
        .bind(&record.url)
        .bind(record.file_name.as_str())
        .bind(&record.content_type)
        .bind(to_i64(record.size, "file size")?)
        .bind(record.created_at)
        .execute(&mut *self.tx)
        .await
        .map_err(store_error)?;
        Ok(())
    }

    async fn insert_event(&mut self, event: &OutgoingEvent) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO outbox (id, routing_key, payload, created_at)
             VALUES ($1, $2, $3, now())
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(&event.id)
        .bind(&event.routing_key)
        .bind(&event.payload)
        .execute(&mut *self.tx)
        .await
        .map_err(store_error)?;
        Ok(())
    }

    async fn mark_committed(&mut self) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE upload_sessions SET state = 'committed', completed_at = now() WHERE file_id = $1",
        )
        .bind(*self.file.as_uuid())
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

impl TaskStore for PgStore {
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
        let mut tx = self.pool.begin().await.map_err(store_error)?;

        // First sight creates the record, claimed. A concurrent claim of the same new id waits
        // here for the creating transaction and then does nothing: it finds the row below.
        let created: Option<TaskRow> = sqlx::query_as(concat!(
            "INSERT INTO media_tasks
                 (id, firm_id, file_id, kind, status, attempts, lease_until, created_at, updated_at)
             VALUES ($1, $2, $3, $4, 'pending', 1, $5, $6, $6)
             ON CONFLICT (id) DO NOTHING
             RETURNING ",
            task_columns!()
        ))
        .bind(*id.as_uuid())
        .bind(*firm.as_uuid())
        .bind(*file.as_uuid())
        .bind(kind)
        .bind(lease_until)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await
        .map_err(store_error)?;
        if let Some(row) = created {
            let record = row.into_domain::<Pg>()?;
            tx.commit().await.map_err(store_error)?;
            return Ok(TaskClaim::Claimed(record));
        }

        // The row lock makes the decision and the update one step: of two deliveries whose
        // leases ran out together, one takes the lease and the other sees it live.
        let existing: Option<TaskRow> = sqlx::query_as(concat!(
            "SELECT ",
            task_columns!(),
            " FROM media_tasks WHERE id = $1 FOR UPDATE"
        ))
        .bind(*id.as_uuid())
        .fetch_optional(&mut *tx)
        .await
        .map_err(store_error)?;
        let current = existing
            .ok_or_else(|| {
                StoreError::Unknown(anyhow::anyhow!(
                    "media task {id} was neither created nor found while claiming it"
                ))
            })?
            .into_domain::<Pg>()?;
        let claim = match ClaimDecision::of(&current, now) {
            ClaimDecision::Finished => TaskClaim::Finished(current),
            ClaimDecision::Busy => TaskClaim::Busy(current),
            ClaimDecision::Take => {
                let row: TaskRow = sqlx::query_as(concat!(
                    "UPDATE media_tasks
                     SET attempts = attempts + 1, lease_until = $2, updated_at = $3
                     WHERE id = $1
                     RETURNING ",
                    task_columns!()
                ))
                .bind(*id.as_uuid())
                .bind(lease_until)
                .bind(now)
                .fetch_one(&mut *tx)
                .await
                .map_err(store_error)?;
                TaskClaim::Claimed(row.into_domain::<Pg>()?)
            }
        };
        tx.commit().await.map_err(store_error)?;
        Ok(claim)
    }

    async fn save_task(&self, task: &TaskRecord) -> Result<(), StoreError> {
        let saved = sqlx::query(
            "UPDATE media_tasks
             SET status = $2, attempts = $3, media_id = $4, upload_session = $5, handle = $6,
                 result_id = $7, last_error = $8, lease_until = $9, updated_at = $10
             WHERE id = $1",
        )
        .bind(*task.id.as_uuid())
        .bind(task.status.as_str())
        .bind(to_i32(task.attempts, "task attempts")?)
        .bind(&task.media_id)
        .bind(&task.upload_session)
        .bind(&task.handle)
        .bind(&task.result_id)
        .bind(&task.last_error)
        .bind(task.lease_until)
        .bind(task.updated_at)
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
            " FROM media_tasks WHERE id = $1"
        ))
        .bind(*id.as_uuid())
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?;
        row.map(TaskRow::into_domain::<Pg>).transpose()
    }
}

impl OutboxStore for PgStore {
    async fn unpublished_events(&self, limit: u32) -> Result<Vec<OutgoingEvent>, StoreError> {
        let rows: Vec<filegate_sql_rows::EventRow> = sqlx::query_as(
            "SELECT id, routing_key, payload FROM outbox
             WHERE published_at IS NULL
             ORDER BY created_at, id
             LIMIT $1",
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
        // An event published twice (at least once) keeps the time of its first publication.
        sqlx::query(
            "UPDATE outbox SET published_at = now() WHERE id = ANY($1) AND published_at IS NULL",
        )
        .bind(ids)
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(())
    }
}

async fn committed_file<'c>(
    exec: impl PgExecutor<'c>,
    file: FileId,
) -> Result<Option<FileRecord>, StoreError> {
    let row: Option<FileRow> = sqlx::query_as(concat!(
        "SELECT ",
        file_columns!(),
        " FROM files WHERE id = $1"
    ))
    .bind(*file.as_uuid())
    .fetch_optional(exec)
    .await
    .map_err(store_error)?;
    row.map(FileRow::into_domain::<Pg>).transpose()
}
