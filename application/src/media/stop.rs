//! Why one delivery of a task stopped short of done, as values: the use case decides retry or
//! dead from the variant, not from a sentence. Text is made only where text is needed: the
//! queue adapter's headers and logs, and the task record's `last_error` (both from `Display`,
//! whose wording producers and operators already read).

use filegate_domain::{FileId, FirmId, MediaRejection, Mode};

use crate::media::wire::TaskParseError;
use crate::media_ports::{MetaError, MetaFault};
use crate::ports::{BlobError, StoreError};

/// Failed for now: a later delivery may succeed.
#[derive(Debug, thiserror::Error)]
pub enum RetryReason {
    #[error("the metadata store failed: {0}")]
    Store(#[source] StoreError),
    #[error("the blob store failed: {0}")]
    Blob(#[source] BlobError),
    /// Rate limited or unavailable; a refusal is [`DeadReason::Rejected`].
    #[error(transparent)]
    Meta(MetaError),
    /// The upload is still open and may complete.
    #[error("file {0} is not complete yet")]
    FileIncomplete(FileId),
    /// Another delivery holds the task's lease.
    #[error("another delivery of this task is in progress")]
    Busy,
    /// The work is done or stopped, but its record is not written: the next delivery goes on
    /// from the last recorded step.
    #[error("the outcome could not be recorded: {0}")]
    NotRecorded(#[source] StoreError),
}

/// Can never succeed: straight to the dead letters.
#[derive(Debug, thiserror::Error)]
pub enum DeadReason {
    #[error(transparent)]
    Invalid(#[from] TaskParseError),
    #[error("a task with this id was already recorded for another firm or file")]
    IdTaken,
    /// Failed on an earlier delivery; its recorded reason, when there is one.
    #[error("{}", .0.as_deref().unwrap_or("the task failed earlier"))]
    FailedEarlier(Option<String>),
    #[error("file {file} does not exist for firm {firm}")]
    FileMissing { file: FileId, firm: FirmId },
    /// The file was deleted by its firm.
    #[error("file deleted: file {0} was deleted by its firm")]
    Deleted(FileId),
    /// The upload expired before it was complete: it never will be.
    #[error("upload expired: file {0} was never completed, and its blocks are gone")]
    Expired(FileId),
    #[error("file {file} is a {mode} file; only Message and Template files can be sent to Meta")]
    NotMedia { file: FileId, mode: Mode },
    /// The file record exists but its bytes do not; what the blob store says is missing.
    #[error("the file's blob is missing: {0}")]
    BlobMissing(String),
    /// The stored bytes no longer hash to the SHA-256 on the file's record: they changed after
    /// the upload. Nothing was completed at Meta.
    #[error(
        "checksum mismatch: the stored bytes of file {0} do not hash to its recorded SHA-256; nothing was sent"
    )]
    ChecksumMismatch(FileId),
    /// The file's type or size is not one Meta takes for this use.
    #[error(transparent)]
    NotAccepted(#[from] MediaRejection),
    /// Meta refused the request (auth, permission, an invalid parameter).
    #[error("Meta refused the request: {0}")]
    Rejected(MetaFault),
}

/// How the work on one delivery stopped, before it is recorded.
#[derive(Debug)]
pub(super) enum Stop {
    Retry(RetryReason),
    Dead(DeadReason),
}

impl From<RetryReason> for Stop {
    fn from(reason: RetryReason) -> Self {
        Stop::Retry(reason)
    }
}

impl From<DeadReason> for Stop {
    fn from(reason: DeadReason) -> Self {
        Stop::Dead(reason)
    }
}

impl From<StoreError> for Stop {
    fn from(e: StoreError) -> Self {
        Stop::Retry(RetryReason::Store(e))
    }
}

impl From<BlobError> for Stop {
    fn from(e: BlobError) -> Self {
        match e {
            BlobError::NotFound(what) => Stop::Dead(DeadReason::BlobMissing(what)),
            other => Stop::Retry(RetryReason::Blob(other)),
        }
    }
}

impl From<MetaError> for Stop {
    fn from(e: MetaError) -> Self {
        match e {
            MetaError::Permanent(fault) => Stop::Dead(DeadReason::Rejected(fault)),
            retryable => Stop::Retry(RetryReason::Meta(retryable)),
        }
    }
}

impl From<MediaRejection> for Stop {
    fn from(e: MediaRejection) -> Self {
        Stop::Dead(DeadReason::NotAccepted(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    /// The texts producers and operators read in the dead-letter header, the retry copy's
    /// last error and the task record; they were strings before these enums and must not move.
    #[test]
    fn reasons_read_as_they_always_did() {
        let file = FileId::from_uuid(Uuid::from_u128(7));
        let firm = FirmId::from_uuid(Uuid::from_u128(1));
        let fault = MetaFault {
            status: Some(401),
            message: "Invalid OAuth access token.".into(),
            code: Some(190),
            ..Default::default()
        };
        let cases: Vec<(Stop, &str)> = vec![
            (
                StoreError::Conflict("x".into()).into(),
                "the metadata store failed: the metadata store refused the operation: x",
            ),
            (
                BlobError::ContainerMissing("uploads".into()).into(),
                "the blob store failed: the blob container is missing: uploads",
            ),
            (
                BlobError::NotFound("messages/a.png".into()).into(),
                "the file's blob is missing: messages/a.png",
            ),
            (
                MetaError::RateLimited(MetaFault {
                    message: "slow down".into(),
                    ..Default::default()
                })
                .into(),
                "Meta is rate limiting: slow down",
            ),
            (
                MetaError::Permanent(fault).into(),
                "Meta refused the request: Invalid OAuth access token. (HTTP 401, code 190)",
            ),
            (
                RetryReason::FileIncomplete(file).into(),
                "file 00000000-0000-0000-0000-000000000007 is not complete yet",
            ),
            (
                RetryReason::Busy.into(),
                "another delivery of this task is in progress",
            ),
            (
                RetryReason::NotRecorded(StoreError::Conflict("x".into())).into(),
                "the outcome could not be recorded: the metadata store refused the operation: x",
            ),
            (
                DeadReason::FileMissing { file, firm }.into(),
                "file 00000000-0000-0000-0000-000000000007 does not exist for firm 00000000-0000-0000-0000-000000000001",
            ),
            (
                DeadReason::NotMedia {
                    file,
                    mode: Mode::Import,
                }
                .into(),
                "file 00000000-0000-0000-0000-000000000007 is a Import file; only Message and Template files can be sent to Meta",
            ),
            (
                DeadReason::IdTaken.into(),
                "a task with this id was already recorded for another firm or file",
            ),
            (
                DeadReason::FailedEarlier(None).into(),
                "the task failed earlier",
            ),
            (
                DeadReason::FailedEarlier(Some("Meta refused the request: no".into())).into(),
                "Meta refused the request: no",
            ),
        ];
        for (stop, expected) in cases {
            let text = match &stop {
                Stop::Retry(r) => r.to_string(),
                Stop::Dead(r) => r.to_string(),
            };
            assert_eq!(text, expected, "{stop:?}");
        }
    }

    #[test]
    fn meta_refusals_are_dead_and_throttling_is_retried() {
        let fault = MetaFault::default();
        assert!(matches!(
            Stop::from(MetaError::Permanent(fault.clone())),
            Stop::Dead(DeadReason::Rejected(_))
        ));
        for e in [
            MetaError::RateLimited(fault.clone()),
            MetaError::Transient(fault),
        ] {
            assert!(matches!(Stop::from(e), Stop::Retry(RetryReason::Meta(_))));
        }
    }
}
