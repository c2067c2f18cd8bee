//! `SessionLayer::upgrade_logins`: a logged-in session re-signed on a page
//! that never asks who the user is keeps its login (`_auth_user_hash`) when
//! the old key retires — and without it, as in Django, the user is logged out.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use common::{Backend, Browser, Mode};
use keyroll::{KeyRing, Secret, SessionAuthHash, SESSION_USER_HASH};
use keyroll_axum::Clock;
use time::OffsetDateTime;

/// A clock the test moves: nanoseconds since the epoch.
fn test_clock(start: OffsetDateTime) -> (Arc<AtomicI64>, Clock) {
    let ns = Arc::new(AtomicI64::new(
        i64::try_from(start.unix_timestamp_nanos()).unwrap(),
    ));
    let c = Arc::clone(&ns);
    let clock = Clock::from_fn(move || {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(c.load(Ordering::SeqCst))).unwrap()
    });
    (ns, clock)
}

fn set(ns: &AtomicI64, t: OffsetDateTime) {
    ns.store(
        i64::try_from(t.unix_timestamp_nanos()).unwrap(),
        Ordering::SeqCst,
    );
}

/// Logs user 1 in under A, rotates to {B, A retiring at T}, makes one
/// request to `page` (one that never asks who the user is), then asks who
/// the user is after T and returns the answer.
async fn rotate_and_retire(mode: Mode, upgrade: bool, page: &str) -> Option<String> {
    let t = OffsetDateTime::now_utc() + time::Duration::hours(1);
    let (ns, clock) = test_clock(OffsetDateTime::now_utc());
    let app = common::start_full(mode, Backend::Sqlite, move |c| c.clock(clock), upgrade).await?;
    let alice = Browser::new(&app);
    let (status, _) = alice.post("/login/1").await;
    assert_eq!(status, 200);
    assert!(alice.get("/whoami").await.1.starts_with("user:1|"));

    app.ring.reload(
        KeyRing::new(Secret::from(common::SECRET_B))
            .expect("a non-empty secret")
            .with_fallback(Secret::from(common::SECRET_A), Some(t))
            .unwrap(),
    );
    alice.get(page).await;
    // The session itself is now B's; its login hash is B's exactly when the
    // hook re-made it (the session re-sign alone leaves A's hash inside).
    assert!(common::session_verifies_under(&app, &alice, &common::ring_b()).await);
    let data = common::session_data(&app, &alice, &common::ring_b()).await;
    let hash = data[SESSION_USER_HASH].as_str().unwrap().to_owned();
    let password = app.users.hash("1").unwrap();
    let under_b = SessionAuthHash::new(&common::ring_b())
        .check_at(&hash, &password, OffsetDateTime::now_utc())
        .is_ok();
    assert_eq!(
        under_b, upgrade,
        "{mode:?}: login hash under B only with the hook"
    );

    set(&ns, t + time::Duration::minutes(1));
    let (status, body) = alice.get("/whoami").await;
    assert_eq!(status, 200);
    Some(body)
}

#[tokio::test]
async fn a_stale_login_is_upgraded_when_its_session_is_resigned() {
    for mode in [Mode::Server, Mode::Cookie] {
        let who = rotate_and_retire(mode, true, "/visit").await.unwrap();
        assert!(
            who.starts_with("user:1|"),
            "{mode:?}: still logged in after A retired: {who}"
        );
    }
}

/// Server mode: the first stale request fails (a 500: nothing of the
/// response is saved), yet the login hash was re-made in the same write that
/// re-signed the row, so the user is still logged in after A retires.
#[tokio::test]
async fn the_upgrade_survives_a_failed_first_request() {
    let who = rotate_and_retire(Mode::Server, true, "/fail")
        .await
        .unwrap();
    assert!(who.starts_with("user:1|"), "{who}");
}

/// Without `upgrade_logins` the gap is real (Django's own behaviour): the
/// session was re-signed by B, but its login hash was A's, and A retired.
#[tokio::test]
async fn without_upgrade_logins_the_user_is_logged_out_when_the_old_key_retires() {
    for mode in [Mode::Server, Mode::Cookie] {
        let who = rotate_and_retire(mode, false, "/visit").await.unwrap();
        assert!(
            who.starts_with("anonymous|"),
            "{mode:?}: expected the documented gap: {who}"
        );
    }
}
