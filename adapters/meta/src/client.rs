//! The `MetaClient` port over reqwest.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use filegate_application::media_ports::{
    ByteStream, CreateTemplate, MediaUpload, MetaClient, MetaError, MetaFault, SendMessage,
};
use filegate_domain::PhoneNumberId;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use reqwest::multipart::{Form, Part};
use reqwest::{Body, Method, RequestBuilder, StatusCode, Url};
use secrecy::ExposeSecret;
use serde_json::Value;
use tracing::Instrument;

use crate::errors;
use crate::payloads::{message_payload, template_payload};
use crate::progress::{Progress, Watched};
use crate::settings::MetaSettings;

/// Why the settings cannot make a client. Messages name settings, never the token.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("no Meta access token: set FILEGATE_META__ACCESS_TOKEN")]
    MissingAccessToken,
    #[error("the Meta access token holds characters an HTTP header cannot carry")]
    InvalidAccessToken,
    #[error("the Graph base URL `{0}` is not an http(s) URL")]
    InvalidBaseUrl(String),
    #[error("the Graph API version `{0}` is not a single path segment such as v21.0")]
    InvalidApiVersion(String),
    #[error("the Meta HTTP client could not be built")]
    Client(#[source] reqwest::Error),
}

/// Meta's Graph API over HTTPS. Cheap to clone: clones share one connection pool.
#[derive(Clone)]
pub struct MetaHttpClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    /// `{base_url}/{api_version}`, without a trailing slash.
    root: String,
    app_id: Option<String>,
    /// `Bearer {token}`, marked sensitive so that no Debug output shows it.
    bearer: HeaderValue,
    /// `OAuth {token}`, the scheme the Resumable Upload API documents.
    oauth: HeaderValue,
    request_timeout: Duration,
    stall_timeout: Duration,
}

impl fmt::Debug for MetaHttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetaHttpClient")
            .field("root", &self.inner.root)
            .field("app_id", &self.inner.app_id)
            .field("access_token", &"[REDACTED]")
            .finish_non_exhaustive()
    }
}

/// Which `Authorization` scheme a call uses.
#[derive(Clone, Copy)]
enum Auth {
    Bearer,
    OAuth,
}

impl MetaHttpClient {
    pub fn new(settings: &MetaSettings) -> Result<Self, BuildError> {
        let token = settings
            .access_token
            .as_ref()
            .map(|t| t.expose_secret().trim().to_owned())
            .filter(|t| !t.is_empty())
            .ok_or(BuildError::MissingAccessToken)?;
        let header = |scheme: &str| {
            let mut value = HeaderValue::from_str(&format!("{scheme} {token}"))
                .map_err(|_| BuildError::InvalidAccessToken)?;
            value.set_sensitive(true);
            Ok::<_, BuildError>(value)
        };
        let base = settings.base_url.trim_end_matches('/');
        let parsed = Url::parse(base).map_err(|_| BuildError::InvalidBaseUrl(base.to_owned()))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.query().is_some() {
            return Err(BuildError::InvalidBaseUrl(base.to_owned()));
        }
        let version = settings.api_version.trim();
        if version.is_empty() || !is_path_safe(version) {
            return Err(BuildError::InvalidApiVersion(version.to_owned()));
        }
        // No client-wide timeout: JSON calls set one per request, uploads are watched for
        // stalls instead (see `progress`).
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(settings.connect_timeout_secs))
            .user_agent(concat!("filegate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(BuildError::Client)?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                root: format!("{base}/{version}"),
                app_id: settings.app_id.clone().filter(|a| !a.trim().is_empty()),
                bearer: header("Bearer")?,
                oauth: header("OAuth")?,
                request_timeout: Duration::from_secs(settings.request_timeout_secs),
                stall_timeout: Duration::from_secs(settings.upload_stall_timeout_secs),
            }),
        })
    }

    /// `{root}/{path}`; `path` is trusted to be checked already.
    fn url(&self, path: &str) -> Result<Url, MetaError> {
        let url = format!("{}/{path}", self.inner.root);
        Url::parse(&url).map_err(|e| errors::refused(format!("`{url}` is not a URL: {e}")))
    }

    fn request(&self, method: Method, url: Url, auth: Auth) -> RequestBuilder {
        let value = match auth {
            Auth::Bearer => &self.inner.bearer,
            Auth::OAuth => &self.inner.oauth,
        };
        self.inner
            .http
            .request(method, url)
            .header(AUTHORIZATION, value.clone())
    }

    /// A call with a small body (or none) and a JSON answer, under the request timeout.
    async fn call(&self, request: RequestBuilder, action: &str) -> Result<Value, MetaError> {
        let sent = async {
            let response = request.timeout(self.inner.request_timeout).send().await?;
            let status = response.status();
            let body = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, body))
        };
        match sent.await {
            Ok((status, body)) => answer(action, status, &body),
            Err(e) => Err(errors::from_transport(action, &e)),
        }
    }

    /// A call whose body streams from the blob, failing only when it stops moving.
    async fn call_streaming(
        &self,
        request: RequestBuilder,
        progress: &Progress,
        action: &str,
    ) -> Result<Value, MetaError> {
        let sent = async {
            let response = request.send().await?;
            let status = response.status();
            let body = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, body))
        };
        let outcome = tokio::select! {
            outcome = sent => Some(outcome),
            () = progress.stalled(self.inner.stall_timeout, self.inner.request_timeout) => None,
        };
        match outcome {
            Some(Ok((status, body))) => answer(action, status, &body),
            Some(Err(e)) => Err(match progress.source_error() {
                Some(source) => MetaError::Transient(MetaFault {
                    message: format!(
                        "{action}: reading the file failed after {} bytes: {source}",
                        progress.sent()
                    ),
                    ..Default::default()
                }),
                None => {
                    let mut e = errors::from_transport(action, &e);
                    if let MetaError::Transient(f) = &mut e {
                        f.message.push_str(&format!(
                            " ({} bytes of the body were handed to the connection)",
                            progress.sent()
                        ));
                    }
                    e
                }
            }),
            None => {
                let message = if progress.finished() {
                    format!(
                        "{action}: no answer {}s after the last of {} bytes",
                        self.inner.request_timeout.as_secs(),
                        progress.sent()
                    )
                } else {
                    format!(
                        "{action}: the upload stalled for {}s after {} bytes",
                        self.inner.stall_timeout.as_secs(),
                        progress.sent()
                    )
                };
                Err(MetaError::Transient(MetaFault {
                    message,
                    ..Default::default()
                }))
            }
        }
    }
}

