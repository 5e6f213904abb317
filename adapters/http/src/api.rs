//! The routes, with one response enum per operation so that every status is in the spec.

use std::sync::Arc;

use futures::TryStreamExt;
use poem::Body;
use poem::Request;
use poem::web::Data;
use poem_openapi::auth::ApiKey;
use poem_openapi::param::{Header, Path};
use poem_openapi::payload::{Binary, Json};
use poem_openapi::{ApiResponse, OpenApi, SecurityScheme, Tags};
use uuid::Uuid;

use filegate_application::{ChunkReceipt, ContentError, Fault, FileStatus, Principal};
use filegate_domain::{FileId, RangeSpec, Sha256Digest};

use crate::chunk::ChunkUpload;
use crate::envelope::{
    ApiError, ChunkData, ChunkEnvelope, DeletedData, DeletedEnvelope, ErrorEnvelope,
    FileStatusData, FileStatusEnvelope, ReadinessData, ReadinessEnvelope,
};
use crate::hosts::HostPolicy;
use crate::service::FilesService;

#[derive(Tags)]
enum ApiTags {
    /// Chunked uploads and file status.
    Files,
    /// Liveness and readiness probes.
    Health,
}

/// An API key, sent in the `X-API-Key` header. A key belongs to one firm and one user.
#[derive(SecurityScheme)]
#[oai(
    ty = "api_key",
    key_name = "X-API-Key",
    key_in = "header",
    checker = "check_api_key"
)]
pub struct ApiKeyAuth(Principal);

async fn check_api_key(req: &Request, key: ApiKey) -> poem::Result<Principal> {
    let service = req
        .data::<Arc<dyn FilesService>>()
        .ok_or_else(|| poem::Error::from(ApiError::internal()))?;
    let principal = service
        .authenticate(Some(&key.key))
        .await
        .map_err(ApiError::from)?;
    if let Some(limiter) = req.data::<Arc<crate::rate::RateLimiter>>()
        && let Err(wait) = limiter.admit(principal.key, std::time::Instant::now())
    {
        let per_sec = limiter.limit().map_or(0.0, |l| l.requests_per_sec);
        let secs = crate::rate::retry_after_secs(wait);
        return Err(ApiError {
            retry_after: Some(secs),
            ..ApiError::new(
                poem::http::StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "this API key sends faster than {per_sec} requests a second \
                     (rate.requests_per_sec); retry in {secs} s"
                ),
            )
        }
        .into());
    }
    Ok(principal)
}

