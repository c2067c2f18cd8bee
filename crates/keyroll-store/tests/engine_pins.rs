//! The session engine's verified-session cache, pinned exactly: the memory
//! each entry is counted at, the bounds it is held to, when it is emptied,
//! and what an insert under another snapshot does. The cache's `Debug` form
//! (entries and bytes, never keys or data) is how its accounting is read.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::sync::Arc;

use common::{now, only, rec, sign, PRIMARY};
use keyroll::{Role, SessionData};
use keyroll_store::{
    new_session_key, LoadOutcome, LoadedSession, MemoryStore, PreparedRing, SessionEngine, Store,
};
use serde_json::json;
use time::{Duration, OffsetDateTime};

/// The cache's memory estimate of one entry: 160 for the entry, the key
/// twice (map and entry), the stored string, and per JSON value 80 plus its
/// text (a key's name, a string's bytes, a number's digits).
fn weight(key: &str, stored: &str, data: &SessionData) -> usize {
    fn value(v: &serde_json::Value) -> usize {
        match v {
            serde_json::Value::Null | serde_json::Value::Bool(_) => 0,
            serde_json::Value::Number(n) => n.to_string().len(),
            serde_json::Value::String(s) => s.len(),
            serde_json::Value::Array(a) => a.iter().map(|x| 80 + value(x)).sum(),
            serde_json::Value::Object(o) => o.iter().map(|(k, x)| 80 + k.len() + value(x)).sum(),
        }
    }
    160 + 2 * key.len()
        + stored.len()
        + data
            .iter()
            .map(|(k, v)| 80 + k.len() + value(v))
            .sum::<usize>()
}

/// Every kind of JSON value, so each branch of the estimate counts.
fn rich(tag: &str) -> SessionData {
    match json!({
        "s": tag,
        "n": 12345,
        "arr": [true, null, "ab"],
        "obj": {"k": "v"},
    }) {
        serde_json::Value::Object(m) => m,
        _ => unreachable!(),
    }
}

fn small(i: u8) -> SessionData {
    match json!({ "i": format!("{}", i % 10) }) {
        serde_json::Value::Object(m) => m,
        _ => unreachable!(),
    }
}

