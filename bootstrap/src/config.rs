//! The configuration: one typed struct, loaded once, in layers. Defaults first, then an
//! optional TOML file (`--config FILE`), then environment variables prefixed `FILEGATE_` with
//! `__` for nesting (`FILEGATE_HTTP__ADDR`, `FILEGATE_DATABASE__URL`,
//! `FILEGATE_BLOB__AZURE__CONNECTION_STRING`, ...). Every field is documented where it is
//! declared, with its default; `docs/configuration.md` lists them for operators.

use std::net::SocketAddr;
use std::num::NonZeroU64;
use std::path::Path;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use secrecy::SecretString;
use serde::Deserialize;

use filegate_adapter_azure_blob::AzureBlobSettings;
use filegate_adapter_local_fs::LocalFsSettings;
use filegate_adapter_meta::MetaSettings;
use filegate_adapter_rabbitmq::RabbitSettings;
use filegate_domain::{ExpiryPolicy, Mode, SizeCaps};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default)]
    pub http: HttpSettings,
    #[serde(default)]
    pub database: DatabaseSettings,
    #[serde(default)]
    pub blob: BlobSettings,
    #[serde(default)]
    pub log: LogSettings,
    /// Meta's Graph API, for `worker`. The access token comes from the environment only
    /// (`FILEGATE_META__ACCESS_TOKEN`).
    #[serde(default)]
    pub meta: MetaSettings,
    /// RabbitMQ: the media task queue (`worker`) and the events exchange (`serve`).
    #[serde(default)]
    pub rabbitmq: RabbitSettings,
    #[serde(default)]
    pub limits: LimitSettings,
    #[serde(default)]
    pub worker: WorkerSettings,
    #[serde(default)]
    pub events: EventSettings,
    #[serde(default)]
    pub uploads: UploadSettings,
    #[serde(default)]
    pub rate: RateSettings,
    #[serde(default)]
    pub telemetry: TelemetrySettings,
}

/// What an operator sees from outside.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetrySettings {
    /// Serve `GET /metrics` (Prometheus text, no key) on a listener of its own at this
    /// address. `serve` then no longer serves it on its API port (recommended in production,
    /// so that the metrics are not public); `worker` serves metrics only when it is set.
    /// Default none.
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Export traces over OTLP/HTTP (protobuf) to this collector base URL (`/v1/traces` is
    /// appended, as for `OTEL_EXPORTER_OTLP_ENDPOINT`, which also turns export on). It wins
    /// over the environment. Default none: no export, though spans still carry trace ids for
    /// logs and for the `traceparent` of events.
    pub otlp_endpoint: Option<String>,
}

/// Requests per API key, per instance (several servers each allow this much).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateSettings {
    /// Requests a key may send per second, on average; 0 turns the limit off. Past it a
    /// request gets 429 with `Retry-After`. Default 1000: far more than one client uploading
    /// 8 MiB chunks at disk speed sends.
    pub requests_per_sec: u32,
    /// Requests a key may send at once after a quiet spell. Default 2000.
    pub burst: u32,
}

impl Default for RateSettings {
    fn default() -> Self {
        Self {
            requests_per_sec: 1000,
            burst: 2000,
        }
    }
}

impl RateSettings {
    pub fn limit(&self) -> Option<filegate_adapter_http::RateLimit> {
        (self.requests_per_sec > 0 && self.burst > 0).then(|| filegate_adapter_http::RateLimit {
            requests_per_sec: f64::from(self.requests_per_sec),
            burst: f64::from(self.burst),
        })
    }
}

/// How long an open upload may go without a chunk, and how often `serve` looks for those that
/// did.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UploadSettings {
    /// Seconds without a chunk after which an open upload expires: its blocks are discarded
    /// and its chunks and status answer 410. Default 86400 (a day).
    pub expire_after_secs: NonZeroU64,
    /// The same per mode, overriding the default: `Import = 3600`. Keys are mode names (any
    /// case; unknown ones are refused).
    #[serde(deserialize_with = "per_mode")]
    pub expire_after_secs_by_mode: Vec<(Mode, NonZeroU64)>,
    /// How often the sweeper looks for expired uploads, in seconds. Default 60.
    pub sweep_interval_secs: NonZeroU64,
}

