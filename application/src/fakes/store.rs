//! The metadata ports in memory. A session's lock is a per-session async mutex, and a
//! transaction works on a copy of the session's rows that its commit writes back in one step,
//! so readers never wait for a lock and a dropped transaction leaves nothing behind: the same
//! promises as the SQL stores.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use filegate_domain::{
    ApiKeyId, BlobPath, BlockSet, FileId, FileRecord, FirmId, Mode, SessionState, Sha256Digest,
    TaskId, UploadSession,
};
use tokio::sync::OwnedMutexGuard;

use crate::media_ports::OutgoingEvent;
use crate::ports::{
    BlockUpsert, ChecksumStore, ClaimDecision, DeletionStore, ExpiredUpload, InventoryStore,
    KeyStore, LockedSession, OutboxStore, RecordedPart, SessionSnapshot, SessionTx, StagedBlock,
    StagedPart, StoreError, StoreHealth, StoredApiKey, TASK_KINDS, TaskClaim, TaskRecord,
    TaskStatus, TaskStore, UploadStore,
};

/// A staged block as kept: part id and size, by index.
type Blocks = BTreeMap<u32, (String, u64)>;

#[derive(Debug, Default)]
struct StoreState {
    keys: Vec<(StoredApiKey, bool)>,
    sessions: HashMap<FileId, UploadSession>,
    blocks: HashMap<FileId, Blocks>,
    files: HashMap<FileId, FileRecord>,
    tasks: HashMap<TaskId, TaskRecord>,
    /// Events in insertion order, with whether they were published.
    outbox: Vec<(OutgoingEvent, bool)>,
    /// When each outbox event was stored and published, by id.
    outbox_times: HashMap<String, (DateTime<Utc>, Option<DateTime<Utc>>)>,
    /// When a transaction last recorded something for a session.
    touched: HashMap<FileId, DateTime<Utc>>,
}

#[derive(Debug, Clone, Default)]
pub struct InMemoryStore {
    state: Arc<Mutex<StoreState>>,
    /// One lock per session, as a row lock would be.
    session_locks: Arc<Mutex<HashMap<FileId, Arc<tokio::sync::Mutex<()>>>>>,
    /// Set to make opening a new session fail, as a store that went away would.
    pub fail_new_sessions: Arc<std::sync::atomic::AtomicBool>,
    /// How many blocks were recorded in one step ([`UploadStore::record_incomplete_block`]).
    pub incomplete_blocks: Arc<std::sync::atomic::AtomicUsize>,
}

impl InMemoryStore {
    pub fn keys(&self) -> Vec<StoredApiKey> {
        self.lock().keys.iter().map(|(k, _)| k.clone()).collect()
    }

    fn lock(&self) -> MutexGuard<'_, StoreState> {
        lock(&self.state)
    }

    /// Waits for one session's lock, as a row lock would.
    async fn session_guard(&self, file: FileId) -> OwnedMutexGuard<()> {
        let session_lock = lock(&self.session_locks).entry(file).or_default().clone();
        session_lock.lock_owned().await
    }
}

