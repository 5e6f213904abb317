//! What differs between the SQL databases the metadata store runs on.

use std::future::Future;

use chrono::{DateTime, Utc};
use filegate_application::ports::StoreError;
use sqlx::{Pool, Transaction};
use uuid::Uuid;

/// How a store keeps the values its database may have no type for, when reading them back.
/// Postgres has both (the conversion is the identity); SQLite keeps canonical text and reads
/// back only that form.
pub trait Encoding {
    type Uuid;
    type Time;

    fn uuid(stored: Self::Uuid, column: &str) -> Result<Uuid, StoreError>;
    fn time(stored: Self::Time, column: &str) -> Result<DateTime<Utc>, StoreError>;
}

/// A database the metadata ports run on: its driver, the encodings of values going in, its
/// error codes, and how a transaction that will write begins. The SQL itself is shared
/// ([`crate::metadata_ports`]).
pub trait Dialect: Encoding {
    type Db: sqlx::Database;

    /// A uuid as the database stores it.
    fn uuid(id: &Uuid) -> Self::Uuid;

    /// A timestamp as the database stores it; refused when it does not fit.
    fn time(at: DateTime<Utc>, what: &str) -> Result<Self::Time, StoreError>;

    /// The driver's error, split by what the caller can do about it (retry or not).
    fn error(e: sqlx::Error) -> StoreError;

    /// Begins a transaction that will write. Where the database has row locks it is a plain
    /// `BEGIN` (the statements lock what they need); SQLite takes its write lock up front
    /// (`BEGIN IMMEDIATE`), since a transaction that read before writing cannot wait for it.
    fn begin_write(
        pool: &Pool<Self::Db>,
    ) -> impl Future<Output = Result<Transaction<'static, Self::Db>, sqlx::Error>> + Send;

    /// How this process's writing transactions queue before they begin (see
    /// [`crate::WriteGate`]); each store keeps one, shared by its clones.
    fn write_gate() -> crate::WriteGate;
}
