//! The headers the adapter reads and writes, and the properties of the copies it publishes.

use std::collections::BTreeMap;

use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};

/// The attempt a delivery is (1-based); absent on a task as producers publish it, meaning 1.
pub const ATTEMPT_HEADER: &str = "x-filegate-attempt";
/// On a retry copy: why the previous attempt failed.
pub const LAST_ERROR_HEADER: &str = "x-filegate-last-error";
/// On a dead letter: why the task was given up.
pub const REASON_HEADER: &str = "x-filegate-reason";
/// On a dead letter: how many attempts were made.
pub const ATTEMPTS_HEADER: &str = "x-filegate-attempts";

/// A header's text (a long or short string), if the message has it.
pub(crate) fn text_header(properties: &BasicProperties, name: &str) -> Option<String> {
    match properties.headers().as_ref()?.inner().get(name)? {
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok().map(str::to_owned),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

/// Persistent: the broker writes the message to disk in a durable queue.
pub(crate) const PERSISTENT: u8 = 2;

/// Reasons longer than this are cut (at a character boundary): all headers of a message must
/// fit in one frame, and an error text can be long.
const MAX_REASON_BYTES: usize = 4096;

/// The attempt number in a delivery's headers. Any integer type is accepted (producers in
/// other languages pick their own), and so are decimal strings; a missing, zero, negative or
/// unreadable value counts as the first attempt.
pub(crate) fn attempt_of(properties: &BasicProperties) -> u32 {
    let Some(value) = properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(ATTEMPT_HEADER))
    else {
        return 1;
    };
    let number: Option<i128> = match value {
        AMQPValue::ShortShortInt(v) => Some((*v).into()),
        AMQPValue::ShortShortUInt(v) => Some((*v).into()),
        AMQPValue::ShortInt(v) => Some((*v).into()),
        AMQPValue::ShortUInt(v) => Some((*v).into()),
        AMQPValue::LongInt(v) => Some((*v).into()),
        AMQPValue::LongUInt(v) => Some((*v).into()),
        AMQPValue::LongLongInt(v) => Some((*v).into()),
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes())
            .ok()
            .and_then(|s| s.trim().parse().ok()),
        AMQPValue::ShortString(s) => s.as_str().trim().parse().ok(),
        _ => None,
    };
    match number.and_then(|n| u32::try_from(n).ok()) {
        Some(n) if n >= 1 => n,
        _ => {
            tracing::warn!(value = ?value, "unreadable `{ATTEMPT_HEADER}` header; counting attempt 1");
            1
        }
    }
}

