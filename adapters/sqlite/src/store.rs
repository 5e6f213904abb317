//! The metadata ports on SQLite: the shared SQL of `filegate-sql-store`. SQLite has no row
//! locks: a writing transaction takes the database's write lock up front (`BEGIN IMMEDIATE`,
//! see [`Text`]'s `begin_write`), which is what `FOR UPDATE` is in Postgres, so no row lock is
//! appended to the locking reads.

use crate::encoding::Text;
use crate::{MIGRATOR, SqliteStore};

filegate_sql_store::metadata_ports! {
    store: SqliteStore,
    dialect: Text,
    session_tx: SqliteSessionTx,
    migrator: MIGRATOR,
    lock_row: "",
    index_list: "group_concat(block_index)",
    migration_log_exists:
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations')",
    whole_file: sequence,
}
