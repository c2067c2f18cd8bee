//! SQLite backend: Django's session table in a database file, WAL mode.
//!
//! rusqlite is synchronous, so every call runs on tokio's blocking pool.
//! Connections: one writer (every write goes through it, which is what
//! SQLite allows anyway) and a few readers (WAL lets them read while the
//! writer writes). Statements are prepared once per connection and cached.
//!
//! A table keyroll creates ([`Store::ensure_schema`]) has Django's columns,
//! types and index, stored `WITHOUT ROWID`: rows then sit in session-key
//! order, which is the order the bulk tools walk and write them in. On a
//! rowid table (what Django's migration creates) key order is random
//! physical order, and a bulk re-sign dirties about one page per row in
//! every batch; clustered, a batch dirties a few consecutive pages. Django
//! reads and writes either kind the same way.
//!
//! Values are stored exactly as Django (`USE_TZ = True`) stores them:
//! `expire_date` is TEXT `YYYY-MM-DD HH:MM:SS[.ffffff]` in UTC, the fraction
//! left out when it is zero. Comparisons with "now" are text comparisons
//! against `now` written with all six fraction digits, which orders correctly
//! against both forms.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::functions::FunctionFlags;
use rusqlite::types::ValueRef;
use rusqlite::{
    params, params_from_iter, Connection, ErrorCode, OptionalExtension, TransactionBehavior,
};
use time::OffsetDateTime;

use crate::store::{
    check_table_name, is_valid_session_key, new_session_key, KeyRange, Lower, PurgeFrom, Purged,
    RowCounts, SessionRecord, StorageOrder, Store, StoreError, Swap, UserTable,
};

use crate::datetime::{compare_datetime, django_datetime, parse_datetime};

const BACKEND: &str = "sqlite";
/// Reader connections besides the writer.
const READERS: usize = 4;
/// Fresh keys tried by `create` before giving up.
const CREATE_ATTEMPTS: usize = 10;
/// How long a connection waits for a lock held by another process.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Page cache of the writer, in KiB (SQLite's default is 2 MiB).
const WRITER_CACHE_KIB: i64 = 32 * 1024;
/// Page cache of each reader, in KiB (a reader's cache is dropped whenever
/// the writer commits, so a big one buys little).
const READER_CACHE_KIB: i64 = 8 * 1024;
/// Pages the write-ahead log may grow to during a purge before it is copied
/// into the database: a quarter of the database's pages, at least 65,536
/// (256 MiB of 4 KiB pages) and at most 1,048,576 (4 GiB). Each batch deletes
/// rows in rowid order, but their entries in the key and expiry indexes are
/// spread over those indexes: checkpointing after every batch copied the
/// same index pages back again and again (a 3M-row table, 2M rows expired:
/// 140 s with SQLite's 1000 pages, 99 s with this rule).
fn purge_wal_pages(database_pages: i64) -> i64 {
    (database_pages / 4).clamp(65_536, 1_048_576)
}
/// Page cache of the writer during a purge, in KiB: each batch rewrites
/// entries all over the key index (a 3M-row table's is some 130 MiB), and
/// with the writer's usual cache every batch read most of it back from the
/// file (a 3M-row table, 2M rows expired, 20,000-row batches: 26.7 s, 23.6 s
/// with this). Back to [`WRITER_CACHE_KIB`] when the purge is done.
const PURGE_CACHE_KIB: i64 = 128 * 1024;
/// SQLite's default: what every other commit of the writer checkpoints at.
const WAL_AUTOCHECKPOINT_PAGES: i64 = 1000;
/// Bound parameters per `IN (…)` list.
const IN_CHUNK: usize = 500;

/// A session store in an SQLite database file (Django's `django_session` layout).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use keyroll_store::{SqliteStore, Store};
/// let dir = tempfile::tempdir()?;
/// let store = SqliteStore::open(&dir.path().join("s.db"), "django_session")?;
/// store.ensure_schema().await?;
/// # Ok(()) }
/// ```
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    table: String,
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    sql: Sql,
    /// The swaps the writer's current `cas_range` statement applies.
    swapping: Arc<Mutex<SwapBatch>>,
}

