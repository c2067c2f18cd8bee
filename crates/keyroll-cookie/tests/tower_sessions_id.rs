//! An axum app with tower-sessions (MemoryStore) whose session-id cookie
//! is signed (`with_signed`) or private (`with_private`), behind
//! `RotateCookiesLayer`: stage B, promote B (the app restarts with B's key,
//! same store), retire A, over real HTTP.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use axum::routing::get;
use axum::Router;
use keyroll::{Role, Secret};
use keyroll_cookie::{CookieKeys, CookieRing, KeyMaterial, RotateCookies, RotateCookiesLayer};
use tower_sessions::cookie::Key;
use tower_sessions::{MemoryStore, Session, SessionManagerLayer};

use common::*;

#[derive(Clone, Copy, Debug)]
enum Mode {
    Signed,
    Private,
}

async fn bump(session: Session) -> String {
    let n: u64 = session.get("n").await.unwrap().unwrap_or(0) + 1;
    session.insert("n", n).await.unwrap();
    n.to_string()
}

async fn peek(session: Session) -> String {
    let n: Option<u64> = session.get("n").await.unwrap();
    n.map_or_else(|| "-".to_owned(), |n| n.to_string())
}

fn app(store: MemoryStore, key: Key, mode: Mode) -> Router {
    let layer = SessionManagerLayer::new(store).with_secure(false);
    let router = Router::new()
        .route("/bump", get(bump))
        .route("/peek", get(peek));
    match mode {
        Mode::Signed => router.layer(layer.with_signed(key)),
        Mode::Private => router.layer(layer.with_private(key)),
    }
}

fn keys(entries: &[(&Secret, Role)]) -> CookieKeys {
    CookieKeys::new(
        entries.iter().map(|(s, r)| (*s, *r, None)),
        KeyMaterial::Auto,
    )
    .unwrap()
}

async fn text(c: &reqwest::Client, url: String) -> (String, usize) {
    let res = c.get(url).send().await.unwrap();
    let set = res.headers().get_all("set-cookie").iter().count();
    (res.text().await.unwrap(), set)
}

#[tokio::test]
async fn every_session_survives_stage_promote_retire_with_a_signed_or_private_id_cookie() {
    for mode in [Mode::Signed, Mode::Private] {
        let store = MemoryStore::default();
        let (key_a, key_b) = (Key::generate(), Key::generate());
        let (a, b) = (
            Secret::from(master_secret(&key_a)),
            Secret::from(master_secret(&key_b)),
        );
        let ring = CookieRing::new(keys(&[(&a, Role::Primary)]));
        let rotate = match mode {
            Mode::Signed => RotateCookies::new(ring.clone()).signed("id"),
            Mode::Private => RotateCookies::new(ring.clone()).private("id"),
        };
        let layer = RotateCookiesLayer::new(rotate);
        let (url, server) =
            serve(app(store.clone(), key_a.clone(), mode).layer(layer.clone())).await;
        let users: Vec<reqwest::Client> = (0..6).map(|_| browser()).collect();
        for c in &users {
            assert_eq!(text(c, format!("{url}/bump")).await.0, "1");
            assert_eq!(text(c, format!("{url}/bump")).await.0, "2");
        }

        ring.reload(keys(&[(&a, Role::Primary), (&b, Role::Staged)]));
        assert_eq!(
            text(&users[0], format!("{url}/peek")).await,
            ("2".to_owned(), 0)
        );

        server.abort();
        ring.reload(keys(&[(&b, Role::Primary), (&a, Role::Fallback)]));
        let (url, server) =
            serve(app(store.clone(), key_b.clone(), mode).layer(layer.clone())).await;
        for (i, c) in users.iter().enumerate() {
            if i % 2 == 0 {
                // Read-only: the layer re-issues the id cookie itself.
                let res = c.get(format!("{url}/peek")).send().await.unwrap();
                let set: Vec<String> = res
                    .headers()
                    .get_all("set-cookie")
                    .iter()
                    .map(|v| v.to_str().unwrap().to_owned())
                    .collect();
                // The attributes learnt from tower-sessions' own Set-Cookie
                // (SameSite=Strict; the layer's default would be Lax).
                assert_eq!(set.len(), 1, "{mode:?}");
                for attr in ["id=", "Path=/", "HttpOnly", "SameSite=Strict"] {
                    assert!(set[0].contains(attr), "{mode:?}: {} lacks {attr}", set[0]);
                }
                assert_eq!(res.text().await.unwrap(), "2", "{mode:?}");
            } else {
                // Modified: the app sets the cookie itself, the layer adds none.
                let (body, set) = text(c, format!("{url}/bump")).await;
                assert_eq!((body.as_str(), set), ("3", 1), "{mode:?}");
            }
        }

        ring.reload(keys(&[(&b, Role::Primary)]));
        for (i, c) in users.iter().enumerate() {
            let want = if i % 2 == 0 { "2" } else { "3" };
            assert_eq!(
                text(c, format!("{url}/peek")).await,
                (want.to_owned(), 0),
                "{mode:?}"
            );
        }
        server.abort();
    }
}

#[tokio::test]
async fn without_the_layer_the_promoted_key_loses_every_session() {
    let store = MemoryStore::default();
    let (key_a, key_b) = (Key::generate(), Key::generate());
    let (url, server) = serve(app(store.clone(), key_a, Mode::Private)).await;
    let c = browser();
    assert_eq!(text(&c, format!("{url}/bump")).await.0, "1");
    server.abort();
    let (url, server) = serve(app(store, key_b, Mode::Private)).await;
    assert_eq!(text(&c, format!("{url}/peek")).await.0, "-");
    server.abort();
}

#[tokio::test]
async fn a_forged_or_retired_id_cookie_is_refused_as_the_jar_refuses_it() {
    let store = MemoryStore::default();
    let (key_a, key_b) = (Key::generate(), Key::generate());
    let (a, b) = (
        Secret::from(master_secret(&key_a)),
        Secret::from(master_secret(&key_b)),
    );
    let ring = CookieRing::new(keys(&[(&a, Role::Primary)]));
    let layer = RotateCookiesLayer::new(RotateCookies::new(ring.clone()).private("id"));
    let (url, server) = serve(app(store.clone(), key_a, Mode::Private).layer(layer.clone())).await;
    let c = browser();
    assert_eq!(text(&c, format!("{url}/bump")).await.0, "1");
    server.abort();
    // A retired without the user coming back: the session is gone, as the jar says.
    ring.reload(keys(&[(&b, Role::Primary)]));
    let (url, server) = serve(app(store, key_b, Mode::Private).layer(layer)).await;
    assert_eq!(text(&c, format!("{url}/peek")).await, ("-".to_owned(), 0));
    // A cookie sealed for another name is refused.
    let forged = keys(&[(&a, Role::Primary)]).seal("other", "whatever");
    let res = bare()
        .get(format!("{url}/peek"))
        .header("cookie", format!("id={forged}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.text().await.unwrap(), "-");
    server.abort();
}
