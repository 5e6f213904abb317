//! Sending a committed file to Meta, as a media task asks: a WhatsApp message whose media is
//! the file, or a message template whose header is the file (contract section 7).
//!
//! Every step's answer from Meta is recorded as soon as it arrives (the media id, the upload
//! session, the handle, the message or template id), so that a retry or a redelivery goes on
//! after the last recorded step instead of repeating it, and a task that succeeded is never sent
//! again. A lease on the task record keeps two deliveries of one task from working at once.

use std::time::Duration;

use futures::future::BoxFuture;
use futures::{FutureExt, TryStreamExt};
use serde::Deserialize;
use uuid::Uuid;

use filegate_domain::{FileId, FileRecord, FirmId, HeaderFormat, MediaType, Mode, TaskId};

use crate::media_ports::{
    ByteStream, MediaUpload, MetaClient, MetaError, TaskHandler, TaskOutcome,
};
use crate::ports::{
    BlobError, BlobStore, Clock, MetadataStore, StoreError, TaskClaim, TaskRecord, TaskStatus,
};

/// The task format version this worker reads.
pub const TASK_VERSION: u32 = 1;

/// How many times one delivery resumes a broken resumable upload before it gives the task back.
const RESUMES_PER_ATTEMPT: u32 = 3;

/// A media task as producers publish it (`openapi/media-task.schema.json`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TaskWire {
    version: u32,
    task_id: Uuid,
    firm_id: Uuid,
    file_id: Uuid,
    message: Option<MessageWire>,
    template: Option<TemplateWire>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageWire {
    phone_number_id: String,
    to: String,
    media_type: String,
    caption: Option<String>,
    file_name: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TemplateWire {
    waba_id: String,
    name: String,
    language: String,
    category: String,
    #[serde(default)]
    components: Vec<serde_json::Value>,
}

/// A task that passed every check that needs no I/O.
#[derive(Debug, Clone)]
pub struct MediaTask {
    pub id: TaskId,
    pub firm: FirmId,
    pub file: FileId,
    pub what: MediaTarget,
}

/// What to send.
#[derive(Debug, Clone)]
pub enum MediaTarget {
    Message {
        phone_number_id: String,
        to: String,
        media_type: MediaType,
        caption: Option<String>,
        file_name: Option<String>,
    },
    Template {
        waba_id: String,
        name: String,
        language: String,
        category: String,
        components: Vec<serde_json::Value>,
    },
}

impl MediaTarget {
    fn kind(&self) -> &'static str {
        match self {
            MediaTarget::Message { .. } => "message",
            MediaTarget::Template { .. } => "template",
        }
    }
}

impl MediaTask {
    /// Parses and checks a task body; the error says what is wrong, for the dead-letter queue.
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        let wire: TaskWire =
            serde_json::from_slice(body).map_err(|e| format!("malformed task: {e}"))?;
        if wire.version != TASK_VERSION {
            return Err(format!(
                "unsupported task version {}; this worker reads version {TASK_VERSION}",
                wire.version
            ));
        }
        let what = match (wire.message, wire.template) {
            (Some(m), None) => Self::message(m)?,
            (None, Some(t)) => Self::template(t)?,
            _ => return Err("a task carries exactly one of `message` and `template`".into()),
        };
        Ok(Self {
            id: TaskId::from_uuid(wire.task_id),
            firm: FirmId::from_uuid(wire.firm_id),
            file: FileId::from_uuid(wire.file_id),
            what,
        })
    }

    fn message(m: MessageWire) -> Result<MediaTarget, String> {
        let media_type: MediaType = m
            .media_type
            .parse()
            .map_err(|e: filegate_domain::UnknownMediaType| e.to_string())?;
        required("message.phoneNumberId", &m.phone_number_id)?;
        let to = m.to.trim();
        let digits = to.strip_prefix('+').unwrap_or(to);
        if digits.is_empty() || digits.len() > 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "message.to must be a phone number in international format, got `{}`",
                m.to
            ));
        }
        if m.caption.is_some()
            && !matches!(
                media_type,
                MediaType::Image | MediaType::Video | MediaType::Document
            )
        {
            return Err(format!(
                "message.caption is not allowed for {} media",
                media_type.as_str()
            ));
        }
        if m.file_name.is_some() && media_type != MediaType::Document {
            return Err("message.fileName is only allowed for document media".into());
        }
        Ok(MediaTarget::Message {
            phone_number_id: m.phone_number_id,
            to: digits.to_owned(),
            media_type,
            caption: m.caption,
            file_name: m.file_name,
        })
    }

    fn template(t: TemplateWire) -> Result<MediaTarget, String> {
        required("template.wabaId", &t.waba_id)?;
        required("template.language", &t.language)?;
        if t.name.is_empty()
            || !t
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(format!(
                "template.name must be lower-case letters, digits and `_`, got `{}`",
                t.name
            ));
        }
        let category = t.category.to_ascii_uppercase();
        if !matches!(
            category.as_str(),
            "MARKETING" | "UTILITY" | "AUTHENTICATION"
        ) {
            return Err(format!(
                "template.category must be MARKETING, UTILITY or AUTHENTICATION, got `{}`",
                t.category
            ));
        }
        if t.components.iter().any(|c| !c.is_object()) {
            return Err("template.components must be objects".into());
        }
        Ok(MediaTarget::Template {
            waba_id: t.waba_id,
            name: t.name,
            language: t.language,
            category,
            components: t.components,
        })
    }
}

