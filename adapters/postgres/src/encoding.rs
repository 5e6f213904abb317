//! Postgres has a type for every value the domain stores, so its encoding is the identity.

use chrono::{DateTime, Utc};
use filegate_application::ports::StoreError;
use filegate_sql_rows::Encoding;
use uuid::Uuid;

/// Uuids as `uuid`, timestamps as `timestamptz` (microseconds, as the service's clock).
#[derive(Debug)]
pub(crate) enum Pg {}

impl Encoding for Pg {
    type Uuid = Uuid;
    type Time = DateTime<Utc>;

    fn uuid(stored: Uuid, _column: &str) -> Result<Uuid, StoreError> {
        Ok(stored)
    }

    fn time(stored: DateTime<Utc>, _column: &str) -> Result<DateTime<Utc>, StoreError> {
        Ok(stored)
    }
}

/// The shared rows as Postgres returns them.
pub(crate) type ApiKeyRow = filegate_sql_rows::ApiKeyRow<Uuid, DateTime<Utc>>;
pub(crate) type SnapshotRow = filegate_sql_rows::SnapshotRow<Uuid, DateTime<Utc>>;
pub(crate) type FileRow = filegate_sql_rows::FileRow<Uuid, DateTime<Utc>>;
pub(crate) type TaskRow = filegate_sql_rows::TaskRow<Uuid, DateTime<Utc>>;