impl Default for UploadSettings {
    fn default() -> Self {
        Self {
            expire_after_secs: NonZeroU64::new(86_400).unwrap_or(NonZeroU64::MIN),
            expire_after_secs_by_mode: Vec::new(),
            sweep_interval_secs: NonZeroU64::new(60).unwrap_or(NonZeroU64::MIN),
        }
    }
}

impl UploadSettings {
    pub fn expiry(&self) -> ExpiryPolicy {
        let secs = |n: NonZeroU64| Duration::from_secs(n.get());
        self.expire_after_secs_by_mode.iter().fold(
            ExpiryPolicy::new(secs(self.expire_after_secs)),
            |policy, (mode, after)| policy.with_mode(*mode, secs(*after)),
        )
    }
}

/// A list given as a list (TOML) or as one comma-separated string (the environment).
#[derive(Deserialize)]
#[serde(untagged)]
enum ListOrText {
    List(Vec<String>),
    Text(String),
}

fn string_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(match ListOrText::deserialize(d)? {
        ListOrText::List(items) => items,
        ListOrText::Text(text) => text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}

fn ip_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<std::net::IpAddr>, D::Error> {
    string_list(d)?
        .iter()
        .map(|ip| {
            ip.parse()
                .map_err(|_| serde::de::Error::custom(format!("`{ip}` is not an IP address")))
        })
        .collect()
}

/// A table keyed by mode name, read into modes: a misspelt mode is an error, not a silent
/// default.
fn per_mode<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<(Mode, NonZeroU64)>, D::Error> {
    let raw = std::collections::BTreeMap::<String, NonZeroU64>::deserialize(d)?;
    raw.into_iter()
        .map(|(name, secs)| {
            name.parse::<Mode>()
                .map(|mode| (mode, secs))
                .map_err(serde::de::Error::custom)
        })
        .collect()
}

/// The largest file of each mode, in bytes (contract section 6), a larger one gets 413; in
/// Message and Template, also of each kind of WhatsApp media, told from the file's first bytes
/// (the smaller cap applies); and how many uploads a firm may have open at once.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitSettings {
    /// Default 5 MiB.
    pub firm_bytes: u64,
    /// Default 5 MiB.
    pub profile_bytes: u64,
    /// Default 5 MiB.
    pub contact_bytes: u64,
    /// Default 100 MB (WhatsApp's largest media, documents).
    pub message_bytes: u64,
    /// Default 100 MB.
    pub template_bytes: u64,
    /// Default 50 MiB.
    pub import_bytes: u64,
    /// Images (jpeg, png) in Message and Template. Default 5 MB (Meta's cap).
    pub image_bytes: u64,
    /// Videos (mp4, 3gpp) in Message and Template. Default 16 MB.
    pub video_bytes: u64,
    /// Audio (aac, amr, mpeg, mp4, ogg) in Message. Default 16 MB.
    pub audio_bytes: u64,
    /// Documents (pdf, Office, text) in Message and Template. Default 100 MB.
    pub document_bytes: u64,
    /// Stickers (webp) in Message. Default 500 KB.
    pub sticker_bytes: u64,
    /// Default 1000; 0 sets no limit. A new upload past it gets 429 with `Retry-After` (until
    /// the firm's next open upload expires, at most an hour). Per firm, over all its keys.
    pub open_uploads_per_firm: u32,
}

impl Default for LimitSettings {
    fn default() -> Self {
        let caps = SizeCaps::default();
        Self {
            firm_bytes: caps.firm,
            profile_bytes: caps.profile,
            contact_bytes: caps.contact,
            message_bytes: caps.message,
            template_bytes: caps.template,
            import_bytes: caps.import,
            image_bytes: caps.image,
            video_bytes: caps.video,
            audio_bytes: caps.audio,
            document_bytes: caps.document,
            sticker_bytes: caps.sticker,
            open_uploads_per_firm: 1000,
        }
    }
}

impl LimitSettings {
    pub fn open_uploads(&self) -> Option<std::num::NonZeroU32> {
        std::num::NonZeroU32::new(self.open_uploads_per_firm)
    }

