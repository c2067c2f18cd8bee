//! PostgreSQL backend: Django's session table, through a deadpool connection pool.
//!
//! `expire_date` is `timestamp with time zone`, as Django creates it. Every
//! statement is prepared once per pooled connection. A batch of
//! compare-and-swaps is one `UPDATE … FROM unnest(…)` statement.
//!
//! Nothing waits without bound (URL parameters, seconds; see
//! [`crate::open_store`]): `connect_timeout` (default 5) bounds opening a
//! connection, TCP connect *and* startup/authentication (tokio-postgres'
//! own `connect_timeout` covers only the TCP connect); `pool_timeout`
//! (default 5) bounds the wait for a pooled connection when all are busy;
//! `query_timeout` (default 10) bounds each operation's statements (the row
//! counts of a census or re-sign get at least 10 minutes). A
//! connection whose statement timed out is closed rather than returned to
//! the pool (it may be wedged behind a dead network path). A connection the
//! server or network closed is dropped by the pool's recycle check, so the
//! store reconnects by itself once the server is back.
//!
//! TLS is rustls (`tokio-postgres-rustls`, `ring` provider), set by libpq's
//! URL parameters (`sslmode`, `sslrootcert`, `sslcert`, `sslkey`; see
//! [`crate::open_store`]); by default (`prefer`) TLS is used when the server
//! offers it, without checking its certificate, as libpq does.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{
    Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime, TimeoutType,
};
use time::OffsetDateTime;
use tokio_postgres::types::ToSql;

use crate::store::{
    check_table_name, is_valid_session_key, new_session_key, KeyRange, Lower, PurgeFrom, Purged,
    RowCounts, SessionRecord, Store, StoreError, Swap, UserTable,
};
use crate::timeouts::Timeouts;
use crate::tls::{PgTls, SslMode};

const BACKEND: &str = "postgres";
/// Fresh keys tried by `create` before giving up.
const CREATE_ATTEMPTS: usize = 10;

/// Runs `$body` (statements on `$c`, a pooled client) under the query
/// timeout. A client whose statements timed out is closed, never handed
/// back to the pool.
macro_rules! timed {
    ($self:ident, $c:ident, $body:expr) => {{
        timed!($self, $self.timeouts.query, $c, $body)
    }};
    ($self:ident, $limit:expr, $c:ident, $body:expr) => {{
        #[allow(unused_mut)]
        let mut $c = $self.client().await?;
        let limit = $limit;
        let outcome = tokio::time::timeout(limit, typed(async { $body })).await;
        match outcome {
            Ok(r) => r,
            Err(_) => {
                drop(Object::take($c));
                Err($self.timed_out($self.timeouts.name_of(limit), limit))
            }
        }
    }};
}

/// Pins an async block's output to `Result<T, StoreError>` (so `?` infers).
fn typed<T, F: Future<Output = Result<T, StoreError>>>(f: F) -> F {
    f
}

/// A session store in a PostgreSQL table (Django's `django_session` layout).
pub struct PostgresStore {
    pool: Pool,
    table: String,
    sql: Sql,
    /// Per users table: is its `id` column an integer type?
    id_types: Mutex<HashMap<String, bool>>,
    timeouts: Timeouts,
    /// The URL's `sslmode`, to word connection errors (`None`: not given).
    sslmode: Option<SslMode>,
}

/// The statements, with the (checked, quoted) table name in place.
struct Sql {
    quoted: String,
    create_table: String,
    has_expiry_index: &'static str,
    create_index: String,
    load: String,
    insert: String,
    upsert: String,
    update: String,
    delete: String,
    cas: String,
    cas_many: String,
    purge: String,
    pages: &'static str,
    select: String,
}

