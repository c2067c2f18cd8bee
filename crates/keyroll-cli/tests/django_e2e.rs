//! End to end against a real Django project (`tests/django/e2e_project`, Django 5.2
//! pinned, in `.venv/` by `tests/django/setup-venv.sh` on first use), on SQLite,
//! PostgreSQL and MySQL/MariaDB:
//!
//! 1. Django, with `SECRET_KEY=A` and no fallbacks, logs in users through its
//!    test client (some twice), makes anonymous sessions with data, a few expired
//!    rows and a few rows signed by a key in no ring; one user then changes their
//!    password in their second session, which logs their first one out.
//! 2. `keyroll census` / `keyroll resign --database URL --django` with
//!    `SECRET_KEY=B`, `SECRET_KEY_FALLBACKS=["A"]`: exact summary figures, every
//!    live row moves from A's key id to B's, a rerun changes nothing, `--dry-run`
//!    changes nothing.
//! 3. Django with ONLY `SECRET_KEY=B` finds every session intact (same data, same
//!    expiry) and every login intact — except the session the password change
//!    invalidated, which stays logged out (its login hash was not upgraded).
//!
//! PostgreSQL: 127.0.0.1:5432, user postgres, trust auth (`KEYROLL_E2E_PGHOST` /
//! `KEYROLL_E2E_PGPORT` override); a fresh `kr_e2e_*` database per run, dropped at
//! the end. MySQL/MariaDB: 127.0.0.1:3306, user root, no password
//! (`KEYROLL_E2E_MYSQLHOST` / `KEYROLL_E2E_MYSQLPORT`); a fresh `kr_e2e_*` database,
//! Django through mysqlclient. Unreachable: skipped loudly, or a failure with
//! `KEYROLL_REQUIRE_SERVICES=1`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code

#[path = "../../../tests/support/django_venv.rs"]
mod django_venv;
use django_venv::{django_python, repo_root};
use std::io::Write as _;
use std::net::{TcpStream, ToSocketAddrs as _};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const KEYROLL: &str = env!("CARGO_BIN_EXE_keyroll");
/// The key Django signs with before the rotation.
const KEY_A: &str = "e2e-key-A-django-insecure-0123456789abcdefghijklmn";
/// The key after it.
const KEY_B: &str = "e2e-key-B-django-insecure-zyxwvutsrqponmlkjihgfedcb";
/// The user who changes their password (has two sessions: index < SECOND).
const PW_CHANGER: &str = "user0003";

/// How many of each kind of session Django makes.
#[derive(Clone, Copy)]
struct Scenario {
    users: u64,
    /// Users (the first ones) with a second logged-in session.
    second: u64,
    anon: u64,
    expired: u64,
    outsider: u64,
}

const SCENARIO: Scenario = Scenario {
    users: 200,
    second: 40,
    anon: 100,
    expired: 5,
    outsider: 3,
};

impl Scenario {
    fn logged_in(self) -> u64 {
        self.users + self.second
    }
    /// Rows verified by A and not expired.
    fn live_signed_by_a(self) -> u64 {
        self.logged_in() + self.anon
    }
}

fn e2e_script() -> PathBuf {
    repo_root().join("tests/django/e2e_project/e2e.py")
}

/// Said even when the harness captures output (`eprintln!` would be swallowed
/// for a passing test).
fn loud(msg: &str) {
    let _ = writeln!(std::io::stderr(), "{msg}");
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("utf8 output")
}

/// One Django side: a database and the python that drives it.
struct Django {
    python: PathBuf,
    /// `KEYROLL_E2E_DB` for settings.py.
    db: String,
}

impl Django {
    /// Runs `e2e.py ARGS` with `SECRET_KEY=secret`, fallbacks as given; returns its JSON.
    fn run(&self, secret: &str, fallbacks: &[&str], args: &[&str]) -> Value {
        let started = Instant::now();
        let out = Command::new(&self.python)
            .arg(e2e_script())
            .args(args)
            .env("KEYROLL_E2E_DB", &self.db)
            .env("SECRET_KEY", secret)
            .env(
                "SECRET_KEY_FALLBACKS",
                serde_json::to_string(fallbacks).unwrap(),
            )
            .env_remove("OLD_SECRET_KEY")
            .stderr(Stdio::inherit())
            .output()
            .expect("spawn python e2e.py");
        assert!(
            out.status.success(),
            "e2e.py {args:?} failed: {}",
            text(&out.stdout)
        );
        eprintln!("  e2e.py {} ({:.1?})", args[0], started.elapsed());
        let stdout = text(&out.stdout);
        let last = stdout
            .lines()
            .last()
            .unwrap_or_else(|| panic!("e2e.py {args:?}: no output"));
        serde_json::from_str(last)
            .unwrap_or_else(|e| panic!("e2e.py {args:?}: not JSON ({e}): {last}"))
    }
}

