//! An actix-web app with actix-session's `CookieSessionStore` (signed and
//! private) and actix-web's own signed / private cookie jars, behind
//! `RotateCookiesMiddleware`: stage B, promote B (the app restarts with B's
//! key), retire A, over real HTTP.
#![cfg(feature = "actix")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use actix_session::config::CookieContentSecurity;
use actix_session::storage::CookieSessionStore;
use actix_session::{Session, SessionMiddleware};
use actix_web::cookie::{Cookie, CookieJar, Key};
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use keyroll::{Role, Secret};
use keyroll_cookie::actix::RotateCookiesMiddleware;
use keyroll_cookie::{CookieKeys, CookieRing, KeyMaterial, RotateCookies};

fn secret(key: &Key) -> Secret {
    Secret::from(STANDARD.encode(key.master()))
}

fn keys(entries: &[(&Secret, Role)]) -> CookieKeys {
    CookieKeys::new(
        entries.iter().map(|(s, r)| (*s, *r, None)),
        KeyMaterial::Auto,
    )
    .unwrap()
}

async fn bump(session: Session) -> String {
    let n: u64 = session.get("n").unwrap().unwrap_or(0) + 1;
    session.insert("n", n).unwrap();
    n.to_string()
}

async fn peek(session: Session, req: HttpRequest, key: web::Data<Key>) -> String {
    let n: Option<u64> = session.get("n").unwrap();
    // actix-web's own jars, read by hand from the request's cookies.
    let mut jar = CookieJar::new();
    for name in ["s", "p"] {
        if let Some(c) = req.cookie(name) {
            jar.add_original(c);
        }
    }
    let s = jar.signed(&key).get("s").map(|c| c.value().to_owned());
    let p = jar.private(&key).get("p").map(|c| c.value().to_owned());
    format!(
        "n={};s={};p={}",
        n.map_or_else(|| "-".to_owned(), |n| n.to_string()),
        s.as_deref().unwrap_or("-"),
        p.as_deref().unwrap_or("-")
    )
}

async fn jars(key: web::Data<Key>) -> HttpResponse {
    let mut jar = CookieJar::new();
    jar.signed_mut(&key)
        .add(Cookie::build("s", "signed value").path("/").finish());
    jar.private_mut(&key)
        .add(Cookie::build("p", "private value").path("/").finish());
    let mut res = HttpResponse::Ok();
    for c in jar.delta() {
        res.cookie(c.clone());
    }
    res.body("ok")
}

async fn start(
    key: Key,
    security: CookieContentSecurity,
    rotate: Option<RotateCookies>,
) -> (String, actix_web::dev::ServerHandle) {
    let server = HttpServer::new(move || {
        let session = SessionMiddleware::builder(CookieSessionStore::default(), key.clone())
            .cookie_secure(false)
            .cookie_content_security(security)
            .build();
        let mw = rotate.clone().map(RotateCookiesMiddleware::new);
        App::new()
            .app_data(web::Data::new(key.clone()))
            .route("/bump", web::get().to(bump))
            .route("/peek", web::get().to(peek))
            .route("/jars", web::get().to(jars))
            .wrap(session)
            .wrap(actix_web::middleware::Condition::new(
                mw.is_some(),
                mw.unwrap_or_else(|| {
                    RotateCookiesMiddleware::new(RotateCookies::new(CookieRing::new(keys(&[(
                        &Secret::from("unused-unused-unused-unused-unused"),
                        Role::Primary,
                    )]))))
                }),
            ))
    })
    .workers(1)
    .bind(("127.0.0.1", 0))
    .unwrap();
    let addr = server.addrs()[0];
    let server = server.run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    (format!("http://{addr}"), handle)
}

async fn get(c: &reqwest::Client, url: String) -> (String, usize) {
    let res = c.get(url).send().await.unwrap();
    let set = res.headers().get_all("set-cookie").iter().count();
    (res.text().await.unwrap(), set)
}

