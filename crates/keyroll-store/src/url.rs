//! Opening a store from a URL: `sqlite://relative.db`, `sqlite:///absolute.db`,
//! `postgres://…`, `redis://…`, `memory://`.
//!
//! Network stores (PostgreSQL, Redis) never wait without bound: every
//! operation is limited by timeouts, set by URL parameters that keyroll takes
//! out of the query string before the driver sees the URL (see [`Timeouts`]).

// The timeouts serve the network backends only; without them they are unused.
#![cfg_attr(not(any(feature = "postgres", feature = "redis")), allow(dead_code))]

use std::sync::Arc;
use std::time::Duration;

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
/// e.g. `postgres://keyroll@db/app?connect_timeout=2&query_timeout=3`. A
/// request that runs into one of them fails with [`StoreError::Backend`]
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

/// How long a network store waits (see [`open_store`] for the URL parameters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Timeouts {
    /// Opening one connection (TCP connect + handshake).
    pub(crate) connect: Duration,
    /// Waiting for a free pooled connection (PostgreSQL).
    pub(crate) pool: Duration,
    /// Waiting for the answer to one statement or command.
    pub(crate) query: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(5),
            pool: Duration::from_secs(5),
            query: Duration::from_secs(10),
        }
    }
}

/// Longest timeout a URL may set.
const MAX_TIMEOUT: Duration = Duration::from_secs(3600);

impl Timeouts {
    /// Takes `connect_timeout`, `pool_timeout` and `query_timeout` out of a
    /// URL's query string; returns the URL without them and the timeouts
    /// (defaults for those not given). A URL without `://` (PostgreSQL's
    /// `key=value` form) is returned as it is, with the defaults.
    ///
    /// # Errors
    /// [`StoreError::Backend`] naming the parameter (never the URL, which
    /// may hold a password) when a value is not a number of seconds in
    /// (0, 3600] or a parameter is given twice.
    pub(crate) fn take_from_url(
        backend: &'static str,
        url: &str,
    ) -> Result<(String, Self), StoreError> {
        let mut t = Self::default();
        let Some((base, query)) = url.split_once('?').filter(|_| url.contains("://")) else {
            return Ok((url.to_owned(), t));
        };
        let mut kept: Vec<&str> = Vec::new();
        let mut seen: Vec<&str> = Vec::new();
        for pair in query.split('&') {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let slot = match name {
                "connect_timeout" => &mut t.connect,
                "pool_timeout" => &mut t.pool,
                "query_timeout" => &mut t.query,
                _ => {
                    if !pair.is_empty() {
                        kept.push(pair);
                    }
                    continue;
                }
            };
            if seen.contains(&name) {
                return Err(StoreError::backend(
                    backend,
                    format_args!("URL parameter {name} is given twice"),
                ));
            }
            seen.push(name);
            *slot = parse_seconds(value).ok_or_else(|| {
                StoreError::backend(
                    backend,
                    format_args!(
                        "URL parameter {name} must be a number of seconds, more than 0 and at most 3600"
                    ),
                )
            })?;
        }
        let url = if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        Ok((url, t))
    }
}

/// `"2"`, `"0.25"` → a duration in (0, [`MAX_TIMEOUT`]].
fn parse_seconds(s: &str) -> Option<Duration> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    let secs: f64 = s.parse().ok()?;
    let d = Duration::try_from_secs_f64(secs).ok()?;
    (!d.is_zero() && d <= MAX_TIMEOUT).then_some(d)
}

/// The error for an unusable URL, keeping only its scheme.
fn bad_url(url: &str) -> StoreError {
    let scheme = url.split_once("://").map_or("", |(s, _)| s);
    StoreError::BadUrl(scheme.chars().take(20).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_are_taken_out_of_the_url() {
        let (url, t) = Timeouts::take_from_url(
            "postgres",
            "postgres://u:pw@h/db?application_name=x&connect_timeout=2&query_timeout=0.5&sslmode=disable",
        )
        .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(
            url,
            "postgres://u:pw@h/db?application_name=x&sslmode=disable"
        );
        assert_eq!(t.connect, Duration::from_secs(2));
        assert_eq!(t.query, Duration::from_millis(500));
        assert_eq!(t.pool, Timeouts::default().pool);

        let (url, t) = Timeouts::take_from_url("redis", "redis://h:6379/0?pool_timeout=1")
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(url, "redis://h:6379/0");
        assert_eq!(t.pool, Duration::from_secs(1));

        let (url, t) = Timeouts::take_from_url("postgres", "host=h connect_timeout=3")
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(
            (url.as_str(), t),
            ("host=h connect_timeout=3", Timeouts::default())
        );
    }

    #[test]
    fn bad_timeouts_are_refused_without_echoing_the_url() {
        for bad in ["0", "-1", "", "abc", "1e3", "3601", "inf", "NaN", "1.2.3"] {
            let url = format!("postgres://u:hunter2@h/db?query_timeout={bad}");
            let e = Timeouts::take_from_url("postgres", &url)
                .err()
                .unwrap_or_else(|| unreachable!("{bad} accepted"));
            let text = e.to_string();
            assert!(
                text.contains("query_timeout") && !text.contains("hunter2"),
                "{text}"
            );
        }
        assert!(
            Timeouts::take_from_url("redis", "redis://h?connect_timeout=1&connect_timeout=2")
                .is_err()
        );
    }
}