    pub fn caps(&self) -> SizeCaps {
        SizeCaps {
            firm: self.firm_bytes,
            profile: self.profile_bytes,
            contact: self.contact_bytes,
            message: self.message_bytes,
            template: self.template_bytes,
            import: self.import_bytes,
            image: self.image_bytes,
            video: self.video_bytes,
            audio: self.audio_bytes,
            document: self.document_bytes,
            sticker: self.sticker_bytes,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerSettings {
    /// How long one delivery of a media task holds it before another delivery of the same task
    /// may take over (a worker that died mid-task). Longer than the slowest send. Default 900.
    pub lease_secs: u64,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self { lease_secs: 900 }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventSettings {
    /// Publish `file.completed` events from the outbox to RabbitMQ (`serve`). Default false: the
    /// embedded profile has no broker; events wait in the outbox until this is turned on.
    pub enabled: bool,
    /// How often the outbox is read, in milliseconds. Default 500.
    pub poll_interval_ms: u64,
    /// Events published per round. Default 100.
    pub batch: u32,
    /// How long the outbox keeps an event after it was published (or, with events off, after
    /// it was stored), in seconds. Default 604800 (7 days).
    pub retain_secs: NonZeroU64,
}

impl Default for EventSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            poll_interval_ms: 500,
            batch: 100,
            retain_secs: NonZeroU64::new(604_800).unwrap_or(NonZeroU64::MIN),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    /// Address to listen on. Default `0.0.0.0:8080`; port 0 picks a free port (the bound
    /// address is printed on stdout).
    pub addr: SocketAddr,
    /// Largest chunk accepted, in bytes; a larger one gets 413. Default 16 MiB.
    pub max_chunk_bytes: usize,
    /// The service's public URL: written into the OpenAPI spec, and the base of the URLs it
    /// hands out for its content route (the embedded profile). Default: none; those URLs are
    /// then built from the request's `Host`, if `allowed_hosts` lists it.
    pub public_url: Option<String>,
    /// Hosts a request's `Host` may name when the service builds a URL from it (no
    /// `public_url`, a blob store without URLs of its own): compared without the port,
    /// case-insensitively; any other gets 400. The listen address is always added. Default
    /// `localhost`, `127.0.0.1`, `[::1]`. In the environment, a comma-separated list.
    #[serde(deserialize_with = "string_list")]
    pub allowed_hosts: Vec<String>,
    /// Peers (IP addresses) whose `X-Forwarded-Proto` and `X-Forwarded-Host` are believed;
    /// from anyone else they are ignored. Default none. In the environment, a comma-separated
    /// list.
    #[serde(deserialize_with = "ip_list")]
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Seconds that in-flight requests get to finish after SIGTERM/Ctrl-C. Default 30.
    pub shutdown_grace_secs: u64,
    /// Request bytes held in memory at once across all requests: a File part sent before the
    /// other fields is buffered until they arrive, and the Azure store sends a block as one
    /// payload. Beyond it a new chunk gets 503 with Retry-After. A chunk whose File comes last
    /// streams to the local store and holds none of it. Default 256 MiB.
    pub max_inflight_bytes: u64,
    /// Seconds within which a new connection must deliver its first request head; else it is
    /// closed. Without it a client that connects and sends nothing holds a connection (and a
    /// file descriptor) forever. Default 10.
    pub header_timeout_secs: u64,
    /// Seconds a connection, or a request body being read, may go without moving a byte before
    /// it is closed; a stalled chunk body gets 408. It frees what a vanished or stalling client
    /// holds (its connection, its buffered chunk) without cutting off a slow but live one.
    /// Default 30.
    pub idle_timeout_secs: u64,
    /// Client connections open at once. Beyond it, new connections wait in the kernel's accept
    /// backlog until one closes, so a flood cannot exhaust file descriptors. At start the
    /// process's soft file-descriptor limit is raised to fit it, or it is lowered to what the
    /// hard limit allows (and the start logs it). Default 4096.
    pub max_connections: usize,
    /// Bytes of a request body that was not read (an early 401, 413, 415 or 429) that are read
    /// and discarded before the answer, so that a client still sending reads the answer rather
    /// than a reset connection (nginx's lingering close). A request that declares a longer body
    /// is answered and closed at once. 0 turns draining off. Default 64 MiB.
    pub drain_max_bytes: u64,
    /// Seconds that draining may take at most. Default 10.
    pub drain_timeout_secs: u64,
    /// Browser origins (`https://crm.example`) that may call the API from their pages; `*`
    /// for any (the key travels in a header, not a cookie). Default none: CORS is off. A
    /// request from an unlisted origin is served without CORS headers, not refused. In the
    /// environment, a comma-separated list.
    #[serde(deserialize_with = "string_list")]
    pub cors_allowed_origins: Vec<String>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([0, 0, 0, 0], 8080)),
            max_chunk_bytes: 16 * 1024 * 1024,
            public_url: None,
            allowed_hosts: vec!["localhost".into(), "127.0.0.1".into(), "[::1]".into()],
            trusted_proxies: Vec::new(),
            shutdown_grace_secs: 30,
            max_inflight_bytes: 256 * 1024 * 1024,
            header_timeout_secs: 10,
            idle_timeout_secs: 30,
            max_connections: 4096,
            drain_max_bytes: 64 * 1024 * 1024,
            drain_timeout_secs: 10,
            cors_allowed_origins: Vec::new(),
        }
    }
}

