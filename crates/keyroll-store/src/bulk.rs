//! Census and bulk re-signing of a whole session table.
//!
//! Both walk the table in batches with a cursor (in storage order where the
//! store has one, else key order): memory stays flat however large the
//! table. They walk only live rows (most of a real session table is expired
//! rows nobody purged) and count the expired ones through the store's index,
//! unless asked to walk everything. `resign` writes with compare-and-swap, so
//! it never overwrites a row a user changed meanwhile, and it is idempotent:
//! killed at any moment and run again, it finishes the job. `--jobs` workers
//! split the rows between them (positions in storage order, else key
//! ranges); `--shard K/N` takes one of N fixed key ranges, so N hosts split
//! one table without overlap; `max_rate` throttles all workers together.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use keyroll::{
    session_login, KeyId, KeyRing, LoginCheck, Role, SessionAuthHash, SessionCodec, Verified,
    SESSION_USER_HASH,
};
use serde_json::Value;
use time::OffsetDateTime;

use crate::store::{
    KeyRange, LockedBatch, LockedScan, RowCounts, SessionRecord, Store, StoreError, Swap,
    PURGE_BATCH,
};

/// Options of a census or a re-sign.
#[derive(Clone, Debug)]
pub struct BulkOptions {
    /// The session salt (Django's database sessions: `django.contrib.sessions.SessionStore`).
    pub salt: String,
    /// Rows per batch.
    pub batch: usize,
    /// Parallel workers, each on its own key range.
    pub jobs: usize,
    /// Count what would change, change nothing.
    pub dry_run: bool,
    /// Where users' password hashes come from, for re-hashing
    /// `_auth_user_hash`; `None`: leave hashes alone.
    pub users: Option<Users>,
    /// [`resign`]'s running total, added to after every batch is written:
    /// what an interrupted run had done (at least) when it was stopped.
    pub tally: Option<Arc<std::sync::Mutex<ResignSummary>>>,
    /// Fetch expired rows too (by default the query leaves them out and they
    /// are counted through the store's index).
    pub include_expired: bool,
    /// Only shard `k` of `n` (1-based; see [`KeyRange::shard`]).
    pub shard: Option<(usize, usize)>,
    /// At most this many rows a second, over all workers together.
    pub max_rate: Option<u64>,
    /// The scope's rows as the caller already counted them at the run's
    /// `now` (e.g. for a progress bar); `None`: the run counts them itself.
    pub counts: Option<RowCounts>,
}

impl BulkOptions {
    /// The keys this run covers: the shard, or every key.
    ///
    /// # Errors
    /// [`StoreError::Unsupported`] for a shard that is not `1 <= k <= n <= 46656`.
    pub fn scope(&self) -> Result<KeyRange, StoreError> {
        match self.shard {
            None => Ok(KeyRange::all()),
            Some((k, n)) => KeyRange::shard(k, n).ok_or(StoreError::Unsupported(
                "a shard is K/N with 1 <= K <= N <= 46656",
            )),
        }
    }
}

/// Where [`resign`] finds users' current password hashes.
#[derive(Clone, Debug)]
pub enum Users {
    /// A table of the store with columns `id` and `password` (Django's `auth_user`).
    Table(String),
    /// A map from user id (as a string) to stored password hash.
    Map(Arc<HashMap<String, String>>),
}

impl Default for BulkOptions {
    fn default() -> Self {
        Self {
            salt: keyroll::DB_SESSION_SALT.to_owned(),
            batch: 1000,
            jobs: 1,
            dry_run: false,
            users: None,
            tally: None,
            include_expired: false,
            shard: None,
            max_rate: None,
            counts: None,
        }
    }
}

/// What a census found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Census {
    /// Live rows per key they need (by signature; with users, by login hash
    /// too), in ring order.
    pub keys: Vec<(KeyId, Role, u64)>,
    /// Live rows no key of the ring verifies (by signature: the payload is not
    /// decoded, as [`resign`] re-signs whatever a ring key verifies).
    pub unverifiable: u64,
    /// Expired rows.
    pub expired: u64,
}

impl Census {
    /// True when no live row depends on `key` (it can be retired without logging anyone out).
    pub fn safe_to_retire(&self, key: KeyId) -> bool {
        self.keys
            .iter()
            .all(|(id, _, rows)| *id != key || *rows == 0)
    }
}

