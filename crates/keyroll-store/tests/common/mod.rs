//! A fixture per backend for the published suite (`keyroll_store::store_suite!`,
//! `keyroll_store::testing`): its own table or prefix, dropped at the end,
//! also when the test fails; and what the backend-specific tests share.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
#![allow(dead_code, unreachable_pub)]

use std::fmt::Display;
use std::sync::Arc;

pub use keyroll_store::testing::*;
use keyroll_store::{new_session_key, Store};

// ---------------------------------------------------------------- fixtures

/// Runs its closure on drop: removes what a test created, even after a panic.
pub struct Cleanup(Option<Box<dyn FnOnce() + Send>>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f();
        }
    }
}

/// A name no other test uses: `kr_test_<random>`.
pub fn unique_name() -> String {
    format!("kr_test_{}", &new_session_key()[..12])
}

/// A service is unreachable: fail under `KEYROLL_REQUIRE_SERVICES=1`, else say so loudly and skip.
pub fn unreachable<T>(what: &str, url: &str, err: &dyn Display) -> Option<T> {
    let shown = redact(url);
    if std::env::var("KEYROLL_REQUIRE_SERVICES").as_deref() == Ok("1") {
        panic!("{what} unreachable at {shown} and KEYROLL_REQUIRE_SERVICES=1: {err}");
    }
    // Straight to the stderr handle: the test harness captures `eprintln!`.
    let line = format!("SKIPPED: {what} unreachable at {shown}: {err}\n");
    let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
    None
}

/// A URL without its password.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// A fresh SQLite database file (in a temporary directory) with keyroll's
/// own table (`WITHOUT ROWID`: stored in key order) and a users table.
#[cfg(feature = "sqlite")]
pub async fn sqlite() -> Option<Fixture> {
    sqlite_with(None).await
}

/// As [`sqlite`], with the session table Django makes (a rowid table: bulk
/// work walks it in storage order, `--jobs` split by position).
#[cfg(feature = "sqlite")]
pub async fn sqlite_django() -> Option<Fixture> {
    sqlite_with(Some(
        "CREATE TABLE \"django_session\" (\"session_key\" varchar(40) NOT NULL PRIMARY KEY, \
         \"session_data\" text NOT NULL, \"expire_date\" datetime NOT NULL);
         CREATE INDEX \"django_session_expire_date_a5c62663\" ON \"django_session\" (\"expire_date\");",
    ))
    .await
}

#[cfg(feature = "sqlite")]
async fn sqlite_with(django_ddl: Option<&str>) -> Option<Fixture> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sessions.db");
    let table = match django_ddl {
        Some(ddl) => {
            rusqlite::Connection::open(&path)
                .unwrap()
                .execute_batch(ddl)
                .unwrap();
            "django_session"
        }
        None => "keyroll_session",
    };
    let store = keyroll_store::SqliteStore::open(&path, table).unwrap();
    store.ensure_schema().await.unwrap();
    let users = "auth_user".to_owned();
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch("CREATE TABLE auth_user (id integer NOT NULL PRIMARY KEY, password text)")
            .unwrap();
    }
    Some(
        Fixture::new(Arc::new(store))
            .with_users_table(users.clone(), move |id, password| {
                let (path, table) = (path.clone(), users.clone());
                async move {
                    tokio::task::spawn_blocking(move || {
                        let c = rusqlite::Connection::open(path).unwrap();
                        c.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
                        c.execute(
                            &format!(
                                "INSERT OR REPLACE INTO \"{table}\" (id, password) VALUES (?1, ?2)"
                            ),
                            rusqlite::params![id, password],
                        )
                        .unwrap();
                    })
                    .await
                    .unwrap();
                }
            })
            .on_drop(move || drop(dir)),
    )
}

#[cfg(feature = "postgres")]
pub fn postgres_url() -> String {
    std::env::var("KEYROLL_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

#[cfg(feature = "postgres")]
pub async fn pg_client(url: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

/// Drops tables, from a thread of its own (drop runs inside a runtime, maybe panicking).
#[cfg(feature = "postgres")]
pub fn pg_cleanup(url: String, tables: Vec<String>) -> Cleanup {
    Cleanup(Some(Box::new(move || {
        let job = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                match pg_client(&url).await {
                    Ok(c) => {
                        for t in tables {
                            if let Err(e) = c
                                .batch_execute(&format!("DROP TABLE IF EXISTS \"{t}\""))
                                .await
                            {
                                eprintln!("cleanup: could not drop {t}: {e}");
                            }
                        }
                    }
                    Err(e) => eprintln!("cleanup: {e}"),
                }
            });
        });
        let _ = job.join();
    })))
}

/// A fresh table (and users table) in the test database; `None` (skipped) when
/// PostgreSQL is unreachable.
#[cfg(feature = "postgres")]
pub async fn postgres() -> Option<Fixture> {
    let url = postgres_url();
    let table = unique_name();
    let users = format!("{table}_users");
    let store = match keyroll_store::PostgresStore::connect(&url, &table, 4).await {
        Ok(s) => s,
        Err(e) => return unreachable("PostgreSQL", &url, &e),
    };
    let cleanup = pg_cleanup(url.clone(), vec![table.clone(), users.clone()]);
    store.ensure_schema().await.unwrap();
    let c = pg_client(&url).await.unwrap();
    c.batch_execute(&format!(
        "CREATE TABLE \"{users}\" (id integer NOT NULL PRIMARY KEY, password text)"
    ))
    .await
    .unwrap();
    Some(
        Fixture::new(Arc::new(store))
            .with_users_table(users.clone(), move |id, password| {
                let (url, table) = (url.clone(), users.clone());
                async move {
                    let c = pg_client(&url).await.unwrap();
                    let id = i32::try_from(id).unwrap();
                    c.execute(
                        &format!(
                            "INSERT INTO \"{table}\" (id, password) VALUES ($1, $2) \
                             ON CONFLICT (id) DO UPDATE SET password = EXCLUDED.password"
                        ),
                        &[&id, &password],
                    )
                    .await
                    .unwrap();
                }
            })
            .on_drop(move || drop(cleanup)),
    )
}

