//! Black-box test support: starts the real `filegate` binary against real services (Postgres,
//! Azurite) and talks plain HTTP to it. Each test gets a fresh database; the services' addresses
//! come from the variables that `scripts/test` exports, and a missing service fails the test
//! with a message saying what to run, never a skip.

#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod app;
pub mod broker;
pub mod form;
pub mod otlp;
pub mod worker;

pub use app::{Db, Profile, TestApp, TestAppOptions, binary, fake_meta_binary, free_port};
pub use form::Chunk;