/// What a re-sign did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResignSummary {
    /// Rows re-signed with the primary (or re-hashed, or both).
    pub resigned: u64,
    /// Rows already signed by the primary, with a current auth hash.
    pub already_current: u64,
    /// Live rows no key verifies (left untouched).
    pub unverifiable: u64,
    /// Expired rows (left untouched).
    pub expired: u64,
    /// Rows whose `_auth_user_hash` was re-made under the primary key.
    pub auth_rehashed: u64,
    /// Rows changed by someone else between read and write (left as they are).
    pub conflicts: u64,
}

impl ResignSummary {
    fn add(&mut self, o: &ResignSummary) {
        self.resigned += o.resigned;
        self.already_current += o.already_current;
        self.unverifiable += o.unverifiable;
        self.expired += o.expired;
        self.auth_rehashed += o.auth_rehashed;
        self.conflicts += o.conflicts;
    }

    /// The CLI's summary line (the same as `Display`).
    pub fn line(&self) -> String {
        self.to_string()
    }
}

impl std::fmt::Display for ResignSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "resigned {}, already-current {}, unverifiable {}, expired {}, auth-rehashed {}, conflicts {}",
            self.resigned, self.already_current, self.unverifiable, self.expired, self.auth_rehashed, self.conflicts
        )
    }
}

/// A progress callback: called with the number of rows just processed.
pub type Progress = Arc<dyn Fn(u64) + Send + Sync>;

fn no_progress() -> Progress {
    Arc::new(|_| {})
}

/// Counts live rows per key they need, unverifiable and expired rows.
///
/// A row needs the key whose signature verifies it; with
/// [`BulkOptions::users`], also the key its `_auth_user_hash` was made with
/// (for the user's current password), so that "no row needs key A" means
/// retiring A logs no one out — the same rows [`resign`] (with the same
/// users) would rewrite. A row that needs two keys counts under each.
///
/// # Errors
/// [`StoreError`] when the store fails.
pub async fn census(
    store: Arc<dyn Store>,
    ring: &KeyRing,
    opts: &BulkOptions,
    now: OffsetDateTime,
    progress: Option<Progress>,
) -> Result<Census, StoreError> {
    let codec = Arc::new(SessionCodec::with_salt(ring, &opts.salt, None));
    let auth = Arc::new(SessionAuthHash::new(ring));
    let progress = progress.unwrap_or_else(no_progress);
    let walk = Walk::plan(store.as_ref(), opts, now).await?;
    let mut tasks = tokio::task::JoinSet::new();
    for span in walk.spans.clone() {
        let (store, codec, auth, progress, batch, users, walk) = (
            Arc::clone(&store),
            Arc::clone(&codec),
            Arc::clone(&auth),
            Arc::clone(&progress),
            opts.batch.max(1),
            opts.users.clone(),
            walk.clone(),
        );
        tasks.spawn(async move {
            let mut per_key: HashMap<KeyId, u64> = HashMap::new();
            let (mut unverifiable, mut expired) = (0u64, 0u64);
            let mut pager = Pager::new(span, walk.live_at);
            loop {
                walk.admit(batch).await;
                let (rows, _) = pager.next(store.as_ref(), batch).await?;
                walk.settle(batch, rows.len());
                if rows.is_empty() {
                    break;
                }
                // The signature, as `resign` decides: a row counts under the
                // key whose signature verifies it, unverifiable when no ring
                // key does. With users, also under the key its login hash
                // was made with (for the user's current password): a row
                // signed by the primary whose login hash needs an old key
                // still needs that key.
                let mut logins: Vec<(usize, String, String)> = Vec::new();
                let mut needs: Vec<Vec<KeyId>> = Vec::with_capacity(rows.len());
                for (i, r) in rows.iter().enumerate() {
                    let mut need = Vec::new();
                    if r.is_expired_at(now) {
                        expired += 1;
                    } else {
                        match codec
                            .object_signer()
                            .timestamp_signer()
                            .unsign_at(&r.data, None, now)
                        {
                            Ok(v) => {
                                need.push(v.key_id);
                                if users.is_some() {
                                    if let Ok(d) = codec.decode_at(&r.data, now) {
                                        if let Some((id, hash)) = session_login(&d.value) {
                                            logins.push((i, id, hash.to_owned()));
                                        }
                                    }
                                }
                            }
                            Err(_) => unverifiable += 1,
                        }
                    }
                    needs.push(need);
                }
                if let (Some(users), false) = (&users, logins.is_empty()) {
                    let ids = logins.iter().map(|(_, id, _)| id.clone()).collect();
                    let passwords = password_hashes(store.as_ref(), users, ids).await?;
                    for (i, id, hash) in &logins {
                        let Some(password) = passwords.get(id) else {
                            continue;
                        };
                        if let (Ok(v), Some(need)) =
                            (auth.check_at(hash, password, now), needs.get_mut(*i))
                        {
                            if !need.contains(&v.key_id) {
                                need.push(v.key_id);
                            }
                        }
                    }
                }
                for id in needs.into_iter().flatten() {
                    *per_key.entry(id).or_default() += 1;
                }
                progress(rows.len() as u64);
                if rows.len() < batch {
                    break;
                }
            }
            Ok::<_, StoreError>((per_key, unverifiable, expired))
        });
    }
    let mut per_key: HashMap<KeyId, u64> = HashMap::new();
    let mut census = Census {
        expired: walk.expired_uncounted,
        ..Census::default()
    };
    while let Some(joined) = tasks.join_next().await {
        let (k, u, e) = joined.map_err(|_| StoreError::Task("census: a worker task failed"))??;
        for (id, n) in k {
            *per_key.entry(id).or_default() += n;
        }
        census.unverifiable += u;
        census.expired += e;
    }
    census.keys = ring
        .keys()
        .filter_map(|k| per_key.get(&k.id()).map(|n| (k.id(), k.role(), *n)))
        .collect();
    Ok(census)
}

