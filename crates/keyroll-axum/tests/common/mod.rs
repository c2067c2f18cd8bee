//! A test app over real HTTP: axum on 127.0.0.1:0, reqwest with a cookie jar,
//! stores per backend (SQLite always; PostgreSQL and Redis when reachable).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use keyroll::{KeyRing, ResetUser, Secret, SessionCodec, SessionData};
use keyroll_axum::{
    current_user, login, logout, update_session_auth_hash, ResetTokens, RingHandle, Session,
    SessionError, SessionLayer, SignedCookies, UserLoader,
};
use keyroll_store::{
    open_store, KeyRange, SessionEngine, SessionRecord, Store, StoreError, StoreOptions,
};
use time::OffsetDateTime;

pub const SECRET_A: &str = "test-secret-A-0123456789abcdefghijklmnopqrstuvwxyz";
pub const SECRET_B: &str = "test-secret-B-0123456789abcdefghijklmnopqrstuvwxyz";

pub fn ring_a() -> KeyRing {
    KeyRing::new(Secret::from(SECRET_A)).expect("a non-empty secret")
}
pub fn ring_a_staged_b() -> KeyRing {
    ring_a().with_staged(Secret::from(SECRET_B)).unwrap()
}
pub fn ring_b_fallback_a() -> KeyRing {
    KeyRing::new(Secret::from(SECRET_B))
        .expect("a non-empty secret")
        .with_fallback(Secret::from(SECRET_A), None)
        .unwrap()
}
pub fn ring_b() -> KeyRing {
    KeyRing::new(Secret::from(SECRET_B)).expect("a non-empty secret")
}
pub fn id_a() -> String {
    Secret::from(SECRET_A).id().to_string()
}
pub fn id_b() -> String {
    Secret::from(SECRET_B).id().to_string()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Server,
    Cookie,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
    Redis,
}

// ------------------------------------------------------------ counting store

/// Counts every store call; can be told to fail them all.
#[derive(Debug)]
pub struct CountingStore {
    inner: Arc<dyn Store>,
    pub ops: AtomicUsize,
    pub fail: AtomicBool,
}

impl CountingStore {
    fn tick(&self) -> Result<(), StoreError> {
        self.ops.fetch_add(1, Ordering::SeqCst);
        if self.fail.load(Ordering::SeqCst) {
            return Err(StoreError::backend("test", "the database is down (test)"));
        }
        Ok(())
    }
    pub fn ops(&self) -> usize {
        self.ops.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Store for CountingStore {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
    async fn ensure_schema(&self) -> Result<(), StoreError> {
        self.inner.ensure_schema().await
    }
    async fn load(
        &self,
        key: &str,
        now: OffsetDateTime,
    ) -> Result<Option<SessionRecord>, StoreError> {
        self.tick()?;
        self.inner.load(key, now).await
    }
    async fn create(&self, data: &str, expires: OffsetDateTime) -> Result<String, StoreError> {
        self.tick()?;
        self.inner.create(data, expires).await
    }
    async fn save(&self, record: &SessionRecord) -> Result<(), StoreError> {
        self.tick()?;
        self.inner.save(record).await
    }
    async fn update(&self, record: &SessionRecord) -> Result<bool, StoreError> {
        self.tick()?;
        self.inner.update(record).await
    }
    async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        self.tick()?;
        self.inner.delete(key).await
    }
    async fn compare_and_swap(
        &self,
        key: &str,
        expected: &str,
        new: &str,
    ) -> Result<bool, StoreError> {
        self.tick()?;
        self.inner.compare_and_swap(key, expected, new).await
    }
    async fn scan(
        &self,
        range: &KeyRange,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        self.inner.scan(range, after, limit).await
    }
    async fn purge_expired_batch(
        &self,
        now: OffsetDateTime,
        from: &keyroll_store::PurgeFrom,
        limit: usize,
    ) -> Result<keyroll_store::Purged, StoreError> {
        self.inner.purge_expired_batch(now, from, limit).await
    }
}

// ------------------------------------------------------------ stores

fn require_services() -> bool {
    std::env::var("KEYROLL_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

fn unreachable(what: &str, err: &dyn std::fmt::Display) -> Option<StoreFixture> {
    if require_services() {
        panic!("{what} is unreachable and KEYROLL_REQUIRE_SERVICES=1: {err}");
    }
    eprintln!(
        "SKIPPED: {what} is unreachable ({err}); set KEYROLL_REQUIRE_SERVICES=1 to fail instead"
    );
    None
}

fn unique_name() -> String {
    use rand::Rng as _;
    let n: u64 = rand::thread_rng().gen();
    format!("keyroll_axum_{n:016x}")
}

/// A store of its own, removed on drop.
pub struct StoreFixture {
    pub store: Arc<dyn Store>,
    _dir: Option<tempfile::TempDir>,
    cleanup: Option<Box<dyn FnOnce() + Send>>,
}

impl Drop for StoreFixture {
    fn drop(&mut self) {
        if let Some(f) = self.cleanup.take() {
            f();
        }
    }
}

/// Runs a future to completion on a fresh runtime in another thread (for Drop).
fn block_on_thread<F: std::future::Future<Output = ()> + Send + 'static>(f: F) {
    let _ = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f);
    })
    .join();
}

