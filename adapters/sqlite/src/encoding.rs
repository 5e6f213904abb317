//! SQLite's encodings of the values it has no type for. Uuids are stored as canonical text
//! (hyphenated, lower-case) and timestamps as RFC 3339 text in UTC with exactly six fractional
//! digits (`2024-05-01T12:34:56.123456Z`); both are read back only in exactly that form, so what
//! is read is what was written.

use std::future::Future;

use chrono::{DateTime, Datelike, SecondsFormat, Utc};
use filegate_application::ports::StoreError;
use filegate_sql_store::{Dialect, Encoding, corrupt, unstorable};
use sqlx::{Sqlite, SqlitePool, Transaction};
use uuid::Uuid;

use crate::errors::store_error;

/// Uuids and timestamps as canonical text.
#[derive(Debug)]
pub enum Text {}

impl Encoding for Text {
    type Uuid = String;
    type Time = String;

    fn uuid(stored: String, column: &str) -> Result<Uuid, StoreError> {
        parse_uuid(&stored, column)
    }

    fn time(stored: String, column: &str) -> Result<DateTime<Utc>, StoreError> {
        parse_time(&stored, column)
    }
}

impl Dialect for Text {
    type Db = Sqlite;

    fn uuid(id: &Uuid) -> String {
        uuid_text(id)
    }

    fn time(at: DateTime<Utc>, what: &str) -> Result<String, StoreError> {
        time_text(at, what)
    }

    fn error(e: sqlx::Error) -> StoreError {
        store_error(e)
    }

    /// Takes the database's write lock from the first statement: a plain `BEGIN` takes it only
    /// at the first write, and a transaction that read before it cannot wait for it (it fails
    /// with `SQLITE_BUSY`). Whoever holds it sees the block set as the previous holder left it.
    fn begin_write(
        pool: &SqlitePool,
    ) -> impl Future<Output = Result<Transaction<'static, Sqlite>, sqlx::Error>> + Send {
        pool.begin_with("BEGIN IMMEDIATE")
    }

    /// One writer at a time: the process's writers queue here rather than in SQLite's busy
    /// handler, which sleeps; they queue as long as the busy timeout would have let them.
    fn write_gate() -> filegate_sql_store::WriteGate {
        filegate_sql_store::WriteGate::serial(crate::BUSY_TIMEOUT)
    }
}

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
