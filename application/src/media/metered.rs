//! A Meta client that reports each call's duration and failure to [`Metrics`]: a decorator, so
//! that the use case and the HTTP client stay as they are.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use filegate_domain::PhoneNumberId;

use crate::media_ports::{
    ByteStream, CreateTemplate, MediaUpload, MetaClient, MetaError, SendMessage,
};
use crate::ports::Metrics;

/// Wraps a [`MetaClient`]; every call is timed and its error code counted.
#[derive(Debug, Clone)]
pub struct MeteredMeta<X> {
    inner: X,
    metrics: Arc<dyn Metrics>,
}

impl<X> MeteredMeta<X> {
    pub fn new(inner: X, metrics: Arc<dyn Metrics>) -> Self {
        Self { inner, metrics }
    }

    async fn timed<T>(
        &self,
        call: &'static str,
        work: impl Future<Output = Result<T, MetaError>>,
    ) -> Result<T, MetaError> {
        let started = Instant::now();
        let result = work.await;
        let code = result.as_ref().err().map(error_code);
        self.metrics
            .meta_call(call, started.elapsed().as_secs_f64(), code);
        result
    }
}

/// Meta's error code, else the HTTP status, else 0 (no answer at all).
fn error_code(e: &MetaError) -> i64 {
    let (MetaError::RateLimited(f) | MetaError::Transient(f) | MetaError::Permanent(f)) = e;
    f.code.or(f.status.map(i64::from)).unwrap_or_default()
}

impl<X: MetaClient> MetaClient for MeteredMeta<X> {
    async fn upload_message_media(
        &self,
        phone_number_id: &PhoneNumberId,
        media: &MediaUpload,
        body: ByteStream,
    ) -> Result<String, MetaError> {
        self.timed(
            "upload_message_media",
            self.inner
                .upload_message_media(phone_number_id, media, body),
        )
        .await
    }

    async fn send_message(&self, request: &SendMessage) -> Result<String, MetaError> {
        self.timed("send_message", self.inner.send_message(request))
            .await
    }

    async fn start_resumable_upload(&self, media: &MediaUpload) -> Result<String, MetaError> {
        self.timed(
            "start_resumable_upload",
            self.inner.start_resumable_upload(media),
        )
        .await
    }

    async fn resumable_offset(&self, session: &str) -> Result<u64, MetaError> {
        self.timed("resumable_offset", self.inner.resumable_offset(session))
            .await
    }

    async fn upload_resumable(
        &self,
        session: &str,
        offset: u64,
        length: u64,
        body: ByteStream,
    ) -> Result<String, MetaError> {
        self.timed(
            "upload_resumable",
            self.inner.upload_resumable(session, offset, length, body),
        )
        .await
    }

    async fn create_template(&self, request: &CreateTemplate) -> Result<String, MetaError> {
        self.timed("create_template", self.inner.create_template(request))
            .await
    }
}
