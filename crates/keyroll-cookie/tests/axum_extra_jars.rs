//! An axum app with axum-extra's `SignedCookieJar` and `PrivateCookieJar`
//! (one `Key`), behind `RotateCookiesLayer`, through a full rotation over
//! real HTTP: stage B, promote B (the app restarts with B's key), retire A.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use axum::extract::Query;
use axum::routing::get;
use axum::Router;
use axum_extra::extract::cookie::{Cookie, Key, PrivateCookieJar, SignedCookieJar};
use keyroll::ringfile::OpenOptions;
use keyroll::{Role, Secret};
use keyroll_axum::RingHandle;
use keyroll_cookie::{CookieKeys, CookieRing, KeyMaterial, RotateCookies, RotateCookiesLayer};

use common::*;

#[derive(serde::Deserialize)]
struct Login {
    user: String,
}

async fn login(
    Query(q): Query<Login>,
    signed: SignedCookieJar,
    private: PrivateCookieJar,
) -> (SignedCookieJar, PrivateCookieJar, &'static str) {
    let user = Cookie::build(("user", q.user.clone()))
        .path("/")
        .http_only(true);
    let secret = Cookie::build(("secret", format!("s3cr3t of {}", q.user)))
        .path("/")
        .http_only(true);
    (signed.add(user), private.add(secret), "ok")
}

async fn whoami(signed: SignedCookieJar, private: PrivateCookieJar) -> String {
    let user = signed.get("user").map(|c| c.value().to_owned());
    let secret = private.get("secret").map(|c| c.value().to_owned());
    format!(
        "user={};secret={}",
        user.as_deref().unwrap_or("-"),
        secret.as_deref().unwrap_or("-")
    )
}

fn app(key: Key) -> Router {
    Router::new()
        .route("/login", get(login))
        .route("/whoami", get(whoami))
        .with_state(key)
}

fn rotate(ring: &CookieRing) -> RotateCookies {
    RotateCookies::new(ring.clone())
        .signed("user")
        .private("secret")
}

async fn get_text(client: &reqwest::Client, url: &str) -> String {
    client.get(url).send().await.unwrap().text().await.unwrap()
}

#[tokio::test]
async fn every_user_keeps_both_cookies_through_stage_promote_retire() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ring.toml");
    let key_a = Key::generate();
    let key_b = Key::generate();
    let (a, b) = (master_secret(&key_a), master_secret(&key_b));
    write_ring(&path, &[("primary", &a)]);
    let handle = RingHandle::open(&path, OpenOptions::default()).unwrap();
    let ring = CookieRing::open(&path, OpenOptions::default(), KeyMaterial::Auto).unwrap();
    ring.follow(&handle, &path, OpenOptions::default(), KeyMaterial::Auto);
    let layer = RotateCookiesLayer::new(rotate(&ring));

    // The existing app, key A.
    let (url, server) = serve(app(key_a.clone()).layer(layer.clone())).await;
    let users: Vec<(String, reqwest::Client)> =
        (0..5).map(|i| (format!("user{i}"), browser())).collect();
    for (name, c) in &users {
        assert_eq!(get_text(c, &format!("{url}/login?user={name}")).await, "ok");
        assert_eq!(
            get_text(c, &format!("{url}/whoami")).await,
            format!("user={name};secret=s3cr3t of {name}")
        );
    }

    // Stage B: A still signs; nothing changes.
    write_ring(&path, &[("primary", &a), ("staged", &b)]);
    handle
        .reload_from_file(&path, OpenOptions::default())
        .unwrap();
    assert_eq!(ring.current().ids().count(), 2);
    for (name, c) in users.iter().take(2) {
        let res = c.get(format!("{url}/whoami")).send().await.unwrap();
        assert!(res.headers().get("set-cookie").is_none());
        assert_eq!(
            res.text().await.unwrap(),
            format!("user={name};secret=s3cr3t of {name}")
        );
    }

    // Promote B: the app restarts with B's key; A is a fallback.
    server.abort();
    write_ring(&path, &[("primary", &b), ("fallback", &a)]);
    handle
        .reload_from_file(&path, OpenOptions::default())
        .unwrap();
    assert_eq!(ring.current().ids().next().unwrap().1, Role::Primary);
    let (url, server) = serve(app(key_b.clone()).layer(layer.clone())).await;
    // Without the layer the app would have logged everyone out:
    let (bare_url, bare_server) = serve(app(key_b.clone())).await;
    for (name, c) in &users {
        assert_eq!(
            get_text(c, &format!("{bare_url}/whoami")).await,
            "user=-;secret=-"
        );
        let res = c.get(format!("{url}/whoami")).send().await.unwrap();
        let set: Vec<String> = res
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        assert_eq!(set.len(), 2, "{set:?}");
        assert!(
            set.iter()
                .all(|s| s.contains("Path=/") && s.contains("HttpOnly")),
            "{set:?}"
        );
        assert_eq!(
            res.text().await.unwrap(),
            format!("user={name};secret=s3cr3t of {name}")
        );
    }
    bare_server.abort();

    // Retire A: every cookie was re-made under B.
    write_ring(&path, &[("primary", &b)]);
    handle
        .reload_from_file(&path, OpenOptions::default())
        .unwrap();
    for (name, c) in &users {
        assert_eq!(
            get_text(c, &format!("{url}/whoami")).await,
            format!("user={name};secret=s3cr3t of {name}")
        );
    }
    server.abort();
}

