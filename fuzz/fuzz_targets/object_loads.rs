//! Signed objects (`dumps` / `loads`), plain and compressed, and the messages
//! cookie: arbitrary tokens, and validly signed payloads whose base64, zlib
//! and JSON layers are fuzzer-controlled, checked against independent decoders.
//! Every load also runs the one-pass canonical path (`loads_canonical_into`,
//! `check_at`), which must agree with `python_json` of the value path.
//!
//! Input: mode byte, then (0) a raw token, (1) payload text to sign,
//! (2) JSON bytes (signed as base64), (3) zlib bytes (signed as `.` base64),
//! (4) JSON bytes compressed here then signed, (5) JSON text: a value to
//! `dumps` and `loads` back, also from a non-primary key and re-signed.
#![no_main]

use std::io::Read as _;
use std::sync::OnceLock;

use keyroll::{
    b64_encode, messages_cookie, parse_json, python_json, KeyRing, Limits, ObjectSigner, Role,
    SignerBuilder, VerifyError,
};
use keyroll_fuzz::{
    alone, assert_json_round_trip, has_non_finite, json_eq, other_key, ring, NOW, PRIMARY, RETIRED,
};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn object(r: &KeyRing, compress: bool) -> ObjectSigner {
    ObjectSigner::new(SignerBuilder::new(), compress, r)
        .unwrap_or_else(|e| panic!("default options are valid: {e}"))
}

fn signer() -> &'static ObjectSigner {
    static S: OnceLock<ObjectSigner> = OnceLock::new();
    S.get_or_init(|| object(ring(), true))
}

fn messages() -> &'static ObjectSigner {
    static S: OnceLock<ObjectSigner> = OnceLock::new();
    S.get_or_init(|| messages_cookie(ring()))
}

const MAX_DEPTH: usize = Limits::DEFAULT_MAX_JSON_DEPTH;
const MAX_INFLATED: usize = Limits::DEFAULT_MAX_INFLATED_LEN;

/// Loads `token` by the value path and by the one-pass canonical path, and
/// asserts they agree: the canonical text is `python_json` of the value.
fn loads(s: &ObjectSigner, token: &str) -> Result<keyroll::Verified<Value>, VerifyError> {
    let value = s.loads_at(token, None, NOW);
    let mut out = String::from("prefix kept");
    let canonical = s.loads_canonical_into(token, None, NOW, &mut out);
    let checked = s.check_at(token, None, NOW);
    assert_eq!(
        canonical, checked,
        "check_at and loads_canonical_into disagree"
    );
    match &value {
        Ok(v) => match python_json(&v.value) {
            Ok(text) => {
                assert_eq!(
                    canonical.as_ref().map(|c| (c.key_id, c.role, c.timestamp)),
                    Ok((v.key_id, v.role, v.timestamp))
                );
                assert_eq!(
                    out,
                    format!("prefix kept{text}"),
                    "canonical path differs from python_json"
                );
            }
            Err(_) => {
                assert!(
                    canonical.is_err(),
                    "canonical path wrote what python_json refuses: {out}"
                );
                assert_eq!(out, "prefix kept", "out changed on error");
            }
        },
        Err(e) => {
            assert_eq!(
                canonical.as_ref().map(drop),
                Err(e),
                "value path {e}, canonical {out}"
            );
            assert_eq!(out, "prefix kept", "out changed on error");
        }
    }
    value
}

/// Signs `payload` validly (with the primary) and loads it.
fn load_payload(payload: &str) -> Result<Value, VerifyError> {
    let token = signer().timestamp_signer().sign_at(payload, NOW);
    let v = loads(signer(), &token);
    if let Ok(v) = &v {
        assert_eq!(
            (v.role, v.timestamp),
            (Role::Primary, Some(NOW.unix_timestamp()))
        );
    }
    v.map(|v| v.value)
}

