//! The SQLite metadata store of filegate, for the embedded profile that runs `filegate serve`
//! with nothing installed (next to the local-files blob store): it implements the application's
//! metadata ports on one database file, with the same six tables and semantics as the Postgres
//! store. The file (and its folder) is created on first use and opened in WAL mode, so that
//! readers never wait for the writer; SQLite has no row locks, so a session's transaction takes
//! the database's write lock up front (`BEGIN IMMEDIATE`), which serializes racing final blocks
//! so that the application's completion rule runs the blob commit exactly once, inside the
//! transaction that records the file. Row decoding is shared with the Postgres store
//! (`filegate-sql-store`); this crate keeps its SQL, its text encodings of uuids and timestamps
//! and its error codes. The schema ships inside the binary as sqlx migrations; queries are
//! checked at run time, so the crate builds without a database.

mod encoding;
mod errors;
mod store;

pub use encoding::Text;
pub use store::SqliteSessionTx;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use filegate_application::ports::StoreError;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::errors::store_error;

/// Embedded at build time so that a deployment is one binary, and a binary always migrates to
/// the schema its queries were written for. SQLite migrations take no lock of their own, so
/// processes sharing one file should not migrate it at the same moment (the embedded profile is
/// one process). A pool built elsewhere for `SqliteStore::from_pool` should use
/// [`SqliteStore::connect_options`]: without the busy timeout, racing writers fail instead of
/// waiting their turn.
pub(crate) static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// How long a statement waits for another connection's write lock before it gives up with
/// `SQLITE_BUSY` (reported as `StoreError::Unavailable`). SQLite has one writer at a time and
/// a session's transaction holds the lock while the blob commit runs, so writers queue; this is how long
/// they queue.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a request waits for a pooled connection. The database is a local file, so a wait
/// means that every connection is busy (most likely queued on the write lock): as long as the
/// busy timeout, and then `StoreError::Unavailable`, a 503 the client can retry.
const ACQUIRE_TIMEOUT: Duration = BUSY_TIMEOUT;

/// The metadata store on a pool of SQLite connections to one database file. Cloning shares the
/// pool.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    gate: filegate_sql_store::WriteGate,
}

impl SqliteStore {
    /// Opens the database file named by `url` (`sqlite://path/to/file.db`, `sqlite:///abs/file.db`
    /// or `sqlite:relative.db`; a relative path is taken from the working directory), creating
    /// the file and its folder when missing, and opens one connection right away so that a path
    /// that cannot be used is reported at start-up.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let options = Self::connect_options(url)?;
        if let Some(folder) = options
            .get_filename()
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
        {
            create_folder(folder)?;
        }
        // One connection first: it switches a new file to WAL, which takes an exclusive lock
        // that the busy timeout does not cover; the pool's later connections find WAL set.
        let pool = Self::pool_options(max_connections)
            .connect_with(options)
            .await
            .map_err(store_error)?;
        Ok(Self::from_pool(pool))
    }

    /// The connection options every constructor here uses: the file created when missing, WAL,
    /// `synchronous = NORMAL` (durable at every checkpoint and never corrupt; with WAL, a power
    /// loss can cost only the last commits), foreign keys enforced, and the busy timeout.
    /// Exposed so that callers building their own pool for [`SqliteStore::from_pool`] get the
    /// same settings.
    ///
    /// Only files are accepted: an in-memory database (`sqlite::memory:`, `mode=memory`) would
    /// vanish with the pool's last connection and cannot use WAL or wait for a lock.
    pub fn connect_options(url: &str) -> Result<SqliteConnectOptions, StoreError> {
        let invalid =
            |why: &str| StoreError::Unknown(anyhow::anyhow!("invalid SQLite database URL: {why}"));
        let rest = url
            .split_once(':')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("sqlite"))
            .map(|(_, rest)| rest)
            .ok_or_else(|| invalid("it must start with `sqlite:`"))?;
        let (database, params) = rest.split_once('?').unwrap_or((rest, ""));
        let database = database.strip_prefix("//").unwrap_or(database);
        if database.is_empty() || database == ":memory:" {
            return Err(invalid("it must name a database file"));
        }
        if params.split('&').any(|p| p == "mode=memory") {
            return Err(invalid("an in-memory database cannot be used"));
        }
        let options = SqliteConnectOptions::from_str(&format!("sqlite:{rest}"))
            .map_err(|e| invalid(&e.to_string()))?;
        Ok(options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT))
    }

    /// The pool options every constructor here uses. No ping before a connection is lent: a
    /// connection to a file cannot have been dropped by a server, and the ping is a round trip
    /// to the connection's thread on every request (a tenth of the small-file path's hand-overs).
    pub fn pool_options(max_connections: u32) -> SqlitePoolOptions {
        SqlitePoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .test_before_acquire(false)
    }
}

/// Creates the database's folder. Blocking, but once at start-up and quick.
fn create_folder(folder: &Path) -> Result<(), StoreError> {
    std::fs::create_dir_all(folder).map_err(|e| {
        StoreError::Unavailable(anyhow::Error::new(e).context(format!(
            "cannot create the database folder {}",
            folder.display()
        )))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_is_lent_without_a_ping() {
        // A ping is a hand-over to the connection's thread on every request (see pool_options).
        assert!(!SqliteStore::pool_options(4).get_test_before_acquire());
    }
}
