//! The checked-in spec (`openapi/openapi.json`) is what the code produces. Regenerate it with
//! `cargo run -p filegate -- openapi > openapi/openapi.json` (or run this test with
//! `FILEGATE_UPDATE_SPEC=1`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;

#[test]
fn the_checked_in_spec_matches_the_code() {
    let out = Command::new(env!("CARGO_BIN_EXE_filegate"))
        .arg("openapi")
        .env_remove("FILEGATE_HTTP__PUBLIC_URL")
        .output()
        .expect("run filegate openapi");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let generated = String::from_utf8(out.stdout).expect("utf-8 spec");
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../openapi/openapi.json");
    if std::env::var_os("FILEGATE_UPDATE_SPEC").is_some() {
        std::fs::write(&path, &generated).expect("write the spec");
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "openapi/openapi.json is out of date: run `cargo run -p filegate -- openapi > openapi/openapi.json`"
    );
}
