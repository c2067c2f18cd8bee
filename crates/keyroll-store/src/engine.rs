//! The session engine: load, verify against the ring, re-sign stale data with
//! the primary (compare-and-swap, so a concurrent write always wins), save.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use keyroll::{KeyId, KeyRing, Role, SessionCodec, SessionData, VerifyError};
use time::OffsetDateTime;

use crate::store::{is_valid_session_key, SessionRecord, Store, StoreError};

/// How many times a stale session is re-read after losing a compare-and-swap.
const CAS_ATTEMPTS: usize = 3;

/// A session loaded through the engine.
#[derive(Clone, Debug, PartialEq)]
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

/// Counters of what the engine saw. Cheap to read at any time.
#[derive(Debug, Default)]
pub(crate) struct EngineStats {
    verified_primary: AtomicU64,
    verified_staged: AtomicU64,
    verified_fallback: AtomicU64,
    resigned: AtomicU64,
    unverifiable: AtomicU64,
    conflicts: AtomicU64,
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
/// The ring can be swapped while running ([`SessionEngine::set_ring`]).
#[derive(Debug)]
pub struct SessionEngine {
    store: Arc<dyn Store>,
    salt: String,
    codec: RwLock<Arc<SessionCodec>>,
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
        Self {
            store,
            salt: salt.to_owned(),
            codec: RwLock::new(Arc::new(SessionCodec::with_salt(ring, salt, None))),
            stats: EngineStats::default(),
        }
    }

    /// Replaces the ring (atomically for every later call).
    pub fn set_ring(&self, ring: &KeyRing) {
        let codec = Arc::new(SessionCodec::with_salt(ring, &self.salt, None));
        match self.codec.write() {
            Ok(mut c) => *c = codec,
            Err(poisoned) => *poisoned.into_inner() = codec,
        }
    }

    fn codec(&self) -> Arc<SessionCodec> {
        match self.codec.read() {
            Ok(c) => Arc::clone(&c),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
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
    /// # Errors
    /// [`StoreError`] when the store fails.
    pub async fn load(
        &self,
        key: &str,
        now: OffsetDateTime,
    ) -> Result<Option<LoadedSession>, StoreError> {
        if !is_valid_session_key(key) {
            return Ok(None);
        }
        let codec = self.codec();
        for _ in 0..CAS_ATTEMPTS {
            let Some(record) = self.store.load(key, now).await? else {
                return Ok(None);
            };
            let verified = match codec.resign_at(&record.data, now) {
                Ok(v) => v,
                Err(e) => {
                    self.unverifiable(&e);
                    return Ok(None);
                }
            };
            self.stats.count(verified.role);
            let (data, fresh) = verified.value;
            let Some(fresh) = fresh else {
                return Ok(Some(loaded(
                    record,
                    data,
                    verified.key_id,
                    verified.role,
                    false,
                )));
            };
            if self
                .store
                .compare_and_swap(key, &record.data, &fresh)
                .await?
            {
                self.stats.resigned.fetch_add(1, Ordering::Relaxed);
                return Ok(Some(loaded(
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
            return Ok(None);
        };
        match codec.decode_at(&record.data, now) {
            Ok(v) => Ok(Some(loaded(record, v.value, v.key_id, v.role, false))),
            Err(e) => {
                self.unverifiable(&e);
                Ok(None)
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
        let encoded = self.encode(data, now)?;
        self.store.create(&encoded, expires).await
    }

    /// Saves `data` under `key` (insert or replace), signed by the primary.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails or the data cannot be encoded.
    pub async fn save(
        &self,
        key: &str,
        data: &SessionData,
        expires: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let encoded = self.encode(data, now)?;
        self.store
            .save(&SessionRecord {
                key: key.to_owned(),
                data: encoded,
                expires,
            })
            .await
    }

    /// Deletes a session.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.store.delete(key).await
    }

    fn encode(&self, data: &SessionData, now: OffsetDateTime) -> Result<String, StoreError> {
        self.codec()
            .encode_at(data, now)
            .map_err(|e| StoreError::backend("encode", e))
    }
}

fn loaded(
    record: SessionRecord,
    data: SessionData,
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
