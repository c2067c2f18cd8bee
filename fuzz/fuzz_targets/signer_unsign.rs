//! `Signer` (`value:signature`): verifying arbitrary tokens against the ring,
//! and sign → verify round trips of arbitrary values, separators and
//! algorithms, including tokens of non-primary keys and their re-signing.
//!
//! Input: mode byte, then (mode 0) a raw token, (1) a value, (2) a key pick
//! and a value, (3) separator length, algorithm pick, separator ‖ value.
#![no_main]

use std::sync::OnceLock;

use keyroll::{Algorithm, Role, Signer, SignerBuilder, VerifyError};
use keyroll_fuzz::{alone, one_byte_change, other_key, ring, truncations, NOW, PRIMARY, RETIRED};
use libfuzzer_sys::fuzz_target;

fn signer() -> &'static Signer {
    static S: OnceLock<Signer> = OnceLock::new();
    S.get_or_init(|| Signer::new(ring()))
}

fn primary_only() -> &'static Signer {
    static S: OnceLock<Signer> = OnceLock::new();
    S.get_or_init(|| Signer::new(&alone(PRIMARY)))
}

/// Django's `^[A-z0-9-_=]*$`, which it refuses as a separator.
fn unsafe_sep(sep: &str) -> bool {
    sep.bytes().all(|c| {
        c.is_ascii_alphanumeric()
            || matches!(c, b'-' | b'_' | b'=' | b'[' | b'\\' | b']' | b'^' | b'`')
    })
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
            if let Ok(v) = signer().unsign_at(token, NOW) {
                assert!(token.starts_with(v.value));
                let r = signer().resign_at(token, NOW);
                match r {
                    Ok(r) if v.role == Role::Primary => assert_eq!(r.value, None),
                    Ok(r) => {
                        let fresh = r.value.unwrap_or_default();
                        let again = primary_only().unsign_at(&fresh, NOW);
                        assert_eq!(again.map(|a| a.value), Ok(v.value));
                    }
                    Err(e) => panic!("verified but resign failed: {e}"),
                }
            }
        }
        1 => {
            let Ok(value) = std::str::from_utf8(rest) else {
                return;
            };
            let token = signer().sign(value);
            let v = signer().unsign_at(&token, NOW);
            assert_eq!(
                v.as_ref().map(|v| (v.value, v.role)),
                Ok((value, Role::Primary))
            );
            if let Some(bad) = one_byte_change(&token, value.len() + rest.len() / 3, mode) {
                assert_eq!(
                    signer().unsign_at(&bad, NOW),
                    Err(VerifyError::BadSignature)
                );
            }
            for t in truncations(&token, value.len()) {
                assert_eq!(signer().unsign_at(t, NOW), Err(VerifyError::BadSignature));
            }
        }
        2 => {
            let Some((&pick, rest)) = rest.split_first() else {
                return;
            };
            let Ok(value) = std::str::from_utf8(rest) else {
                return;
            };
            let (secret, role) = other_key(pick);
            let token = Signer::new(&alone(secret)).sign(value);
            let got = signer().resign_at(&token, NOW);
            if secret == RETIRED {
                assert_eq!(got, Err(VerifyError::BadSignature));
                return;
            }
            match got {
                Ok(r) => {
                    assert_eq!(r.role, role);
                    let fresh = r.value.unwrap_or_default();
                    let again = primary_only().unsign_at(&fresh, NOW);
                    assert_eq!(again.map(|a| (a.value, a.role)), Ok((value, Role::Primary)));
                }
                Err(e) => panic!("a ring key's token failed: {e}"),
            }
        }
        _ => {
            let [n, alg, rest @ ..] = rest else {
                return;
            };
            let Ok(text) = std::str::from_utf8(rest) else {
                return;
            };
            let cut = (usize::from(*n) % 4).min(text.len());
            let Some(at) = (0..=cut).rev().find(|&i| text.is_char_boundary(i)) else {
                return;
            };
            let (sep, value) = text.split_at(at);
            let algorithm =
                [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512][usize::from(*alg) % 3];
            let b = SignerBuilder::new()
                .sep(sep)
                .algorithm(algorithm)
                .salt(value);
            match b.build(ring()) {
                Err(_) => assert!(sep.is_empty() || unsafe_sep(sep), "refused {sep:?}"),
                Ok(s) => {
                    assert!(!sep.is_empty() && !unsafe_sep(sep), "accepted {sep:?}");
                    let token = s.sign(value);
                    assert_eq!(s.unsign_at(&token, NOW).map(|v| v.value), Ok(value));
                    // Another algorithm never verifies it.
                    let other = [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512]
                        [(usize::from(*alg) + 1) % 3];
                    let o = b.clone().algorithm(other).build(ring());
                    assert!(o
                        .map(|o| o.unsign_at(&token, NOW).is_err())
                        .unwrap_or(false));
                }
            }
        }
    }
});
