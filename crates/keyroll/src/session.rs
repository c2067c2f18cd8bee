//! Django session data: database-backed rows and signed-cookie sessions.

use std::time::Duration;

use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::error::{SignError, VerifyError};
use crate::object::ObjectSigner;
use crate::ring::KeyRing;
use crate::signer::{SignerBuilder, Verified};

/// Salt of `django.contrib.sessions.backends.db.SessionStore` (also `cached_db` and `file`).
pub const DB_SESSION_SALT: &str = "django.contrib.sessions.SessionStore";
/// Salt of the `signed_cookies` session backend.
pub const COOKIE_SESSION_SALT: &str = "django.contrib.sessions.backends.signed_cookies";
/// Django's default `SESSION_COOKIE_AGE`: two weeks.
pub const DEFAULT_SESSION_COOKIE_AGE: Duration = Duration::from_secs(1_209_600);

/// A session dictionary.
pub type SessionData = Map<String, Value>;

/// Encodes and decodes Django session data: `dumps(session, salt, compress=True)`.
///
/// ```
/// use keyroll::{KeyRing, Secret, SessionCodec};
/// use time::OffsetDateTime;
/// let ring = KeyRing::new(Secret::from("s3cret")).expect("a non-empty secret");
/// let codec = SessionCodec::database(&ring);
/// let mut data = keyroll::SessionData::new();
/// data.insert("_auth_user_id".into(), "42".into());
/// let now = OffsetDateTime::now_utc();
/// let row = codec.encode_at(&data, now).expect("serializable");
/// assert_eq!(codec.decode_at(&row, now).expect("verifies").value, data);
/// ```
#[derive(Clone, Debug)]
pub struct SessionCodec {
    signer: ObjectSigner,
    max_age: Option<Duration>,
}

impl SessionCodec {
    /// For database rows (`db`, `cached_db`, `file` backends): salt
    /// `django.contrib.sessions.SessionStore`, no age limit (the row's expiry rules).
    pub fn database(ring: &KeyRing) -> Self {
        Self::with_salt(ring, DB_SESSION_SALT, None)
    }

    /// For the signed-cookie backend: the cookie is the data, valid for `max_age`.
    pub fn signed_cookie(ring: &KeyRing, max_age: Duration) -> Self {
        Self::with_salt(ring, COOKIE_SESSION_SALT, Some(max_age))
    }

    /// Any salt (a custom `SessionStore` class has salt
    /// `django.contrib.sessions.` ‖ its qualified name) and age limit.
    pub fn with_salt(ring: &KeyRing, salt: &str, max_age: Option<Duration>) -> Self {
        Self::with_builder(ring, SignerBuilder::new().salt(salt), max_age)
    }

    /// Full control: any signer options (limits, future tolerance).
    pub fn with_builder(ring: &KeyRing, builder: SignerBuilder, max_age: Option<Duration>) -> Self {
        let signer = ObjectSigner::from_timestamp_signer(builder.build_timestamp_colon(ring), true);
        Self { signer, max_age }
    }

    /// The signed-object codec underneath.
    pub fn object_signer(&self) -> &ObjectSigner {
        &self.signer
    }

    /// Encodes session data, stamped with `now`, signed by the primary key.
    ///
    /// # Errors
    /// [`SignError`] for data JSON cannot carry.
    pub fn encode_at(&self, data: &SessionData, now: OffsetDateTime) -> Result<String, SignError> {
        self.signer.dumps_at(&Value::Object(data.clone()), now)
    }

    /// Decodes session data; anything but a JSON object is malformed.
    ///
    /// # Errors
    /// Any [`VerifyError`]. Django treats all of them as "no session".
    pub fn decode_at(
        &self,
        data: &str,
        now: OffsetDateTime,
    ) -> Result<Verified<SessionData>, VerifyError> {
        let v = self.signer.loads_at(data, self.max_age, now)?;
        match v.value {
            Value::Object(map) => Ok(Verified {
                value: map,
                key_id: v.key_id,
                role: v.role,
                timestamp: v.timestamp,
            }),
            _ => Err(VerifyError::Malformed("session data is not an object")),
        }
    }

    /// Decodes; when stale, also returns the same data re-signed by the
    /// primary, with the original timestamp.
    ///
    /// # Errors
    /// Any [`VerifyError`].
    pub fn resign_at(
        &self,
        data: &str,
        now: OffsetDateTime,
    ) -> Result<Verified<ResignedSession>, VerifyError> {
        let v = self.signer.resign_at(data, self.max_age, now)?;
        let (key_id, role, timestamp) = (v.key_id, v.role, v.timestamp);
        match v.value {
            (Value::Object(data), fresh) => Ok(Verified {
                value: ResignedSession { data, fresh },
                key_id,
                role,
                timestamp,
            }),
            _ => Err(VerifyError::Malformed("session data is not an object")),
        }
    }
}

/// A session [`SessionCodec::resign_at`] verified: its data, and — when a
/// staged or fallback key verified it — the same data re-signed by the
/// primary, with its original timestamp.
///
/// `Debug` shows the number of entries, not the data.
#[derive(Clone, PartialEq)]
pub struct ResignedSession {
    /// The session's data.
    pub data: SessionData,
    /// The re-signed token, when the session was stale; `None` when the
    /// primary already signed it.
    pub fresh: Option<String>,
}

impl std::fmt::Debug for ResignedSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResignedSession")
            .field("entries", &self.data.len())
            .field("resigned", &self.fresh.is_some())
            .finish()
    }
}
