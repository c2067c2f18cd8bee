//! `UserRows`: the session layer's user loader over a users table in the
//! store's own database, through the same lookup bulk re-sign uses.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use keyroll_axum::{UserLoader, UserRows};
use keyroll_store::{MemoryStore, SqliteStore, StoreError};

#[tokio::test]
async fn loads_the_password_hash_of_a_user_in_the_sqlite_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite3");
    {
        let db = rusqlite::Connection::open(&path).unwrap();
        db.execute_batch(
            "CREATE TABLE auth_user (id integer primary key, password varchar(128));
             INSERT INTO auth_user VALUES (1, 'pbkdf2_sha256$1$one'), (7, 'pbkdf2_sha256$1$seven');",
        )
        .unwrap();
    }
    let store = Arc::new(SqliteStore::open(&path, "django_session").unwrap());
    let users = UserRows::new(store, "auth_user").unwrap();
    assert_eq!(
        users.load_user("7").await,
        Some(("7".to_owned(), "pbkdf2_sha256$1$seven".to_owned()))
    );
    assert_eq!(users.load_user("2").await, None);
    assert_eq!(users.load_user("1 OR 1=1").await, None);
    assert!(!format!("{users:?}").contains("pbkdf2"));
}

#[tokio::test]
async fn refuses_a_bad_table_name_and_a_store_without_users() {
    let dir = tempfile::tempdir().unwrap();
    let store =
        Arc::new(SqliteStore::open(&dir.path().join("db.sqlite3"), "django_session").unwrap());
    assert!(matches!(
        UserRows::new(store, "auth_user; DROP TABLE x"),
        Err(StoreError::BadTableName(_))
    ));
    assert!(matches!(
        UserRows::new(Arc::new(MemoryStore::new()), "auth_user"),
        Err(StoreError::Unsupported(_))
    ));
}
