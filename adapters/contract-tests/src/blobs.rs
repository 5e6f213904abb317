//! Blob store contract: to be written.
