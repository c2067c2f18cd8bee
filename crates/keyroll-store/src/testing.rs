//! The test suite every store backend runs, published so that a store
//! outside this crate can run it too (feature `testing`).
//!
//! A backend provides a fixture — an `async fn() -> Option<Fixture>` that
//! gives each test a store of its own, with its schema in place — and
//! invokes [`store_suite!`](crate::store_suite) with it. The suite covers
//! the `Store` contract (load never returns expired rows, update never
//! inserts, compare-and-swap has exactly one winner, scans partition the key
//! space, purge counts, …) and the [`SessionEngine`] over the store
//! (re-sign on read, concurrent saves, a logout that is never undone). Each
//! case is also a public function, to run alone.
//!
//! The cases panic on failure (they are tests) and use fixed, public test
//! secrets.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use keyroll::{KeyRing, Role, Secret, SessionCodec, SessionData};
use time::{Duration, OffsetDateTime};

use crate::{
    is_valid_session_key, new_session_key, KeyRange, PurgeFrom, RowCounts, Saved, SessionEngine,
    SessionRecord, Store, StoreError, Swap,
};

// ---------------------------------------------------------------- the fixture

type SetPassword =
    Box<dyn Fn(i64, String) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// What a backend gives each test: a store with its schema in place, what
/// it does with expired rows, an optional users table, and what to remove
/// when the test ends (run on drop, also after a failure).
pub struct Fixture {
    /// The store, schema in place.
    pub store: Arc<dyn Store>,
    /// Does the backend keep expired rows until purged? (Redis drops them itself.)
    pub keeps_expired: bool,
    /// A users table (`id integer primary key, password text`), SQL stores only.
    pub users_table: Option<String>,
    set_password: Option<SetPassword>,
    cleanup: Option<Box<dyn FnOnce() + Send>>,
}

impl Fixture {
    /// A fixture over `store`, which keeps expired rows until purged and has
    /// no users table.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            keeps_expired: true,
            users_table: None,
            set_password: None,
            cleanup: None,
        }
    }

    /// The store drops expired rows by itself (as Redis does).
    #[must_use]
    pub fn drops_expired(mut self) -> Self {
        self.keeps_expired = false;
        self
    }

    /// The store can read `table` as a users table ([`crate::UserTable`]);
    /// `set` writes a user's password hash into it.
    #[must_use]
    pub fn with_users_table<F, Fut>(mut self, table: impl Into<String>, set: F) -> Self
    where
        F: Fn(i64, String) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.users_table = Some(table.into());
        self.set_password = Some(Box::new(move |id, pw| Box::pin(set(id, pw))));
        self
    }

    /// Runs `f` when the fixture is dropped (drop the table, delete the keys).
    #[must_use]
    pub fn on_drop(mut self, f: impl FnOnce() + Send + 'static) -> Self {
        self.cleanup = Some(Box::new(f));
        self
    }

    /// Sets a user's password hash in the users table.
    pub async fn set_password(&self, id: i64, password: &str) {
        let set = self.set_password.as_ref().expect("a users table");
        set(id, password.to_owned()).await;
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(f) = self.cleanup.take() {
            f();
        }
    }
}

impl std::fmt::Debug for Fixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fixture")
            .field("store", &self.store)
            .field("keeps_expired", &self.keeps_expired)
            .field("users_table", &self.users_table)
            .finish_non_exhaustive()
    }
}

/// A fresh random session key.
pub fn new_key() -> String {
    new_session_key()
}

/// Time now, to the microsecond (what every backend stores).
pub fn now() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    t.replace_nanosecond(t.nanosecond() / 1000 * 1000).unwrap()
}

// ---------------------------------------------------------------- helpers

pub const PRIMARY: &str = "primary-secret-key-0123456789abcdefghijklmnop";
pub const STAGED: &str = "staged-secret-key-0123456789abcdefghijklmnopq";
pub const FALLBACK: &str = "fallback-secret-key-0123456789abcdefghijklmno";
pub const UNKNOWN: &str = "unknown-secret-key-0123456789abcdefghijklmnop";

/// A ring with just this key, as primary.
pub fn only(secret: &str) -> KeyRing {
    KeyRing::new(Secret::from(secret)).expect("a non-empty secret")
}

/// Primary, staged and fallback.
pub fn full_ring() -> KeyRing {
    only(PRIMARY)
        .with_staged(Secret::from(STAGED))
        .unwrap()
        .with_fallback(Secret::from(FALLBACK), None)
        .unwrap()
}

/// Session data `{"n": n}`.
pub fn data(n: i64) -> SessionData {
    let mut d = SessionData::new();
    d.insert("n".into(), n.into());
    d
}

/// `data` signed by `secret` at `at`, as Django's database backend stores it.
pub fn sign(secret: &str, data: &SessionData, at: OffsetDateTime) -> String {
    SessionCodec::database(&only(secret))
        .encode_at(data, at)
        .unwrap()
}

