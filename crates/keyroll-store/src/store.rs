//! Session records and the `Store` trait every backend implements.

use std::collections::HashMap;
use std::fmt;

use async_trait::async_trait;
use rand::Rng as _;
use time::OffsetDateTime;

/// Characters of a session key (Django's `VALID_KEY_CHARS`).
pub const SESSION_KEY_CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
/// Length of a new session key.
pub const SESSION_KEY_LEN: usize = 32;
/// Longest key a store column holds (`varchar(40)`).
pub const MAX_SESSION_KEY_LEN: usize = 40;

/// A new random session key: 32 characters of `[a-z0-9]` from the OS's CSPRNG.
pub fn new_session_key() -> String {
    let mut rng = rand::rngs::OsRng;
    (0..SESSION_KEY_LEN)
        .map(|_| {
            let i = rng.gen_range(0..SESSION_KEY_CHARS.len());
            char::from(SESSION_KEY_CHARS.get(i).copied().unwrap_or(b'a'))
        })
        .collect()
}

/// True for a key a store could hold: 8 to 40 characters of `[a-z0-9]`
/// (Django refuses keys shorter than 8). Anything else is never looked up.
pub fn is_valid_session_key(key: &str) -> bool {
    (8..=MAX_SESSION_KEY_LEN).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// One stored session: its key, its signed data, and when it expires.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// The session key (what the cookie holds).
    pub key: String,
    /// The signed session data (Django's `session_data`).
    pub data: String,
    /// When it stops being a session.
    pub expires: OffsetDateTime,
}

impl SessionRecord {
    /// True when the record is expired at `now` (Django: `expire_date > now` is live).
    pub fn is_expired_at(&self, now: OffsetDateTime) -> bool {
        self.expires <= now
    }
}

impl fmt::Debug for SessionRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key is a bearer credential: show only a prefix.
        let shown = self.key.get(..6).unwrap_or("");
        f.debug_struct("SessionRecord")
            .field("key", &format_args!("{shown}…"))
            .field("data_len", &self.data.len())
            .field("expires", &self.expires)
            .finish()
    }
}

/// A compare-and-swap of one row's data: applied only if the row still holds `expected`.
///
/// `Debug` shows a key prefix and the data lengths: the key is a bearer
/// credential and the data is private.
#[derive(Clone)]
pub struct Swap {
    /// The session key.
    pub key: String,
    /// The data the row must still hold.
    pub expected: String,
    /// The data to write (the expiry is kept).
    pub new: String,
}

impl fmt::Debug for Swap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = self.key.get(..6).unwrap_or("");
        f.debug_struct("Swap")
            .field("key", &format_args!("{shown}…"))
            .field("expected_len", &self.expected.len())
            .field("new_len", &self.new.len())
            .finish()
    }
}

/// The lower bound of a scan page (see [`KeyRange::page_bounds`]).
#[cfg_attr(
    not(any(feature = "sqlite", feature = "postgres", feature = "mysql")),
    allow(dead_code)
)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Lower {
    /// No lower bound.
    None,
    /// Keys strictly after this one (the cursor).
    After(String),
    /// Keys from this one on (the range's start).
    From(String),
}

/// Session key characters in the order the databases compare them.
const KEY_ORDER: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
/// Three-character key prefixes: 36³.
const PREFIX_SPACE: u32 = 36 * 36 * 36;

/// The three-character prefix with this index in key order.
fn prefix_at(i: u32) -> String {
    let digit = |d: u32| char::from(KEY_ORDER.get(d as usize % 36).copied().unwrap_or(b'0'));
    [i / 1296, i / 36 % 36, i % 36]
        .into_iter()
        .map(digit)
        .collect()
}

/// The index of a prefix of at most three key characters (padded with the
/// first character, so "ab" is "ab0"); `None` for anything else.
fn prefix_index(p: &str) -> Option<u32> {
    if p.len() > 3 {
        return None;
    }
    let mut i = 0u32;
    let mut bytes = p.bytes();
    for _ in 0..3 {
        let d = match bytes.next() {
            Some(b) => u32::try_from(KEY_ORDER.iter().position(|c| *c == b)?).ok()?,
            None => 0,
        };
        i = i * 36 + d;
    }
    Some(i)
}

/// A range of session keys, `start` inclusive, `end` exclusive; `None` is open.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyRange {
    /// First key in the range.
    pub start: Option<String>,
    /// First key after the range.
    pub end: Option<String>,
}

