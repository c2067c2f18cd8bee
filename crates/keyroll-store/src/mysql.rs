//! MySQL and MariaDB backend: Django's session table, through `mysql_async`'s
//! connection pool.
//!
//! The layout is the one Django's migration makes on MySQL:
//! `session_key varchar(40)` primary key, `session_data longtext`,
//! `expire_date datetime(6)` indexed, holding UTC (Django's `USE_TZ = True`
//! writes UTC into the naive column; keyroll reads and writes the same).
//!
//! Session data is compared byte for byte (`CAST(… AS BINARY)`), never
//! through the column's collation: Django's tables use a case-insensitive
//! collation, under which two signatures that differ only in case would be
//! "equal". Connections set `CLIENT_FOUND_ROWS`, so an `UPDATE` counts the
//! rows it matched, not only those it changed (an update that writes the
//! same values still reports that the row exists). A batch of
//! compare-and-swaps is one transaction: the rows are read `FOR UPDATE`,
//! compared, and the matching ones rewritten by one statement. On Django's
//! own layout (the three columns, `session_key` the primary key, no
//! triggers) that statement is an `INSERT … ON DUPLICATE KEY UPDATE` of the
//! new data; the transaction is rolled back unless every row counted as
//! updated (none inserted: the locked rows cannot have gone). Any other table
//! gets one `UPDATE … CASE`, whose `CASE` MariaDB evaluates branch by branch
//! for each row (half as long again as the upsert at 1,000 rows a batch).
//!
//! Nothing waits without bound (URL parameters, seconds; see
//! [`crate::open_store`]): `connect_timeout` (default 5) and `pool_timeout`
//! (default 5) together bound getting a connection; `query_timeout` (default
//! 10) bounds each operation's statements. A connection whose statement timed
//! out is dropped, never reused.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::future::Future;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use mysql_async::prelude::Queryable;
use mysql_async::{
    Conn, IsolationLevel, Opts, OptsBuilder, Pool, PoolConstraints, PoolOpts, SslOpts, Transaction,
    TxOpts, Value,
};
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

use crate::params::{percent_decode, take_params};
use crate::store::{
    check_table_name, is_valid_session_key, new_session_key, KeyRange, LockedBatch, LockedScan,
    Lower, PurgeFrom, Purged, RowCounts, SessionRecord, Store, StoreError, Swap, UserTable,
    PURGE_BATCH,
};
use crate::timeouts::Timeouts;

const BACKEND: &str = "mysql";
/// Fresh keys tried by `create` before giving up.
const CREATE_ATTEMPTS: usize = 10;
/// Rows per statement in a batch of compare-and-swaps or an id lookup
/// (three placeholders a row stays far below MySQL's 65,535).
const CHUNK: usize = 1000;
/// How long a pooled connection may sit unused before it is closed.
const IDLE_CONNECTION_TTL: Duration = Duration::from_secs(60);
/// MySQL's error number for a duplicate primary key.
const ER_DUP_ENTRY: u16 = 1062;

/// Runs `$body` (statements on `$c`, a pooled connection) under the query
/// timeout. A connection whose statements timed out is dropped with the
/// future, not returned in a clean state, so the pool does not reuse it.
macro_rules! timed {
    ($self:ident, $c:ident, $body:expr) => {{
        timed!($self, $self.timeouts.query, $c, $body)
    }};
    ($self:ident, $limit:expr, $c:ident, $body:expr) => {{
        #[allow(unused_mut)]
        let mut $c = $self.conn().await?;
        within(&$self.timeouts, $limit, typed(async move { $body })).await
    }};
}

/// Pins an async block's output to `Result<T, StoreError>` (so `?` infers).
fn typed<T, F: Future<Output = Result<T, StoreError>>>(f: F) -> F {
    f
}

/// A session store in a MySQL or MariaDB table (Django's `django_session` layout).
pub struct MysqlStore {
    pool: Pool,
    table: String,
    sql: Sql,
    /// Per users table: is its `id` column an integer type?
    id_types: Mutex<HashMap<String, bool>>,
    /// Is the table Django's own three-column layout, with no triggers?
    /// (Found out once; see `swap_chunk`.)
    plain_layout: OnceLock<bool>,
    /// May a transaction that writes run under `READ COMMITTED`? Not where
    /// the server logs statements (`log_bin` with `binlog_format =
    /// STATEMENT`): it refuses InnoDB writes at that level (error 1665).
    read_committed: OnceLock<bool>,
    timeouts: Timeouts,
}

/// The statements, with the (checked, quoted) table name in place.
struct Sql {
    create_table: String,
    create_index: String,
    load: String,
    insert: String,
    upsert: String,
    update: String,
    delete: String,
    cas: String,
    purge_keys: String,
    purge_range: String,
    select: String,
    select_locked: String,
    plain_layout: &'static str,
    quoted: String,
}

