//! The promises of [`MetadataStore`], as cases an adapter runs against a real, empty store.
//!
//! Every case takes a fresh store and panics, naming the promise, when the store breaks it.
//! [`run_all`] runs each case on its own store; an adapter's test file may instead call each
//! case from its own `#[test]` so that a failure names the case. The racing cases spawn their
//! requests with `tokio::spawn`, so they need a multi-threaded runtime to race for real.
//!
//! Timestamps are built at whole microseconds, the precision of Postgres' `timestamptz`, since
//! a store is expected to give back what it was given.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use filegate_application::events;
use filegate_application::media_ports::OutgoingEvent;
use filegate_application::ports::{
    BlockOutcome, CommitPlan, MetadataStore, RecordError, StagedBlock, StoreError, StoredApiKey,
    TaskClaim, TaskRecord, TaskStatus,
};
use filegate_domain::{
    ApiKeyId, BlobPath, FileId, FileName, FileRecord, FirmId, Mode, SessionState, TaskId,
    TotalBlocks, UploadSession, UserId,
};
use tokio::sync::Barrier;
use uuid::Uuid;

/// How many requests the racing cases send at once.
const RACERS: usize = 8;

/// How long the racing cases' commits take: long enough for every racer to reach the store
/// while the first commit is still running, which is the window a broken lock would show in.
const COMMIT_PAUSE: Duration = Duration::from_millis(250);

/// Runs every case, each on a store of its own from `fresh`.
pub async fn run_all<M, F, Fut>(fresh: F)
where
    M: MetadataStore,
    F: Fn() -> Fut,
    Fut: Future<Output = M>,
{
    api_keys_are_found_by_hash_until_revoked(fresh().await).await;
    a_session_is_found_by_its_own_firm_only(fresh().await).await;
    opening_the_same_file_twice_is_a_conflict(fresh().await).await;
    blocks_arrive_in_any_order_and_a_resent_index_replaces(fresh().await).await;
    completion_stores_the_record_the_commit_returned(fresh().await).await;
    a_failed_commit_keeps_nothing_of_the_call(fresh().await).await;
    racing_copies_of_the_final_block_commit_once(fresh().await).await;
    racing_distinct_blocks_commit_once(fresh().await).await;
    a_block_for_an_unknown_file_finds_no_session(fresh().await).await;
    a_task_is_claimed_on_first_sight(fresh().await).await;
    a_claim_while_the_lease_is_live_is_busy(fresh().await).await;
    a_task_whose_lease_ran_out_is_claimed_again(fresh().await).await;
    save_task_round_trips_every_field(fresh().await).await;
    a_finished_task_is_not_claimed_again(fresh().await).await;
    racing_claims_of_a_new_task_claim_it_once(fresh().await).await;
    racing_claims_of_an_expired_lease_claim_it_once(fresh().await).await;
    completing_a_file_puts_one_event_in_the_outbox(fresh().await).await;
    a_failed_commit_puts_no_event_in_the_outbox(fresh().await).await;
    published_events_are_no_longer_unpublished(fresh().await).await;
    unpublished_events_come_oldest_first_up_to_the_limit(fresh().await).await;
}

/// Live keys are found by their hash, revoked ones are not, and only live keys are counted.
pub async fn api_keys_are_found_by_hash_until_revoked<M: MetadataStore>(store: M) {
    assert_eq!(
        ok(
            store.count_api_keys().await,
            "count_api_keys on an empty store"
        ),
        0
    );
    let first = api_key("a");
    let second = api_key("b");
    ok(store.insert_api_key(&first).await, "insert_api_key");
    ok(store.insert_api_key(&second).await, "insert_api_key");

    let found = ok(store.find_api_key(&first.hash).await, "find_api_key");
    assert_eq!(
        found.as_ref(),
        Some(&first),
        "find_api_key must give back the key as inserted"
    );
    let unknown = ok(store.find_api_key(&"0".repeat(64)).await, "find_api_key");
    assert_eq!(
        unknown, None,
        "find_api_key must not find a hash that was never inserted"
    );
    assert_eq!(ok(store.count_api_keys().await, "count_api_keys"), 2);

    assert!(
        ok(
            store.revoke_api_key(first.id, now()).await,
            "revoke_api_key"
        ),
        "revoking a live key must answer true"
    );
    assert_eq!(
        ok(store.find_api_key(&first.hash).await, "find_api_key"),
        None,
        "a revoked key must not be found"
    );
    assert_eq!(
        ok(store.find_api_key(&second.hash).await, "find_api_key").as_ref(),
        Some(&second),
        "revoking one key must leave the others live"
    );
    assert_eq!(
        ok(store.count_api_keys().await, "count_api_keys"),
        1,
        "a revoked key must not be counted"
    );
    assert!(
        !ok(
            store.revoke_api_key(first.id, now()).await,
            "revoke_api_key"
        ),
        "revoking a key twice must answer false the second time"
    );
    assert!(
        !ok(
            store
                .revoke_api_key(ApiKeyId::from_uuid(Uuid::new_v4()), now())
                .await,
            "revoke_api_key"
        ),
        "revoking an unknown key must answer false"
    );
}

