//! Crash safety of `keyroll resign`: killed with SIGKILL at random points,
//! then run again, it finishes the job — no row lost, none corrupted, every
//! live row signed by the primary with its data, expiry and timestamp intact.
//! On SQLite, and on PostgreSQL, MySQL/MariaDB and Redis (a table or key prefix of the
//! test's own; skipped with a loud line when the server is unreachable,
//! failed under `KEYROLL_REQUIRE_SERVICES=1`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code

mod common;

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use keyroll::{KeyRing, Role, Secret, SessionCodec, SessionData};
use keyroll_store::{open_store, KeyRange, SessionRecord, Store, StoreOptions};
use rand::Rng as _;
use serde_json::json;
use time::OffsetDateTime;

const KEYROLL: &str = env!("CARGO_BIN_EXE_keyroll");
const OLD: &str = "the-old-key-A-0123456789abcdefghijklmnopqrstuv";
const NEW: &str = "the-new-key-B-0123456789abcdefghijklmnopqrstuv";

fn resign(url: &str, extra: &[&str]) -> Command {
    resign_in_batches(url, "200", extra)
}

fn resign_in_batches(url: &str, batch: &str, extra: &[&str]) -> Command {
    let mut c = Command::new(KEYROLL);
    c.args(["resign", "--database", url, "--batch", batch])
        .args(extra)
        .env("SECRET_KEY", NEW)
        .env("SECRET_KEY_FALLBACKS", format!("[\"{OLD}\"]"))
        .env_remove("KEYROLL_KEYRING")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// Writes `n` sessions signed by the old key into a new SQLite table;
/// returns key → (data, row text, expiry text).
fn seed_sqlite(path: &std::path::Path, n: usize) -> HashMap<String, (SessionData, String, String)> {
    common::create_table(path, "keyroll_session");
    let now = OffsetDateTime::now_utc();
    let mut rng = rand::thread_rng();
    let seeds: Vec<common::Seed> = (0..n)
        .map(|i| {
            let mut data = SessionData::new();
            data.insert("i".into(), json!(i));
            data.insert("cart".into(), json!([rng.gen_range(0..100), "ü"]));
            // Timestamps spread over the past week: re-signing must keep them.
            let signed_at = now - time::Duration::seconds(rng.gen_range(0..7 * 86_400));
            let expires = format!("2099-01-01 00:00:{:02}.{:06}", i % 60, i % 1_000_000);
            common::seed(OLD, data, signed_at, &expires)
        })
        .collect();
    common::insert(path, "keyroll_session", &seeds);
    seeds
        .into_iter()
        .map(|s| (s.key, (s.data, s.row, s.expires)))
        .collect()
}

fn check_all_resigned(
    path: &std::path::Path,
    seeded: &HashMap<String, (SessionData, String, String)>,
) {
    let ring = KeyRing::new(Secret::from(NEW)).expect("a non-empty secret");
    let codec = SessionCodec::database(&ring);
    let old_codec =
        SessionCodec::database(&KeyRing::new(Secret::from(OLD)).expect("a non-empty secret"));
    let now = OffsetDateTime::now_utc();
    let mut n = 0;
    for (key, data, expires) in common::rows(path, "keyroll_session") {
        let (want, original, want_expires) =
            seeded.get(&key).expect("no row appeared from nowhere");
        let v = codec
            .decode_at(&data, now)
            .unwrap_or_else(|e| panic!("row {n} does not verify under the primary: {e}"));
        assert_eq!(v.role, Role::Primary);
        assert_eq!(&v.value, want, "data unchanged");
        assert_eq!(&expires, want_expires, "expiry unchanged");
        let before = old_codec
            .decode_at(original, now)
            .expect("original verifies under A");
        assert_eq!(v.timestamp, before.timestamp, "original timestamp kept");
        n += 1;
    }
    assert_eq!(n, seeded.len(), "no row lost");
}

fn count_on_new_key(path: &std::path::Path) -> usize {
    let codec =
        SessionCodec::database(&KeyRing::new(Secret::from(NEW)).expect("a non-empty secret"));
    let now = OffsetDateTime::now_utc();
    common::rows(path, "keyroll_session")
        .iter()
        .filter(|(_, d, _)| codec.decode_at(d, now).is_ok())
        .count()
}

/// Runs `keyroll resign` `rounds` times, each killed with SIGKILL after a
/// random 30–400 ms (unless it finished first); returns how many were killed.
fn kill_at_random_points(run: impl Fn() -> Command, rounds: usize) -> usize {
    kill_after(run, rounds, 30..400)
}

/// As [`kill_at_random_points`], then, while `progress()` says no row has
/// been re-signed yet (a loaded machine can spend every random delay on
/// start-up), up to four more rounds with longer delays: the drill is about
/// runs killed part-way, so it makes sure one got that far.
fn kill_until_progress(
    run: impl Fn() -> Command,
    rounds: usize,
    progress: impl Fn() -> usize,
) -> usize {
    let mut killed = kill_at_random_points(&run, rounds);
    for _ in 0..4 {
        if progress() > 0 {
            break;
        }
        killed += kill_after(&run, 1, 400..1500);
    }
    killed
}

fn kill_after(run: impl Fn() -> Command, rounds: usize, delay_ms: std::ops::Range<u64>) -> usize {
    let mut rng = rand::thread_rng();
    let mut killed = 0;
    for round in 0..rounds {
        let mut child = run().spawn().expect("spawn");
        let wait = Duration::from_millis(rng.gen_range(delay_ms.clone()));
        let started = Instant::now();
        while started.elapsed() < wait {
            if child.try_wait().expect("wait").is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        if child.try_wait().expect("wait").is_none() {
            child.kill().expect("SIGKILL");
            killed += 1;
        }
        let _ = child.wait();
        eprintln!("round {round}: killed after {wait:?}");
    }
    killed
}

#[test]
fn resign_killed_at_random_points_then_rerun_finishes_the_job() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("sessions.db");
    let seeded = seed_sqlite(&path, 40_000);
    let url = format!("sqlite://{}", path.display());
    let killed = kill_until_progress(|| resign(&url, &[]), 4, || count_on_new_key(&path));
    assert!(
        killed > 0,
        "resign finished before any kill: make the table larger"
    );
    // The kills landed part-way: some rows are on the new key, some are not yet.
    let on_new = count_on_new_key(&path);
    eprintln!(
        "after the kills: {on_new} of {} rows re-signed",
        seeded.len()
    );
    assert!(
        on_new > 0 && on_new < seeded.len(),
        "kills should interrupt a run in progress ({on_new})"
    );
    let out = resign(&url, &[]).output().expect("final run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8(out.stdout).expect("utf8");
    assert!(line.starts_with("resigned "), "{line}");
    assert!(
        line.contains("unverifiable 0, expired 0, auth-rehashed 0, conflicts 0"),
        "{line}"
    );
    check_all_resigned(&path, &seeded);
    // And once more: nothing left to do.
    let out = resign(&url, &[]).output().expect("idempotent run");
    let line = String::from_utf8(out.stdout).expect("utf8");
    assert!(
        line.starts_with(&format!("resigned 0, already-current {}", seeded.len())),
        "{line}"
    );
}

// ------------------------------------------------------------ PostgreSQL, MySQL, Redis

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Net {
    Postgres,
    Mysql,
    Redis,
}

/// Rows seeded into a network store: key → (data, original row, expiry).
type Seeded = HashMap<String, (SessionData, String, OffsetDateTime)>;

/// A table (PostgreSQL) or key prefix (Redis) of the test's own, removed on drop.
struct NetTable {
    net: Net,
    url: String,
    name: String,
    store: Arc<dyn Store>,
    rt: tokio::runtime::Runtime,
}

impl NetTable {
    fn open(net: Net) -> Option<Self> {
        let (var, default, what) = match net {
            Net::Postgres => (
                "KEYROLL_TEST_POSTGRES_URL",
                "postgres://postgres@127.0.0.1:5432/test",
                "PostgreSQL",
            ),
            Net::Mysql => (
                "KEYROLL_TEST_MYSQL_URL",
                "mysql://root@127.0.0.1:3306/test",
                "MySQL/MariaDB",
            ),
            Net::Redis => ("KEYROLL_TEST_REDIS_URL", "redis://127.0.0.1:6379", "Redis"),
        };
        let url = std::env::var(var).unwrap_or_else(|_| default.to_owned());
        let name = format!("kr_crash_{}", &keyroll_store::new_session_key()[..12]);
        let opts = StoreOptions {
            table: name.clone(),
            redis_prefix: name.clone(),
            pool_size: 8,
        };
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let store = match rt.block_on(open_store(&url, &opts)) {
            Ok(s) => s,
            Err(e) => {
                assert!(
                    std::env::var("KEYROLL_REQUIRE_SERVICES").as_deref() != Ok("1"),
                    "{what} unreachable and KEYROLL_REQUIRE_SERVICES=1: {e}"
                );
                let line = format!("SKIPPED: {what} unreachable: {e}\n");
                let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
                return None;
            }
        };
        rt.block_on(store.ensure_schema()).expect("schema");
        Some(Self {
            net,
            url,
            name,
            store,
            rt,
        })
    }

    /// The `keyroll resign` arguments naming this table or prefix.
    fn args(&self) -> [&str; 2] {
        match self.net {
            Net::Postgres | Net::Mysql => ["--table", &self.name],
            Net::Redis => ["--redis-prefix", &self.name],
        }
    }

    /// Writes `n` sessions signed by the old key, timestamps spread over the
    /// past week, expiries to the microsecond.
    fn seed(&self, n: usize) -> Seeded {
        let now = OffsetDateTime::now_utc();
        let mut rng = rand::thread_rng();
        let base = time::macros::datetime!(2099-01-01 00:00 UTC);
        let old =
            SessionCodec::database(&KeyRing::new(Secret::from(OLD)).expect("a non-empty secret"));
        let seeded: Seeded = (0..n)
            .map(|i| {
                let mut data = SessionData::new();
                data.insert("i".into(), json!(i));
                data.insert("cart".into(), json!([rng.gen_range(0..100), "ü"]));
                let signed_at = now - time::Duration::seconds(rng.gen_range(0..7 * 86_400));
                let row = old.encode_at(&data, signed_at).expect("encode");
                let expires = base
                    + time::Duration::seconds(i64::try_from(i % 86_400).unwrap())
                    + time::Duration::microseconds(rng.gen_range(0..1_000_000));
                (keyroll_store::new_session_key(), (data, row, expires))
            })
            .collect();
        let records: Vec<SessionRecord> = seeded
            .iter()
            .map(|(key, (_, row, expires))| SessionRecord {
                key: key.clone(),
                data: row.clone(),
                expires: *expires,
            })
            .collect();
        if self.net == Net::Mysql {
            self.rt.block_on(self.seed_mysql(&records));
            return seeded;
        }
        self.rt.block_on(async {
            // Seeding need not survive a power cut: PostgreSQL may skip the
            // flush of each insert (many times faster).
            let seeder = match self.net {
                Net::Postgres => {
                    let sep = if self.url.contains('?') { '&' } else { '?' };
                    let url = format!("{}{sep}options=-c%20synchronous_commit%3Doff", self.url);
                    let opts = StoreOptions {
                        table: self.name.clone(),
                        pool_size: 16,
                        ..StoreOptions::default()
                    };
                    open_store(&url, &opts).await.expect("seeding connection")
                }
                Net::Redis | Net::Mysql => Arc::clone(&self.store),
            };
            let mut tasks = tokio::task::JoinSet::new();
            for chunk in records.chunks(n.div_ceil(32).max(1)) {
                let (store, chunk) = (Arc::clone(&seeder), chunk.to_vec());
                tasks.spawn(async move {
                    for r in &chunk {
                        store.save(r).await.expect("seed");
                    }
                });
            }
            while let Some(t) = tasks.join_next().await {
                t.expect("seeding task");
            }
        });
        seeded
    }

    /// MySQL: multi-row inserts, a thousand rows a statement (one commit,
    /// so one log flush, each: the shared server's settings stay as they are).
    async fn seed_mysql(&self, records: &[SessionRecord]) {
        use mysql_async::prelude::Queryable;
        let mut c = mysql_async::Conn::from_url(self.url.as_str())
            .await
            .expect("seeding connection");
        for chunk in records.chunks(1000) {
            let marks = vec!["(?, ?, ?)"; chunk.len()].join(", ");
            let mut args: Vec<mysql_async::Value> = Vec::with_capacity(chunk.len() * 3);
            for r in chunk {
                let e = r.expires;
                args.push(r.key.clone().into());
                args.push(r.data.clone().into());
                args.push(mysql_async::Value::Date(
                    u16::try_from(e.year()).unwrap(),
                    u8::from(e.month()),
                    e.day(),
                    e.hour(),
                    e.minute(),
                    e.second(),
                    e.microsecond(),
                ));
            }
            c.exec_drop(format!("INSERT INTO `{}` VALUES {marks}", self.name), args)
                .await
                .expect("seed");
        }
        c.disconnect().await.expect("disconnect");
    }

    fn rows(&self) -> Vec<SessionRecord> {
        self.rt
            .block_on(self.store.scan(&KeyRange::all(), None, 1_000_000))
            .expect("scan")
    }

    fn count_on_new_key(&self) -> usize {
        let codec =
            SessionCodec::database(&KeyRing::new(Secret::from(NEW)).expect("a non-empty secret"));
        let now = OffsetDateTime::now_utc();
        self.rows()
            .iter()
            .filter(|r| codec.decode_at(&r.data, now).is_ok())
            .count()
    }

    /// Every seeded row is there, once, signed by the primary, with its
    /// data, expiry and original timestamp.
    fn check_all_resigned(&self, seeded: &Seeded) {
        let codec =
            SessionCodec::database(&KeyRing::new(Secret::from(NEW)).expect("a non-empty secret"));
        let old_codec =
            SessionCodec::database(&KeyRing::new(Secret::from(OLD)).expect("a non-empty secret"));
        let now = OffsetDateTime::now_utc();
        let rows = self.rows();
        for (n, r) in rows.iter().enumerate() {
            let (want, original, want_expires) =
                seeded.get(&r.key).expect("no row appeared from nowhere");
            let v = codec
                .decode_at(&r.data, now)
                .unwrap_or_else(|e| panic!("row {n} does not verify under the primary: {e}"));
            assert_eq!(v.role, Role::Primary);
            assert_eq!(&v.value, want, "data unchanged");
            assert_eq!(&r.expires, want_expires, "expiry unchanged");
            let before = old_codec
                .decode_at(original, now)
                .expect("original verifies under A");
            assert_eq!(v.timestamp, before.timestamp, "original timestamp kept");
        }
        assert_eq!(rows.len(), seeded.len(), "no row lost");
    }
}

impl Drop for NetTable {
    fn drop(&mut self) {
        if self.net == Net::Mysql {
            let dropped = self.rt.block_on(async {
                use mysql_async::prelude::Queryable;
                let mut c = mysql_async::Conn::from_url(self.url.as_str()).await?;
                c.query_drop(format!("DROP TABLE IF EXISTS `{}`", self.name))
                    .await?;
                c.disconnect().await
            });
            match dropped {
                Ok(()) => return,
                Err(e) => eprintln!("cleanup: could not drop {}: {e}; emptying it", self.name),
            }
        }
        if self.net == Net::Postgres {
            // This crate has no PostgreSQL client of its own: psql drops the
            // table; without psql the table is at least emptied.
            let dropped = Command::new("psql")
                .args([
                    self.url.as_str(),
                    "-qc",
                    &format!("DROP TABLE IF EXISTS \"{}\"", self.name),
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if dropped {
                return;
            }
            eprintln!(
                "cleanup: psql could not drop the table {}; emptying it",
                self.name
            );
        }
        // Every row expires in 2099: a purge "in 2200" deletes them all (on
        // Redis with both index sets, which then vanish).
        let later = time::macros::datetime!(2200-01-01 00:00 UTC);
        if let Err(e) = self.rt.block_on(self.store.purge_expired(later)) {
            eprintln!("cleanup: could not empty {}: {e}", self.name);
        }
    }
}

fn crash_drill(net: Net, rows: usize) {
    let Some(table) = NetTable::open(net) else {
        return;
    };
    let t0 = Instant::now();
    let seeded = table.seed(rows);
    eprintln!("{net:?}: seeded in {:?}", t0.elapsed());
    let url = table.url.clone();
    let args = table.args();
    // Small batches: many commit points to be killed between, and a run
    // long enough that four kills at 30–400 ms cannot finish it.
    let run = || resign_in_batches(&url, "50", &args);
    let killed = kill_until_progress(run, 4, || table.count_on_new_key());
    assert!(
        killed > 0,
        "resign finished before any kill: make the table larger"
    );
    let on_new = table.count_on_new_key();
    eprintln!("{net:?}: after the kills, {on_new} of {rows} rows re-signed");
    assert!(
        on_new > 0 && on_new < rows,
        "kills should interrupt a run in progress ({on_new})"
    );
    let t0 = Instant::now();
    let out = run().output().expect("final run");
    eprintln!("{net:?}: final run {:?}", t0.elapsed());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8(out.stdout).expect("utf8");
    assert!(line.starts_with("resigned "), "{line}");
    assert!(
        line.contains("unverifiable 0, expired 0, auth-rehashed 0, conflicts 0"),
        "{line}"
    );
    let t0 = Instant::now();
    table.check_all_resigned(&seeded);
    eprintln!("{net:?}: checked in {:?}", t0.elapsed());
    let t0 = Instant::now();
    let out = resign_in_batches(&url, "1000", &args)
        .output()
        .expect("idempotent run");
    eprintln!("{net:?}: idempotent run {:?}", t0.elapsed());
    let line = String::from_utf8(out.stdout).expect("utf8");
    assert!(
        line.starts_with(&format!("resigned 0, already-current {rows}")),
        "{line}"
    );
}

#[test]
fn resign_killed_at_random_points_then_rerun_finishes_the_job_postgres() {
    crash_drill(Net::Postgres, 40_000);
}

#[test]
fn resign_killed_at_random_points_then_rerun_finishes_the_job_mysql() {
    crash_drill(Net::Mysql, 40_000);
}

#[test]
fn resign_killed_at_random_points_then_rerun_finishes_the_job_redis() {
    crash_drill(Net::Redis, 40_000);
}
