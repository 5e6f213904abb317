//! The events filegate publishes. `file.completed` tells other services (the import module, for
//! one) that a file is committed; it is written to the outbox in the transaction that commits
//! the file and published from there, so it is never lost and never announces a file that is
//! not there.

use filegate_domain::{FileRecord, UploadSession};

use crate::media_ports::OutgoingEvent;

/// The version of the event payload; bumped on any incompatible change.
pub const FILE_COMPLETED_VERSION: u32 = 1;

/// The `file.completed` event of a committed file: routing key `file.completed.<mode>` (mode
/// lower-case), id equal to the file id (consumers drop duplicates by it).
pub fn file_completed(file: &FileRecord) -> OutgoingEvent {
    let payload = serde_json::json!({
        "version": FILE_COMPLETED_VERSION,
        "type": "file.completed",
        "fileId": file.id.to_string(),
        "firmId": file.firm.to_string(),
        "userId": file.user.to_string(),
        "mode": file.mode.as_str(),
        "fileName": file.file_name.as_str(),
        "contentType": file.content_type,
        "size": file.size,
        "blobPath": file.blob_path.as_str(),
        "createdAt": file.created_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
    });
    OutgoingEvent {
        id: file.id.to_string(),
        routing_key: format!("file.completed.{}", file.mode.as_str().to_ascii_lowercase()),
        payload: payload.to_string().into_bytes(),
        trace_parent: None,
    }
}

/// The `file.deleted` event of a deleted file (or upload): routing key `file.deleted.<mode>`,
/// id `{file id}.deleted`, so that it never collides with the file's `file.completed`.
pub fn file_deleted(session: &UploadSession) -> OutgoingEvent {
    let payload = serde_json::json!({
        "version": FILE_COMPLETED_VERSION,
        "type": "file.deleted",
        "fileId": session.file_id.to_string(),
        "firmId": session.firm.to_string(),
        "userId": session.user.to_string(),
        "mode": session.mode.as_str(),
        "fileName": session.file_name.as_str(),
        "blobPath": session.blob_path.as_str(),
    });
    OutgoingEvent {
        id: format!("{}.deleted", session.file_id),
        routing_key: format!(
            "file.deleted.{}",
            session.mode.as_str().to_ascii_lowercase()
        ),
        payload: payload.to_string().into_bytes(),
        trace_parent: None,
    }
}

/// Removes the outbox's old events: those published more than `retain` before `now`, and, when
/// events are off (nobody will publish them), those stored that long ago; answers how many.
pub async fn purge_old_events<M: crate::ports::OutboxStore>(
    store: &M,
    now: chrono::DateTime<chrono::Utc>,
    retain: std::time::Duration,
    events_enabled: bool,
) -> Result<u64, crate::ports::StoreError> {
    store
        .purge_events(crate::system::earlier(now, retain), !events_enabled)
        .await
}

/// Publishes the outbox: reads unpublished events oldest first, publishes each with the bus's
/// confirmation, and marks them published. An event is marked only after the bus confirmed it,
/// so a crash in between publishes it again (at least once; consumers drop duplicates by id).
#[derive(Debug, Clone)]
pub struct OutboxRelay<M, P> {
    store: M,
    bus: P,
}

/// Why a relay round stopped early.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(transparent)]
    Store(#[from] crate::ports::StoreError),
    #[error(transparent)]
    Publish(#[from] crate::media_ports::PublishError),
}

impl<M: crate::ports::OutboxStore, P: crate::media_ports::EventPublisher> OutboxRelay<M, P> {
    pub fn new(store: M, bus: P) -> Self {
        Self { store, bus }
    }

    /// Publishes up to `batch` pending events; answers how many were published. Stops at the
    /// first failure, keeping the order of what is left.
    pub async fn publish_pending(&self, batch: u32) -> Result<usize, RelayError> {
        let events = self.store.unpublished_events(batch).await?;
        let mut published = Vec::with_capacity(events.len());
        let mut failure = None;
        for event in &events {
            match self.bus.publish(event).await {
                Ok(()) => published.push(event.id.clone()),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        if !published.is_empty() {
            self.store.mark_events_published(&published).await?;
        }
        match failure {
            Some(e) => Err(e.into()),
            None => Ok(published.len()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::{FixedClock, InMemoryBlobs, InMemoryStore, SeqIds};
    use crate::keys::Principal;
    use crate::media_ports::{EventPublisher, OutgoingEvent, PublishError};
    use crate::ports::OutboxStore;
    use crate::uploads::{ChunkCommand, Uploads};
    use filegate_domain::{ApiKeyId, FirmId, Mode, UserId};
    use std::sync::{Arc, Mutex};
    use uuid::Uuid;

    /// A bus that records what it got and can be down.
    #[derive(Debug, Clone, Default)]
    struct Bus {
        got: Arc<Mutex<Vec<OutgoingEvent>>>,
        down: Arc<std::sync::atomic::AtomicBool>,
    }

    impl EventPublisher for Bus {
        async fn publish(&self, event: &OutgoingEvent) -> Result<(), PublishError> {
            if self.down.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(PublishError(anyhow::anyhow!("broker down")));
            }
            self.got.lock().unwrap().push(event.clone());
            Ok(())
        }
    }

    #[tokio::test]
    async fn events_wait_in_the_outbox_while_the_bus_is_down_and_go_out_once_after() {
        let store = InMemoryStore::default();
        let uploads = Uploads::new(
            store.clone(),
            InMemoryBlobs::default(),
            FixedClock,
            SeqIds::default(),
        );
        let who = Principal {
            key: ApiKeyId::from_uuid(Uuid::nil()),
            firm: FirmId::from_uuid(Uuid::from_u128(1)),
            user: UserId::from_uuid(Uuid::from_u128(2)),
        };
        let cmd = ChunkCommand {
            file_id: None,
            block_index: 0,
            total_blocks: 1,
            mode: Mode::Import,
            file_name: Some("c.csv".into()),
            content_type: Some("text/csv".into()),
            data: bytes::Bytes::from_static(b"a,b").into(),
            chunk_sha256: None,
        };
        let file = uploads.upload_chunk(who, cmd).await.unwrap().file_id;
        let bus = Bus::default();
        let relay = OutboxRelay::new(store.clone(), bus.clone());
        bus.down.store(true, std::sync::atomic::Ordering::SeqCst);
        assert!(relay.publish_pending(10).await.is_err());
        assert_eq!(
            store.unpublished_events(10).await.unwrap().len(),
            1,
            "the event waits"
        );
        bus.down.store(false, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(relay.publish_pending(10).await.unwrap(), 1);
        assert_eq!(
            relay.publish_pending(10).await.unwrap(),
            0,
            "published once"
        );
        let got = bus.got.lock().unwrap().clone();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].routing_key, "file.completed.import");
        assert_eq!(got[0].id, file.to_string());
        let payload: serde_json::Value = serde_json::from_slice(&got[0].payload).unwrap();
        assert_eq!(payload["fileId"], file.to_string());
        assert_eq!(payload["mode"], "Import");
    }
}
