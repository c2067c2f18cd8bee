//! Django's `Signer` (`value:signature`) and `TimestampSigner`
//! (`value:timestamp:signature`), verifying against a whole key ring.

use std::time::Duration;

use time::OffsetDateTime;

use crate::crypto::{ct_eq, Algorithm, PreparedKey, PreparedKeys};
use crate::encoding::{b62_decode_saturating, b62_encode, b64_encode_into};
use crate::error::{ConfigError, VerifyError};
use crate::limits::Limits;
use crate::ring::{KeyRing, Role};
use crate::secret::KeyId;

/// Django's default salt for `Signer`.
pub const SIGNER_SALT: &str = "django.core.signing.Signer";
/// Django's default salt for `TimestampSigner`.
pub const TIMESTAMP_SIGNER_SALT: &str = "django.core.signing.TimestampSigner";
/// Default tolerance for timestamps in the future (when a `max_age` applies): one day.
pub const DEFAULT_FUTURE_TOLERANCE: Duration = Duration::from_secs(86_400);

/// A successfully verified value, with the key that verified it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified<T> {
    /// The value.
    pub value: T,
    /// Id of the key whose signature matched.
    pub key_id: KeyId,
    /// Role of that key. Anything but [`Role::Primary`] is stale and should be re-signed.
    pub role: Role,
    /// The signing time (Unix seconds) for timestamped formats.
    pub timestamp: Option<i64>,
}

impl<T> Verified<T> {
    /// True when a non-primary key matched: the caller should re-sign.
    pub fn is_stale(&self) -> bool {
        self.role != Role::Primary
    }

    /// Keeps the key and timestamp, replaces the value.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Verified<U> {
        Verified {
            value: f(self.value),
            key_id: self.key_id,
            role: self.role,
            timestamp: self.timestamp,
        }
    }
}

/// Options shared by every signer: salt, separator, algorithm and limits.
///
/// ```
/// use keyroll::{KeyRing, Secret, SignerBuilder, Algorithm};
/// let ring = KeyRing::new(Secret::from("predictable-secret")).expect("a non-empty secret");
/// let signer = SignerBuilder::new().algorithm(Algorithm::Sha512).build(&ring).expect("valid");
/// assert_eq!(
///     signer.sign("hello"),
///     "hello:Usf3uVQOZ9m6uPfVonKR-EBXjPe7bjMbp3_Fq8MfsptgkkM1ojidN0BxYaT5HAEN1VzO9_jVu7R-VkqknHYNvw"
/// );
/// ```
#[derive(Clone, Debug)]
pub struct SignerBuilder {
    salt: Option<String>,
    sep: String,
    algorithm: Algorithm,
    limits: Limits,
    key_prefix: Vec<u8>,
    future_tolerance: Option<Duration>,
}

impl Default for SignerBuilder {
    fn default() -> Self {
        Self {
            salt: None,
            sep: ":".to_owned(),
            algorithm: Algorithm::Sha256,
            limits: Limits::default(),
            key_prefix: Vec::new(),
            future_tolerance: Some(DEFAULT_FUTURE_TOLERANCE),
        }
    }
}

impl SignerBuilder {
    /// Django's defaults: separator `:`, sha256, the class's default salt.
    pub fn new() -> Self {
        Self::default()
    }

    /// The salt (namespace) of the signatures.
    pub fn salt(mut self, salt: impl Into<String>) -> Self {
        self.salt = Some(salt.into());
        self
    }

    /// The separator between value and signature.
    pub fn sep(mut self, sep: impl Into<String>) -> Self {
        self.sep = sep.into();
        self
    }

    /// The hash function.
    pub fn algorithm(mut self, algorithm: Algorithm) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// Decoding limits.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// How far in the future a timestamp may lie when a `max_age` is checked
    /// (`None`: no bound, as Django). Default one day.
    pub fn future_tolerance(mut self, tolerance: Option<Duration>) -> Self {
        self.future_tolerance = tolerance;
        self
    }

    pub(crate) fn has_salt(&self) -> bool {
        self.salt.is_some()
    }

