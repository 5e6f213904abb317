//! The `BlobStore` port on the local file system.
//!
//! Layout under the root folder:
//! - `{mode prefix}/{file id}/{name}`: the committed files, at their blob paths;
//! - `.staging/{upload id}/blocks`: the upload's blocks written in place, block `i` at
//!   `i × the size of block 0`, so that a file sent in even chunks is written once and its
//!   commit is a flush and a rename; the part id of such a block is `r{offset}_{length}`;
//! - `.staging/{upload id}/{index:05}.claim`: the claim of block `index` on its place (the
//!   claim of block 0 holds the block size once block 0 is written). A place is written by
//!   one request only, ever: a re-sent index goes to a file of its own, so the bytes of a
//!   recorded block are never overwritten;
//! - `.staging/{upload id}/{index:05}-{random hex}`: a block that has no place (a re-sent
//!   index, a block longer than block 0, a block sent before block 0's size is known), one
//!   file each; the file name is the part id;
//! - `.staging/{upload id}/.{part id}.tmp`: such a block being written;
//! - `{folder}/.filegate-commit-{random hex}.tmp`: a file being committed into `{folder}`.
//!
//! Hidden names (a leading `.`) are never reachable from a blob path, so neither the staging
//! area nor a temporary file left by a crash can be read as a blob. A file is published only by
//! the atomic rename of its complete, flushed temporary file.

use std::fmt::Display;
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use filegate_application::ports::{
    BlobError, BlobRead, BlobStore, ByteBudget, ChunkBody, ListedBlob, Reservation, StagedPart,
};
use filegate_domain::{BlobPath, BlockIndex, TotalBlocks};
use futures::StreamExt;
use url::Url;
use uuid::Uuid;

use crate::errors;
use crate::paths;
use crate::settings::LocalFsSettings;

/// The folder under the root that holds the blocks of uploads in progress.
const STAGING: &str = ".staging";
/// The file of an upload's staging folder that holds its blocks in place.
const ASSEMBLY: &str = "blocks";
/// How a file being committed is named in its final folder, before the random part.
const COMMIT_TEMP_PREFIX: &str = ".filegate-commit-";
/// How a commit copied together ahead of time is named in its staging folder, before the
/// digest of the part ids it holds (hidden: no part id starts with `.`).
const PREPARED_PREFIX: &str = ".prepared-";

/// The size of each piece a read streams: read by one blocking task straight into the piece
/// it becomes. `tokio::fs::File` behind a 64 KiB `ReaderStream` held the same 128 KiB per read
/// (its own buffer and the stream's) and copied every byte between them.
const READ_PIECE: usize = 128 * 1024;
/// About how many bytes of a body one blocking write takes (see [`PieceWriter`]).
const WRITE_BATCH: usize = 1024 * 1024;

/// Why the root folder cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LocalFsError {
    #[error("the blob root `{}` exists but is not a folder", .0.display())]
    NotAFolder(PathBuf),
    #[error("the blob root folder `{}` could not be created", .path.display())]
    Create {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the blob root `{}` could not be resolved to an absolute path", .path.display())]
    Resolve {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the blob root `{}` cannot be written as a file:// URL", .0.display())]
    NotAFileUrl(PathBuf),
}

/// The local file system adapter: blocks are written in place into one file per upload (or,
/// failing that, as files of their own) and committed by renaming that file into place (or a
/// temporary file that concatenates them). Cheap to clone.
#[derive(Debug, Clone)]
pub struct LocalFsStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Absolute and canonical.
    root: PathBuf,
    /// `{root}/.staging`.
    staging: PathBuf,
    /// `file://` URL of the root, ending with `/`.
    root_url: Url,
    sync_blocks: bool,
    sync_commits: bool,
    min_free_bytes: u64,
    /// The text of `BlobError::ContainerMissing`, naming the folder and what to do.
    root_missing: String,
}

impl LocalFsStore {
    /// Creates the root folder (and its `.staging` folder) when missing and resolves it to an
    /// absolute path, so that a later change of the working directory changes nothing. Blocks
    /// briefly on the file system: call it at startup.
    pub fn new(settings: &LocalFsSettings) -> Result<Self, LocalFsError> {
        let given = &settings.root;
        if given.exists() && !given.is_dir() {
            return Err(LocalFsError::NotAFolder(given.clone()));
        }
        fs::create_dir_all(given).map_err(|source| LocalFsError::Create {
            path: given.clone(),
            source,
        })?;
        let root = fs::canonicalize(given).map_err(|source| LocalFsError::Resolve {
            path: given.clone(),
            source,
        })?;
        let staging = root.join(STAGING);
        match fs::create_dir(&staging) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && staging.is_dir() => {}
            Err(source) => {
                return Err(LocalFsError::Create {
                    path: staging,
                    source,
                });
            }
        }
        let root_url = Url::from_directory_path(&root)
            .map_err(|()| LocalFsError::NotAFileUrl(root.clone()))?;
        let root_missing = format!(
            "the blob root folder `{}` is missing or not a folder (deleted, or a volume not \
             mounted?); filegate creates it only at startup: restore it, or restart the service",
            root.display()
        );
        Ok(Self {
            inner: Arc::new(Inner {
                root,
                staging,
                root_url,
                sync_blocks: settings.sync_blocks,
                sync_commits: settings.sync_commits,
                min_free_bytes: settings.min_free_bytes,
                root_missing,
            }),
        })
    }

    /// The root folder, absolute.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// Removes what a process killed mid-write left behind: a commit's hidden temporary file
    /// next to its final path, a block's temporary file in the staging area. Only files older
    /// than `older_than` go, so that a write in progress (another process on the same root) is
    /// left alone. Answers how many were removed. Blocks on the file system; the port's
    /// [`BlobStore::sweep_temporaries`] runs it on the blocking pool.
    pub fn remove_leftovers(&self, older_than: Duration) -> Result<usize, BlobError> {
        self.inner.remove_leftovers(older_than)
    }

    /// Runs file system work on the blocking thread pool. The work goes on to its end even
    /// when the caller stops waiting, so a commit is never cut off half-way.
    async fn blocking<T, F>(&self, work: F) -> Result<T, BlobError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T, BlobError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || work(&inner))
            .await
            .map_err(|e| {
                BlobError::Unknown(anyhow::Error::new(e).context("a file system task failed"))
            })?
    }

    /// Streams a block into its place; a block that outgrows its place continues as a part
    /// of its own, starting with what it wrote in place.
    async fn write_in_place(
        &self,
        path: &BlobPath,
        upload_id: &str,
        index: BlockIndex,
        place: InPlace,
        mut body: ChunkBody,
    ) -> Result<StagedPart, BlobError> {
        let cx = |e| self.inner.stage_error(e, path, upload_id, index);
        let file = place.file.try_clone().map_err(cx)?;
        let mut file = PieceWriter::new(file, body.budget());
        let mut written = 0u64;
        while let Some(piece) = body.next().await {
            let piece = piece.map_err(BlobError::Body)?;
            let len = piece.len() as u64;
            if place.limit.is_some_and(|limit| written + len > limit) {
                file.finish().await.map_err(cx)?;
                let head = place.offset..place.offset + written;
                // The claim goes with `place`: the place was never given out.
                drop(place);
                let rest = body.prepend(piece);
                return self
                    .write_part(path, upload_id, index, Some(head), rest)
                    .await;
            }
            file.write(piece).await.map_err(cx)?;
            written += len;
        }
        let file = file.finish().await.map_err(cx)?;
        let offset = place.offset;
        let (p, u) = (path.clone(), upload_id.to_owned());
        self.blocking(move |inner| inner.settle_in_place(file, place, written, (&p, &u, index)))
            .await?;
        Ok(StagedPart {
            part_id: Piece::in_place_id(offset, written),
            size: written,
        })
    }

    /// Streams a block into a part of its own.
    async fn write_part(
        &self,
        path: &BlobPath,
        upload_id: &str,
        index: BlockIndex,
        head: Option<Range<u64>>,
        mut body: ChunkBody,
    ) -> Result<StagedPart, BlobError> {
        let (p, u) = (path.clone(), upload_id.to_owned());
        let (mut temp, dir, part_id) = self
            .blocking(move |inner| inner.open_part(&p, &u, index, head))
            .await?;
        let size = append_body(&mut temp, Vec::new(), &mut body, |e| {
            self.inner.stage_error(e, path, upload_id, index)
        })
        .await?;
        let (p, u, id) = (path.clone(), upload_id.to_owned(), part_id.clone());
        self.blocking(move |inner| inner.persist_part(temp, &dir, &id, (&p, &u, index)))
            .await?;
        Ok(StagedPart { part_id, size })
    }
}

