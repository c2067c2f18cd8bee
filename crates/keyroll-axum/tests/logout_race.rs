//! A request that loaded a session before a concurrent logout must not bring
//! the session back when it saves: over real HTTP, on every store.
//!
//! The scenario: a thief holds a copy of the victim's session cookie and has a
//! slow request in flight (it loaded the session, then waits); the victim
//! logs out, which deletes the row; the slow request then changes the session.
//! An upsert would write the logged-in row back and set the cookie again, so
//! the stolen cookie would outlive the logout.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use axum::http::StatusCode;
use common::*;
use keyroll_store::{KeyRange, Store as _};

/// Every row in the app's store.
async fn rows(app: &TestApp) -> usize {
    let store = app.store.as_ref().unwrap();
    store
        .scan(&KeyRange::all(), None, 1000)
        .await
        .unwrap()
        .len()
}

/// Victim logs in; the thief copies the cookie and starts a slow `op`
/// request; once it has loaded the session the victim logs out; then the
/// slow request goes on. Returns the slow response and the thief.
async fn race_a_logout(
    app: &TestApp,
    op: &str,
) -> ((StatusCode, Vec<String>, String), Browser, Browser) {
    let victim = Browser::new(app);
    assert_eq!(victim.post("/login/1").await.0, StatusCode::OK);
    let thief = victim.with_stolen_cookie(app, "sessionid");
    assert_eq!(thief.whoami().await.0, "user:1", "the stolen cookie works");

    let slow = {
        let thief = thief.clone();
        let path = format!("/slow/{op}");
        tokio::spawn(async move { thief.get_full(&path).await })
    };
    app.gate.loaded.notified().await;
    assert_eq!(victim.post("/logout").await.0, StatusCode::OK);
    assert_eq!(rows(app).await, 0, "the logout deleted the row");
    app.gate.release.notify_one();
    (slow.await.unwrap(), thief, victim)
}

async fn a_concurrent_request_does_not_undo_logout(backend: Backend) {
    let Some(app) = start(Mode::Server, backend).await else {
        return;
    };
    let ((status, set_cookies, body), thief, victim) = race_a_logout(&app, "visit").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        set_cookies.iter().all(|c| !c.starts_with("sessionid=")),
        "no session cookie is set (or deleted) by the interrupted response: {set_cookies:?}"
    );
    assert_eq!(rows(&app).await, 0, "the session row stays deleted");
    assert_eq!(thief.whoami().await.0, "anonymous");
    assert_eq!(victim.whoami().await.0, "anonymous");
}

async fn a_key_cycled_after_a_concurrent_logout_does_not_carry_the_login(backend: Backend) {
    let Some(app) = start(Mode::Server, backend).await else {
        return;
    };
    let ((status, set_cookies, body), thief, _) = race_a_logout(&app, "cycle").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        set_cookies.iter().all(|c| !c.starts_with("sessionid=")),
        "{set_cookies:?}"
    );
    assert_eq!(rows(&app).await, 0, "no row under a new key either");
    assert_eq!(thief.whoami().await.0, "anonymous");
}

async fn the_handler_is_told_its_session_was_interrupted(backend: Backend) {
    let Some(app) = start(Mode::Server, backend).await else {
        return;
    };
    let ((status, set_cookies, body), thief, _) = race_a_logout(&app, "save").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "interrupted"));
    assert!(
        set_cookies.iter().all(|c| !c.starts_with("sessionid=")),
        "{set_cookies:?}"
    );
    assert_eq!(rows(&app).await, 0);
    assert_eq!(thief.whoami().await.0, "anonymous");
}

/// The same slow requests without a logout in the window save normally
/// (what the tests above see is the race, not the slow handler).
async fn without_a_logout_the_slow_requests_save(backend: Backend) {
    let Some(app) = start(Mode::Server, backend).await else {
        return;
    };
    let user = Browser::new(&app);
    assert_eq!(user.post("/login/1").await.0, StatusCode::OK);
    for (op, want) in [("visit", "1"), ("save", "saved"), ("cycle", "3")] {
        let before = user.cookie("sessionid").unwrap();
        let slow = {
            let user = user.clone();
            let path = format!("/slow/{op}");
            tokio::spawn(async move { user.get_full(&path).await })
        };
        app.gate.loaded.notified().await;
        app.gate.release.notify_one();
        let (status, set_cookies, body) = slow.await.unwrap();
        assert_eq!((status, body.as_str()), (StatusCode::OK, want), "{op}");
        assert!(
            set_cookies.iter().any(|c| c.starts_with("sessionid=")),
            "{op}: {set_cookies:?}"
        );
        assert_eq!(user.whoami().await.0, "user:1", "{op}");
        assert_eq!(
            user.cookie("sessionid").unwrap() != before,
            op == "cycle",
            "{op}: only cycle changes the key"
        );
    }
    assert_eq!(rows(&app).await, 1, "cycle deleted the old row");
}

macro_rules! on_every_store {
    ($($name:ident: $backend:expr;)*) => {$(
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_concurrent_request_does_not_undo_logout() {
                super::a_concurrent_request_does_not_undo_logout($backend).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_key_cycled_after_a_concurrent_logout_does_not_carry_the_login() {
                super::a_key_cycled_after_a_concurrent_logout_does_not_carry_the_login($backend)
                    .await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn the_handler_is_told_its_session_was_interrupted() {
                super::the_handler_is_told_its_session_was_interrupted($backend).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn without_a_logout_the_slow_requests_save() {
                super::without_a_logout_the_slow_requests_save($backend).await;
            }
        }
    )*};
}

on_every_store! {
    sqlite: Backend::Sqlite;
    postgres: Backend::Postgres;
    redis: Backend::Redis;
}