    /// A `TimestampSigner` with Django's `:` separator, which needs no check
    /// (for formats that fix the separator: sessions, the messages cookie).
    pub(crate) fn build_timestamp_colon(&self, ring: &KeyRing) -> TimestampSigner {
        let b = self.clone().sep(":");
        TimestampSigner {
            inner: Signer::with_salt_of(&b, ring, TIMESTAMP_SIGNER_SALT),
            future_tolerance: b.future_tolerance,
        }
    }

    /// Bytes put before every secret (Django's cookie signer uses `django.http.cookies`).
    pub(crate) fn key_prefix(mut self, prefix: &[u8]) -> Self {
        self.key_prefix = prefix.to_vec();
        self
    }

    /// A `Signer` over `ring`.
    ///
    /// # Errors
    /// [`ConfigError::UnsafeSeparator`] for a separator Django refuses.
    pub fn build(&self, ring: &KeyRing) -> Result<Signer, ConfigError> {
        Signer::from_builder(self, ring, SIGNER_SALT)
    }

    /// A `TimestampSigner` over `ring`.
    ///
    /// # Errors
    /// [`ConfigError::UnsafeSeparator`] for a separator Django refuses.
    pub fn build_timestamp(&self, ring: &KeyRing) -> Result<TimestampSigner, ConfigError> {
        Ok(TimestampSigner {
            inner: Signer::from_builder(self, ring, TIMESTAMP_SIGNER_SALT)?,
            future_tolerance: self.future_tolerance,
        })
    }
}

/// Django's `Signer`: `value ‖ sep ‖ base64(salted HMAC(salt ‖ "signer", value))`.
///
/// Signs with the ring's primary key only; verifies with every live key in
/// ring order and says which matched.
///
/// ```
/// use keyroll::{KeyRing, Secret, Signer, Role};
/// use time::OffsetDateTime;
/// let old = KeyRing::new(Secret::from("my-other-secret")).expect("a non-empty secret");
/// let token = Signer::new(&old).sign("My string");
/// assert_eq!(token, "My string:o3DrrsT6JRB73t-HDymfDNbTSxfMlom2d8TiUlb1hWY");
///
/// let ring = KeyRing::new(Secret::from("new")).expect("a non-empty secret").with_fallback(Secret::from("my-other-secret"), None).expect("ring");
/// let signer = Signer::new(&ring);
/// let v = signer.unsign_at(&token, OffsetDateTime::now_utc()).expect("verifies");
/// assert_eq!((v.value, v.role), ("My string", Role::Fallback));
/// ```
#[derive(Clone, Debug)]
pub struct Signer {
    sep: String,
    keys: PreparedKeys,
    limits: Limits,
    sig_len: usize,
}

impl Signer {
    /// A signer with Django's defaults (salt `django.core.signing.Signer`, `:`, sha256).
    pub fn new(ring: &KeyRing) -> Self {
        let b = SignerBuilder::new();
        let key_salt = format!("{SIGNER_SALT}signer");
        Self::prepared(&b, ring, key_salt.as_bytes())
    }

    fn from_builder(
        b: &SignerBuilder,
        ring: &KeyRing,
        default_salt: &str,
    ) -> Result<Self, ConfigError> {
        if b.sep.is_empty()
            || b.sep.bytes().all(|c| {
                c.is_ascii_alphanumeric()
                    || matches!(c, b'-' | b'_' | b'=' | b'[' | b'\\' | b']' | b'^' | b'`')
            })
        {
            // Django's pattern is `^[A-z0-9-_=]*$`; `A-z` also spans `[\]^_` and the backtick.
            return Err(ConfigError::UnsafeSeparator(b.sep.clone()));
        }
        Ok(Self::with_salt_of(b, ring, default_salt))
    }

    /// The signer for a builder whose separator is known to be safe.
    fn with_salt_of(b: &SignerBuilder, ring: &KeyRing, default_salt: &str) -> Self {
        // Django: `salt or default`, so an empty salt means the default.
        let salt = b
            .salt
            .as_deref()
            .filter(|s| !s.is_empty())
            .unwrap_or(default_salt);
        let key_salt = format!("{salt}signer");
        Self::prepared(b, ring, key_salt.as_bytes())
    }

    fn prepared(b: &SignerBuilder, ring: &KeyRing, key_salt: &[u8]) -> Self {
        let keys = PreparedKeys::derive(ring, b.algorithm, key_salt, &b.key_prefix);
        Self {
            sep: b.sep.clone(),
            keys,
            limits: b.limits,
            sig_len: (b.algorithm.output_len() * 4).div_ceil(3),
        }
    }