/// Refusals: what the app's own jar refuses under the primary, the layer
/// does not rescue under an older key.
#[tokio::test]
async fn tampered_truncated_wrong_name_and_wrong_key_cookies_are_refused_as_the_jar_refuses_them() {
    let key_a = Key::generate();
    let key_b = Key::generate();
    let key_c = Key::generate();
    let (sa, sb) = (
        Secret::from(master_secret(&key_a)),
        Secret::from(master_secret(&key_b)),
    );
    let sc = Secret::from(master_secret(&key_c));
    let ring = CookieRing::new(
        CookieKeys::new(
            [(&sb, Role::Primary, None), (&sa, Role::Fallback, None)],
            KeyMaterial::Auto,
        )
        .unwrap(),
    );
    let old = CookieKeys::new([(&sa, Role::Primary, None)], KeyMaterial::Auto).unwrap();
    let new = CookieKeys::new([(&sb, Role::Primary, None)], KeyMaterial::Auto).unwrap();
    let other = CookieKeys::new([(&sc, Role::Primary, None)], KeyMaterial::Auto).unwrap();
    let (url, server) =
        serve(app(key_b.clone()).layer(RotateCookiesLayer::new(rotate(&ring)))).await;
    let (bare_url, bare_server) = serve(app(key_b.clone())).await;
    let client = bare();
    let ask = |base: &str, user: &str, secret: &str| {
        let req = client
            .get(format!("{base}/whoami"))
            .header("cookie", format!("user={user}; secret={secret}"));
        async move { req.send().await.unwrap().text().await.unwrap() }
    };

    // Good old cookies are rescued; good new ones pass untouched.
    let (u_a, s_a) = (old.sign("alice"), old.seal("secret", "x"));
    assert_eq!(ask(&url, &u_a, &s_a).await, "user=alice;secret=x");
    let (u_b, s_b) = (new.sign("alice"), new.seal("secret", "x"));
    assert_eq!(ask(&url, &u_b, &s_b).await, "user=alice;secret=x");
    assert_eq!(ask(&bare_url, &u_b, &s_b).await, "user=alice;secret=x");

    let cases: Vec<(&str, String, String, String, String)> = vec![
        (
            "tampered",
            tamper(&u_a),
            tamper(&s_a),
            tamper(&u_b),
            tamper(&s_b),
        ),
        (
            "truncated",
            u_a[..30].to_owned(),
            s_a[..20].to_owned(),
            u_b[..30].to_owned(),
            s_b[..20].to_owned(),
        ),
        (
            "wrong key",
            other.sign("alice"),
            other.seal("secret", "x"),
            other.sign("alice"),
            other.seal("secret", "x"),
        ),
        (
            "private cookie sealed for another name",
            u_a.clone(),
            old.seal("user", "x"),
            u_b.clone(),
            new.seal("user", "x"),
        ),
    ];
    for (what, ua, sa, ub, sb) in cases {
        let via_layer = ask(&url, &ua, &sa).await;
        let jar_alone = ask(&bare_url, &ub, &sb).await;
        assert_eq!(via_layer, jar_alone, "{what}");
        assert!(via_layer.contains("secret=-"), "{what}: {via_layer}");
    }
    // The cookie crate MACs a signed cookie's value only, not its name: the
    // jar accepts a signed value moved to another name, and so (under an
    // older key) does the layer — no more, no less.
    let moved_a = old.sign("bob");
    let moved_b = new.sign("bob");
    assert_eq!(ask(&bare_url, &moved_b, "-").await, "user=bob;secret=-");
    assert_eq!(ask(&url, &moved_a, "-").await, "user=bob;secret=-");
    server.abort();
    bare_server.abort();
}
