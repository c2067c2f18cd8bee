//! The MySQL/MariaDB backend: the shared suite and Django's layout. Needs a
//! server: `KEYROLL_TEST_MYSQL_URL` (default `mysql://root@127.0.0.1:3306/test`);
//! skipped with a loud line when unreachable, failed if `KEYROLL_REQUIRE_SERVICES=1`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
#![cfg(feature = "mysql")]

mod common;

use common::{
    mysql_cleanup, mysql_exec, mysql_url, new_key, now, rec, snapshot, unique_name, unreachable,
};
use keyroll_store::{MysqlStore, Store, Swap};
use mysql_async::prelude::Queryable;
use time::macros::datetime;
use time::Duration;

keyroll_store::store_suite!(common::mysql);

/// Connects a store to a table of its own (made by `ddl`, or not made), dropped at the end.
async fn bare_store(ddl: Option<&str>) -> Option<(MysqlStore, String, common::Cleanup)> {
    let url = mysql_url();
    let table = unique_name();
    let store = match MysqlStore::connect(&url, &table, 2).await {
        Ok(s) => s,
        Err(e) => return unreachable("MySQL/MariaDB", &url, &e),
    };
    let cleanup = mysql_cleanup(url.clone(), vec![table.clone()]);
    if let Some(ddl) = ddl {
        let statements: Vec<String> = ddl
            .split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.replace("django_session", &table))
            .collect();
        mysql_exec(&url, &statements).await.unwrap();
    }
    Some((store, table, cleanup))
}

/// Django 5.2's DDL for the session table on MySQL/MariaDB (`sqlmigrate sessions 0001`).
const DJANGO_DDL: &str = "
CREATE TABLE `django_session` (`session_key` varchar(40) NOT NULL PRIMARY KEY, `session_data` longtext NOT NULL, `expire_date` datetime(6) NOT NULL);
CREATE INDEX `django_session_expire_date_a5c62663` ON `django_session` (`expire_date`);
";

async fn query_one<T: mysql_async::prelude::FromValue + Send + 'static>(sql: &str, arg: &str) -> T {
    let mut c = mysql_async::Conn::from_url(mysql_url().as_str())
        .await
        .unwrap();
    let v: Option<T> = c.exec_first(sql, (arg,)).await.unwrap();
    c.disconnect().await.unwrap();
    v.unwrap()
}

#[tokio::test]
async fn a_table_django_made_works_as_is() {
    let Some((store, table, _cleanup)) = bare_store(Some(DJANGO_DDL)).await else {
        return;
    };
    store.ensure_schema().await.unwrap();
    let n: i64 = query_one(
        "SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() \
         AND TABLE_NAME = ? AND COLUMN_NAME = 'expire_date'",
        &table,
    )
    .await;
    assert_eq!(n, 1, "ensure_schema adds no second index to Django's table");
    // rows as Django writes them: naive UTC in datetime(6), whatever the session time zone
    mysql_exec(
        &mysql_url(),
        &[
            "SET time_zone = '+05:00'".to_owned(),
            format!(
                "INSERT INTO `{table}` VALUES \
                 ('a0000000000000000000000000000000', 'da', '2030-01-02 03:04:05'), \
                 ('b0000000000000000000000000000000', 'db', '2030-01-02 03:04:05.000007'), \
                 ('c0000000000000000000000000000000', 'dc', '2020-01-02 03:04:05')"
            ),
        ],
    )
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
    // what keyroll writes, Django's column reads as the same instant (UTC)
    let k = new_key();
    store
        .save(&rec(&k, "x", datetime!(2031-05-06 07:08:09.123456 +02:00)))
        .await
        .unwrap();
    let utc: String = query_one(
        &format!(
            "SELECT CAST(DATE_FORMAT(expire_date, '%Y-%m-%d %H:%i:%s.%f') AS CHAR) \
             FROM `{table}` WHERE session_key = ?"
        ),
        &k,
    )
    .await;
    assert_eq!(utc, "2031-05-06 05:08:09.123456");
}

