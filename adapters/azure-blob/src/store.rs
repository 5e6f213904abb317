//! The `BlobStore` port on Azure Blob Storage.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use filegate_application::ports::{
    BlobError, BlobRead, BlobStore, ChunkBody, ListedBlob, StagedPart,
};
use filegate_domain::{BlobPath, BlockIndex, TotalBlocks};
use futures::{StreamExt, TryStreamExt};
use object_store::azure::{MicrosoftAzure, MicrosoftAzureBuilder, split_sas};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::signer::Signer;
use object_store::{
    BackoffConfig, ClientOptions, GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload,
    RetryConfig,
};
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::blocks::{Block, PART_SEPARATOR, Pieces, SUB_BLOCK_BYTES, Sending, block_ids};
use crate::connection_string::{self, ConnectionCredential, ConnectionStringError};
use crate::errors::{self, Context};
use crate::settings::{AzureBlobSettings, UrlMode};
use crate::streaming::{BlockStreamer, STREAM_FROM};

/// A prefix no file path starts with (they start with a mode's prefix such as `firms/`), so
/// listing it proves the container exists without reading any file.
const PING_PREFIX: &str = "filegate-ping-never-written";

/// Why the settings do not describe a usable storage account. Messages name settings, never
/// their secret values.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    ConnectionString(#[from] ConnectionStringError),
    #[error(
        "no Azure storage account: set `connection_string`, or `account` (or an `endpoint` such as \
         https://{{account}}.blob.core.windows.net) together with a credential"
    )]
    MissingAccount,
    #[error(
        "no credential for Azure storage account `{0}`: set `connection_string`, `access_key`, `sas_token`, \
         Entra ID (`tenant_id` + `client_id` + `client_secret` or `federated_token_file`) or \
         `use_managed_identity = true`"
    )]
    MissingCredential(String),
    #[error("`{given}` is set but `{missing}` is not; Entra ID needs both")]
    IncompleteEntraId {
        given: &'static str,
        missing: &'static str,
    },
    #[error("the blob endpoint `{0}` is not an http(s) URL")]
    InvalidEndpoint(String),
    #[error("`container` is empty")]
    EmptyContainer,
    #[error(
        "`url_mode = \"sas\"` needs an account key or Entra ID to sign URLs with; a SAS token cannot \
         sign new SAS URLs (use `url_mode = \"public\"` or another credential)"
    )]
    SasModeNeedsSigningCredential,
    #[error("the Azure Blob client could not be built")]
    Client(#[source] object_store::Error),
    #[error("the HTTP client for streamed Put Blocks could not be built")]
    HttpClient(#[source] reqwest::Error),
}

/// The credential chosen from the settings.
enum Credential {
    AccessKey(SecretString),
    Sas(SecretString),
    ClientSecret {
        tenant_id: String,
        client_id: String,
        secret: SecretString,
    },
    Workload {
        tenant_id: String,
        client_id: String,
        token_file: String,
    },
    ManagedIdentity {
        client_id: Option<String>,
    },
}

/// The Azure Blob Storage adapter: blocks are staged with Put Block and committed with Put
/// Block List through `object_store`'s `MultipartStore`. Cheap to clone.
#[derive(Clone)]
pub struct AzureBlobStore {
    inner: Arc<MicrosoftAzure>,
    /// `{endpoint}/{container}`, the base of every blob URL.
    base: Arc<Url>,
    account: Arc<str>,
    container: Arc<str>,
    /// The text of `BlobError::ContainerMissing`, naming the container and what to do.
    container_missing: Arc<str>,
    url_mode: UrlMode,
    sas_ttl: Duration,
    streamer: BlockStreamer,
}

impl fmt::Debug for AzureBlobStore {
    // `MicrosoftAzure`'s own `Debug` prints the account key bytes, so it is left out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureBlobStore")
            .field("account", &self.account)
            .field("container", &self.container)
            .field("base", &self.base.as_str())
            .field("url_mode", &self.url_mode)
            .field("sas_ttl", &self.sas_ttl)
            .finish_non_exhaustive()
    }
}