impl Sql {
    fn new(table: &str) -> Self {
        let t = format!("\"{table}\"");
        Self {
            create_table: format!(
                "CREATE TABLE IF NOT EXISTS {t} (\"session_key\" varchar(40) NOT NULL PRIMARY KEY, \
                 \"session_data\" text NOT NULL, \"expire_date\" timestamp with time zone NOT NULL)"
            ),
            has_expiry_index: "SELECT EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a \
                               ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] \
                               WHERE i.indrelid = $1::text::regclass AND a.attname = 'expire_date')",
            create_index: format!("CREATE INDEX IF NOT EXISTS \"{table}_expire_date_idx\" ON {t} (\"expire_date\")"),
            load: format!("SELECT session_data, expire_date FROM {t} WHERE session_key = $1 AND expire_date > $2"),
            insert: format!(
                "INSERT INTO {t} (session_key, session_data, expire_date) VALUES ($1, $2, $3) \
                 ON CONFLICT (session_key) DO NOTHING"
            ),
            upsert: format!(
                "INSERT INTO {t} (session_key, session_data, expire_date) VALUES ($1, $2, $3) \
                 ON CONFLICT (session_key) DO UPDATE SET session_data = EXCLUDED.session_data, \
                 expire_date = EXCLUDED.expire_date"
            ),
            update: format!("UPDATE {t} SET session_data = $2, expire_date = $3 WHERE session_key = $1"),
            delete: format!("DELETE FROM {t} WHERE session_key = $1"),
            cas: format!("UPDATE {t} SET session_data = $3 WHERE session_key = $1 AND session_data = $2"),
            cas_many: format!(
                "UPDATE {t} AS t SET session_data = v.new_data \
                 FROM unnest($1::text[], $2::text[], $3::text[]) AS v(k, old_data, new_data) \
                 WHERE t.session_key = v.k AND t.session_data = v.old_data RETURNING t.session_key"
            ),
            // A range of the table's pages (a TID range scan): the heap is
            // read sequentially, once, as one big DELETE reads it; going by
            // the expiry index instead would visit the rows in random order.
            purge: format!(
                "DELETE FROM {t} WHERE ctid >= $2::text::tid AND ctid < $3::text::tid \
                 AND expire_date <= $1"
            ),
            pages: "SELECT pg_relation_size($1::text::regclass) / current_setting('block_size')::bigint",
            select: format!("SELECT session_key, session_data, expire_date FROM {t}"),
            quoted: t,
        }
    }
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = self.pool.status();
        f.debug_struct("PostgresStore")
            .field("table", &self.table)
            .field("pool_size", &status.max_size)
            .field("timeouts", &self.timeouts)
            .finish()
    }
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user:password@host:port/db?…`),
    /// sessions in `table`, with up to `pool_size` connections. Checks the
    /// server is reachable; does not create the table (see [`Store::ensure_schema`]).
    ///
    /// The URL may set `connect_timeout`, `pool_timeout` and `query_timeout`
    /// in seconds (defaults 5, 5, 10), and TLS with libpq's `sslmode`,
    /// `sslrootcert`, `sslcert` and `sslkey` (TLS by rustls; see
    /// [`crate::open_store`]); keyroll takes them out before the driver
    /// parses the rest.
    ///
    /// # Errors
    /// [`StoreError::BadTableName`]; [`StoreError::Backend`] for a URL that does
    /// not parse, a bad timeout or TLS parameter, a certificate file that
    /// cannot be read, a server that does not accept TLS when `sslmode`
    /// requires it or whose certificate fails the checks (`certificate verify
    /// failed: …`); [`StoreError::Unavailable`] for a server that cannot be
    /// reached (refused at once; no answer within `connect_timeout`).
    pub async fn connect(url: &str, table: &str, pool_size: usize) -> Result<Self, StoreError> {
        check_table_name(table)?;
        let (url, mut timeouts) = Timeouts::take_from_url(BACKEND, url)?;
        let (url, tls) = PgTls::take_from_url(BACKEND, &url)?;
        // The URL may hold a password: never echo it or the parser's take on it.
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|_| StoreError::backend(BACKEND, "invalid PostgreSQL URL"))?;
        if let Some(mode) = tls.mode {
            config.ssl_mode(mode.wire());
        }
        // A `key=value` string may set libpq's connect_timeout itself.
        match config.get_connect_timeout() {
            Some(t) if !t.is_zero() => timeouts.connect = *t,
            _ => {
                config.connect_timeout(timeouts.connect);
            }
        }
        // Unacknowledged packets for that long close the connection (Linux):
        // a silently dead network path is not left wedged for the kernel's
        // default of about fifteen minutes.
        #[cfg(target_os = "linux")]
        if config.get_tcp_user_timeout().is_none() {
            config.tcp_user_timeout(timeouts.query);
        }
        if config.get_application_name().is_none() {
            config.application_name("keyroll");
        }
        let manager = Manager::from_config(
            config,
            tls.connector(BACKEND)?,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        // tokio-postgres' connect_timeout covers the TCP connect only; the
        // pool's create timeout also bounds startup and authentication.
        let pool = Pool::builder(manager)
            .max_size(pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(timeouts.pool))
            .create_timeout(Some(timeouts.connect))
            .recycle_timeout(Some(timeouts.connect))
            .build()
            .map_err(|e| StoreError::backend(BACKEND, e))?;
        let mut store = Self::with_pool(pool, table, timeouts)?;
        store.sslmode = tls.mode;
        drop(store.client().await?);
        Ok(store)
    }

    /// A store over the application's own connection pool, sessions in
    /// `table`: the pool's own settings (size, TLS, timeouts) stay as the
    /// application made them; `timeouts.query` bounds each statement
    /// (`connect` and `pool` only word the errors: set the pool's own create
    /// and wait timeouts to match). Connects lazily (nothing is checked here).
    ///
    /// # Errors
    /// [`StoreError::BadTableName`].
    pub fn with_pool(pool: Pool, table: &str, timeouts: Timeouts) -> Result<Self, StoreError> {
        check_table_name(table)?;
        Ok(Self {
            pool,
            table: table.to_owned(),
            sql: Sql::new(table),
            id_types: Mutex::new(HashMap::new()),
            timeouts,
            sslmode: None,
        })
    }

    /// The table sessions are kept in.
    pub fn table(&self) -> &str {
        &self.table
    }

    async fn client(&self) -> Result<Object, StoreError> {
        self.pool.get().await.map_err(|e| match e {
            PoolError::Timeout(TimeoutType::Wait) => self.timed_out(
                "pool_timeout (every pooled connection busy)",
                self.timeouts.pool,
            ),
            PoolError::Timeout(TimeoutType::Create | TimeoutType::Recycle) => self.timed_out(
                "connect_timeout (no answer from the server)",
                self.timeouts.connect,
            ),
            PoolError::Backend(e) => connect_err(e, self.sslmode),
            other => StoreError::backend(BACKEND, other),
        })
    }

    fn timed_out(&self, what: &str, after: Duration) -> StoreError {
        StoreError::unavailable(
            BACKEND,
            format_args!("timed out after {:.1} s: {what}", after.as_secs_f64()),
        )
    }

    /// Is `id` of this users table an integer column? (Cached.)
    async fn integer_ids(&self, client: &Object, users_table: &str) -> Result<bool, StoreError> {
        if let Some(known) = self.id_types_get(users_table) {
            return Ok(known);
        }
        let row = client
            .query_opt(
                "SELECT t.typname::text FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
                 WHERE a.attrelid = $1::text::regclass AND a.attname = 'id' AND NOT a.attisdropped",
                &[&format!("\"{users_table}\"")],
            )
            .await
            .map_err(pg_err)?;
        let integer = match row {
            Some(r) => {
                let name: String = r.try_get(0).map_err(pg_err)?;
                matches!(name.as_str(), "int2" | "int4" | "int8")
            }
            None => {
                return Err(StoreError::backend(
                    BACKEND,
                    "the users table has no id column",
                ))
            }
        };
        if let Ok(mut m) = self.id_types.lock() {
            m.insert(users_table.to_owned(), integer);
        }
        Ok(integer)
    }

    fn id_types_get(&self, users_table: &str) -> Option<bool> {
        self.id_types
            .lock()
            .ok()
            .and_then(|m| m.get(users_table).copied())
    }

    /// A key-order scan page, live rows only when `live_at` is given.
    async fn scan_where(
        &self,
        range: &KeyRange,
        after: Option<&str>,
        limit: usize,
        live_at: Option<OffsetDateTime>,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let (lower, upper) = range.page_bounds(after);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut sql = self.sql.select.clone();
        let mut args: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(4);
        let mut clauses = Vec::with_capacity(3);
        if let Some(now) = &live_at {
            args.push(now);
            clauses.push(format!("expire_date > ${}", args.len()));
        }
        match &lower {
            Lower::None => {}
            Lower::After(k) => {
                args.push(k);
                clauses.push(format!("session_key > ${}", args.len()));
            }
            Lower::From(k) => {
                args.push(k);
                clauses.push(format!("session_key >= ${}", args.len()));
            }
        }
        if let Some(end) = &upper {
            args.push(end);
            clauses.push(format!("session_key < ${}", args.len()));
        }
        if !clauses.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&clauses.join(" AND "));
        }
        args.push(&limit);
        sql.push_str(&format!(" ORDER BY session_key LIMIT ${}", args.len()));
        timed!(self, client, {
            let stmt = client.prepare_cached(&sql).await.map_err(pg_err)?;
            let rows = client.query(&stmt, &args).await.map_err(pg_err)?;
            rows.iter()
                .map(|r| {
                    Ok(SessionRecord {
                        key: r.try_get(0).map_err(pg_err)?,
                        data: r.try_get(1).map_err(pg_err)?,
                        expires: r.try_get(2).map_err(pg_err)?,
                    })
                })
                .collect()
        })
    }

    /// One swap at a time, in one transaction (for a batch that names a key twice).
    async fn swap_each(&self, swaps: &[Swap]) -> Result<Vec<bool>, StoreError> {
        timed!(self, client, {
            let tx = client.transaction().await.map_err(pg_err)?;
            let stmt = tx.prepare_cached(&self.sql.cas).await.map_err(pg_err)?;
            let mut out = Vec::with_capacity(swaps.len());
            for s in swaps {
                let n = tx
                    .execute(&stmt, &[&s.key, &s.expected, &s.new])
                    .await
                    .map_err(pg_err)?;
                out.push(n == 1);
            }
            tx.commit().await.map_err(pg_err)?;
            Ok(out)
        })
    }
}