impl KeyRange {
    /// Every key.
    pub fn all() -> Self {
        Self::default()
    }

    /// Splits the key space into `n` ranges of about equal size (for
    /// parallel workers): session keys are random over `0-9a-z`, so equal
    /// slices of the three-character prefixes hold about equal numbers of
    /// rows. At most 46,656 ranges.
    pub fn split(n: usize) -> Vec<KeyRange> {
        Self::all().split_within(n)
    }

    /// Shard `k` of `n` (1-based): [`KeyRange::split`]`(n)`'s `k`-th range.
    /// The same `k/n` names the same keys on every host and in every run, so
    /// `n` processes split one table without overlap, and a shard run again
    /// covers the same rows. `None` unless `1 <= k <= n <= 46,656`.
    pub fn shard(k: usize, n: usize) -> Option<KeyRange> {
        if k == 0 || k > n || n > PREFIX_SPACE as usize {
            return None;
        }
        Self::all().split_within(n).into_iter().nth(k - 1)
    }

    /// Splits this range into `n` consecutive ranges of about equal size;
    /// a range whose bounds are not prefixes of at most three key
    /// characters (none that keyroll makes) is not split.
    pub fn split_within(&self, n: usize) -> Vec<KeyRange> {
        let (Some(lo), Some(hi)) = (
            self.start.as_deref().map_or(Some(0), prefix_index),
            self.end.as_deref().map_or(Some(PREFIX_SPACE), prefix_index),
        ) else {
            return vec![self.clone()];
        };
        let width = u64::from(hi.saturating_sub(lo));
        let n = u64::try_from(n.max(1))
            .unwrap_or(u64::MAX)
            .min(width.max(1));
        let mut out = Vec::new();
        let mut start = self.start.clone();
        for i in 1..n {
            // lo + width·i/n, exact in u64 (width and n are at most 46,656).
            let at = u64::from(lo) + width * i / n;
            let end = Some(prefix_at(u32::try_from(at).unwrap_or(PREFIX_SPACE)));
            out.push(KeyRange {
                start: start.clone(),
                end: end.clone(),
            });
            start = end;
        }
        out.push(KeyRange {
            start,
            end: self.end.clone(),
        });
        out
    }

    /// The bounds of one scan page over this range resuming after the cursor
    /// `after`: the lower bound (the later of the range's start and the
    /// cursor) and the exclusive upper bound.
    #[cfg_attr(
        not(any(feature = "sqlite", feature = "postgres", feature = "mysql")),
        allow(dead_code)
    )]
    pub(crate) fn page_bounds(&self, after: Option<&str>) -> (Lower, Option<String>) {
        let lower = match (self.start.as_deref(), after) {
            (None, None) => Lower::None,
            (Some(s), None) => Lower::From(s.to_owned()),
            (None, Some(a)) => Lower::After(a.to_owned()),
            (Some(s), Some(a)) if a >= s => Lower::After(a.to_owned()),
            (Some(s), Some(_)) => Lower::From(s.to_owned()),
        };
        (lower, self.end.clone())
    }

    /// True when `key` is in the range.
    pub fn contains(&self, key: &str) -> bool {
        self.start.as_deref().is_none_or(|s| key >= s)
            && self.end.as_deref().is_none_or(|e| key < e)
    }
}

