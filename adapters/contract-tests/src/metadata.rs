//! Metadata store contract: to be written.
