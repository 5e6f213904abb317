//! The envelope every answer travels in (contract section 5), and the one place where
//! application errors become HTTP statuses.

use poem::http::{HeaderValue, StatusCode, header};
use poem::{IntoResponse, Response};
use poem_openapi::Object;
use poem_openapi::types::{Example, ToJSON};
use uuid::Uuid;

use filegate_application::ports::BodyError;
use filegate_application::{
    AuthError, ContentError, DeleteFileError, FileStatusError, UploadChunkError,
};

/// How long a client is told to wait before retrying a 503.
pub(crate) const RETRY_AFTER_SECS: u32 = 5;

/// The data of a chunk answer.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase")]
pub struct ChunkData {
    /// Correlates the chunks of one file; send it with every chunk after the first.
    pub file_id: Uuid,
    /// The file's URL once it is complete (a signed, expiring URL when the container is
    /// private); `null` until then.
    #[oai(skip_serializing_if_is_none = false, nullable)]
    pub url: Option<String>,
    /// Whether the file is committed.
    pub is_complete: bool,
    /// How many distinct blocks have been received.
    pub received_blocks: u32,
    /// The number of blocks of the whole file, as fixed by block 0.
    pub total_blocks: u32,
    /// When the upload expires (RFC 3339, UTC) unless another chunk arrives:
    /// `uploads.expire_after_secs` after this one. `null` once complete.
    #[oai(skip_serializing_if_is_none = false, nullable)]
    pub expires_at: Option<String>,
    /// The complete file's SHA-256 (64 lower-case hex digits) when it is known at once (its
    /// chunks arrived in order); otherwise `null`, and the status shows it once it is
    /// computed, soon after the commit.
    #[oai(skip_serializing_if_is_none = false, nullable)]
    pub sha256: Option<String>,
}

/// The data of a status answer: what a client needs to resume an upload.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase")]
pub struct FileStatusData {
    pub file_id: Uuid,
    /// The canonical mode name.
    pub mode: String,
    /// The stored (sanitized) file name.
    pub file_name: String,
    pub content_type: String,
    pub is_complete: bool,
    #[oai(skip_serializing_if_is_none = false, nullable)]
    pub url: Option<String>,
    pub total_blocks: u32,
    /// How many distinct blocks have been received.
    pub received_count: u32,
    /// Indices still to send as runs `[first, last]`, both inclusive, ascending; `[]` once
    /// every block arrived. Compact for any upload: resume from this.
    pub missing_ranges: Vec<[u32; 2]>,
    /// Indices already staged, ascending; only for an upload of at most 1000 blocks (a larger
    /// upload's list would be hundreds of KB: use `receivedCount` and `missingRanges`).
    #[oai(skip_serializing_if_is_none)]
    pub received_blocks: Option<Vec<u32>>,
    /// Indices still to send, ascending; only for an upload of at most 1000 blocks.
    #[oai(skip_serializing_if_is_none)]
    pub missing_blocks: Option<Vec<u32>>,
    /// Bytes staged so far, or the file's size once complete.
    pub size: u64,
    /// When the upload expires (RFC 3339, UTC) unless a chunk arrives; `null` once complete.
    #[oai(skip_serializing_if_is_none = false, nullable)]
    pub expires_at: Option<String>,
    /// The complete file's SHA-256 (64 lower-case hex digits); `null` while the upload is open
    /// and, for a file whose chunks did not arrive in order, for a short while after its
    /// commit, until it is computed.
    #[oai(skip_serializing_if_is_none = false, nullable)]
    pub sha256: Option<String>,
}

/// The data of a delete answer.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase")]
pub struct DeletedData {
    /// The deleted file; from now on it answers 404.
    pub file_id: Uuid,
}

/// The data of a readiness answer.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase")]
pub struct ReadinessData {
    /// `ok`, `unavailable` (unreachable, overloaded, or not migrated) or `failing`; the
    /// detail is in the service's log.
    pub database: String,
    /// `ok`, `container missing`, `unavailable` or `failing`; the detail is in the service's
    /// log.
    pub blob_store: String,
}

