//! Bulk work on big, mostly expired tables: census and resign read only live
//! rows and count the expired ones exactly; `--shard K/N` splits a table
//! between runs without overlap, and a shard killed part-way finishes when
//! run again; `--max-rate` holds the rate; `purge` deletes in batches.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use keyroll::{KeyRing, Secret, SessionCodec, SessionData};
use keyroll_store::KeyRange;
use serde_json::json;
use time::OffsetDateTime;

const KEYROLL: &str = env!("CARGO_BIN_EXE_keyroll");
const OLD: &str = "scale-old-key-A-0123456789abcdefghijklmnopqrstuv";
const NEW: &str = "scale-new-key-B-0123456789abcdefghijklmnopqrstuv";
const TABLE: &str = "django_session";

fn keyroll(args: &[&str]) -> Command {
    let mut c = Command::new(KEYROLL);
    c.args(args)
        .env("SECRET_KEY", NEW)
        .env("SECRET_KEY_FALLBACKS", format!("[\"{OLD}\"]"))
        .env_remove("KEYROLL_KEYRING")
        .env_remove("DATABASE_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

fn ok(args: &[&str]) -> String {
    let out: Output = keyroll(args).output().unwrap();
    assert!(
        out.status.success(),
        "keyroll {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A Django-layout table with `live` rows signed by the old key and
/// `expired` rows (signed by it too) that expired yesterday.
fn seed(path: &Path, live: usize, expired: usize) -> Vec<String> {
    common::create_table(path, TABLE);
    let now = OffsetDateTime::now_utc();
    let rows: Vec<common::Seed> = (0..live + expired)
        .map(|i| {
            let mut data = SessionData::new();
            data.insert("i".into(), json!(i));
            let expires = if i < live {
                "2099-01-01 00:00:00"
            } else {
                "2001-01-01 00:00:00"
            };
            common::seed(OLD, data, now, expires)
        })
        .collect();
    common::insert(path, TABLE, &rows);
    rows.into_iter().take(live).map(|r| r.key).collect()
}

/// N of a summary line `resigned N, …`.
fn resigned(line: &str) -> usize {
    line.split(", ")
        .next()
        .and_then(|f| f.strip_prefix("resigned "))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a summary line: {line}"))
}

fn url(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

/// Keys of live rows that verify under the new key.
fn on_new_key(path: &Path) -> Vec<String> {
    let codec = SessionCodec::database(&KeyRing::new(Secret::from(NEW)).unwrap());
    let now = OffsetDateTime::now_utc();
    common::rows(path, TABLE)
        .into_iter()
        .filter(|(_, d, _)| codec.decode_at(d, now).is_ok())
        .map(|(k, _, _)| k)
        .collect()
}

#[test]
fn census_and_resign_read_live_rows_and_count_the_expired_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db.sqlite3");
    seed(&db, 300, 2700);
    let u = url(&db);
    let census = ok(&["census", "--database", &u, "--table", TABLE, "--json"]);
    let c: serde_json::Value = serde_json::from_str(census.trim()).unwrap();
    assert_eq!(c["expired"], 2700, "{c}");
    assert_eq!(c["keys"][0]["rows"], 300, "{c}");
    assert_eq!(c["keys"][0]["role"], "fallback", "{c}");
    // Reading the expired rows too gives the same figures.
    let all = ok(&[
        "census",
        "--database",
        &u,
        "--table",
        TABLE,
        "--json",
        "--include-expired",
        "--jobs",
        "3",
    ]);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(all.trim()).unwrap(),
        c
    );
    let line = ok(&[
        "resign",
        "--database",
        &u,
        "--table",
        TABLE,
        "--jobs",
        "2",
        "--batch",
        "37",
    ]);
    assert_eq!(
        line.trim(),
        "resigned 300, already-current 0, unverifiable 0, expired 2700, auth-rehashed 0, conflicts 0"
    );
    assert_eq!(on_new_key(&db).len(), 300);
    let purged = ok(&[
        "purge",
        "--database",
        &u,
        "--table",
        TABLE,
        "--batch",
        "500",
    ]);
    assert_eq!(purged.trim(), "purged 2700 expired sessions");
    assert_eq!(common::rows(&db, TABLE).len(), 300);
}

/// Three shards re-sign every row once between them; a shard killed
/// part-way (slowed by --max-rate so the kill lands mid-run) re-signs only
/// its own keys, and run again finishes exactly its part.
#[test]
fn a_shard_killed_part_way_finishes_when_run_again_and_touches_only_its_keys() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db.sqlite3");
    let keys = seed(&db, 6000, 600);
    let u = url(&db);
    let shard2 = KeyRange::shard(2, 3).unwrap();
    let in_shard2: Vec<&String> = keys.iter().filter(|k| shard2.contains(k)).collect();
    assert!(in_shard2.len() > 1000, "{}", in_shard2.len());

    let args = [
        "resign",
        "--database",
        &u,
        "--table",
        TABLE,
        "--shard",
        "2/3",
        "--batch",
        "50",
        "--max-rate",
        "1000",
        "--jobs",
        "2",
    ];
    let mut child = keyroll(&args).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(700));
    assert!(
        child.try_wait().unwrap().is_none(),
        "finished before the kill"
    );
    child.kill().unwrap();
    let _ = child.wait();
    let part = on_new_key(&db);
    assert!(
        !part.is_empty() && part.len() < in_shard2.len(),
        "killed part-way: {} of {}",
        part.len(),
        in_shard2.len()
    );
    assert!(
        part.iter().all(|k| shard2.contains(k)),
        "only shard 2's keys"
    );

    let line = ok(&[
        "resign",
        "--database",
        &u,
        "--table",
        TABLE,
        "--shard",
        "2/3",
    ]);
    let done = resigned(&line);
    assert_eq!(done + part.len(), in_shard2.len(), "{line}");
    assert!(line.contains("expired "), "{line}");
    let now_new = on_new_key(&db);
    assert_eq!(now_new.len(), in_shard2.len());
    assert!(now_new.iter().all(|k| shard2.contains(k)));

    let mut rest = 0;
    for shard in ["1/3", "3/3"] {
        let line = ok(&[
            "resign",
            "--database",
            &u,
            "--table",
            TABLE,
            "--shard",
            shard,
        ]);
        rest += resigned(&line);
    }
    assert_eq!(rest + in_shard2.len(), keys.len());
    assert_eq!(on_new_key(&db).len(), keys.len());

    let out = keyroll(&["resign", "--database", &u, "--shard", "4/3"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("K/N"));
}

/// `--max-rate`: a lower bound on the time taken (the rate is a ceiling).
#[test]
fn max_rate_slows_the_run_to_the_rate() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db.sqlite3");
    seed(&db, 400, 0);
    let u = url(&db);
    let started = Instant::now();
    let line = ok(&[
        "resign",
        "--database",
        &u,
        "--table",
        TABLE,
        "--batch",
        "50",
        "--max-rate",
        "200",
    ]);
    assert!(line.starts_with("resigned 400,"), "{line}");
    // 8 batches of 50 at 200 rows/s: the last starts after 350/200 s.
    assert!(
        started.elapsed() >= Duration::from_millis(1700),
        "{:?}",
        started.elapsed()
    );
}