#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// The metadata store, as a URL: `sqlite://PATH` (the embedded profile) or
    /// `postgres://...`. Default `sqlite://./filegate-data/filegate.db`. It may hold a password,
    /// so it is never logged.
    pub url: SecretString,
    /// Connections in the pool. Default 16.
    pub max_connections: u32,
    /// When `serve` finds no API key at all, create one for a development firm and user and
    /// print it once, so that the very first request works. Default true; production sets it
    /// false and creates keys with `filegate keys create`.
    pub create_first_key: bool,
    /// Run the embedded migrations when `serve` starts. Default true.
    pub migrate_on_start: bool,
    /// On Postgres, how long `serve` keeps an API key it has verified in memory (0: not at
    /// all). A revoked or deleted key is dropped by every server as soon as Postgres' notice of
    /// it arrives (milliseconds; 0 makes a revocation bite the instant it commits); this only
    /// bounds how long a key goes unchecked. SQLite keys are never kept (nothing tells a server
    /// of another process's revocation). Default 60.
    pub key_cache_secs: u64,
}

impl std::fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("url", &"<redacted>")
            .field("max_connections", &self.max_connections)
            .field("create_first_key", &self.create_first_key)
            .field("migrate_on_start", &self.migrate_on_start)
            .field("key_cache_secs", &self.key_cache_secs)
            .finish()
    }
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: SecretString::from("sqlite://./filegate-data/filegate.db"),
            max_connections: 16,
            create_first_key: true,
            migrate_on_start: true,
            key_cache_secs: 60,
        }
    }
}

/// Which blob store holds the files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum BlobKind {
    /// Files under a local folder (the embedded profile). The default.
    #[default]
    Local,
    /// Azure Blob Storage (or Azurite).
    Azure,
}

/// Which metadata store `database.url` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseKind {
    Sqlite,
    Postgres,
}

