//! The use case against the in-memory ports: what is sent to Meta, what is recorded, and how
//! each kind of failure ends a delivery.

use std::time::Duration;

use bytes::Bytes;
use filegate_domain::{
    ApiKeyId, FileId, FirmId, HeaderFormat, MediaType, Mode, TaskId, TemplateCategory, UserId,
};
use uuid::Uuid;

use super::*;
use crate::fakes::{FakeMeta, FixedClock, InMemoryBlobs, InMemoryStore, SeqIds};
use crate::keys::Principal;
use crate::media_ports::{MetaError, MetaFault, TaskOutcome};
use crate::ports::{Clock, TaskClaim, TaskStatus, TaskStore};
use crate::uploads::{ChunkCommand, Uploads};

/// A PNG by its first bytes (the type policy reads them), ten bytes.
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0";

fn assert_done(outcome: TaskOutcome) {
    assert!(matches!(outcome, TaskOutcome::Done), "{outcome:?}");
}

struct World {
    store: InMemoryStore,
    blobs: InMemoryBlobs,
    uploads: Uploads<InMemoryStore, InMemoryBlobs, FixedClock, SeqIds>,
    meta: FakeMeta,
    worker: SendMedia<InMemoryStore, InMemoryBlobs, FixedClock, FakeMeta>,
}

fn world() -> World {
    let store = InMemoryStore::default();
    let blobs = InMemoryBlobs::default();
    let meta = FakeMeta::default();
    World {
        uploads: Uploads::new(store.clone(), blobs.clone(), FixedClock, SeqIds::default()),
        worker: SendMedia::new(
            store.clone(),
            blobs.clone(),
            FixedClock,
            meta.clone(),
            Duration::from_secs(60),
        ),
        store,
        blobs,
        meta,
    }
}

fn who() -> Principal {
    Principal {
        key: ApiKeyId::from_uuid(Uuid::from_u128(9)),
        firm: FirmId::from_uuid(Uuid::from_u128(1)),
        user: UserId::from_uuid(Uuid::from_u128(2)),
    }
}

