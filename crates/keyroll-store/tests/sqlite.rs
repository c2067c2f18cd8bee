//! The SQLite backend: the shared suite, Django's layout and formats.
//! (The bulk re-sign benchmark is `bench/resign-vs-django`.)
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
#![cfg(feature = "sqlite")]

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::{data, new_key, now, rec, snapshot};
use keyroll_store::{SqliteStore, StorageOrder as _, Store};
use time::macros::datetime;
use time::Duration;

keyroll_store::store_suite!(common::sqlite);

/// Django 5.2's DDL for the session table on SQLite (`sqlmigrate sessions 0001`).
const DJANGO_DDL: &str = r#"
CREATE TABLE "django_session" ("session_key" varchar(40) NOT NULL PRIMARY KEY, "session_data" text NOT NULL, "expire_date" datetime NOT NULL);
CREATE INDEX "django_session_expire_date_a5c62663" ON "django_session" ("expire_date");
"#;

fn raw_conn(path: &Path) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(path).unwrap();
    c.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
    c
}

/// A database in a temporary directory with Django's session table: the
/// directory (removed when dropped), the file, and a connection to it.
fn django_db() -> (tempfile::TempDir, PathBuf, rusqlite::Connection) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("django.db");
    let c = raw_conn(&path);
    c.execute_batch(DJANGO_DDL).unwrap();
    (dir, path, c)
}

#[tokio::test]
async fn a_table_django_made_works_as_is() {
    let (_dir, path, c) = django_db();
    // Django writes str(naive UTC datetime): no fraction when it is zero.
    let rows = [
        (
            "a0000000000000000000000000000000",
            "2030-01-02 03:04:05",
            datetime!(2030-01-02 03:04:05 UTC),
        ),
        (
            "b0000000000000000000000000000000",
            "2030-01-02 03:04:05.000007",
            datetime!(2030-01-02 03:04:05.000007 UTC),
        ),
        (
            "c0000000000000000000000000000000",
            "2030-01-02 03:04:05.5+00:00",
            datetime!(2030-01-02 03:04:05.5 UTC),
        ),
        (
            "d0000000000000000000000000000000",
            "2020-01-02 03:04:05",
            datetime!(2020-01-02 03:04:05 UTC),
        ),
    ];
    for (k, text, _) in rows {
        c.execute(
            "INSERT INTO django_session VALUES (?1, ?2, ?3)",
            [k, "data", text],
        )
        .unwrap();
    }
    let store = SqliteStore::open(&path, "django_session").unwrap();
    store.ensure_schema().await.unwrap();
    let indexes: i64 = c
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'django_session' AND sql LIKE '%expire_date%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        indexes, 1,
        "ensure_schema adds no second index to Django's table"
    );

    let at = datetime!(2025-06-01 00:00:00 UTC);
    for (k, _, expires) in &rows[..3] {
        let r = store.load(k, at).await.unwrap().unwrap();
        assert_eq!(r.expires, *expires);
    }
    assert!(
        store.load(rows[3].0, at).await.unwrap().is_none(),
        "expired"
    );
    // scan reads every form
    let snap = snapshot(&store).await;
    assert_eq!(
        snap.values().map(|(_, e)| *e).collect::<Vec<_>>(),
        rows.map(|r| r.2).to_vec()
    );
    // "now" exactly at a whole-second expiry: expired, as in Django (expire_date > now)
    assert!(store.load(rows[0].0, rows[0].2).await.unwrap().is_none());
    assert!(store
        .load(rows[0].0, rows[0].2 - Duration::microseconds(1))
        .await
        .unwrap()
        .is_some());
    assert!(store
        .load(rows[1].0, rows[1].2 - Duration::microseconds(1))
        .await
        .unwrap()
        .is_some());
    assert!(store.load(rows[1].0, rows[1].2).await.unwrap().is_none());
    assert_eq!(store.purge_expired(at).await.unwrap(), 1);
    assert_eq!(
        store.purge_expired(rows[1].2).await.unwrap(),
        2,
        "at and before"
    );
}