/// Which keys keyroll is given (through the environment, as a Django deployment has them).
#[derive(Clone, Copy)]
enum Keys<'a> {
    /// `SECRET_KEY`, `SECRET_KEY_FALLBACKS` (a JSON list).
    Fallbacks(&'a str, &'a [&'a str]),
    /// `SECRET_KEY`, `OLD_SECRET_KEY` (the older `rotate-secret-key` habit).
    Old(&'a str, &'a str),
}

fn keyroll(keys: Keys<'_>, args: &[&str]) -> Output {
    let mut c = Command::new(KEYROLL);
    for v in [
        "SECRET_KEY",
        "SECRET_KEY_FALLBACKS",
        "OLD_SECRET_KEY",
        "KEYROLL_KEYRING",
    ] {
        c.env_remove(v);
    }
    match keys {
        Keys::Fallbacks(primary, fallbacks) => {
            c.env("SECRET_KEY", primary).env(
                "SECRET_KEY_FALLBACKS",
                serde_json::to_string(fallbacks).unwrap(),
            );
        }
        Keys::Old(primary, old) => {
            c.env("SECRET_KEY", primary).env("OLD_SECRET_KEY", old);
        }
    }
    let started = Instant::now();
    let out = c
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("spawn keyroll");
    eprintln!("  keyroll {} ({:.1?})", args.join(" "), started.elapsed());
    out
}

fn keyroll_ok(keys: Keys<'_>, args: &[&str]) -> String {
    let out = keyroll(keys, args);
    assert!(
        out.status.success(),
        "keyroll {args:?} failed ({:?}):\nstdout: {}\nstderr: {}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// The key id keyroll shows for `secret` (what `keyroll verify` says signed a token).
fn key_id(secret: &str) -> String {
    let keys = Keys::Fallbacks(secret, &[]);
    let token = keyroll_ok(keys, &["sign", "probe"]);
    let mut child = Command::new(KEYROLL)
        .args(["verify", "-"])
        .env_remove("KEYROLL_KEYRING")
        .env_remove("OLD_SECRET_KEY")
        .env("SECRET_KEY", secret)
        .env("SECRET_KEY_FALLBACKS", "[]")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn keyroll verify");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(token.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let line = text(&out.stdout);
    let fields: Vec<&str> = line.trim_end().split('\t').collect();
    assert_eq!(fields.first(), Some(&"ok"), "verify: {line}");
    fields[1].to_owned()
}

/// The figures of a `resign` summary line.
#[derive(Debug, PartialEq, Eq, Default, Clone, Copy)]
struct Summary {
    resigned: u64,
    already_current: u64,
    unverifiable: u64,
    expired: u64,
    auth_rehashed: u64,
    conflicts: u64,
}

impl Summary {
    /// Parses `resigned N, already-current N, unverifiable N, expired N, auth-rehashed N, conflicts N`
    /// (the last such line of `stdout`), in exactly that order.
    fn parse(stdout: &str) -> Summary {
        let line = stdout
            .lines()
            .rev()
            .find(|l| l.starts_with("resigned "))
            .unwrap_or_else(|| panic!("no summary line in {stdout:?}"));
        let names = [
            "resigned",
            "already-current",
            "unverifiable",
            "expired",
            "auth-rehashed",
            "conflicts",
        ];
        let parts: Vec<&str> = line.split(", ").collect();
        assert_eq!(parts.len(), names.len(), "summary line {line:?}");
        let mut n = [0u64; 6];
        for (i, (part, name)) in parts.iter().zip(names).enumerate() {
            let (got, value) = part
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("summary line {line:?}"));
            assert_eq!(got, name, "summary line {line:?}");
            n[i] = value
                .parse()
                .unwrap_or_else(|_| panic!("summary line {line:?}"));
        }
        Summary {
            resigned: n[0],
            already_current: n[1],
            unverifiable: n[2],
            expired: n[3],
            auth_rehashed: n[4],
            conflicts: n[5],
        }
    }
}

/// A census: rows per key id, unverifiable, expired.
#[derive(Debug, PartialEq, Eq)]
struct Census {
    /// (key id, role, rows), as printed.
    keys: Vec<(String, String, u64)>,
    unverifiable: u64,
    expired: u64,
}

impl Census {
    fn rows_of(&self, id: &str) -> u64 {
        self.keys
            .iter()
            .filter(|(k, _, _)| k == id)
            .map(|(_, _, n)| *n)
            .sum()
    }

    fn from_json(stdout: &str) -> Census {
        let v: Value = serde_json::from_str(stdout.trim())
            .unwrap_or_else(|e| panic!("census --json ({e}): {stdout}"));
        let keys = v["keys"]
            .as_array()
            .unwrap_or_else(|| panic!("census --json: no keys list: {v}"))
            .iter()
            .map(|k| {
                (
                    k["key_id"].as_str().expect("key_id").to_owned(),
                    k["role"].as_str().expect("role").to_owned(),
                    k["rows"].as_u64().expect("rows"),
                )
            })
            .collect();
        Census {
            keys,
            unverifiable: v["unverifiable"].as_u64().expect("unverifiable"),
            expired: v["expired"].as_u64().expect("expired"),
        }
    }

    fn from_lines(stdout: &str) -> Census {
        let mut keys = Vec::new();
        let (mut unverifiable, mut expired) = (None, None);
        for line in stdout.lines() {
            let f: Vec<&str> = line.split('\t').collect();
            match f.as_slice() {
                ["unverifiable", n] => unverifiable = Some(n.parse().expect("unverifiable")),
                ["expired", n] => expired = Some(n.parse().expect("expired")),
                [id, role, n] => keys.push((
                    (*id).to_owned(),
                    (*role).to_owned(),
                    n.parse().expect("rows"),
                )),
                _ => panic!("census: unexpected line {line:?}"),
            }
        }
        Census {
            keys,
            unverifiable: unverifiable.expect("census: no unverifiable line"),
            expired: expired.expect("census: no expired line"),
        }
    }
}

/// `keyroll census` in both forms; they must agree.
fn census(keys: Keys<'_>, url: &str) -> Census {
    let json = Census::from_json(&keyroll_ok(
        keys,
        &["census", "--database", url, "--django", "--json"],
    ));
    let lines = Census::from_lines(&keyroll_ok(
        keys,
        &["census", "--database", url, "--django"],
    ));
    assert_eq!(json, lines, "census --json and census disagree");
    json
}

fn as_u64(v: &Value, path: &[&str]) -> u64 {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_u64()
        .unwrap_or_else(|| panic!("{path:?} not a number in {v}"))
}

/// The whole rotation on one database. `resign_flags` are extra flags for the real run.
fn rotation(django: &Django, url: &str, resign_flags: &[&str]) {
    let s = SCENARIO;
    let started = Instant::now();
    let (id_a, id_b) = (key_id(KEY_A), key_id(KEY_B));
    assert_ne!(id_a, id_b);

    // 1. Django with A only: users log in, browse; one changes their password.
    let state_dir = tempfile::tempdir().expect("tempdir");
    let state = state_dir.path().join("state.json");
    let state = state.to_str().expect("utf8 path");
    let n = |x: u64| x.to_string();
    let made = django.run(
        KEY_A,
        &[],
        &[
            "setup",
            "--state",
            state,
            "--users",
            &n(s.users),
            "--second",
            &n(s.second),
            "--anon",
            &n(s.anon),
            "--expired",
            &n(s.expired),
            "--outsider",
            &n(s.outsider),
        ],
    );
    assert_eq!(
        as_u64(&made, &["sessions", "login"]),
        s.logged_in(),
        "{made}"
    );
    assert_eq!(as_u64(&made, &["sessions", "anon"]), s.anon, "{made}");
    let changed = django.run(
        KEY_A,
        &[],
        &["change-password", PW_CHANGER, "--state", state],
    );
    let invalidated: Vec<String> =
        serde_json::from_value(changed["invalidated"].clone()).expect("invalidated");
    assert_eq!(invalidated.len(), 1, "{changed}");
    let kept = changed["kept"].as_str().expect("kept").to_owned();

    // Without keyroll, a Django with only B would lose every session (the control).
    let control = django.run(KEY_B, &[], &["check", "--state", state, "--data-only"]);
    assert_eq!(
        as_u64(&control, &["summary", "intact"]),
        0,
        "{}",
        control["summary"]
    );

    // 2. keyroll, with B primary and A a fallback.
    let ring = Keys::Fallbacks(KEY_B, &[KEY_A]);
    let before = census(ring, url);
    assert_eq!(
        before.rows_of(&id_a),
        s.live_signed_by_a(),
        "census before: {before:?}"
    );
    assert_eq!(before.rows_of(&id_b), 0, "census before: {before:?}");
    assert!(
        before
            .keys
            .iter()
            .filter(|(k, _, _)| *k == id_a)
            .all(|(_, role, _)| role == "fallback"),
        "A's role in {before:?}"
    );
    assert_eq!(
        (before.unverifiable, before.expired),
        (s.outsider, s.expired),
        "census before: {before:?}"
    );

    let expected = Summary {
        resigned: s.live_signed_by_a(),
        already_current: 0,
        unverifiable: s.outsider,
        expired: s.expired,
        // Every login except the one the password change invalidated.
        auth_rehashed: s.logged_in() - 1,
        conflicts: 0,
    };

    // A dry run (keys as the older OLD_SECRET_KEY habit) counts the same and changes nothing.
    let dry = Summary::parse(&keyroll_ok(
        Keys::Old(KEY_B, KEY_A),
        &["resign", "--database", url, "--django", "--dry-run"],
    ));
    assert_eq!(
        dry, expected,
        "resign --dry-run (SECRET_KEY=B, OLD_SECRET_KEY=A)"
    );
    assert_eq!(
        census(ring, url),
        before,
        "resign --dry-run changed the table"
    );

    let mut args = vec!["resign", "--database", url, "--django"];
    args.extend_from_slice(resign_flags);
    let done = Summary::parse(&keyroll_ok(ring, &args));
    assert_eq!(done, expected, "keyroll {}", args.join(" "));

    let after = census(ring, url);
    assert_eq!(
        after.rows_of(&id_b),
        s.live_signed_by_a(),
        "census after: {after:?}"
    );
    assert_eq!(
        after.rows_of(&id_a),
        0,
        "census after: A still has rows: {after:?}"
    );
    assert!(
        after
            .keys
            .iter()
            .filter(|(k, _, _)| *k == id_b)
            .all(|(_, role, _)| role == "primary"),
        "B's role in {after:?}"
    );
    assert_eq!(
        (after.unverifiable, after.expired),
        (s.outsider, s.expired),
        "census after: {after:?}"
    );

    // A rerun finds nothing to do.
    let again = Summary::parse(&keyroll_ok(
        ring,
        &["resign", "--database", url, "--django"],
    ));
    assert_eq!(
        again,
        Summary {
            resigned: 0,
            already_current: s.live_signed_by_a(),
            auth_rehashed: 0,
            ..expected
        },
        "second resign"
    );

    // 3. Django with ONLY B: nobody logged out but the password-change victim.
    let check = django.run(KEY_B, &[], &["check", "--state", state]);
    let problems = check["problems"].as_array().expect("problems");
    assert!(
        problems.is_empty(),
        "{} problems after the rotation, first ones:\n{}",
        problems.len(),
        problems
            .iter()
            .take(10)
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    );
    let summary = &check["summary"];
    assert_eq!(as_u64(summary, &["fallbacks"]), 0, "{summary}");
    assert_eq!(
        as_u64(summary, &["intact"]),
        s.live_signed_by_a(),
        "{summary}"
    );
    assert_eq!(
        as_u64(summary, &["logged_in_sessions"]),
        s.logged_in() - 1,
        "{summary}"
    );
    assert_eq!(as_u64(summary, &["logged_in_users"]), s.users, "{summary}");
    let victim = &check["sessions"][invalidated[0].as_str()];
    assert_eq!(victim["intact"], Value::Bool(true), "{victim}");
    assert_eq!(
        victim["whoami"], "anonymous",
        "a password change's logout was undone: {victim}"
    );
    assert_eq!(victim["auth_hash_unchanged"], Value::Bool(true), "{victim}");
    assert_eq!(
        check["sessions"][kept.as_str()]["whoami"],
        PW_CHANGER,
        "{}",
        check["sessions"][kept.as_str()]
    );
    eprintln!("  rotation on {url}: ok in {:.1?}", started.elapsed());
}

#[test]
fn django_sqlite_rotation_logs_nobody_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("django.sqlite3");
    let django = Django {
        python: django_python("5.2"),
        db: format!("sqlite:{}", db.display()),
    };
    let url = format!("sqlite://{}", db.display()); // absolute path: sqlite:///…
    assert!(url.starts_with("sqlite:///"), "{url}");
    rotation(&django, &url, &["--batch", "37"]);
}

/// A database made for one run, dropped when done (also when the test fails).
struct TestDatabase<'a> {
    django: &'a Django,
    name: String,
    /// `dropdb` or `dropdb-mysql`.
    drop_command: &'static str,
}