/// Why a store operation failed. Never holds session data or secrets.
///
/// Driver errors are kept as sanitized text, not as the driver's error
/// value: a database error's detail can quote row values (a session key or
/// its data), and an error's source chain and `Debug` form are easy to log.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store could not be reached or did not answer in time: a refused
    /// or dropped connection, `connect_timeout`, `pool_timeout`,
    /// `query_timeout`. Worth retrying later (a web layer answers 503 or 500).
    #[error("{backend}: {message}")]
    Unavailable {
        /// `sqlite`, `postgres` or `redis`.
        backend: &'static str,
        /// What happened, naming the timeout when one ran out.
        message: String,
    },
    /// The backend answered with an error (a failed statement, a missing
    /// table, an unexpected reply).
    #[error("{backend}: {message}")]
    Backend {
        /// `sqlite`, `postgres` or `redis`.
        backend: &'static str,
        /// What went wrong.
        message: String,
    },
    /// Session data could not be signed for storing.
    #[error("session data cannot be encoded: {0}")]
    Encode(#[from] keyroll::SignError),
    /// A background task running a store call was cancelled or panicked.
    #[error("{0}")]
    Task(&'static str),
    /// The store URL is not one keyroll understands (only its scheme is kept:
    /// a URL may hold a password).
    #[error("unsupported store URL (scheme {0:?}): use sqlite://path, postgres://…, mysql://… or redis://…")]
    BadUrl(String),
    /// The store was built without the feature for this backend.
    #[error("this keyroll was built without the {0} feature")]
    FeatureMissing(&'static str),
    /// The operation makes no sense for this backend.
    #[error("{0}")]
    Unsupported(&'static str),
    /// A new unique session key could not be found (astronomically unlikely).
    #[error("could not find an unused session key")]
    KeyExhausted,
    /// A session key that is not 8 to 40 characters of `[a-z0-9]`.
    #[error("invalid session key (8 to 40 characters of a-z and 0-9)")]
    InvalidKey,
    /// A table name that is not a plain SQL identifier.
    #[error("invalid table name {0:?}: use letters, digits and underscores")]
    BadTableName(String),
}

impl StoreError {
    /// A backend error with a message.
    pub fn backend(backend: &'static str, message: impl fmt::Display) -> Self {
        StoreError::Backend {
            backend,
            message: message.to_string(),
        }
    }

    /// The store could not be reached or did not answer in time.
    pub fn unavailable(backend: &'static str, message: impl fmt::Display) -> Self {
        StoreError::Unavailable {
            backend,
            message: message.to_string(),
        }
    }
}

/// A session store. Backends: SQLite (default), PostgreSQL, Redis.
///
/// Expired records are never returned by [`Store::load`]; [`Store::scan`]
/// returns them (census counts them) with their expiry.
#[async_trait]
pub trait Store: fmt::Debug + Send + Sync + 'static {
    /// Which backend this is (`sqlite`, `postgres`, `redis`).
    fn backend(&self) -> &'static str;

    /// Creates the table and index if missing. Never called implicitly.
    async fn ensure_schema(&self) -> Result<(), StoreError>;

    /// The live record with this key, if any.
    async fn load(
        &self,
        key: &str,
        now: OffsetDateTime,
    ) -> Result<Option<SessionRecord>, StoreError>;

    /// Stores `data` under a fresh unique key and returns the key.
    async fn create(&self, data: &str, expires: OffsetDateTime) -> Result<String, StoreError>;

    /// Writes a record (insert or replace): for importing and seeding rows.
    /// The request path never calls it: a session that was loaded is written
    /// back with [`Store::update`], so a row deleted meanwhile (a logout in
    /// a concurrent request) is not brought back.
    async fn save(&self, record: &SessionRecord) -> Result<(), StoreError>;

    /// Writes the data and expiry of an existing row, never inserting one.
    /// `false` when no row has that key (it was deleted, or expired out of a
    /// store that drops expired keys): the caller must not recreate it.
    async fn update(&self, record: &SessionRecord) -> Result<bool, StoreError>;

    /// Deletes a record; `true` when there was one to delete (absent is no error).
    async fn delete(&self, key: &str) -> Result<bool, StoreError>;

    /// Replaces the data of `key` with `new` only if it still holds `expected`;
    /// keeps the expiry. True when the swap happened.
    async fn compare_and_swap(
        &self,
        key: &str,
        expected: &str,
        new: &str,
    ) -> Result<bool, StoreError>;

    /// Several swaps, each applied only if its row is unchanged; one transaction
    /// where the backend has them. Returns, per swap, whether it happened.
    async fn compare_and_swap_many(&self, swaps: &[Swap]) -> Result<Vec<bool>, StoreError> {
        let mut out = Vec::with_capacity(swaps.len());
        for s in swaps {
            out.push(self.compare_and_swap(&s.key, &s.expected, &s.new).await?);
        }
        Ok(out)
    }

    /// Up to `limit` records of `range` with keys after `after`, in key order
    /// (expired ones included).
    async fn scan(
        &self,
        range: &KeyRange,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<SessionRecord>, StoreError>;

    /// Up to `limit` records of `range` with keys after `after`, in key
    /// order, that are live at `now` (expiry after `now`): what census and
    /// re-sign walk, skipping the expired rows that fill most real session
    /// tables. The SQL stores filter in the query; the default filters
    /// [`Store::scan`]'s pages.
    async fn scan_live(
        &self,
        range: &KeyRange,
        after: Option<&str>,
        limit: usize,
        now: OffsetDateTime,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        let mut out: Vec<SessionRecord> = Vec::new();
        let mut cursor = after.map(str::to_owned);
        while out.len() < limit {
            let want = limit - out.len();
            let page = self.scan(range, cursor.as_deref(), want).await?;
            let full = page.len() == want;
            if let Some(last) = page.last() {
                cursor = Some(last.key.clone());
            }
            out.extend(page.into_iter().filter(|r| !r.is_expired_at(now)));
            if !full {
                break;
            }
        }
        Ok(out)
    }

    /// How many rows of `range` are live and how many expired (kept until
    /// purged) at `now`. The SQL stores count through an index; the default
    /// walks the range.
    async fn count_rows(
        &self,
        range: &KeyRange,
        now: OffsetDateTime,
    ) -> Result<RowCounts, StoreError> {
        count_by_scan(self, range, now).await
    }

    /// Deletes about `limit` records expired at `now` (a store that walks
    /// its pages takes some pages' worth), in one short statement or
    /// transaction. `from` is where the previous batch ended
    /// ([`Purged::next`]; [`PurgeFrom::Start`] for the first): each batch
    /// goes on from there — in storage order where the table has one
    /// (SQLite's rowids, InnoDB's primary key: sequential pages), else oldest
    /// expiry first — instead of stepping again over what earlier batches
    /// deleted (index entries PostgreSQL and InnoDB clean up only later),
    /// which would make a purge of millions of rows quadratic.
    async fn purge_expired_batch(
        &self,
        now: OffsetDateTime,
        from: &PurgeFrom,
        limit: usize,
    ) -> Result<Purged, StoreError>;

    /// Deletes every expired record, [`PURGE_BATCH`] at a time (no long lock
    /// on a live table); returns how many.
    async fn purge_expired(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        let mut total = 0u64;
        let mut from = PurgeFrom::Start;
        loop {
            let batch = self.purge_expired_batch(now, &from, PURGE_BATCH).await?;
            total += batch.deleted;
            if batch.next == PurgeFrom::Done {
                return Ok(total);
            }
            from = batch.next;
        }
    }

    /// This store's scan in storage order, if it has one (a SQLite table
    /// with a rowid, as Django creates it): see [`StorageOrder`].
    fn storage_order(&self) -> Option<&dyn StorageOrder> {
        None
    }

    /// This store's users table lookup, if it has one (the SQL stores): see
    /// [`UserTable`].
    fn user_table(&self) -> Option<&dyn UserTable> {
        None
    }

    /// This store's scan that keeps what it read locked until it is
    /// written, if it has one: see [`LockedScan`].
    fn locked_scan(&self) -> Option<&dyn LockedScan> {
        None
    }
}

/// Counts the live and expired rows of `range` by walking it: what
/// [`Store::count_rows`] does for a store without an index to count with.
pub(crate) async fn count_by_scan<S: Store + ?Sized>(
    store: &S,
    range: &KeyRange,
    now: OffsetDateTime,
) -> Result<RowCounts, StoreError> {
    let mut counts = RowCounts::default();
    let mut cursor: Option<String> = None;
    loop {
        let page = store.scan(range, cursor.as_deref(), 1000).await?;
        for r in &page {
            if r.is_expired_at(now) {
                counts.expired += 1;
            } else {
                counts.live += 1;
            }
        }
        match page.last() {
            Some(last) if page.len() == 1000 => cursor = Some(last.key.clone()),
            _ => return Ok(counts),
        }
    }
}

/// Expired rows deleted per statement by [`Store::purge_expired`].
pub const PURGE_BATCH: usize = 20_000;

/// What one batch of a purge deleted, and where the next one goes on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Purged {
    /// Rows deleted.
    pub deleted: u64,
    /// Where the next batch starts; [`PurgeFrom::Done`] when nothing is left.
    pub next: PurgeFrom,
}

/// Where a purge batch starts (see [`Store::purge_expired_batch`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PurgeFrom {
    /// The first batch.
    Start,
    /// After this storage position (SQLite's rowid), or from this page
    /// (PostgreSQL).
    Position(i64),
    /// After this primary key (InnoDB's storage order).
    Key(String),
    /// From this expiry on (oldest expiry first).
    Expiry(OffsetDateTime),
    /// Nothing expired is left.
    Done,
}

impl Purged {
    /// `deleted` rows, and `next` unless fewer than `limit` were found (then
    /// nothing is left).
    pub fn batch(deleted: u64, found: usize, limit: usize, next: PurgeFrom) -> Self {
        Self {
            deleted,
            next: if found < limit { PurgeFrom::Done } else { next },
        }
    }
}

/// Rows of a table, live and expired, at one instant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RowCounts {
    /// Rows whose expiry is after the instant.
    pub live: u64,
    /// Rows whose expiry is at or before it, not yet purged.
    pub expired: u64,
}