/// The compare-and-swaps one `cas_range` statement applies, sorted by rowid:
/// what the writer connection's SQL functions `keyroll_swap_matches` and
/// `keyroll_swap_new` look rows up in.
#[derive(Default)]
struct SwapBatch {
    rows: Vec<PositionedSwap>,
}

struct PositionedSwap {
    rowid: i64,
    /// Where the swap is in the caller's list.
    index: usize,
    swap: Swap,
    /// The row at `rowid` held the swap's key and expected data.
    matched: bool,
}

impl SwapBatch {
    fn find(&mut self, rowid: i64) -> Option<&mut PositionedSwap> {
        let i = self.rows.binary_search_by_key(&rowid, |r| r.rowid).ok()?;
        self.rows.get_mut(i)
    }
}

/// Gives the writer connection the two functions `cas_range` calls for each
/// row of its rowid range: `keyroll_swap_matches(rowid, key, data)` is true
/// when the batch has a swap at that rowid expecting exactly that key and
/// data, and `keyroll_swap_new(rowid)` hands over that swap's new data.
/// Direct-only: a trigger or view in the database cannot call them.
fn add_swap_functions(conn: &Connection, batch: &Arc<Mutex<SwapBatch>>) -> Result<(), StoreError> {
    fn text_is(v: ValueRef<'_>, s: &str) -> bool {
        matches!(v, ValueRef::Text(t) if t == s.as_bytes())
    }
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DIRECTONLY;
    let b = Arc::clone(batch);
    conn.create_scalar_function("keyroll_swap_matches", 3, flags, move |ctx| {
        let rowid: i64 = ctx.get(0)?;
        let mut b = lock(&b);
        Ok(match b.find(rowid) {
            Some(r)
                if text_is(ctx.get_raw(1), &r.swap.key)
                    && text_is(ctx.get_raw(2), &r.swap.expected) =>
            {
                r.matched = true;
                true
            }
            _ => false,
        })
    })
    .map_err(db_err)?;
    let b = Arc::clone(batch);
    conn.create_scalar_function("keyroll_swap_new", 1, flags, move |ctx| {
        let rowid: i64 = ctx.get(0)?;
        let mut b = lock(&b);
        match b.find(rowid) {
            // Moved, not copied: SQLite copies the result into the row.
            Some(r) if r.matched => Ok(std::mem::take(&mut r.swap.new)),
            _ => Err(rusqlite::Error::UserFunctionError(
                "keyroll_swap_new: no matched swap at this rowid".into(),
            )),
        }
    })
    .map_err(db_err)
}

/// The statements, with the (checked, quoted) table name in place.
struct Sql {
    quoted: String,
    create_table: String,
    has_expiry_index: String,
    create_index: String,
    load: String,
    insert: String,
    upsert: String,
    update: String,
    delete: String,
    cas: String,
    cas_range: String,
    purge: String,
    purge_by_key: String,
    select: String,
}

