//! Census and bulk re-sign, on SQLite and (when reachable) PostgreSQL and Redis:
//! exact counts, idempotence, kept expiries and timestamps, parallel jobs,
//! dry runs, and `_auth_user_hash` re-hashing against the users table.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
#![cfg(any(feature = "sqlite", feature = "postgres", feature = "redis"))]

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use common::{data, full_ring, now, only, primary_decode, rec, sign, snapshot, ts_field, Fixture};
use common::{FALLBACK, PRIMARY, STAGED, UNKNOWN};
use keyroll::{
    KeyId, Role, Secret, SessionAuthHash, SessionCodec, SessionData, SESSION_USER_HASH,
    SESSION_USER_ID,
};
use keyroll_store::{census, resign, BulkOptions, Census, ResignSummary, StoreError, Users};
use time::{Duration, OffsetDateTime};

/// One `#[tokio::test]` per bulk case, on a fresh fixture of one backend.
macro_rules! bulk_suite {
    ($backend:ident, $fixture:path) => {
        mod $backend {
            bulk_suite!(@cases $fixture;
                census_counts_exactly,
                resign_is_exact_idempotent_and_keeps_expiry_and_timestamps,
                resign_with_parallel_jobs_gives_the_same_result,
                dry_run_changes_nothing,
                auth_hashes_from_the_users_table_rehashed_only_when_they_verify,
                auth_hashes_from_a_map_rehashed_only_when_they_verify,
                resign_a_larger_table_in_small_batches,
                rows_that_verify_but_do_not_decode_are_resigned_as_they_are,
                shards_split_the_table_exactly_and_each_resumes,
                max_rate_holds_the_rate,
            );
        }
    };
    (@cases $fixture:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let Some(fx) = $fixture().await else { return };
                super::$case(&fx).await;
            }
        )*
    };
}

#[cfg(feature = "sqlite")]
bulk_suite!(sqlite, crate::common::sqlite);
#[cfg(feature = "sqlite")]
bulk_suite!(sqlite_django, crate::common::sqlite_django);
#[cfg(feature = "mysql")]
bulk_suite!(mysql, crate::common::mysql);
#[cfg(feature = "postgres")]
bulk_suite!(postgres, crate::common::postgres);

/// One pooled connection and a users table: the password hashes are looked
/// up while no page is held (holding one, a second connection would never
/// come).
#[cfg(feature = "mysql")]
mod mysql_one_connection {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn auth_hashes_from_the_users_table_rehashed_only_when_they_verify() {
        let Some(fx) = crate::common::mysql_one_connection().await else {
            return;
        };
        super::auth_hashes_from_the_users_table_rehashed_only_when_they_verify(&fx).await;
    }
}
#[cfg(feature = "redis")]
bulk_suite!(redis, crate::common::redis);

fn id(secret: &str) -> KeyId {
    Secret::from(secret).id()
}

/// How many rows of each kind `populate` wrote.
const PRIMARY_ROWS: u64 = 5;
const STAGED_ROWS: u64 = 4;
const FALLBACK_ROWS: u64 = 6;
const UNVERIFIABLE_ROWS: u64 = 5; // 3 under an unknown key, 2 garbage
const EXPIRED_ROWS: u64 = 4;

/// A table with rows under every kind of key, plus expired ones.
/// Returns what was written: key → (signer, data, expiry).
async fn populate(
    fx: &Fixture,
    now: OffsetDateTime,
) -> BTreeMap<String, (&'static str, String, OffsetDateTime)> {
    let mut rows = BTreeMap::new();
    let mut n = 0i64;
    let mut put = |signer: &'static str, count: u64, expires: OffsetDateTime| {
        let mut out = Vec::new();
        for _ in 0..count {
            n += 1;
            let signed_at = now - Duration::days(2) - Duration::seconds(n * 3701);
            let token = match signer {
                "garbage" => format!("not-a-token-{n}"),
                s => sign(s, &data(n), signed_at),
            };
            out.push((
                common::new_key(),
                (signer, token, expires + Duration::seconds(n)),
            ));
        }
        out
    };
    let live = now + Duration::days(3) + Duration::microseconds(250);
    let dead = now - Duration::hours(5);
    let mut all = Vec::new();
    all.extend(put(PRIMARY, PRIMARY_ROWS, live));
    all.extend(put(STAGED, STAGED_ROWS, live));
    all.extend(put(FALLBACK, FALLBACK_ROWS, live));
    all.extend(put(UNKNOWN, 3, live));
    all.extend(put("garbage", 2, live));
    all.extend(put(FALLBACK, 2, dead));
    all.extend(put(PRIMARY, 1, dead));
    all.extend(put("garbage", 1, dead));
    for (k, (signer, token, expires)) in all {
        fx.store.save(&rec(&k, &token, expires)).await.unwrap();
        rows.insert(k, (signer, token, expires));
    }
    rows
}

