//! The blob store of filegate on the local file system, for the embedded profile that runs
//! `filegate serve` with nothing installed: it implements the application's `BlobStore` port by
//! writing each chunk as a file of its own in a staging folder (`{root}/.staging/{upload id}/`),
//! and commits a file by concatenating its parts, in index order, into a hidden temporary file
//! next to the final location and renaming it into place, so that a file appears whole or not
//! at all, even across a crash or a power loss. It reads its folder from [`LocalFsSettings`],
//! never lets a blob path reach outside that folder (or into the staging area), streams files
//! back with byte ranges, and hands clients no URL of its own: the service's content route
//! serves the bytes.

mod errors;
mod paths;
mod settings;
mod store;

pub use settings::LocalFsSettings;
pub use store::{LocalFsError, LocalFsStore};
