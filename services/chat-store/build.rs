// `sqlx::migrate!` embeds the migration files at compile time, but stable Rust cannot tell
// cargo about files a macro reads: without this, editing a migration would not rebuild the
// crate and the binary would carry the old SQL.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