macro_rules! error_variants {
    (
        $(#[$doc:meta])* $name:ident {
            $($(#[$vdoc:meta])* $variant:ident = $status:literal),* $(,)?
            $(; $(#[$rdoc:meta])* $rvariant:ident = $rstatus:literal with Retry-After)?
        } ok = $ok:ty
    ) => {
        $(#[$doc])*
        #[derive(ApiResponse)]
        // An answer is built once and moved once into the response: boxing its data saves
        // nothing.
        #[allow(clippy::large_enum_variant)]
        pub(crate) enum $name {
            /// Success.
            #[oai(status = 200)]
            Ok(Json<$ok>),
            $(
                $(#[$vdoc])*
                #[oai(status = $status)]
                $variant(Json<ErrorEnvelope>),
            )*
            $(
                $(#[$rdoc])*
                #[oai(status = $rstatus)]
                $rvariant(Json<ErrorEnvelope>, #[oai(header = "Retry-After")] u32),
            )?
            /// A backend is down; nothing was kept, and the same request can be retried after
            /// `Retry-After` seconds.
            #[oai(status = 503)]
            Unavailable(Json<ErrorEnvelope>, #[oai(header = "Retry-After")] u32),
        }

        impl From<ApiError> for $name {
            fn from(e: ApiError) -> Self {
                let body = Json(e.body());
                match e.status.as_u16() {
                    $($status => Self::$variant(body),)*
                    $($rstatus => Self::$rvariant(body, e.retry_after()),)?
                    503 => Self::Unavailable(body, e.retry_after()),
                    // Statuses outside the operation's list are handled by the catch-all layer.
                    _ => Self::Unavailable(Json(ApiError::internal().body()), e.retry_after()),
                }
            }
        }
    };
}

error_variants!(
    /// Answers of the chunk upload.
    ChunkResponse {
        /// A field is missing or breaks a rule; the message names the field.
        BadRequest = 400,
        /// The `X-API-Key` header is missing, unknown or revoked.
        Unauthorized = 401,
        /// `FileId` is unknown or belongs to another firm.
        NotFound = 404,
        /// No byte of the body arrived for `http.idle_timeout_secs`; nothing was kept.
        RequestTimeout = 408,
        /// The file is already complete, or `TotalBlocks` or `Mode` differ from the first
        /// chunk's, or block 0 sent again is of another format than the first time.
        Conflict = 409,
        /// The upload expired (no chunk arrived for `uploads.expire_after_secs`) and its blocks
        /// are gone; start a new upload.
        Gone = 410,
        /// The chunk is larger than the configured maximum, or the file larger than its mode's
        /// cap or, in Message and Template, its kind of media's cap (`limits.*_bytes`).
        PayloadTooLarge = 413,
        /// The request is not `multipart/form-data`, or block 0's first bytes are not a format
        /// the mode takes (told from the bytes, not the declared type: see the `Mode` field).
        /// Nothing was kept.
        UnsupportedMediaType = 415,
        /// An unexpected error; it has been logged.
        InternalError = 500;
        /// The API key is over its rate (`rate.requests_per_sec`), or this is a first chunk
        /// (no `FileId`) of a file of several chunks while the firm has
        /// `limits.open_uploads_per_firm` uploads open (complete or delete one, or wait for the
        /// next to expire, at most 3600 s). Nothing was kept; retry after `Retry-After` seconds.
        TooManyRequests = 429 with Retry-After
    } ok = ChunkEnvelope
);

error_variants!(
    /// Answers of the file status.
    FileStatusResponse {
        /// The file id is not a uuid.
        BadRequest = 400,
        /// The `X-API-Key` header is missing, unknown or revoked.
        Unauthorized = 401,
        /// No such file for this firm.
        NotFound = 404,
        /// The upload expired before it was complete, and its blocks are gone.
        Gone = 410,
        /// An unexpected error; it has been logged.
        InternalError = 500;
        /// The API key is over its rate (`rate.requests_per_sec`); retry after `Retry-After`
        /// seconds.
        TooManyRequests = 429 with Retry-After
    } ok = FileStatusEnvelope
);

error_variants!(
    /// Answers of a delete.
    DeleteResponse {
        /// The file id is not a uuid.
        BadRequest = 400,
        /// The `X-API-Key` header is missing, unknown or revoked.
        Unauthorized = 401,
        /// No such file for this firm, or it is deleted already.
        NotFound = 404,
        /// An unexpected error; it has been logged.
        InternalError = 500;
        /// The API key is over its rate (`rate.requests_per_sec`); retry after `Retry-After`
        /// seconds.
        TooManyRequests = 429 with Retry-After
    } ok = DeletedEnvelope
);

#[derive(ApiResponse)]
pub(crate) enum LiveResponse {
    /// The process is up.
    #[oai(status = 200)]
    Ok(Json<ErrorEnvelope>),
}

#[derive(ApiResponse)]
pub(crate) enum ReadyResponse {
    /// The metadata store and the blob store both answer.
    #[oai(status = 200)]
    Ok(Json<ReadinessEnvelope>),
    /// A backend does not answer; `data` says which and why.
    #[oai(status = 503)]
    Unavailable(Json<ReadinessEnvelope>, #[oai(header = "Retry-After")] u32),
}

/// Answers of the content route. The body's `Content-Type` is the file's own; the spec shows
/// it as `application/octet-stream`.
#[derive(ApiResponse)]
pub(crate) enum ContentResponse {
    /// The whole file.
    #[oai(status = 200)]
    Ok(
        Binary<Body>,
        #[oai(header = "Content-Length")] u64,
        #[oai(header = "ETag")] String,
        #[oai(header = "Accept-Ranges")] String,
        #[oai(header = "Content-Disposition")] String,
        /// The whole file's SHA-256 (RFC 9530), `sha-256=:base64:`, once it is known.
        #[oai(header = "Repr-Digest")]
        Option<String>,
    ),
    /// The requested range (`Range: bytes=a-b`, `a-` or `-n`; one range).
    #[oai(status = 206)]
    Partial(
        Binary<Body>,
        #[oai(header = "Content-Length")] u64,
        #[oai(header = "ETag")] String,
        #[oai(header = "Content-Range")] String,
        #[oai(header = "Content-Disposition")] String,
        /// The whole file's SHA-256 (RFC 9530): of the representation, not of the range.
        #[oai(header = "Repr-Digest")]
        Option<String>,
    ),
    /// `If-None-Match` names the current ETag.
    #[oai(status = 304)]
    NotModified(#[oai(header = "ETag")] String),
    /// The file id is not a uuid.
    #[oai(status = 400)]
    BadRequest(Json<ErrorEnvelope>),
    /// The `X-API-Key` header is missing, unknown or revoked.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorEnvelope>),
    /// No such file for this firm.
    #[oai(status = 404)]
    NotFound(Json<ErrorEnvelope>),
    /// The upload is not complete yet.
    #[oai(status = 409)]
    Conflict(Json<ErrorEnvelope>),
    /// The upload expired before it was complete.
    #[oai(status = 410)]
    Gone(Json<ErrorEnvelope>),
    /// The range starts past the end of the file; `Content-Range` gives its size.
    #[oai(status = 416)]
    RangeNotSatisfiable(Json<ErrorEnvelope>, #[oai(header = "Content-Range")] String),
    /// The API key is over its rate (`rate.requests_per_sec`); retry after `Retry-After`
    /// seconds.
    #[oai(status = 429)]
    TooManyRequests(Json<ErrorEnvelope>, #[oai(header = "Retry-After")] u32),
    /// An unexpected error; it has been logged.
    #[oai(status = 500)]
    InternalError(Json<ErrorEnvelope>),
    /// A backend is down; retry after `Retry-After` seconds.
    #[oai(status = 503)]
    Unavailable(Json<ErrorEnvelope>, #[oai(header = "Retry-After")] u32),
}

impl ContentResponse {
    fn error(e: ApiError, size: Option<u64>) -> Self {
        let body = Json(e.body());
        match e.status.as_u16() {
            400 => Self::BadRequest(body),
            401 => Self::Unauthorized(body),
            404 => Self::NotFound(body),
            409 => Self::Conflict(body),
            410 => Self::Gone(body),
            416 => Self::RangeNotSatisfiable(body, format!("bytes */{}", size.unwrap_or(0))),
            429 => Self::TooManyRequests(body, e.retry_after()),
            503 => Self::Unavailable(body, e.retry_after()),
            _ => Self::InternalError(body),
        }
    }
}

/// The files API. It holds nothing: the service comes from request data, so that the spec can
/// be rendered without any backend.
pub(crate) struct FilesApi;

type Service<'a> = Data<&'a Arc<dyn FilesService>>;

#[OpenApi]
impl FilesApi {
    /// Upload one chunk of a file
    ///
    /// The first chunk (`BlockIndex` 0, no `FileId`) opens an upload and returns its `fileId`.
    /// Later chunks may come in any order and in parallel; re-sending an index replaces it.
    /// The file is committed exactly once, when every index `0..TotalBlocks` has arrived.
    #[oai(
        path = "/api/v1/Files/chunk",
        method = "post",
        tag = "ApiTags::Files",
        operation_id = "uploadChunk"
    )]
    async fn upload_chunk(
        &self,
        req: &Request,
        service: Service<'_>,
        auth: ApiKeyAuth,
        chunk: ChunkUpload,
    ) -> ChunkResponse {
        let base = match url_base(req) {
            Ok(base) => base,
            Err(e) => return e.into(),
        };
        match service.upload_chunk(auth.0, chunk.0).await {
            Ok(mut receipt) => {
                if receipt.is_complete && receipt.url.is_none() {
                    receipt.url = base.map(|base| content_url(&base, receipt.file_id));
                }
                ChunkResponse::Ok(Json(chunk_envelope(receipt)))
            }
            Err(e) => ApiError::from(e).into(),
        }
    }

    /// Read where an upload stands
    ///
    /// Says which blocks are missing (as runs, and for an upload of at most 1000 blocks also as
    /// lists), so that an interrupted client can resume, and the file's URL once it is complete.
    #[oai(
        path = "/api/v1/Files/:fileId",
        method = "get",
        tag = "ApiTags::Files",
        operation_id = "getFileStatus"
    )]
    async fn file_status(
        &self,
        req: &Request,
        service: Service<'_>,
        auth: ApiKeyAuth,
        #[oai(name = "fileId")] file_id: Path<String>,
    ) -> FileStatusResponse {
        let (id, base) = match path_file_id(&file_id.0).and_then(|id| Ok((id, url_base(req)?))) {
            Ok(found) => found,
            Err(e) => return e.into(),
        };
        match service.file_status(auth.0, id).await {
            Ok(mut status) => {
                if status.is_complete && status.url.is_none() {
                    status.url = base.map(|base| content_url(&base, status.file_id));
                }
                FileStatusResponse::Ok(Json(status_envelope(status)))
            }
            Err(e) => ApiError::from(e).into(),
        }
    }

    /// Delete a file
    ///
    /// Deletes one of the firm's files, complete or still uploading: its bytes go, a
    /// `file.deleted.<mode>` event is published, and from then on the file answers 404.
    #[oai(
        path = "/api/v1/Files/:fileId",
        method = "delete",
        tag = "ApiTags::Files",
        operation_id = "deleteFile"
    )]
    async fn delete_file(
        &self,
        service: Service<'_>,
        auth: ApiKeyAuth,
        #[oai(name = "fileId")] file_id: Path<String>,
    ) -> DeleteResponse {
        let id = match path_file_id(&file_id.0) {
            Ok(id) => id,
            Err(e) => return e.into(),
        };
        match service.delete_file(auth.0, id).await {
            Ok(()) => DeleteResponse::Ok(Json(DeletedEnvelope::ok(
                DeletedData {
                    file_id: *id.as_uuid(),
                },
                "File deleted",
            ))),
            Err(e) => ApiError::from(e).into(),
        }
    }

    /// Download a complete file
    ///
    /// Streams the file with its own `Content-Type`, `Content-Length` and a strong `ETag`;
    /// supports one `Range` and `If-None-Match`.
    #[oai(
        path = "/api/v1/Files/:fileId/content",
        method = "get",
        tag = "ApiTags::Files",
        operation_id = "getFileContent"
    )]
    async fn file_content(
        &self,
        service: Service<'_>,
        auth: ApiKeyAuth,
        #[oai(name = "fileId")] file_id: Path<String>,
        #[oai(name = "Range")] range: Header<Option<String>>,
        #[oai(name = "If-None-Match")] if_none_match: Header<Option<String>>,
    ) -> poem_openapi::payload::Response<ContentResponse> {
        let plain = poem_openapi::payload::Response::new;
        let id = match path_file_id(&file_id.0) {
            Ok(id) => id,
            Err(e) => return plain(ContentResponse::error(e, None)),
        };
        let spec = range.0.as_deref().and_then(RangeSpec::parse);
        let content = match service.open_content(auth.0, id, spec).await {
            Ok(c) => c,
            Err(ContentError::RangeNotSatisfiable(u)) => {
                return plain(ContentResponse::error(
                    ContentError::RangeNotSatisfiable(u).into(),
                    Some(u.size),
                ));
            }
            Err(e) => return plain(ContentResponse::error(e.into(), None)),
        };
        if if_none_match.0.as_deref().is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim() == content.etag || t.trim() == "*")
        }) {
            return plain(ContentResponse::NotModified(content.etag));
        }
        let content_type = content.file.content_type.clone();
        let disposition = content_disposition(&content.file.file_name, &content.file.content_type);
        let digest = content.file.sha256.as_ref().map(repr_digest);
        let length = content.range.end - content.range.start;
        let body = Binary(Body::from_bytes_stream(
            content.stream.map_err(std::io::Error::other),
        ));
        let answer = if content.partial {
            let range = format!(
                "bytes {}-{}/{}",
                content.range.start,
                content.range.end - 1,
                content.file.size
            );
            ContentResponse::Partial(body, length, content.etag, range, disposition, digest)
        } else {
            ContentResponse::Ok(
                body,
                length,
                content.etag,
                "bytes".to_owned(),
                disposition,
                digest,
            )
        };
        plain(answer)
            .header(poem::http::header::CONTENT_TYPE, content_type)
            // The stored type is the one served: a browser must not guess another.
            .header("X-Content-Type-Options", "nosniff")
    }

    /// Liveness probe
    #[oai(
        path = "/health/live",
        method = "get",
        tag = "ApiTags::Health",
        operation_id = "live"
    )]
    async fn live(&self) -> LiveResponse {
        LiveResponse::Ok(Json(ErrorEnvelope {
            is_success: true,
            data: None,
            message: "alive".into(),
        }))
    }

    /// Readiness probe: the metadata store and the blob store answer
    #[oai(
        path = "/health/ready",
        method = "get",
        tag = "ApiTags::Health",
        operation_id = "ready"
    )]
    async fn ready(&self, service: Service<'_>) -> ReadyResponse {
        let readiness = service.readiness().await;
        // A word each: the probe needs no key, so paths and the OS's own words go to the log.
        let describe = |f: &Option<Fault>| f.as_ref().map_or("ok", |f| f.summary).to_owned();
        let data = ReadinessData {
            database: describe(&readiness.database),
            blob_store: describe(&readiness.blob_store),
        };
        if readiness.is_ready() {
            ReadyResponse::Ok(Json(ReadinessEnvelope::ok(data, "ready")))
        } else {
            let detail =
                |f: &Option<Fault>| f.as_ref().map_or("ok", |f| f.detail.as_str()).to_owned();
            tracing::warn!(
                database = %detail(&readiness.database),
                blob_store = %detail(&readiness.blob_store),
                "not ready"
            );
            let body = ReadinessEnvelope {
                is_success: false,
                data: Some(data),
                message: "not ready".into(),
            };
            ReadyResponse::Unavailable(Json(body), crate::envelope::RETRY_AFTER_SECS)
        }
    }
}

