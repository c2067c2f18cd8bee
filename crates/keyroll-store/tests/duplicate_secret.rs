//! The same secret in two roles (Django's `SECRET_KEY` also left in
//! `SECRET_KEY_FALLBACKS`, or a ring file listing a secret twice), through
//! the session engine and the census: a session it signed is current, not
//! stale, so it is neither re-signed nor counted as a fallback's.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
#![cfg(any(feature = "sqlite", feature = "postgres", feature = "redis"))]

mod common;

use std::sync::Arc;

use common::{data, new_key, now, rec, sign, Fixture, FALLBACK, PRIMARY, STAGED};
use keyroll::{ring_from_env, KeyRing, Role, Secret};
use keyroll_store::{census, BulkOptions, SessionEngine};
use time::Duration;

/// The rings that hold `PRIMARY` twice: from Django's variables, and as a
/// ring file would list it (fallback first, then primary).
fn rings_with_primary_repeated() -> Vec<KeyRing> {
    let fallbacks = format!(r#"["{PRIMARY}", "{FALLBACK}"]"#);
    let vars = [
        ("SECRET_KEY", PRIMARY),
        ("SECRET_KEY_FALLBACKS", &fallbacks),
    ];
    vec![
        ring_from_env(|n| vars.iter().find(|v| v.0 == n).map(|v| v.1.to_owned()))
            .expect("env ring"),
        KeyRing::from_keys([
            (Secret::from(PRIMARY), Role::Fallback, None),
            (Secret::from(STAGED), Role::Staged, None),
            (Secret::from(FALLBACK), Role::Fallback, None),
            (Secret::from(PRIMARY), Role::Primary, None),
        ])
        .expect("ring"),
    ]
}

async fn session_signed_by_a_repeated_primary_is_current_not_resigned(fx: &Fixture) {
    let now = now();
    let x = Secret::from(PRIMARY).id();
    for ring in rings_with_primary_repeated() {
        let engine = SessionEngine::new(Arc::clone(&fx.store), &ring);
        let key = new_key();
        let stored = sign(PRIMARY, &data(7), now - Duration::days(3));
        let expires = now + Duration::days(5);
        fx.store.save(&rec(&key, &stored, expires)).await.unwrap();

        let got = engine
            .load(&key, now)
            .await
            .unwrap()
            .into_loaded()
            .expect("loads");
        assert_eq!(
            ((*got.data).clone(), got.key_id, got.role, got.resigned),
            (data(7), x, Role::Primary, false)
        );
        let row = fx.store.load(&key, now).await.unwrap().expect("row");
        assert_eq!(row.data, stored, "a current session was re-signed");
        let st = engine.stats();
        assert_eq!(
            (
                st.verified_primary,
                st.verified_staged,
                st.verified_fallback,
                st.resigned
            ),
            (1, 0, 0, 0),
            "{st:?}"
        );

        // A session of the real fallback is still stale, and re-signed.
        let old_key = new_key();
        let old = sign(FALLBACK, &data(8), now - Duration::days(3));
        fx.store.save(&rec(&old_key, &old, expires)).await.unwrap();
        let got = engine
            .load(&old_key, now)
            .await
            .unwrap()
            .into_loaded()
            .expect("loads");
        assert_eq!((got.role, got.resigned), (Role::Fallback, true));
        fx.store.delete(&key).await.unwrap();
        fx.store.delete(&old_key).await.unwrap();
    }
}

/// The census counted the repeated primary's rows twice: once as the
/// primary's and once as a fallback's (which then never looked safe to retire).
async fn census_counts_a_repeated_secret_once_as_primary(fx: &Fixture) {
    let now = now();
    let expires = now + Duration::days(5);
    for n in 0..3 {
        let row = sign(PRIMARY, &data(n), now - Duration::hours(n + 1));
        fx.store
            .save(&rec(&new_key(), &row, expires))
            .await
            .unwrap();
    }
    let row = sign(FALLBACK, &data(9), now - Duration::days(2));
    fx.store
        .save(&rec(&new_key(), &row, expires))
        .await
        .unwrap();
    for ring in rings_with_primary_repeated() {
        let c = census(
            Arc::clone(&fx.store),
            &ring,
            &BulkOptions::default(),
            now,
            None,
        )
        .await
        .unwrap();
        assert_eq!(
            c.keys,
            vec![
                (Secret::from(PRIMARY).id(), Role::Primary, 3),
                (Secret::from(FALLBACK).id(), Role::Fallback, 1)
            ]
        );
    }
}

macro_rules! suite {
    ($backend:ident, $fixture:path) => {
        mod $backend {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn session_signed_by_a_repeated_primary_is_current_not_resigned() {
                let Some(fx) = $fixture().await else { return };
                super::session_signed_by_a_repeated_primary_is_current_not_resigned(&fx).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn census_counts_a_repeated_secret_once_as_primary() {
                let Some(fx) = $fixture().await else { return };
                super::census_counts_a_repeated_secret_once_as_primary(&fx).await;
            }
        }
    };
}

suite!(memory, crate::common::memory);
#[cfg(feature = "sqlite")]
suite!(sqlite, crate::common::sqlite);
