//! Rebuild when a migration is added or changed: `sqlx::migrate!` embeds the folder at
//! compile time, and without this cargo does not notice a new file in it.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
