//! Session data (database rows and signed-cookie sessions): arbitrary rows,
//! validly signed payloads of arbitrary bytes, and session dicts that must
//! survive encode → decode and re-signing from a non-primary key.
//!
//! Input: mode byte, then (0) a raw row, (1) payload text to sign,
//! (2) zlib bytes (signed as `.` base64), (3) JSON bytes (signed as base64),
//! (4) a key pick, 8 timestamp bytes, JSON text of a session dict.
#![no_main]

use std::sync::OnceLock;

use keyroll::{
    b64_encode, parse_json, Limits, Role, SessionCodec, SessionData, VerifyError,
    DEFAULT_SESSION_COOKIE_AGE,
};
use keyroll_fuzz::{
    alone, assert_json_round_trip, has_non_finite, i64_from, json_eq, other_key, ring, NOW,
    PRIMARY, RETIRED,
};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn db() -> &'static SessionCodec {
    static S: OnceLock<SessionCodec> = OnceLock::new();
    S.get_or_init(|| SessionCodec::database(ring()))
}

fn cookie() -> &'static SessionCodec {
    static S: OnceLock<SessionCodec> = OnceLock::new();
    S.get_or_init(|| SessionCodec::signed_cookie(ring(), DEFAULT_SESSION_COOKIE_AGE))
}

fn check_row(codec: &SessionCodec, row: &str) {
    let decoded = codec.decode_at(row, NOW);
    let resigned = codec.resign_at(row, NOW);
    match (&decoded, &resigned) {
        (Ok(d), Ok(r)) => {
            assert_eq!(d.value, r.value.data);
            assert_eq!((d.role, d.timestamp), (r.role, r.timestamp));
            assert_eq!(r.value.fresh.is_some(), d.role != Role::Primary);
            assert_json_round_trip(&Value::Object(d.value.clone()));
        }
        (Err(a), Err(b)) => assert_eq!(a, b),
        _ => panic!("decode {decoded:?} but resign {resigned:?}"),
    }
}

fn signed(payload: &str) -> String {
    db().object_signer()
        .timestamp_signer()
        .sign_at(payload, NOW)
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 5 {
        0 => {
            if let Ok(row) = std::str::from_utf8(rest) {
                check_row(db(), row);
                check_row(cookie(), row);
            }
        }
        1 => {
            if let Ok(payload) = std::str::from_utf8(rest) {
                check_row(db(), &signed(payload));
            }
        }
        2 => check_row(db(), &signed(&format!(".{}", b64_encode(rest)))),
        3 => {
            let row = signed(&b64_encode(rest));
            let got = db().decode_at(&row, NOW).map(|v| v.value);
            match parse_json(rest, Limits::DEFAULT_MAX_JSON_DEPTH) {
                Ok(Value::Object(m)) => assert_eq!(got, Ok(m)),
                Ok(_) => assert_eq!(
                    got,
                    Err(VerifyError::Malformed("session data is not an object"))
                ),
                Err(e) => assert_eq!(got, Err(e)),
            }
        }
        _ => {
            let [pick, rest @ ..] = rest else {
                return;
            };
            let ts = i64_from(rest).rem_euclid(4_000_000_000);
            let Ok(Value::Object(data)) =
                serde_json::from_slice::<Value>(rest.get(8..).unwrap_or_default())
            else {
                return;
            };
            let data: SessionData = data;
            if has_non_finite(&Value::Object(data.clone())) {
                // Never signed: keyroll could not load it back.
                assert!(db().encode_at(&data, NOW).is_err(), "signed {data:?}");
                return;
            }
            let then = time::OffsetDateTime::from_unix_timestamp(ts).unwrap_or(NOW);
            let Ok(row) = db().encode_at(&data, then) else {
                panic!("a parsed session does not serialize");
            };
            match db().decode_at(&row, NOW) {
                Ok(v) => {
                    assert!(json_eq(
                        &Value::Object(v.value),
                        &Value::Object(data.clone())
                    ));
                    assert_eq!((v.role, v.timestamp), (Role::Primary, Some(ts)));
                }
                Err(e) => panic!("encode then decode failed: {e}"),
            }
            let (secret, role) = other_key(*pick);
            let Ok(stale) = SessionCodec::database(&alone(secret)).encode_at(&data, then) else {
                return;
            };
            match db().resign_at(&stale, NOW) {
                Err(VerifyError::BadSignature) if secret == RETIRED => {}
                Ok(r) if secret != RETIRED => {
                    assert_eq!((r.role, r.timestamp), (role, Some(ts)));
                    let fresh = r.value.fresh.unwrap_or_default();
                    match SessionCodec::database(&alone(PRIMARY)).decode_at(&fresh, NOW) {
                        Ok(a) => {
                            assert!(json_eq(&Value::Object(a.value), &Value::Object(data)));
                            assert_eq!((a.role, a.timestamp), (Role::Primary, Some(ts)));
                        }
                        Err(e) => panic!("re-signed row does not verify: {e}"),
                    }
                }
                other => panic!("{secret}: {other:?}"),
            }
        }
    }
});