macro_rules! envelope {
    ($(#[$doc:meta])* $name:ident, $data:ty) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Object)]
        #[oai(rename_all = "camelCase", example)]
        pub struct $name {
            /// `true` on success.
            pub is_success: bool,
            #[oai(skip_serializing_if_is_none = false, nullable)]
            pub data: Option<$data>,
            /// A sentence for people.
            pub message: String,
        }

        impl $name {
            pub fn ok(data: $data, message: impl Into<String>) -> Self {
                Self { is_success: true, data: Some(data), message: message.into() }
            }
        }
    };
}

envelope!(
    /// The envelope of a chunk answer.
    ChunkEnvelope,
    ChunkData
);
envelope!(
    /// The envelope of a status answer.
    FileStatusEnvelope,
    FileStatusData
);
envelope!(
    /// The envelope of a delete answer.
    DeletedEnvelope,
    DeletedData
);
envelope!(
    /// The envelope of a readiness answer (`data` is set on 503 too).
    ReadinessEnvelope,
    ReadinessData
);

const EXAMPLE_ID: Uuid = Uuid::from_u128(0x01939b2e_7c1a_7d2f_9a4b_5c6d7e8f9a0b);

impl Example for ChunkEnvelope {
    fn example() -> Self {
        Self::ok(
            ChunkData {
                file_id: EXAMPLE_ID,
                url: Some(format!(
                    "https://account.blob.core.windows.net/uploads/messages/0f8fad5b-d9cb-469f-a165-70867728950e/{EXAMPLE_ID}/report.pdf"
                )),
                is_complete: true,
                received_blocks: 5,
                total_blocks: 5,
                expires_at: None,
                sha256: Some(
                    "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
                ),
            },
            "File uploaded successfully",
        )
    }
}

impl Example for FileStatusEnvelope {
    fn example() -> Self {
        Self::ok(
            FileStatusData {
                file_id: EXAMPLE_ID,
                mode: "Message".into(),
                file_name: "report.pdf".into(),
                content_type: "application/pdf".into(),
                is_complete: false,
                url: None,
                total_blocks: 5,
                received_count: 3,
                missing_ranges: vec![[2, 2], [4, 4]],
                received_blocks: Some(vec![0, 1, 3]),
                missing_blocks: Some(vec![2, 4]),
                size: 25_165_824,
                expires_at: Some("2026-11-28T09:30:00Z".into()),
                sha256: None,
            },
            "Upload in progress",
        )
    }
}

impl Example for ReadinessEnvelope {
    fn example() -> Self {
        Self::ok(
            ReadinessData {
                database: "ok".into(),
                blob_store: "ok".into(),
            },
            "ready",
        )
    }
}

impl Example for ErrorEnvelope {
    fn example() -> Self {
        Self {
            is_success: false,
            data: None,
            message: "BlockIndex 5 is out of range: TotalBlocks is 5, so the last index is 4"
                .into(),
        }
    }
}

/// Never present: error envelopes carry `data: null`.
#[derive(Debug, Clone, Object)]
pub struct NoData {}

envelope!(
    /// The envelope of every error: `isSuccess` false, `data` null, and a message a person can
    /// act on.
    ErrorEnvelope,
    NoData
);

/// An error on its way to the client: a status, a message and, for 503 and 429, a delay.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub retry_after: Option<u32>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self {
            retry_after: Some(RETRY_AFTER_SECS),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, message)
        }
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "an internal error occurred; it has been logged",
        )
    }

    pub fn body(&self) -> ErrorEnvelope {
        ErrorEnvelope {
            is_success: false,
            data: None,
            message: self.message.clone(),
        }
    }

    pub fn retry_after(&self) -> u32 {
        self.retry_after.unwrap_or(RETRY_AFTER_SECS)
    }
}

impl poem::error::ResponseError for ApiError {
    fn status(&self) -> StatusCode {
        self.status
    }

    fn as_response(&self) -> Response {
        json_response(self.status, &self.body(), self.retry_after)
    }
}