/// Types a browser may show in place without running anything: the file is served `inline`.
/// Anything else (HTML, SVG, scripts, unknown bytes) is served as an `attachment`, so that a
/// file uploaded by one user cannot run as a page on this origin for another.
const SHOWN_INLINE: [&str; 6] = [
    "image/jpeg",
    "image/png",
    "image/webp",
    "image/x-icon",
    "image/vnd.microsoft.icon",
    "application/pdf",
];

/// `inline` or `attachment` (by the type), with the name twice: a plain ASCII fallback, and the
/// exact name as RFC 8187 UTF-8 for clients that read it (header values must be ASCII).
fn content_disposition(name: &filegate_domain::FileName, content_type: &str) -> String {
    let kind = if SHOWN_INLINE.contains(&filegate_domain::essence(content_type).as_str()) {
        "inline"
    } else {
        "attachment"
    };
    let encoded: String = name
        .as_str()
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!(
        "{kind}; filename=\"{}\"; filename*=UTF-8''{encoded}",
        name.storage_segment()
    )
}

/// The base of the URLs this request's answer may carry (see [`HostPolicy`]), or the 400
/// that refuses its `Host`.
fn url_base(req: &Request) -> Result<Option<String>, ApiError> {
    req.data::<HostPolicy>()
        .map_or(Ok(None), |policy| policy.base(req))
}