/// A session reads back whole, for its own firm only.
pub async fn a_session_is_found_by_its_own_firm_only<M: MetadataStore>(store: M) {
    let session = session(Mode::Profile, 3, "C:\\photos\\résumé 2024 (1).PNG");
    ok(store.open_session(&session).await, "open_session");

    let snapshot = ok(
        store.find_session(session.firm, session.file_id).await,
        "find_session",
    )
    .expect("find_session must find a session its firm opened");
    assert_eq!(
        snapshot.session, session,
        "find_session must give back the session as opened"
    );
    assert!(
        snapshot.received.is_empty(),
        "a new session has received no block"
    );
    assert_eq!(snapshot.received.total(), session.total_blocks);
    assert_eq!(snapshot.staged_bytes, 0);
    assert_eq!(snapshot.file, None, "a new session has no file");

    let other_firm = FirmId::from_uuid(Uuid::new_v4());
    assert!(
        ok(
            store.find_session(other_firm, session.file_id).await,
            "find_session"
        )
        .is_none(),
        "another firm must not see the session"
    );
    let unknown = FileId::from_uuid(Uuid::new_v4());
    assert!(
        ok(
            store.find_session(session.firm, unknown).await,
            "find_session"
        )
        .is_none(),
        "an unknown file id must find nothing"
    );
}

/// A file id is opened once; the second open is refused as a conflict, and the first stays.
pub async fn opening_the_same_file_twice_is_a_conflict<M: MetadataStore>(store: M) {
    let first = session(Mode::Import, 2, "a.csv");
    ok(store.open_session(&first).await, "open_session");
    let mut again = session(Mode::Message, 5, "b.pdf");
    again.file_id = first.file_id;
    again.firm = first.firm;
    match store.open_session(&again).await {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("opening a file id twice must be StoreError::Conflict, got {other:?}"),
    }
    let kept = ok(
        store.find_session(first.firm, first.file_id).await,
        "find_session",
    )
    .expect("the first session must still be there");
    assert_eq!(
        kept.session, first,
        "a refused open must not change the existing session"
    );
}

/// Blocks come in any order; a block re-sent with the same index replaces the earlier one, in
/// the set, in the staged size and in the commit plan.
pub async fn blocks_arrive_in_any_order_and_a_resent_index_replaces<M: MetadataStore>(store: M) {
    let session = session(Mode::Message, 3, "report.pdf");
    ok(store.open_session(&session).await, "open_session");
    let file = session.file_id;

    assert_eq!(staged(&store, &session, 2, "p2", 30).await, 1);
    assert_eq!(staged(&store, &session, 0, "p0", 10).await, 2);
    assert_eq!(
        staged(&store, &session, 2, "p2-again", 31).await,
        2,
        "a re-sent index must not count twice"
    );

    let snapshot = ok(store.find_session(session.firm, file).await, "find_session")
        .expect("the session exists");
    assert_eq!(snapshot.received.received().collect::<Vec<_>>(), vec![0, 2]);
    assert_eq!(snapshot.received.missing().collect::<Vec<_>>(), vec![1]);
    assert_eq!(
        snapshot.staged_bytes, 41,
        "the staged size must count the replacing block, not the replaced one"
    );
    assert_eq!(snapshot.session.state, SessionState::Open);

    let seen = Arc::new(std::sync::Mutex::new(None));
    let seen_by_commit = Arc::clone(&seen);
    let expected = record_for(&session, 61);
    let returned = expected.clone();
    let outcome = store
        .record_block(file, block(&session, 1, "p1", 20), move |plan| async move {
            *seen_by_commit.lock().unwrap() = Some(plan);
            Ok::<_, Injected>(returned)
        })
        .await;
    match outcome {
        Ok(BlockOutcome::Committed(record)) => assert_eq!(record, expected),
        other => panic!("the last missing block must commit, got {other:?}"),
    }
    let plan = seen
        .lock()
        .unwrap()
        .take()
        .expect("the commit must have been called");
    assert_eq!(
        plan,
        CommitPlan {
            part_ids: vec!["p0".into(), "p1".into(), "p2-again".into()],
            size: 61
        },
        "the plan must list the part ids in index order, with the replacing part, and sum the sizes"
    );
}