fn zlib(data: &[u8]) -> Vec<u8> {
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    let _ = std::io::Write::write_all(&mut z, data);
    z.finish().unwrap_or_default()
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 6 {
        0 => {
            let Ok(token) = std::str::from_utf8(rest) else {
                return;
            };
            for s in [signer(), messages()] {
                if let Ok(v) = loads(s, token) {
                    assert_json_round_trip(&v.value);
                    match s.resign_at(token, None, NOW) {
                        Ok(r) => assert_eq!(r.value.1.is_some(), v.role != Role::Primary),
                        Err(e) => panic!("loads but resign fails: {e}"),
                    }
                }
            }
        }
        1 => {
            // Payload text as is: Django's lenient base64, `.`, junk characters.
            if let Ok(payload) = std::str::from_utf8(rest) {
                if let Ok(v) = load_payload(payload) {
                    assert_json_round_trip(&v);
                }
            }
        }
        2 => {
            // Any JSON bytes (Latin-1, NULs, nesting): loads adds nothing to parse_json.
            let got = load_payload(&b64_encode(rest));
            assert_eq!(got, parse_json(rest, MAX_DEPTH));
            if let Ok(v) = got {
                assert_json_round_trip(&v);
            }
        }
        3 => {
            // Any zlib stream: what keyroll inflates, flate2's reader inflates alike.
            let got = signer()
                .loads_json_at(
                    &signer()
                        .timestamp_signer()
                        .sign_at(&format!(".{}", b64_encode(rest)), NOW),
                    None,
                    NOW,
                )
                .map(|v| v.value);
            let mut theirs = Vec::new();
            let read = flate2::read::ZlibDecoder::new(rest)
                .take(MAX_INFLATED as u64 + 1)
                .read_to_end(&mut theirs);
            match got {
                Ok(bytes) => {
                    assert!(read.is_ok(), "keyroll inflated what flate2 refuses");
                    assert_eq!(bytes, theirs);
                    assert!(bytes.len() <= MAX_INFLATED);
                }
                Err(VerifyError::TooLarge { .. }) => {
                    assert!(
                        theirs.len() > MAX_INFLATED,
                        "refused {} bytes",
                        theirs.len()
                    );
                }
                Err(e) => {
                    assert_eq!(e, VerifyError::Malformed("zlib"));
                }
            }
            if let Ok(v) = load_payload(&format!(".{}", b64_encode(rest))) {
                assert_json_round_trip(&v);
            }
        }
        4 => {
            let got = load_payload(&format!(".{}", b64_encode(&zlib(rest))));
            assert_eq!(got, parse_json(rest, MAX_DEPTH));
        }
        _ => {
            let Some((&pick, rest)) = rest.split_first() else {
                return;
            };
            let Ok(value) = serde_json::from_slice::<Value>(rest) else {
                return;
            };
            if has_non_finite(&value) {
                // Never signed: keyroll could not load it back.
                assert!(signer().dumps_at(&value, NOW).is_err(), "signed {value:?}");
                return;
            }
            for compress in [false, true] {
                let s = if compress {
                    signer().clone()
                } else {
                    object(ring(), false)
                };
                let Ok(token) = s.dumps_at(&value, NOW) else {
                    panic!("a parsed value does not serialize");
                };
                if !compress {
                    assert!(!token.starts_with('.'));
                }
                match loads(&s, &token) {
                    Ok(v) => assert!(json_eq(&v.value, &value), "{value:?} -> {:?}", v.value),
                    Err(e) => panic!("dumps then loads failed: {e}"),
                }
            }
            let (secret, role) = other_key(pick);
            let stale = object(&alone(secret), true).dumps_with_timestamp(&value, 12_345);
            let Ok(stale) = stale else {
                return;
            };
            match signer().resign_at(&stale, None, NOW) {
                Err(VerifyError::BadSignature) if secret == RETIRED => {}
                Ok(r) if secret != RETIRED => {
                    assert_eq!((r.role, r.timestamp), (role, Some(12_345)));
                    let fresh = r.value.1.unwrap_or_default();
                    let again = object(&alone(PRIMARY), true).loads_at(&fresh, None, NOW);
                    match again {
                        Ok(a) => {
                            assert!(json_eq(&a.value, &value));
                            assert_eq!((a.role, a.timestamp), (Role::Primary, Some(12_345)));
                        }
                        Err(e) => panic!("re-signed token does not verify: {e}"),
                    }
                }
                other => panic!("{secret}: {other:?}"),
            }
        }
    }
});