/// Re-signs every live row whose signature a non-primary key verifies with
/// the primary, over the same `payload:timestamp` bytes (the payload is not
/// decoded for this: a key rotation changes signatures, not data), keeping
/// expiry and timestamps; with a users table, re-makes a stale
/// `_auth_user_hash` — only when it verifies, under some ring key, with the
/// user's current password hash (a session a password change invalidated stays invalid).
///
/// # Errors
/// [`StoreError`] when the store fails; what was written before stays written
/// (every row is its own compare-and-swap), and a rerun finishes the job.
pub async fn resign(
    store: Arc<dyn Store>,
    ring: &KeyRing,
    opts: &BulkOptions,
    now: OffsetDateTime,
    progress: Option<Progress>,
) -> Result<ResignSummary, StoreError> {
    let codec = Arc::new(SessionCodec::with_salt(ring, &opts.salt, None));
    let auth = Arc::new(SessionAuthHash::new(ring));
    let progress = progress.unwrap_or_else(no_progress);
    let walk = Walk::plan(store.as_ref(), opts, now).await?;
    let mut tasks = tokio::task::JoinSet::new();
    for span in walk.spans.clone() {
        let worker = Worker {
            store: Arc::clone(&store),
            codec: Arc::clone(&codec),
            auth: Arc::clone(&auth),
            opts: opts.clone(),
            now,
            walk: walk.clone(),
        };
        let progress = Arc::clone(&progress);
        tasks.spawn(async move { worker.run(span, progress).await });
    }
    let mut total = ResignSummary {
        expired: walk.expired_uncounted,
        ..ResignSummary::default()
    };
    if let Some(tally) = &opts.tally {
        tally
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .expired += walk.expired_uncounted;
    }
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        match joined
            .map_err(|_| StoreError::Task("resign: a worker task failed"))
            .and_then(|r| r)
        {
            Ok(s) => total.add(&s),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(total),
    }
}

/// How many rows each batch of a [`purge`] deletes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PurgeBatch {
    /// Every batch this many rows (at least 1).
    Rows(usize),
    /// Each batch sized to take about this long: the first [`PURGE_BATCH`]
    /// rows, each next one what the two before it deleted in that time (at
    /// most double or half the last one: a checkpoint or another process
    /// makes one batch slow now and then), between [`PURGE_BATCH_MIN`] and
    /// [`PURGE_BATCH_MAX`] rows.
    ///
    /// A batch is one transaction: its length is how long the site's own
    /// writes to the rows (on SQLite, to the whole database) may wait behind
    /// it. Its size is what a purge costs beside one big `DELETE`: each
    /// batch's commit writes again the index pages its rows touched, and
    /// their keys are spread over the whole key index, so batches of a fixed
    /// 20,000 rows made SQLite's purge of a 3M-row table 2.1 times as long
    /// as one `DELETE`, and batches of about a second 1.1 to 1.3 times.
    Timed(Duration),
}

/// What `keyroll purge` aims at when not given `--batch`: batches of about
/// a second, a fifth of the 5 s Django's SQLite connections wait for a lock
/// before they fail.
pub const PURGE_BATCH_TIME: Duration = Duration::from_secs(1);
/// The smallest batch a [`PurgeBatch::Timed`] purge shrinks to.
pub const PURGE_BATCH_MIN: usize = 1_000;
/// The largest batch a [`PurgeBatch::Timed`] purge grows to.
pub const PURGE_BATCH_MAX: usize = 1_000_000;

