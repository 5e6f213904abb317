//! Azure Storage connection strings, as the portal, Azurite and `az storage account
//! show-connection-string` print them: `Key=Value` pairs separated by `;`.
//!
//! Error messages name keys only, never values, and never a key the parser does not know:
//! a malformed string may start with the account key itself, so echoing "the unknown key" could
//! print the secret into a log.

use secrecy::SecretString;

/// The blob endpoint Azurite listens on by default, for `UseDevelopmentStorage=true`.
const DEVELOPMENT_BLOB_ENDPOINT: &str = "http://127.0.0.1:10000/devstoreaccount1";
/// Azurite's account; fixed by the emulator.
const DEVELOPMENT_ACCOUNT: &str = "devstoreaccount1";
/// Azurite's account key. Public (Microsoft documents it) and accepted by the emulator only.
const DEVELOPMENT_ACCOUNT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
const DEFAULT_ENDPOINT_SUFFIX: &str = "core.windows.net";

/// What a connection string says about the blob service.
#[derive(Debug, Clone)]
pub(crate) struct ConnectionString {
    pub account: Option<String>,
    /// The blob endpoint without a trailing slash, e.g. `https://acct.blob.core.windows.net`.
    pub endpoint: String,
    pub credential: ConnectionCredential,
}

#[derive(Debug, Clone)]
pub(crate) enum ConnectionCredential {
    AccessKey(SecretString),
    /// The SAS query string, without a leading `?`.
    Sas(SecretString),
}

