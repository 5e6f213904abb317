//! Meta's Graph API for filegate's media worker: it implements the application's `MetaClient`
//! port over reqwest. Template media goes through the Resumable Upload API (`/{app-id}/uploads`,
//! then `/upload:...` with `Authorization: OAuth` and `file_offset`, resumed from the offset
//! Meta reports after a break); message media goes to WhatsApp's `/{phone-number-id}/media` as
//! multipart; messages and templates arrive as typed requests and leave as the JSON the Cloud
//! API documents, built here (`payloads`) so that the Graph API's shape is this crate's alone.
//! File bytes stream from the blob store's `ByteStream` into the request body and are never
//! collected, so an upload has no whole-request timeout: it fails when it stops moving (see
//! `progress`). Meta's error JSON becomes a `MetaFault`, sorted into rate-limited, transient or
//! permanent errors. The access token lives in a `SecretString`, travels only in
//! `Authorization` headers, and is never logged. `PAYLOADS.md` next to this crate lists every
//! request.

mod client;
mod errors;
mod payloads;
mod progress;
mod settings;

pub use client::{BuildError, MetaHttpClient};
pub use settings::MetaSettings;
