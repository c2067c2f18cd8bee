//! The session engine: load, verify against the ring, re-sign stale data with
//! the primary (compare-and-swap, so a concurrent write always wins), save.
//!
//! Loads go through a small bounded cache of verified sessions (see
//! [`SessionEngine::with_cache_limits`]): a stored string that is byte for
//! byte one the same ring already verified with its primary key is not
//! verified and parsed again.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};
use std::time::Duration;

use keyroll::{
    KeyId, KeyRing, PasswordResetTokens, Role, SessionAuthHash, SessionCodec, SessionData,
    SignedCookie, VerifyError,
};
use serde_json::Value;
use time::OffsetDateTime;

use crate::store::{is_valid_session_key, SessionRecord, Store, StoreError};

/// How many times a stale session is re-read after losing a compare-and-swap.
const CAS_ATTEMPTS: usize = 3;

/// Generations of every [`PreparedRing`] made in this process: unique, so a
/// cache entry of one snapshot can never match another (even after an
/// engine switches between ring sources).
static GENERATIONS: AtomicU64 = AtomicU64::new(1);

/// How many per-name or per-salt derivations one snapshot keeps. Names and
/// salts come from code, so a handful; past the bound a derivation is made
/// for the call and not kept, so nothing grows without limit.
const MAX_DERIVED: usize = 32;

/// A small bounded map of things derived from one ring, made on first use.
/// The first key asked for (in practice the only one: the engine's salt, the
/// layer's max-age) is read without a lock.
struct Derived<K, V> {
    first: OnceLock<(K, Arc<V>)>,
    /// The others. Also the lock every insertion (`first` included) takes.
    made: RwLock<Vec<(K, Arc<V>)>>,
}

impl<K, V> Default for Derived<K, V> {
    fn default() -> Self {
        Self {
            first: OnceLock::new(),
            made: RwLock::new(Vec::new()),
        }
    }
}

impl<K, V> Derived<K, V> {
    /// The value for the key `is` recognises, made by `make` (with the key
    /// `key` builds) the first time.
    fn get(
        &self,
        is: impl Fn(&K) -> bool,
        key: impl FnOnce() -> K,
        make: impl FnOnce() -> V,
    ) -> Arc<V> {
        if let Some(v) = self.find(&is) {
            return v;
        }
        self.keep(is, key, Arc::new(make()))
    }

    /// As [`Derived::get`], for a `make` that may fail (nothing is kept then).
    fn try_get(
        &self,
        is: impl Fn(&K) -> bool,
        key: impl FnOnce() -> K,
        make: impl FnOnce() -> Option<V>,
    ) -> Option<Arc<V>> {
        if let Some(v) = self.find(&is) {
            return Some(v);
        }
        Some(self.keep(is, key, Arc::new(make()?)))
    }

    fn find(&self, is: impl Fn(&K) -> bool) -> Option<Arc<V>> {
        if let Some((k, v)) = self.first.get() {
            if is(k) {
                return Some(Arc::clone(v));
            }
        }
        let made = match self.made.read() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        made.iter().find(|(k, _)| is(k)).map(|(_, v)| Arc::clone(v))
    }

    /// Keeps `v` (unless another caller kept one meanwhile: that one is
    /// returned, so everyone shares one) while under the bound.
    fn keep(&self, is: impl Fn(&K) -> bool, key: impl FnOnce() -> K, v: Arc<V>) -> Arc<V> {
        let mut made = match self.made.write() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        match self.first.get() {
            Some((k, kept)) if is(k) => return Arc::clone(kept),
            Some(_) => {}
            None => {
                // Only ever set under the write lock: nobody can race this.
                let _ = self.first.set((key(), Arc::clone(&v)));
                return v;
            }
        }
        if let Some((_, kept)) = made.iter().find(|(k, _)| is(k)) {
            return Arc::clone(kept);
        }
        if made.len() + 1 < MAX_DERIVED {
            made.push((key(), Arc::clone(&v)));
        }
        v
    }

    fn len(&self) -> usize {
        let others = match self.made.read() {
            Ok(m) => m.len(),
            Err(poisoned) => poisoned.into_inner().len(),
        };
        others + usize::from(self.first.get().is_some())
    }
}

