//! Census and bulk re-signing of a whole session table.
//!
//! Both walk the table in key order, in batches, with a cursor: memory stays
//! flat however large the table. `resign` writes with compare-and-swap, so it
//! never overwrites a row a user changed meanwhile, and it is idempotent:
//! killed at any moment and run again, it finishes the job.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use keyroll::{
    session_login, KeyId, KeyRing, LoginCheck, Role, SessionAuthHash, SessionCodec, Verified,
    SESSION_USER_HASH,
};
use serde_json::Value;
use time::OffsetDateTime;

use crate::store::{KeyRange, SessionRecord, Store, StoreError, Swap};

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
    let mut tasks = tokio::task::JoinSet::new();
    for range in KeyRange::split(opts.jobs) {
        let (store, codec, auth, progress, batch, users) = (
            Arc::clone(&store),
            Arc::clone(&codec),
            Arc::clone(&auth),
            Arc::clone(&progress),
            opts.batch.max(1),
            opts.users.clone(),
        );
        tasks.spawn(async move {
            let mut per_key: HashMap<KeyId, u64> = HashMap::new();
            let (mut unverifiable, mut expired) = (0u64, 0u64);
            let mut pager = Pager::new(range);
            loop {
                let rows = pager.next(store.as_ref(), batch).await?;
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
    let mut census = Census::default();
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
    let mut tasks = tokio::task::JoinSet::new();
    for range in KeyRange::split(opts.jobs) {
        let worker = Worker {
            store: Arc::clone(&store),
            codec: Arc::clone(&codec),
            auth: Arc::clone(&auth),
            opts: opts.clone(),
            now,
        };
        let progress = Arc::clone(&progress);
        tasks.spawn(async move { worker.run(range, progress).await });
    }
    let mut total = ResignSummary::default();
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

/// Walks a key range in batches: in the store's own storage order when it
/// has one and the range is the whole table (sequential pages), else in key
/// order with a key cursor.
struct Pager {
    range: KeyRange,
    started: bool,
    stored: Option<i64>,
    after: Option<String>,
}

impl Pager {
    fn new(range: KeyRange) -> Self {
        Self {
            range,
            started: false,
            stored: None,
            after: None,
        }
    }

    async fn next(
        &mut self,
        store: &dyn Store,
        batch: usize,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        if !self.started {
            self.started = true;
            if self.range == KeyRange::all() {
                if let Some((rows, cursor)) = match store.storage_order() {
                    Some(order) => order.scan_stored(None, batch).await?,
                    None => None,
                } {
                    self.stored = Some(cursor);
                    return Ok(rows);
                }
            }
        }
        if let Some(cursor) = self.stored {
            let order = store
                .storage_order()
                .ok_or(StoreError::Unsupported("this store has no storage order"))?;
            return Ok(match order.scan_stored(Some(cursor), batch).await? {
                Some((rows, next)) => {
                    self.stored = Some(next);
                    rows
                }
                None => Vec::new(),
            });
        }
        let rows = store
            .scan(&self.range, self.after.as_deref(), batch)
            .await?;
        if let Some(last) = rows.last() {
            self.after = Some(last.key.clone());
        }
        Ok(rows)
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
}

impl Worker {
    async fn run(&self, range: KeyRange, progress: Progress) -> Result<ResignSummary, StoreError> {
        let batch = self.opts.batch.max(1);
        let mut summary = ResignSummary::default();
        let mut pager = Pager::new(range);
        loop {
            let rows = pager.next(self.store.as_ref(), batch).await?;
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
            let mut rehashed_in = Vec::new();
            for (r, d) in rows.iter().zip(decoded) {
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
                        swaps.push(Swap {
                            key: r.key.clone(),
                            expected: r.data.clone(),
                            new: data,
                        });
                    }
                }
            }
            if self.opts.dry_run {
                b.resigned += swaps.len() as u64;
                b.auth_rehashed += rehashed_in.iter().filter(|r| **r).count() as u64;
            } else if !swaps.is_empty() {
                let applied = self.store.compare_and_swap_many(&swaps).await?;
                for (ok, rehashed) in applied.iter().zip(&rehashed_in) {
                    if *ok {
                        b.resigned += 1;
                        b.auth_rehashed += u64::from(*rehashed);
                    } else {
                        b.conflicts += 1;
                    }
                }
            }
            summary.add(&b);
            if let Some(tally) = &self.opts.tally {
                tally
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .add(&b);
            }
            progress(rows.len() as u64);
            if rows.len() < batch {
                break;
            }
        }
        Ok(summary)
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
