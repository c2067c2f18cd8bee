//! What the application tells keyroll about its users.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

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