impl Drop for TestDatabase<'_> {
    fn drop(&mut self) {
        let out = Command::new(&self.django.python)
            .arg(e2e_script())
            .args([self.drop_command, &self.name])
            .stderr(Stdio::inherit())
            .output();
        match out {
            Ok(o) if o.status.success() => {}
            other => loud(&format!(
                "WARNING: could not drop database {}: {other:?}",
                self.name
            )),
        }
    }
}

fn pg_host_port() -> (String, u16) {
    let host = std::env::var("KEYROLL_E2E_PGHOST").unwrap_or_else(|_| "127.0.0.1".to_owned());
    let port = std::env::var("KEYROLL_E2E_PGPORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(5432);
    (host, port)
}

fn reachable(host: &str, port: u16) -> bool {
    (host, port)
        .to_socket_addrs()
        .map(|mut addrs| {
            addrs.any(|a| TcpStream::connect_timeout(&a, Duration::from_secs(2)).is_ok())
        })
        .unwrap_or(false)
}

#[test]
fn django_postgres_rotation_logs_nobody_out() {
    let (host, port) = pg_host_port();
    if !reachable(&host, port) {
        let required = std::env::var("KEYROLL_REQUIRE_SERVICES").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "PostgreSQL unreachable at {host}:{port} and KEYROLL_REQUIRE_SERVICES=1"
        );
        loud(&format!(
            "\n*** SKIPPED: PostgreSQL unreachable at {host}:{port} (django_postgres_rotation_logs_nobody_out; \
             set KEYROLL_REQUIRE_SERVICES=1 to make this a failure) ***\n"
        ));
        return;
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .subsec_nanos();
    let name = format!("kr_e2e_{}_{nanos}", std::process::id());
    let django = Django {
        python: django_python("5.2"),
        db: format!("postgres:{name}"),
    };
    // Installs psycopg into the venv on first use, then creates the database.
    let created = Command::new(&django.python)
        .arg(e2e_script())
        .args(["createdb", &name])
        .stderr(Stdio::inherit())
        .output()
        .expect("spawn e2e.py createdb");
    assert!(created.status.success(), "e2e.py createdb {name} failed");
    let db = TestDatabase {
        django: &django,
        name,
        drop_command: "dropdb",
    };
    let url = format!("postgres://postgres@{host}:{port}/{}", db.name);
    rotation(&django, &url, &["--jobs", "4", "--batch", "50"]);
}

/// A `kr_e2e_<pid>_<nanos>` name for a database of this run.
fn db_name() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .subsec_nanos();
    format!("kr_e2e_{}_{nanos}", std::process::id())
}