fn expired_rows(fx: &Fixture) -> u64 {
    if fx.keeps_expired {
        EXPIRED_ROWS
    } else {
        0 // Redis dropped them itself
    }
}

fn opts(jobs: usize, batch: usize) -> BulkOptions {
    BulkOptions {
        jobs,
        batch,
        ..BulkOptions::default()
    }
}

fn first_pass(fx: &Fixture) -> ResignSummary {
    ResignSummary {
        resigned: STAGED_ROWS + FALLBACK_ROWS,
        already_current: PRIMARY_ROWS,
        unverifiable: UNVERIFIABLE_ROWS,
        expired: expired_rows(fx),
        auth_rehashed: 0,
        conflicts: 0,
    }
}

async fn census_counts_exactly(fx: &Fixture) {
    let now = now();
    populate(fx, now).await;
    let progress = Arc::new(AtomicU64::new(0));
    let seen = Arc::clone(&progress);
    let c = census(
        Arc::clone(&fx.store),
        &full_ring(),
        &opts(1, 4),
        now,
        Some(Arc::new(move |n| {
            seen.fetch_add(n, Ordering::Relaxed);
        })),
    )
    .await
    .unwrap();
    let want = Census {
        keys: vec![
            (id(PRIMARY), Role::Primary, PRIMARY_ROWS),
            (id(STAGED), Role::Staged, STAGED_ROWS),
            (id(FALLBACK), Role::Fallback, FALLBACK_ROWS),
        ],
        unverifiable: UNVERIFIABLE_ROWS,
        expired: expired_rows(fx),
    };
    assert_eq!(c, want);
    assert!(!c.safe_to_retire(id(FALLBACK)));
    assert!(c.safe_to_retire(id(UNKNOWN)));
    let live = PRIMARY_ROWS + STAGED_ROWS + FALLBACK_ROWS + UNVERIFIABLE_ROWS;
    assert_eq!(
        progress.load(Ordering::Relaxed),
        live,
        "progress sees every live row; the expired ones are counted, not read"
    );
    // jobs split the work, not the counts
    let c3 = census(Arc::clone(&fx.store), &full_ring(), &opts(3, 2), now, None)
        .await
        .unwrap();
    assert_eq!(c3, want);
    // Walking the expired rows too gives the same census, having read them all.
    progress.store(0, Ordering::Relaxed);
    let seen = Arc::clone(&progress);
    let all = census(
        Arc::clone(&fx.store),
        &full_ring(),
        &BulkOptions {
            include_expired: true,
            ..opts(2, 3)
        },
        now,
        Some(Arc::new(move |n| {
            seen.fetch_add(n, Ordering::Relaxed);
        })),
    )
    .await
    .unwrap();
    assert_eq!(all, want);
    assert_eq!(progress.load(Ordering::Relaxed), live + expired_rows(fx));
}

async fn resign_is_exact_idempotent_and_keeps_expiry_and_timestamps(fx: &Fixture) {
    let now = now();
    let rows = populate(fx, now).await;
    let s = resign(Arc::clone(&fx.store), &full_ring(), &opts(1, 4), now, None)
        .await
        .unwrap();
    assert_eq!(s, first_pass(fx));

    let after = snapshot(&*fx.store).await;
    for (k, (signer, token, expires)) in &rows {
        let live = *expires > now;
        let Some((stored, stored_exp)) = after.get(k) else {
            assert!(!fx.keeps_expired || live, "row vanished");
            continue;
        };
        assert_eq!(stored_exp, expires, "expiry kept");
        if live && (*signer == STAGED || *signer == FALLBACK) {
            assert_ne!(stored, token);
            let original = SessionCodec::database(&only(signer))
                .decode_at(token, now)
                .unwrap()
                .value;
            assert_eq!(
                primary_decode(stored, now),
                Some(original),
                "verifies under a primary-only ring"
            );
            assert_eq!(ts_field(stored), ts_field(token), "original timestamp kept");
        } else {
            assert_eq!(
                stored, token,
                "primary, unverifiable and expired rows untouched"
            );
        }
    }
    let c = census(Arc::clone(&fx.store), &full_ring(), &opts(1, 4), now, None)
        .await
        .unwrap();
    assert_eq!(
        c.keys,
        vec![(
            id(PRIMARY),
            Role::Primary,
            PRIMARY_ROWS + STAGED_ROWS + FALLBACK_ROWS
        )]
    );
    assert!(c.safe_to_retire(id(FALLBACK)) && c.safe_to_retire(id(STAGED)));

    // A second run finds nothing to do.
    let again = resign(Arc::clone(&fx.store), &full_ring(), &opts(1, 4), now, None)
        .await
        .unwrap();
    assert_eq!(
        again,
        ResignSummary {
            resigned: 0,
            already_current: PRIMARY_ROWS + STAGED_ROWS + FALLBACK_ROWS,
            ..first_pass(fx)
        }
    );
    assert_eq!(
        snapshot(&*fx.store).await,
        after,
        "the second run wrote nothing"
    );
}

