//! The small encodings of Django's formats: URL-safe base64 without padding,
//! base62 timestamps and base36 integers.

use base64::alphabet::URL_SAFE;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;

/// URL-safe base64 that writes no padding and reads with or without it,
/// tolerating non-zero trailing bits as Python's decoder does.
const B64: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Base64 (URL-safe alphabet, `=` padding stripped) of `data`, appended to `out`.
pub(crate) fn b64_encode_into(data: &[u8], out: &mut String) {
    B64.encode_string(data, out);
}

/// Base64 (URL-safe alphabet, `=` padding stripped) of `data`.
pub fn b64_encode(data: &[u8]) -> String {
    B64.encode(data)
}

/// Decodes URL-safe base64, with or without `=` padding.
pub fn b64_decode(text: &[u8]) -> Option<Vec<u8>> {
    B64.decode(text).ok()
}

/// Decodes a signed payload's base64 exactly as Django does
/// (`urlsafe_b64decode(s + "=" * (-len(s) % 4))`, i.e. CPython's non-strict
/// `binascii.a2b_base64`): characters outside the alphabet are skipped, both
/// the URL-safe (`-_`) and standard (`+/`) alphabets are read, a complete pad
/// sequence ends the data, and a dangling quantum is an error.
pub(crate) fn b64_decode_django(text: &[u8]) -> Option<Vec<u8>> {
    // Fast path: whatever the strict engine accepts (URL-safe alphabet only,
    // well-placed padding) Python decodes to the same bytes.
    if let Ok(bytes) = B64.decode(text) {
        return Some(bytes);
    }
    let pad = (4 - text.len() % 4) % 4;
    let mut out = Vec::with_capacity(text.len() / 4 * 3 + 3);
    let (mut quad, mut left, mut pads) = (0u8, 0u8, 0usize);
    for &c in text.iter().chain(std::iter::repeat_n(&b'=', pad)) {
        if c == b'=' {
            if quad >= 2 {
                pads += 1;
                if usize::from(quad) + pads >= 4 {
                    return Some(out);
                }
            }
            continue;
        }
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            _ => continue,
        };
        pads = 0;
        match quad {
            0 => {
                left = v;
                quad = 1;
            }
            1 => {
                out.push((left << 2) | (v >> 4));
                left = v & 0x0f;
                quad = 2;
            }
            2 => {
                out.push((left << 4) | (v >> 2));
                left = v & 0x03;
                quad = 3;
            }
            _ => {
                out.push((left << 6) | v);
                left = 0;
                quad = 0;
            }
        }
    }
    (quad == 0).then_some(out)
}

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Base62 of an integer, as Django's `b62_encode` (a leading `-` for negatives).
pub fn b62_encode(n: i64) -> String {
    if n == 0 {
        return "0".to_owned();
    }
    let mut v = n.unsigned_abs();
    let mut digits = Vec::with_capacity(12);
    while v > 0 {
        digits.push(BASE62.get((v % 62) as usize).copied().unwrap_or(b'0'));
        v /= 62;
    }
    if n < 0 {
        digits.push(b'-');
    }
    digits.reverse();
    String::from_utf8(digits).unwrap_or_default()
}

/// Parses base62 as Django's `b62_decode` does; `None` for a character outside
/// the alphabet, an empty string, or a value that does not fit in an `i64`.
pub fn b62_decode(s: &str) -> Option<i64> {
    let (neg, magnitude) = b62_magnitude(s)?;
    let m = i128::from(magnitude?);
    i64::try_from(if neg { -m } else { m }).ok()
}

/// Sign and magnitude of a base62 number; the magnitude is `None` past `u64::MAX`.
fn b62_magnitude(s: &str) -> Option<(bool, Option<u64>)> {
    let (neg, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    if s.is_empty() {
        return None;
    }
    let mut v: Option<u64> = Some(0);
    for c in digits.bytes() {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'A'..=b'Z' => c - b'A' + 10,
            b'a'..=b'z' => c - b'a' + 36,
            _ => return None,
        };
        v = v
            .and_then(|v| v.checked_mul(62))
            .and_then(|v| v.checked_add(u64::from(d)));
    }
    Some((neg, v))
}

