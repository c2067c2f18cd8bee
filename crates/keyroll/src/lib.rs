//! # keyroll
//!
//! Rotate a web service's signing secret without logging anyone out.
//!
//! A [`KeyRing`] holds one **primary** key (the only one that signs),
//! **staged** keys (newer, verify-only, announced before promotion) and
//! **fallback** keys (older, verify-only, retired at a date). Every format here
//! verifies against the whole ring and tells you which key matched
//! ([`Verified`]); anything matched by a non-primary key is stale, and the
//! `resign_at` methods re-sign it with the primary, keeping its timestamp.
//!
//! The formats are Django's, byte for byte: [`salted_hmac`], [`Signer`],
//! [`TimestampSigner`], signed objects ([`ObjectSigner`], `dumps`/`loads`),
//! database and signed-cookie sessions ([`SessionCodec`]), the session auth
//! hash ([`SessionAuthHash`]), password-reset tokens
//! ([`PasswordResetTokens`]), signed cookies ([`SignedCookie`]) and the
//! messages cookie ([`messages_cookie`]).
//!
//! This crate does no I/O but reading and writing ring files, and never reads
//! the clock or the environment itself: time (`now`) and variables are passed in.
//! The rule for login hashes that every front end shares — re-made under the
//! primary only when it verifies with the user's current password — is
//! [`SessionAuthHash::judge_at`]. Django's low-level encodings are in
//! [`encoding`] and its JSON in [`json`].
//!
//! **A note on `serde_json`:** byte-for-byte Django JSON needs `serde_json`'s
//! `preserve_order` and `arbitrary_precision` features. Cargo features are
//! additive, so an application that links keyroll gets them for its own
//! `serde_json` too: objects keep insertion order and numbers keep their
//! text (`Value::Number` compares as written).
//!
//! ```
//! use keyroll::{KeyRing, Secret, SessionCodec, Role};
//! use time::OffsetDateTime;
//!
//! let now = OffsetDateTime::now_utc();
//! // A session row written by Django under the old key...
//! let old = KeyRing::new(Secret::from("old-secret")).expect("a non-empty secret");
//! let mut data = keyroll::SessionData::new();
//! data.insert("_auth_user_id".into(), "42".into());
//! let row = SessionCodec::database(&old).encode_at(&data, now).expect("encodes");
//!
//! // ...still verifies after the rotation, and comes back re-signed.
//! let ring = KeyRing::new(Secret::from("new-secret")).expect("a non-empty secret")
//!     .with_fallback(Secret::from("old-secret"), None)
//!     .expect("ring");
//! let codec = SessionCodec::database(&ring);
//! let v = codec.resign_at(&row, now).expect("verifies");
//! assert_eq!(v.role, Role::Fallback);
//! let keyroll::ResignedSession { data: same_data, fresh: fresh_row } = v.value;
//! assert_eq!(same_data, data);
//! let again = codec.decode_at(&fresh_row.expect("stale, so re-signed"), now).expect("verifies");
//! assert_eq!(again.role, Role::Primary);
//! ```

mod auth;
mod canonical;
mod cookie;
mod crypto;
pub mod encoding;
mod env;
mod error;
pub mod json;
mod limits;
mod object;
mod reset;
mod ring;
pub mod ringfile;
mod secret;
mod session;
mod signer;

pub use auth::{
    session_login, user_id_from, LoginCheck, SessionAuthHash, AUTH_HASH_SALT, SESSION_USER_BACKEND,
    SESSION_USER_HASH, SESSION_USER_ID,
};
pub use cookie::{
    cookie_quote, cookie_unquote, messages_cookie, CookieSaltForm, CookieValueError, SignedCookie,
    COOKIE_KEY_PREFIX, MESSAGES_SALT,
};
pub use crypto::{salted_hmac, Algorithm, Tag};
// Kept at the root for existing callers; the modules are their home.
#[doc(hidden)]
pub use encoding::{b36_decode, b36_encode, b62_decode, b62_encode, b64_decode, b64_encode};
pub use env::{ring_from_env, EnvRingError};
pub use error::{ConfigError, Limit, SignError, VerifyError};
#[doc(hidden)]
pub use json::{parse_json, python_json, python_json_into};
pub use limits::Limits;
pub use object::{ObjectSigner, OBJECT_SALT};
pub use reset::{PasswordResetTokens, ResetUser, DEFAULT_RESET_TIMEOUT, RESET_SALT};
pub use ring::{Key, KeyRing, RingError, Role};
pub use secret::{KeyId, Secret, SHORT_SECRET_BYTES};
pub use session::{
    ResignedSession, SessionCodec, SessionData, COOKIE_SESSION_SALT, DB_SESSION_SALT,
    DEFAULT_SESSION_COOKIE_AGE,
};
pub use signer::{
    Signer, SignerBuilder, TimestampSigner, Verified, DEFAULT_FUTURE_TOLERANCE, SIGNER_SALT,
    TIMESTAMP_SIGNER_SALT,
};