/// A driver error, without what PostgreSQL's DETAIL line may quote (row values).
fn pg_err(e: tokio_postgres::Error) -> StoreError {
    if let Some(db) = e.as_db_error() {
        return StoreError::backend(
            BACKEND,
            format_args!(
                "{}: {} (SQLSTATE {})",
                db.severity(),
                db.message(),
                db.code().code()
            ),
        );
    }
    let text = match std::error::Error::source(&e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    };
    // Not an answer of the server: the connection failed or closed.
    if e.is_closed() || std::error::Error::source(&e).is_some_and(|c| c.is::<std::io::Error>()) {
        StoreError::unavailable(BACKEND, text)
    } else {
        StoreError::backend(BACKEND, text)
    }
}

/// An error opening a connection: TLS failures worded for an operator (the
/// driver's own words are "error performing TLS handshake"), then as [`pg_err`].
fn connect_err(e: tokio_postgres::Error, sslmode: Option<SslMode>) -> StoreError {
    let mode = sslmode.map_or("require", SslMode::name);
    if let Some(text) = crate::tls::describe(&e) {
        return StoreError::backend(BACKEND, format_args!("{text} (sslmode={mode})"));
    }
    let cause = std::error::Error::source(&e).map(ToString::to_string);
    match cause.as_deref() {
        Some("server does not support TLS") => {
            return StoreError::backend(
                BACKEND,
                format_args!("the server does not accept TLS (sslmode={mode})"),
            )
        }
        Some(other) if e.to_string().starts_with("error performing TLS handshake") => {
            return StoreError::backend(
                BACKEND,
                format_args!("TLS handshake failed: {other} (sslmode={mode})"),
            )
        }
        _ => {}
    }
    let refused_plain = e
        .as_db_error()
        .is_some_and(|db| db.code().code() == "28000" && db.message().contains("no encryption"));
    match pg_err(e) {
        StoreError::Backend { backend, message }
            if refused_plain && sslmode == Some(SslMode::Disable) =>
        {
            StoreError::Backend {
                backend,
                message: format!(
                    "{message} — the server requires TLS and the URL says sslmode=disable"
                ),
            }
        }
        other => other,
    }
}

