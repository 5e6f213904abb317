//! API keys: created at random, shown once, stored only as a SHA-256 hash, revocable. A key is
//! `fg_` followed by 64 hex digits (256 random bits), so a hash lookup is as safe as a
//! constant-time comparison: nobody can guess a preimage.

use filegate_domain::{ApiKeyId, FirmId, UserId};
use sha2::{Digest, Sha256};

use crate::key_cache::KeyCache;
use crate::ports::{Clock, IdSource, KeyStore, StoreError, StoredApiKey};

const PREFIX: &str = "fg_";

/// Who is calling: the firm and user an authenticated key belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Principal {
    pub key: ApiKeyId,
    pub firm: FirmId,
    pub user: UserId,
}

/// A key just created. The secret is here and nowhere else.
#[derive(Clone, PartialEq, Eq)]
pub struct CreatedKey {
    pub id: ApiKeyId,
    pub secret: String,
}

impl std::fmt::Debug for CreatedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedKey")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("the X-API-Key header is missing")]
    Missing,
    #[error("the API key is not valid or has been revoked")]
    Invalid,
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, thiserror::Error)]
pub enum KeyAdminError {
    #[error("no live API key has the id {0}")]
    NotFound(ApiKeyId),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The API key use cases.
#[derive(Debug, Clone)]
pub struct ApiKeys<M, C, I> {
    store: M,
    clock: C,
    ids: I,
    cache: Option<KeyCache>,
}

impl<M: KeyStore, C: Clock, I: IdSource> ApiKeys<M, C, I> {
    pub fn new(store: M, clock: C, ids: I) -> Self {
        Self {
            store,
            clock,
            ids,
            cache: None,
        }
    }

    /// Keeps verified keys in `cache` (which someone must feed with the store's key changes:
    /// [`crate::key_cache::follow_key_changes`]).
    pub fn with_cache(mut self, cache: KeyCache) -> Self {
        self.cache = Some(cache);
        self
    }

    pub async fn create(&self, firm: FirmId, user: UserId) -> Result<CreatedKey, KeyAdminError> {
        let secret = format!("{PREFIX}{}", hex::encode(self.ids.secret()));
        let key = StoredApiKey {
            id: self.ids.api_key_id(),
            hash: hash_key(&secret),
            firm,
            user,
            created_at: self.clock.now(),
        };
        self.store.insert_api_key(&key).await?;
        tracing::info!(key_id = %key.id, %firm, %user, "API key created");
        Ok(CreatedKey { id: key.id, secret })
    }

    pub async fn revoke(&self, id: ApiKeyId) -> Result<(), KeyAdminError> {
        if self.store.revoke_api_key(id, self.clock.now()).await? {
            tracing::info!(key_id = %id, "API key revoked");
            Ok(())
        } else {
            Err(KeyAdminError::NotFound(id))
        }
    }

    pub async fn authenticate(&self, presented: Option<&str>) -> Result<Principal, AuthError> {
        let presented = presented
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or(AuthError::Missing)?;
        if !looks_like_a_key(presented) {
            return Err(AuthError::Invalid);
        }
        let hash = hash_key(presented);
        if let Some(principal) = self
            .cache
            .as_ref()
            .and_then(|c| c.get(&hash, self.clock.now()))
        {
            return Ok(principal);
        }
        let ticket = self.cache.as_ref().map(KeyCache::ticket);
        let key = self
            .store
            .find_api_key(&hash)
            .await?
            .ok_or(AuthError::Invalid)?;
        let principal = Principal {
            key: key.id,
            firm: key.firm,
            user: key.user,
        };
        if let (Some(cache), Some(ticket)) = (&self.cache, ticket) {
            cache.keep(ticket, &hash, principal, self.clock.now());
        }
        Ok(principal)
    }

