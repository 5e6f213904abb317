//! Errors in the shape Meta's Graph API gives them:
//! `{"error": {"message", "type", "code", "error_subcode", "error_user_title", "error_user_msg",
//! "error_data": {"messaging_product", "details"}, "is_transient", "fbtrace_id"}}`.

use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use http_body_util::Full;
use hyper::Response;
use serde_json::{Map, Value, json};

use crate::util;

/// One Graph API error answer.
#[derive(Debug, Clone)]
pub(crate) struct GraphError {
    pub status: StatusCode,
    pub message: String,
    pub kind: &'static str,
    pub code: i64,
    pub subcode: Option<i64>,
    pub user_title: Option<String>,
    pub user_msg: Option<String>,
    /// WhatsApp's `error_data.details`.
    pub details: Option<String>,
    pub transient: bool,
}

impl GraphError {
    fn new(status: StatusCode, code: i64, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            kind: "OAuthException",
            code,
            subcode: None,
            user_title: None,
            user_msg: None,
            details: None,
            transient: false,
        }
    }

    /// A missing or wrong token: 401, code 190.
    pub(crate) fn invalid_token() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, 190, "Invalid OAuth access token.")
    }

    /// Graph's generic invalid parameter: 400, code 100; `what` tells which.
    pub(crate) fn invalid_parameter(what: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::BAD_REQUEST, 100, "(#100) Invalid parameter");
        e.user_msg = Some(what.into());
        e
    }

    /// A missing required parameter: 400, code 100, as Graph words it.
    pub(crate) fn missing_parameter(name: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            100,
            format!("(#100) The parameter {name} is required"),
        )
    }

    /// WhatsApp's "Parameter value is not valid": 400, code 131009, the reason in
    /// `error_data.details`.
    pub(crate) fn whatsapp_invalid(details: impl Into<String>) -> Self {
        let mut e = Self::new(
            StatusCode::BAD_REQUEST,
            131009,
            "(#131009) Parameter value is not valid",
        );
        e.details = Some(details.into());
        e
    }

    /// WhatsApp's "Media upload error": 400, code 131053.
    pub(crate) fn media_upload(details: impl Into<String>) -> Self {
        let mut e = Self::new(
            StatusCode::BAD_REQUEST,
            131053,
            "(#131053) Media upload error",
        );
        e.details = Some(details.into());
        e
    }

    /// A path the Graph API does not serve: 400, `GraphMethodException`, code 100, subcode 33.
    pub(crate) fn unsupported_request(method: &http::Method, object: &str) -> Self {
        let mut e = Self::new(
            StatusCode::BAD_REQUEST,
            100,
            format!(
                "Unsupported {} request. Object with ID '{object}' does not exist, cannot be loaded due to missing permissions, or does not support this operation.",
                method.as_str().to_ascii_lowercase()
            ),
        );
        e.kind = "GraphMethodException";
        e.subcode = Some(33);
        e
    }

    /// A version this fake does not serve.
    pub(crate) fn unknown_version(asked: &str, served: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            2500,
            format!("Unknown path components: /{asked} (this API serves {served})"),
        )
    }

    /// A wrong `sig` on an upload session.
    pub(crate) fn incorrect_signature() -> Self {
        Self::new(StatusCode::BAD_REQUEST, 104, "Incorrect signature")
    }

    /// A template of this name and language exists already: code 100, subcode 2388024.
    pub(crate) fn template_exists(language: &str) -> Self {
        let mut e = Self::new(StatusCode::BAD_REQUEST, 100, "(#100) Invalid parameter");
        e.subcode = Some(2388024);
        e.user_title = Some("Message template already exists".to_owned());
        e.user_msg = Some(format!(
            "There is already {language} content for this template. You can create a new template and try again."
        ));
        e
    }

    /// 429 with a rate-limit code.
    pub(crate) fn rate_limited(code: i64) -> Self {
        let message = match code {
            4 => "(#4) Application request limit reached".to_owned(),
            17 => "(#17) User request limit reached".to_owned(),
            131056 => {
                "(#131056) (Business Account, Consumer Account) pair rate limit hit".to_owned()
            }
            other => format!("(#{other}) Rate limit hit"),
        };
        let mut e = Self::new(StatusCode::TOO_MANY_REQUESTS, code, message);
        e.transient = true;
        e
    }

    /// 500, code 2: "An unexpected error has occurred".
    pub(crate) fn server_error() -> Self {
        let mut e = Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            2,
            "An unexpected error has occurred. Please retry your request later.",
        );
        e.transient = true;
        e
    }

    pub(crate) fn to_json(&self) -> Value {
        let mut error = Map::new();
        error.insert("message".into(), json!(self.message));
        error.insert("type".into(), json!(self.kind));
        error.insert("code".into(), json!(self.code));
        if let Some(sub) = self.subcode {
            error.insert("error_subcode".into(), json!(sub));
        }
        if self.transient {
            error.insert("is_transient".into(), json!(true));
        }
        if let Some(title) = &self.user_title {
            error.insert("error_user_title".into(), json!(title));
        }
        if let Some(msg) = &self.user_msg {
            error.insert("error_user_msg".into(), json!(msg));
        }
        if let Some(details) = &self.details {
            error.insert(
                "error_data".into(),
                json!({"messaging_product": "whatsapp", "details": details}),
            );
        }
        error.insert("fbtrace_id".into(), json!(util::fbtrace_id()));
        json!({ "error": error })
    }

    pub(crate) fn into_response(self) -> Response<Full<Bytes>> {
        let mut resp = util::json_response(self.status, &self.to_json());
        if self.code == 190 {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(
                    "OAuth \"Facebook Platform\" \"invalid_token\" \"Invalid OAuth access token.\"",
                ),
            );
        }
        resp
    }
}
