//! The SQLite backend: the shared suite, Django's layout and formats, and a
//! (manual) bulk re-sign benchmark.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
#![cfg(feature = "sqlite")]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use common::{data, full_ring, new_key, now, primary_decode, rec, sign, snapshot, FALLBACK};
use keyroll_store::{resign, BulkOptions, SqliteStore, Store};
use time::macros::datetime;
use time::Duration;

common::store_suite!(common::sqlite);

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

#[tokio::test]
async fn a_table_django_made_works_as_is() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("django.db");
    let c = raw_conn(&path);
    c.execute_batch(DJANGO_DDL).unwrap();
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
    assert!(ddl.ends_with("WITHOUT ROWID"), "clustered by session key: {ddl}");
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

/// Re-signing N rows (default 1,000,000) against SQLite's own rewrite of
/// every row. Run: `cargo test --release -p keyroll-store --test sqlite -- --ignored --nocapture`
/// (`KEYROLL_BENCH_ROWS` for another size). Prints:
/// - `bare`: `UPDATE t SET session_data = session_data || ''` (SQLite alone);
/// - `store paths`: every row through `scan` + `compare_and_swap_many` (same
///   values written back: the store's share of a re-sign, no crypto);
/// - `census`: scan + verify of every row (the crypto's read share);
/// - `resign`: the whole re-sign, with 1 and 2 jobs.
#[test]
#[ignore = "benchmark: run by hand, in release mode"]
fn bench_resign_vs_bare_update() {
    use keyroll_store::{census, KeyRange, Swap};
    use rand::Rng as _;

    let rows: usize = std::env::var("KEYROLL_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.db");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let now = now();
    let store = Arc::new(SqliteStore::open(&path, "django_session").unwrap());
    // KEYROLL_BENCH_DJANGO_DDL=1: the rowid table Django's migration makes.
    if std::env::var("KEYROLL_BENCH_DJANGO_DDL").as_deref() == Ok("1") {
        raw_conn(&path).execute_batch(DJANGO_DDL).unwrap();
        eprintln!("table: Django's DDL (rowid)");
    } else {
        eprintln!("table: keyroll's ensure_schema (WITHOUT ROWID)");
    }
    rt.block_on(store.ensure_schema()).unwrap();

    // A typical logged-in Django session, signed by the old key.
    let mut session = data(0);
    session.insert("_auth_user_id".into(), "12345".into());
    session.insert(
        "_auth_user_backend".into(),
        "django.contrib.auth.backends.ModelBackend".into(),
    );
    session.insert(
        "_auth_user_hash".into(),
        "0123456789abcdef".repeat(4).into(),
    );
    let t = Instant::now();
    {
        let mut rng = rand::thread_rng();
        let chars = keyroll_store::SESSION_KEY_CHARS;
        let mut c = raw_conn(&path);
        let tx = c.transaction().unwrap();
        {
            let mut stmt = tx
                .prepare("INSERT INTO django_session VALUES (?1, ?2, ?3)")
                .unwrap();
            let expire = "2099-01-01 00:00:00";
            for i in 0..rows {
                let key: String = (0..32)
                    .map(|_| char::from(chars[rng.gen_range(0..chars.len())]))
                    .collect();
                session.insert("n".into(), (i as i64).into());
                let d = sign(
                    FALLBACK,
                    &session,
                    now - Duration::seconds(i as i64 % 86_400),
                );
                stmt.execute([key.as_str(), d.as_str(), expire]).unwrap();
            }
        }
        tx.commit().unwrap();
        c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
    }
    eprintln!("populate {rows}: {:?}", t.elapsed());
    let size = std::fs::metadata(&path).unwrap().len();
    eprintln!("database: {} MiB", size >> 20);

    // SQLite skips writing a row whose new content equals the old, so
    // `session_data || ''` measures a pass that rewrites nothing; `|| ' '`
    // rewrites every row for real (on a copy: it breaks the signatures).
    let reference = dir.path().join("reference.db");
    std::fs::copy(&path, &reference).unwrap();
    let mut bare = std::time::Duration::ZERO;
    for (what, sql) in [
        (
            "bare UPDATE, same values (no page written)",
            "UPDATE django_session SET session_data = session_data || ''",
        ),
        (
            "bare UPDATE, every row changed",
            "UPDATE django_session SET session_data = session_data || ' '",
        ),
    ] {
        let c = raw_conn(&reference);
        c.pragma_update(None, "synchronous", "NORMAL").unwrap();
        let t = Instant::now();
        let n = c.execute(sql, []).unwrap();
        c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
        bare = t.elapsed();
        assert_eq!(n, rows);
        eprintln!("{what}: {bare:?}");
    }
    std::fs::remove_file(&reference).unwrap();
    let ratio = |d: std::time::Duration| d.as_secs_f64() / bare.as_secs_f64();

    let t = Instant::now();
    let written = rt.block_on(async {
        let mut after: Option<String> = None;
        let mut written = 0usize;
        loop {
            let page = store
                .scan(&KeyRange::all(), after.as_deref(), 1000)
                .await
                .unwrap();
            let Some(last) = page.last() else { break };
            after = Some(last.key.clone());
            let swaps: Vec<Swap> = page
                .iter()
                .map(|r| Swap {
                    key: r.key.clone(),
                    expected: r.data.clone(),
                    new: r.data.clone(),
                })
                .collect();
            let done = store.compare_and_swap_many(&swaps).await.unwrap();
            written += done.iter().filter(|d| **d).count();
            if page.len() < 1000 {
                break;
            }
        }
        written
    });
    assert_eq!(written, rows);
    let took = t.elapsed();
    eprintln!(
        "store paths (scan + CAS every row): {took:?} ({:.2}x bare)",
        ratio(took)
    );

    // A copy with every row still stale, for the 2-job run.
    {
        let c = raw_conn(&path);
        c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
    }
    let copy = dir.path().join("copy.db");
    std::fs::copy(&path, &copy).unwrap();

    for (jobs, p) in [(1, &path), (2, &copy)] {
        let s: Arc<dyn Store> = if jobs == 1 {
            store.clone()
        } else {
            Arc::new(SqliteStore::open(p, "django_session").unwrap())
        };
        let opts = BulkOptions {
            jobs,
            batch: std::env::var("KEYROLL_BENCH_BATCH")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(1000),
            ..BulkOptions::default()
        };
        let t = Instant::now();
        let sum = rt
            .block_on(resign(s.clone(), &full_ring(), &opts, now, None))
            .unwrap();
        {
            let c = raw_conn(p);
            c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
        }
        let took = t.elapsed();
        eprintln!(
            "resign jobs={jobs}: {took:?} ({:.2}x bare) {}",
            ratio(took),
            sum.line()
        );
        assert_eq!(sum.resigned, rows as u64);
        let t = Instant::now();
        let c = rt
            .block_on(census(s.clone(), &full_ring(), &opts, now, None))
            .unwrap();
        let took = t.elapsed();
        eprintln!(
            "census jobs={jobs} (all primary): {took:?} ({:.2}x bare)",
            ratio(took)
        );
        assert_eq!(c.keys.len(), 1);
    }
    let sample = rt.block_on(store.scan(&KeyRange::all(), None, 1)).unwrap();
    assert!(primary_decode(&sample[0].data, now).is_some());
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
    let got = engine.load(&theirs, now).await.unwrap().unwrap();
    assert_eq!(got.data["who"], "django");
    assert!(got.expires > now + Duration::minutes(59));
}
