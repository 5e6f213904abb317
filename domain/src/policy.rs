//! Per-mode policy (contract section 6): the formats each mode takes, decided from a file's
//! first bytes, and the size caps, per mode and, for WhatsApp media, per kind of media. A file
//! over its cap is refused with 413 as soon as the bytes received show it, and at the latest
//! when it would be committed.

use std::fmt;

use crate::content::Format;
use crate::media::MediaType;
use crate::mode::Mode;

/// The formats each mode takes. Fixed, not configurable: Message and Template follow what
/// Meta accepts, which the worker relies on; the others are what a CRM shows inline.
pub fn allowed_formats(mode: Mode) -> &'static [Format] {
    use Format::*;
    match mode {
        Mode::Firm => &[Jpeg, Png, Webp, Ico],
        Mode::Profile | Mode::Contact => &[Jpeg, Png, Webp],
        Mode::Message => &[
            Jpeg, Png, Webp, Mp4, ThreeGpp, Aac, Amr, Mp3, Mp4Audio, Ogg, Pdf, Doc, Xls, Ppt, Docx,
            Xlsx, Pptx, Text,
        ],
        Mode::Template => &[Jpeg, Png, Mp4, Pdf],
        Mode::Import => &[Text],
    }
}

/// What a mode takes, for a person.
const fn allowed_description(mode: Mode) -> &'static str {
    match mode {
        Mode::Firm => "a JPEG, PNG or WebP image or an ICO icon",
        Mode::Profile | Mode::Contact => "a JPEG, PNG or WebP image",
        Mode::Message => {
            "WhatsApp media: a JPEG or PNG image, an MP4 or 3GPP video, AAC, AMR, MP3, MP4 or Ogg \
             audio, a PDF, Office or plain-text document, or a WebP sticker"
        }
        Mode::Template => "a JPEG or PNG image, an MP4 video or a PDF document",
        Mode::Import => "a CSV file in UTF-8 text",
    }
}

/// A file whose first bytes are not a format its mode takes (415).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "{mode} files must be {}; the bytes sent are {}; nothing was kept",
    allowed_description(*mode),
    found.map_or("of no type this service recognizes", Format::describe)
)]
pub struct TypeNotAllowed {
    pub mode: Mode,
    /// What the bytes are, when they are a known format.
    pub found: Option<Format>,
}

/// The format of a file of `mode` whose first bytes sniffed as `found`, if the mode takes it.
pub fn admit_format(mode: Mode, found: Option<Format>) -> Result<Format, TypeNotAllowed> {
    found
        .filter(|f| allowed_formats(mode).contains(f))
        .ok_or(TypeNotAllowed { mode, found })
}

/// The kind of WhatsApp media a format is, for the per-kind caps of Message and Template.
const fn media_kind(format: Format) -> MediaType {
    match format {
        Format::Jpeg | Format::Png | Format::Ico => MediaType::Image,
        Format::Webp => MediaType::Sticker,
        Format::Mp4 | Format::ThreeGpp => MediaType::Video,
        Format::Aac | Format::Amr | Format::Mp3 | Format::Mp4Audio | Format::Ogg => {
            MediaType::Audio
        }
        Format::Pdf
        | Format::Doc
        | Format::Xls
        | Format::Ppt
        | Format::Docx
        | Format::Xlsx
        | Format::Pptx
        | Format::Text => MediaType::Document,
    }
}

const MIB: u64 = 1024 * 1024;
const MB: u64 = 1_000_000;
const KB: u64 = 1_000;

/// The largest file each mode accepts, in bytes, and, in Message and Template, each kind of
/// WhatsApp media (the smaller of the two applies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizeCaps {
    pub firm: u64,
    pub profile: u64,
    pub contact: u64,
    pub message: u64,
    pub template: u64,
    pub import: u64,
    pub image: u64,
    pub video: u64,
    pub audio: u64,
    pub document: u64,
    pub sticker: u64,
}