impl Sql {
    fn new(table: &str) -> Self {
        let t = format!("\"{table}\"");
        Self {
            quoted: t.clone(),
            create_table: format!(
                "CREATE TABLE IF NOT EXISTS {t} (\"session_key\" varchar(40) NOT NULL PRIMARY KEY, \
                 \"session_data\" text NOT NULL, \"expire_date\" datetime NOT NULL) WITHOUT ROWID"
            ),
            has_expiry_index: "SELECT count(*) FROM pragma_index_list(?1) AS il, pragma_index_info(il.name) AS ii \
                               WHERE ii.seqno = 0 AND ii.name = 'expire_date'"
                .to_owned(),
            create_index: format!("CREATE INDEX IF NOT EXISTS \"{table}_expire_date_idx\" ON {t} (\"expire_date\")"),
            load: format!("SELECT session_data, expire_date FROM {t} WHERE session_key = ?1 AND expire_date > ?2"),
            insert: format!("INSERT INTO {t} (session_key, session_data, expire_date) VALUES (?1, ?2, ?3)"),
            upsert: format!(
                "INSERT INTO {t} (session_key, session_data, expire_date) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (session_key) DO UPDATE SET session_data = excluded.session_data, \
                 expire_date = excluded.expire_date"
            ),
            update: format!("UPDATE {t} SET session_data = ?2, expire_date = ?3 WHERE session_key = ?1"),
            delete: format!("DELETE FROM {t} WHERE session_key = ?1"),
            cas: format!("UPDATE {t} SET session_data = ?1 WHERE session_key = ?2 AND session_data = ?3"),
            // A batch of swaps by rowid in one statement: the rows of the
            // range (pages a scan just read) in rowid order, no descent of
            // the session_key index, no statement and bound copies per row.
            cas_range: format!(
                "UPDATE {t} SET session_data = keyroll_swap_new(rowid) \
                 WHERE rowid >= ?1 AND rowid <= ?2 AND keyroll_swap_matches(rowid, session_key, session_data)"
            ),
            // In rowid order from where the last batch ended: the table's
            // own pages, sequentially, once (as one big DELETE reads them).
            purge: format!(
                "DELETE FROM {t} WHERE rowid IN \
                 (SELECT rowid FROM {t} WHERE rowid > ?3 AND expire_date <= ?1 \
                 ORDER BY rowid LIMIT ?2) RETURNING rowid"
            ),
            // keyroll's own `WITHOUT ROWID` table: oldest expiry first, by key.
            purge_by_key: format!(
                "DELETE FROM {t} WHERE session_key IN \
                 (SELECT session_key FROM {t} WHERE expire_date <= ?1 \
                 ORDER BY expire_date LIMIT ?2)"
            ),
            select: format!("SELECT session_key, session_data, expire_date FROM {t}"),
        }
    }
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .field("table", &self.inner.table)
            .field("readers", &self.inner.readers.len())
            .finish()
    }
}

