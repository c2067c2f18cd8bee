//! The session layer (tower) and the `Session` extractor (axum).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{HeaderValue, Request};
use keyroll::{session_login, KeyId, LoginCheck, Role, SessionAuthHash, SessionData};
use keyroll_store::{PreparedRing, SessionEngine, Store};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;

use crate::config::{find_cookie, SessionConfig};
use crate::error::SessionError;
use crate::metrics;
use crate::ring::RingHandle;
use crate::users::{Logins, UserLoader};

mod cookie;
mod server;

/// Where session data lives.
#[derive(Clone, Debug)]
enum Backend {
    /// In a store; the cookie holds the session key.
    Server(Arc<SessionEngine>),
    /// In the cookie itself (Django's `signed_cookies` backend).
    Cookie,
}

/// A tower layer that gives every request a lazy [`Session`].
///
/// Two modes: [`SessionLayer::server`] (data in a [`keyroll_store::Store`]
/// through a [`SessionEngine`], so stale rows are re-signed on read) and
/// [`SessionLayer::signed_cookie`] (Django's signed-cookie sessions; a cookie
/// verified by a non-primary key is re-issued, signed by the primary, on the
/// same response, with its original timestamp and expiry).
///
/// Nothing is loaded until a handler touches the session, and nothing is
/// written unless it was modified (or [`SessionConfig::save_every_request`]).
/// A response with a 5xx status saves nothing.
#[derive(Clone, Debug)]
pub struct SessionLayer {
    backend: Backend,
    ring: RingHandle,
    config: SessionConfig,
    logins: Option<Logins>,
}

impl SessionLayer {
    /// Server-side sessions in `store` (Django's database-session salt),
    /// under `ring`. [`SessionLayer::engine`] is the engine it makes.
    pub fn server_store(store: Arc<dyn Store>, ring: RingHandle) -> Self {
        let engine = Arc::new(SessionEngine::with_source(store, ring.source()));
        Self::with_engine(engine, ring)
    }

    /// Server-side sessions in `engine`'s store. The engine's ring source
    /// becomes `ring` (whatever ring it was made with), so it follows every
    /// reload; each request works under one snapshot of `ring`.
    pub fn server(engine: Arc<SessionEngine>, ring: RingHandle) -> Self {
        ring.subscribe_engine(&engine);
        Self::with_engine(engine, ring)
    }

    fn with_engine(engine: Arc<SessionEngine>, ring: RingHandle) -> Self {
        Self {
            backend: Backend::Server(engine),
            ring,
            config: SessionConfig::default(),
            logins: None,
        }
    }

    /// Signed-cookie sessions: the cookie is the data, in Django's format.
    pub fn signed_cookie(ring: RingHandle) -> Self {
        Self {
            backend: Backend::Cookie,
            ring,
            config: SessionConfig::default(),
            logins: None,
        }
    }

    /// Replaces the cookie and saving settings.
    pub fn with_config(mut self, config: SessionConfig) -> Self {
        self.config = config;
        self
    }

    /// Re-make the login hash of every stale session as it is re-signed.
    ///
    /// A logged-in session holds `_auth_user_hash`, an HMAC of the user's
    /// password hash under the key that was primary at login. Re-signing the
    /// session does not change it: only [`current_user`](crate::current_user)
    /// re-makes it (Django's rule), so a user whose requests never call it
    /// while the old key is a fallback would be logged out when that key
    /// retires. With this, whenever a session verified by a staged or
    /// fallback key is loaded, its login hash is checked with `users`, and if
    /// it verifies under a non-primary key it is re-made under the primary.
    /// Server mode writes it in the same compare-and-swap that re-signs the
    /// row (so it is kept even if the response fails; the session key stays);
    /// signed-cookie mode sends it in the re-made cookie (if that response is
    /// lost, the old cookie is still stale and it happens again). A hash that
    /// does not verify, or an unknown user, is left for `current_user` to
    /// judge. Costs one user lookup per stale session, none otherwise.
    ///
    /// Not covered: sessions re-signed elsewhere (an instance without this,
    /// `keyroll resign` without a users table) keep their old hash. Before
    /// retiring a key, run `keyroll resign` with the users table, or keep the
    /// old key as a fallback long enough for every user to come back.
    pub fn upgrade_logins<L: UserLoader + 'static>(mut self, users: Arc<L>) -> Self {
        self.logins = Some(Logins(users));
        self
    }

    /// Shorthand for [`SessionConfig::insecure_http`]: drops `Secure` (plain-HTTP development only).
    pub fn insecure_http(mut self) -> Self {
        self.config = self.config.insecure_http();
        self
    }

    /// The settings in force.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// The ring this layer signs with.
    pub fn ring(&self) -> &RingHandle {
        &self.ring
    }

    /// Server mode: the session engine (its counters, say).
    pub fn engine(&self) -> Option<&Arc<SessionEngine>> {
        match &self.backend {
            Backend::Server(engine) => Some(engine),
            Backend::Cookie => None,
        }
    }
}