impl Inner {
    /// The file of a blob path, refusing any path that could lead out of the committed area.
    fn resolve(&self, path: &BlobPath) -> Result<PathBuf, BlobError> {
        paths::resolve(&self.root, path.as_str()).map_err(|reason| {
            BlobError::Unknown(anyhow::anyhow!(
                "refusing the blob path {:?}: {reason}",
                path.as_str()
            ))
        })
    }

    /// The staging folder of an upload, refusing an id that is not one plain name.
    fn upload_dir(&self, upload_id: &str) -> Result<PathBuf, BlobError> {
        paths::check_id(upload_id, "upload id").map_err(|reason| {
            BlobError::Unknown(anyhow::anyhow!("refusing the upload: {reason}"))
        })?;
        Ok(self.staging.join(upload_id))
    }

    fn list_blobs(&self) -> Result<Vec<ListedBlob>, BlobError> {
        let cx = |e| self.io_error(e, "listing the blobs in", &self.root.display());
        let mut listed = Vec::new();
        let mut folders = vec![(self.root.clone(), String::new())];
        while let Some((folder, prefix)) = folders.pop() {
            for entry in fs::read_dir(&folder).map_err(cx)? {
                let entry = entry.map_err(cx)?;
                let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                    continue;
                };
                // Hidden: the staging area, temporary files, anything not a blob.
                if name.starts_with('.') {
                    continue;
                }
                let relative = format!("{prefix}{name}");
                let kind = entry.file_type().map_err(cx)?;
                if kind.is_dir() {
                    folders.push((entry.path(), format!("{relative}/")));
                } else if kind.is_file() {
                    let meta = entry.metadata().map_err(cx)?;
                    let modified = meta.modified().map_err(cx)?;
                    listed.push(ListedBlob {
                        path: BlobPath::from_stored(relative),
                        size: meta.len(),
                        modified: chrono::DateTime::<chrono::Utc>::from(modified),
                    });
                }
            }
        }
        listed.sort_by(|a, b| a.path.as_str().cmp(b.path.as_str()));
        Ok(listed)
    }

    fn remove_leftovers(&self, older_than: Duration) -> Result<usize, BlobError> {
        let cutoff = SystemTime::now()
            .checked_sub(older_than)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let cx = |e| self.io_error(e, "looking for leftovers in", &self.root.display());
        let mut removed = 0;
        let mut folders = vec![self.root.clone()];
        while let Some(folder) = folders.pop() {
            for entry in fs::read_dir(&folder).map_err(cx)? {
                let entry = entry.map_err(cx)?;
                let kind = entry.file_type().map_err(cx)?;
                if kind.is_dir() {
                    folders.push(entry.path());
                    continue;
                }
                let name = entry.file_name();
                let name = name.to_string_lossy();
                // Commit temporaries sit next to final paths, block temporaries in staging.
                let leftover = name.ends_with(".tmp")
                    && (name.starts_with(COMMIT_TEMP_PREFIX) || folder.starts_with(&self.staging))
                    && name.starts_with('.');
                if !leftover {
                    continue;
                }
                let modified = entry.metadata().and_then(|m| m.modified()).map_err(cx)?;
                if modified < cutoff {
                    match fs::remove_file(entry.path()) {
                        Ok(()) => removed += 1,
                        Err(e) if errors::is_missing(&e) => {}
                        Err(e) => return Err(cx(e)),
                    }
                }
            }
        }
        Ok(removed)
    }

    fn root_is_there(&self) -> bool {
        self.root.is_dir()
    }

    fn container_missing(&self) -> BlobError {
        BlobError::ContainerMissing(self.root_missing.clone())
    }

    /// Maps a failure while `action` (e.g. "reading") on `what`. A missing file is `NotFound`
    /// naming `what`, unless the root itself is gone.
    fn io_error(&self, err: io::Error, action: &str, what: &dyn Display) -> BlobError {
        if errors::is_missing(&err) {
            if !self.root_is_there() {
                return self.container_missing();
            }
            return BlobError::NotFound(what.to_string());
        }
        errors::classify(err, format!("{action} `{what}`"))
    }

    fn begin(&self, upload_id: &str) -> Result<(), BlobError> {
        let dir = self.upload_dir(upload_id)?;
        let cx = |e| self.io_error(e, "creating the staging folder", &dir.display());
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if errors::is_missing(&e) && self.root_is_there() => {
                // Someone removed `.staging` while the root stayed: what it held is lost
                // anyway, and making it again lets new uploads start.
                tracing::warn!(staging = %self.staging.display(), "the staging folder was missing; recreating it");
                create_dir_if_missing(&self.staging).map_err(cx)?;
                fs::create_dir(&dir).map_err(cx)?;
            }
            Err(e) => return Err(cx(e)),
        }
        if self.sync_blocks {
            sync_dir(&self.staging).map_err(cx)?;
        }
        Ok(())
    }

    /// Claims block `index`'s place in the upload's assembly file, when it has one: block 0
    /// always starts at 0; another block has a place once block 0's size is known, at
    /// `index × that size`, at most that long. A place already claimed (the index is re-sent,
    /// or sent twice at once) is never written again: the block then goes to a part of its own.
    fn claim_place(
        &self,
        path: &BlobPath,
        upload_id: &str,
        index: BlockIndex,
    ) -> Result<Option<InPlace>, BlobError> {
        let dir = self.upload_dir(upload_id)?;
        let cx = |e| self.stage_error(e, path, upload_id, index);
        let (offset, limit) = if index.is_first() {
            (0, None)
        } else {
            let Some(size) = block_size(&dir) else {
                return Ok(None);
            };
            match u64::from(index.get()).checked_mul(size) {
                Some(offset) => (offset, Some(size)),
                None => return Ok(None),
            }
        };
        let claim_path = dir.join(claim_name(index.get()));
        let claim = match File::options()
            .write(true)
            .create_new(true)
            .open(&claim_path)
        {
            Ok(file) => Claim {
                path: claim_path,
                file: Some(file),
            },
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(None),
            Err(e) => return Err(cx(e)),
        };
        let mut file = File::options()
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join(ASSEMBLY))
            .map_err(cx)?;
        file.seek(SeekFrom::Start(offset)).map_err(cx)?;
        Ok(Some(InPlace {
            file,
            offset,
            limit,
            claim,
            dir,
        }))
    }

    /// Makes a block written in place durable (when blocks are synced) and keeps its claim;
    /// block 0's claim records its size, which places every later block.
    fn settle_in_place(
        &self,
        file: File,
        place: InPlace,
        written: u64,
        (path, upload_id, index): (&BlobPath, &str, BlockIndex),
    ) -> Result<(), BlobError> {
        let cx = |e| self.stage_error(e, path, upload_id, index);
        let InPlace { dir, mut claim, .. } = place;
        if self.sync_blocks {
            file.sync_data().map_err(cx)?;
        }
        if index.is_first() && written > 0 {
            // Not flushed on its own: a size lost in a crash only sends later blocks to parts
            // of their own, and a torn one does not parse.
            claim
                .file()?
                .write_all(format!("{written}\n").as_bytes())
                .map_err(cx)?;
        }
        if self.sync_blocks {
            // The claim must outlive a crash as long as its block is recorded.
            sync_dir(&dir).map_err(cx)?;
        }
        claim.keep();
        Ok(())
    }

    /// Creates the hidden temporary file of a block that is written as a part of its own,
    /// starting with `head`: the bytes a block already wrote in place before it outgrew it.
    fn open_part(
        &self,
        path: &BlobPath,
        upload_id: &str,
        index: BlockIndex,
        head: Option<Range<u64>>,
    ) -> Result<(TempFile, PathBuf, String), BlobError> {
        let dir = self.upload_dir(upload_id)?;
        let cx = |e| self.stage_error(e, path, upload_id, index);
        let part_id = format!("{:05}-{}", index.get(), Uuid::new_v4().simple());
        let mut temp = TempFile::create(dir.join(format!(".{part_id}.tmp"))).map_err(cx)?;
        if let Some(head) = head {
            let mut assembly = File::open(dir.join(ASSEMBLY)).map_err(cx)?;
            assembly.seek(SeekFrom::Start(head.start)).map_err(cx)?;
            let copied =
                io::copy(&mut assembly.take(head.end - head.start), temp.file()?).map_err(cx)?;
            if copied != head.end - head.start {
                return Err(BlobError::Unknown(anyhow::anyhow!(
                    "block {} of upload {upload_id}: {copied} of its {} bytes written in place could be read back",
                    index.get(),
                    head.end - head.start
                )));
            }
        }
        Ok((temp, dir, part_id))
    }

    /// Makes a written block durable (when blocks are synced) and gives it its part id: only
    /// the rename publishes it, so a crash never leaves a part that is shorter than it was.
    fn persist_part(
        &self,
        mut temp: TempFile,
        dir: &Path,
        part_id: &str,
        (path, upload_id, index): (&BlobPath, &str, BlockIndex),
    ) -> Result<(), BlobError> {
        let cx = |e| self.stage_error(e, path, upload_id, index);
        if self.sync_blocks {
            temp.file()?.sync_all().map_err(cx)?;
        }
        temp.persist(&dir.join(part_id)).map_err(cx)?;
        if self.sync_blocks {
            sync_dir(dir).map_err(cx)?;
        }
        Ok(())
    }

    fn stage_error(
        &self,
        e: io::Error,
        path: &BlobPath,
        upload_id: &str,
        index: BlockIndex,
    ) -> BlobError {
        self.io_error(
            e,
            "staging a block of",
            &format_args!("{path} (upload {upload_id}, block {})", index.get()),
        )
    }

    /// See [`BlobStore::commit`] on [`LocalFsStore`].
    fn commit(
        &self,
        path: &BlobPath,
        upload_id: &str,
        part_ids: &[String],
        size: u64,
    ) -> Result<(), BlobError> {
        let target = self.resolve(path)?;
        let dir = self.upload_dir(upload_id)?;
        let pieces = part_ids
            .iter()
            .map(|id| Piece::parse(id))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|reason| {
                BlobError::Unknown(anyhow::anyhow!("refusing the commit of {path}: {reason}"))
            })?;
        let cx = |e| self.io_error(e, "committing", path);

        // Every block must be there and the sizes must add up before anything is written. The
        // parts are only looked at here, not kept open: a file may have 50,000 of them.
        let assembly = dir.join(ASSEMBLY);
        let mut assembly_len = None;
        let mut staged = 0u64;
        let mut in_order = true;
        for (piece, id) in pieces.iter().zip(part_ids) {
            let len = match *piece {
                Piece::InPlace { offset, len } => {
                    let have = match assembly_len {
                        Some(have) => have,
                        None => match fs::metadata(&assembly) {
                            Ok(meta) => *assembly_len.insert(meta.len()),
                            Err(e) if errors::is_missing(&e) => {
                                return self.committed_before(path, &target, upload_id, id, size);
                            }
                            Err(e) => return Err(cx(e)),
                        },
                    };
                    if offset.checked_add(len).is_none_or(|end| end > have) {
                        return self.committed_before(path, &target, upload_id, id, size);
                    }
                    in_order &= offset == staged;
                    len
                }
                Piece::Part(id) => {
                    in_order = false;
                    match fs::metadata(dir.join(id)) {
                        Ok(meta) => meta.len(),
                        Err(e) if errors::is_missing(&e) => {
                            return self.committed_before(path, &target, upload_id, id, size);
                        }
                        Err(e) => return Err(cx(e)),
                    }
                }
            };
            staged = staged.saturating_add(len);
        }
        if staged != size {
            return Err(size_mismatch(path, part_ids.len(), staged, size));
        }

        let (folder, changed) = self.create_folders(&target).map_err(cx)?;
        let temp_path = folder.join(format!(
            "{COMMIT_TEMP_PREFIX}{}.tmp",
            Uuid::new_v4().simple()
        ));
        // When the blocks already lie in order in the assembly file, that file is the file
        // (cut to its size: a block refused after it began may have written past the end); a
        // file of one part is that part. Either gets a second name (a hard link) instead of a
        // copy, so its bytes are written once, and stays as it is until the staging folder is
        // discarded, so that a commit cut short can simply run again.
        let whole = match pieces.as_slice() {
            _ if in_order && !pieces.is_empty() => {
                if assembly_len.is_some_and(|have| have > size) {
                    File::options()
                        .write(true)
                        .open(&assembly)
                        .and_then(|f| f.set_len(size))
                        .map_err(cx)?;
                }
                Some(assembly)
            }
            [Piece::Part(only)] => Some(dir.join(only)),
            // Copied together ahead of time, outside the session's lock, from exactly these
            // parts (see `prepare`); its name pins the parts and its length the size.
            _ => Some(dir.join(prepared_name(part_ids)))
                .filter(|prepared| fs::metadata(prepared).is_ok_and(|m| m.len() == size)),
        };
        let linked = whole.and_then(|whole| TempFile::link(&whole, temp_path.clone()).ok());
        let temp = match linked {
            Some(temp) => temp,
            None => self
                .assemble(&dir, &pieces, temp_path, size)
                .map_err(|e| match e {
                    Assembly::Io(e) => cx(e),
                    Assembly::Short(written) => size_mismatch(path, part_ids.len(), written, size),
                })?,
        };
        // The rename, and the entries of any folder created for it, must reach the disk too
        // before the commit is reported done.
        self.publish(temp, path, &folder, &changed)
    }

    /// The temporary file a whole blob is written into, in its final folder.
    fn open_put(
        &self,
        path: &BlobPath,
        target: &Path,
    ) -> Result<(TempFile, PathBuf, Vec<PathBuf>), BlobError> {
        let cx = |e| self.io_error(e, "writing", path);
        let (folder, changed) = self.create_folders(target).map_err(cx)?;
        let temp = TempFile::create(folder.join(format!(
            "{COMMIT_TEMP_PREFIX}{}.tmp",
            Uuid::new_v4().simple()
        )))
        .map_err(cx)?;
        Ok((temp, folder, changed))
    }

    /// Flushes a complete temporary file, renames it to the blob's path and flushes the folders
    /// that changed, so that the file is there after a power loss once this answers (unless
    /// `sync_commits` is off: then it only renames).
    fn publish(
        &self,
        mut temp: TempFile,
        path: &BlobPath,
        folder: &Path,
        changed: &[PathBuf],
    ) -> Result<(), BlobError> {
        let target = self.resolve(path)?;
        let cx = |e| self.io_error(e, "committing", path);
        if !self.sync_commits {
            return temp.persist(&target).map_err(cx);
        }
        temp.file()?.sync_all().map_err(cx)?;
        temp.persist(&target).map_err(cx)?;
        sync_dir(folder).map_err(cx)?;
        for parent in changed.iter().filter(|p| p.as_path() != folder) {
            sync_dir(parent).map_err(cx)?;
        }
        Ok(())
    }

    /// Concatenates the blocks into a new temporary file: the fallback for blocks that are not
    /// all in place and in order. Between two files, `io::copy` copies inside the kernel
    /// (`copy_file_range` on Linux, which may even share the blocks on a copy-on-write file
    /// system).
    fn assemble(
        &self,
        dir: &Path,
        pieces: &[Piece<'_>],
        temp_path: PathBuf,
        size: u64,
    ) -> Result<TempFile, Assembly> {
        let mut temp = TempFile::create(temp_path)?;
        let mut assembly: Option<File> = None;
        let mut written = 0u64;
        for piece in pieces {
            let out = temp.file().map_err(|_| Assembly::Short(written))?;
            written += match *piece {
                Piece::InPlace { offset, len } => {
                    let source = match &mut assembly {
                        Some(file) => file,
                        None => assembly.insert(File::open(dir.join(ASSEMBLY))?),
                    };
                    source.seek(SeekFrom::Start(offset))?;
                    io::copy(&mut Read::by_ref(source).take(len), out)?
                }
                Piece::Part(id) => io::copy(&mut File::open(dir.join(id))?, out)?,
            };
        }
        if written != size {
            // A block changed between the check and the copy; the temporary file goes.
            return Err(Assembly::Short(written));
        }
        Ok(temp)
    }

    /// See [`BlobStore::prepare_commit`] on [`LocalFsStore`]. Blocks in place and in order
    /// need only a flush; others are copied together into `.prepared-{digest of the part ids}`
    /// in the staging folder, which the commit then links into place instead of copying.
    /// Parts never change once recorded (a re-sent block gets a part id of its own), so the
    /// part ids pin the bytes.
    fn prepare(
        &self,
        path: &BlobPath,
        upload_id: &str,
        part_ids: &[String],
        size: u64,
    ) -> Result<(), BlobError> {
        let pieces = part_ids
            .iter()
            .map(|id| Piece::parse(id))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|reason| {
                BlobError::Unknown(anyhow::anyhow!("refusing to prepare {path}: {reason}"))
            })?;
        let mut next = 0u64;
        let in_place_in_order = pieces.iter().all(|piece| match *piece {
            Piece::InPlace { offset, len } if offset == next => {
                next = next.saturating_add(len);
                true
            }
            _ => false,
        });
        if in_place_in_order || matches!(pieces.as_slice(), [Piece::Part(_)]) {
            // The commit links the file as it is; with `sync_blocks` on it is flushed already,
            // with `sync_commits` off it is never flushed.
            if self.sync_blocks || !self.sync_commits {
                return Ok(());
            }
            return self.flush_assembly(upload_id);
        }
        let dir = self.upload_dir(upload_id)?;
        let name = prepared_name(part_ids);
        let prepared = dir.join(&name);
        if fs::metadata(&prepared).is_ok_and(|m| m.len() == size) {
            return Ok(());
        }
        let cx = |e| self.io_error(e, "preparing the commit of", path);
        // One prepared file at a time: another one was for parts that have changed since.
        for entry in fs::read_dir(&dir).map_err(cx)? {
            let entry = entry.map_err(cx)?;
            let other = entry.file_name();
            let other = other.to_string_lossy();
            if other.starts_with(PREPARED_PREFIX) && !other.ends_with(".tmp") && other != name {
                match fs::remove_file(entry.path()) {
                    Ok(()) => {}
                    Err(e) if errors::is_missing(&e) => {}
                    Err(e) => return Err(cx(e)),
                }
            }
        }
        let temp_path = dir.join(format!("{name}-{}.tmp", Uuid::new_v4().simple()));
        let mut temp = self
            .assemble(&dir, &pieces, temp_path, size)
            .map_err(|e| match e {
                Assembly::Io(e) => cx(e),
                Assembly::Short(written) => size_mismatch(path, part_ids.len(), written, size),
            })?;
        if self.sync_commits {
            temp.file()?.sync_all().map_err(cx)?;
        }
        temp.persist(&prepared).map_err(cx)
    }

    /// Flushes the assembly file of an upload whose blocks are in place.
    fn flush_assembly(&self, upload_id: &str) -> Result<(), BlobError> {
        let assembly = self.upload_dir(upload_id)?.join(ASSEMBLY);
        match File::open(&assembly) {
            Ok(file) => file
                .sync_data()
                .map_err(|e| self.io_error(e, "flushing", &assembly.display())),
            // No block in place: nothing to flush ahead.
            Err(e) if errors::is_missing(&e) => Ok(()),
            Err(e) => Err(self.io_error(e, "flushing", &assembly.display())),
        }
    }

    /// See [`BlobStore::discard_part`] on [`LocalFsStore`].
    fn discard_part(&self, upload_id: &str, part_id: &str) -> Result<(), BlobError> {
        let dir = self.upload_dir(upload_id)?;
        let part = match Piece::parse(part_id) {
            Ok(Piece::Part(id)) => dir.join(id),
            Ok(Piece::InPlace { .. }) => return Ok(()),
            Err(reason) => {
                return Err(BlobError::Unknown(anyhow::anyhow!(
                    "refusing to discard a part of upload {upload_id}: {reason}"
                )));
            }
        };
        match fs::remove_file(&part) {
            Ok(()) => Ok(()),
            Err(e) if errors::is_missing(&e) => Ok(()),
            Err(e) => Err(self.io_error(e, "discarding the part", &part.display())),
        }
    }

    /// See [`BlobStore::stale_staging`] on [`LocalFsStore`].
    fn stale_staging(&self, older_than: Duration) -> Result<Vec<String>, BlobError> {
        let cutoff = SystemTime::now()
            .checked_sub(older_than)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let cx = |e| self.io_error(e, "looking for stale uploads in", &self.staging.display());
        let entries = match fs::read_dir(&self.staging) {
            Ok(entries) => entries,
            Err(e) if errors::is_missing(&e) && self.root_is_there() => return Ok(Vec::new()),
            Err(e) => return Err(cx(e)),
        };
        let changed = |path: &Path| fs::metadata(path).and_then(|m| m.modified()).ok();
        let mut stale = Vec::new();
        for entry in entries {
            let entry = entry.map_err(cx)?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if paths::check_id(&name, "upload id").is_err()
                || !entry.file_type().map_err(cx)?.is_dir()
            {
                continue;
            }
            let dir = entry.path();
            let newest = [changed(&dir), changed(&dir.join(ASSEMBLY))]
                .into_iter()
                .flatten()
                .max();
            if newest.is_some_and(|time| time < cutoff) {
                stale.push(name);
            }
        }
        Ok(stale)
    }

    /// See [`BlobStore::discard_staging`] on [`LocalFsStore`].
    fn discard(&self, upload_id: &str) -> Result<(), BlobError> {
        let dir = self.upload_dir(upload_id)?;
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if errors::is_missing(&e) => Ok(()),
            Err(e) => Err(self.io_error(e, "discarding the staging folder", &dir.display())),
        }
    }

    /// A part is gone: either it was never staged, or this very commit already happened (the
    /// staging folder is removed right after the rename) and the metadata store never recorded
    /// it, because of a crash or a lost answer. As on Azure, the file at the path with exactly
    /// `size` bytes is that earlier commit: the path holds the file id, and only this session
    /// ever commits there, once at a time.
    fn committed_before(
        &self,
        path: &BlobPath,
        target: &Path,
        upload_id: &str,
        missing_part: &str,
        size: u64,
    ) -> Result<(), BlobError> {
        match fs::metadata(target) {
            Ok(meta) if meta.is_file() && meta.len() == size => {
                tracing::info!(path = %path, size, "the file was already committed; treating the commit as done");
                Ok(())
            }
            _ if !self.root_is_there() => Err(self.container_missing()),
            Ok(meta) => Err(BlobError::Unknown(anyhow::anyhow!(
                "part `{missing_part}` of upload `{upload_id}` is not staged, and `{path}` already \
                 holds {} bytes, not the {size} expected; nothing was changed",
                meta.len()
            ))),
            Err(_) => Err(BlobError::Unknown(anyhow::anyhow!(
                "part `{missing_part}` of upload `{upload_id}` is not staged; `{path}` was not committed"
            ))),
        }
    }

    /// Creates the folders of `target` below the root, one at a time (never the root itself:
    /// a missing root is reported, not recreated). Answers the folder of `target` and the
    /// folders that gained an entry, to be flushed after the rename.
    fn create_folders(&self, target: &Path) -> io::Result<(PathBuf, Vec<PathBuf>)> {
        let relative = target
            .strip_prefix(&self.root)
            .map_err(|_| io::Error::other("the blob path is not under the root"))?;
        let mut folder = self.root.clone();
        let mut changed = Vec::new();
        for component in relative.parent().into_iter().flat_map(Path::components) {
            let next = folder.join(component);
            match fs::create_dir(&next) {
                Ok(()) => changed.push(folder),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
            folder = next;
        }
        Ok((folder, changed))
    }

    fn ping(&self) -> Result<(), BlobError> {
        match fs::metadata(&self.root) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return Err(self.container_missing()),
            Err(e) if errors::is_missing(&e) => return Err(self.container_missing()),
            Err(e) => {
                return Err(errors::classify(
                    e,
                    format!("checking the blob root `{}`", self.root.display()),
                ));
            }
        }
        let cx = |e| {
            errors::classify(
                e,
                format!(
                    "checking that the blob root `{}` is writable",
                    self.root.display()
                ),
            )
        };
        create_dir_if_missing(&self.staging).map_err(cx)?;
        let probe = self
            .staging
            .join(format!(".ping-{}", Uuid::new_v4().simple()));
        File::options()
            .write(true)
            .create_new(true)
            .open(&probe)
            .map_err(cx)?;
        fs::remove_file(&probe).map_err(cx)?;
        if self.min_free_bytes > 0 {
            let stats = rustix::fs::statvfs(&self.root).map_err(|e| cx(e.into()))?;
            let free = stats.f_bavail.saturating_mul(stats.f_frsize);
            if free < self.min_free_bytes {
                return Err(BlobError::Unavailable(anyhow::anyhow!(
                    "the blob root `{}` has {free} bytes free, fewer than blob.local.min_free_bytes ({})",
                    self.root.display(),
                    self.min_free_bytes
                )));
            }
        }
        Ok(())
    }
}

