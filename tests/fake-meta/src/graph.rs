//! The Graph API routes: parsing the path, the faults, the token, and the six handlers.

#![allow(
    clippy::result_large_err,
    reason = "a GraphError is built at most once per request, on a test server: boxing it buys nothing"
)]

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde_json::{Value, json};

use crate::body::{self, BodyReader, Cut};
use crate::faults::{FaultAction, Operation};
use crate::graph_error::GraphError;
use crate::rules::{self, MediaKind};
use crate::state::{CreatedTemplate, MediaRecord, SentMessage, SessionSlot, Shared, UploadSession};
use crate::util::{alnum, digits, json_response};
use crate::{Hangup, control};

pub(crate) type Resp = Response<Full<Bytes>>;

/// The most a JSON body may hold; Graph's own limits are far below.
const JSON_LIMIT: usize = 1024 * 1024;

/// One request, routed.
enum Route {
    StartUpload { app_id: String },
    ResumableUpload { key: String },
    UploadStatus { key: String },
    MediaUpload { phone_number_id: String },
    SendMessage { phone_number_id: String },
    CreateTemplate { waba_id: String },
}

impl Route {
    fn parse(method: &Method, segments: &[&str]) -> Result<Self, GraphError> {
        let owned = |s: &str| s.to_owned();
        match (method, segments) {
            (&Method::POST, [app, "uploads"]) if !app.is_empty() => {
                Ok(Route::StartUpload { app_id: owned(app) })
            }
            (&Method::POST, [key]) if key.starts_with("upload:") => {
                Ok(Route::ResumableUpload { key: owned(key) })
            }
            (&Method::GET, [key]) if key.starts_with("upload:") => {
                Ok(Route::UploadStatus { key: owned(key) })
            }
            (&Method::POST, [phone, "media"]) if !phone.is_empty() => Ok(Route::MediaUpload {
                phone_number_id: owned(phone),
            }),
            (&Method::POST, [phone, "messages"]) if !phone.is_empty() => Ok(Route::SendMessage {
                phone_number_id: owned(phone),
            }),
            (&Method::POST, [waba, "message_templates"]) if !waba.is_empty() => {
                Ok(Route::CreateTemplate {
                    waba_id: owned(waba),
                })
            }
            _ => Err(GraphError::unsupported_request(
                method,
                segments.first().copied().unwrap_or_default(),
            )),
        }
    }

    fn operation(&self) -> Operation {
        match self {
            Route::StartUpload { .. } => Operation::StartUpload,
            Route::ResumableUpload { .. } => Operation::ResumableUpload,
            Route::UploadStatus { .. } => Operation::UploadStatus,
            Route::MediaUpload { .. } => Operation::MediaUpload,
            Route::SendMessage { .. } => Operation::SendMessage,
            Route::CreateTemplate { .. } => Operation::CreateTemplate,
        }
    }
}

/// What a handler needs besides the body.
struct Ctx<'a> {
    shared: &'a Shared,
    headers: &'a HeaderMap,
    query: &'a [(String, String)],
}

impl Ctx<'_> {
    fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The token from `Authorization: OAuth ...` or `Bearer ...` (either scheme, as Graph
    /// accepts both), or from `access_token` in the query where Graph allows that.
    fn token(&self, query_allowed: bool) -> Option<&str> {
        if let Some(value) = self.headers.get(header::AUTHORIZATION) {
            let (scheme, token) = value.to_str().ok()?.split_once(' ')?;
            let known =
                scheme.eq_ignore_ascii_case("oauth") || scheme.eq_ignore_ascii_case("bearer");
            return known.then(|| token.trim());
        }
        if query_allowed {
            return self.query("access_token");
        }
        None
    }

    fn authorized(&self, query_allowed: bool) -> bool {
        self.token(query_allowed) == Some(self.shared.options.access_token.as_str())
    }
}

