//! The operator's routes: the ring in force and its changes (stage,
//! promote, retire), behind the operator token ([`OperatorToken`]).
//!
//! [`OperatorToken`]: crate::operator::OperatorToken

use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use keyroll::ringfile::{format_duration, OpenOptions, RingFile, RingFileError};
use keyroll::Role;
use keyroll_axum::{Session, SessionError};
use serde::Deserialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::app::{see_other, App, NoFields};
use crate::csrf::{Csrf, CsrfForm};
use crate::pages;

/// How long a demoted primary keeps verifying after a promotion from the operator page.
const PROMOTE_GRACE: Duration = Duration::from_secs(7 * 86_400);
/// Staging is refused while this many keys are staged.
const MAX_STAGED: usize = 3;

/// `/operator…` and `/api/ring`.
pub(crate) fn routes() -> Router<App> {
    Router::new()
        .route("/operator", get(operator))
        .route("/operator/login", post(operator_login))
        .route("/operator/stage", post(stage))
        .route("/operator/promote", post(promote))
        .route("/operator/retire", post(retire))
        .route("/api/ring", get(api_ring))
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// The ring in force: key ids, roles and retirement dates (RFC 3339), never
/// secrets. Needs `Authorization: Bearer <operator token>`.
async fn api_ring(State(app): State<App>, headers: HeaderMap) -> Response {
    if !app.operator.bearer(&headers) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            axum::Json(serde_json::json!({
                "error": "the operator token is needed: Authorization: Bearer <token>"
            })),
        )
            .into_response();
    }
    let ring = app.ring.current();
    let keys: Vec<serde_json::Value> = ring
        .keys()
        .map(|k| {
            serde_json::json!({
                "key_id": k.id().to_string(),
                "role": k.role().as_str(),
                "retire_after": k.retire_after().map(rfc3339),
            })
        })
        .collect();
    axum::Json(serde_json::json!({
        "primary_key_id": ring.primary().id().to_string(),
        "keys": keys,
    }))
    .into_response()
}

fn ring_rows(app: &App) -> Vec<(String, String, String)> {
    app.ring
        .current()
        .keys()
        .map(|k| {
            (
                k.id().to_string(),
                k.role().to_string(),
                k.retire_after().map_or_else(String::new, rfc3339),
            )
        })
        .collect()
}

fn operator_page(app: &App, csrf: &Csrf, error: Option<&str>) -> Html<String> {
    pages::operator(
        csrf.token(),
        &ring_rows(app),
        &format_duration(app.min_staged),
        MAX_STAGED,
        error,
    )
}

/// The ring and its buttons for an operator's session; the token form otherwise.
async fn operator(
    State(app): State<App>,
    session: Session,
    csrf: Csrf,
) -> Result<Response, SessionError> {
    let page = if app.operator.is_marked(&session).await? {
        operator_page(&app, &csrf, None)
    } else {
        pages::operator_login(csrf.token(), None)
    };
    Ok(csrf.respond(page))
}

/// The operator-token form.
#[derive(Deserialize)]
struct OperatorLogin {
    #[serde(default)]
    token: String,
}

async fn operator_login(
    State(app): State<App>,
    session: Session,
    CsrfForm { form: f, mut csrf }: CsrfForm<OperatorLogin>,
) -> Result<Response, SessionError> {
    if !app.operator.matches(&f.token) {
        return Ok((
            StatusCode::FORBIDDEN,
            pages::operator_login(csrf.token(), Some("That is not the operator token.")),
        )
            .into_response());
    }
    app.operator.mark(&session).await?;
    csrf.rotate(app.csrf);
    Ok(csrf.respond(see_other("/operator")))
}

/// Runs a ring change for an operator's session; 403 for anyone else.
async fn as_operator(
    app: &App,
    session: &Session,
    csrf: &Csrf,
    change: impl FnOnce(&mut RingFile, OffsetDateTime) -> Result<(), RingFileError>,
) -> Result<Response, SessionError> {
    if !app.operator.is_marked(session).await? {
        return Ok((
            StatusCode::FORBIDDEN,
            pages::forbidden("The operator page needs the operator token"),
        )
            .into_response());
    }
    Ok(edit_ring(app, csrf, change))
}

/// Edits the ring file under its lock, then reloads the ring from it.
fn edit_ring(
    app: &App,
    csrf: &Csrf,
    change: impl FnOnce(&mut RingFile, OffsetDateTime) -> Result<(), RingFileError>,
) -> Response {
    // Whole seconds, as the CLI writes them: ring files stay readable.
    let now = OffsetDateTime::now_utc();
    let now = now.replace_nanosecond(0).unwrap_or(now);
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
            operator_page(app, csrf, Some(&e.to_string())),
        )
            .into_response(),
    }
}

async fn stage(
    State(app): State<App>,
    session: Session,
    CsrfForm { csrf, .. }: CsrfForm<NoFields>,
) -> Result<Response, SessionError> {
    as_operator(&app, &session, &csrf, |rf, now| {
        let staged = rf.entries.iter().filter(|e| e.role == Role::Staged).count();
        if staged >= MAX_STAGED {
            return Err(RingFileError::Refused(format!(
                "{staged} keys are staged already (at most {MAX_STAGED}); promote one first"
            )));
        }
        rf.stage(now, keyroll::ringfile::DEFAULT_SECRET_LEN);
        Ok(())
    })
    .await
}

/// Promotes the oldest staged key, once it has been staged for `--min-staged`.
async fn promote(
    State(app): State<App>,
    session: Session,
    CsrfForm { csrf, .. }: CsrfForm<NoFields>,
) -> Result<Response, SessionError> {
    let min_staged = app.min_staged;
    as_operator(&app, &session, &csrf, |rf, now| {
        let Some(entry) = rf.entries.iter().find(|e| e.role == Role::Staged) else {
            return Err(RingFileError::Refused(
                "no staged key to promote; stage one first".into(),
            ));
        };
        let id = entry.id();
        let since = entry.staged_at.or(entry.created);
        if !min_staged.is_zero() && since.is_none_or(|t| now - t < min_staged) {
            let ago = since.map_or_else(
                || "an unknown time".to_owned(),
                |t| {
                    format_duration(Duration::from_secs(
                        u64::try_from((now - t).whole_seconds()).unwrap_or(0),
                    ))
                },
            );
            return Err(RingFileError::Refused(format!(
                "key {id} was staged {ago} ago; it is promoted once it has been staged for {} (--min-staged), so that every server knows it before it signs",
                format_duration(min_staged)
            )));
        }
        rf.promote(Some(id), PROMOTE_GRACE, min_staged, false, now)
            .map(drop)
    })
    .await
}

async fn retire(
    State(app): State<App>,
    session: Session,
    CsrfForm { csrf, .. }: CsrfForm<NoFields>,
) -> Result<Response, SessionError> {
    as_operator(&app, &session, &csrf, |rf, _| {
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
    .await
}
