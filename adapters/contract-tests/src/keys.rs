//! The promises of [`KeyStore`]: keys are found by hash until revoked.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use filegate_application::ports::KeyStore;
use filegate_domain::ApiKeyId;
use uuid::Uuid;

use crate::support::*;

/// Live keys are found by their hash, revoked ones are not, and only live keys are counted.
pub async fn api_keys_are_found_by_hash_until_revoked<M: KeyStore>(store: M) {
    assert_eq!(
        ok(
            store.count_api_keys().await,
            "count_api_keys on an empty store"
        ),
        0
    );
    let first = api_key("a");
    let second = api_key("b");
    ok(store.insert_api_key(&first).await, "insert_api_key");
    ok(store.insert_api_key(&second).await, "insert_api_key");

    let found = ok(store.find_api_key(&first.hash).await, "find_api_key");
    assert_eq!(
        found.as_ref(),
        Some(&first),
        "find_api_key must give back the key as inserted"
    );
    let unknown = ok(store.find_api_key(&"0".repeat(64)).await, "find_api_key");
    assert_eq!(
        unknown, None,
        "find_api_key must not find a hash that was never inserted"
    );
    assert_eq!(ok(store.count_api_keys().await, "count_api_keys"), 2);

    assert!(
        ok(
            store.revoke_api_key(first.id, now()).await,
            "revoke_api_key"
        ),
        "revoking a live key must answer true"
    );
    assert_eq!(
        ok(store.find_api_key(&first.hash).await, "find_api_key"),
        None,
        "a revoked key must not be found"
    );
    assert_eq!(
        ok(store.find_api_key(&second.hash).await, "find_api_key").as_ref(),
        Some(&second),
        "revoking one key must leave the others live"
    );
    assert_eq!(
        ok(store.count_api_keys().await, "count_api_keys"),
        1,
        "a revoked key must not be counted"
    );
    assert!(
        !ok(
            store.revoke_api_key(first.id, now()).await,
            "revoke_api_key"
        ),
        "revoking a key twice must answer false the second time"
    );
    assert!(
        !ok(
            store
                .revoke_api_key(ApiKeyId::from_uuid(Uuid::new_v4()), now())
                .await,
            "revoke_api_key"
        ),
        "revoking an unknown key must answer false"
    );
}
