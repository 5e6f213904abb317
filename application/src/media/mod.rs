//! Sending a committed file to Meta, as a media task asks: a WhatsApp message whose media is
//! the file, or a message template whose header is the file (contract section 7).
//!
//! Every step's answer from Meta is recorded as soon as it arrives (the media id, the upload
//! session, the handle, the message or template id), so that a retry or a redelivery goes on
//! after the last recorded step instead of repeating it, and a task that succeeded is never sent
//! again. A lease on the task record keeps two deliveries of one task from working at once.
//!
//! `wire` reads a task body into the domain's `MediaTask`; `stop` holds the typed reasons a
//! delivery ends with; this module is the use case that goes from one to the other.

mod metered;
mod stop;
mod verify;
mod wire;

#[cfg(test)]
mod tests;

use std::time::Duration;

use futures::future::BoxFuture;
use futures::{FutureExt, TryStreamExt};

use filegate_domain::{FileRecord, HeaderFormat, MediaTarget, Mode, SessionState};

use crate::media_ports::{
    ByteStream, CreateTemplate, MediaUpload, MetaClient, MetaError, SendMessage, TaskHandler,
    TaskOutcome,
};
use crate::ports::{BlobStore, Clock, TaskClaim, TaskRecord, TaskStatus, TaskStore, UploadStore};

pub use metered::MeteredMeta;
pub use stop::{DeadReason, RetryReason};
pub use wire::{MediaTask, TaskParseError, parse_task};

use stop::Stop;
use verify::Mismatch;

/// How many times one delivery resumes a broken resumable upload before it gives the task back.
const RESUMES_PER_ATTEMPT: u32 = 3;

/// The media worker's use case, driven by a queue adapter through [`TaskHandler`].
#[derive(Debug, Clone)]
pub struct SendMedia<M, B, C, X> {
    store: M,
    blobs: B,
    clock: C,
    meta: X,
    lease: Duration,
    metrics: std::sync::Arc<dyn crate::ports::Metrics>,
}

impl<M: TaskStore + UploadStore, B: BlobStore, C: Clock, X: MetaClient> SendMedia<M, B, C, X> {
    /// `lease`: how long one delivery may work on a task before another delivery of the same
    /// task may take it over; longer than the slowest send.
    pub fn new(store: M, blobs: B, clock: C, meta: X, lease: Duration) -> Self {
        Self {
            store,
            blobs,
            clock,
            meta,
            lease,
            metrics: std::sync::Arc::new(crate::ports::NoMetrics),
        }
    }