impl Default for SizeCaps {
    /// Images for logos and pictures 5 MiB; WhatsApp media and templates up to Meta's largest
    /// (documents, 100 MB), each kind at Meta's own cap; CSV imports 50 MiB.
    fn default() -> Self {
        Self {
            firm: 5 * MIB,
            profile: 5 * MIB,
            contact: 5 * MIB,
            message: 100 * MB,
            template: 100 * MB,
            import: 50 * MIB,
            image: 5 * MB,
            video: 16 * MB,
            audio: 16 * MB,
            document: 100 * MB,
            sticker: 500 * KB,
        }
    }
}

/// A file larger than its mode, or its kind of media, allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub struct FileTooLarge {
    pub mode: Mode,
    /// The kind of media whose cap applied, when it was smaller than the mode's.
    pub media: Option<MediaType>,
    pub size: u64,
    pub cap: u64,
}

impl fmt::Display for FileTooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the file has at least {} bytes; {}",
            self.size, self.mode
        )?;
        if let Some(media) = self.media {
            write!(f, " {}", media.as_str())?;
        }
        write!(f, " files may have at most {} bytes", self.cap)
    }
}

impl SizeCaps {
    /// The cap of a file of `mode` whose format is `format` (`None` before it is known, or
    /// for a file stored before formats were checked), and the kind of media it comes from.
    pub fn cap(&self, mode: Mode, format: Option<Format>) -> (u64, Option<MediaType>) {
        let by_mode = match mode {
            Mode::Firm => self.firm,
            Mode::Profile => self.profile,
            Mode::Contact => self.contact,
            Mode::Message => self.message,
            Mode::Template => self.template,
            Mode::Import => self.import,
        };
        let media = format
            .filter(|_| matches!(mode, Mode::Message | Mode::Template))
            .map(media_kind);
        let by_media = media.map(|kind| match kind {
            MediaType::Image => self.image,
            MediaType::Video => self.video,
            MediaType::Audio => self.audio,
            MediaType::Document => self.document,
            MediaType::Sticker => self.sticker,
        });
        match by_media {
            Some(cap) if cap < by_mode => (cap, media),
            _ => (by_mode, None),
        }
    }

