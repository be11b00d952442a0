//! Rebuild when a migration is added: `sqlx::migrate!` embeds the migration
//! directories at compile time, and Cargo does not watch them by itself.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-changed=migrations_pg");
}