    /// Whether any live key exists (the first start creates one when none does).
    pub async fn any(&self) -> Result<bool, KeyAdminError> {
        Ok(self.store.count_api_keys().await? > 0)
    }
}

/// Rejects obviously malformed keys before touching the store.
fn looks_like_a_key(key: &str) -> bool {
    key.strip_prefix(PREFIX)
        .is_some_and(|rest| rest.len() == 64 && rest.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::{FixedClock, InMemoryStore, SeqIds};
    use uuid::Uuid;

    fn keys() -> ApiKeys<InMemoryStore, FixedClock, SeqIds> {
        ApiKeys::new(InMemoryStore::default(), FixedClock, SeqIds::default())
    }

    async fn a_key(keys: &ApiKeys<InMemoryStore, FixedClock, SeqIds>) -> CreatedKey {
        keys.create(
            FirmId::from_uuid(Uuid::nil()),
            UserId::from_uuid(Uuid::nil()),
        )
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn a_created_key_authenticates_as_its_firm_and_user() {
        let keys = keys();
        let firm = FirmId::from_uuid(Uuid::from_u128(1));
        let user = UserId::from_uuid(Uuid::from_u128(2));
        let created = keys.create(firm, user).await.unwrap();
        let principal = keys.authenticate(Some(&created.secret)).await.unwrap();
        assert_eq!(
            (principal.firm, principal.user, principal.key),
            (firm, user, created.id)
        );
    }

    #[tokio::test]
    async fn the_store_never_sees_the_secret() {
        let keys = keys();
        let created = a_key(&keys).await;
        let stored = keys.store.keys();
        assert_eq!(stored.len(), 1);
        assert_ne!(stored[0].hash, created.secret);
        assert!(!stored[0].hash.contains(&created.secret[3..]));
    }

    #[tokio::test]
    async fn a_revoked_key_no_longer_authenticates() {
        let keys = keys();
        let created = a_key(&keys).await;
        keys.revoke(created.id).await.unwrap();
        assert!(matches!(
            keys.authenticate(Some(&created.secret)).await,
            Err(AuthError::Invalid)
        ));
        assert!(matches!(
            keys.revoke(created.id).await,
            Err(KeyAdminError::NotFound(_))
        ));
    }

    /// With a followed cache, a verified key answers without the store (revoked there behind
    /// the cache's back, it still passes), until the feed names it.
    #[tokio::test]
    async fn a_cached_key_answers_until_the_feed_reports_its_change() {
        use crate::ports::KeyChange;
        let cache = KeyCache::new(std::time::Duration::from_secs(60));
        cache.apply(KeyChange::Following);
        let keys = keys().with_cache(cache.clone());
        let created = a_key(&keys).await;
        keys.authenticate(Some(&created.secret)).await.unwrap();
        assert_eq!(cache.len(), 1);
        keys.store
            .revoke_api_key(created.id, FixedClock.now())
            .await
            .unwrap();
        assert_eq!(
            keys.authenticate(Some(&created.secret)).await.unwrap().key,
            created.id,
            "answered from the cache"
        );
        cache.apply(KeyChange::Changed(hash_key(&created.secret)));
        assert!(matches!(
            keys.authenticate(Some(&created.secret)).await,
            Err(AuthError::Invalid)
        ));
        assert!(cache.is_empty(), "a refused key is not kept");
    }

    #[tokio::test]
    async fn missing_and_malformed_keys_are_told_apart() {
        let keys = keys();
        assert!(matches!(
            keys.authenticate(None).await,
            Err(AuthError::Missing)
        ));
        assert!(matches!(
            keys.authenticate(Some("  ")).await,
            Err(AuthError::Missing)
        ));
        assert!(matches!(
            keys.authenticate(Some("hunter2")).await,
            Err(AuthError::Invalid)
        ));
        let unknown = format!("fg_{}", "a".repeat(64));
        assert!(matches!(
            keys.authenticate(Some(&unknown)).await,
            Err(AuthError::Invalid)
        ));
    }
}
