//! Rows as Postgres returns them, and their checked conversion into domain values. Every column
//! is re-validated with the domain's own rules, so a row the domain could not have produced is
//! reported as such instead of travelling on as a value that breaks an invariant.

use chrono::{DateTime, Utc};
use filegate_application::media_ports::OutgoingEvent;
use filegate_application::ports::{StoreError, StoredApiKey, TaskRecord, TaskStatus};
use filegate_domain::{
    ApiKeyId, BlobPath, FileId, FileName, FileRecord, FirmId, Mode, SessionState, TaskId,
    TotalBlocks, UploadSession, UserId,
};
use uuid::Uuid;

use crate::errors::{corrupt, unstorable};

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct ApiKeyRow {
    id: Uuid,
    key_hash: String,
    firm_id: Uuid,
    user_id: Uuid,
    created_at: DateTime<Utc>,
}

impl From<ApiKeyRow> for StoredApiKey {
    fn from(row: ApiKeyRow) -> Self {
        StoredApiKey {
            id: ApiKeyId::from_uuid(row.id),
            hash: row.key_hash,
            firm: FirmId::from_uuid(row.firm_id),
            user: UserId::from_uuid(row.user_id),
            created_at: row.created_at,
        }
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct SessionRow {
    file_id: Uuid,
    firm_id: Uuid,
    user_id: Uuid,
    mode: String,
    total_blocks: i32,
    file_name: String,
    content_type: String,
    blob_path: String,
    upload_id: String,
    state: String,
    created_at: DateTime<Utc>,
}

impl SessionRow {
    pub(crate) fn into_domain(self) -> Result<UploadSession, StoreError> {
        let file_id = FileId::from_uuid(self.file_id);
        let total_blocks = TotalBlocks::new(i64::from(self.total_blocks))
            .map_err(|e| corrupt(format_args!("upload session {file_id}: {e}")))?;
        let state = SessionState::parse(&self.state).ok_or_else(|| {
            corrupt(format_args!(
                "upload session {file_id}: unknown state `{}`",
                self.state
            ))
        })?;
        Ok(UploadSession {
            file_id,
            firm: FirmId::from_uuid(self.firm_id),
            user: UserId::from_uuid(self.user_id),
            mode: mode(&self.mode, "upload session", file_id)?,
            total_blocks,
            file_name: file_name(self.file_name, "upload session", file_id)?,
            content_type: self.content_type,
            blob_path: BlobPath::from_stored(self.blob_path),
            upload_id: self.upload_id,
            state,
            created_at: self.created_at,
        })
    }
}

/// A session with what it has received, read in one statement so the three agree.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct SnapshotRow {
    #[sqlx(flatten)]
    pub(crate) session: SessionRow,
    pub(crate) received: Vec<i32>,
    pub(crate) staged_bytes: i64,
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct FileRow {
    id: Uuid,
    firm_id: Uuid,
    user_id: Uuid,
    mode: String,
    blob_path: String,
    url: String,
    file_name: String,
    content_type: String,
    size: i64,
    created_at: DateTime<Utc>,
}

impl FileRow {
    pub(crate) fn into_domain(self) -> Result<FileRecord, StoreError> {
        let id = FileId::from_uuid(self.id);
        Ok(FileRecord {
            id,
            firm: FirmId::from_uuid(self.firm_id),
            user: UserId::from_uuid(self.user_id),
            mode: mode(&self.mode, "file", id)?,
            blob_path: BlobPath::from_stored(self.blob_path),
            url: self.url,
            file_name: file_name(self.file_name, "file", id)?,
            content_type: self.content_type,
            size: unsigned(self.size, "file", id)?,
            created_at: self.created_at,
        })
    }
}

/// The kinds of media task; the schema's CHECK lists the same.
pub(crate) const TASK_KINDS: [&str; 2] = ["message", "template"];

/// The columns of [`TaskRow`], as a select list; a macro so that `concat!` can build whole
/// statements from it at compile time.
macro_rules! task_columns {
    () => {
        "id, firm_id, file_id, kind, status, attempts, media_id, upload_session, handle, \
         result_id, last_error, lease_until, created_at, updated_at"
    };
}
pub(crate) use task_columns;

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct TaskRow {
    id: Uuid,
    firm_id: Uuid,
    file_id: Uuid,
    kind: String,
    status: String,
    attempts: i32,
    media_id: Option<String>,
    upload_session: Option<String>,
    handle: Option<String>,
    result_id: Option<String>,
    last_error: Option<String>,
    lease_until: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TaskRow {
    pub(crate) fn into_domain(self) -> Result<TaskRecord, StoreError> {
        let id = TaskId::from_uuid(self.id);
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
            firm: FirmId::from_uuid(self.firm_id),
            file: FileId::from_uuid(self.file_id),
            kind: self.kind,
            status,
            attempts,
            media_id: self.media_id,
            upload_session: self.upload_session,
            handle: self.handle,
            result_id: self.result_id,
            last_error: self.last_error,
            lease_until: self.lease_until,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct EventRow {
    id: String,
    routing_key: String,
    payload: Vec<u8>,
}

impl From<EventRow> for OutgoingEvent {
    fn from(row: EventRow) -> Self {
        OutgoingEvent {
            id: row.id,
            routing_key: row.routing_key,
            payload: row.payload,
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

pub(crate) fn unsigned(stored: i64, what: &str, id: FileId) -> Result<u64, StoreError> {
    u64::try_from(stored).map_err(|_| corrupt(format_args!("{what} {id}: negative size {stored}")))
}

pub(crate) fn to_i64(value: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| unstorable(format_args!("{what} {value} exceeds i64::MAX")))
}

/// Block indices and totals are below 50,000 by construction; the check only keeps the
/// conversion honest.
pub(crate) fn to_i32(value: u32, what: &str) -> Result<i32, StoreError> {
    i32::try_from(value).map_err(|_| unstorable(format_args!("{what} {value} exceeds i32::MAX")))
}