impl BlobStore for LocalFsStore {
    /// The root exists, is a folder and can be written (a probe file is created and removed in
    /// `.staging`). A missing root is `ContainerMissing`.
    async fn ping(&self) -> Result<(), BlobError> {
        self.blocking(Inner::ping).await
    }

    /// Creates `.staging/{upload id}` and answers the upload id (a fresh UUID, 32 hex digits).
    async fn begin(&self, path: &BlobPath) -> Result<String, BlobError> {
        // A path that could never be committed is refused before any block is sent.
        self.inner.resolve(path)?;
        let upload_id = Uuid::new_v4().simple().to_string();
        let id = upload_id.clone();
        self.blocking(move |inner| inner.begin(&id)).await?;
        Ok(upload_id)
    }

    /// Writes the block's bytes as they arrive (a request holds one piece at a time, not the
    /// chunk): in place in the upload's assembly file when the block has a place there (see the
    /// module's doc), else into a hidden temporary file renamed to its part name once complete.
    /// Either is flushed when `sync_blocks` is on before the block is answered. A body that
    /// fails midway leaves nothing anyone was given a part id for: its claim or its temporary
    /// file is removed.
    #[tracing::instrument(name = "blob.stage_block", skip_all)]
    async fn stage_block(
        &self,
        path: &BlobPath,
        upload_id: &str,
        index: BlockIndex,
        // One file per block here, whatever its size: nothing to split.
        _total: TotalBlocks,
        body: ChunkBody,
    ) -> Result<StagedPart, BlobError> {
        self.inner.resolve(path)?;
        let (p, u) = (path.clone(), upload_id.to_owned());
        let place = self
            .blocking(move |inner| inner.claim_place(&p, &u, index))
            .await?;
        match place {
            Some(place) => {
                self.write_in_place(path, upload_id, index, place, body)
                    .await
            }
            None => self.write_part(path, upload_id, index, None, body).await,
        }
    }

