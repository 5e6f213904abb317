//! The chunk form, parsed by hand from the multipart stream.
//!
//! poem-openapi's derived multipart parser copies a file field into a temporary file before the
//! handler runs and sets no size limit. This parser reads the text fields, and when the File
//! part comes after them (as `filegate upload`, the README's examples and [`ChunkForm`]'s field
//! order send it) hands the File's bytes to the use case as a stream, so that they go to the
//! blob store as they arrive and a request holds one piece at a time, not the chunk. A File
//! that comes before the fields the use case needs is buffered (within the chunk limit) until
//! they arrive. Either way 413 comes as soon as the chunk crosses the limit, without reading the
//! rest. The derived [`ChunkForm`] is kept only for the spec, so the spec and the parser describe
//! the same fields.

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use futures::stream::BoxStream;
use poem::http::StatusCode;
use poem::{Request, RequestBody};
use poem_openapi::payload::{ParsePayload, Payload};
use poem_openapi::registry::{MetaMediaType, MetaRequest, MetaSchemaRef, Registry};
use poem_openapi::types::multipart::Upload;
use poem_openapi::{ApiExtractor, ApiExtractorType, Enum, ExtractParamOptions, Multipart};
use uuid::Uuid;

use filegate_application::ChunkCommand;
use filegate_application::ports::{BodyError, ByteBudget, ChunkBody, Reservation};
use filegate_domain::{FileId, Mode};

use crate::envelope::ApiError;
use crate::idle::BodyIdleTimeout;
use crate::multipart::{Multipart, MultipartError};

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
/// `Profile` and `Message`. The type is told from block 0's first bytes, not from the declared
/// Content-Type, and stored as told: Firm takes jpeg, png, webp and ico; Profile and Contact
/// jpeg, png and webp (5 MiB); Message WhatsApp media: jpeg and png images (5 MB), mp4 and 3gpp
/// video, aac, amr, mpeg, mp4 and ogg audio (16 MB), pdf, Office (doc, xls, ppt, docx, xlsx,
/// pptx) and UTF-8 text documents (100 MB), webp stickers (500 KB); Template jpeg, png, mp4 and
/// pdf; Import CSV as UTF-8 text (50 MiB). Another type gets 415.
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

/// The fields of `POST /api/v1/Files/chunk`. Field names are matched case-insensitively. Send
/// `File` last: its bytes then stream to storage as they arrive; a `File` sent before the other
/// fields is held in memory until they arrive.
#[derive(Debug, Multipart)]
#[allow(dead_code)]
pub struct ChunkForm {
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
    /// The SHA-256 of this chunk's bytes, 64 hex digits. When sent, the chunk is checked
    /// against it before it is recorded: a mismatch gets 400 naming `ChunkSha256`, and nothing
    /// of the chunk is kept. Send it before `File`.
    #[oai(rename = "ChunkSha256", validator(pattern = "^[0-9a-fA-F]{64}$"))]
    chunk_sha256: Option<String>,
    /// Deprecated: one-based `BlockIndex + 1`, accepted when `BlockIndex` is absent.
    #[oai(
        rename = "CurrentBlock",
        validator(minimum(value = "1"), maximum(value = "50000"))
    )]
    current_block: Option<u32>,
    /// The bytes of this chunk, as a file part with a filename (the first chunk's filename names
    /// the stored file). Last, after the other fields.
    #[oai(rename = "File")]
    file: Upload,
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
        let budget = request
            .data::<ByteBudget>()
            .cloned()
            .unwrap_or_else(ByteBudget::unlimited);
        Ok(Self(parse(request, body, limits, budget).await?))
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
    /// The File's bytes, when they came before the fields and had to be buffered, with the
    /// budget they are held against.
    data: Option<(Bytes, Reservation)>,
    /// Whether the File part was seen (buffered or streaming).
    has_file: bool,
    file_name: Option<String>,
    content_type: Option<String>,
    block_index: Option<String>,
    total_blocks: Option<String>,
    mode: Option<String>,
    file_id: Option<String>,
    current_block: Option<String>,
    chunk_sha256: Option<String>,
}

