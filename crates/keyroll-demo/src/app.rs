//! The demo's router and the users' pages (the operator's are in `rotation`).
//!
//! Every form is CSRF-checked ([`CsrfForm`]), every state-changing request
//! from another site refused ([`csrf::same_origin`]), the operator's pages
//! and `/api/ring` need the operator token ([`OperatorToken`]), and a page
//! view stores nothing in a session that holds nothing (Django's rule: a
//! session is saved only when something is stored in it).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{middleware, Router};
use base64::Engine as _;
use keyroll::ResetUser;
use keyroll_axum::{
    current_user, login, logout, update_session_auth_hash, ResetTokens, RingHandle, Session,
    SessionError, SessionLayer,
};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Deserialize;
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

use crate::csrf::{self, Csrf, CsrfConfig, CsrfForm};
use crate::operator::OperatorToken;
use crate::outbox::Outbox;
use crate::users::{check_password, User, Users};
use crate::{pages, rotation};

/// Django's dotted path of the backend that authenticated the user.
const BACKEND: &str = "keyroll_demo.backends.InMemoryBackend";
/// Longest username looked up (Django's `max_length` of `username`).
const MAX_USERNAME: usize = 150;

/// What every handler shares.
#[derive(Clone)]
pub(crate) struct App {
    pub(crate) users: Arc<Users>,
    pub(crate) ring: RingHandle,
    pub(crate) ring_path: PathBuf,
    pub(crate) reset: ResetTokens,
    pub(crate) metrics: PrometheusHandle,
    pub(crate) operator: OperatorToken,
    pub(crate) csrf: CsrfConfig,
    pub(crate) outbox: Outbox,
    /// A staged key is promoted only once staged this long (`--min-staged`).
    pub(crate) min_staged: Duration,
}

/// The router, sessions layered over every route; cross-site writes are
/// refused before a session is looked at.
pub(crate) fn router(app: App, sessions: SessionLayer) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/signup", get(signup_form).post(signup))
        .route("/login", get(login_form).post(do_login))
        .route("/logout", post(do_logout))
        .route("/password", get(password_form).post(change_password))
        .route("/reset", get(reset_form).post(reset_request))
        .route(
            "/reset/confirm",
            get(reset_confirm_form).post(reset_confirm),
        )
        .route("/metrics", get(metrics))
        .route("/api/whoami", get(api_whoami))
        .route("/api/visit", post(api_visit))
        .merge(rotation::routes())
        .layer(sessions)
        .layer(middleware::from_fn_with_state(
            app.clone(),
            csrf::same_origin,
        ))
        .layer(middleware::from_fn(csrf::page_headers))
        .with_state(app)
}

pub(crate) fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// A form with no fields but its CSRF token.
#[derive(Deserialize)]
pub(crate) struct NoFields {}

/// Counts a visit in a session that already holds something (a login, an
/// operator's mark); an empty session stays empty, so a visitor without a
/// session gets no row. Returns the count.
async fn count_visit(session: &Session) -> Result<u64, SessionError> {
    let seen = visits(session).await;
    if session.is_empty().await? {
        return Ok(seen);
    }
    let visits = seen + 1;
    session.insert("visits", visits).await?;
    Ok(visits)
}

async fn home(
    State(app): State<App>,
    session: Session,
    csrf: Csrf,
) -> Result<Response, SessionError> {
    let user = current_user(&session, app.users.as_ref()).await?;
    let visits = count_visit(&session).await?;
    let key = session
        .key_id()
        .await?
        .map_or_else(|| "none".to_owned(), |k| k.to_string());
    let primary = app.ring.current().primary().id().to_string();
    let name = user.as_ref().map(|u| u.username.as_str());
    let page = pages::home(name, name.map(|_| csrf.token()), &key, &primary, visits);
    // The logout form's token cookie, only when there is a form.
    Ok(if user.is_some() {
        csrf.respond(page)
    } else {
        page.into_response()
    })
}

/// What `/api/whoami` and `/api/visit` answer: who the session belongs to,
/// the session's visit counter, and which key verified it.
async fn whoami_json(
    app: &App,
    session: &Session,
    visits: u64,
) -> Result<serde_json::Value, SessionError> {
    let user = current_user(session, app.users.as_ref()).await?;
    let key = session.key_id().await?.map(|k| k.to_string());
    Ok(serde_json::json!({
        "user": user.map(|u| u.username),
        "visits": visits,
        "session_key_id": key,
        "primary_key_id": app.ring.current().primary().id().to_string(),
    }))
}

