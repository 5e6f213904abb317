//! The deletion port: a file (or an upload) becomes a tombstone, and says so on the bus.

use std::future::Future;

use filegate_domain::{FileId, FirmId};

use super::StoreError;
use crate::media_ports::OutgoingEvent;

/// Tombstones for deleted files.
pub trait DeletionStore: Clone + Send + Sync + 'static {
    /// Marks this firm's session deleted (whatever its state, unless it is deleted already) and
    /// stores `event` in the outbox, in one transaction; answers whether it did. Waits for a
    /// commit in flight on the session, so that a file is never committed after its deletion.
    fn mark_deleted(
        &self,
        firm: FirmId,
        file: FileId,
        event: &OutgoingEvent,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}
