//! The HTTP adapter: the routes of contract section 3 on poem + poem-openapi, the envelope on
//! every answer (poem's own rejections included), the `X-API-Key` check, and the single place
//! where application errors become HTTP statuses. It knows the application only through
//! [`FilesService`], and no storage crate at all.

mod api;
mod chunk;
mod cors;
mod drain;
mod envelope;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod hosts;
mod idle;
mod listener;
mod metrics;
mod multipart;
mod paths;
mod rate;
mod rejections;
mod sdk;
mod service;
mod traces;

use std::sync::Arc;
use std::time::Duration;

use filegate_application::ports::ByteBudget;

use poem::middleware::{NormalizePath, TrailingSlash};
use poem::{Endpoint, EndpointExt, IntoEndpoint, Route};
use poem_openapi::OpenApiService;

pub use chunk::ChunkLimits;
pub use cors::CorsPolicy;
pub use drain::DrainLimits;
pub use envelope::ApiError;
pub use hosts::HostPolicy;
pub use listener::{BoundedAcceptor, BoundedIo, ConnectionBounds, HeadTimedOut, OpenConnections};
pub use metrics::MetricsPage;
pub use rate::RateLimit;
pub use service::FilesService;

/// Settings of the HTTP layer that the routes need.
#[derive(Clone)]
pub struct HttpOptions {
    /// The largest chunk accepted, in bytes.
    pub max_chunk_bytes: usize,
    /// Request bytes held in memory at once across all requests (a File sent before its
    /// fields, a block a store takes as one payload); beyond it a chunk gets 503. Made by the
    /// caller, who may read how much it holds.
    pub budget: ByteBudget,
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
    /// The browser origins that may call the API.
    pub cors: CorsPolicy,
    /// Where answers are counted, by route and status.
    pub metrics: Arc<dyn filegate_application::ports::Metrics>,
    /// Serves `GET /metrics` on this application's port (no key, no rate limit, no host
    /// check); `None` when metrics have a listener of their own, or none.
    pub metrics_page: Option<Arc<dyn MetricsPage>>,
}

impl std::fmt::Debug for HttpOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpOptions")
            .field("max_chunk_bytes", &self.max_chunk_bytes)
            .field("public_url", &self.public_url)
            .field("body_idle_timeout", &self.body_idle_timeout)
            .field("rate", &self.rate)
            .field("drain", &self.drain)
            .field("cors", &self.cors)
            .field("metrics_page", &self.metrics_page.is_some())
            .finish_non_exhaustive()
    }
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
    let mut routes = Route::new()
        .nest("/", api)
        .at("/openapi.json", spec)
        .nest("/docs", docs)
        .at("/sdk/filegate.js", poem::get(sdk::Asset::script()))
        .at("/try", poem::get(sdk::Asset::try_page()));
    if let Some(page) = options.metrics_page.clone() {
        routes = routes.at("/metrics", metrics_endpoint(page));
    }
    let routes = routes
        .data(service)
        .data(options.hosts.clone())
        .data(Arc::new(rate::RateLimiter::new(options.rate)))
        .data(ChunkLimits {
            max_chunk_bytes: options.max_chunk_bytes,
        })
        .data(options.budget.clone())
        .data(idle::BodyIdleTimeout(options.body_idle_timeout))
        .with(NormalizePath::new(TrailingSlash::Trim));
    let app = drain::LingeringClose {
        inner: metrics::CountAnswers {
            inner: cors::Cors {
                inner: paths::CaseInsensitivePaths(envelope::EnvelopeErrors(
                    routes.into_endpoint(),
                )),
                policy: options.cors.clone(),
            },
            metrics: options.metrics.clone(),
        },
        limits: options.drain,
    };
    traces::Traced { inner: app }
}

/// `GET /metrics` alone, for a listener of its own (`telemetry.metrics_addr`).
pub fn metrics_app(page: Arc<dyn MetricsPage>) -> impl Endpoint + 'static {
    Route::new().at("/metrics", metrics_endpoint(page))
}

fn metrics_endpoint(page: Arc<dyn MetricsPage>) -> impl Endpoint + 'static {
    poem::get(poem::endpoint::make(move |_req| {
        let page = page.clone();
        async move { metrics::page(page).await }
    }))
}

/// The OpenAPI document, as served at `/openapi.json`.
pub fn spec_json(options: &HttpOptions) -> String {
    openapi(options).spec()
}