pub(crate) fn json_response<T: ToJSON>(
    status: StatusCode,
    body: &T,
    retry_after: Option<u32>,
) -> Response {
    let json = body.to_json_string();
    let mut resp = Response::builder()
        .status(status)
        .content_type("application/json; charset=utf-8")
        .body(json)
        .into_response();
    if let Some(secs) = retry_after {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

/// Wraps the whole application so that no answer leaves without the envelope: every error
/// that escaped a handler or an extractor becomes an enveloped response with its status.
#[derive(Debug)]
pub struct EnvelopeErrors<E>(pub E);

impl<E: poem::Endpoint> poem::Endpoint for EnvelopeErrors<E> {
    type Output = Response;

    async fn call(&self, req: poem::Request) -> poem::Result<Response> {
        let path = req.uri().path().to_owned();
        let has_body = req.header(header::TRANSFER_ENCODING).is_some()
            || req
                .header(header::CONTENT_LENGTH)
                .is_some_and(|len| len.trim() != "0");
        let mut resp = match self.0.call(req).await {
            Ok(resp) => resp.into_response(),
            Err(err) => envelope_any_error(err, &path),
        };
        // An error answered before the body was read (a refused key, a chunk over the limit)
        // leaves the rest of the body on the connection, which the server then closes. Saying
        // so keeps the client from sending its next request on a connection about to go away.
        if has_body && resp.status().as_u16() >= 400 {
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        Ok(resp)
    }
}

/// Turns any error that escaped a handler or an extractor (poem's own ones included) into the
/// envelope, keeping its status. `path` is the request's, for the `Allow` header of a 405.
pub(crate) fn envelope_any_error(err: poem::Error, path: &str) -> Response {
    if let Some(api) = err.downcast_ref::<ApiError>() {
        return api.as_response_ref();
    }
    let status = err.status();
    let message = if err.is::<poem_openapi::error::AuthorizationError>() {
        "the X-API-Key header is missing".to_owned()
    } else if err.is::<poem::error::NotFoundError>() {
        "no such route; see /openapi.json".to_owned()
    } else if status == StatusCode::METHOD_NOT_ALLOWED {
        "this method is not allowed on this route".to_owned()
    } else if status.is_server_error() {
        tracing::error!(error = %err, "unhandled error");
        "an internal error occurred; it has been logged".to_owned()
    } else {
        err.to_string()
    };
    let retry_after = (status == StatusCode::SERVICE_UNAVAILABLE
        || status == StatusCode::TOO_MANY_REQUESTS)
        .then_some(RETRY_AFTER_SECS);
    let envelope = ErrorEnvelope {
        is_success: false,
        data: None,
        message,
    };
    let mut resp = json_response(status, &envelope, retry_after);
    if status == StatusCode::METHOD_NOT_ALLOWED {
        // Every route takes one method: POST for the chunk route, GET for the rest.
        let allow = if path.to_ascii_lowercase().ends_with("/chunk") {
            "POST"
        } else {
            "GET, HEAD"
        };
        resp.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static(allow));
    }
    resp
}

impl ApiError {
    fn as_response_ref(&self) -> Response {
        poem::error::ResponseError::as_response(self)
    }
}

impl From<crate::idle::BodyStalled> for ApiError {
    fn from(e: crate::idle::BodyStalled) -> Self {
        Self::new(StatusCode::REQUEST_TIMEOUT, e.to_string())
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Missing | AuthError::Invalid => {
                Self::new(StatusCode::UNAUTHORIZED, e.to_string())
            }
            AuthError::Store(e) => {
                tracing::warn!(error = ?e, "authentication could not reach the metadata store");
                Self::unavailable("the metadata store is unavailable; retry later")
            }
        }
    }
}

impl From<UploadChunkError> for ApiError {
    fn from(e: UploadChunkError) -> Self {
        match e {
            UploadChunkError::InvalidField { .. } => Self::bad_request(e.to_string()),
            UploadChunkError::NotFound(_) => Self::new(StatusCode::NOT_FOUND, e.to_string()),
            UploadChunkError::Gone(_) => Self::new(StatusCode::GONE, e.to_string()),
            UploadChunkError::TooManyOpenUploads { retry_after, .. } => Self {
                retry_after: Some(u32::try_from(retry_after.as_secs()).unwrap_or(u32::MAX)),
                ..Self::new(StatusCode::TOO_MANY_REQUESTS, e.to_string())
            },
            UploadChunkError::Conflict(_) => Self::new(StatusCode::CONFLICT, e.to_string()),
            UploadChunkError::TooLarge(_) => Self::too_large(e.to_string()),
            UploadChunkError::TypeNotAllowed(_) => {
                Self::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, e.to_string())
            }
            UploadChunkError::Body(body) => match body {
                BodyError::TooLarge(message) => Self::too_large(message),
                BodyError::Invalid(message) => Self::bad_request(message),
                BodyError::Stalled(_) => Self::new(StatusCode::REQUEST_TIMEOUT, body.to_string()),
                BodyError::Broken(_) => Self::bad_request(body.to_string()),
                BodyError::OverBudget => Self::unavailable(body.to_string()),
            },
            UploadChunkError::Unavailable(cause) => {
                tracing::warn!(error = ?cause, "a backend is unavailable");
                Self::unavailable(
                    "a storage backend is unavailable; nothing was kept, retry the same request later",
                )
            }
            UploadChunkError::Unknown(cause) => {
                tracing::error!(error = ?cause, "chunk upload failed");
                Self::internal()
            }
        }
    }
}