/// Every request lands here: the `/_fake/` control routes, or a Graph API call.
pub(crate) async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Resp, Hangup> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path();
    if let Some(rest) = path.strip_prefix("/_fake/") {
        return Ok(control::handle(&shared, &parts.method, rest, body).await);
    }
    let query: Vec<(String, String)> =
        url::form_urlencoded::parse(parts.uri.query().unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let decoded: Vec<String> = path
        .trim_start_matches('/')
        .split('/')
        .map(percent_decode)
        .collect();
    let segments: Vec<&str> = decoded.iter().map(String::as_str).collect();
    let mut reader = BodyReader::new(body);

    let Some((version, rest)) = segments.split_first() else {
        return Ok(reject(
            &mut reader,
            GraphError::unsupported_request(&parts.method, ""),
        )
        .await?);
    };
    if *version != shared.options.api_version {
        let e = GraphError::unknown_version(version, &shared.options.api_version);
        return Ok(reject(&mut reader, e).await?);
    }
    let route = match Route::parse(&parts.method, rest) {
        Ok(route) => route,
        Err(e) => return Ok(reject(&mut reader, e).await?),
    };
    let op = route.operation();
    shared.count(op);
    let fault = shared.take_fault(op);
    match &fault {
        Some(FaultAction::DropConnection { after_bytes }) => reader.drop_after(*after_bytes),
        Some(FaultAction::Stall { after_bytes, ms }) => {
            reader.stall_at(*after_bytes, Duration::from_millis(*ms));
        }
        Some(FaultAction::RateLimit { code }) => {
            return Ok(reject(&mut reader, GraphError::rate_limited(*code)).await?);
        }
        Some(FaultAction::ServerError) => {
            return Ok(reject(&mut reader, GraphError::server_error()).await?);
        }
        Some(FaultAction::Delay { .. }) | None => {}
    }

    let cx = Ctx {
        shared: &shared,
        headers: &parts.headers,
        query: &query,
    };
    let answer = match route {
        Route::StartUpload { app_id } => start_upload(&cx, &app_id, &mut reader).await,
        Route::ResumableUpload { key } => resumable_upload(&cx, &key, &mut reader).await,
        Route::UploadStatus { key } => upload_status(&cx, &key, &mut reader).await,
        Route::MediaUpload { phone_number_id } => {
            media_upload(&cx, &phone_number_id, &mut reader).await
        }
        Route::SendMessage { phone_number_id } => {
            send_message(&cx, &phone_number_id, &mut reader).await
        }
        Route::CreateTemplate { waba_id } => create_template(&cx, &waba_id, &mut reader).await,
    }?;
    match fault {
        Some(FaultAction::DropConnection { .. }) => Err(Hangup),
        Some(FaultAction::Delay { ms }) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(answer)
        }
        _ => Ok(answer),
    }
}

impl From<Cut> for Hangup {
    fn from(_: Cut) -> Self {
        Hangup
    }
}

/// An error answer, once the body is read.
async fn reject(reader: &mut BodyReader, e: GraphError) -> Result<Resp, Cut> {
    reader.drain().await?;
    Ok(e.into_response())
}

fn ok(value: &Value) -> Resp {
    json_response(StatusCode::OK, value)
}

/// `%XX` sequences decoded; anything malformed is kept as it is.
fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map_or_else(|| s.to_owned(), |(_, v)| v.into_owned())
}

// ---------------------------------------------------------------------------------------------
// Resumable Upload API