fn invalid_key() -> StoreError {
    StoreError::InvalidKey
}

#[async_trait]
impl Store for PostgresStore {
    fn user_table(&self) -> Option<&dyn UserTable> {
        Some(self)
    }

    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn ensure_schema(&self) -> Result<(), StoreError> {
        timed!(self, client, {
            let tx = client.transaction().await.map_err(pg_err)?;
            // Serialize concurrent ensure_schema calls: CREATE … IF NOT EXISTS races otherwise.
            tx.execute(
                "SELECT pg_advisory_xact_lock(hashtext($1::text))",
                &[&self.table],
            )
            .await
            .map_err(pg_err)?;
            tx.batch_execute(&self.sql.create_table)
                .await
                .map_err(pg_err)?;
            // A table Django made has its own index on expire_date: don't add a second.
            let indexed: bool = tx
                .query_one(self.sql.has_expiry_index, &[&self.sql.quoted])
                .await
                .and_then(|r| r.try_get(0))
                .map_err(pg_err)?;
            if !indexed {
                tx.batch_execute(&self.sql.create_index)
                    .await
                    .map_err(pg_err)?;
            }
            tx.commit().await.map_err(pg_err)
        })
    }

    async fn load(
        &self,
        key: &str,
        now: OffsetDateTime,
    ) -> Result<Option<SessionRecord>, StoreError> {
        if !is_valid_session_key(key) {
            return Ok(None);
        }
        timed!(self, client, {
            let stmt = client
                .prepare_cached(&self.sql.load)
                .await
                .map_err(pg_err)?;
            let Some(row) = client
                .query_opt(&stmt, &[&key, &now])
                .await
                .map_err(pg_err)?
            else {
                return Ok(None);
            };
            let data: String = row.try_get(0).map_err(pg_err)?;
            let expires: OffsetDateTime = row.try_get(1).map_err(pg_err)?;
            Ok(Some(SessionRecord {
                key: key.to_owned(),
                data,
                expires,
            }))
        })
    }

