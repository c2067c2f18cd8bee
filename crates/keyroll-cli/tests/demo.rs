//! `keyroll demo` as a user sees it: a progress bar for every long step on a
//! terminal (none when piped), a total that is the real wall time, and no
//! demo rows left behind on SQLite, PostgreSQL or Redis.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code

use std::process::{Command, Output};
use std::time::Instant;

use keyroll_store::{open_store, KeyRange, StoreOptions};
use time::OffsetDateTime;

const KEYROLL: &str = env!("CARGO_BIN_EXE_keyroll");

/// The steps that may take over a second on a large or remote store.
const LONG_STEPS: [&str; 6] = [
    "1. sessions created under key A",
    "4. 30% of users visit",
    "5. bulk re-sign of the rest",
    "6. census",
    "8. every user comes back",
    "cleanup",
];

fn demo(args: &[&str]) -> Output {
    Command::new(KEYROLL)
        .arg("demo")
        .args(args)
        .output()
        .expect("run keyroll demo")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("utf8 stdout")
}

fn assert_ok(o: &Output) -> String {
    let out = stdout(o);
    assert!(
        o.status.success(),
        "keyroll demo failed ({}):\n{out}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// The seconds a step line shows: `NAME   1.23 s  result`.
fn step_seconds(out: &str, name: &str) -> f64 {
    let line = out
        .lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("no step line {name:?} in:\n{out}"));
    let rest = line[name.len()..].trim_start();
    rest.split_once(" s ")
        .and_then(|(secs, _)| secs.trim().parse().ok())
        .unwrap_or_else(|| panic!("no time in step line {line:?}"))
}

/// `(N s in all)` of the closing line.
fn total_seconds(out: &str) -> f64 {
    let line = out
        .lines()
        .find(|l| l.starts_with("sessions kept:"))
        .unwrap_or_else(|| panic!("no closing line in:\n{out}"));
    let (_, tail) = line
        .rsplit_once('(')
        .filter(|(_, t)| t.ends_with(" s in all)"))
        .unwrap_or_else(|| panic!("no '(N s in all)' in {line:?}"));
    tail.split(' ').next().unwrap().parse().unwrap()
}

/// The name between `(table ` / `(key prefix ` and `)` of the first line.
fn place(out: &str, what: &str) -> String {
    let first = out.lines().next().unwrap();
    let start = first
        .find(&format!("({what} "))
        .unwrap_or_else(|| panic!("the first line names no {what}: {first}"));
    let rest = &first[start + what.len() + 2..];
    rest[..rest.find(')').unwrap()].to_owned()
}

fn require_services() -> bool {
    std::env::var("KEYROLL_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

/// Is the store at `url` answering? Says so loudly when not (a failure under
/// `KEYROLL_REQUIRE_SERVICES=1`).
fn reachable(what: &str, url: &str) -> bool {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let err = if url.starts_with("redis") {
        let opts = StoreOptions {
            redis_prefix: "keyroll:keyroll_demo_probe".into(),
            ..StoreOptions::default()
        };
        match rt.block_on(open_store(url, &opts)) {
            Ok(s) => match rt.block_on(s.load("probe0000000", OffsetDateTime::now_utc())) {
                Ok(_) => return true,
                Err(e) => e.to_string(),
            },
            Err(e) => e.to_string(),
        }
    } else {
        let probe = async {
            let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
            tokio::spawn(conn);
            client.simple_query("SELECT 1").await.map(|_| ())
        };
        match rt.block_on(probe) {
            Ok(()) => return true,
            Err(e) => e.to_string(),
        }
    };
    assert!(
        !require_services(),
        "{what} unreachable at {url} and KEYROLL_REQUIRE_SERVICES=1: {err}"
    );
    let line = format!(
        "SKIPPED: {what} unreachable at {url} ({err}); set KEYROLL_REQUIRE_SERVICES=1 to fail instead\n"
    );
    let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
    false
}

/// How many rows (expired ones included) the demo left under `opts`.
fn rows_left(url: &str, opts: &StoreOptions) -> usize {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = open_store(url, opts).await.unwrap();
        store
            .scan(&KeyRange::all(), None, 1000)
            .await
            .unwrap()
            .len()
    })
}

#[test]
fn demo_draws_a_progress_bar_for_every_long_step_on_a_terminal() {
    // `script` (util-linux) runs the demo on a pseudo-terminal.
    let cmd = format!("stty cols 120 2>/dev/null; '{KEYROLL}' demo --sessions 2000");
    let o = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .output()
        .expect("`script` (util-linux) runs the demo on a terminal");
    let screen = assert_ok(&o);
    for step in LONG_STEPS {
        // A bar: the step's name, then `[`, a bar, `]` and `done/total`.
        let drawn = screen.match_indices(step).any(|(i, _)| {
            let after = &screen[i + step.len()..];
            after.starts_with(" [")
                && after[..after.find('\r').unwrap_or(after.len())].contains(']')
        });
        assert!(
            drawn,
            "no progress bar for {step:?} on the terminal:\n{screen:?}"
        );
    }
    assert!(screen.contains("sessions lost: 0"), "{screen:?}");
}

#[test]
fn demo_through_a_pipe_prints_no_progress_bars() {
    let o = demo(&["--sessions", "300"]);
    let out = assert_ok(&o);
    assert!(
        o.stderr.is_empty(),
        "stderr is not a terminal, yet the demo wrote to it:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!out.contains('\r') && !out.contains('\u{1b}'), "{out:?}");
}

#[test]
fn demo_total_is_the_wall_time_cleanup_included() {
    let started = Instant::now();
    let o = demo(&["--sessions", "1500"]);
    let wall = started.elapsed().as_secs_f64();
    let out = assert_ok(&o);
    let steps: f64 = [
        "1. sessions created under key A",
        "2. key B staged on every server",
        "3. key B promoted",
        "4. 30% of users visit",
        "5. bulk re-sign of the rest",
        "6. census",
        "7. key A retired",
        "8. every user comes back",
        "cleanup",
    ]
    .iter()
    .map(|s| step_seconds(&out, s))
    .sum();
    let total = total_seconds(&out);
    // Each step is rounded to 0.01 s: nine of them may add up to 0.045 s more.
    assert!(
        total + 0.05 >= steps,
        "the total {total} s is less than its steps ({steps} s):\n{out}"
    );
    assert!(
        total <= wall + 0.01,
        "the total {total} s is more than the process took ({wall} s):\n{out}"
    );
}

#[test]
fn demo_deletes_every_session_it_wrote_to_a_given_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("d.db").display());
    let out = assert_ok(&demo(&["--sessions", "700", "--database", &url]));
    assert!(out.contains("700 demo sessions deleted"), "{out}");
    let table = place(&out, "table");
    assert!(
        out.contains(&format!("note: the empty table {table} is left")),
        "{out}"
    );
    let opts = StoreOptions {
        table,
        ..StoreOptions::default()
    };
    assert_eq!(rows_left(&url, &opts), 0);
}