impl Sql {
    fn new(table: &str) -> Self {
        let t = format!("`{table}`");
        Self {
            create_table: format!(
                "CREATE TABLE IF NOT EXISTS {t} (`session_key` varchar(40) NOT NULL PRIMARY KEY, \
                 `session_data` longtext NOT NULL, `expire_date` datetime(6) NOT NULL)"
            ),
            create_index: format!("CREATE INDEX `{table}_expire_date_idx` ON {t} (`expire_date`)"),
            load: format!(
                "SELECT session_data, expire_date FROM {t} WHERE session_key = ? AND expire_date > ?"
            ),
            insert: format!("INSERT INTO {t} (session_key, session_data, expire_date) VALUES (?, ?, ?)"),
            upsert: format!(
                "INSERT INTO {t} (session_key, session_data, expire_date) VALUES (?, ?, ?) \
                 ON DUPLICATE KEY UPDATE session_data = VALUES(session_data), \
                 expire_date = VALUES(expire_date)"
            ),
            update: format!("UPDATE {t} SET session_data = ?, expire_date = ? WHERE session_key = ?"),
            delete: format!("DELETE FROM {t} WHERE session_key = ?"),
            cas: format!(
                "UPDATE {t} SET session_data = ? WHERE session_key = ? \
                 AND CAST(session_data AS BINARY) = CAST(? AS BINARY)"
            ),
            // The batch: how many expired keys there are, up to the limit, in
            // primary-key order from where the last batch ended, and the
            // first and last of them. InnoDB stores rows in that order, so a
            // purge reads the table sequentially, once (as one big DELETE
            // does), and never steps over its own delete-marked records
            // again; then the expired rows of that key range are deleted, one
            // range of the primary key (not one lookup a key).
            purge_keys: format!(
                "SELECT COUNT(*), MIN(session_key), MAX(session_key) FROM \
                 (SELECT session_key FROM {t} WHERE session_key > ? AND expire_date <= ? \
                 ORDER BY session_key LIMIT ?) AS batch"
            ),
            purge_range: format!(
                "DELETE FROM {t} WHERE session_key >= ? AND session_key <= ? AND expire_date <= ?"
            ),
            select: format!("SELECT session_key, session_data, expire_date FROM {t}"),
            // In key order through the primary key: on a small table the
            // optimizer may take the expiry index and sort, which would lock
            // every live row to return a page.
            select_locked: format!(
                "SELECT session_key, session_data, expire_date FROM {t} FORCE INDEX (PRIMARY)"
            ),
            // Three columns, by Django's names; `session_key` alone the
            // primary key; no triggers (an upsert fires the insert ones).
            plain_layout: "SELECT \
                 (SELECT COUNT(*) FROM information_schema.columns \
                  WHERE table_schema = DATABASE() AND table_name = ?) = 3 \
                 AND (SELECT COUNT(*) FROM information_schema.columns \
                  WHERE table_schema = DATABASE() AND table_name = ? \
                  AND column_name IN ('session_key', 'session_data', 'expire_date')) = 3 \
                 AND (SELECT GROUP_CONCAT(column_name) FROM information_schema.statistics \
                  WHERE table_schema = DATABASE() AND table_name = ? \
                  AND index_name = 'PRIMARY') = 'session_key' \
                 AND (SELECT COUNT(*) FROM information_schema.triggers \
                  WHERE event_object_schema = DATABASE() AND event_object_table = ?) = 0",
            quoted: t,
        }
    }
}

impl fmt::Debug for MysqlStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MysqlStore")
            .field("table", &self.table)
            .field("timeouts", &self.timeouts)
            .finish_non_exhaustive()
    }
}

impl MysqlStore {
    /// Connects to `url` (`mysql://user:password@host:3306/db?…`; `mariadb://`
    /// and `mysql2://` are taken as the same), sessions in `table`, with up
    /// to `pool_size` connections. Checks the server is reachable; does not
    /// create the table (see [`Store::ensure_schema`]).
    ///
    /// The URL may set `connect_timeout`, `pool_timeout` and `query_timeout`
    /// in seconds (see [`crate::open_store`]); TLS as MySQL's client options
    /// say it: `ssl-mode=REQUIRED|VERIFY_CA|VERIFY_IDENTITY|DISABLED` and
    /// `ssl-ca=/path/ca.pem` (rustls; see `take_tls_from_url` in the source);
    /// and the driver's own parameters (`require_ssl`, `prefer_socket`, …).
    ///
    /// # Errors
    /// [`StoreError::BadTableName`]; [`StoreError::Backend`] for a URL that
    /// does not parse or a bad timeout; [`StoreError::Unavailable`] for a
    /// server that cannot be reached.
    pub async fn connect(url: &str, table: &str, pool_size: usize) -> Result<Self, StoreError> {
        check_table_name(table)?;
        let url = normalize_scheme(url);
        let (url, timeouts) = Timeouts::take_from_url(BACKEND, &url)?;
        let (url, tls) = take_tls_from_url(&url)?;
        // The URL may hold a password: never echo it or the parser's take on it.
        let opts = Opts::from_url(&url).map_err(|e| {
            StoreError::backend(
                BACKEND,
                format_args!("invalid MySQL URL: {}", url_problem(&e)),
            )
        })?;
        let constraints = PoolConstraints::new(0, pool_size.max(1))
            .ok_or_else(|| StoreError::backend(BACKEND, "invalid pool size"))?;
        let opts = OptsBuilder::from_opts(opts)
            .client_found_rows(true)
            // Idle connections are kept (mysql_async's default TTL of zero
            // keeps none above the pool's minimum, here 0: every operation
            // would connect and log in again) and closed after a minute
            // unused. keyroll changes no session state, and mysql_async rolls
            // back a transaction a dropped connection left open: a connection
            // back in the pool is not reset, so it keeps its prepared
            // statements (a reset drops them: every statement was prepared
            // again, a round trip and a parse of a 1,000-row batch each time).
            .pool_opts(
                PoolOpts::default()
                    .with_constraints(constraints)
                    .with_inactive_connection_ttl(IDLE_CONNECTION_TTL)
                    .with_reset_connection(false),
            )
            .tcp_keepalive(Some(
                u32::try_from(timeouts.query.as_millis()).unwrap_or(u32::MAX),
            ));
        let opts = match tls {
            Tls::Driver => opts,
            Tls::Off => opts.ssl_opts(None),
            Tls::On(ssl) => opts.ssl_opts(Some(ssl)),
        };
        let store = Self::with_pool(Pool::new(opts), table, timeouts)?;
        drop(store.conn().await?);
        Ok(store)
    }