    /// The separator.
    pub fn sep(&self) -> &str {
        &self.sep
    }

    /// The limits this signer enforces.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Id of the key that signs.
    pub fn primary_id(&self) -> KeyId {
        self.keys.primary().id
    }

    /// The signature of `value` under the primary key.
    pub fn signature(&self, value: &str) -> String {
        let mut out = String::with_capacity(self.sig_len);
        b64_encode_into(
            self.keys.primary().mac.tag(&[value.as_bytes()]).as_bytes(),
            &mut out,
        );
        out
    }

    /// `value ‖ sep ‖ signature`, signed by the primary key.
    pub fn sign(&self, value: &str) -> String {
        self.sign_with(value, None)
    }

    /// Verifies `token` against every key live at `now`; returns the value
    /// before the last separator.
    ///
    /// # Errors
    /// [`VerifyError::TooLarge`] for a token over the length limit,
    /// [`VerifyError::BadSignature`] when no key matches or there is no separator.
    pub fn unsign_at<'t>(
        &self,
        token: &'t str,
        now: OffsetDateTime,
    ) -> Result<Verified<&'t str>, VerifyError> {
        self.unsign_keeping_primary_at(token, now).map(|(v, _)| v)
    }

    /// [`Signer::unsign_at`], and the primary's signature of the value when
    /// it was computed on the way (the primary is tried first): a re-sign
    /// then costs no second MAC of the same bytes under the same key.
    fn unsign_keeping_primary_at<'t>(
        &self,
        token: &'t str,
        now: OffsetDateTime,
    ) -> Result<(Verified<&'t str>, Option<PrimarySignature>), VerifyError> {
        if token.len() > self.limits.max_token_len() {
            return Err(VerifyError::TooLarge {
                limit: crate::error::Limit::TokenLength,
                max: self.limits.max_token_len(),
            });
        }
        let at = last_sep(token, &self.sep).ok_or(VerifyError::BadSignature)?;
        let value = token.get(..at).ok_or(VerifyError::BadSignature)?;
        let sig = token
            .get(at + self.sep.len()..)
            .ok_or(VerifyError::BadSignature)?;
        let (key, primary) = self.matching_key(value.as_bytes(), sig.as_bytes(), now)?;
        let verified = Verified {
            value,
            key_id: key.id,
            role: key.role,
            timestamp: None,
        };
        Ok((verified, primary))
    }

    /// The key whose signature of `value` is `sig`, and the primary's
    /// signature of `value` if the primary was tried.
    fn matching_key(
        &self,
        value: &[u8],
        sig: &[u8],
        now: OffsetDateTime,
    ) -> Result<(&PreparedKey, Option<PrimarySignature>), VerifyError> {
        if sig.len() != self.sig_len {
            // No key can produce a signature of another length.
            return Err(VerifyError::BadSignature);
        }
        let primary_mac = &self.keys.primary().mac;
        let mut primary = None;
        let mut buf = [0u8; 88];
        let key = self
            .keys
            .find_at(now, |mac| {
                let tag = mac.tag(&[value]);
                let n = encode_b64_slice(tag.as_bytes(), &mut buf);
                if std::ptr::eq(mac, primary_mac) {
                    primary = Some(PrimarySignature { buf, len: n });
                }
                ct_eq(buf.get(..n).unwrap_or(&[]), sig)
            })
            .ok_or(VerifyError::BadSignature)?;
        Ok((key, primary))
    }

    /// `value ‖ sep ‖` the primary's signature of `value`: `signature` when
    /// it was computed already, else computed now.
    fn sign_with(&self, value: &str, signature: Option<PrimarySignature>) -> String {
        let mut out = String::with_capacity(value.len() + self.sep.len() + self.sig_len);
        out.push_str(value);
        out.push_str(&self.sep);
        match signature.as_ref().and_then(PrimarySignature::as_str) {
            Some(sig) => out.push_str(sig),
            None => b64_encode_into(
                self.keys.primary().mac.tag(&[value.as_bytes()]).as_bytes(),
                &mut out,
            ),
        }
        out
    }

    /// Verifies `token`; when a non-primary key matched, signs the same value
    /// with the primary. `value` of the result is `Some(new token)` when stale,
    /// `None` when the token is already signed by the primary.
    ///
    /// # Errors
    /// As [`Signer::unsign_at`].
    pub fn resign_at(
        &self,
        token: &str,
        now: OffsetDateTime,
    ) -> Result<Verified<Option<String>>, VerifyError> {
        let (v, primary) = self.unsign_keeping_primary_at(token, now)?;
        let stale = v.is_stale();
        Ok(v.map(|value| stale.then(|| self.sign_with(value, primary))))
    }
}

