//! The JSON bodies of the two calls that carry one: a message and a template. The use case
//! hands over typed requests; the Cloud API's field names and nesting live here only, next to
//! the client that posts them (`PAYLOADS.md` shows them on the wire).

use filegate_application::media_ports::{CreateTemplate, SendMessage};
use serde_json::{Value, json};

/// The body of `POST /{phone-number-id}/messages` for media Meta holds under an id.
pub(crate) fn message_payload(request: &SendMessage) -> Value {
    let message = &request.message;
    let kind = message.media_type().as_str();
    let mut media = json!({ "id": request.media_id });
    if let Some(caption) = message.caption() {
        media["caption"] = caption.into();
    }
    if let Some(name) = message.file_name() {
        media["filename"] = name.into();
    }
    let mut payload = json!({
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": message.to().as_str(),
        "type": kind,
    });
    payload[kind] = media;
    payload
}

/// The body of `POST /{waba-id}/message_templates`: the task's components with the handle in
/// the HEADER component's `example.header_handle`. Meta needs a HEADER to show the file, so one
/// is put first when the task has none; a format the task gives is kept (it knows its layout),
/// otherwise the file's decides. Every other field of every component goes through untouched.
pub(crate) fn template_payload(request: &CreateTemplate) -> Value {
    let template = &request.template;
    let mut components: Vec<Value> = template
        .components()
        .iter()
        .cloned()
        .map(Value::Object)
        .collect();
    let is_header = |c: &Value| {
        c["type"]
            .as_str()
            .is_some_and(|t| t.eq_ignore_ascii_case("HEADER"))
    };
    if !components.iter().any(is_header) {
        components.insert(0, json!({ "type": "HEADER" }));
    }
    for header in components.iter_mut().filter(|c| is_header(c)) {
        header["type"] = "HEADER".into();
        if header["format"].as_str().is_none() {
            header["format"] = request.header_format.as_str().into();
        }
        header["example"] = json!({ "header_handle": [request.header_handle] });
    }
    json!({
        "name": template.name().as_str(),
        "language": template.language().as_str(),
        "category": template.category().as_str(),
        "components": components,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use filegate_application::media_ports::TemplateComponent;
    use filegate_domain::{
        HeaderFormat, MediaMessage, MediaType, NewTemplate, PhoneNumberId, Recipient,
        TemplateCategory, TemplateLanguage, TemplateName, WabaId,
    };

    fn message(
        media_type: MediaType,
        caption: Option<&str>,
        file_name: Option<&str>,
    ) -> SendMessage {
        SendMessage {
            message: MediaMessage::new(
                PhoneNumberId::new("1".into()).unwrap(),
                Recipient::new("+491").unwrap(),
                media_type,
                caption.map(str::to_owned),
                file_name.map(str::to_owned),
            )
            .unwrap(),
            media_id: "m1".into(),
        }
    }

    fn template(components: Value) -> CreateTemplate {
        let components: Vec<TemplateComponent> = components
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_object().unwrap().clone())
            .collect();
        CreateTemplate {
            template: NewTemplate::new(
                WabaId::new("7".into()).unwrap(),
                TemplateName::new("spring_sale".into()).unwrap(),
                TemplateLanguage::new("de".into()).unwrap(),
                TemplateCategory::Utility,
                components,
            ),
            header_format: HeaderFormat::Image,
            header_handle: "h1".into(),
        }
    }

    #[test]
    fn a_message_names_the_media_by_id_under_its_type() {
        assert_eq!(
            message_payload(&message(MediaType::Document, Some("Q3"), Some("q3.pdf"))),
            json!({
                "messaging_product": "whatsapp", "recipient_type": "individual", "to": "491",
                "type": "document",
                "document": { "id": "m1", "caption": "Q3", "filename": "q3.pdf" }
            })
        );
        assert_eq!(
            message_payload(&message(MediaType::Sticker, None, None))["sticker"],
            json!({ "id": "m1" }),
            "no caption or file name when the task has none"
        );
    }

    #[test]
    fn a_given_header_gets_the_handle_and_keeps_its_format() {
        let t = template_payload(&template(json!([
            { "type": "header", "format": "VIDEO" },
            { "type": "BODY", "text": "Hi" }
        ])));
        assert_eq!(
            t,
            json!({
                "name": "spring_sale", "language": "de", "category": "UTILITY",
                "components": [
                    { "type": "HEADER", "format": "VIDEO", "example": { "header_handle": ["h1"] } },
                    { "type": "BODY", "text": "Hi" }
                ]
            })
        );
    }

    #[test]
    fn a_missing_header_is_put_first_with_the_files_format() {
        let t = template_payload(&template(json!([{ "type": "BODY", "text": "Hi" }])));
        assert_eq!(
            t["components"],
            json!([
                { "type": "HEADER", "format": "IMAGE", "example": { "header_handle": ["h1"] } },
                { "type": "BODY", "text": "Hi" }
            ])
        );
        let empty = template_payload(&template(json!([])));
        assert_eq!(empty["components"].as_array().map(Vec::len), Some(1));
    }
}