    /// A store over the application's own pool, sessions in `table`. The
    /// pool's options must set `client_found_rows(true)` (an update that
    /// writes the same values must count the row it matched); `timeouts`
    /// bound getting a connection and each statement. Connects lazily.
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
            plain_layout: OnceLock::new(),
            read_committed: OnceLock::new(),
            timeouts,
        })
    }

    /// The table sessions are kept in.
    pub fn table(&self) -> &str {
        &self.table
    }

    async fn conn(&self) -> Result<Conn, StoreError> {
        self.pooled(self.pool.get_conn()).await
    }

    /// A connection (or a transaction on one) from the pool, given
    /// `connect_timeout + pool_timeout`.
    async fn pooled<T>(
        &self,
        get: impl Future<Output = Result<T, mysql_async::Error>>,
    ) -> Result<T, StoreError> {
        let wait = self.timeouts.connect.saturating_add(self.timeouts.pool);
        match tokio::time::timeout(wait, get).await {
            Ok(r) => r.map_err(my_err),
            Err(_) => Err(timed_out(
                "connect_timeout + pool_timeout (no connection: the server does not answer, or every pooled connection is busy)",
                wait,
            )),
        }
    }

    /// Is `id` of this users table an integer column? (Cached.)
    async fn integer_ids(&self, conn: &mut Conn, users_table: &str) -> Result<bool, StoreError> {
        if let Some(known) = self.id_types_get(users_table) {
            return Ok(known);
        }
        let kind: Option<String> = conn
            .exec_first(
                "SELECT CAST(DATA_TYPE AS CHAR) FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND COLUMN_NAME = 'id'",
                (users_table,),
            )
            .await
            .map_err(my_err)?;
        let Some(kind) = kind else {
            return Err(StoreError::backend(
                BACKEND,
                "the users table has no id column",
            ));
        };
        let integer = matches!(
            kind.to_ascii_lowercase().as_str(),
            "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint"
        );
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

    /// May writes run under `READ COMMITTED` here (see the field)? Asked
    /// once on `conn` and remembered.
    async fn read_committed(&self, conn: &mut Conn) -> Result<bool, StoreError> {
        if let Some(known) = self.read_committed.get() {
            return Ok(*known);
        }
        let statement_log: Option<bool> = conn
            .query_first("SELECT @@log_bin = 1 AND @@SESSION.binlog_format = 'STATEMENT'")
            .await
            .map_err(my_err)?;
        let ok = !statement_log.unwrap_or(false);
        Ok(*self.read_committed.get_or_init(|| ok))
    }

    /// Is the table Django's own layout (see `Sql::plain_layout`)? Asked
    /// once on `conn` and remembered.
    async fn plain_layout(&self, conn: &mut Conn) -> Result<bool, StoreError> {
        if let Some(known) = self.plain_layout.get() {
            return Ok(*known);
        }
        let t = self.table.as_str();
        let plain: Option<Option<bool>> = conn
            .exec_first(self.sql.plain_layout, (t, t, t, t))
            .await
            .map_err(my_err)?;
        let plain = plain.flatten().unwrap_or(false);
        Ok(*self.plain_layout.get_or_init(|| plain))
    }

    /// One chunk of swaps with distinct keys, in one transaction: the rows
    /// are locked and read, compared here byte for byte, and the matching
    /// ones rewritten by one statement.
    async fn swap_chunk(&self, swaps: &[Swap]) -> Result<Vec<bool>, StoreError> {
        let marks = placeholders(swaps.len());
        let select = format!(
            "SELECT session_key, session_data FROM {} WHERE session_key IN ({marks}) FOR UPDATE",
            self.sql.quoted
        );
        timed!(self, conn, {
            let plain = self.plain_layout(&mut conn).await?;
            let mut tx = conn
                .start_transaction(TxOpts::default())
                .await
                .map_err(my_err)?;
            let keys: Vec<Value> = swaps.iter().map(|s| Value::from(&s.key)).collect();
            let rows: Vec<(String, Vec<u8>)> = tx.exec(&select, keys).await.map_err(my_err)?;
            let current: HashMap<String, Vec<u8>> = rows.into_iter().collect();
            let applied: Vec<bool> = swaps
                .iter()
                .map(|s| {
                    current
                        .get(&s.key)
                        .is_some_and(|d| d.as_slice() == s.expected.as_bytes())
                })
                .collect();
            // A winner whose new data is what it holds is applied already.
            let winners: Vec<&Swap> = swaps
                .iter()
                .zip(&applied)
                .filter_map(|(s, ok)| (*ok && s.new != s.expected).then_some(s))
                .collect();
            if let Err(e) = rewrite_locked(&mut tx, &self.sql.quoted, plain, &winners).await {
                // The error is the one to report, not the rollback's.
                let _ = tx.rollback().await;
                return Err(e);
            }
            tx.commit().await.map_err(my_err)?;
            Ok(applied)
        })
    }

    /// A key-order scan page's statement and arguments, live rows only when
    /// `live_at` is given.
    fn scan_sql(
        &self,
        select: &str,
        range: &KeyRange,
        after: Option<&str>,
        limit: usize,
        live_at: Option<OffsetDateTime>,
    ) -> (String, Vec<Value>) {
        let (lower, upper) = range.page_bounds(after);
        let mut sql = select.to_owned();
        let mut args: Vec<Value> = Vec::with_capacity(4);
        let mut clauses = Vec::with_capacity(3);
        if let Some(now) = live_at {
            args.push(to_value(now));
            clauses.push("expire_date > ?");
        }
        match lower {
            Lower::None => {}
            Lower::After(k) => {
                args.push(Value::from(k));
                clauses.push("session_key > ?");
            }
            Lower::From(k) => {
                args.push(Value::from(k));
                clauses.push("session_key >= ?");
            }
        }
        if let Some(end) = upper {
            args.push(Value::from(end));
            clauses.push("session_key < ?");
        }
        if !clauses.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&clauses.join(" AND "));
        }
        args.push(Value::from(u64::try_from(limit).unwrap_or(u64::MAX)));
        sql.push_str(" ORDER BY session_key LIMIT ?");
        (sql, args)
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
        let (sql, args) = self.scan_sql(&self.sql.select, range, after, limit, live_at);
        timed!(self, conn, {
            let rows: Vec<(String, String, Value)> = conn.exec(&sql, args).await.map_err(my_err)?;
            rows.into_iter().map(record).collect()
        })
    }

    /// One swap at a time, in one transaction (a batch that names a key twice).
    async fn swap_each(&self, swaps: &[Swap]) -> Result<Vec<bool>, StoreError> {
        timed!(self, conn, {
            let mut tx = conn
                .start_transaction(TxOpts::default())
                .await
                .map_err(my_err)?;
            let mut out = Vec::with_capacity(swaps.len());
            for s in swaps {
                tx.exec_drop(&self.sql.cas, (&s.new, &s.key, &s.expected))
                    .await
                    .map_err(my_err)?;
                out.push(tx.affected_rows() == 1);
            }
            tx.commit().await.map_err(my_err)?;
            Ok(out)
        })
    }
}

