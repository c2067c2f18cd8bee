//! Signed cookies (`set_signed_cookie` / `get_signed_cookie`), both salt
//! forms: arbitrary cookie values, round trips of arbitrary names, salts and
//! values, and re-signing from non-primary keys keeping the timestamp.
//!
//! Input: mode byte, then (0) a raw cookie value, (1) form bit, then
//! `name NUL salt NUL value`, (2) a key pick, form bit, `name NUL value`,
//! (3) 8 timestamp bytes ‖ value.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use keyroll::{CookieSaltForm, Role, SignedCookie, VerifyError};
use keyroll_fuzz::{
    alone, i64_from, one_byte_change, other_key, ring, truncations, NOW, PRIMARY, RETIRED,
};
use libfuzzer_sys::fuzz_target;

const AGE: Duration = Duration::from_secs(1_209_600);

fn cookie() -> &'static SignedCookie {
    static S: OnceLock<SignedCookie> = OnceLock::new();
    S.get_or_init(|| {
        SignedCookie::new(ring(), "sessionid", "")
            .unwrap_or_else(|e| panic!("default options are valid: {e}"))
    })
}

fn new(r: &keyroll::KeyRing, name: &str, salt: &str) -> SignedCookie {
    SignedCookie::new(r, name, salt).unwrap_or_else(|e| panic!("default options are valid: {e}"))
}

fn form(b: u8) -> CookieSaltForm {
    if b & 1 == 0 {
        CookieSaltForm::V2
    } else {
        CookieSaltForm::Legacy
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 4 {
        0 => {
            let Ok(token) = std::str::from_utf8(rest) else {
                return;
            };
            let any = cookie().unsign_at(token, None, NOW);
            let aged = cookie().unsign_at(token, Some(AGE), NOW);
            if let Ok(a) = &aged {
                assert_eq!(Ok(a), any.as_ref());
            }
            if let Ok(v) = any {
                match cookie().resign_at(token, None, NOW) {
                    Ok(r) => {
                        if let Some(fresh) = r.value {
                            let again =
                                new(&alone(PRIMARY), "sessionid", "").unsign_at(&fresh, None, NOW);
                            assert_eq!(
                                again.map(|a| (a.value, a.timestamp)),
                                Ok((v.value, v.timestamp))
                            );
                        } else {
                            assert_eq!(v.role, Role::Primary);
                        }
                    }
                    Err(e) => panic!("verified but resign failed: {e}"),
                }
            }
        }
        1 => {
            let Some((&f, rest)) = rest.split_first() else {
                return;
            };
            let Ok(text) = std::str::from_utf8(rest) else {
                return;
            };
            let mut parts = text.splitn(3, '\0');
            let (name, salt, value) = (
                parts.next().unwrap_or_default(),
                parts.next().unwrap_or_default(),
                parts.next().unwrap_or_default(),
            );
            let c = new(ring(), name, salt).writing(form(f));
            let token = c.sign_at(value, NOW);
            let v = c.unsign_at(&token, Some(AGE), NOW);
            assert_eq!(
                v.map(|v| (v.value, v.role, v.timestamp)),
                Ok((value, Role::Primary, Some(NOW.unix_timestamp())))
            );
            // A reader writing the other form reads it too.
            let other = new(ring(), name, salt).writing(form(f ^ 1));
            assert_eq!(
                other.unsign_at(&token, None, NOW).map(|v| v.value),
                Ok(value)
            );
            if let Some(bad) = one_byte_change(&token, usize::from(f) + value.len(), f) {
                assert_eq!(c.unsign_at(&bad, None, NOW), Err(VerifyError::BadSignature));
            }
            for t in truncations(&token, value.len()) {
                assert_eq!(c.unsign_at(t, None, NOW), Err(VerifyError::BadSignature));
            }
        }
        2 => {
            let [pick, f, rest @ ..] = rest else {
                return;
            };
            let Ok(text) = std::str::from_utf8(rest) else {
                return;
            };
            let (name, value) = text.split_once('\0').unwrap_or((text, ""));
            let (secret, role) = other_key(*pick);
            let then = NOW - time::Duration::hours(3);
            let token = new(&alone(secret), name, "")
                .writing(form(*f))
                .sign_at(value, then);
            let c = new(ring(), name, "");
            match c.resign_at(&token, Some(AGE), NOW) {
                Err(VerifyError::BadSignature) if secret == RETIRED => {}
                Ok(r) if secret != RETIRED => {
                    assert_eq!((r.role, r.timestamp), (role, Some(then.unix_timestamp())));
                    let fresh = r.value.unwrap_or_default();
                    let again = new(&alone(PRIMARY), name, "").unsign_at(&fresh, None, NOW);
                    assert_eq!(
                        again.map(|a| (a.value, a.role, a.timestamp)),
                        Ok((value, Role::Primary, Some(then.unix_timestamp())))
                    );
                }
                other => panic!("{secret}: {other:?}"),
            }
        }
        _ => {
            let ts = i64_from(rest);
            let Ok(value) = std::str::from_utf8(rest.get(8..).unwrap_or_default()) else {
                return;
            };
            let token = cookie().sign_with_timestamp(value, ts);
            let v = cookie().unsign_at(&token, None, NOW);
            assert_eq!(v.map(|v| (v.value, v.timestamp)), Ok((value, Some(ts))));
            let aged = cookie().unsign_at(&token, Some(AGE), NOW);
            let age = i128::from(NOW.unix_timestamp()) - i128::from(ts);
            let fresh_enough = age <= i128::from(AGE.as_secs() as i64) && age >= -86_400;
            assert_eq!(aged.is_ok(), fresh_enough, "age {age}: {aged:?}");
        }
    }
});
