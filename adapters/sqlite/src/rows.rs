//! Rows as SQLite returns them, their checked conversion into domain values, and the encodings
//! of the values SQLite has no type for. Every column is re-validated with the domain's own
//! rules, so a row the domain could not have produced is reported as such instead of travelling
//! on as a value that breaks an invariant.
//!
//! Uuids are stored as canonical text (hyphenated, lower-case) and timestamps as RFC 3339 text
//! in UTC with exactly six fractional digits (`2024-05-01T12:34:56.123456Z`); both are read back
//! only in exactly that form, so what is read is what was written.

use chrono::{DateTime, Datelike, SecondsFormat, Utc};
use filegate_application::media_ports::OutgoingEvent;
use filegate_application::ports::{StoreError, StoredApiKey, TaskRecord, TaskStatus};
use filegate_domain::{
    ApiKeyId, BlobPath, FileId, FileName, FileRecord, FirmId, Mode, SessionState, TaskId,
    TotalBlocks, UploadSession, UserId,
};
use uuid::Uuid;

use crate::errors::{corrupt, unstorable};

/// The stored form of a uuid.
pub(crate) fn uuid_text(id: &Uuid) -> String {
    id.hyphenated().to_string()
}

/// A uuid as stored, accepted in its canonical form only: lookups compare text, so any other
/// spelling would be a key that is never found.
pub(crate) fn parse_uuid(stored: &str, column: &str) -> Result<Uuid, StoreError> {
    match Uuid::try_parse(stored) {
        Ok(id) if uuid_text(&id) == stored => Ok(id),
        _ => Err(corrupt(format_args!(
            "{column} `{stored}` is not a canonical (hyphenated, lower-case) uuid"
        ))),
    }
}

/// The stored form of a timestamp: microseconds (a finer part is dropped, as Postgres does) and
/// a four-digit year, so that the text has one fixed width and sorts in time order.
pub(crate) fn time_text(at: DateTime<Utc>, what: &str) -> Result<String, StoreError> {
    if !(0..=9999).contains(&at.year()) {
        return Err(unstorable(format_args!(
            "{what} {at} is outside the years 0 to 9999"
        )));
    }
    Ok(at.to_rfc3339_opts(SecondsFormat::Micros, true))
}

