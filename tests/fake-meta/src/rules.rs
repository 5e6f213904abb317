//! What WhatsApp and the Resumable Upload API accept, as Meta's docs list it.

const KB: u64 = 1024;
const MB: u64 = 1024 * 1024;

/// How a message carries a media file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MediaKind {
    Audio,
    Document,
    Image,
    Sticker,
    Video,
}

impl MediaKind {
    pub(crate) fn from_message_type(t: &str) -> Option<Self> {
        Some(match t {
            "audio" => MediaKind::Audio,
            "document" => MediaKind::Document,
            "image" => MediaKind::Image,
            "sticker" => MediaKind::Sticker,
            "video" => MediaKind::Video,
            _ => return None,
        })
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            MediaKind::Audio => "audio",
            MediaKind::Document => "document",
            MediaKind::Image => "image",
            MediaKind::Sticker => "sticker",
            MediaKind::Video => "video",
        }
    }

    /// Meta: "caption: do not use with audio or sticker media".
    pub(crate) fn takes_caption(self) -> bool {
        !matches!(self, MediaKind::Audio | MediaKind::Sticker)
    }
}

/// One type `/{phone-number-id}/media` accepts, and its size cap.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MediaRule {
    pub mime: &'static str,
    pub kind: MediaKind,
    pub max_bytes: u64,
}

const fn rule(mime: &'static str, kind: MediaKind, max_bytes: u64) -> MediaRule {
    MediaRule {
        mime,
        kind,
        max_bytes,
    }
}

/// WhatsApp Cloud API's supported media types (MB read as MiB).
pub(crate) const MESSAGE_MEDIA: [MediaRule; 18] = [
    rule("audio/aac", MediaKind::Audio, 16 * MB),
    rule("audio/amr", MediaKind::Audio, 16 * MB),
    rule("audio/mpeg", MediaKind::Audio, 16 * MB),
    rule("audio/mp4", MediaKind::Audio, 16 * MB),
    rule("audio/ogg", MediaKind::Audio, 16 * MB),
    rule("text/plain", MediaKind::Document, 100 * MB),
    rule("application/pdf", MediaKind::Document, 100 * MB),
    rule("application/msword", MediaKind::Document, 100 * MB),
    rule(
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        MediaKind::Document,
        100 * MB,
    ),
    rule("application/vnd.ms-excel", MediaKind::Document, 100 * MB),
    rule(
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        MediaKind::Document,
        100 * MB,
    ),
    rule(
        "application/vnd.ms-powerpoint",
        MediaKind::Document,
        100 * MB,
    ),
    rule(
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        MediaKind::Document,
        100 * MB,
    ),
    rule("image/jpeg", MediaKind::Image, 5 * MB),
    rule("image/png", MediaKind::Image, 5 * MB),
    rule("image/webp", MediaKind::Sticker, 500 * KB),
    rule("video/mp4", MediaKind::Video, 16 * MB),
    rule("video/3gpp", MediaKind::Video, 16 * MB),
];

/// The largest file any message media type allows.
pub(crate) const LARGEST_MESSAGE_MEDIA: u64 = 100 * MB;

pub(crate) fn message_media(mime: &str) -> Option<MediaRule> {
    MESSAGE_MEDIA
        .iter()
        .find(|r| r.mime.eq_ignore_ascii_case(mime))
        .copied()
}

/// The types the Resumable Upload API accepts.
pub(crate) const RESUMABLE_TYPES: [&str; 5] = [
    "application/pdf",
    "image/jpeg",
    "image/jpg",
    "image/png",
    "video/mp4",
];

/// Whether an uploaded file of `file_type` can be the example of a template header of `format`.
pub(crate) fn header_accepts(format: &str, file_type: &str) -> bool {
    let t = file_type.to_ascii_lowercase();
    match format {
        "IMAGE" => matches!(t.as_str(), "image/jpeg" | "image/jpg" | "image/png"),
        "VIDEO" => t == "video/mp4",
        "DOCUMENT" => t == "application/pdf",
        _ => false,
    }
}
