//! Rows as the queries return them, generic over how the database stores uuids (`U`) and
//! timestamps (`T`), and their checked conversion into domain values through the store's
//! [`Encoding`].

use chrono::{DateTime, Utc};
use filegate_application::media_ports::OutgoingEvent;
use filegate_application::ports::{
    RecordedPart, StagedPart, StoreError, StoredApiKey, TASK_KINDS, TaskRecord, TaskStatus,
};
use filegate_domain::{
    ApiKeyId, BlobPath, BlockSet, FileId, FileName, FileRecord, FirmId, Mode, SessionState, TaskId,
    TotalBlocks, UploadSession, UserId,
};

use crate::checks::{corrupt, indices, unsigned};
use crate::dialect::Encoding;

#[derive(Debug, sqlx::FromRow)]
pub struct ApiKeyRow<U, T> {
    id: U,
    key_hash: String,
    firm_id: U,
    user_id: U,
    created_at: T,
}

impl<U, T> ApiKeyRow<U, T> {
    pub fn into_domain<E: Encoding<Uuid = U, Time = T>>(self) -> Result<StoredApiKey, StoreError> {
        Ok(StoredApiKey {
            id: ApiKeyId::from_uuid(E::uuid(self.id, "api_keys.id")?),
            hash: self.key_hash,
            firm: FirmId::from_uuid(E::uuid(self.firm_id, "api_keys.firm_id")?),
            user: UserId::from_uuid(E::uuid(self.user_id, "api_keys.user_id")?),
            created_at: E::time(self.created_at, "api_keys.created_at")?,
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub struct SessionRow<U, T> {
    file_id: U,
    firm_id: U,
    user_id: U,
    mode: String,
    total_blocks: i32,
    file_name: String,
    content_type: String,
    blob_path: String,
    upload_id: String,
    state: String,
    created_at: T,
}

impl<U, T> SessionRow<U, T> {
    pub fn into_domain<E: Encoding<Uuid = U, Time = T>>(self) -> Result<UploadSession, StoreError> {
        let file_id = FileId::from_uuid(E::uuid(self.file_id, "upload_sessions.file_id")?);
        let total_blocks = TotalBlocks::new(i64::from(self.total_blocks))
            .map_err(|e| corrupt(format_args!("upload session {file_id}: {e}")))?;
        Ok(UploadSession {
            file_id,
            firm: FirmId::from_uuid(E::uuid(self.firm_id, "upload_sessions.firm_id")?),
            user: UserId::from_uuid(E::uuid(self.user_id, "upload_sessions.user_id")?),
            mode: mode(&self.mode, "upload session", file_id)?,
            total_blocks,
            file_name: file_name(self.file_name, "upload session", file_id)?,
            content_type: self.content_type,
            blob_path: BlobPath::from_stored(self.blob_path),
            upload_id: self.upload_id,
            state: session_state(&self.state, file_id)?,
            created_at: E::time(self.created_at, "upload_sessions.created_at")?,
        })
    }
}

/// A session's state as stored.
pub fn session_state(stored: &str, file: FileId) -> Result<SessionState, StoreError> {
    SessionState::parse(stored).ok_or_else(|| {
        corrupt(format_args!(
            "upload session {file}: unknown state `{stored}`"
        ))
    })
}

/// A session with what it has received, read in one statement so the three agree. The staged
/// indices come as one comma-separated text, `NULL` when there is none.
#[derive(Debug, sqlx::FromRow)]
pub struct SnapshotRow<U, T> {
    #[sqlx(flatten)]
    session: SessionRow<U, T>,
    received: Option<String>,
    staged_bytes: i64,
    /// When the newest block was staged; `NULL` when there is none.
    last_staged: Option<T>,
}

impl<U, T> SnapshotRow<U, T> {
    /// The session, its received set, the bytes staged so far and its last activity (its
    /// creation or its newest block).
    pub fn into_domain<E: Encoding<Uuid = U, Time = T>>(
        self,
    ) -> Result<(UploadSession, BlockSet, u64, DateTime<Utc>), StoreError> {
        let session = self.session.into_domain::<E>()?;
        let file = session.file_id;
        let received = BlockSet::from_indices(
            session.total_blocks,
            indices(self.received.as_deref(), file)?,
        )
        .map_err(|e| corrupt(format_args!("file {file}: {e}")))?;
        let staged_bytes = unsigned(self.staged_bytes, "staged blocks of file", file)?;
        let last_staged = self
            .last_staged
            .map(|t| E::time(t, "staged_blocks.staged_at"))
            .transpose()?;
        let last_activity = last_staged.map_or(session.created_at, |t| t.max(session.created_at));
        Ok((session, received, staged_bytes, last_activity))
    }
}

#[derive(Debug, sqlx::FromRow)]
pub struct FileRow<U, T> {
    id: U,
    firm_id: U,
    user_id: U,
    mode: String,
    blob_path: String,
    url: String,
    file_name: String,
    content_type: String,
    size: i64,
    created_at: T,
    sha256: Option<String>,
}

impl<U, T> FileRow<U, T> {
    pub fn into_domain<E: Encoding<Uuid = U, Time = T>>(self) -> Result<FileRecord, StoreError> {
        let id = FileId::from_uuid(E::uuid(self.id, "files.id")?);
        Ok(FileRecord {
            id,
            firm: FirmId::from_uuid(E::uuid(self.firm_id, "files.firm_id")?),
            user: UserId::from_uuid(E::uuid(self.user_id, "files.user_id")?),
            mode: mode(&self.mode, "file", id)?,
            blob_path: BlobPath::from_stored(self.blob_path),
            url: self.url,
            file_name: file_name(self.file_name, "file", id)?,
            content_type: self.content_type,
            size: unsigned(self.size, "file", id)?,
            created_at: E::time(self.created_at, "files.created_at")?,
            sha256: self
                .sha256
                .map(|hex| {
                    hex.parse()
                        .map_err(|e| corrupt(format_args!("file {id}: sha256 {e}")))
                })
                .transpose()?,
        })
    }
}

/// One staged block's part, as the commit needs it.
#[derive(Debug, sqlx::FromRow)]
pub struct PartRow {
    part_id: String,
    size: i64,
}

impl PartRow {
    pub fn into_domain(self, file: FileId) -> Result<StagedPart, StoreError> {
        Ok(StagedPart {
            part_id: self.part_id,
            size: unsigned(self.size, "staged block of file", file)?,
        })
    }
}

/// A recorded block's part with its index, as a commit prepared ahead needs it.
#[derive(Debug, sqlx::FromRow)]
pub struct IndexedPartRow {
    block_index: i32,
    part_id: String,
    size: i64,
}

impl IndexedPartRow {
    pub fn into_domain(self, file: FileId) -> Result<RecordedPart, StoreError> {
        Ok(RecordedPart {
            index: u32::try_from(self.block_index).map_err(|_| {
                corrupt(format_args!(
                    "file {file}: block index {}",
                    self.block_index
                ))
            })?,
            part_id: self.part_id,
            size: unsigned(self.size, "staged block of file", file)?,
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub struct TaskRow<U, T> {
    id: U,
    firm_id: U,
    file_id: U,
    kind: String,
    status: String,
    attempts: i32,
    media_id: Option<String>,
    upload_session: Option<String>,
    handle: Option<String>,
    result_id: Option<String>,
    last_error: Option<String>,
    lease_until: Option<T>,
    created_at: T,
    updated_at: T,
}

impl<U, T> TaskRow<U, T> {
    pub fn into_domain<E: Encoding<Uuid = U, Time = T>>(self) -> Result<TaskRecord, StoreError> {
        let id = TaskId::from_uuid(E::uuid(self.id, "media_tasks.id")?);
        if !TASK_KINDS.contains(&self.kind.as_str()) {
            return Err(corrupt(format_args!(
                "media task {id}: unknown kind `{}`",
                self.kind
            )));
        }
        let status = TaskStatus::parse(&self.status).ok_or_else(|| {
            corrupt(format_args!(
                "media task {id}: unknown status `{}`",
                self.status
            ))
        })?;
        let attempts = u32::try_from(self.attempts).map_err(|_| {
            corrupt(format_args!(
                "media task {id}: negative attempts {}",
                self.attempts
            ))
        })?;
        Ok(TaskRecord {
            id,
            firm: FirmId::from_uuid(E::uuid(self.firm_id, "media_tasks.firm_id")?),
            file: FileId::from_uuid(E::uuid(self.file_id, "media_tasks.file_id")?),
            kind: self.kind,
            status,
            attempts,
            media_id: self.media_id,
            upload_session: self.upload_session,
            handle: self.handle,
            result_id: self.result_id,
            last_error: self.last_error,
            lease_until: self
                .lease_until
                .map(|at| E::time(at, "media_tasks.lease_until"))
                .transpose()?,
            created_at: E::time(self.created_at, "media_tasks.created_at")?,
            updated_at: E::time(self.updated_at, "media_tasks.updated_at")?,
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub struct EventRow {
    id: String,
    routing_key: String,
    payload: Vec<u8>,
    traceparent: Option<String>,
}

impl From<EventRow> for OutgoingEvent {
    fn from(row: EventRow) -> Self {
        OutgoingEvent {
            id: row.id,
            routing_key: row.routing_key,
            payload: row.payload,
            trace_parent: row.traceparent,
        }
    }
}

/// The domain decides what a stored mode or name may be; a refusal means a foreign write.
fn mode(stored: &str, what: &str, id: FileId) -> Result<Mode, StoreError> {
    Mode::from_canonical(stored)
        .ok_or_else(|| corrupt(format_args!("{what} {id}: unknown mode `{stored}`")))
}

fn file_name(stored: String, what: &str, id: FileId) -> Result<FileName, StoreError> {
    let shown = stored.clone();
    FileName::from_stored(stored).ok_or_else(|| {
        corrupt(format_args!(
            "{what} {id}: file name `{shown}` is not a sanitized name"
        ))
    })
}