#[tokio::test]
async fn writes_what_django_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let store = SqliteStore::open(&path, "django_session").unwrap();
    store.ensure_schema().await.unwrap();
    let whole = new_key();
    let frac = new_key();
    store
        .save(&rec(&whole, "d1", datetime!(2030-01-02 03:04:05 UTC)))
        .await
        .unwrap();
    store
        .save(&rec(
            &frac,
            "d2",
            datetime!(2030-01-02 04:04:05.000007 +01:00),
        ))
        .await
        .unwrap();
    let c = raw_conn(&path);
    let text = |k: &str| -> (String, String) {
        c.query_row(
            "SELECT expire_date, typeof(expire_date) FROM django_session WHERE session_key = ?1",
            [k],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
    };
    assert_eq!(
        text(&whole),
        ("2030-01-02 03:04:05".to_owned(), "text".to_owned())
    );
    assert_eq!(
        text(&frac),
        ("2030-01-02 03:04:05.000007".to_owned(), "text".to_owned())
    );
    let ddl: String = c
        .query_row(
            "SELECT sql FROM sqlite_master WHERE name = 'django_session'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        ddl.contains("\"session_key\" varchar(40) NOT NULL PRIMARY KEY"),
        "{ddl}"
    );
    assert!(ddl.contains("\"expire_date\" datetime NOT NULL"), "{ddl}");
    assert!(
        ddl.ends_with("WITHOUT ROWID"),
        "clustered by session key: {ddl}"
    );
}

#[tokio::test]
async fn open_creates_the_file_not_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.db");
    let store = SqliteStore::open(&path, "keyroll_session").unwrap();
    assert!(path.exists());
    let key = new_key();
    let e = store.load(&key, now()).await.unwrap_err();
    assert!(e.to_string().contains("no such table"), "{e}");
    // errors never carry the key or the data
    let e = store
        .save(&rec(&key, "SECRET-DATA", now()))
        .await
        .unwrap_err();
    let shown = format!("{e} {e:?}");
    assert!(
        !shown.contains("SECRET-DATA") && !shown.contains(&key),
        "{shown}"
    );
    let e = store
        .compare_and_swap(&key, "SECRET-OLD", "SECRET-NEW")
        .await
        .unwrap_err();
    assert!(!e.to_string().contains("SECRET"), "{e}");
    assert!(SqliteStore::open(&path, "bad-name").is_err());
    assert!(SqliteStore::open(&dir.path().join("missing/dir/x.db"), "t").is_err());
    assert!(format!("{store:?}").contains("keyroll_session"));
}

/// Session keys are bearer credentials: a database keyroll creates is not
/// readable by other users, nor are its WAL and shared-memory files.
#[cfg(unix)]
#[tokio::test]
async fn a_new_session_database_and_its_wal_files_are_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("private.db");
    let store = SqliteStore::open(&path, "keyroll_session").unwrap();
    store.ensure_schema().await.unwrap();
    store
        .create("data", now() + Duration::hours(1))
        .await
        .unwrap();
    let mut seen = 0;
    for name in ["private.db", "private.db-wal", "private.db-shm"] {
        let Ok(meta) = std::fs::metadata(dir.path().join(name)) else {
            continue;
        };
        seen += 1;
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{name}");
    }
    assert!(seen >= 2, "the database and its WAL exist while open");
    drop(store);
}

#[tokio::test]
async fn in_memory_database_works_on_one_connection() {
    let store = SqliteStore::open(Path::new(":memory:"), "t").unwrap();
    store.ensure_schema().await.unwrap();
    let key = store.create("x", now() + Duration::hours(1)).await.unwrap();
    assert_eq!(store.load(&key, now()).await.unwrap().unwrap().data, "x");
}

#[tokio::test]
async fn open_store_url() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("u.db").display());
    let store = keyroll_store::open_store(&url, &keyroll_store::StoreOptions::default())
        .await
        .unwrap();
    assert_eq!(store.backend(), "sqlite");
    store.ensure_schema().await.unwrap();
}

