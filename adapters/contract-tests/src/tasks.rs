//! The promises of [`TaskStore`]: a task is claimed by one delivery at a time through its
//! lease, and its record round-trips.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use filegate_application::ports::{StoreError, TaskClaim, TaskRecord, TaskStatus, TaskStore};
use filegate_domain::{FileId, FirmId, TaskId};
use tokio::sync::Barrier;
use uuid::Uuid;

use crate::support::*;

/// How long the task cases' leases run.
const LEASE: TimeDelta = TimeDelta::seconds(30);

/// The first claim of a task creates its record: pending, one attempt, the lease taken, with
/// the firm, file and kind it was claimed for; `find_task` reads back the same.
pub async fn a_task_is_claimed_on_first_sight<M: TaskStore>(store: M) {
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
pub async fn a_claim_while_the_lease_is_live_is_busy<M: TaskStore>(store: M) {
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
pub async fn a_task_whose_lease_ran_out_is_claimed_again<M: TaskStore>(store: M) {
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
pub async fn save_task_round_trips_every_field<M: TaskStore>(store: M) {
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
pub async fn a_finished_task_is_not_claimed_again<M: TaskStore>(store: M) {
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
pub async fn racing_claims_of_a_new_task_claim_it_once<M: TaskStore>(store: M) {
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
pub async fn racing_claims_of_an_expired_lease_claim_it_once<M: TaskStore>(store: M) {
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
async fn race_claims<M: TaskStore>(
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
