//! Translation of sqlx's errors into the port's: the use cases decide retry-or-fail on
//! `StoreError`'s variants alone, so the split between "try again" and "broken" is made here.

use filegate_application::ports::StoreError;
use filegate_sql_store::classify;

/// SQLite's primary result codes (the low byte of an extended code) after which the same
/// request may succeed when simply sent again: another writer kept the database locked for
/// longer than the busy timeout, or the disk or memory failed it for now.
const RETRYABLE_PRIMARY_CODES: [i64; 7] = [
    5,  // SQLITE_BUSY: the write lock was held past the busy timeout
    6,  // SQLITE_LOCKED: a conflict inside this process (shared cache)
    7,  // SQLITE_NOMEM
    10, // SQLITE_IOERR: a read or write of the file failed
    13, // SQLITE_FULL: the disk is full
    14, // SQLITE_CANTOPEN: the file cannot be opened (a volume not mounted yet, permissions)
    15, // SQLITE_PROTOCOL: a lock race in the WAL protocol
];

pub(crate) fn store_error(e: sqlx::Error) -> StoreError {
    // sqlx reports SQLite's extended result code, in decimal; its low byte is the primary code.
    classify(e, |code| {
        code.parse::<i64>()
            .is_ok_and(|code| RETRYABLE_PRIMARY_CODES.contains(&(code & 0xff)))
    })
}
