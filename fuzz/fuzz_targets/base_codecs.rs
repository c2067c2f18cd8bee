//! The small codecs: base62 timestamps, base36 integers and URL-safe base64.
//! Decoders on arbitrary text; whatever decodes re-encodes to the canonical
//! form; encoders round-trip arbitrary integers and bytes.
//!
//! Each decoder is also checked against a small, obviously-correct reference
//! written here (digit by digit in `u128`, bit by bit for base64): same
//! verdict, same value.
//!
//! The signed-payload decoder (Django's lenient `urlsafe_b64decode`, behind a
//! valid signature) is checked the same way against a transcription of
//! CPython's non-strict `binascii.a2b_base64`.
//!
//! Input: text for the decoders; its first 8 bytes also as an integer and the
//! whole as bytes for the encoders.
#![no_main]

use keyroll::{b36_decode, b36_encode, b62_decode, b62_encode, b64_decode, b64_encode};
use std::sync::OnceLock;

use keyroll::{ObjectSigner, SignerBuilder, VerifyError};
use keyroll_fuzz::{i64_from, ring, NOW};
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

/// URL-safe base64: the alphabet `A-Za-z0-9-_`; trailing `=`s up to the
/// canonical padding (`YQ`, `YQ=` and `YQ==` are all accepted); a lone
/// trailing character (length 1 mod 4) is an error; left-over bits in the last
/// character are ignored.
fn ref_b64(text: &[u8]) -> Option<Vec<u8>> {
    let body_len = text.iter().rposition(|&c| c != b'=').map_or(0, |i| i + 1);
    let (body, pad) = text.split_at(body_len);
    // At most the canonical padding; fewer `=` (even one of two) are accepted.
    let canonical_pad = (4 - body_len % 4) % 4;
    if pad.len() > canonical_pad {
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

/// Django's `b64_decode(s)`: `urlsafe_b64decode(s + "=" * (-len(s) % 4))`,
/// that is CPython's `binascii.a2b_base64(strict_mode=False)` after mapping
/// `-_` to `+/`: characters outside the alphabet are skipped; `=` counts as
/// padding only after two data characters of a quad, and a complete pad
/// sequence ends the data; a quad left with one character, or unpadded, is
/// an error.
fn ref_django_b64(text: &[u8]) -> Option<Vec<u8>> {
    let pad = (4 - text.len() % 4) % 4;
    let mut out = Vec::new();
    let (mut quad_pos, mut leftchar, mut pads) = (0u8, 0u8, 0usize);
    for &ch in text.iter().chain(std::iter::repeat_n(&b'=', pad)) {
        if ch == b'=' {
            if quad_pos >= 2 {
                pads += 1;
                if usize::from(quad_pos) + pads >= 4 {
                    return Some(out);
                }
            }
            continue;
        }
        let v = match ch {
            b'A'..=b'Z' => ch - b'A',
            b'a'..=b'z' => ch - b'a' + 26,
            b'0'..=b'9' => ch - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => continue,
        };
        pads = 0;
        match quad_pos {
            0 => {
                quad_pos = 1;
                leftchar = v;
            }
            1 => {
                quad_pos = 2;
                out.push((leftchar << 2) | (v >> 4));
                leftchar = v & 0x0f;
            }
            2 => {
                quad_pos = 3;
                out.push((leftchar << 4) | (v >> 2));
                leftchar = v & 0x03;
            }
            _ => {
                quad_pos = 0;
                out.push((leftchar << 6) | v);
                leftchar = 0;
            }
        }
    }
    (quad_pos == 0).then_some(out)
}

fn plain_objects() -> &'static ObjectSigner {
    static S: OnceLock<ObjectSigner> = OnceLock::new();
    S.get_or_init(|| {
        ObjectSigner::new(SignerBuilder::new(), false, ring())
            .unwrap_or_else(|e| panic!("default options are valid: {e}"))
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if !text.starts_with('.') {
            let s = plain_objects();
            let token = s.timestamp_signer().sign_at(text, NOW);
            let got = s.loads_json_at(&token, None, NOW).map(|v| v.value);
            match ref_django_b64(data) {
                Some(bytes) => assert_eq!(got, Ok(bytes), "payload {text:?}"),
                None => assert_eq!(got, Err(VerifyError::Malformed("base64")), "{text:?}"),
            }
        }
    }
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