impl PurgeBatch {
    fn first(self) -> usize {
        match self {
            Self::Rows(n) => n.max(1),
            Self::Timed(_) => PURGE_BATCH,
        }
    }

    /// The batch after one of `rows` that took `took`, the one before it
    /// (if any) `before`.
    fn next(self, rows: usize, took: Duration, before: Option<(usize, Duration)>) -> usize {
        let Self::Timed(target) = self else {
            return rows;
        };
        let (n, t) = before.map_or((rows, took), |(n, t)| (rows.saturating_add(n), took + t));
        let scaled = if t.is_zero() {
            rows.saturating_mul(2)
        } else {
            // Saturating float-to-int conversion: at worst usize::MAX, clamped below.
            (n as f64 * target.as_secs_f64() / t.as_secs_f64()) as usize
        };
        scaled
            .clamp(rows / 2, rows.saturating_mul(2))
            .clamp(PURGE_BATCH_MIN, PURGE_BATCH_MAX)
    }
}

/// Deletes the rows expired at `now` in batches (each one short statement
/// or transaction: the live site is never locked out for long; see
/// [`PurgeBatch`]), at most `max_rate` rows a second; `purged` counts what
/// is deleted as it goes (what an interrupted purge had done), `progress` is
/// told after every batch. Memory stays flat however many rows go.
///
/// # Errors
/// [`StoreError`] when the store fails; what was deleted before stays deleted.
pub async fn purge(
    store: &dyn Store,
    now: OffsetDateTime,
    batch: PurgeBatch,
    max_rate: Option<u64>,
    purged: Arc<std::sync::atomic::AtomicU64>,
    progress: Option<Progress>,
) -> Result<u64, StoreError> {
    let throttle = max_rate.map(Throttle::new);
    // Throttled, a batch is at most a second's worth of rows: no bursts.
    let cap = max_rate.map_or(usize::MAX, |r| usize::try_from(r).unwrap_or(usize::MAX));
    let mut size = batch.first().min(cap);
    let mut before = None;
    let mut total = 0u64;
    let mut from = crate::store::PurgeFrom::Start;
    loop {
        if let Some(t) = &throttle {
            t.admit(size as u64).await;
        }
        let started = std::time::Instant::now();
        let done = store.purge_expired_batch(now, &from, size).await?;
        let took = started.elapsed();
        let n = done.deleted;
        if let Some(t) = &throttle {
            // A store that deletes fewer than asked (Redis at most 1,000 a
            // batch, MariaDB 20,000) is throttled by what it deleted.
            t.refund((size as u64).saturating_sub(n));
        }
        total += n;
        purged.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        if let Some(p) = &progress {
            p(n);
        }
        if done.next == crate::store::PurgeFrom::Done {
            return Ok(total);
        }
        from = done.next;
        let next = batch.next(size, took, before).min(cap);
        before = Some((size, took));
        size = next;
    }
}

/// A live-only locked scan locks and lets go each expired row it steps
/// over; a scan then locking read of the live rows' keys costs an index
/// descent per live row instead. Measured on MariaDB: 1M rows, all live,
/// the locked scan took 0.75 times as long; 2M rows, one in ten live, 1.1
/// times. About 0.5 µs an expired row against 3.3 µs a live one: even at 7
/// expired rows a live one. Above that the walk does not lock its scan.
const LOCKED_SCAN_MAX_EXPIRED_PER_LIVE: u64 = 7;

/// The largest page a re-sign reads locked: its rows are held from the read
/// through the signing to the commit (about two batches' time), so a larger
/// `--batch` is read, then locked and compared in chunks, as without a
/// locked scan.
const LOCKED_SCAN_MAX_BATCH: usize = 1000;

/// What one run walks: the workers' spans, whether expired rows are
/// skipped, the expired rows counted instead of walked, and the throttle.
#[derive(Clone)]
struct Walk {
    spans: Vec<Span>,
    /// `Some(now)`: walk live rows only.
    live_at: Option<OffsetDateTime>,
    /// Expired rows of the scope, counted through the store's index (0 when
    /// they are walked and counted one by one).
    expired_uncounted: u64,
    /// Are live rows few among the ones a live-only scan steps over (fewer
    /// than one in eight)? See [`LOCKED_SCAN_MAX_EXPIRED_PER_LIVE`].
    mostly_expired: bool,
    throttle: Option<Arc<Throttle>>,
}