/// One key ring and everything the hot paths derive from it, prepared once
/// per ring: immutable, shared by every request that starts while it is in
/// force, and replaced as a whole (one atomic swap) when the ring is
/// reloaded. Parts that depend on a name, salt or age (session codecs,
/// signed-cookie signers, reset tokens with a timeout) are made on first use
/// and kept for the life of the snapshot, so no request derives a key.
///
/// ```
/// use std::sync::Arc;
/// use keyroll::{KeyRing, Secret};
/// use keyroll_store::PreparedRing;
/// let a = PreparedRing::new(KeyRing::new(Secret::from("a-long-secret-key-0123456789abcdef")));
/// let codec = a.session_codec(keyroll::DB_SESSION_SALT);
/// assert!(Arc::ptr_eq(&codec, &a.session_codec(keyroll::DB_SESSION_SALT)));
/// let b = PreparedRing::new(KeyRing::new(Secret::from("a-long-secret-key-0123456789abcdef")));
/// assert_ne!(a.generation(), b.generation());
/// ```
pub struct PreparedRing {
    ring: Arc<KeyRing>,
    generation: u64,
    auth: OnceLock<Arc<SessionAuthHash>>,
    /// By timeout (`None`: Django's default).
    reset: Derived<Option<Duration>, PasswordResetTokens>,
    /// By salt and age limit.
    codecs: Derived<(String, Option<Duration>), SessionCodec>,
    /// By cookie name, salt and whether the legacy salt form is read.
    cookies: Derived<(String, String, bool), SignedCookie>,
}

impl fmt::Debug for PreparedRing {
    // Key ids and roles only: never secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<String> = self
            .ring
            .keys()
            .map(|k| format!("{}:{}", k.id(), k.role()))
            .collect();
        f.debug_struct("PreparedRing")
            .field("generation", &self.generation)
            .field("keys", &keys)
            .field("codecs", &self.codecs.len())
            .field("cookies", &self.cookies.len())
            .finish_non_exhaustive()
    }
}

impl PreparedRing {
    /// A snapshot of `ring`, with a generation no other snapshot has.
    pub fn new(ring: KeyRing) -> Self {
        Self::from_arc(Arc::new(ring))
    }

    /// As [`PreparedRing::new`], for a ring already shared.
    pub fn from_arc(ring: Arc<KeyRing>) -> Self {
        Self {
            ring,
            generation: GENERATIONS.fetch_add(1, Ordering::Relaxed),
            auth: OnceLock::new(),
            reset: Derived::default(),
            codecs: Derived::default(),
            cookies: Derived::default(),
        }
    }

    /// The ring.
    pub fn ring(&self) -> &Arc<KeyRing> {
        &self.ring
    }

    /// This snapshot's generation: unique in the process, larger for every
    /// later snapshot.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// How many derived parts (codecs, signers, reset tokens, the login
    /// hash) this snapshot has made and keeps. Each is made once, on first
    /// use, and at most a few dozen are kept.
    pub fn derived_count(&self) -> usize {
        self.codecs.len()
            + self.cookies.len()
            + self.reset.len()
            + usize::from(self.auth.get().is_some())
    }

    /// The codec of database session rows with `salt` (no age limit: a row's
    /// expiry is the row's).
    pub fn session_codec(&self, salt: &str) -> Arc<SessionCodec> {
        self.codec(salt, None)
    }

    /// The codec of Django's signed-cookie sessions valid for `max_age`.
    pub fn cookie_session_codec(&self, max_age: Duration) -> Arc<SessionCodec> {
        self.codec(keyroll::COOKIE_SESSION_SALT, Some(max_age))
    }

    fn codec(&self, salt: &str, max_age: Option<Duration>) -> Arc<SessionCodec> {
        self.codecs.get(
            |(s, m)| s == salt && *m == max_age,
            || (salt.to_owned(), max_age),
            || SessionCodec::with_salt(&self.ring, salt, max_age),
        )
    }

    /// Django's session auth hash (the login hash) under this ring.
    pub fn auth_hash(&self) -> &Arc<SessionAuthHash> {
        self.auth
            .get_or_init(|| Arc::new(SessionAuthHash::new(&self.ring)))
    }

    /// Password-reset tokens under this ring, with `timeout` (`None`:
    /// Django's default, three days).
    pub fn reset_tokens(&self, timeout: Option<Duration>) -> Arc<PasswordResetTokens> {
        self.reset.get(
            |t| *t == timeout,
            || timeout,
            || {
                let t = PasswordResetTokens::new(&self.ring);
                match timeout {
                    Some(d) => t.with_timeout(d),
                    None => t,
                }
            },
        )
    }

