//! The chunk form, parsed by hand from the multipart stream.
//!
//! poem-openapi's derived multipart parser copies a file field into a temporary file before the
//! handler runs and sets no size limit. This parser reads the stream once, keeps the chunk in
//! one buffer that is handed to the blob store without a copy, and answers 413 as soon as the
//! chunk crosses the limit, without reading the rest. The derived [`ChunkForm`] is kept only
//! for the spec, so the spec and the parser describe the same fields.

use bytes::{Bytes, BytesMut};
use futures::TryStreamExt;
use poem::http::StatusCode;
use poem::{Request, RequestBody};
use poem_openapi::payload::{ParsePayload, Payload};
use poem_openapi::registry::{MetaMediaType, MetaRequest, MetaSchemaRef, Registry};
use poem_openapi::types::multipart::Upload;
use poem_openapi::{ApiExtractor, ApiExtractorType, Enum, ExtractParamOptions, Multipart};
use uuid::Uuid;

use filegate_application::ChunkCommand;
use filegate_domain::{FileId, Mode};

use crate::envelope::ApiError;
use crate::idle::BodyIdleTimeout;

/// The size limits of the chunk route, put into the request data by the router.
#[derive(Debug, Clone, Copy)]
pub struct ChunkLimits {
    /// The largest chunk accepted, in bytes.
    pub max_chunk_bytes: usize,
}

/// Room for the form's other fields and the multipart framing around the chunk.
const FORM_OVERHEAD: usize = 64 * 1024;
/// The longest value accepted for a text field (a uuid, a number, a mode name).
const MAX_TEXT_FIELD: usize = 256;

/// What the file is for; decides the blob folder, the size cap and the allowed types; fixed by
/// the first chunk. `User` and `WhatsappMedia` are the seed diagrams' deprecated names of
/// `Profile` and `Message`.
#[derive(Debug, Clone, Copy, Enum)]
#[allow(dead_code)]
pub enum ModeName {
    Firm,
    Profile,
    Contact,
    Message,
    Template,
    Import,
    User,
    WhatsappMedia,
}

/// The fields of `POST /api/v1/Files/chunk`. Field names are matched case-insensitively.
#[derive(Debug, Multipart)]
#[allow(dead_code)]
pub struct ChunkForm {
    /// The bytes of this chunk, as a file part with a filename (the first chunk's filename names
    /// the stored file).
    #[oai(rename = "File")]
    file: Upload,
    /// Zero-based index of this chunk. Required unless the deprecated `CurrentBlock` is sent.
    #[oai(rename = "BlockIndex", validator(maximum(value = "49999")))]
    block_index: Option<u32>,
    /// Number of chunks of the whole file, 1 to 50,000; fixed by the first chunk.
    #[oai(
        rename = "TotalBlocks",
        validator(minimum(value = "1"), maximum(value = "50000"))
    )]
    total_blocks: u32,
    // No doc comment here: a described `$ref` becomes an `allOf`, which some client generators
    // refuse for an enum; the enum's own description says what it is.
    #[oai(rename = "Mode")]
    mode: ModeName,
    /// The `fileId` returned for the first chunk; required when `BlockIndex` > 0.
    #[oai(rename = "FileId")]
    file_id: Option<Uuid>,
    /// Deprecated: one-based `BlockIndex + 1`, accepted when `BlockIndex` is absent.
    #[oai(
        rename = "CurrentBlock",
        validator(minimum(value = "1"), maximum(value = "50000"))
    )]
    current_block: Option<u32>,
}

/// A parsed chunk request, ready for the use case.
#[derive(Debug)]
pub struct ChunkUpload(pub ChunkCommand);

impl Payload for ChunkUpload {
    const CONTENT_TYPE: &'static str = "multipart/form-data";

    fn check_content_type(content_type: &str) -> bool {
        <ChunkForm as Payload>::check_content_type(content_type)
    }

    /// The derived schema, with `CurrentBlock` marked deprecated (the derive cannot say so).
    fn schema_ref() -> MetaSchemaRef {
        let mut schema = <ChunkForm as Payload>::schema_ref();
        if let MetaSchemaRef::Inline(form) = &mut schema {
            for (name, property) in &mut form.properties {
                if let (true, MetaSchemaRef::Inline(field)) = (*name == "CurrentBlock", property) {
                    field.deprecated = true;
                }
            }
        }
        schema
    }

