//! The PostgreSQL backend: the shared suite and Django's layout. Needs a server:
//! `KEYROLL_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`);
//! skipped with a loud line when unreachable, failed if `KEYROLL_REQUIRE_SERVICES=1`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
#![cfg(feature = "postgres")]

mod common;

use common::{
    new_key, now, pg_cleanup, pg_client, postgres_url, rec, snapshot, unique_name, unreachable,
};
use keyroll_store::{PostgresStore, Store};
use time::macros::datetime;
use time::Duration;

keyroll_store::store_suite!(common::postgres);

/// Connects a store to a table of its own (not created), dropped at the end.
async fn bare_store(ddl: Option<&str>) -> Option<(PostgresStore, String, common::Cleanup)> {
    let url = postgres_url();
    let table = unique_name();
    let store = match PostgresStore::connect(&url, &table, 2).await {
        Ok(s) => s,
        Err(e) => return unreachable("PostgreSQL", &url, &e),
    };
    let cleanup = pg_cleanup(url.clone(), vec![table.clone()]);
    if let Some(ddl) = ddl {
        let c = pg_client(&url).await.unwrap();
        c.batch_execute(&ddl.replace("django_session", &table))
            .await
            .unwrap();
    }
    Some((store, table, cleanup))
}

/// Django 5.2's DDL for the session table on PostgreSQL (`sqlmigrate sessions 0001`).
const DJANGO_DDL: &str = r#"
CREATE TABLE "django_session" ("session_key" varchar(40) NOT NULL PRIMARY KEY, "session_data" text NOT NULL, "expire_date" timestamp with time zone NOT NULL);
CREATE INDEX "django_session_session_key_c0390e0f_like" ON "django_session" ("session_key" varchar_pattern_ops);
CREATE INDEX "django_session_expire_date_a5c62663" ON "django_session" ("expire_date");
"#;

#[tokio::test]
async fn a_table_django_made_works_as_is() {
    let Some((store, table, _cleanup)) = bare_store(Some(DJANGO_DDL)).await else {
        return;
    };
    store.ensure_schema().await.unwrap();
    let c = pg_client(&postgres_url()).await.unwrap();
    let n: i64 = c
        .query_one(
            "SELECT count(*) FROM pg_indexes WHERE tablename = $1 AND indexdef LIKE '%(expire_date)%'",
            &[&table],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1, "ensure_schema adds no second index to Django's table");
    // rows as Django writes them (timestamptz, any session time zone)
    c.batch_execute(&format!(
        "SET TIME ZONE 'Europe/Paris'; INSERT INTO \"{table}\" VALUES \
         ('a0000000000000000000000000000000', 'da', '2030-01-02 04:04:05+01'), \
         ('b0000000000000000000000000000000', 'db', '2030-01-02 03:04:05.000007+00'), \
         ('c0000000000000000000000000000000', 'dc', '2020-01-02 03:04:05+00')"
    ))
    .await
    .unwrap();
    let at = datetime!(2025-06-01 00:00:00 UTC);
    let r = store
        .load("a0000000000000000000000000000000", at)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (r.data.as_str(), r.expires),
        ("da", datetime!(2030-01-02 03:04:05 UTC))
    );
    assert!(store
        .load("c0000000000000000000000000000000", at)
        .await
        .unwrap()
        .is_none());
    let snap = snapshot(&store).await;
    assert_eq!(
        snap["b0000000000000000000000000000000"].1,
        datetime!(2030-01-02 03:04:05.000007 UTC)
    );
    assert_eq!(store.purge_expired(at).await.unwrap(), 1);
    // what keyroll writes, Django's column reads as the same instant
    let k = new_key();
    store
        .save(&rec(&k, "x", datetime!(2031-05-06 07:08:09.123456 +02:00)))
        .await
        .unwrap();
    let utc: String = c
        .query_one(
            &format!("SELECT to_char(expire_date AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') FROM \"{table}\" WHERE session_key = $1"),
            &[&k],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(utc, "2031-05-06 05:08:09.123456");
}

