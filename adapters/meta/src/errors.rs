//! Meta's error answers and broken calls, sorted into what the worker does next.
//!
//! Graph puts the reason in the JSON body (`{"error": {"message", "type", "code",
//! "error_subcode", "error_user_title", "error_user_msg", "error_data": {"details"},
//! "is_transient", "fbtrace_id"}}`), and the same code can come with different statuses (a rate
//! limit is often a 400 with code 4 or 80007), so the code decides before the status does.

use std::error::Error as StdError;

use filegate_application::media_ports::{MetaError, MetaFault};
use serde::Deserialize;
use serde_json::Value;

/// Throttling codes: Graph's app, user and page limits (4, 17, 32, 613) and WhatsApp's (80007
/// WABA, 130429 throughput, 131048 spam, 131056 pair rate).
const RATE_LIMIT_CODES: [i64; 8] = [4, 17, 32, 613, 80007, 130429, 131048, 131056];

/// Codes Meta documents as temporary ("wait and retry"), whatever the status: 1 API Unknown,
/// 2 API Service, 131016 Service unavailable.
const TRANSIENT_CODES: [i64; 3] = [1, 2, 131016];

#[derive(Deserialize)]
struct Envelope {
    error: Option<GraphError>,
}

#[derive(Deserialize)]
struct GraphError {
    message: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    code: Option<i64>,
    error_subcode: Option<i64>,
    error_user_title: Option<String>,
    error_user_msg: Option<String>,
    /// An object with `details` for WhatsApp; other APIs put a string here.
    error_data: Option<Value>,
    is_transient: Option<bool>,
    fbtrace_id: Option<String>,
}

