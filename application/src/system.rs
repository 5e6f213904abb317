//! The production clock and id source. They live here rather than in an adapter because they
//! touch no external system: time-ordered UUIDs (v7) keep new rows clustered in indexes.

use chrono::{DateTime, Timelike, Utc};
use filegate_domain::{ApiKeyId, FileId};
use rand::RngCore;
use uuid::Uuid;

use crate::ports::{Clock, IdSource};

/// `at` moved `by` into the past, or the earliest time there is when that overflows: for
/// cutoffs, where "everything" is the right answer to an absurd setting.
pub(crate) fn earlier(at: DateTime<Utc>, by: std::time::Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(by)
        .ok()
        .and_then(|by| at.checked_sub_signed(by))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// `at` moved `by` into the future, or the latest time there is when that overflows.
pub(crate) fn later(at: DateTime<Utc>, by: std::time::Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(by)
        .ok()
        .and_then(|by| at.checked_add_signed(by))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    /// Truncated to microseconds, the precision of Postgres and SQLite timestamps, so that a
    /// value reads back exactly as it was written.
    fn now(&self) -> DateTime<Utc> {
        let now = Utc::now();
        now.with_nanosecond(now.nanosecond() / 1_000 * 1_000)
            .unwrap_or(now)
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct RandomIds;

impl IdSource for RandomIds {
    fn file_id(&self) -> FileId {
        FileId::from_uuid(Uuid::now_v7())
    }

    fn api_key_id(&self) -> ApiKeyId {
        ApiKeyId::from_uuid(Uuid::now_v7())
    }

    fn secret(&self) -> [u8; 32] {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        bytes
    }
}
