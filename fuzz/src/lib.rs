//! Fixtures shared by keyroll's fuzz targets: a fixed ring with known
//! secrets, a fixed clock, and the checks several targets assert.
//!
//! Most targets read their first input byte as a *mode*: verify the rest as a
//! raw token, or sign (part of) the rest validly with a ring key first, so
//! that the decoders behind the signature (base64, zlib, JSON, timestamps)
//! see fuzzer-controlled bytes too. `make_corpus.py` writes seeds in the same
//! layout, signed with the secrets below.

use std::sync::OnceLock;

use keyroll::{parse_json, python_json, KeyRing, Role, Secret};
use serde_json::Value;
use time::macros::datetime;
use time::OffsetDateTime;

/// The fixed "now" of every target (unix 1795867200).
pub const NOW: OffsetDateTime = datetime!(2026-11-28 12:00 UTC);
/// The primary key's secret.
pub const PRIMARY: &str = "fuzz-primary-secret";
/// A staged key's secret.
pub const STAGED: &str = "fuzz-staged-secret";
/// A live fallback key's secret.
pub const OLD: &str = "fuzz-old-secret";
/// A fallback retired one day before `NOW`: it never verifies.
pub const RETIRED: &str = "fuzz-retired-secret";

/// The ring: primary, staged, a live fallback and a retired one.
pub fn ring() -> &'static KeyRing {
    static RING: OnceLock<KeyRing> = OnceLock::new();
    RING.get_or_init(|| {
        KeyRing::from_keys([
            (Secret::from(PRIMARY), Role::Primary, None),
            (Secret::from(STAGED), Role::Staged, None),
            (Secret::from(OLD), Role::Fallback, None),
            (
                Secret::from(RETIRED),
                Role::Fallback,
                Some(NOW - time::Duration::days(1)),
            ),
        ])
        .unwrap_or_else(|_| KeyRing::new(Secret::from(PRIMARY)).expect("a non-empty secret"))
    })
}

/// A ring of one key, as primary: what it signs is "signed by that key".
pub fn alone(secret: &str) -> KeyRing {
    KeyRing::new(Secret::from(secret)).expect("a non-empty secret")
}

/// A non-primary key of the ring, picked by `b`, with the role it has there.
pub fn other_key(b: u8) -> (&'static str, Role) {
    match b % 3 {
        0 => (STAGED, Role::Staged),
        1 => (OLD, Role::Fallback),
        _ => (RETIRED, Role::Fallback),
    }
}

/// Reads a little-endian i64 from the front of `data` (zero-padded).
pub fn i64_from(data: &[u8]) -> i64 {
    let mut b = [0u8; 8];
    for (d, s) in b.iter_mut().zip(data) {
        *d = *s;
    }
    i64::from_le_bytes(b)
}

/// Python's equality after a JSON round trip: integers by value, floats by
/// value, ints and floats distinct, object keys in order.
pub fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.to_string(), y.to_string());
            match (is_int(&x), is_int(&y)) {
                (true, true) => norm_int(&x) == norm_int(&y),
                (false, false) => match (x.parse::<f64>(), y.parse::<f64>()) {
                    (Ok(x), Ok(y)) => x == y,
                    _ => false,
                },
                _ => false,
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((ka, va), (kb, vb))| ka == kb && json_eq(va, vb))
        }
        _ => a == b,
    }
}

fn is_int(s: &str) -> bool {
    !s.contains(['.', 'e', 'E'])
}

fn norm_int(s: &str) -> String {
    let (neg, digits) = match s.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, s),
    };
    let digits = digits.trim_start_matches('0');
    match (neg, digits.is_empty()) {
        (_, true) => "0".to_owned(),
        (true, false) => format!("-{digits}"),
        (false, false) => digits.to_owned(),
    }
}

/// True when `v` holds a float outside f64's range (`1e400`), which
/// `python_json` must refuse: Python would write `Infinity`, which `parse_json`
/// cannot read back (see `python_json_of_out_of_range_number_parses_back` in
/// crates/keyroll/tests/properties.rs).
pub fn has_non_finite(v: &Value) -> bool {
    match v {
        Value::Number(n) => {
            let s = n.to_string();
            !is_int(&s) && s.parse::<f64>().map_or(true, |f| !f.is_finite())
        }
        Value::Array(a) => a.iter().any(has_non_finite),
        Value::Object(m) => m.values().any(has_non_finite),
        _ => false,
    }
}

/// Asserts the JSON round trip for a value a decoder produced:
/// `parse_json(python_json(v))` equals `v`, and writing it again gives the same
/// text; a value with a non-finite float is refused instead.
pub fn assert_json_round_trip(v: &Value) {
    if has_non_finite(v) {
        assert!(
            matches!(python_json(v), Err(keyroll::SignError::Unserializable(_))),
            "python_json wrote a non-finite float: {v:?}"
        );
        return;
    }
    let text = match python_json(v) {
        Ok(t) => t,
        Err(e) => panic!("a decoded value does not serialize: {e}"),
    };
    assert!(text.is_ascii(), "python_json wrote non-ASCII: {text:?}");
    match parse_json(text.as_bytes(), keyroll::Limits::JSON_DEPTH_CEILING) {
        Ok(back) => {
            assert!(json_eq(&back, v), "{v:?} -> {text} -> {back:?}");
            let again = python_json(&back).unwrap_or_default();
            assert_eq!(again, text, "python_json is not canonical");
        }
        Err(e) => panic!("python_json wrote {text:?}, which parse_json refuses: {e}"),
    }
}

/// The token with byte `at` (modulo its length) replaced by another ASCII
/// byte, when that byte is ASCII (so the result stays valid UTF-8).
pub fn one_byte_change(token: &str, at: usize, delta: u8) -> Option<String> {
    if token.is_empty() {
        return None;
    }
    let mut bytes = token.as_bytes().to_vec();
    let i = at % bytes.len();
    let b = *bytes.get(i)?;
    if !b.is_ascii() {
        return None;
    }
    let d = delta % 127 + 1; // 1..=127
    let nb = (b.wrapping_add(d)) & 0x7f;
    if nb == b {
        return None;
    }
    if let Some(slot) = bytes.get_mut(i) {
        *slot = nb;
    }
    String::from_utf8(bytes).ok()
}

/// Some proper prefixes of `token` (at char boundaries) that cut into what
/// signing appended, for truncation checks: each is longer than `keep`, the
/// length of the fuzzer's own value at the front of the token. A prefix of the
/// value itself proves nothing: the value may be (or start with) another
/// valid token, and then that prefix rightly verifies. (The `timestamp_unsign`
/// target once asserted otherwise and "crashed" on a value holding a seed
/// token; see `timestamp_token_whose_value_is_another_token_verifies_as_the_outer_one`
/// in crates/keyroll/tests/bad_input.rs.)
pub fn truncations(token: &str, keep: usize) -> impl Iterator<Item = &str> {
    let n = token.len();
    let mid = keep + n.saturating_sub(keep) / 2;
    [
        keep + 1,
        keep + 2,
        mid,
        n.saturating_sub(2),
        n.saturating_sub(1),
    ]
    .into_iter()
    .filter(move |&k| k > keep && k < n && token.is_char_boundary(k))
    .filter_map(move |k| token.get(..k))
}
