//! The whole story over real HTTP, in both session modes and on every store.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use axum::http::StatusCode;
use common::*;
use keyroll::SessionCodec;

/// Log in under A → stage B → promote B → still logged in, now signed by B →
/// retire A → still logged in.
async fn rotation_keeps_everyone_logged_in(mode: Mode, backend: Backend) {
    let Some(app) = start(mode, backend).await else {
        return;
    };
    let alice = Browser::new(&app);
    assert_eq!(alice.post("/login/1").await.0, StatusCode::OK);
    assert_eq!(
        alice.whoami().await,
        ("user:1".into(), id_a(), "primary".into())
    );
    assert!(session_verifies_under(&app, &alice, &ring_a()).await);

    app.ring.reload(ring_a_staged_b());
    assert_eq!(
        alice.whoami().await,
        ("user:1".into(), id_a(), "primary".into())
    );

    app.ring.reload(ring_b_fallback_a());
    // This request still saw A (a fallback now) and re-signed everything with B.
    assert_eq!(
        alice.whoami().await,
        ("user:1".into(), id_a(), "fallback".into())
    );
    assert!(session_verifies_under(&app, &alice, &ring_b()).await);
    assert!(!session_verifies_under(&app, &alice, &ring_a()).await);
    assert_eq!(
        alice.whoami().await,
        ("user:1".into(), id_b(), "primary".into())
    );
    // The auth hash was re-made under B too.
    let data = session_data(&app, &alice, &ring_b()).await;
    let hash = data["_auth_user_hash"].as_str().unwrap().to_owned();
    let now = time::OffsetDateTime::now_utc();
    assert!(keyroll::SessionAuthHash::new(&ring_b())
        .check_at(&hash, "sha256$salt$one", now)
        .is_ok());

    app.ring.reload(ring_b());
    assert_eq!(
        alice.whoami().await,
        ("user:1".into(), id_b(), "primary".into())
    );
}

/// Alice and Bob-on-another-device are user 1; Carol is user 2. Alice changes
/// her password: she stays in, her other session is out, Carol is untouched.
async fn password_change_logs_out_only_that_users_other_sessions(mode: Mode, backend: Backend) {
    let Some(app) = start(mode, backend).await else {
        return;
    };
    let (alice, alice_phone, carol) = (Browser::new(&app), Browser::new(&app), Browser::new(&app));
    alice.post("/login/1").await;
    alice_phone.post("/login/1").await;
    carol.post("/login/2").await;
    assert_eq!(alice.post("/password/1/new-one").await.0, StatusCode::OK);
    assert_eq!(alice.whoami().await.0, "user:1");
    assert_eq!(alice_phone.whoami().await.0, "anonymous");
    assert_eq!(carol.whoami().await.0, "user:2");
    // And the logged-out session stays logged out.
    assert_eq!(alice_phone.whoami().await.0, "anonymous");
}

/// A cookie that does not verify is a fresh anonymous session, never an error.
async fn tampered_cookies_are_anonymous(mode: Mode, backend: Backend) {
    let Some(app) = start(mode, backend).await else {
        return;
    };
    let alice = Browser::new(&app);
    alice.post("/login/1").await;
    let good = alice.cookie("sessionid").unwrap();
    let mut bytes = good.clone().into_bytes();
    let last = bytes.len() - 1;
    bytes[last] = if bytes[last] == b'a' { b'b' } else { b'a' };
    let flipped = String::from_utf8(bytes).unwrap();
    let client = reqwest::Client::new();
    let long = "x".repeat(10_000);
    for cookie in [
        format!("sessionid={flipped}"),
        "sessionid=garbage".to_owned(),
        "sessionid=".to_owned(),
        "sessionid=%ff%00".to_owned(),
        "sessionid=\"\"".to_owned(),
        format!("sessionid={long}"),
        format!("sessionid={good}xyz"),
        "sessionid=../../etc/passwd".to_owned(),
        format!("sessionid=garbage; sessionid={good}"),
    ] {
        let r = client
            .get(format!("{}/whoami", app.base))
            .header("cookie", cookie.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{cookie}");
        let body = r.text().await.unwrap();
        assert!(body.starts_with("anonymous|none|none"), "{cookie}: {body}");
    }
    // Duplicates: the first one counts.
    let r = client
        .get(format!("{}/whoami", app.base))
        .header("cookie", format!("sessionid={good}; sessionid=garbage"))
        .send()
        .await
        .unwrap();
    assert!(r.text().await.unwrap().starts_with("user:1|"));
    // A fresh session after a bad cookie works normally.
    let r = client
        .get(format!("{}/visit", app.base))
        .header("cookie", "sessionid=garbage")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "1");
}

