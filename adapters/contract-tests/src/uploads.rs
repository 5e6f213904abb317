//! The promises of [`UploadStore`] under the application's completion rule
//! ([`record_block`]): sessions read back for their own firm, blocks replace by index, and of
//! racing final blocks exactly one commits.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use filegate_application::completion::{
    BlockOutcome, CommitPlan, RecordError, record_block, record_first_block,
};
use filegate_application::ports::{
    BlockUpsert, ExpiredUpload, RecordedPart, StagedBlock, StoreError, UploadStore,
};
use filegate_domain::{BlobPath, FileId, FileRecord, FirmId, Mode, SessionState, UploadSession};
use tokio::sync::Barrier;
use uuid::Uuid;

use crate::support::*;

/// A session reads back whole, for its own firm only.
pub async fn a_session_is_found_by_its_own_firm_only<M: UploadStore>(store: M) {
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
pub async fn opening_the_same_file_twice_is_a_conflict<M: UploadStore>(store: M) {
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
pub async fn blocks_arrive_in_any_order_and_a_resent_index_replaces<M: UploadStore>(store: M) {
    let session = session(Mode::Message, 3, "report.pdf");
    ok(store.open_session(&session).await, "open_session");
    let file = session.file_id;

    assert_eq!(
        staged_replacing(&store, &session, 2, "p2", 30).await,
        (1, None)
    );
    assert_eq!(staged(&store, &session, 0, "p0", 10).await, 2);
    assert_eq!(
        staged_replacing(&store, &session, 2, "p2-again", 31).await,
        (2, Some("p2".to_owned())),
        "a re-sent index must not count twice, and must name the part it replaced"
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
    let recorded = ok(store.recorded_parts(file).await, "recorded_parts");
    assert_eq!(
        recorded,
        vec![
            RecordedPart {
                index: 0,
                part_id: "p0".into(),
                size: 10
            },
            RecordedPart {
                index: 2,
                part_id: "p2-again".into(),
                size: 31
            },
        ],
        "the recorded parts, in index order, with the replacing part"
    );
    assert!(
        ok(
            store
                .recorded_parts(FileId::from_uuid(Uuid::new_v4()))
                .await,
            "recorded_parts"
        )
        .is_empty(),
        "an unknown file has no parts"
    );

    let seen = Arc::new(std::sync::Mutex::new(None));
    let seen_by_commit = Arc::clone(&seen);
    let expected = record_for(&session, 61);
    let returned = expected.clone();
    let outcome = record_block(
        &store,
        file,
        block(&session, 1, "p1", 20),
        move |plan| async move {
            *seen_by_commit.lock().unwrap() = Some(plan);
            Ok::<_, Injected>(returned)
        },
    )
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
pub async fn completion_stores_the_record_the_commit_returned<M: UploadStore>(store: M) {
    let session = session(Mode::Template, 2, "header.png");
    ok(store.open_session(&session).await, "open_session");
    let file = session.file_id;
    assert_eq!(staged(&store, &session, 0, "p0", 5).await, 1);

    let record = record_for(&session, 12);
    let returned = record.clone();
    match record_block(
        &store,
        file,
        block(&session, 1, "p1", 7),
        move |plan| async move {
            assert_eq!(
                plan.size, 12,
                "the plan must sum the sizes of the staged blocks"
            );
            Ok::<_, Injected>(returned)
        },
    )
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
    match record_block(&store, file, block(&session, 1, "late", 7), |plan| {
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
pub async fn a_failed_commit_keeps_nothing_of_the_call<M: UploadStore>(store: M) {
    let session = session(Mode::Contact, 2, "avatar.webp");
    ok(store.open_session(&session).await, "open_session");
    let file = session.file_id;
    assert_eq!(staged(&store, &session, 0, "p0", 3).await, 1);

    match record_block(&store, file, block(&session, 1, "p1", 4), |_plan| async {
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
    match record_block(
        &store,
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
pub async fn racing_copies_of_the_final_block_commit_once<M: UploadStore>(store: M) {
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
            record_block(&store, file, block, move |plan| {
                counted_commit(calls, record, plan)
            })
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
pub async fn racing_distinct_blocks_commit_once<M: UploadStore>(store: M) {
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
            record_block(&store, file, block, move |plan| async move {
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
            BlockOutcome::Staged { received, .. } => {
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
pub async fn a_block_for_an_unknown_file_finds_no_session<M: UploadStore>(store: M) {
    let session = session(Mode::Firm, 1, "logo.ico");
    let calls = Arc::new(AtomicUsize::new(0));
    match record_block(
        &store,
        session.file_id,
        block(&session, 0, "p0", 1),
        |plan| counted_commit(Arc::clone(&calls), record_for(&session, 0), plan),
    )
    .await
    {
        Err(RecordError::SessionMissing) => {}
        other => panic!("a block for an unknown file must answer SessionMissing, got {other:?}"),
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

/// A new upload's first block opens its session in the transaction that records it: a file of
/// one block is stored and committed at once, the session with its file; a first block whose
/// commit fails leaves no session; a second first block for the same id is a conflict.
pub async fn a_first_block_opens_its_session_in_the_same_transaction<M: UploadStore>(store: M) {
    let failing = session(Mode::Firm, 1, "logo.png");
    match record_first_block(
        &store,
        &failing,
        block(&failing, 0, "p0", 5),
        |_plan| async { Err::<FileRecord, _>(Injected) },
    )
    .await
    {
        Err(RecordError::Commit(Injected)) => {}
        other => panic!("a failed commit must answer RecordError::Commit, got {other:?}"),
    }
    assert_eq!(
        ok(
            store.find_session(failing.firm, failing.file_id).await,
            "find_session"
        ),
        None,
        "a first block whose commit failed must leave no session"
    );

    let single = session(Mode::Firm, 1, "logo.png");
    let record = record_for(&single, 5);
    let returned = record.clone();
    match record_first_block(
        &store,
        &single,
        block(&single, 0, "p0", 5),
        move |plan| async move {
            assert_eq!(plan.part_ids, vec!["p0".to_owned()]);
            assert_eq!(plan.size, 5);
            Ok::<_, Injected>(returned)
        },
    )
    .await
    {
        Ok(BlockOutcome::Committed(got)) => assert_eq!(got, record),
        other => panic!("a file of one block must commit with its first block, got {other:?}"),
    }
    let snapshot = ok(
        store.find_session(single.firm, single.file_id).await,
        "find_session",
    )
    .expect("the session exists");
    assert_eq!(snapshot.session.state, SessionState::Committed);
    assert_eq!(snapshot.file, Some(record));

    let two = session(Mode::Message, 2, "report.pdf");
    match record_first_block(&store, &two, block(&two, 0, "p0", 3), |_plan| async {
        Err::<FileRecord, _>(Injected)
    })
    .await
    {
        Ok(BlockOutcome::Staged {
            received: 1,
            replaced: None,
        }) => {}
        other => panic!("the first of two blocks must be staged, got {other:?}"),
    }
    assert!(
        ok(
            store.find_session(two.firm, two.file_id).await,
            "find_session"
        )
        .is_some(),
        "the session of a staged first block exists"
    );
    match record_first_block(&store, &two, block(&two, 0, "again", 3), |_plan| async {
        Err::<FileRecord, _>(Injected)
    })
    .await
    {
        Err(RecordError::Store(StoreError::Conflict(_))) => {}
        other => panic!("opening the same file id twice must be a conflict, got {other:?}"),
    }
}

/// A new file of one block is recorded whole at once: it reads back committed, with its block,
/// its size and its record, exactly as the general path leaves it; the same id again is a
/// conflict that changes nothing.
pub async fn a_whole_file_is_recorded_committed_at_once<M: UploadStore>(store: M) {
    let single = session(Mode::Contact, 1, "card.vcf");
    let record = record_for(&single, 42);
    let event = filegate_application::events::file_completed(&record);
    ok(
        store
            .record_whole_file(&single, &block(&single, 0, "whole", 42), &record, &event)
            .await,
        "record_whole_file",
    );
    let snapshot = ok(
        store.find_session(single.firm, single.file_id).await,
        "find_session",
    )
    .expect("the session exists");
    assert_eq!(snapshot.session.state, SessionState::Committed);
    assert_eq!(snapshot.received.len(), 1);
    assert!(snapshot.received.is_complete());
    assert_eq!(snapshot.staged_bytes, 42);
    assert_eq!(snapshot.file, Some(record.clone()));
    assert!(
        !ok(
            store.upload_is_open(&single.upload_id).await,
            "upload_is_open"
        ),
        "a whole file is never open"
    );

    let again = record_for(&single, 7);
    match store
        .record_whole_file(
            &single,
            &block(&single, 0, "other", 7),
            &again,
            &filegate_application::events::file_completed(&again),
        )
        .await
    {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("recording the same file id twice must be a conflict, got {other:?}"),
    }
    let unchanged = ok(
        store.find_session(single.firm, single.file_id).await,
        "find_session",
    )
    .expect("the session exists");
    assert_eq!(unchanged.file, Some(record), "the first record stays");
    assert_eq!(unchanged.staged_bytes, 42);
}

/// Many new files of one block recorded at once (a store may record them together): each is
/// recorded exactly once and reads back whole, and a file id sent twice in the same burst is
/// recorded once and refused once, without costing the others theirs.
pub async fn whole_files_recorded_at_once_each_get_their_own_answer<M: UploadStore>(store: M) {
    const FILES: usize = 40;
    let sessions: Vec<UploadSession> = (0..FILES)
        .map(|i| session(Mode::Contact, 1, &format!("card-{i}.vcf")))
        .collect();
    let twice = sessions[7].clone();
    let start = Arc::new(Barrier::new(FILES + 1));
    let tasks: Vec<_> = sessions
        .iter()
        .cloned()
        .chain([twice.clone()])
        .enumerate()
        .map(|(i, s)| {
            let (store, start) = (store.clone(), Arc::clone(&start));
            tokio::spawn(async move {
                let record = record_for(&s, 10 + i as u64);
                let event = filegate_application::events::file_completed(&record);
                start.wait().await;
                store
                    .record_whole_file(&s, &block(&s, 0, "whole", 10 + i as u64), &record, &event)
                    .await
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.expect("a recording task panicked"));
    }
    let refused: Vec<usize> = answers
        .iter()
        .enumerate()
        .filter_map(|(i, a)| match a {
            Ok(()) => None,
            Err(StoreError::Conflict(_)) => Some(i),
            Err(e) => panic!("file {i}: only the id sent twice may be refused, got {e:?}"),
        })
        .collect();
    assert!(
        refused == [7] || refused == [FILES],
        "exactly one of the two copies of one id is refused, got {refused:?}"
    );
    for (i, s) in sessions.iter().enumerate() {
        let snapshot = ok(store.find_session(s.firm, s.file_id).await, "find_session")
            .unwrap_or_else(|| panic!("file {i} is recorded"));
        assert_eq!(snapshot.session.state, SessionState::Committed, "file {i}");
        let file = snapshot
            .file
            .unwrap_or_else(|| panic!("file {i} has its record"));
        let size = if i == 7 && refused == [7] {
            10 + FILES as u64
        } else {
            10 + i as u64
        };
        assert_eq!(
            file.size, size,
            "file {i} keeps the size it was recorded with"
        );
        assert_eq!(snapshot.staged_bytes, size, "file {i}");
    }
}

/// A block that leaves its open upload incomplete is recorded in one step, as the general path
/// records it (count, replaced part); any other block changes nothing and answers `None`, for
/// the general path to decide: no session, this block would complete the upload, a committed
/// or an expired session.
pub async fn an_incomplete_block_is_recorded_in_one_step_and_only_then<M: UploadStore>(store: M) {
    let short = |store: &M, s: &UploadSession, index: u32, part: &str| {
        let (store, block) = (store.clone(), block(s, index, part, 10 + u64::from(index)));
        let file = s.file_id;
        async move {
            ok(
                store.record_incomplete_block(file, &block).await,
                "record_incomplete_block",
            )
        }
    };
    let upload = session(Mode::Import, 3, "contacts.csv");
    assert_eq!(
        short(&store, &upload, 0, "a0").await,
        None,
        "no session yet"
    );
    ok(store.open_session(&upload).await, "open_session");
    let upsert = |received, replaced: Option<&str>| {
        Some(BlockUpsert {
            received,
            replaced: replaced.map(str::to_owned),
        })
    };
    assert_eq!(short(&store, &upload, 0, "a0").await, upsert(1, None));
    assert_eq!(
        short(&store, &upload, 0, "b0").await,
        upsert(1, Some("a0")),
        "a re-sent index replaces and is not counted twice"
    );
    assert_eq!(short(&store, &upload, 2, "a2").await, upsert(2, None));
    assert_eq!(
        short(&store, &upload, 2, "b2").await,
        upsert(2, Some("a2")),
        "a re-send at two of three blocks leaves it incomplete"
    );
    assert_eq!(
        short(&store, &upload, 1, "a1").await,
        None,
        "the block that would complete the upload is the general path's"
    );
    let parts = ok(store.recorded_parts(upload.file_id).await, "recorded_parts");
    assert_eq!(
        parts
            .iter()
            .map(|p| (p.index, p.part_id.as_str(), p.size))
            .collect::<Vec<_>>(),
        [(0, "b0", 10), (2, "b2", 12)],
        "recorded as the general path records, and nothing of the refused block"
    );
    let snapshot = ok(
        store.find_session(upload.firm, upload.file_id).await,
        "find_session",
    )
    .expect("the session exists");
    assert_eq!(snapshot.received.len(), 2);
    assert_eq!(snapshot.staged_bytes, 22);
    assert_eq!(snapshot.session.state, SessionState::Open);

    commit_last(&store, &upload, 1).await;
    assert_eq!(
        short(&store, &upload, 0, "late").await,
        None,
        "a committed upload takes no block"
    );

    let aged = UploadSession {
        created_at: now() - chrono::Duration::hours(2),
        ..session(Mode::Import, 3, "aged.csv")
    };
    ok(store.open_session(&aged).await, "open_session");
    let expired = ok(
        store
            .expire_idle(Mode::Import, now() - chrono::Duration::hours(1))
            .await,
        "expire_idle",
    );
    assert_eq!(expired.len(), 1);
    assert_eq!(
        short(&store, &aged, 0, "late").await,
        None,
        "an expired upload takes no block"
    );
    let snapshot = ok(
        store.find_session(aged.firm, aged.file_id).await,
        "find_session",
    )
    .expect("the session exists");
    assert!(snapshot.received.is_empty(), "nothing was recorded");
}

/// Racing blocks recorded in one step, each index sent twice: every index counts once, one copy
/// of each replaces the other, and the count never passes what was recorded.
pub async fn racing_incomplete_blocks_count_each_index_once<M: UploadStore>(store: M) {
    const INDICES: u32 = 6;
    let upload = session(Mode::Import, i64::from(INDICES) + 1, "race.csv");
    ok(store.open_session(&upload).await, "open_session");
    let start = Arc::new(Barrier::new(2 * INDICES as usize));
    let tasks: Vec<_> = (0..2 * INDICES)
        .map(|n| {
            let (store, start) = (store.clone(), Arc::clone(&start));
            let block = block(&upload, n % INDICES, &format!("p{n}"), 1);
            let file = upload.file_id;
            tokio::spawn(async move {
                start.wait().await;
                store.record_incomplete_block(file, &block).await
            })
        })
        .collect();
    let mut counts = Vec::new();
    let mut replaced = 0;
    for task in tasks {
        let upsert = ok(
            task.await.expect("a recording task panicked"),
            "record_incomplete_block",
        )
        .expect("no block of these completes the upload");
        counts.push(upsert.received);
        replaced += usize::from(upsert.replaced.is_some());
    }
    assert_eq!(
        replaced, INDICES as usize,
        "one copy of each index replaces the other"
    );
    assert_eq!(
        counts.iter().max(),
        Some(&INDICES),
        "every index counted once: {counts:?}"
    );
    let snapshot = ok(
        store.find_session(upload.firm, upload.file_id).await,
        "find_session",
    )
    .expect("the session exists");
    assert_eq!(snapshot.received.len(), INDICES);
    assert_eq!(snapshot.staged_bytes, u64::from(INDICES));
}

/// What a group commit of new files of one block is given per file: its session as stored
/// (committed), its block, record and event.
pub type WholeFileParts = (
    UploadSession,
    StagedBlock,
    FileRecord,
    filegate_application::media_ports::OutgoingEvent,
);

/// Not a case of the port: a store that records new files in groups (the SQL stores) runs its
/// largest group through `record_group` here, because the port's own case
/// ([`whole_files_recorded_at_once_each_get_their_own_answer`]) would pass even if every group
/// failed (a failed group is recorded again file by file). The group must succeed as one, and
/// every file in it read back committed with its own size.
pub async fn a_group_of_whole_files_is_recorded_as_one<M, F, Fut>(
    store: M,
    files: usize,
    record_group: F,
) where
    M: UploadStore,
    F: FnOnce(Vec<WholeFileParts>) -> Fut,
    Fut: std::future::Future<Output = Result<(), StoreError>>,
{
    let parts: Vec<WholeFileParts> = (0..files)
        .map(|i| {
            let session = UploadSession {
                state: SessionState::Committed,
                ..session(Mode::Message, 1, &format!("scan-{i}.pdf"))
            };
            let size = 100 + i as u64;
            let record = record_for(&session, size);
            let event = filegate_application::events::file_completed(&record);
            (
                session.clone(),
                block(&session, 0, "whole", size),
                record,
                event,
            )
        })
        .collect();
    ok(record_group(parts.clone()).await, "record_group");
    for (i, (session, _, record, _)) in parts.iter().enumerate() {
        let snapshot = ok(
            store.find_session(session.firm, session.file_id).await,
            "find_session",
        )
        .unwrap_or_else(|| panic!("file {i} of the group is recorded"));
        assert_eq!(snapshot.session.state, SessionState::Committed, "file {i}");
        assert_eq!(snapshot.staged_bytes, record.size, "file {i}");
        assert_eq!(snapshot.file.as_ref(), Some(record), "file {i}");
    }
}

/// The sweep of leftover staging asks whether an upload id is still in use: yes while its
/// session is open; no once it is committed, nor for an id no session has.
pub async fn an_upload_id_is_open_only_while_its_session_is<M: UploadStore>(store: M) {
    let session = session(Mode::Message, 1, "swept.pdf");
    let open = |store: &M| {
        let store = store.clone();
        let upload_id = session.upload_id.clone();
        async move { ok(store.upload_is_open(&upload_id).await, "upload_is_open") }
    };
    assert!(!open(&store).await, "no session has this upload id yet");
    ok(store.open_session(&session).await, "open_session");
    assert!(open(&store).await, "an open session's upload id is in use");
    commit_last(&store, &session, 0).await;
    assert!(
        !open(&store).await,
        "a committed session's staging is a leftover"
    );
}

/// The sweeper's statement: an open session of the mode that nothing reached since the cutoff
/// (neither its creation nor a block) expires, once; an active one, another mode's and a
/// committed one stay. An expired session reads as such, its lock says so, a block can no
/// longer be recorded to it, and its upload id is no longer in use.
pub async fn idle_open_sessions_expire_once<M: UploadStore>(store: M) {
    let long_ago = now() - chrono::Duration::hours(2);
    let cutoff = now() - chrono::Duration::hours(1);
    let aged = |mode, total, name| UploadSession {
        created_at: long_ago,
        ..session(mode, total, name)
    };
    let idle = aged(Mode::Import, 2, "idle.csv");
    let active = aged(Mode::Import, 2, "active.csv");
    let other_mode = aged(Mode::Message, 2, "other.pdf");
    let done = aged(Mode::Import, 1, "done.csv");
    for s in [&idle, &active, &other_mode, &done] {
        ok(store.open_session(s).await, "open_session");
    }
    staged(&store, &active, 0, "a0", 10).await;
    commit_last(&store, &done, 0).await;

    let expired = ok(store.expire_idle(Mode::Import, cutoff).await, "expire_idle");
    assert_eq!(
        expired,
        vec![ExpiredUpload {
            file_id: idle.file_id,
            upload_id: idle.upload_id.clone(),
        }],
        "only the idle open session of the mode expires"
    );
    assert!(
        ok(store.expire_idle(Mode::Import, cutoff).await, "expire_idle").is_empty(),
        "a session expires once"
    );
    let snapshot = ok(
        store.find_session(idle.firm, idle.file_id).await,
        "find_session",
    )
    .expect("an expired session is still found");
    assert_eq!(snapshot.session.state, SessionState::Expired);
    let (_, locked) =
        ok(store.lock_session(idle.file_id).await, "lock_session").expect("the session exists");
    assert_eq!(
        locked.state,
        SessionState::Expired,
        "the lock sees it expired"
    );
    let outcome = record_block(
        &store,
        idle.file_id,
        block(&idle, 0, "late", 5),
        |_plan| async { Err::<FileRecord, _>(Injected) },
    )
    .await;
    assert!(
        matches!(outcome, Err(RecordError::Expired)),
        "a block for an expired session is refused, got {outcome:?}"
    );
    assert!(!ok(
        store.upload_is_open(&idle.upload_id).await,
        "upload_is_open"
    ));
    for s in [&active, &other_mode] {
        let snapshot = ok(store.find_session(s.firm, s.file_id).await, "find_session")
            .expect("the session exists");
        assert_eq!(
            snapshot.session.state,
            SessionState::Open,
            "{}",
            s.file_name
        );
    }
}

/// The quota's two questions: how many uploads a firm has open, counted no further than asked
/// (committed and expired ones, and other firms', do not count), and per mode when its
/// longest-idle open upload was last active (its newest block, or its creation).
pub async fn open_uploads_are_counted_per_firm<M: UploadStore>(store: M) {
    let firm = FirmId::from_uuid(Uuid::new_v4());
    let base = now();
    let at = |hours: i64| base - chrono::Duration::hours(hours);
    let of_firm = |mode, total, name, created_at| UploadSession {
        firm,
        created_at,
        ..session(mode, total, name)
    };
    let idle_import = of_firm(Mode::Import, 2, "idle.csv", at(3));
    let busy_import = of_firm(Mode::Import, 2, "busy.csv", at(5));
    let message = of_firm(Mode::Message, 2, "m.pdf", at(1));
    let done = of_firm(Mode::Message, 1, "done.pdf", at(9));
    let expired = of_firm(Mode::Profile, 2, "gone.png", at(9));
    let other_firm = session(Mode::Message, 2, "other.pdf");
    for s in [
        &idle_import,
        &busy_import,
        &message,
        &done,
        &expired,
        &other_firm,
    ] {
        ok(store.open_session(s).await, "open_session");
    }
    // A block now: this upload was active just now, however long ago it began.
    staged(&store, &busy_import, 0, "b0", 10).await;
    commit_last(&store, &done, 0).await;
    let swept = ok(store.expire_idle(Mode::Profile, at(2)).await, "expire_idle");
    assert_eq!(swept.len(), 1, "the Profile upload expires");

    assert_eq!(ok(store.count_open_uploads(firm, 10).await, "count"), 3);
    assert_eq!(
        ok(store.count_open_uploads(firm, 2).await, "count"),
        2,
        "counted no further than asked"
    );
    assert_eq!(
        ok(store.count_open_uploads(other_firm.firm, 10).await, "count"),
        1
    );
    assert_eq!(
        ok(
            store
                .count_open_uploads(FirmId::from_uuid(Uuid::new_v4()), 10)
                .await,
            "count"
        ),
        0
    );
    let mut idlest = ok(store.idlest_open_uploads(firm).await, "idlest_open_uploads");
    idlest.sort_by_key(|(mode, _)| mode.as_str());
    assert_eq!(
        idlest,
        vec![(Mode::Import, at(3)), (Mode::Message, at(1))],
        "the idle Import upload (the busy one had a block now) and the Message one"
    );
}

/// A deletion makes the session a tombstone once, for its own firm only, with its event in the
/// outbox; an expired or committed session can be deleted too, and a deleted one is never
/// expired, open for the staging sweep, or recorded to.
pub async fn a_deleted_session_is_a_tombstone<M>(store: M)
where
    M: UploadStore + filegate_application::ports::DeletionStore,
{
    let open = session(Mode::Message, 2, "open.pdf");
    let done = session(Mode::Template, 1, "done.png");
    ok(store.open_session(&open).await, "open_session");
    ok(store.open_session(&done).await, "open_session");
    commit_last(&store, &done, 0).await;
    let event = filegate_application::events::file_deleted(&open);
    assert!(
        !ok(
            store.mark_deleted(done.firm, open.file_id, &event).await,
            "mark_deleted"
        ),
        "another firm cannot delete it"
    );
    assert!(ok(
        store.mark_deleted(open.firm, open.file_id, &event).await,
        "mark_deleted"
    ));
    assert!(
        !ok(
            store.mark_deleted(open.firm, open.file_id, &event).await,
            "mark_deleted"
        ),
        "a tombstone is deleted once"
    );
    let snapshot = ok(
        store.find_session(open.firm, open.file_id).await,
        "find_session",
    )
    .expect("a tombstone is still there");
    assert_eq!(snapshot.session.state, SessionState::Deleted);
    assert!(!ok(
        store.upload_is_open(&open.upload_id).await,
        "upload_is_open"
    ));
    let outcome = record_block(
        &store,
        open.file_id,
        block(&open, 0, "late", 5),
        |_plan| async { Err::<FileRecord, _>(Injected) },
    )
    .await;
    assert!(
        matches!(outcome, Err(RecordError::SessionMissing)),
        "a block for a deleted session finds no session, got {outcome:?}"
    );
    let later = now() + chrono::Duration::hours(1);
    assert!(
        ok(store.expire_idle(Mode::Message, later).await, "expire_idle").is_empty(),
        "a tombstone never expires"
    );
    let gone = filegate_application::events::file_deleted(&done);
    assert!(ok(
        store.mark_deleted(done.firm, done.file_id, &gone).await,
        "mark_deleted of a committed file"
    ));
    let snapshot = ok(
        store.find_session(done.firm, done.file_id).await,
        "find_session",
    )
    .expect("a tombstone is still there");
    assert_eq!(
        (snapshot.session.state, snapshot.file),
        (SessionState::Deleted, None)
    );
}

/// Checksums: a record committed with one reads it back; complete files without one are
/// listed newest first (a deleted one never), until one is set, once.
pub async fn files_without_a_checksum_are_listed_until_one_is_set<M>(store: M)
where
    M: UploadStore
        + filegate_application::ports::DeletionStore
        + filegate_application::ports::ChecksumStore,
{
    let digest = |byte: u8| filegate_domain::Sha256Digest::from_bytes([byte; 32]);
    let hashed = session(Mode::Message, 1, "hashed.pdf");
    ok(store.open_session(&hashed).await, "open_session");
    let record = FileRecord {
        sha256: Some(digest(7)),
        ..record_for(&hashed, 5)
    };
    let returned = record.clone();
    let outcome = record_block(
        &store,
        hashed.file_id,
        block(&hashed, 0, "h0", 5),
        move |_plan| async move { Ok::<_, Injected>(returned) },
    )
    .await;
    assert!(
        matches!(outcome, Ok(BlockOutcome::Committed(_))),
        "{outcome:?}"
    );
    let read = ok(
        store.find_session(hashed.firm, hashed.file_id).await,
        "find_session",
    )
    .and_then(|s| s.file)
    .expect("the committed file");
    assert_eq!(read.sha256, Some(digest(7)), "the checksum reads back");

    let older = complete_file(&store, Mode::Message, "older.pdf").await;
    let newer = complete_file(&store, Mode::Import, "newer.csv").await;
    let deleted = session(Mode::Profile, 1, "deleted.png");
    ok(store.open_session(&deleted).await, "open_session");
    commit_last(&store, &deleted, 0).await;
    let event = filegate_application::events::file_deleted(&deleted);
    assert!(ok(
        store
            .mark_deleted(deleted.firm, deleted.file_id, &event)
            .await,
        "mark_deleted"
    ));

    let ids = |files: Vec<FileRecord>| files.into_iter().map(|f| f.id).collect::<Vec<_>>();
    let listed = ok(
        store.files_without_checksum(10).await,
        "files_without_checksum",
    );
    assert_eq!(ids(listed), vec![newer.id, older.id], "newest first");
    let listed = ok(
        store.files_without_checksum(1).await,
        "files_without_checksum",
    );
    assert_eq!(ids(listed), vec![newer.id], "at most the limit");

    assert!(ok(
        store.set_checksum(older.id, &digest(1)).await,
        "set_checksum"
    ));
    assert!(
        !ok(
            store.set_checksum(older.id, &digest(2)).await,
            "set_checksum"
        ),
        "a checksum is set once"
    );
    assert!(!ok(
        store.set_checksum(hashed.file_id, &digest(3)).await,
        "set_checksum"
    ));
    let listed = ok(
        store.files_without_checksum(10).await,
        "files_without_checksum",
    );
    assert_eq!(ids(listed), vec![newer.id]);
    let read = ok(
        store.find_session(older.firm, older.id).await,
        "find_session",
    )
    .and_then(|s| s.file)
    .expect("the committed file");
    assert_eq!(read.sha256, Some(digest(1)));
}

/// The inventory: complete files that are not deleted, page by page in id order; a blob path
/// is known while a complete file or an open upload answers for it, not once deleted or
/// expired, and an unknown path is not.
pub async fn the_inventory_lists_live_files_and_known_paths<M>(store: M)
where
    M: UploadStore
        + filegate_application::ports::DeletionStore
        + filegate_application::ports::InventoryStore,
{
    let mut live = Vec::new();
    for name in ["a.pdf", "b.pdf", "c.pdf"] {
        live.push(complete_file(&store, Mode::Message, name).await);
    }
    let gone = session(Mode::Message, 1, "gone.pdf");
    ok(store.open_session(&gone).await, "open_session");
    commit_last(&store, &gone, 0).await;
    let event = filegate_application::events::file_deleted(&gone);
    assert!(ok(
        store.mark_deleted(gone.firm, gone.file_id, &event).await,
        "mark_deleted"
    ));
    let open = session(Mode::Import, 2, "open.csv");
    ok(store.open_session(&open).await, "open_session");
    let idle = UploadSession {
        created_at: now() - chrono::Duration::hours(2),
        ..session(Mode::Profile, 2, "idle.png")
    };
    ok(store.open_session(&idle).await, "open_session");
    ok(
        store
            .expire_idle(Mode::Profile, now() - chrono::Duration::hours(1))
            .await,
        "expire_idle",
    );

    live.sort_by_key(|f| f.id);
    let first = ok(store.live_files(None, 2).await, "live_files");
    assert_eq!(first, live[..2].to_vec(), "the first page, in id order");
    let rest = ok(store.live_files(Some(first[1].id), 2).await, "live_files");
    assert_eq!(
        rest,
        live[2..].to_vec(),
        "the next page; the deleted file is not in it"
    );
    assert!(ok(store.live_files(Some(live[2].id), 2).await, "live_files").is_empty());

    let known = |path: BlobPath| {
        let store = store.clone();
        async move { ok(store.blob_path_known(&path).await, "blob_path_known") }
    };
    assert!(
        known(live[0].blob_path.clone()).await,
        "a complete file's path"
    );
    assert!(known(open.blob_path.clone()).await, "an open upload's path");
    assert!(
        !known(gone.blob_path.clone()).await,
        "a deleted file's path"
    );
    assert!(
        !known(idle.blob_path.clone()).await,
        "an expired upload's path"
    );
    assert!(
        !known(BlobPath::from_stored("messages/nobody/x.pdf".into())).await,
        "a path nobody wrote"
    );
}

/// Servers sharing one database sweep at the same moments: sweepers racing on many idle
/// uploads (each on connections of its own) expire every upload exactly once between them.
pub async fn racing_sweepers_expire_each_upload_once<M: UploadStore>(store: M) {
    let long_ago = now() - chrono::Duration::hours(2);
    let mut idle = BTreeSet::new();
    for i in 0..40 {
        let s = UploadSession {
            created_at: long_ago,
            ..session(Mode::Import, 2, &format!("idle{i}.csv"))
        };
        ok(store.open_session(&s).await, "open_session");
        idle.insert(s.file_id);
    }
    let cutoff = now() - chrono::Duration::hours(1);
    let start = Arc::new(Barrier::new(RACERS));
    let sweeps: Vec<_> = (0..RACERS)
        .map(|_| {
            let (store, start) = (store.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                store.expire_idle(Mode::Import, cutoff).await
            })
        })
        .collect();
    let mut expired = Vec::new();
    for sweep in sweeps {
        let swept = ok(sweep.await.expect("a sweeper panicked"), "expire_idle");
        expired.extend(swept.into_iter().map(|u| u.file_id));
    }
    assert_eq!(
        expired.len(),
        idle.len(),
        "each upload expired once, none twice"
    );
    assert_eq!(expired.into_iter().collect::<BTreeSet<_>>(), idle);
}
