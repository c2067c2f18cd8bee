//! Password-reset tokens: Django's `PasswordResetTokenGenerator`.

use std::time::Duration;

use time::macros::datetime;
use time::{OffsetDateTime, PrimitiveDateTime};

use crate::crypto::{Algorithm, MacKey, PreparedKeys};
use crate::encoding::{b36_decode, b36_encode};
use crate::error::VerifyError;
use crate::ring::KeyRing;
use crate::signer::Verified;

/// Key salt of `PasswordResetTokenGenerator`.
pub const RESET_SALT: &str = "django.contrib.auth.tokens.PasswordResetTokenGenerator";
/// Django's default `PASSWORD_RESET_TIMEOUT`: three days.
pub const DEFAULT_RESET_TIMEOUT: Duration = Duration::from_secs(259_200);

const EPOCH_2001: OffsetDateTime = datetime!(2001-01-01 0:00 UTC);

/// The user state a reset token is bound to. A token stops working when any
/// of it changes (a new password hash, a new login).
///
/// `Debug` leaves the password hash and the e-mail address out.
#[derive(Clone, Copy)]
pub struct ResetUser<'a> {
    /// The primary key, as Django's `str(user.pk)`.
    pub pk: &'a str,
    /// The stored password hash (`user.password`).
    pub password_hash: &'a str,
    /// `user.last_login` as naive UTC (microseconds are ignored), if any.
    pub last_login: Option<PrimitiveDateTime>,
    /// The e-mail address, if any.
    pub email: Option<&'a str>,
}

impl std::fmt::Debug for ResetUser<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResetUser")
            .field("pk", &self.pk)
            .field("password_hash", &"<redacted>")
            .field("last_login", &self.last_login)
            .field("email", &self.email.map(|_| "<redacted>"))
            .finish()
    }
}

/// Makes and checks password-reset tokens (`base36(ts)-hash`), where ts counts
/// seconds since 2001-01-01 (UTC; Django uses the server's naive local time).
///
/// ```
/// use keyroll::{KeyRing, PasswordResetTokens, ResetUser, Secret};
/// use time::OffsetDateTime;
/// let tokens = PasswordResetTokens::new(&KeyRing::new(Secret::from("s3cret")).expect("a non-empty secret"));
/// let user = ResetUser { pk: "7", password_hash: "argon2$...", last_login: None, email: Some("a@b.c") };
/// let now = OffsetDateTime::now_utc();
/// let token = tokens.make_token_at(&user, now);
/// assert!(tokens.check_token_at(&user, &token, now).is_ok());
/// ```
#[derive(Clone, Debug)]
pub struct PasswordResetTokens {
    keys: PreparedKeys,
    timeout: Duration,
}

impl PasswordResetTokens {
    /// Tokens under `ring` with Django's default timeout (three days) and sha256.
    pub fn new(ring: &KeyRing) -> Self {
        let keys = PreparedKeys::derive(ring, Algorithm::Sha256, RESET_SALT.as_bytes(), b"");
        Self {
            keys,
            timeout: DEFAULT_RESET_TIMEOUT,
        }
    }

    /// Sets the timeout (`PASSWORD_RESET_TIMEOUT`).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// A token for `user` made at `now`, under the primary key.
    pub fn make_token_at(&self, user: &ResetUser<'_>, now: OffsetDateTime) -> String {
        let ts = seconds_since_2001(now);
        token_with(&self.keys.primary().mac, user, ts)
    }

    /// Checks a token: the signature under the primary, then every other live
    /// key, then the age (`now − ts > timeout` is expired; equal is valid).
    ///
    /// # Errors
    /// [`VerifyError::BadSignature`] for a wrong or forged token, or one made
    /// before the user's password or last login changed; [`VerifyError::Expired`].
    pub fn check_token_at(
        &self,
        user: &ResetUser<'_>,
        token: &str,
        now: OffsetDateTime,
    ) -> Result<Verified<()>, VerifyError> {
        if token.len() > 64 {
            return Err(VerifyError::BadSignature);
        }
        let mut parts = token.split('-');
        let (Some(ts_b36), Some(_), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(VerifyError::BadSignature);
        };
        let ts = b36_decode(ts_b36).ok_or(VerifyError::BadSignature)?;
        let ts = i64::try_from(ts).map_err(|_| VerifyError::BadSignature)?;
        let matched = self
            .keys
            .find_at(now, |mac| {
                let want = token_with(mac, user, ts);
                crate::crypto::ct_eq(want.as_bytes(), token.as_bytes())
            })
            .map(|k| (k.id, k.role));
        let (key_id, role) = matched.ok_or(VerifyError::BadSignature)?;
        let age = i128::from(seconds_since_2001(now)) - i128::from(ts);
        if age > i128::from(self.timeout.as_secs()) {
            return Err(VerifyError::Expired);
        }
        Ok(Verified {
            value: (),
            key_id,
            role,
            timestamp: Some(ts.saturating_add(EPOCH_2001.unix_timestamp())),
        })
    }
}

