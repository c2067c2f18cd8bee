//! The ring snapshot: [`PreparedRing`] (one key ring and everything the hot
//! paths derive from it, made once per ring), where the snapshot in force
//! comes from ([`RingSource`]) and a ring that never changes ([`FixedRing`]).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use keyroll::{KeyRing, PasswordResetTokens, SessionAuthHash, SessionCodec, SignedCookie};

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
/// let a = PreparedRing::new(KeyRing::new(Secret::from("a-long-secret-key-0123456789abcdef")).expect("a non-empty secret"));
/// let codec = a.session_codec(keyroll::DB_SESSION_SALT);
/// assert!(Arc::ptr_eq(&codec, &a.session_codec(keyroll::DB_SESSION_SALT)));
/// let b = PreparedRing::new(KeyRing::new(Secret::from("a-long-secret-key-0123456789abcdef")).expect("a non-empty secret"));
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::cell::Cell;

    use super::*;

    /// A value is made once per key and shared: no request derives a key
    /// the snapshot already derived.
    #[test]
    fn a_derivation_is_made_once_per_key_and_shared() {
        let d: Derived<u32, String> = Derived::default();
        let made = Cell::new(0);
        let get = |k: u32| {
            d.get(
                |x| *x == k,
                || k,
                || {
                    made.set(made.get() + 1);
                    format!("v{k}")
                },
            )
        };
        let first = get(1);
        let other = get(2);
        assert!(Arc::ptr_eq(&first, &get(1)));
        assert!(Arc::ptr_eq(&other, &get(2)));
        assert_eq!((first.as_str(), other.as_str()), ("v1", "v2"));
        assert_eq!(made.get(), 2);
        let tried = d.try_get(
            |x| *x == 2,
            || 2,
            || {
                made.set(made.get() + 1);
                None
            },
        );
        assert!(Arc::ptr_eq(&tried.expect("kept"), &other));
        assert_eq!(made.get(), 2);
        assert!(d.try_get(|x| *x == 3, || 3, || None).is_none());
        let made_now = d.try_get(|x| *x == 4, || 4, || Some("v4".to_owned()));
        assert_eq!(made_now.as_deref().map(String::as_str), Some("v4"));
        assert_eq!(d.len(), 3);
    }

    /// Two callers that both missed the key and made a value: the second is
    /// handed the first one's, for the first key and the others alike.
    #[test]
    fn a_value_made_in_a_race_gives_way_to_the_one_kept() {
        let d: Derived<u32, String> = Derived::default();
        let kept_first = d.keep(|x| *x == 1, || 1, Arc::new("first".to_owned()));
        let kept_other = d.keep(|x| *x == 2, || 2, Arc::new("other".to_owned()));
        let raced = d.keep(|x| *x == 1, || 1, Arc::new("late".to_owned()));
        assert!(Arc::ptr_eq(&raced, &kept_first));
        let raced = d.keep(|x| *x == 2, || 2, Arc::new("late".to_owned()));
        assert!(Arc::ptr_eq(&raced, &kept_other));
        assert_eq!(d.len(), 2);
    }

    fn snapshot() -> PreparedRing {
        PreparedRing::new(
            KeyRing::new(keyroll::Secret::from("a-long-secret-key-0123456789abcdef"))
                .expect("a non-empty secret"),
        )
    }

    /// A codec is kept per salt *and* age: a row signed under one salt does
    /// not verify under another, and a cookie codec keeps its own age.
    #[test]
    fn codecs_are_told_apart_by_salt_and_by_age() {
        let ring = snapshot();
        let now = time::OffsetDateTime::now_utc();
        let a = ring.session_codec("salt-a");
        let b = ring.session_codec("salt-b");
        assert!(!Arc::ptr_eq(&a, &b));
        let token = a
            .encode_at(&keyroll::SessionData::new(), now)
            .expect("encode");
        assert!(a.decode_at(&token, now).is_ok());
        assert!(b.decode_at(&token, now).is_err());
        let minute = ring.cookie_session_codec(Duration::from_secs(60));
        let hour = ring.cookie_session_codec(Duration::from_secs(3600));
        assert!(!Arc::ptr_eq(&minute, &hour));
        let cookie = hour
            .encode_at(&keyroll::SessionData::new(), now)
            .expect("encode");
        let later = now + time::Duration::minutes(10);
        assert!(hour.decode_at(&cookie, later).is_ok());
        assert!(
            minute.decode_at(&cookie, later).is_err(),
            "expired after a minute"
        );
        assert!(Arc::ptr_eq(
            &hour,
            &ring.cookie_session_codec(Duration::from_secs(3600))
        ));
    }

    /// `derived_count` adds up every kind of derived part.
    #[test]
    fn the_derived_count_adds_up_every_kind() {
        let ring = snapshot();
        ring.session_codec("one");
        for name in ["a", "b", "c"] {
            ring.signed_cookie(name, "", false).expect("signer");
        }
        ring.reset_tokens(None);
        ring.reset_tokens(Some(Duration::from_secs(60)));
        ring.auth_hash();
        assert_eq!(ring.derived_count(), 1 + 3 + 2 + 1);
    }

    /// Past `MAX_DERIVED` keys a value is made for the call and not kept.
    #[test]
    fn exactly_max_derived_values_are_kept() {
        let d: Derived<usize, usize> = Derived::default();
        for k in 0..3 * MAX_DERIVED {
            assert_eq!(*d.get(|x| *x == k, || k, || k * 10), k * 10);
        }
        assert_eq!(d.len(), MAX_DERIVED);
        // The last kept is shared; one past the bound is not.
        let last = MAX_DERIVED - 1;
        assert!(Arc::ptr_eq(
            &d.get(|x| *x == last, || last, || 0),
            &d.get(|x| *x == last, || last, || 0)
        ));
        assert_eq!(*d.get(|x| *x == MAX_DERIVED, || MAX_DERIVED, || 7), 7);
    }
}