#[test]
fn demo_on_postgres_leaves_only_an_empty_table() {
    let url = std::env::var("KEYROLL_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    if !reachable("PostgreSQL", &url) {
        return;
    }
    let o = demo(&["--sessions", "600", "--database", &url]);
    let out = stdout(&o);
    let table = out
        .lines()
        .next()
        .and_then(|l| l.split_once("(table "))
        .map(|(_, t)| t.trim_end_matches(')').to_owned());
    let left = table.as_ref().map(|t| {
        rows_left(
            &url,
            &StoreOptions {
                table: t.clone(),
                ..StoreOptions::default()
            },
        )
    });
    if let Some(t) = &table {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            client
                .batch_execute(&format!("DROP TABLE IF EXISTS \"{t}\""))
                .await
                .unwrap();
        });
    }
    assert_ok(&o);
    assert!(table.is_some(), "the first line names no table:\n{out}");
    assert_eq!(left, Some(0), "demo rows left in PostgreSQL:\n{out}");
    assert!(out.contains("600 demo sessions deleted"), "{out}");
    assert!(out.contains("note: the empty table"), "{out}");
}

#[test]
fn demo_on_redis_names_its_key_prefix_and_leaves_no_key() {
    let url =
        std::env::var("KEYROLL_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    if !reachable("Redis", &url) {
        return;
    }
    let out = assert_ok(&demo(&["--sessions", "600", "--database", &url]));
    assert!(!out.contains("(table "), "Redis has no tables:\n{out}");
    let prefix = place(&out, "key prefix");
    let prefix = prefix.trim_end_matches(':').to_owned();
    assert!(prefix.starts_with("keyroll:keyroll_demo_"), "{out}");
    assert!(out.contains("600 demo sessions deleted"), "{out}");
    assert!(!out.contains("note: the empty table"), "{out}");
    let opts = StoreOptions {
        redis_prefix: prefix,
        ..StoreOptions::default()
    };
    assert_eq!(rows_left(&url, &opts), 0, "demo keys left in Redis:\n{out}");
}