impl Walk {
    async fn plan(
        store: &dyn Store,
        opts: &BulkOptions,
        now: OffsetDateTime,
    ) -> Result<Self, StoreError> {
        let scope = opts.scope()?;
        let jobs = opts.jobs.max(1);
        let mut mostly_expired = false;
        let (live_at, expired_uncounted) = if opts.include_expired {
            (None, 0)
        } else {
            let counts = match opts.counts {
                Some(c) => c,
                None => store.count_rows(&scope, now).await?,
            };
            mostly_expired =
                counts.expired > counts.live.saturating_mul(LOCKED_SCAN_MAX_EXPIRED_PER_LIVE);
            (Some(now), counts.expired)
        };
        let stored = match (opts.shard, store.storage_order()) {
            // Shards are key ranges: the same on every host, whatever the
            // table's positions are when each starts.
            (None, Some(order)) => order.stored_span().await?,
            _ => None,
        };
        let spans = match stored {
            Some((lo, hi)) => Span::stored(lo, hi, jobs),
            None => scope
                .split_within(jobs)
                .into_iter()
                .map(Span::Keys)
                .collect(),
        };
        Ok(Self {
            spans,
            live_at,
            expired_uncounted,
            mostly_expired,
            throttle: opts.max_rate.map(|r| Arc::new(Throttle::new(r))),
        })
    }

    /// Waits until `rows` more rows may be read under the throttle.
    async fn admit(&self, rows: usize) {
        if let Some(t) = &self.throttle {
            t.admit(rows as u64).await;
        }
    }

    /// Of the `asked` rows admitted, only `got` were read.
    fn settle(&self, asked: usize, got: usize) {
        if let Some(t) = &self.throttle {
            t.refund(asked.saturating_sub(got) as u64);
        }
    }
}

/// A worker's part of the table.
#[derive(Clone, Debug)]
enum Span {
    /// A key range, walked in key order.
    Keys(KeyRange),
    /// Positions in storage order after `after` up to `until` inclusive
    /// (`None`: open); the last span is open, so rows inserted during the
    /// run are walked too.
    Stored {
        after: Option<i64>,
        until: Option<i64>,
    },
}

impl Span {
    /// `[lo, hi]` in `jobs` consecutive spans, the first and last open.
    fn stored(lo: i64, hi: i64, jobs: usize) -> Vec<Span> {
        let width = i128::from(hi) - i128::from(lo) + 1;
        let jobs = i128::try_from(jobs).unwrap_or(1).clamp(1, width.max(1));
        let mut out = Vec::new();
        let mut after = None;
        for i in 1..jobs {
            let b = i128::from(lo) - 1 + width * i / jobs;
            let until = i64::try_from(b).ok();
            out.push(Span::Stored { after, until });
            after = until;
        }
        out.push(Span::Stored { after, until: None });
        out
    }
}

/// All workers together read (or delete) at most `rate` rows a second: a
/// batch waits until the rows before it were due. A batch is admitted at the
/// size it asks for, so that workers starting together do not all go at
/// once, and refunded what it did not get: the rows done set the pace.
struct Throttle {
    rate: f64,
    start: tokio::time::Instant,
    admitted: std::sync::Mutex<u64>,
}

impl Throttle {
    fn new(rate: u64) -> Self {
        Self {
            rate: rate.max(1) as f64,
            start: tokio::time::Instant::now(),
            admitted: std::sync::Mutex::new(0),
        }
    }

    async fn admit(&self, rows: u64) {
        let before = {
            let mut n = self
                .admitted
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let before = *n;
            *n += rows;
            before
        };
        let due = self.start + std::time::Duration::from_secs_f64(before as f64 / self.rate);
        tokio::time::sleep_until(due).await;
    }

    /// `rows` admitted were not read (or deleted) after all.
    fn refund(&self, rows: u64) {
        let mut n = self
            .admitted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *n = n.saturating_sub(rows);
    }
}

/// Walks a span in batches, live rows only when `live_at` is given.
struct Pager {
    span: Span,
    live_at: Option<OffsetDateTime>,
    key_cursor: Option<String>,
    position: Option<i64>,
}

impl Pager {
    fn new(span: Span, live_at: Option<OffsetDateTime>) -> Self {
        Self {
            span,
            live_at,
            key_cursor: None,
            position: None,
        }
    }

    /// The next batch of a key-order span, locked until written (see
    /// [`LockedScan`]); `None` for a span walked in storage order.
    async fn next_locked(
        &mut self,
        scan: &dyn LockedScan,
        batch: usize,
    ) -> Result<Option<(Vec<SessionRecord>, Box<dyn LockedBatch>)>, StoreError> {
        let Span::Keys(range) = &self.span else {
            return Ok(None);
        };
        let after = self.key_cursor.as_deref();
        let (rows, held) = scan.scan_locked(range, after, batch, self.live_at).await?;
        if let Some(last) = rows.last() {
            self.key_cursor = Some(last.key.clone());
        }
        Ok(Some((rows, held)))
    }

