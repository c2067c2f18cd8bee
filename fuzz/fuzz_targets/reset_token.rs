//! Password-reset tokens and session auth hashes: arbitrary tokens against a
//! user, make → check round trips for arbitrary users and times, and tokens
//! of every ring key verifying with that key's role.
//!
//! Input: mode byte, then (0) `token NUL password-hash`, (1) 4 time bytes,
//! 4 last-login bytes, `pk NUL password-hash NUL email`, (2) a key pick,
//! `pk NUL password-hash`, (3) 8 bytes of a timestamp (seconds since 2001,
//! any `u64`), then `pk NUL password-hash`: a token forged with the primary's
//! secret the way Django computes one (`salted_hmac`), for timestamps no clock
//! would give (this found the `i64::MAX` overflow; see
//! `reset_token_with_a_timestamp_near_i64_max_does_not_overflow`).
#![no_main]

use std::sync::OnceLock;

use keyroll::{PasswordResetTokens, ResetUser, Role, SessionAuthHash, VerifyError};
use keyroll_fuzz::{alone, one_byte_change, other_key, ring, truncations, NOW, PRIMARY, RETIRED};
use libfuzzer_sys::fuzz_target;
use time::{OffsetDateTime, PrimitiveDateTime};

fn tokens() -> &'static PasswordResetTokens {
    static S: OnceLock<PasswordResetTokens> = OnceLock::new();
    S.get_or_init(|| PasswordResetTokens::new(ring()))
}

fn auth() -> &'static SessionAuthHash {
    static S: OnceLock<SessionAuthHash> = OnceLock::new();
    S.get_or_init(|| SessionAuthHash::new(ring()))
}

fn u32_from(b: &[u8]) -> u32 {
    let mut x = [0u8; 4];
    for (d, s) in x.iter_mut().zip(b) {
        *d = *s;
    }
    u32::from_le_bytes(x)
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 4 {
        3 => {
            if rest.len() < 8 {
                return;
            }
            let mut b = [0u8; 8];
            b.copy_from_slice(&rest[..8]);
            let ts = u64::from_le_bytes(b);
            let text = String::from_utf8_lossy(&rest[8..]);
            let (pk, password_hash) = text.split_once('\0').unwrap_or((&text, "h"));
            let user = ResetUser {
                pk,
                password_hash,
                last_login: None,
                email: None,
            };
            let value = format!("{pk}{password_hash}{ts}");
            let tag = keyroll::salted_hmac(
                keyroll::RESET_SALT.as_bytes(),
                value.as_bytes(),
                PRIMARY.as_bytes(),
                keyroll::Algorithm::Sha256,
            );
            let hash: String = tag.to_hex().chars().step_by(2).collect();
            let token = format!("{}-{hash}", keyroll::b36_encode(ts));
            let got = tokens().check_token_at(&user, &token, NOW);
            let now_2001: i64 = 1_795_867_200 - 978_307_200;
            match i64::try_from(ts) {
                Err(_) => assert_eq!(got.map(drop), Err(VerifyError::BadSignature)),
                Ok(t) if i128::from(now_2001) - i128::from(t) > 259_200 => {
                    assert_eq!(got.map(drop), Err(VerifyError::Expired), "{token}")
                }
                Ok(t) => {
                    let v = got.unwrap_or_else(|e| panic!("{token}: {e}"));
                    assert_eq!(v.role, Role::Primary);
                    assert_eq!(v.timestamp, Some(t.saturating_add(978_307_200)));
                }
            }
        }
        0 => {
            let Ok(text) = std::str::from_utf8(rest) else {
                return;
            };
            let (token, password_hash) = text.split_once('\0').unwrap_or((text, "h"));
            let user = ResetUser {
                pk: "1",
                password_hash,
                last_login: None,
                email: None,
            };
            if let Ok(v) = tokens().check_token_at(&user, token, NOW) {
                // Only a token this code makes verifies: it is canonical.
                let ts = v.timestamp.unwrap_or_default() - 978_307_200;
                assert!(token.starts_with(&keyroll::b36_encode(u64::try_from(ts).unwrap_or(0))));
                assert!(token.len() <= 64);
            }
            if auth().check_at(token, password_hash, NOW).is_ok() {
                assert_eq!(token.len(), 64);
                assert!(token
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
            }
        }
        1 => {
            if rest.len() < 8 {
                return;
            }
            let Ok(text) = std::str::from_utf8(rest.get(8..).unwrap_or_default()) else {
                return;
            };
            let mut parts = text.splitn(3, '\0');
            let (pk, password_hash, email) = (
                parts.next().unwrap_or_default(),
                parts.next().unwrap_or_default(),
                parts.next(),
            );
            // Any second from 2001 to 2137.
            let at = 978_307_200 + i64::from(u32_from(rest));
            let Ok(now) = OffsetDateTime::from_unix_timestamp(at) else {
                return;
            };
            let login = u32_from(rest.get(4..).unwrap_or_default());
            let last_login = (login != 0)
                .then(|| OffsetDateTime::from_unix_timestamp(i64::from(login)).ok())
                .flatten()
                .map(|t| PrimitiveDateTime::new(t.date(), t.time()));
            let user = ResetUser {
                pk,
                password_hash,
                last_login,
                email,
            };
            let token = tokens().make_token_at(&user, now);
            let v = tokens().check_token_at(&user, &token, now);
            assert_eq!(
                v.map(|v| (v.role, v.timestamp)),
                Ok((Role::Primary, Some(at)))
            );
            if let Some(bad) = one_byte_change(&token, usize::from(rest[0]), rest[1]) {
                assert_eq!(
                    tokens().check_token_at(&user, &bad, now),
                    Err(VerifyError::BadSignature)
                );
            }
            for t in truncations(&token, 0) {
                assert_eq!(
                    tokens().check_token_at(&user, t, now),
                    Err(VerifyError::BadSignature)
                );
            }
            // Another password, or a login since, invalidates it.
            let changed = ResetUser {
                password_hash: &format!("{password_hash}!"),
                ..user
            };
            assert_eq!(
                tokens().check_token_at(&changed, &token, now),
                Err(VerifyError::BadSignature)
            );
            let hash = auth().make(password_hash);
            assert_eq!(
                auth().check_at(&hash, password_hash, now).map(|v| v.role),
                Ok(Role::Primary)
            );
            if let Some(bad) = one_byte_change(&hash, usize::from(rest[2]), rest[3]) {
                assert_eq!(
                    auth().check_at(&bad, password_hash, now),
                    Err(VerifyError::BadSignature)
                );
            }
        }
        _ => {
            let Some((&pick, rest)) = rest.split_first() else {
                return;
            };
            let Ok(text) = std::str::from_utf8(rest) else {
                return;
            };
            let (pk, password_hash) = text.split_once('\0').unwrap_or((text, ""));
            let user = ResetUser {
                pk,
                password_hash,
                last_login: None,
                email: Some("a@b.c"),
            };
            let (secret, role) = other_key(pick);
            let token = PasswordResetTokens::new(&alone(secret)).make_token_at(&user, NOW);
            let hash = SessionAuthHash::new(&alone(secret)).make(password_hash);
            let t = tokens().check_token_at(&user, &token, NOW).map(|v| v.role);
            let h = auth().check_at(&hash, password_hash, NOW).map(|v| v.role);
            if secret == RETIRED {
                assert_eq!(
                    (t, h),
                    (
                        Err(VerifyError::BadSignature),
                        Err(VerifyError::BadSignature)
                    )
                );
            } else {
                assert_eq!((t, h), (Ok(role), Ok(role)));
            }
        }
    }
});
