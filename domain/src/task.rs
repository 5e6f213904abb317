//! The media task contract (`openapi/media-task.schema.json`) as values. A `MediaTask` exists
//! only once every rule that needs no I/O holds, so the worker never starts sending a task that
//! Meta or the contract would refuse for its shape: such a task goes to the dead letters before
//! any byte leaves.
//!
//! Error texts name the schema's fields (`message.to`, `template.name`) because they end up in
//! the dead-letter header and the task record, where the producer who wrote the task reads them.

use std::fmt;
use std::str::FromStr;

use crate::ids::{FileId, FirmId, TaskId};
use crate::media::{MediaType, UnknownMediaType};

/// The task format version this worker reads.
pub const TASK_VERSION: u32 = 1;

/// A rule of the task contract that a task breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidTask {
    #[error("unsupported task version {0}; this worker reads version {TASK_VERSION}")]
    UnsupportedVersion(u32),
    #[error("a task carries exactly one of `message` and `template`")]
    NotOneTarget,
    /// A required text field that is empty or blank; the schema's path of the field.
    #[error("{0} is required")]
    MissingField(&'static str),
    /// The recipient as the producer wrote it.
    #[error("message.to must be a phone number in international format, got `{0}`")]
    BadRecipient(String),
    #[error(transparent)]
    UnknownMediaType(#[from] UnknownMediaType),
    #[error("message.caption is not allowed for {} media", .0.as_str())]
    CaptionNotAllowed(MediaType),
    #[error("message.fileName is only allowed for document media")]
    FileNameNotAllowed(MediaType),
    #[error("template.name must be lower-case letters, digits and `_`, got `{0}`")]
    BadTemplateName(String),
    #[error("template.category must be MARKETING, UTILITY or AUTHENTICATION, got `{0}`")]
    UnknownCategory(String),
}

/// Checked before anything else in a task: a later version may mean something else by the
/// same fields, so none of them is looked at.
pub fn check_task_version(version: u32) -> Result<(), InvalidTask> {
    if version == TASK_VERSION {
        Ok(())
    } else {
        Err(InvalidTask::UnsupportedVersion(version))
    }
}

/// A text the contract requires but does not constrain further. It is kept as the producer
/// wrote it: Graph ids and language codes are Meta's to judge, and the Meta adapter refuses an
/// id that would not stay one URL path segment.
macro_rules! required_text {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub struct $name(String);

        impl $name {
            pub fn new(value: String) -> Result<Self, InvalidTask> {
                if value.trim().is_empty() {
                    Err(InvalidTask::MissingField($field))
                } else {
                    Ok(Self(value))
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

required_text!(
    /// The WhatsApp Business phone number id that sends a message (`message.phoneNumberId`).
    PhoneNumberId,
    "message.phoneNumberId"
);
required_text!(
    /// The WhatsApp Business Account a template is created in (`template.wabaId`).
    WabaId,
    "template.wabaId"
);
required_text!(
    /// A template's language code, such as `en_US` (`template.language`).
    TemplateLanguage,
    "template.language"
);

/// The recipient of a message: 1 to 20 digits, the international number without its `+`, as
/// Meta's `to` takes it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Recipient(String);

impl Recipient {
    /// Accepts the number with or without a leading `+` and surrounding blanks.
    pub fn new(raw: &str) -> Result<Self, InvalidTask> {
        let trimmed = raw.trim();
        let digits = trimmed.strip_prefix('+').unwrap_or(trimmed);
        if digits.is_empty() || digits.len() > 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(InvalidTask::BadRecipient(raw.to_owned()));
        }
        Ok(Self(digits.to_owned()))
    }

    /// The digits alone.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A template's name: lower-case letters, digits and `_`, as Meta requires.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TemplateName(String);

impl TemplateName {
    pub fn new(name: String) -> Result<Self, InvalidTask> {
        let allowed = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_';
        if name.is_empty() || !name.bytes().all(allowed) {
            return Err(InvalidTask::BadTemplateName(name));
        }
        Ok(Self(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TemplateName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The category Meta reviews a template under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TemplateCategory {
    Marketing,
    Utility,
    Authentication,
}

impl TemplateCategory {
    /// The spelling Meta's API uses.
    pub const fn as_str(&self) -> &'static str {
        match self {
            TemplateCategory::Marketing => "MARKETING",
            TemplateCategory::Utility => "UTILITY",
            TemplateCategory::Authentication => "AUTHENTICATION",
        }
    }
}

impl FromStr for TemplateCategory {
    type Err = InvalidTask;

    /// Any case: producers write `marketing` as often as `MARKETING`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_uppercase().as_str() {
            "MARKETING" => Ok(TemplateCategory::Marketing),
            "UTILITY" => Ok(TemplateCategory::Utility),
            "AUTHENTICATION" => Ok(TemplateCategory::Authentication),
            _ => Err(InvalidTask::UnknownCategory(s.to_owned())),
        }
    }
}

impl fmt::Display for TemplateCategory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A WhatsApp message whose media is the task's file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaMessage {
    phone_number_id: PhoneNumberId,
    to: Recipient,
    media_type: MediaType,
    caption: Option<String>,
    file_name: Option<String>,
}

impl MediaMessage {
    /// Meta refuses a caption on audio and stickers and shows a file name on documents only;
    /// a task asking for either elsewhere is refused here rather than half-sent.
    pub fn new(
        phone_number_id: PhoneNumberId,
        to: Recipient,
        media_type: MediaType,
        caption: Option<String>,
        file_name: Option<String>,
    ) -> Result<Self, InvalidTask> {
        if caption.is_some() && !media_type.takes_caption() {
            return Err(InvalidTask::CaptionNotAllowed(media_type));
        }
        if file_name.is_some() && !media_type.takes_file_name() {
            return Err(InvalidTask::FileNameNotAllowed(media_type));
        }
        Ok(Self {
            phone_number_id,
            to,
            media_type,
            caption,
            file_name,
        })
    }

    pub fn phone_number_id(&self) -> &PhoneNumberId {
        &self.phone_number_id
    }

    pub fn to(&self) -> &Recipient {
        &self.to
    }

    pub fn media_type(&self) -> MediaType {
        self.media_type
    }

    pub fn caption(&self) -> Option<&str> {
        self.caption.as_deref()
    }

    /// The name the recipient sees (documents only); the uploaded file's own name otherwise.
    pub fn file_name(&self) -> Option<&str> {
        self.file_name.as_deref()
    }
}

/// A message template to create, whose HEADER shows the task's file.
///
/// `C` is one of Meta's template components (BODY, FOOTER, BUTTONS, maybe the HEADER) in the
/// caller's representation: the contract passes them through to Meta, so the domain has no
/// rule for them and no JSON type to hold them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTemplate<C> {
    waba_id: WabaId,
    name: TemplateName,
    language: TemplateLanguage,
    category: TemplateCategory,
    components: Vec<C>,
}

impl<C> NewTemplate<C> {
    /// Infallible: each part carries its own rule.
    pub fn new(
        waba_id: WabaId,
        name: TemplateName,
        language: TemplateLanguage,
        category: TemplateCategory,
        components: Vec<C>,
    ) -> Self {
        Self {
            waba_id,
            name,
            language,
            category,
            components,
        }
    }

    pub fn waba_id(&self) -> &WabaId {
        &self.waba_id
    }

    pub fn name(&self) -> &TemplateName {
        &self.name
    }

    pub fn language(&self) -> &TemplateLanguage {
        &self.language
    }

    pub fn category(&self) -> TemplateCategory {
        self.category
    }

    pub fn components(&self) -> &[C] {
        &self.components
    }
}

/// What a task sends: the contract's `message` or its `template`, never both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaTarget<C> {
    Message(MediaMessage),
    Template(NewTemplate<C>),
}

impl<C> MediaTarget<C> {
    /// The kind as the task record stores it.
    pub const fn kind(&self) -> &'static str {
        match self {
            MediaTarget::Message(_) => "message",
            MediaTarget::Template(_) => "template",
        }
    }
}

/// A task that passed every check that needs no I/O. Whether its file exists, is complete and
/// is of a type Meta takes is for the worker to find out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaTask<C> {
    id: TaskId,
    firm: FirmId,
    file: FileId,
    target: MediaTarget<C>,
}

impl<C> MediaTask<C> {
    /// Infallible: the target carries its rules; call [`check_task_version`] first.
    pub fn new(id: TaskId, firm: FirmId, file: FileId, target: MediaTarget<C>) -> Self {
        Self {
            id,
            firm,
            file,
            target,
        }
    }

    pub fn id(&self) -> TaskId {
        self.id
    }

    pub fn firm(&self) -> FirmId {
        self.firm
    }

    pub fn file(&self) -> FileId {
        self.file
    }

    pub fn target(&self) -> &MediaTarget<C> {
        &self.target
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(result: Result<impl fmt::Debug, InvalidTask>) -> String {
        match result {
            Ok(value) => format!("ok {value:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn only_version_1_is_read() {
        assert_eq!(check_task_version(1), Ok(()));
        assert_eq!(
            text(check_task_version(2)),
            "unsupported task version 2; this worker reads version 1"
        );
    }

    #[test]
    fn required_texts_refuse_empty_and_blank_values_and_keep_the_rest_as_given() {
        for (value, ok) in [
            ("106540352242922", true),
            (" 1 ", true),
            ("", false),
            ("  \t", false),
        ] {
            let id = PhoneNumberId::new(value.to_owned());
            assert_eq!(id.is_ok(), ok, "{value:?}");
            if let Ok(id) = id {
                assert_eq!(id.as_str(), value);
            }
        }
        assert_eq!(
            text(PhoneNumberId::new(" ".into())),
            "message.phoneNumberId is required"
        );
        assert_eq!(
            text(WabaId::new(String::new())),
            "template.wabaId is required"
        );
        assert_eq!(
            text(TemplateLanguage::new(String::new())),
            "template.language is required"
        );
        assert_eq!(
            TemplateLanguage::new("en_US".into()).map(|l| l.to_string()),
            Ok("en_US".into())
        );
    }

    #[test]
    fn recipients_are_1_to_20_digits_with_an_optional_plus() {
        let cases: &[(&str, Option<&str>)] = &[
            ("+4915112345678", Some("4915112345678")),
            ("4915112345678", Some("4915112345678")),
            (" +49151 ", Some("49151")),
            ("1", Some("1")),
            ("12345678901234567890", Some("12345678901234567890")),
            ("123456789012345678901", None),
            ("", None),
            ("+", None),
            ("++49", None),
            ("+49 151", None),
            ("49-151", None),
            ("０１２", None),
        ];
        for (raw, expected) in cases {
            let got = Recipient::new(raw);
            assert_eq!(
                got.as_ref().ok().map(Recipient::as_str),
                *expected,
                "{raw:?}"
            );
            if expected.is_none() {
                assert_eq!(
                    text(got),
                    format!(
                        "message.to must be a phone number in international format, got `{raw}`"
                    )
                );
            }
        }
    }

    #[test]
    fn template_names_are_lower_case_letters_digits_and_underscores() {
        for (name, ok) in [
            ("spring_sale", true),
            ("sale_2026", true),
            ("_", true),
            ("", false),
            ("Spring_sale", false),
            ("spring-sale", false),
            ("spring sale", false),
            ("soirée", false),
        ] {
            assert_eq!(TemplateName::new(name.to_owned()).is_ok(), ok, "{name:?}");
        }
        assert_eq!(
            text(TemplateName::new("Sale!".into())),
            "template.name must be lower-case letters, digits and `_`, got `Sale!`"
        );
    }

    #[test]
    fn categories_parse_in_any_case_and_print_as_meta_spells_them() {
        let cases: &[(&str, Option<TemplateCategory>)] = &[
            ("MARKETING", Some(TemplateCategory::Marketing)),
            ("marketing", Some(TemplateCategory::Marketing)),
            ("Utility", Some(TemplateCategory::Utility)),
            ("authentication", Some(TemplateCategory::Authentication)),
            ("", None),
            ("promo", None),
            ("MARKETING ", None),
        ];
        for (raw, expected) in cases {
            assert_eq!(raw.parse::<TemplateCategory>().ok(), *expected, "{raw:?}");
        }
        assert_eq!(TemplateCategory::Utility.to_string(), "UTILITY");
        assert_eq!(
            text("promo".parse::<TemplateCategory>()),
            "template.category must be MARKETING, UTILITY or AUTHENTICATION, got `promo`"
        );
    }

    #[test]
    fn captions_and_file_names_go_only_where_meta_shows_them() {
        let message = |media_type, caption: Option<&str>, file_name: Option<&str>| {
            MediaMessage::new(
                PhoneNumberId::new("1".into()).map_err(|e| e.to_string())?,
                Recipient::new("+49151").map_err(|e| e.to_string())?,
                media_type,
                caption.map(str::to_owned),
                file_name.map(str::to_owned),
            )
            .map(|_| ())
            .map_err(|e| e.to_string())
        };
        use MediaType::*;
        /// Media type, caption, file name, and the verdict.
        type Case<'a> = (
            MediaType,
            Option<&'a str>,
            Option<&'a str>,
            Result<(), &'a str>,
        );
        let cases: &[Case] = &[
            (Image, Some("Hi"), None, Ok(())),
            (Video, Some("Hi"), None, Ok(())),
            (Document, Some("Q3"), Some("q3.pdf"), Ok(())),
            (Audio, None, None, Ok(())),
            (Sticker, None, None, Ok(())),
            (
                Audio,
                Some("Hi"),
                None,
                Err("message.caption is not allowed for audio media"),
            ),
            (
                Sticker,
                Some("Hi"),
                None,
                Err("message.caption is not allowed for sticker media"),
            ),
            (
                Image,
                None,
                Some("a.png"),
                Err("message.fileName is only allowed for document media"),
            ),
            (
                Audio,
                None,
                Some("a.ogg"),
                Err("message.fileName is only allowed for document media"),
            ),
        ];
        for (media_type, caption, file_name, expected) in cases {
            assert_eq!(
                message(*media_type, *caption, *file_name),
                expected.map_err(str::to_owned),
                "{media_type:?} {caption:?} {file_name:?}"
            );
        }
    }

    #[test]
    fn a_task_keeps_what_it_was_built_from() {
        let ids = |n| uuid::Uuid::from_u128(n);
        let template = NewTemplate::new(
            WabaId::new("77".into()).unwrap(),
            TemplateName::new("spring_sale".into()).unwrap(),
            TemplateLanguage::new("en_US".into()).unwrap(),
            TemplateCategory::Marketing,
            vec!["BODY"],
        );
        let task = MediaTask::new(
            TaskId::from_uuid(ids(1)),
            FirmId::from_uuid(ids(2)),
            FileId::from_uuid(ids(3)),
            MediaTarget::Template(template),
        );
        assert_eq!(task.id(), TaskId::from_uuid(ids(1)));
        assert_eq!(task.target().kind(), "template");
        let MediaTarget::Template(t) = task.target() else {
            panic!("a template task")
        };
        assert_eq!(
            (t.waba_id().as_str(), t.name().as_str(), t.components()),
            ("77", "spring_sale", &["BODY"][..])
        );
    }
}
