//! Signed cookies (`set_signed_cookie` / `get_signed_cookie`) and the messages cookie.

use std::time::Duration;

use time::OffsetDateTime;

use crate::error::{ConfigError, VerifyError};
use crate::object::ObjectSigner;
use crate::ring::KeyRing;
use crate::signer::{SignerBuilder, TimestampSigner, Verified};

/// Bytes Django puts before every secret for cookie signing.
pub const COOKIE_KEY_PREFIX: &[u8] = b"django.http.cookies";
/// Salt of the messages framework's cookie storage.
pub const MESSAGES_SALT: &str = "django.contrib.messages";

/// Which salt form a signed cookie is written with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CookieSaltForm {
    /// `django.http.cookies.v2:` ‖ len(salt) ‖ `:` ‖ salt ‖ name (Django 5.2.15+, 6.0+).
    #[default]
    V2,
    /// name ‖ salt (older Django releases).
    Legacy,
}

/// One signed cookie (a name and a salt), as Django's `set_signed_cookie`.
/// Reads both salt forms; writes the v2 form unless told otherwise.
///
/// ```
/// use keyroll::{KeyRing, Secret, SignedCookie};
/// use time::OffsetDateTime;
/// let ring = KeyRing::new(Secret::from("s3cret"));
/// let cookie = SignedCookie::new(&ring, "theme", "").expect("valid");
/// let now = OffsetDateTime::now_utc();
/// let value = cookie.sign_at("dark", now);
/// assert_eq!(cookie.unsign_at(&value, None, now).expect("ok").value, "dark");
/// ```
#[derive(Clone, Debug)]
pub struct SignedCookie {
    v2: TimestampSigner,
    legacy: TimestampSigner,
    write: CookieSaltForm,
}

impl SignedCookie {
    /// The signer of cookie `name` with `salt` (Django's default salt is `""`).
    ///
    /// # Errors
    /// Never for the default options; kept fallible for future options.
    pub fn new(ring: &KeyRing, name: &str, salt: &str) -> Result<Self, ConfigError> {
        Self::with_builder(ring, name, salt, SignerBuilder::new())
    }

    /// With signer options (limits, future tolerance). Salt and separator are
    /// fixed by the format.
    ///
    /// # Errors
    /// [`ConfigError`] for invalid options.
    pub fn with_builder(
        ring: &KeyRing,
        name: &str,
        salt: &str,
        builder: SignerBuilder,
    ) -> Result<Self, ConfigError> {
        let base = builder.sep(":").key_prefix(COOKIE_KEY_PREFIX);
        // Python's len() counts code points.
        let v2_salt = format!(
            "django.http.cookies.v2:{}:{salt}{name}",
            salt.chars().count()
        );
        Ok(Self {
            v2: base.clone().salt(v2_salt).build_timestamp(ring)?,
            legacy: base.salt(format!("{name}{salt}")).build_timestamp(ring)?,
            write: CookieSaltForm::V2,
        })
    }

    /// Writes the legacy salt form (for Django older than 5.2.15).
    pub fn writing(mut self, form: CookieSaltForm) -> Self {
        self.write = form;
        self
    }

    /// The cookie value for `value`, stamped with `now`.
    pub fn sign_at(&self, value: &str, now: OffsetDateTime) -> String {
        self.sign_with_timestamp(value, now.unix_timestamp())
    }

    /// The cookie value with an explicit timestamp.
    pub fn sign_with_timestamp(&self, value: &str, unix_seconds: i64) -> String {
        match self.write {
            CookieSaltForm::V2 => self.v2.sign_with_timestamp(value, unix_seconds),
            CookieSaltForm::Legacy => self.legacy.sign_with_timestamp(value, unix_seconds),
        }
    }

    /// Verifies with the v2 salt, then, on a bad signature (not on expiry),
    /// with the legacy salt, as Django 5.2 does.
    ///
    /// # Errors
    /// Any [`VerifyError`].
    pub fn unsign_at<'t>(
        &self,
        value: &'t str,
        max_age: Option<Duration>,
        now: OffsetDateTime,
    ) -> Result<Verified<&'t str>, VerifyError> {
        match self.v2.unsign_at(value, max_age, now) {
            Err(VerifyError::BadSignature) => self.legacy.unsign_at(value, max_age, now),
            other => other,
        }
    }

    /// Verifies; when stale (or in the salt form not being written), re-signs
    /// with the primary key in the written form, keeping the timestamp.
    ///
    /// # Errors
    /// Any [`VerifyError`].
    pub fn resign_at(
        &self,
        value: &str,
        max_age: Option<Duration>,
        now: OffsetDateTime,
    ) -> Result<Verified<Option<String>>, VerifyError> {
        let in_written_form = match self.write {
            CookieSaltForm::V2 => self.v2.unsign_at(value, max_age, now).is_ok(),
            CookieSaltForm::Legacy => self.legacy.unsign_at(value, max_age, now).is_ok(),
        };
        let v = self.unsign_at(value, max_age, now)?;
        let redo = v.is_stale() || !in_written_form;
        // Re-sign the exact `value:timestamp` text: the timestamp is kept as written.
        let writer = match self.write {
            CookieSaltForm::V2 => &self.v2,
            CookieSaltForm::Legacy => &self.legacy,
        };
        let stamped = writer.signed_part(value);
        Ok(v.map(|_| redo.then(|| writer.signer().sign(stamped))))
    }
}

/// The messages framework's cookie (`CookieStorage`): a compressed signed
/// object under the cookie signer with salt `django.contrib.messages`.
pub fn messages_cookie(ring: &KeyRing) -> ObjectSigner {
    let signer = SignerBuilder::new()
        .salt(MESSAGES_SALT)
        .key_prefix(COOKIE_KEY_PREFIX)
        .build_timestamp_colon(ring);
    ObjectSigner::from_timestamp_signer(signer, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use time::macros::datetime;

    #[test]
    fn legacy_cookies_are_read_and_rewritten_as_v2() {
        let ring = KeyRing::new(Secret::from("k"));
        let now = datetime!(2026-11-28 12:00 UTC);
        let c = SignedCookie::new(&ring, "c", "s").expect("valid");
        let legacy = c.clone().writing(CookieSaltForm::Legacy).sign_at("v", now);
        assert_ne!(legacy, c.sign_at("v", now));
        let r = c.resign_at(&legacy, None, now).expect("reads legacy");
        assert_eq!(r.value.as_deref(), Some(c.sign_at("v", now).as_str()));
        assert_eq!(
            c.resign_at(&c.sign_at("v", now), None, now)
                .expect("ok")
                .value,
            None
        );
    }
}
