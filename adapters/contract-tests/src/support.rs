//! What the cases of every suite share: builders of domain values, the racing helpers and the
//! checks that name the promise a store broke.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use filegate_application::completion::{BlockOutcome, CommitPlan, RecordError, record_block};
use filegate_application::ports::{
    StagedBlock, StoreError, StoredApiKey, TaskClaim, TaskRecord, TaskStore, UploadStore,
};
use filegate_domain::{
    ApiKeyId, BlobPath, FileId, FileName, FileRecord, FirmId, Mode, SessionState, TaskId,
    TotalBlocks, UploadSession, UserId,
};
use tokio::sync::Barrier;
use uuid::Uuid;

/// How many requests the racing cases send at once.
pub(crate) const RACERS: usize = 8;

/// How long the racing cases' commits take: long enough for every racer to reach the store
/// while the first commit is still running, which is the window a broken lock would show in.
pub(crate) const COMMIT_PAUSE: Duration = Duration::from_millis(250);

/// The error of the commit closures that fail on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Injected;

pub(crate) fn ok<T, E: Debug>(result: Result<T, E>, what: &str) -> T {
    match result {
        Ok(value) => value,
        Err(e) => panic!("{what} failed: {e:?}"),
    }
}

pub(crate) fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

pub(crate) fn api_key(seed: &str) -> StoredApiKey {
    StoredApiKey {
        id: ApiKeyId::from_uuid(Uuid::new_v4()),
        hash: format!("{seed}{}", Uuid::new_v4().simple()).repeat(2),
        firm: FirmId::from_uuid(Uuid::new_v4()),
        user: UserId::from_uuid(Uuid::new_v4()),
        created_at: now(),
    }
}

pub(crate) fn session(mode: Mode, total: i64, raw_name: &str) -> UploadSession {
    let file_id = FileId::from_uuid(Uuid::new_v4());
    let firm = FirmId::from_uuid(Uuid::new_v4());
    let user = UserId::from_uuid(Uuid::new_v4());
    let file_name = FileName::sanitize(raw_name);
    UploadSession {
        file_id,
        firm,
        user,
        mode,
        total_blocks: TotalBlocks::new(total).expect("the cases use valid totals"),
        blob_path: BlobPath::for_file(mode, firm, user, file_id, &file_name),
        file_name,
        content_type: "application/octet-stream".into(),
        upload_id: format!("upload-{}", Uuid::new_v4().simple()),
        state: SessionState::Open,
        created_at: now(),
    }
}

pub(crate) fn block(session: &UploadSession, index: u32, part_id: &str, size: u64) -> StagedBlock {
    StagedBlock {
        index: session
            .total_blocks
            .index(i64::from(index))
            .expect("the cases use valid indices"),
        part_id: part_id.to_owned(),
        size,
    }
}

pub(crate) fn record_for(session: &UploadSession, size: u64) -> FileRecord {
    FileRecord {
        id: session.file_id,
        firm: session.firm,
        user: session.user,
        mode: session.mode,
        blob_path: session.blob_path.clone(),
        url: format!("https://blobs.example/uploads/{}", session.blob_path),
        file_name: session.file_name.clone(),
        content_type: session.content_type.clone(),
        size,
        created_at: now(),
        sha256: None,
    }
}

/// Records a block that must not complete the set, and answers the count it reported.
pub(crate) async fn staged<M: UploadStore>(
    store: &M,
    session: &UploadSession,
    index: u32,
    part_id: &str,
    size: u64,
) -> u32 {
    staged_replacing(store, session, index, part_id, size)
        .await
        .0
}

/// [`staged`], answering also the part the block replaced.
pub(crate) async fn staged_replacing<M: UploadStore>(
    store: &M,
    session: &UploadSession,
    index: u32,
    part_id: &str,
    size: u64,
) -> (u32, Option<String>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let outcome = record_block(
        store,
        session.file_id,
        block(session, index, part_id, size),
        |plan| counted_commit(Arc::clone(&calls), record_for(session, 0), plan),
    )
    .await;
    match outcome {
        Ok(BlockOutcome::Staged { received, replaced }) => (received, replaced),
        other => panic!(
            "block {index} of {} must be staged, got {other:?}",
            session.total_blocks
        ),
    }
}