/// Like [`b62_decode`], but a value too large for an `i64` saturates instead
/// of failing (Python's integers are unbounded; such a timestamp is simply
/// very far in the past or future).
pub(crate) fn b62_decode_saturating(s: &str) -> Option<i64> {
    let (neg, magnitude) = b62_magnitude(s)?;
    let m = i128::from(magnitude.unwrap_or(u64::MAX));
    let v = if neg { -m } else { m };
    Some(i64::try_from(v).unwrap_or(if neg { i64::MIN } else { i64::MAX }))
}

/// Base36 (`0-9a-z`) of a non-negative integer.
pub fn b36_encode(mut n: u64) -> String {
    const B36: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    if n == 0 {
        return "0".to_owned();
    }
    let mut digits = Vec::with_capacity(13);
    while n > 0 {
        digits.push(B36.get((n % 36) as usize).copied().unwrap_or(b'0'));
        n /= 36;
    }
    digits.reverse();
    String::from_utf8(digits).unwrap_or_default()
}

/// Parses base36 (either case); more than 13 characters is refused, as Django does.
pub fn b36_decode(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 13 {
        return None;
    }
    let mut v: u64 = 0;
    for c in s.bytes() {
        let d = (c as char).to_digit(36)?;
        v = v.checked_mul(36)?.checked_add(u64::from(d))?;
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base62_matches_django() {
        // Values from Django's test_signing.py (b62 round trips).
        for n in [0i64, 1, -1, 61, 62, -62, 1_700_000_000, i64::MAX, -i64::MAX] {
            assert_eq!(b62_decode(&b62_encode(n)), Some(n), "{n}");
        }
        assert_eq!(b62_encode(62), "10");
        assert_eq!(b62_encode(-61), "-z");
        assert_eq!(b62_decode("-"), Some(0)); // Django: "-" decodes to 0
        assert_eq!(b62_decode(""), None);
        assert_eq!(b62_decode("a:b"), None);
        assert_eq!(b62_decode("zzzzzzzzzzzzzzzzzzzzzzz"), None);
        assert_eq!(
            b62_decode_saturating("zzzzzzzzzzzzzzzzzzzzzzz"),
            Some(i64::MAX)
        );
        assert_eq!(
            b62_decode_saturating("-zzzzzzzzzzzzzzzzzzzzzz"),
            Some(i64::MIN)
        );
        assert_eq!(b62_decode_saturating("000A"), Some(10));
        assert_eq!(b62_decode_saturating("a!"), None);
    }

    #[test]
    fn base36_limits() {
        assert_eq!(b36_encode(0), "0");
        assert_eq!(b36_encode(35), "z");
        assert_eq!(b36_decode("Z"), Some(35));
        assert_eq!(b36_decode("zzzzzzzzzzzz"), Some(4_738_381_338_321_616_895));
        assert_eq!(b36_decode("zzzzzzzzzzzzzz"), None);
        assert_eq!(b36_decode("-1"), None);
        assert_eq!(b36_decode(""), None);
    }

    #[test]
    fn base64_reads_like_python() {
        // Expected values from CPython 3.11's base64.urlsafe_b64decode(s + pad).
        let cases: [(&[u8], Option<&[u8]>); 12] = [
            (b"YWI", Some(b"ab")),
            (b"YWI=", Some(b"ab")),
            (b"YW!I", None),
            (b"YW!I==", Some(b"ab")),
            (b"YWJj", Some(b"abc")),
            (b"YW:Jj", Some(b"abc")),
            (b"Y", None),
            (b"YQ==YWJj", Some(b"a")),
            (b"+/+/", Some(&[0xfb, 0xff, 0xbf])),
            (b"-_-_", Some(&[0xfb, 0xff, 0xbf])),
            (b"", Some(b"")),
            ("YWJj\u{e9}".as_bytes(), Some(b"abc")),
        ];
        for (input, want) in cases {
            let got = b64_decode_django(input);
            assert_eq!(got.as_deref(), want, "{:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn base64_accepts_padding_and_writes_none() {
        assert_eq!(b64_encode(b"ab"), "YWI");
        assert_eq!(b64_decode(b"YWI=").as_deref(), Some(&b"ab"[..]));
        assert_eq!(b64_decode(b"YWI").as_deref(), Some(&b"ab"[..]));
        assert_eq!(b64_decode(b"Y"), None);
        assert_eq!(b64_encode(&[0xfb, 0xff]), "-_8");
    }
}