    fn register(registry: &mut Registry) {
        <ChunkForm as Payload>::register(registry);
    }
}

impl ParsePayload for ChunkUpload {
    const IS_REQUIRED: bool = true;

    async fn from_request(request: &Request, body: &mut RequestBody) -> poem::Result<Self> {
        let limits = request.data::<ChunkLimits>().copied().ok_or_else(|| {
            poem::Error::from_string("chunk limits missing", StatusCode::INTERNAL_SERVER_ERROR)
        })?;
        Ok(Self(parse(request, body, limits).await?))
    }
}

impl<'a> ApiExtractor<'a> for ChunkUpload {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        <Self as Payload>::register(registry);
    }

    fn request_meta() -> Option<MetaRequest> {
        Some(MetaRequest {
            description: None,
            content: vec![MetaMediaType {
                content_type: Self::CONTENT_TYPE,
                schema: Self::schema_ref(),
            }],
            required: true,
        })
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        let content_type = request.content_type().unwrap_or_default();
        if !<Self as Payload>::check_content_type(content_type) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("the request must be multipart/form-data, not `{content_type}`"),
            )
            .into());
        }
        <Self as ParsePayload>::from_request(request, body).await
    }
}

/// The raw fields as they arrive.
#[derive(Default)]
struct RawForm {
    data: Option<Bytes>,
    file_name: Option<String>,
    content_type: Option<String>,
    block_index: Option<String>,
    total_blocks: Option<String>,
    mode: Option<String>,
    file_id: Option<String>,
    current_block: Option<String>,
}

async fn parse(
    request: &Request,
    body: &mut RequestBody,
    limits: ChunkLimits,
) -> Result<ChunkCommand, ApiError> {
    let max_body = limits.max_chunk_bytes + FORM_OVERHEAD;
    let declared = request
        .header(poem::http::header::CONTENT_LENGTH)
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > max_body) {
        return Err(too_large(limits));
    }
    let boundary = request
        .content_type()
        .and_then(|ct| multer::parse_boundary(ct).ok())
        .ok_or_else(|| {
            ApiError::bad_request("the multipart/form-data content type has no boundary")
        })?;
    let stream = body
        .take()
        .map_err(|_| ApiError::bad_request("the request has no body"))?
        .into_bytes_stream();
    let idle = request.data::<BodyIdleTimeout>().and_then(|t| t.0);
    let stream = crate::idle::stall_limited(stream, idle);
    let constraints = multer::Constraints::new().size_limit(
        multer::SizeLimit::new()
            .whole_stream(max_body as u64)
            .per_field(limits.max_chunk_bytes as u64 + 1),
    );
    let mut multipart = multer::Multipart::with_constraints(stream, boundary, constraints);

    let mut form = RawForm::default();
    while let Some(mut field) = multipart
        .next_field()
        .await
        .map_err(|e| multipart_error(e, limits))?
    {
        let name = field.name().unwrap_or_default().to_ascii_lowercase();
        match name.as_str() {
            "file" => {
                if form.data.is_some() {
                    return Err(ApiError::bad_request("File: sent more than once"));
                }
                form.file_name = field.file_name().map(str::to_owned);
                form.content_type = field.content_type().map(|m| m.essence_str().to_owned());
                let mut buf =
                    BytesMut::with_capacity(declared.unwrap_or(0).min(limits.max_chunk_bytes));
                while let Some(piece) = field
                    .chunk()
                    .await
                    .map_err(|e| multipart_error(e, limits))?
                {
                    if buf.len() + piece.len() > limits.max_chunk_bytes {
                        return Err(too_large(limits));
                    }
                    buf.extend_from_slice(&piece);
                }
                form.data = Some(buf.freeze());
            }
            "blockindex" => form.block_index = Some(text(field, "BlockIndex", limits).await?),
            "totalblocks" => form.total_blocks = Some(text(field, "TotalBlocks", limits).await?),
            "mode" => form.mode = Some(text(field, "Mode", limits).await?),
            "fileid" => form.file_id = Some(text(field, "FileId", limits).await?),
            "currentblock" => form.current_block = Some(text(field, "CurrentBlock", limits).await?),
            // Unknown fields are skipped, as an ASP.NET model binder would; their size still
            // counts against the whole-body limit.
            _ => {
                while field
                    .chunk()
                    .await
                    .map_err(|e| multipart_error(e, limits))?
                    .is_some()
                {}
            }
        }
    }
    form.into_command()
}