#[tokio::test]
async fn errors_never_echo_keys_or_data() {
    // A CHECK constraint whose violation message has a DETAIL line quoting the row.
    let ddl = r#"CREATE TABLE "django_session" ("session_key" varchar(40) NOT NULL PRIMARY KEY, "session_data" text NOT NULL CHECK (length(session_data) < 5), "expire_date" timestamp with time zone NOT NULL)"#;
    let Some((store, _table, _cleanup)) = bare_store(Some(ddl)).await else {
        return;
    };
    let key = new_key();
    let e = store
        .save(&rec(&key, "SECRET-DATA", now()))
        .await
        .unwrap_err();
    let shown = format!("{e} {e:?}");
    assert!(shown.contains("23514"), "SQLSTATE kept: {shown}");
    assert!(
        !shown.contains("SECRET-DATA") && !shown.contains(&key),
        "{shown}"
    );
    let e = store.create("SECRET-DATA", now()).await.unwrap_err();
    assert!(!e.to_string().contains("SECRET"), "{e}");
}

#[tokio::test]
async fn missing_table_is_an_error_without_the_key() {
    let Some((store, _table, _cleanup)) = bare_store(None).await else {
        return;
    };
    let key = new_key();
    let e = store.load(&key, now()).await.unwrap_err();
    assert!(
        e.to_string().contains("does not exist") && !e.to_string().contains(&key),
        "{e}"
    );
    // ensure_schema then makes it work, twice over, concurrently
    let store = std::sync::Arc::new(store);
    let (a, b) = tokio::join!(store.ensure_schema(), store.ensure_schema());
    a.unwrap();
    b.unwrap();
    store
        .save(&rec(&key, "x", now() + Duration::hours(1)))
        .await
        .unwrap();
}

#[tokio::test]
async fn bad_urls_never_echo_the_password() {
    let e = PostgresStore::connect("postgres://u:hunter2@[bad", "t", 1)
        .await
        .unwrap_err();
    assert!(!e.to_string().contains("hunter2"), "{e}");
    let e = PostgresStore::connect(
        "postgres://u:hunter2@127.0.0.1:1/db?connect_timeout=2",
        "t",
        1,
    )
    .await
    .unwrap_err();
    assert!(!e.to_string().contains("hunter2"), "{e}");
    assert!(PostgresStore::connect(&postgres_url(), "bad name", 1)
        .await
        .is_err());
}

#[tokio::test]
async fn open_store_url() {
    let url = postgres_url();
    let table = unique_name();
    let opts = keyroll_store::StoreOptions {
        table: table.clone(),
        ..Default::default()
    };
    let store = match keyroll_store::open_store(&url, &opts).await {
        Ok(s) => s,
        Err(e) => return unreachable("PostgreSQL", &url, &e).unwrap_or(()),
    };
    let _cleanup = pg_cleanup(url, vec![table]);
    assert_eq!(store.backend(), "postgres");
    store.ensure_schema().await.unwrap();
}

/// `connect_timeout`, `pool_timeout` and `query_timeout` are keyroll's: taken
/// out of the URL (the driver would refuse them), the rest still reaches the
/// driver; a bad value is refused by name, without the password.
#[tokio::test]
async fn timeouts_in_the_url() {
    let url = postgres_url();
    let sep = if url.contains('?') { '&' } else { '?' };
    let table = unique_name();
    let tuned = format!(
        "{url}{sep}connect_timeout=2.5&application_name=keyroll_timeouts&pool_timeout=1&query_timeout=3"
    );
    let store = match PostgresStore::connect(&tuned, &table, 1).await {
        Ok(s) => s,
        Err(e) => return unreachable("PostgreSQL", &url, &e).unwrap_or(()),
    };
    let _cleanup = pg_cleanup(url.clone(), vec![table]);
    store.ensure_schema().await.unwrap();
    let debug = format!("{store:?}");
    assert!(
        debug.contains("connect: 2.5s") && debug.contains("query: 3s"),
        "{debug}"
    );
    // The driver got application_name.
    let c = pg_client(&url).await.unwrap();
    let n: i64 = c
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'keyroll_timeouts'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    for bad in ["0", "abc", "7200", "-1"] {
        let e = PostgresStore::connect(
            &format!("postgres://u:hunter2@127.0.0.1:1/db?query_timeout={bad}"),
            "t",
            1,
        )
        .await
        .unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("query_timeout") && !text.contains("hunter2"),
            "{text}"
        );
    }
}