/// What a URL says about TLS.
#[derive(Debug)]
enum Tls {
    /// No `ssl-mode`: the driver's own parameters (`require_ssl`, …) decide.
    Driver,
    /// `ssl-mode=DISABLED`.
    Off,
    /// Encrypted, checked as the mode says.
    On(SslOpts),
}

/// Takes MySQL's client TLS options out of a URL's query string, as
/// `mysql --ssl-mode/--ssl-ca` and Django's `OPTIONS["ssl"]` users write them:
/// `ssl-mode` (or `ssl_mode`, `sslmode`) = `DISABLED`, `REQUIRED`
/// (encrypted, certificate not checked unless a CA is given, as MySQL's
/// client does), `VERIFY_CA` and `VERIFY_IDENTITY` (chain and host name:
/// see below); libpq's `disable`, `require`, `verify-ca`, `verify-full` mean
/// the same. `ssl-ca` (or `ssl_ca`, `sslrootcert`) = a PEM file of the CA to
/// trust (instead of the built-in web roots). `PREFERRED` is refused: this
/// driver cannot fall back to plain text, and a silent downgrade is what
/// the setting is for avoiding.
fn take_tls_from_url(url: &str) -> Result<(String, Tls), StoreError> {
    const MODE: [&str; 3] = ["ssl-mode", "ssl_mode", "sslmode"];
    const CA: [&str; 3] = ["ssl-ca", "ssl_ca", "sslrootcert"];
    let names: Vec<&'static str> = MODE.iter().chain(&CA).copied().collect();
    let (rest, taken) = take_params(BACKEND, url, &names)?;
    let (mut mode, mut ca): (Option<String>, Option<String>) = (None, None);
    for (name, value) in taken {
        // Spellings of one setting count as the same parameter.
        let slot = if MODE.contains(&name) {
            &mut mode
        } else {
            &mut ca
        };
        if slot.is_some() {
            return Err(StoreError::backend(
                BACKEND,
                format_args!("URL parameter {name} is given twice"),
            ));
        }
        *slot = Some(percent_decode(&value).ok_or_else(|| {
            StoreError::backend(BACKEND, format_args!("URL parameter {name}: bad escape"))
        })?);
    }
    let verify = |ssl: SslOpts, ca: Option<String>| match ca {
        // Only the given CA: the built-in web roots would accept any public certificate.
        Some(path) => ssl
            .with_root_certs(vec![std::path::PathBuf::from(path).into()])
            .with_disable_built_in_roots(true),
        None => ssl,
    };
    let tls = match mode.as_deref().map(str::to_ascii_uppercase).as_deref() {
        None if ca.is_none() => Tls::Driver,
        Some("DISABLED" | "DISABLE") if ca.is_none() => Tls::Off,
        Some("REQUIRED" | "REQUIRE") if ca.is_none() => Tls::On(
            SslOpts::default()
                .with_danger_accept_invalid_certs(true)
                .with_danger_skip_domain_validation(true),
        ),
        // A CA given with REQUIRED (or alone) checks the chain, as MySQL's
        // client does. VERIFY_CA checks the host name too: the driver's
        // "skip the host name" switch does not recognise current rustls'
        // name-mismatch error, so it cannot be honoured; stricter, never laxer.
        None
        | Some(
            "REQUIRED" | "REQUIRE" | "VERIFY_CA" | "VERIFY-CA" | "VERIFY_IDENTITY" | "VERIFY-FULL",
        ) => Tls::On(verify(SslOpts::default(), ca)),
        Some("DISABLED" | "DISABLE") => {
            return Err(StoreError::backend(
                BACKEND,
                "ssl-mode=DISABLED with ssl-ca: say which one you mean",
            ))
        }
        Some("PREFERRED" | "PREFER") => {
            return Err(StoreError::backend(
                BACKEND,
                "ssl-mode=PREFERRED is not supported (no silent fall back to plain text): \
                 use REQUIRED, VERIFY_CA, VERIFY_IDENTITY or DISABLED",
            ))
        }
        Some(_) => {
            return Err(StoreError::backend(
                BACKEND,
                "unknown ssl-mode: use DISABLED, REQUIRED, VERIFY_CA or VERIFY_IDENTITY",
            ))
        }
    };
    Ok((rest, tls))
}