pub(crate) async fn parse(
    request: &Request,
    body: &mut RequestBody,
    limits: ChunkLimits,
    budget: ByteBudget,
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
        .and_then(boundary_of)
        .ok_or_else(|| {
            ApiError::bad_request("the multipart/form-data content type has no boundary")
        })?;
    let stream = body
        .take()
        .map_err(|_| ApiError::bad_request("the request has no body"))?
        .into_bytes_stream();
    let idle = request.data::<BodyIdleTimeout>().and_then(|t| t.0);
    let stream = crate::idle::stall_limited(stream, idle).boxed();
    let mut parts = Multipart::new(stream, &boundary, max_body as u64);

    let mut form = RawForm::default();
    while let Some(part) = parts
        .next_part()
        .await
        .map_err(|e| multipart_error(e, limits))?
    {
        let name = part.name.unwrap_or_default().to_ascii_lowercase();
        match name.as_str() {
            "file" => {
                if form.has_file {
                    return Err(ApiError::bad_request("File: sent more than once"));
                }
                form.has_file = true;
                form.file_name = part.file_name;
                form.content_type = part.content_type;
                if form.is_ready_to_stream() {
                    // Everything the use case needs is known: the File's bytes go to storage
                    // as they arrive.
                    let expected = declared.and_then(|len| parts.data_len_if_last(len as u64));
                    let body = stream_file(parts, limits);
                    return form.into_command(
                        ChunkBody::new(body)
                            .with_budget(budget)
                            .with_expected_len(expected),
                    );
                }
                // Held in memory until the fields arrive, against the server's budget.
                let mut held = budget.reservation();
                let mut buf = BytesMut::new();
                while let Some(piece) = parts
                    .chunk()
                    .await
                    .map_err(|e| multipart_error(e, limits))?
                {
                    if buf.len() + piece.len() > limits.max_chunk_bytes {
                        return Err(too_large(limits));
                    }
                    if held.grow(piece.len() as u64).is_err() {
                        // The rest is read and dropped (it is bounded by the body limit and
                        // holds no memory), so that the client, still sending, reads the 503
                        // instead of a reset connection.
                        drop((buf, held));
                        drain(&mut parts).await;
                        return Err(over_budget());
                    }
                    buf.extend_from_slice(&piece);
                }
                form.data = Some((buf.freeze(), held));
            }
            "blockindex" => once(&mut form.block_index, "BlockIndex", &mut parts, limits).await?,
            "totalblocks" => {
                once(&mut form.total_blocks, "TotalBlocks", &mut parts, limits).await?
            }
            "mode" => once(&mut form.mode, "Mode", &mut parts, limits).await?,
            "fileid" => once(&mut form.file_id, "FileId", &mut parts, limits).await?,
            "currentblock" => {
                once(&mut form.current_block, "CurrentBlock", &mut parts, limits).await?
            }
            "chunksha256" => {
                once(&mut form.chunk_sha256, "ChunkSha256", &mut parts, limits).await?
            }
            // Unknown fields are skipped (by the next `next_part`), as an ASP.NET model binder
            // would; their size still counts against the whole-body limit.
            _ => {}
        }
    }
    let (data, held) = form.data.take().ok_or_else(|| {
        ApiError::bad_request("File: is required (a file part with the chunk's bytes)")
    })?;
    form.into_command(ChunkBody::buffered(data, held))
}

/// The fields of the form whose names this parser knows; one of them after a streamed File
/// comes too late to be used.
const FIELD_NAMES: [(&str, &str); 7] = [
    ("file", "File"),
    ("blockindex", "BlockIndex"),
    ("totalblocks", "TotalBlocks"),
    ("mode", "Mode"),
    ("fileid", "FileId"),
    ("currentblock", "CurrentBlock"),
    ("chunksha256", "ChunkSha256"),
];