    /// The next batch: its rows, and their positions in storage order when
    /// the span is walked in that order (empty otherwise).
    async fn next(
        &mut self,
        store: &dyn Store,
        batch: usize,
    ) -> Result<(Vec<SessionRecord>, Vec<i64>), StoreError> {
        match &self.span {
            Span::Keys(range) => {
                let after = self.key_cursor.as_deref();
                let rows = match self.live_at {
                    Some(now) => store.scan_live(range, after, batch, now).await?,
                    None => store.scan(range, after, batch).await?,
                };
                if let Some(last) = rows.last() {
                    self.key_cursor = Some(last.key.clone());
                }
                Ok((rows, Vec::new()))
            }
            Span::Stored { after, until } => {
                let order = store
                    .storage_order()
                    .ok_or(StoreError::Unsupported("this store has no storage order"))?;
                let from = self.position.or(*after);
                let found = order.scan_stored(from, *until, batch, self.live_at).await?;
                if let Some((last, _)) = found.last() {
                    self.position = Some(*last);
                }
                let (positions, rows) = found.into_iter().unzip();
                Ok((rows, positions))
            }
        }
    }
}

/// The current password hashes of the users `ids`, from `users`.
async fn password_hashes(
    store: &dyn Store,
    users: &Users,
    ids: BTreeSet<String>,
) -> Result<HashMap<String, String>, StoreError> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    match users {
        Users::Map(map) => Ok(ids
            .into_iter()
            .filter_map(|id| map.get(&id).map(|p| (id, p.clone())))
            .collect()),
        Users::Table(table) => {
            let ids: Vec<String> = ids.into_iter().collect();
            store
                .user_table()
                .ok_or(StoreError::Unsupported("this store has no users table"))?
                .password_hashes(table, &ids)
                .await
        }
    }
}

struct Worker {
    store: Arc<dyn Store>,
    codec: Arc<SessionCodec>,
    auth: Arc<SessionAuthHash>,
    opts: BulkOptions,
    now: OffsetDateTime,
    walk: Walk,
}