fn seconds_since_2001(now: OffsetDateTime) -> i64 {
    // Django: int(timedelta.total_seconds()), truncating toward zero.
    let ns = now.unix_timestamp_nanos() - EPOCH_2001.unix_timestamp_nanos();
    i64::try_from(ns / 1_000_000_000).unwrap_or(i64::MAX)
}

fn token_with(mac: &MacKey, user: &ResetUser<'_>, ts: i64) -> String {
    let login = user
        .last_login
        .map(|t| {
            format!(
                "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            )
        })
        .unwrap_or_default();
    let ts_text = ts.to_string();
    let tag = mac.tag(&[
        user.pk.as_bytes(),
        user.password_hash.as_bytes(),
        login.as_bytes(),
        ts_text.as_bytes(),
        user.email.unwrap_or("").as_bytes(),
    ]);
    let hex = tag.to_hex();
    let mut out = b36_encode(u64::try_from(ts).unwrap_or(0));
    out.push('-');
    out.extend(hex.chars().step_by(2));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    /// Django counts seconds since 2001-01-01 UTC (values from Python's
    /// datetime arithmetic); a token's first field is that count in base 36.
    #[test]
    fn reset_token_timestamps_count_seconds_since_2001() {
        assert_eq!(seconds_since_2001(datetime!(2001-01-01 00:00:01 UTC)), 1);
        let at = datetime!(2026-11-28 12:00 UTC);
        assert_eq!(seconds_since_2001(at), 817_560_000);
        let tokens =
            PasswordResetTokens::new(&KeyRing::new(Secret::from("k")).expect("a non-empty secret"));
        let user = ResetUser {
            pk: "1",
            password_hash: "h",
            last_login: None,
            email: None,
        };
        assert!(tokens.make_token_at(&user, at).starts_with("dir5c0-"));
    }

    #[test]
    fn reset_user_debug_shows_neither_the_password_hash_nor_the_email() {
        let user = ResetUser {
            pk: "42",
            password_hash: "pbkdf2_sha256$870000$salt$SECRETHASH",
            last_login: None,
            email: Some("alice@example.test"),
        };
        let shown = format!("{user:?}");
        assert!(
            !shown.contains("SECRETHASH") && !shown.contains("alice"),
            "{shown}"
        );
        assert!(shown.contains("42"), "{shown}");
    }

    #[test]
    fn timeout_boundary_is_inclusive() {
        let t =
            PasswordResetTokens::new(&KeyRing::new(Secret::from("k")).expect("a non-empty secret"))
                .with_timeout(Duration::from_secs(60));
        let user = ResetUser {
            pk: "1",
            password_hash: "h",
            last_login: None,
            email: None,
        };
        let now = datetime!(2026-11-28 12:00 UTC);
        let token = t.make_token_at(&user, now);
        assert!(t
            .check_token_at(&user, &token, now + time::Duration::seconds(60))
            .is_ok());
        assert_eq!(
            t.check_token_at(&user, &token, now + time::Duration::seconds(61)),
            Err(VerifyError::Expired)
        );
        let changed = ResetUser {
            password_hash: "h2",
            ..user
        };
        assert_eq!(
            t.check_token_at(&changed, &token, now),
            Err(VerifyError::BadSignature)
        );
        for bad in ["", "-", "a-b-c", "zzzzzzzzzzzzzz-x", &token.to_uppercase()] {
            assert_eq!(
                t.check_token_at(&user, bad, now),
                Err(VerifyError::BadSignature),
                "{bad}"
            );
        }
    }
}