impl DatabaseSettings {
    /// Tells the store apart by the URL's scheme.
    pub fn kind(&self) -> Result<DatabaseKind, String> {
        use secrecy::ExposeSecret;
        let url = self.url.expose_secret();
        let scheme = url
            .split_once(':')
            .map(|(s, _)| s.to_ascii_lowercase())
            .unwrap_or_default();
        match scheme.as_str() {
            "sqlite" => Ok(DatabaseKind::Sqlite),
            "postgres" | "postgresql" => Ok(DatabaseKind::Postgres),
            _ => Err(format!(
                "database.url must start with sqlite: or postgres:, not `{scheme}:`"
            )),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BlobSettings {
    /// `local` (files under `blob.local.root`) or `azure`. Default `local`.
    pub kind: BlobKind,
    /// Azure settings: the container (`container`, default `uploads`), and a connection string,
    /// or account + key, or Entra ID; see `docs/configuration.md`. The container lives here
    /// rather than beside `kind` because only Azure has one: the local store's `root` is its
    /// counterpart.
    pub azure: AzureBlobSettings,
    /// Local folder settings (`root`, default `./filegate-data/blobs`); see
    /// `docs/configuration.md`.
    pub local: LocalFsSettings,
}

impl Default for BlobSettings {
    fn default() -> Self {
        Self {
            kind: BlobKind::Local,
            azure: AzureBlobSettings::default(),
            local: LocalFsSettings::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// A tracing filter (`info`, `filegate=debug,info`, ...). `RUST_LOG` wins when set.
    /// Default `info`.
    pub level: String,
    /// `text` for people, `json` for log pipelines. Default `text`.
    pub format: LogFormat,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

impl Settings {
    /// Loads the layers: defaults, then `file` if given, then `FILEGATE_*` variables.
    pub fn load(file: Option<&Path>) -> Result<Self, Box<figment::Error>> {
        // Every struct has serde defaults, so an empty figment extracts to the defaults.
        let mut figment = Figment::new();
        if let Some(file) = file {
            // Meta's token is a credential of a different order: it comes from the environment
            // only, so that it never sits in a file that gets copied around.
            let in_file = Figment::from(Toml::file_exact(file))
                .find_value("meta.access_token")
                .is_ok();
            if in_file {
                return Err(Box::new(figment::Error::from(
                    "meta.access_token must not be in a configuration file: set FILEGATE_META__ACCESS_TOKEN in the environment".to_owned(),
                )));
            }
            figment = figment.merge(Toml::file_exact(file));
        }
        // Only nested keys are settings (every setting lives in a section); this keeps
        // variables such as `FILEGATE_TEST_DATABASE_URL` of the test tooling out.
        figment = figment.merge(
            Env::prefixed("FILEGATE_")
                .filter(|k| k.as_str().contains("__"))
                .split("__"),
        );
        figment.extract().map_err(Box::new)
    }
}

#[cfg(test)]
// figment's Jail returns its own large error type; that is its API, not ours.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn host_lists_come_comma_separated_from_the_environment_or_as_lists() {
        figment::Jail::expect_with(|jail| {
            let s = Settings::load(None).unwrap();
            assert_eq!(s.http.allowed_hosts, ["localhost", "127.0.0.1", "[::1]"]);
            assert!(s.http.trusted_proxies.is_empty());
            assert!(s.http.cors_allowed_origins.is_empty());
            jail.set_env(
                "FILEGATE_HTTP__CORS_ALLOWED_ORIGINS",
                "https://crm.example,http://localhost:3000",
            );
            jail.set_env("FILEGATE_HTTP__ALLOWED_HOSTS", "files.example, localhost");
            jail.set_env("FILEGATE_HTTP__TRUSTED_PROXIES", "10.0.0.7,::1");
            let s = Settings::load(None).unwrap();
            assert_eq!(s.http.allowed_hosts, ["files.example", "localhost"]);
            assert_eq!(
                s.http.cors_allowed_origins,
                ["https://crm.example", "http://localhost:3000"]
            );
            assert_eq!(
                s.http.trusted_proxies,
                [
                    "10.0.0.7".parse::<std::net::IpAddr>().unwrap(),
                    "::1".parse().unwrap()
                ]
            );
            jail.set_env("FILEGATE_HTTP__TRUSTED_PROXIES", "10.0.0.7,proxy.local");
            let err = Settings::load(None).unwrap_err().to_string();
            assert!(err.contains("proxy.local"), "{err}");
            jail.clear_env();
            jail.create_file("filegate.toml", "[http]\nallowed_hosts = [\"a.example\"]\n")?;
            let s = Settings::load(Some(Path::new("filegate.toml"))).unwrap();
            assert_eq!(s.http.allowed_hosts, ["a.example"]);
            Ok(())
        });
    }

    #[test]
    fn expiry_comes_from_a_default_and_a_table_by_mode() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "filegate.toml",
                "[uploads]\nexpire_after_secs = 600\n[uploads.expire_after_secs_by_mode]\nImport = 60\n",
            )?;
            jail.set_env("FILEGATE_UPLOADS__EXPIRE_AFTER_SECS_BY_MODE__PROFILE", "30");
            let s = Settings::load(Some(Path::new("filegate.toml"))).unwrap();
            let expiry = s.uploads.expiry();
            assert_eq!(expiry.after(Mode::Import), Duration::from_secs(60));
            assert_eq!(expiry.after(Mode::Profile), Duration::from_secs(30));
            assert_eq!(expiry.after(Mode::Message), Duration::from_secs(600));
            assert_eq!(s.uploads.sweep_interval_secs.get(), 60);

            jail.set_env("FILEGATE_UPLOADS__EXPIRE_AFTER_SECS_BY_MODE__IMPROT", "30");
            let err = Settings::load(Some(Path::new("filegate.toml"))).unwrap_err();
            assert!(err.to_string().contains("improt"), "{err}");
            Ok(())
        });
        figment::Jail::expect_with(|jail| {
            jail.set_env("FILEGATE_UPLOADS__EXPIRE_AFTER_SECS", "0");
            assert!(Settings::load(None).is_err(), "0 seconds is refused");
            let defaults = UploadSettings::default();
            assert_eq!(defaults.expire_after_secs.get(), 86_400);
            Ok(())
        });
    }