impl Worker {
    async fn run(&self, span: Span, progress: Progress) -> Result<ResignSummary, StoreError> {
        let batch = self.opts.batch.max(1);
        let mut summary = ResignSummary::default();
        let mut pager = Pager::new(span, self.walk.live_at);
        // At most one batch's write in flight while the next batch is read
        // and signed; a batch is counted (and tallied) once it is written.
        let mut writing: Option<tokio::task::JoinHandle<Result<ResignSummary, StoreError>>> = None;
        // Where the store has it, each batch is read locked and written in
        // the same transaction. Not with users: looking their passwords up
        // in the page's transaction measured slower than the unlocked scan
        // (MariaDB, 1M rows: 69-79 s against 63-64 s), and on a second
        // connection while holding the page's could wait on the pool for
        // ever. Nor in a dry run, where most rows are expired (see the
        // constant), when expired rows are walked too (they would be
        // locked), nor for pages above `LOCKED_SCAN_MAX_BATCH` rows.
        let lockable = self.opts.users.is_none()
            && !self.opts.dry_run
            && !self.walk.mostly_expired
            && self.walk.live_at.is_some()
            && batch <= LOCKED_SCAN_MAX_BATCH;
        let locked = if lockable {
            self.store.locked_scan()
        } else {
            None
        };
        loop {
            self.walk.admit(batch).await;
            let page = match locked {
                Some(scan) => pager.next_locked(scan, batch).await?,
                None => None,
            };
            let (rows, positions, mut held) = match page {
                Some((rows, held)) => (rows, Vec::new(), Some(held)),
                None => {
                    let (rows, positions) = pager.next(self.store.as_ref(), batch).await?;
                    (rows, positions, None)
                }
            };
            self.walk.settle(batch, rows.len());
            let mut b = ResignSummary::default();
            if rows.is_empty() {
                break;
            }
            // Verify each live row once. Re-signing is a matter of the
            // signature: a row whose `payload:timestamp` verifies under a ring
            // key gets the primary's signature over the same bytes (payload and
            // timestamp text kept exactly). Without users to re-hash the
            // payload is never decoded (no base64, inflate or JSON); with users
            // it is, and a row that verifies but does not decode is re-signed
            // as it is (its hash cannot be read). Only rows no ring key
            // verifies are unverifiable, as in `census`.
            let signature = |r: &SessionRecord| {
                self.codec
                    .object_signer()
                    .timestamp_signer()
                    .resign_at(&r.data, None, self.now)
                    .map(|v| Checked::Resigned(v.value))
                    .map_err(|_| ())
            };
            let decoded: Vec<Option<Result<Checked, ()>>> = rows
                .iter()
                .map(|r| {
                    (!r.is_expired_at(self.now)).then(|| {
                        if self.opts.users.is_some() {
                            self.codec
                                .resign_at(&r.data, self.now)
                                .map(Checked::Decoded)
                                .or_else(|_| signature(r))
                        } else {
                            signature(r)
                        }
                    })
                })
                .collect();
            let passwords = match &self.opts.users {
                Some(users) => {
                    let ids = decoded
                        .iter()
                        .filter_map(|d| match d {
                            Some(Ok(Checked::Decoded(v))) => {
                                session_login(&v.value.data).map(|(id, _)| id)
                            }
                            _ => None,
                        })
                        .collect();
                    password_hashes(self.store.as_ref(), users, ids).await?
                }
                None => HashMap::new(),
            };
            let passwords = &passwords;
            let mut swaps = Vec::new();
            let mut swapped_at = Vec::new();
            let mut rehashed_in = Vec::new();
            let read = rows.len();
            // The rows are not needed after this: their key and data move
            // into the swaps instead of being copied.
            let mut positions = positions.into_iter();
            for (r, d) in rows.into_iter().zip(decoded) {
                let position = positions.next();
                let plan = match d {
                    None => {
                        b.expired += 1;
                        continue;
                    }
                    Some(Err(())) => Plan::Unverifiable,
                    Some(Ok(Checked::Resigned(Some(data)))) => Plan::Rewrite {
                        data,
                        rehashed: false,
                    },
                    Some(Ok(Checked::Resigned(None))) => Plan::Current,
                    Some(Ok(Checked::Decoded(v))) => self.plan(v, passwords),
                };
                match plan {
                    Plan::Unverifiable => b.unverifiable += 1,
                    Plan::Current => b.already_current += 1,
                    Plan::Rewrite { data, rehashed } => {
                        rehashed_in.push(rehashed);
                        swapped_at.extend(position);
                        swaps.push(Swap {
                            key: r.key,
                            expected: r.data,
                            new: data,
                        });
                    }
                }
            }
            // The previous batch's write is awaited only now: its commit
            // overlapped this batch's read and signing.
            if let Some(w) = writing.take() {
                let done = w
                    .await
                    .map_err(|_| StoreError::Task("resign: a write task failed"))??;
                self.count(&mut summary, &done);
            }
            if self.opts.dry_run {
                b.resigned += swaps.len() as u64;
                b.auth_rehashed += rehashed_in.iter().filter(|r| **r).count() as u64;
                self.count(&mut summary, &b);
            } else if swaps.is_empty() {
                // Nothing to write: the page's rows are let go now.
                if let Some(held) = held.take() {
                    held.write(&[]).await?;
                }
                self.count(&mut summary, &b);
            } else {
                let store = Arc::clone(&self.store);
                writing = Some(tokio::spawn(async move {
                    // Rows read locked are written as they are (nobody else
                    // could change them); rows found in storage order are
                    // swapped by position.
                    let applied = match (held, store.storage_order()) {
                        (Some(held), _) => {
                            held.write(&swaps).await?;
                            vec![true; swaps.len()]
                        }
                        (None, Some(order)) if swapped_at.len() == swaps.len() => {
                            order
                                .compare_and_swap_stored(
                                    swapped_at.into_iter().zip(swaps).collect(),
                                )
                                .await?
                        }
                        _ => store.compare_and_swap_many(&swaps).await?,
                    };
                    for (ok, rehashed) in applied.iter().zip(&rehashed_in) {
                        if *ok {
                            b.resigned += 1;
                            b.auth_rehashed += u64::from(*rehashed);
                        } else {
                            b.conflicts += 1;
                        }
                    }
                    Ok::<_, StoreError>(b)
                }));
            }
            progress(read as u64);
            if read < batch {
                break;
            }
        }
        if let Some(w) = writing.take() {
            let done = w
                .await
                .map_err(|_| StoreError::Task("resign: a write task failed"))??;
            self.count(&mut summary, &done);
        }
        Ok(summary)
    }

    /// Adds a written batch to the worker's summary and the run's tally.
    fn count(&self, summary: &mut ResignSummary, b: &ResignSummary) {
        summary.add(b);
        if let Some(tally) = &self.opts.tally {
            tally
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .add(b);
        }
    }

