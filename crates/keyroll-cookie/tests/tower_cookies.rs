//! An axum app using tower-cookies' `Cookies::signed` / `Cookies::private`
//! directly (one `Key`), behind `RotateCookiesLayer`, across a promotion.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use axum::routing::get;
use axum::{Extension, Router};
use keyroll::{Role, Secret};
use keyroll_cookie::{
    CookieAttributes, CookieKeys, CookieKind, CookieRing, KeyMaterial, RotateCookies,
    RotateCookiesLayer,
};
use tower_cookies::cookie::SameSite;
use tower_cookies::{Cookie, CookieManagerLayer, Cookies, Key};

use common::*;

async fn set(cookies: Cookies, Extension(key): Extension<Key>) -> &'static str {
    cookies.signed(&key).add(Cookie::new("cart", "3 apples"));
    cookies.private(&key).add(Cookie::new("token", "t0k3n"));
    "ok"
}

async fn show(cookies: Cookies, Extension(key): Extension<Key>) -> String {
    let cart = cookies
        .signed(&key)
        .get("cart")
        .map(|c| c.value().to_owned());
    let token = cookies
        .private(&key)
        .get("token")
        .map(|c| c.value().to_owned());
    format!(
        "{};{}",
        cart.as_deref().unwrap_or("-"),
        token.as_deref().unwrap_or("-")
    )
}

fn app(key: Key) -> Router {
    Router::new()
        .route("/set", get(set))
        .route("/show", get(show))
        .layer(Extension(key))
        .layer(CookieManagerLayer::new())
}

fn keys(entries: &[(&Secret, Role)]) -> CookieKeys {
    CookieKeys::new(
        entries.iter().map(|(s, r)| (*s, *r, None)),
        KeyMaterial::Auto,
    )
    .unwrap()
}

#[tokio::test]
async fn tower_cookies_signed_and_private_cookies_survive_a_promotion_with_configured_attributes() {
    let (key_a, key_b) = (Key::generate(), Key::generate());
    let (a, b) = (
        Secret::from(master_secret(&key_a)),
        Secret::from(master_secret(&key_b)),
    );
    let ring = CookieRing::new(keys(&[(&a, Role::Primary)]));
    let attrs = CookieAttributes {
        path: Some("/".into()),
        domain: None,
        secure: false,
        http_only: true,
        same_site: Some(SameSite::Strict),
        max_age: Some(time::Duration::days(7)),
    };
    let layer = RotateCookiesLayer::new(
        RotateCookies::new(ring.clone())
            .cookie("cart", CookieKind::Signed, attrs.clone())
            .cookie("token", CookieKind::Private, attrs),
    );
    let (url, server) = serve(app(key_a).layer(layer.clone())).await;
    let c = browser();
    c.get(format!("{url}/set")).send().await.unwrap();
    assert_eq!(
        c.get(format!("{url}/show"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "3 apples;t0k3n"
    );
    server.abort();

    ring.reload(keys(&[(&b, Role::Primary), (&a, Role::Fallback)]));
    let (url, server) = serve(app(key_b).layer(layer)).await;
    let res = c.get(format!("{url}/show")).send().await.unwrap();
    let set: Vec<String> = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(set.len(), 2);
    for line in &set {
        for attr in ["Path=/", "HttpOnly", "SameSite=Strict", "Max-Age=604800"] {
            assert!(line.contains(attr), "{line} lacks {attr}");
        }
    }
    assert_eq!(res.text().await.unwrap(), "3 apples;t0k3n");
    ring.reload(keys(&[(&b, Role::Primary)]));
    assert_eq!(
        c.get(format!("{url}/show"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "3 apples;t0k3n"
    );
    server.abort();
}