/// Why a connection string was refused. Only key names appear in the messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionStringError {
    #[error("the Azure connection string is empty")]
    Empty,
    #[error(
        "part {position} of the Azure connection string is not `Key=Value` (parts are separated by `;`)"
    )]
    Malformed { position: usize },
    #[error("the Azure connection string sets {0} twice")]
    Duplicate(&'static str),
    #[error("the Azure connection string has no {0}")]
    Missing(&'static str),
    #[error("the Azure connection string has an empty {0}")]
    EmptyValue(&'static str),
    #[error("DefaultEndpointsProtocol must be `http` or `https`")]
    BadProtocol,
    #[error("UseDevelopmentStorage must be `true` when present")]
    BadDevelopmentStorage,
}

/// The keys this parser reads; every other key (QueueEndpoint, TableEndpoint, ...) is ignored.
const KEYS: [&str; 7] = [
    "DefaultEndpointsProtocol",
    "AccountName",
    "AccountKey",
    "EndpointSuffix",
    "BlobEndpoint",
    "SharedAccessSignature",
    "UseDevelopmentStorage",
];

/// Parses a connection string. Keys are matched case-insensitively, as the Azure SDKs do.
pub(crate) fn parse(raw: &str) -> Result<ConnectionString, ConnectionStringError> {
    let mut values: [Option<&str>; KEYS.len()] = [None; KEYS.len()];
    let mut any = false;
    for (position, part) in raw.split(';').enumerate() {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        any = true;
        let (key, value) = part
            .split_once('=')
            .ok_or(ConnectionStringError::Malformed {
                position: position + 1,
            })?;
        let Some(slot) = KEYS.iter().position(|k| k.eq_ignore_ascii_case(key.trim())) else {
            continue;
        };
        if values[slot].is_some() {
            return Err(ConnectionStringError::Duplicate(KEYS[slot]));
        }
        let value = value.trim();
        if value.is_empty() {
            return Err(ConnectionStringError::EmptyValue(KEYS[slot]));
        }
        values[slot] = Some(value);
    }
    if !any {
        return Err(ConnectionStringError::Empty);
    }
    let [
        protocol,
        account,
        key,
        suffix,
        blob_endpoint,
        sas,
        development,
    ] = values;

    if let Some(dev) = development {
        if !dev.eq_ignore_ascii_case("true") {
            return Err(ConnectionStringError::BadDevelopmentStorage);
        }
        return Ok(ConnectionString {
            account: Some(DEVELOPMENT_ACCOUNT.to_owned()),
            endpoint: DEVELOPMENT_BLOB_ENDPOINT.to_owned(),
            credential: ConnectionCredential::AccessKey(SecretString::from(
                DEVELOPMENT_ACCOUNT_KEY,
            )),
        });
    }

    let credential = match (key, sas) {
        (Some(key), _) => {
            if account.is_none() {
                return Err(ConnectionStringError::Missing(
                    "AccountName (required with AccountKey)",
                ));
            }
            ConnectionCredential::AccessKey(SecretString::from(key))
        }
        (None, Some(sas)) => {
            ConnectionCredential::Sas(SecretString::from(sas.trim_start_matches('?')))
        }
        (None, None) => {
            return Err(ConnectionStringError::Missing(
                "AccountKey or SharedAccessSignature",
            ));
        }
    };

    let endpoint = match (blob_endpoint, account) {
        (Some(endpoint), _) => endpoint.trim_end_matches('/').to_owned(),
        (None, Some(account)) => {
            let protocol = match protocol {
                None => "https",
                Some(p) if p.eq_ignore_ascii_case("https") => "https",
                Some(p) if p.eq_ignore_ascii_case("http") => "http",
                Some(_) => return Err(ConnectionStringError::BadProtocol),
            };
            let suffix = suffix.unwrap_or(DEFAULT_ENDPOINT_SUFFIX).trim_matches('.');
            format!("{protocol}://{account}.blob.{suffix}")
        }
        (None, None) => {
            return Err(ConnectionStringError::Missing(
                "AccountName or BlobEndpoint",
            ));
        }
    };

    Ok(ConnectionString {
        account: account.map(str::to_owned),
        endpoint,
        credential,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use secrecy::ExposeSecret;

    const KEY: &str = "c2VjcmV0LWtleS1ieXRlcw==";

    fn key_of(cs: &ConnectionString) -> &str {
        match &cs.credential {
            ConnectionCredential::AccessKey(k) => k.expose_secret(),
            ConnectionCredential::Sas(_) => panic!("expected an account key"),
        }
    }

    #[test]
    fn the_portal_form_gives_the_public_endpoint() {
        let cs = parse(&format!(
            "DefaultEndpointsProtocol=https;AccountName=acme;AccountKey={KEY};EndpointSuffix=core.windows.net"
        ))
        .unwrap();
        assert_eq!(cs.account.as_deref(), Some("acme"));
        assert_eq!(cs.endpoint, "https://acme.blob.core.windows.net");
        assert_eq!(key_of(&cs), KEY);
    }

    #[test]
    fn another_cloud_keeps_its_suffix_and_protocol_defaults_to_https() {
        let cs = parse(&format!(
            "AccountName=acme;AccountKey={KEY};EndpointSuffix=core.chinacloudapi.cn"
        ))
        .unwrap();
        assert_eq!(cs.endpoint, "https://acme.blob.core.chinacloudapi.cn");
    }

    #[test]
    fn the_azurite_form_uses_its_blob_endpoint() {
        let cs = parse(&format!(
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={KEY};\
             BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1/;QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;"
        ))
        .unwrap();
        assert_eq!(cs.account.as_deref(), Some("devstoreaccount1"));
        assert_eq!(cs.endpoint, "http://127.0.0.1:10000/devstoreaccount1");
        assert_eq!(key_of(&cs), KEY);
    }

    #[test]
    fn the_sas_form_needs_no_account_name() {
        let cs = parse("BlobEndpoint=https://acme.blob.core.windows.net/;SharedAccessSignature=?sv=2022-11-02&ss=b&sig=a%2Bb%3D").unwrap();
        assert_eq!(cs.account, None);
        assert_eq!(cs.endpoint, "https://acme.blob.core.windows.net");
        match cs.credential {
            ConnectionCredential::Sas(s) => {
                assert_eq!(s.expose_secret(), "sv=2022-11-02&ss=b&sig=a%2Bb%3D")
            }
            ConnectionCredential::AccessKey(_) => panic!("expected a SAS"),
        }
    }

    #[test]
    fn use_development_storage_means_azurite_on_its_default_port() {
        let cs = parse("UseDevelopmentStorage=true").unwrap();
        assert_eq!(cs.account.as_deref(), Some("devstoreaccount1"));
        assert_eq!(cs.endpoint, "http://127.0.0.1:10000/devstoreaccount1");
        assert_eq!(key_of(&cs), DEVELOPMENT_ACCOUNT_KEY);
        assert_eq!(
            parse("UseDevelopmentStorage=false").unwrap_err(),
            ConnectionStringError::BadDevelopmentStorage
        );
    }

    #[test]
    fn keys_are_case_insensitive_and_values_may_contain_equals_signs() {
        let cs = parse(&format!("accountname=acme;ACCOUNTKEY={KEY}")).unwrap();
        assert_eq!(key_of(&cs), KEY);
    }

    #[test]
    fn bad_input_names_the_missing_key() {
        assert_eq!(parse("").unwrap_err(), ConnectionStringError::Empty);
        assert_eq!(parse(" ; ").unwrap_err(), ConnectionStringError::Empty);
        assert_eq!(
            parse("AccountName=acme").unwrap_err(),
            ConnectionStringError::Missing("AccountKey or SharedAccessSignature")
        );
        assert_eq!(
            parse(&format!("AccountKey={KEY}")).unwrap_err(),
            ConnectionStringError::Missing("AccountName (required with AccountKey)")
        );
        assert_eq!(
            parse("SharedAccessSignature=sv=1&sig=x").unwrap_err(),
            ConnectionStringError::Missing("AccountName or BlobEndpoint")
        );
        assert_eq!(
            parse(&format!("AccountName=a;AccountName=b;AccountKey={KEY}")).unwrap_err(),
            ConnectionStringError::Duplicate("AccountName")
        );
        assert_eq!(
            parse("AccountName=;AccountKey=x").unwrap_err(),
            ConnectionStringError::EmptyValue("AccountName")
        );
        assert_eq!(
            parse(&format!(
                "DefaultEndpointsProtocol=ftp;AccountName=a;AccountKey={KEY}"
            ))
            .unwrap_err(),
            ConnectionStringError::BadProtocol
        );
    }

    #[test]
    fn errors_never_echo_a_secret() {
        // A key pasted alone, a key after a missing `;`, and a key without its name.
        let secret = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq";
        for raw in [
            secret.to_owned(),
            format!("AccountName=acme;{secret}"),
            format!("AccountName=acme {secret}==;"),
            format!("{secret}==;AccountName=acme"),
        ] {
            let message = parse(&raw).unwrap_err().to_string();
            assert!(!message.contains(&secret[..12]), "{message}");
        }
        assert_eq!(
            parse("AccountName=acme;oops").unwrap_err(),
            ConnectionStringError::Malformed { position: 2 }
        );
    }
}
