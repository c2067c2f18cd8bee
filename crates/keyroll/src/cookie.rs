//! Signed cookies (`set_signed_cookie` / `get_signed_cookie`), the messages
//! cookie, and cookie values quoted as Django's `SimpleCookie` quotes them.

use std::borrow::Cow;
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
/// let ring = KeyRing::new(Secret::from("s3cret")).expect("a non-empty secret");
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
    read_legacy: bool,
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
            read_legacy: true,
        })
    }

    /// Writes the legacy salt form (for Django older than 5.2.15).
    pub fn writing(mut self, form: CookieSaltForm) -> Self {
        self.write = form;
        if form == CookieSaltForm::Legacy {
            self.read_legacy = true;
        }
        self
    }

    /// Whether cookies signed with the legacy salt form are accepted (on by
    /// default, as Django 5.2 does). A cookie whose name and salt run
    /// together (`name ‖ salt`) can collide with another cookie's, which is
    /// why Django moved to the v2 form; once every client has been re-issued
    /// v2 cookies (they are re-signed on read) turn this off. Writing the
    /// legacy form keeps reading it.
    pub fn reading_legacy(mut self, read: bool) -> Self {
        self.read_legacy = read || self.write == CookieSaltForm::Legacy;
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
            Err(VerifyError::BadSignature) if self.read_legacy => {
                self.legacy.unsign_at(value, max_age, now)
            }
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

/// Characters Python's `http.cookies` leaves unquoted (`_LegalChars`).
fn is_legal_cookie_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~:".contains(c)
}

/// Characters kept as they are inside a quoted value (`_UnescapedChars`).
fn is_unescaped_cookie_char(c: char) -> bool {
    is_legal_cookie_char(c) || " ()/<=>?@[]{}".contains(c)
}

/// A cookie value that cannot be sent: it holds a character past U+00FF
/// (Django cannot send it either: headers are Latin-1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a cookie value can hold only characters up to U+00FF")]
pub struct CookieValueError;

/// `value` as Python's `SimpleCookie` writes it into `Set-Cookie`
/// (`http.cookies._quote`): as it is when every character is legal, else in
/// double quotes with `"` and `\` backslash-escaped and every other
/// character outside `_UnescapedChars` (`;`, `,`, controls, Latin-1) as
/// `\ooo` octal. The result is printable ASCII, so a value can never end the
/// cookie or add an attribute (`dark; Domain=evil`). Django reads it back
/// with [`cookie_unquote`].
///
/// # Errors
/// [`CookieValueError`] for a character past U+00FF.
pub fn cookie_quote(value: &str) -> Result<Cow<'_, str>, CookieValueError> {
    if !value.is_empty() && value.chars().all(is_legal_cookie_char) {
        return Ok(Cow::Borrowed(value));
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if is_unescaped_cookie_char(c) => out.push(c),
            c if u32::from(c) <= 0xFF => {
                use std::fmt::Write as _;
                let _ = write!(out, "\\{:03o}", u32::from(c));
            }
            _ => return Err(CookieValueError),
        }
    }
    out.push('"');
    Ok(Cow::Owned(out))
}