    async fn create(&self, data: &str, expires: OffsetDateTime) -> Result<String, StoreError> {
        timed!(self, client, {
            let stmt = client
                .prepare_cached(&self.sql.insert)
                .await
                .map_err(pg_err)?;
            for _ in 0..CREATE_ATTEMPTS {
                let key = new_session_key();
                // ON CONFLICT DO NOTHING: a taken key inserts no row (and logs no error).
                if client
                    .execute(&stmt, &[&key, &data, &expires])
                    .await
                    .map_err(pg_err)?
                    == 1
                {
                    return Ok(key);
                }
            }
            Err(StoreError::KeyExhausted)
        })
    }

    async fn save(&self, record: &SessionRecord) -> Result<(), StoreError> {
        if !is_valid_session_key(&record.key) {
            return Err(invalid_key());
        }
        timed!(self, client, {
            let stmt = client
                .prepare_cached(&self.sql.upsert)
                .await
                .map_err(pg_err)?;
            client
                .execute(&stmt, &[&record.key, &record.data, &record.expires])
                .await
                .map_err(pg_err)?;
            Ok(())
        })
    }

    async fn update(&self, record: &SessionRecord) -> Result<bool, StoreError> {
        if !is_valid_session_key(&record.key) {
            return Err(invalid_key());
        }
        timed!(self, client, {
            let stmt = client
                .prepare_cached(&self.sql.update)
                .await
                .map_err(pg_err)?;
            let n = client
                .execute(&stmt, &[&record.key, &record.data, &record.expires])
                .await
                .map_err(pg_err)?;
            Ok(n == 1)
        })
    }

