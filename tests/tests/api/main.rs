//! The upload API, black-box: the real binary against real Postgres and Azurite.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod errors;
mod health;
mod support;
mod uploads;
