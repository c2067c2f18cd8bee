//! One immutable ring snapshot: a reload is one atomic swap that the next
//! request sees everywhere (verifying, re-signing, login hashes), and the
//! signed-cookie and reset-token helpers use the parts the snapshot prepared
//! once, never deriving keys per call. Real HTTP through axum.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use http::HeaderMap;
use keyroll::{
    KeyRing, ResetUser, Role, Secret, SessionAuthHash, SessionCodec, SignedCookie,
    DEFAULT_SESSION_COOKIE_AGE, SESSION_USER_HASH,
};
use keyroll_axum::{login, ResetTokens, RingHandle, Session, SessionLayer, SignedCookies};
use keyroll_store::{MemoryStore, Store};
use time::OffsetDateTime;

const KEY_A: &str = "ring-snapshot-key-A-0123456789abcdefghijklmnopqrstuv";
const KEY_B: &str = "ring-snapshot-key-B-0123456789abcdefghijklmnopqrstuv";
const PW: &str = "pbkdf2_sha256$600000$salt$hash-of-the-password";

fn only(secret: &str) -> KeyRing {
    KeyRing::new(Secret::from(secret)).expect("a non-empty secret")
}

fn b_then_a() -> KeyRing {
    only(KEY_B)
        .with_fallback(Secret::from(KEY_A), None)
        .unwrap()
}

async fn do_login(session: Session) -> &'static str {
    login(
        &session,
        "7",
        PW,
        "django.contrib.auth.backends.ModelBackend",
    )
    .await
    .unwrap();
    "ok"
}

/// `role key_id login-hash` of the incoming session.
async fn whoami(session: Session) -> String {
    let role = session.role().await.unwrap().map(|r| r.to_string());
    let id = session.key_id().await.unwrap().map(|k| k.to_string());
    let hash: Option<String> = session.get(SESSION_USER_HASH).await.unwrap();
    format!(
        "{} {} {}",
        role.unwrap_or_default(),
        id.unwrap_or_default(),
        hash.unwrap_or_default()
    )
}

struct App {
    base: String,
    client: reqwest::Client,
    cookie: Option<String>,
}

impl App {
    async fn start(layer: SessionLayer) -> Self {
        let app = Router::new()
            .route("/login", get(do_login))
            .route("/whoami", get(whoami))
            .layer(layer.insecure_http());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            base,
            client: reqwest::Client::new(),
            cookie: None,
        }
    }

    /// GETs `path` with the session cookie; keeps a new one if set.
    async fn get(&mut self, path: &str) -> String {
        let mut req = self.client.get(format!("{}{path}", self.base));
        if let Some(c) = &self.cookie {
            req = req.header("cookie", format!("sessionid={c}"));
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 200);
        if let Some(set) = r.headers().get("set-cookie") {
            let v = set.to_str().unwrap();
            let value = v
                .strip_prefix("sessionid=")
                .and_then(|s| s.split(';').next())
                .unwrap();
            self.cookie = Some(value.trim_matches('"').to_owned());
        }
        r.text().await.unwrap()
    }
}

fn fields(s: &str) -> (String, String, String) {
    let mut it = s.split(' ').map(str::to_owned);
    (
        it.next().unwrap(),
        it.next().unwrap(),
        it.next().unwrap_or_default(),
    )
}

/// Where the session's signed data is kept.
enum Kept {
    Row(Arc<MemoryStore>),
    Cookie,
}

impl Kept {
    /// Whether the session's signed data verifies under `ring` alone.
    async fn verifies_under(&self, app: &App, ring: &KeyRing) -> bool {
        let now = OffsetDateTime::now_utc();
        let cookie = app.cookie.clone().unwrap();
        match self {
            Kept::Row(store) => {
                let row = store.load(&cookie, now).await.unwrap().unwrap().data;
                SessionCodec::database(ring).decode_at(&row, now).is_ok()
            }
            Kept::Cookie => SessionCodec::signed_cookie(ring, DEFAULT_SESSION_COOKIE_AGE)
                .decode_at(&cookie, now)
                .is_ok(),
        }
    }
}

