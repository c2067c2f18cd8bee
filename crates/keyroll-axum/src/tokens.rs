//! Password-reset tokens and Django-compatible signed cookies, under the running ring.

use std::time::Duration;

use std::sync::Arc;

use keyroll::{cookie_quote, PasswordResetTokens, ResetUser, SignedCookie, Verified, VerifyError};
use time::OffsetDateTime;

use crate::config::{find_cookie, CookieAttributes, SameSite, DEFAULT_MAX_COOKIE_LEN};
use crate::metrics;
use crate::ring::RingHandle;

/// Django's password-reset tokens, made under the primary key of the
/// running ring and checked against every live key of it: a link e-mailed
/// before a rotation keeps working until its key is retired.
#[derive(Clone, Debug)]
pub struct ResetTokens {
    ring: RingHandle,
    timeout: Option<Duration>,
}

impl ResetTokens {
    /// Tokens with Django's default timeout (three days).
    pub fn new(ring: RingHandle) -> Self {
        Self {
            ring,
            timeout: None,
        }
    }

    /// Sets the timeout (`PASSWORD_RESET_TIMEOUT`).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The tokens of the ring snapshot in force (prepared once per ring
    /// and timeout; one snapshot for the whole call).
    fn tokens(&self) -> Arc<PasswordResetTokens> {
        self.ring.snapshot().reset_tokens(self.timeout)
    }

    /// A token for `user`, under the primary key.
    pub fn make_at(&self, user: &ResetUser<'_>, now: OffsetDateTime) -> String {
        self.tokens().make_token_at(user, now)
    }

    /// Checks a token against every live key.
    ///
    /// # Errors
    /// [`VerifyError::BadSignature`] (wrong, forged, used, or its key retired)
    /// or [`VerifyError::Expired`].
    pub fn check_at(
        &self,
        user: &ResetUser<'_>,
        token: &str,
        now: OffsetDateTime,
    ) -> Result<Verified<()>, VerifyError> {
        let r = self.tokens().check_token_at(user, token, now);
        match &r {
            Ok(v) => metrics::verified(v.key_id, v.role),
            Err(e) => metrics::failed_with(e),
        }
        r
    }
}

/// A signed cookie read from a request.
#[derive(Clone, Debug)]
pub struct SignedValue {
    /// The value as the application set it.
    pub value: String,
    /// The key that verified it and its role.
    pub verified: Verified<()>,
    /// When it was signed by a non-primary key: the `Set-Cookie` value that
    /// re-issues it, signed by the primary, same attributes and timestamp,
    /// and no longer a lifetime. Send it with [`SignedValue::reissue_part`].
    pub reissue: Option<String>,
}

impl SignedValue {
    /// The re-issue (if any) as a response part: `(value.reissue_part(), body)`.
    pub fn reissue_part(&self) -> SetCookies {
        SetCookies(self.reissue.iter().cloned().collect())
    }
}

/// `Set-Cookie` headers as an axum response part: return it with the body
/// (`(set_cookies, body)`) instead of appending headers by hand.
///
/// ```
/// # use keyroll_axum::{RingHandle, SignedCookies, SetCookies};
/// # use keyroll::{KeyRing, Secret};
/// # let cookies = SignedCookies::new(RingHandle::new(KeyRing::new(Secret::from("s3cret")).expect("a non-empty secret")));
/// # let now = time::OffsetDateTime::now_utc();
/// let mut out = SetCookies::new();
/// out.push(cookies.set_at("theme", "dark", "", None, now).expect("a legal cookie"));
/// let response = axum::response::IntoResponse::into_response((out, "ok"));
/// assert_eq!(response.headers().get_all(http::header::SET_COOKIE).iter().count(), 1);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SetCookies(Vec<String>);

impl SetCookies {
    /// No cookies yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one `Set-Cookie` value (from [`SignedCookies::set_at`], say).
    pub fn push(&mut self, set_cookie: String) {
        self.0.push(set_cookie);
    }

    /// True when there is nothing to send.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl axum::response::IntoResponseParts for SetCookies {
    type Error = std::convert::Infallible;

    fn into_response_parts(
        self,
        mut res: axum::response::ResponseParts,
    ) -> Result<axum::response::ResponseParts, Self::Error> {
        for c in self.0 {
            // keyroll's own values are printable ASCII (quoted); skip any other.
            if let Ok(v) = http::HeaderValue::try_from(c) {
                res.headers_mut().append(http::header::SET_COOKIE, v);
            }
        }
        Ok(res)
    }
}

/// Why a signed cookie could not be set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CookieError {
    /// The name is empty or holds a character outside Python's cookie-name
    /// set (letters, digits and ``!#$%&'*+-.^_`|~:``), as `SimpleCookie` refuses.
    #[error("illegal cookie name: use letters, digits and !#$%&'*+-.^_`|~:")]
    IllegalName,
    /// The value holds a character past U+00FF, which no cookie can carry.
    #[error("a cookie value can hold only characters up to U+00FF")]
    IllegalValue,
}

/// Django-compatible signed cookies (`set_signed_cookie` / `get_signed_cookie`)
/// under the running ring, with secure default attributes (`Path=/`,
/// `HttpOnly`, `SameSite=Lax`, `Secure` unless [`SignedCookies::insecure_http`]).
///
/// Values are quoted as Django's `SimpleCookie` quotes them (so `;`, `,`,
/// quotes and spaces round-trip and can never add a cookie attribute) and
/// unquoted on reading, as Django's `parse_cookie` does.
#[derive(Clone, Debug)]
pub struct SignedCookies {
    ring: RingHandle,
    attributes: CookieAttributes,
    read_legacy: bool,
}

