//! The HTTP adapter: the routes of contract section 3 on poem + poem-openapi, the envelope on
//! every answer (poem's own rejections included), the `X-API-Key` check, and the single place
//! where application errors become HTTP statuses. It knows the application only through
//! [`FilesService`], and no storage crate at all.

mod api;
mod chunk;
mod drain;
mod envelope;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod hosts;
mod idle;
mod listener;
mod paths;
mod rate;
mod rejections;
mod service;

use std::sync::Arc;
use std::time::Duration;

use filegate_application::ports::ByteBudget;

use poem::middleware::{NormalizePath, Tracing, TrailingSlash};
use poem::{Endpoint, EndpointExt, IntoEndpoint, Route};
use poem_openapi::OpenApiService;

pub use chunk::ChunkLimits;
pub use drain::DrainLimits;
pub use envelope::ApiError;
pub use hosts::HostPolicy;
pub use listener::{BoundedAcceptor, BoundedIo, ConnectionBounds, HeadTimedOut};
pub use rate::RateLimit;
pub use service::FilesService;

/// Settings of the HTTP layer that the routes need.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// The largest chunk accepted, in bytes.
    pub max_chunk_bytes: usize,
    /// Request bytes held in memory at once across all requests (a File sent before its
    /// fields, a block a store takes as one payload); beyond it a chunk gets 503.
    pub max_inflight_bytes: u64,
    /// The service's public URL: written into the spec, and the base of content URLs when the
    /// blob store has no client-facing URL (else the request's `Host` is used).
    pub public_url: Option<String>,
    /// How long a request body may go without a byte before the request gets 408; `None`
    /// waits forever.
    pub body_idle_timeout: Option<Duration>,
    /// Which request headers may name the service's address in the URLs it builds.
    pub hosts: HostPolicy,
    /// Requests per API key (`None`: no limit).
    pub rate: Option<RateLimit>,
    /// How much of a body left unread by an early answer is drained before the answer.
    pub drain: DrainLimits,
}

fn openapi(options: &HttpOptions) -> OpenApiService<api::FilesApi, ()> {
    let api = OpenApiService::new(api::FilesApi, "filegate", env!("CARGO_PKG_VERSION"))
        .description(
            "Chunked file uploads for a WhatsApp CRM: stage chunks, commit once, read the status.",
        );
    match &options.public_url {
        Some(url) => api.server(url.clone()),
        None => api,
    }
}

/// The whole HTTP application: the API, the spec at `/openapi.json`, the UI at `/docs`.
pub fn app(service: Arc<dyn FilesService>, options: HttpOptions) -> impl Endpoint + 'static {
    let api = openapi(&options);
    let spec = api.spec_endpoint();
    let docs = api.swagger_ui();
    let routes = Route::new()
        .nest("/", api)
        .at("/openapi.json", spec)
        .nest("/docs", docs)
        .data(service)
        .data(options.hosts.clone())
        .data(Arc::new(rate::RateLimiter::new(options.rate)))
        .data(ChunkLimits {
            max_chunk_bytes: options.max_chunk_bytes,
        })
        .data(ByteBudget::new(options.max_inflight_bytes))
        .data(idle::BodyIdleTimeout(options.body_idle_timeout))
        .with(NormalizePath::new(TrailingSlash::Trim))
        .with(Tracing);
    drain::LingeringClose {
        inner: paths::CaseInsensitivePaths(envelope::EnvelopeErrors(routes.into_endpoint())),
        limits: options.drain,
    }
}

/// The OpenAPI document, as served at `/openapi.json`.
pub fn spec_json(options: &HttpOptions) -> String {
    openapi(options).spec()
}