impl AzureBlobStore {
    /// Builds the client; no request is sent (call [`BlobStore::ping`] to check the account and
    /// the container).
    pub fn new(settings: &AzureBlobSettings) -> Result<Self, BuildError> {
        let container = settings.container.trim();
        if container.is_empty() {
            return Err(BuildError::EmptyContainer);
        }
        let from_string = settings
            .connection_string
            .as_ref()
            .map(|cs| connection_string::parse(cs.expose_secret()))
            .transpose()?;

        let endpoint_text = settings
            .endpoint
            .clone()
            .or_else(|| from_string.as_ref().map(|cs| cs.endpoint.clone()));
        let account = settings
            .account
            .clone()
            .or_else(|| from_string.as_ref().and_then(|cs| cs.account.clone()))
            .or_else(|| endpoint_text.as_deref().and_then(account_from_endpoint))
            .ok_or(BuildError::MissingAccount)?;
        let endpoint_text =
            endpoint_text.unwrap_or_else(|| format!("https://{account}.blob.core.windows.net"));
        let endpoint = parse_endpoint(&endpoint_text)?;

        let credential = match explicit_credential(settings)? {
            Some(c) => c,
            None => match from_string.map(|cs| cs.credential) {
                Some(ConnectionCredential::AccessKey(k)) => Credential::AccessKey(k),
                Some(ConnectionCredential::Sas(s)) => Credential::Sas(s),
                None => return Err(BuildError::MissingCredential(account)),
            },
        };
        if settings.url_mode == UrlMode::Sas && matches!(credential, Credential::Sas(_)) {
            return Err(BuildError::SasModeNeedsSigningCredential);
        }

        let allow_http = endpoint.scheme() == "http";
        let options = ClientOptions::new()
            .with_allow_http(allow_http)
            .with_connect_timeout(Duration::from_secs(settings.connect_timeout_secs))
            // A whole-request limit would cut off a long download streamed to a slow client;
            // the I/O timeout catches a stalled service instead.
            .with_timeout_disabled()
            .with_read_timeout(Duration::from_secs(settings.io_timeout_secs));
        let retry = RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(1),
                base: 2.0,
            },
            max_retries: settings.max_retries,
            retry_timeout: Duration::from_secs(settings.retry_timeout_secs),
        };
        let mut builder = MicrosoftAzureBuilder::new()
            .with_account(&account)
            .with_container_name(container)
            .with_endpoint(endpoint.as_str().trim_end_matches('/').to_owned())
            .with_allow_http(allow_http)
            .with_client_options(options)
            .with_retry(retry);
        builder = match credential {
            Credential::AccessKey(key) => builder.with_access_key(key.expose_secret()),
            Credential::Sas(sas) => builder.with_sas_authorization(
                split_sas(sas.expose_secret()).map_err(BuildError::Client)?,
            ),
            Credential::ClientSecret {
                tenant_id,
                client_id,
                secret,
            } => builder.with_client_secret_authorization(
                client_id,
                secret.expose_secret(),
                tenant_id,
            ),
            Credential::Workload {
                tenant_id,
                client_id,
                token_file,
            } => builder
                .with_tenant_id(tenant_id)
                .with_client_id(client_id)
                .with_federated_token_file(token_file)
                .with_credential_type("workload_identity"),
            Credential::ManagedIdentity { client_id } => {
                let builder = builder.with_credential_type("managed_identity");
                match client_id {
                    Some(id) => builder.with_client_id(id),
                    None => builder,
                }
            }
        };
        let inner = Arc::new(builder.build().map_err(BuildError::Client)?);
        // The streamed Put Blocks' own client, with the same timeouts as object_store's.
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(settings.connect_timeout_secs))
            .read_timeout(Duration::from_secs(settings.io_timeout_secs))
            .http1_only()
            .build()
            .map_err(BuildError::HttpClient)?;

        let mut base = endpoint;
        base.path_segments_mut()
            .map_err(|()| BuildError::InvalidEndpoint(endpoint_text.clone()))?
            .pop_if_empty()
            .push(container);
        let container_missing = format!(
            "`{container}` does not exist in storage account `{account}`; create it (e.g. `az storage container \
             create --name {container}`), the service never creates containers"
        );
        let base = Arc::new(base);
        let account: Arc<str> = account.into();
        Ok(Self {
            streamer: BlockStreamer::new(client, inner.clone(), account.clone(), base.clone()),
            inner,
            base,
            account,
            container: container.into(),
            container_missing: container_missing.into(),
            url_mode: settings.url_mode,
            sas_ttl: Duration::from_secs(settings.sas_ttl_secs),
        })
    }

    /// The container this store writes to.
    pub fn container(&self) -> &str {
        &self.container
    }

    /// The storage account this store writes to.
    pub fn account(&self) -> &str {
        &self.account
    }

    fn cx<'a>(&'a self, action: &'static str, path: &'a str) -> Context<'a> {
        Context {
            action,
            path,
            container_missing: &self.container_missing,
        }
    }

    fn path(&self, path: &BlobPath) -> Result<Path, BlobError> {
        // `parse` keeps the name as it is; `Path::from` would percent-encode `[`, `]` and `%`
        // into the blob name itself.
        Path::parse(path.as_str())
            .map_err(|e| BlobError::Unknown(anyhow::Error::new(e).context("invalid blob path")))
    }
}