/// The JSON of a 2xx answer, or Meta's error.
fn answer(action: &str, status: StatusCode, body: &[u8]) -> Result<Value, MetaError> {
    if !status.is_success() {
        return Err(errors::from_answer(status.as_u16(), body));
    }
    serde_json::from_slice(body)
        .map_err(|_| errors::unexpected_answer(action, status.as_u16(), body))
}

/// A string field of a 2xx answer.
fn field(action: &str, value: &Value, pointer: &str) -> Result<String, MetaError> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| errors::unexpected_answer(action, 200, value.to_string().as_bytes()))
}

/// No character that would leave the path segment it is put in.
fn is_path_safe(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && s != "."
        && s != ".."
}

/// A Graph object id (phone number, WABA, app): digits in practice, one path segment always.
fn check_id(what: &str, id: &str) -> Result<(), MetaError> {
    if !id.is_empty() && is_path_safe(id) {
        Ok(())
    } else {
        Err(errors::refused(format!("`{id}` is not a valid {what}")))
    }
}

/// An upload session id as Meta gives it, `upload:{base64}?sig={signature}`. It goes into the
/// URL verbatim (its `?sig=` becomes the query, as Meta's docs do it); it must not carry
/// anything that would change the URL's shape.
fn check_session(session: &str) -> Result<(), MetaError> {
    let ok = session.starts_with("upload:")
        && session.len() <= 4096
        && !session
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '#' | '\\'))
        && !session
            .split(['/', '?'])
            .any(|seg| seg == "." || seg == "..");
    if ok {
        Ok(())
    } else {
        Err(errors::refused(format!(
            "`{session}` is not an upload session id"
        )))
    }
}

