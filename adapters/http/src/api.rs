//! The routes, with one response enum per operation so that every status is in the spec.

use std::sync::Arc;

use poem::Request;
use poem::web::Data;
use poem_openapi::auth::ApiKey;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi, SecurityScheme, Tags};
use uuid::Uuid;

use filegate_application::{ChunkReceipt, FileStatus, Principal};
use filegate_domain::FileId;

use crate::chunk::ChunkUpload;
use crate::envelope::{
    ApiError, ChunkData, ChunkEnvelope, ErrorEnvelope, FileStatusData, FileStatusEnvelope,
    ReadinessData, ReadinessEnvelope,
};
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
    service
        .authenticate(Some(&key.key))
        .await
        .map_err(|e| ApiError::from(e).into())
}

macro_rules! error_variants {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $status:literal),* $(,)? } ok = $ok:ty) => {
        $(#[$doc])*
        #[derive(ApiResponse)]
        pub(crate) enum $name {
            /// Success.
            #[oai(status = 200)]
            Ok(Json<$ok>),
            $(
                $(#[$vdoc])*
                #[oai(status = $status)]
                $variant(Json<ErrorEnvelope>),
            )*
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
        /// The file is already complete, or `TotalBlocks` or `Mode` differ from the first chunk's.
        Conflict = 409,
        /// The chunk is larger than the configured maximum.
        PayloadTooLarge = 413,
        /// The request is not `multipart/form-data`.
        UnsupportedMediaType = 415,
        /// An unexpected error; it has been logged.
        InternalError = 500,
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
        /// An unexpected error; it has been logged.
        InternalError = 500,
    } ok = FileStatusEnvelope
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
        service: Service<'_>,
        auth: ApiKeyAuth,
        chunk: ChunkUpload,
    ) -> ChunkResponse {
        match service.upload_chunk(auth.0, chunk.0).await {
            Ok(receipt) => ChunkResponse::Ok(Json(chunk_envelope(receipt))),
            Err(e) => ApiError::from(e).into(),
        }
    }

    /// Read where an upload stands
    ///
    /// Lists the received and the missing block indices, so that an interrupted client can
    /// resume, and the file's URL once it is complete.
    #[oai(
        path = "/api/v1/Files/:fileId",
        method = "get",
        tag = "ApiTags::Files",
        operation_id = "getFileStatus"
    )]
    async fn file_status(
        &self,
        service: Service<'_>,
        auth: ApiKeyAuth,
        #[oai(name = "fileId")] file_id: Path<String>,
    ) -> FileStatusResponse {
        let Ok(id) = Uuid::parse_str(file_id.0.trim()) else {
            return ApiError::bad_request(format!("fileId: `{}` is not a valid uuid", file_id.0))
                .into();
        };
        match service.file_status(auth.0, FileId::from_uuid(id)).await {
            Ok(status) => FileStatusResponse::Ok(Json(status_envelope(status))),
            Err(e) => ApiError::from(e).into(),
        }
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
        let describe = |e: &Option<String>| e.clone().unwrap_or_else(|| "ok".to_owned());
        let data = ReadinessData {
            database: describe(&readiness.database),
            blob_store: describe(&readiness.blob_store),
        };
        if readiness.is_ready() {
            ReadyResponse::Ok(Json(ReadinessEnvelope::ok(data, "ready")))
        } else {
            tracing::warn!(database = %data.database, blob_store = %data.blob_store, "not ready");
            let body = ReadinessEnvelope {
                is_success: false,
                data: Some(data),
                message: "not ready".into(),
            };
            ReadyResponse::Unavailable(Json(body), crate::envelope::RETRY_AFTER_SECS)
        }
    }
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
        received_blocks: s.received,
        missing_blocks: s.missing,
        size: s.size,
    };
    FileStatusEnvelope::ok(data, message)
}