/// The first explicitly configured credential, in the documented order.
fn explicit_credential(s: &AzureBlobSettings) -> Result<Option<Credential>, BuildError> {
    if let Some(key) = &s.access_key {
        return Ok(Some(Credential::AccessKey(key.clone())));
    }
    if let Some(sas) = &s.sas_token {
        return Ok(Some(Credential::Sas(SecretString::from(
            sas.expose_secret().trim_start_matches('?'),
        ))));
    }
    let entra = |given: &'static str| -> Result<(String, String), BuildError> {
        let tenant = s.tenant_id.clone().ok_or(BuildError::IncompleteEntraId {
            given,
            missing: "tenant_id",
        })?;
        let client = s.client_id.clone().ok_or(BuildError::IncompleteEntraId {
            given,
            missing: "client_id",
        })?;
        Ok((tenant, client))
    };
    if let Some(secret) = &s.client_secret {
        let (tenant_id, client_id) = entra("client_secret")?;
        return Ok(Some(Credential::ClientSecret {
            tenant_id,
            client_id,
            secret: secret.clone(),
        }));
    }
    if let Some(file) = &s.federated_token_file {
        let (tenant_id, client_id) = entra("federated_token_file")?;
        return Ok(Some(Credential::Workload {
            tenant_id,
            client_id,
            token_file: file.clone(),
        }));
    }
    if s.use_managed_identity {
        return Ok(Some(Credential::ManagedIdentity {
            client_id: s.client_id.clone(),
        }));
    }
    Ok(None)
}

fn parse_endpoint(text: &str) -> Result<Url, BuildError> {
    match Url::parse(text.trim()) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => Ok(url),
        _ => Err(BuildError::InvalidEndpoint(text.to_owned())),
    }
}

/// The account an endpoint names: `{account}.blob.<suffix>` (or a private link's
/// `{account}.privatelink.blob.<suffix>`), or the first path segment when
/// the host is an address or `localhost` (Azurite's path-style URLs).
fn account_from_endpoint(endpoint: &str) -> Option<String> {
    let url = Url::parse(endpoint).ok()?;
    match url.host()? {
        url::Host::Domain(host) if host != "localhost" => {
            let (account, rest) = host.split_once('.')?;
            (rest.starts_with("blob.") || rest.contains(".blob.")).then(|| account.to_owned())
        }
        _ => url
            .path_segments()?
            .find(|s| !s.is_empty())
            .map(str::to_owned),
    }
}

impl BlobStore for AzureBlobStore {
    async fn ping(&self) -> Result<(), BlobError> {
        let probe = Path::from(PING_PREFIX);
        match self.inner.list_with_delimiter(Some(&probe)).await {
            Ok(_) => Ok(()),
            Err(e) => match errors::map(e, &self.cx("listing the container at", PING_PREFIX)) {
                // Listing a container only answers 404 when the container is missing.
                BlobError::NotFound(_) => Err(BlobError::ContainerMissing(
                    self.container_missing.to_string(),
                )),
                BlobError::Unknown(e) if errors::status_of(&format!("{e:#}")) == Some(404) => Err(
                    BlobError::ContainerMissing(self.container_missing.to_string()),
                ),
                other => Err(other),
            },
        }
    }