    /// Writes the bytes as they arrive into a hidden temporary file in the final folder
    /// (created as needed), flushes it, renames it into place and flushes the folder: a file of
    /// one chunk costs one new file (and its folder) and no staging at all.
    #[tracing::instrument(name = "blob.put", skip_all)]
    async fn put(&self, path: &BlobPath, mut body: ChunkBody) -> Result<u64, BlobError> {
        let target = self.inner.resolve(path)?;
        let head = Head::read(&mut body).await?;
        let p = path.clone();
        if head.is_whole {
            // A small file, the common case: one blocking task creates, writes and publishes
            // it, where three (each a hand-over to a thread and back) did.
            let Head {
                pieces, size, held, ..
            } = head;
            self.blocking(move |inner| {
                let _held = held;
                let (mut temp, folder, changed) = inner.open_put(&p, &target)?;
                write_pieces(temp.file()?, &pieces)
                    .map_err(|e| inner.io_error(e, "writing", &p))?;
                inner.publish(temp, &p, &folder, &changed)
            })
            .await?;
            return Ok(size);
        }
        // Longer: streamed, its head first (held by the writer from here on).
        let Head { pieces, held, .. } = head;
        drop(held);
        let (mut temp, folder, changed) = self
            .blocking(move |inner| inner.open_put(&p, &target))
            .await?;
        let size = append_body(&mut temp, pieces, &mut body, |e| {
            self.inner.io_error(e, "writing", path)
        })
        .await?;
        let p = path.clone();
        self.blocking(move |inner| inner.publish(temp, &p, &folder, &changed))
            .await?;
        Ok(size)
    }