/// The primary key's signature of a value, base64 as in a token, kept from
/// a verification to re-sign the same value with.
struct PrimarySignature {
    buf: [u8; 88],
    len: usize,
}

impl PrimarySignature {
    fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(self.buf.get(..self.len)?).ok()
    }
}
/// Start of the last occurrence of `sep` in `s` (Python's `rsplit(sep, 1)`).
fn last_sep(s: &str, sep: &str) -> Option<usize> {
    match sep.as_bytes() {
        [b] => s.bytes().rposition(|c| c == *b),
        _ => s.rfind(sep),
    }
}

fn encode_b64_slice(data: &[u8], out: &mut [u8; 88]) -> usize {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode_slice(data, out)
        .unwrap_or(0)
}

/// Django's `TimestampSigner`: signs `value ‖ sep ‖ base62(unix seconds)`.
///
/// ```
/// use keyroll::{KeyRing, Secret, SignerBuilder};
/// use std::time::Duration;
/// use time::macros::datetime;
/// let ring = KeyRing::new(Secret::from("s3cret")).expect("a non-empty secret");
/// let signer = SignerBuilder::new().build_timestamp(&ring).expect("valid");
/// let t0 = datetime!(2026-11-28 12:00 UTC);
/// let token = signer.sign_at("hello", t0);
/// let later = t0 + time::Duration::seconds(61);
/// assert!(signer.unsign_at(&token, Some(Duration::from_secs(60)), later).is_err());
/// assert_eq!(signer.unsign_at(&token, None, later).expect("ok").value, "hello");
/// ```
#[derive(Clone, Debug)]
pub struct TimestampSigner {
    inner: Signer,
    future_tolerance: Option<Duration>,
}

impl TimestampSigner {
    /// Django's defaults (salt `django.core.signing.TimestampSigner`, `:`, sha256).
    pub fn new(ring: &KeyRing) -> Self {
        let b = SignerBuilder::new();
        let key_salt = format!("{TIMESTAMP_SIGNER_SALT}signer");
        Self {
            inner: Signer::prepared(&b, ring, key_salt.as_bytes()),
            future_tolerance: b.future_tolerance,
        }
    }

    /// The underlying plain signer (which signs `value:timestamp`).
    pub fn signer(&self) -> &Signer {
        &self.inner
    }

    /// Signs `value` stamped with `now`.
    pub fn sign_at(&self, value: &str, now: OffsetDateTime) -> String {
        self.sign_with_timestamp(value, now.unix_timestamp())
    }

    /// Signs `value` stamped with an explicit Unix time (re-signing keeps the original).
    pub fn sign_with_timestamp(&self, value: &str, unix_seconds: i64) -> String {
        let mut stamped = String::with_capacity(value.len() + 8);
        stamped.push_str(value);
        stamped.push_str(&self.inner.sep);
        stamped.push_str(&b62_encode(unix_seconds));
        self.inner.sign(&stamped)
    }