/// Django's table has a case-insensitive collation: a compare-and-swap must
/// still compare the data byte for byte.
#[tokio::test]
async fn compare_and_swap_is_byte_exact_under_a_case_insensitive_collation() {
    let Some((store, table, _cleanup)) = bare_store(Some(DJANGO_DDL)).await else {
        return;
    };
    let collation: String = query_one(
        "SELECT CAST(COLLATION_NAME AS CHAR) FROM information_schema.COLUMNS \
         WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND COLUMN_NAME = 'session_data'",
        &table,
    )
    .await;
    let exp = now() + Duration::hours(1);
    let (k1, k2) = (new_key(), new_key());
    store.save(&rec(&k1, "abc:Sig", exp)).await.unwrap();
    store.save(&rec(&k2, "abc:Sig ", exp)).await.unwrap();
    assert!(
        !store.compare_and_swap(&k1, "abc:sig", "new").await.unwrap(),
        "case differs ({collation})"
    );
    assert!(!store.compare_and_swap(&k2, "abc:Sig", "new").await.unwrap());
    let many = store
        .compare_and_swap_many(&[
            Swap {
                key: k1.clone(),
                expected: "ABC:SIG".into(),
                new: "n1".into(),
            },
            Swap {
                key: k2.clone(),
                expected: "abc:Sig ".into(),
                new: "n2".into(),
            },
        ])
        .await
        .unwrap();
    assert_eq!(many, vec![false, true]);
    assert_eq!(
        store.load(&k1, now()).await.unwrap().unwrap().data,
        "abc:Sig"
    );
    assert_eq!(store.load(&k2, now()).await.unwrap().unwrap().data, "n2");
}

/// An update that writes the values already there still finds the row (MySQL
/// counts only changed rows unless the client asks for found rows).
#[tokio::test]
async fn an_unchanged_update_still_finds_its_row() {
    let Some((store, _table, _cleanup)) = bare_store(Some(DJANGO_DDL)).await else {
        return;
    };
    let k = new_key();
    let r = rec(&k, "same", datetime!(2031-01-01 00:00:00 UTC));
    store.save(&r).await.unwrap();
    assert!(store.update(&r).await.unwrap());
    assert!(store.compare_and_swap(&k, "same", "same").await.unwrap());
    assert!(store.delete(&k).await.unwrap());
    assert!(!store.update(&r).await.unwrap());
    assert!(!store.delete(&k).await.unwrap());
}

#[tokio::test]
async fn missing_table_is_an_error_without_the_key() {
    let Some((store, _table, _cleanup)) = bare_store(None).await else {
        return;
    };
    let key = new_key();
    let e = store.load(&key, now()).await.unwrap_err();
    assert!(
        e.to_string().contains("doesn't exist") && !e.to_string().contains(&key),
        "{e}"
    );
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
    for url in [
        "mysql://u:hunter2@[bad/db",
        "mysql://u:hunter2@127.0.0.1:1/db?connect_timeout=2",
        "mysql://u:hunter2@127.0.0.1:3306/db?no_such_parameter=hunter2",
        "mysql://u:hunter2@127.0.0.1:3306/db?query_timeout=hunter2",
    ] {
        let e = MysqlStore::connect(url, "t", 1).await.unwrap_err();
        assert!(!format!("{e} {e:?}").contains("hunter2"), "{e}");
    }
    assert!(MysqlStore::connect(&mysql_url(), "bad name", 1)
        .await
        .is_err());
}

/// `mysql://`, `mysql2://` and `mariadb://` open the same store.
#[tokio::test]
async fn open_store_urls() {
    let url = mysql_url();
    let table = unique_name();
    let _cleanup = mysql_cleanup(url.clone(), vec![table.clone()]);
    let opts = keyroll_store::StoreOptions {
        table: table.clone(),
        ..Default::default()
    };
    let rest = url.strip_prefix("mysql://").unwrap();
    for scheme in ["mysql", "mysql2", "mariadb"] {
        let tuned = format!("{scheme}://{rest}");
        let store = match keyroll_store::open_store(&tuned, &opts).await {
            Ok(s) => s,
            Err(e) => return unreachable("MySQL/MariaDB", &url, &e).unwrap_or(()),
        };
        assert_eq!(store.backend(), "mysql");
        store.ensure_schema().await.unwrap();
    }
}

/// A statement that takes longer than `query_timeout` fails as unavailable,
/// naming the timeout, and the store keeps working afterwards.
#[tokio::test]
async fn a_slow_statement_times_out_and_the_store_recovers() {
    let Some((_store, table, _cleanup)) = bare_store(Some(DJANGO_DDL)).await else {
        return;
    };
    let url = mysql_url();
    let sep = if url.contains('?') { '&' } else { '?' };
    let store = MysqlStore::connect(&format!("{url}{sep}query_timeout=1"), &table, 1)
        .await
        .unwrap();
    let k = new_key();
    store
        .save(&rec(&k, "x", now() + Duration::hours(1)))
        .await
        .unwrap();
    // Another connection holds the row's lock for 3 s: the swap waits on it.
    let mut holder = mysql_async::Conn::from_url(url.as_str()).await.unwrap();
    holder.query_drop("START TRANSACTION").await.unwrap();
    holder
        .exec_drop(
            format!("SELECT * FROM `{table}` WHERE session_key = ? FOR UPDATE"),
            (&k,),
        )
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let e = store.compare_and_swap(&k, "x", "y").await.unwrap_err();
    assert!(
        matches!(e, keyroll_store::StoreError::Unavailable { .. }),
        "{e}"
    );
    assert!(e.to_string().contains("query_timeout"), "{e}");
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
    holder.query_drop("ROLLBACK").await.unwrap();
    holder.disconnect().await.unwrap();
    // The outcome of a timed-out statement is unknown: the server runs it
    // once the lock is free, which on a busy server may be after the load
    // below. The store itself works on: a swap that lost to the late one
    // (x -> y) is tried again with what is there, and then wins.
    let mut swapped = false;
    for _ in 0..2 {
        let now_data = store.load(&k, now()).await.unwrap().unwrap().data;
        assert!(now_data == "x" || now_data == "y", "{now_data}");
        if store.compare_and_swap(&k, &now_data, "z").await.unwrap() {
            swapped = true;
            break;
        }
    }
    assert!(swapped);
    assert_eq!(store.load(&k, now()).await.unwrap().unwrap().data, "z");
}

