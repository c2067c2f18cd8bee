//! The operator's path made safe: a census that counts login hashes, and the
//! usual mistakes refused or warned about loudly (exit 2, or a WARNING line).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use keyroll::{KeyRing, Secret, SessionAuthHash, SessionData};
use serde_json::json;
use time::OffsetDateTime;

const KEYROLL: &str = env!("CARGO_BIN_EXE_keyroll");
const A: &str = "key-A-the-old-one-0123456789abcdefghijklmnopqr";
const B: &str = "key-B-the-new-one-0123456789abcdefghijklmnopqr";
const LIVE: &str = "2099-01-01 00:00:00.000000";
const PASSWORD: &str = "pbkdf2_sha256$870000$salt$hash-of-user-1";

fn run(args: &[&str], secret_key: &str, fallbacks: Option<&str>) -> Output {
    let mut c = Command::new(KEYROLL);
    c.args(args)
        .env("SECRET_KEY", secret_key)
        .env_remove("SECRET_KEY_FALLBACKS")
        .env_remove("OLD_SECRET_KEY")
        .env_remove("KEYROLL_KEYRING");
    if let Some(f) = fallbacks {
        c.env("SECRET_KEY_FALLBACKS", format!("[\"{f}\"]"));
    }
    c.output().expect("run keyroll")
}

/// The new key B primary, the old key A a fallback: the right keys.
fn rotating(args: &[&str]) -> Output {
    run(args, B, Some(A))
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A Django-layout SQLite database: `django_session` and `auth_user` (user 1).
fn django_db(dir: &Path) -> (PathBuf, String) {
    let path = dir.join("db.sqlite3");
    common::create_table(&path, "django_session");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "CREATE TABLE auth_user (id integer NOT NULL PRIMARY KEY, password varchar(128) NOT NULL)",
    )
    .unwrap();
    conn.execute(
        "INSERT INTO auth_user (id, password) VALUES (1, ?1)",
        [PASSWORD],
    )
    .unwrap();
    let url = format!("sqlite://{}", path.display());
    (path, url)
}

/// User 1's session, signed by `signer`, its login hash made under `hasher`.
fn login(signer: &str, hasher: &str) -> common::Seed {
    let mut d = SessionData::new();
    d.insert("_auth_user_id".into(), json!("1"));
    d.insert(
        "_auth_user_backend".into(),
        json!("django.contrib.auth.backends.ModelBackend"),
    );
    d.insert(
        "_auth_user_hash".into(),
        json!(SessionAuthHash::new(
            &KeyRing::new(Secret::from(hasher)).expect("a non-empty secret")
        )
        .make(PASSWORD)),
    );
    common::seed(signer, d, OffsetDateTime::now_utc(), LIVE)
}

fn ids() -> (String, String) {
    (
        Secret::from(A).id().to_string(),
        Secret::from(B).id().to_string(),
    )
}

