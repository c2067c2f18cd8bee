//! The session engine: load, verify against the ring, re-sign stale data with
//! the primary (compare-and-swap, so a concurrent write always wins), save.
//!
//! - [`ring`]: the ring snapshot ([`PreparedRing`]) and where it comes from
//!   ([`RingSource`], [`FixedRing`]).
//! - [`session`]: what a load hands out ([`LoadedSession`], [`LoadOutcome`])
//!   and what a refresh or save decides ([`Refresh`], [`Saved`]).
//! - [`cache`]: the bounded cache of verified sessions (see
//!   [`SessionEngine::with_cache_limits`]): a stored string that is byte for
//!   byte one the same ring already verified with its primary key is not
//!   verified and parsed again.
//! - here: the engine itself, its counters, and [`EngineAt`], the engine
//!   working under one given snapshot.

mod cache;
mod ring;
mod session;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use keyroll::{KeyId, KeyRing, Role, SessionCodec, SessionData, VerifyError};
use time::OffsetDateTime;

use crate::store::{is_valid_session_key, SessionRecord, Store, StoreError};

use cache::{VerifiedCache, DEFAULT_CACHE_BYTES, DEFAULT_CACHE_ENTRIES};
pub use ring::{FixedRing, PreparedRing, RingSource};
pub use session::{LoadOutcome, LoadedSession, Refresh, Saved};

/// How many times a stale session is re-read after losing a compare-and-swap.
const CAS_ATTEMPTS: usize = 3;

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

    /// This engine working under the snapshot `ring` instead of the one in
    /// force: for a caller that works under one snapshot for a whole
    /// request (and makes the login hash a refresh writes under that same
    /// snapshot's primary).
    pub fn under<'a>(&'a self, ring: &'a PreparedRing) -> EngineAt<'a> {
        EngineAt { engine: self, ring }
    }

    /// Loads a session under the snapshot in force: [`LoadOutcome::Loaded`],
    /// or [`LoadOutcome::Missing`] for an unknown or expired one, or
    /// [`LoadOutcome::Refused`] (and why) for one whose stored data did not
    /// verify ([`LoadOutcome::into_loaded`] when the difference does not
    /// matter). Stale data (verified by a staged or fallback key) is
    /// re-signed with the primary and written back with compare-and-swap,
    /// keeping its expiry and timestamp; if another writer changed the row
    /// meanwhile, their data wins and is what this returns.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    pub async fn load(&self, key: &str, now: OffsetDateTime) -> Result<LoadOutcome, StoreError> {
        self.under(&self.ring()).load(key, now).await
    }

    /// As [`SessionEngine::load`], but a stale session is first shown to
    /// `refresh`, which may replace its data; what it returns is what the
    /// compare-and-swap writes (signed by the primary) and what this returns.
    /// So a change that must accompany a re-sign (a login hash re-made under
    /// the primary) is stored with it, atomically, or not at all — never lost
    /// because the response that carried it was not saved. `refresh` is not
    /// called for primary-verified sessions, and may be called again if a
    /// concurrent writer wins the compare-and-swap.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails or replaced data cannot be encoded.
    pub async fn load_refreshing<F, Fut>(
        &self,
        key: &str,
        now: OffsetDateTime,
        refresh: F,
    ) -> Result<LoadOutcome, StoreError>
    where
        F: Fn(Arc<SessionData>) -> Fut,
        Fut: std::future::Future<Output = Refresh>,
    {
        self.under(&self.ring())
            .load_refreshing(key, now, refresh)
            .await
    }

    /// Creates a session with `data`, signed by the primary of the snapshot
    /// in force; returns its key.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails or the data cannot be encoded.
    pub async fn create(
        &self,
        data: &SessionData,
        expires: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<String, StoreError> {
        self.under(&self.ring()).create(data, expires, now).await
    }

    /// Writes `data` back under `key`, signed by the primary of the snapshot
    /// in force, with a new expiry: only if the row still exists. A row
    /// deleted since this session was loaded (a logout, a flush or a key
    /// cycled in a concurrent request) is never recreated: that is
    /// [`Saved::Gone`], and the caller must drop the session (Django raises
    /// `SessionInterrupted` there).
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
        self.under(&self.ring()).save(key, data, expires, now).await
    }

    /// Deletes a session; `true` when there was a row to delete.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    pub async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        self.cache.remove(key);
        self.store.delete(key).await
    }

    fn unverifiable(&self, e: &VerifyError) {
        self.stats.unverifiable.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            reason = e.reason(),
            "session data did not verify; treated as no session"
        );
    }
}

