//! The command-line client of filegate's HTTP API (`filegate upload`): it splits a file into
//! chunks, sends block 0 to open the upload and the rest in parallel, retries a failed chunk with
//! exponential back-off, and resumes an interrupted upload by asking the status route which
//! blocks are missing. It talks to the service only over HTTP, as any client would; of the
//! service's insides it shares only the domain's format sniffing, to declare a file's type as
//! the service will tell it.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::multipart::{Form, Part};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// What to upload and how.
#[derive(Debug, Clone)]
pub struct UploadOptions {
    pub file: PathBuf,
    /// A mode name as the API takes it (`Message`, `Import`, ...).
    pub mode: String,
    /// The service's base URL, e.g. `http://127.0.0.1:8080`.
    pub server: String,
    pub api_key: String,
    pub chunk_size: u64,
    pub parallel: usize,
    /// Resume this upload instead of starting a new one.
    pub resume: Option<Uuid>,
    /// Tries per chunk before giving up.
    pub max_tries: u32,
    /// Show a progress bar (when stdout is a terminal).
    pub progress: bool,
}

/// A finished upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadResult {
    pub file_id: Uuid,
    pub url: Option<String>,
    pub size: u64,
    pub total_blocks: u32,
    /// Blocks sent by this run (fewer than the total when resuming).
    pub sent_blocks: u32,
    /// The SHA-256 of the local file, in hex: the service's record of the stored file says
    /// the same, or the upload fails with [`UploadError::ChecksumMismatch`].
    pub sha256: String,
    /// Whether the service's checksum was there to compare; it is computed moments after a
    /// commit whose chunks arrived out of order, and is waited for (at most
    /// [`CHECKSUM_WAIT`]).
    pub verified: bool,
}

/// How long the uploader waits for the service to compute a file's checksum.
pub const CHECKSUM_WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("cannot read {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0} is empty; the service stores no empty files")]
    EmptyFile(PathBuf),
    #[error(
        "the file needs {blocks} chunks of {chunk_size} bytes; the service allows at most 50000: use a larger --chunk-size"
    )]
    TooManyBlocks { blocks: u64, chunk_size: u64 },
    #[error(
        "the upload {file_id} has {server} blocks but this file in chunks of {chunk_size} bytes has {local}: resume with the --chunk-size of the first run"
    )]
    ResumeMismatch {
        file_id: Uuid,
        server: u32,
        local: u32,
        chunk_size: u64,
    },
    /// The service refused a request; retrying the same request cannot help.
    #[error("the service answered {status}: {message}")]
    Refused { status: u16, message: String },
    /// The last try of a chunk failed for a reason that could pass (network, 5xx, 429).
    #[error("block {block} failed after {tries} tries: {last}")]
    GaveUp {
        file_id: Option<Uuid>,
        block: u32,
        tries: u32,
        last: String,
    },
    #[error("the service's answer was not understood: {0}")]
    Protocol(String),
    /// The stored file is not this file: something changed the bytes on the way or in storage.
    #[error(
        "the stored file {file_id} has SHA-256 {server}, but the local file has {local}: delete it and upload again"
    )]
    ChecksumMismatch {
        file_id: Uuid,
        local: String,
        server: String,
    },
}