/// A batch of compare-and-swaps on `table` (made by `ddl`, then `after`):
/// winners, losers, a swap to the same data and a missing key each get their
/// answer, and nothing else changes (no row added, no expiry touched).
async fn batch_swaps_answer_exactly(ddl: &str, columns: &str, after: &[&str]) {
    let Some((store, table, _cleanup)) = bare_store(Some(ddl)).await else {
        return;
    };
    let url = mysql_url();
    let (k1, k2, k3, k4) = (new_key(), new_key(), new_key(), new_key());
    let mut setup = vec![format!(
        "INSERT INTO `{table}` ({columns}) VALUES ('{k1}', 'a1', '2031-01-01 00:00:01'{x}), \
         ('{k2}', 'a2', '2031-01-01 00:00:02'{x}), ('{k3}', 'a3', '2031-01-01 00:00:03'{x})",
        x = if columns.contains("user_agent") {
            ", 'ua'"
        } else {
            ""
        }
    )];
    setup.extend(after.iter().map(|s| s.replace("django_session", &table)));
    mysql_exec(&url, &setup).await.unwrap();
    let swap = |key: &str, expected: &str, new: &str| Swap {
        key: key.to_owned(),
        expected: expected.to_owned(),
        new: new.to_owned(),
    };
    let applied = store
        .compare_and_swap_many(&[
            swap(&k1, "a1", "b1"),
            swap(&k2, "A2", "b2"),
            swap(&k3, "a3", "a3"),
            swap(&k4, "a4", "b4"),
        ])
        .await
        .unwrap();
    assert_eq!(applied, vec![true, false, true, false]);
    let snap = snapshot(&store).await;
    assert_eq!(snap.len(), 3, "no row added");
    assert_eq!(
        snap[&k1],
        ("b1".to_owned(), datetime!(2031-01-01 00:00:01 UTC))
    );
    assert_eq!(
        snap[&k2],
        ("a2".to_owned(), datetime!(2031-01-01 00:00:02 UTC))
    );
    assert_eq!(
        snap[&k3],
        ("a3".to_owned(), datetime!(2031-01-01 00:00:03 UTC))
    );
}

/// Django's own table is rewritten a batch at a time by an upsert of the
/// locked rows; a table with more columns, or with triggers, by one
/// `UPDATE … CASE` (an upsert would need the other columns' values, and would
/// fire the insert triggers).
#[tokio::test]
async fn batch_swaps_on_django_and_other_layouts() {
    let cols = "session_key, session_data, expire_date";
    batch_swaps_answer_exactly(DJANGO_DDL, cols, &[]).await;
    let extra = "CREATE TABLE `django_session` (`session_key` varchar(40) NOT NULL PRIMARY KEY, \
         `session_data` longtext NOT NULL, `expire_date` datetime(6) NOT NULL, \
         `user_agent` varchar(200) NOT NULL)";
    batch_swaps_answer_exactly(extra, &format!("{cols}, user_agent"), &[]).await;
    batch_swaps_answer_exactly(
        DJANGO_DDL,
        cols,
        &[
            "CREATE TRIGGER `django_session_no_insert` BEFORE INSERT ON `django_session` \
           FOR EACH ROW SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'no inserts here'",
        ],
    )
    .await;
}