/// The error of a non-2xx answer.
pub(crate) fn from_answer(status: u16, body: &[u8]) -> MetaError {
    let parsed = serde_json::from_slice::<Envelope>(body)
        .ok()
        .and_then(|e| e.error);
    let Some(e) = parsed else {
        let text = String::from_utf8_lossy(body);
        let snippet: String = text.trim().chars().take(200).collect();
        let fault = MetaFault {
            status: Some(status),
            message: if snippet.is_empty() {
                format!("HTTP {status} without a body")
            } else {
                format!("HTTP {status}: {snippet}")
            },
            ..MetaFault::default()
        };
        return classify(fault, false);
    };
    let details = e
        .error_data
        .as_ref()
        .and_then(|d| d.get("details"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let mut message = e.message.unwrap_or_else(|| format!("HTTP {status}"));
    for extra in [e.error_user_title, e.error_user_msg, details]
        .into_iter()
        .flatten()
    {
        message.push_str("; ");
        message.push_str(&extra);
    }
    let fault = MetaFault {
        status: Some(status),
        message,
        kind: e.kind,
        code: e.code,
        subcode: e.error_subcode,
        fbtrace_id: e.fbtrace_id,
    };
    classify(fault, e.is_transient == Some(true))
}

/// Rate limits first (by status 429 or code), then what a retry can cure (5xx, 408, codes Meta
/// calls temporary, `is_transient`), and everything else (auth 190, permissions 10 and
/// 200-299, invalid parameter 100, WhatsApp's 131xxx validation errors) as permanent.
pub(crate) fn classify(fault: MetaFault, is_transient: bool) -> MetaError {
    let status = fault.status.unwrap_or(0);
    let code = fault.code.unwrap_or(0);
    if status == 429 || RATE_LIMIT_CODES.contains(&code) {
        MetaError::RateLimited(fault)
    } else if status >= 500 || status == 408 || TRANSIENT_CODES.contains(&code) || is_transient {
        MetaError::Transient(fault)
    } else {
        MetaError::Permanent(fault)
    }
}

/// A call that got no usable answer: no connection, a timeout, a connection broken mid-body.
/// All are worth a retry, except a request that could not even be built.
pub(crate) fn from_transport(action: &str, err: &reqwest::Error) -> MetaError {
    let fault = MetaFault {
        status: err.status().map(|s| s.as_u16()),
        message: format!("{action}: {}", chain(err)),
        ..MetaFault::default()
    };
    if err.is_builder() {
        MetaError::Permanent(fault)
    } else {
        MetaError::Transient(fault)
    }
}

/// A 2xx answer without what the call expects. Retrying would repeat a call that Meta took,
/// so it is permanent: the dead-letter reason shows what came back.
pub(crate) fn unexpected_answer(action: &str, status: u16, body: &[u8]) -> MetaError {
    let text = String::from_utf8_lossy(body);
    let snippet: String = text.trim().chars().take(200).collect();
    MetaError::Permanent(MetaFault {
        status: Some(status),
        message: format!("{action}: unexpected answer: {snippet}"),
        ..MetaFault::default()
    })
}

/// A request this adapter refuses to send (a missing setting, an id that is not one).
pub(crate) fn refused(message: String) -> MetaError {
    MetaError::Permanent(MetaFault {
        message,
        ..MetaFault::default()
    })
}

/// An error and its causes on one line: reqwest's own message says little ("error sending
/// request"); the cause says what happened ("connection reset by peer").
pub(crate) fn chain(err: &(dyn StdError + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> MetaError {
        from_answer(status, body.as_bytes())
    }

    #[test]
    fn metas_error_json_becomes_a_fault() {
        let e = answer(
            400,
            r#"{"error":{"message":"(#131009) Parameter value is not valid","type":"OAuthException","code":131009,"error_subcode":2494010,"error_data":{"messaging_product":"whatsapp","details":"bad to"},"fbtrace_id":"Abc"}}"#,
        );
        let MetaError::Permanent(f) = e else {
            panic!("{e:?}")
        };
        assert_eq!(f.status, Some(400));
        assert_eq!(f.code, Some(131009));
        assert_eq!(f.subcode, Some(2494010));
        assert_eq!(f.kind.as_deref(), Some("OAuthException"));
        assert_eq!(f.fbtrace_id.as_deref(), Some("Abc"));
        assert_eq!(f.message, "(#131009) Parameter value is not valid; bad to");
    }

    #[test]
    fn rate_limits_are_known_by_status_or_code() {
        for (status, code) in [
            (429, 4),
            (400, 4),
            (400, 80007),
            (400, 130429),
            (400, 131056),
            (403, 613),
            (400, 17),
            (400, 32),
            (400, 131048),
        ] {
            let body = format!(r#"{{"error":{{"message":"limit","code":{code}}}}}"#);
            assert!(
                matches!(answer(status, &body), MetaError::RateLimited(_)),
                "{status} {code}"
            );
        }
        assert!(matches!(
            answer(429, "slow down"),
            MetaError::RateLimited(_)
        ));
    }

    #[test]
    fn server_errors_and_temporary_codes_are_transient() {
        assert!(matches!(
            answer(500, r#"{"error":{"message":"x","code":1}}"#),
            MetaError::Transient(_)
        ));
        assert!(matches!(
            answer(503, "<html>busy</html>"),
            MetaError::Transient(_)
        ));
        assert!(matches!(
            answer(400, r#"{"error":{"message":"x","code":2}}"#),
            MetaError::Transient(_)
        ));
        assert!(matches!(
            answer(
                400,
                r#"{"error":{"message":"x","code":99,"is_transient":true}}"#
            ),
            MetaError::Transient(_)
        ));
    }

    #[test]
    fn auth_permission_and_parameter_errors_are_permanent() {
        for (status, code) in [(401, 190), (403, 10), (403, 200), (400, 100), (400, 131053)] {
            let body =
                format!(r#"{{"error":{{"message":"no","type":"OAuthException","code":{code}}}}}"#);
            assert!(
                matches!(answer(status, &body), MetaError::Permanent(_)),
                "{status} {code}"
            );
        }
        let MetaError::Permanent(f) = answer(404, "") else {
            panic!()
        };
        assert_eq!(f.message, "HTTP 404 without a body");
    }
}
