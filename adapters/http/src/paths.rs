//! Case-insensitive routing, as ASP.NET does it: `/API/V1/files/CHUNK` reaches the same route
//! as `/api/v1/Files/chunk`. The known literal segments are rewritten to their canonical spelling
//! before routing; parameters (file ids) are left as they are.

use poem::http::Uri;
use poem::http::uri::PathAndQuery;
use poem::{Endpoint, Request, Result};

const CANONICAL: &[&str] = &[
    "api", "v1", "Files", "chunk", "content", "health", "live", "ready",
];

/// Wraps an endpoint so that its routes match regardless of the case of literal segments.
#[derive(Debug)]
pub struct CaseInsensitivePaths<E>(pub E);

impl<E: Endpoint> Endpoint for CaseInsensitivePaths<E> {
    type Output = E::Output;

    async fn call(&self, mut req: Request) -> Result<Self::Output> {
        if let Some(uri) = canonical_uri(req.uri()) {
            *req.uri_mut() = uri;
        }
        self.0.call(req).await
    }
}

fn canonical_uri(uri: &Uri) -> Option<Uri> {
    let path = uri.path();
    let canonical: Vec<&str> = path
        .split('/')
        .map(|seg| {
            CANONICAL
                .iter()
                .find(|c| c.eq_ignore_ascii_case(seg))
                .copied()
                .unwrap_or(seg)
        })
        .collect();
    let canonical = canonical.join("/");
    if canonical == path {
        return None;
    }
    let path_and_query = match uri.query() {
        Some(q) => format!("{canonical}?{q}"),
        None => canonical,
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(PathAndQuery::try_from(path_and_query).ok()?);
    Uri::from_parts(parts).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_segments_are_canonicalized_and_ids_kept() {
        let uri: Uri = "/API/V1/files/AbC-1/CONTENT?x=Y"
            .parse()
            .unwrap_or_default();
        let fixed = canonical_uri(&uri).map(|u| u.to_string());
        assert_eq!(fixed.as_deref(), Some("/api/v1/Files/AbC-1/content?x=Y"));
    }

    #[test]
    fn a_canonical_path_is_left_alone() {
        let uri: Uri = "/api/v1/Files/chunk".parse().unwrap_or_default();
        assert!(canonical_uri(&uri).is_none());
    }
}