fn required(field: &str, value: &str) -> Result<(), String> {
    if value.trim().is_empty() {
        Err(format!("{field} is required"))
    } else {
        Ok(())
    }
}

/// The message payload of `POST /{phone-number-id}/messages` for a media id.
pub fn message_payload(
    to: &str,
    media_type: MediaType,
    media_id: &str,
    caption: Option<&str>,
    file_name: Option<&str>,
) -> serde_json::Value {
    let mut media = serde_json::json!({ "id": media_id });
    if let Some(caption) = caption {
        media["caption"] = caption.into();
    }
    if let Some(name) = file_name {
        media["filename"] = name.into();
    }
    let mut payload = serde_json::json!({
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": media_type.as_str(),
    });
    payload[media_type.as_str()] = media;
    payload
}

/// The template payload of `POST /{waba-id}/message_templates`: the task's components with
/// the handle in the HEADER component's `example.header_handle` (a HEADER is added first when
/// the task has none; its format is set from the file when the task leaves it out).
pub fn template_payload(
    name: &str,
    language: &str,
    category: &str,
    components: &[serde_json::Value],
    format: HeaderFormat,
    handle: &str,
) -> serde_json::Value {
    let mut components = components.to_vec();
    let is_header = |c: &serde_json::Value| {
        c["type"]
            .as_str()
            .is_some_and(|t| t.eq_ignore_ascii_case("HEADER"))
    };
    if !components.iter().any(is_header) {
        components.insert(0, serde_json::json!({ "type": "HEADER" }));
    }
    for header in components.iter_mut().filter(|c| is_header(c)) {
        header["type"] = "HEADER".into();
        if header["format"].as_str().is_none() {
            header["format"] = format.as_str().into();
        }
        header["example"] = serde_json::json!({ "header_handle": [handle] });
    }
    serde_json::json!({ "name": name, "language": language, "category": category, "components": components })
}

/// Why one delivery of a task stopped.
enum Stop {
    Retry(String),
    Dead(String),
}

impl From<StoreError> for Stop {
    fn from(e: StoreError) -> Self {
        Stop::Retry(format!("the metadata store failed: {e}"))
    }
}

impl From<BlobError> for Stop {
    fn from(e: BlobError) -> Self {
        match e {
            BlobError::NotFound(what) => Stop::Dead(format!("the file's blob is missing: {what}")),
            other => Stop::Retry(format!("the blob store failed: {other}")),
        }
    }
}

impl From<MetaError> for Stop {
    fn from(e: MetaError) -> Self {
        if e.is_retryable() {
            Stop::Retry(e.to_string())
        } else {
            Stop::Dead(e.to_string())
        }
    }
}

