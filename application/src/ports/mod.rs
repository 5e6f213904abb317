//! The ports: what the use cases need from the outside world, and nothing about how.
//!
//! The metadata store is drawn as one port per area (API keys, uploads, media tasks, the
//! outbox, health) so that each use case asks only for what it uses, and a later feature adds
//! a port rather than widening one. An adapter usually implements all of them on one value;
//! [`MetadataStore`] names that bundle for the wiring.
//!
//! The upload port is drawn low: a store offers a transaction holding one session's lock and a
//! handful of primitive steps ([`SessionTx`]); the rule that turns those steps into an
//! exactly-once completion lives once, in [`crate::completion`], for every store.

mod blobs;
mod checksums;
mod deletion;
mod inventory;
mod keys;
mod metrics;
mod outbox;
mod tasks;
mod uploads;

pub use blobs::{BlobRead, BlobStore, BodyError, ByteBudget, ChunkBody, ListedBlob, Reservation};
pub use checksums::ChecksumStore;
pub use deletion::DeletionStore;
pub use inventory::{InventoryStore, StoreCounts};
pub use keys::{KeyChange, KeyChanges, KeyStore, StoredApiKey};
pub use metrics::{Metrics, NoMetrics, TaskCount};
pub use outbox::OutboxStore;
pub use tasks::{ClaimDecision, TASK_KINDS, TaskClaim, TaskRecord, TaskStatus, TaskStore};
pub use uploads::{
    BlockUpsert, ExpiredUpload, LockedSession, RecordedPart, SessionSnapshot, SessionTx,
    StagedBlock, StagedPart, UploadStore,
};

use std::future::Future;

use chrono::{DateTime, Utc};
use filegate_domain::{ApiKeyId, FileId};

/// A failure of the metadata store. `Unavailable` means the store could not be reached or is
/// overloaded: the request can be retried as it is.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the metadata store is unavailable")]
    Unavailable(#[source] anyhow::Error),
    #[error("the metadata store refused the operation: {0}")]
    Conflict(String),
    #[error(transparent)]
    Unknown(anyhow::Error),
}

/// A failure of the blob store, split by what the caller can do about it.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blob not found: {0}")]
    NotFound(String),
    /// The container (or root folder) does not exist: a deployment mistake, not a client one.
    #[error("the blob container is missing: {0}")]
    ContainerMissing(String),
    #[error("the blob store is unavailable")]
    Unavailable(#[source] anyhow::Error),
    /// The chunk's bytes stopped arriving or broke a rule while being staged: the client's
    /// fault, passed through as it came. Nothing was staged.
    #[error(transparent)]
    Body(BodyError),
    #[error(transparent)]
    Unknown(anyhow::Error),
}

/// The time, as a port so that tests can fix it.
pub trait Clock: Clone + Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

/// Fresh identifiers and secrets.
pub trait IdSource: Clone + Send + Sync + 'static {
    fn file_id(&self) -> FileId;
    fn api_key_id(&self) -> ApiKeyId;
    /// 32 random bytes for a new API key.
    fn secret(&self) -> [u8; 32];
}

/// Whether the metadata store answers and is migrated, for readiness.
pub trait StoreHealth: Clone + Send + Sync + 'static {
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Every metadata port on one value: what a metadata adapter provides and the wiring hands
/// around. Use cases never ask for it; they name the ports they use.
pub trait MetadataStore:
    StoreHealth
    + KeyStore
    + UploadStore
    + TaskStore
    + OutboxStore
    + DeletionStore
    + ChecksumStore
    + InventoryStore
{
}

impl<T> MetadataStore for T where
    T: StoreHealth
        + KeyStore
        + UploadStore
        + TaskStore
        + OutboxStore
        + DeletionStore
        + ChecksumStore
        + InventoryStore
{
}