/// The content route's address under `base`, for stores that have no client-facing URL of
/// their own.
fn content_url(base: &str, id: FileId) -> String {
    format!("{base}/api/v1/Files/{id}/content")
}

/// The `{fileId}` of a path, or the 400 that names it (a plain `Path<Uuid>` would answer with
/// poem's own message naming an internal parameter).
fn path_file_id(raw: &str) -> Result<FileId, ApiError> {
    Uuid::parse_str(raw.trim())
        .map(FileId::from_uuid)
        .map_err(|_| ApiError::bad_request(format!("fileId: `{raw}` is not a valid uuid")))
}

/// A time as the API writes it: RFC 3339 in UTC, to the second.
fn rfc3339(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn chunk_envelope(r: ChunkReceipt) -> ChunkEnvelope {
    let message = if r.is_complete {
        "File uploaded successfully".to_owned()
    } else {
        format!(
            "Chunk received: {} of {} blocks staged",
            r.received_blocks, r.total_blocks
        )
    };
    let data = ChunkData {
        file_id: *r.file_id.as_uuid(),
        url: r.url,
        is_complete: r.is_complete,
        received_blocks: r.received_blocks,
        total_blocks: r.total_blocks,
        expires_at: r.expires_at.map(rfc3339),
        sha256: r.sha256.as_ref().map(Sha256Digest::to_hex),
    };
    ChunkEnvelope::ok(data, message)
}

fn status_envelope(s: FileStatus) -> FileStatusEnvelope {
    let message = if s.is_complete {
        "File is complete"
    } else {
        "Upload in progress"
    };
    let data = FileStatusData {
        file_id: *s.file_id.as_uuid(),
        mode: s.mode.as_str().to_owned(),
        file_name: s.file_name,
        content_type: s.content_type,
        is_complete: s.is_complete,
        url: s.url,
        total_blocks: s.total_blocks,
        received_count: s.received_count,
        missing_ranges: s.missing_ranges,
        received_blocks: s.lists.as_ref().map(|l| l.received.clone()),
        missing_blocks: s.lists.map(|l| l.missing),
        size: s.size,
        expires_at: s.expires_at.map(rfc3339),
        sha256: s.sha256.as_ref().map(Sha256Digest::to_hex),
    };
    FileStatusEnvelope::ok(data, message)
}

/// A `Repr-Digest` field value (RFC 9530): the algorithm and the digest as a byte sequence.
fn repr_digest(digest: &Sha256Digest) -> String {
    use base64::Engine;
    format!(
        "sha-256=:{}:",
        base64::engine::general_purpose::STANDARD.encode(digest.as_bytes())
    )
}