async fn start_upload(cx: &Ctx<'_>, app_id: &str, reader: &mut BodyReader) -> Result<Resp, Cut> {
    if !cx.authorized(true) {
        return reject(reader, GraphError::invalid_token()).await;
    }
    if cx
        .shared
        .options
        .app_id
        .as_deref()
        .is_some_and(|expected| expected != app_id)
    {
        return reject(
            reader,
            GraphError::unsupported_request(&Method::POST, app_id),
        )
        .await;
    }
    let Some(file_name) = cx.query("file_name").filter(|n| !n.is_empty()) else {
        return reject(reader, GraphError::missing_parameter("file_name")).await;
    };
    let Some(file_length) = cx.query("file_length") else {
        return reject(reader, GraphError::missing_parameter("file_length")).await;
    };
    let file_length = match file_length.parse::<u64>() {
        Ok(n) if n > 0 => n,
        _ => {
            let e = GraphError::invalid_parameter(format!(
                "file_length must be a positive number of bytes, not `{file_length}`"
            ));
            return reject(reader, e).await;
        }
    };
    let Some(file_type) = cx.query("file_type") else {
        return reject(reader, GraphError::missing_parameter("file_type")).await;
    };
    let file_type = file_type.to_ascii_lowercase();
    if !rules::RESUMABLE_TYPES.contains(&file_type.as_str()) {
        let e = GraphError::invalid_parameter(format!(
            "file_type `{file_type}` is not supported; use one of {}",
            rules::RESUMABLE_TYPES.join(", ")
        ));
        return reject(reader, e).await;
    }
    reader.drain().await?;

    // Meta's ids are base64 of the session's description, then a signature as a query string.
    let inner = format!(
        "1:attachment:{}?file_name={}&file_length={file_length}&file_type={}",
        alnum(32),
        url::form_urlencoded::byte_serialize(file_name.as_bytes()).collect::<String>(),
        url::form_urlencoded::byte_serialize(file_type.as_bytes()).collect::<String>(),
    );
    let key = format!("upload:{}", URL_SAFE.encode(inner));
    let sig = format!("AR{}", alnum(17));
    let id = format!("{key}?sig={sig}");
    cx.shared.recorded().uploads.push(SessionSlot {
        key,
        sig,
        session: UploadSession {
            id: id.clone(),
            app_id: app_id.to_owned(),
            file_name: file_name.to_owned(),
            file_type,
            file_length,
            bytes: Vec::new(),
            handle: None,
        },
        writer: Arc::new(tokio::sync::Mutex::new(())),
    });
    Ok(ok(&json!({ "id": id })))
}

/// The session's writer lock, once its token and signature are checked.
fn open_session(
    cx: &Ctx<'_>,
    key: &str,
    method: &Method,
) -> Result<Arc<tokio::sync::Mutex<()>>, GraphError> {
    // Meta: "The access token must be included in an Authorization HTTP header."
    if !cx.authorized(false) {
        return Err(GraphError::invalid_token());
    }
    let rec = cx.shared.recorded();
    let Some(slot) = rec.session(key) else {
        return Err(GraphError::unsupported_request(method, key));
    };
    if cx.query("sig") != Some(slot.sig.as_str()) {
        return Err(GraphError::incorrect_signature());
    }
    Ok(slot.writer.clone())
}

/// Counts, the session's id and its handle, read under the lock.
fn progress(cx: &Ctx<'_>, key: &str) -> (u64, u64, String, Option<String>) {
    let rec = cx.shared.recorded();
    rec.session(key).map_or((0, 0, String::new(), None), |s| {
        let s = &s.session;
        (
            s.bytes.len() as u64,
            s.file_length,
            s.id.clone(),
            s.handle.clone(),
        )
    })
}

async fn resumable_upload(cx: &Ctx<'_>, key: &str, reader: &mut BodyReader) -> Result<Resp, Cut> {
    let writer = match open_session(cx, key, &Method::POST) {
        Ok(w) => w,
        Err(e) => return reject(reader, e).await,
    };
    let offset = cx
        .headers
        .get("file_offset")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().parse::<u64>());
    let offset = match offset {
        Some(Ok(offset)) => offset,
        Some(Err(_)) => {
            let e = GraphError::invalid_parameter("the file_offset header must be a number");
            return reject(reader, e).await;
        }
        None => return reject(reader, GraphError::missing_parameter("file_offset")).await,
    };
    // One writer at a time: a second request waits, then meets the new offset.
    let _writing = writer.lock().await;
    let (received, length, _, _) = progress(cx, key);
    if offset != received {
        let e = GraphError::invalid_parameter(format!(
            "file_offset {offset} does not match the {received} bytes received so far"
        ));
        return reject(reader, e).await;
    }
    let mut overflow = false;
    while let Some(chunk) = reader.next_chunk().await? {
        // What arrived is kept even if the connection breaks later, as Meta keeps it.
        let appended = {
            let mut rec = cx.shared.recorded();
            rec.session_mut(key).is_some_and(|slot| {
                let s = &mut slot.session;
                let fits = s.bytes.len() as u64 + chunk.len() as u64 <= s.file_length;
                if fits {
                    s.bytes.extend_from_slice(&chunk);
                }
                fits
            })
        };
        if !appended {
            overflow = true;
            reader.drain().await?;
            break;
        }
    }
    if overflow {
        let e = GraphError::invalid_parameter(format!(
            "the body goes past file_length ({length} bytes)"
        ));
        return Ok(e.into_response());
    }
    let (received, length, id, handle) = progress(cx, key);
    if received < length {
        // The body ended cleanly but short: tell where the session stands.
        return Ok(ok(&json!({ "id": id, "file_offset": received })));
    }
    let handle = match handle {
        Some(h) => h,
        None => {
            let mut rec = cx.shared.recorded();
            match rec.session_mut(key) {
                Some(slot) => {
                    let s = &mut slot.session;
                    let h = new_handle(&s.file_name, &s.file_type);
                    s.handle = Some(h.clone());
                    h
                }
                None => String::new(),
            }
        }
    };
    Ok(ok(&json!({ "h": handle })))
}