async fn resign_with_parallel_jobs_gives_the_same_result(fx: &Fixture) {
    let now = now();
    populate(fx, now).await;
    let s = resign(Arc::clone(&fx.store), &full_ring(), &opts(3, 2), now, None)
        .await
        .unwrap();
    assert_eq!(s, first_pass(fx));
    let c = census(Arc::clone(&fx.store), &full_ring(), &opts(5, 1), now, None)
        .await
        .unwrap();
    assert_eq!(
        c.keys,
        vec![(
            id(PRIMARY),
            Role::Primary,
            PRIMARY_ROWS + STAGED_ROWS + FALLBACK_ROWS
        )]
    );
}

async fn dry_run_changes_nothing(fx: &Fixture) {
    let now = now();
    populate(fx, now).await;
    let before = snapshot(&*fx.store).await;
    let dry = BulkOptions {
        dry_run: true,
        ..opts(2, 3)
    };
    let s = resign(Arc::clone(&fx.store), &full_ring(), &dry, now, None)
        .await
        .unwrap();
    assert_eq!(s, first_pass(fx), "a dry run counts what it would do");
    assert_eq!(snapshot(&*fx.store).await, before);
    // and the real run still has all of it to do
    let s = resign(
        Arc::clone(&fx.store),
        &full_ring(),
        &opts(1, 1000),
        now,
        None,
    )
    .await
    .unwrap();
    assert_eq!(s, first_pass(fx));
}

fn auth_session(user: serde_json::Value, hash: &str) -> SessionData {
    let mut d = SessionData::new();
    d.insert(SESSION_USER_ID.into(), user);
    d.insert(
        "_auth_user_backend".into(),
        "django.contrib.auth.backends.ModelBackend".into(),
    );
    d.insert(SESSION_USER_HASH.into(), hash.into());
    d.insert("cart".into(), 3.into());
    d
}

async fn auth_hashes_from_the_users_table_rehashed_only_when_they_verify(fx: &Fixture) {
    match fx.users_table.clone() {
        Some(table) => auth_rehash(fx, Some(table)).await,
        None => {
            // Redis has no users table: asking for one is an error, not a silent no-op.
            let now = now();
            let k = common::new_key();
            let hash = SessionAuthHash::new(&only(FALLBACK)).make(PW1);
            let token = sign(FALLBACK, &auth_session("1".into(), &hash), now);
            fx.store
                .save(&rec(&k, &token, now + Duration::days(1)))
                .await
                .unwrap();
            let o = BulkOptions {
                users: Some(Users::Table("auth_user".into())),
                ..opts(1, 10)
            };
            let e = resign(Arc::clone(&fx.store), &full_ring(), &o, now, None)
                .await
                .unwrap_err();
            assert!(matches!(e, StoreError::Unsupported(_)), "{e}");
        }
    }
}

async fn auth_hashes_from_a_map_rehashed_only_when_they_verify(fx: &Fixture) {
    auth_rehash(fx, None).await;
}

const PW1: &str = "pbkdf2_sha256$1$salt$one";
const PW2_OLD: &str = "pbkdf2_sha256$1$salt$two-old";
const PW2_NEW: &str = "pbkdf2_sha256$1$salt$two-new";

