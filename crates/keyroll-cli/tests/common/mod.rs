//! Shared helpers of the CLI tests: SQLite session tables seeded directly.

#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code

use std::path::Path;

use keyroll::{KeyRing, Secret, SessionCodec, SessionData};
use time::OffsetDateTime;

/// One row to seed: data signed by `secret` at `signed_at`, expiring at `expires` (Django's text form).
pub(crate) struct Seed {
    pub(crate) key: String,
    pub(crate) data: SessionData,
    pub(crate) row: String,
    pub(crate) expires: String,
}

/// Creates a Django-layout session table `table` in the SQLite file at `path`.
pub(crate) fn create_table(path: &Path, table: &str) {
    let conn = rusqlite::Connection::open(path).expect("open");
    conn.execute_batch(&format!(
        "CREATE TABLE {table} (session_key varchar(40) NOT NULL PRIMARY KEY, \
         session_data text NOT NULL, expire_date datetime NOT NULL); \
         CREATE INDEX {table}_expire_date ON {table} (expire_date);"
    ))
    .expect("schema");
}

/// A row signed by `secret` at `signed_at` holding `data`.
pub(crate) fn seed(
    secret: &str,
    data: SessionData,
    signed_at: OffsetDateTime,
    expires: &str,
) -> Seed {
    let codec =
        SessionCodec::database(&KeyRing::new(Secret::from(secret)).expect("a non-empty secret"));
    Seed {
        key: keyroll_store::new_session_key(),
        row: codec.encode_at(&data, signed_at).expect("encode"),
        data,
        expires: expires.to_owned(),
    }
}

/// Inserts rows in one transaction.
pub(crate) fn insert(path: &Path, table: &str, rows: &[Seed]) {
    let conn = rusqlite::Connection::open(path).expect("open");
    let tx = conn.unchecked_transaction().expect("tx");
    {
        let mut stmt = tx
            .prepare(&format!("INSERT INTO {table} VALUES (?1, ?2, ?3)"))
            .expect("prepare");
        for r in rows {
            stmt.execute(rusqlite::params![r.key, r.row, r.expires])
                .expect("insert");
        }
    }
    tx.commit().expect("commit");
}

/// Every row of the table: (key, data, expiry text).
pub(crate) fn rows(path: &Path, table: &str) -> Vec<(String, String, String)> {
    let conn = rusqlite::Connection::open(path).expect("open");
    let mut stmt = conn
        .prepare(&format!(
            "SELECT session_key, session_data, expire_date FROM {table}"
        ))
        .expect("select");
    let out = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("query")
        .map(|r| r.expect("row"))
        .collect();
    out
}