    /// Links the assembly file into place when its blocks are in order (or the one part, for a
    /// file of one part), else concatenates the blocks into a hidden temporary file in the final
    /// folder (created as needed); checks that they add up to `size`, flushes the file, renames
    /// it into place and flushes the folder. The staging folder stays until
    /// [`BlobStore::discard_staging`]. A crash at any moment leaves either no file at the path or
    /// the whole file: only the rename publishes it, and a leftover temporary file has a hidden
    /// name no blob path can reach. When the blocks are gone but the path already holds a file
    /// of exactly `size` bytes, the commit happened before and is reported done (as on Azure).
    #[tracing::instrument(name = "blob.commit", skip_all)]
    async fn commit(
        &self,
        path: &BlobPath,
        upload_id: &str,
        part_ids: Vec<String>,
        size: u64,
    ) -> Result<(), BlobError> {
        let (path, upload_id) = (path.clone(), upload_id.to_owned());
        self.blocking(move |inner| inner.commit(&path, &upload_id, &part_ids, size))
            .await
    }

    /// Blocks in place and in order: with `sync_blocks` off, flushes the assembly file, which
    /// the commit would otherwise flush under the session's lock. Any other blocks: copies
    /// them together, which the commit would otherwise do under the lock, and lets the commit
    /// link the copy into place.
    async fn prepare_commit(
        &self,
        path: &BlobPath,
        upload_id: &str,
        part_ids: &[String],
        size: u64,
    ) -> Result<(), BlobError> {
        let (path, upload_id, part_ids) = (path.clone(), upload_id.to_owned(), part_ids.to_vec());
        self.blocking(move |inner| inner.prepare(&path, &upload_id, &part_ids, size))
            .await
    }