/// The base62 timestamp field of a signed token.
pub fn ts_field(token: &str) -> String {
    token.rsplit(':').nth(1).unwrap().to_owned()
}

/// Verifies `token` with the primary key alone (None if it does not).
pub fn primary_decode(token: &str, now: OffsetDateTime) -> Option<SessionData> {
    SessionCodec::database(&only(PRIMARY))
        .decode_at(token, now)
        .ok()
        .map(|v| v.value)
}

pub fn rec(key: &str, data: &str, expires: OffsetDateTime) -> SessionRecord {
    SessionRecord {
        key: key.to_owned(),
        data: data.to_owned(),
        expires,
    }
}

/// Every record, in key order, through small scan pages.
pub async fn scan_all(store: &dyn Store, range: &KeyRange, batch: usize) -> Vec<SessionRecord> {
    let mut out: Vec<SessionRecord> = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.scan(range, after.as_deref(), batch).await.unwrap();
        assert!(page.len() <= batch, "a page longer than asked");
        let Some(last) = page.last() else { break };
        after = Some(last.key.clone());
        let short = page.len() < batch;
        out.extend(page);
        if short {
            break;
        }
    }
    out
}

/// The whole store as key → (data, expiry).
pub async fn snapshot(store: &dyn Store) -> BTreeMap<String, (String, OffsetDateTime)> {
    scan_all(store, &KeyRange::all(), 1000)
        .await
        .into_iter()
        .map(|r| (r.key, (r.data, r.expires)))
        .collect()
}

/// The current stored data of `key`, live or not.
pub async fn raw(store: &dyn Store, key: &str) -> Option<SessionRecord> {
    store
        .scan(
            &KeyRange {
                start: Some(key.to_owned()),
                end: None,
            },
            None,
            1,
        )
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.key == key)
}

// ---------------------------------------------------------------- the suite

/// The whole suite as tests: one `#[tokio::test]` (multi-threaded, so
/// the crate running it needs tokio with the `macros` and `rt-multi-thread`
/// features) per case of [`testing`](crate::testing), each on a fresh
/// fixture from `$fixture()`, an `async fn() -> Option<Fixture>` (`None`
/// skips the test, e.g. when the server is not running).
///
/// ```text
/// async fn my_store() -> Option<keyroll_store::testing::Fixture> {
///     Some(keyroll_store::testing::Fixture::new(std::sync::Arc::new(MyStore::new())))
/// }
/// keyroll_store::store_suite!(my_store);
/// ```
#[macro_export]
macro_rules! store_suite {
    ($fixture:path) => {
        $crate::store_suite!(@cases $fixture;
            crud,
            save_inserts_and_refuses_bad_keys,
            ensure_schema_is_idempotent,
            load_never_returns_expired,
            scan_returns_expired_with_expiry,
            cas_success_and_failure,
            cas_keeps_expiry,
            cas_many_mixed_results,
            scan_in_key_order_with_cursor,
            scan_ranges_partition_exactly,
            purge_expired_counts,
            purge_in_batches,
            scan_live_and_count_rows,
            unique_keys_over_many_creates,
            concurrent_creates,
            concurrent_cas_one_winner,
            password_hashes_lookup,
            engine_roundtrip,
            engine_resigns_stale_on_load,
            engine_concurrent_save_survives,
            engine_unverifiable_is_none_and_counted,
            engine_expired_is_none,
            update_never_recreates_a_deleted_row,
            engine_save_after_a_concurrent_logout_does_not_bring_the_session_back,
        );
    };
    (@cases $fixture:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let Some(fx) = $fixture().await else { return };
                $crate::testing::$case(&fx).await;
            }
        )*
    };
}

pub async fn crud(fx: &Fixture) {
    let s = &*fx.store;
    let now = now();
    let exp = now + Duration::days(1);
    let key = s.create("data-1", exp).await.unwrap();
    assert_eq!(key.len(), 32);
    assert!(is_valid_session_key(&key));
    let r = s
        .load(&key, now)
        .await
        .unwrap()
        .expect("created session loads");
    assert_eq!(
        (r.key.as_str(), r.data.as_str(), r.expires),
        (key.as_str(), "data-1", exp)
    );

    // save replaces data and expiry (sub-second expiry kept to the microsecond)
    let exp2 = now + Duration::days(2) + Duration::microseconds(123_457);
    s.save(&rec(&key, "data-2", exp2)).await.unwrap();
    let r = s.load(&key, now).await.unwrap().unwrap();
    assert_eq!((r.data.as_str(), r.expires), ("data-2", exp2));

    assert!(s.delete(&key).await.unwrap(), "a row was deleted");
    assert!(s.load(&key, now).await.unwrap().is_none());
    assert!(
        !s.delete(&key).await.unwrap(),
        "absent: no error, nothing deleted"
    );
    assert!(s.load(&new_session_key(), now).await.unwrap().is_none());
    for bad in ["", "short", "UPPER0000000", "a:b00000000", "__index"] {
        assert!(s.load(bad, now).await.unwrap().is_none(), "{bad}");
    }
}