macro_rules! story {
    ($($name:ident: $mode:expr, $backend:expr;)*) => {$(
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn rotation() {
                rotation_keeps_everyone_logged_in($mode, $backend).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn password_change() {
                password_change_logs_out_only_that_users_other_sessions($mode, $backend).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn tampered() {
                tampered_cookies_are_anonymous($mode, $backend).await;
            }
        }
    )*};
}

story! {
    server_sqlite: Mode::Server, Backend::Sqlite;
    server_postgres: Mode::Server, Backend::Postgres;
    server_redis: Mode::Server, Backend::Redis;
    signed_cookie: Mode::Cookie, Backend::Sqlite;
}

#[tokio::test]
async fn reset_link_made_under_a_works_after_promotion_and_dies_with_a() {
    let app = start(Mode::Cookie, Backend::Sqlite).await.unwrap();
    let b = Browser::new(&app);
    let (_, token) = b.get("/reset/make/1").await;
    assert_eq!(
        b.get(&format!("/reset/check/1/{token}")).await,
        (StatusCode::OK, id_a())
    );
    app.ring.reload(ring_a_staged_b());
    app.ring.reload(ring_b_fallback_a());
    assert_eq!(
        b.get(&format!("/reset/check/1/{token}")).await,
        (StatusCode::OK, id_a())
    );
    app.ring.reload(ring_b());
    assert_eq!(
        b.get(&format!("/reset/check/1/{token}")).await.0,
        StatusCode::BAD_REQUEST
    );
    // A new link is made under B.
    let (_, token) = b.get("/reset/make/1").await;
    assert_eq!(
        b.get(&format!("/reset/check/1/{token}")).await,
        (StatusCode::OK, id_b())
    );
    // A password change spends the link.
    app.users.set("1", "sha256$salt$changed");
    assert_eq!(
        b.get(&format!("/reset/check/1/{token}")).await.0,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn a_handler_that_never_touches_the_session_does_no_store_io() {
    let app = start(Mode::Server, Backend::Sqlite).await.unwrap();
    let store = app.store.clone().unwrap();
    let b = Browser::new(&app);
    assert_eq!(b.get("/plain").await.1, "plain");
    assert_eq!(store.ops(), 0);
    b.post("/login/1").await;
    assert!(b.cookie("sessionid").is_some());
    let before = store.ops();
    for _ in 0..5 {
        assert_eq!(b.get("/plain").await.1, "plain");
    }
    assert_eq!(
        store.ops(),
        before,
        "no store I/O with a cookie present either"
    );
    // Reading touches the store once (a load), writing nothing.
    b.get("/peek").await;
    assert_eq!(store.ops(), before + 1);
    // An anonymous visitor reading the session: no cookie, no I/O.
    let anon = Browser::new(&app);
    assert!(anon.whoami().await.0 == "anonymous");
    assert_eq!(store.ops(), before + 1);
}

#[tokio::test]
async fn a_failing_store_is_a_clear_500_and_nothing_half_written() {
    let app = start(Mode::Server, Backend::Sqlite).await.unwrap();
    let store = app.store.clone().unwrap();
    let b = Browser::new(&app);
    b.post("/login/1").await;
    let key = b.cookie("sessionid").unwrap();
    store.fail.store(true, std::sync::atomic::Ordering::SeqCst);
    let (status, body) = b.get("/whoami").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body.contains("session store is unavailable"), "{body}");
    assert!(!body.contains("test"), "no backend details leak: {body}");
    let anon = Browser::new(&app);
    let (status, body) = anon.get("/visit").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body.contains("nothing was saved"), "{body}");
    assert!(anon.cookie("sessionid").is_none());
    store.fail.store(false, std::sync::atomic::Ordering::SeqCst);
    // The session survived untouched.
    assert_eq!(b.cookie("sessionid").unwrap(), key);
    assert_eq!(b.whoami().await.0, "user:1");
}

#[tokio::test]
async fn logout_deletes_the_row_and_the_cookie() {
    let app = start(Mode::Server, Backend::Sqlite).await.unwrap();
    let b = Browser::new(&app);
    b.post("/login/1").await;
    let key = b.cookie("sessionid").unwrap();
    b.post("/logout").await;
    assert!(b.cookie("sessionid").is_none());
    let now = time::OffsetDateTime::now_utc();
    let inner = app.store.as_ref().unwrap();
    use keyroll_store::Store as _;
    assert_eq!(inner.load(&key, now).await.unwrap(), None);
    assert_eq!(b.whoami().await.0, "anonymous");
}

#[tokio::test]
async fn login_cycles_the_session_key() {
    let app = start(Mode::Server, Backend::Sqlite).await.unwrap();
    let b = Browser::new(&app);
    assert_eq!(b.get("/visit").await.1, "1");
    let before = b.cookie("sessionid").unwrap();
    b.post("/login/1").await;
    let after = b.cookie("sessionid").unwrap();
    assert_ne!(before, after, "no session fixation");
    // The anonymous data came along.
    assert_eq!(b.get("/visit").await.1, "2");
}

/// Signed-cookie mode: a stale cookie read by a handler that changes nothing
/// is re-issued on the same response, signed by the primary, same
/// attributes, original timestamp, expiry not extended.
#[tokio::test]
async fn stale_signed_cookie_is_reissued_with_its_timestamp_and_attributes() {
    let app = start(Mode::Cookie, Backend::Sqlite).await.unwrap();
    let b = Browser::new(&app);
    b.post("/login/1").await;
    let old = b.cookie("sessionid").unwrap();
    let now = time::OffsetDateTime::now_utc();
    let age = keyroll::DEFAULT_SESSION_COOKIE_AGE;
    let old_ts = SessionCodec::signed_cookie(&ring_a(), age)
        .decode_at(&old, now)
        .unwrap()
        .timestamp;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    app.ring.reload(ring_b_fallback_a());
    let r = reqwest::Client::new()
        .get(format!("{}/peek", app.base))
        .header("cookie", format!("sessionid={old}"))
        .send()
        .await
        .unwrap();
    let set: Vec<String> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(r.text().await.unwrap(), id_a());
    assert_eq!(set.len(), 1, "{set:?}");
    let c = &set[0];
    let value = c
        .split(';')
        .next()
        .unwrap()
        .strip_prefix("sessionid=")
        .unwrap();
    let v = SessionCodec::signed_cookie(&ring_b(), age)
        .decode_at(value, now)
        .unwrap();
    assert_eq!(v.timestamp, old_ts, "original timestamp kept");
    for attr in ["Path=/", "HttpOnly", "SameSite=Lax", "Expires="] {
        assert!(c.contains(attr), "{c}");
    }
    assert!(!c.contains("Secure"), "insecure_http was asked for: {c}");
    let max_age: u64 = c
        .split("; ")
        .find_map(|a| a.strip_prefix("Max-Age="))
        .unwrap()
        .parse()
        .unwrap();
    assert!(max_age < age.as_secs(), "expiry not extended: {max_age}");
    assert!(max_age + 10 > age.as_secs());
    // Without a stale key there is nothing to re-issue.
    let r = reqwest::Client::new()
        .get(format!("{}/plain", app.base))
        .header("cookie", format!("sessionid={value}"))
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("set-cookie").is_none());
    // Even an untouched stale cookie is re-issued (it costs no store I/O).
    let r = reqwest::Client::new()
        .get(format!("{}/plain", app.base))
        .header("cookie", format!("sessionid={old}"))
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("set-cookie").is_some());
}