/// A handle in Meta's shape: `2:{base64 name}:{type}:{opaque}:e:{expiry}:{signature}`.
fn new_handle(file_name: &str, file_type: &str) -> String {
    let expiry = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        + 30 * 24 * 3600;
    format!(
        "2:{}:{file_type}:{}:e:{expiry}:AR{}",
        STANDARD.encode(file_name),
        alnum(36),
        alnum(17)
    )
}

async fn upload_status(cx: &Ctx<'_>, key: &str, reader: &mut BodyReader) -> Result<Resp, Cut> {
    let writer = match open_session(cx, key, &Method::GET) {
        Ok(w) => w,
        Err(e) => return reject(reader, e).await,
    };
    reader.drain().await?;
    // Bytes still arriving on another connection count before the offset is told.
    let _settled = writer.lock().await;
    let (received, _, id, _) = progress(cx, key);
    Ok(ok(&json!({ "id": id, "file_offset": received })))
}

// ---------------------------------------------------------------------------------------------
// WhatsApp Cloud API

/// The `/media` form as received.
#[derive(Default)]
struct MediaForm {
    messaging_product: Option<String>,
    declared_type: Option<String>,
    file: Option<FilePart>,
}

struct FilePart {
    content_type: Option<String>,
    file_name: Option<String>,
    bytes: Vec<u8>,
    /// The part's full size; bytes beyond the type's cap are counted, not kept.
    size: u64,
}

async fn read_media_form(mp: &mut multer::Multipart<'_>) -> Result<MediaForm, multer::Error> {
    let mut form = MediaForm::default();
    while let Some(mut field) = mp.next_field().await? {
        match field.name() {
            Some("messaging_product") => form.messaging_product = Some(field.text().await?),
            Some("type") => form.declared_type = Some(field.text().await?),
            Some("file") => {
                let content_type = field.content_type().map(|m| m.essence_str().to_owned());
                let cap = content_type
                    .as_deref()
                    .and_then(rules::message_media)
                    .map_or(rules::LARGEST_MESSAGE_MEDIA, |r| r.max_bytes);
                let mut part = FilePart {
                    content_type,
                    file_name: field.file_name().map(str::to_owned),
                    bytes: Vec::new(),
                    size: 0,
                };
                while let Some(chunk) = field.chunk().await? {
                    part.size += chunk.len() as u64;
                    if part.size <= cap {
                        part.bytes.extend_from_slice(&chunk);
                    }
                }
                form.file = Some(part);
            }
            _ => while field.chunk().await?.is_some() {},
        }
    }
    Ok(form)
}

async fn media_upload(
    cx: &Ctx<'_>,
    phone_number_id: &str,
    reader: &mut BodyReader,
) -> Result<Resp, Cut> {
    if !cx.authorized(true) {
        return reject(reader, GraphError::invalid_token()).await;
    }
    let boundary = cx
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| multer::parse_boundary(ct).ok());
    let Some(boundary) = boundary else {
        return reject(reader, GraphError::missing_parameter("messaging_product")).await;
    };
    let parsed = {
        let mut mp = multer::Multipart::new(body::stream(reader), boundary);
        read_media_form(&mut mp).await
    };
    if let Some(cut) = reader.cut() {
        return Err(cut);
    }
    let form = match parsed {
        Ok(form) => form,
        Err(e) => {
            let e = GraphError::invalid_parameter(format!("malformed multipart body: {e}"));
            return reject(reader, e).await;
        }
    };
    reader.drain().await?;
    match check_media_form(phone_number_id, form) {
        Ok(record) => {
            let id = record.id.clone();
            cx.shared.recorded().media.push(record);
            Ok(ok(&json!({ "id": id })))
        }
        Err(e) => Ok(e.into_response()),
    }
}

