//! Opening a store from a URL: `sqlite://relative.db`, `sqlite:///absolute.db`,
//! `postgres://…`, `mysql://…`, `redis://…`, `memory://`.
//!
//! Network stores (PostgreSQL, Redis) never wait without bound: every
//! operation is limited by timeouts, set by URL parameters that keyroll takes
//! out of the query string before the driver sees the URL (see [`Timeouts`]).

// The timeouts serve the network backends only; without them they are unused.
#![cfg_attr(
    not(any(feature = "postgres", feature = "redis", feature = "mysql")),
    allow(dead_code)
)]

use std::sync::Arc;

use crate::store::{check_table_name, Store, StoreError};

/// keyroll's own session table.
pub const DEFAULT_TABLE: &str = "keyroll_session";
/// Django's session table.
pub const DJANGO_TABLE: &str = "django_session";
/// Prefix of session keys in Redis: `<prefix>:<session_key>`.
pub const DEFAULT_REDIS_PREFIX: &str = "keyroll:session";

/// How to open a store.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// SQL table name.
    pub table: String,
    /// Redis key prefix.
    pub redis_prefix: String,
    /// Connections in the pool (PostgreSQL).
    pub pool_size: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            table: DEFAULT_TABLE.to_owned(),
            redis_prefix: DEFAULT_REDIS_PREFIX.to_owned(),
            pool_size: 8,
        }
    }
}

/// Opens the store a URL names. Does not create any schema.
///
/// PostgreSQL and Redis URLs take three optional parameters, in seconds
/// (decimals allowed, more than 0, at most 3600), so that a request never
/// hangs on a store that went away:
///
/// | parameter | default | bounds |
/// |---|---|---|
/// | `connect_timeout` | 5 | opening one connection: TCP connect and the handshake (PostgreSQL startup and authentication; Redis `HELLO`/`AUTH`/`SELECT`) |
/// | `pool_timeout` | 5 | PostgreSQL only: waiting for a pooled connection when all are busy |
/// | `query_timeout` | 10 | waiting for the answer to one statement or command; a PostgreSQL connection that timed out is closed, not reused |
///
/// PostgreSQL URLs may be spelt `postgres://`, `postgresql://` or `pgsql://`,
/// MySQL/MariaDB URLs `mysql://`, `mysql2://` or `mariadb://` (as
/// dj-database-url accepts them). MySQL's `pool_timeout` and `connect_timeout`
/// together bound getting a connection.
///
/// e.g. `postgres://keyroll@db/app?connect_timeout=2&query_timeout=3`. A
/// request that runs into one of them fails with [`StoreError::Unavailable`]
/// naming the timeout (a web layer answers 500); nothing is retried behind
/// the caller's back. Other parameters go to the driver as they are.
///
/// # Errors
/// [`StoreError::BadUrl`], [`StoreError::FeatureMissing`], or the backend's error.
pub async fn open_store(url: &str, opts: &StoreOptions) -> Result<Arc<dyn Store>, StoreError> {
    check_table_name(&opts.table)?;
    if url == "memory://" {
        return Ok(Arc::new(crate::memory::MemoryStore::new()));
    }
    if let Some(path) = url.strip_prefix("sqlite://") {
        if path.is_empty() {
            return Err(bad_url(url));
        }
        #[cfg(feature = "sqlite")]
        {
            let store = crate::sqlite::SqliteStore::open(std::path::Path::new(path), &opts.table)?;
            return Ok(Arc::new(store));
        }
        #[cfg(not(feature = "sqlite"))]
        return Err(StoreError::FeatureMissing("sqlite"));
    }
    // dj-database-url's spellings of PostgreSQL.
    let pg = ["postgres://", "postgresql://", "pgsql://"]
        .iter()
        .find_map(|p| url.strip_prefix(p));
    if let Some(rest) = pg {
        #[cfg(feature = "postgres")]
        {
            let url = format!("postgres://{rest}");
            let store =
                crate::postgres::PostgresStore::connect(&url, &opts.table, opts.pool_size).await?;
            return Ok(Arc::new(store));
        }
        #[cfg(not(feature = "postgres"))]
        {
            let _ = rest;
            return Err(StoreError::FeatureMissing("postgres"));
        }
    }
    // dj-database-url's spellings of MySQL, and MariaDB's own name.
    if ["mysql://", "mysql2://", "mariadb://"]
        .iter()
        .any(|p| url.starts_with(p))
    {
        #[cfg(feature = "mysql")]
        {
            let store = crate::mysql::MysqlStore::connect(url, &opts.table, opts.pool_size).await?;
            return Ok(Arc::new(store));
        }
        #[cfg(not(feature = "mysql"))]
        return Err(StoreError::FeatureMissing("mysql"));
    }
    if url.starts_with("redis://") || url.starts_with("rediss://") {
        #[cfg(feature = "redis")]
        {
            let store = crate::redis::RedisStore::connect(url, &opts.redis_prefix).await?;
            return Ok(Arc::new(store));
        }
        #[cfg(not(feature = "redis"))]
        return Err(StoreError::FeatureMissing("redis"));
    }
    Err(bad_url(url))
}

/// The error for an unusable URL, keeping only its scheme.
fn bad_url(url: &str) -> StoreError {
    let scheme = url.split_once("://").map_or("", |(s, _)| s);
    StoreError::BadUrl(scheme.chars().take(20).collect())
}
