//! `keyroll census`, `resign`, `purge` and `demo` on SQLite, as CLI.md specifies them.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code

mod common;

use std::process::{Command, Output};

use keyroll::{KeyRing, Role, Secret, SessionCodec, SessionData};
use serde_json::json;
use time::OffsetDateTime;

const KEYROLL: &str = env!("CARGO_BIN_EXE_keyroll");
const A: &str = "key-A-the-old-one-0123456789abcdefghijklmnopqr";
const B: &str = "key-B-the-new-one-0123456789abcdefghijklmnopqr";
const C: &str = "key-C-nobody-knows-0123456789abcdefghijklmnopq";
const LIVE: &str = "2099-01-01 00:00:00.000000";
const DEAD: &str = "2001-01-01 00:00:00";

fn keyroll(args: &[&str]) -> Output {
    Command::new(KEYROLL)
        .args(args)
        .env("SECRET_KEY", B)
        .env("SECRET_KEY_FALLBACKS", format!("[\"{A}\"]"))
        .env_remove("KEYROLL_KEYRING")
        .output()
        .expect("run keyroll")
}

fn text(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("utf8")
}

fn data(i: usize) -> SessionData {
    let mut d = SessionData::new();
    d.insert("i".into(), json!(i));
    d
}

#[test]
fn census_resign_purge_on_sqlite() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("s.db");
    common::create_table(&path, "keyroll_session");
    let now = OffsetDateTime::now_utc();
    let mut seeds = Vec::new();
    seeds.extend((0..30).map(|i| common::seed(A, data(i), now, LIVE)));
    seeds.extend((30..50).map(|i| common::seed(B, data(i), now, LIVE)));
    seeds.extend((50..55).map(|i| common::seed(C, data(i), now, LIVE)));
    seeds.extend((55..62).map(|i| common::seed(A, data(i), now, DEAD)));
    common::insert(&path, "keyroll_session", &seeds);
    let url = format!("sqlite://{}", path.display());
    let (a, b) = (Secret::from(A).id(), Secret::from(B).id());

    let o = keyroll(&["census", "--database", &url]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        text(&o),
        format!("{b}\tprimary\t20\n{a}\tfallback\t30\nunverifiable\t5\nexpired\t7\n")
    );
    let o = keyroll(&["census", "--database", &url, "--json"]);
    let v: serde_json::Value = serde_json::from_str(&text(&o)).expect("json");
    assert_eq!(v["unverifiable"], 5);
    assert_eq!(v["expired"], 7);
    assert_eq!(v["keys"][1]["key_id"], a.to_string());
    assert_eq!(v["keys"][1]["role"], "fallback");
    assert_eq!(v["keys"][1]["rows"], 30);

    let before = common::rows(&path, "keyroll_session");
    let o = keyroll(&["resign", "--database", &url, "--dry-run"]);
    assert_eq!(
        text(&o),
        "resigned 30, already-current 20, unverifiable 5, expired 7, auth-rehashed 0, conflicts 0\n"
    );
    assert_eq!(
        common::rows(&path, "keyroll_session"),
        before,
        "--dry-run changes nothing"
    );

    let o = keyroll(&["resign", "--database", &url, "--batch", "7", "--jobs", "3"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        text(&o),
        "resigned 30, already-current 20, unverifiable 5, expired 7, auth-rehashed 0, conflicts 0\n"
    );
    let codec = SessionCodec::database(&KeyRing::new(Secret::from(B)).expect("a non-empty secret"));
    for seed in &seeds {
        let (_, row, expires) = common::rows(&path, "keyroll_session")
            .into_iter()
            .find(|r| r.0 == seed.key)
            .expect("row kept");
        assert_eq!(expires, seed.expires, "expiry kept");
        if seed.expires == LIVE && !row.is_empty() {
            match codec.decode_at(&row, now) {
                Ok(v) => {
                    assert_eq!(v.role, Role::Primary);
                    assert_eq!(v.value, seed.data);
                }
                Err(_) => assert_eq!(row, seed.row, "an unverifiable row is left untouched"),
            }
        } else {
            assert_eq!(row, seed.row, "an expired row is left untouched");
        }
    }
    let o = keyroll(&["census", "--database", &url]);
    assert_eq!(
        text(&o),
        format!("{b}\tprimary\t50\nunverifiable\t5\nexpired\t7\n")
    );

    let o = keyroll(&["purge", "--database", &url]);
    assert_eq!(text(&o), "purged 7 expired sessions\n");
    let o = keyroll(&["census", "--database", &url]);
    assert_eq!(
        text(&o),
        format!("{b}\tprimary\t50\nunverifiable\t5\nexpired\t0\n")
    );
}

#[test]
fn bad_store_urls_exit_2_without_showing_credentials() {
    // Loopback only: a port nothing listens on, and schemes keyroll refuses.
    for url in [
        "mysql://user:hunter2@127.0.0.1:1/x?connect_timeout=2",
        "mssql://user:hunter2@db/x",
        "sqlite://",
        "nonsense",
    ] {
        let o = keyroll(&["census", "--database", url]);
        assert_eq!(o.status.code(), Some(2), "{url}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!err.contains("hunter2"), "{err}");
        assert!(err.contains("keyroll: error:"), "{err}");
    }
    let o = keyroll(&["resign", "--database", "sqlite:///nonexistent-dir/x.db"]);
    assert_eq!(o.status.code(), Some(2));
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("x.db");
    std::fs::write(&db, b"").unwrap();
    let url = format!("sqlite://{}", db.display());
    let o = keyroll(&["resign", "--database", &url, "--table", "bad;name"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("invalid table name"));
}

#[test]
fn demo_loses_no_session() {
    let o = Command::new(KEYROLL)
        .args(["demo", "--sessions", "400"])
        .output()
        .expect("demo");
    let out = text(&o);
    assert!(
        o.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        out.contains("sessions kept: 400   sessions lost: 0   logins kept: 280   logins lost: 0"),
        "{out}"
    );
    assert!(out.contains("8. every user comes back"), "{out}");
    assert!(out.contains("→ safe to retire A"), "{out}");
}
