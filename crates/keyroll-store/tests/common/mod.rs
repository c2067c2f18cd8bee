//! The one test suite every store backend runs (`store_suite!`), the engine
//! and bulk helpers, and a fixture per backend: its own table or prefix,
//! dropped at the end, also when the test fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
#![allow(dead_code, unreachable_pub)]

use std::collections::{BTreeMap, HashSet};
use std::fmt::Display;
use std::sync::Arc;

use keyroll::{KeyRing, Role, Secret, SessionCodec, SessionData};
use keyroll_store::{
    is_valid_session_key, new_session_key, KeyRange, Saved, SessionEngine, SessionRecord, Store,
    StoreError, Swap,
};
use time::{Duration, OffsetDateTime};

// ---------------------------------------------------------------- fixtures

/// What a backend fixture gives a test.
pub struct Fixture {
    /// The store, schema in place.
    pub store: Arc<dyn Store>,
    /// Does the backend keep expired rows until purged? (Redis drops them itself.)
    pub keeps_expired: bool,
    /// A users table (`id integer primary key, password text`), SQL stores only.
    pub users_table: Option<String>,
    admin: Admin,
    _cleanup: Cleanup,
}

enum Admin {
    #[cfg(feature = "sqlite")]
    Sqlite(std::path::PathBuf),
    #[cfg(feature = "postgres")]
    Postgres(String),
    #[cfg(feature = "redis")]
    Redis,
    Memory,
}

/// Runs its closure on drop: removes what a test created, even after a panic.
pub struct Cleanup(Option<Box<dyn FnOnce() + Send>>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f();
        }
    }
}

impl Fixture {
    /// Sets a user's password hash in the users table.
    pub async fn set_password(&self, id: i64, password: &str) {
        let table = self.users_table.clone().expect("a users table");
        match &self.admin {
            #[cfg(feature = "sqlite")]
            Admin::Sqlite(path) => {
                let (path, password) = (path.clone(), password.to_owned());
                tokio::task::spawn_blocking(move || {
                    let c = rusqlite::Connection::open(path).unwrap();
                    c.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
                    c.execute(
                        &format!(
                            "INSERT OR REPLACE INTO \"{table}\" (id, password) VALUES (?1, ?2)"
                        ),
                        rusqlite::params![id, password],
                    )
                    .unwrap();
                })
                .await
                .unwrap();
            }
            #[cfg(feature = "postgres")]
            Admin::Postgres(url) => {
                let c = pg_client(url).await.unwrap();
                let id = i32::try_from(id).unwrap();
                c.execute(
                    &format!(
                        "INSERT INTO \"{table}\" (id, password) VALUES ($1, $2) \
                         ON CONFLICT (id) DO UPDATE SET password = EXCLUDED.password"
                    ),
                    &[&id, &password],
                )
                .await
                .unwrap();
            }
            #[cfg(feature = "redis")]
            Admin::Redis => panic!("redis has no users table ({table}, {id}, {password})"),
            Admin::Memory => panic!("memory has no users table ({table}, {id}, {password})"),
        }
    }
}

/// A name no other test uses: `kr_test_<random>`.
pub fn unique_name() -> String {
    format!("kr_test_{}", &new_session_key()[..12])
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

/// A service is unreachable: fail under `KEYROLL_REQUIRE_SERVICES=1`, else say so loudly and skip.
pub fn unreachable<T>(what: &str, url: &str, err: &dyn Display) -> Option<T> {
    let shown = redact(url);
    if std::env::var("KEYROLL_REQUIRE_SERVICES").as_deref() == Ok("1") {
        panic!("{what} unreachable at {shown} and KEYROLL_REQUIRE_SERVICES=1: {err}");
    }
    // Straight to the stderr handle: the test harness captures `eprintln!`.
    let line = format!("SKIPPED: {what} unreachable at {shown}: {err}\n");
    let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
    None
}

/// A URL without its password.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// A fresh SQLite database file (in a temporary directory) with the schema
/// and a users table.
#[cfg(feature = "sqlite")]
pub async fn sqlite() -> Option<Fixture> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sessions.db");
    let store = keyroll_store::SqliteStore::open(&path, "keyroll_session").unwrap();
    store.ensure_schema().await.unwrap();
    let users = "auth_user".to_owned();
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch("CREATE TABLE auth_user (id integer NOT NULL PRIMARY KEY, password text)")
            .unwrap();
    }
    Some(Fixture {
        store: Arc::new(store),
        keeps_expired: true,
        users_table: Some(users),
        admin: Admin::Sqlite(path),
        _cleanup: Cleanup(Some(Box::new(move || drop(dir)))),
    })
}

#[cfg(feature = "postgres")]
pub fn postgres_url() -> String {
    std::env::var("KEYROLL_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

#[cfg(feature = "postgres")]
pub async fn pg_client(url: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

/// Drops tables, from a thread of its own (drop runs inside a runtime, maybe panicking).
#[cfg(feature = "postgres")]
pub fn pg_cleanup(url: String, tables: Vec<String>) -> Cleanup {
    Cleanup(Some(Box::new(move || {
        let job = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                match pg_client(&url).await {
                    Ok(c) => {
                        for t in tables {
                            if let Err(e) = c
                                .batch_execute(&format!("DROP TABLE IF EXISTS \"{t}\""))
                                .await
                            {
                                eprintln!("cleanup: could not drop {t}: {e}");
                            }
                        }
                    }
                    Err(e) => eprintln!("cleanup: {e}"),
                }
            });
        });
        let _ = job.join();
    })))
}

