//! Login, logout and the current user, with Django's session keys and auth hash.

use keyroll::{user_id_from, LoginCheck, SESSION_USER_BACKEND, SESSION_USER_HASH, SESSION_USER_ID};
use serde_json::Value;

use crate::error::SessionError;
use crate::metrics;
use crate::session::Session;
use crate::users::UserLoader;

/// Logs a user in: a new session key (no session fixation), then Django's
/// `_auth_user_id`, `_auth_user_backend` and `_auth_user_hash`. A session
/// that belonged to another user is emptied first; an anonymous one keeps its data.
///
/// # Errors
/// [`SessionError`] when the session cannot be loaded or the values stored.
pub async fn login(
    session: &Session,
    user_id: &str,
    password_hash: &str,
    backend: &str,
) -> Result<(), SessionError> {
    match session_user_id(session).await? {
        Some(other) if other != user_id => session.flush().await?,
        _ => session.cycle_key().await?,
    }
    let hash = session.ring().auth_hash().make(password_hash);
    session.insert(SESSION_USER_ID, user_id).await?;
    session.insert(SESSION_USER_BACKEND, backend).await?;
    session.insert(SESSION_USER_HASH, hash).await?;
    Ok(())
}

/// Logs out: the session is emptied and its row deleted.
///
/// # Errors
/// [`SessionError`] when the session cannot be loaded.
pub async fn logout(session: &Session) -> Result<(), SessionError> {
    session.flush().await
}

/// After the user changed their password in this session: a new session key
/// and the new hash, so this session stays logged in while every other
/// session of the user is logged out (Django's `update_session_auth_hash`).
///
/// # Errors
/// [`SessionError`] when the session cannot be loaded.
pub async fn update_session_auth_hash(
    session: &Session,
    password_hash: &str,
) -> Result<(), SessionError> {
    session.cycle_key().await?;
    let hash = session.ring().auth_hash().make(password_hash);
    session.insert(SESSION_USER_HASH, hash).await
}

/// The user this session belongs to, by Django's rule: the stored hash must
/// verify against the user's *current* password hash. Under the primary key:
/// the user. Under another key of the ring: the user, with a new session key
/// and the hash re-made under the primary. Under none (password changed, key
/// retired, tampering) or an unknown user: the session is flushed and the
/// request is anonymous.
///
/// # Errors
/// [`SessionError`] when the session cannot be loaded or saved.
pub async fn current_user<L: UserLoader>(
    session: &Session,
    loader: &L,
) -> Result<Option<L::User>, SessionError> {
    let Some(id) = session_user_id(session).await? else {
        return Ok(None);
    };
    let Some((user, password_hash)) = loader.load_user(&id).await else {
        session.flush().await?;
        return Ok(None);
    };
    let stored: Option<String> = match session.get_value(SESSION_USER_HASH).await? {
        Some(Value::String(s)) => Some(s),
        _ => None,
    };
    let auth = session.ring().auth_hash();
    let checked = stored.as_deref().map_or(LoginCheck::Invalid, |s| {
        auth.judge_at(s, &password_hash, session.now())
    });
    match checked {
        LoginCheck::Current(v) => {
            metrics::verified(v.key_id, v.role);
            Ok(Some(user))
        }
        LoginCheck::Stale { verified, remade } => {
            metrics::verified(verified.key_id, verified.role);
            session.cycle_key().await?;
            session.insert(SESSION_USER_HASH, remade).await?;
            metrics::resigned("auth_hash");
            Ok(Some(user))
        }
        _ => {
            metrics::failed("auth_hash");
            session.flush().await?;
            Ok(None)
        }
    }
}

/// The `_auth_user_id` of the session (Django stores a string; a number is accepted).
async fn session_user_id(session: &Session) -> Result<Option<String>, SessionError> {
    Ok(session
        .get_value(SESSION_USER_ID)
        .await?
        .as_ref()
        .and_then(user_id_from))
}