    /// Checks that `size` bytes (all or part of a file) fit the cap.
    pub fn check(&self, mode: Mode, format: Option<Format>, size: u64) -> Result<(), FileTooLarge> {
        let (cap, media) = self.cap(mode, format);
        if size > cap {
            Err(FileTooLarge {
                mode,
                media,
                size,
                cap,
            })
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pictures_are_capped_at_five_mib_and_imports_at_fifty() {
        let caps = SizeCaps::default();
        let jpeg = Some(Format::Jpeg);
        assert_eq!(caps.check(Mode::Profile, jpeg, 5 * MIB), Ok(()));
        assert_eq!(
            caps.check(Mode::Profile, jpeg, 5 * MIB + 1),
            Err(FileTooLarge {
                mode: Mode::Profile,
                media: None,
                size: 5 * MIB + 1,
                cap: 5 * MIB
            })
        );
        assert!(caps.check(Mode::Import, None, 50 * MIB + 1).is_err());
        assert!(caps.check(Mode::Message, None, 100 * MB).is_ok());
    }

    #[test]
    fn whatsapp_media_is_capped_per_kind_within_the_mode_cap() {
        let caps = SizeCaps::default();
        let err = caps
            .check(Mode::Message, Some(Format::Png), 5 * MB + 1)
            .unwrap_err();
        assert_eq!(err.media, Some(MediaType::Image));
        assert_eq!(
            err.to_string(),
            "the file has at least 5000001 bytes; Message image files may have at most 5000000 bytes"
        );
        assert!(
            caps.check(Mode::Message, Some(Format::Webp), 500 * KB + 1)
                .is_err()
        );
        assert!(
            caps.check(Mode::Message, Some(Format::Ogg), 16 * MB)
                .is_ok()
        );
        assert!(
            caps.check(Mode::Template, Some(Format::Mp4), 16 * MB + 1)
                .is_err()
        );
        assert!(
            caps.check(Mode::Message, Some(Format::Pdf), 100 * MB)
                .is_ok()
        );
        // Outside WhatsApp's modes the kind does not matter.
        assert_eq!(caps.cap(Mode::Firm, Some(Format::Png)), (5 * MIB, None));
        // A kind's cap above the mode's leaves the mode's.
        let small = SizeCaps {
            message: 1000,
            ..caps
        };
        assert_eq!(small.cap(Mode::Message, Some(Format::Pdf)), (1000, None));
    }

    #[test]
    fn each_mode_takes_its_own_formats() {
        assert_eq!(admit_format(Mode::Firm, Some(Format::Ico)), Ok(Format::Ico));
        let refused = admit_format(Mode::Profile, Some(Format::Ico)).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "Profile files must be a JPEG, PNG or WebP image; the bytes sent are an ICO icon; nothing was kept"
        );
        assert!(admit_format(Mode::Import, Some(Format::Pdf)).is_err());
        assert_eq!(
            admit_format(Mode::Import, Some(Format::Text)),
            Ok(Format::Text)
        );
        assert_eq!(
            admit_format(Mode::Template, Some(Format::Mp4)),
            Ok(Format::Mp4)
        );
        assert!(admit_format(Mode::Template, Some(Format::Webp)).is_err());
        assert!(
            admit_format(Mode::Message, None)
                .unwrap_err()
                .to_string()
                .contains("of no type this service recognizes")
        );
        // Every format WhatsApp takes in a message is one the worker can send.
        for format in allowed_formats(Mode::Message) {
            let ct = format.content_type(Mode::Message);
            assert!(
                media_kind(*format).accepts(ct, 1).is_ok(),
                "{ct} is not accepted as {} media",
                media_kind(*format).as_str()
            );
        }
        for format in allowed_formats(Mode::Template) {
            let ct = format.content_type(Mode::Template);
            assert!(
                crate::HeaderFormat::for_template_file(ct, 1).is_ok(),
                "{ct}"
            );
        }
    }
}

/// How long an open upload may go without a chunk before the sweeper expires it: one time for
/// every mode, unless a mode has its own (imports are typically retried within the hour,
/// profile pictures never come back).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiryPolicy {
    default: std::time::Duration,
    by_mode: Vec<(Mode, std::time::Duration)>,
}

impl ExpiryPolicy {
    pub fn new(default: std::time::Duration) -> Self {
        Self {
            default,
            by_mode: Vec::new(),
        }
    }

    /// The same policy with `mode`'s own time.
    pub fn with_mode(mut self, mode: Mode, after: std::time::Duration) -> Self {
        self.by_mode.retain(|(m, _)| *m != mode);
        self.by_mode.push((mode, after));
        self
    }

    /// How long an upload of `mode` may stay idle.
    pub fn after(&self, mode: Mode) -> std::time::Duration {
        self.by_mode
            .iter()
            .find(|(m, _)| *m == mode)
            .map_or(self.default, |(_, after)| *after)
    }
}

impl Default for ExpiryPolicy {
    /// A day, for every mode.
    fn default() -> Self {
        Self::new(std::time::Duration::from_secs(86_400))
    }
}

#[cfg(test)]
mod expiry_tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_mode_of_its_own_overrides_the_default() {
        let policy = ExpiryPolicy::new(Duration::from_secs(100))
            .with_mode(Mode::Import, Duration::from_secs(10))
            .with_mode(Mode::Import, Duration::from_secs(20));
        assert_eq!(policy.after(Mode::Import), Duration::from_secs(20));
        assert_eq!(policy.after(Mode::Message), Duration::from_secs(100));
        assert_eq!(
            ExpiryPolicy::default().after(Mode::Firm),
            Duration::from_secs(86_400)
        );
    }
}
