//! Login, logout and the current user, with Django's session keys and auth hash.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use keyroll::{SESSION_USER_BACKEND, SESSION_USER_HASH, SESSION_USER_ID};
use serde_json::Value;

use crate::error::SessionError;
use crate::metrics;
use crate::session::Session;

/// What the application tells keyroll about its users.
///
/// ```
/// use keyroll_axum::UserLoader;
/// struct Users;
/// impl UserLoader for Users {
///     type User = String;
///     async fn load_user(&self, id: &str) -> Option<(String, String)> {
///         (id == "1").then(|| ("alice".to_owned(), "sha256$salt$hash".to_owned()))
///     }
/// }
/// ```
pub trait UserLoader: Send + Sync {
    /// The application's user type.
    type User: Send;

    /// The user with this id (Django's `str(user.pk)`) and their stored
    /// password hash, or `None` when there is no such (active) user.
    fn load_user(&self, id: &str) -> impl Future<Output = Option<(Self::User, String)>> + Send;
}

/// A [`UserLoader`] behind a trait object: what [`SessionLayer::upgrade_logins`]
/// keeps to re-make a stale session's login hash when the session is re-signed.
///
/// [`SessionLayer::upgrade_logins`]: crate::SessionLayer::upgrade_logins
pub(crate) trait PasswordHashes: Send + Sync {
    fn password_hash<'a>(
        &'a self,
        id: &'a str,
    ) -> Pin<Box<dyn Future<Output = Option<String>> + Send + 'a>>;
}

impl<L: UserLoader> PasswordHashes for L {
    fn password_hash<'a>(
        &'a self,
        id: &'a str,
    ) -> Pin<Box<dyn Future<Output = Option<String>> + Send + 'a>> {
        Box::pin(async move { self.load_user(id).await.map(|(_, hash)| hash) })
    }
}

/// The user loader a session layer upgrades logins with.
#[derive(Clone)]
pub(crate) struct Logins(pub(crate) Arc<dyn PasswordHashes>);

impl fmt::Debug for Logins {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Logins")
    }
}

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
    let hash = session.ring().prepared().auth.make(password_hash);
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
    let hash = session.ring().prepared().auth.make(password_hash);
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
    let prepared = session.ring().prepared();
    let checked = stored
        .as_deref()
        .map(|s| prepared.auth.check_at(s, &password_hash, session.now()));
    match checked {
        Some(Ok(v)) => {
            metrics::verified(v.key_id, v.role);
            if v.is_stale() {
                session.cycle_key().await?;
                session
                    .insert(SESSION_USER_HASH, prepared.auth.make(&password_hash))
                    .await?;
                metrics::resigned("auth_hash");
            }
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
    Ok(user_id_of(
        session.get_value(SESSION_USER_ID).await?.as_ref(),
    ))
}

/// A stored `_auth_user_id` as a string (Django stores a string; a number is accepted).
pub(crate) fn user_id_of(v: Option<&Value>) -> Option<String> {
    match v {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}