/// A session's creation or its last recorded block, whichever is later.
fn last_activity(
    touched: &HashMap<FileId, DateTime<Utc>>,
    session: &UploadSession,
) -> DateTime<Utc> {
    touched
        .get(&session.file_id)
        .map_or(session.created_at, |t| (*t).max(session.created_at))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl StoreHealth for InMemoryStore {
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

impl KeyStore for InMemoryStore {
    async fn insert_api_key(&self, key: &StoredApiKey) -> Result<(), StoreError> {
        let mut state = self.lock();
        if state
            .keys
            .iter()
            .any(|(k, _)| k.id == key.id || k.hash == key.hash)
        {
            return Err(StoreError::Conflict("duplicate api key".into()));
        }
        state.keys.push((key.clone(), true));
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
}

impl DeletionStore for InMemoryStore {
    async fn mark_deleted(
        &self,
        firm: FirmId,
        file: FileId,
        event: &OutgoingEvent,
    ) -> Result<bool, StoreError> {
        let _guard = self.session_guard(file).await;
        let mut state = self.lock();
        let Some(session) = state
            .sessions
            .get_mut(&file)
            .filter(|s| s.firm == firm && s.state != SessionState::Deleted)
        else {
            return Ok(false);
        };
        session.state = SessionState::Deleted;
        if !state.outbox.iter().any(|(e, _)| e.id == event.id) {
            state.outbox.push((event.clone(), false));
            state
                .outbox_times
                .insert(event.id.clone(), (Utc::now(), None));
        }
        Ok(true)
    }
}

impl InMemoryStore {
    /// The complete files whose session is not deleted, of those `keep` keeps, in no order.
    fn undeleted_files(&self, keep: impl Fn(&FileRecord) -> bool) -> Vec<FileRecord> {
        let state = self.lock();
        state
            .files
            .values()
            .filter(|f| keep(f))
            .filter(|f| {
                state
                    .sessions
                    .get(&f.id)
                    .is_none_or(|s| s.state != SessionState::Deleted)
            })
            .cloned()
            .collect()
    }
}

impl ChecksumStore for InMemoryStore {
    async fn files_without_checksum(&self, limit: u32) -> Result<Vec<FileRecord>, StoreError> {
        let mut files = self.undeleted_files(|f| f.sha256.is_none());
        files.sort_by_key(|f| std::cmp::Reverse((f.created_at, f.id)));
        files.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok(files)
    }

    async fn set_checksum(&self, file: FileId, digest: &Sha256Digest) -> Result<bool, StoreError> {
        let mut state = self.lock();
        match state.files.get_mut(&file) {
            Some(record) if record.sha256.is_none() => {
                record.sha256 = Some(*digest);
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

impl InventoryStore for InMemoryStore {
    async fn counts(&self) -> Result<crate::ports::StoreCounts, StoreError> {
        let state = self.lock();
        Ok(crate::ports::StoreCounts {
            open_uploads: state
                .sessions
                .values()
                .filter(|s| s.state == SessionState::Open)
                .count() as u64,
            outbox_backlog: state.outbox.iter().filter(|(_, sent)| !sent).count() as u64,
        })
    }

    async fn live_files(
        &self,
        after: Option<FileId>,
        limit: u32,
    ) -> Result<Vec<FileRecord>, StoreError> {
        let mut files = self.undeleted_files(|f| after.is_none_or(|a| f.id > a));
        files.sort_by_key(|f| f.id);
        files.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok(files)
    }

    async fn blob_path_known(&self, path: &BlobPath) -> Result<bool, StoreError> {
        Ok(self.lock().sessions.values().any(|s| {
            &s.blob_path == path && matches!(s.state, SessionState::Open | SessionState::Committed)
        }))
    }
}

impl UploadStore for InMemoryStore {
    type Tx = InMemoryTx;

    async fn open_session(&self, session: &UploadSession) -> Result<(), StoreError> {
        let mut state = self.lock();
        if state.sessions.contains_key(&session.file_id) {
            return Err(StoreError::Conflict("duplicate file id".into()));
        }
        state.sessions.insert(session.file_id, session.clone());
        Ok(())
    }

    async fn expire_idle(
        &self,
        mode: Mode,
        idle_since: DateTime<Utc>,
    ) -> Result<Vec<ExpiredUpload>, StoreError> {
        let mut state = self.lock();
        let StoreState {
            sessions, touched, ..
        } = &mut *state;
        let mut expired = Vec::new();
        for session in sessions.values_mut() {
            let last = last_activity(touched, session);
            if session.state == SessionState::Open && session.mode == mode && last < idle_since {
                session.state = SessionState::Expired;
                expired.push(ExpiredUpload {
                    file_id: session.file_id,
                    upload_id: session.upload_id.clone(),
                });
            }
        }
        Ok(expired)
    }

    async fn count_open_uploads(&self, firm: FirmId, up_to: u32) -> Result<u32, StoreError> {
        let open = self
            .lock()
            .sessions
            .values()
            .filter(|s| s.firm == firm && s.state == SessionState::Open)
            .count();
        Ok(u32::try_from(open).unwrap_or(u32::MAX).min(up_to))
    }

    async fn idlest_open_uploads(
        &self,
        firm: FirmId,
    ) -> Result<Vec<(Mode, DateTime<Utc>)>, StoreError> {
        let state = self.lock();
        let mut idlest: HashMap<Mode, DateTime<Utc>> = HashMap::new();
        for session in state.sessions.values() {
            if session.firm == firm && session.state == SessionState::Open {
                let last = last_activity(&state.touched, session);
                idlest
                    .entry(session.mode)
                    .and_modify(|t| *t = (*t).min(last))
                    .or_insert(last);
            }
        }
        Ok(idlest.into_iter().collect())
    }

    async fn upload_is_open(&self, upload_id: &str) -> Result<bool, StoreError> {
        Ok(self
            .lock()
            .sessions
            .values()
            .any(|s| s.upload_id == upload_id && s.state == SessionState::Open))
    }

    async fn recorded_parts(&self, file: FileId) -> Result<Vec<RecordedPart>, StoreError> {
        let state = self.lock();
        Ok(state
            .blocks
            .get(&file)
            .into_iter()
            .flatten()
            .map(|(&index, (part_id, size))| RecordedPart {
                index,
                part_id: part_id.clone(),
                size: *size,
            })
            .collect())
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
        let last_activity = last_activity(&state.touched, session);
        Ok(Some(SessionSnapshot {
            session: session.clone(),
            received,
            staged_bytes: blocks.values().map(|(_, s)| s).sum(),
            last_activity,
            file: state
                .files
                .get(&file)
                .filter(|_| session.state == SessionState::Committed)
                .cloned(),
        }))
    }

    async fn record_incomplete_block(
        &self,
        file: FileId,
        block: &StagedBlock,
    ) -> Result<Option<BlockUpsert>, StoreError> {
        let recorded =
            crate::completion::record_incomplete_block_in_steps(self, file, block).await?;
        if recorded.is_some() {
            self.incomplete_blocks
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        Ok(recorded)
    }

    async fn open_and_lock(
        &self,
        session: &UploadSession,
    ) -> Result<(InMemoryTx, LockedSession), StoreError> {
        let file = session.file_id;
        if self
            .fail_new_sessions
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            return Err(StoreError::Unavailable(anyhow::anyhow!("injected failure")));
        }
        let guard = self.session_guard(file).await;
        if self.lock().sessions.contains_key(&file) {
            return Err(StoreError::Conflict("duplicate file id".into()));
        }
        let locked = LockedSession::from(session);
        let tx = InMemoryTx {
            store: self.clone(),
            file,
            _guard: guard,
            new_session: Some(session.clone()),
            blocks: Blocks::new(),
            record: None,
            events: Vec::new(),
            recorded: false,
            committed: session.state == SessionState::Committed,
        };
        Ok((tx, locked))
    }

    async fn lock_session(
        &self,
        file: FileId,
    ) -> Result<Option<(InMemoryTx, LockedSession)>, StoreError> {
        let guard = self.session_guard(file).await;
        let state = self.lock();
        let Some(session) = state.sessions.get(&file) else {
            return Ok(None);
        };
        let locked = LockedSession::from(session);
        let tx = InMemoryTx {
            store: self.clone(),
            file,
            _guard: guard,
            new_session: None,
            blocks: state.blocks.get(&file).cloned().unwrap_or_default(),
            record: state.files.get(&file).cloned(),
            events: Vec::new(),
            recorded: false,
            committed: session.state == SessionState::Committed,
        };
        Ok(Some((tx, locked)))
    }
}

/// A transaction on one locked session: a working copy, written back by `commit`.
#[derive(Debug)]
pub struct InMemoryTx {
    store: InMemoryStore,
    file: FileId,
    _guard: OwnedMutexGuard<()>,
    /// A session this transaction creates, stored by its commit.
    new_session: Option<UploadSession>,
    blocks: Blocks,
    record: Option<FileRecord>,
    events: Vec<OutgoingEvent>,
    committed: bool,
    /// Whether a block was recorded: what counts as activity for expiry.
    recorded: bool,
}

impl SessionTx for InMemoryTx {
    async fn committed_file(&mut self) -> Result<Option<FileRecord>, StoreError> {
        Ok(self.record.clone().filter(|_| self.committed))
    }

    async fn upsert_block(&mut self, block: &StagedBlock) -> Result<BlockUpsert, StoreError> {
        self.recorded = true;
        let replaced = self
            .blocks
            .insert(block.index.get(), (block.part_id.clone(), block.size))
            .map(|(part_id, _)| part_id);
        Ok(BlockUpsert {
            received: self.blocks.len() as u32,
            replaced,
        })
    }

    async fn staged_parts(&mut self) -> Result<Vec<StagedPart>, StoreError> {
        Ok(self
            .blocks
            .values()
            .map(|(part_id, size)| StagedPart {
                part_id: part_id.clone(),
                size: *size,
            })
            .collect())
    }

    async fn insert_file(&mut self, record: &FileRecord) -> Result<(), StoreError> {
        if self.record.is_some() {
            return Err(StoreError::Conflict(format!("file {} exists", record.id)));
        }
        self.record = Some(record.clone());
        Ok(())
    }

    async fn insert_event(&mut self, event: &OutgoingEvent) -> Result<(), StoreError> {
        self.events.push(event.clone());
        Ok(())
    }

    async fn mark_committed(&mut self) -> Result<(), StoreError> {
        self.committed = true;
        Ok(())
    }

    async fn commit(self) -> Result<(), StoreError> {
        let mut state = self.store.lock();
        if let Some(session) = self.new_session {
            if state.sessions.contains_key(&session.file_id) {
                return Err(StoreError::Conflict("duplicate file id".into()));
            }
            state.sessions.insert(session.file_id, session);
        }
        state.blocks.insert(self.file, self.blocks);
        if self.recorded {
            state.touched.insert(self.file, Utc::now());
        }
        if let Some(record) = self.record {
            state.files.insert(self.file, record);
        }
        for event in self.events {
            if !state.outbox.iter().any(|(e, _)| e.id == event.id) {
                state
                    .outbox_times
                    .insert(event.id.clone(), (Utc::now(), None));
                state.outbox.push((event, false));
            }
        }
        if self.committed
            && let Some(session) = state.sessions.get_mut(&self.file)
        {
            session.state = SessionState::Committed;
        }
        Ok(())
    }

    async fn rollback(self) -> Result<(), StoreError> {
        Ok(())
    }
}

impl TaskStore for InMemoryStore {
    async fn claim_task(
        &self,
        id: TaskId,
        firm: FirmId,
        file: FileId,
        kind: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<TaskClaim, StoreError> {
        if !TASK_KINDS.contains(&kind) {
            return Err(StoreError::Unknown(anyhow::anyhow!(
                "media task {id}: unknown kind `{kind}`"
            )));
        }
        let mut state = self.lock();
        let Some(task) = state.tasks.get_mut(&id) else {
            let record = TaskRecord {
                id,
                firm,
                file,
                kind: kind.to_owned(),
                status: TaskStatus::Pending,
                attempts: 1,
                media_id: None,
                upload_session: None,
                handle: None,
                result_id: None,
                last_error: None,
                lease_until: Some(lease_until),
                created_at: now,
                updated_at: now,
            };
            state.tasks.insert(id, record.clone());
            return Ok(TaskClaim::Claimed(record));
        };
        Ok(match ClaimDecision::of(task, now) {
            ClaimDecision::Finished => TaskClaim::Finished(task.clone()),
            ClaimDecision::Busy => TaskClaim::Busy(task.clone()),
            ClaimDecision::Take => {
                task.attempts += 1;
                task.lease_until = Some(lease_until);
                task.updated_at = now;
                TaskClaim::Claimed(task.clone())
            }
        })
    }

    async fn save_task(&self, task: &TaskRecord) -> Result<(), StoreError> {
        let mut state = self.lock();
        let stored = state
            .tasks
            .get_mut(&task.id)
            .ok_or_else(|| StoreError::Unknown(anyhow::anyhow!("no task {}", task.id)))?;
        let kept = stored.clone();
        *stored = TaskRecord {
            id: kept.id,
            firm: kept.firm,
            file: kept.file,
            kind: kept.kind,
            created_at: kept.created_at,
            ..task.clone()
        };
        Ok(())
    }

    async fn find_task(&self, id: TaskId) -> Result<Option<TaskRecord>, StoreError> {
        Ok(self.lock().tasks.get(&id).cloned())
    }
}

impl OutboxStore for InMemoryStore {
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
        let StoreState {
            outbox,
            outbox_times,
            ..
        } = &mut *state;
        for (event, sent) in outbox.iter_mut() {
            if ids.contains(&event.id) && !*sent {
                *sent = true;
                if let Some((_, published)) = outbox_times.get_mut(&event.id) {
                    *published = Some(Utc::now());
                }
            }
        }
        Ok(())
    }

    async fn purge_events(
        &self,
        before: DateTime<Utc>,
        unpublished_too: bool,
    ) -> Result<u64, StoreError> {
        let mut state = self.lock();
        let StoreState {
            outbox,
            outbox_times,
            ..
        } = &mut *state;
        let old = |id: &String| match outbox_times.get(id) {
            Some((_, Some(published))) => *published < before,
            Some((created, None)) => unpublished_too && *created < before,
            None => false,
        };
        let gone: Vec<String> = outbox
            .iter()
            .map(|(e, _)| e.id.clone())
            .filter(|id| old(id))
            .collect();
        outbox.retain(|(e, _)| !gone.contains(&e.id));
        for id in &gone {
            outbox_times.remove(id);
        }
        Ok(gone.len() as u64)
    }
}
