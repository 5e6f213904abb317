//! The promises of filegate's ports, written once as async test suites that every adapter runs
//! against a real instance of its backend (Postgres and SQLite for the metadata store; Azurite
//! and the local file system for the blob store). An adapter's own test file calls each suite
//! function with a factory for a fresh, empty store, so that adapters cannot drift apart.

pub mod blobs;
pub mod metadata;