/// A fresh table (and users table) in the test database; `None` (skipped) when
/// PostgreSQL is unreachable.
#[cfg(feature = "postgres")]
pub async fn postgres() -> Option<Fixture> {
    let url = postgres_url();
    let table = unique_name();
    let users = format!("{table}_users");
    let store = match keyroll_store::PostgresStore::connect(&url, &table, 4).await {
        Ok(s) => s,
        Err(e) => return unreachable("PostgreSQL", &url, &e),
    };
    let cleanup = pg_cleanup(url.clone(), vec![table.clone(), users.clone()]);
    store.ensure_schema().await.unwrap();
    let c = pg_client(&url).await.unwrap();
    c.batch_execute(&format!(
        "CREATE TABLE \"{users}\" (id integer NOT NULL PRIMARY KEY, password text)"
    ))
    .await
    .unwrap();
    Some(Fixture {
        store: Arc::new(store),
        keeps_expired: true,
        users_table: Some(users),
        admin: Admin::Postgres(url),
        _cleanup: cleanup,
    })
}

#[cfg(feature = "redis")]
pub fn redis_url() -> String {
    std::env::var("KEYROLL_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// Deletes every key under `<prefix>:`, from a thread of its own.
#[cfg(feature = "redis")]
pub fn redis_cleanup(url: String, prefix: String) -> Cleanup {
    Cleanup(Some(Box::new(move || {
        let job = std::thread::spawn(move || {
            let run = || -> redis::RedisResult<()> {
                let client = redis::Client::open(url.as_str())?;
                let mut con = client.get_connection()?;
                let keys: Vec<String> = redis::cmd("KEYS")
                    .arg(format!("{prefix}:*"))
                    .query(&mut con)?;
                for chunk in keys.chunks(500) {
                    redis::cmd("DEL").arg(chunk).exec(&mut con)?;
                }
                Ok(())
            };
            if let Err(e) = run() {
                eprintln!("cleanup: {e}");
            }
        });
        let _ = job.join();
    })))
}

/// A fresh key prefix; `None` (skipped) when Redis is unreachable.
#[cfg(feature = "redis")]
pub async fn redis() -> Option<Fixture> {
    let url = redis_url();
    let prefix = unique_name();
    let store = match keyroll_store::RedisStore::connect(&url, &prefix).await {
        Ok(s) => s,
        Err(e) => return unreachable("Redis", &url, &e),
    };
    let cleanup = redis_cleanup(url, prefix);
    store.ensure_schema().await.unwrap();
    Some(Fixture {
        store: Arc::new(store),
        keeps_expired: false,
        users_table: None,
        admin: Admin::Redis,
        _cleanup: cleanup,
    })
}

/// A fresh in-process store.
pub async fn memory() -> Option<Fixture> {
    Some(Fixture {
        store: Arc::new(keyroll_store::MemoryStore::new()),
        keeps_expired: true,
        users_table: None,
        admin: Admin::Memory,
        _cleanup: Cleanup(None),
    })
}

// ---------------------------------------------------------------- helpers

pub const PRIMARY: &str = "primary-secret-key-0123456789abcdefghijklmnop";
pub const STAGED: &str = "staged-secret-key-0123456789abcdefghijklmnopq";
pub const FALLBACK: &str = "fallback-secret-key-0123456789abcdefghijklmno";
pub const UNKNOWN: &str = "unknown-secret-key-0123456789abcdefghijklmnop";

/// A ring with just this key, as primary.
pub fn only(secret: &str) -> KeyRing {
    KeyRing::new(Secret::from(secret))
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

/// One `#[tokio::test]` per case below, each on a fresh fixture from `$fixture()`.
#[allow(unused_macros)]
macro_rules! store_suite {
    ($fixture:path) => {
        $crate::common::store_suite!(@cases $fixture;
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
                $crate::common::$case(&fx).await;
            }
        )*
    };
}
#[allow(unused_imports)]
pub(crate) use store_suite;

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
    let got = engine.load(&key, now).await.unwrap().unwrap();
    assert_eq!(
        (got.data, got.expires, got.role, got.resigned),
        (data(1), exp, Role::Primary, false)
    );
    assert_eq!(
        engine.save(&key, &data(2), exp, now).await.unwrap(),
        Saved::Updated
    );
    let stored = fx.store.load(&key, now).await.unwrap().unwrap();
    assert_eq!(primary_decode(&stored.data, now), Some(data(2)));
    engine.delete(&key).await.unwrap();
    assert!(engine.load(&key, now).await.unwrap().is_none());
    assert!(engine.load("not a key", now).await.unwrap().is_none());
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
            .expect("a stale session still loads");
        assert_eq!(
            (got.data.clone(), got.role, got.resigned, got.expires),
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

        let again = engine.load(&key, now).await.unwrap().unwrap();
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
                engine.load(&key, now).await.unwrap()
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
                got.data == data(0) || got.data == saved,
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
        assert!(engine.load(k, now).await.unwrap().is_none());
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
    assert!(engine.load(&key, now).await.unwrap().is_none());
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
    let ring = KeyRing::new(Secret::from(PRIMARY));
    let engine = SessionEngine::new(Arc::clone(&fx.store), &ring);
    let now = now();
    let exp = now + Duration::days(14);
    let key = engine.create(&data(1), exp, now).await.unwrap();
    let loaded = engine.load(&key, now).await.unwrap().unwrap();
    assert!(engine.delete(&key).await.unwrap(), "the logout deleted it");
    assert_eq!(
        engine.save(&key, &loaded.data, exp, now).await.unwrap(),
        Saved::Gone
    );
    assert!(fx.store.load(&key, now).await.unwrap().is_none());
    assert!(engine.load(&key, now).await.unwrap().is_none());
}