/// The media worker's use case, driven by a queue adapter through [`TaskHandler`].
#[derive(Debug, Clone)]
pub struct SendMedia<M, B, C, X> {
    store: M,
    blobs: B,
    clock: C,
    meta: X,
    lease: Duration,
}

impl<M: MetadataStore, B: BlobStore, C: Clock, X: MetaClient> SendMedia<M, B, C, X> {
    /// `lease`: how long one delivery may work on a task before another delivery of the same
    /// task may take it over; longer than the slowest send.
    pub fn new(store: M, blobs: B, clock: C, meta: X, lease: Duration) -> Self {
        Self {
            store,
            blobs,
            clock,
            meta,
            lease,
        }
    }

    /// Handles one delivery of a task body.
    #[tracing::instrument(skip(self, body), fields(task_id))]
    pub async fn handle_task(&self, body: &[u8], attempt: u32) -> TaskOutcome {
        let task = match MediaTask::parse(body) {
            Ok(task) => task,
            Err(reason) => {
                tracing::warn!(%reason, "invalid task");
                return TaskOutcome::Dead(reason);
            }
        };
        tracing::Span::current().record("task_id", tracing::field::display(task.id));
        let now = self.clock.now();
        let lease_until =
            now + chrono::Duration::from_std(self.lease).unwrap_or(chrono::Duration::minutes(15));
        let claim = match self
            .store
            .claim_task(
                task.id,
                task.firm,
                task.file,
                task.what.kind(),
                now,
                lease_until,
            )
            .await
        {
            Ok(claim) => claim,
            Err(e) => return TaskOutcome::Retry(format!("the metadata store failed: {e}")),
        };
        let mut record = match claim {
            TaskClaim::Claimed(record) => record,
            TaskClaim::Finished(record) if record.status == TaskStatus::Succeeded => {
                tracing::info!("already sent; acknowledged without a second send");
                return TaskOutcome::Done;
            }
            TaskClaim::Finished(record) => {
                return TaskOutcome::Dead(
                    record
                        .last_error
                        .unwrap_or_else(|| "the task failed earlier".into()),
                );
            }
            TaskClaim::Busy(_) => {
                return TaskOutcome::Retry("another delivery of this task is in progress".into());
            }
        };
        if record.firm != task.firm || record.file != task.file {
            return TaskOutcome::Dead(
                "a task with this id was already recorded for another firm or file".into(),
            );
        }
        let result = self.work(&task, &mut record).await;
        let (outcome, status, error) = match result {
            Ok(()) => (TaskOutcome::Done, TaskStatus::Succeeded, None),
            Err(Stop::Retry(reason)) => (
                TaskOutcome::Retry(reason.clone()),
                TaskStatus::Pending,
                Some(reason),
            ),
            Err(Stop::Dead(reason)) => (
                TaskOutcome::Dead(reason.clone()),
                TaskStatus::Failed,
                Some(reason),
            ),
        };
        record.status = status;
        record.last_error = error;
        record.lease_until = None;
        record.updated_at = self.clock.now();
        if let Err(e) = self.store.save_task(&record).await {
            // The outcome is not recorded: let the queue deliver again, which resumes from the
            // last recorded step.
            return TaskOutcome::Retry(format!("the outcome could not be recorded: {e}"));
        }
        match &outcome {
            TaskOutcome::Done => tracing::info!(result_id = ?record.result_id, "sent"),
            TaskOutcome::Retry(reason) => tracing::warn!(%reason, "will retry"),
            TaskOutcome::Dead(reason) => tracing::warn!(%reason, "given up"),
        }
        outcome
    }