#[actix_web::test]
async fn every_actix_session_and_jar_cookie_survives_stage_promote_retire() {
    for security in [
        CookieContentSecurity::Signed,
        CookieContentSecurity::Private,
    ] {
        let (key_a, key_b) = (Key::generate(), Key::generate());
        let (a, b) = (secret(&key_a), secret(&key_b));
        let ring = CookieRing::new(keys(&[(&a, Role::Primary)]));
        let rotate = match security {
            CookieContentSecurity::Signed => RotateCookies::new(ring.clone()).signed("id"),
            CookieContentSecurity::Private => RotateCookies::new(ring.clone()).private("id"),
        }
        .signed("s")
        .private("p");
        let (url, server) = start(key_a.clone(), security, Some(rotate.clone())).await;
        let users: Vec<reqwest::Client> = (0..4)
            .map(|_| {
                reqwest::Client::builder()
                    .cookie_store(true)
                    .build()
                    .unwrap()
            })
            .collect();
        for c in &users {
            assert_eq!(get(c, format!("{url}/jars")).await.0, "ok");
            assert_eq!(get(c, format!("{url}/bump")).await.0, "1");
            assert_eq!(
                get(c, format!("{url}/peek")).await.0,
                "n=1;s=signed value;p=private value"
            );
        }

        ring.reload(keys(&[(&a, Role::Primary), (&b, Role::Staged)]));
        assert_eq!(get(&users[0], format!("{url}/peek")).await.1, 0);

        server.stop(true).await;
        ring.reload(keys(&[(&b, Role::Primary), (&a, Role::Fallback)]));
        let (bare_url, bare) = start(key_b.clone(), security, None).await;
        // Without the middleware, actix-session's docs are right: all is lost.
        let probe = users[0]
            .get(format!("{bare_url}/peek"))
            .send()
            .await
            .unwrap();
        assert_eq!(probe.text().await.unwrap(), "n=-;s=-;p=-");
        bare.stop(true).await;
        let (url, server) = start(key_b.clone(), security, Some(rotate.clone())).await;
        for c in &users {
            let (body, set) = get(c, format!("{url}/peek")).await;
            assert_eq!(body, "n=1;s=signed value;p=private value", "{security:?}");
            assert_eq!(set, 3, "{security:?}");
        }

        ring.reload(keys(&[(&b, Role::Primary)]));
        for c in &users {
            assert_eq!(get(c, format!("{url}/bump")).await.0, "2");
            assert_eq!(
                get(c, format!("{url}/peek")).await,
                ("n=2;s=signed value;p=private value".to_owned(), 0)
            );
        }
        server.stop(true).await;
    }
}

#[actix_web::test]
async fn a_tampered_or_wrong_key_session_cookie_is_refused_as_actix_session_refuses_it() {
    let (key_a, key_b) = (Key::generate(), Key::generate());
    let (a, b) = (secret(&key_a), secret(&key_b));
    let ring = CookieRing::new(keys(&[(&b, Role::Primary), (&a, Role::Fallback)]));
    let rotate = RotateCookies::new(ring.clone()).private("id");
    let (url, server) = start(key_b.clone(), CookieContentSecurity::Private, Some(rotate)).await;
    let old = keys(&[(&a, Role::Primary)]);
    let other = keys(&[(&secret(&Key::generate()), Role::Primary)]);
    let good = old.seal("id", r#"{"n":"7"}"#);
    let ask = |v: String| {
        let req = reqwest::Client::new()
            .get(format!("{url}/peek"))
            .header("cookie", format!("id={v}"));
        async move { req.send().await.unwrap().text().await.unwrap() }
    };
    assert_eq!(ask(good.clone()).await, "n=7;s=-;p=-");
    let mut tampered = good.clone().into_bytes();
    tampered[20] = if tampered[20] == b'A' { b'B' } else { b'A' };
    for bad in [
        String::from_utf8(tampered).unwrap(),
        good[..good.len() - 4].to_owned(),
        other.seal("id", r#"{"n":"7"}"#),
        old.seal("sid", r#"{"n":"7"}"#),
    ] {
        assert_eq!(ask(bad).await, "n=-;s=-;p=-");
    }
    server.stop(true).await;
}
