//! Faults a test asks for: which operation they hit, what they do, and how many times.
//!
//! A fault is consumed by the next request of its kind (or any kind), so a test says exactly
//! which call breaks; once its count is used up it is gone. Faults are checked in the order they
//! were injected, and a request meets at most one.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The Graph API calls the fake serves, for counting requests and aiming faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    /// `POST /{version}/{app-id}/uploads`: opens a resumable upload session.
    StartUpload,
    /// `POST /{version}/upload:...`: sends bytes of a resumable upload.
    ResumableUpload,
    /// `GET /{version}/upload:...`: asks a session's offset.
    UploadStatus,
    /// `POST /{version}/{phone-number-id}/media`: uploads message media (multipart).
    MediaUpload,
    /// `POST /{version}/{phone-number-id}/messages`.
    SendMessage,
    /// `POST /{version}/{waba-id}/message_templates`.
    CreateTemplate,
}

impl Operation {
    /// Every operation, in a stable order.
    pub const ALL: [Operation; 6] = [
        Operation::StartUpload,
        Operation::ResumableUpload,
        Operation::UploadStatus,
        Operation::MediaUpload,
        Operation::SendMessage,
        Operation::CreateTemplate,
    ];
}

/// Which requests a fault hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultTarget {
    /// The next request of any operation.
    Any,
    StartUpload,
    ResumableUpload,
    UploadStatus,
    MediaUpload,
    SendMessage,
    CreateTemplate,
}

impl FaultTarget {
    pub fn matches(self, op: Operation) -> bool {
        match self {
            FaultTarget::Any => true,
            other => FaultTarget::from(op) == other,
        }
    }
}

impl From<Operation> for FaultTarget {
    fn from(op: Operation) -> Self {
        match op {
            Operation::StartUpload => FaultTarget::StartUpload,
            Operation::ResumableUpload => FaultTarget::ResumableUpload,
            Operation::UploadStatus => FaultTarget::UploadStatus,
            Operation::MediaUpload => FaultTarget::MediaUpload,
            Operation::SendMessage => FaultTarget::SendMessage,
            Operation::CreateTemplate => FaultTarget::CreateTemplate,
        }
    }
}

/// What a fault does to the request it hits. In JSON the variant is the `kind` field:
/// `{"kind": "drop_connection", "after_bytes": 1000}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultAction {
    /// Read `after_bytes` bytes of the request body (all of it, if it is shorter), then close
    /// the connection without an answer. What a resumable upload received until then is kept,
    /// as Meta keeps it, so the session's offset moves on.
    DropConnection { after_bytes: u64 },
    /// Answer 429 with Meta's rate-limit error of this `code` (default 4, "Application request
    /// limit reached"; 80007, 130429, 131048 and 131056 are WhatsApp's), after reading the body.
    RateLimit {
        #[serde(default = "default_rate_limit_code")]
        code: i64,
    },
    /// Answer 500 with Meta's "unexpected error" (code 2, `is_transient`), after reading the body.
    ServerError,
    /// Do the work, then wait `ms` milliseconds before answering: a client that gives up earlier
    /// leaves a request that did happen (a sent message, a created template).
    Delay { ms: u64 },
    /// Stop reading the request body after `after_bytes` bytes for `ms` milliseconds, then go
    /// on: a stalled upload, as a client's stall timeout should notice it.
    Stall { after_bytes: u64, ms: u64 },
}

fn default_rate_limit_code() -> i64 {
    4
}

fn one() -> u32 {
    1
}

/// One injected fault: `{"target": "resumable_upload", "kind": "drop_connection",
/// "after_bytes": 1000, "times": 1}` in JSON (`times` defaults to 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    pub target: FaultTarget,
    #[serde(flatten)]
    pub action: FaultAction,
    /// How many matching requests it hits before it is used up. Default: 1.
    #[serde(default = "one")]
    pub times: u32,
}

impl Fault {
    /// A fault hitting the next matching request once.
    pub fn new(target: impl Into<FaultTarget>, action: FaultAction) -> Self {
        Self {
            target: target.into(),
            action,
            times: 1,
        }
    }

