//! `CookieRing` from ring files: reloads, a bad reload, `KeyMaterial::Master`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use keyroll::ringfile::OpenOptions;
use keyroll_axum::RingHandle;
use keyroll_cookie::{CookieRing, KeyError, KeyMaterial, RingLoadError};

use common::*;

#[test]
fn a_failed_reload_keeps_the_keys_in_force_and_says_why_without_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ring.toml");
    let master = master_secret(&cookie::Key::generate());
    write_ring(&path, &[("primary", &master)]);
    let handle = RingHandle::open(&path, OpenOptions::default()).unwrap();
    let ring = CookieRing::open(&path, OpenOptions::default(), KeyMaterial::Master).unwrap();
    ring.follow(&handle, &path, OpenOptions::default(), KeyMaterial::Master);
    let before = ring.current().primary_id();

    // A ring secret that is not a master key, under KeyMaterial::Master.
    let not_master = "not-a-master-key-but-long-enough-to-be-a-secret";
    write_ring(&path, &[("primary", not_master), ("fallback", &master)]);
    handle
        .reload_from_file(&path, OpenOptions::default())
        .unwrap();
    assert_eq!(ring.current().primary_id(), before);
    let why = ring.last_error().expect("the failed reload is kept");
    assert!(why.contains("not the base64 of a 64-byte"), "{why}");
    assert!(!why.contains(not_master), "{why}");
    match ring.reload_from_file(&path, OpenOptions::default(), KeyMaterial::Master) {
        Err(RingLoadError::Key(KeyError::NotAMasterKey(id))) => {
            assert_eq!(id, keyroll::Secret::from(not_master).id());
        }
        other => panic!("{other:?}"),
    }

    // A good reload clears it and swaps the keys.
    let next = master_secret(&cookie::Key::generate());
    write_ring(&path, &[("primary", &next), ("fallback", &master)]);
    handle
        .reload_from_file(&path, OpenOptions::default())
        .unwrap();
    assert_eq!(ring.last_error(), None);
    assert_eq!(
        ring.current().primary_id(),
        keyroll::Secret::from(next.as_str()).id()
    );
    assert_eq!(ring.current().ids().count(), 2);
}