/// A [`SessionEngine`] working under one ring snapshot
/// ([`SessionEngine::under`]): its loads verify, and its writes sign, with
/// that snapshot's keys, whatever the engine's source has in force since.
#[derive(Clone, Copy, Debug)]
pub struct EngineAt<'a> {
    engine: &'a SessionEngine,
    ring: &'a PreparedRing,
}

impl EngineAt<'_> {
    /// As [`SessionEngine::load`], under this snapshot.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    pub async fn load(&self, key: &str, now: OffsetDateTime) -> Result<LoadOutcome, StoreError> {
        self.load_refreshing(key, now, |_| async { Refresh::Keep })
            .await
    }

    /// As [`SessionEngine::load_refreshing`], under this snapshot.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails or replaced data cannot be encoded.
    pub async fn load_refreshing<F, Fut>(
        &self,
        key: &str,
        now: OffsetDateTime,
        refresh: F,
    ) -> Result<LoadOutcome, StoreError>
    where
        F: Fn(Arc<SessionData>) -> Fut,
        Fut: std::future::Future<Output = Refresh>,
    {
        let engine = self.engine;
        if !is_valid_session_key(key) {
            return Ok(LoadOutcome::Missing);
        }
        let codec = engine.codec(self.ring);
        let generation = self.ring.generation();
        for _ in 0..CAS_ATTEMPTS {
            let Some(record) = engine.store.load(key, now).await? else {
                engine.cache.remove(key);
                return Ok(LoadOutcome::Missing);
            };
            if let Some(hit) = engine.cache.get(key, &record.data, generation) {
                engine.stats.count(Role::Primary);
                engine.stats.cache_hits.fetch_add(1, Ordering::Relaxed);
                return Ok(LoadOutcome::Loaded(LoadedSession {
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
                    engine.unverifiable(&e);
                    engine.cache.remove(key);
                    return Ok(LoadOutcome::Refused(e));
                }
            };
            engine.stats.count(verified.role);
            let keyroll::ResignedSession { data, fresh } = verified.value;
            let data = Arc::new(data);
            let Some(fresh) = fresh else {
                if verified.role == Role::Primary {
                    engine
                        .cache
                        .insert(key, record.data, generation, verified.key_id, &data);
                }
                return Ok(LoadOutcome::Loaded(LoadedSession {
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
            if engine
                .store
                .compare_and_swap(key, &record.data, &fresh)
                .await?
            {
                engine.stats.resigned.fetch_add(1, Ordering::Relaxed);
                return Ok(LoadOutcome::Loaded(loaded(
                    record,
                    data,
                    verified.key_id,
                    verified.role,
                    true,
                )));
            }
            // Someone wrote the row since we read it: read it again; their data wins.
            engine.stats.conflicts.fetch_add(1, Ordering::Relaxed);
        }
        // Still changing under us: return what is there now, without re-signing.
        let Some(record) = engine.store.load(key, now).await? else {
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
                engine.unverifiable(&e);
                Ok(LoadOutcome::Refused(e))
            }
        }
    }

    /// As [`SessionEngine::create`], signed by this snapshot's primary.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails or the data cannot be encoded.
    pub async fn create(
        &self,
        data: &SessionData,
        expires: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<String, StoreError> {
        let encoded = self.encode(data, now)?;
        self.engine.store.create(&encoded, expires).await
    }

    /// As [`SessionEngine::save`], signed by this snapshot's primary.
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
        let encoded = self.encode(data, now)?;
        self.engine.cache.remove(key);
        let updated = self
            .engine
            .store
            .update(&SessionRecord {
                key: key.to_owned(),
                data: encoded,
                expires,
            })
            .await?;
        Ok(if updated { Saved::Updated } else { Saved::Gone })
    }

    fn encode(&self, data: &SessionData, now: OffsetDateTime) -> Result<String, StoreError> {
        self.engine
            .codec(self.ring)
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
) -> LoadedSession {
    LoadedSession {
        key: record.key,
        data,
        expires: record.expires,
        key_id,
        role,
        resigned,
    }
}
