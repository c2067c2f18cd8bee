//! `TimestampSigner` (`value:timestamp:signature`): arbitrary tokens, signed
//! values with arbitrary timestamp text behind a valid signature, and
//! round trips that keep value and timestamp through re-signing.
//!
//! Input: mode byte, then (0) a raw token, (1) signed text `value:ts` that
//! gets a valid signature, (2) 8 timestamp bytes ‖ value, (3) a key pick,
//! 8 timestamp bytes ‖ value.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use keyroll::{b62_encode, Role, TimestampSigner, VerifyError};
use keyroll_fuzz::{
    alone, i64_from, one_byte_change, other_key, ring, truncations, NOW, PRIMARY, RETIRED,
};
use libfuzzer_sys::fuzz_target;

fn signer() -> &'static TimestampSigner {
    static S: OnceLock<TimestampSigner> = OnceLock::new();
    S.get_or_init(|| TimestampSigner::new(ring()))
}

fn primary_only() -> &'static TimestampSigner {
    static S: OnceLock<TimestampSigner> = OnceLock::new();
    S.get_or_init(|| TimestampSigner::new(&alone(PRIMARY)))
}

const HOUR: Duration = Duration::from_secs(3600);

fn check(token: &str) {
    let aged = signer().unsign_at(token, Some(HOUR), NOW);
    let any = signer().unsign_at(token, None, NOW);
    match (&aged, &any) {
        // A max_age only ever adds Expired.
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (Err(VerifyError::Expired), Ok(v)) => {
            let ts = v.timestamp.unwrap_or_default();
            let age = i128::from(NOW.unix_timestamp()) - i128::from(ts);
            assert!(age > 3600 || age < -86_400, "expired at age {age}");
        }
        (Err(a), Err(b)) => assert_eq!(a, b),
        _ => panic!("with max_age {aged:?}, without {any:?}"),
    }
    if let Ok(v) = any {
        match signer().resign_at(token, None, NOW) {
            Ok(r) if v.role == Role::Primary => assert_eq!(r.value, None),
            Ok(r) => {
                let fresh = r.value.unwrap_or_default();
                let again = primary_only().unsign_at(&fresh, None, NOW);
                assert_eq!(
                    again.map(|a| (a.value, a.timestamp)),
                    Ok((v.value, v.timestamp))
                );
            }
            Err(e) => panic!("verified but resign failed: {e}"),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 4 {
        0 => {
            if let Ok(token) = std::str::from_utf8(rest) {
                check(token);
            }
        }
        1 => {
            // Whatever follows the last separator is the timestamp text.
            if let Ok(stamped) = std::str::from_utf8(rest) {
                check(&signer().signer().sign(stamped));
            }
        }
        2 => {
            let ts = i64_from(rest);
            let Ok(value) = std::str::from_utf8(rest.get(8..).unwrap_or_default()) else {
                return;
            };
            let token = signer().sign_with_timestamp(value, ts);
            assert!(token.starts_with(&format!("{value}:{}:", b62_encode(ts))));
            let v = signer().unsign_at(&token, None, NOW);
            assert_eq!(
                v.map(|v| (v.value, v.timestamp, v.role)),
                Ok((value, Some(ts), Role::Primary))
            );
            if let Some(bad) = one_byte_change(&token, usize::from(mode) * 7 + value.len(), mode) {
                assert_eq!(
                    signer().unsign_at(&bad, None, NOW),
                    Err(VerifyError::BadSignature)
                );
            }
            for t in truncations(&token, value.len()) {
                assert_eq!(
                    signer().unsign_at(t, None, NOW),
                    Err(VerifyError::BadSignature)
                );
            }
            check(&token);
        }
        _ => {
            let Some((&pick, rest)) = rest.split_first() else {
                return;
            };
            let ts = i64_from(rest);
            let Ok(value) = std::str::from_utf8(rest.get(8..).unwrap_or_default()) else {
                return;
            };
            let (secret, role) = other_key(pick);
            let token = TimestampSigner::new(&alone(secret)).sign_with_timestamp(value, ts);
            let got = signer().unsign_at(&token, None, NOW);
            if secret == RETIRED {
                assert_eq!(got, Err(VerifyError::BadSignature));
                return;
            }
            assert_eq!(got.map(|v| (v.value, v.role)), Ok((value, role)));
            check(&token);
        }
    }
});