/// After `RingHandle::reload`, the very next request verifies under the new
/// ring (the old primary is a fallback there), re-signs with the new
/// primary, and a login makes its hash with the new primary: nothing is
/// told of the reload, so nothing can still be on the old ring.
async fn the_next_request_after_a_reload_is_under_the_new_ring(
    ring: RingHandle,
    layer: SessionLayer,
    kept: Kept,
) {
    let mut app = App::start(layer).await;
    let now = OffsetDateTime::now_utc();
    let id_a = Secret::from(KEY_A).id().to_string();
    let id_b = Secret::from(KEY_B).id().to_string();

    assert_eq!(app.get("/login").await, "ok");
    let (role, id, hash) = fields(&app.get("/whoami").await);
    assert_eq!((role.as_str(), id.as_str()), ("primary", id_a.as_str()));
    assert!(SessionAuthHash::new(&only(KEY_A))
        .check_at(&hash, PW, now)
        .is_ok());
    assert!(kept.verifies_under(&app, &only(KEY_A)).await);

    ring.reload(b_then_a());

    // Verified under the new ring: the same key, now a fallback.
    let (role, id, _) = fields(&app.get("/whoami").await);
    assert_eq!(
        (role.as_str(), id.as_str()),
        (Role::Fallback.to_string().as_str(), id_a.as_str())
    );
    // ... and re-signed with the new primary.
    assert!(kept.verifies_under(&app, &only(KEY_B)).await);
    assert!(!kept.verifies_under(&app, &only(KEY_A)).await);
    let (role, id, _) = fields(&app.get("/whoami").await);
    assert_eq!((role.as_str(), id.as_str()), ("primary", id_b.as_str()));

    // A login now hashes with the new primary.
    assert_eq!(app.get("/login").await, "ok");
    let (_, _, hash) = fields(&app.get("/whoami").await);
    assert!(SessionAuthHash::new(&only(KEY_B))
        .check_at(&hash, PW, now)
        .is_ok());
    assert!(SessionAuthHash::new(&only(KEY_A))
        .check_at(&hash, PW, now)
        .is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_is_seen_atomically_by_server_sessions_and_login_hashes() {
    let ring = RingHandle::new(only(KEY_A));
    let store = Arc::new(MemoryStore::new());
    let layer = SessionLayer::server_store(Arc::clone(&store) as Arc<dyn Store>, ring.clone());
    the_next_request_after_a_reload_is_under_the_new_ring(ring, layer, Kept::Row(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_is_seen_atomically_by_an_engine_made_with_another_ring() {
    // An engine made with its own (fixed) ring follows the layer's handle.
    let ring = RingHandle::new(only(KEY_A));
    let store = Arc::new(MemoryStore::new());
    let engine = Arc::new(keyroll_store::SessionEngine::new(
        Arc::clone(&store) as Arc<dyn Store>,
        &only(KEY_A),
    ));
    let layer = SessionLayer::server(Arc::clone(&engine), ring.clone());
    the_next_request_after_a_reload_is_under_the_new_ring(ring.clone(), layer, Kept::Row(store))
        .await;
    // The engine used outside the layer is on the reloaded ring too.
    assert!(Arc::ptr_eq(&engine.ring(), &ring.snapshot()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_is_seen_atomically_by_signed_cookie_sessions_and_login_hashes() {
    let ring = RingHandle::new(only(KEY_A));
    let layer = SessionLayer::signed_cookie(ring.clone());
    the_next_request_after_a_reload_is_under_the_new_ring(ring, layer, Kept::Cookie).await;
}

fn cookie_headers(set_cookie: &str) -> HeaderMap {
    let pair = set_cookie.split(';').next().unwrap();
    let mut h = HeaderMap::new();
    h.insert("cookie", pair.parse().unwrap());
    h
}

/// Fails if the helpers derive MAC keys per call (or keep signers of their
/// own): every call must use the part the ring's snapshot prepared, so the
/// snapshot holds exactly one per name/salt and timeout, however many
/// calls, and a reload starts afresh with the new ring's.
#[test]
fn signed_cookies_and_reset_tokens_do_not_derive_keys_per_call() {
    let ring = RingHandle::new(only(KEY_A));
    let cookies = SignedCookies::new(ring.clone()).insecure_http();
    let tokens = ResetTokens::new(ring.clone());
    let short = ResetTokens::new(ring.clone()).with_timeout(Duration::from_secs(600));
    let user = ResetUser {
        pk: "7",
        password_hash: PW,
        last_login: None,
        email: Some("a@example.com"),
    };
    let now = OffsetDateTime::now_utc();
    let snap = ring.snapshot();
    assert_eq!(snap.derived_count(), 0);
    let signer = snap.signed_cookie("theme", "s", true).unwrap();
    assert_eq!(snap.derived_count(), 1);
    for _ in 0..5 {
        let set = cookies.set_at("theme", "dark", "s", None, now).unwrap();
        let got = cookies
            .get_at(&cookie_headers(&set), "theme", "s", None, now)
            .unwrap();
        assert_eq!(got.value, "dark");
        let token = tokens.make_at(&user, now);
        tokens.check_at(&user, &token, now).unwrap();
        let token = short.make_at(&user, now);
        short.check_at(&user, &token, now).unwrap();
    }
    // The signer above, and one set of tokens per timeout: nothing more.
    assert_eq!(snap.derived_count(), 3, "{snap:?}");
    assert!(Arc::ptr_eq(
        &signer,
        &snap.signed_cookie("theme", "s", true).unwrap()
    ));

    ring.reload(b_then_a());
    let fresh = ring.snapshot();
    assert!(fresh.generation() > snap.generation());
    assert_eq!(fresh.derived_count(), 0);
    let set = cookies.set_at("theme", "dark", "s", None, now).unwrap();
    assert_eq!(fresh.derived_count(), 1);
    // Signed with the new primary.
    let value = set
        .split(';')
        .next()
        .and_then(|p| p.strip_prefix("theme="))
        .unwrap();
    let by_b = SignedCookie::new(&only(KEY_B), "theme", "s").unwrap();
    assert!(by_b.unsign_at(value, None, now).is_ok());
    // The old snapshot was not touched.
    assert_eq!(snap.derived_count(), 3);
}
