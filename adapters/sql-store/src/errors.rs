//! The split of sqlx's errors into the port's, the same for every dialect but for which
//! database codes mean "try again".

use filegate_application::ports::StoreError;

/// Connection-level failures (the pool, the socket, TLS, a message cut in the middle) are
/// unavailable; a unique violation is a conflict; a database error is unavailable when
/// `retryable_code` says its code is one after which the same request may succeed when simply
/// sent again; anything else is unknown. The use cases decide retry-or-fail on these variants
/// alone.
pub fn classify(e: sqlx::Error, retryable_code: impl Fn(&str) -> bool) -> StoreError {
    match &e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_) => StoreError::Unavailable(e.into()),
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            let constraint = db.constraint().unwrap_or("a unique constraint");
            StoreError::Conflict(format!("{} ({constraint})", db.message()))
        }
        sqlx::Error::Database(db) if db.code().is_some_and(|code| retryable_code(&code)) => {
            StoreError::Unavailable(e.into())
        }
        _ => StoreError::Unknown(e.into()),
    }
}
