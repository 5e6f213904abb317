//! What the service counts for its operator. The use cases and the adapters report events
//! here; an implementation (Prometheus, in `filegate-adapter-metrics`) keeps the numbers.
//! Every method has a do-nothing default, so that a test or a build without metrics passes
//! [`NoMetrics`]. Labels are modes, routes, statuses, outcomes and Meta's error codes: never a
//! firm, a user or a file (an id per label value would grow without bound and leak tenancy).

use filegate_domain::Mode;

/// What became of one delivery of a media task, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskCount {
    /// Sent to Meta (or found sent already): acknowledged.
    Sent,
    /// Failed for now; tried again later (or dead-lettered by the queue after its last try).
    Retried,
    /// Can never succeed: dead-lettered at once.
    Dead,
}

/// The events the service reports. Cheap, synchronous and infallible.
pub trait Metrics: Send + Sync + std::fmt::Debug + 'static {
    /// A new upload of several chunks was opened (its first block recorded).
    fn upload_opened(&self, _mode: Mode) {}
    /// A file was committed.
    fn upload_completed(&self, _mode: Mode) {}
    /// An idle upload expired.
    fn upload_expired(&self, _mode: Mode) {}
    /// A chunk was staged and recorded: its size and how long its request took in the use case.
    fn chunk_received(&self, _mode: Mode, _bytes: u64, _seconds: f64) {}
    /// The HTTP layer answered a request of `route` (a route name, never a path with ids).
    fn http_answer(&self, _route: &'static str, _status: u16) {}
    /// A media task's delivery ended.
    fn task_finished(&self, _outcome: TaskCount) {}
    /// A call to Meta's Graph API ended: its name, how long it took, and Meta's error code
    /// (or the HTTP status, or 0 when the call never got an answer) when it failed.
    fn meta_call(&self, _call: &'static str, _seconds: f64, _error_code: Option<i64>) {}
}

/// Counts nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoMetrics;

impl Metrics for NoMetrics {}
