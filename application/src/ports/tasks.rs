//! The media task port: one record per task, claimed by one delivery at a time.

use std::future::Future;

use chrono::{DateTime, Utc};
use filegate_domain::{FileId, FirmId, TaskId};

use super::StoreError;

/// Where a media task stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskStatus {
    /// Claimed by a delivery, or waiting for its next try.
    Pending,
    /// Sent: Meta's answer is recorded; a redelivery is acknowledged without a second send.
    Succeeded,
    /// Given up: dead-lettered with `last_error`.
    Failed,
}

impl TaskStatus {
    pub const fn as_str(&self) -> &'static str {
        match self {
            TaskStatus::Pending => "pending",
            TaskStatus::Succeeded => "succeeded",
            TaskStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(TaskStatus::Pending),
            "succeeded" => Some(TaskStatus::Succeeded),
            "failed" => Some(TaskStatus::Failed),
            _ => None,
        }
    }
}

/// A media task's recorded outcome and progress. Every step's result is recorded as soon as
/// Meta answers, so that a retry or a redelivery resumes after the last recorded step instead of
/// repeating it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRecord {
    pub id: TaskId,
    pub firm: FirmId,
    pub file: FileId,
    /// `message` or `template`.
    pub kind: String,
    pub status: TaskStatus,
    /// Deliveries that worked on it.
    pub attempts: u32,
    /// Message media: the id from `POST /{phone}/media`.
    pub media_id: Option<String>,
    /// Template media: the resumable upload session (`upload:...`), to resume after a break.
    pub upload_session: Option<String>,
    /// Template media: the handle `h`.
    pub handle: Option<String>,
    /// Message: Meta's message id (`wamid...`); template: the template id.
    pub result_id: Option<String>,
    pub last_error: Option<String>,
    /// Until when the current delivery holds the task; another delivery of the same task
    /// waits until then, so that two deliveries never send at the same time.
    pub lease_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The answer to a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskClaim {
    /// This delivery holds the task now (first sight, or an earlier delivery's lease ran out);
    /// `attempts` has been counted up and the lease set.
    Claimed(TaskRecord),
    /// Already succeeded or failed: nothing to do.
    Finished(TaskRecord),
    /// Another delivery holds a live lease.
    Busy(TaskRecord),
}

/// The kinds of media task a store accepts (the schemas' CHECKs list the same).
pub const TASK_KINDS: [&str; 2] = ["message", "template"];

/// What a claim decides about a task that already exists. The same rule for every store: each
/// store only makes reading the record and acting on the decision one atomic step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimDecision {
    /// Succeeded or failed: nothing to do.
    Finished,
    /// Another delivery holds a live lease.
    Busy,
    /// Pending and free: count up `attempts` and take the lease.
    Take,
}

impl ClaimDecision {
    /// The decision for `current` at `now`. A lease that ends exactly now is still held, so
    /// that two deliveries reading the same clock never both take it.
    pub fn of(current: &TaskRecord, now: DateTime<Utc>) -> Self {
        match current.status {
            TaskStatus::Succeeded | TaskStatus::Failed => ClaimDecision::Finished,
            TaskStatus::Pending if current.lease_until.is_some_and(|held| held >= now) => {
                ClaimDecision::Busy
            }
            TaskStatus::Pending => ClaimDecision::Take,
        }
    }
}

/// Media task records.
pub trait TaskStore: Clone + Send + Sync + 'static {
    /// Claims a task for one delivery, atomically: creates its record (status pending,
    /// attempts 1) on first sight, or, when [`ClaimDecision::of`] says `Take`, counts up
    /// `attempts` and takes the lease. `firm`, `file` and `kind` are only used when the record
    /// is created.
    fn claim_task(
        &self,
        id: TaskId,
        firm: FirmId,
        file: FileId,
        kind: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> impl Future<Output = Result<TaskClaim, StoreError>> + Send;

    /// Writes a task's progress and outcome (every field but id, firm, file, kind and
    /// created_at), as the holder of its lease.
    fn save_task(&self, task: &TaskRecord) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn find_task(
        &self,
        id: TaskId,
    ) -> impl Future<Output = Result<Option<TaskRecord>, StoreError>> + Send;
}
