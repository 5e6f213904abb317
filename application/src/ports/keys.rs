//! The API key port.

use std::future::Future;

use chrono::{DateTime, Utc};
use filegate_domain::{ApiKeyId, FirmId, UserId};

use super::StoreError;

/// What an API key stands for, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredApiKey {
    pub id: ApiKeyId,
    /// SHA-256 of the whole key, lower-case hex. The key itself is never stored.
    pub hash: String,
    pub firm: FirmId,
    pub user: UserId,
    pub created_at: DateTime<Utc>,
}

/// API keys, stored by hash.
pub trait KeyStore: Clone + Send + Sync + 'static {
    fn insert_api_key(
        &self,
        key: &StoredApiKey,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The live (not revoked) key with this hash.
    fn find_api_key(
        &self,
        hash: &str,
    ) -> impl Future<Output = Result<Option<StoredApiKey>, StoreError>> + Send;

    /// Marks a key revoked; answers whether a live key was found.
    fn revoke_api_key(
        &self,
        id: ApiKeyId,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Counts live keys (the first start creates one when there is none).
    fn count_api_keys(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;
}

/// What a store tells of changes to its API keys, so that a process may keep the keys it has
/// verified in memory ([`crate::keys::KeyCache`]) and still refuse a revoked key at once: a
/// key's entry goes as soon as the store reports the change, wherever it was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyChange {
    /// The feed is (again) established: from now on every change is reported.
    Following,
    /// The key with this hash was changed (revoked, deleted, or rewritten by hand).
    Changed(String),
    /// Keys changed that the store cannot name (a table emptied at once, say): all of them.
    All,
    /// The feed broke: until it reports [`KeyChange::Following`] again, changes go unheard.
    Lost,
}

/// A feed of [`KeyChange`]s. Stores without one (SQLite, which cannot hear of another
/// process's writes) leave keys uncached.
pub trait KeyChanges: Send + 'static {
    /// The next change; waits for it (and for the feed, while it is being re-established).
    fn next(&mut self) -> impl Future<Output = KeyChange> + Send;
}
