//! `parse_json` (Django's Latin-1 JSON reader, depth-limited) and
//! `python_json` (Python's `json.dumps` with compact separators): whatever
//! parses writes back to text that reparses equal, and ASCII input is read as
//! serde_json reads it.
//!
//! Input: JSON bytes, as found inside a signed payload.
#![no_main]

use keyroll::{parse_json, Limit, Limits, VerifyError};
use keyroll_fuzz::{assert_json_round_trip, json_eq};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const DEPTH: usize = Limits::DEFAULT_MAX_JSON_DEPTH;

fuzz_target!(|data: &[u8]| {
    let ours = parse_json(data, DEPTH);
    if let Ok(v) = &ours {
        assert_json_round_trip(v);
    }
    if let Err(e) = &ours {
        assert!(
            matches!(
                e,
                VerifyError::Malformed("json")
                    | VerifyError::TooLarge {
                        limit: Limit::JsonDepth,
                        max: DEPTH
                    }
            ),
            "{e:?}"
        );
    }
    // For ASCII (where Latin-1 and UTF-8 agree), serde_json is the reference
    // (with its default limit of 127 levels, inside ours).
    if data.is_ascii() {
        let theirs: Result<Value, _> = serde_json::from_slice(data);
        match (&ours, theirs) {
            (Ok(a), Ok(b)) => assert!(json_eq(a, &b) && *a == b, "{a:?} != {b:?}"),
            (Err(e), Ok(b)) => panic!("serde_json reads {b:?}, parse_json says {e}"),
            (Ok(a), Err(e)) => assert!(
                e.is_syntax() && e.to_string().contains("recursion limit"),
                "parse_json reads {a:?}, serde_json says {e}"
            ),
            (Err(_), Err(_)) => {}
        }
    }
    // A tighter limit only ever adds TooLarge.
    let tight = parse_json(data, 4);
    match (&ours, &tight) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (
            _,
            Err(VerifyError::TooLarge {
                limit: Limit::JsonDepth,
                max: 4,
            }),
        ) => {}
        (Err(a), Err(b)) => assert_eq!(a, b),
        (a, b) => panic!("depth 128: {a:?}, depth 4: {b:?}"),
    }
});