    /// The signer of cookie `name` with `salt`, reading the legacy salt form
    /// or not; `None` when no signer can be made for them.
    pub fn signed_cookie(
        &self,
        name: &str,
        salt: &str,
        read_legacy: bool,
    ) -> Option<Arc<SignedCookie>> {
        self.cookies.try_get(
            |(n, s, l)| n == name && s == salt && *l == read_legacy,
            || (name.to_owned(), salt.to_owned(), read_legacy),
            || {
                SignedCookie::new(&self.ring, name, salt)
                    .ok()
                    .map(|c| c.reading_legacy(read_legacy))
            },
        )
    }
}

/// Where the ring snapshot in force comes from. An operation reads it once,
/// at its start, and works under that one snapshot throughout; switching to
/// a new ring is the source handing out a new snapshot (one atomic swap), so
/// nothing has to be told.
pub trait RingSource: Send + Sync + fmt::Debug {
    /// The snapshot in force now.
    fn current(&self) -> Arc<PreparedRing>;
}

/// A ring that never changes.
#[derive(Clone, Debug)]
pub struct FixedRing(Arc<PreparedRing>);

impl FixedRing {
    /// A fixed source of `ring`'s snapshot.
    pub fn new(ring: KeyRing) -> Self {
        Self(Arc::new(PreparedRing::new(ring)))
    }
}

impl From<Arc<PreparedRing>> for FixedRing {
    fn from(prepared: Arc<PreparedRing>) -> Self {
        Self(prepared)
    }
}

impl RingSource for FixedRing {
    fn current(&self) -> Arc<PreparedRing> {
        Arc::clone(&self.0)
    }
}

/// A session loaded through the engine.
#[derive(Clone, PartialEq)]
pub struct LoadedSession {
    /// The session key.
    pub key: String,
    /// The verified data.
    pub data: SessionData,
    /// When the session expires.
    pub expires: OffsetDateTime,
    /// The key that verified the stored data (before any re-sign).
    pub key_id: KeyId,
    /// Its role; anything but primary was re-signed on this load.
    pub role: Role,
    /// True when this load re-signed the row with the primary key.
    pub resigned: bool,
}

/// As [`LoadedSession`], with the data shared with the engine's cache
/// ([`SessionEngine::load_shared`]): a cached load copies nothing; change
/// the data with [`Arc::make_mut`].
#[derive(Clone, PartialEq)]
pub struct SharedSession {
    /// The session key.
    pub key: String,
    /// The verified data.
    pub data: Arc<SessionData>,
    /// When the session expires.
    pub expires: OffsetDateTime,
    /// The key that verified the stored data (before any re-sign).
    pub key_id: KeyId,
    /// Its role; anything but primary was re-signed on this load.
    pub role: Role,
    /// True when this load re-signed the row with the primary key.
    pub resigned: bool,
}

impl From<SharedSession> for LoadedSession {
    fn from(s: SharedSession) -> Self {
        LoadedSession {
            key: s.key,
            data: Arc::try_unwrap(s.data).unwrap_or_else(|shared| (*shared).clone()),
            expires: s.expires,
            key_id: s.key_id,
            role: s.role,
            resigned: s.resigned,
        }
    }
}

/// The session key is a bearer credential and the data is private: the
/// `Debug` forms show a key prefix and the number of entries.
fn debug_session(
    f: &mut std::fmt::Formatter<'_>,
    name: &str,
    key: &str,
    entries: usize,
    rest: (OffsetDateTime, KeyId, Role, bool),
) -> std::fmt::Result {
    let shown = key.get(..6).unwrap_or("");
    f.debug_struct(name)
        .field("key", &format_args!("{shown}…"))
        .field("entries", &entries)
        .field("expires", &rest.0)
        .field("key_id", &rest.1)
        .field("role", &rest.2)
        .field("resigned", &rest.3)
        .finish()
}

impl std::fmt::Debug for LoadedSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rest = (self.expires, self.key_id, self.role, self.resigned);
        debug_session(f, "LoadedSession", &self.key, self.data.len(), rest)
    }
}

impl std::fmt::Debug for SharedSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rest = (self.expires, self.key_id, self.role, self.resigned);
        debug_session(f, "SharedSession", &self.key, self.data.len(), rest)
    }
}