pub async fn save_inserts_and_refuses_bad_keys(fx: &Fixture) {
    let s = &*fx.store;
    let now = now();
    let key = new_session_key();
    s.save(&rec(&key, "fresh", now + Duration::hours(1)))
        .await
        .unwrap();
    assert_eq!(s.load(&key, now).await.unwrap().unwrap().data, "fresh");
    // a Django-length key of another length is fine
    let short = "abcdefgh";
    s.save(&rec(short, "eight", now + Duration::hours(1)))
        .await
        .unwrap();
    assert_eq!(s.load(short, now).await.unwrap().unwrap().data, "eight");
    for bad in [
        "",
        "has space000",
        "__index",
        "x:yyyyyyyyy",
        &"a".repeat(41),
    ] {
        let e = s
            .save(&rec(bad, "SECRET-DATA-xyz", now + Duration::hours(1)))
            .await
            .unwrap_err();
        assert!(!e.to_string().contains("SECRET-DATA"), "{e}");
    }
}

pub async fn ensure_schema_is_idempotent(fx: &Fixture) {
    let s = &*fx.store;
    let key = s.create("x", now() + Duration::hours(1)).await.unwrap();
    s.ensure_schema().await.unwrap();
    s.ensure_schema().await.unwrap();
    assert_eq!(s.load(&key, now()).await.unwrap().unwrap().data, "x");
}

pub async fn load_never_returns_expired(fx: &Fixture) {
    let s = &*fx.store;
    let now = now();
    let (live, gone, edge) = (new_session_key(), new_session_key(), new_session_key());
    s.save(&rec(&live, "live", now + Duration::seconds(30)))
        .await
        .unwrap();
    s.save(&rec(&gone, "gone", now - Duration::hours(1)))
        .await
        .unwrap();
    s.save(&rec(&edge, "edge", now)).await.unwrap();
    assert_eq!(s.load(&live, now).await.unwrap().unwrap().data, "live");
    assert!(
        s.load(&gone, now).await.unwrap().is_none(),
        "expired an hour ago"
    );
    assert!(
        s.load(&edge, now).await.unwrap().is_none(),
        "expires exactly now: expired"
    );
    // `now` rules, not the wall clock: a later now expires the live one
    assert!(s
        .load(&live, now + Duration::seconds(31))
        .await
        .unwrap()
        .is_none());
    assert!(s
        .load(&live, now + Duration::seconds(30))
        .await
        .unwrap()
        .is_none());
    assert!(s
        .load(
            &live,
            now + Duration::seconds(30) - Duration::microseconds(1)
        )
        .await
        .unwrap()
        .is_some());
    if fx.keeps_expired {
        // still there, for an earlier now
        let r = s
            .load(&gone, now - Duration::hours(2))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r.data, "gone");
    }
    // whole-second expiries (Django leaves the fraction out) compare right too
    let whole = now.replace_nanosecond(0).unwrap() + Duration::seconds(10);
    let k = new_session_key();
    s.save(&rec(&k, "whole", whole)).await.unwrap();
    assert!(s
        .load(&k, whole - Duration::microseconds(1))
        .await
        .unwrap()
        .is_some());
    assert!(s.load(&k, whole).await.unwrap().is_none());
    assert_eq!(s.load(&k, now).await.unwrap().unwrap().expires, whole);
}

pub async fn scan_returns_expired_with_expiry(fx: &Fixture) {
    let s = &*fx.store;
    let now = now();
    let (live, gone) = (new_session_key(), new_session_key());
    let gone_at = now - Duration::hours(1) + Duration::microseconds(7);
    s.save(&rec(&live, "live", now + Duration::hours(1)))
        .await
        .unwrap();
    s.save(&rec(&gone, "gone", gone_at)).await.unwrap();
    let all = snapshot(s).await;
    assert_eq!(
        all.get(&live),
        Some(&("live".to_owned(), now + Duration::hours(1)))
    );
    if fx.keeps_expired {
        assert_eq!(all.get(&gone), Some(&("gone".to_owned(), gone_at)));
        assert_eq!(all.len(), 2);
    } else {
        // Redis drops an expired session itself: nothing to return.
        assert_eq!(all.len(), 1);
    }
}

pub async fn cas_success_and_failure(fx: &Fixture) {
    let s = &*fx.store;
    let now = now();
    let key = s.create("v1", now + Duration::hours(1)).await.unwrap();
    assert!(s.compare_and_swap(&key, "v1", "v2").await.unwrap());
    assert_eq!(s.load(&key, now).await.unwrap().unwrap().data, "v2");
    // the row changed since "v1" was read: no swap, data untouched
    assert!(!s.compare_and_swap(&key, "v1", "v3").await.unwrap());
    assert_eq!(s.load(&key, now).await.unwrap().unwrap().data, "v2");
    // a prefix or a longer string is not the same data
    assert!(!s.compare_and_swap(&key, "v", "v4").await.unwrap());
    assert!(!s.compare_and_swap(&key, "v22", "v4").await.unwrap());
    assert!(!s
        .compare_and_swap(&new_session_key(), "v2", "v5")
        .await
        .unwrap());
    assert!(!s
        .compare_and_swap("__index", "", "v5")
        .await
        .unwrap_or(false));
    assert_eq!(s.load(&key, now).await.unwrap().unwrap().data, "v2");
    // swapping to the same value counts as a swap
    assert!(s.compare_and_swap(&key, "v2", "v2").await.unwrap());
}

