//! The session auth hash that ties a login to the user's password.

use time::OffsetDateTime;

use crate::crypto::{Algorithm, MacKey};
use crate::error::VerifyError;
use crate::ring::{KeyRing, Role};
use crate::secret::KeyId;
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
/// let old = SessionAuthHash::new(&KeyRing::new(Secret::from("old")));
/// let stored = old.make("pbkdf2_sha256$...");
/// let ring = KeyRing::new(Secret::from("new")).with_fallback(Secret::from("old"), None).expect("ring");
/// let auth = SessionAuthHash::new(&ring);
/// let now = OffsetDateTime::now_utc();
/// let v = auth.check_at(&stored, "pbkdf2_sha256$...", now).expect("matches the fallback");
/// assert_eq!(v.role, Role::Fallback);
/// // A changed password never verifies, under any key.
/// assert!(auth.check_at(&stored, "pbkdf2_sha256$changed", now).is_err());
/// ```
#[derive(Clone, Debug)]
pub struct SessionAuthHash {
    keys: Vec<(KeyId, Role, Option<OffsetDateTime>, MacKey)>,
}

impl SessionAuthHash {
    /// Prepares the hash under every key of `ring`.
    pub fn new(ring: &KeyRing) -> Self {
        let keys = ring
            .keys()
            .map(|k| {
                (
                    k.id(),
                    k.role(),
                    k.retire_after(),
                    MacKey::derive(
                        Algorithm::Sha256,
                        AUTH_HASH_SALT.as_bytes(),
                        b"",
                        k.secret().expose(),
                    ),
                )
            })
            .collect();
        Self { keys }
    }

    /// The hash of `password_hash` under the primary key (64 hex characters).
    pub fn make(&self, password_hash: &str) -> String {
        self.keys
            .first()
            .map(|(_, _, _, mac)| mac.tag(&[password_hash.as_bytes()]).to_hex())
            .unwrap_or_default()
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
        for (id, role, retire_after, mac) in &self.keys {
            if retire_after.is_some_and(|t| now > t) {
                continue;
            }
            let hex = mac.tag(&[password_hash.as_bytes()]).to_hex();
            if crate::signer::ct_eq(hex.as_bytes(), stored.as_bytes()) {
                return Ok(Verified {
                    value: (),
                    key_id: *id,
                    role: *role,
                    timestamp: None,
                });
            }
        }
        Err(VerifyError::BadSignature)
    }
}
