//! The promises of [`OutboxStore`], with the completion that writes its events: one event
//! per committed file, kept exactly when the file is, published oldest first.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use filegate_application::completion::{BlockOutcome, RecordError, record_block};
use filegate_application::events;
use filegate_application::media_ports::OutgoingEvent;
use filegate_application::ports::{OutboxStore, UploadStore};
use filegate_domain::{FileRecord, Mode};

use crate::support::*;

/// Completing a file stores its `file.completed` event in the same transaction: exactly one,
/// with the file id as event id, the routing key of its mode, and a JSON payload naming the
/// file. Staged blocks and later blocks for the committed file add none.
pub async fn completing_a_file_puts_one_event_in_the_outbox<M: UploadStore + OutboxStore>(
    store: M,
) {
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
    match record_block(
        &store,
        session.file_id,
        block(&session, 0, "late", 7),
        |plan| counted_commit(Arc::clone(&calls), record_for(&session, 0), plan),
    )
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
pub async fn a_failed_commit_puts_no_event_in_the_outbox<M: UploadStore + OutboxStore>(store: M) {
    let session = session(Mode::Message, 1, "voice.ogg");
    ok(store.open_session(&session).await, "open_session");
    match record_block(
        &store,
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
pub async fn published_events_are_no_longer_unpublished<M: UploadStore + OutboxStore>(store: M) {
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
pub async fn unpublished_events_come_oldest_first_up_to_the_limit<M: UploadStore + OutboxStore>(
    store: M,
) {
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

/// Old events go: published ones once published before the cutoff, unpublished ones only when
/// asked (events are off) and stored before it; younger ones stay.
pub async fn old_events_are_purged<M: UploadStore + OutboxStore>(store: M) {
    let published = events::file_completed(&complete_file(&store, Mode::Message, "a.pdf").await);
    let pending = events::file_completed(&complete_file(&store, Mode::Import, "b.csv").await);
    ok(
        store
            .mark_events_published(std::slice::from_ref(&published.id))
            .await,
        "mark_events_published",
    );
    let past = now() - chrono::Duration::hours(1);
    let future = now() + chrono::Duration::hours(1);
    let purge = |before, unpublished_too| {
        let store = store.clone();
        async move {
            ok(
                store.purge_events(before, unpublished_too).await,
                "purge_events",
            )
        }
    };
    assert_eq!(purge(past, true).await, 0, "nothing is that old");
    assert_eq!(purge(future, false).await, 1, "the published event goes");
    assert_eq!(
        ok(store.unpublished_events(10).await, "unpublished_events"),
        vec![pending.clone()],
        "an unpublished event stays while events are on"
    );
    assert_eq!(purge(future, true).await, 1, "with events off it goes too");
    assert!(ok(store.unpublished_events(10).await, "unpublished_events").is_empty());
}
