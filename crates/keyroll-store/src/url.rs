//! Opening a store from a URL: `sqlite://relative.db`, `sqlite:///absolute.db`,
//! `postgres://…`, `redis://…`, `memory://`.

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
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        #[cfg(feature = "postgres")]
        {
            let store =
                crate::postgres::PostgresStore::connect(url, &opts.table, opts.pool_size).await?;
            return Ok(Arc::new(store));
        }
        #[cfg(not(feature = "postgres"))]
        return Err(StoreError::FeatureMissing("postgres"));
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
