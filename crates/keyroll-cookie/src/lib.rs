//! # keyroll-cookie
//!
//! Key rotation for the `cookie` crate's signed and private cookies, as
//! used by axum-extra's `SignedCookieJar` / `PrivateCookieJar`,
//! tower-sessions' `with_signed` / `with_private` id cookie, tower-cookies
//! and actix-web / actix-session: every one of them takes exactly one
//! `cookie::Key`.
//!
//! - [`CookieKeys`]: the formats under every live ring key, byte-compatible
//!   with `SignedJar` / `PrivateJar`; only the primary signs and seals.
//! - [`KeyMaterial`], [`cookie_key`]: how a ring secret becomes a
//!   `cookie::Key` (an app's existing 64-byte key goes in as its base64).
//! - [`CookieRing`]: the keys in force, following a ring file's reloads.
//! - [`RotateCookiesLayer`]: a tower layer in front of an unchanged app;
//!   `actix::RotateCookiesMiddleware` (feature `actix`) for actix-web.
//!
//! ```
//! use keyroll::{Role, Secret};
//! use keyroll_cookie::{cookie_key, CookieKeys, KeyMaterial};
//! use time::OffsetDateTime;
//!
//! let now = OffsetDateTime::now_utc();
//! let old = Secret::from("the-old-secret-of-at-least-32-bytes!!");
//! let new = Secret::from("the-new-secret-of-at-least-32-bytes!!");
//! let before = CookieKeys::new([(&old, Role::Primary, None)], KeyMaterial::Auto).expect("keys");
//! let cookie = before.sign("user=42");
//!
//! let after = CookieKeys::new(
//!     [(&new, Role::Primary, None), (&old, Role::Fallback, None)],
//!     KeyMaterial::Auto,
//! )
//! .expect("keys");
//! let v = after.resign_signed_at(&cookie, now).expect("verifies");
//! assert_eq!(v.role, Role::Fallback);
//! let fresh = v.value.expect("stale, so re-signed");
//! // What the app's own jar, given the new primary's key, accepts:
//! let key = cookie_key(&new, KeyMaterial::Auto).expect("key");
//! let mut jar = cookie::CookieJar::new();
//! jar.add_original(cookie::Cookie::new("c", fresh));
//! assert_eq!(jar.signed(&key).get("c").expect("accepted").value(), "user=42");
//! ```

mod keys;
mod layer;
mod ring;
mod rotate;

#[cfg(feature = "actix")]
pub mod actix;

pub use keys::{
    cookie_key, CookieError, CookieKeys, KeyError, KeyMaterial, DIGEST_B64_LEN, MASTER_KEY_B64_LEN,
    MASTER_KEY_LEN, SHORT_SECRET_SALT,
};
pub use layer::{ResponseFuture, RotateCookiesLayer, RotateCookiesService};
pub use ring::{CookieRing, RingLoadError};
pub use rotate::{CookieAttributes, CookieKind, RotateCookies};