impl From<FileStatusError> for ApiError {
    fn from(e: FileStatusError) -> Self {
        match e {
            FileStatusError::NotFound(_) => Self::new(StatusCode::NOT_FOUND, e.to_string()),
            FileStatusError::Gone(_) => Self::new(StatusCode::GONE, e.to_string()),
            FileStatusError::Unavailable(cause) => {
                tracing::warn!(error = ?cause, "a backend is unavailable");
                Self::unavailable("a storage backend is unavailable; retry later")
            }
            FileStatusError::Unknown(cause) => {
                tracing::error!(error = ?cause, "file status failed");
                Self::internal()
            }
        }
    }
}

impl From<DeleteFileError> for ApiError {
    fn from(e: DeleteFileError) -> Self {
        match e {
            DeleteFileError::NotFound(_) => Self::new(StatusCode::NOT_FOUND, e.to_string()),
            DeleteFileError::Unavailable(cause) => {
                tracing::warn!(error = ?cause, "a backend is unavailable");
                Self::unavailable("a storage backend is unavailable; retry later")
            }
            DeleteFileError::Unknown(cause) => {
                tracing::error!(error = ?cause, "deleting a file failed");
                Self::internal()
            }
        }
    }
}

impl Example for DeletedEnvelope {
    fn example() -> Self {
        Self::ok(
            DeletedData {
                file_id: EXAMPLE_ID,
            },
            "File deleted",
        )
    }
}

impl From<ContentError> for ApiError {
    fn from(e: ContentError) -> Self {
        match e {
            ContentError::NotFound(_) => Self::new(StatusCode::NOT_FOUND, e.to_string()),
            ContentError::Gone(_) => Self::new(StatusCode::GONE, e.to_string()),
            ContentError::NotComplete(_) => Self::new(StatusCode::CONFLICT, e.to_string()),
            ContentError::RangeNotSatisfiable(_) => {
                Self::new(StatusCode::RANGE_NOT_SATISFIABLE, e.to_string())
            }
            ContentError::Unavailable(cause) => {
                tracing::warn!(error = ?cause, "a backend is unavailable");
                Self::unavailable("a storage backend is unavailable; retry later")
            }
            ContentError::Unknown(cause) => {
                tracing::error!(error = ?cause, "reading a file failed");
                Self::internal()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use filegate_application::ports::{BlobError, StoreError};
    use filegate_application::{ContentError, FileStatusError, UploadChunkError};

    use super::*;

    /// Every route answers an unavailable backend, a missing container included, with 503 and
    /// `Retry-After`, and anything else with 500: the classification is the application's one.
    #[test]
    fn an_unavailable_backend_is_503_with_retry_after_on_every_route() {
        let unavailable = || {
            [
                BlobError::ContainerMissing("uploads".into()),
                BlobError::Unavailable(anyhow::anyhow!("connection refused")),
            ]
        };
        let mut answers: Vec<ApiError> = Vec::new();
        for e in unavailable() {
            answers.push(UploadChunkError::from(e).into());
        }
        for e in unavailable() {
            answers.push(FileStatusError::from(e).into());
        }
        for e in unavailable() {
            answers.push(ContentError::from(e).into());
        }
        answers.push(
            FileStatusError::from(StoreError::Unavailable(anyhow::anyhow!("pool timed out")))
                .into(),
        );
        for answer in &answers {
            assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{answer:?}");
            let response = answer.as_response_ref();
            assert_eq!(
                response.headers().get(header::RETRY_AFTER),
                Some(&HeaderValue::from(RETRY_AFTER_SECS)),
                "{answer:?}"
            );
        }
        let broken: ApiError =
            ContentError::from(StoreError::Unknown(anyhow::anyhow!("corrupt row"))).into();
        assert_eq!(broken.status, StatusCode::INTERNAL_SERVER_ERROR);
    }
}
