//! The outbox port: events written with the change that makes them true, published later.

use std::future::Future;

use chrono::{DateTime, Utc};

use super::StoreError;
use crate::media_ports::OutgoingEvent;

/// The transactional outbox, as the relay that publishes it sees it. Events are written by the
/// transactions that make them true (see [`super::SessionTx::insert_event`]), never here.
pub trait OutboxStore: Clone + Send + Sync + 'static {
    /// The oldest events not yet published, at most `limit`, oldest first.
    fn unpublished_events(
        &self,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<OutgoingEvent>, StoreError>> + Send;

    /// Marks events published (by id); unknown ids are ignored.
    fn mark_events_published(
        &self,
        ids: &[String],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Removes the events published before `before` and, when `unpublished_too` (nobody will
    /// ever publish them: events are off), those stored before it; answers how many went.
    fn purge_events(
        &self,
        before: DateTime<Utc>,
        unpublished_too: bool,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
}