fn check_media_form(phone_number_id: &str, form: MediaForm) -> Result<MediaRecord, GraphError> {
    match form.messaging_product.as_deref() {
        None => return Err(GraphError::missing_parameter("messaging_product")),
        Some("whatsapp") => {}
        Some(other) => {
            return Err(GraphError::invalid_parameter(format!(
                "messaging_product must be `whatsapp`, not `{other}`"
            )));
        }
    }
    let Some(declared_type) = form.declared_type else {
        return Err(GraphError::missing_parameter("type"));
    };
    let Some(file) = form.file else {
        return Err(GraphError::missing_parameter("file"));
    };
    let content_type = file.content_type.unwrap_or_default();
    let Some(rule) = rules::message_media(&content_type) else {
        let accepted: Vec<&str> = rules::MESSAGE_MEDIA.iter().map(|r| r.mime).collect();
        return Err(GraphError::invalid_parameter(format!(
            "Param file must be a file with one of the following types: {}. Received file of type '{content_type}'.",
            accepted.join(", ")
        )));
    };
    if !declared_type.eq_ignore_ascii_case(&content_type) {
        return Err(GraphError::invalid_parameter(format!(
            "type `{declared_type}` does not match the file part's Content-Type `{content_type}`"
        )));
    }
    if file.size == 0 {
        return Err(GraphError::media_upload("the file is empty"));
    }
    if file.size > rule.max_bytes {
        return Err(GraphError::media_upload(format!(
            "the file has {} bytes; WhatsApp accepts at most {} bytes of {}",
            file.size, rule.max_bytes, rule.mime
        )));
    }
    Ok(MediaRecord {
        id: digits(16),
        phone_number_id: phone_number_id.to_owned(),
        content_type: rule.mime.to_owned(),
        declared_type,
        file_name: file.file_name,
        bytes: file.bytes,
    })
}

/// The body as JSON, or the error Graph gives for a body it cannot read.
async fn read_json(reader: &mut BodyReader) -> Result<Result<Value, GraphError>, Cut> {
    let Some(body) = reader.read_all(JSON_LIMIT).await? else {
        return Ok(Err(GraphError::invalid_parameter("the body is too large")));
    };
    Ok(serde_json::from_slice(&body)
        .map_err(|e| GraphError::invalid_parameter(format!("the body is not JSON: {e}"))))
}

async fn send_message(
    cx: &Ctx<'_>,
    phone_number_id: &str,
    reader: &mut BodyReader,
) -> Result<Resp, Cut> {
    if !cx.authorized(true) {
        return reject(reader, GraphError::invalid_token()).await;
    }
    let payload = match read_json(reader).await? {
        Ok(v) => v,
        Err(e) => return Ok(e.into_response()),
    };
    let to = match check_message(cx.shared, phone_number_id, &payload) {
        Ok(to) => to,
        Err(e) => return Ok(e.into_response()),
    };
    let id = format!("wamid.{}", STANDARD.encode(alnum(36)));
    cx.shared.recorded().messages.push(SentMessage {
        id: id.clone(),
        phone_number_id: phone_number_id.to_owned(),
        payload,
    });
    Ok(ok(&json!({
        "messaging_product": "whatsapp",
        "contacts": [{ "input": to, "wa_id": to.trim_start_matches('+') }],
        "messages": [{ "id": id }],
    })))
}

fn str_field<'v>(v: &'v Value, name: &str) -> Option<&'v str> {
    v.get(name).and_then(Value::as_str)
}