impl SqliteStore {
    /// Opens (creating the file if missing, but not the table: see
    /// [`Store::ensure_schema`]) the database at `path`, sessions in `table`.
    /// Sets WAL mode, `synchronous = NORMAL` and a 5 s busy timeout.
    ///
    /// Session keys are bearer credentials: a new database file is created
    /// with mode 0600 whatever the umask (SQLite gives its WAL and shared-memory
    /// files the database file's mode), and an existing one that others can
    /// read is logged as a warning.
    ///
    /// # Errors
    /// [`StoreError::BadTableName`], or [`StoreError::Backend`] when the file
    /// cannot be opened.
    pub fn open(path: &Path, table: &str) -> Result<Self, StoreError> {
        check_table_name(table)?;
        if !is_memory(path) {
            create_private(path)?;
        }
        let writer = connect(path, WRITER_CACHE_KIB)?;
        // A statement that changes many rows (`cas_range`, a purge batch)
        // keeps a journal of the pages it changed, to undo itself alone; in
        // memory (a batch's pages), not a temporary file made for each batch.
        writer
            .pragma_update(None, "temp_store", "MEMORY")
            .map_err(db_err)?;
        // After a checkpoint, a log a purge let grow is cut back to 64 MiB.
        writer
            .pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)
            .map_err(db_err)?;
        let swapping = Arc::new(Mutex::new(SwapBatch::default()));
        add_swap_functions(&writer, &swapping)?;
        let mode: String = writer
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(db_err)?;
        let memory = is_memory(path);
        if !mode.eq_ignore_ascii_case("wal") && !memory {
            tracing::warn!(journal_mode = %mode, "sqlite: WAL mode unavailable; readers will wait for writers");
        }
        // An in-memory database is private to its connection: no readers then.
        let readers = if memory {
            Vec::new()
        } else {
            (0..READERS)
                .map(|_| connect(path, READER_CACHE_KIB).map(Mutex::new))
                .collect::<Result<Vec<_>, _>>()?
        };
        Ok(Self {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                table: table.to_owned(),
                writer: Mutex::new(writer),
                readers,
                next_reader: AtomicUsize::new(0),
                sql: Sql::new(table),
                swapping,
            }),
        })
    }

    /// The table sessions are kept in.
    pub fn table(&self) -> &str {
        &self.inner.table
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
        let live = live_at.map(compare_datetime);
        self.run(move |inner| {
            let mut sql = inner.sql.select.clone();
            let mut args: Vec<String> = Vec::with_capacity(3);
            let mut clauses = Vec::with_capacity(3);
            if let Some(now) = live {
                clauses.push("expire_date > ?");
                args.push(now);
            }
            match lower {
                Lower::None => {}
                Lower::After(k) => {
                    clauses.push("session_key > ?");
                    args.push(k);
                }
                Lower::From(k) => {
                    clauses.push("session_key >= ?");
                    args.push(k);
                }
            }
            if let Some(end) = upper {
                clauses.push("session_key < ?");
                args.push(end);
            }
            if !clauses.is_empty() {
                sql.push_str(" WHERE ");
                sql.push_str(&clauses.join(" AND "));
            }
            sql.push_str(" ORDER BY session_key LIMIT ?");
            let conn = inner.reader();
            let mut stmt = conn.prepare_cached(&sql).map_err(db_err)?;
            let params = args
                .iter()
                .map(|a| rusqlite::types::Value::Text(a.clone()))
                .chain(std::iter::once(rusqlite::types::Value::Integer(limit)));
            let mut rows = stmt.query(params_from_iter(params)).map_err(db_err)?;
            let mut out = Vec::new();
            while let Some(r) = rows.next().map_err(db_err)? {
                let key: String = r.get(0).map_err(db_err)?;
                let data: String = r.get(1).map_err(db_err)?;
                let expires = expiry_of(r.get_ref(2).map_err(db_err)?)?;
                out.push(SessionRecord { key, data, expires });
            }
            Ok(out)
        })
        .await
    }

    /// Compare-and-swaps in one write transaction: the swaps with a rowid in
    /// one statement over their rowid range (the table pages a scan just
    /// read, no descent of the session_key index), each row still checked
    /// for its key and data; by key those with none and those not found at
    /// their rowid (a VACUUM may renumber rowids).
    async fn swap_in_one_transaction(
        &self,
        swaps: Vec<(Option<i64>, Swap)>,
    ) -> Result<Vec<bool>, StoreError> {
        if swaps.is_empty() {
            return Ok(Vec::new());
        }
        self.run(move |inner| {
            let mut conn = inner.writer();
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db_err)?;
            let mut out = vec![false; swaps.len()];
            let mut by_key = Vec::new();
            let mut positioned = Vec::new();
            for (index, (rowid, swap)) in swaps.into_iter().enumerate() {
                match rowid {
                    Some(rowid) => positioned.push(PositionedSwap {
                        rowid,
                        index,
                        swap,
                        matched: false,
                    }),
                    None => by_key.push((index, swap)),
                }
            }
            positioned.sort_by_key(|r| r.rowid);
            if let (Some(lo), Some(hi)) = (
                positioned.first().map(|r| r.rowid),
                positioned.last().map(|r| r.rowid),
            ) {
                let mut stmt = tx.prepare_cached(&inner.sql.cas_range).map_err(db_err)?;
                lock(&inner.swapping).rows = positioned;
                let ran = stmt.execute(params![lo, hi]);
                let done = std::mem::take(&mut lock(&inner.swapping).rows);
                ran.map_err(db_err)?;
                for r in done {
                    match out.get_mut(r.index) {
                        Some(ok) if r.matched => *ok = true,
                        _ => by_key.push((r.index, r.swap)),
                    }
                }
            }
            if !by_key.is_empty() {
                let mut stmt = tx.prepare_cached(&inner.sql.cas).map_err(db_err)?;
                for (index, s) in &by_key {
                    let n = stmt
                        .execute(params![s.new, s.key, s.expected])
                        .map_err(db_err)?;
                    if let Some(ok) = out.get_mut(*index) {
                        *ok = n == 1;
                    }
                }
            }
            tx.commit().map_err(db_err)?;
            Ok(out)
        })
        .await
    }

    /// Runs `f` on tokio's blocking pool.
    async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| {
                StoreError::Task(if e.is_cancelled() {
                    "sqlite: task cancelled"
                } else {
                    "sqlite: task panicked"
                })
            })?
    }
}