/// Re-hashing against the users table `table`, or (None) a map of the same passwords.
async fn auth_rehash(fx: &Fixture, table: Option<String>) {
    let now = now();
    let exp = now + Duration::days(1);
    let signed_at = now - Duration::days(1);
    let hash_under =
        |secret: &str, password: &str| SessionAuthHash::new(&only(secret)).make(password);
    let (pw1, pw2_old) = (PW1, PW2_OLD);
    // user 2 changed their password since logging in
    let users = match table {
        Some(table) => {
            fx.set_password(1, PW1).await;
            fx.set_password(2, PW2_NEW).await;
            Users::Table(table)
        }
        None => Users::Map(Arc::new(
            [
                ("1".to_owned(), PW1.to_owned()),
                ("2".to_owned(), PW2_NEW.to_owned()),
            ]
            .into_iter()
            .collect(),
        )),
    };

    let cases: Vec<(&str, SessionData, &str)> = vec![
        // a: stale hash that verifies with user 1's current password, stale data: rehash
        (
            "a",
            auth_session("1".into(), &hash_under(FALLBACK, pw1)),
            FALLBACK,
        ),
        // b: data already under the primary, hash under the staged key, id as a number: rehash
        (
            "b",
            auth_session(1.into(), &hash_under(STAGED, pw1)),
            PRIMARY,
        ),
        // c: user 2's hash is of the OLD password: never upgraded (data still re-signed)
        (
            "c",
            auth_session("2".into(), &hash_under(FALLBACK, pw2_old)),
            FALLBACK,
        ),
        // d: everything current
        (
            "d",
            auth_session("1".into(), &hash_under(PRIMARY, pw1)),
            PRIMARY,
        ),
        // e: no such user: hash left alone, data re-signed
        (
            "e",
            auth_session("3".into(), &hash_under(FALLBACK, pw1)),
            FALLBACK,
        ),
        // f: user 2's old-password hash, data under the primary: nothing to do
        (
            "f",
            auth_session("2".into(), &hash_under(FALLBACK, pw2_old)),
            PRIMARY,
        ),
    ];
    let mut keys = BTreeMap::new();
    for (name, session, signer) in &cases {
        let k = common::new_key();
        let token = sign(signer, session, signed_at);
        fx.store.save(&rec(&k, &token, exp)).await.unwrap();
        keys.insert(*name, (k, token, session.clone()));
    }
    let o = BulkOptions {
        users: Some(users),
        ..opts(2, 2)
    };
    let s = resign(Arc::clone(&fx.store), &full_ring(), &o, now, None)
        .await
        .unwrap();
    assert_eq!(
        s,
        ResignSummary {
            resigned: 4,
            already_current: 2,
            auth_rehashed: 2,
            ..ResignSummary::default()
        }
    );
    let after = snapshot(&*fx.store).await;
    let primary_hash = hash_under(PRIMARY, pw1);
    for (name, (k, token, session)) in &keys {
        let (stored, stored_exp) = &after[k];
        assert_eq!(*stored_exp, exp, "{name}: expiry kept");
        let got =
            primary_decode(stored, now).unwrap_or_else(|| panic!("{name}: signed by the primary"));
        assert_eq!(ts_field(stored), ts_field(token), "{name}: timestamp kept");
        let mut want = session.clone();
        if matches!(*name, "a" | "b") {
            want.insert(SESSION_USER_HASH.into(), primary_hash.clone().into());
        }
        assert_eq!(got, want, "{name}");
        if matches!(*name, "d" | "f") {
            assert_eq!(stored, token, "{name}: untouched");
        }
    }
    // the new hash verifies, under the primary, with the current password
    let checked = SessionAuthHash::new(&full_ring())
        .check_at(&primary_hash, pw1, now)
        .unwrap();
    assert_eq!(checked.role, Role::Primary);
    // idempotent
    let again = resign(Arc::clone(&fx.store), &full_ring(), &o, now, None)
        .await
        .unwrap();
    assert_eq!(
        again,
        ResignSummary {
            already_current: 6,
            ..ResignSummary::default()
        }
    );
}

async fn resign_a_larger_table_in_small_batches(fx: &Fixture) {
    let now = now();
    let exp = now + Duration::days(1);
    let mut live = 0u64;
    for i in 0..1200i64 {
        let signer = [PRIMARY, STAGED, FALLBACK][(i % 3) as usize];
        let k = common::new_key();
        fx.store
            .save(&rec(
                &k,
                &sign(signer, &data(i), now - Duration::hours(i)),
                exp,
            ))
            .await
            .unwrap();
        live += 1;
    }
    let s = resign(Arc::clone(&fx.store), &full_ring(), &opts(4, 37), now, None)
        .await
        .unwrap();
    assert_eq!((s.resigned, s.already_current, s.conflicts), (800, 400, 0));
    let c = census(
        Arc::clone(&fx.store),
        &full_ring(),
        &opts(2, 100),
        now,
        None,
    )
    .await
    .unwrap();
    assert_eq!(c.keys, vec![(id(PRIMARY), Role::Primary, live)]);
}

/// The engine's verified-session cache (on `MemoryStore`): it saves the
/// verify-and-parse of bytes it already verified with the primary, and never
/// lets anything through that a full verify would refuse.
mod cache {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use async_trait::async_trait;
    use keyroll::{KeyRing, Role, Secret, SessionCodec, VerifyError};
    use keyroll_store::{
        new_session_key, KeyRange, LoadOutcome, LoadedSession, MemoryStore, SessionEngine,
        SessionRecord, Store, StoreError, Swap,
    };
    use time::{Duration, OffsetDateTime};

    use crate::common::{data, now, only, rec, sign, FALLBACK, PRIMARY, UNKNOWN};

    fn engine(store: &Arc<MemoryStore>, ring: &KeyRing) -> SessionEngine {
        SessionEngine::new(Arc::clone(store) as Arc<dyn Store>, ring)
    }

    async fn put(store: &MemoryStore, data: &str, expires: OffsetDateTime) -> String {
        let key = new_session_key();
        store.save(&rec(&key, data, expires)).await.unwrap();
        key
    }

