//! The login-hash rules that keep a changed password a logout: a session
//! whose `_auth_user_hash` matches no key is flushed for good, and
//! `upgrade_logins` never re-makes a hash that does not verify with the
//! user's current password. Both session modes, over real HTTP.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use axum::http::StatusCode;
use common::*;
use keyroll_store::Store as _;

/// A password changed behind the session's back (an admin reset): the next
/// `current_user` is anonymous, the cookie is deleted, the server-side row
/// is gone, and putting the old password hash back does not revive it.
async fn a_session_whose_login_hash_matches_no_key_is_flushed_for_good(mode: Mode) {
    let app = start(mode, Backend::Sqlite).await.unwrap();
    let alice = Browser::new(&app);
    assert_eq!(alice.post("/login/1").await.0, StatusCode::OK);
    assert_eq!(alice.whoami().await.0, "user:1");
    let key = alice.cookie("sessionid").unwrap();
    let old_password = app.users.hash("1").unwrap();

    app.users.set("1", "sha256$salt$reset-by-admin");
    let (status, set_cookies, body) = alice.get_full("/whoami").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.starts_with("anonymous|"), "{body}");
    assert!(
        set_cookies
            .iter()
            .any(|c| c.starts_with("sessionid=") && c.contains("Max-Age=0")),
        "{mode:?}: the cookie is deleted: {set_cookies:?}"
    );
    assert!(alice.cookie("sessionid").is_none(), "{mode:?}");
    if mode == Mode::Server {
        let store = app.store.as_ref().unwrap();
        let row = store.load(&key, time::OffsetDateTime::now_utc()).await;
        assert_eq!(row.unwrap(), None, "the row is gone");
    }

    app.users.set("1", &old_password);
    assert_eq!(alice.whoami().await.0, "anonymous", "{mode:?}");
    // Even replaying the old cookie does not bring the login back.
    let replay = Browser::new(&app);
    let url: reqwest::Url = app.base.parse().unwrap();
    replay.jar.add_cookie_str(&format!("sessionid={key}"), &url);
    if mode == Mode::Server {
        assert_eq!(replay.whoami().await.0, "anonymous", "{mode:?}");
    }
}

#[tokio::test]
async fn a_session_whose_login_hash_matches_no_key_is_flushed_for_good_server() {
    a_session_whose_login_hash_matches_no_key_is_flushed_for_good(Mode::Server).await;
}

#[tokio::test]
async fn a_session_whose_login_hash_matches_no_key_is_flushed_for_good_cookie() {
    a_session_whose_login_hash_matches_no_key_is_flushed_for_good(Mode::Cookie).await;
}

/// Two devices log in under A; the password is changed on the first; the
/// ring rotates to {B, fallback A}; the second device visits a page that
/// never asks who the user is (its session is re-signed there, and
/// `upgrade_logins` looks at its login hash). It must stay logged out: its
/// hash was made for the old password and must not be re-made for the new.
async fn upgrade_logins_does_not_revive_a_session_whose_password_changed(mode: Mode) {
    let app = start_full(mode, Backend::Sqlite, |c| c, true)
        .await
        .unwrap();
    let phone = Browser::new(&app);
    let laptop = Browser::new(&app);
    assert_eq!(phone.post("/login/1").await.0, StatusCode::OK);
    assert_eq!(laptop.post("/login/1").await.0, StatusCode::OK);
    assert_eq!(phone.whoami().await.0, "user:1");

    assert_eq!(phone.post("/password/1/new").await.0, StatusCode::OK);
    assert_eq!(phone.whoami().await.0, "user:1", "this device stays in");

    app.ring.reload(ring_b_fallback_a());
    let (status, _) = laptop.get("/peek").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        laptop.whoami().await.0,
        "anonymous",
        "{mode:?}: the other device is logged out"
    );
    assert_eq!(phone.whoami().await.0, "user:1", "{mode:?}");
}

#[tokio::test]
async fn upgrade_logins_does_not_revive_a_session_whose_password_changed_server() {
    upgrade_logins_does_not_revive_a_session_whose_password_changed(Mode::Server).await;
}

#[tokio::test]
async fn upgrade_logins_does_not_revive_a_session_whose_password_changed_cookie() {
    upgrade_logins_does_not_revive_a_session_whose_password_changed(Mode::Cookie).await;
}
