//! The pure heart of filegate: what an upload session is, which blocks it has received, what each
//! mode means for where a file lives, what a committed file record holds, and what a media task
//! may ask of Meta (the task contract and Meta's media rules). Nothing here does
//! I/O or knows about an async runtime, HTTP or a database; every rule that can be decided from
//! values alone lives here so that every adapter and use case applies it the same way.

mod blocks;
mod content;
mod digest;
mod file_name;
mod ids;
mod media;
mod mode;
mod policy;
mod range;
mod record;
mod session;
mod task;

pub use blocks::{BlockIndex, BlockRuleError, BlockSet, MAX_TOTAL_BLOCKS, TotalBlocks};
pub use content::{Format, Hint, SNIFF_BYTES, sniff};
pub use digest::{NotASha256, Sha256Digest};
pub use file_name::FileName;
pub use ids::{ApiKeyId, FileId, FirmId, TaskId, UserId};
pub use media::{HeaderFormat, MediaRejection, MediaType, UnknownMediaType, essence};
pub use mode::{Mode, UnknownMode};
pub use policy::{
    ExpiryPolicy, FileTooLarge, SizeCaps, TypeNotAllowed, admit_format, allowed_formats,
};
pub use range::{RangeSpec, Unsatisfiable};
pub use record::{BlobPath, FileRecord};
pub use session::{ChunkMismatch, SessionState, UploadSession};
pub use task::{
    InvalidTask, MediaMessage, MediaTarget, MediaTask, NewTemplate, PhoneNumberId, Recipient,
    TASK_VERSION, TemplateCategory, TemplateLanguage, TemplateName, WabaId, check_task_version,
};