impl MetaClient for MetaHttpClient {
    #[tracing::instrument(name = "meta.upload_message_media", skip_all, fields(otel.kind = "client"))]
    async fn upload_message_media(
        &self,
        phone_number_id: &PhoneNumberId,
        media: &MediaUpload,
        body: ByteStream,
    ) -> Result<String, MetaError> {
        let action = "uploading message media";
        let phone_number_id = phone_number_id.as_str();
        let span = tracing::debug_span!("meta.upload_media", phone_number_id, file_name = %media.file_name, content_type = %media.content_type, size = media.size);
        async {
            check_id("phone number id", phone_number_id)?;
            let url = self.url(&format!("{phone_number_id}/media"))?;
            let progress = Progress::new(Some(media.size));
            let stream = Watched::new(body, progress.clone());
            let part = Part::stream_with_length(Body::wrap_stream(stream), media.size)
                .file_name(media.file_name.clone())
                .mime_str(&media.content_type)
                .map_err(|_| {
                    errors::refused(format!("`{}` is not a MIME type", media.content_type))
                })?;
            let form = Form::new()
                .text("messaging_product", "whatsapp")
                .text("type", media.content_type.clone())
                .part("file", part);
            let request = self
                .request(Method::POST, url, Auth::Bearer)
                .multipart(form);
            let answer = self.call_streaming(request, &progress, action).await;
            let id = answer.and_then(|v| field(action, &v, "/id"));
            log(action, &id);
            id
        }
        .instrument(span)
        .await
    }

    #[tracing::instrument(name = "meta.send_message", skip_all, fields(otel.kind = "client"))]
    async fn send_message(&self, request: &SendMessage) -> Result<String, MetaError> {
        let action = "sending a message";
        let phone_number_id = request.message.phone_number_id().as_str();
        let span = tracing::debug_span!("meta.send_message", phone_number_id);
        async {
            check_id("phone number id", phone_number_id)?;
            let url = self.url(&format!("{phone_number_id}/messages"))?;
            let request = self
                .request(Method::POST, url, Auth::Bearer)
                .json(&message_payload(request));
            let id = self
                .call(request, action)
                .await
                .and_then(|v| field(action, &v, "/messages/0/id"));
            log(action, &id);
            id
        }
        .instrument(span)
        .await
    }

    #[tracing::instrument(name = "meta.start_resumable_upload", skip_all, fields(otel.kind = "client"))]
    async fn start_resumable_upload(&self, media: &MediaUpload) -> Result<String, MetaError> {
        let action = "opening a resumable upload";
        let span = tracing::debug_span!("meta.start_upload", file_name = %media.file_name, content_type = %media.content_type, size = media.size);
        async {
            let Some(app_id) = self.inner.app_id.as_deref() else {
                return Err(errors::refused(
                    "no Meta app id: set meta.app_id to upload template media".to_owned(),
                ));
            };
            check_id("app id", app_id)?;
            let mut url = self.url(&format!("{app_id}/uploads"))?;
            url.query_pairs_mut()
                .append_pair("file_name", &media.file_name)
                .append_pair("file_length", &media.size.to_string())
                .append_pair("file_type", &media.content_type);
            // An explicit empty body, so that the POST carries `Content-Length: 0`.
            let request = self.request(Method::POST, url, Auth::OAuth).body("");
            let id = self
                .call(request, action)
                .await
                .and_then(|v| field(action, &v, "/id"));
            log(action, &id);
            id
        }
        .instrument(span)
        .await
    }

    #[tracing::instrument(name = "meta.resumable_offset", skip_all, fields(otel.kind = "client"))]
    async fn resumable_offset(&self, session: &str) -> Result<u64, MetaError> {
        let action = "reading an upload's offset";
        let span = tracing::debug_span!("meta.upload_offset", session);
        async {
            check_session(session)?;
            let url = self.url(session)?;
            let request = self.request(Method::GET, url, Auth::OAuth);
            let value = self.call(request, action).await?;
            // A number, though some Graph fields come as numeric strings.
            let offset = match value.get("file_offset") {
                Some(Value::Number(n)) => n.as_u64(),
                Some(Value::String(s)) => s.parse().ok(),
                _ => None,
            };
            let offset = offset.ok_or_else(|| {
                errors::unexpected_answer(action, 200, value.to_string().as_bytes())
            });
            log(action, &offset);
            offset
        }
        .instrument(span)
        .await
    }