/// The record the commit returned is what `record_block` answers, what `find_session` shows
/// from then on, and what a later block for the file gets back without a second commit.
pub async fn completion_stores_the_record_the_commit_returned<M: MetadataStore>(store: M) {
    let session = session(Mode::Template, 2, "header.png");
    ok(store.open_session(&session).await, "open_session");
    let file = session.file_id;
    assert_eq!(staged(&store, &session, 0, "p0", 5).await, 1);

    let record = record_for(&session, 12);
    let returned = record.clone();
    match store
        .record_block(file, block(&session, 1, "p1", 7), move |plan| async move {
            assert_eq!(
                plan.size, 12,
                "the plan must sum the sizes of the staged blocks"
            );
            Ok::<_, Injected>(returned)
        })
        .await
    {
        Ok(BlockOutcome::Committed(got)) => assert_eq!(
            got, record,
            "Committed must carry the record the commit returned"
        ),
        other => panic!("the last missing block must commit, got {other:?}"),
    }

    let snapshot = ok(store.find_session(session.firm, file).await, "find_session")
        .expect("the session exists");
    assert_eq!(
        snapshot.session.state,
        SessionState::Committed,
        "a committed session must read back committed"
    );
    assert_eq!(
        snapshot.file.as_ref(),
        Some(&record),
        "find_session must show the committed file"
    );
    assert!(snapshot.received.is_complete());
    assert_eq!(snapshot.staged_bytes, 12);

    let calls = Arc::new(AtomicUsize::new(0));
    match store
        .record_block(file, block(&session, 1, "late", 7), |plan| {
            counted_commit(Arc::clone(&calls), record_for(&session, 0), plan)
        })
        .await
    {
        Ok(BlockOutcome::CommittedMeanwhile(got)) => assert_eq!(got, record),
        other => {
            panic!("a block for a committed file must answer CommittedMeanwhile, got {other:?}")
        }
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "a committed file must not be committed again"
    );
    let after = ok(store.find_session(session.firm, file).await, "find_session")
        .expect("the session exists");
    assert_eq!(
        after, snapshot,
        "a block for a committed file must change nothing"
    );
}

/// When the commit fails, the block that completed the set is not kept and the session stays
/// open, so that the same request can be retried.
pub async fn a_failed_commit_keeps_nothing_of_the_call<M: MetadataStore>(store: M) {
    let session = session(Mode::Contact, 2, "avatar.webp");
    ok(store.open_session(&session).await, "open_session");
    let file = session.file_id;
    assert_eq!(staged(&store, &session, 0, "p0", 3).await, 1);

    match store
        .record_block(file, block(&session, 1, "p1", 4), |_plan| async {
            Err::<FileRecord, _>(Injected)
        })
        .await
    {
        Err(RecordError::Commit(Injected)) => {}
        other => {
            panic!("a failed commit must answer RecordError::Commit with its error, got {other:?}")
        }
    }
    let snapshot = ok(store.find_session(session.firm, file).await, "find_session")
        .expect("the session exists");
    assert_eq!(
        snapshot.session.state,
        SessionState::Open,
        "a failed commit must leave the session open"
    );
    assert_eq!(
        snapshot.received.received().collect::<Vec<_>>(),
        vec![0],
        "a failed commit must not keep the block that completed the set"
    );
    assert_eq!(snapshot.staged_bytes, 3);
    assert_eq!(snapshot.file, None, "a failed commit must not leave a file");

    let record = record_for(&session, 7);
    let returned = record.clone();
    match store
        .record_block(
            file,
            block(&session, 1, "p1-retry", 4),
            move |plan| async move {
                assert_eq!(plan.part_ids, vec!["p0".to_owned(), "p1-retry".to_owned()]);
                Ok::<_, Injected>(returned)
            },
        )
        .await
    {
        Ok(BlockOutcome::Committed(got)) => assert_eq!(got, record),
        other => panic!("the retry after a failed commit must commit, got {other:?}"),
    }
}