pub async fn store_fixture(backend: Backend) -> Option<StoreFixture> {
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}", dir.path().join("s.db").display());
            let store = open_store(&url, &StoreOptions::default()).await.unwrap();
            store.ensure_schema().await.unwrap();
            Some(StoreFixture {
                store,
                _dir: Some(dir),
                cleanup: None,
            })
        }
        Backend::Postgres => {
            let url = std::env::var("KEYROLL_TEST_POSTGRES_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
            let table = unique_name();
            let opts = StoreOptions {
                table: table.clone(),
                pool_size: 4,
                ..StoreOptions::default()
            };
            let store = match open_store(&url, &opts).await {
                Ok(s) => s,
                Err(e) => return unreachable("PostgreSQL", &e),
            };
            if let Err(e) = store.ensure_schema().await {
                return unreachable("PostgreSQL", &e);
            }
            let cleanup = move || {
                block_on_thread(async move {
                    if let Ok((client, conn)) =
                        tokio_postgres::connect(&url, tokio_postgres::NoTls).await
                    {
                        tokio::spawn(conn);
                        let _ = client
                            .batch_execute(&format!("DROP TABLE IF EXISTS \"{table}\""))
                            .await;
                    }
                });
            };
            Some(StoreFixture {
                store,
                _dir: None,
                cleanup: Some(Box::new(cleanup)),
            })
        }
        Backend::Redis => {
            let url = std::env::var("KEYROLL_TEST_REDIS_URL")
                .unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
            let opts = StoreOptions {
                redis_prefix: unique_name(),
                ..StoreOptions::default()
            };
            let store = match open_store(&url, &opts).await {
                Ok(s) => s,
                Err(e) => return unreachable("Redis", &e),
            };
            if let Err(e) = store.load("probe0000000", OffsetDateTime::now_utc()).await {
                return unreachable("Redis", &e);
            }
            let (u, p) = (url.clone(), opts.clone());
            let cleanup = move || {
                block_on_thread(async move {
                    if let Ok(s) = open_store(&u, &p).await {
                        if let Ok(rows) = s.scan(&KeyRange::all(), None, 100_000).await {
                            for r in rows {
                                let _ = s.delete(&r.key).await;
                            }
                        }
                    }
                });
            };
            Some(StoreFixture {
                store,
                _dir: None,
                cleanup: Some(Box::new(cleanup)),
            })
        }
    }
}

// ------------------------------------------------------------ the app

/// Users: id → stored password hash.
#[derive(Default, Debug)]
pub struct Users(Mutex<HashMap<String, String>>);

impl Users {
    pub fn set(&self, id: &str, hash: &str) {
        self.0.lock().unwrap().insert(id.into(), hash.into());
    }
    pub fn hash(&self, id: &str) -> Option<String> {
        self.0.lock().unwrap().get(id).cloned()
    }
}

impl UserLoader for Users {
    type User = String;
    async fn load_user(&self, id: &str) -> Option<(String, String)> {
        self.hash(id).map(|h| (id.to_owned(), h))
    }
}

/// Holds a slow handler between loading its session and changing it, so a
/// test can run another request in that window.
#[derive(Default, Debug)]
pub struct Gate {
    /// Signalled by the slow handler once its session is loaded.
    pub loaded: tokio::sync::Notify,
    /// Signalled by the test to let the slow handler go on.
    pub release: tokio::sync::Notify,
}