pub async fn cas_keeps_expiry(fx: &Fixture) {
    let s = &*fx.store;
    let now = now();
    let exp = now + Duration::minutes(90) + Duration::microseconds(654_321);
    let key = s.create("old", exp).await.unwrap();
    assert!(s.compare_and_swap(&key, "old", "new").await.unwrap());
    let r = s.load(&key, now).await.unwrap().unwrap();
    assert_eq!((r.data.as_str(), r.expires), ("new", exp));
    let many = s
        .compare_and_swap_many(&[Swap {
            key: key.clone(),
            expected: "new".into(),
            new: "newer".into(),
        }])
        .await
        .unwrap();
    assert_eq!(many, vec![true]);
    let r = s.load(&key, now).await.unwrap().unwrap();
    assert_eq!((r.data.as_str(), r.expires), ("newer", exp));
}

pub async fn cas_many_mixed_results(fx: &Fixture) {
    let s = &*fx.store;
    let now = now();
    let exp = now + Duration::hours(1);
    let a = s.create("a1", exp).await.unwrap();
    let b = s.create("b1", exp).await.unwrap();
    let c = s.create("c1", exp).await.unwrap();
    let missing = new_session_key();
    let sw = |k: &str, e: &str, n: &str| Swap {
        key: k.to_owned(),
        expected: e.to_owned(),
        new: n.to_owned(),
    };
    assert!(s.compare_and_swap_many(&[]).await.unwrap().is_empty());
    let got = s
        .compare_and_swap_many(&[
            sw(&a, "a1", "a2"),
            sw(&b, "stale", "b2"),
            sw(&missing, "x", "y"),
            sw(&c, "c1", "c2"),
        ])
        .await
        .unwrap();
    assert_eq!(got, vec![true, false, false, true]);
    let load = |k: String| async move { s.load(&k, now).await.unwrap().map(|r| r.data) };
    assert_eq!(load(a.clone()).await.as_deref(), Some("a2"));
    assert_eq!(load(b.clone()).await.as_deref(), Some("b1"));
    assert_eq!(load(c.clone()).await.as_deref(), Some("c2"));
    assert_eq!(load(missing.clone()).await, None);
    // a batch naming one key twice: the first applies, the second no longer matches
    let got = s
        .compare_and_swap_many(&[sw(&a, "a2", "a3"), sw(&a, "a2", "a4"), sw(&b, "b1", "b2")])
        .await
        .unwrap();
    assert_eq!(got, vec![true, false, true]);
    assert_eq!(load(a).await.as_deref(), Some("a3"));
    // a large batch
    let mut keys = Vec::new();
    for i in 0..300 {
        keys.push(s.create(&format!("d{i}"), exp).await.unwrap());
    }
    let swaps: Vec<Swap> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            sw(
                k,
                &format!("d{}", if i % 3 == 0 { 999 } else { i }),
                &format!("e{i}"),
            )
        })
        .collect();
    let got = s.compare_and_swap_many(&swaps).await.unwrap();
    for (i, ok) in got.iter().enumerate() {
        assert_eq!(*ok, i % 3 != 0, "{i}");
    }
    for (i, k) in keys.iter().enumerate() {
        let want = if i % 3 == 0 {
            format!("d{i}")
        } else {
            format!("e{i}")
        };
        assert_eq!(s.load(k, now).await.unwrap().unwrap().data, want);
    }
}

pub async fn scan_in_key_order_with_cursor(fx: &Fixture) {
    let s = &*fx.store;
    let now = now();
    let exp = now + Duration::hours(1);
    let mut keys: Vec<String> = (0..60).map(|_| new_session_key()).collect();
    keys.extend(
        [
            "00000000",
            "0000000000000000000000000000000z",
            "zzzzzzzz",
            "a0000000",
            "9zzzzzzz",
            "abcdefgh",
            "abcdefghi",
        ]
        .map(String::from),
    );
    for (i, k) in keys.iter().enumerate() {
        s.save(&rec(k, &format!("d{i}"), exp + Duration::seconds(i as i64)))
            .await
            .unwrap();
    }
    keys.sort();
    for batch in [1, 7, 67, 1000] {
        let got = scan_all(s, &KeyRange::all(), batch).await;
        let got_keys: Vec<&str> = got.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(
            got_keys,
            keys.iter().map(String::as_str).collect::<Vec<_>>(),
            "batch {batch}"
        );
        for r in &got {
            let i = r.data[1..].parse::<i64>().unwrap();
            assert_eq!(
                r.expires,
                exp + Duration::seconds(i),
                "expiry comes with the row"
            );
        }
    }
    // a cursor in the middle: strictly after it
    let mid = &keys[30];
    let page = s.scan(&KeyRange::all(), Some(mid), 5).await.unwrap();
    assert_eq!(
        page.iter().map(|r| r.key.clone()).collect::<Vec<_>>(),
        keys[31..36].to_vec()
    );
    // a cursor that is not a stored key
    let page = s.scan(&KeyRange::all(), Some("a"), 1).await.unwrap();
    assert_eq!(
        page[0].key,
        *keys.iter().find(|k| k.as_str() > "a").unwrap()
    );
    // past the end
    assert!(s
        .scan(&KeyRange::all(), Some(keys.last().unwrap()), 10)
        .await
        .unwrap()
        .is_empty());
    assert!(s.scan(&KeyRange::all(), None, 0).await.unwrap().is_empty());
}