/// Bulk scans in the order rows are stored, where that differs from key
/// order: census and re-sign then read pages sequentially instead of at
/// random, and parallel workers split the positions between them. Reached
/// through [`Store::storage_order`].
#[async_trait]
pub trait StorageOrder: Send + Sync {
    /// The first and last position in storage order; `Ok(None)` for an
    /// empty table or one with no such order after all (SQLite `WITHOUT
    /// ROWID`, keyroll's own layout: use [`Store::scan`]).
    async fn stored_span(&self) -> Result<Option<(i64, i64)>, StoreError>;

    /// Up to `limit` records at positions after `after` (`None`: from the
    /// start) and up to `until` inclusive (`None`: to the end), in storage
    /// order, live at `live_at` only when it is given, each with its
    /// position (the last one's is where the next page starts).
    async fn scan_stored(
        &self,
        after: Option<i64>,
        until: Option<i64>,
        limit: usize,
        live_at: Option<OffsetDateTime>,
    ) -> Result<Vec<(i64, SessionRecord)>, StoreError>;

    /// [`Store::compare_and_swap_many`] for rows [`scan_stored`] found at
    /// these positions: the row is looked up by its position (no key-index
    /// descent) and still swapped only if its key and data are as expected.
    /// A row no longer at its position is looked up by key, so a store that
    /// renumbered its rows meanwhile gets the same answers, only slower.
    ///
    /// [`scan_stored`]: StorageOrder::scan_stored
    async fn compare_and_swap_stored(
        &self,
        swaps: Vec<(i64, Swap)>,
    ) -> Result<Vec<bool>, StoreError>;
}

