//! How the adapter finds its storage account, as read from the configuration.

use secrecy::SecretString;
use serde::Deserialize;

/// Which URL a client is given for a committed file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UrlMode {
    /// The plain blob URL; for a container with public read access.
    #[default]
    Public,
    /// A read-only SAS URL that expires after `sas_ttl_secs`; for a private container. Needs an
    /// account key or Entra ID to sign with (a SAS token cannot sign new SAS URLs).
    Sas,
}

/// The Azure Blob settings. Credentials are picked in this order: the explicit `access_key`,
/// `sas_token`, Entra ID client secret (`tenant_id` + `client_id` + `client_secret`), Entra ID
/// workload identity (`tenant_id` + `client_id` + `federated_token_file`), managed identity
/// (`use_managed_identity`), and only then the connection string's own key or SAS. `account`
/// and `endpoint` likewise override the connection string's. `Debug` shows secrets as
/// `[REDACTED]`. An unknown key is refused: a misspelt setting would otherwise fall back to its
/// default without a word.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AzureBlobSettings {
    /// A connection string as the Azure portal, `az` or Azurite print it (account key, SAS or
    /// `UseDevelopmentStorage=true` forms). Default: none.
    pub connection_string: Option<SecretString>,
    /// The storage account name. Default: none (taken from the connection string, or from the
    /// endpoint's host `{account}.blob...` or, for Azurite, its first path segment).
    pub account: Option<String>,
    /// The account's shared key. Default: none.
    pub access_key: Option<SecretString>,
    /// The blob service URL, e.g. `https://acct.blob.core.windows.net` or
    /// `http://127.0.0.1:10000/devstoreaccount1`. Default: none, meaning
    /// `https://{account}.blob.core.windows.net`. An `http` endpoint (Azurite) is used as
    /// given, here or in the connection string; keys then travel unencrypted.
    pub endpoint: Option<String>,
    /// A SAS query string (`sv=...&sig=...`, a leading `?` is fine). Default: none.
    pub sas_token: Option<SecretString>,
    /// The Entra ID tenant, for a client secret or workload identity. Default: none.
    pub tenant_id: Option<String>,
    /// The Entra ID application (client) id; with managed identity, picks a user-assigned
    /// identity. Default: none.
    pub client_id: Option<String>,
    /// The Entra ID client secret. Default: none.
    pub client_secret: Option<SecretString>,
    /// The federated token file of a workload identity (AKS sets `AZURE_FEDERATED_TOKEN_FILE`).
    /// Default: none.
    pub federated_token_file: Option<String>,
    /// Use the managed identity of the host (IMDS). Default: `false`.
    pub use_managed_identity: bool,
    /// The container holding every file; it must exist, the service never creates it (`ping`,
    /// and so `/health/ready`, says when it is missing). Default: `uploads`.
    pub container: String,
    /// Which URL clients get for a committed file: `public` or `sas`. Default: `public`.
    pub url_mode: UrlMode,
    /// Lifetime of a SAS URL in `sas` mode, in seconds. Default: `3600`.
    pub sas_ttl_secs: u64,
    /// Longest wait for a TCP connection to the blob service, in seconds. Default: `3`.
    pub connect_timeout_secs: u64,
    /// Longest wait for the blob service to answer a request (including sending a block) or to
    /// send the next piece of a blob being read, in seconds. There is no limit on a whole
    /// download, which streams at the client's pace. Default: `60`.
    pub io_timeout_secs: u64,
    /// Retries of a request that failed for a transient reason (connection error, timeout, 5xx,
    /// 429). Default: `3`.
    pub max_retries: usize,
    /// No retry starts after this many seconds since the first attempt, so that a dead service
    /// is reported quickly. Default: `5`.
    pub retry_timeout_secs: u64,
}

impl Default for AzureBlobSettings {
    fn default() -> Self {
        Self {
            connection_string: None,
            account: None,
            access_key: None,
            endpoint: None,
            sas_token: None,
            tenant_id: None,
            client_id: None,
            client_secret: None,
            federated_token_file: None,
            use_managed_identity: false,
            container: "uploads".to_owned(),
            url_mode: UrlMode::Public,
            sas_ttl_secs: 3600,
            connect_timeout_secs: 3,
            io_timeout_secs: 60,
            max_retries: 3,
            retry_timeout_secs: 5,
        }
    }
}

impl AzureBlobSettings {
    /// Settings from a connection string alone, everything else at its default.
    pub fn from_connection_string(connection_string: impl Into<String>) -> Self {
        Self {
            connection_string: Some(SecretString::from(connection_string.into())),
            ..Self::default()
        }
    }
}