/// `mariadb://` and `mysql2://` (dj-database-url's spellings) as `mysql://`.
fn normalize_scheme(url: &str) -> String {
    for alias in ["mariadb://", "mysql2://"] {
        if let Some(rest) = url.strip_prefix(alias) {
            return format!("mysql://{rest}");
        }
    }
    url.to_owned()
}

/// What is wrong with a URL, without any value from it.
fn url_problem(e: &mysql_async::UrlError) -> String {
    use mysql_async::UrlError as U;
    match e {
        U::UnknownParameter { param } => format!("unknown parameter {param:?}"),
        U::InvalidParamValue { param, .. } => format!("invalid value for {param:?}"),
        U::UnsupportedScheme { .. } => "not a mysql:// URL".to_owned(),
        U::Invalid => "it does not parse".to_owned(),
        _ => "it does not parse".to_owned(),
    }
}

/// `?, ?, …` for `n` values.
fn placeholders(n: usize) -> String {
    let mut s = String::with_capacity(n * 3);
    for i in 0..n {
        if i > 0 {
            s.push_str(", ");
        }
        s.push('?');
    }
    s
}

/// A driver error, without what a server message may quote (row values,
/// such as the session key of a duplicate entry).
fn my_err(e: mysql_async::Error) -> StoreError {
    use mysql_async::Error as E;
    match e {
        E::Server(s) if s.code == ER_DUP_ENTRY => StoreError::backend(
            BACKEND,
            format_args!("duplicate entry (error {}, SQLSTATE {})", s.code, s.state),
        ),
        E::Server(s) => StoreError::backend(
            BACKEND,
            format_args!("{} (error {}, SQLSTATE {})", s.message, s.code, s.state),
        ),
        E::Io(e) => StoreError::unavailable(BACKEND, e),
        E::Driver(e) => StoreError::unavailable(BACKEND, e),
        E::Url(e) => StoreError::backend(
            BACKEND,
            format_args!("invalid MySQL URL: {}", url_problem(&e)),
        ),
        other => StoreError::backend(BACKEND, other),
    }
}

/// An instant as the naive UTC `DATETIME(6)` Django writes (microseconds).
fn to_value(t: OffsetDateTime) -> Value {
    let t = t.to_offset(UtcOffset::UTC);
    Value::Date(
        u16::try_from(t.year()).unwrap_or(0),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond(),
    )
}

/// A `DATETIME` read back, as UTC.
fn from_value(v: Value) -> Result<OffsetDateTime, StoreError> {
    let bad = || StoreError::backend(BACKEND, "unreadable expire_date value");
    match v {
        Value::Date(y, mo, d, h, mi, s, us) => {
            let date =
                Date::from_calendar_date(i32::from(y), Month::try_from(mo).map_err(|_| bad())?, d)
                    .map_err(|_| bad())?;
            let time = Time::from_hms_micro(h, mi, s, us).map_err(|_| bad())?;
            Ok(PrimitiveDateTime::new(date, time).assume_utc())
        }
        Value::Bytes(b) => std::str::from_utf8(&b)
            .ok()
            .and_then(crate::datetime::parse_datetime)
            .ok_or_else(bad),
        _ => Err(bad()),
    }
}

/// A time-out's error: what ran out, after how long.
fn timed_out(what: &str, after: Duration) -> StoreError {
    StoreError::unavailable(
        BACKEND,
        format_args!("timed out after {:.1} s: {what}", after.as_secs_f64()),
    )
}

/// `work`, given at most `limit` (a query time-out, named as `timeouts` has it).
async fn within<T>(
    timeouts: &Timeouts,
    limit: Duration,
    work: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(limit, work).await {
        Ok(r) => r,
        Err(_) => Err(timed_out(timeouts.name_of(limit), limit)),
    }
}

