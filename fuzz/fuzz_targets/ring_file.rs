//! Key ring files: `RingFile::parse` on arbitrary text (no environment
//! variables), then the operations on whatever parses, and the TOML round
//! trip `parse(to_toml(f))`.
//!
//! Input: ring file text. Files that name a `secret_file` are skipped: the
//! parser would open that path on this machine, which is neither
//! reproducible nor safe (a FIFO blocks the open forever; see
//! `ring_file_secret_file_naming_a_fifo_does_not_hang` in tests/bad_input.rs).
#![no_main]

use std::path::Path;
use std::time::Duration;

use keyroll::ringfile::RingFile;
use keyroll_fuzz::NOW;
use libfuzzer_sys::fuzz_target;

fn no_env(_: &str) -> Option<String> {
    None
}

fn names_a_file(v: &toml::Value) -> bool {
    match v {
        toml::Value::Table(t) => t.iter().any(|(k, v)| k == "secret_file" || names_a_file(v)),
        toml::Value::Array(a) => a.iter().any(names_a_file),
        _ => false,
    }
}

fn parse(text: &str) -> Option<RingFile> {
    RingFile::parse(
        text,
        Path::new("ring.toml"),
        Path::new("/nonexistent"),
        &no_env,
    )
    .ok()
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(v) = text.parse::<toml::Value>() {
        if names_a_file(&v) {
            return;
        }
    }
    let Some(rf) = parse(text) else {
        return;
    };
    // Exactly one primary, and the ring agrees with the file: every entry is
    // a key of the ring, or a repeat of a secret the ring already holds
    // (kept once, in the role verified first).
    let Ok(ring) = rf.ring() else {
        panic!("parsed but no ring");
    };
    assert_eq!(
        ring.keys().count() + ring.repeated().len(),
        rf.entries.len()
    );
    for e in &rf.entries {
        assert!(ring.get(e.id()).is_some(), "every entry's key verifies");
    }
    let _ = rf.check(NOW);

    // What it writes, it reads back the same.
    let written = rf.to_toml();
    let Some(again) = parse(&written) else {
        panic!("to_toml wrote a file parse refuses:\n{written}");
    };
    assert_eq!(again.to_toml(), written);
    let ids = |f: &RingFile| {
        f.entries
            .iter()
            .map(|e| (e.id(), e.role))
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&again), ids(&rf));

    // The operations never panic, whatever the dates say.
    let day = Duration::from_secs(86_400);
    let mut f = rf.clone();
    let _ = f.promote(None, 30 * day, day, false, NOW);
    let mut f = rf.clone();
    let _ = f.auto(90 * day, day, 30 * day, NOW, 8);
    assert!(f.ring().is_ok(), "auto left a ring without one primary");
    if let Some(e) = rf.entries.first() {
        let mut f = rf.clone();
        let _ = f.retire(e.id());
        assert!(f.ring().is_ok(), "retire removed the primary");
    }
});