    fn plan(
        &self,
        v: Verified<keyroll::ResignedSession>,
        passwords: &HashMap<String, String>,
    ) -> Plan {
        let timestamp = v.timestamp;
        let keyroll::ResignedSession {
            data: mut map,
            fresh,
        } = v.value;
        let remade = session_login(&map).and_then(|(id, stored)| {
            let password = passwords.get(&id)?;
            match self.auth.judge_at(stored, password, self.now) {
                LoginCheck::Stale { remade, .. } => Some(remade),
                _ => None,
            }
        });
        if let Some(remade) = remade {
            map.insert(SESSION_USER_HASH.to_owned(), Value::String(remade));
            let ts = timestamp.unwrap_or_else(|| self.now.unix_timestamp());
            return match self
                .codec
                .object_signer()
                .dumps_with_timestamp(&Value::Object(map), ts)
            {
                Ok(data) => Plan::Rewrite {
                    data,
                    rehashed: true,
                },
                Err(_) => Plan::Unverifiable,
            };
        }
        match fresh {
            Some(data) => Plan::Rewrite {
                data,
                rehashed: false,
            },
            None => Plan::Current,
        }
    }
}

/// A live row after its one verification.
enum Checked {
    /// Decoded (users to re-hash): the data, and the re-signed token when stale.
    Decoded(Verified<keyroll::ResignedSession>),
    /// The signature checked, the payload not decoded: the re-signed token when stale.
    Resigned(Option<String>),
}

enum Plan {
    Unverifiable,
    Current,
    Rewrite { data: String, rehashed: bool },
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn a_fixed_batch_stays_fixed() {
        let b = PurgeBatch::Rows(500);
        assert_eq!(b.first(), 500);
        assert_eq!(b.next(500, Duration::from_secs(9), None), 500);
        assert_eq!(PurgeBatch::Rows(0).first(), 1);
    }

    #[test]
    fn a_timed_batch_grows_and_shrinks_at_most_twofold() {
        let b = PurgeBatch::Timed(SECOND);
        assert_eq!(b.first(), PURGE_BATCH);
        // 20,000 rows in 100 ms: ten times too few, doubled only.
        assert_eq!(b.next(20_000, Duration::from_millis(100), None), 40_000);
        // 40,000 rows in 4 s: halved only.
        assert_eq!(b.next(40_000, Duration::from_secs(4), None), 20_000);
        // 100,000 rows in 800 ms: scaled to a second's worth.
        assert_eq!(b.next(100_000, Duration::from_millis(800), None), 125_000);
        // Nothing measurable: doubled.
        assert_eq!(b.next(30_000, Duration::ZERO, None), 60_000);
    }

    #[test]
    fn a_timed_batch_is_sized_from_the_last_two() {
        let b = PurgeBatch::Timed(SECOND);
        // One slow batch (a checkpoint ran in it) beside a quick one: the
        // rate of both, 250,000 rows in 2 s.
        let before = Some((125_000, Duration::from_millis(600)));
        assert_eq!(
            b.next(125_000, Duration::from_millis(1400), before),
            125_000
        );
    }

    #[test]
    fn a_timed_batch_stays_within_its_bounds() {
        let b = PurgeBatch::Timed(SECOND);
        assert_eq!(b.next(PURGE_BATCH_MIN, SECOND * 100, None), PURGE_BATCH_MIN);
        assert_eq!(
            b.next(PURGE_BATCH_MAX, Duration::from_millis(1), None),
            PURGE_BATCH_MAX
        );
        assert_eq!(
            b.next(usize::MAX, Duration::from_nanos(1), None),
            PURGE_BATCH_MAX
        );
    }

    /// The throttle counts what batches got, not what they asked for: a
    /// store that deletes 100 of the 1,000 rows asked (Redis caps its
    /// batches) goes on after 100 rows' time, not 1,000's.
    #[tokio::test(start_paused = true)]
    async fn the_throttle_is_refunded_what_a_batch_did_not_get() {
        let t = Throttle::new(1_000);
        let start = tokio::time::Instant::now();
        t.admit(1_000).await;
        assert_eq!(
            start.elapsed(),
            Duration::ZERO,
            "the first batch goes at once"
        );
        t.refund(900);
        t.admit(1_000).await;
        assert_eq!(start.elapsed(), Duration::from_millis(100));
        t.admit(500).await;
        assert_eq!(start.elapsed(), Duration::from_millis(1_100));
        // Never below nothing.
        t.refund(u64::MAX);
        t.admit(1).await;
        assert_eq!(start.elapsed(), Duration::from_millis(1_100));
    }
}
