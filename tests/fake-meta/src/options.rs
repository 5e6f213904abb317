//! What a fake Meta accepts, as a test or the `filegate-fake-meta` binary configures it.

use serde::{Deserialize, Serialize};

/// The access token a default fake accepts.
pub const DEFAULT_ACCESS_TOKEN: &str = "fake-meta-token";

/// The Graph API version a default fake serves.
pub const DEFAULT_API_VERSION: &str = "v21.0";

/// How the fake behaves. Every field has a default, so `FakeMetaOptions::default()` is a working
/// fake; the token is a plain string because it is a test fixture, not a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FakeMetaOptions {
    /// The Graph API version served under `/{version}/`; a request for any other version gets
    /// Meta's error. Default: `v21.0`.
    pub api_version: String,
    /// The one access token accepted; anything else is answered with Meta's 401 (code 190).
    /// Default: `fake-meta-token`.
    pub access_token: String,
    /// The app whose `/uploads` edge opens resumable upload sessions; `None` accepts any id.
    /// Default: none.
    pub app_id: Option<String>,
}

impl Default for FakeMetaOptions {
    fn default() -> Self {
        Self {
            api_version: DEFAULT_API_VERSION.to_owned(),
            access_token: DEFAULT_ACCESS_TOKEN.to_owned(),
            app_id: None,
        }
    }
}
