//! The engine reads its ring from a [`RingSource`] once per operation: a
//! source that hands out a new snapshot is followed at once, without the
//! engine being told, and the verified-session cache never answers for a
//! snapshot other than the one that verified.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::{Arc, Mutex};

use keyroll::{KeyRing, Role, Secret, SessionCodec, SessionData, VerifyError};
use keyroll_store::{
    FixedRing, LoadOutcome, MemoryStore, PreparedRing, RingSource, SessionEngine, Store,
};
use time::{Duration, OffsetDateTime};

const OLD: &str = "ring-source-old-key-0123456789abcdefghijklmnopqrstuv";
const NEW: &str = "ring-source-new-key-0123456789abcdefghijklmnopqrstuv";

/// A source whose snapshot is swapped from outside, as a running service's is.
#[derive(Debug)]
struct Swappable(Mutex<Arc<PreparedRing>>);

impl Swappable {
    fn new(ring: KeyRing) -> Arc<Self> {
        Arc::new(Self(Mutex::new(Arc::new(PreparedRing::new(ring)))))
    }
    fn swap(&self, ring: KeyRing) {
        *self.0.lock().unwrap() = Arc::new(PreparedRing::new(ring));
    }
}

impl RingSource for Swappable {
    fn current(&self) -> Arc<PreparedRing> {
        Arc::clone(&self.0.lock().unwrap())
    }
}

fn only(secret: &str) -> KeyRing {
    KeyRing::new(Secret::from(secret)).expect("a non-empty secret")
}

fn data() -> SessionData {
    let mut d = SessionData::new();
    d.insert("cart".into(), 3.into());
    d
}

fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(OffsetDateTime::now_utc().unix_timestamp()).unwrap()
}

#[tokio::test]
async fn a_swapped_source_is_followed_without_telling_the_engine_and_its_cache_misses() {
    let store = Arc::new(MemoryStore::new());
    let source = Swappable::new(only(OLD));
    let engine = SessionEngine::with_source(
        Arc::clone(&store) as Arc<dyn Store>,
        Arc::clone(&source) as Arc<dyn RingSource>,
    );
    let t = now();
    let key = engine
        .create(&data(), t + Duration::days(1), t)
        .await
        .unwrap();
    engine.load(&key, t).await.unwrap().into_loaded().unwrap();
    engine.load(&key, t).await.unwrap().into_loaded().unwrap();
    assert_eq!(engine.stats().cache_hits, 1);

    // The old key dropped from the ring altogether: the row it signed, and
    // that the cache holds, is refused.
    source.swap(only(NEW));
    assert_eq!(
        engine.load(&key, t).await.unwrap(),
        LoadOutcome::Refused(VerifyError::BadSignature)
    );
    assert_eq!(engine.stats().cache_hits, 1);

    // Back as a fallback: verified by it and re-signed with the new primary.
    source.swap(only(NEW).with_fallback(Secret::from(OLD), None).unwrap());
    let l = engine.load(&key, t).await.unwrap().into_loaded().unwrap();
    assert_eq!((l.role, l.resigned), (Role::Fallback, true));
    let row = store.load(&key, t).await.unwrap().unwrap().data;
    assert_eq!(
        SessionCodec::database(&only(NEW))
            .decode_at(&row, t)
            .unwrap()
            .value,
        data()
    );
    // Saves sign with the primary of the snapshot in force.
    let key2 = engine
        .create(&data(), t + Duration::days(1), t)
        .await
        .unwrap();
    let row2 = store.load(&key2, t).await.unwrap().unwrap().data;
    assert!(SessionCodec::database(&only(NEW))
        .decode_at(&row2, t)
        .is_ok());
}

#[tokio::test]
async fn set_ring_after_a_source_replaces_it_for_every_later_call() {
    let store = Arc::new(MemoryStore::new());
    let source = Swappable::new(only(OLD));
    let engine = SessionEngine::with_source(
        Arc::clone(&store) as Arc<dyn Store>,
        Arc::clone(&source) as Arc<dyn RingSource>,
    );
    engine.set_ring(&only(NEW));
    let first = engine.ring();
    assert_eq!(first.ring().primary().id(), Secret::from(NEW).id());
    // The old source no longer matters.
    source.swap(only(OLD));
    assert!(Arc::ptr_eq(&first, &engine.ring()));
    // A fixed ring is one snapshot, the same for every call.
    let fixed = FixedRing::new(only(OLD));
    assert!(Arc::ptr_eq(&fixed.current(), &fixed.current()));
}