    #[tracing::instrument(name = "meta.upload_resumable", skip_all, fields(otel.kind = "client"))]
    async fn upload_resumable(
        &self,
        session: &str,
        offset: u64,
        length: u64,
        body: ByteStream,
    ) -> Result<String, MetaError> {
        let action = "uploading template media";
        let span = tracing::debug_span!("meta.upload_resumable", session, offset);
        async {
            check_session(session)?;
            let url = self.url(session)?;
            let progress = Progress::new(Some(length));
            let stream = Watched::new(body, progress.clone());
            // A known length, as Meta's examples send it (no chunked transfer encoding).
            let request = self
                .request(Method::POST, url, Auth::OAuth)
                .header("file_offset", offset)
                .header(CONTENT_TYPE, "application/octet-stream")
                .header(reqwest::header::CONTENT_LENGTH, length)
                .body(Body::wrap_stream(stream));
            let value = self.call_streaming(request, &progress, action).await?;
            if let Some(h) = value.get("h").and_then(Value::as_str).filter(|h| !h.is_empty()) {
                tracing::debug!(bytes = progress.sent(), "{action}: done");
                return Ok(h.to_owned());
            }
            // Meta kept the bytes but has not all of them: resume from its offset.
            let err = MetaError::Transient(MetaFault {
                status: Some(200),
                message: format!(
                    "{action}: Meta answered without a handle after {} bytes from offset {offset}: {value}",
                    progress.sent()
                ),
                ..Default::default()
            });
            tracing::debug!(error = %err, "{action} failed");
            Err(err)
        }
        .instrument(span)
        .await
    }

    #[tracing::instrument(name = "meta.create_template", skip_all, fields(otel.kind = "client"))]
    async fn create_template(&self, request: &CreateTemplate) -> Result<String, MetaError> {
        let action = "creating a template";
        let waba_id = request.template.waba_id().as_str();
        let span = tracing::debug_span!("meta.create_template", waba_id);
        async {
            check_id("WhatsApp Business Account id", waba_id)?;
            let url = self.url(&format!("{waba_id}/message_templates"))?;
            let request = self
                .request(Method::POST, url, Auth::Bearer)
                .json(&template_payload(request));
            let id = self
                .call(request, action)
                .await
                .and_then(|v| field(action, &v, "/id"));
            log(action, &id);
            id
        }
        .instrument(span)
        .await
    }
}

/// One debug line per call. The worker decides what a failure means and logs it at its level.
fn log<T: fmt::Debug>(action: &str, outcome: &Result<T, MetaError>) {
    match outcome {
        Ok(value) => tracing::debug!(?value, "{action}: done"),
        Err(error) => tracing::debug!(%error, "{action} failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_go_into_the_url_as_meta_gives_them() {
        assert!(check_session("upload:MTphdHRhY2htZW50Ojlk2mJiZxUwLWV6MDUtNDIwMy05yTA3LWQ4ZDPmZGFkNTM0NT8=?sig=ARZqkGCA_uQMxC8nHKI").is_ok());
        for bad in [
            "",
            "abc",
            "upload:a b",
            "upload:a#b",
            "upload:x/./y",
            "upload:x/../y",
        ] {
            assert!(check_session(bad).is_err(), "{bad}");
        }
        let settings = MetaSettings {
            access_token: Some("t".to_owned().into()),
            ..MetaSettings::default()
        };
        let client = MetaHttpClient::new(&settings).unwrap();
        let url = client.url("upload:MTph=?sig=ARZ").unwrap();
        assert_eq!(url.path(), "/v21.0/upload:MTph=");
        assert_eq!(url.query(), Some("sig=ARZ"));
    }

    #[test]
    fn ids_are_single_path_segments() {
        assert!(check_id("x", "106540352242922").is_ok());
        for bad in ["", "..", "1/2", "1?a=b", "1 2", "1%2F2"] {
            assert!(check_id("x", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn settings_without_a_usable_token_or_url_are_refused() {
        let mut s = MetaSettings::default();
        assert!(matches!(
            MetaHttpClient::new(&s),
            Err(BuildError::MissingAccessToken)
        ));
        s.access_token = Some("bad\ntoken".to_owned().into());
        assert!(matches!(
            MetaHttpClient::new(&s),
            Err(BuildError::InvalidAccessToken)
        ));
        s.access_token = Some("EAAG-secret".to_owned().into());
        s.base_url = "ftp://graph".to_owned();
        assert!(matches!(
            MetaHttpClient::new(&s),
            Err(BuildError::InvalidBaseUrl(_))
        ));
        s.base_url = "https://graph.facebook.com/".to_owned();
        s.api_version = "v21.0/x".to_owned();
        assert!(matches!(
            MetaHttpClient::new(&s),
            Err(BuildError::InvalidApiVersion(_))
        ));
        s.api_version = "v21.0".to_owned();
        let client = MetaHttpClient::new(&s).unwrap();
        assert!(!format!("{client:?}").contains("EAAG-secret"));
    }
}