/// A cookie value as Django's `parse_cookie` reads it
/// (`http.cookies._unquote`): a value in double quotes loses them, and
/// `\ooo` (octal, first digit 0-3) and `\x` escapes are undone; anything
/// else is returned as it is.
pub fn cookie_unquote(value: &str) -> Cow<'_, str> {
    // Both quotes must be there (a lone `"` is left as it is).
    let Some(inner) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) else {
        return Cow::Borrowed(value);
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let rest = chars.clone().take(3).collect::<Vec<char>>();
        let octal = match rest.as_slice() {
            [a @ '0'..='3', b @ '0'..='7', c @ '0'..='7'] => char::from_u32(
                (a.to_digit(8).unwrap_or(0) << 6)
                    | (b.to_digit(8).unwrap_or(0) << 3)
                    | c.to_digit(8).unwrap_or(0),
            ),
            _ => None,
        };
        match (octal, chars.peek().copied()) {
            (Some(o), _) => {
                out.push(o);
                chars.nth(2);
            }
            // Python's `.` does not match a newline: `\` then `\n` stay.
            (None, Some(next)) if next != '\n' => {
                out.push(next);
                chars.next();
            }
            (None, _) => out.push('\\'),
        }
    }
    Cow::Owned(out)
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
    fn legacy_cookies_are_refused_once_reading_them_is_switched_off() {
        let ring = KeyRing::new(Secret::from("k")).expect("a non-empty secret");
        let now = OffsetDateTime::from_unix_timestamp(1_700_000_000).expect("time");
        let c = SignedCookie::new(&ring, "n", "s").expect("ok");
        let legacy = c.clone().writing(CookieSaltForm::Legacy).sign_at("v", now);
        let strict = c.clone().reading_legacy(false);
        assert_eq!(
            strict.unsign_at(&legacy, None, now).map(|v| v.value),
            Err(VerifyError::BadSignature)
        );
        assert!(strict.resign_at(&legacy, None, now).is_err());
        assert!(
            c.unsign_at(&legacy, None, now).is_ok(),
            "the default reads it"
        );
        let v2 = strict.sign_at("v", now);
        assert_eq!(strict.unsign_at(&v2, None, now).expect("v2").value, "v");
    }

    #[test]
    fn reading_legacy_true_keeps_legacy_cookies_readable_and_writing_legacy_always_reads_them() {
        let ring = KeyRing::new(Secret::from("k")).expect("a non-empty secret");
        let now = OffsetDateTime::from_unix_timestamp(1_700_000_000).expect("time");
        let c = SignedCookie::new(&ring, "n", "s").expect("ok");
        let legacy = c.clone().writing(CookieSaltForm::Legacy).sign_at("v", now);
        let explicit = c.clone().reading_legacy(true);
        assert_eq!(
            explicit.unsign_at(&legacy, None, now).expect("read").value,
            "v"
        );
        // A signer that writes the legacy form cannot refuse to read it.
        let writer = c.writing(CookieSaltForm::Legacy).reading_legacy(false);
        assert_eq!(
            writer.unsign_at(&legacy, None, now).expect("read").value,
            "v"
        );
    }

    #[test]
    fn cookie_values_are_quoted_as_python_quotes_them() {
        // Expected values from CPython 3.11's http.cookies._quote.
        for (value, quoted) in [
            ("dark", "dark"),
            ("a:b-c_d.e~", "a:b-c_d.e~"),
            ("", "\"\""),
            ("dark; Domain=evil", "\"dark\\073 Domain=evil\""),
            ("a,b", "\"a\\054b\""),
            ("say \"hi\"", "\"say \\\"hi\\\"\""),
            ("back\\slash", "\"back\\\\slash\""),
            ("tab\there", "\"tab\\011here\""),
            ("caf\u{e9}", "\"caf\\351\""),
            ("(x)/<y>?@[z]{w}=", "\"(x)/<y>?@[z]{w}=\""),
        ] {
            assert_eq!(cookie_quote(value).expect("quotable"), quoted, "{value:?}");
            assert_eq!(cookie_unquote(quoted), value, "{quoted:?}");
        }
        assert_eq!(cookie_quote("snow\u{2603}"), Err(CookieValueError));
    }

    #[test]
    fn cookie_unquote_leaves_what_python_leaves() {
        for (raw, read) in [
            ("plain", "plain"),
            ("\"", "\""),
            ("\"unterminated", "\"unterminated"),
            ("\"\\400\"", "400"),
            ("\"\\0\"", "0"),
            ("\"end\\\"", "end\\"),
            ("\"\\\n\"", "\\\n"),
            ("\"\\q\"", "q"),
        ] {
            assert_eq!(cookie_unquote(raw), read, "{raw:?}");
        }
    }

    #[test]
    fn legacy_cookies_are_read_and_rewritten_as_v2() {
        let ring = KeyRing::new(Secret::from("k")).expect("a non-empty secret");
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
