//! The demo's routes and handlers.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine as _;
use keyroll::ringfile::{OpenOptions, RingFile, RingFileError};
use keyroll::{ResetUser, Role};
use keyroll_axum::{
    current_user, login, logout, update_session_auth_hash, ResetTokens, RingHandle, Session,
    SessionError, SessionLayer,
};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Deserialize;
use time::OffsetDateTime;

use crate::pages;
use crate::users::{check_password, User, Users};

/// Django's dotted path of the backend that authenticated the user.
const BACKEND: &str = "keyroll_demo.backends.InMemoryBackend";
/// How long a demoted primary keeps verifying after a promotion from the operator page.
const PROMOTE_GRACE: Duration = Duration::from_secs(7 * 86_400);

/// What every handler shares.
#[derive(Clone)]
pub(crate) struct App {
    pub(crate) users: Arc<Users>,
    pub(crate) ring: RingHandle,
    pub(crate) ring_path: PathBuf,
    pub(crate) reset: ResetTokens,
    pub(crate) metrics: PrometheusHandle,
}

/// The router, sessions layered over every route.
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
        .route("/operator", get(operator))
        .route("/operator/stage", post(stage))
        .route("/operator/promote", post(promote))
        .route("/operator/retire", post(retire))
        .route("/metrics", get(metrics))
        .route("/api/whoami", get(api_whoami))
        .route("/api/visit", post(api_visit))
        .route("/api/ring", get(api_ring))
        .layer(sessions)
        .with_state(app)
}

fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