#[derive(Debug)]
struct Shared {
    backend: Backend,
    ring: RingHandle,
    config: SessionConfig,
    logins: Option<Logins>,
}

impl<S> tower::Layer<S> for SessionLayer {
    type Service = SessionService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SessionService {
            inner,
            shared: Arc::new(Shared {
                backend: self.backend.clone(),
                ring: self.ring.clone(),
                config: self.config.clone(),
                logins: self.logins.clone(),
            }),
        }
    }
}

/// The service [`SessionLayer`] wraps around a handler.
#[derive(Clone, Debug)]
pub struct SessionService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S, B> tower::Service<Request<B>> for SessionService<S>
where
    S: tower::Service<Request<B>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let shared = Arc::clone(&self.shared);
        let incoming = find_cookie(
            req.headers(),
            &shared.config.cookie_name,
            shared.config.max_cookie_len,
        );
        let now = shared.config.clock.now();
        let session = Session::new(shared, incoming, now);
        req.extensions_mut().insert(session.clone());
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let mut res = inner.call(req).await?;
            if res.status().is_server_error() {
                return Ok(res);
            }
            match session.finish().await {
                Ok(Some(cookie)) => match HeaderValue::try_from(cookie) {
                    Ok(v) => {
                        res.headers_mut().append(http::header::SET_COOKIE, v);
                    }
                    Err(_) => {
                        tracing::error!("session cookie is not a valid header value");
                    }
                },
                Ok(None) => {}
                Err(e) => return Ok(e.into_response()),
            }
            Ok(res)
        })
    }
}

#[derive(Debug, Default)]
struct State {
    loaded: bool,
    /// Server mode: the key of the stored row (None: no row yet).
    key: Option<String>,
    /// Shared with the engine's cache when it came from there; copied on
    /// the first change (`Arc::make_mut`).
    data: Arc<SessionData>,
    verified: Option<(KeyId, Role)>,
    /// Signed-cookie mode: the incoming cookie's timestamp.
    cookie_timestamp: Option<i64>,
    /// Signed-cookie mode: the incoming cookie re-signed by the primary (it was stale).
    reissue: Option<String>,
    modified: bool,
    /// Server mode: rows to delete once the new state is saved.
    doomed: Vec<String>,
    /// Server mode: the row whose data [`Session::cycle_key`] carried over to
    /// a new key. If a concurrent request deleted that row (a logout), the
    /// carried data must not live on under the new key.
    carried_from: Option<String>,
    /// Server mode: the cookie of an explicit [`Session::save`], sent with
    /// the response unless a later save makes another.
    pending_cookie: Option<String>,
}

struct Inner {
    shared: Arc<Shared>,
    incoming: Option<String>,
    now: OffsetDateTime,
    /// The ring snapshot of this request, once it is needed.
    pinned: OnceLock<Arc<PreparedRing>>,
    state: tokio::sync::Mutex<State>,
}

/// The ring snapshot one request works under: taken from the layer's
/// handle when the request first needs it, then the same for the rest of
/// the request (loading, re-signing, login hashes, saving), so a reload
/// never splits a request across two rings.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RequestRing<'a> {
    handle: &'a RingHandle,
    pinned: &'a OnceLock<Arc<PreparedRing>>,
}

impl<'a> RequestRing<'a> {
    fn snapshot(self) -> &'a Arc<PreparedRing> {
        self.pinned.get_or_init(|| self.handle.snapshot())
    }

    /// The login hash of the request's snapshot (prepared once per ring).
    pub(crate) fn auth_hash(self) -> &'a keyroll::SessionAuthHash {
        self.snapshot().auth_hash()
    }
}

/// The current request's session: an axum extractor (needs [`SessionLayer`]).
///
/// Loaded on first use; methods that may load are `async`. Cheap to clone;
/// clones share the same session.
#[derive(Clone)]
pub struct Session {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("has_cookie", &self.inner.incoming.is_some())
            .finish_non_exhaustive()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Session {
    type Rejection = SessionError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Session>()
            .cloned()
            .ok_or(SessionError::MissingLayer)
    }
}

type Guard<'a> = tokio::sync::MutexGuard<'a, State>;

impl Session {
    fn new(shared: Arc<Shared>, incoming: Option<String>, now: OffsetDateTime) -> Self {
        Self {
            inner: Arc::new(Inner {
                pinned: OnceLock::new(),
                shared,
                incoming,
                now,
                state: tokio::sync::Mutex::new(State::default()),
            }),
        }
    }

