//! The blob store of filegate on the local file system, for the embedded profile that runs
//! `filegate serve` with nothing installed: it implements the application's `BlobStore` port by
//! writing each chunk at its offset into one file per upload in a staging folder
//! (`{root}/.staging/{upload id}/`), so that a file sent in even chunks is written once and
//! committed by a flush and a rename (uneven or re-sent chunks become files of their own, and
//! such a file is committed by concatenating its blocks into a hidden temporary file next to
//! the final location and renaming that into place); either way a file appears whole or not at
//! all, even across a crash or a power loss. It reads its folder from [`LocalFsSettings`],
//! never lets a blob path reach outside that folder (or into the staging area), streams files
//! back with byte ranges, and hands clients no URL of its own: the service's content route
//! serves the bytes.

mod errors;
mod paths;
mod settings;
mod store;

pub use settings::LocalFsSettings;
pub use store::{LocalFsError, LocalFsStore};