    async fn begin(&self, path: &BlobPath) -> Result<String, BlobError> {
        let location = self.path(path)?;
        self.inner
            .create_multipart(&location)
            .await
            .map_err(|e| errors::map(e, &self.cx("starting an upload to", path.as_str())))
    }

    #[tracing::instrument(name = "blob.stage_block", skip_all)]
    async fn stage_block(
        &self,
        path: &BlobPath,
        upload_id: &str,
        index: BlockIndex,
        total: TotalBlocks,
        body: ChunkBody,
    ) -> Result<StagedPart, BlobError> {
        let location = self.path(path)?;
        let upload_id = upload_id.to_owned();
        // Put Block takes a block as one payload, so a chunk goes on as Azure blocks of at most
        // SUB_BLOCK_BYTES, each sent while the next arrives: a request holds one block being
        // sent and one being filled, held against the server's budget, not the whole chunk. The
        // file may have TotalBlocks × (its share of Azure's 50,000) blocks; the last one a
        // chunk may have takes the rest of it, however long (within the budget).
        let allowed = total.store_blocks_per_block().max(1) as usize;
        // When the body's length can be guessed, each block's Put Block starts before its
        // first byte arrives and is fed as the bytes come (see `streaming`).
        let expected = body.expected_len();
        let mut pieces = Pieces::new(body);
        let mut ids: Vec<String> = Vec::new();
        let mut size = 0u64;
        let mut sending: Option<Sending> = None;
        let failed = |e| errors::map(e, &self.cx("staging a block of", path.as_str()));
        loop {
            let staged = ids.len() + usize::from(sending.is_some());
            let max = if staged + 1 >= allowed {
                usize::MAX
            } else {
                SUB_BLOCK_BYTES
            };
            let streamed = expected
                .and_then(|len| len.checked_sub(size))
                .map(|left| left.min(max as u64))
                .filter(|&len| len >= STREAM_FROM)
                .map(|len| self.streamer.start_block(&location, len));
            // Read while the previous block is being sent; a failed body drops (aborts) both.
            let next = pieces
                .next_block(max, streamed)
                .await
                .map_err(BlobError::Body)?;
            if let Some(previous) = sending.take() {
                ids.push(previous.finish().await.map_err(failed)?);
            }
            // An empty chunk is still one (empty) block.
            if next.is_none() && !ids.is_empty() {
                break;
            }
            let len = next.as_ref().map_or(0, |block| block.data.content_length());
            // Fewer bytes than asked for: the chunk has ended.
            let ended = len < max;
            size += len as u64;
            let sent = Sending::start(&self.inner, &location, &upload_id, index, next);
            if ended {
                ids.push(sent.finish().await.map_err(failed)?);
                break;
            }
            sending = Some(sent);
        }
        Ok(StagedPart {
            part_id: ids.join(PART_SEPARATOR),
            size,
        })
    }

    /// Put Blob: one request. When the body's length can be guessed, it is sent while it
    /// arrives (see `streaming`); its bytes are held against the server's budget, as Put
    /// Block's are, until Azure has them, and sent again from memory through `object_store`
    /// when the streamed request fails.
    #[tracing::instrument(name = "blob.put", skip_all)]
    async fn put(&self, path: &BlobPath, body: ChunkBody) -> Result<u64, BlobError> {
        let location = self.path(path)?;
        let streamed = body
            .expected_len()
            .filter(|&len| len >= STREAM_FROM)
            .map(|len| self.streamer.start_blob(&location, len));
        let whole = Pieces::new(body)
            .next_block(usize::MAX, streamed)
            .await
            .map_err(BlobError::Body)?;
        let (data, _held, streamed) = match whole {
            Some(Block {
                data,
                held,
                streamed,
            }) => (data, Some(held), streamed),
            None => (PutPayload::new(), None, None),
        };
        let size = data.content_length() as u64;
        if let Some(streamed) = streamed
            && streamed.finish().await.is_some()
        {
            return Ok(size);
        }
        self.inner
            .put(&location, data)
            .await
            .map_err(|e| errors::map(e, &self.cx("writing", path.as_str())))?;
        Ok(size)
    }

