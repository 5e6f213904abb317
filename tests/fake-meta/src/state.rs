//! What the fake received, kept for tests to compare with what they sent.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::faults::{Fault, FaultAction, FaultQueue, Operation};
use crate::options::FakeMetaOptions;
use crate::util::sha256_hex;

/// A resumable upload session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadSession {
    /// The id as the fake answered it: `upload:...?sig=...`.
    pub id: String,
    pub app_id: String,
    pub file_name: String,
    pub file_type: String,
    pub file_length: u64,
    /// Every byte received so far, in order.
    pub bytes: Vec<u8>,
    /// The handle `h`, once every byte arrived.
    pub handle: Option<String>,
}

/// A file uploaded to `/{phone-number-id}/media`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaRecord {
    pub id: String,
    pub phone_number_id: String,
    /// The `Content-Type` of the `file` part.
    pub content_type: String,
    /// The `type` form field.
    pub declared_type: String,
    /// The `filename` of the `file` part.
    pub file_name: Option<String>,
    pub bytes: Vec<u8>,
}

/// A message accepted by `/{phone-number-id}/messages`: the JSON exactly as received.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SentMessage {
    /// The `wamid.` the fake answered.
    pub id: String,
    pub phone_number_id: String,
    pub payload: Value,
}

/// A template accepted by `/{waba-id}/message_templates`: the JSON exactly as received.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreatedTemplate {
    pub id: String,
    pub waba_id: String,
    pub status: String,
    pub category: String,
    pub payload: Value,
}

/// An upload session in [`FakeState`]: sizes and a hash instead of the bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadSummary {
    pub id: String,
    pub file_name: String,
    pub file_type: String,
    pub file_length: u64,
    /// Bytes received so far (the offset a `GET` reports).
    pub received: u64,
    /// SHA-256 (hex) of the bytes received so far.
    pub sha256: String,
    pub handle: Option<String>,
}

/// A media upload in [`FakeState`]: size and hash instead of the bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaSummary {
    pub id: String,
    pub phone_number_id: String,
    pub content_type: String,
    pub file_name: Option<String>,
    pub size: u64,
    /// SHA-256 (hex) of the file.
    pub sha256: String,
}

/// Everything the fake recorded, as `GET /_fake/state` answers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FakeState {
    pub uploads: Vec<UploadSummary>,
    pub media: Vec<MediaSummary>,
    pub messages: Vec<SentMessage>,
    pub templates: Vec<CreatedTemplate>,
    /// Requests received per operation, failed and faulted ones included.
    pub requests: BTreeMap<Operation, u64>,
    pub pending_faults: Vec<Fault>,
}

/// A session with what only the server needs: its signature and the lock held while bytes
/// arrive (a `GET` waits for it, so the offset it reports is final).
#[derive(Debug)]
pub(crate) struct SessionSlot {
    /// `upload:...`, the id without `?sig=`.
    pub key: String,
    pub sig: String,
    pub session: UploadSession,
    pub writer: Arc<tokio::sync::Mutex<()>>,
}

#[derive(Debug, Default)]
pub(crate) struct Recorded {
    pub uploads: Vec<SessionSlot>,
    pub media: Vec<MediaRecord>,
    pub messages: Vec<SentMessage>,
    pub templates: Vec<CreatedTemplate>,
    pub requests: BTreeMap<Operation, u64>,
}

impl Recorded {
    pub(crate) fn session(&self, key: &str) -> Option<&SessionSlot> {
        self.uploads.iter().find(|s| s.key == key)
    }

    pub(crate) fn session_mut(&mut self, key: &str) -> Option<&mut SessionSlot> {
        self.uploads.iter_mut().find(|s| s.key == key)
    }

    /// The completed upload whose handle this is.
    pub(crate) fn upload_by_handle(&self, handle: &str) -> Option<&UploadSession> {
        self.uploads
            .iter()
            .map(|s| &s.session)
            .find(|s| s.handle.as_deref() == Some(handle))
    }

    pub(crate) fn media(&self, id: &str) -> Option<&MediaRecord> {
        self.media.iter().find(|m| m.id == id)
    }
}

/// `upload:...` out of `upload:...?sig=...`.
pub(crate) fn session_key(id: &str) -> &str {
    id.split_once('?').map_or(id, |(key, _)| key)
}

/// The state shared by the server's connections and the test's handle.
#[derive(Debug)]
pub(crate) struct Shared {
    pub options: FakeMetaOptions,
    recorded: Mutex<Recorded>,
    faults: Mutex<FaultQueue>,
}

impl Shared {
    pub(crate) fn new(options: FakeMetaOptions) -> Self {
        Self {
            options,
            recorded: Mutex::new(Recorded::default()),
            faults: Mutex::new(FaultQueue::default()),
        }
    }

    /// The recordings. A panic elsewhere cannot leave them half-written (every change is a
    /// single push or append), so a poisoned lock is used as it is.
    pub(crate) fn recorded(&self) -> MutexGuard<'_, Recorded> {
        self.recorded.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn faults(&self) -> MutexGuard<'_, FaultQueue> {
        self.faults.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn count(&self, op: Operation) {
        *self.recorded().requests.entry(op).or_insert(0) += 1;
    }

    pub(crate) fn take_fault(&self, op: Operation) -> Option<FaultAction> {
        self.faults().take(op)
    }

    pub(crate) fn reset(&self) {
        *self.recorded() = Recorded::default();
        self.faults().clear();
    }

    pub(crate) fn state(&self) -> FakeState {
        let pending_faults = self.faults().pending();
        let rec = self.recorded();
        FakeState {
            uploads: rec
                .uploads
                .iter()
                .map(|slot| {
                    let s = &slot.session;
                    UploadSummary {
                        id: s.id.clone(),
                        file_name: s.file_name.clone(),
                        file_type: s.file_type.clone(),
                        file_length: s.file_length,
                        received: s.bytes.len() as u64,
                        sha256: sha256_hex(&s.bytes),
                        handle: s.handle.clone(),
                    }
                })
                .collect(),
            media: rec
                .media
                .iter()
                .map(|m| MediaSummary {
                    id: m.id.clone(),
                    phone_number_id: m.phone_number_id.clone(),
                    content_type: m.content_type.clone(),
                    file_name: m.file_name.clone(),
                    size: m.bytes.len() as u64,
                    sha256: sha256_hex(&m.bytes),
                })
                .collect(),
            messages: rec.messages.clone(),
            templates: rec.templates.clone(),
            requests: rec.requests.clone(),
            pending_faults,
        }
    }
}