#[derive(Clone)]
struct AppState {
    users: Arc<Users>,
    reset: ResetTokens,
    cookies: SignedCookies,
    gate: Arc<Gate>,
}

async fn whoami(State(s): State<AppState>, session: Session) -> Result<String, SessionError> {
    let user = current_user(&session, s.users.as_ref()).await?;
    let key = session
        .key_id()
        .await?
        .map_or("none".into(), |k| k.to_string());
    let role = session.role().await?.map_or("none", |r| r.as_str());
    Ok(format!(
        "{}|{key}|{role}",
        user.map_or("anonymous".into(), |u| format!("user:{u}"))
    ))
}

async fn peek(session: Session) -> Result<String, SessionError> {
    let key = session
        .key_id()
        .await?
        .map_or("none".into(), |k| k.to_string());
    Ok(key)
}

async fn do_login(
    State(s): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> Result<&'static str, SessionError> {
    let hash = s.users.hash(&id).unwrap();
    login(&session, &id, &hash, "tests.Backend").await?;
    Ok("ok")
}

async fn do_logout(session: Session) -> Result<&'static str, SessionError> {
    logout(&session).await?;
    Ok("ok")
}

async fn change_password(
    State(s): State<AppState>,
    session: Session,
    Path((id, new)): Path<(String, String)>,
) -> Result<&'static str, SessionError> {
    let me = current_user(&session, s.users.as_ref()).await?;
    assert_eq!(me.as_deref(), Some(id.as_str()), "only for yourself");
    let hash = format!("sha256$salt${new}");
    s.users.set(&id, &hash);
    update_session_auth_hash(&session, &hash).await?;
    Ok("ok")
}

async fn visit(session: Session) -> Result<String, SessionError> {
    let n: u64 = session.get("visits").await?.unwrap_or(0) + 1;
    session.insert("visits", n).await?;
    Ok(n.to_string())
}

/// Stores a private note, then reads it as a number: the error (as text
/// and as `Debug`) is the body, so a test can check it quotes nothing.
async fn wrong_type(session: Session) -> Result<String, SessionError> {
    session.insert("note", "private-note-text").await?;
    match session.get::<u64>("note").await {
        Ok(_) => Ok("no error".into()),
        Err(e) => Ok(format!("{e} | {e:?}")),
    }
}

/// Takes the visit counter out of the session, as a number.
async fn take_visits(session: Session) -> Result<String, SessionError> {
    let n: Option<u64> = session.remove("visits").await?;
    Ok(n.map_or("none".into(), |n| n.to_string()))
}

/// Loads the session, waits at the gate, then changes it as `op` says:
/// `visit` (a counter), `cycle` (a new key for the same data, as a password
/// change or privilege change does), `save` (a counter, saved explicitly:
/// the body says whether the session was interrupted).
async fn slow(
    State(s): State<AppState>,
    session: Session,
    Path(op): Path<String>,
) -> Result<String, SessionError> {
    session.load().await?;
    s.gate.loaded.notify_one();
    s.gate.release.notified().await;
    let n: u64 = session.get("visits").await?.unwrap_or(0) + 1;
    match op.as_str() {
        "visit" => session.insert("visits", n).await?,
        "cycle" => {
            session.cycle_key().await?;
            session.insert("visits", n).await?;
        }
        "save" => {
            session.insert("visits", n).await?;
            return match session.save().await {
                Ok(()) => Ok("saved".into()),
                Err(SessionError::Interrupted) => Ok("interrupted".into()),
                Err(e) => Err(e),
            };
        }
        other => panic!("unknown op {other}"),
    }
    Ok(n.to_string())
}

/// Loads the session (re-signing a stale one), then fails with a 500.
async fn fail(session: Session) -> Result<(StatusCode, &'static str), SessionError> {
    session.load().await?;
    Ok((StatusCode::INTERNAL_SERVER_ERROR, "failed"))
}

async fn plain() -> &'static str {
    "plain"
}

fn reset_user<'a>(id: &'a str, hash: &'a str) -> ResetUser<'a> {
    ResetUser {
        pk: id,
        password_hash: hash,
        last_login: None,
        email: None,
    }
}

async fn reset_make(State(s): State<AppState>, Path(id): Path<String>) -> String {
    let hash = s.users.hash(&id).unwrap();
    s.reset
        .make_at(&reset_user(&id, &hash), OffsetDateTime::now_utc())
}

