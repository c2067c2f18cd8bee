//! An in-process store: a sorted map behind a lock. For tests, development
//! and single-process apps; everything is lost when the process ends.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::store::{
    is_valid_session_key, new_session_key, KeyRange, PurgeFrom, Purged, SessionRecord, Store,
    StoreError, Swap,
};

/// Sessions in memory (`memory://` in [`open_store`](crate::open_store)).
#[derive(Default)]
pub struct MemoryStore {
    rows: Mutex<BTreeMap<String, (String, OffsetDateTime)>>,
}

impl std::fmt::Debug for MemoryStore {
    // Session keys are bearer credentials: only the row count.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("rows", &self.rows().len())
            .finish()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn rows(&self) -> MutexGuard<'_, BTreeMap<String, (String, OffsetDateTime)>> {
        // A panic while holding the lock cannot leave a half-written row: every
        // operation is a single map call. Keep going with the data as it is.
        match self.rows.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

#[async_trait]
impl Store for MemoryStore {
    fn backend(&self) -> &'static str {
        "memory"
    }

    async fn ensure_schema(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn load(
        &self,
        key: &str,
        now: OffsetDateTime,
    ) -> Result<Option<SessionRecord>, StoreError> {
        Ok(self
            .rows()
            .get(key)
            .filter(|(_, exp)| *exp > now)
            .map(|(data, exp)| SessionRecord {
                key: key.to_owned(),
                data: data.clone(),
                expires: *exp,
            }))
    }

    async fn create(&self, data: &str, expires: OffsetDateTime) -> Result<String, StoreError> {
        let mut rows = self.rows();
        for _ in 0..10 {
            let key = new_session_key();
            if !rows.contains_key(&key) {
                rows.insert(key.clone(), (data.to_owned(), expires));
                return Ok(key);
            }
        }
        Err(StoreError::KeyExhausted)
    }

    async fn save(&self, record: &SessionRecord) -> Result<(), StoreError> {
        if !is_valid_session_key(&record.key) {
            return Err(StoreError::InvalidKey);
        }
        self.rows()
            .insert(record.key.clone(), (record.data.clone(), record.expires));
        Ok(())
    }

    async fn update(&self, record: &SessionRecord) -> Result<bool, StoreError> {
        if !is_valid_session_key(&record.key) {
            return Err(StoreError::InvalidKey);
        }
        Ok(match self.rows().get_mut(&record.key) {
            Some(row) => {
                *row = (record.data.clone(), record.expires);
                true
            }
            None => false,
        })
    }

    async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        Ok(self.rows().remove(key).is_some())
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: &str,
        new: &str,
    ) -> Result<bool, StoreError> {
        let mut rows = self.rows();
        match rows.get_mut(key) {
            Some((data, _)) if data == expected => {
                *data = new.to_owned();
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn compare_and_swap_many(&self, swaps: &[Swap]) -> Result<Vec<bool>, StoreError> {
        let mut rows = self.rows();
        Ok(swaps
            .iter()
            .map(|s| match rows.get_mut(&s.key) {
                Some((data, _)) if *data == s.expected => {
                    *data = s.new.clone();
                    true
                }
                _ => false,
            })
            .collect())
    }

    async fn scan(
        &self,
        range: &KeyRange,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        let rows = self.rows();
        let lower = match (after, range.start.as_deref()) {
            (Some(a), Some(s)) if s > a => Bound::Included(s.to_owned()),
            (Some(a), _) => Bound::Excluded(a.to_owned()),
            (None, Some(s)) => Bound::Included(s.to_owned()),
            (None, None) => Bound::Unbounded,
        };
        let upper = match range.end.as_deref() {
            Some(e) => Bound::Excluded(e.to_owned()),
            None => Bound::Unbounded,
        };
        // An empty range (the cursor is past the end): BTreeMap::range would panic.
        if let (Bound::Included(l) | Bound::Excluded(l), Bound::Excluded(u)) = (&lower, &upper) {
            if l >= u {
                return Ok(Vec::new());
            }
        }
        Ok(rows
            .range::<String, _>((lower, upper))
            .take(limit)
            .map(|(k, (data, exp))| SessionRecord {
                key: k.clone(),
                data: data.clone(),
                expires: *exp,
            })
            .collect())
    }

    async fn purge_expired_batch(
        &self,
        now: OffsetDateTime,
        _from: &PurgeFrom,
        limit: usize,
    ) -> Result<Purged, StoreError> {
        let mut rows = self.rows();
        let doomed: Vec<String> = rows
            .iter()
            .filter(|(_, (_, exp))| *exp <= now)
            .map(|(k, _)| k.clone())
            .take(limit)
            .collect();
        for k in &doomed {
            rows.remove(k);
        }
        Ok(Purged::batch(
            doomed.len() as u64,
            doomed.len(),
            limit,
            PurgeFrom::Start,
        ))
    }
}
