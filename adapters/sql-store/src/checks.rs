//! Checked conversions between the domain's numbers and the columns', and the two kinds of
//! refusal a store reports as `StoreError::Unknown`.

use filegate_application::ports::StoreError;
use filegate_domain::FileId;
use sqlx::migrate::Migrator;

/// A row that the schema accepted but the domain refuses: a broken invariant of the store
/// (a hand edit, a buggy release), never the client's fault.
pub fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Unknown(anyhow::anyhow!("a stored row cannot be read: {what}"))
}

/// A value of the domain that does not fit its column (a size above `i64::MAX`, a year past
/// 9999): refused before it reaches the database.
pub fn unstorable(what: impl std::fmt::Display) -> StoreError {
    StoreError::Unknown(anyhow::anyhow!("a value cannot be stored: {what}"))
}

pub fn unsigned(stored: i64, what: &str, id: FileId) -> Result<u64, StoreError> {
    u64::try_from(stored).map_err(|_| corrupt(format_args!("{what} {id}: negative size {stored}")))
}

pub fn to_i64(value: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| unstorable(format_args!("{what} {value} exceeds i64::MAX")))
}

/// Block indices and totals are below 50,000 by construction; the check only keeps the
/// conversion honest.
pub fn to_i32(value: u32, what: &str) -> Result<i32, StoreError> {
    i32::try_from(value).map_err(|_| unstorable(format_args!("{what} {value} exceeds i32::MAX")))
}

/// The staged block indices of a session, as both stores aggregate them: one comma-separated
/// text (`NULL` when there is none), since SQLite has no arrays.
pub fn indices(stored: Option<&str>, file: FileId) -> Result<Vec<u32>, StoreError> {
    stored
        .into_iter()
        .flat_map(|list| list.split(','))
        .map(|i| {
            i.parse::<u32>()
                .map_err(|_| corrupt(format_args!("file {file}: block index `{i}`")))
        })
        .collect()
}

/// The versions of `migrator`'s migrations missing from `applied`, so that readiness can tell
/// "reachable but not migrated" apart from "reachable and ready".
pub fn pending_migrations(migrator: &Migrator, applied: &[i64]) -> Vec<i64> {
    migrator
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .map(|m| m.version)
        .filter(|v| !applied.contains(v))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn indices_read_a_list_and_refuse_anything_else() {
        let file = FileId::from_uuid(Uuid::nil());
        assert_eq!(indices(None, file).unwrap(), Vec::<u32>::new());
        assert_eq!(indices(Some("0,2,7"), file).unwrap(), vec![0, 2, 7]);
        assert!(indices(Some("1,-2"), file).is_err());
        assert!(indices(Some(""), file).is_err());
    }

    #[test]
    fn numbers_that_do_not_fit_are_refused() {
        assert!(to_i64(u64::MAX, "size").is_err());
        assert!(to_i32(u32::MAX, "index").is_err());
        assert_eq!(to_i32(7, "index").unwrap(), 7);
        let file = FileId::from_uuid(Uuid::nil());
        assert!(unsigned(-1, "file", file).is_err());
    }
}