fn is_memory(path: &Path) -> bool {
    let s = path.as_os_str();
    s.is_empty()
        || s == ":memory:"
        || path
            .to_str()
            .is_some_and(|p| p.starts_with("file::memory:"))
}

/// Creates `path` empty with mode 0600 if it does not exist (an empty file is
/// an empty SQLite database); warns when an existing file is readable by
/// group or others.
#[cfg(unix)]
fn create_private(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            if let Ok(meta) = std::fs::metadata(path) {
                if meta.is_file() && meta.permissions().mode() & 0o077 != 0 {
                    tracing::warn!(
                        mode = format_args!("{:o}", meta.permissions().mode() & 0o777),
                        "sqlite: the session database is readable by other users \
                         (session keys are bearer credentials): chmod 600 it"
                    );
                }
            }
            Ok(())
        }
        Err(e) => Err(StoreError::backend(
            BACKEND,
            format_args!("cannot create the database file: {e}"),
        )),
    }
}

#[cfg(not(unix))]
fn create_private(_: &Path) -> Result<(), StoreError> {
    Ok(())
}

fn connect(path: &Path, cache_kib: i64) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(db_err)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(db_err)?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(db_err)?;
    conn.pragma_update(None, "cache_size", -cache_kib)
        .map_err(db_err)?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(conn)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a connection leaves no half-done transaction
    // behind (rusqlite rolls back on drop): the connection is still good.
    // A swap batch is set and taken whole around one statement.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Inner {
    fn writer(&self) -> MutexGuard<'_, Connection> {
        lock(&self.writer)
    }

    /// A reader connection: the first free one, else wait for one.
    fn reader(&self) -> MutexGuard<'_, Connection> {
        let n = self.readers.len();
        if n == 0 {
            return self.writer();
        }
        let start = self.next_reader.fetch_add(1, Ordering::Relaxed);
        for i in 0..n {
            if let Some(m) = self.readers.get((start + i) % n) {
                match m.try_lock() {
                    Ok(c) => return c,
                    Err(TryLockError::Poisoned(p)) => return p.into_inner(),
                    Err(TryLockError::WouldBlock) => {}
                }
            }
        }
        match self.readers.get(start % n) {
            Some(m) => lock(m),
            None => self.writer(),
        }
    }
}

/// A driver error. SQLite's messages name tables and columns, never bound values.
fn db_err(e: rusqlite::Error) -> StoreError {
    StoreError::backend(BACKEND, e)
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.code == ErrorCode::ConstraintViolation
            && (f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE))
}

fn invalid_key() -> StoreError {
    StoreError::InvalidKey
}

#[async_trait]
impl Store for SqliteStore {
    fn storage_order(&self) -> Option<&dyn StorageOrder> {
        Some(self)
    }

