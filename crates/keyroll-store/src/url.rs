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
/// TLS (rustls, `ring` provider). PostgreSQL takes libpq's parameters, as
/// Django and dj-database-url deployments write them; Redis takes redis-py's
/// (Django's and django-redis' `rediss://` URLs) on a `rediss://` URL, whose
/// certificate is checked against the system's roots unless they say
/// otherwise. Paths may be percent-encoded.
///
/// | parameter | store | meaning |
/// |---|---|---|
/// | `sslmode=disable` | PostgreSQL | plain TCP only |
/// | `sslmode=allow`, `prefer` | PostgreSQL | TLS if the server offers it, else plain; `prefer` is the default (`allow` is taken as `prefer`: TLS first) |
/// | `sslmode=require` | PostgreSQL | TLS; the certificate is not checked, unless `sslrootcert` names a file: then its chain is (as libpq) |
/// | `sslmode=verify-ca` | PostgreSQL | TLS; the chain is checked up to `sslrootcert` (default: the system's roots), not the host name |
/// | `sslmode=verify-full` | PostgreSQL | TLS; the chain and the host name are checked |
/// | `sslrootcert=/path/ca.pem` | PostgreSQL | the trusted CA certificates (PEM); `system`: the system's roots (with `verify-full` only, as libpq) |
/// | `sslcert=…`, `sslkey=…` | PostgreSQL | a client certificate (PEM, leaf first) and its unencrypted key (PKCS#8, PKCS#1 or SEC1), together |
/// | `sslsni`, `sslcompression` | PostgreSQL | accepted and ignored (SNI is sent for a host name; no compression) |
/// | `ssl_ca_certs=/path/ca.pem` | Redis | the trusted CA certificates (PEM) instead of the system's |
/// | `ssl_cert_reqs=required` | Redis | the default: the certificate is checked (`optional`, `CERT_OPTIONAL` and `CERT_REQUIRED` mean the same) |
/// | `ssl_cert_reqs=none` | Redis | **insecure**: the certificate is not checked at all (also `CERT_NONE`); anyone on the path can read and change the sessions |
/// | `ssl_check_hostname=false` | Redis | the chain is checked, not the host name |
/// | `ssl_certfile=…`, `ssl_keyfile=…` | Redis | a client certificate and its key (PEM), together |
///
/// The system's roots are the platform's store (`rustls-native-certs`; on
/// Linux the distribution's CA bundle, with what `update-ca-certificates`
/// added; `SSL_CERT_FILE` is honoured). Not supported, and refused by name:
/// `sslpassword` (an encrypted key), `sslcrl`, `sslcrldir`, `sslcertmode`,
/// `ssl_min_protocol_version`, `ssl_max_protocol_version`, `gssencmode`;
/// `ssl_ca_path`, `ssl_ca_data`, `ssl_password`. `~/.postgresql/` and
/// libpq's environment variables (`PGSSLMODE`, …) are not read. A
/// certificate the checks refuse fails the connection with
/// `certificate verify failed: …`; a server without TLS under `require` or
/// stricter with `the server does not accept TLS (sslmode=…)`.
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