#[test]
fn django_mysql_rotation_logs_nobody_out() {
    let host = std::env::var("KEYROLL_E2E_MYSQLHOST").unwrap_or_else(|_| "127.0.0.1".to_owned());
    let port = std::env::var("KEYROLL_E2E_MYSQLPORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3306);
    if !reachable(&host, port) {
        let required = std::env::var("KEYROLL_REQUIRE_SERVICES").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "MySQL/MariaDB unreachable at {host}:{port} and KEYROLL_REQUIRE_SERVICES=1"
        );
        loud(&format!(
            "\n*** SKIPPED: MySQL/MariaDB unreachable at {host}:{port} (django_mysql_rotation_logs_nobody_out; \
             set KEYROLL_REQUIRE_SERVICES=1 to make this a failure) ***\n"
        ));
        return;
    }
    let name = db_name();
    let django = Django {
        python: django_python("5.2"),
        db: format!("mysql:{name}"),
    };
    // Installs mysqlclient into the venv on first use, then creates the database.
    let created = Command::new(&django.python)
        .arg(e2e_script())
        .args(["createdb-mysql", &name])
        .stderr(Stdio::inherit())
        .output()
        .expect("spawn e2e.py createdb-mysql");
    assert!(
        created.status.success(),
        "e2e.py createdb-mysql {name} failed (mysqlclient needs Debian's \
         default-libmysqlclient-dev and pkg-config: scripts/test.sh installs them)"
    );
    let db = TestDatabase {
        django: &django,
        name,
        drop_command: "dropdb-mysql",
    };
    // mariadb:// as dj-database-url users may write it.
    let url = format!("mariadb://root@{host}:{port}/{}", db.name);
    rotation(&django, &url, &["--jobs", "3", "--batch", "40"]);
}
