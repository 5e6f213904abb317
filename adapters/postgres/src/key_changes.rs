//! The feed of API key changes on Postgres: `LISTEN` on the channel that the `api_keys`
//! table's triggers notify (migration 0010), on a connection of its own.

use std::time::Duration;

use filegate_application::ports::{KeyChange, KeyChanges};
use sqlx::postgres::{PgListener, PgPool, PgPoolOptions};

use crate::PgStore;

/// The channel the triggers notify; a payload is a key's hash, or [`ALL_KEYS`].
pub const KEY_CHANNEL: &str = "filegate_api_keys";
/// The payload of a change that names no key (a `TRUNCATE`).
pub const ALL_KEYS: &str = "*";
/// The pause between attempts to listen again once the connection is lost; keys are looked up
/// in the store meanwhile, so a pause costs only the cache's help.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Listens for key changes. The connection is its own (a pool of one made from the store's
/// options), so that it never takes one of the requests' connections.
pub struct PgKeyChanges {
    pool: PgPool,
    listener: Option<PgListener>,
}

impl std::fmt::Debug for PgKeyChanges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgKeyChanges")
            .field("listening", &self.listener.is_some())
            .finish_non_exhaustive()
    }
}

impl PgKeyChanges {
    pub fn new(store: &PgStore) -> Self {
        let options = (*store.pool.connect_options()).clone();
        Self {
            pool: PgPoolOptions::new()
                .max_connections(1)
                .connect_lazy_with(options),
            listener: None,
        }
    }

    async fn listen(&self) -> Result<PgListener, sqlx::Error> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(KEY_CHANNEL).await?;
        Ok(listener)
    }
}

impl KeyChanges for PgKeyChanges {
    async fn next(&mut self) -> KeyChange {
        loop {
            let Some(listener) = &mut self.listener else {
                match self.listen().await {
                    Ok(listener) => {
                        self.listener = Some(listener);
                        return KeyChange::Following;
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "could not listen for key changes; retrying");
                        tokio::time::sleep(RETRY_AFTER).await;
                        continue;
                    }
                }
            };
            // `None` is a lost connection (sqlx would reconnect, but changes made meanwhile
            // went unheard, which the cache must know of); an error is treated the same.
            match listener.try_recv().await {
                Ok(Some(notice)) => {
                    return match notice.payload() {
                        ALL_KEYS => KeyChange::All,
                        hash => KeyChange::Changed(hash.to_owned()),
                    };
                }
                Ok(None) => {}
                Err(e) => tracing::debug!(error = %e, "the key change listener failed"),
            }
            self.listener = None;
            return KeyChange::Lost;
        }
    }
}