async fn file(w: &World, mode: Mode, content_type: &str, chunks: &[&'static [u8]]) -> FileId {
    let mut id = None;
    for (i, data) in chunks.iter().enumerate() {
        let cmd = ChunkCommand {
            file_id: id,
            block_index: i as i64,
            total_blocks: chunks.len() as i64,
            mode,
            file_name: Some("photo.png".into()),
            content_type: Some(content_type.into()),
            data: Bytes::from_static(data).into(),
            chunk_sha256: None,
        };
        id = Some(w.uploads.upload_chunk(who(), cmd).await.unwrap().file_id);
    }
    id.unwrap()
}

fn message_task(task: u128, file: FileId) -> Vec<u8> {
    serde_json::json!({
        "version": 1, "taskId": Uuid::from_u128(task), "firmId": who().firm.to_string(), "fileId": file.to_string(),
        "message": { "phoneNumberId": "1055", "to": "+4915112345678", "mediaType": "image", "caption": "Hi" }
    })
    .to_string()
    .into_bytes()
}

fn template_task(task: u128, file: FileId) -> Vec<u8> {
    serde_json::json!({
        "version": 1, "taskId": Uuid::from_u128(task), "firmId": who().firm.to_string(), "fileId": file.to_string(),
        "template": { "wabaId": "77", "name": "spring_sale", "language": "en_US", "category": "marketing",
                      "components": [{ "type": "BODY", "text": "Hello" }] }
    })
    .to_string()
    .into_bytes()
}

#[tokio::test]
async fn a_message_task_uploads_the_media_and_sends_it_once() {
    let w = world();
    let id = file(&w, Mode::Message, "image/png", &[PNG, b"rest"]).await;
    assert_done(w.worker.handle_task(&message_task(1, id), 1).await);
    // A redelivery after success sends nothing.
    assert_done(w.worker.handle_task(&message_task(1, id), 2).await);
    let meta = w.meta.state();
    assert_eq!(meta.media.len(), 1);
    assert_eq!(meta.media[0].2, [PNG, b"rest"].concat());
    assert_eq!(meta.media[0].1.content_type, "image/png");
    assert_eq!(meta.media[0].0, "1055");
    assert_eq!(meta.messages.len(), 1);
    let sent = &meta.messages[0];
    assert_eq!(sent.media_id, "media-1");
    assert_eq!(sent.message.phone_number_id().as_str(), "1055");
    assert_eq!(sent.message.media_type(), MediaType::Image);
    assert_eq!(sent.message.caption(), Some("Hi"));
    assert_eq!(sent.message.to().as_str(), "4915112345678");
}

#[tokio::test]
async fn a_failed_send_is_retried_without_uploading_the_media_again() {
    let w = world();
    let id = file(&w, Mode::Message, "image/png", &[PNG]).await;
    w.meta.fail(
        "send",
        MetaError::RateLimited(MetaFault {
            status: Some(429),
            ..Default::default()
        }),
    );
    let outcome = w.worker.handle_task(&message_task(2, id), 1).await;
    assert!(
        matches!(
            outcome,
            TaskOutcome::Retry(RetryReason::Meta(MetaError::RateLimited(_)))
        ),
        "{outcome:?}"
    );
    let record = w
        .store
        .find_task(TaskId::from_uuid(Uuid::from_u128(2)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            record.status,
            record.media_id.as_deref(),
            record.lease_until
        ),
        (TaskStatus::Pending, Some("media-1"), None)
    );
    assert_done(w.worker.handle_task(&message_task(2, id), 2).await);
    let sent = {
        let meta = w.meta.state();
        (meta.media.len(), meta.messages.len())
    };
    assert_eq!(sent, (1, 1));
    let record = w
        .store
        .find_task(TaskId::from_uuid(Uuid::from_u128(2)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (record.status, record.attempts, record.result_id.as_deref()),
        (TaskStatus::Succeeded, 2, Some("wamid.1"))
    );
}

#[tokio::test]
async fn a_permanent_error_is_dead_and_recorded() {
    let w = world();
    let id = file(&w, Mode::Message, "image/png", &[PNG]).await;
    w.meta.fail(
        "media",
        MetaError::Permanent(MetaFault {
            message: "Invalid OAuth access token.".into(),
            ..Default::default()
        }),
    );
    let outcome = w.worker.handle_task(&message_task(3, id), 1).await;
    assert!(
        matches!(&outcome, TaskOutcome::Dead(DeadReason::Rejected(f)) if f.message == "Invalid OAuth access token."),
        "{outcome:?}"
    );
    let record = w
        .store
        .find_task(TaskId::from_uuid(Uuid::from_u128(3)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.status, TaskStatus::Failed);
    assert_eq!(
        record.last_error.as_deref(),
        Some("Meta refused the request: Invalid OAuth access token.")
    );
    // A redelivery is dead at once, for the reason recorded the first time.
    let again = w.worker.handle_task(&message_task(3, id), 2).await;
    assert!(
        matches!(&again, TaskOutcome::Dead(DeadReason::FailedEarlier(Some(r))) if Some(r) == record.last_error.as_ref()),
        "{again:?}"
    );
    assert_eq!(w.meta.state().media.len(), 0);
}

#[tokio::test]
async fn a_template_task_uploads_resumably_and_puts_the_handle_in_the_header() {
    let w = world();
    let id = file(&w, Mode::Template, "image/png", &[PNG, b"abcdefghij"]).await;
    w.meta.state().break_upload_after = Some(7);
    assert_done(w.worker.handle_task(&template_task(4, id), 1).await);
    let meta = w.meta.state();
    assert_eq!(
        meta.sessions["upload:1"],
        [PNG, b"abcdefghij"].concat(),
        "resumed at offset 7 with identical bytes"
    );
    let created = &meta.templates[0];
    assert_eq!(
        (created.header_format, created.header_handle.as_str()),
        (HeaderFormat::Image, "h-upload:1")
    );
    let template = &created.template;
    assert_eq!(template.waba_id().as_str(), "77");
    assert_eq!(template.name().as_str(), "spring_sale");
    assert_eq!(template.category(), TemplateCategory::Marketing);
    assert_eq!(template.components().len(), 1);
    assert_eq!(template.components()[0]["text"], "Hello");
}

#[tokio::test]
async fn invalid_tasks_are_dead_at_once() {
    let w = world();
    let import = file(&w, Mode::Import, "text/csv", &[b"a,b"]).await;
    let text = file(&w, Mode::Message, "text/plain", &[b"plain words"]).await;
    let missing = FileId::from_uuid(Uuid::from_u128(777));
    /// A body, the reason it must die for, and the words the dead-letter header shows.
    type Case = (Vec<u8>, fn(&DeadReason) -> bool, &'static str);
    let cases: Vec<Case> = vec![
        (
            b"not json".to_vec(),
            |r| matches!(r, DeadReason::Invalid(TaskParseError::Malformed(_))),
            "malformed",
        ),
        (
            br#"{"version":2,"taskId":"00000000-0000-0000-0000-000000000001","firmId":"00000000-0000-0000-0000-000000000001","fileId":"00000000-0000-0000-0000-000000000001","message":{}}"#.to_vec(),
            |r| matches!(r, DeadReason::Invalid(TaskParseError::Malformed(_))),
            "malformed",
        ),
        (
            message_task(10, missing),
            |r| matches!(r, DeadReason::FileMissing { .. }),
            "does not exist",
        ),
        (
            message_task(11, import),
            |r| matches!(r, DeadReason::NotMedia { mode: Mode::Import, .. }),
            "only Message and Template",
        ),
        (
            message_task(12, text),
            |r| matches!(r, DeadReason::NotAccepted(_)),
            "does not accept text/plain as image message media",
        ),
        (
            template_task(13, text),
            |r| matches!(r, DeadReason::NotAccepted(_)),
            "does not accept text/plain as a template header",
        ),
    ];
    for (body, expected, needle) in cases {
        match w.worker.handle_task(&body, 1).await {
            TaskOutcome::Dead(reason) => {
                assert!(expected(&reason), "`{needle}`: {reason:?}");
                let text = reason.to_string();
                assert!(text.contains(needle), "`{text}` lacks `{needle}`");
            }
            other => panic!("expected dead for `{needle}`, got {other:?}"),
        }
    }
    let meta = w.meta.state();
    assert!(meta.media.is_empty() && meta.messages.is_empty());
}

/// An upload of two blocks of which only the first has arrived.
async fn half_uploaded(w: &World) -> FileId {
    let cmd = ChunkCommand {
        file_id: None,
        block_index: 0,
        total_blocks: 2,
        mode: Mode::Message,
        file_name: Some("a.png".into()),
        content_type: Some("image/png".into()),
        data: Bytes::from_static(b"half").into(),
        chunk_sha256: None,
    };
    w.uploads.upload_chunk(who(), cmd).await.unwrap().file_id
}

#[tokio::test]
async fn a_file_still_uploading_is_retried() {
    let w = world();
    let id = half_uploaded(&w).await;
    let outcome = w.worker.handle_task(&message_task(20, id), 1).await;
    assert!(
        matches!(outcome, TaskOutcome::Retry(RetryReason::FileIncomplete(f)) if f == id),
        "{outcome:?}"
    );
}

/// An upload that expired will never complete: its task goes to the dead letters at once,
/// saying so, instead of being retried.
#[tokio::test]
async fn a_file_whose_upload_expired_is_dead() {
    let w = world();
    let id = half_uploaded(&w).await;
    let expired = w
        .store
        .expire_idle(
            Mode::Message,
            chrono::Utc::now() + chrono::Duration::hours(1),
        )
        .await
        .unwrap();
    assert_eq!(expired.len(), 1);
    match w.worker.handle_task(&message_task(21, id), 1).await {
        TaskOutcome::Dead(reason) => {
            assert!(
                matches!(reason, DeadReason::Expired(f) if f == id),
                "{reason:?}"
            );
            assert!(reason.to_string().starts_with("upload expired"), "{reason}");
        }
        other => panic!("expected dead, got {other:?}"),
    }
    assert!(w.meta.state().media.is_empty());
}

/// A deleted file is never sent: its task goes to the dead letters at once.
#[tokio::test]
async fn a_deleted_file_is_dead() {
    let w = world();
    let id = file(&w, Mode::Message, "image/png", &[PNG]).await;
    w.uploads.delete_file(who(), id).await.unwrap();
    match w.worker.handle_task(&message_task(22, id), 1).await {
        TaskOutcome::Dead(reason) => {
            assert!(
                matches!(reason, DeadReason::Deleted(f) if f == id),
                "{reason:?}"
            );
            assert!(reason.to_string().starts_with("file deleted"), "{reason}");
        }
        other => panic!("expected dead, got {other:?}"),
    }
    assert!(w.meta.state().media.is_empty());
}

#[tokio::test]
async fn a_delivery_while_another_holds_the_task_waits() {
    let w = world();
    let id = file(&w, Mode::Message, "image/png", &[PNG]).await;
    let now = FixedClock.now();
    let task = TaskId::from_uuid(Uuid::from_u128(30));
    let claim = w
        .store
        .claim_task(
            task,
            who().firm,
            id,
            "message",
            now,
            now + chrono::Duration::minutes(5),
        )
        .await
        .unwrap();
    assert!(matches!(claim, TaskClaim::Claimed(_)));
    let outcome = w.worker.handle_task(&message_task(30, id), 2).await;
    assert!(
        matches!(outcome, TaskOutcome::Retry(RetryReason::Busy)),
        "{outcome:?}"
    );
    assert!(w.meta.state().messages.is_empty());
}

/// Bytes that changed in storage after the upload (their SHA-256 is no longer the record's)
/// are never sent whole: the upload to Meta fails before its last piece, nothing is sent or
/// created, and the task is dead ("checksum mismatch") rather than retried.
#[tokio::test]
async fn bytes_that_changed_since_the_upload_are_never_sent() {
    for (mode, task) in [(Mode::Message, 41), (Mode::Template, 42)] {
        let w = world();
        let id = file(&w, mode, "image/png", &[PNG, b"rest"]).await;
        let record = w
            .store
            .find_session(who().firm, id)
            .await
            .unwrap()
            .and_then(|s| s.file)
            .unwrap();
        assert!(
            record.sha256.is_some(),
            "sent in order: hashed at the commit"
        );
        w.blobs.overwrite(
            record.blob_path.as_str(),
            Bytes::from_static(b"\x89PNG..r3st"),
        );
        let body = match mode {
            Mode::Template => template_task(task, id),
            _ => message_task(task, id),
        };
        match w.worker.handle_task(&body, 1).await {
            TaskOutcome::Dead(reason) => {
                assert!(
                    reason.to_string().starts_with("checksum mismatch"),
                    "{reason}"
                )
            }
            other => panic!("{mode}: expected dead, got {other:?}"),
        }
        let meta = w.meta.state();
        assert!(meta.media.is_empty(), "no media upload completed");
        assert!(meta.messages.is_empty(), "no message sent");
        assert!(meta.templates.is_empty(), "no template created");
    }
}