/// The properties of a copy of `original` (a retry or a dead letter): the same content
/// metadata and headers, with `set` added or replaced, persistent. Left out: the broker's
/// own dead-lettering headers (`x-death`, ...: the copy is a new message), the per-message
/// `expiration` (the delay queue's TTL decides), and `user_id` (RabbitMQ rejects a publish
/// whose `user_id` is not the connection's user).
pub(crate) fn copy_properties(
    original: &BasicProperties,
    set: Vec<(&'static str, AMQPValue)>,
) -> BasicProperties {
    let mut headers: BTreeMap<ShortString, AMQPValue> = original
        .headers()
        .as_ref()
        .map(|h| h.inner().clone())
        .unwrap_or_default();
    headers.retain(|k, _| {
        let k = k.as_str();
        k != "x-death" && !k.starts_with("x-first-death-") && !k.starts_with("x-last-death-")
    });
    for (key, value) in set {
        headers.insert(key.into(), value);
    }
    let mut copy = BasicProperties::default()
        .with_headers(FieldTable::from(headers))
        .with_delivery_mode(PERSISTENT);
    if let Some(v) = original.content_type() {
        copy = copy.with_content_type(v.clone());
    }
    if let Some(v) = original.content_encoding() {
        copy = copy.with_content_encoding(v.clone());
    }
    if let Some(v) = original.priority() {
        copy = copy.with_priority(*v);
    }
    if let Some(v) = original.correlation_id() {
        copy = copy.with_correlation_id(v.clone());
    }
    if let Some(v) = original.reply_to() {
        copy = copy.with_reply_to(v.clone());
    }
    if let Some(v) = original.message_id() {
        copy = copy.with_message_id(v.clone());
    }
    if let Some(v) = original.timestamp() {
        copy = copy.with_timestamp(*v);
    }
    if let Some(v) = original.kind() {
        copy = copy.with_type(v.clone());
    }
    if let Some(v) = original.app_id() {
        copy = copy.with_app_id(v.clone());
    }
    copy
}

/// A header value holding a reason, cut to a size that fits a frame.
pub(crate) fn reason_value(reason: &str) -> AMQPValue {
    let mut end = reason.len().min(MAX_REASON_BYTES);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    AMQPValue::LongString(LongString::from(&reason[..end]))
}

pub(crate) fn count_value(n: u32) -> AMQPValue {
    AMQPValue::LongLongInt(n.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_header(value: AMQPValue) -> BasicProperties {
        let mut headers = FieldTable::default();
        headers.insert(ATTEMPT_HEADER.into(), value);
        BasicProperties::default().with_headers(headers)
    }

    #[test]
    fn the_attempt_is_read_from_any_integer_or_a_string() {
        assert_eq!(attempt_of(&BasicProperties::default()), 1);
        assert_eq!(attempt_of(&with_header(AMQPValue::LongLongInt(3))), 3);
        assert_eq!(attempt_of(&with_header(AMQPValue::ShortShortUInt(2))), 2);
        assert_eq!(attempt_of(&with_header(AMQPValue::LongUInt(7))), 7);
        assert_eq!(
            attempt_of(&with_header(AMQPValue::LongString(" 4 ".into()))),
            4
        );
        assert_eq!(attempt_of(&with_header(AMQPValue::LongInt(0))), 1);
        assert_eq!(attempt_of(&with_header(AMQPValue::LongLongInt(-2))), 1);
        assert_eq!(attempt_of(&with_header(AMQPValue::Boolean(true))), 1);
    }

    #[test]
    fn a_copy_keeps_metadata_replaces_headers_and_drops_broker_headers() {
        let mut headers = FieldTable::default();
        headers.insert("x-custom".into(), AMQPValue::LongString("keep".into()));
        headers.insert(ATTEMPT_HEADER.into(), AMQPValue::LongLongInt(1));
        headers.insert("x-death".into(), AMQPValue::Void);
        headers.insert("x-first-death-queue".into(), AMQPValue::Void);
        let original = BasicProperties::default()
            .with_headers(headers)
            .with_content_type("application/json".into())
            .with_message_id("m1".into())
            .with_expiration("100".into())
            .with_user_id("someone".into());
        let copy = copy_properties(&original, vec![(ATTEMPT_HEADER, count_value(2))]);
        let h = copy.headers().as_ref().unwrap().inner();
        assert_eq!(h.get(ATTEMPT_HEADER), Some(&AMQPValue::LongLongInt(2)));
        assert!(h.contains_key("x-custom"));
        assert!(!h.contains_key("x-death"));
        assert!(!h.contains_key("x-first-death-queue"));
        assert_eq!(
            copy.content_type().as_ref().map(|s| s.as_str()),
            Some("application/json")
        );
        assert_eq!(copy.message_id().as_ref().map(|s| s.as_str()), Some("m1"));
        assert_eq!(*copy.delivery_mode(), Some(PERSISTENT));
        assert_eq!(*copy.expiration(), None);
        assert_eq!(*copy.user_id(), None);
    }

    #[test]
    fn long_reasons_are_cut_at_a_character_boundary() {
        let long = "é".repeat(5000);
        let AMQPValue::LongString(cut) = reason_value(&long) else {
            panic!("not a long string");
        };
        assert!(cut.len() <= MAX_REASON_BYTES);
        assert!(std::str::from_utf8(cut.as_bytes()).is_ok());
    }
}
