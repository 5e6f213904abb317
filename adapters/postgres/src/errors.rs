//! Translation of sqlx's errors into the port's: the use cases decide retry-or-fail on
//! `StoreError`'s variants alone, so the split between "try again" and "broken" is made here.

use filegate_application::ports::StoreError;
use filegate_sql_store::classify;

/// SQLSTATEs (or their two-character classes) after which the same request may succeed when
/// simply sent again: the connection broke, the server is short of a resource or shutting down,
/// or the transaction lost a race the server resolved by cancelling it.
const RETRYABLE_CLASSES: [&str; 2] = [
    "08", // connection exception
    "53", // insufficient resources (too many connections, out of memory, disk full)
];
const RETRYABLE_CODES: [&str; 7] = [
    "40001", // serialization_failure
    "40P01", // deadlock_detected
    "55P03", // lock_not_available
    "57014", // query_canceled (statement_timeout)
    "57P01", // admin_shutdown
    "57P02", // crash_shutdown
    "57P03", // cannot_connect_now (starting up, in recovery)
];

pub(crate) fn store_error(e: sqlx::Error) -> StoreError {
    classify(e, |code| {
        RETRYABLE_CODES.contains(&code) || RETRYABLE_CLASSES.iter().any(|c| code.starts_with(c))
    })
}
