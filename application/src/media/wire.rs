//! A task body as producers publish it (`openapi/media-task.schema.json`), read with serde and
//! turned into the domain's `MediaTask`. The checks run in the order of the schema's fields, so
//! that a task breaking two rules is always refused for the same one.

use filegate_domain::{
    FileId, FirmId, InvalidTask, MediaMessage, MediaTarget, MediaType, NewTemplate, PhoneNumberId,
    Recipient, TaskId, TemplateCategory, TemplateLanguage, TemplateName, WabaId,
    check_task_version,
};
use serde::Deserialize;
use uuid::Uuid;

use crate::media_ports::TemplateComponent;

/// A task as the worker reads it: the domain's, with Meta's template components as JSON
/// objects.
pub type MediaTask = filegate_domain::MediaTask<TemplateComponent>;

/// Why a task body cannot be worked on. Each says what is wrong in words a producer can act on,
/// for the dead-letter header.
#[derive(Debug, thiserror::Error)]
pub enum TaskParseError {
    /// Not JSON, or JSON without the schema's fields and types.
    #[error("malformed task: {0}")]
    Malformed(#[source] serde_json::Error),
    /// The schema says `items: object`; anything else cannot be a component Meta reads.
    #[error("template.components must be objects")]
    ComponentNotAnObject,
    #[error(transparent)]
    Invalid(#[from] InvalidTask),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TaskWire {
    version: u32,
    task_id: Uuid,
    firm_id: Uuid,
    file_id: Uuid,
    message: Option<MessageWire>,
    template: Option<TemplateWire>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageWire {
    phone_number_id: String,
    to: String,
    media_type: String,
    caption: Option<String>,
    file_name: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TemplateWire {
    waba_id: String,
    name: String,
    language: String,
    category: String,
    #[serde(default)]
    components: Vec<serde_json::Value>,
}

/// Parses and checks a task body.
pub fn parse_task(body: &[u8]) -> Result<MediaTask, TaskParseError> {
    let wire: TaskWire = serde_json::from_slice(body).map_err(TaskParseError::Malformed)?;
    check_task_version(wire.version)?;
    let target = match (wire.message, wire.template) {
        (Some(m), None) => MediaTarget::Message(m.try_into_domain()?),
        (None, Some(t)) => MediaTarget::Template(t.try_into_domain()?),
        _ => return Err(InvalidTask::NotOneTarget.into()),
    };
    Ok(MediaTask::new(
        TaskId::from_uuid(wire.task_id),
        FirmId::from_uuid(wire.firm_id),
        FileId::from_uuid(wire.file_id),
        target,
    ))
}

impl MessageWire {
    fn try_into_domain(self) -> Result<MediaMessage, InvalidTask> {
        let media_type: MediaType = self.media_type.parse()?;
        let phone_number_id = PhoneNumberId::new(self.phone_number_id)?;
        let to = Recipient::new(&self.to)?;
        MediaMessage::new(
            phone_number_id,
            to,
            media_type,
            self.caption,
            self.file_name,
        )
    }
}

impl TemplateWire {
    fn try_into_domain(self) -> Result<NewTemplate<TemplateComponent>, TaskParseError> {
        let waba_id = WabaId::new(self.waba_id)?;
        let language = TemplateLanguage::new(self.language)?;
        let name = TemplateName::new(self.name)?;
        let category: TemplateCategory = self.category.parse()?;
        let components = self
            .components
            .into_iter()
            .map(|c| match c {
                serde_json::Value::Object(object) => Ok(object),
                _ => Err(TaskParseError::ComponentNotAnObject),
            })
            .collect::<Result<_, _>>()?;
        Ok(NewTemplate::new(
            waba_id, name, language, category, components,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn message(fields: Value) -> Value {
        let mut message =
            json!({ "phoneNumberId": "1055", "to": "+4915112345678", "mediaType": "image" });
        merge(&mut message, fields);
        json!({
            "version": 1, "taskId": Uuid::from_u128(1), "firmId": Uuid::from_u128(2),
            "fileId": Uuid::from_u128(3), "message": message
        })
    }

    fn template(fields: Value) -> Value {
        let mut template = json!({
            "wabaId": "77", "name": "spring_sale", "language": "en_US", "category": "marketing",
            "components": [{ "type": "BODY", "text": "Hello" }]
        });
        merge(&mut template, fields);
        json!({
            "version": 1, "taskId": Uuid::from_u128(1), "firmId": Uuid::from_u128(2),
            "fileId": Uuid::from_u128(3), "template": template
        })
    }

    fn merge(into: &mut Value, fields: Value) {
        if let (Some(into), Value::Object(fields)) = (into.as_object_mut(), fields) {
            into.extend(fields);
        }
    }

    fn parse(task: &Value) -> Result<MediaTask, String> {
        parse_task(task.to_string().as_bytes()).map_err(|e| e.to_string())
    }

    #[test]
    fn the_schema_examples_are_valid_tasks() {
        let schema: Value =
            serde_json::from_str(include_str!("../../../openapi/media-task.schema.json")).unwrap();
        let examples = schema["examples"].as_array().unwrap();
        assert_eq!(examples.len(), 2);
        for example in examples {
            let task = parse(example).unwrap();
            assert_eq!(task.id().to_string(), example["taskId"].as_str().unwrap());
        }
    }

    #[test]
    fn a_message_task_becomes_the_domains_message() {
        let task = parse(&message(
            json!({ "mediaType": "Document", "caption": "Q3", "fileName": "q3.pdf" }),
        ))
        .unwrap();
        assert_eq!(
            (task.id(), task.firm(), task.file()),
            (
                TaskId::from_uuid(Uuid::from_u128(1)),
                FirmId::from_uuid(Uuid::from_u128(2)),
                FileId::from_uuid(Uuid::from_u128(3))
            )
        );
        let MediaTarget::Message(m) = task.target() else {
            panic!("a message task")
        };
        assert_eq!(m.phone_number_id().as_str(), "1055");
        assert_eq!(m.to().as_str(), "4915112345678");
        assert_eq!(m.media_type(), MediaType::Document);
        assert_eq!((m.caption(), m.file_name()), (Some("Q3"), Some("q3.pdf")));
    }

    #[test]
    fn a_template_task_keeps_its_components_as_objects() {
        let task = parse(&template(json!({}))).unwrap();
        let MediaTarget::Template(t) = task.target() else {
            panic!("a template task")
        };
        assert_eq!(t.category(), TemplateCategory::Marketing);
        assert_eq!(t.components().len(), 1);
        assert_eq!(t.components()[0]["text"], "Hello");
        let without =
            json!({ "wabaId": "77", "name": "n", "language": "de", "category": "UTILITY" });
        let mut task = template(json!({}));
        task["template"] = without;
        assert!(parse(&task).is_ok(), "components are optional");
    }

    #[test]
    fn invalid_tasks_are_refused_with_the_rule_they_break() {
        let mut version_2 = message(json!({}));
        version_2["version"] = json!(2);
        let mut both = message(json!({}));
        both["template"] = template(json!({}))["template"].clone();
        let mut neither = message(json!({}));
        neither.as_object_mut().unwrap().remove("message");
        let cases: Vec<(Value, &str)> = vec![
            (
                version_2,
                "unsupported task version 2; this worker reads version 1",
            ),
            (
                both,
                "a task carries exactly one of `message` and `template`",
            ),
            (
                neither,
                "a task carries exactly one of `message` and `template`",
            ),
            (
                message(json!({ "to": 49151 })),
                "malformed task: invalid type",
            ),
            (
                message(json!({ "mediaType": "gif" })),
                "unknown media type `gif`",
            ),
            (
                message(json!({ "phoneNumberId": " " })),
                "message.phoneNumberId is required",
            ),
            (
                message(json!({ "to": "0049 151" })),
                "message.to must be a phone number in international format, got `0049 151`",
            ),
            (
                message(json!({ "mediaType": "audio", "caption": "Hi" })),
                "message.caption is not allowed for audio media",
            ),
            (
                message(json!({ "fileName": "a.png" })),
                "message.fileName is only allowed for document media",
            ),
            (
                template(json!({ "wabaId": "" })),
                "template.wabaId is required",
            ),
            (
                template(json!({ "language": "" })),
                "template.language is required",
            ),
            (
                template(json!({ "name": "Spring Sale" })),
                "template.name must be lower-case letters, digits and `_`, got `Spring Sale`",
            ),
            (
                template(json!({ "category": "promo" })),
                "template.category must be MARKETING, UTILITY or AUTHENTICATION, got `promo`",
            ),
            (
                template(json!({ "components": ["BODY"] })),
                "template.components must be objects",
            ),
            // The first rule broken, in the schema's order, is the one named.
            (
                message(json!({ "mediaType": "gif", "to": "x" })),
                "unknown media type",
            ),
            (
                template(json!({ "wabaId": "", "name": "X" })),
                "template.wabaId is required",
            ),
        ];
        for (task, expected) in cases {
            match parse(&task) {
                Ok(task) => panic!("`{expected}`: accepted as {task:?}"),
                Err(reason) => assert!(
                    reason.starts_with(expected),
                    "`{reason}` is not `{expected}`"
                ),
            }
        }
        assert!(
            parse_task(b"not json").is_err_and(|e| matches!(e, TaskParseError::Malformed(_))
                && e.to_string().starts_with("malformed task: "))
        );
    }
}
