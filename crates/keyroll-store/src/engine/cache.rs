//! The verified-session cache: a bounded map from session key to the
//! verified form of the exact stored string a ring snapshot's primary key
//! verified, with its memory estimate (weights) counted against a byte bound.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use keyroll::{KeyId, SessionData};
use serde_json::Value;

/// Default bound of the verified-session cache: sessions.
pub(super) const DEFAULT_CACHE_ENTRIES: usize = 4096;
/// Default bound of the verified-session cache: bytes (estimated).
pub(super) const DEFAULT_CACHE_BYTES: usize = 8 << 20;
/// Estimated bytes of one cache entry besides its strings and data: the map
/// slot, the `Arc` and the entry itself.
const ENTRY_OVERHEAD: usize = 160;
/// Estimated bytes of one JSON value node (a `serde_json::Value` plus its
/// share of a map or vector).
const VALUE_NODE: usize = 80;

/// A session the current ring verified with its primary key.
pub(super) struct CachedSession {
    /// The ring generation that verified it.
    generation: u64,
    /// The exact stored string that verified.
    stored: String,
    pub(super) key_id: KeyId,
    pub(super) data: Arc<SessionData>,
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
pub(super) struct VerifiedCache {
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
    pub(super) fn new(max_entries: usize, max_bytes: usize) -> Self {
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
    pub(super) fn get(
        &self,
        key: &str,
        stored: &str,
        generation: u64,
    ) -> Option<Arc<CachedSession>> {
        if !self.enabled() {
            return None;
        }
        let hit = self.lock().map.get(key).map(Arc::clone)?;
        (hit.generation == generation && hit.stored == stored).then_some(hit)
    }

    pub(super) fn insert(
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

    pub(super) fn remove(&self, key: &str) {
        if !self.enabled() {
            return;
        }
        let mut m = self.lock();
        if let Some(old) = m.map.remove(key) {
            m.bytes -= old.weight;
        }
    }

    pub(super) fn clear(&self) {
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