    fn user_table(&self) -> Option<&dyn UserTable> {
        Some(self)
    }

    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn ensure_schema(&self) -> Result<(), StoreError> {
        self.run(|inner| {
            let mut conn = inner.writer();
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db_err)?;
            tx.execute(&inner.sql.create_table, []).map_err(db_err)?;
            // A table Django made has its own index on expire_date: don't add a second.
            let indexed: i64 = tx
                .query_row(&inner.sql.has_expiry_index, [&inner.table], |r| r.get(0))
                .map_err(db_err)?;
            if indexed == 0 {
                tx.execute(&inner.sql.create_index, []).map_err(db_err)?;
            }
            tx.commit().map_err(db_err)
        })
        .await
    }

    async fn load(
        &self,
        key: &str,
        now: OffsetDateTime,
    ) -> Result<Option<SessionRecord>, StoreError> {
        if !is_valid_session_key(key) {
            return Ok(None);
        }
        let key = key.to_owned();
        self.run(move |inner| {
            let conn = inner.reader();
            let mut stmt = conn.prepare_cached(&inner.sql.load).map_err(db_err)?;
            let row = stmt
                .query_row(params![key, compare_datetime(now)], |r| {
                    let data: String = r.get(0)?;
                    let expires = expiry_of(r.get_ref(1)?);
                    Ok((data, expires))
                })
                .optional()
                .map_err(db_err)?;
            match row {
                None => Ok(None),
                Some((data, expires)) => {
                    let expires = expires?;
                    Ok((expires > now).then_some(SessionRecord { key, data, expires }))
                }
            }
        })
        .await
    }

    async fn create(&self, data: &str, expires: OffsetDateTime) -> Result<String, StoreError> {
        let data = data.to_owned();
        self.run(move |inner| {
            let conn = inner.writer();
            let mut stmt = conn.prepare_cached(&inner.sql.insert).map_err(db_err)?;
            let expire_date = django_datetime(expires);
            for _ in 0..CREATE_ATTEMPTS {
                let key = new_session_key();
                match stmt.execute(params![key, data, expire_date]) {
                    Ok(_) => return Ok(key),
                    Err(e) if is_unique_violation(&e) => continue,
                    Err(e) => return Err(db_err(e)),
                }
            }
            Err(StoreError::KeyExhausted)
        })
        .await
    }

    async fn save(&self, record: &SessionRecord) -> Result<(), StoreError> {
        if !is_valid_session_key(&record.key) {
            return Err(invalid_key());
        }
        let record = record.clone();
        self.run(move |inner| {
            let conn = inner.writer();
            let mut stmt = conn.prepare_cached(&inner.sql.upsert).map_err(db_err)?;
            stmt.execute(params![
                record.key,
                record.data,
                django_datetime(record.expires)
            ])
            .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn update(&self, record: &SessionRecord) -> Result<bool, StoreError> {
        if !is_valid_session_key(&record.key) {
            return Err(invalid_key());
        }
        let record = record.clone();
        self.run(move |inner| {
            let conn = inner.writer();
            let mut stmt = conn.prepare_cached(&inner.sql.update).map_err(db_err)?;
            let n = stmt
                .execute(params![
                    record.key,
                    record.data,
                    django_datetime(record.expires)
                ])
                .map_err(db_err)?;
            Ok(n == 1)
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        let key = key.to_owned();
        self.run(move |inner| {
            let conn = inner.writer();
            let mut stmt = conn.prepare_cached(&inner.sql.delete).map_err(db_err)?;
            Ok(stmt.execute([key]).map_err(db_err)? == 1)
        })
        .await
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: &str,
        new: &str,
    ) -> Result<bool, StoreError> {
        let (key, expected, new) = (key.to_owned(), expected.to_owned(), new.to_owned());
        self.run(move |inner| {
            let conn = inner.writer();
            let mut stmt = conn.prepare_cached(&inner.sql.cas).map_err(db_err)?;
            let n = stmt.execute(params![new, key, expected]).map_err(db_err)?;
            Ok(n == 1)
        })
        .await
    }

    async fn compare_and_swap_many(&self, swaps: &[Swap]) -> Result<Vec<bool>, StoreError> {
        let swaps = swaps.iter().map(|s| (None, s.clone())).collect();
        self.swap_in_one_transaction(swaps).await
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
        let at = compare_datetime(now);
        let (start, end) = (range.start.clone(), range.end.clone());
        self.run(move |inner| {
            let keys = "(?2 IS NULL OR session_key >= ?2) AND (?3 IS NULL OR session_key < ?3)";
            let count = |cmp: &str| {
                format!(
                    "SELECT count(*) FROM {} WHERE expire_date {cmp} ?1 AND {keys}",
                    inner.sql.quoted
                )
            };
            let conn = inner.reader();
            let args = rusqlite::params![at, start, end];
            let n = |cmp: &str| {
                conn.query_row(&count(cmp), args, |r| r.get::<_, i64>(0))
                    .map(i64::unsigned_abs)
                    .map_err(db_err)
            };
            Ok(RowCounts {
                live: n(">")?,
                expired: n("<=")?,
            })
        })
        .await
    }

    /// One short write transaction: readers and the site's own writes go on
    /// between batches.
    async fn purge_expired_batch(
        &self,
        now: OffsetDateTime,
        from: &PurgeFrom,
        limit: usize,
    ) -> Result<Purged, StoreError> {
        let after = match from {
            PurgeFrom::Position(p) => *p,
            PurgeFrom::Done => return Ok(Purged::batch(0, 0, 1, PurgeFrom::Done)),
            _ => i64::MIN,
        };
        let want = limit.max(1);
        let limit = i64::try_from(want).unwrap_or(i64::MAX);
        let now = compare_datetime(now);
        self.run(move |inner| {
            let conn = inner.writer();
            // A purge's own commits leave the log to grow (`purge_wal_pages`)
            // before it is copied into the database; any other commit on this
            // connection checkpoints at SQLite's usual 1000 pages.
            let pages: i64 = conn
                .query_row("PRAGMA page_count", [], |r| r.get(0))
                .map_err(db_err)?;
            conn.pragma_update(None, "wal_autocheckpoint", purge_wal_pages(pages))
                .map_err(db_err)?;
            conn.pragma_update(None, "cache_size", -PURGE_CACHE_KIB)
                .map_err(db_err)?;
            let outcome = purge_one_batch(&conn, inner, &now, limit, after, want);
            conn.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES)
                .map_err(db_err)?;
            if let Ok(Purged {
                next: PurgeFrom::Done,
                ..
            }) = &outcome
            {
                conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                    .map_err(db_err)?;
                conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)
                    .map_err(db_err)?;
            }
            outcome
        })
        .await
    }
}

/// One batch of `purge_expired_batch` on the writer connection.
fn purge_one_batch(
    conn: &Connection,
    inner: &Inner,
    now: &str,
    limit: i64,
    after: i64,
    want: usize,
) -> Result<Purged, StoreError> {
    match conn.prepare_cached(&inner.sql.purge) {
        Ok(mut stmt) => {
            let mut rows = stmt
                .query(rusqlite::params![now, limit, after])
                .map_err(db_err)?;
            let (mut deleted, mut last) = (0u64, after);
            while let Some(r) = rows.next().map_err(db_err)? {
                deleted += 1;
                last = last.max(r.get(0).map_err(db_err)?);
            }
            let found = usize::try_from(deleted).unwrap_or(usize::MAX);
            Ok(Purged::batch(
                deleted,
                found,
                want,
                PurgeFrom::Position(last),
            ))
        }
        Err(e) if e.to_string().contains("no such column") => {
            let deleted = conn
                .prepare_cached(&inner.sql.purge_by_key)
                .and_then(|mut s| s.execute(rusqlite::params![now, limit]))
                .map_err(db_err)?;
            // SQLite removes index entries with their rows: nothing
            // to step over again, the next batch starts afresh.
            Ok(Purged::batch(
                deleted as u64,
                deleted,
                want,
                PurgeFrom::Start,
            ))
        }
        Err(e) => Err(db_err(e)),
    }
}

#[async_trait]
impl StorageOrder for SqliteStore {
    async fn stored_span(&self) -> Result<Option<(i64, i64)>, StoreError> {
        self.run(move |inner| {
            let sql = format!("SELECT min(rowid), max(rowid) FROM {}", inner.sql.quoted);
            let conn = inner.reader();
            let span = conn.query_row(&sql, [], |r| {
                Ok((r.get::<_, Option<i64>>(0)?, r.get::<_, Option<i64>>(1)?))
            });
            match span {
                Ok((Some(lo), Some(hi))) => Ok(Some((lo, hi))),
                Ok(_) => Ok(None),
                // A WITHOUT ROWID table (keyroll's own) is stored in key order already.
                Err(e) if e.to_string().contains("no such column") => Ok(None),
                Err(e) => Err(db_err(e)),
            }
        })
        .await
    }

    async fn scan_stored(
        &self,
        after: Option<i64>,
        until: Option<i64>,
        limit: usize,
        live_at: Option<OffsetDateTime>,
    ) -> Result<Vec<(i64, SessionRecord)>, StoreError> {
        let limit = i64::try_from(limit.max(1)).unwrap_or(i64::MAX);
        let from = after.unwrap_or(i64::MIN);
        let to = until.unwrap_or(i64::MAX);
        // Expired rows are skipped in the query: they are read (sequentially)
        // but never copied out.
        let live = live_at.map_or_else(String::new, compare_datetime);
        self.run(move |inner| {
            let sql = format!(
                "SELECT rowid, session_key, session_data, expire_date FROM {} \
                 WHERE rowid > ?1 AND rowid <= ?2 AND (?3 = '' OR expire_date > ?3) \
                 ORDER BY rowid LIMIT ?4",
                inner.sql.quoted
            );
            let conn = inner.reader();
            let mut stmt = conn.prepare_cached(&sql).map_err(db_err)?;
            let mut rows = stmt
                .query(rusqlite::params![from, to, live, limit])
                .map_err(db_err)?;
            let mut out = Vec::new();
            while let Some(r) = rows.next().map_err(db_err)? {
                let position = r.get(0).map_err(db_err)?;
                let key: String = r.get(1).map_err(db_err)?;
                let data: String = r.get(2).map_err(db_err)?;
                let expires = expiry_of(r.get_ref(3).map_err(db_err)?)?;
                out.push((position, SessionRecord { key, data, expires }));
            }
            Ok(out)
        })
        .await
    }

    async fn compare_and_swap_stored(
        &self,
        swaps: Vec<(i64, Swap)>,
    ) -> Result<Vec<bool>, StoreError> {
        let swaps = swaps.into_iter().map(|(at, s)| (Some(at), s)).collect();
        self.swap_in_one_transaction(swaps).await
    }
}

#[async_trait]
impl UserTable for SqliteStore {
    async fn password_hashes(
        &self,
        users_table: &str,
        ids: &[String],
    ) -> Result<HashMap<String, String>, StoreError> {
        check_table_name(users_table)?;
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let users_table = users_table.to_owned();
        let ids = ids.to_vec();
        self.run(move |inner| {
            let conn = inner.reader();
            let mut out = HashMap::with_capacity(ids.len());
            for chunk in ids.chunks(IN_CHUNK) {
                // `id IN (?…)` with text parameters: SQLite applies the column's
                // affinity to them, so an integer `id` matches "42" and uses its index.
                let marks = vec!["?"; chunk.len()].join(", ");
                let sql = format!("SELECT CAST(id AS TEXT), password FROM \"{users_table}\" WHERE id IN ({marks})");
                let mut stmt = conn.prepare(&sql).map_err(db_err)?;
                let mut rows = stmt.query(params_from_iter(chunk.iter())).map_err(db_err)?;
                while let Some(r) = rows.next().map_err(db_err)? {
                    let id: Option<String> = r.get(0).map_err(db_err)?;
                    let password: Option<String> = r.get(1).map_err(db_err)?;
                    if let (Some(id), Some(password)) = (id, password) {
                        out.insert(id, password);
                    }
                }
            }
            Ok(out)
        })
        .await
    }
}

fn expiry_of(v: ValueRef<'_>) -> Result<OffsetDateTime, StoreError> {
    let parsed = match v {
        ValueRef::Text(t) => std::str::from_utf8(t).ok().and_then(parse_datetime),
        _ => None,
    };
    parsed.ok_or_else(|| StoreError::backend(BACKEND, "unreadable expire_date value"))
}