/// The recipient, when the message is one Meta would take.
fn check_message(shared: &Shared, phone_number_id: &str, p: &Value) -> Result<String, GraphError> {
    if !p.is_object() {
        return Err(GraphError::invalid_parameter(
            "the body must be a JSON object",
        ));
    }
    match p.get("messaging_product") {
        None => return Err(GraphError::missing_parameter("messaging_product")),
        Some(v) if v == "whatsapp" => {}
        Some(v) => {
            return Err(GraphError::invalid_parameter(format!(
                "messaging_product must be `whatsapp`, not {v}"
            )));
        }
    }
    if let Some(rt) = p.get("recipient_type")
        && rt != "individual"
    {
        return Err(GraphError::whatsapp_invalid(format!(
            "recipient_type must be `individual`, not {rt}"
        )));
    }
    let Some(to) = str_field(p, "to") else {
        return Err(GraphError::missing_parameter("to"));
    };
    let digits_only = to.strip_prefix('+').unwrap_or(to);
    if !(5..=20).contains(&digits_only.len()) || !digits_only.bytes().all(|b| b.is_ascii_digit()) {
        return Err(GraphError::whatsapp_invalid(format!(
            "`to` must be a phone number in international format, not `{to}`"
        )));
    }
    let kind = match p.get("type") {
        None => "text",
        Some(Value::String(t)) => t.as_str(),
        Some(other) => {
            return Err(GraphError::invalid_parameter(format!(
                "type must be a string, not {other}"
            )));
        }
    };
    if kind == "text" {
        let body = p.get("text").and_then(|t| str_field(t, "body"));
        return match body {
            Some(b) if !b.is_empty() && b.chars().count() <= 4096 => Ok(to.to_owned()),
            _ => Err(GraphError::missing_parameter("text['body']")),
        };
    }
    let Some(media_kind) = MediaKind::from_message_type(kind) else {
        return Err(GraphError::whatsapp_invalid(format!(
            "message type `{kind}` is not one this fake serves (text, image, video, audio, document, sticker)"
        )));
    };
    let Some(media) = p.get(kind).filter(|m| m.is_object()) else {
        return Err(GraphError::missing_parameter(kind));
    };
    match (media.get("id"), media.get("link")) {
        (Some(Value::String(id)), None) => {
            let rec = shared.recorded();
            let Some(uploaded) = rec
                .media(id)
                .filter(|m| m.phone_number_id == phone_number_id)
            else {
                return Err(GraphError::whatsapp_invalid(format!(
                    "media id {id} was not uploaded for phone number {phone_number_id}"
                )));
            };
            // Meta would accept this and fail later in a webhook; the fake says so at once.
            let uploaded_kind = rules::message_media(&uploaded.content_type).map(|r| r.kind);
            if uploaded_kind != Some(media_kind) {
                return Err(GraphError::whatsapp_invalid(format!(
                    "media {id} is {}, which cannot be sent as {kind}",
                    uploaded.content_type
                )));
            }
        }
        (None, Some(Value::String(link)))
            if link.starts_with("https://") || link.starts_with("http://") => {}
        _ => {
            return Err(GraphError::whatsapp_invalid(format!(
                "{kind} needs exactly one of `id` (an uploaded media id) or `link` (a URL)"
            )));
        }
    }
    if let Some(caption) = media.get("caption") {
        if !media_kind.takes_caption() {
            return Err(GraphError::whatsapp_invalid(format!(
                "{} media takes no caption",
                media_kind.as_str()
            )));
        }
        if !caption.is_string() {
            return Err(GraphError::invalid_parameter("caption must be a string"));
        }
    }
    if let Some(filename) = media.get("filename")
        && (media_kind != MediaKind::Document || !filename.is_string())
    {
        return Err(GraphError::whatsapp_invalid(
            "filename is a string, and only documents take one",
        ));
    }
    Ok(to.to_owned())
}

async fn create_template(
    cx: &Ctx<'_>,
    waba_id: &str,
    reader: &mut BodyReader,
) -> Result<Resp, Cut> {
    if !cx.authorized(true) {
        return reject(reader, GraphError::invalid_token()).await;
    }
    let payload = match read_json(reader).await? {
        Ok(v) => v,
        Err(e) => return Ok(e.into_response()),
    };
    let mut rec = cx.shared.recorded();
    let category = match check_template(&rec, &payload) {
        Ok(c) => c,
        Err(e) => return Ok(e.into_response()),
    };
    let name = str_field(&payload, "name").unwrap_or_default();
    let language = str_field(&payload, "language").unwrap_or_default();
    let exists = rec.templates.iter().any(|t| {
        t.waba_id == waba_id
            && str_field(&t.payload, "name") == Some(name)
            && str_field(&t.payload, "language") == Some(language)
    });
    if exists {
        return Ok(GraphError::template_exists(language).into_response());
    }
    let id = digits(15);
    rec.templates.push(CreatedTemplate {
        id: id.clone(),
        waba_id: waba_id.to_owned(),
        status: "PENDING".to_owned(),
        category: category.clone(),
        payload,
    });
    Ok(ok(
        &json!({ "id": id, "status": "PENDING", "category": category }),
    ))
}