/// The File's bytes as they arrive, cut off at the chunk limit; after the File, the rest of the
/// form is read: unknown fields are skipped, a known one is refused (its value would come after
/// the bytes it decides about), so that the stream ends only when the request does.
fn stream_file(
    multipart: Multipart,
    limits: ChunkLimits,
) -> BoxStream<'static, Result<Bytes, BodyError>> {
    struct State {
        multipart: Multipart,
        in_file: bool,
        received: usize,
        done: bool,
    }
    let state = State {
        multipart,
        in_file: true,
        received: 0,
        done: false,
    };
    futures::stream::unfold(state, move |mut state| async move {
        if state.done {
            return None;
        }
        let item = loop {
            if state.in_file {
                match state.multipart.chunk().await {
                    Ok(Some(piece)) => {
                        state.received += piece.len();
                        if state.received > limits.max_chunk_bytes {
                            break Err(BodyError::TooLarge(too_large(limits).message));
                        }
                        break Ok(piece);
                    }
                    Ok(None) => state.in_file = false,
                    Err(e) => break Err(body_error(e, limits)),
                }
                continue;
            }
            match state.multipart.next_part().await {
                Ok(None) => return None,
                Ok(Some(next)) => {
                    let name = next.name.unwrap_or_default().to_ascii_lowercase();
                    if let Some((_, shown)) = FIELD_NAMES.iter().find(|(n, _)| *n == name) {
                        break Err(BodyError::Invalid(format!(
                            "{shown}: must come before File; send the File part last"
                        )));
                    }
                }
                Err(e) => break Err(body_error(e, limits)),
            }
        };
        state.done = item.is_err();
        Some((item, state))
    })
    .boxed()
}

/// Reads what is left of the body, keeping nothing; a failure just ends it.
async fn drain(multipart: &mut Multipart) {
    while let Ok(Some(_)) = multipart.next_part().await {}
}

/// The boundary parameter of a multipart/form-data content type.
fn boundary_of(content_type: &str) -> Option<String> {
    let mime = content_type.parse::<mime::Mime>().ok()?;
    if mime.type_() != mime::MULTIPART || mime.subtype() != mime::FORM_DATA {
        return None;
    }
    let boundary = mime.get_param(mime::BOUNDARY)?.as_str();
    (!boundary.is_empty()).then(|| boundary.to_owned())
}

/// A multipart failure met while the File streams, for the use case to pass back.
fn body_error(e: MultipartError, limits: ChunkLimits) -> BodyError {
    match e {
        MultipartError::Read(cause) => match crate::idle::stall_of(&cause) {
            Some(stalled) => BodyError::Stalled(stalled.0.as_secs()),
            None => BodyError::Broken(cause.to_string()),
        },
        MultipartError::TooLarge(_) => BodyError::TooLarge(too_large(limits).message),
        MultipartError::Incomplete => BodyError::Broken(MultipartError::Incomplete.to_string()),
        MultipartError::Malformed(what) => {
            BodyError::Invalid(format!("the multipart body is malformed: {what}"))
        }
    }
}

impl RawForm {
    /// Whether the use case has what it needs before the File's bytes: the numbers, the mode,
    /// and the file id unless this is the first block (which opens a session without one).
    fn is_ready_to_stream(&self) -> bool {
        let present = |f: &Option<String>| f.as_deref().is_some_and(|v| !v.trim().is_empty());
        let first_block = self.block_index.as_deref().map(str::trim) == Some("0")
            || (!present(&self.block_index)
                && self.current_block.as_deref().map(str::trim) == Some("1"));
        present(&self.total_blocks)
            && (present(&self.block_index) || present(&self.current_block))
            && present(&self.mode)
            && (present(&self.file_id) || first_block)
    }