/// `purge_expired` deletes in statements of 5000 rows (each well inside the
/// query timeout): all of a larger backlog goes, live rows stay.
#[tokio::test]
async fn purge_of_a_large_backlog_goes_in_chunks() {
    let Some((store, table, _cleanup)) = bare_store(None).await else {
        return;
    };
    store.ensure_schema().await.unwrap();
    let c = pg_client(&postgres_url()).await.unwrap();
    c.batch_execute(&format!(
        "INSERT INTO \"{table}\" SELECT 'expired' || lpad(g::text, 8, '0'), 'x', \
         now() - interval '1 day' FROM generate_series(1, 12345) g"
    ))
    .await
    .unwrap();
    let live = new_key();
    store
        .save(&rec(&live, "live", now() + Duration::hours(1)))
        .await
        .unwrap();
    assert_eq!(store.purge_expired(now()).await.unwrap(), 12_345);
    assert_eq!(store.purge_expired(now()).await.unwrap(), 0);
    assert!(store.load(&live, now()).await.unwrap().is_some());
}

/// An application that already has a deadpool-postgres pool gives it to
/// keyroll instead of a URL: the same store, on the app's own connections.
#[tokio::test]
async fn a_store_over_the_applications_own_pool_works() {
    let url = postgres_url();
    let Some((probe, table, _cleanup)) = bare_store(None).await else {
        return;
    };
    probe.ensure_schema().await.unwrap();
    let config: tokio_postgres::Config = url.parse().unwrap();
    let manager = deadpool_postgres::Manager::new(config, tokio_postgres::NoTls);
    let pool = deadpool_postgres::Pool::builder(manager)
        .max_size(2)
        .build()
        .unwrap();
    let store =
        PostgresStore::with_pool(pool.clone(), &table, keyroll_store::Timeouts::default()).unwrap();
    let exp = now() + Duration::hours(1);
    let key = store.create("from-the-app-pool", exp).await.unwrap();
    assert_eq!(
        probe.load(&key, now()).await.unwrap().unwrap().data,
        "from-the-app-pool",
        "written through the app's pool, read through keyroll's own"
    );
    assert!(store.update(&rec(&key, "again", exp)).await.unwrap());
    assert!(pool.status().size >= 1, "the app's pool did the work");
    assert!(PostgresStore::with_pool(pool, "bad name", Default::default()).is_err());
}

/// dj-database-url's spellings of a PostgreSQL URL all open the store.
#[tokio::test]
async fn postgresql_and_pgsql_urls_open_postgres() {
    let url = postgres_url();
    let Some(rest) = url.strip_prefix("postgres://").map(str::to_owned) else {
        return; // a key=value connection string: nothing to respell
    };
    let Some((probe, table, _cleanup)) = bare_store(None).await else {
        return;
    };
    probe.ensure_schema().await.unwrap();
    let opts = keyroll_store::StoreOptions {
        table: table.clone(),
        ..Default::default()
    };
    for scheme in ["postgresql", "pgsql"] {
        let store = keyroll_store::open_store(&format!("{scheme}://{rest}"), &opts)
            .await
            .unwrap_or_else(|e| panic!("{scheme}: {e}"));
        assert_eq!(store.backend(), "postgres", "{scheme}");
        let key = store
            .create(scheme, now() + Duration::hours(1))
            .await
            .unwrap();
        assert_eq!(probe.load(&key, now()).await.unwrap().unwrap().data, scheme);
    }
}