/// A timestamp as stored, accepted in the stored form only.
pub(crate) fn parse_time(stored: &str, column: &str) -> Result<DateTime<Utc>, StoreError> {
    let refused = || {
        corrupt(format_args!(
            "{column} `{stored}` is not a UTC timestamp of the form 2024-05-01T12:34:56.123456Z"
        ))
    };
    let at = DateTime::parse_from_rfc3339(stored)
        .map_err(|_| refused())?
        .with_timezone(&Utc);
    match time_text(at, column) {
        Ok(text) if text == stored => Ok(at),
        _ => Err(refused()),
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct ApiKeyRow {
    id: String,
    key_hash: String,
    firm_id: String,
    user_id: String,
    created_at: String,
}

impl ApiKeyRow {
    pub(crate) fn into_domain(self) -> Result<StoredApiKey, StoreError> {
        Ok(StoredApiKey {
            id: ApiKeyId::from_uuid(parse_uuid(&self.id, "api_keys.id")?),
            hash: self.key_hash,
            firm: FirmId::from_uuid(parse_uuid(&self.firm_id, "api_keys.firm_id")?),
            user: UserId::from_uuid(parse_uuid(&self.user_id, "api_keys.user_id")?),
            created_at: parse_time(&self.created_at, "api_keys.created_at")?,
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct SessionRow {
    file_id: String,
    firm_id: String,
    user_id: String,
    mode: String,
    total_blocks: i64,
    file_name: String,
    content_type: String,
    blob_path: String,
    upload_id: String,
    state: String,
    created_at: String,
}

impl SessionRow {
    pub(crate) fn into_domain(self) -> Result<UploadSession, StoreError> {
        let file_id = FileId::from_uuid(parse_uuid(&self.file_id, "upload_sessions.file_id")?);
        let total_blocks = TotalBlocks::new(self.total_blocks)
            .map_err(|e| corrupt(format_args!("upload session {file_id}: {e}")))?;
        let state = SessionState::parse(&self.state).ok_or_else(|| {
            corrupt(format_args!(
                "upload session {file_id}: unknown state `{}`",
                self.state
            ))
        })?;
        Ok(UploadSession {
            file_id,
            firm: FirmId::from_uuid(parse_uuid(&self.firm_id, "upload_sessions.firm_id")?),
            user: UserId::from_uuid(parse_uuid(&self.user_id, "upload_sessions.user_id")?),
            mode: mode(&self.mode, "upload session", file_id)?,
            total_blocks,
            file_name: file_name(self.file_name, "upload session", file_id)?,
            content_type: self.content_type,
            blob_path: BlobPath::from_stored(self.blob_path),
            upload_id: self.upload_id,
            state,
            created_at: parse_time(&self.created_at, "upload_sessions.created_at")?,
        })
    }
}

/// A session with what it has received, read in one statement so the three agree. SQLite has
/// no arrays: the staged indices come as one comma-separated text, `NULL` when there is none.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct SnapshotRow {
    #[sqlx(flatten)]
    pub(crate) session: SessionRow,
    pub(crate) received: Option<String>,
    pub(crate) staged_bytes: i64,
}

/// The indices of `SnapshotRow::received`.
pub(crate) fn indices(stored: Option<&str>, file: FileId) -> Result<Vec<u32>, StoreError> {
    stored
        .into_iter()
        .flat_map(|list| list.split(','))
        .map(|i| {
            i.parse::<u32>()
                .map_err(|_| corrupt(format_args!("file {file}: block index `{i}`")))
        })
        .collect()
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct FileRow {
    id: String,
    firm_id: String,
    user_id: String,
    mode: String,
    blob_path: String,
    url: String,
    file_name: String,
    content_type: String,
    size: i64,
    created_at: String,
}

impl FileRow {
    pub(crate) fn into_domain(self) -> Result<FileRecord, StoreError> {
        let id = FileId::from_uuid(parse_uuid(&self.id, "files.id")?);
        Ok(FileRecord {
            id,
            firm: FirmId::from_uuid(parse_uuid(&self.firm_id, "files.firm_id")?),
            user: UserId::from_uuid(parse_uuid(&self.user_id, "files.user_id")?),
            mode: mode(&self.mode, "file", id)?,
            blob_path: BlobPath::from_stored(self.blob_path),
            url: self.url,
            file_name: file_name(self.file_name, "file", id)?,
            content_type: self.content_type,
            size: unsigned(self.size, "file", id)?,
            created_at: parse_time(&self.created_at, "files.created_at")?,
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
    id: String,
    firm_id: String,
    file_id: String,
    kind: String,
    status: String,
    attempts: i64,
    media_id: Option<String>,
    upload_session: Option<String>,
    handle: Option<String>,
    result_id: Option<String>,
    last_error: Option<String>,
    lease_until: Option<String>,
    created_at: String,
    updated_at: String,
}

impl TaskRow {
    pub(crate) fn into_domain(self) -> Result<TaskRecord, StoreError> {
        let id = TaskId::from_uuid(parse_uuid(&self.id, "media_tasks.id")?);
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
                "media task {id}: attempts {} out of range",
                self.attempts
            ))
        })?;
        Ok(TaskRecord {
            id,
            firm: FirmId::from_uuid(parse_uuid(&self.firm_id, "media_tasks.firm_id")?),
            file: FileId::from_uuid(parse_uuid(&self.file_id, "media_tasks.file_id")?),
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
                .as_deref()
                .map(|at| parse_time(at, "media_tasks.lease_until"))
                .transpose()?,
            created_at: parse_time(&self.created_at, "media_tasks.created_at")?,
            updated_at: parse_time(&self.updated_at, "media_tasks.updated_at")?,
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

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn a_microsecond_timestamp_reads_back_exactly() {
        let at = Utc.timestamp_opt(1_714_566_896, 123_456_000).unwrap();
        let text = time_text(at, "t").unwrap();
        assert_eq!(text, "2024-05-01T12:34:56.123456Z");
        assert_eq!(parse_time(&text, "t").unwrap(), at);
        let whole = Utc.timestamp_opt(1_714_566_896, 0).unwrap();
        assert_eq!(
            time_text(whole, "t").unwrap(),
            "2024-05-01T12:34:56.000000Z"
        );
    }

    #[test]
    fn only_the_stored_forms_are_read() {
        assert!(parse_time("2024-05-01T12:34:56.123Z", "t").is_err());
        assert!(parse_time("2024-05-01T14:34:56.123456+02:00", "t").is_err());
        assert!(parse_time("2024-05-01 12:34:56.123456Z", "t").is_err());
        let id = Uuid::new_v4();
        assert_eq!(parse_uuid(&uuid_text(&id), "u").unwrap(), id);
        assert!(parse_uuid(&uuid_text(&id).to_uppercase(), "u").is_err());
        assert!(parse_uuid(&id.simple().to_string(), "u").is_err());
    }

    #[test]
    fn years_past_9999_are_refused() {
        let far = Utc.with_ymd_and_hms(10_000, 1, 1, 0, 0, 0).unwrap();
        assert!(matches!(time_text(far, "t"), Err(StoreError::Unknown(_))));
    }
}
