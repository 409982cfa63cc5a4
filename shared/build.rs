//! `sqlx::migrate!` compiles `migrations/` into the crate but tells cargo nothing about it,
//! so an incremental build would keep the old set after a migration is added or edited.
//! Watching the folder rebuilds the crate whenever it changes.

fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
