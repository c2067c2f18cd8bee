//! The Redis backend: the shared suite and its layout. Needs a server:
//! `KEYROLL_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`); skipped with a
//! loud line when unreachable, failed if `KEYROLL_REQUIRE_SERVICES=1`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
#![cfg(feature = "redis")]

mod common;

use common::{new_key, now, rec, redis_cleanup, redis_url, unique_name, unreachable};
use keyroll_store::{KeyRange, RedisStore, Store};
use redis::AsyncCommands;
use time::Duration;

keyroll_store::store_suite!(common::redis);

async fn store() -> Option<(
    RedisStore,
    redis::aio::MultiplexedConnection,
    common::Cleanup,
)> {
    let url = redis_url();
    let prefix = unique_name();
    let store = match RedisStore::connect(&url, &prefix).await {
        Ok(s) => s,
        Err(e) => return unreachable("Redis", &url, &e),
    };
    let cleanup = redis_cleanup(url.clone(), prefix);
    let raw = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    Some((store, raw, cleanup))
}

#[tokio::test]
async fn layout_is_prefix_key_to_data_with_absolute_expiry() {
    let Some((store, mut raw, _cleanup)) = store().await else {
        return;
    };
    let p = store.prefix().to_owned();
    let now = now();
    let exp = now + Duration::hours(2) + Duration::microseconds(1500);
    let key = new_key();
    store.save(&rec(&key, "the-data", exp)).await.unwrap();
    let v: String = raw.get(format!("{p}:{key}")).await.unwrap();
    assert_eq!(v, "the-data");
    let at: i64 = redis::cmd("PEXPIRETIME")
        .arg(format!("{p}:{key}"))
        .query_async(&mut raw)
        .await
        .unwrap();
    let exp_ms = i64::try_from(exp.unix_timestamp_nanos() / 1_000_000).unwrap();
    assert_eq!(at, exp_ms + 1, "PXAT, rounded up to the millisecond");
    let score: f64 = raw.zscore(format!("{p}:__expiry"), &key).await.unwrap();
    assert_eq!(score as i128, exp.unix_timestamp_nanos() / 1000);
    let members: Vec<String> = raw.zrange(format!("{p}:__index"), 0, -1).await.unwrap();
    assert_eq!(members, vec![key.clone()]);
    // CAS keeps the TTL
    assert!(store
        .compare_and_swap(&key, "the-data", "new")
        .await
        .unwrap());
    let at2: i64 = redis::cmd("PEXPIRETIME")
        .arg(format!("{p}:{key}"))
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(at2, at);
    // delete removes all three
    store.delete(&key).await.unwrap();
    let n: i64 = raw.exists(format!("{p}:{key}")).await.unwrap();
    let i: i64 = raw.zcard(format!("{p}:__index")).await.unwrap();
    let x: i64 = raw.zcard(format!("{p}:__expiry")).await.unwrap();
    assert_eq!((n, i, x), (0, 0, 0));
}

#[tokio::test]
async fn scan_skips_and_cleans_sessions_redis_expired() {
    let Some((store, mut raw, _cleanup)) = store().await else {
        return;
    };
    let p = store.prefix().to_owned();
    let now = now();
    let mut live = Vec::new();
    for i in 0..40 {
        let k = new_key();
        // half of them vanish by TTL within 50 ms
        let exp = if i % 2 == 0 {
            now + Duration::milliseconds(50)
        } else {
            now + Duration::hours(1)
        };
        store.save(&rec(&k, "d", exp)).await.unwrap();
        if i % 2 == 1 {
            live.push(k);
        }
    }
    // and a long run of dead entries ahead of the live ones
    for i in 0..2500 {
        let k = format!("0000{i:08}");
        store
            .save(&rec(&k, "d", now + Duration::milliseconds(50)))
            .await
            .unwrap();
    }
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    live.sort();
    // full pages, in order, however many dead entries sit in between
    let page = store.scan(&KeyRange::all(), None, 7).await.unwrap();
    assert_eq!(
        page.iter().map(|r| r.key.clone()).collect::<Vec<_>>(),
        live[..7].to_vec()
    );
    let all = common::scan_all(&store, &KeyRange::all(), 5).await;
    assert_eq!(all.iter().map(|r| r.key.clone()).collect::<Vec<_>>(), live);
    let i: usize = raw.zcard(format!("{p}:__index")).await.unwrap();
    let x: usize = raw.zcard(format!("{p}:__expiry")).await.unwrap();
    assert_eq!((i, x), (live.len(), live.len()), "stale entries cleaned");
}

#[tokio::test]
async fn sessions_written_by_others_load_with_their_ttl() {
    let Some((store, mut raw, _cleanup)) = store().await else {
        return;
    };
    let p = store.prefix().to_owned();
    let key = new_key();
    let _: () = raw
        .set_ex(format!("{p}:{key}"), "foreign", 600)
        .await
        .unwrap();
    let r = store.load(&key, now()).await.unwrap().unwrap();
    assert_eq!(r.data, "foreign");
    let left = r.expires - now();
    assert!(
        left > Duration::seconds(590) && left <= Duration::seconds(601),
        "{left}"
    );
    // one with no expiry at all is not a session keyroll can vouch for
    let bare = new_key();
    let _: () = raw.set(format!("{p}:{bare}"), "no-ttl").await.unwrap();
    assert!(store.load(&bare, now()).await.unwrap().is_none());
}