    async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        timed!(self, client, {
            let stmt = client
                .prepare_cached(&self.sql.delete)
                .await
                .map_err(pg_err)?;
            Ok(client.execute(&stmt, &[&key]).await.map_err(pg_err)? == 1)
        })
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: &str,
        new: &str,
    ) -> Result<bool, StoreError> {
        timed!(self, client, {
            let stmt = client.prepare_cached(&self.sql.cas).await.map_err(pg_err)?;
            let n = client
                .execute(&stmt, &[&key, &expected, &new])
                .await
                .map_err(pg_err)?;
            Ok(n == 1)
        })
    }

    async fn compare_and_swap_many(&self, swaps: &[Swap]) -> Result<Vec<bool>, StoreError> {
        match swaps {
            [] => return Ok(Vec::new()),
            [s] => {
                return Ok(vec![
                    self.compare_and_swap(&s.key, &s.expected, &s.new).await?,
                ])
            }
            _ => {}
        }
        let mut seen = HashSet::with_capacity(swaps.len());
        if !swaps.iter().all(|s| seen.insert(s.key.as_str())) {
            // One statement cannot tell which of two swaps of a row applied.
            return self.swap_each(swaps).await;
        }
        let keys: Vec<&str> = swaps.iter().map(|s| s.key.as_str()).collect();
        let old: Vec<&str> = swaps.iter().map(|s| s.expected.as_str()).collect();
        let new: Vec<&str> = swaps.iter().map(|s| s.new.as_str()).collect();
        timed!(self, client, {
            let stmt = client
                .prepare_cached(&self.sql.cas_many)
                .await
                .map_err(pg_err)?;
            let rows = client
                .query(&stmt, &[&keys, &old, &new])
                .await
                .map_err(pg_err)?;
            let mut applied = HashSet::with_capacity(rows.len());
            for r in &rows {
                let k: String = r.try_get(0).map_err(pg_err)?;
                applied.insert(k);
            }
            Ok(swaps.iter().map(|s| applied.contains(&s.key)).collect())
        })
    }

    async fn scan(
        &self,
        range: &KeyRange,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        self.scan_where(range, after, limit, None).await
    }

    async fn scan_live(
        &self,
        range: &KeyRange,
        after: Option<&str>,
        limit: usize,
        now: OffsetDateTime,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        self.scan_where(range, after, limit, Some(now)).await
    }

    async fn count_rows(
        &self,
        range: &KeyRange,
        now: OffsetDateTime,
    ) -> Result<RowCounts, StoreError> {
        let keys =
            "($2::text IS NULL OR session_key >= $2) AND ($3::text IS NULL OR session_key < $3)";
        let (live, expired) = (
            format!(
                "SELECT count(*) FROM {} WHERE expire_date > $1 AND {keys}",
                self.sql.quoted
            ),
            format!(
                "SELECT count(*) FROM {} WHERE expire_date <= $1 AND {keys}",
                self.sql.quoted
            ),
        );
        let (start, end) = (range.start.as_deref(), range.end.as_deref());
        // Row counts get at least 10 minutes (`Timeouts::count`).
        timed!(self, self.timeouts.count(), client, {
            let live: i64 = client
                .query_one(&live, &[&now, &start, &end])
                .await
                .and_then(|r| r.try_get(0))
                .map_err(pg_err)?;
            let expired: i64 = client
                .query_one(&expired, &[&now, &start, &end])
                .await
                .and_then(|r| r.try_get(0))
                .map_err(pg_err)?;
            Ok(RowCounts {
                live: live.unsigned_abs(),
                expired: expired.unsigned_abs(),
            })
        })
    }

    /// One statement under the query timeout, so a table with millions of
    /// expired rows is purged in short steps, not timed out.
    /// About `limit` rows' worth of pages a batch (the next batch starts
    /// at the following page); done past the table's last page.
    async fn purge_expired_batch(
        &self,
        now: OffsetDateTime,
        from: &PurgeFrom,
        limit: usize,
    ) -> Result<Purged, StoreError> {
        let start = match from {
            PurgeFrom::Position(p) => *p,
            PurgeFrom::Done => return Ok(Purged::batch(0, 0, 1, PurgeFrom::Done)),
            _ => 0,
        };
        // Django's rows are a few hundred bytes: some 25 to a page of 8 KiB.
        let span = i64::try_from(limit / 25).unwrap_or(i64::MAX).max(1);
        let end = start.saturating_add(span);
        timed!(self, client, {
            let pages: i64 = client
                .query_one(self.sql.pages, &[&self.sql.quoted])
                .await
                .and_then(|r| r.try_get(0))
                .map_err(pg_err)?;
            if start >= pages {
                return Ok(Purged::batch(0, 0, 1, PurgeFrom::Done));
            }
            let tx = client.transaction().await.map_err(pg_err)?;
            // The batch's commit does not wait for the server to flush its log:
            // were the server to crash just after, the rows of the last batches
            // would be back, still expired, for the next purge to delete; that
            // wait, a flush for each of hundreds of batches, is what a purge in
            // batches would otherwise pay beside one big DELETE.
            tx.batch_execute("SET LOCAL synchronous_commit = off")
                .await
                .map_err(pg_err)?;
            let stmt = tx.prepare_cached(&self.sql.purge).await.map_err(pg_err)?;
            let (lo, hi) = (format!("({start},0)"), format!("({end},0)"));
            let deleted = tx.execute(&stmt, &[&now, &lo, &hi]).await.map_err(pg_err)?;
            tx.commit().await.map_err(pg_err)?;
            Ok(Purged {
                deleted,
                next: PurgeFrom::Position(end),
            })
        })
    }
}

