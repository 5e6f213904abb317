//! The ports of the media worker: Meta's Graph API (outbound), the bus that carries file events
//! (outbound), and the handler a queue adapter drives (inbound).
//!
//! Bytes travel as a stream from the blob store to Meta, never as a whole buffer, so that the
//! worker's memory does not grow with the file it forwards.

use std::future::Future;

use bytes::Bytes;
use filegate_domain::{HeaderFormat, MediaMessage, NewTemplate, PhoneNumberId};
use futures::future::BoxFuture;
use futures::stream::BoxStream;

use crate::media::{DeadReason, RetryReason};

/// A file's bytes on their way to Meta. Errors are the blob store's, as text: the Meta adapter
/// only needs to abort the request.
pub type ByteStream = BoxStream<'static, Result<Bytes, std::io::Error>>;

/// One of Meta's template components (BODY, FOOTER, BUTTONS, maybe the HEADER): a JSON object
/// the task passes through to Meta.
pub type TemplateComponent = serde_json::Map<String, serde_json::Value>;

/// What Meta is told about a file it receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaUpload {
    pub file_name: String,
    pub content_type: String,
    pub size: u64,
}

/// A WhatsApp message whose media Meta already holds, under the id its `/media` answered.
/// Typed rather than JSON so that the use case cannot ask for what the domain refused (a
/// caption on a sticker) and the Graph API's shape stays the Meta adapter's business.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendMessage {
    pub message: MediaMessage,
    pub media_id: String,
}

/// A message template to create, its HEADER showing the file Meta's Resumable Upload took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateTemplate {
    pub template: NewTemplate<TemplateComponent>,
    /// The HEADER's format when the task's components leave it out, decided from the file.
    pub header_format: HeaderFormat,
    /// The handle the Resumable Upload answered for the file.
    pub header_handle: String,
}

/// Meta's error, as its JSON says it: `{"error": {"message", "type", "code", "error_subcode",
/// "fbtrace_id"}}`, plus the HTTP status (none when the connection broke).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MetaFault {
    pub status: Option<u16>,
    pub message: String,
    pub kind: Option<String>,
    pub code: Option<i64>,
    pub subcode: Option<i64>,
    pub fbtrace_id: Option<String>,
}

impl std::fmt::Display for MetaFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.message)?;
        if let Some(status) = self.status {
            write!(f, " (HTTP {status}")?;
            if let Some(code) = self.code {
                write!(f, ", code {code}")?;
            }
            if let Some(sub) = self.subcode {
                write!(f, ", subcode {sub}")?;
            }
            if let Some(trace) = &self.fbtrace_id {
                write!(f, ", fbtrace_id {trace}")?;
            }
            write!(f, ")")?;
        }
        Ok(())
    }
}

/// A failed Graph API call, split by what the worker does next.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetaError {
    /// Throttled (HTTP 429, or codes 4, 17, 32, 613, 80007, 130429, 131048, 131056): retry later.
    #[error("Meta is rate limiting: {0}")]
    RateLimited(MetaFault),
    /// 5xx, a timeout or a broken connection: retry; a resumable upload first asks for its offset.
    #[error("Meta is unavailable: {0}")]
    Transient(MetaFault),
    /// Auth, permission or an invalid parameter: retrying cannot help.
    #[error("Meta refused the request: {0}")]
    Permanent(MetaFault),
}

impl MetaError {
    pub fn is_retryable(&self) -> bool {
        !matches!(self, MetaError::Permanent(_))
    }
}

/// Meta's Graph API, as the worker uses it (contract section 7).
pub trait MetaClient: Clone + Send + Sync + 'static {
    /// `POST /{version}/{phone-number-id}/media`, multipart with `messaging_product=whatsapp`,
    /// the file part streamed; answers the media id.
    fn upload_message_media(
        &self,
        phone_number_id: &PhoneNumberId,
        media: &MediaUpload,
        body: ByteStream,
    ) -> impl Future<Output = Result<String, MetaError>> + Send;

    /// `POST /{version}/{phone-number-id}/messages`; answers the message id.
    fn send_message(
        &self,
        request: &SendMessage,
    ) -> impl Future<Output = Result<String, MetaError>> + Send;

    /// `POST /{version}/{app-id}/uploads?file_name&file_length&file_type`; answers the upload
    /// session id (`upload:...`).
    fn start_resumable_upload(
        &self,
        media: &MediaUpload,
    ) -> impl Future<Output = Result<String, MetaError>> + Send;

    /// `GET /{version}/{upload-session}`; answers the offset to resume from.
    fn resumable_offset(
        &self,
        session: &str,
    ) -> impl Future<Output = Result<u64, MetaError>> + Send;

    /// `POST /{version}/{upload-session}` with `file_offset`, the `length` bytes from that
    /// offset on streamed (with a `Content-Length`); answers the handle `h`.
    fn upload_resumable(
        &self,
        session: &str,
        offset: u64,
        length: u64,
        body: ByteStream,
    ) -> impl Future<Output = Result<String, MetaError>> + Send;

    /// `POST /{version}/{waba-id}/message_templates`; answers the template id.
    fn create_template(
        &self,
        request: &CreateTemplate,
    ) -> impl Future<Output = Result<String, MetaError>> + Send;
}

/// A failure to hand an event to the bus; the outbox keeps the event and tries again.
#[derive(Debug, thiserror::Error)]
#[error("the event bus is unavailable: {0}")]
pub struct PublishError(#[source] pub anyhow::Error);

/// An event as published: where it goes and what it says. `id` lets consumers drop duplicates
/// (the outbox delivers at least once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingEvent {
    pub id: String,
    pub routing_key: String,
    pub payload: Vec<u8>,
    /// The W3C `traceparent` of the work that made the event true, published as the AMQP
    /// header of that name so that consumers continue the trace. The use cases leave it
    /// `None`: the outbox records the span current when the event is written.
    pub trace_parent: Option<String>,
}

/// The bus that carries file events (RabbitMQ exchange `filegate.events`).
pub trait EventPublisher: Clone + Send + Sync + 'static {
    /// Publishes and waits for the broker's confirmation.
    fn publish(
        &self,
        event: &OutgoingEvent,
    ) -> impl Future<Output = Result<(), PublishError>> + Send;
}

/// What became of one delivery of a task, decided by the worker's use case; the queue adapter
/// turns it into ack, a delayed retry, or the dead-letter queue, and the reason into the text of
/// its headers and logs.
#[derive(Debug)]
pub enum TaskOutcome {
    /// Done (or already done before): acknowledge.
    Done,
    /// Failed for now: try again after a back-off, unless this was the last attempt.
    Retry(RetryReason),
    /// Can never succeed (malformed, invalid, refused by Meta): straight to dead letters.
    Dead(DeadReason),
}

/// The inbound port a queue adapter drives: one raw task body and its attempt number (1-based).
pub trait TaskHandler: Send + Sync + 'static {
    fn handle<'a>(&'a self, body: &'a [u8], attempt: u32) -> BoxFuture<'a, TaskOutcome>;
}
