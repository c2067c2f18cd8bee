//! The small codecs: base62 timestamps, base36 integers and URL-safe base64.
//! Decoders on arbitrary text; whatever decodes re-encodes to the canonical
//! form; encoders round-trip arbitrary integers and bytes.
//!
//! Each decoder is also checked against a small, obviously-correct reference
//! written here (digit by digit in `u128`, bit by bit for base64): same
//! verdict, same value.
//!
//! Input: text for the decoders; its first 8 bytes also as an integer and the
//! whole as bytes for the encoders.
#![no_main]

use keyroll::{b36_decode, b36_encode, b62_decode, b62_encode, b64_decode, b64_encode};
use keyroll_fuzz::i64_from;
use libfuzzer_sys::fuzz_target;

/// Django's `b62_decode`, bounded to `i64`: an optional leading `-`, then
/// digits of `0-9A-Za-z` (none at all is zero); the empty string is an error.
fn ref_b62(s: &str) -> Option<i64> {
    const ALPHA: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    if s.is_empty() {
        return None;
    }
    let (neg, digits) = match s.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, s),
    };
    let mut v: u128 = 0;
    for c in digits.bytes() {
        let d = ALPHA.iter().position(|&a| a == c)? as u128;
        v = v * 62 + d;
        if v > 1 << 64 {
            return None;
        }
    }
    let v = i128::try_from(v).ok()?;
    i64::try_from(if neg { -v } else { v }).ok()
}

/// Base36 of either case, 1 to 13 characters, fitting in a `u64`.
fn ref_b36(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 13 {
        return None;
    }
    let mut v: u128 = 0;
    for c in s.bytes() {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'z' => c - b'a' + 10,
            b'A'..=b'Z' => c - b'A' + 10,
            _ => return None,
        };
        v = v * 36 + u128::from(d);
    }
    u64::try_from(v).ok()
}

/// URL-safe base64: the alphabet `A-Za-z0-9-_`; either no padding or exactly
/// the canonical `=`s; a lone trailing character (length 1 mod 4) is an error;
/// left-over bits in the last character are ignored.
fn ref_b64(text: &[u8]) -> Option<Vec<u8>> {
    let body_len = text.iter().rposition(|&c| c != b'=').map_or(0, |i| i + 1);
    let (body, pad) = text.split_at(body_len);
    if !pad.is_empty() && (text.len() % 4 != 0 || pad.len() > 2) {
        return None;
    }
    if body.len() % 4 == 1 {
        return None;
    }
    let mut bits: u32 = 0;
    let mut nbits = 0u32;
    let mut out = Vec::new();
    for &c in body {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        bits = (bits << 6) | u32::from(v);
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            out.push((bits >> nbits) as u8);
            bits &= (1 << nbits) - 1;
        }
    }
    Some(out)
}

fuzz_target!(|data: &[u8]| {
    assert_eq!(b64_decode(data), ref_b64(data), "b64 {data:?}");
    if let Ok(s) = std::str::from_utf8(data) {
        assert_eq!(b62_decode(s), ref_b62(s), "b62 {s:?}");
        assert_eq!(b36_decode(s), ref_b36(s), "b36 {s:?}");
        if let Some(n) = b62_decode(s) {
            let e = b62_encode(n);
            assert_eq!(b62_decode(&e), Some(n));
            let digits = s.strip_prefix('-').unwrap_or(s).trim_start_matches('0');
            let canonical = match (n < 0, digits.is_empty()) {
                (_, true) => "0".to_owned(),
                (true, false) => format!("-{digits}"),
                (false, false) => digits.to_owned(),
            };
            assert_eq!(e, canonical, "{s:?}");
        }
        if let Some(n) = b36_decode(s) {
            assert!(s.len() <= 13);
            let e = b36_encode(n);
            let lower = s.to_ascii_lowercase();
            let digits = lower.trim_start_matches('0');
            assert_eq!(e, if digits.is_empty() { "0" } else { digits }, "{s:?}");
        }
    }
    if let Some(bytes) = b64_decode(data) {
        let e = b64_encode(&bytes);
        assert_eq!(b64_decode(e.as_bytes()), Some(bytes.clone()));
        // The canonical text has no padding and at most the input's length.
        assert!(!e.contains('='));
        assert!(e.len() <= data.len());
    }

    let n = i64_from(data);
    assert_eq!(b62_decode(&b62_encode(n)), Some(n));
    let u = n as u64;
    assert_eq!(b36_decode(&b36_encode(u)), Some(u));
    assert_eq!(b64_decode(b64_encode(data).as_bytes()), Some(data.to_vec()));
});
