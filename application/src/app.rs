//! The application as one value: every use case over the same ports, as the driving adapters
//! (HTTP, CLI) see it.

use crate::keys::ApiKeys;
use crate::ports::{
    BlobError, BlobStore, Clock, IdSource, KeyStore, StoreError, StoreHealth, UploadStore,
};
use crate::uploads::Uploads;

/// Whether each backend answers, for `/health/ready`. `None` means fine; `Some` says what is
/// wrong, in words an operator can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    pub database: Option<Fault>,
    pub blob_store: Option<Fault>,
}

/// Why a dependency is not ready: a short word for anyone who may ask (`/health/ready` needs
/// no key), and the detail (paths, the OS's own words) for the log only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub summary: &'static str,
    pub detail: String,
}

impl Fault {
    fn of_store(e: &StoreError) -> Self {
        Self {
            summary: match e {
                StoreError::Unavailable(_) => "unavailable",
                StoreError::Conflict(_) | StoreError::Unknown(_) => "failing",
            },
            detail: chain(e),
        }
    }

    fn of_blobs(e: &BlobError) -> Self {
        Self {
            summary: match e {
                BlobError::ContainerMissing(_) => "container missing",
                BlobError::Unavailable(_) => "unavailable",
                BlobError::NotFound(_) | BlobError::Body(_) | BlobError::Unknown(_) => "failing",
            },
            detail: chain(e),
        }
    }
}

impl Readiness {
    pub fn is_ready(&self) -> bool {
        self.database.is_none() && self.blob_store.is_none()
    }
}

#[derive(Debug, Clone)]
pub struct Filegate<M, B, C, I> {
    pub uploads: Uploads<M, B, C, I>,
    pub keys: ApiKeys<M, C, I>,
    store: M,
    blobs: B,
}

impl<M, B: BlobStore, C: Clock, I: IdSource> Filegate<M, B, C, I>
where
    M: StoreHealth + KeyStore + UploadStore,
{
    pub fn new(store: M, blobs: B, clock: C, ids: I) -> Self {
        Self {
            uploads: Uploads::new(store.clone(), blobs.clone(), clock.clone(), ids.clone()),
            keys: ApiKeys::new(store.clone(), clock, ids),
            store,
            blobs,
        }
    }

    /// Keeps verified API keys in `cache` ([`crate::key_cache`]).
    pub fn with_key_cache(mut self, cache: crate::KeyCache) -> Self {
        self.keys = self.keys.with_cache(cache);
        self
    }

    /// Replaces the default per-mode size caps.
    /// [`Uploads::with_metrics`].
    pub fn with_metrics(mut self, metrics: std::sync::Arc<dyn crate::ports::Metrics>) -> Self {
        self.uploads = self.uploads.with_metrics(metrics);
        self
    }

    pub fn with_caps(mut self, caps: filegate_domain::SizeCaps) -> Self {
        self.uploads = self.uploads.with_caps(caps);
        self
    }

    /// Replaces the default expiry times of open uploads.
    pub fn with_expiry(mut self, expiry: filegate_domain::ExpiryPolicy) -> Self {
        self.uploads = self.uploads.with_expiry(expiry);
        self
    }

    /// Where to say that a file was committed without its checksum; see
    /// [`Uploads::with_checksum_wakeups`].
    pub fn with_checksum_wakeups(mut self, wakeups: futures::channel::mpsc::Sender<()>) -> Self {
        self.uploads = self.uploads.with_checksum_wakeups(wakeups);
        self
    }

    /// Sets how many uploads a firm may have open at once (`None`: no limit).
    pub fn with_open_upload_limit(mut self, limit: Option<std::num::NonZeroU32>) -> Self {
        self.uploads = self.uploads.with_open_upload_limit(limit);
        self
    }

    /// The metadata store, for the background jobs that share it (the outbox relay).
    pub fn store(&self) -> &M {
        &self.store
    }

    pub async fn readiness(&self) -> Readiness {
        let (db, blobs) = futures::join!(self.store.ping(), self.blobs.ping());
        Readiness {
            database: db.err().map(|e| Fault::of_store(&e)),
            blob_store: blobs.err().map(|e| Fault::of_blobs(&e)),
        }
    }
}

/// An error and its causes on one line.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