    /// Removes a part of its own; a block written in place keeps its bytes until the staging
    /// goes (its place is never written again).
    async fn discard_part(
        &self,
        _path: &BlobPath,
        upload_id: &str,
        part_id: &str,
    ) -> Result<(), BlobError> {
        let (upload_id, part_id) = (upload_id.to_owned(), part_id.to_owned());
        self.blocking(move |inner| inner.discard_part(&upload_id, &part_id))
            .await
    }

    /// The upload folders in `.staging` whose folder and assembly file have both been left
    /// alone for `older_than` (a block being written in place keeps its file's time fresh).
    async fn stale_staging(&self, older_than: Duration) -> Result<Vec<String>, BlobError> {
        self.blocking(move |inner| inner.stale_staging(older_than))
            .await
    }

    async fn sweep_temporaries(&self, older_than: Duration) -> Result<usize, BlobError> {
        self.blocking(move |inner| inner.remove_leftovers(older_than))
            .await
    }

    /// Removes the upload's staging folder, whatever it holds.
    async fn discard_staging(&self, upload_id: &str) -> Result<(), BlobError> {
        let upload_id = upload_id.to_owned();
        self.blocking(move |inner| inner.discard(&upload_id)).await
    }

    /// Streams the file in pieces of [`READ_PIECE`]. Ranges behave as on Azure: an end past the
    /// end of the file is cut to it; an empty range (`start >= end`) answers no bytes at
    /// `start.min(size)`; a non-empty range starting at or past the end is an error.
    #[tracing::instrument(name = "blob.read", skip_all)]
    async fn read(
        &self,
        path: &BlobPath,
        range: Option<Range<u64>>,
    ) -> Result<BlobRead, BlobError> {
        let target = self.inner.resolve(path)?;
        let (opened, shown) = (target.clone(), path.clone());
        let (file, meta) = self
            .blocking(move |inner| {
                let cx = |e| inner.io_error(e, "reading", &shown);
                let file = std::fs::File::open(&opened).map_err(cx)?;
                let meta = file.metadata().map_err(cx)?;
                Ok((file, meta))
            })
            .await?;
        if !meta.is_file() {
            return Err(BlobError::NotFound(path.to_string()));
        }
        let size = meta.len();
        let range = match range {
            None => 0..size,
            Some(r) if r.start >= r.end => {
                let start = r.start.min(size);
                return Ok(BlobRead {
                    size,
                    range: start..start,
                    stream: futures::stream::empty().boxed(),
                });
            }
            Some(r) if r.start >= size => {
                return Err(BlobError::Unknown(anyhow::anyhow!(
                    "the range {r:?} of `{path}` starts at or past its end ({size} bytes)"
                )));
            }
            Some(r) => r.start..r.end.min(size),
        };
        let store = self.clone();
        let stream = pieces(file, range.clone(), move |e| {
            store.inner.io_error(e, "reading", &target.display())
        });
        Ok(BlobRead {
            size,
            range,
            stream,
        })
    }

    /// Every file under the root but the staging area and hidden (temporary) files, by its
    /// path relative to the root with `/` between segments: the blob path it was written at.
    async fn list_blobs(&self) -> Result<Vec<ListedBlob>, BlobError> {
        self.blocking(|inner| inner.list_blobs()).await
    }

    /// Deleting a file that does not exist succeeds: the caller wants it gone, and it is.
    #[tracing::instrument(name = "blob.delete", skip_all)]
    async fn delete(&self, path: &BlobPath) -> Result<(), BlobError> {
        let target = self.inner.resolve(path)?;
        match tokio::fs::remove_file(&target).await {
            Ok(()) => Ok(()),
            // A folder is not a blob: there is no blob to delete.
            Err(e) if e.kind() == io::ErrorKind::IsADirectory => Ok(()),
            Err(e) => match self.inner.io_error(e, "deleting", path) {
                BlobError::NotFound(_) => Ok(()),
                other => Err(other),
            },
        }
    }

    /// The `file://` URL of the file, percent-encoded, for operators.
    fn location(&self, path: &BlobPath) -> String {
        let mut url = self.inner.root_url.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().extend(path.as_str().split('/'));
        }
        url.into()
    }

    /// A local file has no address a client could use: the service's content route serves it.
    async fn share_url(&self, _path: &BlobPath) -> Result<Option<String>, BlobError> {
        Ok(None)
    }
}

/// Appends a body's bytes, as they arrive, to a temporary file (lent out meanwhile and given
/// back flushed), and answers the file's size: what it held before plus the body.
async fn append_body(
    temp: &mut TempFile,
    first: Vec<Bytes>,
    body: &mut ChunkBody,
    cx: impl Fn(io::Error) -> BlobError,
) -> Result<u64, BlobError> {
    let mut file = temp.take_file()?;
    let mut size = file.seek(SeekFrom::End(0)).map_err(&cx)?;
    let mut writer = PieceWriter::new(file, body.budget());
    for piece in first {
        size += piece.len() as u64;
        writer.write(piece).await.map_err(&cx)?;
    }
    while let Some(piece) = body.next().await {
        let piece = piece.map_err(BlobError::Body)?;
        size += piece.len() as u64;
        writer.write(piece).await.map_err(&cx)?;
    }
    temp.put_file(writer.finish().await.map_err(&cx)?);
    Ok(size)
}

/// The first pieces of a body, up to [`WRITE_BATCH`] bytes, held against its budget: the whole
/// body when it ends within them (`is_whole`), which then needs no streaming at all.
struct Head {
    pieces: Vec<Bytes>,
    size: u64,
    is_whole: bool,
    held: Reservation,
}

impl Head {
    async fn read(body: &mut ChunkBody) -> Result<Self, BlobError> {
        let mut head = Head {
            pieces: Vec::new(),
            size: 0,
            is_whole: false,
            held: body.budget().reservation(),
        };
        while head.size < WRITE_BATCH as u64 {
            let Some(piece) = body.next().await else {
                head.is_whole = true;
                break;
            };
            let piece = piece.map_err(BlobError::Body)?;
            let len = piece.len() as u64;
            head.size += len;
            head.pieces.push(piece);
            // Over the budget: the rest streams, each piece written as it comes.
            if head.held.grow(len).is_err() {
                break;
            }
        }
        Ok(head)
    }
}

/// Writes a body's pieces to a file as they arrive, without copying them: they are gathered
/// (shared, not copied) into batches of about [`WRITE_BATCH`] bytes, and each batch is written
/// by one blocking task while the next one gathers. `tokio::fs::File` copied every piece into a
/// buffer of its own and made a blocking task per piece, each waiting for the one before.
/// Both batches are held against the body's memory budget; when it is spent, each piece is
/// written as it comes (a streamed request holds a piece in flight either way).
struct PieceWriter {
    file: Option<File>,
    writing: Option<tokio::task::JoinHandle<io::Result<File>>>,
    batch: Vec<Bytes>,
    batched: usize,
    budget: ByteBudget,
    held: Reservation,
}