impl UploadError {
    /// The upload that can be resumed after this error, if one was opened.
    pub fn resumable(&self) -> Option<Uuid> {
        match self {
            UploadError::GaveUp { file_id, .. } => *file_id,
            _ => None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope<T> {
    is_success: bool,
    data: Option<T>,
    message: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChunkData {
    file_id: Uuid,
    url: Option<String>,
    is_complete: bool,
    #[serde(default)]
    sha256: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StatusData {
    is_complete: bool,
    url: Option<String>,
    total_blocks: u32,
    /// Runs `[first, last]` of missing blocks, inclusive: compact for any upload size.
    missing_ranges: Vec<[u32; 2]>,
    #[serde(default)]
    sha256: Option<String>,
}

impl StatusData {
    fn missing(&self) -> Vec<u32> {
        self.missing_ranges
            .iter()
            .flat_map(|[first, last]| *first..=*last)
            .collect()
    }
}

/// The longest `Retry-After` obeyed: a proxy that asks for an hour would otherwise leave the
/// command hanging with no sign of life, so a longer one waits this long.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// The delay a `Retry-After` header asks for (503 and 429 carry one), in seconds: the only
/// form filegate sends. An HTTP date or garbage is ignored.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// How long to wait before the next try: what the server asked for, else the back-off.
fn next_wait(after: Option<Duration>, backoff: Duration) -> Duration {
    after.map_or(backoff, |after| after.min(MAX_RETRY_AFTER))
}

/// Why one try failed, and whether another may succeed.
enum TryError {
    Retry {
        message: String,
        after: Option<Duration>,
    },
    Fatal(UploadError),
}

struct Client {
    http: reqwest::Client,
    options: UploadOptions,
    size: u64,
    total: u32,
    /// The type the chunks declare: the service decides from the bytes, but a declared type
    /// settles what the bytes leave open (audio in an MP4, an office file's kind).
    content_type: Option<&'static str>,
    bar: ProgressBar,
}

/// The content type of the file at `path` in `mode`, from its first bytes, else its extension.
async fn content_type_of(
    path: &std::path::Path,
    mode: &str,
) -> std::io::Result<Option<&'static str>> {
    use tokio::io::AsyncReadExt;
    let mut head = Vec::with_capacity(filegate_domain::SNIFF_BYTES);
    tokio::fs::File::open(path)
        .await?
        .take(filegate_domain::SNIFF_BYTES as u64)
        .read_to_end(&mut head)
        .await?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let hint = filegate_domain::Hint {
        declared: None,
        file_name: &name,
    };
    let format = filegate_domain::sniff(&head, hint).or_else(|| {
        let (_, ext) = name.rsplit_once('.')?;
        filegate_domain::Format::from_extension(ext)
    });
    let mode = mode.parse().unwrap_or(filegate_domain::Mode::Message);
    Ok(format.map(|f| f.content_type(mode)))
}

/// Uploads (or resumes) one file.
pub async fn upload(options: UploadOptions) -> Result<UploadResult, UploadError> {
    let file_error = |source| UploadError::File {
        path: options.file.clone(),
        source,
    };
    let size = tokio::fs::metadata(&options.file)
        .await
        .map_err(file_error)?
        .len();
    if size == 0 {
        return Err(UploadError::EmptyFile(options.file.clone()));
    }
    let chunk_size = options.chunk_size.max(1);
    let blocks = size.div_ceil(chunk_size);
    if blocks > 50_000 {
        return Err(UploadError::TooManyBlocks { blocks, chunk_size });
    }
    let total = blocks as u32;
    let content_type = content_type_of(&options.file, &options.mode)
        .await
        .map_err(file_error)?;
    let bar = if options.progress && std::io::stdout().is_terminal() {
        let bar = ProgressBar::new(size);
        let style = ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] [{wide_bar}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar
    } else {
        ProgressBar::hidden()
    };
    let client = Arc::new(Client {
        http: reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| UploadError::Protocol(e.to_string()))?,
        options,
        size,
        total,
        content_type,
        bar,
    });
    let result = client.clone().run().await;
    client.bar.finish_and_clear();
    result
}

impl Client {
    async fn run(self: Arc<Self>) -> Result<UploadResult, UploadError> {
        let (file_id, missing, mut url) = match self.options.resume {
            Some(id) => {
                let status = self.status(id).await?;
                if status.total_blocks != self.total {
                    return Err(UploadError::ResumeMismatch {
                        file_id: id,
                        server: status.total_blocks,
                        local: self.total,
                        chunk_size: self.options.chunk_size,
                    });
                }
                let missing = status.missing();
                let done = u64::from(self.total - missing.len() as u32);
                self.bar
                    .set_position(done.saturating_mul(self.options.chunk_size).min(self.size));
                if status.is_complete {
                    return self.verify(id, status.url, 0, status.sha256).await;
                }
                (id, missing, None)
            }
            None => {
                let first = self.send_with_retries(None, 0).await?;
                let rest: Vec<u32> = (1..self.total).collect();
                let sha256 = first.sha256.clone();
                (
                    first.file_id,
                    rest,
                    first.url.filter(|_| first.is_complete).map(|u| (u, sha256)),
                )
            }
        };
        let sent = missing.len() as u32 + u32::from(self.options.resume.is_none());
        let mut sends = futures::stream::iter(missing.into_iter().map(|block| {
            let client = self.clone();
            async move { client.send_with_retries(Some(file_id), block).await }
        }))
        .buffer_unordered(self.options.parallel.max(1));
        while let Some(answer) = sends.next().await {
            let answer = answer?;
            if answer.is_complete
                && let Some(done) = answer.url
            {
                url = Some((done, answer.sha256));
            }
        }
        let (url, sha256) = match url {
            Some((url, sha256)) => (Some(url), sha256),
            None => {
                // The completing answer may have been lost to a retry; the status knows.
                let status = self.status(file_id).await?;
                if !status.is_complete {
                    return Err(UploadError::Protocol(format!(
                        "every block was sent but the upload is not complete; missing {:?}",
                        status.missing_ranges
                    )));
                }
                (status.url, status.sha256)
            }
        };
        self.verify(file_id, url, sent, sha256).await
    }

    /// Compares the local file's SHA-256 with the service's, waiting for the service's while
    /// it is still being computed (at most [`CHECKSUM_WAIT`]).
    async fn verify(
        &self,
        file_id: Uuid,
        url: Option<String>,
        sent_blocks: u32,
        server: Option<String>,
    ) -> Result<UploadResult, UploadError> {
        let local = self.local_sha256().await?;
        let mut server = server;
        let deadline = tokio::time::Instant::now() + CHECKSUM_WAIT;
        while server.is_none() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
            server = self.status(file_id).await?.sha256;
        }
        if let Some(server) = &server
            && !server.eq_ignore_ascii_case(&local)
        {
            return Err(UploadError::ChecksumMismatch {
                file_id,
                local,
                server: server.clone(),
            });
        }
        Ok(UploadResult {
            file_id,
            url,
            size: self.size,
            total_blocks: self.total,
            sent_blocks,
            sha256: local,
            verified: server.is_some(),
        })
    }

    /// The SHA-256 of the whole local file, read in pieces on the blocking pool.
    async fn local_sha256(&self) -> Result<String, UploadError> {
        let path = self.options.file.clone();
        let hashed = tokio::task::spawn_blocking(move || {
            use std::io::Read;
            let mut file = std::fs::File::open(&path)?;
            let mut hasher = Sha256::new();
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = file.read(&mut buf)?;
                if n == 0 {
                    return Ok(hex::encode(hasher.finalize()));
                }
                hasher.update(&buf[..n]);
            }
        })
        .await
        .map_err(|e| UploadError::Protocol(format!("hashing the file failed: {e}")))?;
        hashed.map_err(|source| UploadError::File {
            path: self.options.file.clone(),
            source,
        })
    }

    async fn read_block(&self, block: u32) -> Result<Vec<u8>, UploadError> {
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        let start = u64::from(block) * self.options.chunk_size;
        let len = self.options.chunk_size.min(self.size - start);
        let file_error = |source| UploadError::File {
            path: self.options.file.clone(),
            source,
        };
        let mut file = tokio::fs::File::open(&self.options.file)
            .await
            .map_err(file_error)?;
        file.seek(std::io::SeekFrom::Start(start))
            .await
            .map_err(file_error)?;
        let mut buf = vec![0u8; len as usize];
        file.read_exact(&mut buf).await.map_err(file_error)?;
        Ok(buf)
    }

    async fn send_with_retries(
        &self,
        file_id: Option<Uuid>,
        block: u32,
    ) -> Result<ChunkData, UploadError> {
        let data = self.read_block(block).await?;
        let len = data.len() as u64;
        let mut delay = Duration::from_millis(250);
        let tries = self.options.max_tries.max(1);
        for attempt in 1..=tries {
            match self.send(file_id, block, data.clone()).await {
                Ok(answer) => {
                    self.bar.inc(len);
                    return Ok(answer);
                }
                Err(TryError::Fatal(e)) => return Err(e),
                Err(TryError::Retry { message, .. }) if attempt == tries => {
                    return Err(UploadError::GaveUp {
                        file_id,
                        block,
                        tries,
                        last: message,
                    });
                }
                Err(TryError::Retry { message, after }) => {
                    let wait = next_wait(after, delay);
                    tracing::warn!(block, attempt, error = %message, wait_ms = wait.as_millis() as u64, "chunk failed; retrying");
                    self.bar.println(format!(
                        "block {block}: {message}; retrying in {:.1}s",
                        wait.as_secs_f32()
                    ));
                    tokio::time::sleep(wait).await;
                    delay = (delay * 2).min(Duration::from_secs(30));
                }
            }
        }
        Err(UploadError::GaveUp {
            file_id,
            block,
            tries,
            last: "no try was made".into(),
        })
    }

    async fn send(
        &self,
        file_id: Option<Uuid>,
        block: u32,
        data: Vec<u8>,
    ) -> Result<ChunkData, TryError> {
        let name = self
            .options
            .file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "file".to_owned());
        let mut form = Form::new()
            .text("BlockIndex", block.to_string())
            .text("TotalBlocks", self.total.to_string())
            .text("Mode", self.options.mode.clone());
        if let Some(id) = file_id {
            form = form.text("FileId", id.to_string());
        }
        // Checked by the service before it keeps the chunk.
        form = form.text("ChunkSha256", hex::encode(Sha256::digest(&data)));
        // Last, so that the server streams the bytes to storage as they arrive.
        let mut part = Part::bytes(data).file_name(name);
        if let Some(content_type) = self.content_type {
            part = part
                .mime_str(content_type)
                .map_err(|e| TryError::Fatal(UploadError::Protocol(e.to_string())))?;
        }
        form = form.part("File", part);
        let url = format!(
            "{}/api/v1/Files/chunk",
            self.options.server.trim_end_matches('/')
        );
        let resp = self
            .http
            .post(url)
            .header("X-API-Key", &self.options.api_key)
            .multipart(form)
            .send()
            .await
            .map_err(|e| TryError::Retry {
                message: e.to_string(),
                after: None,
            })?;
        let status = resp.status().as_u16();
        let after = retry_after(resp.headers());
        let text = resp.text().await.map_err(|e| TryError::Retry {
            message: e.to_string(),
            after: None,
        })?;
        let envelope: Option<Envelope<ChunkData>> = serde_json::from_str(&text).ok();
        let message = envelope
            .as_ref()
            .map_or_else(|| text.clone(), |e| e.message.clone());
        match status {
            200 => envelope
                .filter(|e| e.is_success)
                .and_then(|e| e.data)
                .ok_or(TryError::Fatal(UploadError::Protocol(text))),
            // A retried final chunk whose first try committed the file: the file is done.
            409 if file_id.is_some() && message.contains("already complete") => Ok(ChunkData {
                file_id: file_id.unwrap_or_default(),
                url: None,
                is_complete: true,
                sha256: None,
            }),
            408 | 429 | 500..=599 => Err(TryError::Retry {
                message: format!("{status}: {message}"),
                after,
            }),
            _ => Err(TryError::Fatal(UploadError::Refused { status, message })),
        }
    }