pub async fn scan_ranges_partition_exactly(fx: &Fixture) {
    let s = &*fx.store;
    let exp = now() + Duration::hours(1);
    let mut keys: HashSet<String> = (0..90).map(|_| new_session_key()).collect();
    // keys on the split boundaries
    for r in KeyRange::split(3) {
        if let Some(b) = r.start {
            keys.insert(format!("{b}0000000"));
            keys.insert(b.repeat(8));
        }
    }
    for k in &keys {
        s.save(&rec(k, "x", exp)).await.unwrap();
    }
    for n in [1, 3, 4] {
        let ranges = KeyRange::split(n);
        let mut seen = HashSet::new();
        for r in &ranges {
            let got = scan_all(s, r, 4).await;
            assert!(
                got.windows(2).all(|w| w[0].key < w[1].key),
                "ordered within {r:?}"
            );
            for rec in got {
                assert!(r.contains(&rec.key), "{} not in {r:?}", rec.key);
                assert!(seen.insert(rec.key), "a key in two ranges");
            }
        }
        assert_eq!(seen, keys, "split({n}) covers every key exactly once");
    }
    // an explicit range, with cursors before and inside it
    let r = KeyRange {
        start: Some("m".into()),
        end: Some("t".into()),
    };
    let mut want: Vec<&String> = keys.iter().filter(|k| r.contains(k)).collect();
    want.sort();
    let got = s.scan(&r, Some("a"), 1000).await.unwrap();
    assert_eq!(
        got.iter().map(|r| &r.key).collect::<Vec<_>>(),
        want,
        "cursor before the range"
    );
    if want.len() > 2 {
        let got = s.scan(&r, Some(want[1]), 1000).await.unwrap();
        assert_eq!(
            got.iter().map(|r| &r.key).collect::<Vec<_>>(),
            want[2..].to_vec(),
            "cursor inside"
        );
    }
    assert!(
        s.scan(&r, Some("u"), 10).await.unwrap().is_empty(),
        "cursor after the range"
    );
}

pub async fn purge_expired_counts(fx: &Fixture) {
    let s = &*fx.store;
    let now = now();
    let mut live = Vec::new();
    for i in 0..3 {
        s.save(&rec(
            &new_session_key(),
            "gone",
            now - Duration::minutes(i + 1),
        ))
        .await
        .unwrap();
    }
    for _ in 0..2 {
        live.push(s.create("live", now + Duration::days(1)).await.unwrap());
    }
    let edge = new_session_key();
    s.save(&rec(&edge, "edge", now)).await.unwrap();
    assert_eq!(
        s.purge_expired(now).await.unwrap(),
        4,
        "expired before now, and at now"
    );
    assert_eq!(s.purge_expired(now).await.unwrap(), 0);
    for k in &live {
        assert!(s.load(k, now).await.unwrap().is_some());
    }
    assert_eq!(snapshot(s).await.len(), 2);
    // `now` rules: a day later, the live ones are expired too
    assert_eq!(s.purge_expired(now + Duration::days(1)).await.unwrap(), 2);
    assert!(snapshot(s).await.is_empty());
}

/// `purge_expired_batch` deletes at most its limit, expired rows only.
pub async fn purge_in_batches(fx: &Fixture) {
    let s = &*fx.store;
    let now = now();
    for i in 0..7 {
        s.save(&rec(
            &new_session_key(),
            "gone",
            now - Duration::minutes(i + 1),
        ))
        .await
        .unwrap();
    }
    let live = s.create("live", now + Duration::days(1)).await.unwrap();
    if !fx.keeps_expired {
        // Redis dropped the sessions; the batches clean its index entries.
        let mut from = PurgeFrom::Start;
        loop {
            let b = s.purge_expired_batch(now, &from, 3).await.unwrap();
            if b.next == PurgeFrom::Done {
                break;
            }
            from = b.next;
        }
        assert!(s.load(&live, now).await.unwrap().is_some());
        return;
    }
    // Each batch from where the last one ended; the last says nothing is left.
    let mut from = PurgeFrom::Start;
    let mut deleted = Vec::new();
    loop {
        let b = s.purge_expired_batch(now, &from, 3).await.unwrap();
        deleted.push(b.deleted);
        if b.next == PurgeFrom::Done {
            break;
        }
        from = b.next;
        assert!(deleted.len() < 10, "{deleted:?}");
    }
    assert_eq!(deleted.iter().sum::<u64>(), 7, "{deleted:?}");
    assert!(s.load(&live, now).await.unwrap().is_some());
    assert_eq!(snapshot(s).await.len(), 1);
}