/// Real Django reads what keyroll wrote into a table keyroll created, and
/// keyroll reads what Django wrote. Opt-in: `KEYROLL_DJANGO_PYTHON=/path/to/python`
/// (a Python with Django installed).
#[tokio::test]
async fn django_reads_and_writes_a_keyroll_table() {
    let Ok(python) = std::env::var("KEYROLL_DJANGO_PYTHON") else {
        eprintln!("skipped: set KEYROLL_DJANGO_PYTHON to a Python with Django");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let store = SqliteStore::open(&path, "django_session").unwrap();
    store.ensure_schema().await.unwrap();
    let engine = keyroll_store::SessionEngine::new(
        Arc::new(SqliteStore::open(&path, "django_session").unwrap()),
        &common::only(common::PRIMARY),
    );
    let now = now();
    let mut d = data(41);
    d.insert("who".into(), "keyroll".into());
    let ours = engine
        .create(&d, now + Duration::days(1) + Duration::microseconds(5), now)
        .await
        .unwrap();
    let script = r#"
import sys, datetime
from django.conf import settings
settings.configure(SECRET_KEY=sys.argv[2], USE_TZ=True,
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": sys.argv[1]}},
    INSTALLED_APPS=["django.contrib.sessions"])
import django; django.setup()
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
s = SessionStore(session_key=sys.argv[3])
assert s.load() == {"n": 41, "who": "keyroll"}, s.load()
row = Session.objects.get(session_key=sys.argv[3])
assert row.expire_date > datetime.datetime.now(datetime.timezone.utc)
t = SessionStore(); t["who"] = "django"; t.set_expiry(3600); t.create()
print(t.session_key)
"#;
    let out = std::process::Command::new(python)
        .arg("-c")
        .arg(script)
        .arg(&path)
        .arg(common::PRIMARY)
        .arg(&ours)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let got = engine
        .load(&theirs, now)
        .await
        .unwrap()
        .into_loaded()
        .unwrap();
    assert_eq!(got.data["who"], "django");
    assert!(got.expires > now + Duration::minutes(59));
}

/// Bulk jobs walk a Django (rowid) table in storage order, and fall back to
/// key order on keyroll's own table, which is stored in key order already.
#[tokio::test]
async fn stored_order_scan_pages_a_django_table_and_not_keyrolls() {
    let (dir, path, _) = django_db();
    let store = SqliteStore::open(&path, "django_session").unwrap();
    let now = now();
    let mut keys = Vec::new();
    for i in 0..25 {
        let key = new_key();
        store
            .save(&rec(&key, &format!("d{i}"), now + Duration::hours(1)))
            .await
            .unwrap();
        keys.push(key);
    }
    // Two expired rows among them, skipped when asked for live rows only.
    for (i, k) in [3usize, 17].iter().enumerate() {
        store
            .save(&rec(&keys[*k], &format!("x{i}"), now - Duration::hours(1)))
            .await
            .unwrap();
    }
    let span = store.stored_span().await.unwrap().expect("rowid table");
    assert_eq!(span.1 - span.0, 24);
    // Pages of 10 in insertion (rowid) order, then an empty page.
    let store = &store;
    let walk = |live_at| async move {
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let page = store.scan_stored(cursor, None, 10, live_at).await.unwrap();
            let Some((last, _)) = page.last() else { break };
            cursor = Some(*last);
            seen.extend(page.into_iter().map(|(_, r)| r.key));
        }
        seen
    };
    assert_eq!(
        walk(None).await,
        keys,
        "every row once, in the order stored"
    );
    let live: Vec<String> = keys
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 17)
        .map(|(_, k)| k.clone())
        .collect();
    assert_eq!(walk(Some(now)).await, live, "live rows only");
    // A span's bounds: after the first position, up to the fifth.
    let page = store
        .scan_stored(Some(span.0), Some(span.0 + 4), 100, None)
        .await
        .unwrap();
    let positions: Vec<i64> = page.iter().map(|(p, _)| *p).collect();
    assert_eq!(positions, (span.0 + 1..=span.0 + 4).collect::<Vec<_>>());

    let own = SqliteStore::open(&dir.path().join("own.db"), "keyroll_session").unwrap();
    own.ensure_schema().await.unwrap();
    assert!(own.stored_span().await.unwrap().is_none());
}

