//! Real-browser key rotation: a headless Chromium (Debian's `chromium`, driven by
//! `tests/browser/run.mjs` through playwright-core) signs up to `keyroll-demo`,
//! logs out and in, opens `/operator` with the operator token (read from the
//! demo's token file by the script), stages, promotes and retires keys there, and
//! checks the session survives and moves to the new key. Once per mode (`cookie`,
//! `server`), each with its own demo process, SQLite database and ring file
//! (`tests/browser/README.md` lists every check).
//!
//! The browser script's JSON result is then checked independently of the demo,
//! against the secrets in the final ring file (one key, B, primary):
//! - cookie mode: the final and every re-signed `sessionid` cookie decode under B
//!   with `SessionCodec::signed_cookie`, role primary; the cookies signed by A do not;
//! - server mode: the session's row decodes under B with `SessionCodec::database`;
//!   if the session key was cycled after the promotion, the old row is gone.
//!
//! `tests/browser/run.sh` installs chromium (apt) and playwright-core (`npm ci`) when
//! missing. Without `node` on the machine, or with `KEYROLL_SKIP_BROWSER=1`, the
//! tests are skipped loudly — a failure instead with `KEYROLL_REQUIRE_SERVICES=1`
//! (as in CI). Screenshots: `target/browser-screenshots/<mode>/`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code

use std::fs::{self, File};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, PoisonError};
use std::thread::sleep;
use std::time::{Duration, Instant};

use keyroll::ringfile::{OpenOptions, RingFile};
use keyroll::{KeyRing, Role, SessionCodec, DEFAULT_SESSION_COOKIE_AGE};
use serde_json::Value;
use time::OffsetDateTime;

const DEMO: &str = env!("CARGO_BIN_EXE_keyroll-demo");
/// How long the demo may take to accept connections.
const DEMO_START: Duration = Duration::from_secs(60);
/// How long `run.sh` may take, installs on a fresh machine included.
const BROWSER_RUN: Duration = Duration::from_secs(20 * 60);

/// One browser run at a time: `run.sh`'s installs (apt, npm ci) must not race.
static SERIAL: Mutex<()> = Mutex::new(());

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// `<target>/tmp`, made by cargo for integration tests.
fn target_tmp() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
}

fn screenshot_dir(mode: &str) -> PathBuf {
    let target = target_tmp()
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| repo_root().join("target"));
    target.join("browser-screenshots").join(mode)
}

fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// None when the browser test can run; otherwise why not (after panicking when required).
fn skip_reason() -> Option<String> {
    let why = if env_flag("KEYROLL_SKIP_BROWSER") {
        "KEYROLL_SKIP_BROWSER is set".to_owned()
    } else if Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_or(true, |s| !s.success())
    {
        "`node` is not installed (Node 20+ and npm are needed)".to_owned()
    } else {
        return None;
    };
    if env_flag("KEYROLL_REQUIRE_SERVICES") {
        panic!("browser test required (KEYROLL_REQUIRE_SERVICES=1) but {why}");
    }
    Some(why)
}

/// A running demo; killed (and its temporary directory removed, unless the test failed) on drop.
struct Demo {
    child: Child,
    dir: PathBuf,
    addr: SocketAddr,
}