    /// Where the outcome of every delivery is counted.
    pub fn with_metrics(mut self, metrics: std::sync::Arc<dyn crate::ports::Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Handles one delivery of a task body.
    #[tracing::instrument(skip(self, body), fields(task_id))]
    pub async fn handle_task(&self, body: &[u8], attempt: u32) -> TaskOutcome {
        let task = match parse_task(body) {
            Ok(task) => task,
            Err(e) => {
                let reason = DeadReason::Invalid(e);
                tracing::warn!(%reason, "invalid task");
                return TaskOutcome::Dead(reason);
            }
        };
        tracing::Span::current().record("task_id", tracing::field::display(task.id()));
        let now = self.clock.now();
        let lease_until =
            now + chrono::Duration::from_std(self.lease).unwrap_or(chrono::Duration::minutes(15));
        let claim = match self
            .store
            .claim_task(
                task.id(),
                task.firm(),
                task.file(),
                task.target().kind(),
                now,
                lease_until,
            )
            .await
        {
            Ok(claim) => claim,
            Err(e) => return TaskOutcome::Retry(RetryReason::Store(e)),
        };
        let mut record = match claim {
            TaskClaim::Claimed(record) => record,
            TaskClaim::Finished(record) if record.status == TaskStatus::Succeeded => {
                tracing::info!("already sent; acknowledged without a second send");
                return TaskOutcome::Done;
            }
            TaskClaim::Finished(record) => {
                return TaskOutcome::Dead(DeadReason::FailedEarlier(record.last_error));
            }
            TaskClaim::Busy(_) => return TaskOutcome::Retry(RetryReason::Busy),
        };
        if record.firm != task.firm() || record.file != task.file() {
            return TaskOutcome::Dead(DeadReason::IdTaken);
        }
        let result = self.work(&task, &mut record).await;
        // The record keeps the reason as text: it outlives this build of the worker.
        (record.status, record.last_error) = match &result {
            Ok(()) => (TaskStatus::Succeeded, None),
            Err(Stop::Retry(reason)) => (TaskStatus::Pending, Some(reason.to_string())),
            Err(Stop::Dead(reason)) => (TaskStatus::Failed, Some(reason.to_string())),
        };
        record.lease_until = None;
        record.updated_at = self.clock.now();
        if let Err(e) = self.store.save_task(&record).await {
            // The outcome is not recorded: let the queue deliver again, which resumes from the
            // last recorded step.
            return TaskOutcome::Retry(RetryReason::NotRecorded(e));
        }
        match result {
            Ok(()) => {
                tracing::info!(result_id = ?record.result_id, "sent");
                TaskOutcome::Done
            }
            Err(Stop::Retry(reason)) => {
                tracing::warn!(%reason, "will retry");
                TaskOutcome::Retry(reason)
            }
            Err(Stop::Dead(reason)) => {
                tracing::warn!(%reason, "given up");
                TaskOutcome::Dead(reason)
            }
        }
    }

    async fn work(&self, task: &MediaTask, record: &mut TaskRecord) -> Result<(), Stop> {
        let file = self.file(task).await?;
        match task.target() {
            MediaTarget::Message(message) => {
                message
                    .media_type()
                    .accepts(&file.content_type, file.size)?;
                let media_id = match record.media_id.clone() {
                    Some(id) => id,
                    None => {
                        let media = upload_of(&file, message.file_name());
                        let mismatch = Mismatch::default();
                        let uploaded = self
                            .meta
                            .upload_message_media(
                                message.phone_number_id(),
                                &media,
                                self.bytes(&file, 0, &mismatch).await?,
                            )
                            .await;
                        let id = checked(&file, uploaded, &mismatch)?;
                        record.media_id = Some(id.clone());
                        self.save(record).await?;
                        id
                    }
                };
                let request = SendMessage {
                    message: message.clone(),
                    media_id,
                };
                let message_id = self.meta.send_message(&request).await?;
                record.result_id = Some(message_id);
            }
            MediaTarget::Template(template) => {
                let format = HeaderFormat::for_template_file(&file.content_type, file.size)?;
                let handle = match record.handle.clone() {
                    Some(h) => h,
                    None => {
                        let h = self.resumable_upload(&file, record).await?;
                        record.handle = Some(h.clone());
                        self.save(record).await?;
                        h
                    }
                };
                let request = CreateTemplate {
                    template: template.clone(),
                    header_format: format,
                    header_handle: handle,
                };
                let template_id = self.meta.create_template(&request).await?;
                record.result_id = Some(template_id);
            }
        }
        Ok(())
    }

    /// The task's file, if it is a complete Message or Template file of the task's firm.
    async fn file(&self, task: &MediaTask) -> Result<FileRecord, Stop> {
        let (file, firm) = (task.file(), task.firm());
        let snapshot = self
            .store
            .find_session(firm, file)
            .await?
            .ok_or(DeadReason::FileMissing { file, firm })?;
        match snapshot.session.state {
            SessionState::Expired => return Err(DeadReason::Expired(file).into()),
            SessionState::Deleted => return Err(DeadReason::Deleted(file).into()),
            SessionState::Open | SessionState::Committed => {}
        }
        let mode = snapshot.session.mode;
        if !matches!(mode, Mode::Message | Mode::Template) {
            return Err(DeadReason::NotMedia { file, mode }.into());
        }
        // An upload still in progress may complete: try again later.
        Ok(snapshot.file.ok_or(RetryReason::FileIncomplete(file))?)
    }

    /// The file's bytes from `from` on, checked against its SHA-256 as they pass (see
    /// [`verify`]); a file whose checksum is not known yet is sent as it is.
    async fn bytes(
        &self,
        file: &FileRecord,
        from: u64,
        mismatch: &Mismatch,
    ) -> Result<ByteStream, Stop> {
        let Some(expected) = file.sha256 else {
            tracing::debug!(file_id = %file.id, "the file's checksum is not known yet; sent unchecked");
            let range = (from > 0).then_some(from..file.size);
            let read = self.blobs.read(&file.blob_path, range).await?;
            return Ok(Box::pin(read.stream.map_err(std::io::Error::other)));
        };
        // From the start even when resuming: the digest needs every byte.
        let read = self.blobs.read(&file.blob_path, None).await?;
        Ok(verify::verified(
            read.stream,
            from,
            expected,
            mismatch.clone(),
        ))
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
            let mismatch = Mismatch::default();
            let uploaded = self
                .meta
                .upload_resumable(
                    &session,
                    offset,
                    file.size - offset,
                    self.bytes(file, offset, &mismatch).await?,
                )
                .await;
            if mismatch.found() {
                return Err(DeadReason::ChecksumMismatch(file.id).into());
            }
            match uploaded {
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

/// A Meta upload's result, unless the bytes it read failed their checksum: then whatever Meta
/// said (a broken upload, most likely) is beside the point, and the task is dead.
fn checked<T>(
    file: &FileRecord,
    uploaded: Result<T, MetaError>,
    mismatch: &Mismatch,
) -> Result<T, Stop> {
    if mismatch.found() {
        return Err(DeadReason::ChecksumMismatch(file.id).into());
    }
    Ok(uploaded?)
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

impl<M: TaskStore + UploadStore, B: BlobStore, C: Clock, X: MetaClient> TaskHandler
    for SendMedia<M, B, C, X>
{
    fn handle<'a>(&'a self, body: &'a [u8], attempt: u32) -> BoxFuture<'a, TaskOutcome> {
        async move {
            let outcome = self.handle_task(body, attempt).await;
            self.metrics.task_finished(match outcome {
                TaskOutcome::Done => crate::ports::TaskCount::Sent,
                TaskOutcome::Retry(_) => crate::ports::TaskCount::Retried,
                TaskOutcome::Dead(_) => crate::ports::TaskCount::Dead,
            });
            outcome
        }
        .boxed()
    }
}