    fn loaded(o: LoadOutcome) -> LoadedSession {
        match o {
            LoadOutcome::Loaded(l) => l,
            other => panic!("expected a session, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_second_read_of_the_same_bytes_is_a_hit_with_the_same_result() {
        let store = Arc::new(MemoryStore::new());
        let e = engine(&store, &only(PRIMARY));
        let t = now();
        let exp = t + Duration::days(1);
        let key = put(&store, &sign(PRIMARY, &data(1), t), exp).await;
        let first = loaded(e.load(&key, t).await.unwrap());
        let second = loaded(e.load(&key, t).await.unwrap());
        assert_eq!(first, second);
        assert_eq!(
            (&*second.data, second.role, second.resigned, second.expires),
            (&data(1), Role::Primary, false, exp)
        );
        let st = e.stats();
        assert_eq!((st.verified_primary, st.cache_hits), (2, 1));
    }

    #[tokio::test]
    async fn shared_loads_share_the_cached_data_and_a_change_copies_it() {
        let store = Arc::new(MemoryStore::new());
        let e = engine(&store, &only(PRIMARY));
        let t = now();
        let key = put(&store, &sign(PRIMARY, &data(1), t), t + Duration::days(1)).await;
        let a = loaded(e.load(&key, t).await.unwrap());
        let mut b = loaded(e.load(&key, t).await.unwrap());
        assert!(Arc::ptr_eq(&a.data, &b.data), "a hit copies nothing");
        Arc::make_mut(&mut b.data).insert("n".into(), 99.into());
        let c = loaded(e.load(&key, t).await.unwrap());
        assert_eq!(*c.data, data(1), "the cached data is unchanged");
        // The Debug form shows neither the key nor the data.
        let shown = format!("{c:?}");
        assert!(!shown.contains(&key), "{shown}");
        assert!(shown.contains("entries: 1"), "{shown}");
    }

    #[tokio::test]
    async fn a_tampered_row_is_refused_after_a_cached_read() {
        let store = Arc::new(MemoryStore::new());
        let e = engine(&store, &only(PRIMARY));
        let t = now();
        let exp = t + Duration::days(1);
        let good = sign(PRIMARY, &data(1), t);
        let key = put(&store, &good, exp).await;
        e.load(&key, t).await.unwrap().into_loaded().unwrap();
        e.load(&key, t).await.unwrap().into_loaded().unwrap();
        assert_eq!(e.stats().cache_hits, 1);
        // Every single-byte change of the cached row, and the row cut short
        // or lengthened: each is verified afresh and refused (none is a hit).
        let mut variants: Vec<String> = Vec::new();
        for i in 0..good.len() {
            let mut b = good.clone().into_bytes();
            b[i] = if b[i] == b'A' { b'B' } else { b'A' };
            variants.push(String::from_utf8(b).unwrap());
        }
        variants.push(good[..good.len() - 1].to_owned());
        variants.push(format!("{good}A"));
        variants.push(String::new());
        for bad in &variants {
            store.save(&rec(&key, bad, exp)).await.unwrap();
            match e.load(&key, t).await.unwrap() {
                LoadOutcome::Refused(_) => {}
                other => panic!("{bad:?} loaded: {other:?}"),
            }
        }
        assert_eq!(e.stats().cache_hits, 1, "no tampered row was a hit");
        // The good bytes again: verified again (the refusal dropped the entry), then cached.
        store.save(&rec(&key, &good, exp)).await.unwrap();
        assert_eq!(
            *e.load(&key, t).await.unwrap().into_loaded().unwrap().data,
            data(1)
        );
        assert_eq!(
            *e.load(&key, t).await.unwrap().into_loaded().unwrap().data,
            data(1)
        );
        assert_eq!(e.stats().cache_hits, 2);
    }

    #[tokio::test]
    async fn a_new_ring_without_the_key_refuses_rows_it_cached() {
        let store = Arc::new(MemoryStore::new());
        let e = engine(&store, &only(PRIMARY));
        let t = now();
        let key = put(&store, &sign(PRIMARY, &data(1), t), t + Duration::days(1)).await;
        e.load(&key, t).await.unwrap().into_loaded().unwrap();
        e.load(&key, t).await.unwrap().into_loaded().unwrap();
        assert_eq!(e.stats().cache_hits, 1);
        // The old primary dropped from the ring altogether.
        e.set_ring(&only(UNKNOWN));
        assert_eq!(
            e.load(&key, t).await.unwrap(),
            LoadOutcome::Refused(VerifyError::BadSignature)
        );
        // Back as a fallback: verifies (and is re-signed), not served from the cache.
        let ring = only(UNKNOWN)
            .with_fallback(Secret::from(PRIMARY), None)
            .unwrap();
        e.set_ring(&ring);
        let l = e.load(&key, t).await.unwrap().into_loaded().unwrap();
        assert_eq!((l.role, l.resigned), (Role::Fallback, true));
        assert_eq!(e.stats().cache_hits, 1);
    }

    #[tokio::test]
    async fn expired_and_deleted_rows_are_missing_even_when_cached() {
        let store = Arc::new(MemoryStore::new());
        let e = engine(&store, &only(PRIMARY));
        let t = now();
        let exp = t + Duration::minutes(5);
        let key = put(&store, &sign(PRIMARY, &data(1), t), exp).await;
        e.load(&key, t).await.unwrap().into_loaded().unwrap();
        e.load(&key, t).await.unwrap().into_loaded().unwrap();
        assert_eq!(e.load(&key, exp).await.unwrap(), LoadOutcome::Missing);
        let key2 = put(&store, &sign(PRIMARY, &data(2), t), exp).await;
        e.load(&key2, t).await.unwrap().into_loaded().unwrap();
        store.delete(&key2).await.unwrap();
        assert_eq!(e.load(&key2, t).await.unwrap(), LoadOutcome::Missing);
        assert_eq!(e.load("not a key", t).await.unwrap(), LoadOutcome::Missing);
        assert_eq!(
            e.load(&new_session_key(), t).await.unwrap(),
            LoadOutcome::Missing
        );
    }

    #[tokio::test]
    async fn a_save_through_the_engine_is_read_back_not_the_cached_data() {
        let store = Arc::new(MemoryStore::new());
        let e = engine(&store, &only(PRIMARY));
        let t = now();
        let exp = t + Duration::days(1);
        let key = e.create(&data(1), exp, t).await.unwrap();
        e.load(&key, t).await.unwrap().into_loaded().unwrap();
        assert_eq!(
            e.save(&key, &data(2), exp, t).await.unwrap(),
            keyroll_store::Saved::Updated
        );
        assert_eq!(
            *e.load(&key, t).await.unwrap().into_loaded().unwrap().data,
            data(2)
        );
        // Written behind the engine's back (another process): also seen.
        store
            .save(&rec(&key, &sign(PRIMARY, &data(3), t), exp))
            .await
            .unwrap();
        assert_eq!(
            *e.load(&key, t).await.unwrap().into_loaded().unwrap().data,
            data(3)
        );
    }

    /// A store whose compare-and-swap always loses, so stale rows stay stale.
    #[derive(Debug)]
    struct NoSwap(MemoryStore, AtomicBool);

    #[async_trait]
    impl Store for NoSwap {
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
            self.0.load(key, now).await
        }
        async fn create(&self, data: &str, expires: OffsetDateTime) -> Result<String, StoreError> {
            self.0.create(data, expires).await
        }
        async fn save(&self, record: &SessionRecord) -> Result<(), StoreError> {
            self.0.save(record).await
        }
        async fn update(&self, record: &SessionRecord) -> Result<bool, StoreError> {
            self.0.update(record).await
        }
        async fn delete(&self, key: &str) -> Result<bool, StoreError> {
            self.0.delete(key).await
        }
        async fn compare_and_swap(&self, _: &str, _: &str, _: &str) -> Result<bool, StoreError> {
            self.1.store(true, Ordering::Relaxed);
            Ok(false)
        }
        async fn compare_and_swap_many(&self, swaps: &[Swap]) -> Result<Vec<bool>, StoreError> {
            Ok(vec![false; swaps.len()])
        }
        async fn scan(
            &self,
            range: &KeyRange,
            after: Option<&str>,
            limit: usize,
        ) -> Result<Vec<SessionRecord>, StoreError> {
            self.0.scan(range, after, limit).await
        }
        async fn purge_expired_batch(
            &self,
            now: OffsetDateTime,
            from: &keyroll_store::PurgeFrom,
            limit: usize,
        ) -> Result<keyroll_store::Purged, StoreError> {
            self.0.purge_expired_batch(now, from, limit).await
        }
    }

    #[tokio::test]
    async fn a_row_verified_by_a_fallback_is_refused_once_the_fallback_retires() {
        let store = Arc::new(NoSwap(MemoryStore::new(), AtomicBool::new(false)));
        let t = now();
        let retire = t + Duration::hours(1);
        let ring = only(PRIMARY)
            .with_fallback(Secret::from(FALLBACK), Some(retire))
            .unwrap();
        let e = SessionEngine::new(Arc::clone(&store) as Arc<dyn Store>, &ring);
        let key = new_session_key();
        let old = sign(FALLBACK, &data(1), t);
        store
            .save(&rec(&key, &old, t + Duration::days(1)))
            .await
            .unwrap();
        for _ in 0..3 {
            let l = e.load(&key, retire).await.unwrap().into_loaded().unwrap();
            assert_eq!((l.role, l.resigned), (Role::Fallback, false));
        }
        assert!(store.1.load(Ordering::Relaxed), "the re-sign was tried");
        assert_eq!(
            e.load(&key, retire + Duration::seconds(1)).await.unwrap(),
            LoadOutcome::Refused(VerifyError::BadSignature)
        );
        assert_eq!(
            e.stats().cache_hits,
            0,
            "fallback-verified rows are never cached"
        );
    }

    #[tokio::test]
    async fn the_cache_is_bounded_by_entries_and_bytes_and_its_debug_shows_no_keys() {
        let store = Arc::new(MemoryStore::new());
        let e = engine(&store, &only(PRIMARY)).with_cache_limits(3, 1 << 20);
        let t = now();
        let exp = t + Duration::days(1);
        let mut keys = Vec::new();
        for i in 0..10 {
            let key = put(&store, &sign(PRIMARY, &data(i), t), exp).await;
            e.load(&key, t).await.unwrap().into_loaded().unwrap();
            keys.push(key);
        }
        let shown = format!("{e:?}");
        assert!(shown.contains("entries: 3"), "{shown}");
        for k in &keys {
            assert!(
                !shown.contains(k.as_str()),
                "the Debug form shows a session key"
            );
        }
        assert!(!shown.contains(PRIMARY), "the Debug form shows a secret");
        // Each re-read is right whether or not it is still cached; at most 3 hit.
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(
                *e.load(k, t).await.unwrap().into_loaded().unwrap().data,
                data(i as i64)
            );
        }
        assert!(e.stats().cache_hits <= 3);

        // A session larger than an eighth of the byte bound is never cached.
        let small = engine(&store, &only(PRIMARY)).with_cache_limits(100, 8 * 200);
        let mut big = data(1);
        big.insert("blob".into(), "x".repeat(400).into());
        let key = put(&store, &sign(PRIMARY, &big, t), exp).await;
        for _ in 0..3 {
            assert_eq!(
                *small
                    .load(&key, t)
                    .await
                    .unwrap()
                    .into_loaded()
                    .unwrap()
                    .data,
                big
            );
        }
        assert_eq!(small.stats().cache_hits, 0);
        // Turned off.
        let off = engine(&store, &only(PRIMARY)).with_cache_limits(0, 0);
        for _ in 0..3 {
            off.load(&keys[0], t).await.unwrap().into_loaded().unwrap();
        }
        assert_eq!(off.stats().cache_hits, 0);
    }

