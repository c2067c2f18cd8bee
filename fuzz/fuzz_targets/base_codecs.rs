//! The small codecs: base62 timestamps, base36 integers and URL-safe base64.
//! Decoders on arbitrary text; whatever decodes re-encodes to the canonical
//! form; encoders round-trip arbitrary integers and bytes.
//!
//! Input: text for the decoders; its first 8 bytes also as an integer and the
//! whole as bytes for the encoders.
#![no_main]

use keyroll::{b36_decode, b36_encode, b62_decode, b62_encode, b64_decode, b64_encode};
use keyroll_fuzz::i64_from;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
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