impl SignedCookies {
    /// Signed cookies under `ring`, secure defaults.
    pub fn new(ring: RingHandle) -> Self {
        Self {
            ring,
            attributes: CookieAttributes::default(),
            read_legacy: true,
        }
    }

    /// All the cookies' attributes at once (the same type the session
    /// cookie's [`SessionConfig::attributes`](crate::SessionConfig::attributes) takes).
    pub fn attributes(mut self, attributes: CookieAttributes) -> Self {
        self.attributes = attributes;
        self
    }

    /// Stops accepting cookies signed with Django's legacy salt form
    /// (`name ‖ salt`, before Django 5.2.15), which lets two cookies'
    /// name-and-salt pairs collide. Accepted by default, as Django 5.2 does;
    /// legacy cookies are re-issued in the v2 form when read, so once
    /// clients have been back (or the cookies' `max_age` has passed) turn
    /// this on.
    pub fn refuse_legacy_salt(mut self) -> Self {
        self.read_legacy = false;
        self
    }

    /// Drops `Secure` (plain-HTTP development only).
    pub fn insecure_http(mut self) -> Self {
        self.attributes.secure = false;
        self
    }

    /// The cookies' path.
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.attributes.path = path.into();
        self
    }

    /// The cookies' domain.
    pub fn domain(mut self, domain: impl Into<String>) -> Self {
        self.attributes.domain = Some(domain.into());
        self
    }

    /// `HttpOnly` (on) and `SameSite` (`Lax`).
    pub fn scripts(mut self, http_only: bool, same_site: SameSite) -> Self {
        self.attributes.http_only = http_only;
        self.attributes.same_site = same_site;
        self
    }

    /// The signer of the ring snapshot in force (prepared once per ring,
    /// name and salt; one snapshot for the whole call).
    fn signer(&self, name: &str, salt: &str) -> Option<Arc<SignedCookie>> {
        self.ring
            .snapshot()
            .signed_cookie(name, salt, self.read_legacy)
    }

    fn header(
        &self,
        name: &str,
        value: &str,
        max_age: Option<time::Duration>,
        expires: Option<OffsetDateTime>,
    ) -> Result<String, CookieError> {
        let legal_name = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~:".contains(c));
        if !legal_name {
            return Err(CookieError::IllegalName);
        }
        let value = cookie_quote(value).map_err(|_| CookieError::IllegalValue)?;
        Ok(self
            .attributes
            .set_cookie(name, value.into_owned(), max_age, expires))
    }

    /// The `Set-Cookie` value of cookie `name` holding `value`, signed at
    /// `now` with `salt` (Django's default salt is `""`); `max_age` `None`
    /// makes a browser-session cookie.
    ///
    /// # Errors
    /// [`CookieError`] for a name or value no cookie can carry.
    pub fn set_at(
        &self,
        name: &str,
        value: &str,
        salt: &str,
        max_age: Option<Duration>,
        now: OffsetDateTime,
    ) -> Result<String, CookieError> {
        let signed = self
            .signer(name, salt)
            .ok_or(CookieError::IllegalName)?
            .sign_at(value, now);
        let max_age = max_age.map(|d| time::Duration::try_from(d).unwrap_or(time::Duration::MAX));
        let expires = max_age.and_then(|m| now.checked_add(m));
        self.header(name, &signed, max_age, expires)
    }

    /// Reads and verifies cookie `name` (the first one, if sent twice) from
    /// `headers`. `max_age` refuses older signatures. `None` when absent or
    /// refused (the reason is counted in the failure metric).
    pub fn get_at(
        &self,
        headers: &http::HeaderMap,
        name: &str,
        salt: &str,
        max_age: Option<Duration>,
        now: OffsetDateTime,
    ) -> Option<SignedValue> {
        let raw = find_cookie(headers, name, DEFAULT_MAX_COOKIE_LEN)?;
        let signer = self.signer(name, salt)?;
        let value = match signer.unsign_at(&raw, max_age, now) {
            Ok(v) => v.map(str::to_owned),
            Err(e) => {
                metrics::failed_with(&e);
                return None;
            }
        };
        metrics::verified(value.key_id, value.role);
        let fresh = signer
            .resign_at(&raw, max_age, now)
            .ok()
            .and_then(|v| v.value);
        let reissue = fresh.and_then(|fresh| {
            let stamped = value
                .timestamp
                .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok());
            let (left, end) = match (max_age, stamped) {
                (Some(m), Some(t)) => {
                    let end = t.checked_add(time::Duration::try_from(m).ok()?)?;
                    let left = end - now;
                    if left <= time::Duration::ZERO {
                        return None;
                    }
                    (
                        Some(time::Duration::seconds(left.whole_seconds().max(1))),
                        Some(end),
                    )
                }
                _ => (None, None),
            };
            let header = self.header(name, &fresh, left, end).ok()?;
            metrics::resigned("signed_cookie");
            Some(header)
        });
        let Verified {
            value: text,
            key_id,
            role,
            timestamp,
        } = value;
        Some(SignedValue {
            value: text,
            verified: Verified {
                value: (),
                key_id,
                role,
                timestamp,
            },
            reissue,
        })
    }
}
