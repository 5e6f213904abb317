//! Verified API keys kept in memory, so that a request costs no key lookup in the store: on the
//! small-file path the lookup was one of a file's two round trips to Postgres. A key is kept
//! only while the store's feed of key changes ([`KeyChanges`]) is followed, and its entry goes
//! the moment the feed names it; so a key revoked by any process (`filegate keys revoke` on
//! another machine, or an `UPDATE` by hand) is refused by every server as soon as the store has
//! told it, not after an expiry. The expiry (`database.key_cache_secs`) is only a bound on how
//! long a key is trusted without the store being asked at all.
//!
//! A lookup that raced with a change must not put back what the change removed: each change
//! moves a generation on, and a lookup's answer is kept only if no change came between the
//! moment it asked the store and the moment it would keep the answer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};

use crate::keys::Principal;
use crate::ports::{KeyChange, KeyChanges};

/// How many keys are kept at most; past it, expired entries are dropped, and a new key is not
/// kept while the cache is still full (it is then looked up every time, as without a cache).
const MAX_KEYS: usize = 10_000;

/// The keys this process has verified, by hash. Cloning shares them.
#[derive(Debug, Clone)]
pub struct KeyCache {
    state: Arc<Mutex<State>>,
    ttl: chrono::Duration,
}

#[derive(Debug, Default)]
struct State {
    /// Whether the store's feed is followed: nothing is kept, nor answered, while it is not.
    following: bool,
    /// Moves on at every change the feed reports.
    generation: u64,
    entries: HashMap<String, Entry>,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    principal: Principal,
    until: DateTime<Utc>,
}

/// Where a lookup stood when it went to the store: its answer is kept only if no change came
/// since.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket(Option<u64>);