/// A commit that counts its calls and holds the session for a moment, so that racers pile up
/// behind it, then answers the session's record with the plan's size.
pub(crate) async fn counted_commit(
    calls: Arc<AtomicUsize>,
    record: FileRecord,
    plan: CommitPlan,
) -> Result<FileRecord, Injected> {
    calls.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(COMMIT_PAUSE).await;
    Ok(FileRecord {
        size: plan.size,
        ..record
    })
}

/// Has the store serve `RACERS` requests at once before a race, so that a pooled store has its
/// connections open and the racers reach it together rather than one connection set-up apart.
pub(crate) async fn warm_up<M: UploadStore>(store: &M, session: &UploadSession) {
    let start = Arc::new(Barrier::new(RACERS));
    let readers: Vec<_> = (0..RACERS)
        .map(|_| {
            let store = store.clone();
            let start = Arc::clone(&start);
            let (firm, file) = (session.firm, session.file_id);
            tokio::spawn(async move {
                start.wait().await;
                store.find_session(firm, file).await.map(|_| ())
            })
        })
        .collect();
    for reader in readers {
        match reader.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("find_session while warming up failed: {e:?}"),
            Err(e) => panic!("find_session while warming up panicked: {e}"),
        }
    }
}

/// Waits for every spawned racer, failing on a panic or on an error answer.
pub(crate) async fn join_all<E: Debug>(
    racers: impl Iterator<Item = tokio::task::JoinHandle<Result<BlockOutcome, RecordError<E>>>>,
) -> Vec<BlockOutcome> {
    let handles: Vec<_> = racers.collect();
    let mut outcomes = Vec::with_capacity(handles.len());
    for handle in handles {
        match handle.await {
            Ok(Ok(outcome)) => outcomes.push(outcome),
            Ok(Err(e)) => panic!("a racing record_block failed: {e:?}"),
            Err(e) => panic!("a racing record_block panicked: {e}"),
        }
    }
    outcomes
}

/// A fresh task id, with a firm and a file.
pub(crate) fn task_ids() -> (TaskId, FirmId, FileId) {
    (
        TaskId::from_uuid(Uuid::new_v4()),
        FirmId::from_uuid(Uuid::new_v4()),
        FileId::from_uuid(Uuid::new_v4()),
    )
}

/// The record of a claim that must be Claimed.
pub(crate) fn claimed(claim: Result<TaskClaim, StoreError>) -> TaskRecord {
    match ok(claim, "claim_task") {
        TaskClaim::Claimed(record) => record,
        other => panic!("the claim must be Claimed, got {other:?}"),
    }
}

/// Records the block `index` that completes the session and answers the committed record.
pub(crate) async fn commit_last<M: UploadStore>(
    store: &M,
    session: &UploadSession,
    index: u32,
) -> FileRecord {
    let record = record_for(session, 42);
    let returned = record.clone();
    match record_block(
        store,
        session.file_id,
        block(session, index, &format!("p{index}"), 37),
        move |_plan| async move { Ok::<_, Injected>(returned) },
    )
    .await
    {
        Ok(BlockOutcome::Committed(got)) => {
            assert_eq!(got, record);
            got
        }
        other => panic!("the last missing block must commit, got {other:?}"),
    }
}

/// Opens a one-block session and commits it.
pub(crate) async fn complete_file<M: UploadStore>(store: &M, mode: Mode, name: &str) -> FileRecord {
    let session = session(mode, 1, name);
    ok(store.open_session(&session).await, "open_session");
    commit_last(store, &session, 0).await
}

/// Has the store serve `RACERS` task reads at once before a race (see [`warm_up`]).
pub(crate) async fn warm_up_tasks<M: TaskStore>(store: &M) {
    let start = Arc::new(Barrier::new(RACERS));
    let readers: Vec<_> = (0..RACERS)
        .map(|_| {
            let store = store.clone();
            let start = Arc::clone(&start);
            tokio::spawn(async move {
                start.wait().await;
                store.find_task(TaskId::from_uuid(Uuid::new_v4())).await
            })
        })
        .collect();
    for reader in readers {
        match reader.await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("find_task while warming up failed: {e:?}"),
            Err(e) => panic!("find_task while warming up panicked: {e}"),
        }
    }
}
