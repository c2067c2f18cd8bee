//! The session auth hash that ties a login to the user's password.

use time::OffsetDateTime;

use crate::crypto::{ct_eq, Algorithm, PreparedKeys};
use crate::error::VerifyError;
use crate::ring::KeyRing;
use crate::session::SessionData;
use crate::signer::Verified;

/// Key salt of `AbstractBaseUser.get_session_auth_hash`.
pub const AUTH_HASH_SALT: &str =
    "django.contrib.auth.models.AbstractBaseUser.get_session_auth_hash";
/// Session key holding the user's id.
pub const SESSION_USER_ID: &str = "_auth_user_id";
/// Session key holding the authentication backend's dotted path.
pub const SESSION_USER_BACKEND: &str = "_auth_user_backend";
/// Session key holding the auth hash.
pub const SESSION_USER_HASH: &str = "_auth_user_hash";

/// Makes and checks `_auth_user_hash` values:
/// hex(salted HMAC-SHA256(`…get_session_auth_hash`, password hash, secret)).
///
/// ```
/// use keyroll::{KeyRing, Secret, SessionAuthHash, Role};
/// use time::OffsetDateTime;
/// let old = SessionAuthHash::new(&KeyRing::new(Secret::from("old")).expect("a non-empty secret"));
/// let stored = old.make("pbkdf2_sha256$...");
/// let ring = KeyRing::new(Secret::from("new")).expect("a non-empty secret").with_fallback(Secret::from("old"), None).expect("ring");
/// let auth = SessionAuthHash::new(&ring);
/// let now = OffsetDateTime::now_utc();
/// let v = auth.check_at(&stored, "pbkdf2_sha256$...", now).expect("matches the fallback");
/// assert_eq!(v.role, Role::Fallback);
/// // A changed password never verifies, under any key.
/// assert!(auth.check_at(&stored, "pbkdf2_sha256$changed", now).is_err());
/// ```
#[derive(Clone, Debug)]
pub struct SessionAuthHash {
    keys: PreparedKeys,
}

impl SessionAuthHash {
    /// Prepares the hash under every key of `ring`.
    pub fn new(ring: &KeyRing) -> Self {
        Self {
            keys: PreparedKeys::derive(ring, Algorithm::Sha256, AUTH_HASH_SALT.as_bytes(), b""),
        }
    }

    /// The hash of `password_hash` under the primary key (64 hex characters).
    pub fn make(&self, password_hash: &str) -> String {
        self.keys
            .primary()
            .mac
            .tag(&[password_hash.as_bytes()])
            .to_hex()
    }

    /// Checks a stored hash against the user's CURRENT password hash, trying
    /// the primary first, then every other live key. A stale match (non-primary)
    /// means: give the session a new key and store [`SessionAuthHash::make`]'s hash.
    ///
    /// # Errors
    /// [`VerifyError::BadSignature`] when no key matches (Django logs the user out).
    pub fn check_at(
        &self,
        stored: &str,
        password_hash: &str,
        now: OffsetDateTime,
    ) -> Result<Verified<()>, VerifyError> {
        if stored.len() != 64 {
            return Err(VerifyError::BadSignature);
        }
        let key = self
            .keys
            .find_at(now, |mac| {
                let hex = mac.tag(&[password_hash.as_bytes()]).to_hex();
                ct_eq(hex.as_bytes(), stored.as_bytes())
            })
            .ok_or(VerifyError::BadSignature)?;
        Ok(Verified {
            value: (),
            key_id: key.id,
            role: key.role,
            timestamp: None,
        })
    }

    /// The rule every front end applies to a session's login hash (Django's,
    /// plus re-making it under the primary): `stored` is checked against the
    /// user's CURRENT `password_hash` under every live key. Under the
    /// primary it is [`LoginCheck::Current`]; under another key it is
    /// [`LoginCheck::Stale`] with the hash re-made under the primary; under
    /// none (a changed password, a retired key, tampering) it is
    /// [`LoginCheck::Invalid`] and the session must be logged out — a hash
    /// that does not verify with the current password is never re-made.
    pub fn judge_at(&self, stored: &str, password_hash: &str, now: OffsetDateTime) -> LoginCheck {
        match self.check_at(stored, password_hash, now) {
            Ok(v) if v.is_stale() => LoginCheck::Stale {
                verified: v,
                remade: self.make(password_hash),
            },
            Ok(v) => LoginCheck::Current(v),
            Err(_) => LoginCheck::Invalid,
        }
    }
}

/// What [`SessionAuthHash::judge_at`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoginCheck {
    /// Made under the primary key for the current password.
    Current(Verified<()>),
    /// Made under a staged or fallback key for the current password:
    /// `remade` is the primary's hash to store in its place (Django also
    /// gives the session a new key when it does this on a request).
    Stale {
        /// The key that verified the stored hash.
        verified: Verified<()>,
        /// The hash under the primary key.
        remade: String,
    },
    /// Verified under no live key for the current password: log the session out.
    Invalid,
}

/// The login in session `data`: the user id (`_auth_user_id`; Django stores
/// a string, a number is accepted) and the stored `_auth_user_hash`.
/// `None` when the session holds no login (or a malformed one).
pub fn session_login(data: &SessionData) -> Option<(String, &str)> {
    let id = user_id_from(data.get(SESSION_USER_ID)?)?;
    let hash = data.get(SESSION_USER_HASH)?.as_str()?;
    Some((id, hash))
}

/// A stored `_auth_user_id` as a string: Django stores a string; a number
/// is accepted too. `None` for anything else.
pub fn user_id_from(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring::Role;
    use crate::secret::Secret;

    const PW: &str = "pbkdf2_sha256$870000$salt$hash";

    #[test]
    fn a_login_hash_is_remade_only_for_the_current_password() {
        let now = OffsetDateTime::UNIX_EPOCH;
        let old =
            SessionAuthHash::new(&KeyRing::new(Secret::from("A")).expect("a non-empty secret"));
        let ring = KeyRing::new(Secret::from("B"))
            .expect("a non-empty secret")
            .with_fallback(Secret::from("A"), None)
            .expect("ring");
        let auth = SessionAuthHash::new(&ring);
        let under_a = old.make(PW);
        match auth.judge_at(&under_a, PW, now) {
            LoginCheck::Stale { verified, remade } => {
                assert_eq!(verified.role, Role::Fallback);
                assert_eq!(remade, auth.make(PW));
                assert!(matches!(
                    auth.judge_at(&remade, PW, now),
                    LoginCheck::Current(v) if v.role == Role::Primary
                ));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            auth.judge_at(&under_a, "pbkdf2_sha256$870000$salt$changed", now),
            LoginCheck::Invalid
        );
        assert_eq!(auth.judge_at("not a hash", PW, now), LoginCheck::Invalid);
    }

    #[test]
    fn session_login_reads_string_and_number_ids() {
        let mut data = SessionData::new();
        assert_eq!(session_login(&data), None);
        data.insert(SESSION_USER_ID.into(), serde_json::json!(7));
        assert_eq!(session_login(&data), None, "no hash: no login to judge");
        data.insert(SESSION_USER_HASH.into(), serde_json::json!("h"));
        assert_eq!(session_login(&data), Some(("7".to_owned(), "h")));
        data.insert(SESSION_USER_ID.into(), serde_json::json!("42"));
        assert_eq!(session_login(&data), Some(("42".to_owned(), "h")));
        data.insert(SESSION_USER_ID.into(), serde_json::json!([1]));
        assert_eq!(session_login(&data), None);
    }
}
