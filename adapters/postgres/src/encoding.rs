//! Postgres has a type for every value the domain stores, so its encoding is the identity.

use std::future::Future;

use chrono::{DateTime, Utc};
use filegate_application::ports::StoreError;
use filegate_sql_store::{Dialect, Encoding};
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::errors::store_error;

/// Uuids as `uuid`, timestamps as `timestamptz` (microseconds, as the service's clock).
#[derive(Debug)]
pub enum Pg {}

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

impl Dialect for Pg {
    type Db = Postgres;

    fn uuid(id: &Uuid) -> Uuid {
        *id
    }

    fn time(at: DateTime<Utc>, _what: &str) -> Result<DateTime<Utc>, StoreError> {
        Ok(at)
    }

    fn error(e: sqlx::Error) -> StoreError {
        store_error(e)
    }

    /// A plain `BEGIN`: the statements take the row locks they need (`FOR UPDATE`).
    fn begin_write(
        pool: &PgPool,
    ) -> impl Future<Output = Result<Transaction<'static, Postgres>, sqlx::Error>> + Send {
        pool.begin()
    }

    /// Postgres locks rows: writers on different sessions run side by side.
    fn write_gate() -> filegate_sql_store::WriteGate {
        filegate_sql_store::WriteGate::open()
    }
}