/// Rewrites rows `tx` holds locked, [`CHUNK`] a statement: on Django's
/// plain layout by `INSERT … ON DUPLICATE KEY UPDATE` (an error unless every
/// row counts as updated, none inserted: the caller then rolls back), else
/// by `UPDATE … CASE session_key`.
async fn rewrite_locked(
    tx: &mut Transaction<'_>,
    quoted: &str,
    plain: bool,
    winners: &[&Swap],
) -> Result<(), StoreError> {
    for winners in winners.chunks(CHUNK) {
        if plain {
            let mut sql =
                format!("INSERT INTO {quoted} (session_key, session_data, expire_date) VALUES ");
            let mut args: Vec<Value> = Vec::with_capacity(winners.len() * 2);
            for (i, w) in winners.iter().enumerate() {
                // The date is never stored: every key is a locked row.
                sql.push_str(if i == 0 { "" } else { "," });
                sql.push_str("(?, ?, '1970-01-02')");
                args.push(Value::from(&w.key));
                args.push(Value::from(&w.new));
            }
            sql.push_str(" ON DUPLICATE KEY UPDATE session_data = VALUES(session_data)");
            tx.exec_drop(&sql, args).await.map_err(my_err)?;
            // Two a row updated, one a row inserted.
            let updated = tx.affected_rows();
            if updated != 2 * winners.len() as u64 {
                return Err(StoreError::backend(
                    BACKEND,
                    format_args!(
                        "a batch rewrite of {} locked rows reported {updated} rows \
                         affected instead of {}; rolled back",
                        winners.len(),
                        2 * winners.len()
                    ),
                ));
            }
        } else {
            let mut sql = format!("UPDATE {quoted} SET session_data = CASE session_key");
            let mut args: Vec<Value> = Vec::with_capacity(winners.len() * 3);
            for w in winners {
                sql.push_str(" WHEN ? THEN ?");
                args.push(Value::from(&w.key));
                args.push(Value::from(&w.new));
            }
            sql.push_str(&format!(
                " END WHERE session_key IN ({})",
                placeholders(winners.len())
            ));
            args.extend(winners.iter().map(|w| Value::from(&w.key)));
            tx.exec_drop(&sql, args).await.map_err(my_err)?;
        }
    }
    Ok(())
}

/// A scanned page's rows, locked by the open transaction that read them.
struct MysqlLocked {
    tx: Transaction<'static>,
    quoted: String,
    plain: bool,
    timeouts: Timeouts,
}

#[async_trait]
impl LockedBatch for MysqlLocked {
    async fn write(self: Box<Self>, swaps: &[Swap]) -> Result<(), StoreError> {
        let Self {
            mut tx,
            quoted,
            plain,
            timeouts,
        } = *self;
        let winners: Vec<&Swap> = swaps.iter().filter(|s| s.new != s.expected).collect();
        within(&timeouts, timeouts.query, async move {
            if let Err(e) = rewrite_locked(&mut tx, &quoted, plain, &winners).await {
                let _ = tx.rollback().await;
                return Err(e);
            }
            tx.commit().await.map_err(my_err)
        })
        .await
    }
}

/// Under `READ COMMITTED`: the page's rows are locked, not the gaps between
/// them (new sessions go on being created in its key range) nor the expired
/// rows the scan stepped over. Where the server logs statements (which
/// refuses that level), under its own: the page's key range is locked too,
/// new sessions in it wait for the batch.
#[async_trait]
impl LockedScan for MysqlStore {
    async fn scan_locked(
        &self,
        range: &KeyRange,
        after: Option<&str>,
        limit: usize,
        live_at: Option<OffsetDateTime>,
    ) -> Result<(Vec<SessionRecord>, Box<dyn LockedBatch>), StoreError> {
        let (plain, read_committed) = match (self.plain_layout.get(), self.read_committed.get()) {
            (Some(p), Some(r)) => (*p, *r),
            _ => timed!(self, conn, {
                Ok((
                    self.plain_layout(&mut conn).await?,
                    self.read_committed(&mut conn).await?,
                ))
            })?,
        };
        let (mut sql, args) =
            self.scan_sql(&self.sql.select_locked, range, after, limit.max(1), live_at);
        sql.push_str(" FOR UPDATE");
        let mut opts = TxOpts::default();
        if read_committed {
            opts.with_isolation_level(IsolationLevel::ReadCommitted);
        }
        let mut tx = self.pooled(self.pool.start_transaction(opts)).await?;
        let read = tx.exec::<(String, String, Value), _, _>(&sql, args);
        let rows = within(&self.timeouts, self.timeouts.query, async {
            read.await.map_err(my_err)
        })
        .await?;
        let rows = rows
            .into_iter()
            .map(record)
            .collect::<Result<Vec<_>, _>>()?;
        let batch = MysqlLocked {
            tx,
            quoted: self.sql.quoted.clone(),
            plain,
            timeouts: self.timeouts,
        };
        Ok((rows, Box::new(batch)))
    }
}

fn record(row: (String, String, Value)) -> Result<SessionRecord, StoreError> {
    let (key, data, expires) = row;
    Ok(SessionRecord {
        key,
        data,
        expires: from_value(expires)?,
    })
}

#[async_trait]
impl Store for MysqlStore {
    fn user_table(&self) -> Option<&dyn UserTable> {
        Some(self)
    }