/// Many requests carrying the last missing block at once (a client retrying on a timeout):
/// exactly one commits, every other one sees its record.
pub async fn racing_copies_of_the_final_block_commit_once<M: MetadataStore>(store: M) {
    let session = session(Mode::Message, 3, "video.mp4");
    ok(store.open_session(&session).await, "open_session");
    assert_eq!(staged(&store, &session, 0, "p0", 100).await, 1);
    assert_eq!(staged(&store, &session, 1, "p1", 100).await, 2);

    warm_up(&store, &session).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(Barrier::new(RACERS));
    let racers = (0..RACERS).map(|n| {
        let store = store.clone();
        let start = Arc::clone(&start);
        let calls = Arc::clone(&calls);
        let record = record_for(&session, 0);
        let block = block(&session, 2, &format!("p2-copy{n}"), 50);
        let file = session.file_id;
        tokio::spawn(async move {
            start.wait().await;
            store
                .record_block(file, block, move |plan| counted_commit(calls, record, plan))
                .await
        })
    });
    let outcomes = join_all(racers).await;

    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "racing final blocks must run the commit exactly once"
    );
    let committed: Vec<&FileRecord> = outcomes
        .iter()
        .filter_map(|o| match o {
            BlockOutcome::Committed(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(
        committed.len(),
        1,
        "exactly one racer must answer Committed, got {outcomes:?}"
    );
    let record = committed[0].clone();
    for outcome in &outcomes {
        match outcome {
            BlockOutcome::Committed(_) => {}
            BlockOutcome::CommittedMeanwhile(r) => {
                assert_eq!(
                    r, &record,
                    "CommittedMeanwhile must carry the record of the one commit"
                );
            }
            BlockOutcome::Staged { .. } => {
                panic!("a copy of the final block must not answer Staged, got {outcomes:?}")
            }
        }
    }
    let snapshot = ok(
        store.find_session(session.firm, session.file_id).await,
        "find_session",
    )
    .expect("the session exists");
    assert_eq!(snapshot.file, Some(record));
    assert_eq!(snapshot.received.len(), 3);
    assert_eq!(
        snapshot.staged_bytes, 250,
        "the racers' copies must not be counted twice"
    );
}

/// Every block of a file sent at once (a parallel client): exactly one request finds the set
/// complete and commits; every other one was staged before it, each seeing a different count.
pub async fn racing_distinct_blocks_commit_once<M: MetadataStore>(store: M) {
    let total = u32::try_from(RACERS).expect("RACERS fits in u32");
    let session = session(Mode::Import, i64::from(total), "contacts.csv");
    ok(store.open_session(&session).await, "open_session");

    warm_up(&store, &session).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let plans = Arc::new(std::sync::Mutex::new(Vec::new()));
    let start = Arc::new(Barrier::new(RACERS));
    let racers = (0..total).map(|i| {
        let store = store.clone();
        let start = Arc::clone(&start);
        let calls = Arc::clone(&calls);
        let plans = Arc::clone(&plans);
        let record = record_for(&session, 0);
        let block = block(&session, i, &format!("p{i}"), u64::from(i) + 1);
        let file = session.file_id;
        tokio::spawn(async move {
            start.wait().await;
            store
                .record_block(file, block, move |plan| async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(COMMIT_PAUSE).await;
                    let size = plan.size;
                    plans.lock().unwrap().push(plan);
                    Ok::<_, Injected>(FileRecord { size, ..record })
                })
                .await
        })
    });
    let outcomes = join_all(racers).await;

    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "a complete set must be committed exactly once"
    );
    let mut counts = BTreeSet::new();
    let mut committed = Vec::new();
    for outcome in &outcomes {
        match outcome {
            BlockOutcome::Staged { received } => {
                assert!(counts.insert(*received), "two racers saw count {received}")
            }
            BlockOutcome::Committed(r) => committed.push(r.clone()),
            BlockOutcome::CommittedMeanwhile(_) => {
                panic!(
                    "no racer can see the file committed before its own block completed it: {outcomes:?}"
                )
            }
        }
    }
    assert_eq!(
        committed.len(),
        1,
        "exactly one racer must answer Committed, got {outcomes:?}"
    );
    assert_eq!(
        counts,
        (1..total).collect::<BTreeSet<_>>(),
        "the staged racers must count 1 to total - 1"
    );
    let expected_size = (1..=u64::from(total)).sum::<u64>();
    let plan = plans.lock().unwrap().pop().expect("the commit ran");
    assert_eq!(
        plan,
        CommitPlan {
            part_ids: (0..total).map(|i| format!("p{i}")).collect(),
            size: expected_size
        },
        "the plan must list every part in index order, whatever order they were recorded in"
    );
    let snapshot = ok(
        store.find_session(session.firm, session.file_id).await,
        "find_session",
    )
    .expect("the session exists");
    assert_eq!(snapshot.file.as_ref(), Some(&committed[0]));
    assert_eq!(snapshot.session.state, SessionState::Committed);
}