    /// The instant this request started (used for signing and expiry).
    pub fn now(&self) -> OffsetDateTime {
        self.inner.now
    }

    /// The ring snapshot this request works under.
    pub(crate) fn ring(&self) -> RequestRing<'_> {
        RequestRing {
            handle: &self.inner.shared.ring,
            pinned: &self.inner.pinned,
        }
    }

    async fn loaded(&self) -> Result<Guard<'_>, SessionError> {
        let mut st = self.inner.state.lock().await;
        if !st.loaded {
            self.load_into(&mut st).await?;
        }
        Ok(st)
    }

    async fn load_into(&self, st: &mut State) -> Result<(), SessionError> {
        let Some(incoming) = self.inner.incoming.as_deref() else {
            st.loaded = true;
            return Ok(());
        };
        match &self.inner.shared.backend {
            Backend::Server(engine) => self.load_server_into(engine, incoming, st).await?,
            Backend::Cookie => self.load_cookie_into(incoming, st),
        }
        // Server mode re-made the login hash in the engine's write-back.
        if matches!(self.inner.shared.backend, Backend::Cookie)
            && matches!(st.verified, Some((_, role)) if role != Role::Primary)
        {
            self.upgrade_login(st).await;
        }
        st.loaded = true;
        Ok(())
    }

    /// Loads the session now (otherwise the first accessor does).
    ///
    /// # Errors
    /// [`SessionError::Store`] when the store fails.
    pub async fn load(&self) -> Result<(), SessionError> {
        self.loaded().await.map(drop)
    }

    /// The value under `key`, converted to `T`.
    ///
    /// # Errors
    /// [`SessionError::Store`]; [`SessionError::Value`] when the value is not a `T`.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SessionError> {
        match self.get_value(key).await? {
            Some(v) => Ok(Some(serde_json::from_value(v)?)),
            None => Ok(None),
        }
    }

    /// The raw JSON value under `key`.
    ///
    /// # Errors
    /// [`SessionError::Store`] when the store fails.
    pub async fn get_value(&self, key: &str) -> Result<Option<Value>, SessionError> {
        Ok(self.loaded().await?.data.get(key).cloned())
    }

    /// Sets `key` to `value`; the session will be saved.
    ///
    /// # Errors
    /// [`SessionError::Store`]; [`SessionError::Value`] when `value` has no JSON form.
    pub async fn insert(&self, key: &str, value: impl Serialize) -> Result<(), SessionError> {
        let value = serde_json::to_value(value)?;
        let mut st = self.loaded().await?;
        Arc::make_mut(&mut st.data).insert(key.to_owned(), value);
        st.modified = true;
        Ok(())
    }

    /// Removes `key`, returning its value converted to `T`; the session is
    /// saved if it was there.
    ///
    /// # Errors
    /// [`SessionError::Store`]; [`SessionError::Value`] when the value is not
    /// a `T` (it is removed all the same).
    pub async fn remove<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SessionError> {
        match self.remove_value(key).await? {
            Some(v) => Ok(Some(serde_json::from_value(v)?)),
            None => Ok(None),
        }
    }

    /// Removes `key`, returning its raw JSON value; the session is saved if
    /// it was there.
    ///
    /// # Errors
    /// [`SessionError::Store`] when the store fails.
    pub async fn remove_value(&self, key: &str) -> Result<Option<Value>, SessionError> {
        let mut st = self.loaded().await?;
        if !st.data.contains_key(key) {
            return Ok(None);
        }
        let old = Arc::make_mut(&mut st.data).remove(key);
        if old.is_some() {
            st.modified = true;
        }
        Ok(old)
    }

    /// Empties the session and forgets its key: the stored row is deleted and
    /// the cookie removed when the response goes out (as Django's `flush`).
    ///
    /// # Errors
    /// [`SessionError::Store`] when the store fails.
    pub async fn flush(&self) -> Result<(), SessionError> {
        let mut st = self.loaded().await?;
        st.data = Arc::default();
        if let Some(old) = st.key.take() {
            st.doomed.push(old);
        }
        st.carried_from = None;
        st.modified = true;
        Ok(())
    }

    /// Keeps the data under a new session key; the old row is deleted once
    /// the new one is saved (as Django's `cycle_key`; do it at login).
    ///
    /// If a concurrent request deletes the old row before this one saves (a
    /// logout), the new row is deleted too and the save fails with
    /// [`SessionError::Interrupted`]: data that a logout ended does not live
    /// on under a new key.
    ///
    /// # Errors
    /// [`SessionError::Store`] when the store fails.
    pub async fn cycle_key(&self) -> Result<(), SessionError> {
        let mut st = self.loaded().await?;
        if let Some(old) = st.key.take() {
            st.carried_from = Some(old.clone());
            st.doomed.push(old);
        }
        st.modified = true;
        Ok(())
    }

    /// Saves what changed now, instead of when the response goes out, so the
    /// handler learns whether it could: [`SessionError::Interrupted`] when
    /// the session's row was deleted by a concurrent request (a logout, a
    /// flush, a key cycled) since this request loaded it. The session is then
    /// dropped: this request goes on with a new, empty session, and nothing
    /// of the old one is written back. Signed-cookie mode has nothing to
    /// save before the response: there this does nothing.
    ///
    /// # Errors
    /// [`SessionError::Interrupted`] as above; [`SessionError::Store`] when
    /// the store fails; [`SessionError::Sign`] when the data cannot be signed.
    pub async fn save(&self) -> Result<(), SessionError> {
        let mut st = self.loaded().await?;
        if !st.modified {
            return Ok(());
        }
        let Backend::Server(engine) = &self.inner.shared.backend else {
            return Ok(());
        };
        if let Some(cookie) = self.persist(engine, &mut st).await? {
            st.pending_cookie = Some(cookie);
        }
        Ok(())
    }

    /// True when the session holds nothing.
    ///
    /// # Errors
    /// [`SessionError::Store`] when the store fails.
    pub async fn is_empty(&self) -> Result<bool, SessionError> {
        Ok(self.loaded().await?.data.is_empty())
    }

    /// The id of the key that verified the incoming session (None for a new session).
    ///
    /// # Errors
    /// [`SessionError::Store`] when the store fails.
    pub async fn key_id(&self) -> Result<Option<KeyId>, SessionError> {
        Ok(self.loaded().await?.verified.map(|(id, _)| id))
    }

    /// The role of that key: anything but primary means the session was stale
    /// (and has been, or will be on this response, re-signed).
    ///
    /// # Errors
    /// [`SessionError::Store`] when the store fails.
    pub async fn role(&self) -> Result<Option<Role>, SessionError> {
        Ok(self.loaded().await?.verified.map(|(_, role)| role))
    }

    /// Server mode: the key of the stored session row, if there is one yet.
    ///
    /// # Errors
    /// [`SessionError::Store`] when the store fails.
    pub async fn session_key(&self) -> Result<Option<String>, SessionError> {
        Ok(self.loaded().await?.key.clone())
    }

    /// Saves what changed; returns the `Set-Cookie` value to send, if any.
    async fn finish(&self) -> Result<Option<String>, SessionError> {
        let shared = &self.inner.shared;
        let config = &shared.config;
        let now = self.inner.now;
        let mut st = self.inner.state.lock().await;
        if !st.loaded {
            // Signed-cookie mode costs no I/O to check: re-issue stale cookies
            // even when the handler did not look.
            if matches!(shared.backend, Backend::Cookie) && self.inner.incoming.is_some() {
                self.load_into(&mut st).await?;
            } else {
                return Ok(None);
            }
        }
        let save = st.modified || (config.save_every_request && !st.data.is_empty());
        if !save && matches!(shared.backend, Backend::Server(_)) {
            return Ok(st.pending_cookie.take());
        }
        let (max_age, expires) = lifetime(config, now);
        match &shared.backend {
            Backend::Server(engine) => {
                if !save {
                    return Ok(st.pending_cookie.take());
                }
                let cookie = self.persist(engine, &mut st).await?;
                Ok(cookie.or_else(|| st.pending_cookie.take()))
            }
            Backend::Cookie => self.finish_cookie(&mut st, save, max_age, expires),
        }
    }
}

/// The cookie's max-age and the expiry of a session saved at `now`.
fn lifetime(config: &SessionConfig, now: OffsetDateTime) -> (time::Duration, OffsetDateTime) {
    let max_age = time::Duration::try_from(config.max_age).unwrap_or(time::Duration::MAX);
    (max_age, now.checked_add(max_age).unwrap_or(now))
}

/// The login hash of `data` re-made under the primary, when it verifies under
/// another key of the ring for the user's current password hash (the core's
/// rule, [`keyroll::SessionAuthHash::judge_at`]); `None` when there is
/// nothing to re-make (no login, an unknown user, a hash that is the
/// primary's already or does not verify — `current_user` judges those).
async fn refreshed_login(
    logins: &Logins,
    auth: &SessionAuthHash,
    data: &SessionData,
    now: OffsetDateTime,
) -> Option<String> {
    let (id, stored) = session_login(data)?;
    let password_hash = logins.0.password_hash(&id).await?;
    match auth.judge_at(stored, &password_hash, now) {
        LoginCheck::Stale { verified, remade } => {
            metrics::verified(verified.key_id, verified.role);
            metrics::resigned("auth_hash");
            Some(remade)
        }
        _ => None,
    }
}