    fn locked_scan(&self) -> Option<&dyn LockedScan> {
        Some(self)
    }

    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn ensure_schema(&self) -> Result<(), StoreError> {
        timed!(self, conn, {
            // Serialize concurrent ensure_schema calls: the index check races otherwise.
            let lock = format!("keyroll_schema_{}", self.table);
            let got: Option<Option<i64>> = conn
                .exec_first("SELECT GET_LOCK(?, 10)", (&lock,))
                .await
                .map_err(my_err)?;
            if got.flatten() != Some(1) {
                return Err(StoreError::unavailable(
                    BACKEND,
                    "timed out waiting for the schema lock",
                ));
            }
            let outcome = async {
                conn.query_drop(&self.sql.create_table)
                    .await
                    .map_err(my_err)?;
                // A table Django made has its own index on expire_date: don't add a second.
                let indexed: Option<i64> = conn
                    .exec_first(
                        "SELECT COUNT(*) FROM information_schema.STATISTICS \
                         WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? \
                         AND COLUMN_NAME = 'expire_date' AND SEQ_IN_INDEX = 1",
                        (&self.table,),
                    )
                    .await
                    .map_err(my_err)?;
                if indexed.unwrap_or(0) == 0 {
                    conn.query_drop(&self.sql.create_index)
                        .await
                        .map_err(my_err)?;
                }
                Ok(())
            }
            .await;
            let _ = conn.exec_drop("SELECT RELEASE_LOCK(?)", (&lock,)).await;
            outcome
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
        timed!(self, conn, {
            let row: Option<(String, Value)> = conn
                .exec_first(&self.sql.load, (key, to_value(now)))
                .await
                .map_err(my_err)?;
            match row {
                None => Ok(None),
                Some((data, expires)) => Ok(Some(SessionRecord {
                    key: key.to_owned(),
                    data,
                    expires: from_value(expires)?,
                })),
            }
        })
    }

    async fn create(&self, data: &str, expires: OffsetDateTime) -> Result<String, StoreError> {
        timed!(self, conn, {
            for _ in 0..CREATE_ATTEMPTS {
                let key = new_session_key();
                match conn
                    .exec_drop(&self.sql.insert, (&key, data, to_value(expires)))
                    .await
                {
                    Ok(()) => return Ok(key),
                    // A taken key: try another.
                    Err(mysql_async::Error::Server(s)) if s.code == ER_DUP_ENTRY => continue,
                    Err(e) => return Err(my_err(e)),
                }
            }
            Err(StoreError::KeyExhausted)
        })
    }

    async fn save(&self, record: &SessionRecord) -> Result<(), StoreError> {
        if !is_valid_session_key(&record.key) {
            return Err(StoreError::InvalidKey);
        }
        timed!(self, conn, {
            conn.exec_drop(
                &self.sql.upsert,
                (&record.key, &record.data, to_value(record.expires)),
            )
            .await
            .map_err(my_err)
        })
    }

    async fn update(&self, record: &SessionRecord) -> Result<bool, StoreError> {
        if !is_valid_session_key(&record.key) {
            return Err(StoreError::InvalidKey);
        }
        timed!(self, conn, {
            conn.exec_drop(
                &self.sql.update,
                (&record.data, to_value(record.expires), &record.key),
            )
            .await
            .map_err(my_err)?;
            Ok(conn.affected_rows() == 1)
        })
    }

    async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        timed!(self, conn, {
            conn.exec_drop(&self.sql.delete, (key,))
                .await
                .map_err(my_err)?;
            Ok(conn.affected_rows() == 1)
        })
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: &str,
        new: &str,
    ) -> Result<bool, StoreError> {
        timed!(self, conn, {
            conn.exec_drop(&self.sql.cas, (new, key, expected))
                .await
                .map_err(my_err)?;
            Ok(conn.affected_rows() == 1)
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
            return self.swap_each(swaps).await;
        }
        let mut out = Vec::with_capacity(swaps.len());
        for chunk in swaps.chunks(CHUNK) {
            out.extend(self.swap_chunk(chunk).await?);
        }
        Ok(out)
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
        // The whole table: each count a covering range scan of the expire_date index.
        let keys = "(? IS NULL OR session_key >= ?) AND (? IS NULL OR session_key < ?)";
        let (live, expired) = (
            format!(
                "SELECT COUNT(*) FROM {} WHERE expire_date > ? AND {keys}",
                self.sql.quoted
            ),
            format!(
                "SELECT COUNT(*) FROM {} WHERE expire_date <= ? AND {keys}",
                self.sql.quoted
            ),
        );
        let (s, e) = (range.start.clone(), range.end.clone());
        let args = move || (to_value(now), s.clone(), s.clone(), e.clone(), e.clone());
        // Row counts get at least 10 minutes (`Timeouts::count`).
        timed!(self, self.timeouts.count(), conn, {
            let live: Option<u64> = conn.exec_first(&live, args()).await.map_err(my_err)?;
            let expired: Option<u64> = conn.exec_first(&expired, args()).await.map_err(my_err)?;
            Ok(RowCounts {
                live: live.unwrap_or(0),
                expired: expired.unwrap_or(0),
            })
        })
    }

    /// One statement, its own transaction under the query timeout: no long
    /// lock on the live table. At most [`PURGE_BATCH`] rows whatever the
    /// limit: on InnoDB larger batches only took longer (900,000 expired
    /// rows of 1M: 4.8 s in batches of 20,000, 5.7 s of 100,000, 6.7 s of
    /// 1,000,000).
    async fn purge_expired_batch(
        &self,
        now: OffsetDateTime,
        from: &PurgeFrom,
        limit: usize,
    ) -> Result<Purged, StoreError> {
        let after = match from {
            PurgeFrom::Key(k) => k.clone(),
            PurgeFrom::Done => return Ok(Purged::batch(0, 0, 1, PurgeFrom::Done)),
            _ => String::new(),
        };
        let want = limit.clamp(1, PURGE_BATCH);
        let limit = u64::try_from(want).unwrap_or(u64::MAX);
        timed!(self, conn, {
            let found: Option<(u64, Option<String>, Option<String>)> = conn
                .exec_first(&self.sql.purge_keys, (after, to_value(now), limit))
                .await
                .map_err(my_err)?;
            let Some((found, Some(first), Some(last))) = found else {
                return Ok(Purged::batch(0, 0, want, PurgeFrom::Done));
            };
            // Read committed for this one statement: the live rows between
            // the batch's expired ones are unlocked as soon as they are seen
            // not to match, instead of held until the delete ends. (Not
            // where the server refuses it: then they are held.)
            if self.read_committed(&mut conn).await? {
                conn.query_drop("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
                    .await
                    .map_err(my_err)?;
            }
            // Still expired at `now`: a row a user renewed meanwhile stays.
            conn.exec_drop(&self.sql.purge_range, (&first, &last, to_value(now)))
                .await
                .map_err(my_err)?;
            let deleted = conn.affected_rows();
            Ok(Purged::batch(
                deleted,
                usize::try_from(found).unwrap_or(usize::MAX),
                want,
                PurgeFrom::Key(last),
            ))
        })
    }
}

#[async_trait]
impl UserTable for MysqlStore {
    async fn password_hashes(
        &self,
        users_table: &str,
        ids: &[String],
    ) -> Result<HashMap<String, String>, StoreError> {
        check_table_name(users_table)?;
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        timed!(self, conn, {
            // An integer id column is matched as integers (MySQL would turn
            // "1x" into 1); anything else is compared as text.
            let integer = self.integer_ids(&mut conn, users_table).await?;
            let wanted: Vec<Value> = if integer {
                ids.iter()
                    .filter_map(|i| i.parse::<i64>().ok())
                    .map(Value::from)
                    .collect()
            } else {
                ids.iter().map(Value::from).collect()
            };
            let mut out = HashMap::with_capacity(wanted.len());
            for chunk in wanted.chunks(CHUNK) {
                let sql = format!(
                    "SELECT CAST(id AS CHAR), password FROM `{users_table}` WHERE id IN ({})",
                    placeholders(chunk.len())
                );
                let rows: Vec<(Option<String>, Option<String>)> =
                    conn.exec(&sql, chunk.to_vec()).await.map_err(my_err)?;
                for (id, password) in rows {
                    if let (Some(id), Some(password)) = (id, password) {
                        out.insert(id, password);
                    }
                }
            }
            Ok(out)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn datetimes_round_trip_as_utc_microseconds() {
        let t = datetime!(2030-01-02 03:04:05.123456789 +02:00);
        let back = from_value(to_value(t)).unwrap();
        assert_eq!(back, datetime!(2030-01-02 01:04:05.123456 UTC));
        assert_eq!(
            from_value(Value::Bytes(b"2030-01-02 03:04:05.000007".to_vec())).unwrap(),
            datetime!(2030-01-02 03:04:05.000007 UTC)
        );
        assert!(from_value(Value::Int(3)).is_err());
    }

    #[test]
    fn tls_parameters_are_taken_out_of_the_url() {
        let (rest, tls) = take_tls_from_url("mysql://u@h/db?a=1&ssl-mode=required&b=2").unwrap();
        assert_eq!(rest, "mysql://u@h/db?a=1&b=2");
        assert!(matches!(tls, Tls::On(ref o) if o.accept_invalid_certs()));
        let (rest, tls) =
            take_tls_from_url("mysql://u@h/db?ssl_mode=VERIFY_IDENTITY&ssl-ca=%2Ftmp%2Fca.pem")
                .unwrap();
        assert_eq!(rest, "mysql://u@h/db");
        let Tls::On(o) = tls else { panic!("{tls:?}") };
        assert!(!o.accept_invalid_certs() && !o.skip_domain_validation());
        assert!(o.disable_built_in_roots());
        let (_, tls) = take_tls_from_url("mysql://u@h/db?sslrootcert=ca.pem").unwrap();
        assert!(
            matches!(tls, Tls::On(ref o) if !o.skip_domain_validation() && !o.accept_invalid_certs())
        );
        assert!(matches!(
            take_tls_from_url("mysql://u@h/db?sslmode=disable")
                .unwrap()
                .1,
            Tls::Off
        ));
        assert!(matches!(
            take_tls_from_url("mysql://u@h/db?require_ssl=true").unwrap(),
            (ref r, Tls::Driver) if r == "mysql://u@h/db?require_ssl=true"
        ));
        for bad in [
            "mysql://u@h/db?ssl-mode=PREFERRED",
            "mysql://u@h/db?ssl-mode=maybe",
            "mysql://u@h/db?ssl-mode=REQUIRED&sslmode=REQUIRED",
            "mysql://u@h/db?ssl-mode=DISABLED&ssl-ca=x",
            "mysql://u@h/db?ssl-ca=%zz",
        ] {
            assert!(take_tls_from_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn aliases_and_placeholders() {
        assert_eq!(normalize_scheme("mariadb://u@h/db"), "mysql://u@h/db");
        assert_eq!(normalize_scheme("mysql2://u@h/db"), "mysql://u@h/db");
        assert_eq!(normalize_scheme("mysql://u@h/db"), "mysql://u@h/db");
        assert_eq!(placeholders(3), "?, ?, ?");
        assert_eq!(placeholders(0), "");
    }
}
