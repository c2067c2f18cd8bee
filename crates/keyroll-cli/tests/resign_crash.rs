//! Crash safety of `keyroll resign`: killed with SIGKILL at random points,
//! then run again, it finishes the job — no row lost, none corrupted, every
//! live row signed by the primary with its data, expiry and timestamp intact.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code

mod common;

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use keyroll::{KeyRing, Role, Secret, SessionCodec, SessionData};
use rand::Rng as _;
use serde_json::json;
use time::OffsetDateTime;

const KEYROLL: &str = env!("CARGO_BIN_EXE_keyroll");
const OLD: &str = "the-old-key-A-0123456789abcdefghijklmnopqrstuv";
const NEW: &str = "the-new-key-B-0123456789abcdefghijklmnopqrstuv";

fn resign(url: &str, extra: &[&str]) -> Command {
    let mut c = Command::new(KEYROLL);
    c.args(["resign", "--database", url, "--batch", "200"])
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
    let ring = KeyRing::new(Secret::from(NEW));
    let codec = SessionCodec::database(&ring);
    let old_codec = SessionCodec::database(&KeyRing::new(Secret::from(OLD)));
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
    let codec = SessionCodec::database(&KeyRing::new(Secret::from(NEW)));
    let now = OffsetDateTime::now_utc();
    common::rows(path, "keyroll_session")
        .iter()
        .filter(|(_, d, _)| codec.decode_at(d, now).is_ok())
        .count()
}

#[test]
fn resign_killed_at_random_points_then_rerun_finishes_the_job() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("sessions.db");
    let seeded = seed_sqlite(&path, 40_000);
    let url = format!("sqlite://{}", path.display());
    let mut rng = rand::thread_rng();
    let mut killed = 0;
    for round in 0..4 {
        let mut child = resign(&url, &[]).spawn().expect("spawn");
        let wait = Duration::from_millis(rng.gen_range(30..400));
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