/// `scan_live` pages through live rows only, in key order, within a range;
/// `count_rows` counts live and expired rows of a range.
pub async fn scan_live_and_count_rows(fx: &Fixture) {
    let s = &*fx.store;
    let now = now();
    let mut live: Vec<String> = Vec::new();
    let mut expired = 0u64;
    for i in 0..40 {
        let key = new_session_key();
        if i % 3 == 0 {
            s.save(&rec(&key, "old", now - Duration::hours(1)))
                .await
                .unwrap();
            expired += 1;
        } else {
            s.save(&rec(&key, "live", now + Duration::hours(1)))
                .await
                .unwrap();
            live.push(key);
        }
    }
    live.sort();
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = s
            .scan_live(&KeyRange::all(), after.as_deref(), 4, now)
            .await
            .unwrap();
        assert!(page.iter().all(|r| r.expires > now));
        seen.extend(page.iter().map(|r| r.key.clone()));
        match page.last() {
            Some(last) if page.len() == 4 => after = Some(last.key.clone()),
            _ => break,
        }
    }
    assert_eq!(seen, live, "every live row once, in key order");
    let counts = s.count_rows(&KeyRange::all(), now).await.unwrap();
    assert_eq!(counts.live, live.len() as u64);
    if fx.keeps_expired {
        assert_eq!(counts.expired, expired);
    } else {
        assert_eq!(counts.expired, 0, "Redis drops expired sessions itself");
    }
    // Ranges: the parts add up to the whole.
    let mut sum = RowCounts::default();
    for r in KeyRange::split(5) {
        let c = s.count_rows(&r, now).await.unwrap();
        let in_range = live.iter().filter(|k| r.contains(k)).count() as u64;
        assert_eq!(c.live, in_range, "{r:?}");
        let page = s.scan_live(&r, None, 1000, now).await.unwrap();
        assert_eq!(page.len() as u64, in_range, "{r:?}");
        sum.live += c.live;
        sum.expired += c.expired;
    }
    assert_eq!(sum, counts);
}

pub async fn unique_keys_over_many_creates(fx: &Fixture) {
    let s = &*fx.store;
    let exp = now() + Duration::hours(1);
    let mut seen = HashSet::new();
    for i in 0..300 {
        let k = s.create(&format!("d{i}"), exp).await.unwrap();
        assert!(is_valid_session_key(&k) && k.len() == 32);
        assert!(seen.insert(k));
    }
    assert_eq!(snapshot(s).await.len(), 300);
}

pub async fn concurrent_creates(fx: &Fixture) {
    let exp = now() + Duration::hours(1);
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..16 {
        let s = Arc::clone(&fx.store);
        tasks.spawn(async move {
            let mut keys = Vec::new();
            for i in 0..25 {
                let data = format!("t{t}-{i}");
                keys.push((s.create(&data, exp).await.unwrap(), data));
            }
            keys
        });
    }
    let mut all = Vec::new();
    while let Some(r) = tasks.join_next().await {
        all.extend(r.unwrap());
    }
    let distinct: HashSet<&String> = all.iter().map(|(k, _)| k).collect();
    assert_eq!(distinct.len(), 400);
    let snap = snapshot(&*fx.store).await;
    assert_eq!(snap.len(), 400);
    for (k, d) in &all {
        assert_eq!(&snap[k].0, d);
    }
}

pub async fn concurrent_cas_one_winner(fx: &Fixture) {
    let now = now();
    for round in 0..5 {
        let key = fx
            .store
            .create("original", now + Duration::hours(1))
            .await
            .unwrap();
        let barrier = Arc::new(tokio::sync::Barrier::new(24));
        let mut tasks = tokio::task::JoinSet::new();
        for t in 0..24 {
            let (s, key, barrier) = (Arc::clone(&fx.store), key.clone(), Arc::clone(&barrier));
            tasks.spawn(async move {
                barrier.wait().await;
                let won = if t % 2 == 0 {
                    s.compare_and_swap(&key, "original", &format!("winner-{t}"))
                        .await
                        .unwrap()
                } else {
                    let swap = Swap {
                        key: key.clone(),
                        expected: "original".into(),
                        new: format!("winner-{t}"),
                    };
                    s.compare_and_swap_many(&[swap]).await.unwrap()[0]
                };
                (t, won)
            });
        }
        let mut winners = Vec::new();
        while let Some(r) = tasks.join_next().await {
            let (t, won) = r.unwrap();
            if won {
                winners.push(t);
            }
        }
        assert_eq!(
            winners.len(),
            1,
            "round {round}: exactly one CAS wins, got {winners:?}"
        );
        let data = fx.store.load(&key, now).await.unwrap().unwrap().data;
        assert_eq!(data, format!("winner-{}", winners[0]));
    }
}