/// The store keeps its connections: operations one after another run on the
/// pooled connections, which stay open between them (not a new connection,
/// login and statement preparation for each).
#[tokio::test]
async fn operations_reuse_a_pooled_connection() {
    let Some((_store, table, _cleanup)) = bare_store(Some(DJANGO_DDL)).await else {
        return;
    };
    let url = mysql_url();
    let user = format!("kr_pool_{}", &new_key()[..8]);
    let db: String = query_one("SELECT COALESCE(DATABASE(), ?)", "test").await;
    let hosts = ["localhost", "127.0.0.1", "::1", "%"];
    let mut setup: Vec<String> = hosts
        .iter()
        .map(|h| format!("CREATE USER '{user}'@'{h}'"))
        .collect();
    setup.extend(
        hosts
            .iter()
            .map(|h| format!("GRANT ALL PRIVILEGES ON `{db}`.* TO '{user}'@'{h}'")),
    );
    mysql_exec(&url, &setup).await.unwrap();
    let drop_users: Vec<String> = hosts
        .iter()
        .map(|h| format!("DROP USER IF EXISTS '{user}'@'{h}'"))
        .collect();
    let _users = common::mysql_cleanup_statements(url.clone(), drop_users);
    let (_, host) = url.split_once('@').unwrap();
    let store = MysqlStore::connect(&format!("mysql://{user}@{host}"), &table, 2)
        .await
        .unwrap();
    let ids = || async {
        let mut c = mysql_async::Conn::from_url(mysql_url().as_str())
            .await
            .unwrap();
        let ids: Vec<u64> = c
            .exec(
                "SELECT id FROM information_schema.processlist WHERE user = ? ORDER BY id",
                (&user,),
            )
            .await
            .unwrap();
        c.disconnect().await.unwrap();
        ids
    };
    let k = new_key();
    store
        .save(&rec(&k, "x", now() + Duration::hours(1)))
        .await
        .unwrap();
    let first = ids().await;
    assert!(!first.is_empty(), "idle pooled connections stay open");
    for _ in 0..50 {
        assert!(store.load(&k, now()).await.unwrap().is_some());
    }
    assert_eq!(ids().await, first, "the same connections, still open");
}

/// A re-sign's locked page: the rows it returned stay locked until written
/// (a site's update of one waits), not the rows around them (a new session
/// in the page's key range, an expired row the scan stepped over, the row
/// after the page); written, only the swapped rows change; dropped, nothing
/// changes and the rows are free.
#[tokio::test]
async fn a_locked_scan_holds_the_rows_it_returned_and_nothing_else() {
    let Some((store, table, _cleanup)) = bare_store(Some(DJANGO_DDL)).await else {
        return;
    };
    // Session keys: 32 characters, in this order.
    let k = |p: &str| format!("{p:0<32}");
    let t = now();
    let live = t + Duration::hours(1);
    for p in ["k1", "k2", "k3", "k4"] {
        store
            .save(&rec(&k(p), &format!("{p}-old"), live))
            .await
            .unwrap();
    }
    store
        .save(&rec(&k("k2x"), "expired", t - Duration::hours(1)))
        .await
        .unwrap();
    let scan = store.locked_scan().expect("MySQL scans locked");
    let (rows, held) = scan
        .scan_locked(&keyroll_store::KeyRange::all(), None, 3, Some(t))
        .await
        .unwrap();
    let keys: Vec<&str> = rows.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, [k("k1"), k("k2"), k("k3")]);

    // The site, on its own connection, waiting at most a second for a lock.
    let mut site = mysql_async::Conn::from_url(mysql_url().as_str())
        .await
        .unwrap();
    site.query_drop("SET SESSION innodb_lock_wait_timeout = 1")
        .await
        .unwrap();
    let update = |p: &str| {
        format!(
            "UPDATE `{table}` SET session_data = 'site' WHERE session_key = '{}'",
            k(p)
        )
    };
    let e = site.query_drop(update("k2")).await.unwrap_err();
    assert!(e.to_string().contains("Lock wait timeout"), "{e}");
    site.query_drop(update("k2x")).await.unwrap();
    site.query_drop(update("k4")).await.unwrap();
    site.query_drop(format!(
        "INSERT INTO `{table}` VALUES ('{}', 'new', '2999-01-01 00:00:00')",
        k("k2a")
    ))
    .await
    .unwrap();

    held.write(&[Swap {
        key: k("k1"),
        expected: "k1-old".into(),
        new: "k1-new".into(),
    }])
    .await
    .unwrap();
    site.query_drop(update("k3")).await.unwrap();
    let select = format!("SELECT session_data FROM `{table}` WHERE session_key = ?");
    let data = |p: &str| {
        let key = k(p);
        let select = select.clone();
        async move { query_one::<String>(&select, &key).await }
    };
    assert_eq!(data("k1").await, "k1-new");
    assert_eq!(data("k2").await, "k2-old");
    assert_eq!(data("k3").await, "site");

    // Dropped unwritten: nothing written, and the rows let go (the rollback
    // runs as the connection goes back to the pool: the update is retried).
    let (rows, held) = scan
        .scan_locked(&keyroll_store::KeyRange::all(), Some(&k("k1")), 2, Some(t))
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    drop(held);
    let mut freed = false;
    for _ in 0..50 {
        if site.query_drop(update("k2")).await.is_ok() {
            freed = true;
            break;
        }
    }
    assert!(freed, "the dropped page's rows were let go");
    assert_eq!(data("k2").await, "site");
    site.disconnect().await.unwrap();
}
