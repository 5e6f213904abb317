fn main() {
    // `sqlx::migrate!` embeds the files it saw; a new migration file must rebuild the crate.
    println!("cargo:rerun-if-changed=migrations");
}