async fn home(State(app): State<App>, session: Session) -> Result<Response, SessionError> {
    let user = current_user(&session, app.users.as_ref()).await?;
    let visits: u64 = session
        .get::<u64>("visits")
        .await
        .ok()
        .flatten()
        .unwrap_or(0)
        + 1;
    session.insert("visits", visits).await?;
    let key = session
        .key_id()
        .await?
        .map_or_else(|| "none".to_owned(), |k| k.to_string());
    let primary = app.ring.current().primary().id().to_string();
    Ok(pages::home(
        user.as_ref().map(|u| u.username.as_str()),
        &key,
        &primary,
        visits,
    )
    .into_response())
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
/// like `/api/whoami`.
async fn api_visit(State(app): State<App>, session: Session) -> Result<Response, SessionError> {
    let visits = visits(&session).await + 1;
    session.insert("visits", visits).await?;
    Ok(axum::Json(whoami_json(&app, &session, visits).await?).into_response())
}

/// The ring in force: key ids and roles, never secrets.
async fn api_ring(State(app): State<App>) -> Response {
    let keys: Vec<serde_json::Value> = ring_rows(&app)
        .into_iter()
        .map(|(id, role, retire_after)| {
            serde_json::json!({"key_id": id, "role": role, "retire_after": retire_after})
        })
        .collect();
    axum::Json(serde_json::json!({
        "primary_key_id": app.ring.current().primary().id().to_string(),
        "keys": keys,
    }))
    .into_response()
}

/// Username and password of the sign-up and login forms.
#[derive(Deserialize)]
struct Credentials {
    username: String,
    password: String,
}

async fn signup_form() -> Response {
    pages::signup(None).into_response()
}

async fn signup(
    State(app): State<App>,
    session: Session,
    Form(f): Form<Credentials>,
) -> Result<Response, SessionError> {
    let name = f.username.trim();
    if name.is_empty() || name.len() > 150 || f.password.is_empty() {
        return Ok((
            StatusCode::BAD_REQUEST,
            pages::signup(Some(
                "Give a username (up to 150 characters) and a password.",
            )),
        )
            .into_response());
    }
    let Some(user) = app.users.create(name, &f.password) else {
        return Ok((
            StatusCode::CONFLICT,
            pages::signup(Some("That username is taken.")),
        )
            .into_response());
    };
    login(&session, &user.id, &user.password_hash, BACKEND).await?;
    Ok(see_other("/"))
}

async fn login_form() -> Response {
    pages::login(None).into_response()
}

async fn do_login(
    State(app): State<App>,
    session: Session,
    Form(f): Form<Credentials>,
) -> Result<Response, SessionError> {
    match app.users.by_name(f.username.trim()) {
        Some(user) if check_password(&f.password, &user.password_hash) => {
            login(&session, &user.id, &user.password_hash, BACKEND).await?;
            Ok(see_other("/"))
        }
        _ => Ok((
            StatusCode::UNAUTHORIZED,
            pages::login(Some("Wrong username or password.")),
        )
            .into_response()),
    }
}

async fn do_logout(session: Session) -> Result<Response, SessionError> {
    logout(&session).await?;
    Ok(see_other("/"))
}

async fn password_form(State(app): State<App>, session: Session) -> Result<Response, SessionError> {
    if current_user(&session, app.users.as_ref()).await?.is_none() {
        return Ok(see_other("/login"));
    }
    Ok(pages::password(None).into_response())
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
    Form(f): Form<PasswordChange>,
) -> Result<Response, SessionError> {
    let Some(user) = current_user(&session, app.users.as_ref()).await? else {
        return Ok(see_other("/login"));
    };
    if !check_password(&f.old_password, &user.password_hash) {
        return Ok((
            StatusCode::BAD_REQUEST,
            pages::password(Some("The current password is wrong.")),
        )
            .into_response());
    }
    if f.new_password.is_empty() {
        return Ok((
            StatusCode::BAD_REQUEST,
            pages::password(Some("Give a new password.")),
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

fn reset_user(user: &User) -> ResetUser<'_> {
    ResetUser {
        pk: &user.id,
        password_hash: &user.password_hash,
        last_login: None,
        email: None,
    }
}

async fn reset_form() -> Response {
    pages::reset(None, false).into_response()
}

/// The reset-request form.
#[derive(Deserialize)]
struct ResetRequest {
    username: String,
}

async fn reset_request(State(app): State<App>, Form(f): Form<ResetRequest>) -> Response {
    let Some(user) = app.users.by_name(f.username.trim()) else {
        return pages::reset(None, true).into_response();
    };
    let token = app
        .reset
        .make_at(&reset_user(&user), OffsetDateTime::now_utc());
    let uid = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(user.id.as_bytes());
    let link = format!("/reset/confirm?uid={uid}&token={token}");
    pages::reset(Some(&link), true).into_response()
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

async fn reset_confirm_form(State(app): State<App>, Query(q): Query<ResetLink>) -> Response {
    match check_link(&app, &q.uid, &q.token) {
        Some(_) => pages::reset_confirm(&q.uid, &q.token).into_response(),
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

async fn reset_confirm(State(app): State<App>, Form(f): Form<ResetConfirm>) -> Response {
    let Some(user) = check_link(&app, &f.uid, &f.token) else {
        return (StatusCode::BAD_REQUEST, pages::reset_invalid()).into_response();
    };
    if f.new_password.is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            pages::reset_confirm(&f.uid, &f.token),
        )
            .into_response();
    }
    // A new hash: every session of the user is logged out and the link is spent.
    let _ = app.users.set_password(&user.id, &f.new_password);
    pages::reset_done().into_response()
}

fn ring_rows(app: &App) -> Vec<(String, String, String)> {
    app.ring
        .current()
        .keys()
        .map(|k| {
            (
                k.id().to_string(),
                k.role().to_string(),
                k.retire_after().map_or_else(String::new, |t| t.to_string()),
            )
        })
        .collect()
}

async fn operator(State(app): State<App>) -> Response {
    pages::operator(&ring_rows(&app), None).into_response()
}

/// Edits the ring file under its lock, then reloads the ring from it.
fn edit_ring(
    app: &App,
    change: impl FnOnce(&mut RingFile, OffsetDateTime) -> Result<(), RingFileError>,
) -> Response {
    let now = OffsetDateTime::now_utc();
    let var = |name: &str| std::env::var(name).ok();
    let done = RingFile::update(&app.ring_path, OpenOptions::default(), &var, |rf| {
        change(rf, now)
    })
    .and_then(|()| {
        app.ring
            .reload_from_file(&app.ring_path, OpenOptions::default())
    });
    match done {
        Ok(()) => see_other("/operator"),
        Err(e) => (
            StatusCode::CONFLICT,
            pages::operator(&ring_rows(app), Some(&e.to_string())),
        )
            .into_response(),
    }
}

async fn stage(State(app): State<App>) -> Response {
    edit_ring(&app, |rf, now| {
        rf.stage(now, keyroll::ringfile::DEFAULT_SECRET_LEN);
        Ok(())
    })
}

async fn promote(State(app): State<App>) -> Response {
    edit_ring(&app, |rf, now| {
        rf.promote(None, PROMOTE_GRACE, Duration::ZERO, true, now)
            .map(drop)
    })
}

async fn retire(State(app): State<App>) -> Response {
    edit_ring(&app, |rf, _| {
        let fallbacks: Vec<_> = rf
            .entries
            .iter()
            .filter(|e| e.role == Role::Fallback)
            .map(|e| e.id())
            .collect();
        for id in fallbacks {
            rf.retire(id)?;
        }
        Ok(())
    })
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