    async fn work(&self, task: &MediaTask, record: &mut TaskRecord) -> Result<(), Stop> {
        let file = self.file(task).await?;
        match &task.what {
            MediaTarget::Message {
                phone_number_id,
                to,
                media_type,
                caption,
                file_name,
            } => {
                media_type
                    .accepts(&file.content_type, file.size)
                    .map_err(|e| Stop::Dead(e.to_string()))?;
                let media_id = match record.media_id.clone() {
                    Some(id) => id,
                    None => {
                        let media = upload_of(&file, file_name.as_deref());
                        let id = self
                            .meta
                            .upload_message_media(
                                phone_number_id,
                                &media,
                                self.bytes(&file, 0).await?,
                            )
                            .await?;
                        record.media_id = Some(id.clone());
                        self.save(record).await?;
                        id
                    }
                };
                let payload = message_payload(
                    to,
                    *media_type,
                    &media_id,
                    caption.as_deref(),
                    file_name.as_deref(),
                );
                let message_id = self.meta.send_message(phone_number_id, &payload).await?;
                record.result_id = Some(message_id);
            }
            MediaTarget::Template {
                waba_id,
                name,
                language,
                category,
                components,
            } => {
                let format = HeaderFormat::for_template_file(&file.content_type, file.size)
                    .map_err(|e| Stop::Dead(e.to_string()))?;
                let handle = match record.handle.clone() {
                    Some(h) => h,
                    None => {
                        let h = self.resumable_upload(&file, record).await?;
                        record.handle = Some(h.clone());
                        self.save(record).await?;
                        h
                    }
                };
                let payload =
                    template_payload(name, language, category, components, format, &handle);
                let template_id = self.meta.create_template(waba_id, &payload).await?;
                record.result_id = Some(template_id);
            }
        }
        Ok(())
    }

    /// The task's file, if it is a complete Message or Template file of the task's firm.
    async fn file(&self, task: &MediaTask) -> Result<FileRecord, Stop> {
        let snapshot = self
            .store
            .find_session(task.firm, task.file)
            .await?
            .ok_or_else(|| {
                Stop::Dead(format!(
                    "file {} does not exist for firm {}",
                    task.file, task.firm
                ))
            })?;
        if !matches!(snapshot.session.mode, Mode::Message | Mode::Template) {
            return Err(Stop::Dead(format!(
                "file {} is a {} file; only Message and Template files can be sent to Meta",
                task.file, snapshot.session.mode
            )));
        }
        // An upload still in progress may complete: try again later.
        snapshot
            .file
            .ok_or_else(|| Stop::Retry(format!("file {} is not complete yet", task.file)))
    }

    async fn bytes(&self, file: &FileRecord, from: u64) -> Result<ByteStream, Stop> {
        let range = (from > 0).then_some(from..file.size);
        let read = self.blobs.read(&file.blob_path, range).await?;
        Ok(Box::pin(read.stream.map_err(std::io::Error::other)))
    }