#[async_trait]
impl UserTable for PostgresStore {
    async fn password_hashes(
        &self,
        users_table: &str,
        ids: &[String],
    ) -> Result<HashMap<String, String>, StoreError> {
        check_table_name(users_table)?;
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        timed!(self, client, {
            // An integer id column is matched as integers, so its index is used;
            // anything else is compared as text.
            let rows = if self.integer_ids(&client, users_table).await? {
                let ints: Vec<i64> = ids.iter().filter_map(|i| i.parse().ok()).collect();
                if ints.is_empty() {
                    return Ok(HashMap::new());
                }
                let sql = format!(
                    "SELECT id::text, password FROM \"{users_table}\" WHERE id = ANY($1::int8[])"
                );
                let stmt = client.prepare_cached(&sql).await.map_err(pg_err)?;
                client.query(&stmt, &[&ints]).await.map_err(pg_err)?
            } else {
                let sql = format!(
                "SELECT id::text, password FROM \"{users_table}\" WHERE id::text = ANY($1::text[])"
            );
                let stmt = client.prepare_cached(&sql).await.map_err(pg_err)?;
                client.query(&stmt, &[&ids]).await.map_err(pg_err)?
            };
            let mut out = HashMap::with_capacity(rows.len());
            for r in &rows {
                let id: Option<String> = r.try_get(0).map_err(pg_err)?;
                let password: Option<String> = r.try_get(1).map_err(pg_err)?;
                if let (Some(id), Some(password)) = (id, password) {
                    out.insert(id, password);
                }
            }
            Ok(out)
        })
    }
}
