//! Session cookie settings, secure by default.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

pub use cookie::SameSite;
use time::OffsetDateTime;

/// Where a request's "now" comes from (signing time, expiry, key retirement).
///
/// The system clock by default; tests and drills can substitute their own
/// with [`SessionConfig::clock`].
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> OffsetDateTime + Send + Sync>);

impl Clock {
    /// The system clock (UTC).
    pub fn system() -> Self {
        Self(Arc::new(OffsetDateTime::now_utc))
    }

    /// A clock that calls `f`.
    pub fn from_fn(f: impl Fn() -> OffsetDateTime + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }

    /// The instant now.
    pub fn now(&self) -> OffsetDateTime {
        (self.0)()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::system()
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Clock")
    }
}

/// Longest session cookie value read or written (browsers keep about 4 KiB per cookie).
pub const DEFAULT_MAX_COOKIE_LEN: usize = 4096;

/// The attributes of a cookie keyroll sets — the session cookie and signed
/// cookies alike: one set of secure defaults (`Path=/`, `HttpOnly`,
/// `SameSite=Lax`, `Secure`, no `Domain`), one way to write them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CookieAttributes {
    /// `Path` (`/`).
    pub path: String,
    /// `Domain` (none: this host only).
    pub domain: Option<String>,
    /// `Secure` (on; off only for plain-HTTP development).
    pub secure: bool,
    /// `HttpOnly` (on).
    pub http_only: bool,
    /// `SameSite` (`Lax`).
    pub same_site: SameSite,
}

impl Default for CookieAttributes {
    fn default() -> Self {
        Self {
            path: "/".into(),
            domain: None,
            secure: true,
            http_only: true,
            same_site: SameSite::Lax,
        }
    }
}

impl CookieAttributes {
    /// The `Set-Cookie` value of `name=value` with these attributes and the
    /// lifetime given (`None`: a browser-session cookie). `value` is written
    /// as it is: callers quote it if it may need it.
    pub(crate) fn set_cookie(
        &self,
        name: &str,
        value: String,
        max_age: Option<time::Duration>,
        expires: Option<time::OffsetDateTime>,
    ) -> String {
        let mut c = cookie::Cookie::build((name.to_owned(), value))
            .path(self.path.clone())
            .http_only(self.http_only)
            .same_site(self.same_site)
            .secure(self.secure);
        if let Some(d) = &self.domain {
            c = c.domain(d.clone());
        }
        if let Some(m) = max_age {
            c = c.max_age(m);
        }
        if let Some(e) = expires {
            c = c.expires(e);
        }
        c.build().to_string()
    }
}

/// How the session cookie is named and scoped, and when sessions are saved.
///
/// Defaults follow Django (`sessionid`, path `/`, two weeks) with secure
/// attributes: `HttpOnly`, `SameSite=Lax` and `Secure`. `Secure` is dropped
/// only by [`SessionConfig::insecure_http`], for plain-HTTP development.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    pub(crate) cookie_name: String,
    pub(crate) attributes: CookieAttributes,
    pub(crate) max_age: Duration,
    pub(crate) save_every_request: bool,
    pub(crate) max_cookie_len: usize,
    pub(crate) clock: Clock,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            cookie_name: "sessionid".into(),
            attributes: CookieAttributes::default(),
            max_age: keyroll::DEFAULT_SESSION_COOKIE_AGE,
            save_every_request: false,
            max_cookie_len: DEFAULT_MAX_COOKIE_LEN,
            clock: Clock::system(),
        }
    }
}

impl SessionConfig {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// The cookie's name (`sessionid`).
    pub fn cookie_name(mut self, name: impl Into<String>) -> Self {
        self.cookie_name = name.into();
        self
    }

    /// The cookie's path (`/`).
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.attributes.path = path.into();
        self
    }

    /// The cookie's domain (none: this host only).
    pub fn domain(mut self, domain: impl Into<String>) -> Self {
        self.attributes.domain = Some(domain.into());
        self
    }

    /// `HttpOnly` (on).
    pub fn http_only(mut self, on: bool) -> Self {
        self.attributes.http_only = on;
        self
    }

    /// `SameSite` (`Lax`).
    pub fn same_site(mut self, same_site: SameSite) -> Self {
        self.attributes.same_site = same_site;
        self
    }

    /// Drops the `Secure` attribute so the cookie also travels over plain
    /// HTTP. Only for development and tests on loopback.
    pub fn insecure_http(mut self) -> Self {
        self.attributes.secure = false;
        self
    }

    /// All the cookie's attributes at once.
    pub fn attributes(mut self, attributes: CookieAttributes) -> Self {
        self.attributes = attributes;
        self
    }

    /// The session cookie's attributes.
    pub fn cookie_attributes(&self) -> &CookieAttributes {
        &self.attributes
    }

    /// How long a session lives (Django's `SESSION_COOKIE_AGE`, two weeks);
    /// in signed-cookie mode also the age limit of the signature.
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }

    /// Save (and refresh the expiry of) every non-empty session on every
    /// response, not just modified ones (Django's `SESSION_SAVE_EVERY_REQUEST`).
    pub fn save_every_request(mut self, on: bool) -> Self {
        self.save_every_request = on;
        self
    }

    /// Longest cookie value read or written ([`DEFAULT_MAX_COOKIE_LEN`]).
    /// A longer incoming cookie is ignored (a fresh session); a longer
    /// signed-cookie session is refused with an error.
    pub fn max_cookie_len(mut self, len: usize) -> Self {
        self.max_cookie_len = len;
        self
    }

    /// Where each request's "now" comes from (the system clock). Every
    /// time-dependent check of a request (signature age, session expiry, a
    /// fallback key's `retire_after`) uses the instant this clock gives when
    /// the request starts.
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// A `Set-Cookie` value for `value` with these attributes and the given lifetime.
    pub(crate) fn set_cookie(
        &self,
        value: String,
        max_age: time::Duration,
        expires: time::OffsetDateTime,
    ) -> String {
        self.attributes
            .set_cookie(&self.cookie_name, value, Some(max_age), Some(expires))
    }

    /// A `Set-Cookie` value that removes the cookie.
    pub(crate) fn delete_cookie(&self) -> String {
        self.set_cookie(
            String::new(),
            time::Duration::ZERO,
            time::OffsetDateTime::UNIX_EPOCH,
        )
    }
}