/// A compare-and-swap by position writes the row found there only while its
/// key and data are as scanned, and answers by key when the rows were
/// renumbered since the scan (a VACUUM may do that to an implicit rowid).
#[tokio::test]
async fn compare_and_swap_by_position_checks_key_and_data_and_survives_renumbering() {
    let (_dir, path, _) = django_db();
    let store = SqliteStore::open(&path, "django_session").unwrap();
    let later = now() + Duration::hours(1);
    let keys: Vec<String> = (0..4).map(|_| new_key()).collect();
    for k in &keys {
        store.save(&rec(k, "old", later)).await.unwrap();
    }
    let found = store.scan_stored(None, None, 10, None).await.unwrap();
    let at: Vec<i64> = found.iter().map(|(p, _)| *p).collect();
    let swap = |key: &str, expected: &str, new: &str| keyroll_store::Swap {
        key: key.to_owned(),
        expected: expected.to_owned(),
        new: new.to_owned(),
    };
    // A concurrent writer changes row 1; row 2's position is given for row 3.
    store.save(&rec(&keys[1], "theirs", later)).await.unwrap();
    let applied = store
        .compare_and_swap_stored(vec![
            (at[0], swap(&keys[0], "old", "new")),
            (at[1], swap(&keys[1], "old", "new")),
            (at[2], swap(&keys[3], "old", "new")),
        ])
        .await
        .unwrap();
    // Row 3 is not at row 2's rowid: looked up by key, it is swapped; row 2 is untouched.
    assert_eq!(applied, vec![true, false, true]);
    let data = |k: &str| {
        raw_conn(&path)
            .query_row(
                "SELECT session_data FROM django_session WHERE session_key = ?1",
                [k],
                |r| r.get::<_, String>(0),
            )
            .unwrap()
    };
    assert_eq!(data(&keys[0]), "new");
    assert_eq!(data(&keys[1]), "theirs");
    assert_eq!(data(&keys[2]), "old");
    assert_eq!(data(&keys[3]), "new");
    // Swaps in any order, one at a rowid past the end of the table and one
    // repeating another's rowid: each lands on its own row or on none.
    let applied = store
        .compare_and_swap_stored(vec![
            (at[3], swap(&keys[3], "new", "newer")),
            (at[0], swap(&keys[0], "new", "newer")),
            (at[3] + 1000, swap(&keys[2], "old", "newer")),
            (at[0], swap(&keys[1], "theirs", "newer")),
            (at[1], swap(&keys[1], "old", "never")),
        ])
        .await
        .unwrap();
    assert_eq!(applied, vec![true, true, true, true, false]);
    for k in &keys {
        assert_eq!(data(k), "newer");
    }
    // A concurrent write between the read and the swap of a batch by rowid
    // leaves that row alone and the batch's other rows swapped.
    store
        .save(&rec(&keys[2], "theirs again", later))
        .await
        .unwrap();
    let applied = store
        .compare_and_swap_stored(
            at.iter()
                .zip(&keys)
                .map(|(p, k)| (*p, swap(k, "newer", "newest")))
                .collect(),
        )
        .await
        .unwrap();
    assert_eq!(applied, vec![true, true, false, true]);
    assert_eq!(data(&keys[2]), "theirs again");
    assert_eq!(data(&keys[3]), "newest");
}

/// A purge in batches sized by time: more expired rows than the first batch,
/// batches that shrink (each "too slow" for a 1 µs aim), and exactly the
/// expired rows gone, every live one left, every batch reported.
#[tokio::test]
async fn a_timed_purge_deletes_exactly_the_expired_rows() {
    let (_dir, path, c) = django_db();
    // One row in ten live, the others expired, interleaved: 45,000 expired.
    let rows = 50_000;
    c.execute_batch("BEGIN").unwrap();
    for i in 0..rows {
        let at = if i % 10 == 0 {
            "2999-01-01 00:00:00"
        } else {
            "2000-01-01 00:00:00"
        };
        c.execute(
            "INSERT INTO django_session VALUES (?1, 'x', ?2)",
            rusqlite::params![format!("k{i:09}"), at],
        )
        .unwrap();
    }
    c.execute_batch("COMMIT").unwrap();

    let store = SqliteStore::open(&path, "django_session").unwrap();
    let batches = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = Arc::clone(&batches);
    let purged = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let n = keyroll_store::purge(
        &store,
        now(),
        keyroll_store::PurgeBatch::Timed(std::time::Duration::from_micros(1)),
        None,
        Arc::clone(&purged),
        Some(Arc::new(move |n| seen.lock().unwrap().push(n))),
    )
    .await
    .unwrap();
    assert_eq!(n, 45_000);
    assert_eq!(purged.load(std::sync::atomic::Ordering::Relaxed), n);
    // 20,000 first, then half the one before each time, down to 1,000.
    let batches = batches.lock().unwrap().clone();
    assert_eq!(
        batches,
        [20_000, 10_000, 5_000, 2_500, 1_250, 1_000, 1_000, 1_000, 1_000, 1_000, 1_000, 250]
    );
    let left: Vec<(String, String)> = c
        .prepare("SELECT session_key, expire_date FROM django_session ORDER BY session_key")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(left.len(), 5_000);
    assert!(left.iter().all(|(_, at)| at.starts_with("2999")));
}
