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
#[cfg(feature = "postgres")]
bulk_suite!(postgres, crate::common::postgres);
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
    let total = PRIMARY_ROWS + STAGED_ROWS + FALLBACK_ROWS + UNVERIFIABLE_ROWS + expired_rows(fx);
    assert_eq!(
        progress.load(Ordering::Relaxed),
        total,
        "progress sees every row"
    );
    // jobs split the work, not the counts
    let c3 = census(Arc::clone(&fx.store), &full_ring(), &opts(3, 2), now, None)
        .await
        .unwrap();
    assert_eq!(c3, want);
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