#[test]
fn every_snapshot_has_a_new_generation_and_derives_each_part_once() {
    let a = PreparedRing::new(only(OLD));
    let b = PreparedRing::new(only(OLD));
    assert!(b.generation() > a.generation());
    assert_eq!(a.derived_count(), 0);
    let salt = keyroll::DB_SESSION_SALT;
    assert!(Arc::ptr_eq(&a.session_codec(salt), &a.session_codec(salt)));
    let age = std::time::Duration::from_secs(60);
    assert!(Arc::ptr_eq(
        &a.cookie_session_codec(age),
        &a.cookie_session_codec(age)
    ));
    let c1 = a.signed_cookie("theme", "", true).unwrap();
    assert!(Arc::ptr_eq(
        &c1,
        &a.signed_cookie("theme", "", true).unwrap()
    ));
    assert!(!Arc::ptr_eq(
        &c1,
        &a.signed_cookie("theme", "x", true).unwrap()
    ));
    assert!(Arc::ptr_eq(&a.reset_tokens(None), &a.reset_tokens(None)));
    assert!(Arc::ptr_eq(a.auth_hash(), a.auth_hash()));
    // Two codecs, two signers, one set of reset tokens, one login hash.
    assert_eq!(a.derived_count(), 6);
    assert_eq!(b.derived_count(), 0);
}

#[test]
fn derived_parts_are_bounded_however_many_names_are_asked_for() {
    let a = PreparedRing::new(only(OLD));
    for i in 0..1000 {
        let name = format!("c{i}");
        // Each still works, kept or not.
        let c = a.signed_cookie(&name, "", true).unwrap();
        let t = now();
        assert_eq!(c.unsign_at(&c.sign_at("v", t), None, t).unwrap().value, "v");
    }
    assert!(a.derived_count() <= 64, "{}", a.derived_count());
}

#[test]
fn a_snapshot_debug_shows_key_ids_not_secrets() {
    let a = PreparedRing::new(only(OLD));
    a.auth_hash();
    a.signed_cookie("theme", "", true);
    let shown = format!("{a:?}");
    assert!(!shown.contains(OLD), "{shown}");
    assert!(
        shown.contains(&Secret::from(OLD).id().to_string()),
        "{shown}"
    );
}

#[tokio::test]
async fn under_a_snapshot_the_engine_signs_and_verifies_with_it_not_the_one_in_force() {
    let store = Arc::new(MemoryStore::new());
    let source = Swappable::new(only(OLD));
    let engine = SessionEngine::with_source(
        Arc::clone(&store) as Arc<dyn Store>,
        Arc::clone(&source) as Arc<dyn RingSource>,
    );
    let t = now();
    let exp = t + Duration::days(1);
    let held = engine.ring();
    source.swap(only(NEW));
    let at = engine.under(&held);

    // Created and saved under the held snapshot: signed by its primary.
    let key = at.create(&data(), exp, t).await.unwrap();
    let signed_old = |row: &str| SessionCodec::database(&only(OLD)).decode_at(row, t).is_ok();
    assert!(signed_old(
        &store.load(&key, t).await.unwrap().unwrap().data
    ));
    let mut more = data();
    more.insert("n".into(), 2.into());
    assert_eq!(
        at.save(&key, &more, exp, t).await.unwrap(),
        keyroll_store::Saved::Updated
    );
    assert!(signed_old(
        &store.load(&key, t).await.unwrap().unwrap().data
    ));

    // Loaded under the held snapshot it verifies; under the one in force
    // (which no longer knows the old key) it is refused.
    let l = at.load(&key, t).await.unwrap().into_loaded().unwrap();
    assert_eq!(
        (&*l.data, l.role, l.resigned),
        (&more, Role::Primary, false)
    );
    assert_eq!(
        engine.load(&key, t).await.unwrap(),
        LoadOutcome::Refused(VerifyError::BadSignature)
    );
}