#[tokio::test]
async fn bad_urls_never_echo_the_password() {
    let e = RedisStore::connect("redis://:hunter2@127.0.0.1:1", "p")
        .await
        .unwrap_err();
    assert!(!e.to_string().contains("hunter2"), "{e}");
    let e = RedisStore::connect("nonsense://:hunter2@x", "p")
        .await
        .unwrap_err();
    assert!(!e.to_string().contains("hunter2"), "{e}");
}

#[tokio::test]
async fn open_store_url() {
    let url = redis_url();
    let prefix = unique_name();
    let opts = keyroll_store::StoreOptions {
        redis_prefix: prefix.clone(),
        ..Default::default()
    };
    let store = match keyroll_store::open_store(&url, &opts).await {
        Ok(s) => s,
        Err(e) => return unreachable("Redis", &url, &e).unwrap_or(()),
    };
    let _cleanup = redis_cleanup(url, prefix);
    assert_eq!(store.backend(), "redis");
    store.ensure_schema().await.unwrap();
}

/// `connect_timeout` and `query_timeout` are keyroll's: taken out of the URL
/// before the driver parses it; a bad value is refused by name, without
/// the password.
#[tokio::test]
async fn timeouts_in_the_url() {
    let url = redis_url();
    let sep = if url.contains('?') { '&' } else { '?' };
    let prefix = unique_name();
    let tuned = format!("{url}{sep}connect_timeout=2.5&query_timeout=3");
    let store = match RedisStore::connect(&tuned, &prefix).await {
        Ok(s) => s,
        Err(e) => return unreachable("Redis", &url, &e).unwrap_or(()),
    };
    let _cleanup = redis_cleanup(url.clone(), prefix);
    let key = new_key();
    store
        .save(&rec(&key, "x", now() + Duration::hours(1)))
        .await
        .unwrap();
    assert!(store.load(&key, now()).await.unwrap().is_some());
    for bad in ["0", "abc", "7200", "1,5"] {
        let e = RedisStore::connect(
            &format!("redis://:hunter2@127.0.0.1:1?connect_timeout={bad}"),
            "p",
        )
        .await
        .unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("connect_timeout") && !text.contains("hunter2"),
            "{text}"
        );
    }
}

/// An application that already has a redis `ConnectionManager` gives it to
/// keyroll instead of a URL.
#[tokio::test]
async fn a_store_over_the_applications_own_connection_works() {
    let Some((probe, _raw, _cleanup)) = store().await else {
        return;
    };
    let client = redis::Client::open(redis_url().as_str()).unwrap();
    let conn = redis::aio::ConnectionManager::new(client).await.unwrap();
    let store = RedisStore::with_connection(conn, probe.prefix());
    let exp = now() + Duration::hours(1);
    let key = store.create("from-the-app-connection", exp).await.unwrap();
    assert_eq!(
        probe.load(&key, now()).await.unwrap().unwrap().data,
        "from-the-app-connection"
    );
    assert!(store.delete(&key).await.unwrap());
}

/// `purge --max-rate` on Redis, which deletes at most 1,000 sessions a batch
/// whatever it is asked: the rate is of sessions deleted. 10,000 at 10,000 a
/// second take about a second; counting what each batch asked for (10,000)
/// instead of what it deleted would take ten.
#[tokio::test]
async fn a_throttled_purge_goes_at_the_rate_of_what_it_deletes() {
    let Some((store, mut raw, _cleanup)) = store().await else {
        return;
    };
    let p = store.prefix().to_owned();
    let expires = now() + Duration::milliseconds(200);
    for _ in 0..10_000 {
        store.save(&rec(&new_key(), "d", expires)).await.unwrap();
    }
    let live = new_key();
    store
        .save(&rec(&live, "d", now() + Duration::hours(1)))
        .await
        .unwrap();
    let at = expires + Duration::milliseconds(50);
    while now() < at {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let purged = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let started = std::time::Instant::now();
    let n = keyroll_store::purge(
        &store,
        now(),
        keyroll_store::PurgeBatch::Timed(std::time::Duration::from_secs(1)),
        Some(10_000),
        std::sync::Arc::clone(&purged),
        None,
    )
    .await
    .unwrap();
    let took = started.elapsed();
    assert_eq!(n, 10_000);
    // The last (empty) batch waits for the 10,000 before it: a second.
    assert!(took >= std::time::Duration::from_millis(900), "{took:?}");
    assert!(
        took < std::time::Duration::from_secs(5),
        "{took:?}: slower than the rate"
    );
    let x: usize = raw.zcard(format!("{p}:__expiry")).await.unwrap();
    assert_eq!(x, 1, "only the live session is left");
    assert!(store.load(&live, now()).await.unwrap().is_some());
}