pub async fn password_hashes_lookup(fx: &Fixture) {
    let Some(table) = fx.users_table.clone() else {
        assert!(
            fx.store.user_table().is_none(),
            "a store without a users table says so"
        );
        return;
    };
    let s = fx
        .store
        .user_table()
        .expect("a SQL store reads its users table");
    fx.set_password(1, "pbkdf2_sha256$1$one").await;
    fx.set_password(2, "pbkdf2_sha256$1$two").await;
    fx.set_password(30, "pbkdf2_sha256$1$thirty").await;
    let ids: Vec<String> = ["1", "2", "3", "x", "", "1; DROP TABLE x"]
        .map(String::from)
        .to_vec();
    let got = s.password_hashes(&table, &ids).await.unwrap();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got["1"], "pbkdf2_sha256$1$one");
    assert_eq!(got["2"], "pbkdf2_sha256$1$two");
    assert!(s.password_hashes(&table, &[]).await.unwrap().is_empty());
    // many ids at once (chunked where the backend needs it)
    let many: Vec<String> = (0..1500).map(|i| i.to_string()).collect();
    assert_eq!(s.password_hashes(&table, &many).await.unwrap().len(), 3);
    assert!(matches!(
        s.password_hashes("bad name", &ids).await.unwrap_err(),
        StoreError::BadTableName(_)
    ));
}

pub async fn engine_roundtrip(fx: &Fixture) {
    let engine = SessionEngine::new(Arc::clone(&fx.store), &full_ring());
    let now = now();
    let exp = now + Duration::days(14);
    let key = engine.create(&data(1), exp, now).await.unwrap();
    let got = engine.load(&key, now).await.unwrap().into_loaded().unwrap();
    assert_eq!(
        (&*got.data, got.expires, got.role, got.resigned),
        (&data(1), exp, Role::Primary, false)
    );
    assert_eq!(
        engine.save(&key, &data(2), exp, now).await.unwrap(),
        Saved::Updated
    );
    let stored = fx.store.load(&key, now).await.unwrap().unwrap();
    assert_eq!(primary_decode(&stored.data, now), Some(data(2)));
    engine.delete(&key).await.unwrap();
    assert!(engine
        .load(&key, now)
        .await
        .unwrap()
        .into_loaded()
        .is_none());
    assert!(engine
        .load("not a key", now)
        .await
        .unwrap()
        .into_loaded()
        .is_none());
    assert_eq!(engine.stats().verified_primary, 1);
}

pub async fn engine_resigns_stale_on_load(fx: &Fixture) {
    let now = now();
    let engine = SessionEngine::new(Arc::clone(&fx.store), &full_ring());
    for (secret, role) in [(FALLBACK, Role::Fallback), (STAGED, Role::Staged)] {
        let key = new_session_key();
        let signed_at = now - Duration::days(3);
        let exp = now + Duration::days(11) + Duration::microseconds(42);
        let old = sign(secret, &data(7), signed_at);
        fx.store.save(&rec(&key, &old, exp)).await.unwrap();

        let got = engine
            .load(&key, now)
            .await
            .unwrap()
            .into_loaded()
            .expect("a stale session still loads");
        assert_eq!(
            ((*got.data).clone(), got.role, got.resigned, got.expires),
            (data(7), role, true, exp)
        );

        let stored = fx.store.load(&key, now).await.unwrap().unwrap();
        assert_ne!(stored.data, old, "re-signed in the store");
        assert_eq!(
            primary_decode(&stored.data, now),
            Some(data(7)),
            "verifies under a primary-only ring"
        );
        assert_eq!(stored.expires, exp, "same expiry");
        assert_eq!(ts_field(&stored.data), ts_field(&old), "same timestamp");

        let again = engine.load(&key, now).await.unwrap().into_loaded().unwrap();
        assert_eq!((again.role, again.resigned), (Role::Primary, false));
    }
    let st = engine.stats();
    assert_eq!(
        (
            st.verified_fallback,
            st.verified_staged,
            st.verified_primary,
            st.resigned
        ),
        (1, 1, 2, 2)
    );
}