impl PieceWriter {
    /// Writes at the file's position.
    fn new(file: File, budget: &ByteBudget) -> Self {
        Self {
            file: Some(file),
            writing: None,
            batch: Vec::new(),
            batched: 0,
            budget: budget.clone(),
            held: budget.reservation(),
        }
    }

    /// Takes a piece; an error of an earlier write is answered here (or by `finish`).
    async fn write(&mut self, piece: Bytes) -> io::Result<()> {
        let held = self.held.grow(piece.len() as u64).is_ok();
        self.batched += piece.len();
        self.batch.push(piece);
        if self.batched >= WRITE_BATCH || !held {
            self.send().await?;
        }
        Ok(())
    }

    /// Writes what is left and answers the file once every byte is written.
    async fn finish(mut self) -> io::Result<File> {
        self.send().await?;
        self.settle().await?;
        self.file
            .take()
            .ok_or_else(|| io::Error::other("the file of a write that failed"))
    }

    /// Hands the batch to a blocking task, once the one before has written its own.
    async fn send(&mut self) -> io::Result<()> {
        self.settle().await?;
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.batch);
        self.batched = 0;
        // The batch's reservation goes with it, released once it is written.
        let held = std::mem::replace(&mut self.held, self.budget.reservation());
        let mut file = self
            .file
            .take()
            .ok_or_else(|| io::Error::other("the file of a write that failed"))?;
        self.writing = Some(tokio::task::spawn_blocking(move || {
            let _held = held;
            write_pieces(&mut file, &batch)?;
            Ok(file)
        }));
        Ok(())
    }

    /// Waits for the write under way, if any.
    async fn settle(&mut self) -> io::Result<()> {
        if let Some(writing) = self.writing.take() {
            self.file = Some(writing.await.map_err(io::Error::other)??);
        }
        Ok(())
    }
}