async fn reset_check(
    State(s): State<AppState>,
    Path((id, token)): Path<(String, String)>,
) -> Response {
    let hash = s.users.hash(&id).unwrap();
    match s
        .reset
        .check_at(&reset_user(&id, &hash), &token, OffsetDateTime::now_utc())
    {
        Ok(v) => (StatusCode::OK, v.key_id.to_string()).into_response(),
        Err(_) => (StatusCode::BAD_REQUEST, "invalid").into_response(),
    }
}

async fn signed_set(State(s): State<AppState>) -> Response {
    let mut out = keyroll_axum::SetCookies::new();
    out.push(
        s.cookies
            .set_at(
                "theme",
                "dark",
                "",
                Some(Duration::from_secs(3600)),
                OffsetDateTime::now_utc(),
            )
            .unwrap(),
    );
    (out, "set").into_response()
}

async fn signed_get(State(s): State<AppState>, headers: HeaderMap) -> Response {
    match s.cookies.get_at(
        &headers,
        "theme",
        "",
        Some(Duration::from_secs(3600)),
        OffsetDateTime::now_utc(),
    ) {
        Some(v) => {
            let body = format!("{}|{}", v.value, v.verified.key_id);
            (v.reissue_part(), body).into_response()
        }
        None => "none".into_response(),
    }
}

pub struct TestApp {
    pub base: String,
    pub mode: Mode,
    pub ring: RingHandle,
    pub users: Arc<Users>,
    pub store: Option<Arc<CountingStore>>,
    pub gate: Arc<Gate>,
    _fixture: Option<StoreFixture>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

pub async fn start(mode: Mode, backend: Backend) -> Option<TestApp> {
    start_with(mode, backend, |c| c).await
}

pub async fn start_with(
    mode: Mode,
    backend: Backend,
    config: impl FnOnce(keyroll_axum::SessionConfig) -> keyroll_axum::SessionConfig,
) -> Option<TestApp> {
    start_full(mode, backend, config, false).await
}

/// As [`start_with`]; `upgrade_logins` turns on [`SessionLayer::upgrade_logins`]
/// with the app's users.
pub async fn start_full(
    mode: Mode,
    backend: Backend,
    config: impl FnOnce(keyroll_axum::SessionConfig) -> keyroll_axum::SessionConfig,
    upgrade_logins: bool,
) -> Option<TestApp> {
    let ring = RingHandle::new(ring_a());
    let users = Arc::new(Users::default());
    users.set("1", "sha256$salt$one");
    users.set("2", "sha256$salt$two");
    let (layer, store, fixture) = match mode {
        Mode::Server => {
            let fixture = store_fixture(backend).await?;
            let counting = Arc::new(CountingStore {
                inner: Arc::clone(&fixture.store),
                ops: AtomicUsize::new(0),
                fail: AtomicBool::new(false),
            });
            let engine = Arc::new(SessionEngine::new(
                Arc::clone(&counting) as Arc<dyn Store>,
                &ring.current(),
            ));
            (
                SessionLayer::server(engine, ring.clone()),
                Some(counting),
                Some(fixture),
            )
        }
        Mode::Cookie => (SessionLayer::signed_cookie(ring.clone()), None, None),
    };
    let layer = layer.with_config(config(keyroll_axum::SessionConfig::new().insecure_http()));
    let layer = if upgrade_logins {
        layer.upgrade_logins(Arc::clone(&users))
    } else {
        layer
    };
    let gate = Arc::new(Gate::default());
    let state = AppState {
        users: Arc::clone(&users),
        reset: ResetTokens::new(ring.clone()),
        cookies: SignedCookies::new(ring.clone()).insecure_http(),
        gate: Arc::clone(&gate),
    };
    let app = Router::new()
        .route("/whoami", get(whoami))
        .route("/peek", get(peek))
        .route("/login/{id}", post(do_login))
        .route("/logout", post(do_logout))
        .route("/password/{id}/{new}", post(change_password))
        .route("/visit", get(visit))
        .route("/plain", get(plain))
        .route("/fail", get(fail))
        .route("/slow/{op}", get(slow))
        .route("/wrong-type", get(wrong_type))
        .route("/take-visits", post(take_visits))
        .route("/reset/make/{id}", get(reset_make))
        .route("/reset/check/{id}/{token}", get(reset_check))
        .route("/signed/set", get(signed_set))
        .route("/signed/get", get(signed_get))
        .layer(layer)
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Some(TestApp {
        base: format!("http://{addr}"),
        mode,
        ring,
        users,
        store,
        gate,
        _fixture: fixture,
        server,
    })
}

/// A browser: a client with its own cookie jar. A clone is another tab of
/// the same browser (same jar).
#[derive(Clone)]
pub struct Browser {
    pub client: reqwest::Client,
    pub jar: Arc<reqwest::cookie::Jar>,
    pub base: String,
}

impl Browser {
    pub fn new(app: &TestApp) -> Self {
        let jar = Arc::new(reqwest::cookie::Jar::default());
        let client = reqwest::Client::builder()
            .cookie_provider(Arc::clone(&jar))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Self {
            client,
            jar,
            base: app.base.clone(),
        }
    }