/// Counters of what the engine saw. Cheap to read at any time.
#[derive(Debug, Default)]
pub(crate) struct EngineStats {
    verified_primary: AtomicU64,
    verified_staged: AtomicU64,
    verified_fallback: AtomicU64,
    resigned: AtomicU64,
    unverifiable: AtomicU64,
    conflicts: AtomicU64,
    cache_hits: AtomicU64,
}

/// A snapshot of the engine's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Sessions verified by the primary key.
    pub verified_primary: u64,
    /// Sessions verified by a staged key.
    pub verified_staged: u64,
    /// Sessions verified by a fallback key.
    pub verified_fallback: u64,
    /// Sessions re-signed with the primary.
    pub resigned: u64,
    /// Sessions whose data did not verify (treated as no session).
    pub unverifiable: u64,
    /// Re-signs that lost to a concurrent write.
    pub conflicts: u64,
    /// Loads answered from the verified-session cache (also counted in
    /// `verified_primary`): the stored bytes were ones this ring had
    /// already verified with its primary key.
    pub cache_hits: u64,
}

/// What [`SessionEngine::load_outcome`] (`S` = [`LoadedSession`]) or
/// [`SessionEngine::load_shared`] (`S` = [`SharedSession`]) found.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum LoadOutcome<S = LoadedSession> {
    /// A live session that verified (and was re-signed if it was stale).
    Loaded(S),
    /// No live session under that key: not a valid key, no row, or expired.
    Missing,
    /// A live row whose data did not verify (tampered, signed by a key the
    /// ring no longer accepts, or not session data): treated as no session.
    Refused(VerifyError),
}

/// What [`SessionEngine::load_shared_refreshing`]'s callback decides for a
/// stale session (verified by a staged or fallback key) before it is
/// written back signed by the primary.
#[derive(Clone, Debug, PartialEq)]
pub enum Refresh {
    /// Re-sign the same payload (keeping its timestamp), as `load_shared` does.
    Keep,
    /// Write this data instead (signed by the primary now), in the same
    /// compare-and-swap: e.g. the session with its login hash re-made.
    Replace(SessionData),
}

/// What [`SessionEngine::save`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use = "a session whose row is gone must be dropped, not reported as saved"]
pub enum Saved {
    /// The row was updated.
    Updated,
    /// No row had that key any more (deleted by a concurrent logout, flush
    /// or key cycle, or expired out of the store): nothing was written.
    Gone,
}

impl<S> LoadOutcome<S> {
    /// The session, if one loaded.
    pub fn into_loaded(self) -> Option<S> {
        match self {
            LoadOutcome::Loaded(l) => Some(l),
            LoadOutcome::Missing | LoadOutcome::Refused(_) => None,
        }
    }

    /// The same outcome with the session converted by `f`.
    pub fn map<T>(self, f: impl FnOnce(S) -> T) -> LoadOutcome<T> {
        match self {
            LoadOutcome::Loaded(l) => LoadOutcome::Loaded(f(l)),
            LoadOutcome::Missing => LoadOutcome::Missing,
            LoadOutcome::Refused(e) => LoadOutcome::Refused(e),
        }
    }
}