/// A re-sign's read and write of a batch in one transaction, for a store
/// whose [`Store::compare_and_swap_many`] reads every row again to compare
/// it (MariaDB/MySQL: a locking read of the batch's keys, one index descent
/// each): the scan locks the rows it returns, so their write needs no
/// comparison and each row is read once. Reached through
/// [`Store::locked_scan`].
#[async_trait]
pub trait LockedScan: Send + Sync {
    /// [`Store::scan`] (with `live_at`, [`Store::scan_live`]), the rows
    /// returned locked against other writers until the [`LockedBatch`] is
    /// written or dropped.
    async fn scan_locked(
        &self,
        range: &KeyRange,
        after: Option<&str>,
        limit: usize,
        live_at: Option<OffsetDateTime>,
    ) -> Result<(Vec<SessionRecord>, Box<dyn LockedBatch>), StoreError>;
}

/// The rows a [`LockedScan`] holds. Dropped unwritten, it changes nothing
/// and lets the rows go.
#[async_trait]
pub trait LockedBatch: Send {
    /// Writes each swap's new data (each key one the scan returned, its
    /// `expected` what the scan read) and commits; with no swaps, only
    /// commits (the rows are let go at once).
    async fn write(self: Box<Self>, swaps: &[Swap]) -> Result<(), StoreError>;
}

/// The users table a SQL store can read, for re-making login hashes in bulk.
/// Reached through [`Store::user_table`].
#[async_trait]
pub trait UserTable: Send + Sync {
    /// The stored password hashes of these user ids, from a users table with
    /// columns `id` and `password` (Django's `auth_user`).
    async fn password_hashes(
        &self,
        users_table: &str,
        ids: &[String],
    ) -> Result<HashMap<String, String>, StoreError>;
}

