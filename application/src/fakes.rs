//! In-memory fakes of the ports, for the use cases' unit tests. They keep the ports'
//! promises (one lock around completion, atomic commit) so that the tests exercise the rules,
//! not the fakes.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use filegate_domain::{
    ApiKeyId, BlobPath, BlockIndex, BlockSet, FileId, FileRecord, FirmId, SessionState, TaskId,
    UploadSession,
};
use futures::StreamExt;
use uuid::Uuid;

use crate::media_ports::OutgoingEvent;
use crate::ports::*;

#[derive(Debug, Default)]
struct StoreState {
    keys: Vec<(StoredApiKey, bool)>,
    sessions: HashMap<FileId, UploadSession>,
    blocks: HashMap<FileId, BTreeMap<u32, (String, u64)>>,
    files: HashMap<FileId, FileRecord>,
    tasks: HashMap<TaskId, TaskRecord>,
    /// Events in insertion order, with whether they were published.
    outbox: Vec<(OutgoingEvent, bool)>,
}

#[derive(Debug, Clone, Default)]
pub struct InMemoryStore {
    state: Arc<Mutex<StoreState>>,
    /// Serializes `record_block` as a row lock would.
    completion: Arc<tokio::sync::Mutex<()>>,
}

impl InMemoryStore {
    pub fn keys(&self) -> Vec<StoredApiKey> {
        self.lock().keys.iter().map(|(k, _)| k.clone()).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StoreState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl MetadataStore for InMemoryStore {
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn insert_api_key(&self, key: &StoredApiKey) -> Result<(), StoreError> {
        self.lock().keys.push((key.clone(), true));
        Ok(())
    }

    async fn find_api_key(&self, hash: &str) -> Result<Option<StoredApiKey>, StoreError> {
        Ok(self
            .lock()
            .keys
            .iter()
            .find(|(k, live)| *live && k.hash == hash)
            .map(|(k, _)| k.clone()))
    }

    async fn revoke_api_key(&self, id: ApiKeyId, _at: DateTime<Utc>) -> Result<bool, StoreError> {
        let mut state = self.lock();
        match state.keys.iter_mut().find(|(k, live)| *live && k.id == id) {
            Some(entry) => {
                entry.1 = false;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn count_api_keys(&self) -> Result<u64, StoreError> {
        Ok(self.lock().keys.iter().filter(|(_, live)| *live).count() as u64)
    }

    async fn open_session(&self, session: &UploadSession) -> Result<(), StoreError> {
        let mut state = self.lock();
        if state.sessions.contains_key(&session.file_id) {
            return Err(StoreError::Conflict("duplicate file id".into()));
        }
        state.sessions.insert(session.file_id, session.clone());
        Ok(())
    }

    async fn find_session(
        &self,
        firm: FirmId,
        file: FileId,
    ) -> Result<Option<SessionSnapshot>, StoreError> {
        let state = self.lock();
        let Some(session) = state.sessions.get(&file).filter(|s| s.firm == firm) else {
            return Ok(None);
        };
        let blocks = state.blocks.get(&file).cloned().unwrap_or_default();
        let received = BlockSet::from_indices(session.total_blocks, blocks.keys().copied())
            .map_err(|e| StoreError::Unknown(e.into()))?;
        Ok(Some(SessionSnapshot {
            session: session.clone(),
            received,
            staged_bytes: blocks.values().map(|(_, s)| s).sum(),
            file: state.files.get(&file).cloned(),
        }))
    }

    async fn claim_task(
        &self,
        id: TaskId,
        firm: FirmId,
        file: FileId,
        kind: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<TaskClaim, StoreError> {
        let mut state = self.lock();
        let task = state.tasks.entry(id).or_insert_with(|| TaskRecord {
            id,
            firm,
            file,
            kind: kind.to_owned(),
            status: TaskStatus::Pending,
            attempts: 0,
            media_id: None,
            upload_session: None,
            handle: None,
            result_id: None,
            last_error: None,
            lease_until: None,
            created_at: now,
            updated_at: now,
        });
        if task.status != TaskStatus::Pending {
            return Ok(TaskClaim::Finished(task.clone()));
        }
        if task.lease_until.is_some_and(|l| l >= now) {
            return Ok(TaskClaim::Busy(task.clone()));
        }
        task.attempts += 1;
        task.lease_until = Some(lease_until);
        task.updated_at = now;
        Ok(TaskClaim::Claimed(task.clone()))
    }

    async fn save_task(&self, task: &TaskRecord) -> Result<(), StoreError> {
        let mut state = self.lock();
        let stored = state
            .tasks
            .get_mut(&task.id)
            .ok_or_else(|| StoreError::Unknown(anyhow::anyhow!("no task {}", task.id)))?;
        *stored = task.clone();
        Ok(())
    }

    async fn find_task(&self, id: TaskId) -> Result<Option<TaskRecord>, StoreError> {
        Ok(self.lock().tasks.get(&id).cloned())
    }

    async fn unpublished_events(&self, limit: u32) -> Result<Vec<OutgoingEvent>, StoreError> {
        let state = self.lock();
        Ok(state
            .outbox
            .iter()
            .filter(|(_, sent)| !sent)
            .take(limit as usize)
            .map(|(e, _)| e.clone())
            .collect())
    }

    async fn mark_events_published(&self, ids: &[String]) -> Result<(), StoreError> {
        let mut state = self.lock();
        for (event, sent) in &mut state.outbox {
            if ids.contains(&event.id) {
                *sent = true;
            }
        }
        Ok(())
    }

    async fn record_block<F, Fut, E>(
        &self,
        file: FileId,
        block: StagedBlock,
        commit: F,
    ) -> Result<BlockOutcome, RecordError<E>>
    where
        F: FnOnce(CommitPlan) -> Fut + Send,
        Fut: std::future::Future<Output = Result<FileRecord, E>> + Send,
        E: Send,
    {
        let _row_lock = self.completion.lock().await;
        let (session, mut blocks) = {
            let state = self.lock();
            let session = state
                .sessions
                .get(&file)
                .cloned()
                .ok_or(RecordError::SessionMissing)?;
            if session.state == SessionState::Committed {
                let record = state
                    .files
                    .get(&file)
                    .cloned()
                    .ok_or(RecordError::SessionMissing)?;
                return Ok(BlockOutcome::CommittedMeanwhile(record));
            }
            (
                session,
                state.blocks.get(&file).cloned().unwrap_or_default(),
            )
        };
        blocks.insert(block.index.get(), (block.part_id, block.size));
        let received = blocks.len() as u32;
        if received < session.total_blocks.get() {
            self.lock().blocks.insert(file, blocks);
            return Ok(BlockOutcome::Staged { received });
        }
        let plan = CommitPlan {
            part_ids: blocks.values().map(|(p, _)| p.clone()).collect(),
            size: blocks.values().map(|(_, s)| s).sum(),
        };
        let record = commit(plan).await.map_err(RecordError::Commit)?;
        let mut state = self.lock();
        state.blocks.insert(file, blocks);
        state.files.insert(file, record.clone());
        state
            .outbox
            .push((crate::events::file_completed(&record), false));
        if let Some(s) = state.sessions.get_mut(&file) {
            s.state = SessionState::Committed;
        }
        Ok(BlockOutcome::Committed(record))
    }
}

#[derive(Debug, Default)]
struct BlobState {
    staged: HashMap<String, Bytes>,
    blobs: HashMap<String, Bytes>,
    commits: u32,
    next: u64,
}

/// A blob store in memory that can be told to fail its commits.
#[derive(Debug, Clone, Default)]
pub struct InMemoryBlobs {
    state: Arc<Mutex<BlobState>>,
    pub fail_commits: Arc<std::sync::atomic::AtomicBool>,
}

impl InMemoryBlobs {
    fn lock(&self) -> std::sync::MutexGuard<'_, BlobState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn blob(&self, path: &str) -> Option<Bytes> {
        self.lock().blobs.get(path).cloned()
    }

    pub fn commits(&self) -> u32 {
        self.lock().commits
    }
}

impl BlobStore for InMemoryBlobs {
    async fn ping(&self) -> Result<(), BlobError> {
        Ok(())
    }

    async fn begin(&self, _path: &BlobPath) -> Result<String, BlobError> {
        Ok(String::new())
    }

    async fn stage_block(
        &self,
        _path: &BlobPath,
        _upload_id: &str,
        _index: BlockIndex,
        data: Bytes,
    ) -> Result<String, BlobError> {
        // Yield so that racing requests really interleave.
        tokio::task::yield_now().await;
        let mut state = self.lock();
        state.next += 1;
        let id = format!("{:032x}", state.next);
        state.staged.insert(id.clone(), data);
        Ok(id)
    }

    async fn commit(
        &self,
        path: &BlobPath,
        _upload_id: &str,
        part_ids: Vec<String>,
        _size: u64,
    ) -> Result<(), BlobError> {
        tokio::task::yield_now().await;
        if self.fail_commits.load(Ordering::SeqCst) {
            return Err(BlobError::Unavailable(anyhow::anyhow!("injected failure")));
        }
        let mut state = self.lock();
        let mut whole = Vec::new();
        for id in &part_ids {
            let part = state
                .staged
                .get(id)
                .ok_or_else(|| BlobError::Unknown(anyhow::anyhow!("unknown part {id}")))?;
            whole.extend_from_slice(part);
        }
        state
            .blobs
            .insert(path.as_str().to_owned(), Bytes::from(whole));
        state.commits += 1;
        Ok(())
    }

    async fn read(
        &self,
        path: &BlobPath,
        range: Option<Range<u64>>,
    ) -> Result<BlobRead, BlobError> {
        let blob = self
            .blob(path.as_str())
            .ok_or_else(|| BlobError::NotFound(path.to_string()))?;
        let size = blob.len() as u64;
        let range = range.unwrap_or(0..size);
        let part = blob.slice(range.start as usize..range.end as usize);
        Ok(BlobRead {
            size,
            range,
            stream: futures::stream::once(async move { Ok(part) }).boxed(),
        })
    }

    async fn delete(&self, path: &BlobPath) -> Result<(), BlobError> {
        self.lock().blobs.remove(path.as_str());
        Ok(())
    }

    fn location(&self, path: &BlobPath) -> String {
        format!("memory://{path}")
    }

    async fn share_url(&self, path: &BlobPath) -> Result<Option<String>, BlobError> {
        Ok(Some(self.location(path)))
    }
}

#[derive(Debug, Clone, Default)]
pub struct FixedClock;

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH
    }
}

/// Sequential ids, so that tests can predict them.
#[derive(Debug, Clone, Default)]
pub struct SeqIds(Arc<AtomicU64>);

impl IdSource for SeqIds {
    fn file_id(&self) -> FileId {
        FileId::from_uuid(Uuid::from_u128(u128::from(
            self.0.fetch_add(1, Ordering::SeqCst) + 1,
        )))
    }

    fn api_key_id(&self) -> ApiKeyId {
        ApiKeyId::from_uuid(Uuid::from_u128(u128::from(
            self.0.fetch_add(1, Ordering::SeqCst) + 1,
        )))
    }

    fn secret(&self) -> [u8; 32] {
        let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
        let mut s = [0u8; 32];
        s[..8].copy_from_slice(&n.to_be_bytes());
        s
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
    while let Some(Ok(piece)) = body.next().await {
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
        let (bytes, _) = collect(body, None).await;
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