impl Demo {
    fn start(mode: &str) -> Self {
        let dir = target_tmp().join(format!(
            "keyroll-browser-{mode}-{}-{}",
            std::process::id(),
            OffsetDateTime::now_utc().unix_timestamp_nanos()
        ));
        fs::create_dir_all(&dir).unwrap();
        let mut last_log = String::new();
        // A port picked by binding :0 can be taken before the demo binds it: retry.
        for attempt in 0..3 {
            let addr = {
                let l = TcpListener::bind("127.0.0.1:0").unwrap();
                l.local_addr().unwrap()
            };
            let log_path = dir.join(format!("demo-{attempt}.log"));
            let log = File::create(&log_path).unwrap();
            // The database, ring file and operator token: the defaults in the data directory.
            let mut child = Command::new(DEMO)
                .arg("--listen")
                .arg(addr.to_string())
                .arg("--data-dir")
                .arg(dir.join("data"))
                .arg("--mode")
                .arg(mode)
                // The browser promotes right after staging.
                .args(["--min-staged", "0s"])
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {DEMO}: {e}"));
            let deadline = Instant::now() + DEMO_START;
            loop {
                if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                    return Demo { child, dir, addr };
                }
                if let Some(status) = child.try_wait().unwrap() {
                    last_log = fs::read_to_string(&log_path).unwrap_or_default();
                    eprintln!("demo exited ({status}) before listening on {addr}:\n{last_log}");
                    break;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "demo not listening on {addr} after {DEMO_START:?}; log:\n{}",
                        fs::read_to_string(&log_path).unwrap_or_default()
                    );
                }
                sleep(Duration::from_millis(50));
            }
        }
        panic!("keyroll-demo --mode {mode} did not start (3 attempts); last log:\n{last_log}");
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn ring_path(&self) -> PathBuf {
        self.dir.join("data").join("ring.toml")
    }

    fn database_url(&self) -> String {
        format!(
            "sqlite://{}",
            self.dir.join("data").join("demo.db").display()
        )
    }

    fn operator_token_file(&self) -> PathBuf {
        self.dir.join("data").join("operator-token")
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        for attempt in 0..3 {
            if let Ok(s) = fs::read_to_string(self.dir.join(format!("demo-{attempt}.log"))) {
                out.push_str(&s);
            }
        }
        out
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "kept the demo's files for inspection: {}",
                self.dir.display()
            );
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// Runs `tests/browser/run.sh` against the demo; returns its exit status, stdout, stderr.
fn run_browser(demo: &Demo, mode: &str, out: &Path) -> (ExitStatus, String, String) {
    let stdout_path = demo.dir.join("browser.stdout");
    let stderr_path = demo.dir.join("browser.stderr");
    let mut child = Command::new("bash")
        .arg(repo_root().join("tests/browser/run.sh"))
        .arg("--url")
        .arg(demo.url())
        .arg("--out")
        .arg(out)
        .arg("--mode")
        .arg(mode)
        .arg("--operator-token-file")
        .arg(demo.operator_token_file())
        .stdin(Stdio::null())
        .stdout(File::create(&stdout_path).unwrap())
        .stderr(File::create(&stderr_path).unwrap())
        .spawn()
        .expect("cannot run bash tests/browser/run.sh");
    let deadline = Instant::now() + BROWSER_RUN;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "tests/browser/run.sh took over {BROWSER_RUN:?}; stderr:\n{}",
                fs::read_to_string(&stderr_path).unwrap_or_default()
            );
        }
        sleep(Duration::from_millis(100));
    };
    (
        status,
        fs::read_to_string(&stdout_path).unwrap(),
        fs::read_to_string(&stderr_path).unwrap(),
    )
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_str()
        .unwrap_or_else(|| panic!("browser result has no string at {path:?}: {v}"))
}

/// The final ring file: exactly one key, the primary B; returns a ring of only it.
fn final_ring(demo: &Demo, b: &str) -> KeyRing {
    let file = RingFile::open(&demo.ring_path(), OpenOptions::default(), &|k| {
        std::env::var(k).ok()
    })
    .unwrap_or_else(|e| {
        panic!(
            "cannot open the demo's ring file {:?}: {e}",
            demo.ring_path()
        )
    });
    let ids: Vec<String> = file
        .entries
        .iter()
        .map(|e| format!("{} {}", e.id(), e.role.as_str()))
        .collect();
    assert_eq!(
        ids,
        vec![format!("{b} primary")],
        "after retiring, the ring file should hold only B ({b}) as primary"
    );
    let primary = file
        .entries
        .iter()
        .find(|e| e.role == Role::Primary)
        .unwrap();
    KeyRing::new(primary.secret.clone()).expect("a non-empty secret")
}

fn check_cookie_mode(demo: &Demo, result: &Value, a: &str, b: &str) {
    let ring = final_ring(demo, b);
    let codec = SessionCodec::signed_cookie(&ring, DEFAULT_SESSION_COOKIE_AGE);
    let now = OffsetDateTime::now_utc();
    for which in [
        "cookie",
        "cookies.after_promote",
        "cookies.resigned",
        "cookies.after_retire",
        "cookies.stale_resigned",
    ] {
        let path: Vec<&str> = which.split('.').collect();
        let cookie = str_at(result, &path);
        let v = codec.decode_at(cookie, now).unwrap_or_else(|e| {
            panic!("cookie mode: the {which} sessionid cookie does not verify under the new primary B ({b}): {e}; cookie {cookie:?}")
        });
        assert_eq!(v.key_id.to_string(), b, "{which}: verifying key");
        assert_eq!(v.role, Role::Primary, "{which}: role of the verifying key");
        assert!(!v.value.is_empty(), "{which}: empty session data");
    }
    // These were signed by A, which is in no ring now.
    for which in ["signup", "login", "before_promote"] {
        let cookie = str_at(result, &["cookies", which]);
        assert!(
            codec.decode_at(cookie, now).is_err(),
            "cookie mode: the {which} cookie (signed by A = {a}) verifies under B alone"
        );
    }
}