async fn visits(session: &Session) -> u64 {
    session
        .get::<u64>("visits")
        .await
        .ok()
        .flatten()
        .unwrap_or(0)
}

/// The home page's facts as JSON, without counting a visit (the session is
/// only read; a stale one may still be re-signed by the store layer).
async fn api_whoami(State(app): State<App>, session: Session) -> Result<Response, SessionError> {
    let visits = visits(&session).await;
    Ok(axum::Json(whoami_json(&app, &session, visits).await?).into_response())
}

/// Counts a visit in the session (a write: the session is saved) and answers
/// like `/api/whoami`. A session that holds nothing is not made for it.
async fn api_visit(State(app): State<App>, session: Session) -> Result<Response, SessionError> {
    // Who first: a session whose login no longer holds is emptied, and not counted.
    let mut json = whoami_json(&app, &session, 0).await?;
    let visits = count_visit(&session).await?;
    if let Some(v) = json.get_mut("visits") {
        *v = serde_json::Value::from(visits);
    }
    Ok(axum::Json(json).into_response())
}

/// Username and password of the sign-up and login forms.
#[derive(Deserialize)]
struct Credentials {
    username: String,
    password: String,
}

async fn signup_form(csrf: Csrf) -> Response {
    let page = pages::signup(csrf.token(), None);
    csrf.respond(page)
}

/// Logs `user` in on `session` and records the login (which ends every
/// reset link made before it); the CSRF token is rotated.
async fn log_in(
    app: &App,
    session: &Session,
    user: &User,
    mut csrf: Csrf,
) -> Result<Response, SessionError> {
    login(session, &user.id, &user.password_hash, BACKEND).await?;
    app.users.record_login(&user.id, session.now());
    csrf.rotate(app.csrf);
    Ok(csrf.respond(see_other("/")))
}

async fn signup(
    State(app): State<App>,
    session: Session,
    CsrfForm { form: f, csrf }: CsrfForm<Credentials>,
) -> Result<Response, SessionError> {
    let name = f.username.trim();
    if name.is_empty() || name.len() > MAX_USERNAME || f.password.is_empty() {
        return Ok((
            StatusCode::BAD_REQUEST,
            pages::signup(
                csrf.token(),
                Some("Give a username (up to 150 characters) and a password."),
            ),
        )
            .into_response());
    }
    let Some(user) = app.users.create(name, &f.password) else {
        return Ok((
            StatusCode::CONFLICT,
            pages::signup(csrf.token(), Some("That username is taken.")),
        )
            .into_response());
    };
    log_in(&app, &session, &user, csrf).await
}

async fn login_form(csrf: Csrf) -> Response {
    let page = pages::login(csrf.token(), None);
    csrf.respond(page)
}

async fn do_login(
    State(app): State<App>,
    session: Session,
    CsrfForm { form: f, csrf }: CsrfForm<Credentials>,
) -> Result<Response, SessionError> {
    match app.users.by_name(f.username.trim()) {
        Some(user) if check_password(&f.password, &user.password_hash) => {
            log_in(&app, &session, &user, csrf).await
        }
        _ => Ok((
            StatusCode::UNAUTHORIZED,
            pages::login(csrf.token(), Some("Wrong username or password.")),
        )
            .into_response()),
    }
}

async fn do_logout(
    session: Session,
    CsrfForm {
        form: NoFields {}, ..
    }: CsrfForm<NoFields>,
) -> Result<Response, SessionError> {
    logout(&session).await?;
    Ok(see_other("/"))
}

async fn password_form(
    State(app): State<App>,
    session: Session,
    csrf: Csrf,
) -> Result<Response, SessionError> {
    if current_user(&session, app.users.as_ref()).await?.is_none() {
        return Ok(see_other("/login"));
    }
    let page = pages::password(csrf.token(), None);
    Ok(csrf.respond(page))
}

/// The change-password form.
#[derive(Deserialize)]
struct PasswordChange {
    old_password: String,
    new_password: String,
}