/// `(entries, bytes)` of the engine's cache, read from its `Debug` form.
fn cache_state(e: &SessionEngine) -> (usize, usize) {
    let shown = format!("{e:?}");
    let cache = &shown[shown.find("VerifiedCache").expect("the cache is shown")..];
    let field = |name: &str| -> usize {
        let at = cache.find(&format!("{name}: ")).expect(name) + name.len() + 2;
        cache[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .expect("a number")
    };
    (field("entries"), field("bytes"))
}

fn loaded(o: LoadOutcome) -> LoadedSession {
    match o {
        LoadOutcome::Loaded(l) => l,
        other => panic!("expected a session, got {other:?}"),
    }
}

async fn put(store: &MemoryStore, data: &str, expires: OffsetDateTime) -> String {
    let key = new_session_key();
    store.save(&rec(&key, data, expires)).await.unwrap();
    key
}

fn engine(store: &Arc<MemoryStore>) -> SessionEngine {
    SessionEngine::new(Arc::clone(store) as Arc<dyn Store>, &only(PRIMARY))
}

#[tokio::test]
async fn cache_bytes_are_the_sum_of_the_entries_weights_and_go_back_to_zero() {
    let store = Arc::new(MemoryStore::new());
    let e = engine(&store);
    let t = now();
    let exp = t + Duration::days(1);
    let (a_data, b_data) = (rich("xyz"), rich("a longer string"));
    let a_stored = sign(PRIMARY, &a_data, t);
    let b_stored = sign(PRIMARY, &b_data, t);
    let a = put(&store, &a_stored, exp).await;
    let b = put(&store, &b_stored, exp).await;
    let (wa, wb) = (
        weight(&a, &a_stored, &a_data),
        weight(&b, &b_stored, &b_data),
    );
    assert_eq!(cache_state(&e), (0, 0));
    loaded(e.load(&a, t).await.unwrap());
    assert_eq!(cache_state(&e), (1, wa));
    loaded(e.load(&b, t).await.unwrap());
    assert_eq!(cache_state(&e), (2, wa + wb));

    // Another primary-signed string under the same key replaces the entry.
    let a2_data = rich("changed");
    let a2_stored = sign(PRIMARY, &a2_data, t);
    store.save(&rec(&a, &a2_stored, exp)).await.unwrap();
    assert_eq!(*loaded(e.load(&a, t).await.unwrap()).data, a2_data);
    assert_eq!(cache_state(&e), (2, weight(&a, &a2_stored, &a2_data) + wb));

    assert!(e.delete(&a).await.unwrap());
    assert_eq!(cache_state(&e), (1, wb));
    assert!(e.delete(&b).await.unwrap());
    assert_eq!(cache_state(&e), (0, 0));
}

/// With a byte bound of eight times an entry's weight, exactly eight such
/// entries fit; a ninth evicts one. An entry of exactly an eighth of the
/// bound is cached, one byte more is not.
#[tokio::test]
async fn the_byte_bound_holds_entries_up_to_exactly_its_size() {
    let store = Arc::new(MemoryStore::new());
    let t = now();
    let exp = t + Duration::days(1);
    let mut keys = Vec::new();
    for i in 0..9 {
        let stored = sign(PRIMARY, &small(i), t);
        keys.push((put(&store, &stored, exp).await, stored));
    }
    let w = weight(&keys[0].0, &keys[0].1, &small(0));
    for (k, s) in &keys {
        assert_eq!(weight(k, s, &small(0)), w, "every entry weighs the same");
    }
    let e = engine(&store).with_cache_limits(1000, 8 * w);
    for (k, _) in &keys[..8] {
        loaded(e.load(k, t).await.unwrap());
    }
    assert_eq!(cache_state(&e), (8, 8 * w));
    loaded(e.load(&keys[8].0, t).await.unwrap());
    assert_eq!(cache_state(&e), (8, 8 * w), "a ninth entry evicts one");

    let too_small = engine(&store).with_cache_limits(1000, 8 * w - 1);
    loaded(too_small.load(&keys[0].0, t).await.unwrap());
    assert_eq!(cache_state(&too_small), (0, 0));
    let exact = engine(&store).with_cache_limits(1000, 8 * w);
    loaded(exact.load(&keys[0].0, t).await.unwrap());
    loaded(exact.load(&keys[0].0, t).await.unwrap());
    assert_eq!(cache_state(&exact), (1, w));
    assert_eq!(exact.stats().cache_hits, 1);
}

/// The entry bound evicts to make room: with room for one, the second load
/// leaves only the second session, counted at its own weight.
#[tokio::test]
async fn the_entry_bound_evicts_and_keeps_the_byte_count_exact() {
    let store = Arc::new(MemoryStore::new());
    let t = now();
    let exp = t + Duration::days(1);
    let (a_data, b_data) = (rich("first"), rich("second, longer"));
    let (a_stored, b_stored) = (sign(PRIMARY, &a_data, t), sign(PRIMARY, &b_data, t));
    let a = put(&store, &a_stored, exp).await;
    let b = put(&store, &b_stored, exp).await;
    let e = engine(&store).with_cache_limits(1, 1 << 20);
    loaded(e.load(&a, t).await.unwrap());
    loaded(e.load(&b, t).await.unwrap());
    assert_eq!(cache_state(&e), (1, weight(&b, &b_stored, &b_data)));
    loaded(e.load(&b, t).await.unwrap());
    assert_eq!(e.stats().cache_hits, 1);
}

/// Either bound at zero turns the cache off.
#[tokio::test]
async fn a_zero_entry_or_byte_bound_turns_the_cache_off() {
    let store = Arc::new(MemoryStore::new());
    let t = now();
    let key = put(&store, &sign(PRIMARY, &small(1), t), t + Duration::days(1)).await;
    for (entries, bytes) in [(0, 1 << 20), (100, 0)] {
        let e = engine(&store).with_cache_limits(entries, bytes);
        for _ in 0..3 {
            assert_eq!(*loaded(e.load(&key, t).await.unwrap()).data, small(1));
        }
        assert_eq!(e.stats().cache_hits, 0, "({entries}, {bytes})");
        assert_eq!(cache_state(&e), (0, 0), "({entries}, {bytes})");
    }
}

/// A new ring frees every entry at once, and an insert under another
/// snapshot (an `under` call) empties the entries of the old one first.
#[tokio::test]
async fn entries_of_an_older_snapshot_are_freed() {
    let store = Arc::new(MemoryStore::new());
    let e = engine(&store);
    let t = now();
    let exp = t + Duration::days(1);
    let a = put(&store, &sign(PRIMARY, &small(1), t), exp).await;
    let b = put(&store, &sign(PRIMARY, &small(2), t), exp).await;
    loaded(e.load(&a, t).await.unwrap());
    loaded(e.load(&b, t).await.unwrap());
    assert_eq!(cache_state(&e).0, 2);
    e.set_ring(&only(PRIMARY));
    assert_eq!(cache_state(&e), (0, 0));

    loaded(e.load(&a, t).await.unwrap());
    let other = PreparedRing::new(only(PRIMARY));
    let l = loaded(e.under(&other).load(&b, t).await.unwrap());
    assert_eq!((l.role, l.resigned), (Role::Primary, false));
    assert_eq!(
        cache_state(&e).0,
        1,
        "only the newer snapshot's entry is kept"
    );
    // The snapshot in force verifies `a` again (its entry was dropped).
    loaded(e.load(&a, t).await.unwrap());
    assert_eq!(e.stats().cache_hits, 0);
}
