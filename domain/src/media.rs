//! What Meta accepts. WhatsApp media in a message has a type and a size cap per kind; a
//! template header uploaded through the Resumable Upload API takes only pdf, jpeg, png and mp4.
//! These rules decide, before any byte is sent, whether a task can ever succeed.

use std::str::FromStr;

/// The media kinds of a WhatsApp message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaType {
    Image,
    Video,
    Audio,
    Document,
    Sticker,
}

/// A media type the contract does not name; the text is the one a producer sees in the
/// dead-letter header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown media type `{0}`: expected image, video, audio, document or sticker")]
pub struct UnknownMediaType(String);

/// Why Meta would refuse a file for a use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaRejection {
    #[error("Meta does not accept {content_type} as {use_}; it takes {allowed}")]
    TypeNotAccepted {
        content_type: String,
        use_: String,
        allowed: String,
    },
    #[error("the file has {size} bytes; Meta takes at most {cap} bytes for {use_}")]
    TooLarge { size: u64, cap: u64, use_: String },
}

const MB: u64 = 1_000_000;
const KB: u64 = 1_000;

impl MediaType {
    pub const fn as_str(&self) -> &'static str {
        match self {
            MediaType::Image => "image",
            MediaType::Video => "video",
            MediaType::Audio => "audio",
            MediaType::Document => "document",
            MediaType::Sticker => "sticker",
        }
    }

    /// Meta shows a caption under images, videos and documents only, and refuses one elsewhere.
    pub const fn takes_caption(&self) -> bool {
        matches!(
            self,
            MediaType::Image | MediaType::Video | MediaType::Document
        )
    }

    /// Only a document shows the recipient a file name.
    pub const fn takes_file_name(&self) -> bool {
        matches!(self, MediaType::Document)
    }

    /// The content types WhatsApp accepts for this kind, and its size cap.
    fn rules(&self) -> (&'static [&'static str], u64) {
        match self {
            MediaType::Image => (&["image/jpeg", "image/png"], 5 * MB),
            MediaType::Video => (&["video/mp4", "video/3gpp"], 16 * MB),
            MediaType::Audio => (
                &[
                    "audio/aac",
                    "audio/amr",
                    "audio/mpeg",
                    "audio/mp4",
                    "audio/ogg",
                ],
                16 * MB,
            ),
            MediaType::Document => (
                &[
                    "application/pdf",
                    "text/plain",
                    "application/msword",
                    "application/vnd.ms-excel",
                    "application/vnd.ms-powerpoint",
                    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
                ],
                100 * MB,
            ),
            MediaType::Sticker => (&["image/webp"], 500 * KB),
        }
    }

    /// Checks a file against WhatsApp's rules for this kind of message media.
    pub fn accepts(&self, content_type: &str, size: u64) -> Result<(), MediaRejection> {
        let (types, cap) = self.rules();
        let essence = essence(content_type);
        let use_ = format!("{} message media", self.as_str());
        if !types.contains(&essence.as_str()) {
            return Err(MediaRejection::TypeNotAccepted {
                content_type: essence,
                use_,
                allowed: types.join(", "),
            });
        }
        if size > cap {
            return Err(MediaRejection::TooLarge { size, cap, use_ });
        }
        Ok(())
    }
}

impl FromStr for MediaType {
    type Err = UnknownMediaType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "image" => Ok(MediaType::Image),
            "video" => Ok(MediaType::Video),
            "audio" => Ok(MediaType::Audio),
            "document" => Ok(MediaType::Document),
            "sticker" => Ok(MediaType::Sticker),
            other => Err(UnknownMediaType(other.to_owned())),
        }
    }
}

/// The format of a template's HEADER component that carries a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderFormat {
    Image,
    Video,
    Document,
}

impl HeaderFormat {
    pub const fn as_str(&self) -> &'static str {
        match self {
            HeaderFormat::Image => "IMAGE",
            HeaderFormat::Video => "VIDEO",
            HeaderFormat::Document => "DOCUMENT",
        }
    }

    /// The header format for a file Meta's Resumable Upload API accepts (pdf, jpeg, png, mp4).
    pub fn for_template_file(content_type: &str, size: u64) -> Result<Self, MediaRejection> {
        let essence = essence(content_type);
        let use_ = "a template header".to_owned();
        let (format, cap) = match essence.as_str() {
            "image/jpeg" | "image/jpg" | "image/png" => (HeaderFormat::Image, 5 * MB),
            "video/mp4" => (HeaderFormat::Video, 16 * MB),
            "application/pdf" => (HeaderFormat::Document, 100 * MB),
            _ => {
                return Err(MediaRejection::TypeNotAccepted {
                    content_type: essence,
                    use_,
                    allowed: "application/pdf, image/jpeg, image/jpg, image/png, video/mp4".into(),
                });
            }
        };
        if size > cap {
            return Err(MediaRejection::TooLarge { size, cap, use_ });
        }
        Ok(format)
    }
}

/// A content type without its parameters, lower-cased (`Image/PNG; q=1` is `image/png`).
pub fn essence(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whatsapp_message_media_rules_apply_per_kind() {
        assert_eq!(MediaType::Image.accepts("image/png", 5 * MB), Ok(()));
        assert!(matches!(
            MediaType::Image.accepts("image/png", 5 * MB + 1),
            Err(MediaRejection::TooLarge { .. })
        ));
        assert!(matches!(
            MediaType::Image.accepts("image/webp", 10),
            Err(MediaRejection::TypeNotAccepted { .. })
        ));
        assert_eq!(MediaType::Sticker.accepts("image/webp", 500 * KB), Ok(()));
        assert_eq!(
            MediaType::Document.accepts("application/pdf; charset=binary", 99 * MB),
            Ok(())
        );
        assert_eq!(MediaType::Audio.accepts("audio/ogg", 1), Ok(()));
        assert!(MediaType::Video.accepts("video/quicktime", 1).is_err());
    }

    #[test]
    fn template_headers_take_pdf_jpeg_png_and_mp4_only() {
        assert_eq!(
            HeaderFormat::for_template_file("application/pdf", 10),
            Ok(HeaderFormat::Document)
        );
        assert_eq!(
            HeaderFormat::for_template_file("image/jpg", 10),
            Ok(HeaderFormat::Image)
        );
        assert_eq!(
            HeaderFormat::for_template_file("video/mp4", 10),
            Ok(HeaderFormat::Video)
        );
        assert!(HeaderFormat::for_template_file("image/webp", 10).is_err());
        assert!(HeaderFormat::for_template_file("image/png", 6 * MB).is_err());
    }

    #[test]
    fn media_types_parse_case_insensitively() {
        assert_eq!("Image".parse::<MediaType>(), Ok(MediaType::Image));
        assert_eq!(
            "GIF".parse::<MediaType>().map_err(|e| e.to_string()),
            Err(
                "unknown media type `gif`: expected image, video, audio, document or sticker"
                    .to_owned()
            )
        );
    }
}