    fn into_command(self, data: ChunkBody) -> Result<ChunkCommand, ApiError> {
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
            // Checked: an index of i64::MAX has no CurrentBlock.
            (Some(index), Some(current)) if index.checked_add(1) == Some(current) => index,
            (Some(index), Some(current)) => {
                let means = index.checked_add(1).map_or_else(
                    || "no CurrentBlock".to_owned(),
                    |c| format!("CurrentBlock {c}"),
                );
                return Err(ApiError::bad_request(format!(
                    "BlockIndex and CurrentBlock disagree: BlockIndex {index} means {means}, got {current}"
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
        let chunk_sha256 = match self
            .chunk_sha256
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            None => None,
            Some(raw) => Some(
                raw.parse()
                    .map_err(|e| ApiError::bad_request(format!("ChunkSha256: {e}")))?,
            ),
        };
        Ok(ChunkCommand {
            chunk_sha256,
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

/// Reads a text field into its place, refusing a second copy: which of two values was meant
/// cannot be guessed, and taking the last silently would hide a client's bug.
async fn once(
    slot: &mut Option<String>,
    name: &'static str,
    multipart: &mut Multipart,
    limits: ChunkLimits,
) -> Result<(), ApiError> {
    if slot.is_some() {
        return Err(ApiError::bad_request(format!(
            "{name}: sent more than once"
        )));
    }
    *slot = Some(text(multipart, name, limits).await?);
    Ok(())
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
    multipart: &mut Multipart,
    name: &'static str,
    limits: ChunkLimits,
) -> Result<String, ApiError> {
    let mut bytes = Vec::new();
    while let Some(piece) = multipart
        .chunk()
        .await
        .map_err(|e| multipart_error(e, limits))?
    {
        if bytes.len() + piece.len() > MAX_TEXT_FIELD {
            return Err(ApiError::bad_request(format!(
                "{name}: longer than {MAX_TEXT_FIELD} bytes"
            )));
        }
        bytes.extend_from_slice(&piece);
    }
    String::from_utf8(bytes)
        .map_err(|_| ApiError::bad_request(format!("{name}: is not valid UTF-8")))
}

fn over_budget() -> ApiError {
    ApiError::unavailable(BodyError::OverBudget.to_string())
}

fn too_large(limits: ChunkLimits) -> ApiError {
    ApiError::too_large(format!(
        "File: the chunk is larger than the maximum of {} bytes; send smaller chunks",
        limits.max_chunk_bytes
    ))
}

fn multipart_error(e: MultipartError, limits: ChunkLimits) -> ApiError {
    match e {
        MultipartError::Read(cause) => match crate::idle::stall_of(&cause) {
            Some(stalled) => stalled.into(),
            None => ApiError::bad_request(format!("the multipart body is malformed: {cause}")),
        },
        MultipartError::TooLarge(_) => too_large(limits),
        other => ApiError::bad_request(format!("the multipart body is malformed: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parse_with(content_type: &str) -> Result<ChunkCommand, ApiError> {
        let request = Request::builder()
            .header(poem::http::header::CONTENT_TYPE, content_type)
            .body("--x\r\n");
        let (request, mut body) = request.split();
        let limits = ChunkLimits {
            max_chunk_bytes: 1024,
        };
        parse(&request, &mut body, limits, ByteBudget::new(u64::MAX)).await
    }

    #[tokio::test]
    async fn a_form_without_a_boundary_is_told_so() {
        for content_type in ["multipart/form-data", "multipart/form-data; boundary=\"\""] {
            let err = parse_with(content_type).await.expect_err("refused");
            assert_eq!(err.status, StatusCode::BAD_REQUEST);
            assert_eq!(
                err.message, "the multipart/form-data content type has no boundary",
                "{content_type}"
            );
        }
    }

    #[test]
    fn the_boundary_is_read_from_a_form_data_content_type_only() {
        assert_eq!(
            boundary_of("multipart/form-data; boundary=X-B").as_deref(),
            Some("X-B")
        );
        assert_eq!(
            boundary_of("Multipart/Form-Data; charset=utf-8; boundary=\"a b\"").as_deref(),
            Some("a b")
        );
        assert_eq!(boundary_of("multipart/mixed; boundary=X"), None);
        assert_eq!(boundary_of("text/plain; boundary=X"), None);
    }
}