    async fn status(&self, id: Uuid) -> Result<StatusData, UploadError> {
        let url = format!(
            "{}/api/v1/Files/{id}",
            self.options.server.trim_end_matches('/')
        );
        let mut delay = Duration::from_millis(250);
        let tries = self.options.max_tries.max(1);
        let mut last = String::new();
        for _ in 0..tries {
            let after = match self
                .http
                .get(&url)
                .header("X-API-Key", &self.options.api_key)
                .send()
                .await
            {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let after = retry_after(resp.headers());
                    let text = resp.text().await.unwrap_or_default();
                    let envelope: Option<Envelope<StatusData>> = serde_json::from_str(&text).ok();
                    match (status, envelope) {
                        (
                            200,
                            Some(Envelope {
                                data: Some(data), ..
                            }),
                        ) => return Ok(data),
                        (429 | 500..=599, e) => {
                            last = e.map_or(text, |e| e.message);
                            after
                        }
                        (_, e) => {
                            return Err(UploadError::Refused {
                                status,
                                message: e.map_or(text, |e| e.message),
                            });
                        }
                    }
                }
                Err(e) => {
                    last = e.to_string();
                    None
                }
            };
            tokio::time::sleep(next_wait(after, delay)).await;
            delay = (delay * 2).min(Duration::from_secs(30));
        }
        Err(UploadError::Protocol(format!(
            "the status of {id} could not be read: {last}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};

    use super::*;

    fn headers(retry_after: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static(retry_after));
        headers
    }

    #[test]
    fn a_503s_retry_after_is_the_wait_before_the_next_try() {
        let backoff = Duration::from_millis(250);
        let after = retry_after(&headers("5"));
        assert_eq!(after, Some(Duration::from_secs(5)));
        assert_eq!(next_wait(after, backoff), Duration::from_secs(5));
    }

    #[test]
    fn without_a_usable_retry_after_the_back_off_applies() {
        let backoff = Duration::from_millis(250);
        assert_eq!(retry_after(&HeaderMap::new()), None);
        assert_eq!(retry_after(&headers("Wed, 21 Oct 2015 07:28:00 GMT")), None);
        assert_eq!(next_wait(None, backoff), backoff);
    }

    #[test]
    fn an_absurd_retry_after_is_capped() {
        let after = retry_after(&headers("86400"));
        assert_eq!(
            next_wait(after, Duration::from_millis(250)),
            MAX_RETRY_AFTER
        );
    }
}