/// Writes every byte of `pieces`, in order, with as few `writev` calls as the writer takes: a
/// batch of [`WRITE_BATCH`] holds a dozen or so of the body's reads, and a `write` each was a
/// system call each.
fn write_pieces(to: &mut impl Write, pieces: &[Bytes]) -> io::Result<()> {
    let mut slices: Vec<io::IoSlice<'_>> = pieces.iter().map(|p| io::IoSlice::new(p)).collect();
    let mut rest = &mut slices[..];
    // Empty pieces would make an empty list look unfinished to `writev`; skip them first.
    io::IoSlice::advance_slices(&mut rest, 0);
    while !rest.is_empty() {
        match to.write_vectored(rest) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => io::IoSlice::advance_slices(&mut rest, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The bytes of `file` in `range` as a stream of pieces of [`READ_PIECE`], each read by one
/// blocking task straight into the piece it yields (`read_to_end` on a `File` fills spare
/// capacity without zeroing it); a file that ends early (cut short under us) ends the stream
/// with an error rather than silently.
fn pieces<F>(
    file: std::fs::File,
    range: Range<u64>,
    map_err: F,
) -> futures::stream::BoxStream<'static, Result<Bytes, BlobError>>
where
    F: Fn(io::Error) -> BlobError + Send + 'static,
{
    let len = range.end - range.start;
    let seek_to = range.start;
    futures::stream::unfold(
        (Some(file), 0u64, map_err),
        move |(file, sent, map_err)| async move {
            let mut file = file?;
            if sent >= len {
                return None;
            }
            let want = (len - sent).min(READ_PIECE as u64);
            let read = tokio::task::spawn_blocking(move || {
                if sent == 0 && seek_to > 0 {
                    file.seek(SeekFrom::Start(seek_to))?;
                }
                // `want` is at most READ_PIECE, so it fits a usize.
                let mut piece = Vec::with_capacity(want as usize);
                Read::by_ref(&mut file).take(want).read_to_end(&mut piece)?;
                Ok::<_, io::Error>((file, piece))
            })
            .await
            .map_err(io::Error::other)
            .and_then(|read| read);
            match read {
                Ok((file, piece)) if piece.len() as u64 == want => {
                    Some((Ok(Bytes::from(piece)), (Some(file), sent + want, map_err)))
                }
                Ok((_, piece)) => {
                    let sent = sent + piece.len() as u64;
                    let short = BlobError::Unknown(anyhow::anyhow!(
                        "the file ended after {sent} of {len} bytes"
                    ));
                    Some((Err(short), (None, sent, map_err)))
                }
                Err(e) => {
                    let e = map_err(e);
                    Some((Err(e), (None, sent, map_err)))
                }
            }
        },
    )
    .boxed()
}

/// Where a staged block's bytes are, as its part id tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Piece<'a> {
    /// `len` bytes at `offset` of the upload's assembly file: part id `r{offset}_{len}`.
    InPlace { offset: u64, len: u64 },
    /// A file of its own in the staging folder, named by the part id.
    Part(&'a str),
}

impl<'a> Piece<'a> {
    fn in_place_id(offset: u64, len: u64) -> String {
        format!("r{offset}_{len}")
    }

    /// Reads a part id, refusing one that is neither a place nor a plain file name.
    fn parse(id: &'a str) -> Result<Self, String> {
        let place = id
            .strip_prefix('r')
            .and_then(|rest| rest.split_once('_'))
            .and_then(|(offset, len)| Some((offset.parse().ok()?, len.parse().ok()?)));
        match place {
            Some((offset, len)) => Ok(Self::InPlace { offset, len }),
            None => paths::check_id(id, "part id").map(|()| Self::Part(id)),
        }
    }
}

/// The name of the file [`Inner::prepare`] copies these parts into: the SHA-256 of the part
/// ids (each with its length), so that no other list of parts can name it.
fn prepared_name(part_ids: &[String]) -> String {
    use sha2::{Digest, Sha256};
    let mut digest = Sha256::new();
    for id in part_ids {
        digest.update((id.len() as u64).to_le_bytes());
        digest.update(id.as_bytes());
    }
    let digest = digest.finalize();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{PREPARED_PREFIX}{hex}")
}

/// A block's place in the assembly file, claimed while the block is written.
#[derive(Debug)]
struct InPlace {
    file: File,
    offset: u64,
    /// The most the block may write there: the size of block 0 (none for block 0 itself).
    limit: Option<u64>,
    claim: Claim,
    dir: PathBuf,
}

/// The claim file of a place, removed again unless kept: a block that fails leaves its place
/// free for the client's retry (nothing recorded points at it).
#[derive(Debug)]
struct Claim {
    path: PathBuf,
    file: Option<File>,
}

impl Claim {
    fn file(&mut self) -> Result<&mut File, BlobError> {
        self.file
            .as_mut()
            .ok_or_else(|| BlobError::Unknown(anyhow::anyhow!("the claim file is closed")))
    }

    fn keep(mut self) {
        drop(self.file.take());
        self.path = PathBuf::new();
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        drop(self.file.take());
        if !self.path.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

fn claim_name(index: u32) -> String {
    format!("{index:05}.claim")
}

/// The upload's block size, which block 0's claim records once block 0 is written in place:
/// `None` until then, or when block 0 went elsewhere. Only a well-formed, positive size counts.
fn block_size(dir: &Path) -> Option<u64> {
    let text = fs::read_to_string(dir.join(claim_name(0))).ok()?;
    text.strip_suffix('\n')?
        .parse::<u64>()
        .ok()
        .filter(|&size| size > 0)
}

/// Why concatenating the blocks failed.
enum Assembly {
    Io(io::Error),
    /// The blocks held fewer or more bytes than expected.
    Short(u64),
}

impl From<io::Error> for Assembly {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

fn size_mismatch(path: &BlobPath, parts: usize, staged: u64, size: u64) -> BlobError {
    BlobError::Unknown(anyhow::anyhow!(
        "the {parts} staged parts of `{path}` hold {staged} bytes, not the {size} expected; nothing \
         was committed"
    ))
}

/// A file created under a name of its own that is removed again unless it is renamed into
/// place: an error (or a panic) half-way never leaves it behind.
struct TempFile {
    path: PathBuf,
    file: Option<File>,
}

impl TempFile {
    fn create(path: PathBuf) -> io::Result<Self> {
        let file = File::options().write(true).create_new(true).open(&path)?;
        Ok(Self {
            path,
            file: Some(file),
        })
    }

    /// A second name (`path`) for the existing file `of`, removed again unless persisted.
    /// Fails where hard links cannot be made (another file system); the caller then copies.
    fn link(of: &Path, path: PathBuf) -> io::Result<Self> {
        fs::hard_link(of, &path)?;
        let mut temp = Self { path, file: None };
        temp.file = Some(File::open(&temp.path)?);
        Ok(temp)
    }

    /// Lends the file out (to write it asynchronously); [`TempFile::put_file`] gives it back.
    /// The path stays owned, so a failure meanwhile still removes the file.
    fn take_file(&mut self) -> Result<File, BlobError> {
        self.file
            .take()
            .ok_or_else(|| BlobError::Unknown(anyhow::anyhow!("the temporary file is closed")))
    }

    fn put_file(&mut self, file: File) {
        self.file = Some(file);
    }

    fn file(&mut self) -> Result<&mut File, BlobError> {
        self.file
            .as_mut()
            .ok_or_else(|| BlobError::Unknown(anyhow::anyhow!("the temporary file is closed")))
    }

    /// Closes the file and renames it to `to`, replacing what is there.
    fn persist(mut self, to: &Path) -> io::Result<()> {
        drop(self.file.take());
        fs::rename(&self.path, to)?;
        self.path = PathBuf::new();
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        drop(self.file.take());
        if !self.path.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

fn create_dir_if_missing(dir: &Path) -> io::Result<()> {
    match fs::create_dir(dir) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        other => other,
    }
}

/// Flushes a folder's entries (a rename, a new file or subfolder) to the disk.
#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Windows cannot open a folder as a file; NTFS journals its entries.
#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use filegate_application::ports::BodyError;

    fn pieces(n: usize, len: usize) -> Vec<Bytes> {
        (0..n).map(|i| Bytes::from(vec![i as u8; len])).collect()
    }

    fn temp_file(name: &str) -> (PathBuf, File) {
        let path = std::env::temp_dir().join(format!("filegate-{name}-{}", Uuid::new_v4()));
        let file = File::options()
            .create_new(true)
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        (path, file)
    }

    /// A writer that takes at most `most` bytes per call, from as many slices as they span,
    /// and is interrupted every third call.
    struct Stingy {
        written: Vec<u8>,
        most: usize,
        calls: usize,
    }

    impl Write for Stingy {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.write_vectored(&[io::IoSlice::new(buf)])
        }

        fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
            self.calls += 1;
            if self.calls.is_multiple_of(3) {
                return Err(io::ErrorKind::Interrupted.into());
            }
            let mut taken = 0;
            for buf in bufs {
                let n = buf.len().min(self.most - taken);
                self.written.extend_from_slice(&buf[..n]);
                taken += n;
                if taken == self.most {
                    break;
                }
            }
            Ok(taken)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn pieces_are_written_whole_and_in_order_however_little_each_call_takes() {
        let sent: Vec<Bytes> = ["", "abc", "", "defghijklmnop", "q", "", "rstuvwxyz", ""]
            .into_iter()
            .map(|s| Bytes::from_static(s.as_bytes()))
            .collect();
        for most in [1, 2, 5, 7, 100] {
            let mut to = Stingy {
                written: Vec::new(),
                most,
                calls: 0,
            };
            write_pieces(&mut to, &sent).unwrap();
            assert_eq!(
                to.written, b"abcdefghijklmnopqrstuvwxyz",
                "at most {most} a call"
            );
        }
        let mut to = Stingy {
            written: Vec::new(),
            most: 1,
            calls: 0,
        };
        write_pieces(&mut to, &[Bytes::new(), Bytes::new()]).unwrap();
        assert_eq!(
            (to.written.len(), to.calls),
            (0, 0),
            "nothing to write, no call"
        );
    }

    #[test]
    fn a_writer_that_takes_nothing_is_an_error_not_a_loop() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Ok(0)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let err = write_pieces(&mut Full, &[Bytes::from_static(b"x")]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WriteZero);
    }

    #[tokio::test]
    async fn pieces_are_written_in_order_and_the_budget_is_given_back() {
        let budget = ByteBudget::new(64 * 1024 * 1024);
        let (path, file) = temp_file("pieces");
        let mut writer = PieceWriter::new(file, &budget);
        let sent = pieces(40, 100 * 1024);
        for piece in &sent {
            writer.write(piece.clone()).await.unwrap();
            assert!(
                budget.held() <= 2 * WRITE_BATCH as u64 + piece.len() as u64,
                "at most a batch gathering and one being written are held"
            );
        }
        assert!(budget.held() > 0, "the last batch is gathering");
        drop(writer.finish().await.unwrap());
        assert_eq!(budget.held(), 0, "every batch's bytes are given back");
        assert_eq!(fs::read(&path).unwrap(), sent.concat());
        fs::remove_file(path).unwrap();
    }

    fn body_of(pieces: &[Bytes], budget: &ByteBudget) -> ChunkBody {
        let items: Vec<Result<Bytes, BodyError>> = pieces.iter().cloned().map(Ok).collect();
        ChunkBody::new(futures::stream::iter(items).boxed()).with_budget(budget.clone())
    }

    #[tokio::test]
    async fn a_body_that_ends_within_a_batch_is_read_whole_and_held_against_its_budget() {
        let budget = ByteBudget::new(64 * 1024 * 1024);
        let sent = pieces(5, 1000);
        let mut body = body_of(&sent, &budget);
        let head = Head::read(&mut body).await.unwrap();
        assert!(head.is_whole);
        assert_eq!((head.pieces.clone(), head.size), (sent, 5000));
        assert_eq!(budget.held(), 5000, "held while it waits to be written");
        drop(head);
        assert_eq!(budget.held(), 0, "and given back");
    }

    #[tokio::test]
    async fn a_longer_body_or_a_spent_budget_leaves_the_rest_to_stream() {
        let budget = ByteBudget::new(64 * 1024 * 1024);
        let sent = pieces(40, 100 * 1024);
        let mut body = body_of(&sent, &budget);
        let head = Head::read(&mut body).await.unwrap();
        assert!(!head.is_whole);
        assert_eq!(head.pieces, sent[..11], "a batch's worth, in order");
        let mut rest = Vec::new();
        while let Some(piece) = body.next().await {
            rest.push(piece.unwrap());
        }
        assert_eq!(
            rest,
            sent[11..],
            "nothing lost between the head and the rest"
        );

        let spent = ByteBudget::new(0);
        let mut body = body_of(&sent, &spent);
        let head = Head::read(&mut body).await.unwrap();
        assert!(!head.is_whole);
        assert_eq!(
            head.pieces.len(),
            1,
            "over the budget, the first piece is all it takes"
        );
    }

    #[tokio::test]
    async fn with_the_budget_spent_each_piece_is_written_as_it_comes() {
        let budget = ByteBudget::new(0);
        let (path, file) = temp_file("spent");
        let mut writer = PieceWriter::new(file, &budget);
        let sent = pieces(3, 10);
        for piece in &sent {
            writer.write(piece.clone()).await.unwrap();
            assert!(writer.batch.is_empty(), "nothing gathers over the budget");
        }
        drop(writer.finish().await.unwrap());
        assert_eq!(fs::read(&path).unwrap(), sent.concat());
        fs::remove_file(path).unwrap();
    }
}
