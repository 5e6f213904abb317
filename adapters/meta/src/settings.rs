//! How the adapter reaches Meta's Graph API, as read from the configuration.

use secrecy::SecretString;
use serde::Deserialize;

/// Graph API settings (the `meta` section). `Debug` shows the token as `[REDACTED]`. An unknown
/// key is refused: a misspelt setting would otherwise fall back to its default without a word.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetaSettings {
    /// The Graph API's origin, without the version. Default: `https://graph.facebook.com`.
    /// Tests point it at the fake (`http://127.0.0.1:{port}`).
    pub base_url: String,
    /// The Graph API version every path starts with. Default: `v21.0`.
    pub api_version: String,
    /// The Meta app that owns resumable upload sessions (`/{app-id}/uploads`); needed only for
    /// template media. Default: none (template uploads then fail as permanent errors). App ids
    /// are numbers, and configuration layers (environment variables) hand them over as such,
    /// so a number is accepted as well as a string.
    #[serde(deserialize_with = "string_or_number")]
    pub app_id: Option<String>,
    /// A system-user access token with `whatsapp_business_messaging` and
    /// `whatsapp_business_management`. Set it from the environment only
    /// (`FILEGATE_META__ACCESS_TOKEN`), never in a file under version control; it is sent in
    /// `Authorization` headers only (never in a URL) and never logged. Default: none (the client
    /// refuses to build).
    pub access_token: Option<SecretString>,
    /// Longest wait for a TCP (and TLS) connection to Graph, in seconds. Default: `10`.
    pub connect_timeout_secs: u64,
    /// Longest wait for a whole JSON call (send a message, create a template, open an upload
    /// session, read its offset), and for Meta's answer once the last byte of an upload is sent,
    /// in seconds. Default: `30`.
    pub request_timeout_secs: u64,
    /// Longest time an upload may go without the connection taking a byte of the body, in
    /// seconds. An upload has no limit on its whole duration (100 MB on a slow link takes
    /// minutes); it fails only when it stops moving. Must exceed the time to send one chunk of
    /// the blob stream. Default: `60`.
    pub upload_stall_timeout_secs: u64,
}

impl Default for MetaSettings {
    fn default() -> Self {
        Self {
            base_url: "https://graph.facebook.com".to_owned(),
            api_version: "v21.0".to_owned(),
            app_id: None,
            access_token: None,
            connect_timeout_secs: 10,
            request_timeout_secs: 30,
            upload_stall_timeout_secs: 60,
        }
    }
}

fn string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Id {
        Text(String),
        Number(u64),
    }
    Ok(Option::<Id>::deserialize(d)?.map(|id| match id {
        Id::Text(s) => s,
        Id::Number(n) => n.to_string(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_numeric_app_id_is_read_as_its_digits() {
        let s: MetaSettings = serde_json::from_str(r#"{"app_id": 1234567890}"#).unwrap();
        assert_eq!(s.app_id.as_deref(), Some("1234567890"));
    }

    #[test]
    fn defaults_fill_what_the_configuration_leaves_out() {
        let s: MetaSettings =
            serde_json::from_str(r#"{"app_id": "42", "access_token": "EAAG-secret"}"#).unwrap();
        assert_eq!(s.base_url, "https://graph.facebook.com");
        assert_eq!(s.api_version, "v21.0");
        assert_eq!(s.app_id.as_deref(), Some("42"));
        assert_eq!(
            (
                s.connect_timeout_secs,
                s.request_timeout_secs,
                s.upload_stall_timeout_secs
            ),
            (10, 30, 60)
        );
    }

    #[test]
    fn debug_never_shows_the_token() {
        let s: MetaSettings = serde_json::from_str(r#"{"access_token": "EAAG-secret"}"#).unwrap();
        let shown = format!("{s:?}");
        assert!(!shown.contains("EAAG-secret"), "{shown}");
        assert!(shown.contains("REDACTED"), "{shown}");
    }
}