/// Checks a table name is a plain identifier (it is put into SQL text).
pub fn check_table_name(name: &str) -> Result<(), StoreError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && name.bytes().next().is_some_and(|b| !b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(StoreError::BadTableName(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_partition_the_key_space_the_same_way_every_time() {
        assert_eq!(KeyRange::split(1), vec![KeyRange::all()]);
        for n in [2, 3, 7, 36, 100, 1000] {
            let parts = KeyRange::split(n);
            assert_eq!(parts.len(), n);
            assert_eq!(parts.first().unwrap().start, None);
            assert_eq!(parts.last().unwrap().end, None);
            for w in parts.windows(2) {
                assert_eq!(w[0].end, w[1].start, "consecutive");
                assert!(w[0].end.as_deref().unwrap() > w[0].start.as_deref().unwrap_or(""));
            }
            for k in 1..=n {
                assert_eq!(KeyRange::shard(k, n).as_ref(), parts.get(k - 1));
            }
            // Every key falls in exactly one part.
            for key in ["0000", "00zz", "a1b2c3", "zzzzzz", "m", "9", "abc"] {
                assert_eq!(
                    parts.iter().filter(|r| r.contains(key)).count(),
                    1,
                    "{key} in {n}"
                );
            }
        }
        assert_eq!(KeyRange::shard(0, 3), None);
        assert_eq!(KeyRange::shard(4, 3), None);
        // A shard splits further, inside its own bounds.
        let s = KeyRange::shard(2, 3).unwrap();
        let sub = s.split_within(4);
        assert_eq!(sub.len(), 4);
        assert_eq!(sub.first().unwrap().start, s.start);
        assert_eq!(sub.last().unwrap().end, s.end);
        assert_eq!(prefix_index("ab"), prefix_index("ab0"));
        assert_eq!(prefix_at(prefix_index("x9z").unwrap()), "x9z");
    }

    #[test]
    fn page_bounds_take_the_later_of_start_and_cursor() {
        let r = KeyRange {
            start: Some("c".into()),
            end: Some("m".into()),
        };
        assert_eq!(
            r.page_bounds(None),
            (Lower::From("c".into()), Some("m".into()))
        );
        assert_eq!(
            r.page_bounds(Some("b")),
            (Lower::From("c".into()), Some("m".into()))
        );
        assert_eq!(
            r.page_bounds(Some("d")),
            (Lower::After("d".into()), Some("m".into()))
        );
        assert_eq!(KeyRange::all().page_bounds(None), (Lower::None, None));
    }

    #[test]
    fn keys_are_32_lowercase_alphanumerics_and_unique() {
        let a = new_session_key();
        assert_eq!(a.len(), 32);
        assert!(is_valid_session_key(&a));
        assert_ne!(a, new_session_key());
        for bad in [
            "",
            "short",
            "UPPERCASEKEY0000",
            "has space in it x",
            &"a".repeat(41),
            "abc;drop table",
        ] {
            assert!(!is_valid_session_key(bad), "{bad}");
        }
    }

    #[test]
    fn ranges_split_the_key_space() {
        for n in [1, 2, 3, 4, 7, 36, 100] {
            let ranges = KeyRange::split(n);
            assert!(ranges.len() <= n.max(1));
            for _ in 0..200 {
                let k = new_session_key();
                assert_eq!(
                    ranges.iter().filter(|r| r.contains(&k)).count(),
                    1,
                    "{n} {k}"
                );
            }
            for c in SESSION_KEY_CHARS {
                let k = format!("{}{}", char::from(*c), "0".repeat(31));
                assert_eq!(
                    ranges.iter().filter(|r| r.contains(&k)).count(),
                    1,
                    "{n} {k}"
                );
            }
        }
    }

    #[test]
    fn table_names() {
        assert!(check_table_name("django_session").is_ok());
        for bad in ["", "1abc", "a-b", "a;drop", "x y", "\"q\""] {
            assert!(check_table_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn swap_debug_shows_neither_the_session_key_nor_the_data() {
        let s = Swap {
            key: "abcdefghijklmnopqrstuvwxyz012345".into(),
            expected: "old-secret-session-data".into(),
            new: "new-secret-session-data".into(),
        };
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("secret-session-data") && !shown.contains("ghijkl"),
            "{shown}"
        );
        assert!(shown.contains("abcdef"), "{shown}");
    }

    #[test]
    fn debug_hides_the_key_and_data() {
        let r = SessionRecord {
            key: "abcdefghijklmnopqrstuvwxyz012345".into(),
            data: "secret-session-data".into(),
            expires: OffsetDateTime::UNIX_EPOCH,
        };
        let shown = format!("{r:?}");
        assert!(
            !shown.contains("secret-session-data") && !shown.contains("ghijkl"),
            "{shown}"
        );
    }
}
