//! Rows as Postgres returns them, and their checked conversion into domain values. Every column
//! is re-validated with the domain's own rules, so a row the domain could not have produced is
//! reported as such instead of travelling on as a value that breaks an invariant.

use chrono::{DateTime, Utc};
use filegate_application::ports::{StoreError, StoredApiKey};
use filegate_domain::{
    ApiKeyId, BlobPath, FileId, FileName, FileRecord, FirmId, Mode, SessionState, TotalBlocks,
    UploadSession, UserId,
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

/// Only canonical names are ever written, so the legacy aliases that `Mode::from_str` accepts
/// from clients are a sign of a foreign write here.
fn mode(stored: &str, what: &str, id: FileId) -> Result<Mode, StoreError> {
    Mode::ALL
        .into_iter()
        .find(|m| m.as_str() == stored)
        .ok_or_else(|| corrupt(format_args!("{what} {id}: unknown mode `{stored}`")))
}

/// Only sanitized names are ever written; sanitizing is idempotent, so a stored name that
/// sanitizing would change did not come from this service.
fn file_name(stored: String, what: &str, id: FileId) -> Result<FileName, StoreError> {
    let name = FileName::sanitize(&stored);
    if name.as_str() == stored {
        Ok(name)
    } else {
        Err(corrupt(format_args!(
            "{what} {id}: file name `{stored}` is not a sanitized name"
        )))
    }
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
