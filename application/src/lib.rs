//! The use cases of filegate (upload a chunk, read a file's status, manage API keys, send a file
//! to Meta for a media task) and the ports they need, as traits: a metadata store, a blob store,
//! a clock, an id source, Meta's Graph API and an event bus. Use cases are generic over their
//! ports so that the same rules run on Postgres + Azure, on the embedded adapters and on the
//! in-memory fakes of the unit tests; only the binary picks the concrete adapters.

pub mod app;
pub mod backend;
pub mod check;
pub mod checksums;
pub mod completion;
mod digests;
pub mod events;
pub mod housekeeping;
mod inflight;
pub mod key_cache;
pub mod keys;
pub mod media;
pub mod media_ports;
pub mod ports;
pub mod system;
pub mod uploads;

#[cfg(any(test, feature = "fakes"))]
pub mod fakes;

pub use app::{Fault, Filegate, Readiness};
pub use key_cache::{KeyCache, follow_key_changes};
pub use keys::{ApiKeys, AuthError, CreatedKey, KeyAdminError, Principal};
pub use uploads::{
    BlockLists, ChunkCommand, ChunkReceipt, ContentError, DeleteFileError, FileContent, FileStatus,
    FileStatusError, LISTED_BLOCKS_MAX, UploadChunkError, Uploads,
};