impl KeyCache {
    /// A cache whose entries are trusted for `ttl` at most. It keeps nothing until a feed of
    /// changes is followed ([`follow_key_changes`]).
    pub fn new(ttl: std::time::Duration) -> Self {
        Self {
            state: Arc::default(),
            ttl: chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The principal of the key with this hash, if it is kept and not expired.
    pub(crate) fn get(&self, hash: &str, now: DateTime<Utc>) -> Option<Principal> {
        let state = self.lock();
        if !state.following {
            return None;
        }
        state
            .entries
            .get(hash)
            .filter(|e| now < e.until)
            .map(|e| e.principal)
    }

    /// Taken before asking the store, for [`KeyCache::keep`].
    pub(crate) fn ticket(&self) -> Ticket {
        let state = self.lock();
        Ticket(state.following.then_some(state.generation))
    }

    /// Keeps what the store answered, unless a change came since `ticket` was taken (or the
    /// feed is not followed).
    pub(crate) fn keep(
        &self,
        ticket: Ticket,
        hash: &str,
        principal: Principal,
        now: DateTime<Utc>,
    ) {
        let mut state = self.lock();
        if !state.following || ticket.0 != Some(state.generation) {
            return;
        }
        if state.entries.len() >= MAX_KEYS && !state.entries.contains_key(hash) {
            state.entries.retain(|_, e| now < e.until);
            if state.entries.len() >= MAX_KEYS {
                return;
            }
        }
        let until = now
            .checked_add_signed(self.ttl)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        state
            .entries
            .insert(hash.to_owned(), Entry { principal, until });
    }

    /// Applies one report of the feed.
    pub fn apply(&self, change: KeyChange) {
        let mut state = self.lock();
        state.generation = state.generation.wrapping_add(1);
        match change {
            KeyChange::Following => state.following = true,
            KeyChange::Changed(hash) => {
                state.entries.remove(&hash);
            }
            KeyChange::All => state.entries.clear(),
            KeyChange::Lost => {
                state.following = false;
                state.entries.clear();
            }
        }
    }

    /// How many keys are kept.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether no key is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Follows the store's feed of key changes for `cache`, for as long as the task runs. Serve
/// runs it beside the API, and aborts it at shutdown.
pub async fn follow_key_changes<F: KeyChanges>(cache: KeyCache, mut feed: F) {
    loop {
        let change = feed.next().await;
        match &change {
            KeyChange::Following => tracing::debug!("following the store's key changes"),
            KeyChange::Lost => tracing::warn!(
                "the feed of key changes broke: API keys are looked up in the store until it is back"
            ),
            KeyChange::Changed(_) | KeyChange::All => {}
        }
        cache.apply(change);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use filegate_domain::{ApiKeyId, FirmId, UserId};
    use uuid::Uuid;

    fn principal(n: u128) -> Principal {
        Principal {
            key: ApiKeyId::from_uuid(Uuid::from_u128(n)),
            firm: FirmId::from_uuid(Uuid::from_u128(n + 1)),
            user: UserId::from_uuid(Uuid::from_u128(n + 2)),
        }
    }

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::seconds(secs)
    }

    fn following(ttl_secs: u64) -> KeyCache {
        let cache = KeyCache::new(std::time::Duration::from_secs(ttl_secs));
        cache.apply(KeyChange::Following);
        cache
    }

    #[test]
    fn nothing_is_kept_until_the_feed_is_followed() {
        let cache = KeyCache::new(std::time::Duration::from_secs(60));
        let ticket = cache.ticket();
        cache.keep(ticket, "h", principal(1), at(0));
        assert!(cache.is_empty());
        assert_eq!(cache.get("h", at(0)), None);
    }

    #[test]
    fn a_kept_key_answers_until_it_expires() {
        let cache = following(60);
        cache.keep(cache.ticket(), "h", principal(1), at(0));
        assert_eq!(cache.get("h", at(59)), Some(principal(1)));
        assert_eq!(cache.get("h", at(60)), None, "expired");
        assert_eq!(cache.get("other", at(0)), None);
    }

    #[test]
    fn a_changed_key_goes_and_the_others_stay() {
        let cache = following(60);
        cache.keep(cache.ticket(), "a", principal(1), at(0));
        cache.keep(cache.ticket(), "b", principal(10), at(0));
        cache.apply(KeyChange::Changed("a".into()));
        assert_eq!(cache.get("a", at(1)), None);
        assert_eq!(cache.get("b", at(1)), Some(principal(10)));
        cache.apply(KeyChange::All);
        assert_eq!(cache.get("b", at(1)), None);
    }

    /// A lookup that asked the store before a change and answers after it would put back a
    /// key the change revoked: its answer is dropped.
    #[test]
    fn an_answer_older_than_a_change_is_not_kept() {
        let cache = following(60);
        let ticket = cache.ticket();
        cache.apply(KeyChange::Changed("a".into()));
        cache.keep(ticket, "a", principal(1), at(0));
        assert_eq!(cache.get("a", at(0)), None);
        // The next lookup, after the change, is kept.
        cache.keep(cache.ticket(), "a", principal(1), at(0));
        assert_eq!(cache.get("a", at(0)), Some(principal(1)));
    }

    /// While the feed is broken a revocation could go unheard: everything kept goes, nothing
    /// is kept, and a lookup from before the break is not kept after the feed is back.
    #[test]
    fn a_broken_feed_empties_the_cache_until_it_is_followed_again() {
        let cache = following(60);
        cache.keep(cache.ticket(), "a", principal(1), at(0));
        let before = cache.ticket();
        cache.apply(KeyChange::Lost);
        assert_eq!(cache.get("a", at(0)), None);
        cache.keep(cache.ticket(), "a", principal(1), at(0));
        assert!(cache.is_empty(), "nothing kept while the feed is down");
        cache.apply(KeyChange::Following);
        cache.keep(before, "a", principal(1), at(0));
        assert!(cache.is_empty(), "an answer from before the break");
        cache.keep(cache.ticket(), "a", principal(1), at(0));
        assert_eq!(cache.get("a", at(0)), Some(principal(1)));
    }

    #[test]
    fn a_full_cache_makes_room_from_expired_keys_only() {
        let cache = following(60);
        for n in 0..MAX_KEYS {
            cache.keep(cache.ticket(), &format!("k{n}"), principal(1), at(0));
        }
        cache.keep(cache.ticket(), "late", principal(2), at(1));
        assert_eq!(cache.get("late", at(1)), None, "full of live keys");
        assert_eq!(cache.len(), MAX_KEYS);
        cache.keep(cache.ticket(), "later", principal(3), at(61));
        assert_eq!(cache.get("later", at(61)), Some(principal(3)));
        assert_eq!(cache.len(), 1, "the expired keys made room");
    }
}
