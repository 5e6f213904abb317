//! What the HTTP adapter needs from the application, as one object-safe trait: the routes and
//! the API key checker reach it through request data, which needs a single concrete type.

use futures::FutureExt;
use futures::future::BoxFuture;

use filegate_application::ports::{BlobStore, Clock, IdSource, MetadataStore};
use filegate_application::{
    AuthError, ChunkCommand, ChunkReceipt, ContentError, DeleteFileError, FileContent, FileStatus,
    FileStatusError, Filegate, Principal, Readiness, UploadChunkError,
};
use filegate_domain::{FileId, RangeSpec};

pub trait FilesService: Send + Sync + 'static {
    fn authenticate<'a>(
        &'a self,
        key: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Principal, AuthError>>;
    fn upload_chunk(
        &self,
        who: Principal,
        cmd: ChunkCommand,
    ) -> BoxFuture<'_, Result<ChunkReceipt, UploadChunkError>>;
    fn file_status(
        &self,
        who: Principal,
        id: FileId,
    ) -> BoxFuture<'_, Result<FileStatus, FileStatusError>>;
    fn readiness(&self) -> BoxFuture<'_, Readiness>;
    fn delete_file(&self, who: Principal, id: FileId)
    -> BoxFuture<'_, Result<(), DeleteFileError>>;
    fn open_content(
        &self,
        who: Principal,
        id: FileId,
        range: Option<RangeSpec>,
    ) -> BoxFuture<'_, Result<FileContent, ContentError>>;
}

impl<M: MetadataStore, B: BlobStore, C: Clock, I: IdSource> FilesService for Filegate<M, B, C, I> {
    fn authenticate<'a>(
        &'a self,
        key: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Principal, AuthError>> {
        self.keys.authenticate(key).boxed()
    }

    fn upload_chunk(
        &self,
        who: Principal,
        cmd: ChunkCommand,
    ) -> BoxFuture<'_, Result<ChunkReceipt, UploadChunkError>> {
        self.uploads.upload_chunk(who, cmd).boxed()
    }

    fn file_status(
        &self,
        who: Principal,
        id: FileId,
    ) -> BoxFuture<'_, Result<FileStatus, FileStatusError>> {
        self.uploads.file_status(who, id).boxed()
    }

    fn delete_file(
        &self,
        who: Principal,
        id: FileId,
    ) -> BoxFuture<'_, Result<(), DeleteFileError>> {
        self.uploads.delete_file(who, id).boxed()
    }

    fn readiness(&self) -> BoxFuture<'_, Readiness> {
        Filegate::readiness(self).boxed()
    }

    fn open_content(
        &self,
        who: Principal,
        id: FileId,
        range: Option<RangeSpec>,
    ) -> BoxFuture<'_, Result<FileContent, ContentError>> {
        self.uploads.open_content(who, id, range).boxed()
    }
}