impl EngineStats {
    /// The current counts.
    pub(crate) fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            verified_primary: self.verified_primary.load(Ordering::Relaxed),
            verified_staged: self.verified_staged.load(Ordering::Relaxed),
            verified_fallback: self.verified_fallback.load(Ordering::Relaxed),
            resigned: self.resigned.load(Ordering::Relaxed),
            unverifiable: self.unverifiable.load(Ordering::Relaxed),
            conflicts: self.conflicts.load(Ordering::Relaxed),
            cache_hits: self.cache_hits.load(Ordering::Relaxed),
        }
    }

    fn count(&self, role: Role) {
        let c = match role {
            Role::Primary => &self.verified_primary,
            Role::Staged => &self.verified_staged,
            Role::Fallback => &self.verified_fallback,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// Loads and saves Django-format sessions in a [`Store`], re-signing on read.
///
/// The ring comes from a [`RingSource`] (a fixed ring for
/// [`SessionEngine::new`]; a running, reloadable one for
/// [`SessionEngine::with_source`]); every operation reads its snapshot once,
/// at the start.
#[derive(Debug)]
pub struct SessionEngine {
    store: Arc<dyn Store>,
    salt: String,
    source: RwLock<Arc<dyn RingSource>>,
    cache: VerifiedCache,
    stats: EngineStats,
}

impl SessionEngine {
    /// An engine over `store` for database sessions (Django's salt
    /// `django.contrib.sessions.SessionStore`).
    pub fn new(store: Arc<dyn Store>, ring: &KeyRing) -> Self {
        Self::with_salt(store, ring, keyroll::DB_SESSION_SALT)
    }

    /// An engine with another session salt.
    pub fn with_salt(store: Arc<dyn Store>, ring: &KeyRing, salt: &str) -> Self {
        Self::with_source(store, Arc::new(FixedRing::new(ring.clone()))).salt(salt)
    }

    /// An engine over `store` for database sessions, under whatever ring
    /// `source` has in force when an operation starts.
    pub fn with_source(store: Arc<dyn Store>, source: Arc<dyn RingSource>) -> Self {
        // No max_age: a database row's expiry is the row's, so whether bytes
        // verify under the primary does not depend on the time (the primary
        // never retires), which is what lets the cache skip re-verifying.
        Self {
            store,
            salt: keyroll::DB_SESSION_SALT.to_owned(),
            source: RwLock::new(source),
            cache: VerifiedCache::new(DEFAULT_CACHE_ENTRIES, DEFAULT_CACHE_BYTES),
            stats: EngineStats::default(),
        }
    }

    /// Another session salt (a custom `SessionStore` class has salt
    /// `django.contrib.sessions.` ‖ its qualified name).
    #[must_use]
    pub fn salt(mut self, salt: &str) -> Self {
        salt.clone_into(&mut self.salt);
        self
    }

    /// Sets the bounds of the verified-session cache: at most `entries`
    /// sessions and about `bytes` of memory (stored strings plus an estimate
    /// of their parsed data; one session larger than an eighth of `bytes`
    /// is never cached). `0` for either turns the cache off. Default: 4096
    /// sessions, 8 MiB.
    ///
    /// The cache holds sessions this engine verified with the primary key of
    /// a ring snapshot, keyed by session key. A load still reads the row
    /// from the store every time (so expiry, deletion and other processes'
    /// writes are seen) and uses the cached result only when the stored
    /// string is byte for byte the one verified, under the same snapshot
    /// (its [`PreparedRing::generation`]: any reload or
    /// [`SessionEngine::set_ring`] makes every entry miss). Sessions verified
    /// by staged or fallback keys are never cached (they are re-signed
    /// anyway, and a fallback can retire).
    #[must_use]
    pub fn with_cache_limits(mut self, entries: usize, bytes: usize) -> Self {
        self.cache = VerifiedCache::new(entries, bytes);
        self
    }

    /// Replaces the ring with a fixed one (atomically for every later call).
    pub fn set_ring(&self, ring: &KeyRing) {
        self.set_source(Arc::new(FixedRing::new(ring.clone())));
    }

    /// Takes the ring from `source` from now on (atomically for every later
    /// call).
    pub fn set_source(&self, source: Arc<dyn RingSource>) {
        match self.source.write() {
            Ok(mut s) => *s = source,
            Err(poisoned) => *poisoned.into_inner() = source,
        }
        // Entries of the old snapshot can no longer match; free them now.
        self.cache.clear();
    }

    /// The ring snapshot in force now.
    pub fn ring(&self) -> Arc<PreparedRing> {
        match self.source.read() {
            Ok(s) => s.current(),
            Err(poisoned) => poisoned.into_inner().current(),
        }
    }

    /// The session codec of `ring` for this engine's salt.
    fn codec(&self, ring: &PreparedRing) -> Arc<SessionCodec> {
        ring.session_codec(&self.salt)
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// What the engine has seen so far.
    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    /// Loads a session: `None` for an unknown, expired or unverifiable one.
    /// Stale data (verified by a staged or fallback key) is re-signed with the
    /// primary and written back with compare-and-swap, keeping its expiry and
    /// timestamp; if another writer changed the row meanwhile, their data wins
    /// and is what this returns.
    ///
    /// [`SessionEngine::load_outcome`] also says why there was no session.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    pub async fn load(
        &self,
        key: &str,
        now: OffsetDateTime,
    ) -> Result<Option<LoadedSession>, StoreError> {
        self.load_outcome(key, now)
            .await
            .map(LoadOutcome::into_loaded)
    }

    /// As [`SessionEngine::load`], telling a missing session from one whose
    /// stored data was refused (and why).
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    pub async fn load_outcome(
        &self,
        key: &str,
        now: OffsetDateTime,
    ) -> Result<LoadOutcome, StoreError> {
        Ok(self.load_shared(key, now).await?.map(LoadedSession::from))
    }

    /// As [`SessionEngine::load_outcome`], with the data shared with the
    /// engine's cache instead of copied out of it.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    pub async fn load_shared(
        &self,
        key: &str,
        now: OffsetDateTime,
    ) -> Result<LoadOutcome<SharedSession>, StoreError> {
        self.load_shared_refreshing(key, now, |_| async { Refresh::Keep })
            .await
    }

    /// As [`SessionEngine::load_shared`], but a stale session is first shown
    /// to `refresh`, which may replace its data; what it returns is what the
    /// compare-and-swap writes (signed by the primary) and what this returns.
    /// So a change that must accompany a re-sign (a login hash re-made under
    /// the primary) is stored with it, atomically, or not at all — never lost
    /// because the response that carried it was not saved. `refresh` is not
    /// called for primary-verified sessions, and may be called again if a
    /// concurrent writer wins the compare-and-swap.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails or replaced data cannot be encoded.
    pub async fn load_shared_refreshing<F, Fut>(
        &self,
        key: &str,
        now: OffsetDateTime,
        refresh: F,
    ) -> Result<LoadOutcome<SharedSession>, StoreError>
    where
        F: Fn(Arc<SessionData>) -> Fut,
        Fut: std::future::Future<Output = Refresh>,
    {
        self.load_shared_refreshing_under(&self.ring(), key, now, refresh)
            .await
    }

    /// As [`SessionEngine::load_shared_refreshing`], under the snapshot
    /// `ring` instead of the one in force: for a caller that works under one
    /// snapshot for a whole request (and makes the login hash `refresh`
    /// writes under that same snapshot's primary).
    ///
    /// # Errors
    /// [`StoreError`] when the store fails or replaced data cannot be encoded.
    pub async fn load_shared_refreshing_under<F, Fut>(
        &self,
        ring: &PreparedRing,
        key: &str,
        now: OffsetDateTime,
        refresh: F,
    ) -> Result<LoadOutcome<SharedSession>, StoreError>
    where
        F: Fn(Arc<SessionData>) -> Fut,
        Fut: std::future::Future<Output = Refresh>,
    {
        if !is_valid_session_key(key) {
            return Ok(LoadOutcome::Missing);
        }
        let codec = self.codec(ring);
        let generation = ring.generation();
        for _ in 0..CAS_ATTEMPTS {
            let Some(record) = self.store.load(key, now).await? else {
                self.cache.remove(key);
                return Ok(LoadOutcome::Missing);
            };
            if let Some(hit) = self.cache.get(key, &record.data, generation) {
                self.stats.count(Role::Primary);
                self.stats.cache_hits.fetch_add(1, Ordering::Relaxed);
                return Ok(LoadOutcome::Loaded(SharedSession {
                    key: record.key,
                    data: Arc::clone(&hit.data),
                    expires: record.expires,
                    key_id: hit.key_id,
                    role: Role::Primary,
                    resigned: false,
                }));
            }
            let verified = match codec.resign_at(&record.data, now) {
                Ok(v) => v,
                Err(e) => {
                    self.unverifiable(&e);
                    self.cache.remove(key);
                    return Ok(LoadOutcome::Refused(e));
                }
            };
            self.stats.count(verified.role);
            let (data, fresh) = verified.value;
            let data = Arc::new(data);
            let Some(fresh) = fresh else {
                if verified.role == Role::Primary {
                    self.cache
                        .insert(key, record.data, generation, verified.key_id, &data);
                }
                return Ok(LoadOutcome::Loaded(SharedSession {
                    key: record.key,
                    data,
                    expires: record.expires,
                    key_id: verified.key_id,
                    role: verified.role,
                    resigned: false,
                }));
            };
            let (data, fresh) = match refresh(Arc::clone(&data)).await {
                Refresh::Keep => (data, fresh),
                Refresh::Replace(new) => {
                    let encoded = codec.encode_at(&new, now).map_err(StoreError::Encode)?;
                    (Arc::new(new), encoded)
                }
            };
            if self
                .store
                .compare_and_swap(key, &record.data, &fresh)
                .await?
            {
                self.stats.resigned.fetch_add(1, Ordering::Relaxed);
                return Ok(LoadOutcome::Loaded(loaded(
                    record,
                    data,
                    verified.key_id,
                    verified.role,
                    true,
                )));
            }
            // Someone wrote the row since we read it: read it again; their data wins.
            self.stats.conflicts.fetch_add(1, Ordering::Relaxed);
        }
        // Still changing under us: return what is there now, without re-signing.
        let Some(record) = self.store.load(key, now).await? else {
            return Ok(LoadOutcome::Missing);
        };
        match codec.decode_at(&record.data, now) {
            Ok(v) => Ok(LoadOutcome::Loaded(loaded(
                record,
                Arc::new(v.value),
                v.key_id,
                v.role,
                false,
            ))),
            Err(e) => {
                self.unverifiable(&e);
                Ok(LoadOutcome::Refused(e))
            }
        }
    }

    fn unverifiable(&self, e: &VerifyError) {
        self.stats.unverifiable.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            reason = e.reason(),
            "session data did not verify; treated as no session"
        );
    }

    /// Creates a session with `data`, signed by the primary; returns its key.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails or the data cannot be encoded.
    pub async fn create(
        &self,
        data: &SessionData,
        expires: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<String, StoreError> {
        self.create_under(&self.ring(), data, expires, now).await
    }

    /// As [`SessionEngine::create`], signed by the primary of the snapshot `ring`.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails or the data cannot be encoded.
    pub async fn create_under(
        &self,
        ring: &PreparedRing,
        data: &SessionData,
        expires: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<String, StoreError> {
        let encoded = self.encode(ring, data, now)?;
        self.store.create(&encoded, expires).await
    }

    /// Writes `data` back under `key`, signed by the primary, with a new
    /// expiry: only if the row still exists. A row deleted since this
    /// session was loaded (a logout, a flush or a key cycled in a concurrent
    /// request) is never recreated: that is [`Saved::Gone`], and the caller
    /// must drop the session (Django raises `SessionInterrupted` there).
    ///
    /// # Errors
    /// [`StoreError`] when the store fails or the data cannot be encoded.
    pub async fn save(
        &self,
        key: &str,
        data: &SessionData,
        expires: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<Saved, StoreError> {
        self.save_under(&self.ring(), key, data, expires, now).await
    }

    /// As [`SessionEngine::save`], signed by the primary of the snapshot `ring`.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails or the data cannot be encoded.
    pub async fn save_under(
        &self,
        ring: &PreparedRing,
        key: &str,
        data: &SessionData,
        expires: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<Saved, StoreError> {
        let encoded = self.encode(ring, data, now)?;
        self.cache.remove(key);
        let updated = self
            .store
            .update(&SessionRecord {
                key: key.to_owned(),
                data: encoded,
                expires,
            })
            .await?;
        Ok(if updated { Saved::Updated } else { Saved::Gone })
    }

    /// Deletes a session; `true` when there was a row to delete.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    pub async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        self.cache.remove(key);
        self.store.delete(key).await
    }

    fn encode(
        &self,
        ring: &PreparedRing,
        data: &SessionData,
        now: OffsetDateTime,
    ) -> Result<String, StoreError> {
        self.codec(ring)
            .encode_at(data, now)
            .map_err(StoreError::Encode)
    }
}

fn loaded(
    record: SessionRecord,
    data: Arc<SessionData>,
    key_id: KeyId,
    role: Role,
    resigned: bool,
) -> SharedSession {
    SharedSession {
        key: record.key,
        data,
        expires: record.expires,
        key_id,
        role,
        resigned,
    }
}

/// Default bound of the verified-session cache: sessions.
const DEFAULT_CACHE_ENTRIES: usize = 4096;
/// Default bound of the verified-session cache: bytes (estimated).
const DEFAULT_CACHE_BYTES: usize = 8 << 20;
/// Estimated bytes of one cache entry besides its strings and data: the map
/// slot, the `Arc` and the entry itself.
const ENTRY_OVERHEAD: usize = 160;
/// Estimated bytes of one JSON value node (a `serde_json::Value` plus its
/// share of a map or vector).
const VALUE_NODE: usize = 80;

/// A session the current ring verified with its primary key.
struct CachedSession {
    /// The ring generation that verified it.
    generation: u64,
    /// The exact stored string that verified.
    stored: String,
    key_id: KeyId,
    data: Arc<SessionData>,
    /// Estimated memory, counted against the cache's byte bound.
    weight: usize,
}

#[derive(Default)]
struct CacheMap {
    map: HashMap<String, Arc<CachedSession>>,
    bytes: usize,
    /// The snapshot generation of the entries: an insert under another
    /// empties the map first (entries of an older snapshot can never match
    /// again, so they would only hold memory).
    generation: u64,
}

/// Bounded map from session key to the verified form of its stored string.
/// Eviction is arbitrary (hash order): cheap, and bounded is what matters.
struct VerifiedCache {
    max_entries: usize,
    max_bytes: usize,
    inner: Mutex<CacheMap>,
}

impl std::fmt::Debug for VerifiedCache {
    // Session keys are bearer credentials and the data is private: only sizes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = self.lock();
        f.debug_struct("VerifiedCache")
            .field("entries", &m.map.len())
            .field("bytes", &m.bytes)
            .field("max_entries", &self.max_entries)
            .field("max_bytes", &self.max_bytes)
            .finish()
    }
}

impl VerifiedCache {
    fn new(max_entries: usize, max_bytes: usize) -> Self {
        Self {
            max_entries,
            max_bytes,
            inner: Mutex::new(CacheMap::default()),
        }
    }

    fn enabled(&self) -> bool {
        self.max_entries > 0 && self.max_bytes > 0
    }

    fn lock(&self) -> MutexGuard<'_, CacheMap> {
        // Every critical section is a few map calls that cannot leave the
        // map half-changed; keep going after a panic elsewhere.
        match self.inner.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// The cached session for `key` if `stored` is exactly what `generation` verified.
    fn get(&self, key: &str, stored: &str, generation: u64) -> Option<Arc<CachedSession>> {
        if !self.enabled() {
            return None;
        }
        let hit = self.lock().map.get(key).map(Arc::clone)?;
        (hit.generation == generation && hit.stored == stored).then_some(hit)
    }

    fn insert(
        &self,
        key: &str,
        stored: String,
        generation: u64,
        key_id: KeyId,
        data: &Arc<SessionData>,
    ) {
        if !self.enabled() {
            return;
        }
        let limit = self.max_bytes / 8;
        let Some(weight) = data
            .iter()
            .try_fold(
                ENTRY_OVERHEAD + 2 * key.len() + stored.len(),
                |w, (k, v)| value_weight(v, w.checked_add(VALUE_NODE + k.len())?, limit),
            )
            .filter(|w| *w <= limit)
        else {
            return;
        };
        let entry = Arc::new(CachedSession {
            generation,
            stored,
            key_id,
            data: Arc::clone(data),
            weight,
        });
        let mut m = self.lock();
        if m.generation != generation {
            m.map.clear();
            m.bytes = 0;
            m.generation = generation;
        }
        // (Replacing an entry may evict one more than needed: one hash, not two.)
        while !m.map.is_empty()
            && (m.map.len() >= self.max_entries || m.bytes + weight > self.max_bytes)
        {
            let Some(victim) = m.map.keys().next().cloned() else {
                break;
            };
            if let Some(old) = m.map.remove(&victim) {
                m.bytes -= old.weight;
            }
        }
        if let Some(old) = m.map.insert(key.to_owned(), entry) {
            m.bytes -= old.weight;
        }
        m.bytes += weight;
    }

    fn remove(&self, key: &str) {
        if !self.enabled() {
            return;
        }
        let mut m = self.lock();
        if let Some(old) = m.map.remove(key) {
            m.bytes -= old.weight;
        }
    }

    fn clear(&self) {
        let mut m = self.lock();
        m.map.clear();
        m.bytes = 0;
    }
}

/// `acc` plus the estimated memory of `v`; `None` once past `limit`.
fn value_weight(v: &Value, acc: usize, limit: usize) -> Option<usize> {
    let acc = match v {
        Value::Null | Value::Bool(_) => acc,
        Value::Number(n) => acc.checked_add(n.as_str().len())?,
        Value::String(s) => acc.checked_add(s.len())?,
        Value::Array(a) => a.iter().try_fold(acc, |w, x| {
            value_weight(x, w.checked_add(VALUE_NODE)?, limit)
        })?,
        Value::Object(o) => o.iter().try_fold(acc, |w, (k, x)| {
            value_weight(x, w.checked_add(VALUE_NODE + k.len())?, limit)
        })?,
    };
    (acc <= limit).then_some(acc)
}
