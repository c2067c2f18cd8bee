//! The rolling-rotation drill, short: a fleet of three demo instances on one
//! PostgreSQL store, then on one Redis store, 100 users hopping between them,
//! 2-second phases. The staged rotation must log nobody out, fail no request
//! and lose no session; the naive one must log users out (else the drill
//! could not see what it is there to see). `bench/rolling-rotation` runs the
//! full-size drill.
//!
//! Needs the `keyroll` CLI binary next to `keyroll-demo` (`cargo test
//! --workspace` builds it; else it is built here) or `KEYROLL_BIN`. PostgreSQL
//! (`KEYROLL_TEST_POSTGRES_URL`, default postgres://postgres@127.0.0.1:5432/test)
//! and Redis (`KEYROLL_TEST_REDIS_URL`, default redis://127.0.0.1:6379):
//! when unreachable, SKIPPED loudly, or a failure under KEYROLL_REQUIRE_SERVICES=1.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use keyroll_demo::drill::{self, Config, Scenario};

/// The whole drill, both scenarios, must end well within this (per store).
const LIMIT: Duration = Duration::from_secs(90);

/// One drill at a time: two fleets at once would measure the machine, not the rotation.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn postgres_url() -> String {
    std::env::var("KEYROLL_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

fn redis_url() -> String {
    std::env::var("KEYROLL_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A URL without its password.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => match url[s + 3..at].split_once(':') {
            Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
            None => url.to_owned(),
        },
        _ => url.to_owned(),
    }
}

/// False (and a loud SKIPPED) when the service does not answer; a failure under KEYROLL_REQUIRE_SERVICES=1.
async fn reachable(url: &str) -> bool {
    let err = if url.starts_with("redis") {
        match redis::Client::open(url) {
            Ok(c) => match c.get_multiplexed_async_connection().await {
                Ok(mut con) => redis::cmd("PING")
                    .query_async::<String>(&mut con)
                    .await
                    .err()
                    .map(|e| e.to_string()),
                Err(e) => Some(e.to_string()),
            },
            Err(e) => Some(e.to_string()),
        }
    } else {
        tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .err()
            .map(|e| e.to_string())
    };
    let Some(err) = err else { return true };
    let shown = redact(url);
    if std::env::var("KEYROLL_REQUIRE_SERVICES").as_deref() == Ok("1") {
        panic!("{shown} is unreachable and KEYROLL_REQUIRE_SERVICES=1: {err}");
    }
    eprintln!(
        "\n*** SKIPPED: {shown} is unreachable ({err}); set KEYROLL_REQUIRE_SERVICES=1 to fail instead ***\n"
    );
    false
}

/// `keyroll` from KEYROLL_BIN, or next to `keyroll-demo` if it is new enough
/// (knows `ring stage --secret-stdin`), else built with cargo.
fn keyroll_bin(dir: &Path) -> PathBuf {
    if let Ok(p) = std::env::var("KEYROLL_BIN") {
        return PathBuf::from(p);
    }
    let bin = dir.join(format!("keyroll{}", std::env::consts::EXE_SUFFIX));
    let fresh = |bin: &Path| {
        std::process::Command::new(bin)
            .args(["ring", "stage", "--help"])
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("--secret-stdin"))
    };
    if !fresh(&bin) {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let mut cmd = std::process::Command::new(cargo);
        cmd.args(["build", "-p", "keyroll-cli", "--bin", "keyroll"]);
        if dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        if let Some(target) = dir.parent() {
            cmd.env("CARGO_TARGET_DIR", target);
        }
        let status = cmd.status().expect("running cargo build -p keyroll-cli");
        assert!(status.success(), "cargo build -p keyroll-cli failed");
        assert!(fresh(&bin), "{} is not the keyroll CLI", bin.display());
    }
    bin
}

async fn drill_on(database: String) {
    let _one = ONE_AT_A_TIME.lock().await;
    if !reachable(&database).await {
        return;
    }
    let demo_bin = PathBuf::from(env!("CARGO_BIN_EXE_keyroll-demo"));
    let keyroll_bin = keyroll_bin(demo_bin.parent().unwrap());
    let work = tempfile::tempdir().unwrap();
    let cfg = Config {
        demo_bin,
        keyroll_bin,
        database,
        instances: 3,
        users: 100,
        phase: Duration::from_secs(2),
        think: Duration::from_millis(250),
        write_percent: 20,
        work_dir: work.path().to_owned(),
    };
    let both = async {
        let staged = drill::run(&cfg, Scenario::Staged).await.unwrap();
        println!("{staged}");
        let naive = drill::run(&cfg, Scenario::Naive).await.unwrap();
        println!("{naive}");
        (staged, naive)
    };
    let (staged, naive) = tokio::time::timeout(LIMIT, both)
        .await
        .expect("the drill took too long");

    assert!(staged.requests > 1000, "too little load: {staged}");
    assert!(staged.logins >= 100 && staged.writes > 0, "{staged}");
    assert_eq!(staged.users_logged_out, 0, "{staged}");
    assert_eq!(staged.error_requests, 0, "{staged}");
    assert_eq!(staged.sessions_lost, 0, "{staged}");
    assert!(staged.is_clean());

    // The contrast: an instance that does not know B yet logs out users whose
    // session another instance already re-signed with B.
    assert!(naive.requests > 1000, "too little load: {naive}");
    assert!(
        naive.users_logged_out > 0,
        "naive logged nobody out: {naive}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_rotation_drill_postgres() {
    drill_on(postgres_url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_rotation_drill_redis() {
    drill_on(redis_url()).await;
}