#[cfg(feature = "mysql")]
pub fn mysql_url() -> String {
    std::env::var("KEYROLL_TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".to_owned())
}

/// Runs statements on a connection of its own (no pool left behind).
#[cfg(feature = "mysql")]
pub async fn mysql_exec(url: &str, statements: &[String]) -> Result<(), mysql_async::Error> {
    use mysql_async::prelude::Queryable;
    let mut c = mysql_async::Conn::from_url(url).await?;
    for s in statements {
        c.query_drop(s).await?;
    }
    c.disconnect().await
}

/// Drops tables, from a thread of its own (drop runs inside a runtime, maybe panicking).
#[cfg(feature = "mysql")]
pub fn mysql_cleanup(url: String, tables: Vec<String>) -> Cleanup {
    // A failed test may leave a pooled connection in a transaction on the
    // table (its rollback waits for the runtime this drop blocks): wait a
    // bounded time for the lock, then leave the table.
    let drops = std::iter::once("SET SESSION lock_wait_timeout = 10".to_owned())
        .chain(tables.iter().map(|t| format!("DROP TABLE IF EXISTS `{t}`")))
        .collect();
    mysql_cleanup_statements(url, drops)
}

/// Runs `statements` on drop, from a thread of its own.
#[cfg(feature = "mysql")]
pub fn mysql_cleanup_statements(url: String, statements: Vec<String>) -> Cleanup {
    Cleanup(Some(Box::new(move || {
        let job = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            if let Err(e) = rt.block_on(mysql_exec(&url, &statements)) {
                eprintln!("cleanup: {e}");
            }
        });
        let _ = job.join();
    })))
}

/// A fresh table (and users table) in the test database; `None` (skipped) when
/// MySQL/MariaDB is unreachable.
#[cfg(feature = "mysql")]
pub async fn mysql() -> Option<Fixture> {
    mysql_with_pool(4).await
}

/// [`mysql`] with a store of one pooled connection.
#[cfg(feature = "mysql")]
pub async fn mysql_one_connection() -> Option<Fixture> {
    mysql_with_pool(1).await
}

#[cfg(feature = "mysql")]
async fn mysql_with_pool(connections: usize) -> Option<Fixture> {
    let url = mysql_url();
    let table = unique_name();
    let users = format!("{table}_users");
    let store = match keyroll_store::MysqlStore::connect(&url, &table, connections).await {
        Ok(s) => s,
        Err(e) => return unreachable("MySQL/MariaDB", &url, &e),
    };
    let cleanup = mysql_cleanup(url.clone(), vec![table.clone(), users.clone()]);
    store.ensure_schema().await.unwrap();
    mysql_exec(
        &url,
        &[format!(
            "CREATE TABLE `{users}` (id integer NOT NULL PRIMARY KEY, password varchar(128))"
        )],
    )
    .await
    .unwrap();
    Some(
        Fixture::new(Arc::new(store))
            .with_users_table(users.clone(), move |id, password| {
                let (url, table) = (url.clone(), users.clone());
                async move {
                    use mysql_async::prelude::Queryable;
                    let mut c = mysql_async::Conn::from_url(url.as_str()).await.unwrap();
                    c.exec_drop(
                        format!(
                            "INSERT INTO `{table}` (id, password) VALUES (?, ?) \
                             ON DUPLICATE KEY UPDATE password = VALUES(password)"
                        ),
                        (id, password),
                    )
                    .await
                    .unwrap();
                    c.disconnect().await.unwrap();
                }
            })
            .on_drop(move || drop(cleanup)),
    )
}

#[cfg(feature = "redis")]
pub fn redis_url() -> String {
    std::env::var("KEYROLL_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// Deletes every key under `<prefix>:`, from a thread of its own.
#[cfg(feature = "redis")]
pub fn redis_cleanup(url: String, prefix: String) -> Cleanup {
    Cleanup(Some(Box::new(move || {
        let job = std::thread::spawn(move || {
            let run = || -> redis::RedisResult<()> {
                let client = redis::Client::open(url.as_str())?;
                let mut con = client.get_connection()?;
                let keys: Vec<String> = redis::cmd("KEYS")
                    .arg(format!("{prefix}:*"))
                    .query(&mut con)?;
                for chunk in keys.chunks(500) {
                    redis::cmd("DEL").arg(chunk).exec(&mut con)?;
                }
                Ok(())
            };
            if let Err(e) = run() {
                eprintln!("cleanup: {e}");
            }
        });
        let _ = job.join();
    })))
}

/// A fresh key prefix; `None` (skipped) when Redis is unreachable.
#[cfg(feature = "redis")]
pub async fn redis() -> Option<Fixture> {
    let url = redis_url();
    let prefix = unique_name();
    let store = match keyroll_store::RedisStore::connect(&url, &prefix).await {
        Ok(s) => s,
        Err(e) => return unreachable("Redis", &url, &e),
    };
    let cleanup = redis_cleanup(url, prefix);
    store.ensure_schema().await.unwrap();
    Some(
        Fixture::new(Arc::new(store))
            .drops_expired()
            .on_drop(move || drop(cleanup)),
    )
}

/// A fresh in-process store.
pub async fn memory() -> Option<Fixture> {
    Some(Fixture::new(Arc::new(keyroll_store::MemoryStore::new())))
}