impl RawForm {
    fn into_command(self) -> Result<ChunkCommand, ApiError> {
        let data = self.data.ok_or_else(|| {
            ApiError::bad_request("File: is required (a file part with the chunk's bytes)")
        })?;
        let total_blocks = integer("TotalBlocks", self.total_blocks.as_deref())?
            .ok_or_else(|| ApiError::bad_request("TotalBlocks: is required"))?;
        let block_index = integer("BlockIndex", self.block_index.as_deref())?;
        let current_block = integer("CurrentBlock", self.current_block.as_deref())?;
        let block_index = match (block_index, current_block) {
            (Some(index), None) => index,
            (None, Some(current)) if current >= 1 => current - 1,
            (None, Some(current)) => {
                return Err(ApiError::bad_request(format!(
                    "CurrentBlock: is one-based and must be at least 1, got {current}"
                )));
            }
            (Some(index), Some(current)) if current == index + 1 => index,
            (Some(index), Some(current)) => {
                return Err(ApiError::bad_request(format!(
                    "BlockIndex and CurrentBlock disagree: BlockIndex {index} means CurrentBlock {}, got {current}",
                    index + 1
                )));
            }
            (None, None) => return Err(ApiError::bad_request("BlockIndex: is required")),
        };
        let mode = self
            .mode
            .as_deref()
            .filter(|m| !m.trim().is_empty())
            .ok_or_else(|| ApiError::bad_request("Mode: is required"))?
            .parse::<Mode>()
            .map_err(|e| ApiError::bad_request(format!("Mode: {e}")))?;
        let file_id = match self
            .file_id
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            None => None,
            Some(raw) => Some(FileId::from_uuid(Uuid::parse_str(raw).map_err(|_| {
                ApiError::bad_request(format!("FileId: `{raw}` is not a valid uuid"))
            })?)),
        };
        Ok(ChunkCommand {
            file_id,
            block_index,
            total_blocks,
            mode,
            file_name: self.file_name,
            content_type: self.content_type,
            data,
        })
    }
}

fn integer(field: &'static str, raw: Option<&str>) -> Result<Option<i64>, ApiError> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => s
            .parse::<i64>()
            .map(Some)
            .map_err(|_| ApiError::bad_request(format!("{field}: `{s}` is not an integer"))),
    }
}

async fn text(
    field: multer::Field<'_>,
    name: &'static str,
    limits: ChunkLimits,
) -> Result<String, ApiError> {
    let bytes: Vec<u8> = field
        .map_err(|e| multipart_error(e, limits))
        .try_fold(Vec::new(), |mut acc, piece| async move {
            if acc.len() + piece.len() > MAX_TEXT_FIELD {
                return Err(ApiError::bad_request(format!(
                    "{name}: longer than {MAX_TEXT_FIELD} bytes"
                )));
            }
            acc.extend_from_slice(&piece);
            Ok(acc)
        })
        .await?;
    String::from_utf8(bytes)
        .map_err(|_| ApiError::bad_request(format!("{name}: is not valid UTF-8")))
}

fn too_large(limits: ChunkLimits) -> ApiError {
    ApiError::too_large(format!(
        "File: the chunk is larger than the maximum of {} bytes; send smaller chunks",
        limits.max_chunk_bytes
    ))
}

fn multipart_error(e: multer::Error, limits: ChunkLimits) -> ApiError {
    if let Some(stalled) = crate::idle::stall_of(&e) {
        return stalled.into();
    }
    match e {
        multer::Error::StreamSizeExceeded { .. } | multer::Error::FieldSizeExceeded { .. } => {
            too_large(limits)
        }
        other => ApiError::bad_request(format!("the multipart body is malformed: {other}")),
    }
}
