//! The blob store of filegate on Azure Blob Storage: it implements the application's
//! `BlobStore` port by staging each chunk as a block of one block blob (Put Block) and
//! committing the blocks in index order (Put Block List), through `object_store`'s
//! `MultipartStore`, with Put Blocks of its own whose bodies are sent while the chunk arrives.
//! It reads its account, credential and container from
//! [`AzureBlobSettings`] (connection strings as the portal or Azurite print them, shared keys,
//! SAS tokens or Entra ID), streams blobs back with byte ranges, and hands clients either the
//! plain blob URL or a short-lived read-only SAS URL. It never creates the container: a
//! missing one is a deployment mistake that `ping` reports.

mod blocks;
mod connection_string;
mod errors;
mod settings;
mod store;
mod streaming;

pub use connection_string::ConnectionStringError;
pub use settings::{AzureBlobSettings, UrlMode};
pub use store::{AzureBlobStore, BuildError};
