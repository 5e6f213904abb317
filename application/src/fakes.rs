//! In-memory fakes of the ports, for the use cases' unit tests and for the contract suites,
//! which run them next to the real adapters so that the fakes keep the ports' promises (one
//! lock around completion, atomic commit) and the tests exercise the rules, not the fakes.
//! Exported behind the `fakes` feature, which the shipped binary never enables.

mod blobs;
mod store;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::StreamExt;

pub use blobs::{FixedClock, InMemoryBlobs, SeqIds};
pub use store::InMemoryStore;

/// A key of firm `firm` (and of user `firm + 1000`), for tests.
pub fn principal(firm: u128) -> crate::keys::Principal {
    use uuid::Uuid;
    crate::keys::Principal {
        key: filegate_domain::ApiKeyId::from_uuid(Uuid::from_u128(900)),
        firm: filegate_domain::FirmId::from_uuid(Uuid::from_u128(firm)),
        user: filegate_domain::UserId::from_uuid(Uuid::from_u128(firm + 1000)),
    }
}

/// A chunk of `data`, block `index` of `total`, of a `report.pdf` in `mode`, for tests.
pub fn chunk_of(
    mode: filegate_domain::Mode,
    file_id: Option<filegate_domain::FileId>,
    index: i64,
    total: i64,
    data: &'static [u8],
) -> crate::uploads::ChunkCommand {
    crate::uploads::ChunkCommand {
        file_id,
        block_index: index,
        total_blocks: total,
        mode,
        file_name: Some("../report.pdf".into()),
        content_type: Some("application/pdf".into()),
        data: bytes::Bytes::from_static(data).into(),
        chunk_sha256: None,
    }
}

/// A Meta client in memory: it records what it was sent and fails on demand.
#[derive(Debug, Clone, Default)]
pub struct FakeMeta {
    state: Arc<Mutex<MetaState>>,
}

#[derive(Debug, Default)]
pub struct MetaState {
    /// Media uploads: (phone number id, upload, bytes).
    pub media: Vec<(String, crate::media_ports::MediaUpload, Vec<u8>)>,
    pub messages: Vec<crate::media_ports::SendMessage>,
    pub templates: Vec<crate::media_ports::CreateTemplate>,
    /// Resumable sessions: bytes received so far.
    pub sessions: HashMap<String, Vec<u8>>,
    /// Errors to answer, per call name, in order.
    pub failures: HashMap<&'static str, Vec<crate::media_ports::MetaError>>,
    /// Break the next resumable upload after this many bytes.
    pub break_upload_after: Option<usize>,
}

impl FakeMeta {
    pub fn state(&self) -> std::sync::MutexGuard<'_, MetaState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn fail(&self, call: &'static str, error: crate::media_ports::MetaError) {
        self.state().failures.entry(call).or_default().push(error);
    }

    fn failure(&self, call: &'static str) -> Result<(), crate::media_ports::MetaError> {
        match self.state().failures.get_mut(call) {
            Some(list) if !list.is_empty() => Err(list.remove(0)),
            _ => Ok(()),
        }
    }
}

async fn collect(body: crate::media_ports::ByteStream, limit: Option<usize>) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut body = body;
    while let Some(piece) = body.next().await {
        // A body that fails breaks the request, as it would on a real connection.
        let Ok(piece) = piece else {
            return (out, true);
        };
        if let Some(limit) = limit
            && out.len() + piece.len() >= limit
        {
            out.extend_from_slice(&piece[..limit - out.len()]);
            return (out, true);
        }
        out.extend_from_slice(&piece);
    }
    (out, false)
}

impl crate::media_ports::MetaClient for FakeMeta {
    async fn upload_message_media(
        &self,
        phone_number_id: &filegate_domain::PhoneNumberId,
        media: &crate::media_ports::MediaUpload,
        body: crate::media_ports::ByteStream,
    ) -> Result<String, crate::media_ports::MetaError> {
        self.failure("media")?;
        let (bytes, broken) = collect(body, None).await;
        if broken {
            return Err(crate::media_ports::MetaError::Transient(
                crate::media_ports::MetaFault {
                    message: "the upload's body failed".into(),
                    ..Default::default()
                },
            ));
        }
        let mut state = self.state();
        state
            .media
            .push((phone_number_id.to_string(), media.clone(), bytes));
        Ok(format!("media-{}", state.media.len()))
    }

    async fn send_message(
        &self,
        request: &crate::media_ports::SendMessage,
    ) -> Result<String, crate::media_ports::MetaError> {
        self.failure("send")?;
        let mut state = self.state();
        state.messages.push(request.clone());
        Ok(format!("wamid.{}", state.messages.len()))
    }

    async fn start_resumable_upload(
        &self,
        _media: &crate::media_ports::MediaUpload,
    ) -> Result<String, crate::media_ports::MetaError> {
        self.failure("session")?;
        let mut state = self.state();
        let id = format!("upload:{}", state.sessions.len() + 1);
        state.sessions.insert(id.clone(), Vec::new());
        Ok(id)
    }

    async fn resumable_offset(&self, session: &str) -> Result<u64, crate::media_ports::MetaError> {
        Ok(self
            .state()
            .sessions
            .get(session)
            .map_or(0, |b| b.len() as u64))
    }

    async fn upload_resumable(
        &self,
        session: &str,
        offset: u64,
        _length: u64,
        body: crate::media_ports::ByteStream,
    ) -> Result<String, crate::media_ports::MetaError> {
        self.failure("upload")?;
        let limit = self.state().break_upload_after.take();
        let (bytes, broken) = collect(body, limit).await;
        let mut state = self.state();
        let received = state.sessions.entry(session.to_owned()).or_default();
        assert_eq!(
            received.len() as u64,
            offset,
            "the upload must resume at Meta's offset"
        );
        received.extend_from_slice(&bytes);
        if broken {
            return Err(crate::media_ports::MetaError::Transient(
                crate::media_ports::MetaFault {
                    message: "connection reset".into(),
                    ..Default::default()
                },
            ));
        }
        Ok(format!("h-{session}"))
    }

    async fn create_template(
        &self,
        request: &crate::media_ports::CreateTemplate,
    ) -> Result<String, crate::media_ports::MetaError> {
        self.failure("template")?;
        let mut state = self.state();
        state.templates.push(request.clone());
        Ok(format!("tpl-{}", state.templates.len()))
    }
}
