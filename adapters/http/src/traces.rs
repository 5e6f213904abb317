//! One span per request, the root of the request's trace: it continues the caller's W3C
//! `traceparent` (so that a CRM's trace runs on into ours), is named by route rather than by path
//! (paths hold file ids), and ends with a log line of the status and the duration.

use std::time::Instant;

use filegate_adapter_otel::{TRACEPARENT, TRACESTATE, continue_trace};
use poem::{Endpoint, IntoResponse, Request, Response};
use tracing::{Instrument, field};

use crate::metrics::{RouteName, route_of};

/// Outermost: its span covers everything the server does for the request, the early answers of
/// limits and CORS included.
pub(crate) struct Traced<E> {
    pub(crate) inner: E,
}

impl<E: Endpoint> Endpoint for Traced<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let method = req.method().clone();
        let route = route_of(&method, req.uri().path());
        // Named once per request; the answer counter inside reads it.
        req.extensions_mut().insert(RouteName(route));
        let span = tracing::info_span!(
            "request",
            otel.name = format!("{method} {route}"),
            otel.kind = "server",
            otel.status_code = field::Empty,
            http.request.method = %method,
            http.route = route,
            url.path = req.uri().path(),
            client.address = %req.remote_addr(),
            http.response.status_code = field::Empty,
        );
        let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
        continue_trace(&span, header(TRACEPARENT), header(TRACESTATE));
        let started = Instant::now();
        let result = self.inner.call(req).instrument(span.clone()).await;
        let resp = match result {
            Ok(resp) => resp.into_response(),
            Err(e) => e.into_response(),
        };
        let status = resp.status().as_u16();
        span.record("http.response.status_code", status);
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        let _entered = span.enter();
        if status >= 500 {
            span.record("otel.status_code", "ERROR");
        }
        match status {
            // 503 is the server's own back-pressure (budget, unavailable store), with a
            // Retry-After: worth a warning, not an error line per request under load.
            503 => tracing::warn!(status, elapsed_ms, "answered"),
            500.. => tracing::error!(status, elapsed_ms, "answered"),
            _ => tracing::info!(status, elapsed_ms, "answered"),
        }
        Ok(resp)
    }
}