    /// Another browser (its own jar) holding a copy of this one's cookie
    /// `name`: a stolen cookie.
    pub fn with_stolen_cookie(&self, app: &TestApp, name: &str) -> Browser {
        let thief = Browser::new(app);
        let value = self.cookie(name).expect("a cookie to steal");
        let url: reqwest::Url = self.base.parse().unwrap();
        thief.jar.add_cookie_str(&format!("{name}={value}"), &url);
        thief
    }

    /// GET returning the status, the `Set-Cookie` headers and the body.
    pub async fn get_full(&self, path: &str) -> (StatusCode, Vec<String>, String) {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let status = StatusCode::from_u16(r.status().as_u16()).unwrap();
        let set: Vec<String> = r
            .headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        (status, set, r.text().await.unwrap())
    }

    pub async fn get(&self, path: &str) -> (StatusCode, String) {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let status = StatusCode::from_u16(r.status().as_u16()).unwrap();
        (status, r.text().await.unwrap())
    }

    pub async fn post(&self, path: &str) -> (StatusCode, String) {
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let status = StatusCode::from_u16(r.status().as_u16()).unwrap();
        (status, r.text().await.unwrap())
    }

    /// The jar's value of cookie `name`.
    pub fn cookie(&self, name: &str) -> Option<String> {
        use reqwest::cookie::CookieStore as _;
        let url: reqwest::Url = self.base.parse().unwrap();
        let header = self.jar.cookies(&url)?;
        header.to_str().unwrap().split("; ").find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            (k == name).then(|| v.to_owned())
        })
    }

    pub async fn whoami(&self) -> (String, String, String) {
        let (status, body) = self.get("/whoami").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let mut parts = body.split('|').map(str::to_owned);
        (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        )
    }
}

/// Which key of `ring` signed the browser's session now: the stored row
/// (server mode) or the cookie (signed-cookie mode) must verify under `ring` alone.
pub async fn session_verifies_under(app: &TestApp, browser: &Browser, ring: &KeyRing) -> bool {
    let cookie = browser.cookie("sessionid").expect("a session cookie");
    let now = OffsetDateTime::now_utc();
    match app.mode {
        Mode::Server => {
            let store = app.store.as_ref().unwrap();
            let Some(row) = store.inner.load(&cookie, now).await.unwrap() else {
                return false;
            };
            SessionCodec::database(ring)
                .decode_at(&row.data, now)
                .is_ok()
        }
        Mode::Cookie => SessionCodec::signed_cookie(ring, keyroll::DEFAULT_SESSION_COOKIE_AGE)
            .decode_at(&cookie, now)
            .is_ok(),
    }
}

/// The data in the browser's session, decoded under `ring`.
pub async fn session_data(app: &TestApp, browser: &Browser, ring: &KeyRing) -> SessionData {
    let cookie = browser.cookie("sessionid").expect("a session cookie");
    let now = OffsetDateTime::now_utc();
    match app.mode {
        Mode::Server => {
            let row = app
                .store
                .as_ref()
                .unwrap()
                .inner
                .load(&cookie, now)
                .await
                .unwrap()
                .unwrap();
            SessionCodec::database(ring)
                .decode_at(&row.data, now)
                .unwrap()
                .value
        }
        Mode::Cookie => {
            SessionCodec::signed_cookie(ring, keyroll::DEFAULT_SESSION_COOKIE_AGE)
                .decode_at(&cookie, now)
                .unwrap()
                .value
        }
    }
}
