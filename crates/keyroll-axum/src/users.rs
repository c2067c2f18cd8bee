//! What the application tells keyroll about its users.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use keyroll_store::{check_table_name, Store, StoreError};

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

/// A [`UserLoader`] over a users table in the session store's own database —
/// Django's `auth_user`, or any table with columns `id` and `password` — read
/// through the store's [`UserTable`]: the same lookup `keyroll resign` re-makes
/// login hashes with. The user it loads is the id itself.
///
/// It answers "what is this user's password hash" only; whether the user may
/// still log in (Django's `is_active`) stays the application's own check.
///
/// ```no_run
/// # fn example() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use keyroll_axum::UserRows;
/// use keyroll_store::SqliteStore;
/// let store = Arc::new(SqliteStore::open("db.sqlite3".as_ref(), "django_session")?);
/// let users = UserRows::new(store, "auth_user")?;
/// # let _ = users; Ok(()) }
/// ```
///
/// [`UserTable`]: keyroll_store::UserTable
pub struct UserRows<S: ?Sized> {
    store: Arc<S>,
    table: String,
}

impl<S: Store + ?Sized> UserRows<S> {
    /// Loads users from `table` in the database of `store`.
    ///
    /// # Errors
    /// [`StoreError::BadTableName`] unless `table` is a plain SQL identifier;
    /// [`StoreError::Unsupported`] for a store with no users table (Redis).
    pub fn new(store: Arc<S>, table: &str) -> Result<Self, StoreError> {
        check_table_name(table)?;
        if store.user_table().is_none() {
            return Err(StoreError::Unsupported(
                "this store has no users table: give the session layer a UserLoader of your own",
            ));
        }
        Ok(Self {
            store,
            table: table.to_owned(),
        })
    }
}

impl<S: ?Sized> fmt::Debug for UserRows<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserRows")
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

impl<S: Store + ?Sized + 'static> UserLoader for UserRows<S> {
    type User = String;

    async fn load_user(&self, id: &str) -> Option<(String, String)> {
        let table = self.store.user_table()?;
        let ids = [id.to_owned()];
        match table.password_hashes(&self.table, &ids).await {
            Ok(mut found) => found.remove(id).map(|hash| (id.to_owned(), hash)),
            Err(e) => {
                // No hash: the login hash is not re-made now; the session
                // keeps its old one and is judged on a later visit.
                tracing::warn!(error = %e, "loading a user's password hash failed");
                None
            }
        }
    }
}