    /// Verifies the signature, then the age: older than `max_age` (or further
    /// in the future than the tolerance, when `max_age` is given) is expired.
    ///
    /// # Errors
    /// [`VerifyError::BadSignature`], [`VerifyError::Expired`],
    /// [`VerifyError::Malformed`] (a signed value without a valid timestamp),
    /// [`VerifyError::TooLarge`].
    pub fn unsign_at<'t>(
        &self,
        token: &'t str,
        max_age: Option<Duration>,
        now: OffsetDateTime,
    ) -> Result<Verified<&'t str>, VerifyError> {
        let v = self.inner.unsign_at(token, now)?;
        self.check_timestamp(v, max_age, now)
    }

    /// The value and timestamp of a token whose signature verified, checked
    /// against `max_age`.
    fn check_timestamp<'t>(
        &self,
        v: Verified<&'t str>,
        max_age: Option<Duration>,
        now: OffsetDateTime,
    ) -> Result<Verified<&'t str>, VerifyError> {
        let at =
            last_sep(v.value, &self.inner.sep).ok_or(VerifyError::Malformed("no timestamp"))?;
        let value = v
            .value
            .get(..at)
            .ok_or(VerifyError::Malformed("no timestamp"))?;
        let ts_text = v
            .value
            .get(at + self.inner.sep.len()..)
            .ok_or(VerifyError::Malformed("no timestamp"))?;
        let ts = b62_decode_saturating(ts_text).ok_or(VerifyError::Malformed("bad timestamp"))?;
        if let Some(max_age) = max_age {
            let age_ns = now.unix_timestamp_nanos() - i128::from(ts) * 1_000_000_000;
            if age_ns > max_age.as_nanos() as i128 {
                return Err(VerifyError::Expired);
            }
            if let Some(tol) = self.future_tolerance {
                if -age_ns > tol.as_nanos() as i128 {
                    return Err(VerifyError::Expired);
                }
            }
        }
        Ok(Verified {
            value,
            key_id: v.key_id,
            role: v.role,
            timestamp: Some(ts),
        })
    }

    /// The signed part of a token this signer verified (`value:timestamp`).
    pub(crate) fn signed_part<'t>(&self, token: &'t str) -> &'t str {
        let len = token
            .len()
            .saturating_sub(self.inner.sep.len() + self.inner.sig_len);
        token.get(..len).unwrap_or_default()
    }

    /// Verifies; when stale, re-signs with the primary keeping the original timestamp.
    ///
    /// # Errors
    /// As [`TimestampSigner::unsign_at`].
    pub fn resign_at(
        &self,
        token: &str,
        max_age: Option<Duration>,
        now: OffsetDateTime,
    ) -> Result<Verified<Option<String>>, VerifyError> {
        let (v, primary) = self.inner.unsign_keeping_primary_at(token, now)?;
        // The signed part (`value:timestamp`) is signed again as it is.
        let signed_part = v.value;
        let v = self.check_timestamp(v, max_age, now)?;
        let stale = v.is_stale();
        Ok(v.map(|_| stale.then(|| self.inner.sign_with(signed_part, primary))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-28 12:00 UTC);

    // Fixed vectors from Django's tests/signing/tests.py.
    #[test]
    fn django_signer_vectors() {
        let ring = KeyRing::new(Secret::new(vec![0xE7])).expect("a non-empty secret");
        assert_eq!(
            Signer::new(&ring).sign("foo"),
            "foo:EE4qGC5MEKyQG5msxYA0sBohAxLC0BJf8uRhemh0BGU"
        );
        let ring = KeyRing::new(Secret::from("predictable-secret")).expect("a non-empty secret");
        for sep in ["/", "*sep*", ","] {
            let s = SignerBuilder::new().sep(sep).build(&ring).expect("sep");
            assert_eq!(
                s.sign("foo"),
                format!("foo{sep}jZQoX_FtSO70jX9HLRGg2A_2s4kdDBxz1QoO_OpEQb0")
            );
            assert_eq!(s.unsign_at(&s.sign("foo"), NOW).expect("ok").value, "foo");
        }
    }

    #[test]
    fn unsafe_separators_are_refused() {
        let ring = KeyRing::new(Secret::from("k")).expect("a non-empty secret");
        for sep in ["", "a", "-", "_", "=", "Ab9", "^", "`", "[]"] {
            assert!(
                SignerBuilder::new().sep(sep).build(&ring).is_err(),
                "{sep:?}"
            );
        }
        for sep in [":", "/", "*sep*", ",", "a:"] {
            assert!(
                SignerBuilder::new().sep(sep).build(&ring).is_ok(),
                "{sep:?}"
            );
        }
    }

    #[test]
    fn verification_reports_the_matching_key() {
        let old = KeyRing::new(Secret::from("old")).expect("a non-empty secret");
        let staged = KeyRing::new(Secret::from("next")).expect("a non-empty secret");
        let ring = KeyRing::new(Secret::from("cur"))
            .expect("a non-empty secret")
            .with_staged(Secret::from("next"))
            .and_then(|r| r.with_fallback(Secret::from("old"), Some(NOW)))
            .expect("ring");
        let s = Signer::new(&ring);
        let (t_old, t_staged, t_cur) = (
            Signer::new(&old).sign("x"),
            Signer::new(&staged).sign("x"),
            s.sign("x"),
        );
        let v = s.unsign_at(&t_old, NOW).expect("fallback verifies");
        assert_eq!(
            (v.role, v.key_id),
            (Role::Fallback, Secret::from("old").id())
        );
        let v = s.unsign_at(&t_staged, NOW).expect("staged verifies");
        assert_eq!(v.role, Role::Staged);
        let v = s.unsign_at(&t_cur, NOW).expect("primary verifies");
        assert!(!v.is_stale());
        // The fallback retires after its instant.
        let later = NOW + time::Duration::seconds(1);
        assert_eq!(s.unsign_at(&t_old, later), Err(VerifyError::BadSignature));
    }

    #[test]
    fn resign_keeps_value_and_timestamp() {
        let old = KeyRing::new(Secret::from("old")).expect("a non-empty secret");
        let ring = KeyRing::new(Secret::from("cur"))
            .expect("a non-empty secret")
            .with_fallback(Secret::from("old"), None)
            .expect("ring");
        let t_old = TimestampSigner::new(&old);
        let t = TimestampSigner::new(&ring);
        let token = t_old.sign_at("v:al", NOW - time::Duration::days(3));
        let r = t.resign_at(&token, None, NOW).expect("verifies");
        let fresh = r.value.expect("stale, so re-signed");
        let v = t.unsign_at(&fresh, None, NOW).expect("verifies");
        assert_eq!(
            (v.value, v.role, v.timestamp),
            ("v:al", Role::Primary, r.timestamp)
        );
        assert!(t.resign_at(&fresh, None, NOW).expect("ok").value.is_none());
        // Byte for byte what the primary alone signs (the signature made
        // while the primary was tried is the one written).
        let cur = KeyRing::new(Secret::from("cur")).expect("a non-empty secret");
        let signed_at = NOW - time::Duration::days(3);
        assert_eq!(fresh, TimestampSigner::new(&cur).sign_at("v:al", signed_at));
        let plain = Signer::new(&old).sign("v:al");
        assert_eq!(
            Signer::new(&ring).resign_at(&plain, NOW).expect("ok").value,
            Some(Signer::new(&cur).sign("v:al"))
        );
    }

    #[test]
    fn timestamp_age_rules() {
        let ring = KeyRing::new(Secret::from("k")).expect("a non-empty secret");
        let t = TimestampSigner::new(&ring);
        let token = t.sign_at("v", NOW);
        let max = Some(Duration::from_secs(10));
        assert!(t
            .unsign_at(&token, max, NOW + time::Duration::seconds(10))
            .is_ok());
        assert_eq!(
            t.unsign_at(&token, max, NOW + time::Duration::milliseconds(10_001)),
            Err(VerifyError::Expired)
        );
        // Far future: refused only when an age is checked.
        let future = t.sign_at("v", NOW + time::Duration::days(2));
        assert_eq!(t.unsign_at(&future, max, NOW), Err(VerifyError::Expired));
        assert!(t.unsign_at(&future, None, NOW).is_ok());
        let near = t.sign_at("v", NOW + time::Duration::hours(1));
        assert!(t.unsign_at(&near, max, NOW).is_ok());
    }

    #[test]
    fn signed_value_without_timestamp_is_malformed() {
        let ring = KeyRing::new(Secret::from("k")).expect("a non-empty secret");
        let t = TimestampSigner::new(&ring);
        let raw = t.signer().sign("no-timestamp-here");
        assert_eq!(
            t.unsign_at(&raw, None, NOW),
            Err(VerifyError::Malformed("no timestamp"))
        );
        let raw = t.signer().sign("x:!!");
        assert_eq!(
            t.unsign_at(&raw, None, NOW),
            Err(VerifyError::Malformed("bad timestamp"))
        );
    }

    #[test]
    fn garbage_is_a_bad_signature() {
        let s = Signer::new(&KeyRing::new(Secret::from("k")).expect("a non-empty secret"));
        for t in [
            "",
            ":",
            "no separator",
            "a:b",
            "a:ééééééééééééééééééééééééééééééééééééééééééé",
        ] {
            assert_eq!(s.unsign_at(t, NOW), Err(VerifyError::BadSignature), "{t:?}");
        }
    }

    /// A secret that is both the primary and a fallback (Django's
    /// `SECRET_KEY` repeated in `SECRET_KEY_FALLBACKS`) must verify as the
    /// primary: a fallback match would re-sign every token for nothing.
    #[test]
    fn same_secret_as_primary_and_fallback_verifies_as_primary_not_stale() {
        let x = || Secret::from("the-same-secret-0123456789abcdefghij");
        for ring in [
            KeyRing::from_keys([
                (x(), Role::Fallback, None),
                (Secret::from("other"), Role::Staged, None),
                (x(), Role::Primary, None),
            ])
            .expect("ring"),
            KeyRing::new(x())
                .expect("a non-empty secret")
                .with_fallback(x(), None)
                .and_then(|r| r.with_staged(x()))
                .expect("ring"),
        ] {
            let plain = Signer::new(&ring);
            let token = plain.sign("v");
            let v = plain.unsign_at(&token, NOW).expect("verifies");
            assert_eq!((v.role, v.key_id), (Role::Primary, x().id()));
            assert!(!v.is_stale());
            assert_eq!(
                plain.resign_at(&plain.sign("v"), NOW).expect("ok").value,
                None
            );
            let ts = TimestampSigner::new(&ring);
            let token = TimestampSigner::new(&KeyRing::new(x()).expect("a non-empty secret"))
                .sign_at("v", NOW);
            let r = ts.resign_at(&token, None, NOW).expect("verifies");
            assert_eq!((r.role, r.value), (Role::Primary, None));
        }
    }

    /// The order keys are tried in: the primary, then staged keys, then
    /// fallbacks, whatever order the ring was given in.
    #[test]
    fn verification_tries_primary_then_staged_then_fallbacks() {
        let ring = KeyRing::from_keys([
            (Secret::from("f1"), Role::Fallback, None),
            (Secret::from("s1"), Role::Staged, None),
            (Secret::from("p"), Role::Primary, None),
            (Secret::from("f2"), Role::Fallback, None),
            (Secret::from("s2"), Role::Staged, None),
        ])
        .expect("ring");
        let s = Signer::new(&ring);
        let order: Vec<_> = s.keys.iter().map(|k| (k.role, k.id)).collect();
        let want: Vec<_> = [
            ("p", Role::Primary),
            ("s1", Role::Staged),
            ("s2", Role::Staged),
            ("f1", Role::Fallback),
            ("f2", Role::Fallback),
        ]
        .iter()
        .map(|(k, r)| (*r, Secret::from(*k).id()))
        .collect();
        assert_eq!(order, want);
    }

    #[test]
    fn a_token_is_its_value_the_separator_and_the_signature() {
        let ring = KeyRing::new(Secret::from("predictable-secret")).expect("a non-empty secret");
        let s = SignerBuilder::new()
            .sep("*sep*")
            .build(&ring)
            .expect("valid");
        assert_eq!(s.sep(), "*sep*");
        assert_eq!(
            s.signature("foo"),
            "jZQoX_FtSO70jX9HLRGg2A_2s4kdDBxz1QoO_OpEQb0"
        );
        assert_eq!(
            s.sign("foo"),
            format!("foo{}{}", s.sep(), s.signature("foo"))
        );
    }

    #[test]
    fn a_token_of_exactly_max_token_len_is_read_and_one_byte_more_is_too_large() {
        let ring = KeyRing::new(Secret::from("k")).expect("a non-empty secret");
        let token = Signer::new(&ring).sign("value");
        let limits = Limits::default()
            .with_max_token_len(token.len())
            .expect("valid");
        let s = SignerBuilder::new()
            .limits(limits)
            .build(&ring)
            .expect("valid");
        assert_eq!(s.unsign_at(&token, NOW).map(|v| v.value), Ok("value"));
        let longer = Signer::new(&ring).sign("value!");
        assert_eq!(
            s.unsign_at(&longer, NOW),
            Err(VerifyError::TooLarge {
                limit: crate::error::Limit::TokenLength,
                max: token.len()
            })
        );
    }

    /// `Signer(key="predictable-secret", algorithm="sha512").sign("hello")`
    /// from Django 5.2.
    #[test]
    fn the_builders_algorithm_is_the_one_that_signs() {
        let ring = KeyRing::new(Secret::from("predictable-secret")).expect("a non-empty secret");
        let s = SignerBuilder::new()
            .algorithm(Algorithm::Sha512)
            .build(&ring)
            .expect("valid");
        assert_eq!(
            s.sign("hello"),
            "hello:Usf3uVQOZ9m6uPfVonKR-EBXjPe7bjMbp3_Fq8MfsptgkkM1ojidN0BxYaT5HAEN1VzO9_jVu7R-VkqknHYNvw"
        );
    }

    #[test]
    fn future_tolerance_bounds_how_far_ahead_a_timestamp_may_be() {
        let ring = KeyRing::new(Secret::from("k")).expect("a non-empty secret");
        let max = Some(Duration::from_secs(10));
        let two_days = TimestampSigner::new(&ring).sign_at("v", NOW + time::Duration::days(2));
        let two_hours = TimestampSigner::new(&ring).sign_at("v", NOW + time::Duration::hours(2));
        let unbounded = SignerBuilder::new()
            .future_tolerance(None)
            .build_timestamp(&ring)
            .expect("valid");
        assert!(unbounded.unsign_at(&two_days, max, NOW).is_ok());
        let one_hour = SignerBuilder::new()
            .future_tolerance(Some(Duration::from_secs(3600)))
            .build_timestamp(&ring)
            .expect("valid");
        assert_eq!(
            one_hour.unsign_at(&two_hours, max, NOW),
            Err(VerifyError::Expired)
        );
        let near = TimestampSigner::new(&ring).sign_at("v", NOW + time::Duration::minutes(59));
        assert!(one_hour.unsign_at(&near, max, NOW).is_ok());
        let exactly = TimestampSigner::new(&ring).sign_at("v", NOW + time::Duration::hours(1));
        assert!(
            one_hour.unsign_at(&exactly, max, NOW).is_ok(),
            "exactly the tolerance ahead is accepted"
        );
    }

    /// Django 5.2: `dumps("hello")` and `dumps("hello", salt="custom-salt")`
    /// with `SECRET_KEY = "s3cret"` at 2026-11-28 12:00 UTC. An object
    /// signer's salt is the builder's when it has one, else
    /// `django.core.signing`.
    #[test]
    fn an_object_signer_keeps_the_builders_salt_or_uses_djangos_default() {
        use crate::object::ObjectSigner;
        let ring = KeyRing::new(Secret::from("s3cret")).expect("a non-empty secret");
        let value = serde_json::json!("hello");
        let default = ObjectSigner::new(SignerBuilder::new(), false, &ring).expect("valid");
        assert_eq!(
            default.dumps_at(&value, NOW).expect("ok"),
            "ImhlbGxvIg:1xXH60:aXoVE5ncGaqlBcs9x-sRy9YWuYtMRwXdznvoqiwQVmQ"
        );
        let salted = ObjectSigner::new(SignerBuilder::new().salt("custom-salt"), false, &ring)
            .expect("valid");
        assert_eq!(
            salted.dumps_at(&value, NOW).expect("ok"),
            "ImhlbGxvIg:1xXH60:M1EIkp91c4stCx4BK-bgcb0hdt1kqxOP20iQr9HrFVk"
        );
    }

    /// Django 5.2: `HttpResponse().set_signed_cookie("theme", "dark")` with
    /// `SECRET_KEY = "s3cret"` at 2026-11-28 12:00 UTC: the cookie signer's
    /// key is `django.http.cookies` ‖ the secret.
    #[test]
    fn signed_cookies_put_djangos_cookie_prefix_before_the_secret() {
        let ring = KeyRing::new(Secret::from("s3cret")).expect("a non-empty secret");
        let cookie = crate::cookie::SignedCookie::new(&ring, "theme", "").expect("valid");
        assert_eq!(
            cookie.sign_at("dark", NOW),
            "dark:1xXH60:WDQoNFRQve0-qQYlU6Ues5bz0Ru_8Xim8-_fGC36gJk"
        );
    }
}