    /// When Put Block List fails, the blob may already be committed: Azure committed an
    /// earlier attempt but the metadata store never recorded it (a crash, or a lost answer that
    /// `object_store` retried), and those blocks are no longer "uncommitted", so the same list
    /// is refused. If the blob then exists with exactly `size` bytes, the commit is done. This
    /// is safe because the path contains the file id, only this upload session ever writes
    /// there, and the metadata store runs the commit of a session once at a time; the only
    /// blob of that path and size is this session's own earlier commit. (One corner: a client
    /// that re-sent a block with different bytes of the same length after that earlier commit
    /// keeps the first version.)
    #[tracing::instrument(name = "blob.commit", skip_all)]
    async fn commit(
        &self,
        path: &BlobPath,
        upload_id: &str,
        part_ids: Vec<String>,
        size: u64,
    ) -> Result<(), BlobError> {
        let location = self.path(path)?;
        // A chunk sent as several Azure blocks has their ids in its part id, in order.
        let parts = part_ids
            .iter()
            .flat_map(|part| block_ids(part))
            .map(|content_id| PartId {
                content_id: content_id.to_owned(),
            })
            .collect();
        let failure = match self
            .inner
            .complete_multipart(&location, &upload_id.to_owned(), parts)
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) => errors::map(e, &self.cx("committing the blocks of", path.as_str())),
        };
        if matches!(failure, BlobError::ContainerMissing(_)) {
            return Err(failure);
        }
        match self.inner.head(&location).await {
            Ok(meta) if meta.size == size => {
                tracing::info!(path = %path, size, "the blob was already committed; treating the commit as done");
                Ok(())
            }
            _ => Err(failure),
        }
    }

    /// Uncommitted blocks cannot be deleted on Azure: they are dropped by Azure itself, 7 days
    /// after they were staged (or when another list is committed to the same blob), and a
    /// commit never includes a block it does not name. So there is nothing to do.
    async fn discard_staging(&self, _upload_id: &str) -> Result<(), BlobError> {
        Ok(())
    }

    /// An uncommitted block cannot be deleted either (see `discard_staging`).
    async fn discard_part(
        &self,
        _path: &BlobPath,
        _upload_id: &str,
        _part_id: &str,
    ) -> Result<(), BlobError> {
        Ok(())
    }

    /// List Blobs over the whole container (committed blobs only: uncommitted blocks are not
    /// blobs).
    async fn list_blobs(&self) -> Result<Vec<ListedBlob>, BlobError> {
        let cx = self.cx("listing", "the container");
        let metas: Vec<_> = self
            .inner
            .list(None)
            .try_collect()
            .await
            .map_err(|e| errors::map(e, &cx))?;
        Ok(metas
            .into_iter()
            .map(|meta| ListedBlob {
                path: BlobPath::from_stored(meta.location.to_string()),
                size: meta.size,
                modified: meta.last_modified,
            })
            .collect())
    }

    #[tracing::instrument(name = "blob.read", skip_all)]
    async fn read(
        &self,
        path: &BlobPath,
        range: Option<Range<u64>>,
    ) -> Result<BlobRead, BlobError> {
        let location = self.path(path)?;
        let cx = self.cx("reading", path.as_str());
        if let Some(r) = range.as_ref().filter(|r| r.start >= r.end) {
            // `object_store` refuses empty ranges; the size still has to be told.
            let meta = self
                .inner
                .head(&location)
                .await
                .map_err(|e| errors::map(e, &cx))?;
            let start = r.start.min(meta.size);
            return Ok(BlobRead {
                size: meta.size,
                range: start..start,
                stream: futures::stream::empty().boxed(),
            });
        }
        let options = GetOptions {
            range: range.map(GetRange::Bounded),
            ..GetOptions::default()
        };
        let result = self
            .inner
            .get_opts(&location, options)
            .await
            .map_err(|e| errors::map(e, &cx))?;
        let (size, range) = (result.meta.size, result.range.clone());
        let path_text = path.as_str().to_owned();
        let container_missing = Arc::clone(&self.container_missing);
        let stream = result
            .into_stream()
            .map_err(move |e| {
                errors::map(
                    e,
                    &Context {
                        action: "reading",
                        path: &path_text,
                        container_missing: &container_missing,
                    },
                )
            })
            .boxed();
        Ok(BlobRead {
            size,
            range,
            stream,
        })
    }

    /// Deleting a blob that does not exist succeeds: the caller wants it gone, and it is.
    #[tracing::instrument(name = "blob.delete", skip_all)]
    async fn delete(&self, path: &BlobPath) -> Result<(), BlobError> {
        let location = self.path(path)?;
        match self.inner.delete(&location).await {
            Ok(()) => Ok(()),
            Err(e) => match errors::map(e, &self.cx("deleting", path.as_str())) {
                BlobError::NotFound(_) => Ok(()),
                other => Err(other),
            },
        }
    }

    fn location(&self, path: &BlobPath) -> String {
        // Encoded the way `object_store` addresses the blob, so the URL names the same blob.
        let mut url = (*self.base).clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.extend(path.as_str().split('/'));
        }
        url.into()
    }

    async fn share_url(&self, path: &BlobPath) -> Result<Option<String>, BlobError> {
        match self.url_mode {
            UrlMode::Public => Ok(Some(self.location(path))),
            UrlMode::Sas => {
                let location = self.path(path)?;
                let url = self
                    .inner
                    .signed_url(http::Method::GET, &location, self.sas_ttl)
                    .await
                    .map_err(|e| {
                        errors::map(e, &self.cx("signing a read URL for", path.as_str()))
                    })?;
                Ok(Some(url.into()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use filegate_domain::{FileId, FileName, FirmId, Mode, UserId};
    use uuid::Uuid;

    const KEY: &str =
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    fn path(name: &str) -> BlobPath {
        BlobPath::for_file(
            Mode::Message,
            FirmId::from_uuid(Uuid::from_u128(1)),
            UserId::from_uuid(Uuid::from_u128(2)),
            FileId::from_uuid(Uuid::from_u128(3)),
            &FileName::sanitize(name),
        )
    }

    #[test]
    fn a_portal_connection_string_gives_public_blob_urls() {
        let store = AzureBlobStore::new(&AzureBlobSettings::from_connection_string(format!(
            "DefaultEndpointsProtocol=https;AccountName=acme;AccountKey={KEY};EndpointSuffix=core.windows.net"
        )))
        .unwrap();
        let p = path("report.pdf");
        assert_eq!(
            store.location(&p),
            format!("https://acme.blob.core.windows.net/uploads/{p}")
        );
    }

    #[test]
    fn an_azurite_connection_string_keeps_the_account_in_the_path_and_names_are_url_encoded() {
        let mut settings = AzureBlobSettings::from_connection_string(format!(
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={KEY};BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1/;"
        ));
        settings.container = "files".into();
        let store = AzureBlobStore::new(&settings).unwrap();
        let p = path("my report.pdf");
        let expected = format!(
            "http://127.0.0.1:10000/devstoreaccount1/files/{}",
            p.as_str().replace(' ', "%20")
        );
        assert_eq!(store.location(&p), expected);
    }

    #[test]
    fn explicit_fields_override_the_connection_string() {
        let mut settings =
            AzureBlobSettings::from_connection_string(format!("AccountName=acme;AccountKey={KEY}"));
        settings.endpoint = Some("https://files.example.com".into());
        let store = AzureBlobStore::new(&settings).unwrap();
        assert_eq!(store.account(), "acme");
        assert!(
            store
                .location(&path("a.txt"))
                .starts_with("https://files.example.com/uploads/")
        );
    }

    #[test]
    fn the_account_comes_from_the_endpoint_when_not_given() {
        assert_eq!(
            account_from_endpoint("https://acme.blob.core.windows.net").as_deref(),
            Some("acme")
        );
        assert_eq!(
            account_from_endpoint("http://127.0.0.1:10000/devstoreaccount1").as_deref(),
            Some("devstoreaccount1")
        );
        assert_eq!(
            account_from_endpoint("http://localhost:10000/devstoreaccount1/").as_deref(),
            Some("devstoreaccount1")
        );
        assert_eq!(
            account_from_endpoint("https://acme.privatelink.blob.core.windows.net").as_deref(),
            Some("acme")
        );
        assert_eq!(account_from_endpoint("https://files.example.com"), None);
    }

    #[test]
    fn nothing_configured_is_a_clear_error() {
        let err = AzureBlobStore::new(&AzureBlobSettings::default()).unwrap_err();
        assert!(matches!(err, BuildError::MissingAccount), "{err}");
        assert!(err.to_string().contains("connection_string"));

        let settings = AzureBlobSettings {
            account: Some("acme".into()),
            ..AzureBlobSettings::default()
        };
        let err = AzureBlobStore::new(&settings).unwrap_err();
        assert!(
            matches!(err, BuildError::MissingCredential(ref a) if a == "acme"),
            "{err}"
        );

        let settings = AzureBlobSettings {
            account: Some("acme".into()),
            client_secret: Some("s3cr3t".into()),
            client_id: Some("app".into()),
            ..AzureBlobSettings::default()
        };
        let err = AzureBlobStore::new(&settings).unwrap_err();
        assert!(
            matches!(
                err,
                BuildError::IncompleteEntraId {
                    missing: "tenant_id",
                    ..
                }
            ),
            "{err}"
        );
        assert!(!err.to_string().contains("s3cr3t"));
    }

    #[test]
    fn sas_url_mode_needs_a_credential_that_can_sign() {
        let mut settings = AzureBlobSettings::from_connection_string(
            "BlobEndpoint=https://acme.blob.core.windows.net;SharedAccessSignature=sv=2022-11-02&sp=rwdl&sig=abc",
        );
        assert!(AzureBlobStore::new(&settings).is_ok());
        settings.url_mode = UrlMode::Sas;
        assert!(matches!(
            AzureBlobStore::new(&settings),
            Err(BuildError::SasModeNeedsSigningCredential)
        ));
    }

    #[test]
    fn entra_id_settings_build_without_a_key() {
        let settings = AzureBlobSettings {
            account: Some("acme".into()),
            tenant_id: Some("tenant".into()),
            client_id: Some("app".into()),
            client_secret: Some("secret".into()),
            url_mode: UrlMode::Sas,
            ..AzureBlobSettings::default()
        };
        assert!(AzureBlobStore::new(&settings).is_ok());
        let managed = AzureBlobSettings {
            account: Some("acme".into()),
            use_managed_identity: true,
            ..AzureBlobSettings::default()
        };
        assert!(AzureBlobStore::new(&managed).is_ok());
    }

    #[test]
    fn debug_output_never_shows_a_secret() {
        let settings =
            AzureBlobSettings::from_connection_string(format!("AccountName=acme;AccountKey={KEY}"));
        let store = AzureBlobStore::new(&settings).unwrap();
        for text in [format!("{settings:?}"), format!("{store:?}")] {
            assert!(!text.contains(&KEY[..10]), "{text}");
        }
        let settings = AzureBlobSettings {
            client_secret: Some("hunter2".into()),
            sas_token: Some("sig=zzz".into()),
            ..AzureBlobSettings::default()
        };
        let text = format!("{settings:?}");
        assert!(!text.contains("hunter2") && !text.contains("zzz"), "{text}");
    }

    #[test]
    fn settings_deserialize_with_defaults() {
        let settings: AzureBlobSettings = serde_json::from_str(
            r#"{"connection_string": "UseDevelopmentStorage=true", "url_mode": "sas"}"#,
        )
        .unwrap();
        assert_eq!(settings.container, "uploads");
        assert_eq!(settings.url_mode, UrlMode::Sas);
        assert_eq!(settings.sas_ttl_secs, 3600);
        assert!(AzureBlobStore::new(&settings).is_ok());
    }
}