    /// Meta's Resumable Upload: a session (recorded, so that a later delivery resumes it), then
    /// the bytes; after a broken connection, the session's offset says where to go on from.
    async fn resumable_upload(
        &self,
        file: &FileRecord,
        record: &mut TaskRecord,
    ) -> Result<String, Stop> {
        let (session, mut offset) = match record.upload_session.clone() {
            Some(session) => {
                let offset = self.meta.resumable_offset(&session).await?;
                (session, offset)
            }
            None => {
                let session = self
                    .meta
                    .start_resumable_upload(&upload_of(file, None))
                    .await?;
                record.upload_session = Some(session.clone());
                self.save(record).await?;
                (session, 0)
            }
        };
        let mut resumes = 0;
        loop {
            match self
                .meta
                .upload_resumable(
                    &session,
                    offset,
                    file.size - offset,
                    self.bytes(file, offset).await?,
                )
                .await
            {
                Ok(handle) => return Ok(handle),
                Err(MetaError::Transient(fault)) if resumes < RESUMES_PER_ATTEMPT => {
                    resumes += 1;
                    offset = self.meta.resumable_offset(&session).await?;
                    tracing::warn!(%fault, offset, resumes, "upload broke; resuming from Meta's offset");
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    async fn save(&self, record: &mut TaskRecord) -> Result<(), Stop> {
        record.updated_at = self.clock.now();
        self.store.save_task(record).await?;
        Ok(())
    }
}

fn upload_of(file: &FileRecord, file_name: Option<&str>) -> MediaUpload {
    MediaUpload {
        file_name: file_name.map_or_else(|| file.file_name.as_str().to_owned(), str::to_owned),
        content_type: file
            .content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned(),
        size: file.size,
    }
}

impl<M: MetadataStore, B: BlobStore, C: Clock, X: MetaClient> TaskHandler
    for SendMedia<M, B, C, X>
{
    fn handle<'a>(&'a self, body: &'a [u8], attempt: u32) -> BoxFuture<'a, TaskOutcome> {
        self.handle_task(body, attempt).boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::{FakeMeta, FixedClock, InMemoryBlobs, InMemoryStore, SeqIds};
    use crate::keys::Principal;
    use crate::media_ports::{MetaFault, TaskOutcome};
    use crate::uploads::{ChunkCommand, Uploads};
    use bytes::Bytes;
    use filegate_domain::{ApiKeyId, UserId};

    struct World {
        store: InMemoryStore,
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
                blobs,
                FixedClock,
                meta.clone(),
                Duration::from_secs(60),
            ),
            store,
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
                data: Bytes::from_static(data),
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
        let id = file(&w, Mode::Message, "image/png", &[b"\x89PNG..", b"rest"]).await;
        assert_eq!(
            w.worker.handle_task(&message_task(1, id), 1).await,
            TaskOutcome::Done
        );
        // A redelivery after success sends nothing.
        assert_eq!(
            w.worker.handle_task(&message_task(1, id), 2).await,
            TaskOutcome::Done
        );
        let meta = w.meta.state();
        assert_eq!(meta.media.len(), 1);
        assert_eq!(meta.media[0].2, b"\x89PNG..rest".to_vec());
        assert_eq!(meta.media[0].1.content_type, "image/png");
        assert_eq!(meta.messages.len(), 1);
        assert_eq!(meta.messages[0]["image"]["id"], "media-1");
        assert_eq!(meta.messages[0]["image"]["caption"], "Hi");
        assert_eq!(meta.messages[0]["to"], "4915112345678");
    }

    #[tokio::test]
    async fn a_failed_send_is_retried_without_uploading_the_media_again() {
        let w = world();
        let id = file(&w, Mode::Message, "image/png", &[b"img"]).await;
        w.meta.fail(
            "send",
            MetaError::RateLimited(MetaFault {
                status: Some(429),
                ..Default::default()
            }),
        );
        assert!(matches!(
            w.worker.handle_task(&message_task(2, id), 1).await,
            TaskOutcome::Retry(_)
        ));
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
        assert_eq!(
            w.worker.handle_task(&message_task(2, id), 2).await,
            TaskOutcome::Done
        );
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
        let id = file(&w, Mode::Message, "image/png", &[b"img"]).await;
        w.meta.fail(
            "media",
            MetaError::Permanent(MetaFault {
                message: "Invalid OAuth access token.".into(),
                ..Default::default()
            }),
        );
        let outcome = w.worker.handle_task(&message_task(3, id), 1).await;
        assert!(
            matches!(&outcome, TaskOutcome::Dead(r) if r.contains("Invalid OAuth")),
            "{outcome:?}"
        );
        let record = w
            .store
            .find_task(TaskId::from_uuid(Uuid::from_u128(3)))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(record.status, TaskStatus::Failed);
        assert!(record.last_error.unwrap().contains("Invalid OAuth"));
    }

    #[tokio::test]
    async fn a_template_task_uploads_resumably_and_puts_the_handle_in_the_header() {
        let w = world();
        let id = file(
            &w,
            Mode::Template,
            "image/png",
            &[b"0123456789", b"abcdefghij"],
        )
        .await;
        w.meta.state().break_upload_after = Some(7);
        assert_eq!(
            w.worker.handle_task(&template_task(4, id), 1).await,
            TaskOutcome::Done
        );
        let meta = w.meta.state();
        assert_eq!(
            meta.sessions["upload:1"],
            b"0123456789abcdefghij".to_vec(),
            "resumed at offset 7 with identical bytes"
        );
        let template = &meta.templates[0];
        assert_eq!(template["category"], "MARKETING");
        assert_eq!(template["components"][0]["type"], "HEADER");
        assert_eq!(template["components"][0]["format"], "IMAGE");
        assert_eq!(
            template["components"][0]["example"]["header_handle"][0],
            "h-upload:1"
        );
        assert_eq!(template["components"][1]["text"], "Hello");
    }

    #[tokio::test]
    async fn invalid_tasks_are_dead_at_once() {
        let w = world();
        let import = file(&w, Mode::Import, "text/csv", &[b"a,b"]).await;
        let gif = file(&w, Mode::Message, "image/gif", &[b"GIF89a"]).await;
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"not json".to_vec(), "malformed"),
            (br#"{"version":2,"taskId":"00000000-0000-0000-0000-000000000001","firmId":"00000000-0000-0000-0000-000000000001","fileId":"00000000-0000-0000-0000-000000000001","message":{}}"#.to_vec(), "malformed"),
            (message_task(10, FileId::from_uuid(Uuid::from_u128(777))), "does not exist"),
            (message_task(11, import), "only Message and Template"),
            (message_task(12, gif), "does not accept image/gif"),
            (template_task(13, gif), "does not accept image/gif"),
        ];
        for (body, needle) in cases {
            match w.worker.handle_task(&body, 1).await {
                TaskOutcome::Dead(reason) => {
                    assert!(reason.contains(needle), "`{reason}` lacks `{needle}`")
                }
                other => panic!("expected dead for `{needle}`, got {other:?}"),
            }
        }
        let meta = w.meta.state();
        assert!(meta.media.is_empty() && meta.messages.is_empty());
    }

    #[tokio::test]
    async fn a_file_still_uploading_is_retried() {
        let w = world();
        let cmd = ChunkCommand {
            file_id: None,
            block_index: 0,
            total_blocks: 2,
            mode: Mode::Message,
            file_name: Some("a.png".into()),
            content_type: Some("image/png".into()),
            data: Bytes::from_static(b"half"),
        };
        let id = w.uploads.upload_chunk(who(), cmd).await.unwrap().file_id;
        assert!(
            matches!(w.worker.handle_task(&message_task(20, id), 1).await, TaskOutcome::Retry(r) if r.contains("not complete"))
        );
    }

    #[tokio::test]
    async fn a_delivery_while_another_holds_the_task_waits() {
        let w = world();
        let id = file(&w, Mode::Message, "image/png", &[b"img"]).await;
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
        assert!(
            matches!(w.worker.handle_task(&message_task(30, id), 2).await, TaskOutcome::Retry(r) if r.contains("in progress"))
        );
        assert!(w.meta.state().messages.is_empty());
    }

    #[test]
    fn the_schema_examples_are_valid_tasks() {
        let schema: serde_json::Value =
            serde_json::from_str(include_str!("../../openapi/media-task.schema.json")).unwrap();
        let examples = schema["examples"].as_array().unwrap();
        assert_eq!(examples.len(), 2);
        for example in examples {
            let task = MediaTask::parse(example.to_string().as_bytes()).unwrap();
            assert_eq!(task.id.to_string(), example["taskId"].as_str().unwrap());
        }
    }

    #[test]
    fn the_payloads_follow_the_cloud_api() {
        let doc = message_payload("491", MediaType::Document, "m1", Some("Q3"), Some("q3.pdf"));
        assert_eq!(doc["type"], "document");
        assert_eq!(
            doc["document"],
            serde_json::json!({ "id": "m1", "caption": "Q3", "filename": "q3.pdf" })
        );
        let existing = vec![serde_json::json!({ "type": "header", "format": "VIDEO" })];
        let t = template_payload("n", "de", "UTILITY", &existing, HeaderFormat::Image, "h1");
        assert_eq!(t["components"].as_array().unwrap().len(), 1);
        assert_eq!(
            t["components"][0]["format"], "VIDEO",
            "a format the task gives is kept"
        );
        assert_eq!(
            t["components"][0]["example"]["header_handle"],
            serde_json::json!(["h1"])
        );
    }
}