    #[test]
    fn environment_overrides_file_which_overrides_defaults() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "filegate.toml",
                "[http]\naddr = \"127.0.0.1:9000\"\nmax_chunk_bytes = 1024\n",
            )?;
            jail.set_env("FILEGATE_HTTP__MAX_CHUNK_BYTES", "2048");
            jail.set_env("FILEGATE_BLOB__AZURE__CONTAINER", "media");
            jail.set_env("FILEGATE_DATABASE__URL", "postgres://u:p@db/x");
            jail.set_env("FILEGATE_TEST_DATABASE_URL", "postgres://elsewhere");
            let s = Settings::load(Some(Path::new("filegate.toml"))).unwrap();
            assert_eq!(s.http.addr.to_string(), "127.0.0.1:9000");
            assert_eq!(s.http.max_chunk_bytes, 2048);
            assert_eq!(s.blob.azure.container, "media");
            assert_eq!(s.database.url.expose_secret(), "postgres://u:p@db/x");
            assert_eq!(s.database.kind(), Ok(DatabaseKind::Postgres));
            Ok(())
        });
    }

    #[test]
    fn defaults_apply_without_file_or_environment() {
        figment::Jail::expect_with(|_| {
            let s = Settings::load(None).unwrap();
            assert_eq!(s.http.max_chunk_bytes, 16 * 1024 * 1024);
            assert_eq!(s.blob.azure.container, "uploads");
            assert_eq!(s.blob.kind, BlobKind::Local);
            assert_eq!(s.database.kind(), Ok(DatabaseKind::Sqlite));
            Ok(())
        });
    }

    #[test]
    fn the_connection_bounds_have_defaults_and_follow_the_environment() {
        figment::Jail::expect_with(|jail| {
            let s = Settings::load(None).unwrap();
            assert_eq!(s.http.header_timeout_secs, 10);
            assert_eq!(s.http.idle_timeout_secs, 30);
            assert_eq!(s.http.max_connections, 4096);
            jail.set_env("FILEGATE_HTTP__HEADER_TIMEOUT_SECS", "2");
            jail.set_env("FILEGATE_HTTP__IDLE_TIMEOUT_SECS", "5");
            jail.set_env("FILEGATE_HTTP__MAX_CONNECTIONS", "8");
            let s = Settings::load(None).unwrap();
            assert_eq!(s.http.header_timeout_secs, 2);
            assert_eq!(s.http.idle_timeout_secs, 5);
            assert_eq!(s.http.max_connections, 8);
            Ok(())
        });
    }

    #[test]
    fn the_connection_bounds_load_from_the_file() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "bounds.toml",
                "[http]\nheader_timeout_secs = 3\nidle_timeout_secs = 7\nmax_connections = 100\n",
            )?;
            let s = Settings::load(Some(Path::new("bounds.toml"))).unwrap();
            assert_eq!(s.http.header_timeout_secs, 3);
            assert_eq!(s.http.idle_timeout_secs, 7);
            assert_eq!(s.http.max_connections, 100);
            Ok(())
        });
    }

    #[test]
    fn secrets_never_appear_in_debug_output() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("FILEGATE_DATABASE__URL", "postgres://u:hunter2@db/x");
            let s = Settings::load(None).unwrap();
            assert!(!format!("{s:?}").contains("hunter2"));
            Ok(())
        });
    }

    #[test]
    fn the_meta_token_comes_from_the_environment_only() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("secret.toml", "[meta]\naccess_token = \"EAAG\"\n")?;
            let err = Settings::load(Some(Path::new("secret.toml"))).unwrap_err();
            assert!(
                err.to_string().contains("FILEGATE_META__ACCESS_TOKEN"),
                "{err}"
            );
            jail.set_env("FILEGATE_META__ACCESS_TOKEN", "EAAG-from-env");
            let s = Settings::load(None).unwrap();
            assert!(s.meta.access_token.is_some());
            assert!(
                !format!("{s:?}").contains("EAAG-from-env"),
                "the token never prints"
            );
            Ok(())
        });
    }

    #[test]
    fn an_unknown_key_is_an_error_that_names_it() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("bad.toml", "[http]\nadress = \"x\"\n")?;
            let err = Settings::load(Some(Path::new("bad.toml"))).unwrap_err();
            assert!(err.to_string().contains("adress"), "{err}");
            Ok(())
        });
    }

    /// Every section is the adapter's own struct, so each must refuse a typo itself: serde's
    /// `deny_unknown_fields` on the outer struct does not reach into the ones it nests.
    #[test]
    fn a_typo_in_any_adapter_section_is_an_error_that_names_it() {
        let cases = [
            ("rabbitmq", "prefech = 4"),
            ("meta", "api_verison = \"v22.0\""),
            (
                "blob.azure",
                "conection_string = \"UseDevelopmentStorage=true\"",
            ),
            ("blob.local", "sync_block = false"),
        ];
        for (section, line) in cases {
            figment::Jail::expect_with(|jail| {
                jail.create_file("typo.toml", &format!("[{section}]\n{line}\n"))?;
                let err = Settings::load(Some(Path::new("typo.toml"))).unwrap_err();
                let key = line.split(' ').next().unwrap_or_default();
                let message = err.to_string();
                assert!(message.contains(&format!("{section}.{key}")), "{message}");
                Ok(())
            });
        }
    }

    /// The example operators copy from `docs/configuration.md` must load as it stands.
    #[test]
    fn the_documented_example_file_loads() {
        let doc = include_str!("../../docs/configuration.md");
        let example = doc
            .split("```toml\n")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .expect("docs/configuration.md has a ```toml example");
        figment::Jail::expect_with(|jail| {
            jail.create_file("example.toml", example)?;
            let s = Settings::load(Some(Path::new("example.toml"))).unwrap();
            assert_eq!(s.blob.kind, BlobKind::Azure);
            assert_eq!(s.blob.azure.container, "uploads");
            Ok(())
        });
    }

    /// The container was once `blob.container`; an old file must fail loudly rather than put
    /// files in the default container.
    #[test]
    fn the_container_is_an_azure_setting_only() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("old.toml", "[blob]\ncontainer = \"media\"\n")?;
            let err = Settings::load(Some(Path::new("old.toml"))).unwrap_err();
            assert!(err.to_string().contains("blob.container"), "{err}");
            jail.create_file("new.toml", "[blob.azure]\ncontainer = \"media\"\n")?;
            let s = Settings::load(Some(Path::new("new.toml"))).unwrap();
            assert_eq!(s.blob.azure.container, "media");
            Ok(())
        });
    }

    #[test]
    fn a_typo_in_an_environment_variable_is_an_error_that_names_it() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("FILEGATE_RABBITMQ__PREFECH", "4");
            let err = Settings::load(None).unwrap_err();
            // figment names an environment key in the variable's own case.
            let message = err.to_string().to_lowercase();
            assert!(message.contains("rabbitmq.prefech"), "{message}");
            assert!(message.contains("filegate_"), "{message}");
            Ok(())
        });
    }
}