    #[tokio::test]
    async fn data_that_verifies_but_is_not_a_session_is_refused_as_malformed() {
        let store = Arc::new(MemoryStore::new());
        let e = engine(&store, &only(PRIMARY));
        let t = now();
        let not_an_object = SessionCodec::database(&only(PRIMARY))
            .object_signer()
            .dumps_at(&serde_json::json!([1, 2]), t)
            .unwrap();
        let key = put(&store, &not_an_object, t + Duration::days(1)).await;
        for _ in 0..2 {
            match e.load(&key, t).await.unwrap() {
                LoadOutcome::Refused(err) => assert_eq!(err.reason(), "malformed"),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(e.stats().unverifiable, 2);
    }
}

/// Re-signing is a matter of signatures: a row whose `payload:timestamp` a ring
/// key verifies is re-signed byte for byte even when its payload is no session
/// (bad base64, bad zlib, JSON that is not an object), with or without users to
/// re-hash; census counts it under the key that verifies it. Only rows no ring
/// key verifies are unverifiable, and they are left as they are.
async fn rows_that_verify_but_do_not_decode_are_resigned_as_they_are(fx: &Fixture) {
    let now = now();
    let stamped = |secret: &str| {
        keyroll::SignerBuilder::new()
            .salt(keyroll::DB_SESSION_SALT)
            .build_timestamp(&only(secret))
            .unwrap()
    };
    let signed_at = (now - Duration::days(1)).unix_timestamp();
    let payloads = ["not base64 !!", ".AAAA", "WzEsMl0"]; // "[1,2]": not an object
    let live = now + Duration::days(1);
    let mut bad = BTreeMap::new();
    for p in payloads {
        let (k, t) = (
            common::new_key(),
            stamped(FALLBACK).sign_with_timestamp(p, signed_at),
        );
        fx.store.save(&rec(&k, &t, live)).await.unwrap();
        bad.insert(k, t);
    }
    let unknown = (
        common::new_key(),
        stamped(UNKNOWN).sign_with_timestamp("WzEsMl0", signed_at),
    );
    fx.store
        .save(&rec(&unknown.0, &unknown.1, live))
        .await
        .unwrap();
    let n = payloads.len() as u64;

    let c = census(Arc::clone(&fx.store), &full_ring(), &opts(1, 2), now, None)
        .await
        .unwrap();
    assert_eq!(c.keys, vec![(id(FALLBACK), Role::Fallback, n)]);
    assert_eq!(c.unverifiable, 1);

    let expected = ResignSummary {
        resigned: n,
        unverifiable: 1,
        ..ResignSummary::default()
    };
    let with_users = BulkOptions {
        dry_run: true,
        users: Some(Users::Map(Arc::default())),
        ..opts(1, 2)
    };
    let s = resign(Arc::clone(&fx.store), &full_ring(), &with_users, now, None)
        .await
        .unwrap();
    assert_eq!(s, expected, "dry run with users");
    let s = resign(Arc::clone(&fx.store), &full_ring(), &opts(1, 2), now, None)
        .await
        .unwrap();
    assert_eq!(s, expected);

    let after = snapshot(fx.store.as_ref()).await;
    let primary = stamped(PRIMARY);
    for (k, old) in &bad {
        let new = &after[k].0;
        let sig_at = |t: &str| t.rfind(':').unwrap();
        assert_eq!(
            &new[..sig_at(new)],
            &old[..sig_at(old)],
            "payload:timestamp kept"
        );
        assert_ne!(new, old);
        let v = primary.unsign_at(new, None, now).unwrap();
        assert_eq!(v.timestamp, Some(signed_at));
    }
    assert_eq!(after[&unknown.0].0, unknown.1, "unverifiable row untouched");

    let c = census(Arc::clone(&fx.store), &full_ring(), &opts(1, 2), now, None)
        .await
        .unwrap();
    assert_eq!(c.keys, vec![(id(PRIMARY), Role::Primary, n)]);
    assert_eq!(c.unverifiable, 1);
    let again = resign(Arc::clone(&fx.store), &full_ring(), &opts(1, 2), now, None)
        .await
        .unwrap();
    assert_eq!(
        again,
        ResignSummary {
            already_current: n,
            unverifiable: 1,
            ..ResignSummary::default()
        }
    );
}

/// `--shard K/N`: N runs, one per shard, re-sign every row exactly once
/// between them (the same figures as one run over the table); a shard run
/// again finds its rows done; each shard's census covers only its keys.
async fn shards_split_the_table_exactly_and_each_resumes(fx: &Fixture) {
    let now = now();
    populate(fx, now).await;
    let n = 3;
    let mut total = ResignSummary::default();
    let mut census_rows = 0u64;
    for k in 1..=n {
        let o = BulkOptions {
            shard: Some((k, n)),
            ..opts(2, 3)
        };
        let c = census(Arc::clone(&fx.store), &full_ring(), &o, now, None)
            .await
            .unwrap();
        census_rows += c.keys.iter().map(|(_, _, r)| r).sum::<u64>() + c.unverifiable;
        let s = resign(Arc::clone(&fx.store), &full_ring(), &o, now, None)
            .await
            .unwrap();
        assert_eq!(s.conflicts, 0);
        total.resigned += s.resigned;
        total.already_current += s.already_current;
        total.unverifiable += s.unverifiable;
        total.expired += s.expired;
        // Run again, this shard finds its work done.
        let again = resign(Arc::clone(&fx.store), &full_ring(), &o, now, None)
            .await
            .unwrap();
        assert_eq!(again.resigned, 0, "shard {k}/{n} rerun");
        assert_eq!(
            again.already_current,
            s.already_current + s.resigned,
            "shard {k}/{n} rerun"
        );
    }
    assert_eq!(total, first_pass(fx), "the shards add up to the table");
    assert_eq!(
        census_rows,
        PRIMARY_ROWS + STAGED_ROWS + FALLBACK_ROWS + UNVERIFIABLE_ROWS
    );
    let bad = BulkOptions {
        shard: Some((4, 3)),
        ..opts(1, 3)
    };
    assert!(resign(Arc::clone(&fx.store), &full_ring(), &bad, now, None)
        .await
        .is_err());
}

/// `max_rate`: all workers together read no more than the rate allows
/// (a lower bound on the time taken; an upper bound would be a timing test).
async fn max_rate_holds_the_rate(fx: &Fixture) {
    let now = now();
    populate(fx, now).await;
    let live = PRIMARY_ROWS + STAGED_ROWS + FALLBACK_ROWS + UNVERIFIABLE_ROWS;
    let rate = 20;
    let started = std::time::Instant::now();
    let c = census(
        Arc::clone(&fx.store),
        &full_ring(),
        &BulkOptions {
            max_rate: Some(rate),
            ..opts(2, 4)
        },
        now,
        None,
    )
    .await
    .unwrap();
    assert_eq!(c.unverifiable, UNVERIFIABLE_ROWS);
    // Batches of 4 admitted at 20 rows/s: the last batch starts no earlier
    // than (rows read before it) / rate.
    let floor = std::time::Duration::from_secs_f64((live - 4) as f64 / rate as f64);
    assert!(
        started.elapsed() >= floor.mul_f64(0.9),
        "{:?} < {floor:?}",
        started.elapsed()
    );
}