#[tokio::test]
async fn secure_attribute_unless_told_plain_http() {
    let app = start_with(Mode::Cookie, Backend::Sqlite, |_| {
        keyroll_axum::SessionConfig::new()
    })
    .await
    .unwrap();
    let r = reqwest::Client::new()
        .get(format!("{}/visit", app.base))
        .send()
        .await
        .unwrap();
    let c = r.headers().get("set-cookie").unwrap().to_str().unwrap();
    for attr in [
        "Secure",
        "HttpOnly",
        "SameSite=Lax",
        "Path=/",
        "Max-Age=1209600",
    ] {
        assert!(c.contains(attr), "{c}");
    }
}

#[tokio::test]
async fn save_every_request_refreshes_unmodified_sessions() {
    let app = start_with(Mode::Server, Backend::Sqlite, |c| {
        c.save_every_request(true)
    })
    .await
    .unwrap();
    let b = Browser::new(&app);
    b.post("/login/1").await;
    let r = b
        .client
        .get(format!("{}/peek", app.base))
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("set-cookie").is_some());
}

#[tokio::test]
async fn signed_cookie_helper_reissues_stale_cookies() {
    let app = start(Mode::Cookie, Backend::Sqlite).await.unwrap();
    let b = Browser::new(&app);
    b.get("/signed/set").await;
    assert_eq!(b.get("/signed/get").await.1, format!("dark|{}", id_a()));
    let old = b.cookie("theme").unwrap();
    app.ring.reload(ring_b_fallback_a());
    assert_eq!(b.get("/signed/get").await.1, format!("dark|{}", id_a()));
    let new = b.cookie("theme").unwrap();
    assert_ne!(old, new);
    assert_eq!(b.get("/signed/get").await.1, format!("dark|{}", id_b()));
    // Same timestamp: only the signature changed.
    let ts = |c: &str| c.rsplit_once(':').unwrap().0.to_owned();
    assert_eq!(ts(&old), ts(&new));
    app.ring.reload(ring_b());
    assert_eq!(b.get("/signed/get").await.1, format!("dark|{}", id_b()));
    // A tampered one is refused.
    let r = reqwest::Client::new()
        .get(format!("{}/signed/get", app.base))
        .header("cookie", format!("theme={old}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "none");
}

#[tokio::test]
async fn ring_file_reload_and_watch() {
    use keyroll::ringfile::{OpenOptions, RingFile};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ring.toml");
    let now = time::OffsetDateTime::now_utc();
    RingFile::generate(now, 50).create_new(&path).unwrap();
    let ring = keyroll_axum::RingHandle::open(&path, OpenOptions::default()).unwrap();
    let first = ring.current().primary().id();
    let watch = ring.watch_file(
        &path,
        OpenOptions::default(),
        std::time::Duration::from_millis(50),
    );
    let staged = RingFile::update(&path, OpenOptions::default(), &|_| None, |rf| {
        Ok(rf.stage(now, 50))
    })
    .unwrap();
    let mut seen = false;
    for _ in 0..100 {
        if ring.current().get(staged).is_some() {
            seen = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(seen, "the watcher reloaded the staged key");
    // A broken file keeps the running ring.
    std::fs::write(&path, "this is not a ring").unwrap();
    assert!(ring
        .reload_from_file(&path, OpenOptions::default())
        .is_err());
    assert_eq!(ring.current().primary().id(), first);
    assert!(ring.current().get(staged).is_some());
    watch.abort();
}

#[tokio::test]
async fn remove_returns_the_value_as_the_type_asked_for_and_saves_its_absence() {
    for mode in [Mode::Server, Mode::Cookie] {
        let app = start(mode, Backend::Sqlite).await.unwrap();
        let b = Browser::new(&app);
        assert_eq!(b.get("/visit").await.1, "1");
        assert_eq!(b.get("/visit").await.1, "2");
        assert_eq!(b.post("/take-visits").await.1, "2", "{mode:?}");
        assert_eq!(
            b.post("/take-visits").await.1,
            "none",
            "{mode:?}: saved without it"
        );
        assert_eq!(b.get("/visit").await.1, "1", "{mode:?}");
    }
}
