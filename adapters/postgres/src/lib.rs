//! The Postgres metadata store of filegate: it implements the application's metadata ports (API
//! keys, upload sessions, media tasks, the outbox) on six tables (`api_keys`, `upload_sessions`,
//! `staged_blocks`, `files`, `media_tasks`, `outbox`). A session's transaction holds its row
//! lock (`SELECT ... FOR UPDATE`), so that the application's completion rule sees each session
//! one request at a time and of several requests racing to stage the last block exactly one runs
//! the blob commit, inside the transaction that records the file. Row decoding is shared with
//! the SQLite store (`filegate-sql-store`); this crate keeps its SQL, its encodings and its error
//! codes. The schema ships inside the binary as sqlx migrations; queries are checked at run
//! time, so the crate builds without a database.

mod encoding;
mod errors;
mod key_changes;
mod store;

pub use encoding::Pg;
pub use key_changes::{ALL_KEYS, KEY_CHANNEL, PgKeyChanges};
pub use store::PgSessionTx;

use std::time::Duration;

use filegate_application::ports::StoreError;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::errors::store_error;

/// Embedded at build time so that a deployment is one binary, and a binary always migrates to
/// the schema its queries were written for. Safe to run at every start and from several
/// instances at once: sqlx takes an advisory lock and skips the migrations already applied.
pub(crate) static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// A connection handed back less than this long ago is lent again without a ping; one idle
/// longer is pinged first and replaced when the ping fails. sqlx's default pings on every
/// loan: on the small-file path that was two round trips of four per file (the key lookup and
/// the file's one statement each came with one). The price: a connection cut within this long
/// of its last use fails its next request with `StoreError::Unavailable` (a 503 the client
/// retries) instead of being replaced unseen; sqlx then drops it.
pub const PING_AFTER_IDLE: Duration = Duration::from_secs(1);
/// How long a request waits for a pooled connection. Short, so that a database that is down or
/// saturated answers `StoreError::Unavailable` (a 503 the client can retry) within seconds
/// instead of holding the request until the client gives up.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// The metadata store on a Postgres connection pool. Cloning shares the pool.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    gate: filegate_sql_store::WriteGate,
}

impl PgStore {
    /// Opens a pool and one connection right away, so that a wrong URL or a down database is
    /// reported at start-up.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let pool = Self::pool_options(max_connections)
            .connect(url)
            .await
            .map_err(store_error)?;
        Ok(Self::from_pool(pool))
    }

    /// Opens a pool without connecting, so that the service can start (and report itself not
    /// ready) while the database is still coming up. Only a malformed URL fails here.
    pub fn connect_lazy(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let options: PgConnectOptions = url.parse().map_err(store_error)?;
        Ok(Self::from_pool(
            Self::pool_options(max_connections).connect_lazy_with(options),
        ))
    }

    /// The pool options every constructor here uses; exposed so that callers building their own
    /// pool for [`PgStore::from_pool`] get the same short acquire timeout and ping policy.
    pub fn pool_options(max_connections: u32) -> PgPoolOptions {
        PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for < PING_AFTER_IDLE {
                        return Ok(true);
                    }
                    sqlx::Connection::ping(conn).await.map(|()| true)
                })
            })
    }
}