    /// Closes the connection after reading `after_bytes` bytes of the body.
    pub fn drop_connection(target: impl Into<FaultTarget>, after_bytes: u64) -> Self {
        Self::new(target, FaultAction::DropConnection { after_bytes })
    }

    /// Answers 429 with Meta's code 4 ("Application request limit reached").
    pub fn rate_limit(target: impl Into<FaultTarget>) -> Self {
        Self::rate_limit_code(target, default_rate_limit_code())
    }

    /// Answers 429 with Meta's rate-limit error of the given code (80007, 130429, ...).
    pub fn rate_limit_code(target: impl Into<FaultTarget>, code: i64) -> Self {
        Self::new(target, FaultAction::RateLimit { code })
    }

    /// Answers 500 with Meta's transient "unexpected error".
    pub fn server_error(target: impl Into<FaultTarget>) -> Self {
        Self::new(target, FaultAction::ServerError)
    }

    /// Does the work, then answers after `delay`.
    pub fn delay(target: impl Into<FaultTarget>, delay: Duration) -> Self {
        Self::new(target, FaultAction::Delay { ms: millis(delay) })
    }

    /// Stops reading the body after `after_bytes` bytes for `pause`.
    pub fn stall(target: impl Into<FaultTarget>, after_bytes: u64, pause: Duration) -> Self {
        Self::new(
            target,
            FaultAction::Stall {
                after_bytes,
                ms: millis(pause),
            },
        )
    }

    /// Hits this many matching requests instead of one.
    #[must_use]
    pub fn times(mut self, times: u32) -> Self {
        self.times = times;
        self
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The faults still waiting for their requests.
#[derive(Debug, Default)]
pub(crate) struct FaultQueue {
    pending: Vec<Fault>,
}

impl FaultQueue {
    pub(crate) fn push(&mut self, fault: Fault) {
        if fault.times > 0 {
            self.pending.push(fault);
        }
    }

    /// The action of the first fault matching `op`, counting it as used once.
    pub(crate) fn take(&mut self, op: Operation) -> Option<FaultAction> {
        let at = self.pending.iter().position(|f| f.target.matches(op))?;
        let fault = &mut self.pending[at];
        let action = fault.action.clone();
        fault.times -= 1;
        if fault.times == 0 {
            self.pending.remove(at);
        }
        Some(action)
    }

    pub(crate) fn pending(&self) -> Vec<Fault> {
        self.pending.clone()
    }

    pub(crate) fn clear(&mut self) {
        self.pending.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fault_reads_and_writes_its_documented_json() {
        let f: Fault = serde_json::from_str(
            r#"{"target":"resumable_upload","kind":"drop_connection","after_bytes":1000}"#,
        )
        .unwrap();
        assert_eq!(f, Fault::drop_connection(Operation::ResumableUpload, 1000));
        let f: Fault =
            serde_json::from_str(r#"{"target":"any","kind":"rate_limit","times":2}"#).unwrap();
        assert_eq!(f, Fault::rate_limit(FaultTarget::Any).times(2));
        let json = serde_json::to_value(Fault::delay(
            Operation::SendMessage,
            Duration::from_millis(5),
        ))
        .unwrap();
        assert_eq!(
            json,
            serde_json::json!({"target":"send_message","kind":"delay","ms":5,"times":1})
        );
    }

    #[test]
    fn faults_are_used_in_order_and_counted_down() {
        let mut q = FaultQueue::default();
        q.push(Fault::server_error(Operation::SendMessage).times(2));
        q.push(Fault::rate_limit(FaultTarget::Any));
        assert_eq!(
            q.take(Operation::MediaUpload),
            Some(FaultAction::RateLimit { code: 4 })
        );
        assert_eq!(q.take(Operation::MediaUpload), None);
        assert_eq!(
            q.take(Operation::SendMessage),
            Some(FaultAction::ServerError)
        );
        assert_eq!(
            q.take(Operation::SendMessage),
            Some(FaultAction::ServerError)
        );
        assert_eq!(q.take(Operation::SendMessage), None);
        assert!(q.pending().is_empty());
    }
}
