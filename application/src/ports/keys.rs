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
