//! The metadata ports on SQL, written once for both dialects.
//!
//! The SQL is portable (sqlx binds `$N` parameters on SQLite as on Postgres); what differs is
//! given by the store's [`Dialect`](crate::Dialect) (value encodings, error codes, how a writing
//! transaction begins) and by the few SQL fragments passed to [`metadata_ports!`](crate::metadata_ports).
//! It is a macro rather than generic code over `sqlx::Database` because sqlx's executor bounds
//! (`for<'c> &'c mut DB::Connection: Executor<'c>`) are not implied at use sites and would have
//! to be repeated on every impl; the macro expands the same text for each store's concrete types.

/// Implements every metadata port, the session transaction and the pool's housekeeping on
/// `$store` (a struct with a `pool: sqlx::Pool<Db>` field), for the dialect `$dialect`.
///
/// - `session_tx`: the name of the transaction type to define.
/// - `migrator`: the store's embedded `sqlx::migrate::Migrator`.
/// - `lock_row`: appended to a `SELECT` that must lock its row for the transaction
///   (`" FOR UPDATE"`, or `""` where the transaction already holds the database's write lock).
/// - `index_list`: an aggregate of `block_index` as comma-separated text.
/// - `migration_log_exists`: a query answering whether `_sqlx_migrations` exists.
/// - `whole_file`: how a file of one block is recorded in one query, `sequence` or `cte`
///   (see [`whole_file_inserts!`](crate::whole_file_inserts)).
/// - `incomplete_block` (optional): a query recording a block that leaves its open upload
///   incomplete in one round trip (parameters: file, index, part, size, time; columns
///   `received`, `replaced`; no row when the block is not such a block); without it, the port's
///   default (the general steps in one transaction) serves.
#[macro_export]
macro_rules! metadata_ports {
    (
        store: $store:ident,
        dialect: $dialect:ty,
        session_tx: $tx:ident,
        migrator: $migrator:path,
        lock_row: $lock_row:literal,
        index_list: $index_list:literal,
        migration_log_exists: $log_exists:literal,
        whole_file: $whole:ident
        $(, incomplete_block: $incomplete:literal)? $(,)?
    ) => {
        /// A transaction holding one session's lock.
        #[derive(Debug)]
        pub struct $tx {
            tx: $crate::WriteTx<<$dialect as $crate::Dialect>::Db>,
            file: ::filegate_domain::FileId,
        }

        const _: () = {
            use ::chrono::{DateTime, Utc};
            use ::filegate_application::media_ports::OutgoingEvent;
            use ::filegate_application::ports::{
                ClaimDecision, KeyStore, LockedSession, OutboxStore, SessionSnapshot, SessionTx,
                BlockUpsert, ChecksumStore, DeletionStore, InventoryStore, ExpiredUpload, RecordedPart, StagedBlock, StagedPart, StoreCounts, StoreError, StoreHealth, StoredApiKey, TASK_KINDS,
                TaskClaim, TaskRecord, TaskStore, UploadStore,
            };
            use ::filegate_domain::{
                ApiKeyId, BlobPath, FileId, FileRecord, FirmId, Mode, SessionState, Sha256Digest, TaskId,
                UploadSession,
            };
            use $crate::{
                ApiKeyRow, Dialect, EventRow, FileRow, PartRow, IndexedPartRow, SnapshotRow, TaskRow, corrupt,
                session_state, to_i32, to_i64, unstorable,
            };

            type D = $dialect;
            type U = <D as $crate::Encoding>::Uuid;
            type T = <D as $crate::Encoding>::Time;

            fn err(e: ::sqlx::Error) -> StoreError {
                <D as Dialect>::error(e)
            }

            fn id(uuid: &::uuid::Uuid) -> U {
                <D as Dialect>::uuid(uuid)
            }

            fn at(when: DateTime<Utc>, what: &str) -> Result<T, StoreError> {
                <D as Dialect>::time(when, what)
            }

            fn now() -> Result<T, StoreError> {
                at(Utc::now(), "the current time")
            }

            type Query<'q> = ::sqlx::query::Query<
                'q,
                <D as Dialect>::Db,
                <<D as Dialect>::Db as ::sqlx::Database>::Arguments,
            >;

            /// Binds a file record's columns, in the order of `file_columns!`.
            fn bind_file<'q>(query: Query<'q>, record: &'q FileRecord) -> Result<Query<'q>, StoreError> {
                Ok(query
                    .bind(id(record.id.as_uuid()))
                    .bind(id(record.firm.as_uuid()))
                    .bind(id(record.user.as_uuid()))
                    .bind(record.mode.as_str())
                    .bind(record.blob_path.as_str())
                    .bind(&record.url)
                    .bind(record.file_name.as_str())
                    .bind(&record.content_type)
                    .bind(to_i64(record.size, "file size")?)
                    .bind(at(record.created_at, "file creation time")?)
                    .bind(record.sha256.as_ref().map(Sha256Digest::to_hex)))
            }

            /// Binds a new session's columns, with `received` blocks counted, in the order of
            /// the inserts here; a committed session is completed now.
            fn bind_session<'q>(
                query: Query<'q>,
                session: &'q UploadSession,
                received: i32,
            ) -> Result<Query<'q>, StoreError> {
                let completed_at = match session.state {
                    SessionState::Committed => Some(now()?),
                    SessionState::Open => None,
                    // A new session is never expired; the column is the sweeper's.
                    SessionState::Expired | SessionState::Deleted => {
                        return Err(unstorable(format_args!(
                            "session {}: a new session cannot be stored {}",
                            session.file_id,
                            session.state.as_str()
                        )));
                    }
                };
                Ok(query
                    .bind(id(session.file_id.as_uuid()))
                    .bind(id(session.firm.as_uuid()))
                    .bind(id(session.user.as_uuid()))
                    .bind(session.mode.as_str())
                    .bind(to_i32(session.total_blocks.get(), "total blocks")?)
                    .bind(session.file_name.as_str())
                    .bind(&session.content_type)
                    .bind(session.blob_path.as_str())
                    .bind(&session.upload_id)
                    .bind(session.state.as_str())
                    .bind(at(session.created_at, "session creation time")?)
                    .bind(completed_at)
                    .bind(received))
            }

            /// Stores a new session with `received` blocks counted.
            async fn insert_session<'c, X>(
                exec: X,
                session: &UploadSession,
                received: i32,
            ) -> Result<(), StoreError>
            where
                X: ::sqlx::Executor<'c, Database = <D as Dialect>::Db>,
            {
                bind_session(
                    ::sqlx::query(
                        "INSERT INTO upload_sessions
                             (file_id, firm_id, user_id, mode, total_blocks, file_name,
                              content_type, blob_path, upload_id, state, created_at, completed_at,
                              received_blocks)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                    ),
                    session,
                    received,
                )?
                .execute(exec)
                .await
                .map_err(err)?;
                Ok(())
            }

            async fn insert_block_in<'c, X>(
                exec: X,
                file: FileId,
                block: &StagedBlock,
            ) -> Result<(), StoreError>
            where
                X: ::sqlx::Executor<'c, Database = <D as Dialect>::Db>,
            {
                ::sqlx::query(
                    "INSERT INTO staged_blocks (file_id, block_index, part_id, size, staged_at)
                     VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (file_id, block_index)
                     DO UPDATE SET part_id = excluded.part_id, size = excluded.size,
                                   staged_at = excluded.staged_at",
                )
                .bind(id(file.as_uuid()))
                .bind(to_i32(block.index.get(), "block index")?)
                .bind(&block.part_id)
                .bind(to_i64(block.size, "block size")?)
                .bind(now()?)
                .execute(exec)
                .await
                .map_err(err)?;
                Ok(())
            }

            async fn insert_file_in<'c, X>(exec: X, record: &FileRecord) -> Result<(), StoreError>
            where
                X: ::sqlx::Executor<'c, Database = <D as Dialect>::Db>,
            {
                bind_file(
                    ::sqlx::query(concat!(
                        "INSERT INTO files (",
                        $crate::file_columns!(),
                        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
                    )),
                    record,
                )?
                .execute(exec)
                .await
                .map_err(err)?;
                Ok(())
            }

            /// Stores an event in the outbox; an id already there keeps its event (at least
            /// once upstream, exactly once here).
            async fn insert_event_in<'c, X>(exec: X, event: &OutgoingEvent) -> Result<(), StoreError>
            where
                X: ::sqlx::Executor<'c, Database = <D as Dialect>::Db>,
            {
                ::sqlx::query(
                    "INSERT INTO outbox (id, routing_key, payload, created_at, traceparent)
                     VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (id) DO NOTHING",
                )
                .bind(&event.id)
                .bind(&event.routing_key)
                .bind(&event.payload)
                .bind(now()?)
                // The trace of the transaction that makes the event true (the committing
                // request's), for the relay to publish later.
                .bind(event.trace_parent.clone().or_else($crate::current_traceparent))
                .execute(exec)
                .await
                .map_err(err)?;
                Ok(())
            }

            impl $store {
                /// Wraps a pool configured elsewhere (tests, or a caller that shares one pool).
                pub fn from_pool(pool: ::sqlx::Pool<<D as Dialect>::Db>) -> Self {
                    Self {
                        pool,
                        gate: <D as Dialect>::write_gate(),
                    }
                }

                pub fn pool(&self) -> &::sqlx::Pool<<D as Dialect>::Db> {
                    &self.pool
                }

                /// Brings the schema up to date; the migrations already applied are skipped.
                pub async fn migrate(&self) -> Result<(), StoreError> {
                    (&$migrator).run(&self.pool).await.map_err(|e| err(e.into()))
                }

                /// Applies the migrations up to and including `version` only: how an upgrade
                /// test makes a database as an earlier release left it.
                pub async fn migrate_to(&self, version: i64) -> Result<(), StoreError> {
                    (&$migrator)
                        .run_to(version, &self.pool)
                        .await
                        .map_err(|e| err(e.into()))
                }

                /// Closes the pool, waiting for the connections in use to be returned.
                pub async fn close(&self) {
                    self.pool.close().await;
                }

                /// The versions of the embedded migrations missing from the database, so that
                /// readiness can tell "reachable but not migrated" from "ready".
                async fn pending_migrations(&self) -> Result<Vec<i64>, StoreError> {
                    let log_exists: bool = ::sqlx::query_scalar($log_exists)
                        .fetch_one(&self.pool)
                        .await
                        .map_err(err)?;
                    let applied: Vec<i64> = if log_exists {
                        ::sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
                            .fetch_all(&self.pool)
                            .await
                            .map_err(err)?
                    } else {
                        Vec::new()
                    };
                    Ok($crate::pending_migrations(&$migrator, &applied))
                }

                async fn committed_file_in<'c, X>(
                    exec: X,
                    file: FileId,
                ) -> Result<Option<FileRecord>, StoreError>
                where
                    X: ::sqlx::Executor<'c, Database = <D as Dialect>::Db>,
                {
                    let row: Option<FileRow<U, T>> = ::sqlx::query_as(concat!(
                        "SELECT ",
                        $crate::file_columns!(),
                        " FROM files WHERE id = $1"
                    ))
                    .bind(id(file.as_uuid()))
                    .fetch_optional(exec)
                    .await
                    .map_err(err)?;
                    row.map(FileRow::into_domain::<D>).transpose()
                }
            }

            impl StoreHealth for $store {
                async fn ping(&self) -> Result<(), StoreError> {
                    ::sqlx::query("SELECT 1")
                        .execute(&self.pool)
                        .await
                        .map_err(err)?;
                    let pending = self.pending_migrations().await?;
                    if pending.is_empty() {
                        Ok(())
                    } else {
                        Err(StoreError::Unavailable(::anyhow::anyhow!(
                            "the database is reachable but its schema is not migrated (pending migrations: {pending:?})"
                        )))
                    }
                }
            }

            impl KeyStore for $store {
                async fn insert_api_key(&self, key: &StoredApiKey) -> Result<(), StoreError> {
                    ::sqlx::query(
                        "INSERT INTO api_keys (id, key_hash, firm_id, user_id, created_at)
                         VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(id(key.id.as_uuid()))
                    .bind(&key.hash)
                    .bind(id(key.firm.as_uuid()))
                    .bind(id(key.user.as_uuid()))
                    .bind(at(key.created_at, "api key creation time")?)
                    .execute(&self.pool)
                    .await
                    .map_err(err)?;
                    Ok(())
                }

                async fn find_api_key(
                    &self,
                    hash: &str,
                ) -> Result<Option<StoredApiKey>, StoreError> {
                    let row: Option<ApiKeyRow<U, T>> = ::sqlx::query_as(
                        "SELECT id, key_hash, firm_id, user_id, created_at FROM api_keys
                         WHERE key_hash = $1 AND revoked_at IS NULL",
                    )
                    .bind(hash)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(err)?;
                    row.map(ApiKeyRow::into_domain::<D>).transpose()
                }

                async fn revoke_api_key(
                    &self,
                    key: ApiKeyId,
                    when: DateTime<Utc>,
                ) -> Result<bool, StoreError> {
                    let done = ::sqlx::query(
                        "UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
                    )
                    .bind(id(key.as_uuid()))
                    .bind(at(when, "api key revocation time")?)
                    .execute(&self.pool)
                    .await
                    .map_err(err)?;
                    Ok(done.rows_affected() > 0)
                }

                async fn count_api_keys(&self) -> Result<u64, StoreError> {
                    let live: i64 =
                        ::sqlx::query_scalar("SELECT count(*) FROM api_keys WHERE revoked_at IS NULL")
                            .fetch_one(&self.pool)
                            .await
                            .map_err(err)?;
                    u64::try_from(live)
                        .map_err(|_| corrupt(format_args!("negative key count {live}")))
                }
            }

            impl UploadStore for $store {
                type Tx = $tx;

                #[tracing::instrument(name = "store.open_session", skip_all)]
                async fn open_session(&self, session: &UploadSession) -> Result<(), StoreError> {
                    insert_session(&self.pool, session, 0).await
                }

                #[tracing::instrument(name = "store.expire_idle", skip_all)]
                async fn expire_idle(
                    &self,
                    mode: Mode,
                    idle_since: DateTime<Utc>,
                ) -> Result<Vec<ExpiredUpload>, StoreError> {
                    // One conditional statement: of several sweepers (servers) on one
                    // database, exactly one expires each row, and a chunk being recorded
                    // (which holds the row's lock) is either before it or sees it expired.
                    let since = at(idle_since, "the expiry cutoff")?;
                    let rows: Vec<(U, String)> = ::sqlx::query_as(
                        "UPDATE upload_sessions SET expired_at = $1
                         WHERE state = 'open' AND expired_at IS NULL AND deleted_at IS NULL
                           AND mode = $2
                           AND created_at < $3
                           AND NOT EXISTS (SELECT 1 FROM staged_blocks b
                                           WHERE b.file_id = upload_sessions.file_id
                                             AND b.staged_at >= $3)
                         RETURNING file_id, upload_id",
                    )
                    .bind(now()?)
                    .bind(mode.as_str())
                    .bind(since)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(err)?;
                    rows.into_iter()
                        .map(|(file, upload_id)| {
                            Ok(ExpiredUpload {
                                file_id: FileId::from_uuid(<D as $crate::Encoding>::uuid(
                                    file, "file_id",
                                )?),
                                upload_id,
                            })
                        })
                        .collect()
                }

                async fn count_open_uploads(
                    &self,
                    firm: FirmId,
                    up_to: u32,
                ) -> Result<u32, StoreError> {
                    // Counted in the partial index of open sessions by firm (migration 0006),
                    // and no further than needed.
                    let open: i64 = ::sqlx::query_scalar(
                        "SELECT count(*) FROM (SELECT 1 FROM upload_sessions
                                               WHERE firm_id = $1 AND state = 'open'
                                                 AND expired_at IS NULL AND deleted_at IS NULL
                                               LIMIT $2) AS open_uploads",
                    )
                    .bind(id(firm.as_uuid()))
                    .bind(i64::from(up_to))
                    .fetch_one(&self.pool)
                    .await
                    .map_err(err)?;
                    u32::try_from(open)
                        .map_err(|_| corrupt(format_args!("open upload count {open}")))
                }

                async fn idlest_open_uploads(
                    &self,
                    firm: FirmId,
                ) -> Result<Vec<(Mode, DateTime<Utc>)>, StoreError> {
                    let rows: Vec<(String, T)> = ::sqlx::query_as(
                        "SELECT s.mode,
                                min(COALESCE((SELECT max(b.staged_at) FROM staged_blocks b
                                              WHERE b.file_id = s.file_id),
                                             s.created_at)) AS idle_since
                         FROM upload_sessions s
                         WHERE s.firm_id = $1 AND s.state = 'open'
                           AND s.expired_at IS NULL AND s.deleted_at IS NULL
                         GROUP BY s.mode",
                    )
                    .bind(id(firm.as_uuid()))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(err)?;
                    rows.into_iter()
                        .map(|(mode, since)| {
                            let mode = Mode::from_canonical(&mode).ok_or_else(|| {
                                corrupt(format_args!("open uploads: unknown mode `{mode}`"))
                            })?;
                            Ok((mode, <D as $crate::Encoding>::time(since, "idle_since")?))
                        })
                        .collect()
                }

                async fn upload_is_open(&self, upload_id: &str) -> Result<bool, StoreError> {
                    ::sqlx::query_scalar(
                        "SELECT EXISTS (SELECT 1 FROM upload_sessions
                                        WHERE upload_id = $1 AND state = 'open'
                                          AND expired_at IS NULL AND deleted_at IS NULL)",
                    )
                    .bind(upload_id)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(err)
                }

                #[tracing::instrument(name = "store.recorded_parts", skip_all)]
                async fn recorded_parts(
                    &self,
                    file: FileId,
                ) -> Result<Vec<RecordedPart>, StoreError> {
                    let rows: Vec<IndexedPartRow> = ::sqlx::query_as(
                        "SELECT block_index, part_id, size FROM staged_blocks
                         WHERE file_id = $1 ORDER BY block_index",
                    )
                    .bind(id(file.as_uuid()))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(err)?;
                    rows.into_iter().map(|r| r.into_domain(file)).collect()
                }

                #[tracing::instrument(name = "store.find_session", skip_all)]
                async fn find_session(
                    &self,
                    firm: FirmId,
                    file: FileId,
                ) -> Result<Option<SessionSnapshot>, StoreError> {
                    // One statement is one read snapshot: the session and its blocks agree.
                    let row: Option<SnapshotRow<U, T>> = ::sqlx::query_as(concat!(
                        "SELECT ",
                        $crate::session_columns!(),
                        ", (SELECT ",
                        $index_list,
                        " FROM staged_blocks b WHERE b.file_id = s.file_id) AS received,
                           (SELECT CAST(COALESCE(sum(size), 0) AS BIGINT) FROM staged_blocks b
                            WHERE b.file_id = s.file_id) AS staged_bytes,
                           (SELECT max(staged_at) FROM staged_blocks b
                            WHERE b.file_id = s.file_id) AS last_staged
                         FROM upload_sessions s
                         WHERE s.file_id = $1 AND s.firm_id = $2"
                    ))
                    .bind(id(file.as_uuid()))
                    .bind(id(firm.as_uuid()))
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(err)?;
                    let Some(row) = row else {
                        return Ok(None);
                    };
                    let (session, received, staged_bytes, last_activity) =
                        row.into_domain::<D>()?;
                    // The session row was read first, and a file row is written in the
                    // transaction that commits its session and never removed, so a commit
                    // landing in between shows as "open, no file yet".
                    let file_record = match session.state {
                        SessionState::Committed => Some(
                            Self::committed_file_in(&self.pool, file).await?.ok_or_else(|| {
                                corrupt(format_args!(
                                    "file {file}: committed session without a file row"
                                ))
                            })?,
                        ),
                        SessionState::Open | SessionState::Expired | SessionState::Deleted => {
                            None
                        }
                    };
                    Ok(Some(SessionSnapshot {
                        session,
                        received,
                        staged_bytes,
                        last_activity,
                        file: file_record,
                    }))
                }

                #[tracing::instrument(name = "store.open_and_lock", skip_all)]
                async fn open_and_lock(
                    &self,
                    session: &UploadSession,
                ) -> Result<($tx, LockedSession), StoreError> {
                    let mut tx = $crate::begin_write::<D>(&self.pool, &self.gate).await.map_err(err)?;
                    // The new row is this transaction's until it commits: nobody else sees it,
                    // and whoever waits for its lock waits for this transaction.
                    insert_session(&mut *tx, session, 0).await?;
                    Ok(($tx { tx, file: session.file_id }, LockedSession::from(session)))
                }

                $(
                    /// One round trip (see the port): the query runs the general path's steps
                    /// under the session's row lock, or answers no row having changed nothing.
                    #[tracing::instrument(name = "store.record_incomplete_block", skip_all)]
                    async fn record_incomplete_block(
                        &self,
                        file: FileId,
                        block: &StagedBlock,
                    ) -> Result<Option<BlockUpsert>, StoreError> {
                        let row: Option<(i32, Option<String>)> = ::sqlx::query_as($incomplete)
                            .bind(id(file.as_uuid()))
                            .bind(to_i32(block.index.get(), "block index")?)
                            .bind(&block.part_id)
                            .bind(to_i64(block.size, "block size")?)
                            .bind(now()?)
                            .fetch_optional(&self.pool)
                            .await
                            .map_err(err)?;
                        row.map(|(received, replaced)| {
                            let received = u32::try_from(received).map_err(|_| {
                                corrupt(format_args!("file {file}: block count {received}"))
                            })?;
                            Ok(BlockUpsert { received, replaced })
                        })
                        .transpose()
                    }
                )?

                /// Four inserts in one query (see [`whole_file_inserts!`]): the session already
                /// committed with its one block counted, the block, the file and the event (the
                /// general path also reads and updates the count, lists the parts and updates the
                /// state). On Postgres one round trip instead of six (with `BEGIN` and `COMMIT`).
                /// The files that wait while a commit runs are recorded together, in one
                /// transaction (see [`GroupCommit`](crate::GroupCommit)): on SQLite each call is a
                /// hand-over to the connection's thread and back under the process's one write
                /// gate; on Postgres each statement is a round trip and a WAL flush.
                #[tracing::instrument(name = "store.record_whole_file", skip_all)]
                async fn record_whole_file(
                    &self,
                    session: &UploadSession,
                    block: &StagedBlock,
                    record: &FileRecord,
                    event: &OutgoingEvent,
                ) -> Result<(), StoreError> {
                    // The trace of the request that makes the event true, taken here: the
                    // group commit runs on a task of its own.
                    let event = OutgoingEvent {
                        trace_parent: event.trace_parent.clone().or_else($crate::current_traceparent),
                        ..event.clone()
                    };
                    let file = $crate::WholeFile {
                        session: UploadSession {
                            state: SessionState::Committed,
                            ..session.clone()
                        },
                        block: block.clone(),
                        record: record.clone(),
                        event,
                    };
                    let joined = self.gate.group().join(file);
                    if joined.lead {
                        let store = self.clone();
                        $crate::__tokio::spawn(async move {
                            $crate::run_group_commit(store.gate.group(), &store).await
                        });
                    }
                    joined.answer.await.map_err(|_| {
                        StoreError::Unknown(::anyhow::anyhow!("the group commit ended without an answer"))
                    })?
                }

                #[tracing::instrument(name = "store.lock_session", skip_all)]
                async fn lock_session(
                    &self,
                    file: FileId,
                ) -> Result<Option<($tx, LockedSession)>, StoreError> {
                    let mut tx = $crate::begin_write::<D>(&self.pool, &self.gate).await.map_err(err)?;
                    // The lock every request for this file queues on.
                    let locked: Option<(i32, String)> = ::sqlx::query_as(concat!(
                        "SELECT total_blocks,
                                CASE WHEN deleted_at IS NOT NULL THEN 'deleted'
                                     WHEN expired_at IS NOT NULL THEN 'expired' ELSE state END
                         FROM upload_sessions WHERE file_id = $1",
                        $lock_row
                    ))
                    .bind(id(file.as_uuid()))
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(err)?;
                    let Some((total, state)) = locked else {
                        return Ok(None);
                    };
                    let locked = LockedSession {
                        total_blocks: u32::try_from(total).map_err(|_| {
                            corrupt(format_args!("file {file}: total blocks {total}"))
                        })?,
                        state: session_state(&state, file)?,
                    };
                    Ok(Some(($tx { tx, file }, locked)))
                }
            }

            /// Records new files of one block (see `record_whole_file`), all or none: one
            /// statement for one file on Postgres; any number in one transaction on SQLite.
            impl $crate::RecordGroup<$crate::WholeFile> for $store {
                async fn record_group(&self, files: &[$crate::WholeFile]) -> Result<(), StoreError> {
                    let sql = $crate::whole_file_inserts!($whole);
                    let mut query = match files.len() {
                        1 => ::sqlx::query(sql),
                        n => ::sqlx::query(::sqlx::AssertSqlSafe($crate::group_sql($crate::whole_file_inserts!(@form $whole), n))),
                    };
                    for f in files {
                        let (session, block, record, event) = (&f.session, &f.block, &f.record, &f.event);
                        let created = now()?;
                        // The session (already committed, with its one block counted).
                        query = bind_session(query, session, 1)?
                            // Its block.
                            .bind(id(session.file_id.as_uuid()))
                            .bind(to_i32(block.index.get(), "block index")?)
                            .bind(&block.part_id)
                            .bind(to_i64(block.size, "block size")?)
                            .bind(created.clone());
                        // The file, then the event.
                        query = bind_file(query, record)?
                            .bind(&event.id)
                            .bind(&event.routing_key)
                            .bind(&event.payload)
                            .bind(created)
                            .bind(event.trace_parent.clone());
                    }
                    if $crate::whole_file_inserts!(@needs_transaction $whole) {
                        let mut tx = $crate::begin_write::<D>(&self.pool, &self.gate).await.map_err(err)?;
                        query.execute(&mut *tx).await.map_err(err)?;
                        tx.commit().await.map_err(err)
                    } else {
                        query.execute(&self.pool).await.map_err(err)?;
                        Ok(())
                    }
                }
            }

            impl SessionTx for $tx {
                async fn committed_file(&mut self) -> Result<Option<FileRecord>, StoreError> {
                    <$store>::committed_file_in(&mut *self.tx, self.file).await
                }

                #[tracing::instrument(name = "store.upsert_block", skip_all)]
                async fn upsert_block(&mut self, block: &StagedBlock) -> Result<BlockUpsert, StoreError> {
                    let file = id(self.file.as_uuid());
                    let index = to_i32(block.index.get(), "block index")?;
                    // This transaction holds the session's lock, so "was this index staged
                    // before, and as which part?" stays true until the count is updated.
                    let previous: Option<String> = ::sqlx::query_scalar(
                        "SELECT part_id FROM staged_blocks WHERE file_id = $1 AND block_index = $2",
                    )
                    .bind(&file)
                    .bind(index)
                    .fetch_optional(&mut *self.tx)
                    .await
                    .map_err(err)?;
                    insert_block_in(&mut *self.tx, self.file, block).await?;
                    let received: i32 = ::sqlx::query_scalar(
                        "UPDATE upload_sessions SET received_blocks = received_blocks + $2
                         WHERE file_id = $1
                         RETURNING received_blocks",
                    )
                    .bind(&file)
                    .bind(if previous.is_some() { 0_i32 } else { 1 })
                    .fetch_one(&mut *self.tx)
                    .await
                    .map_err(err)?;
                    let received = u32::try_from(received).map_err(|_| {
                        corrupt(format_args!("file {}: block count {received}", self.file))
                    })?;
                    Ok(BlockUpsert {
                        received,
                        replaced: previous,
                    })
                }

                #[tracing::instrument(name = "store.staged_parts", skip_all)]
                async fn staged_parts(&mut self) -> Result<Vec<StagedPart>, StoreError> {
                    let rows: Vec<PartRow> = ::sqlx::query_as(
                        "SELECT part_id, size FROM staged_blocks
                         WHERE file_id = $1 ORDER BY block_index",
                    )
                    .bind(id(self.file.as_uuid()))
                    .fetch_all(&mut *self.tx)
                    .await
                    .map_err(err)?;
                    rows.into_iter().map(|r| r.into_domain(self.file)).collect()
                }

                #[tracing::instrument(name = "store.insert_file", skip_all)]
                async fn insert_file(&mut self, record: &FileRecord) -> Result<(), StoreError> {
                    insert_file_in(&mut *self.tx, record).await
                }

                #[tracing::instrument(name = "store.insert_event", skip_all)]
                async fn insert_event(&mut self, event: &OutgoingEvent) -> Result<(), StoreError> {
                    insert_event_in(&mut *self.tx, event).await
                }

                #[tracing::instrument(name = "store.mark_committed", skip_all)]
                async fn mark_committed(&mut self) -> Result<(), StoreError> {
                    ::sqlx::query(
                        "UPDATE upload_sessions SET state = 'committed', completed_at = $2
                         WHERE file_id = $1",
                    )
                    .bind(id(self.file.as_uuid()))
                    .bind(now()?)
                    .execute(&mut *self.tx)
                    .await
                    .map_err(err)?;
                    Ok(())
                }

                #[tracing::instrument(name = "store.commit", skip_all)]
                async fn commit(self) -> Result<(), StoreError> {
                    self.tx.commit().await.map_err(err)
                }

                async fn rollback(self) -> Result<(), StoreError> {
                    self.tx.rollback().await.map_err(err)
                }
            }

            impl TaskStore for $store {
                #[tracing::instrument(name = "store.claim_task", skip_all)]
                async fn claim_task(
                    &self,
                    task: TaskId,
                    firm: FirmId,
                    file: FileId,
                    kind: &str,
                    when: DateTime<Utc>,
                    lease_until: DateTime<Utc>,
                ) -> Result<TaskClaim, StoreError> {
                    if !TASK_KINDS.contains(&kind) {
                        return Err(unstorable(format_args!(
                            "media task {task}: unknown kind `{kind}` (expected one of {TASK_KINDS:?})"
                        )));
                    }
                    let when_stored = at(when, "the claim time")?;
                    let lease = at(lease_until, "the lease's end")?;
                    let mut tx = $crate::begin_write::<D>(&self.pool, &self.gate).await.map_err(err)?;

                    // First sight creates the record, claimed. A concurrent claim of the same
                    // new id waits for the creating transaction and then does nothing: it finds
                    // the row below.
                    let created: Option<TaskRow<U, T>> = ::sqlx::query_as(concat!(
                        "INSERT INTO media_tasks
                             (id, firm_id, file_id, kind, status, attempts, lease_until,
                              created_at, updated_at)
                         VALUES ($1, $2, $3, $4, 'pending', 1, $5, $6, $6)
                         ON CONFLICT (id) DO NOTHING
                         RETURNING ",
                        $crate::task_columns!()
                    ))
                    .bind(id(task.as_uuid()))
                    .bind(id(firm.as_uuid()))
                    .bind(id(file.as_uuid()))
                    .bind(kind)
                    .bind(&lease)
                    .bind(&when_stored)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(err)?;
                    if let Some(row) = created {
                        let record = row.into_domain::<D>()?;
                        tx.commit().await.map_err(err)?;
                        return Ok(TaskClaim::Claimed(record));
                    }

                    // The lock makes the decision and the update one step: of two deliveries
                    // whose leases ran out together, one takes the lease and the other sees it.
                    let existing: Option<TaskRow<U, T>> = ::sqlx::query_as(concat!(
                        "SELECT ",
                        $crate::task_columns!(),
                        " FROM media_tasks WHERE id = $1",
                        $lock_row
                    ))
                    .bind(id(task.as_uuid()))
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(err)?;
                    let current = existing
                        .ok_or_else(|| {
                            StoreError::Unknown(::anyhow::anyhow!(
                                "media task {task} was neither created nor found while claiming it"
                            ))
                        })?
                        .into_domain::<D>()?;
                    let claim = match ClaimDecision::of(&current, when) {
                        ClaimDecision::Finished => TaskClaim::Finished(current),
                        ClaimDecision::Busy => TaskClaim::Busy(current),
                        ClaimDecision::Take => {
                            let row: TaskRow<U, T> = ::sqlx::query_as(concat!(
                                "UPDATE media_tasks
                                 SET attempts = attempts + 1, lease_until = $2, updated_at = $3
                                 WHERE id = $1
                                 RETURNING ",
                                $crate::task_columns!()
                            ))
                            .bind(id(task.as_uuid()))
                            .bind(&lease)
                            .bind(&when_stored)
                            .fetch_one(&mut *tx)
                            .await
                            .map_err(err)?;
                            TaskClaim::Claimed(row.into_domain::<D>()?)
                        }
                    };
                    tx.commit().await.map_err(err)?;
                    Ok(claim)
                }

                #[tracing::instrument(name = "store.save_task", skip_all)]
                async fn save_task(&self, task: &TaskRecord) -> Result<(), StoreError> {
                    let lease_until = task
                        .lease_until
                        .map(|when| at(when, "the lease's end"))
                        .transpose()?;
                    let saved = ::sqlx::query(
                        "UPDATE media_tasks
                         SET status = $2, attempts = $3, media_id = $4, upload_session = $5,
                             handle = $6, result_id = $7, last_error = $8, lease_until = $9,
                             updated_at = $10
                         WHERE id = $1",
                    )
                    .bind(id(task.id.as_uuid()))
                    .bind(task.status.as_str())
                    .bind(to_i32(task.attempts, "task attempts")?)
                    .bind(&task.media_id)
                    .bind(&task.upload_session)
                    .bind(&task.handle)
                    .bind(&task.result_id)
                    .bind(&task.last_error)
                    .bind(lease_until)
                    .bind(at(task.updated_at, "task update time")?)
                    .execute(&self.pool)
                    .await
                    .map_err(err)?;
                    if saved.rows_affected() == 0 {
                        return Err(StoreError::Unknown(::anyhow::anyhow!(
                            "cannot save media task {}: there is no such task (a task is created by claiming it)",
                            task.id
                        )));
                    }
                    Ok(())
                }

                #[tracing::instrument(name = "store.find_task", skip_all)]
                async fn find_task(&self, task: TaskId) -> Result<Option<TaskRecord>, StoreError> {
                    let row: Option<TaskRow<U, T>> = ::sqlx::query_as(concat!(
                        "SELECT ",
                        $crate::task_columns!(),
                        " FROM media_tasks WHERE id = $1"
                    ))
                    .bind(id(task.as_uuid()))
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(err)?;
                    row.map(TaskRow::into_domain::<D>).transpose()
                }
            }

            impl ChecksumStore for $store {
                async fn files_without_checksum(
                    &self,
                    limit: u32,
                ) -> Result<Vec<FileRecord>, StoreError> {
                    // In the partial index of files without a checksum (migration 0007).
                    let rows: Vec<FileRow<U, T>> = ::sqlx::query_as(concat!(
                        "SELECT ",
                        $crate::file_columns!(),
                        " FROM files
                         WHERE sha256 IS NULL
                           AND NOT EXISTS (SELECT 1 FROM upload_sessions s
                                           WHERE s.file_id = files.id
                                             AND s.deleted_at IS NOT NULL)
                         ORDER BY created_at DESC, id DESC
                         LIMIT $1"
                    ))
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(err)?;
                    rows.into_iter().map(FileRow::into_domain::<D>).collect()
                }

                async fn set_checksum(
                    &self,
                    file: FileId,
                    digest: &Sha256Digest,
                ) -> Result<bool, StoreError> {
                    let done = ::sqlx::query(
                        "UPDATE files SET sha256 = $2 WHERE id = $1 AND sha256 IS NULL",
                    )
                    .bind(id(file.as_uuid()))
                    .bind(digest.to_hex())
                    .execute(&self.pool)
                    .await
                    .map_err(err)?;
                    Ok(done.rows_affected() > 0)
                }
            }

            impl InventoryStore for $store {
                async fn counts(&self) -> Result<StoreCounts, StoreError> {
                    // The open uploads are counted in the partial index of open sessions
                    // (migration 0006); the backlog in the outbox's unpublished rows.
                    let (open, backlog): (i64, i64) = ::sqlx::query_as(
                        "SELECT (SELECT count(*) FROM upload_sessions
                                  WHERE state = 'open' AND expired_at IS NULL
                                    AND deleted_at IS NULL),
                                (SELECT count(*) FROM outbox WHERE published_at IS NULL)",
                    )
                    .fetch_one(&self.pool)
                    .await
                    .map_err(err)?;
                    Ok(StoreCounts {
                        open_uploads: u64::try_from(open).unwrap_or_default(),
                        outbox_backlog: u64::try_from(backlog).unwrap_or_default(),
                    })
                }

                async fn live_files(
                    &self,
                    after: Option<FileId>,
                    limit: u32,
                ) -> Result<Vec<FileRecord>, StoreError> {
                    let after = after.map(|f| id(f.as_uuid()));
                    let rows: Vec<FileRow<U, T>> = ::sqlx::query_as(concat!(
                        "SELECT ",
                        $crate::file_columns!(),
                        " FROM files
                         WHERE ($1 IS NULL OR id > $1)
                           AND NOT EXISTS (SELECT 1 FROM upload_sessions s
                                           WHERE s.file_id = files.id
                                             AND s.deleted_at IS NOT NULL)
                         ORDER BY id
                         LIMIT $2"
                    ))
                    .bind(after)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(err)?;
                    rows.into_iter().map(FileRow::into_domain::<D>).collect()
                }

                async fn blob_path_known(&self, path: &BlobPath) -> Result<bool, StoreError> {
                    ::sqlx::query_scalar(
                        "SELECT EXISTS (SELECT 1 FROM upload_sessions
                                        WHERE blob_path = $1 AND deleted_at IS NULL
                                          AND (state = 'committed' OR expired_at IS NULL))",
                    )
                    .bind(path.as_str())
                    .fetch_one(&self.pool)
                    .await
                    .map_err(err)
                }
            }

            impl DeletionStore for $store {
                #[tracing::instrument(name = "store.mark_deleted", skip_all)]
                async fn mark_deleted(
                    &self,
                    firm: FirmId,
                    file: FileId,
                    event: &OutgoingEvent,
                ) -> Result<bool, StoreError> {
                    let mut tx = $crate::begin_write::<D>(&self.pool, &self.gate).await.map_err(err)?;
                    // Waits for the session's lock like a commit does: a commit in flight
                    // finishes first, and none can follow the deletion (its lock sees it).
                    let deleted: Option<(U,)> = ::sqlx::query_as(
                        "UPDATE upload_sessions SET deleted_at = $3
                         WHERE file_id = $1 AND firm_id = $2 AND deleted_at IS NULL
                         RETURNING file_id",
                    )
                    .bind(id(file.as_uuid()))
                    .bind(id(firm.as_uuid()))
                    .bind(now()?)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(err)?;
                    if deleted.is_none() {
                        return Ok(false);
                    }
                    insert_event_in(&mut *tx, event).await?;
                    tx.commit().await.map_err(err)?;
                    Ok(true)
                }
            }

            impl OutboxStore for $store {
                #[tracing::instrument(name = "store.unpublished_events", skip_all)]
                async fn unpublished_events(
                    &self,
                    limit: u32,
                ) -> Result<Vec<OutgoingEvent>, StoreError> {
                    let rows: Vec<EventRow> = ::sqlx::query_as(
                        "SELECT id, routing_key, payload, traceparent FROM outbox
                         WHERE published_at IS NULL
                         ORDER BY created_at, id
                         LIMIT $1",
                    )
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(err)?;
                    Ok(rows.into_iter().map(OutgoingEvent::from).collect())
                }

                async fn purge_events(
                    &self,
                    before: DateTime<Utc>,
                    unpublished_too: bool,
                ) -> Result<u64, StoreError> {
                    let before = at(before, "the outbox's retention cutoff")?;
                    let purged = ::sqlx::query(
                        "DELETE FROM outbox
                         WHERE (published_at IS NOT NULL AND published_at < $1)
                            OR ($2 AND published_at IS NULL AND created_at < $1)",
                    )
                    .bind(before)
                    .bind(unpublished_too)
                    .execute(&self.pool)
                    .await
                    .map_err(err)?;
                    Ok(purged.rows_affected())
                }

                #[tracing::instrument(name = "store.mark_events_published", skip_all)]
                async fn mark_events_published(&self, ids: &[String]) -> Result<(), StoreError> {
                    if ids.is_empty() {
                        return Ok(());
                    }
                    let published_at = now()?;
                    // One transaction (one fsync) for the batch, one prepared statement per
                    // id: SQLite has no array parameter.
                    let mut tx = $crate::begin_write::<D>(&self.pool, &self.gate).await.map_err(err)?;
                    for event in ids {
                        // An event published twice (at least once) keeps the time of its first
                        // publication.
                        ::sqlx::query(
                            "UPDATE outbox SET published_at = $2
                             WHERE id = $1 AND published_at IS NULL",
                        )
                        .bind(event)
                        .bind(&published_at)
                        .execute(&mut *tx)
                        .await
                        .map_err(err)?;
                    }
                    tx.commit().await.map_err(err)?;
                    Ok(())
                }
            }
        };
    };
}