/// The category, when the template is one Meta would take for review.
fn check_template(rec: &crate::state::Recorded, p: &Value) -> Result<String, GraphError> {
    let Some(name) = str_field(p, "name") else {
        return Err(GraphError::missing_parameter("name"));
    };
    let name_ok = !name.is_empty()
        && name.len() <= 512
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !name_ok {
        return Err(GraphError::invalid_parameter(format!(
            "name `{name}` must be 1 to 512 lowercase letters, digits and underscores"
        )));
    }
    if str_field(p, "language").is_none_or(str::is_empty) {
        return Err(GraphError::missing_parameter("language"));
    }
    let Some(category) = str_field(p, "category") else {
        return Err(GraphError::missing_parameter("category"));
    };
    let category = category.to_ascii_uppercase();
    if !matches!(
        category.as_str(),
        "MARKETING" | "UTILITY" | "AUTHENTICATION"
    ) {
        return Err(GraphError::invalid_parameter(format!(
            "category `{category}` must be MARKETING, UTILITY or AUTHENTICATION"
        )));
    }
    let Some(components) = p
        .get("components")
        .and_then(Value::as_array)
        .filter(|c| !c.is_empty())
    else {
        return Err(GraphError::missing_parameter("components"));
    };
    let (mut bodies, mut headers) = (0, 0);
    for component in components {
        let kind = str_field(component, "type")
            .unwrap_or_default()
            .to_ascii_uppercase();
        match kind.as_str() {
            "BODY" => {
                bodies += 1;
                if str_field(component, "text").is_none_or(str::is_empty) {
                    return Err(GraphError::invalid_parameter(
                        "the BODY component needs a text",
                    ));
                }
            }
            "HEADER" => {
                headers += 1;
                check_header(rec, component)?;
            }
            "FOOTER" | "BUTTONS" => {}
            other => {
                return Err(GraphError::invalid_parameter(format!(
                    "component type `{other}` must be HEADER, BODY, FOOTER or BUTTONS"
                )));
            }
        }
    }
    if bodies != 1 || headers > 1 {
        return Err(GraphError::invalid_parameter(
            "a template has exactly one BODY and at most one HEADER",
        ));
    }
    Ok(category)
}

fn check_header(rec: &crate::state::Recorded, header: &Value) -> Result<(), GraphError> {
    let format = str_field(header, "format")
        .unwrap_or_default()
        .to_ascii_uppercase();
    match format.as_str() {
        "TEXT" => {
            if str_field(header, "text").is_none_or(str::is_empty) {
                return Err(GraphError::invalid_parameter("a TEXT header needs a text"));
            }
            Ok(())
        }
        "LOCATION" => Ok(()),
        "IMAGE" | "VIDEO" | "DOCUMENT" => {
            let handle = header
                .get("example")
                .and_then(|e| e.get("header_handle"))
                .and_then(Value::as_array)
                .and_then(|a| a.first())
                .and_then(Value::as_str);
            let Some(handle) = handle else {
                return Err(GraphError::missing_parameter("example['header_handle']"));
            };
            let Some(upload) = rec.upload_by_handle(handle) else {
                return Err(GraphError::invalid_parameter(format!(
                    "header_handle `{handle}` is not the handle of a finished upload"
                )));
            };
            if !rules::header_accepts(&format, &upload.file_type) {
                return Err(GraphError::invalid_parameter(format!(
                    "a {format} header cannot show a {} file",
                    upload.file_type
                )));
            }
            Ok(())
        }
        other => Err(GraphError::invalid_parameter(format!(
            "header format `{other}` must be TEXT, IMAGE, VIDEO, DOCUMENT or LOCATION"
        ))),
    }
}

/// Kept here so that the module's helpers are testable without a server.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_percent_decoded() {
        assert_eq!(percent_decode("upload%3Aabc"), "upload:abc");
        assert_eq!(percent_decode("a+b"), "a+b");
        assert_eq!(percent_decode("plain"), "plain");
    }

    #[test]
    fn handles_look_like_metas() {
        let h = new_handle("a.png", "image/png");
        assert!(h.starts_with("2:YS5wbmc=:image/png:"), "{h}");
    }
}