async fn change_password(
    State(app): State<App>,
    session: Session,
    CsrfForm { form: f, csrf }: CsrfForm<PasswordChange>,
) -> Result<Response, SessionError> {
    let Some(user) = current_user(&session, app.users.as_ref()).await? else {
        return Ok(see_other("/login"));
    };
    if !check_password(&f.old_password, &user.password_hash) {
        return Ok((
            StatusCode::BAD_REQUEST,
            pages::password(csrf.token(), Some("The current password is wrong.")),
        )
            .into_response());
    }
    if f.new_password.is_empty() {
        return Ok((
            StatusCode::BAD_REQUEST,
            pages::password(csrf.token(), Some("Give a new password.")),
        )
            .into_response());
    }
    let Some(hash) = app.users.set_password(&user.id, &f.new_password) else {
        return Ok(see_other("/login"));
    };
    // This session stays logged in; every other session of the user is logged out.
    update_session_auth_hash(&session, &hash).await?;
    Ok(see_other("/"))
}

/// What a reset token is made from: a new password or a new login ends it.
fn reset_user(user: &User) -> ResetUser<'_> {
    ResetUser {
        pk: &user.id,
        password_hash: &user.password_hash,
        // Django: `user.last_login.replace(microsecond=0, tzinfo=None)`, in UTC.
        last_login: user.last_login.map(|t| {
            let t = t.to_offset(UtcOffset::UTC);
            PrimitiveDateTime::new(t.date(), t.time())
        }),
        // The demo's users have no e-mail address.
        email: None,
    }
}

async fn reset_form(csrf: Csrf) -> Response {
    let page = pages::reset(csrf.token(), false);
    csrf.respond(page)
}

/// The reset-request form.
#[derive(Deserialize)]
struct ResetRequest {
    username: String,
}

/// The same answer for every name; a known user's link goes to the outbox.
async fn reset_request(
    State(app): State<App>,
    CsrfForm { form: f, csrf }: CsrfForm<ResetRequest>,
) -> Response {
    let name = f.username.trim();
    if let Some(user) = (name.len() <= MAX_USERNAME)
        .then(|| app.users.by_name(name))
        .flatten()
    {
        let token = app
            .reset
            .make_at(&reset_user(&user), OffsetDateTime::now_utc());
        let uid = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(user.id.as_bytes());
        app.outbox.send_reset_link(
            &user.id,
            &user.username,
            format!("/reset/confirm?uid={uid}&token={token}"),
        );
    }
    pages::reset(csrf.token(), true).into_response()
}

/// A reset link's parameters.
#[derive(Deserialize)]
struct ResetLink {
    #[serde(default)]
    uid: String,
    #[serde(default)]
    token: String,
}

/// The user a reset link is for, if the link is valid now.
fn check_link(app: &App, uid: &str, token: &str) -> Option<User> {
    if uid.len() > 64 {
        return None;
    }
    let id = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(uid.trim_end_matches('=').as_bytes())
        .ok()?;
    let user = app.users.by_id(std::str::from_utf8(&id).ok()?)?;
    app.reset
        .check_at(&reset_user(&user), token, OffsetDateTime::now_utc())
        .ok()
        .map(|_| user)
}

async fn reset_confirm_form(
    State(app): State<App>,
    csrf: Csrf,
    Query(q): Query<ResetLink>,
) -> Response {
    match check_link(&app, &q.uid, &q.token) {
        Some(_) => {
            let page = pages::reset_confirm(csrf.token(), &q.uid, &q.token);
            csrf.respond(page)
        }
        None => (StatusCode::BAD_REQUEST, pages::reset_invalid()).into_response(),
    }
}

/// The new-password form behind a reset link.
#[derive(Deserialize)]
struct ResetConfirm {
    #[serde(default)]
    uid: String,
    #[serde(default)]
    token: String,
    new_password: String,
}

async fn reset_confirm(
    State(app): State<App>,
    CsrfForm { form: f, csrf }: CsrfForm<ResetConfirm>,
) -> Response {
    let Some(user) = check_link(&app, &f.uid, &f.token) else {
        return (StatusCode::BAD_REQUEST, pages::reset_invalid()).into_response();
    };
    if f.new_password.is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            pages::reset_confirm(csrf.token(), &f.uid, &f.token),
        )
            .into_response();
    }
    // A new hash: every session of the user is logged out and the link is spent.
    let _ = app.users.set_password(&user.id, &f.new_password);
    pages::reset_done().into_response()
}

async fn metrics(State(app): State<App>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        app.metrics.render(),
    )
        .into_response()
}