fn check_server_mode(demo: &Demo, result: &Value, b: &str) {
    let ring = final_ring(demo, b);
    let key = str_at(result, &["cookie"]).to_owned();
    let old_key = str_at(result, &["cookies", "before_promote"]).to_owned();
    let url = demo.database_url();
    let now = OffsetDateTime::now_utc();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (record, old_record) = rt.block_on(async {
        let store = keyroll_store::open_store(&url, &keyroll_store::StoreOptions::default())
            .await
            .unwrap_or_else(|e| panic!("cannot open the demo's database {url}: {e}"));
        (
            store.load(&key, now).await.unwrap(),
            store.load(&old_key, now).await.unwrap(),
        )
    });
    if result["server_key_cycled"] == Value::Bool(true) {
        // The session key was cycled after the promotion (Django's get_user does so
        // when the login hash verified under a fallback): the old key is no session.
        assert!(
            old_record.is_none(),
            "server mode: the session key was cycled but the old row is still live"
        );
    } else {
        assert_eq!(old_key, key, "server mode: the session key changed");
    }
    let record = record.unwrap_or_else(|| {
        panic!("server mode: no live row for the browser's session key in {url}")
    });
    let v = SessionCodec::database(&ring)
        .decode_at(&record.data, now)
        .unwrap_or_else(|e| {
            panic!(
                "server mode: the session row does not verify under the new primary B ({b}): {e}"
            )
        });
    assert_eq!(v.key_id.to_string(), b, "server mode: row's verifying key");
    assert_eq!(v.role, Role::Primary);
    assert!(!v.value.is_empty(), "server mode: empty session data");
}

fn browser_rotation(mode: &str) {
    if let Some(why) = skip_reason() {
        eprintln!("SKIPPED browser test ({mode} mode): {why}");
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    // Screenshots go to a directory of this run's own, which then replaces
    // `browser-screenshots/<mode>` (another cargo test process may be running this too).
    let published = screenshot_dir(mode);
    let run_dir = published.with_file_name(format!(
        "{mode}.run-{}-{}",
        std::process::id(),
        OffsetDateTime::now_utc().unix_timestamp_nanos()
    ));
    fs::create_dir_all(&run_dir).unwrap();

    let demo = Demo::start(mode);
    let started = Instant::now();
    let (status, stdout, stderr) = run_browser(&demo, mode, &run_dir);
    let shots = fs::read_dir(&run_dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "png"))
        })
        .count();
    let _ = fs::remove_dir_all(&published);
    let out = if fs::rename(&run_dir, &published).is_ok() {
        published
    } else {
        run_dir
    };
    assert!(
        status.success(),
        "browser test ({mode} mode) failed ({status}) after {:?} (screenshots in {}):\n--- run.sh stderr ---\n{stderr}\n--- stdout ---\n{stdout}\n--- demo log ---\n{}",
        started.elapsed(),
        out.display(),
        demo.logs()
    );
    let last = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_else(|| panic!("run.sh printed no result line; stdout:\n{stdout}"));
    let result: Value = serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("run.sh's last line is not JSON ({e}): {last}"));
    assert_eq!(str_at(&result, &["mode"]), mode);
    let a = str_at(&result, &["key_ids", "a"]);
    let b = str_at(&result, &["key_ids", "b"]);
    assert_ne!(a, b, "the rotation did not change the key");
    assert!(!str_at(&result, &["cookie"]).is_empty());

    match mode {
        "cookie" => check_cookie_mode(&demo, &result, a, b),
        _ => check_server_mode(&demo, &result, b),
    }
    assert!(
        shots >= 8,
        "expected the screenshots in {}, found {shots}",
        out.display()
    );
    eprintln!("{stderr}");
    eprintln!(
        "browser test ({mode} mode) passed in {:?}; {shots} screenshots in {}",
        started.elapsed(),
        out.display()
    );
}

#[test]
fn browser_rotation_cookie_mode() {
    browser_rotation("cookie");
}

#[test]
fn browser_rotation_server_mode() {
    browser_rotation("server");
}