/// A row signed by the new key whose login hash was made with the old one
/// (Django re-signed it on a write; or a write landed between a bulk re-sign
/// and a cache flush) still needs the old key: census says so, resign
/// --dry-run agrees, and after resign nothing needs A.
#[test]
fn census_counts_a_row_whose_login_hash_needs_the_old_key() {
    let dir = tempfile::tempdir().unwrap();
    let (path, url) = django_db(dir.path());
    common::insert(
        &path,
        "django_session",
        &[login(B, A), login(B, B), login(A, A)],
    );
    let (a, b) = ids();

    let o = rotating(&["census", "--database", &url, "--django"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        format!("{b}\tprimary\t2\n{a}\tfallback\t2\nunverifiable\t0\nexpired\t0\n"),
        "the B-signed row with an A hash needs A too"
    );
    assert!(
        stderr(&o).contains(&format!("primary {b}, fallback {a}")),
        "{}",
        stderr(&o)
    );

    let o = rotating(&["resign", "--database", &url, "--django", "--dry-run"]);
    assert_eq!(
        stdout(&o),
        "resigned 2, already-current 1, unverifiable 0, expired 0, auth-rehashed 2, conflicts 0\n",
        "resign would rewrite the same two rows census counts under A"
    );

    // Without the users table the hash is not looked at, and that is loud.
    let o = rotating(&["census", "--database", &url, "--table", "django_session"]);
    assert_eq!(
        stdout(&o),
        format!("{b}\tprimary\t2\n{a}\tfallback\t1\nunverifiable\t0\nexpired\t0\n")
    );
    assert!(
        stderr(&o).contains("WARNING: --table django_session without --django"),
        "{}",
        stderr(&o)
    );

    let o = rotating(&["resign", "--database", &url, "--django"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = rotating(&["census", "--database", &url, "--django"]);
    assert_eq!(
        stdout(&o),
        format!("{b}\tprimary\t3\nunverifiable\t0\nexpired\t0\n"),
        "nothing needs A any more: retiring it logs no one out"
    );
}

/// SECRET_KEY_FALLBACKS forgotten in a new shell: resign is refused (it
/// could re-sign nothing), census says loudly that "unverifiable" is not
/// "safe to drop".
#[test]
fn keys_with_only_a_primary_are_refused_by_resign_and_loud_in_census() {
    let dir = tempfile::tempdir().unwrap();
    let (path, url) = django_db(dir.path());
    common::insert(&path, "django_session", &[login(A, A)]);
    let o = run(&["resign", "--database", &url, "--django"], B, None);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("only a primary key"), "{}", stderr(&o));
    assert_eq!(
        common::rows(&path, "django_session")[0].1,
        login_row_of(&path),
        "nothing written"
    );
    let o = run(&["census", "--database", &url, "--django"], B, None);
    assert!(o.status.success());
    assert!(stdout(&o).contains("unverifiable\t1"), "{}", stdout(&o));
    assert!(
        stderr(&o).contains("WARNING: the keys name only a primary key"),
        "{}",
        stderr(&o)
    );
}

fn login_row_of(path: &Path) -> String {
    common::rows(path, "django_session")[0].1.clone()
}

/// The old key given as the primary: `--expect-primary` refuses to run, and
/// every summary names the primary.
#[test]
fn expect_primary_refuses_swapped_keys() {
    let dir = tempfile::tempdir().unwrap();
    let (path, url) = django_db(dir.path());
    common::insert(&path, "django_session", &[login(B, B)]);
    let before = common::rows(&path, "django_session");
    let (a, b) = ids();
    // Swapped: A primary, B fallback.
    let o = run(
        &[
            "resign",
            "--database",
            &url,
            "--django",
            "--expect-primary",
            &b,
        ],
        A,
        Some(B),
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("the primary key is {a}, not {b}")),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        common::rows(&path, "django_session"),
        before,
        "nothing re-signed back to A"
    );
    let o = rotating(&[
        "census",
        "--database",
        &url,
        "--django",
        "--expect-primary",
        &b,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn django_on_a_redis_url_is_refused_with_where_to_go() {
    let o = rotating(&["census", "--database", "redis://127.0.0.1:1", "--django"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("Django does not keep database sessions in Redis"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn an_empty_django_session_table_warns_about_cache_and_cookie_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let (_, url) = django_db(dir.path());
    let o = rotating(&["census", "--database", &url, "--django"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("django_session is empty"),
        "{}",
        stderr(&o)
    );
}

/// A mistyped path must not become a new, empty database that census
/// reports as "nothing left".
#[test]
fn a_missing_sqlite_file_is_refused_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("typo.sqlite3");
    let url = format!("sqlite://{}", missing.display());
    for cmd in ["census", "resign", "purge"] {
        let o = rotating(&[cmd, "--database", &url, "--django"]);
        assert_eq!(o.status.code(), Some(2), "{cmd}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("no SQLite database at"),
            "{}",
            stderr(&o)
        );
        assert!(!missing.exists(), "{cmd} created the file");
    }
}

/// `keyroll census … | head -1`: the reader goes away; keyroll ends quietly
/// (no panic, exit 0), as ripgrep does.
#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let (path, url) = django_db(dir.path());
    common::insert(&path, "django_session", &[login(A, A), login(B, B)]);
    let mut child = Command::new(KEYROLL)
        .args(["census", "--database", &url, "--django"])
        .env("SECRET_KEY", B)
        .env("SECRET_KEY_FALLBACKS", format!("[\"{A}\"]"))
        .env_remove("KEYROLL_KEYRING")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader is gone before anything is written
    let o = child.wait_with_output().unwrap();
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn keygen_shorter_than_fifty_characters_warns_like_django() {
    let o = rotating(&["keygen", "--length", "20"]);
    assert!(o.status.success());
    assert_eq!(stdout(&o).trim_end().chars().count(), 20);
    assert!(stderr(&o).contains("W009"), "{}", stderr(&o));
    let o = rotating(&["keygen"]);
    assert!(stderr(&o).is_empty(), "{}", stderr(&o));
}

/// Django deployments configured with dj-database-url have `DATABASE_URL`:
/// without `--database`, that is where the sessions are.
#[test]
fn database_url_from_the_environment_when_no_database_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let (path, url) = django_db(dir.path());
    common::insert(&path, "django_session", &[login(A, A)]);
    let (a, _) = ids();
    let o = Command::new(KEYROLL)
        .args(["census", "--django"])
        .env("SECRET_KEY", B)
        .env("SECRET_KEY_FALLBACKS", format!("[\"{A}\"]"))
        .env("DATABASE_URL", &url)
        .env_remove("KEYROLL_KEYRING")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains(&format!("{a}\tfallback\t1")),
        "{}",
        stdout(&o)
    );
    let o = Command::new(KEYROLL)
        .args(["census", "--django"])
        .env("SECRET_KEY", B)
        .env_remove("DATABASE_URL")
        .env_remove("KEYROLL_KEYRING")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("DATABASE_URL"), "{}", stderr(&o));
}

fn summary_field(line: &str, name: &str) -> u64 {
    line.split(", ")
        .find_map(|part| part.trim().strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} in {line:?}"))
}

/// Ctrl-C during a long resign: the command stops, prints what it had
/// written (`interrupted: resigned N, …`) and exits 130; a rerun finishes
/// the job, and everything counted as done was done.
#[test]
fn ctrl_c_prints_the_partial_summary_and_a_rerun_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.sqlite3");
    common::create_table(&path, "keyroll_session");
    let now = OffsetDateTime::now_utc();
    let total = 40_000u64;
    let seeds: Vec<common::Seed> = (0..total)
        .map(|i| {
            let mut d = SessionData::new();
            d.insert("i".into(), json!(i));
            common::seed(A, d, now, LIVE)
        })
        .collect();
    common::insert(&path, "keyroll_session", &seeds);
    let url = format!("sqlite://{}", path.display());
    let child = Command::new(KEYROLL)
        .args(["resign", "--database", &url, "--batch", "5"])
        .env("SECRET_KEY", B)
        .env("SECRET_KEY_FALLBACKS", format!("[\"{A}\"]"))
        .env_remove("KEYROLL_KEYRING")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(700));
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let o = child.wait_with_output().unwrap();
    let line = stdout(&o);
    assert_eq!(o.status.code(), Some(130), "{line}{}", stderr(&o));
    assert!(line.starts_with("interrupted: resigned "), "{line}");
    assert!(
        stderr(&o).contains("Run the same command again"),
        "{}",
        stderr(&o)
    );
    let done = summary_field(&line, "interrupted: resigned");
    assert!(done > 0 && done < total, "{line}");

    let o = rotating(&["resign", "--database", &url]);
    assert!(o.status.success(), "{}", stderr(&o));
    let again = stdout(&o);
    let (resigned, current) = (
        summary_field(&again, "resigned"),
        summary_field(&again, "already-current"),
    );
    assert_eq!(resigned + current, total, "{again}");
    assert!(
        current >= done,
        "what was counted was written: {done} <= {current}"
    );
}
