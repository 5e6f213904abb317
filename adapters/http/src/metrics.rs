//! Answers counted by route and status, and the `/metrics` page. The route is a name
//! (`chunk`, `status`, `content`, ...), never the path, which holds file ids.

use std::sync::Arc;

use futures::future::BoxFuture;
use poem::http::{Method, StatusCode, header};
use poem::{Endpoint, IntoResponse, Request, Response};

use filegate_application::ports::Metrics;

/// Renders the `/metrics` page: the gauges are read, then the text is made.
pub trait MetricsPage: Send + Sync + 'static {
    fn render(&self) -> BoxFuture<'_, String>;
    /// The page's content type.
    fn content_type(&self) -> &'static str;
}

/// The route name of a request, for labels.
pub(crate) fn route_of(method: &Method, path: &str) -> &'static str {
    let path = path.trim_end_matches('/').to_ascii_lowercase();
    match path.as_str() {
        "/api/v1/files/chunk" => "chunk",
        "/metrics" => "metrics",
        "/openapi.json" => "openapi",
        "/sdk/filegate.js" | "/try" => "browser",
        "/health/live" | "/health/ready" => "health",
        p if p == "/docs" || p.starts_with("/docs/") => "docs",
        p if p.starts_with("/api/v1/files/") && p.ends_with("/content") => "content",
        p if p.starts_with("/api/v1/files/") && *method == Method::DELETE => "delete",
        p if p.starts_with("/api/v1/files/") => "status",
        _ => "other",
    }
}

/// A request's route name, as the outer tracing layer worked it out.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RouteName(pub(crate) &'static str);

/// Counts every answer of the inner endpoint.
pub(crate) struct CountAnswers<E> {
    pub(crate) inner: E,
    pub(crate) metrics: Arc<dyn Metrics>,
}

impl<E: Endpoint> Endpoint for CountAnswers<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let route = match req.extensions().get::<RouteName>() {
            Some(RouteName(route)) => route,
            None => route_of(req.method(), req.uri().path()),
        };
        let result = self.inner.call(req).await;
        let status = match &result {
            Ok(_) => None,
            Err(e) => Some(e.status()),
        };
        let resp = result.map(IntoResponse::into_response);
        let status = match &resp {
            Ok(r) => r.status(),
            Err(_) => status.unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        };
        self.metrics.http_answer(route, status.as_u16());
        resp
    }
}

/// `GET /metrics`.
pub(crate) async fn page(page: Arc<dyn MetricsPage>) -> Response {
    let text = page.render().await;
    Response::builder()
        .header(header::CONTENT_TYPE, page.content_type())
        .header(header::CACHE_CONTROL, "no-store")
        .body(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_named_without_ids() {
        let id = "/api/v1/Files/0195f7a2-1b2c-7d3e-8f90-123456789abc";
        assert_eq!(route_of(&Method::POST, "/api/v1/Files/chunk"), "chunk");
        assert_eq!(route_of(&Method::POST, "/API/V1/files/CHUNK/"), "chunk");
        assert_eq!(route_of(&Method::GET, id), "status");
        assert_eq!(route_of(&Method::DELETE, id), "delete");
        assert_eq!(route_of(&Method::GET, &format!("{id}/content")), "content");
        assert_eq!(route_of(&Method::GET, "/health/ready"), "health");
        assert_eq!(route_of(&Method::GET, "/docs/index.css"), "docs");
        assert_eq!(route_of(&Method::GET, "/wp-admin"), "other");
    }
}
