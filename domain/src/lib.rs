//! The pure heart of filegate: what an upload session is, which blocks it has received, what each
//! mode means for where a file lives, and what a committed file record holds. Nothing here does
//! I/O or knows about an async runtime, HTTP or a database; every rule that can be decided from
//! values alone lives here so that every adapter and use case applies it the same way.

mod blocks;
mod file_name;
mod ids;
mod media;
mod mode;
mod policy;
mod range;
mod record;
mod session;

pub use blocks::{BlockIndex, BlockRuleError, BlockSet, MAX_TOTAL_BLOCKS, TotalBlocks};
pub use file_name::FileName;
pub use ids::{ApiKeyId, FileId, FirmId, UserId};
pub use media::{HeaderFormat, MediaRejection, MediaType, TaskId};
pub use mode::{Mode, UnknownMode};
pub use policy::{FileTooLarge, SizeCaps};
pub use range::{RangeSpec, Unsatisfiable};
pub use record::{BlobPath, FileRecord};
pub use session::{ChunkMismatch, SessionState, UploadSession};
