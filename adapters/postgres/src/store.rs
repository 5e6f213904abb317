//! The metadata ports on Postgres: the shared SQL of `filegate-sql-store`, with Postgres' row
//! lock (`FOR UPDATE`) and its aggregate of block indices.

use crate::encoding::Pg;
use crate::{MIGRATOR, PgStore};

filegate_sql_store::metadata_ports! {
    store: PgStore,
    dialect: Pg,
    session_tx: PgSessionTx,
    migrator: MIGRATOR,
    lock_row: " FOR UPDATE",
    index_list: "string_agg(block_index::text, ',' ORDER BY block_index)",
    migration_log_exists: "SELECT to_regclass('_sqlx_migrations') IS NOT NULL",
    whole_file: cte,
    incomplete_block: "SELECT received, replaced
                       FROM filegate_record_incomplete_block($1, $2, $3, $4, $5)",
}
