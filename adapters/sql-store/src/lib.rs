//! The metadata ports on SQL, written once for filegate's two SQL stores (Postgres and SQLite):
//! the portable SQL of every port and of the session transaction ([`metadata_ports!`]), the rows
//! as the queries return them with their checked conversion into domain values, and the errors
//! for values that cannot be read or stored. Each store keeps only what differs, as its
//! [`Dialect`]: how values its database has no type for are encoded (SQLite keeps uuids and
//! timestamps as text), its driver's error codes, how a writing transaction begins, plus its
//! connection set-up and migrations. Every column is re-validated with the domain's own rules,
//! so a row the domain could not have produced is reported as such instead of travelling on as
//! a value that breaks an invariant.

mod batch;
mod checks;
mod dialect;
mod errors;
mod gate;
mod ports;
mod rows;

pub use batch::{
    GroupCommit, MAX_GROUP, RecordGroup, WholeFile, WholeFileForm, group_sql, record_as_group,
    run as run_group_commit,
};
pub use checks::{corrupt, indices, pending_migrations, to_i32, to_i64, unsigned, unstorable};
pub use dialect::{Dialect, Encoding};
pub use errors::classify;
#[doc(hidden)]
pub use filegate_adapter_otel::current_traceparent;
pub use gate::{WriteGate, WriteTx, begin_write};
pub use rows::{
    ApiKeyRow, EventRow, FileRow, IndexedPartRow, PartRow, SessionRow, SnapshotRow, TaskRow,
    session_state,
};
#[doc(hidden)]
pub use tokio as __tokio;

/// The columns of [`TaskRow`], as a select list; a macro so that `concat!` can build whole
/// statements from it at compile time.
#[macro_export]
macro_rules! task_columns {
    () => {
        "id, firm_id, file_id, kind, status, attempts, media_id, upload_session, handle, \
         result_id, last_error, lease_until, created_at, updated_at"
    };
}

/// The columns of [`FileRow`], as a select list.
#[macro_export]
macro_rules! file_columns {
    () => {
        "id, firm_id, user_id, mode, blob_path, url, file_name, content_type, size, created_at, sha256"
    };
}

/// The columns of [`SessionRow`], each prefixed with `s.`, as a select list.
#[macro_export]
macro_rules! session_columns {
    () => {
        "s.file_id, s.firm_id, s.user_id, s.mode, s.total_blocks, s.file_name, s.content_type, \
         s.blob_path, s.upload_id, \
         CASE WHEN s.deleted_at IS NOT NULL THEN 'deleted' \
              WHEN s.expired_at IS NOT NULL THEN 'expired' ELSE s.state END AS state, \
         s.created_at"
    };
}

/// The four inserts of a new file of one block ([`UploadStore::record_whole_file`]), as one
/// query so that the store answers them in one round trip rather than four. Parameters: the
/// session `$1`–`$13`, its block `$14`–`$18`, the file `$19`–`$29`, the event `$30`–`$34`.
/// `sequence` (SQLite): four statements, which sqlx runs in one call to the connection's
/// thread, inside the caller's transaction. `cte` (Postgres, which prepares one statement at a
/// time): one statement whose data-modifying `WITH` parts are atomic on their own, checked for
/// foreign keys at its end.
///
/// [`UploadStore::record_whole_file`]: filegate_application::ports::UploadStore::record_whole_file
#[macro_export]
macro_rules! whole_file_inserts {
    // Each insert is its target (`@..._into`), one row of parameters (`@..._row`) and, for the
    // event, a tail; `group_sql` gives the rows once per file.
    (@session_into) => {
        "INSERT INTO upload_sessions
             (file_id, firm_id, user_id, mode, total_blocks, file_name, content_type, blob_path,
              upload_id, state, created_at, completed_at, received_blocks)"
    };
    (@session_row) => {
        "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
    };
    (@block_into) => {
        "INSERT INTO staged_blocks (file_id, block_index, part_id, size, staged_at)"
    };
    (@block_row) => {
        "($14, $15, $16, $17, $18)"
    };
    (@file_into) => {
        concat!("INSERT INTO files (", $crate::file_columns!(), ")")
    };
    (@file_row) => {
        "($19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29)"
    };
    (@event_into) => {
        "INSERT INTO outbox (id, routing_key, payload, created_at, traceparent)"
    };
    (@event_row) => {
        "($30, $31, $32, $33, $34)"
    };
    (@event_tail) => {
        " ON CONFLICT (id) DO NOTHING"
    };
    (@session) => {
        concat!(
            $crate::whole_file_inserts!(@session_into),
            " VALUES ",
            $crate::whole_file_inserts!(@session_row)
        )
    };
    (@block) => {
        concat!(
            $crate::whole_file_inserts!(@block_into),
            " VALUES ",
            $crate::whole_file_inserts!(@block_row)
        )
    };
    (@file) => {
        concat!(
            $crate::whole_file_inserts!(@file_into),
            " VALUES ",
            $crate::whole_file_inserts!(@file_row)
        )
    };
    (@event) => {
        concat!(
            $crate::whole_file_inserts!(@event_into),
            " VALUES ",
            $crate::whole_file_inserts!(@event_row),
            $crate::whole_file_inserts!(@event_tail)
        )
    };
    // How the form is named to `group_sql`.
    (@form sequence) => {
        $crate::WholeFileForm::Sequence
    };
    (@form cte) => {
        $crate::WholeFileForm::Cte
    };
    // Whether the query needs a transaction around it to be atomic.
    (@needs_transaction sequence) => {
        true
    };
    (@needs_transaction cte) => {
        false
    };
    (sequence) => {
        concat!(
            $crate::whole_file_inserts!(@session), ";\n",
            $crate::whole_file_inserts!(@block), ";\n",
            $crate::whole_file_inserts!(@file), ";\n",
            $crate::whole_file_inserts!(@event)
        )
    };
    (cte) => {
        concat!(
            "WITH s AS (", $crate::whole_file_inserts!(@session), "),\n",
            "b AS (", $crate::whole_file_inserts!(@block), "),\n",
            "f AS (", $crate::whole_file_inserts!(@file), ")\n",
            $crate::whole_file_inserts!(@event)
        )
    };
}