pub async fn engine_concurrent_save_survives(fx: &Fixture) {
    let now = now();
    let engine = Arc::new(SessionEngine::new(Arc::clone(&fx.store), &full_ring()));
    let exp = now + Duration::days(1);
    for round in 0..8i64 {
        let key = new_session_key();
        let old = sign(FALLBACK, &data(0), now - Duration::hours(1));
        fx.store.save(&rec(&key, &old, exp)).await.unwrap();
        let saved = data(1000 + round);
        let barrier = Arc::new(tokio::sync::Barrier::new(17));
        let mut loaders = tokio::task::JoinSet::new();
        for _ in 0..16 {
            let (engine, key, barrier) = (Arc::clone(&engine), key.clone(), Arc::clone(&barrier));
            loaders.spawn(async move {
                barrier.wait().await;
                engine.load(&key, now).await.unwrap().into_loaded()
            });
        }
        let saver = {
            let (engine, key, barrier, saved) = (
                Arc::clone(&engine),
                key.clone(),
                Arc::clone(&barrier),
                saved.clone(),
            );
            tokio::spawn(async move {
                barrier.wait().await;
                assert_eq!(
                    engine.save(&key, &saved, exp, now).await.unwrap(),
                    Saved::Updated
                );
            })
        };
        saver.await.unwrap();
        while let Some(r) = loaders.join_next().await {
            let got = r.unwrap().expect("always a session");
            assert!(
                *got.data == data(0) || *got.data == saved,
                "a loader saw {:?}",
                got.data
            );
        }
        let stored = fx.store.load(&key, now).await.unwrap().unwrap();
        assert_eq!(
            primary_decode(&stored.data, now),
            Some(saved),
            "round {round}: the handler's save survives"
        );
        assert_eq!(stored.expires, exp);
    }
}

pub async fn engine_unverifiable_is_none_and_counted(fx: &Fixture) {
    let now = now();
    let engine = SessionEngine::new(Arc::clone(&fx.store), &full_ring());
    let exp = now + Duration::days(1);
    let rows = [
        (new_session_key(), sign(UNKNOWN, &data(1), now)),
        (new_session_key(), "not-a-signed-token".to_owned()),
        (new_session_key(), String::new()),
        (new_session_key(), {
            let t = sign(PRIMARY, &data(1), now);
            let last = if t.ends_with('x') { 'y' } else { 'x' };
            format!("{}{last}", &t[..t.len() - 1])
        }),
    ];
    for (k, d) in &rows {
        fx.store.save(&rec(k, d, exp)).await.unwrap();
    }
    for (k, d) in &rows {
        assert!(engine.load(k, now).await.unwrap().into_loaded().is_none());
        assert_eq!(
            &fx.store.load(k, now).await.unwrap().unwrap().data,
            d,
            "left untouched"
        );
    }
    assert_eq!(engine.stats().unverifiable, rows.len() as u64);
    assert_eq!(engine.stats().resigned, 0);
}

pub async fn engine_expired_is_none(fx: &Fixture) {
    let now = now();
    let engine = SessionEngine::new(Arc::clone(&fx.store), &full_ring());
    let key = new_session_key();
    let old = sign(FALLBACK, &data(3), now - Duration::days(20));
    fx.store
        .save(&rec(&key, &old, now - Duration::seconds(1)))
        .await
        .unwrap();
    assert!(engine
        .load(&key, now)
        .await
        .unwrap()
        .into_loaded()
        .is_none());
    assert_eq!(engine.stats().resigned, 0);
    if fx.keeps_expired {
        assert_eq!(
            raw(&*fx.store, &key).await.unwrap().data,
            old,
            "not re-signed"
        );
    }
}

/// `update` writes data and expiry of an existing row and never inserts:
/// a row deleted in between stays deleted.
pub async fn update_never_recreates_a_deleted_row(fx: &Fixture) {
    let s = &*fx.store;
    let now = now();
    let exp = now + Duration::days(1);
    let key = s.create("before", exp).await.unwrap();
    let exp2 = exp + Duration::hours(3);
    assert!(s.update(&rec(&key, "after", exp2)).await.unwrap());
    let r = s.load(&key, now).await.unwrap().unwrap();
    assert_eq!((r.data.as_str(), r.expires), ("after", exp2));

    assert!(s.delete(&key).await.unwrap());
    assert!(!s.update(&rec(&key, "revived", exp2)).await.unwrap());
    assert!(s.load(&key, now).await.unwrap().is_none());
    let never = new_session_key();
    assert!(!s.update(&rec(&never, "new", exp2)).await.unwrap());
    assert!(s.load(&never, now).await.unwrap().is_none());
    assert!(s.update(&rec("bad key", "x", exp2)).await.is_err());
}

/// A request loads a logged-in session; a concurrent logout deletes its
/// row; the first request then saves: the engine must not write the row
/// back (a stolen cookie would outlive the victim's logout).
pub async fn engine_save_after_a_concurrent_logout_does_not_bring_the_session_back(fx: &Fixture) {
    let ring = KeyRing::new(Secret::from(PRIMARY)).expect("a non-empty secret");
    let engine = SessionEngine::new(Arc::clone(&fx.store), &ring);
    let now = now();
    let exp = now + Duration::days(14);
    let key = engine.create(&data(1), exp, now).await.unwrap();
    let loaded = engine.load(&key, now).await.unwrap().into_loaded().unwrap();
    assert!(engine.delete(&key).await.unwrap(), "the logout deleted it");
    assert_eq!(
        engine.save(&key, &loaded.data, exp, now).await.unwrap(),
        Saved::Gone
    );
    assert!(fx.store.load(&key, now).await.unwrap().is_none());
    assert!(engine
        .load(&key, now)
        .await
        .unwrap()
        .into_loaded()
        .is_none());
}