/// A block for a file that was never opened is refused before any commit.
pub async fn a_block_for_an_unknown_file_finds_no_session<M: MetadataStore>(store: M) {
    let session = session(Mode::Firm, 1, "logo.ico");
    let calls = Arc::new(AtomicUsize::new(0));
    match store
        .record_block(session.file_id, block(&session, 0, "p0", 1), |plan| {
            counted_commit(Arc::clone(&calls), record_for(&session, 0), plan)
        })
        .await
    {
        Err(RecordError::SessionMissing) => {}
        other => panic!("a block for an unknown file must answer SessionMissing, got {other:?}"),
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

/// How long the task cases' leases run.
const LEASE: TimeDelta = TimeDelta::seconds(30);

/// The first claim of a task creates its record: pending, one attempt, the lease taken, with
/// the firm, file and kind it was claimed for; `find_task` reads back the same.
pub async fn a_task_is_claimed_on_first_sight<M: MetadataStore>(store: M) {
    let (id, firm, file) = task_ids();
    let at = now();
    let claimed = match ok(
        store
            .claim_task(id, firm, file, "template", at, at + LEASE)
            .await,
        "claim_task",
    ) {
        TaskClaim::Claimed(record) => record,
        other => panic!("the first claim of a task must be Claimed, got {other:?}"),
    };
    let expected = TaskRecord {
        id,
        firm,
        file,
        kind: "template".into(),
        status: TaskStatus::Pending,
        attempts: 1,
        media_id: None,
        upload_session: None,
        handle: None,
        result_id: None,
        last_error: None,
        lease_until: Some(at + LEASE),
        created_at: at,
        updated_at: at,
    };
    assert_eq!(
        claimed, expected,
        "a new task must be pending with one attempt, the lease taken and nothing recorded yet"
    );
    assert_eq!(
        ok(store.find_task(id).await, "find_task"),
        Some(expected),
        "find_task must read back the claimed task"
    );
    assert_eq!(
        ok(
            store.find_task(TaskId::from_uuid(Uuid::new_v4())).await,
            "find_task"
        ),
        None,
        "an unknown task id must find nothing"
    );
}

/// While a delivery's lease is live (up to and including `lease_until`), another claim of the
/// task is Busy and changes nothing; its firm, file and kind are ignored.
pub async fn a_claim_while_the_lease_is_live_is_busy<M: MetadataStore>(store: M) {
    let (id, firm, file) = task_ids();
    let at = now();
    let first = claimed(
        store
            .claim_task(id, firm, file, "message", at, at + LEASE)
            .await,
    );
    let (_, other_firm, other_file) = task_ids();
    for later in [at + TimeDelta::seconds(1), at + LEASE] {
        match ok(
            store
                .claim_task(id, other_firm, other_file, "template", later, later + LEASE)
                .await,
            "claim_task",
        ) {
            TaskClaim::Busy(record) => assert_eq!(
                record, first,
                "Busy must carry the task as the lease holder left it"
            ),
            other => panic!(
                "a claim at {later} while the lease runs until {} must be Busy, got {other:?}",
                at + LEASE
            ),
        }
    }
    assert_eq!(
        ok(store.find_task(id).await, "find_task"),
        Some(first),
        "a Busy claim must change nothing"
    );
}

/// Once the lease has run out (or was given back by saving the task without one), the next
/// claim takes it: one more attempt, the new lease and update time, the rest unchanged.
pub async fn a_task_whose_lease_ran_out_is_claimed_again<M: MetadataStore>(store: M) {
    let (id, firm, file) = task_ids();
    let at = now();
    let first = claimed(
        store
            .claim_task(id, firm, file, "message", at, at + LEASE)
            .await,
    );
    let (_, other_firm, other_file) = task_ids();
    let later = at + LEASE + TimeDelta::seconds(1);
    let second = claimed(
        store
            .claim_task(id, other_firm, other_file, "template", later, later + LEASE)
            .await,
    );
    assert_eq!(
        second,
        TaskRecord {
            attempts: 2,
            lease_until: Some(later + LEASE),
            updated_at: later,
            ..first.clone()
        },
        "a claim after the lease ran out must count an attempt and take the lease, and keep \
         the firm, file and kind of the first claim"
    );
    assert_eq!(
        ok(store.find_task(id).await, "find_task").as_ref(),
        Some(&second)
    );

    // The holder gives the lease back (a retry is scheduled): the next claim need not wait.
    let released = TaskRecord {
        lease_until: None,
        last_error: Some("Meta is unavailable".into()),
        updated_at: later + TimeDelta::seconds(2),
        ..second
    };
    ok(store.save_task(&released).await, "save_task");
    let sooner = later + TimeDelta::seconds(3);
    let third = claimed(
        store
            .claim_task(id, firm, file, "message", sooner, sooner + LEASE)
            .await,
    );
    assert_eq!(
        third,
        TaskRecord {
            attempts: 3,
            lease_until: Some(sooner + LEASE),
            updated_at: sooner,
            ..released
        },
        "a pending task without a lease must be claimed at once, keeping what was recorded"
    );
}

/// `save_task` writes every field but id, firm, file, kind and created_at, and they read back
/// exactly (timestamps at microseconds); saving a task that was never claimed is an error.
pub async fn save_task_round_trips_every_field<M: MetadataStore>(store: M) {
    let (id, firm, file) = task_ids();
    let at = now();
    let first = claimed(
        store
            .claim_task(id, firm, file, "template", at, at + LEASE)
            .await,
    );
    let (_, other_firm, other_file) = task_ids();
    let progress = TaskRecord {
        id,
        firm: other_firm,
        file: other_file,
        kind: "message".into(),
        status: TaskStatus::Pending,
        attempts: 7,
        media_id: Some("1234567890123456".into()),
        upload_session: Some("upload:MTphdHRhY2htZW50OjE=?sig=ARZ".into()),
        handle: Some("4::aW1hZ2UvcG5n:ARb-handle\nwith lines".into()),
        result_id: Some("wamid.HBgLMTY1MDUwNzY1MjAVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA".into()),
        last_error: Some("Meta is rate limiting: (#4) Application request limit reached (HTTP 429, code 4) — «retry»".into()),
        lease_until: Some(at + TimeDelta::microseconds(123_456_789)),
        created_at: at - TimeDelta::days(365),
        updated_at: at + TimeDelta::microseconds(1_000_001),
    };
    ok(store.save_task(&progress).await, "save_task");
    let expected = TaskRecord {
        firm: first.firm,
        file: first.file,
        kind: first.kind.clone(),
        created_at: first.created_at,
        ..progress.clone()
    };
    assert_eq!(
        ok(store.find_task(id).await, "find_task"),
        Some(expected.clone()),
        "save_task must write every progress field exactly, and keep firm, file, kind and \
         created_at as first claimed"
    );

    let cleared = TaskRecord {
        status: TaskStatus::Failed,
        media_id: None,
        upload_session: None,
        handle: None,
        result_id: None,
        last_error: None,
        lease_until: None,
        updated_at: at + TimeDelta::seconds(5),
        ..expected
    };
    ok(store.save_task(&cleared).await, "save_task");
    assert_eq!(
        ok(store.find_task(id).await, "find_task"),
        Some(cleared),
        "save_task must clear the fields it is given empty"
    );

    let (unknown, _, _) = task_ids();
    match store
        .save_task(&TaskRecord {
            id: unknown,
            ..progress
        })
        .await
    {
        Err(StoreError::Unknown(_)) => {}
        other => panic!(
            "saving a task that was never claimed must be StoreError::Unknown, got {other:?}"
        ),
    }
    assert_eq!(
        ok(store.find_task(unknown).await, "find_task"),
        None,
        "save_task must not create a task"
    );
}

/// A succeeded or failed task is Finished for every later claim, lease or not, and the claim
/// changes nothing.
pub async fn a_finished_task_is_not_claimed_again<M: MetadataStore>(store: M) {
    for (status, last_error) in [
        (TaskStatus::Succeeded, None),
        (
            TaskStatus::Failed,
            Some("Meta refused the request".to_owned()),
        ),
    ] {
        let (id, firm, file) = task_ids();
        let at = now();
        let first = claimed(
            store
                .claim_task(id, firm, file, "message", at, at + LEASE)
                .await,
        );
        let done = TaskRecord {
            status,
            result_id: Some(format!("wamid.{}", Uuid::new_v4().simple())),
            last_error,
            lease_until: None,
            updated_at: at + TimeDelta::seconds(1),
            ..first
        };
        ok(store.save_task(&done).await, "save_task");
        for later in [at + TimeDelta::seconds(2), at + LEASE + LEASE] {
            match ok(
                store
                    .claim_task(id, firm, file, "message", later, later + LEASE)
                    .await,
                "claim_task",
            ) {
                TaskClaim::Finished(record) => {
                    assert_eq!(record, done, "Finished must carry the task as it was saved")
                }
                other => panic!("a {status:?} task must be Finished, got {other:?}"),
            }
        }
        assert_eq!(
            ok(store.find_task(id).await, "find_task"),
            Some(done),
            "claiming a finished task must change nothing"
        );
    }
}

/// Several deliveries of one new task at once (a redelivery racing the first): exactly one
/// creates and holds it, every other one sees its live lease.
pub async fn racing_claims_of_a_new_task_claim_it_once<M: MetadataStore>(store: M) {
    warm_up_tasks(&store).await;
    let (id, firm, file) = task_ids();
    let winner = race_claims(&store, id, firm, file, now()).await;
    assert_eq!(
        winner.attempts, 1,
        "the racing claims must count one attempt"
    );
}

/// Several deliveries of a task whose lease ran out, at once: exactly one takes the lease and
/// counts one attempt, every other one sees the lease it took.
pub async fn racing_claims_of_an_expired_lease_claim_it_once<M: MetadataStore>(store: M) {
    warm_up_tasks(&store).await;
    let (id, firm, file) = task_ids();
    let at = now();
    claimed(
        store
            .claim_task(id, firm, file, "message", at, at + LEASE)
            .await,
    );
    let winner = race_claims(&store, id, firm, file, at + LEASE + LEASE).await;
    assert_eq!(
        winner.attempts, 2,
        "the racing claims must count one attempt together"
    );
}

/// Sends `RACERS` claims of one task at once, checks that exactly one is Claimed and every other
/// one Busy with the winner's record, and that the store holds the winner's record; answers it.
async fn race_claims<M: MetadataStore>(
    store: &M,
    id: TaskId,
    firm: FirmId,
    file: FileId,
    at: DateTime<Utc>,
) -> TaskRecord {
    let start = Arc::new(Barrier::new(RACERS));
    let racers: Vec<_> = (0..RACERS)
        .map(|_| {
            let store = store.clone();
            let start = Arc::clone(&start);
            tokio::spawn(async move {
                start.wait().await;
                store
                    .claim_task(id, firm, file, "template", at, at + LEASE)
                    .await
            })
        })
        .collect();
    let mut claims = Vec::with_capacity(RACERS);
    for racer in racers {
        match racer.await {
            Ok(Ok(claim)) => claims.push(claim),
            Ok(Err(e)) => panic!("a racing claim_task failed: {e:?}"),
            Err(e) => panic!("a racing claim_task panicked: {e}"),
        }
    }
    let winners: Vec<&TaskRecord> = claims
        .iter()
        .filter_map(|c| match c {
            TaskClaim::Claimed(record) => Some(record),
            _ => None,
        })
        .collect();
    assert_eq!(
        winners.len(),
        1,
        "exactly one racing claim must be Claimed, got {claims:?}"
    );
    let winner = winners[0].clone();
    for claim in &claims {
        match claim {
            TaskClaim::Claimed(_) => {}
            TaskClaim::Busy(record) => {
                assert_eq!(record, &winner, "the losers must see the winner's record")
            }
            TaskClaim::Finished(_) => {
                panic!("no racer can see a pending task finished: {claims:?}")
            }
        }
    }
    assert_eq!(
        ok(store.find_task(id).await, "find_task").as_ref(),
        Some(&winner),
        "the store must hold the winner's record"
    );
    winner
}

/// Completing a file stores its `file.completed` event in the same transaction: exactly one,
/// with the file id as event id, the routing key of its mode, and a JSON payload naming the
/// file. Staged blocks and later blocks for the committed file add none.
pub async fn completing_a_file_puts_one_event_in_the_outbox<M: MetadataStore>(store: M) {
    let session = session(Mode::Template, 2, "Header Image.PNG");
    ok(store.open_session(&session).await, "open_session");
    assert_eq!(staged(&store, &session, 1, "p1", 5).await, 1);
    assert_eq!(
        ok(store.unpublished_events(100).await, "unpublished_events"),
        vec![],
        "a staged block must not put an event in the outbox"
    );

    let record = commit_last(&store, &session, 0).await;
    let events = ok(store.unpublished_events(100).await, "unpublished_events");
    assert_eq!(
        events,
        vec![events::file_completed(&record)],
        "completing a file must put exactly its file.completed event in the outbox"
    );
    let event = &events[0];
    assert_eq!(
        event.id,
        record.id.to_string(),
        "the event id is the file id"
    );
    assert_eq!(event.routing_key, "file.completed.template");
    let payload: serde_json::Value =
        serde_json::from_slice(&event.payload).expect("the payload must be JSON");
    assert_eq!(payload["type"], "file.completed");
    assert_eq!(payload["fileId"], record.id.to_string());
    assert_eq!(payload["firmId"], record.firm.to_string());
    assert_eq!(payload["fileName"], record.file_name.as_str());
    assert_eq!(payload["mode"], "Template");
    assert_eq!(payload["size"], record.size);

    let calls = Arc::new(AtomicUsize::new(0));
    match store
        .record_block(session.file_id, block(&session, 0, "late", 7), |plan| {
            counted_commit(Arc::clone(&calls), record_for(&session, 0), plan)
        })
        .await
    {
        Ok(BlockOutcome::CommittedMeanwhile(_)) => {}
        other => {
            panic!("a block for a committed file must answer CommittedMeanwhile, got {other:?}")
        }
    }
    assert_eq!(
        ok(store.unpublished_events(100).await, "unpublished_events"),
        events,
        "a block for a committed file must not add an event"
    );
}

/// A commit that fails keeps no event, like it keeps no file; its successful retry keeps one.
pub async fn a_failed_commit_puts_no_event_in_the_outbox<M: MetadataStore>(store: M) {
    let session = session(Mode::Message, 1, "voice.ogg");
    ok(store.open_session(&session).await, "open_session");
    match store
        .record_block(
            session.file_id,
            block(&session, 0, "p0", 3),
            |_plan| async { Err::<FileRecord, _>(Injected) },
        )
        .await
    {
        Err(RecordError::Commit(Injected)) => {}
        other => panic!("a failed commit must answer RecordError::Commit, got {other:?}"),
    }
    assert_eq!(
        ok(store.unpublished_events(100).await, "unpublished_events"),
        vec![],
        "a failed commit must not leave an event"
    );
    let record = commit_last(&store, &session, 0).await;
    assert_eq!(
        ok(store.unpublished_events(100).await, "unpublished_events"),
        vec![events::file_completed(&record)],
        "the retry that commits must leave the event"
    );
}

/// Published events leave `unpublished_events`; unknown ids, an empty list and a second
/// marking are accepted and change nothing else.
pub async fn published_events_are_no_longer_unpublished<M: MetadataStore>(store: M) {
    let first = complete_file(&store, Mode::Contact, "a.vcf").await;
    let second = complete_file(&store, Mode::Import, "b.csv").await;
    let (first, second) = (
        events::file_completed(&first),
        events::file_completed(&second),
    );
    assert_eq!(
        ok(store.unpublished_events(100).await, "unpublished_events"),
        vec![first.clone(), second.clone()]
    );

    ok(
        store.mark_events_published(&[]).await,
        "mark_events_published",
    );
    ok(
        store
            .mark_events_published(std::slice::from_ref(&first.id))
            .await,
        "mark_events_published",
    );
    assert_eq!(
        ok(store.unpublished_events(100).await, "unpublished_events"),
        vec![second.clone()],
        "a published event must not be listed again, the others must stay"
    );
    ok(
        store
            .mark_events_published(&[
                first.id.clone(),
                "no-such-event".to_owned(),
                second.id.clone(),
            ])
            .await,
        "mark_events_published with an unknown and an already published id",
    );
    assert_eq!(
        ok(store.unpublished_events(100).await, "unpublished_events"),
        vec![],
        "every published event must be gone from the unpublished ones"
    );
}

/// `unpublished_events` lists the oldest first, at most `limit` of them.
pub async fn unpublished_events_come_oldest_first_up_to_the_limit<M: MetadataStore>(store: M) {
    let mut expected: Vec<OutgoingEvent> = Vec::new();
    for (mode, name) in [
        (Mode::Firm, "logo.png"),
        (Mode::Profile, "me.jpg"),
        (Mode::Message, "clip.mp4"),
    ] {
        let record = complete_file(&store, mode, name).await;
        expected.push(events::file_completed(&record));
        // Events written in the same microsecond would have no order to keep.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(
        ok(store.unpublished_events(0).await, "unpublished_events"),
        vec![]
    );
    assert_eq!(
        ok(store.unpublished_events(2).await, "unpublished_events"),
        expected[..2],
        "the limit must cut the oldest events off the list"
    );
    assert_eq!(
        ok(store.unpublished_events(10).await, "unpublished_events"),
        expected,
        "events must come oldest first"
    );
    ok(
        store
            .mark_events_published(std::slice::from_ref(&expected[0].id))
            .await,
        "mark_events_published",
    );
    assert_eq!(
        ok(store.unpublished_events(2).await, "unpublished_events"),
        expected[1..],
        "after the oldest is published, the next ones come first"
    );
}

/// The error of the commit closures that fail on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Injected;

fn ok<T, E: Debug>(result: Result<T, E>, what: &str) -> T {
    match result {
        Ok(value) => value,
        Err(e) => panic!("{what} failed: {e:?}"),
    }
}

fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

fn api_key(seed: &str) -> StoredApiKey {
    StoredApiKey {
        id: ApiKeyId::from_uuid(Uuid::new_v4()),
        hash: format!("{seed}{}", Uuid::new_v4().simple()).repeat(2),
        firm: FirmId::from_uuid(Uuid::new_v4()),
        user: UserId::from_uuid(Uuid::new_v4()),
        created_at: now(),
    }
}

fn session(mode: Mode, total: i64, raw_name: &str) -> UploadSession {
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

fn block(session: &UploadSession, index: u32, part_id: &str, size: u64) -> StagedBlock {
    StagedBlock {
        index: session
            .total_blocks
            .index(i64::from(index))
            .expect("the cases use valid indices"),
        part_id: part_id.to_owned(),
        size,
    }
}

fn record_for(session: &UploadSession, size: u64) -> FileRecord {
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
    }
}

/// Records a block that must not complete the set, and answers the count it reported.
async fn staged<M: MetadataStore>(
    store: &M,
    session: &UploadSession,
    index: u32,
    part_id: &str,
    size: u64,
) -> u32 {
    let calls = Arc::new(AtomicUsize::new(0));
    let outcome = store
        .record_block(
            session.file_id,
            block(session, index, part_id, size),
            |plan| counted_commit(Arc::clone(&calls), record_for(session, 0), plan),
        )
        .await;
    match outcome {
        Ok(BlockOutcome::Staged { received }) => received,
        other => panic!(
            "block {index} of {} must be staged, got {other:?}",
            session.total_blocks
        ),
    }
}

/// A commit that counts its calls and holds the session for a moment, so that racers pile up
/// behind it, then answers the session's record with the plan's size.
async fn counted_commit(
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
async fn warm_up<M: MetadataStore>(store: &M, session: &UploadSession) {
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
async fn join_all<E: Debug>(
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
fn task_ids() -> (TaskId, FirmId, FileId) {
    (
        TaskId::from_uuid(Uuid::new_v4()),
        FirmId::from_uuid(Uuid::new_v4()),
        FileId::from_uuid(Uuid::new_v4()),
    )
}

/// The record of a claim that must be Claimed.
fn claimed(claim: Result<TaskClaim, StoreError>) -> TaskRecord {
    match ok(claim, "claim_task") {
        TaskClaim::Claimed(record) => record,
        other => panic!("the claim must be Claimed, got {other:?}"),
    }
}

/// Records the block `index` that completes the session and answers the committed record.
async fn commit_last<M: MetadataStore>(
    store: &M,
    session: &UploadSession,
    index: u32,
) -> FileRecord {
    let record = record_for(session, 42);
    let returned = record.clone();
    match store
        .record_block(
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
async fn complete_file<M: MetadataStore>(store: &M, mode: Mode, name: &str) -> FileRecord {
    let session = session(mode, 1, name);
    ok(store.open_session(&session).await, "open_session");
    commit_last(store, &session, 0).await
}

/// Has the store serve `RACERS` task reads at once before a race (see [`warm_up`]).
async fn warm_up_tasks<M: MetadataStore>(store: &M) {
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