/// Upper bound on the Cookie header bytes scanned for one cookie.
const MAX_COOKIE_HEADER_SCAN: usize = 64 * 1024;

/// The first cookie called `name` in the request's Cookie headers, if its
/// value is at most `max_len` bytes. Later duplicates are ignored; an
/// over-long value counts as no cookie.
///
/// Headers are split into `;`-separated `name=value` pairs as bytes, so a
/// byte that is not UTF-8 in another cookie (a Latin-1 value, say) does not
/// hide this one — Django reads the header as Latin-1 and finds it too. A
/// `name` cookie whose own value is not UTF-8 counts as no cookie.
pub(crate) fn find_cookie(headers: &http::HeaderMap, name: &str, max_len: usize) -> Option<String> {
    let mut scanned = 0usize;
    for header in headers.get_all(http::header::COOKIE) {
        let bytes = header.as_bytes();
        scanned = scanned.saturating_add(bytes.len());
        if scanned > MAX_COOKIE_HEADER_SCAN {
            return None;
        }
        for pair in bytes.split(|&b| b == b';') {
            let Some(eq) = pair.iter().position(|&b| b == b'=') else {
                continue;
            };
            let (k, v) = pair.split_at(eq);
            if trim(k) != name.as_bytes() {
                continue;
            }
            let v = trim(v.get(1..).unwrap_or_default());
            if v.is_empty() || v.len() > max_len {
                return None;
            }
            // Django's parse_cookie: a quoted value is unquoted and its
            // escapes undone (`http.cookies._unquote`).
            let value = keyroll::cookie_unquote(std::str::from_utf8(v).ok()?);
            return (!value.is_empty()).then(|| value.into_owned());
        }
    }
    None
}

/// `b` without leading and trailing whitespace as Django sees it: Python's
/// `str.strip()` of the header decoded as Latin-1, i.e. the bytes that are
/// whitespace as Latin-1 characters (ASCII space and `\t\n\x0b\x0c\r`,
/// the separators `\x1c`–`\x1f`, NEL `\x85` and NBSP `\xa0`).
fn trim(b: &[u8]) -> &[u8] {
    let ws = |c: &u8| matches!(c, b' ' | b'\t'..=b'\r' | 0x1c..=0x1f | 0x85 | 0xa0);
    let start = b.iter().position(|c| !ws(c)).unwrap_or(b.len());
    let end = b.iter().rposition(|c| !ws(c)).map_or(start, |e| e + 1);
    b.get(start..end).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for v in values {
            h.append(http::header::COOKIE, v.parse().expect("header"));
        }
        h
    }

    #[test]
    fn latin1_whitespace_is_trimmed_as_django_strips_it() {
        let mut h = http::HeaderMap::new();
        h.append(
            http::header::COOKIE,
            http::HeaderValue::from_bytes(b"theme=caf\xe9; sessionid\xa0=\x85abc\xa0 ; x=1")
                .expect("header"),
        );
        assert_eq!(find_cookie(&h, "sessionid", 100).as_deref(), Some("abc"));
    }

    #[test]
    fn first_of_duplicates_wins_and_lengths_are_bounded() {
        let h = headers(&["a=1; sessionid=first; sessionid=second", "sessionid=third"]);
        assert_eq!(find_cookie(&h, "sessionid", 100).as_deref(), Some("first"));
        let h = headers(&["sessionid=\"quoted\""]);
        assert_eq!(find_cookie(&h, "sessionid", 100).as_deref(), Some("quoted"));
        let long = format!("sessionid={}", "x".repeat(200));
        assert_eq!(find_cookie(&headers(&[&long]), "sessionid", 100), None);
        let huge = format!("junk={}; sessionid=abc", "y".repeat(70_000));
        assert_eq!(find_cookie(&headers(&[&huge]), "sessionid", 100), None);
        assert_eq!(
            find_cookie(&headers(&["sessionidx=1"]), "sessionid", 100),
            None
        );
    }

    #[test]
    fn defaults_are_secure() {
        let c = SessionConfig::default();
        let s = c.set_cookie(
            "v".into(),
            time::Duration::seconds(5),
            time::OffsetDateTime::UNIX_EPOCH,
        );
        for want in [
            "sessionid=v",
            "HttpOnly",
            "SameSite=Lax",
            "Secure",
            "Path=/",
            "Max-Age=5",
        ] {
            assert!(s.contains(want), "{s}");
        }
        assert!(!c
            .insecure_http()
            .set_cookie(
                "v".into(),
                time::Duration::ZERO,
                time::OffsetDateTime::UNIX_EPOCH
            )
            .contains("Secure"));
    }
}
