//! Hostile input: one named test per kind of bad input, each asserting the
//! exact error every decoder gives for it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code

use std::path::Path;
use std::time::{Duration, Instant};

use keyroll::ringfile::{RingFile, RingFileError};
use keyroll::{
    b36_decode, b62_decode, b64_decode, b64_encode, messages_cookie, parse_json, Algorithm,
    CookieSaltForm, KeyRing, Limit, Limits, ObjectSigner, PasswordResetTokens, ResetUser,
    RingError, Role, Secret, SessionAuthHash, SessionCodec, SignedCookie, Signer, SignerBuilder,
    TimestampSigner, VerifyError, COOKIE_SESSION_SALT, DB_SESSION_SALT, DEFAULT_SESSION_COOKIE_AGE,
};
use serde_json::json;
use time::macros::datetime;
use time::OffsetDateTime;

const NOW: OffsetDateTime = datetime!(2026-11-28 12:00 UTC);
const PRIMARY: &str = "bad-input-primary-secret-0123456789abcdef";
const OLD: &str = "bad-input-old-secret-0123456789abcdefghij";
const HOUR: Duration = Duration::from_secs(3600);

fn ring() -> KeyRing {
    KeyRing::new(Secret::from(PRIMARY))
        .expect("a non-empty secret")
        .with_fallback(Secret::from(OLD), None)
        .expect("ring")
}

fn user() -> ResetUser<'static> {
    ResetUser {
        pk: "42",
        password_hash: "pbkdf2_sha256$870000$salt$hash=",
        last_login: None,
        email: Some("user@example.com"),
    }
}

type Decoder = Box<dyn Fn(&str) -> Result<(), VerifyError>>;
type CheckAt = Box<dyn Fn(OffsetDateTime) -> Result<(), VerifyError>>;

/// Every decoder of signed tokens, over `ring`, with `limits`.
fn token_decoders(ring: &KeyRing, limits: Limits) -> Vec<(&'static str, Decoder)> {
    let b = SignerBuilder::new().limits(limits);
    let signer = b.build(ring).expect("valid");
    let ts = b.build_timestamp(ring).expect("valid");
    let ts_aged = ts.clone();
    let obj = ObjectSigner::new(b.clone(), false, ring).expect("valid");
    let db = SessionCodec::with_builder(ring, b.clone().salt(DB_SESSION_SALT), None);
    let sc = SessionCodec::with_builder(
        ring,
        b.clone().salt(COOKIE_SESSION_SALT),
        Some(DEFAULT_SESSION_COOKIE_AGE),
    );
    let cookie = SignedCookie::with_builder(ring, "sessionid", "", b.clone()).expect("valid");
    let mut all: Vec<(&'static str, Decoder)> = vec![
        (
            "Signer",
            Box::new(move |t| signer.unsign_at(t, NOW).map(drop)),
        ),
        (
            "TimestampSigner",
            Box::new(move |t| ts.unsign_at(t, None, NOW).map(drop)),
        ),
        (
            "TimestampSigner max_age",
            Box::new(move |t| ts_aged.unsign_at(t, Some(HOUR), NOW).map(drop)),
        ),
        (
            "ObjectSigner",
            Box::new(move |t| obj.loads_at(t, None, NOW).map(drop)),
        ),
        (
            "SessionCodec database",
            Box::new(move |t| db.decode_at(t, NOW).map(drop)),
        ),
        (
            "SessionCodec signed cookie",
            Box::new(move |t| sc.decode_at(t, NOW).map(drop)),
        ),
        (
            "SignedCookie",
            Box::new(move |t| cookie.unsign_at(t, Some(HOUR), NOW).map(drop)),
        ),
    ];
    if limits == Limits::default() {
        let m = messages_cookie(ring);
        all.push((
            "messages_cookie",
            Box::new(move |t| m.loads_at(t, None, NOW).map(drop)),
        ));
    }
    all
}

/// The token decoders plus the two fixed-shape formats (reset tokens, auth hashes).
fn all_decoders(ring: &KeyRing) -> Vec<(&'static str, Decoder)> {
    let mut all = token_decoders(ring, Limits::default());
    let reset = PasswordResetTokens::new(ring);
    all.push((
        "PasswordResetTokens",
        Box::new(move |t| reset.check_token_at(&user(), t, NOW).map(drop)),
    ));
    let auth = SessionAuthHash::new(ring);
    all.push((
        "SessionAuthHash",
        Box::new(move |t| auth.check_at(t, user().password_hash, NOW).map(drop)),
    ));
    all
}

#[track_caller]
fn assert_all(decoders: &[(&'static str, Decoder)], input: &str, want: &VerifyError) {
    for (name, decode) in decoders {
        let got = decode(input);
        assert_eq!(
            got.as_ref(),
            Err(want),
            "{name} on {:?}",
            input.chars().take(80).collect::<String>()
        );
    }
}

fn too_large(limit: Limit, max: usize) -> VerifyError {
    VerifyError::TooLarge { limit, max }
}

/// An object token (`dumps` shape) signed validly by the primary around any payload text.
fn signed_object_payload(payload: &str) -> String {
    ObjectSigner::new(SignerBuilder::new(), true, &ring())
        .expect("valid")
        .timestamp_signer()
        .sign_at(payload, NOW)
}

fn loads(token: &str) -> Result<serde_json::Value, VerifyError> {
    ObjectSigner::new(SignerBuilder::new(), true, &ring())
        .expect("valid")
        .loads_at(token, None, NOW)
        .map(|v| v.value)
}

/// One valid token of every format, with its decoder (ASCII tokens, signed
/// by the primary of `ring()`).
fn valid_tokens() -> Vec<(&'static str, String, Decoder)> {
    let r = ring();
    let mut out: Vec<(&'static str, String, Decoder)> = Vec::new();
    let s = Signer::new(&r);
    out.push((
        "Signer",
        s.sign("hello"),
        Box::new(move |t| s.unsign_at(t, NOW).map(drop)),
    ));
    let t = TimestampSigner::new(&r);
    out.push((
        "TimestampSigner",
        t.sign_at("hello", NOW),
        Box::new(move |x| t.unsign_at(x, Some(HOUR), NOW).map(drop)),
    ));
    for compress in [false, true] {
        let o = ObjectSigner::new(SignerBuilder::new(), compress, &r).expect("valid");
        let v = json!({"cart": vec!["x"; 40], "n": 1});
        out.push((
            "ObjectSigner",
            o.dumps_at(&v, NOW).expect("ok"),
            Box::new(move |x| o.loads_at(x, None, NOW).map(drop)),
        ));
    }
    let db = SessionCodec::database(&r);
    let mut data = keyroll::SessionData::new();
    data.insert("_auth_user_id".into(), "42".into());
    out.push((
        "SessionCodec",
        db.encode_at(&data, NOW).expect("ok"),
        Box::new(move |x| db.decode_at(x, NOW).map(drop)),
    ));
    for form in [CookieSaltForm::V2, CookieSaltForm::Legacy] {
        let c = SignedCookie::new(&r, "theme", "")
            .expect("valid")
            .writing(form);
        out.push((
            "SignedCookie",
            c.sign_at("dark", NOW),
            Box::new(move |x| c.unsign_at(x, Some(HOUR), NOW).map(drop)),
        ));
    }
    let m = messages_cookie(&r);
    out.push((
        "messages_cookie",
        m.dumps_at(&json!([[0, 20, "saved"]]), NOW).expect("ok"),
        Box::new(move |x| m.loads_at(x, None, NOW).map(drop)),
    ));
    let reset = PasswordResetTokens::new(&r);
    out.push((
        "PasswordResetTokens",
        reset.make_token_at(&user(), NOW),
        Box::new(move |x| reset.check_token_at(&user(), x, NOW).map(drop)),
    ));
    let auth = SessionAuthHash::new(&r);
    out.push((
        "SessionAuthHash",
        auth.make(user().password_hash),
        Box::new(move |x| auth.check_at(x, user().password_hash, NOW).map(drop)),
    ));
    for (name, token, decode) in &out {
        assert!(token.is_ascii());
        assert_eq!(decode(token), Ok(()), "{name}: the valid token must verify");
    }
    out
}

// ---------------------------------------------------------------------------
// Garbage, empty, oversized
// ---------------------------------------------------------------------------

#[test]
fn garbage_lines_are_bad_signatures() {
    let decoders = all_decoders(&ring());
    let sig43 = "A".repeat(43);
    let garbage = [
        "garbage".to_owned(),
        "hello world".to_owned(),
        ":".to_owned(),
        "::::".to_owned(),
        "a:b:c".to_owned(),
        ".".to_owned(),
        ".:.:.".to_owned(),
        "\t\r\n".to_owned(),
        "é:ü:😀".to_owned(),
        "-".to_owned(),
        "0-0".to_owned(),
        "zzzzzzzzzzzzz-0123456789abcdef0123456789abcdef".to_owned(),
        r#"{"a": [1, 2, 3]}"#.to_owned(),
        "eyJhIjoxfQ:1tqKzR:".to_owned(),
        format!("eyJhIjoxfQ:1tqKzR:{sig43}"),
        format!(".eJyrVkpUslKqBgAIJAIU:1tqKzR:{sig43}"),
        format!("hello:{sig43}"),
        format!("hello:{}", "é".repeat(43)),
        "0".repeat(64),
        "g".repeat(64),
    ];
    for g in &garbage {
        assert_all(&decoders, g, &VerifyError::BadSignature);
    }
}

#[test]
fn empty_string_is_a_bad_signature() {
    assert_all(&all_decoders(&ring()), "", &VerifyError::BadSignature);
    assert_eq!(parse_json(b"", 128), Err(VerifyError::Malformed("json")));
    assert_eq!(b62_decode(""), None);
    assert_eq!(b36_decode(""), None);
    assert_eq!(
        b64_decode(b""),
        Some(Vec::new()),
        "empty base64 is empty bytes"
    );
}

#[test]
fn token_one_byte_over_max_token_len_is_too_large() {
    let max = Limits::DEFAULT_MAX_TOKEN_LEN;
    let at_limit = format!("{}:{}", "a".repeat(max - 44), "A".repeat(43));
    assert_eq!(at_limit.len(), max);
    let over = format!("a{at_limit}");
    let decoders = token_decoders(&ring(), Limits::default());
    assert_all(&decoders, &over, &too_large(Limit::TokenLength, max));
    // At the limit the token is read (and refused only for its signature).
    assert_all(&decoders, &at_limit, &VerifyError::BadSignature);
}

#[test]
fn validly_signed_token_over_a_configured_max_token_len_is_too_large() {
    let small = Limits::default().with_max_token_len(100).expect("in range");
    let r = ring();
    let token = Signer::new(&r).sign(&"v".repeat(57)); // 57 + 1 + 43 = 101 bytes
    assert_eq!(token.len(), 101);
    let strict = SignerBuilder::new().limits(small).build(&r).expect("valid");
    assert_eq!(
        strict.unsign_at(&token, NOW),
        Err(too_large(Limit::TokenLength, 100))
    );
    assert_eq!(
        strict.unsign_at(&token[1..], NOW),
        Err(VerifyError::BadSignature),
        "100 bytes are read"
    );
    let obj = ObjectSigner::new(SignerBuilder::new(), false, &r).expect("valid");
    let token = obj.dumps_at(&json!("x".repeat(200)), NOW).expect("ok");
    let strict = ObjectSigner::new(SignerBuilder::new().limits(small), false, &r).expect("valid");
    assert_eq!(
        strict.loads_at(&token, None, NOW),
        Err(too_large(Limit::TokenLength, 100))
    );
    // Limits themselves refuse nonsense.
    assert!(Limits::default().with_max_token_len(0).is_err());
    assert!(Limits::default()
        .with_max_token_len(Limits::SIZE_CEILING + 1)
        .is_err());
}

#[test]
fn ten_megabyte_line_of_colons_is_too_large() {
    let line = ":".repeat(10 << 20);
    let started = Instant::now();
    assert_all(
        &token_decoders(&ring(), Limits::default()),
        &line,
        &too_large(Limit::TokenLength, Limits::DEFAULT_MAX_TOKEN_LEN),
    );
    let r = ring();
    assert_eq!(
        PasswordResetTokens::new(&r).check_token_at(&user(), &line, NOW),
        Err(VerifyError::BadSignature)
    );
    assert_eq!(
        SessionAuthHash::new(&r).check_at(&line, "h", NOW),
        Err(VerifyError::BadSignature)
    );
    assert_eq!(
        parse_json(line.as_bytes(), 128),
        Err(VerifyError::Malformed("json"))
    );
    assert_eq!(b62_decode(&line), None);
    assert_eq!(b36_decode(&line), None);
    assert_eq!(b64_decode(line.as_bytes()), None);
    // With the length limit raised past it, the line is read and refused for its signature.
    let roomy = Limits::default()
        .with_max_token_len(16 << 20)
        .expect("in range");
    assert_all(
        &token_decoders(&ring(), roomy),
        &line,
        &VerifyError::BadSignature,
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------
// Decompression bomb
// ---------------------------------------------------------------------------

/// Adler-32 state after `n` more bytes of value `c`.
fn adler_run(a: u64, b: u64, n: u64, c: u64) -> (u64, u64) {
    const M: u128 = 65521;
    let (a0, b0, n, c) = (u128::from(a), u128::from(b), u128::from(n), u128::from(c));
    let b = (b0 + n * a0 + c * (n * (n + 1) / 2)) % M;
    let a = (a0 + n * c) % M;
    (a as u64, b as u64)
}

/// A zlib stream that inflates to `mib` MiB of spaces followed by `[]` (valid
/// JSON), with a correct Adler-32, built without ever holding the inflated
/// bytes: one raw-deflate segment for 1 MiB of spaces, ended by a full flush
/// (so it refers to nothing before it and ends on a byte boundary), repeated.
fn zlib_bomb(mib: u64) -> Vec<u8> {
    use flate2::{Compress, Compression, FlushCompress, Status};
    let chunk = vec![b' '; 1 << 20];
    let mut c = Compress::new(Compression::best(), false);
    let mut segment = Vec::with_capacity(1 << 16);
    let status = c
        .compress_vec(&chunk, &mut segment, FlushCompress::Full)
        .expect("compress");
    assert_eq!(status, Status::Ok);
    assert_eq!(c.total_in(), 1 << 20, "whole chunk consumed");
    assert!(segment.len() < segment.capacity(), "flush complete");

    let mut tail_c = Compress::new(Compression::best(), false);
    let mut tail = Vec::with_capacity(64);
    let status = tail_c
        .compress_vec(b"[]", &mut tail, FlushCompress::Finish)
        .expect("compress");
    assert_eq!(status, Status::StreamEnd);

    let mut out = Vec::with_capacity(2 + segment.len() * mib as usize + tail.len() + 4);
    out.extend_from_slice(&[0x78, 0xda]);
    for _ in 0..mib {
        out.extend_from_slice(&segment);
    }
    out.extend_from_slice(&tail);
    let (a, b) = adler_run(1, 0, mib << 20, u64::from(b' '));
    let (a, b) = adler_run(a, b, 1, u64::from(b'['));
    let (a, b) = adler_run(a, b, 1, u64::from(b']'));
    out.extend_from_slice(&(((b << 16) | a) as u32).to_be_bytes());
    out
}

fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[test]
fn zlib_bomb_construction_is_a_valid_stream() {
    // The same construction at a small size inflates completely (Adler-32
    // included) and loads as the JSON it hides: so the big one is a real bomb.
    let small = zlib_bomb(3);
    let mut inflated = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::ZlibDecoder::new(small.as_slice()),
        &mut inflated,
    )
    .expect("valid zlib");
    assert_eq!(inflated.len(), (3 << 20) + 2);
    assert!(inflated.ends_with(b" []"));
    let token = signed_object_payload(&format!(".{}", b64_encode(&small)));
    assert_eq!(loads(&token), Ok(json!([])));
}

#[test]
fn zlib_bomb_of_four_gib_signed_validly_is_too_large_quickly() {
    let bomb = zlib_bomb(4096); // inflates to 4 GiB + 2 bytes
    assert!(bomb.len() < 6 << 20, "{} bytes", bomb.len());
    let r = ring();
    let limits = Limits::default()
        .with_max_token_len(16 << 20)
        .expect("in range");
    let b = SignerBuilder::new().limits(limits);
    let o = ObjectSigner::new(b.clone(), true, &r).expect("valid");
    let token = o
        .timestamp_signer()
        .sign_at(&format!(".{}", b64_encode(&bomb)), NOW);
    let want = too_large(Limit::InflatedSize, Limits::DEFAULT_MAX_INFLATED_LEN);

    // Verifying 5 MiB and inflating up to the 8 MiB cap takes ~0.3 s even in
    // a debug build, where inflating 4 GiB would take minutes. Best of three,
    // so that other tests running on the same cores do not make it flaky.
    let mut best = Duration::MAX;
    for _ in 0..3 {
        let started = Instant::now();
        assert_eq!(o.loads_at(&token, None, NOW), Err(want.clone()));
        best = best.min(started.elapsed());
        if best < Duration::from_secs(2) || started.elapsed() > Duration::from_secs(10) {
            break;
        }
    }
    assert!(best < Duration::from_secs(2), "took {best:?}");
    assert_eq!(o.loads_json_at(&token, None, NOW), Err(want.clone()));

    // A session row with the bomb inside is refused the same way.
    let codec = SessionCodec::with_builder(&r, b.salt(DB_SESSION_SALT), None);
    let row = codec
        .object_signer()
        .timestamp_signer()
        .sign_at(&format!(".{}", b64_encode(&bomb)), NOW);
    assert_eq!(codec.decode_at(&row, NOW), Err(want.clone()));

    // A smaller cap is the one named.
    let tight = limits.with_max_inflated_len(1 << 20).expect("in range");
    let o = ObjectSigner::new(SignerBuilder::new().limits(tight), true, &r).expect("valid");
    assert_eq!(
        o.loads_at(&token, None, NOW),
        Err(too_large(Limit::InflatedSize, 1 << 20))
    );

    // Nothing near 4 GiB was ever resident.
    if let Some(peak) = peak_rss_bytes() {
        assert!(peak < 1 << 30, "peak RSS {peak} bytes");
    }
}

#[test]
fn zlib_bomb_signed_by_an_unknown_key_is_a_bad_signature_before_inflating() {
    let bomb = zlib_bomb(64);
    let stranger = KeyRing::new(Secret::from("stranger")).expect("a non-empty secret");
    let token = ObjectSigner::new(SignerBuilder::new(), true, &stranger)
        .expect("valid")
        .timestamp_signer()
        .sign_at(&format!(".{}", b64_encode(&bomb)), NOW);
    assert_eq!(loads(&token), Err(VerifyError::BadSignature));
}

// ---------------------------------------------------------------------------
// Payload decoding after a valid signature
// ---------------------------------------------------------------------------

#[test]
fn json_nested_100k_levels_is_too_large() {
    let depth = 100_000;
    let arrays = "[".repeat(depth) + &"]".repeat(depth);
    let objects = r#"{"a":"#.repeat(depth) + &"}".repeat(depth);
    let want = too_large(Limit::JsonDepth, Limits::DEFAULT_MAX_JSON_DEPTH);
    for text in [&arrays, &objects] {
        assert_eq!(parse_json(text.as_bytes(), 128), Err(want.clone()));
        // Validly signed, plain and compressed.
        let plain = signed_object_payload(&b64_encode(text.as_bytes()));
        assert_eq!(loads(&plain), Err(want.clone()));
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut z, text.as_bytes()).expect("in memory");
        let z = z.finish().expect("in memory");
        let token = signed_object_payload(&format!(".{}", b64_encode(&z)));
        assert_eq!(loads(&token), Err(want.clone()));
        // And as session data.
        let codec = SessionCodec::database(&ring());
        let row = codec
            .object_signer()
            .timestamp_signer()
            .sign_at(&format!(".{}", b64_encode(&z)), NOW);
        assert_eq!(codec.decode_at(&row, NOW), Err(want.clone()));
    }
}

#[test]
fn json_nesting_at_the_depth_limit_parses_and_one_more_is_too_large() {
    let nest = |n: usize| "[".repeat(n) + &"]".repeat(n);
    let limit = Limits::DEFAULT_MAX_JSON_DEPTH;
    let ok = signed_object_payload(&b64_encode(nest(limit).as_bytes()));
    assert!(loads(&ok).is_ok());
    let over = signed_object_payload(&b64_encode(nest(limit + 1).as_bytes()));
    assert_eq!(loads(&over), Err(too_large(Limit::JsonDepth, limit)));
    // A configured limit is the one named.
    let three = Limits::default().with_max_json_depth(3).expect("in range");
    let o = ObjectSigner::new(SignerBuilder::new().limits(three), true, &ring()).expect("valid");
    assert_eq!(
        o.loads_at(&over, None, NOW),
        Err(too_large(Limit::JsonDepth, 3))
    );
    assert!(Limits::default()
        .with_max_json_depth(Limits::JSON_DEPTH_CEILING + 1)
        .is_err());
}

#[test]
fn invalid_base64_payload_signed_validly_is_malformed() {
    // Base64 that CPython's `urlsafe_b64decode(s + pad)` (what Django runs) refuses:
    // a dangling single character, or a quantum left incomplete.
    // Expected outcomes checked against CPython 3.11's base64 module.
    for payload in [
        "a",
        "abcde",
        "YWJjZ",
        "Y!!!",
        "YW=I",
        "ab=c",
        "====a",
        ".a",
        ".Y!!!",
        ".YWJjZ",
        // Junk shifts Django's computed padding, so these fail in CPython too.
        "eyJh!IjoxfQ",
        "e y J h I j o x f Q",
        "eyJhIjoxfQ\u{e9}",
        "eyJh\0IjoxfQ",
    ] {
        let token = signed_object_payload(payload);
        assert_eq!(
            loads(&token),
            Err(VerifyError::Malformed("base64")),
            "{payload:?}"
        );
    }
}

#[test]
fn junk_characters_in_payload_base64_are_skipped_as_django_does() {
    // CPython's non-strict decoder skips characters outside the alphabet,
    // reads both alphabets, and stops at a complete pad: so does keyroll.
    // Expected outcomes checked against CPython 3.11's base64 module.
    for payload in [
        "eyJhIjoxfQ",
        "ey Jh Ij ox fQ",
        "eyJh!!!!IjoxfQ",
        "eyJhIjoxfQ==",
        "eyJhIjoxfQ==garbage",
        "eyJhIjoxfQ\u{e9}\u{e9}",
        "eyJh\0\0\0\0IjoxfQ",
    ] {
        let token = signed_object_payload(payload);
        assert_eq!(loads(&token), Ok(json!({"a": 1})), "{payload:?}");
    }
    // Junk only decodes to nothing, which is not JSON (nor zlib).
    for (payload, want) in [
        ("!!!!", "json"),
        ("\u{e9}", "json"),
        ("=", "json"),
        (".!!!!", "zlib"),
    ] {
        let token = signed_object_payload(payload);
        assert_eq!(
            loads(&token),
            Err(VerifyError::Malformed(want)),
            "{payload:?}"
        );
    }
}

#[test]
fn invalid_zlib_payload_signed_validly_is_malformed() {
    let good = {
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut z, br#"{"a":"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"}"#)
            .expect("in memory");
        z.finish().expect("in memory")
    };
    assert_eq!(
        loads(&signed_object_payload(&format!(".{}", b64_encode(&good)))),
        Ok(json!({"a": "b".repeat(34)}))
    );
    let mut bad_checksum = good.clone();
    let last = bad_checksum.len() - 1;
    bad_checksum[last] ^= 1;
    let mut bad_header = good.clone();
    bad_header[0] = 0x79;
    let raw_deflate = &good[2..good.len() - 4];
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("not zlib", b"not zlib at all".to_vec()),
        ("truncated", good[..good.len() / 2].to_vec()),
        (
            "truncated before the checksum",
            good[..good.len() - 4].to_vec(),
        ),
        ("wrong Adler-32", bad_checksum),
        ("bad header", bad_header),
        ("raw deflate without header", raw_deflate.to_vec()),
        ("gzip", vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 3, 0]),
    ];
    for (what, z) in cases {
        let token = signed_object_payload(&format!(".{}", b64_encode(&z)));
        assert_eq!(loads(&token), Err(VerifyError::Malformed("zlib")), "{what}");
    }
}

#[test]
fn invalid_utf8_bytes_in_payload_are_read_as_latin1_or_malformed() {
    // Django decodes the JSON bytes as Latin-1, so any byte inside a string is a character.
    let cases: [(&[u8], Result<serde_json::Value, VerifyError>); 7] = [
        (b"\"\xc3\x28\"", Ok(json!("\u{c3}("))),
        (b"\"\xff\xfe\"", Ok(json!("\u{ff}\u{fe}"))),
        (b"\"\xc3\xa9\"", Ok(json!("\u{c3}\u{a9}"))), // UTF-8 é is mojibake, as in Django
        (b"\xff", Err(VerifyError::Malformed("json"))),
        (b"[1,\x80]", Err(VerifyError::Malformed("json"))),
        (b"\xef\xbb\xbf{}", Err(VerifyError::Malformed("json"))), // a UTF-8 BOM
        (b"\"\xed\xa0\x80\"", Ok(json!("\u{ed}\u{a0}\u{80}"))),   // a UTF-8-encoded surrogate
    ];
    for (bytes, want) in cases {
        let token = signed_object_payload(&b64_encode(bytes));
        assert_eq!(loads(&token), want, "{bytes:?}");
        assert_eq!(parse_json(bytes, 128), want, "{bytes:?}");
    }
}

#[test]
fn json_garbage_signed_validly_is_malformed() {
    for text in [
        "",
        " ",
        "{",
        "]",
        "]]]]]]]]",
        "[1,]",
        "{\"a\"}",
        "{} x",
        "\"unterminated",
        "\"bad escape \\q\"",
        // Python's json.loads accepts these four (a lone surrogate, and the
        // non-finite floats json.dumps writes for float("inf") / float("nan")),
        // so a Django payload holding them does not load in keyroll.
        "\"lone surrogate \\ud800\"",
        "NaN",
        "Infinity",
        "-Infinity",
        "01",
        "1.",
        ".5",
        "--1",
        "tru",
        "nul",
        "'single'",
    ] {
        let token = signed_object_payload(&b64_encode(text.as_bytes()));
        assert_eq!(
            loads(&token),
            Err(VerifyError::Malformed("json")),
            "{text:?}"
        );
    }
}

#[test]
fn json_with_duplicate_keys_loads_the_same_by_both_paths() {
    // Python keeps the first position and the last value; the one-pass
    // canonical reader hands duplicates to the value path.
    let o = ObjectSigner::new(SignerBuilder::new(), true, &ring()).expect("valid");
    for (text, want) in [
        (r#"{"a":1,"b":2,"a":3}"#, r#"{"a":3,"b":2}"#),
        (r#"[{"k":[1],"k":{"k":null}}]"#, r#"[{"k":{"k":null}}]"#),
    ] {
        let token = signed_object_payload(&b64_encode(text.as_bytes()));
        let mut out = String::new();
        assert!(o.loads_canonical_into(&token, None, NOW, &mut out).is_ok());
        assert_eq!(out, want);
        let v = o.loads_at(&token, None, NOW).expect("loads");
        assert_eq!(keyroll::python_json(&v.value).expect("json"), want);
    }
}

#[test]
fn session_data_that_is_not_an_object_is_malformed() {
    let codec = SessionCodec::database(&ring());
    for text in ["[]", "null", "\"s\"", "1", "[{\"a\":1}]"] {
        let row = codec
            .object_signer()
            .timestamp_signer()
            .sign_at(&b64_encode(text.as_bytes()), NOW);
        assert_eq!(
            codec.decode_at(&row, NOW),
            Err(VerifyError::Malformed("session data is not an object")),
            "{text}"
        );
        assert_eq!(
            codec.resign_at(&row, NOW).map(drop),
            Err(VerifyError::Malformed("session data is not an object"))
        );
    }
}

#[test]
fn signed_value_without_a_valid_timestamp_is_malformed() {
    let r = ring();
    let t = TimestampSigner::new(&r);
    let raw = |v: &str| t.signer().sign(v);
    assert_eq!(
        t.unsign_at(&raw("no-separator"), None, NOW),
        Err(VerifyError::Malformed("no timestamp"))
    );
    for ts in ["", "!", "1.5", "--1", " 1", "é", "1_0", "+5"] {
        assert_eq!(
            t.unsign_at(&raw(&format!("v:{ts}")), None, NOW),
            Err(VerifyError::Malformed("bad timestamp")),
            "{ts:?}"
        );
    }
}

#[test]
fn timestamp_overflowing_i64_saturates_and_is_expired_under_max_age() {
    // Python's integers are unbounded: a huge timestamp is just far away.
    let t = TimestampSigner::new(&ring());
    let huge = t.signer().sign(&format!("v:{}", "z".repeat(40)));
    let v = t
        .unsign_at(&huge, None, NOW)
        .expect("verifies without max_age");
    assert_eq!((v.value, v.timestamp), ("v", Some(i64::MAX)));
    assert_eq!(
        t.unsign_at(&huge, Some(HOUR), NOW),
        Err(VerifyError::Expired)
    );
    let ancient = t.signer().sign(&format!("v:-{}", "z".repeat(40)));
    assert_eq!(
        t.unsign_at(&ancient, Some(HOUR), NOW),
        Err(VerifyError::Expired)
    );
}

// ---------------------------------------------------------------------------
// Wrong parameters and keys
// ---------------------------------------------------------------------------

#[test]
fn wrong_separator_is_a_bad_signature() {
    let r = ring();
    let slash = SignerBuilder::new().sep("/");
    let colon = SignerBuilder::new();
    let token = slash.build(&r).expect("valid").sign("a:b");
    assert_eq!(
        colon.build(&r).expect("valid").unsign_at(&token, NOW),
        Err(VerifyError::BadSignature)
    );
    let token = colon.build(&r).expect("valid").sign("a/b");
    assert_eq!(
        slash.build(&r).expect("valid").unsign_at(&token, NOW),
        Err(VerifyError::BadSignature)
    );
    let token = slash.build_timestamp(&r).expect("valid").sign_at("v", NOW);
    assert_eq!(
        colon
            .build_timestamp(&r)
            .expect("valid")
            .unsign_at(&token, None, NOW),
        Err(VerifyError::BadSignature)
    );
    // The separator swapped in the token itself.
    let token = colon.build(&r).expect("valid").sign("v").replace(':', "/");
    assert_eq!(
        colon.build(&r).expect("valid").unsign_at(&token, NOW),
        Err(VerifyError::BadSignature)
    );
}

#[test]
fn wrong_salt_is_a_bad_signature() {
    let r = ring();
    let a = SignerBuilder::new().salt("salt-a");
    let b = SignerBuilder::new().salt("salt-b");
    let token = a.build(&r).expect("valid").sign("v");
    assert_eq!(
        b.build(&r).expect("valid").unsign_at(&token, NOW),
        Err(VerifyError::BadSignature)
    );
    assert_eq!(
        Signer::new(&r).unsign_at(&token, NOW),
        Err(VerifyError::BadSignature)
    );
    let token = ObjectSigner::new(a, true, &r)
        .expect("valid")
        .dumps_at(&json!(1), NOW)
        .expect("ok");
    assert_eq!(
        ObjectSigner::new(b, true, &r)
            .expect("valid")
            .loads_at(&token, None, NOW),
        Err(VerifyError::BadSignature)
    );
    // Sessions: a db row is not a signed-cookie session, nor a plain object.
    let row = SessionCodec::database(&r)
        .encode_at(&keyroll::SessionData::new(), NOW)
        .expect("ok");
    assert_eq!(
        SessionCodec::signed_cookie(&r, DEFAULT_SESSION_COOKIE_AGE).decode_at(&row, NOW),
        Err(VerifyError::BadSignature)
    );
    assert_eq!(loads(&row), Err(VerifyError::BadSignature));
    // Cookies: another name or salt.
    let c = SignedCookie::new(&r, "theme", "s").expect("valid");
    let token = c.sign_at("dark", NOW);
    for (name, salt) in [("theme", "t"), ("themes", "s"), ("them", "es"), ("", "")] {
        assert_eq!(
            SignedCookie::new(&r, name, salt)
                .expect("valid")
                .unsign_at(&token, None, NOW),
            Err(VerifyError::BadSignature),
            "{name:?} {salt:?}"
        );
    }
    // Algorithms are not interchangeable either.
    let sha1 = SignerBuilder::new().algorithm(Algorithm::Sha1);
    let token = sha1.build(&r).expect("valid").sign("v");
    assert_eq!(
        Signer::new(&r).unsign_at(&token, NOW),
        Err(VerifyError::BadSignature)
    );
}

#[test]
fn unknown_key_is_a_bad_signature() {
    let stranger = KeyRing::new(Secret::from("not-in-the-ring")).expect("a non-empty secret");
    let decoders = all_decoders(&ring());
    let s = |name: &str| -> String {
        match name {
            "Signer" => Signer::new(&stranger).sign("v"),
            "TimestampSigner" | "TimestampSigner max_age" => {
                TimestampSigner::new(&stranger).sign_at("v", NOW)
            }
            "ObjectSigner" => ObjectSigner::new(SignerBuilder::new(), false, &stranger)
                .expect("valid")
                .dumps_at(&json!({"a": 1}), NOW)
                .expect("ok"),
            "SessionCodec database" => SessionCodec::database(&stranger)
                .encode_at(&keyroll::SessionData::new(), NOW)
                .expect("ok"),
            "SessionCodec signed cookie" => {
                SessionCodec::signed_cookie(&stranger, DEFAULT_SESSION_COOKIE_AGE)
                    .encode_at(&keyroll::SessionData::new(), NOW)
                    .expect("ok")
            }
            "SignedCookie" => SignedCookie::new(&stranger, "sessionid", "")
                .expect("valid")
                .sign_at("v", NOW),
            "messages_cookie" => messages_cookie(&stranger)
                .dumps_at(&json!([]), NOW)
                .expect("ok"),
            "PasswordResetTokens" => {
                PasswordResetTokens::new(&stranger).make_token_at(&user(), NOW)
            }
            "SessionAuthHash" => SessionAuthHash::new(&stranger).make(user().password_hash),
            other => panic!("no stranger token for {other}"),
        }
    };
    for (name, decode) in &decoders {
        let token = s(name);
        assert_eq!(decode(&token), Err(VerifyError::BadSignature), "{name}");
        // The same token verifies once the key joins the ring (as a fallback).
        let joined = ring()
            .with_fallback(Secret::from("not-in-the-ring"), None)
            .expect("ring");
        let d = all_decoders(&joined);
        let (_, decode) = d.iter().find(|(n, _)| n == name).expect("same decoders");
        assert_eq!(decode(&token), Ok(()), "{name} with the key as fallback");
    }
}

#[test]
fn retired_key_is_a_bad_signature_after_retire_after() {
    let retire_at = NOW - time::Duration::seconds(1);
    let r = KeyRing::new(Secret::from(PRIMARY))
        .expect("a non-empty secret")
        .with_fallback(Secret::from(OLD), Some(retire_at))
        .expect("ring");
    let old = KeyRing::new(Secret::from(OLD)).expect("a non-empty secret");
    let data = keyroll::SessionData::new();
    let checks: Vec<(&str, CheckAt)> = vec![
        ("Signer", {
            let (t, s) = (Signer::new(&old).sign("v"), Signer::new(&r));
            Box::new(move |now| s.unsign_at(&t, now).map(drop))
        }),
        ("TimestampSigner", {
            let t = TimestampSigner::new(&old).sign_at("v", NOW - time::Duration::days(1));
            let s = TimestampSigner::new(&r);
            Box::new(move |now| s.unsign_at(&t, None, now).map(drop))
        }),
        ("ObjectSigner", {
            let mk = |ring: &KeyRing| ObjectSigner::new(SignerBuilder::new(), true, ring);
            let t = mk(&old)
                .expect("valid")
                .dumps_at(&json!([1]), NOW)
                .expect("ok");
            let s = mk(&r).expect("valid");
            Box::new(move |now| s.loads_at(&t, None, now).map(drop))
        }),
        ("SessionCodec", {
            let t = SessionCodec::database(&old)
                .encode_at(&data, NOW)
                .expect("ok");
            let s = SessionCodec::database(&r);
            Box::new(move |now| s.resign_at(&t, now).map(drop))
        }),
        ("SignedCookie", {
            let t = SignedCookie::new(&old, "c", "")
                .expect("valid")
                .sign_at("v", NOW);
            let s = SignedCookie::new(&r, "c", "").expect("valid");
            Box::new(move |now| s.unsign_at(&t, None, now).map(drop))
        }),
        ("PasswordResetTokens", {
            let t = PasswordResetTokens::new(&old).make_token_at(&user(), NOW);
            let s = PasswordResetTokens::new(&r);
            Box::new(move |now| s.check_token_at(&user(), &t, now).map(drop))
        }),
        ("SessionAuthHash", {
            let t = SessionAuthHash::new(&old).make(user().password_hash);
            let s = SessionAuthHash::new(&r);
            Box::new(move |now| s.check_at(&t, user().password_hash, now).map(drop))
        }),
    ];
    for (name, check) in &checks {
        assert_eq!(check(NOW), Err(VerifyError::BadSignature), "{name} after");
        assert_eq!(
            check(retire_at),
            Ok(()),
            "{name} at retire_after (inclusive)"
        );
    }
}

#[test]
fn far_future_timestamp_with_max_age_is_expired() {
    let r = ring();
    let t = TimestampSigner::new(&r);
    let far = NOW + time::Duration::days(2);
    let token = t.sign_at("v", far);
    assert_eq!(
        t.unsign_at(&token, Some(HOUR), NOW),
        Err(VerifyError::Expired)
    );
    // Without max_age Django applies no age rule, and neither does keyroll.
    assert_eq!(t.unsign_at(&token, None, NOW).map(|v| v.value), Ok("v"));
    // Within the one-day tolerance it verifies.
    let near = t.sign_at("v", NOW + time::Duration::hours(23));
    assert!(t.unsign_at(&near, Some(HOUR), NOW).is_ok());
    // The end of time, and no tolerance at all (Django's behaviour).
    let end = t.sign_with_timestamp("v", i64::MAX);
    assert_eq!(
        t.unsign_at(&end, Some(HOUR), NOW),
        Err(VerifyError::Expired)
    );
    let lenient = SignerBuilder::new()
        .future_tolerance(None)
        .build_timestamp(&r)
        .expect("valid");
    assert!(lenient.unsign_at(&end, Some(HOUR), NOW).is_ok());
    // The signed-cookie session and signed cookies carry a max_age too.
    let sc = SessionCodec::signed_cookie(&r, DEFAULT_SESSION_COOKIE_AGE);
    let row = sc.encode_at(&keyroll::SessionData::new(), far).expect("ok");
    assert_eq!(sc.decode_at(&row, NOW), Err(VerifyError::Expired));
    let c = SignedCookie::new(&r, "c", "").expect("valid");
    let v = c.sign_at("v", far);
    assert_eq!(c.unsign_at(&v, Some(HOUR), NOW), Err(VerifyError::Expired));
    let legacy = c.clone().writing(CookieSaltForm::Legacy).sign_at("v", far);
    assert_eq!(
        c.unsign_at(&legacy, Some(HOUR), NOW),
        Err(VerifyError::Expired)
    );
    // And an old one, for contrast.
    let old = c.sign_at("v", NOW - time::Duration::hours(2));
    assert_eq!(
        c.unsign_at(&old, Some(HOUR), NOW),
        Err(VerifyError::Expired)
    );
}

#[test]
fn expired_reset_token_is_expired_and_future_one_verifies() {
    let r = ring();
    let tokens = PasswordResetTokens::new(&r).with_timeout(HOUR);
    let old = tokens.make_token_at(&user(), NOW - time::Duration::seconds(3601));
    assert_eq!(
        tokens.check_token_at(&user(), &old, NOW),
        Err(VerifyError::Expired)
    );
    let edge = tokens.make_token_at(&user(), NOW - time::Duration::seconds(3600));
    assert!(tokens.check_token_at(&user(), &edge, NOW).is_ok());
}

// ---------------------------------------------------------------------------
// Truncation, NUL bytes, malformed fixed shapes
// ---------------------------------------------------------------------------

#[test]
fn truncated_tokens_are_bad_signatures() {
    for (name, token, decode) in valid_tokens() {
        for n in 0..token.len() {
            assert_eq!(
                decode(&token[..n]),
                Err(VerifyError::BadSignature),
                "{name}: first {n} bytes of {token:?}"
            );
        }
        // Dropping bytes from the front is no better.
        for n in 1..token.len() {
            assert_eq!(
                decode(&token[n..]),
                Err(VerifyError::BadSignature),
                "{name}: from byte {n} of {token:?}"
            );
        }
    }
}

#[test]
fn tokens_with_nul_bytes_are_bad_signatures() {
    for (name, token, decode) in valid_tokens() {
        for at in 0..=token.len() {
            let mut t = token.clone();
            t.insert(at, '\0');
            assert_eq!(
                decode(&t),
                Err(VerifyError::BadSignature),
                "{name}: NUL at {at}"
            );
            if at < token.len() {
                let mut t = token.clone().into_bytes();
                t[at] = 0;
                let t = String::from_utf8(t).expect("ASCII");
                assert_eq!(
                    decode(&t),
                    Err(VerifyError::BadSignature),
                    "{name}: byte {at} set to NUL"
                );
            }
        }
        assert_eq!(
            decode(&"\0".repeat(token.len())),
            Err(VerifyError::BadSignature)
        );
    }
    // NULs inside a validly signed base64 payload are skipped as CPython
    // does (so one NUL spoils Django's padding); inside the JSON they are malformed.
    assert_eq!(
        loads(&signed_object_payload("eyJh\0IjoxfQ")),
        Err(VerifyError::Malformed("base64"))
    );
    assert_eq!(
        loads(&signed_object_payload("eyJh\0\0\0\0IjoxfQ")),
        Ok(json!({"a": 1}))
    );
    assert_eq!(
        loads(&signed_object_payload("\0")),
        Err(VerifyError::Malformed("json"))
    );
    assert_eq!(
        loads(&signed_object_payload(&b64_encode(b"[\"a\0b\"]"))),
        Err(VerifyError::Malformed("json"))
    );
    assert_eq!(
        loads(&signed_object_payload(&b64_encode(b"[1]\0"))),
        Err(VerifyError::Malformed("json"))
    );
    // A NUL is an ordinary character of a signed value, and round-trips.
    let s = Signer::new(&ring());
    assert_eq!(
        s.unsign_at(&s.sign("a\0b"), NOW).map(|v| v.value),
        Ok("a\0b")
    );
}

#[test]
fn reset_token_garbage_shapes_are_bad_signatures() {
    let r = ring();
    let tokens = PasswordResetTokens::new(&r);
    let good = tokens.make_token_at(&user(), NOW);
    let (ts, hash) = good.split_once('-').expect("ts-hash");
    let cases = [
        format!("{ts}{hash}"),
        format!("{ts}--{hash}"),
        format!("{ts}-{hash}-"),
        format!("-{ts}-{hash}"),
        format!("{}-{hash}", ts.to_uppercase()),
        format!("0{ts}-{hash}"),
        format!("{ts}-{}", hash.to_uppercase()),
        format!("{}-{hash}", "z".repeat(14)),
        format!("{}-{hash}", "z".repeat(13)),
        format!("+{ts}-{hash}"),
        format!("{ts}-{hash}{}", "0".repeat(64)),
        format!("{ts}-"),
        format!("-{hash}"),
    ];
    for bad in &cases {
        assert_eq!(
            tokens.check_token_at(&user(), bad, NOW),
            Err(VerifyError::BadSignature),
            "{bad:?}"
        );
    }
    // A different user state: another password, a login since, another e-mail.
    let moved = ResetUser {
        last_login: Some(datetime!(2026-11-28 11:00)),
        ..user()
    };
    assert_eq!(
        tokens.check_token_at(&moved, &good, NOW),
        Err(VerifyError::BadSignature)
    );
    let other_mail = ResetUser {
        email: None,
        ..user()
    };
    assert_eq!(
        tokens.check_token_at(&other_mail, &good, NOW),
        Err(VerifyError::BadSignature)
    );
}

#[test]
fn auth_hash_of_wrong_length_or_case_is_a_bad_signature() {
    let r = ring();
    let auth = SessionAuthHash::new(&r);
    let good = auth.make(user().password_hash);
    for bad in [
        good[..63].to_owned(),
        format!("{good}0"),
        good.to_uppercase(),
        format!(" {}", &good[1..]),
        "0".repeat(64),
        "é".repeat(32),
    ] {
        assert_eq!(
            auth.check_at(&bad, user().password_hash, NOW),
            Err(VerifyError::BadSignature),
            "{bad:?}"
        );
    }
}

#[test]
fn base_codecs_refuse_garbage() {
    for s in [
        "a:b",
        "--1",
        "-+1",
        "+1",
        " 1",
        "1 ",
        "é",
        "zzzzzzzzzzzz",
        "\0",
    ] {
        assert_eq!(b62_decode(s), None, "b62 {s:?}");
    }
    for s in [
        "-1",
        "+1",
        " 1",
        "é",
        "zzzzzzzzzzzzz",
        "00000000000000",
        "1_0",
        "\0",
    ] {
        assert_eq!(b36_decode(s), None, "b36 {s:?}");
    }
    for s in [
        "Y", "YW=I", "YWI==x", "!!!!", "YW I", "YWI+", "YWI/", "\0\0\0\0",
    ] {
        assert_eq!(b64_decode(s.as_bytes()), None, "b64 {s:?}");
    }
}

// ---------------------------------------------------------------------------
// Ring files
// ---------------------------------------------------------------------------

fn parse_ring(text: &str) -> Result<RingFile, RingFileError> {
    RingFile::parse(
        text,
        Path::new("ring.toml"),
        Path::new("/nonexistent"),
        &|_| None,
    )
}

#[test]
fn ring_file_garbage_lines_are_parse_errors() {
    for text in [
        "garbage",
        "[[keys]\nrole = \"primary\"",
        "keys = 5",
        "[[keys]]\nrole = \"primary\"\nsecret = \"s\"\nextra = 1\n",
        "[[keys]]\nrole = \"primary\"\nsecret = 5\n",
        "[[keys]]\nrole = \"primary\"\nsecret = \"s\"\ncreated = \"yesterday\"\n",
        "\0\0\0",
        ":::::",
        "[[keys]]\nrole = \"primary\"\nsecret = \"unterminated\n",
    ] {
        assert!(
            matches!(parse_ring(text), Err(RingFileError::Parse { .. })),
            "{text:?}"
        );
    }
    let err = parse_ring("[[keys]]\nrole = \"king\"\nsecret = \"s\"\n").expect_err("bad role");
    assert!(matches!(err, RingFileError::Parse { .. }), "{err}");
}

#[test]
fn ring_file_empty_or_without_one_primary_is_refused() {
    assert!(matches!(
        parse_ring(""),
        Err(RingFileError::Ring(RingError::PrimaryCount(0)))
    ));
    assert!(matches!(
        parse_ring("[[keys]]\nrole = \"staged\"\nsecret = \"s\"\n"),
        Err(RingFileError::Ring(RingError::PrimaryCount(0)))
    ));
    let two =
        "[[keys]]\nrole=\"primary\"\nsecret=\"a\"\n[[keys]]\nrole=\"primary\"\nsecret=\"b\"\n";
    assert!(matches!(
        parse_ring(two),
        Err(RingFileError::Ring(RingError::PrimaryCount(2)))
    ));
}

#[test]
fn ring_file_secret_problems_are_secret_errors() {
    for text in [
        "[[keys]]\nrole = \"primary\"\nsecret = \"\"\n",
        "[[keys]]\nrole = \"primary\"\nsecret_env = \"UNSET\"\n",
        "[[keys]]\nrole = \"primary\"\n",
        "[[keys]]\nrole = \"primary\"\nsecret = \"a\"\nsecret_env = \"B\"\n",
        "[[keys]]\nrole = \"primary\"\nsecret_file = \"missing.txt\"\n",
    ] {
        assert!(
            matches!(
                parse_ring(text),
                Err(RingFileError::Secret {
                    index: 1,
                    role: Role::Primary,
                    ..
                })
            ),
            "{text:?}"
        );
    }
}

#[test]
fn ring_file_nested_100k_levels_is_a_parse_error() {
    let arrays = format!("a = {}{}", "[".repeat(100_000), "]".repeat(100_000));
    let tables = format!("a = {}1{}", "{b=".repeat(100_000), "}".repeat(100_000));
    let dotted = format!("{}=1", "a.".repeat(100_000));
    for text in [arrays, tables, dotted] {
        assert!(matches!(
            parse_ring(&text),
            Err(RingFileError::Parse { .. })
        ));
    }
}

#[test]
fn ring_file_ten_megabyte_line_of_colons_is_a_parse_error() {
    let line = ":".repeat(10 << 20);
    assert!(matches!(
        parse_ring(&line),
        Err(RingFileError::Parse { line: 1, .. })
    ));
}

/// Was a bug: `RingFile::open` refuses a ring file over 1 MiB, but a key's
/// `secret_file` was read whole with no bound (`fs::read`), so a ring file
/// naming a huge file (or `/dev/zero`) exhausted memory. A 64 MiB sparse file.
#[test]
fn ring_file_secret_file_of_64_mib_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let big = std::fs::File::create(dir.path().join("big.secret")).expect("create");
    big.set_len(64 << 20).expect("sparse file");
    let text = "[[keys]]\nrole = \"primary\"\nsecret_file = \"big.secret\"\n";
    let r = RingFile::parse(text, Path::new("ring.toml"), dir.path(), &|_| None);
    assert!(
        matches!(r, Err(RingFileError::Secret { index: 1, .. })),
        "a 64 MiB secret file was read whole: {:?}",
        r.map(|f| f.entries.iter().map(|e| e.secret.len()).collect::<Vec<_>>())
    );
}

#[cfg(unix)]
#[test]
fn ring_file_secret_file_naming_dev_zero_is_refused() {
    let text = "[[keys]]\nrole = \"primary\"\nsecret_file = \"/dev/zero\"\n";
    let started = Instant::now();
    assert!(matches!(
        parse_ring(text),
        Err(RingFileError::Secret { index: 1, .. })
    ));
    assert!(started.elapsed() < Duration::from_secs(2));
}

/// BUG: `read_secret_file` opens the path before checking that it is a
/// regular file, and opening a FIFO for reading blocks until some process
/// opens it for writing: a ring file whose `secret_file` names a FIFO with no
/// writer hangs `RingFile::parse` (and every command that loads the ring)
/// forever. (Checking `fs::metadata` first, or opening with `O_NONBLOCK`,
/// avoids it.) The parse runs on a thread so that this test fails instead of hanging.
#[cfg(unix)]
#[test]
fn ring_file_secret_file_naming_a_fifo_does_not_hang() {
    let dir = tempfile::tempdir().expect("tmp");
    let fifo = dir.path().join("secret.fifo");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    if !made.is_ok_and(|s| s.success()) {
        eprintln!("skipped: mkfifo is not available");
        return;
    }
    let text = format!(
        "[[keys]]\nrole = \"primary\"\nsecret_file = {:?}\n",
        fifo.display().to_string()
    );
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let r = parse_ring(&text).map(|f| f.entries.len());
        let _ = tx.send(format!("{r:?}"));
    });
    match rx.recv_timeout(Duration::from_secs(3)) {
        Ok(r) => assert!(r.contains("Secret"), "a FIFO read as a secret: {r}"),
        Err(_) => {
            // Unblock the reader so the thread can finish, then fail.
            let _ = std::fs::OpenOptions::new().write(true).open(&fifo);
            panic!("RingFile::parse blocked on a FIFO named as secret_file");
        }
    }
}

// ---------------------------------------------------------------------------
// Tampering, oversized session data, more ring-file attacks (docs/bad-input.md)
// ---------------------------------------------------------------------------

/// Every byte of every valid token replaced by every other character a
/// token may hold: the base64 alphabets, the separators, base36/hex digits.
/// Signature characters are compared as text, as Django does, so even a last
/// character that differs only in base64's unused low bits is refused.
#[test]
fn tampered_signature_payload_or_timestamp_is_a_bad_signature() {
    let alphabet: Vec<char> =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/=:."
            .chars()
            .collect();
    for (name, token, decode) in valid_tokens() {
        let mut tried = 0usize;
        for (at, orig) in token.char_indices() {
            for &c in &alphabet {
                if c == orig {
                    continue;
                }
                let mut t = token.clone();
                t.replace_range(at..at + orig.len_utf8(), c.encode_utf8(&mut [0; 4]));
                tried += 1;
                assert_eq!(
                    decode(&t),
                    Err(VerifyError::BadSignature),
                    "{name}: byte {at} of {token:?} changed to {c:?}"
                );
            }
        }
        assert!(tried > token.len() * 60, "{name}");
    }
    // The timestamp in particular: a TimestampSigner token re-dated by one
    // second either way, and the reset token's base36 timestamp.
    let r = ring();
    let t = TimestampSigner::new(&r);
    let token = t.sign_at("v", NOW);
    let (head, sig) = token.rsplit_once(':').expect("sig");
    let (value, ts) = head.rsplit_once(':').expect("ts");
    let n = b62_decode(ts).expect("b62");
    for other in [n - 1, n + 1, 0, -1, i64::MAX] {
        let forged = format!("{value}:{}:{sig}", keyroll::b62_encode(other));
        assert_eq!(
            t.unsign_at(&forged, Some(HOUR), NOW),
            Err(VerifyError::BadSignature),
            "{forged}"
        );
    }
    let reset = PasswordResetTokens::new(&r);
    let good = reset.make_token_at(&user(), NOW - time::Duration::days(10));
    let (ts, hash) = good.split_once('-').expect("ts-hash");
    let n = b36_decode(ts).expect("b36");
    for other in [n + 1, n + 86_400 * 10, u64::from(u32::MAX)] {
        let forged = format!("{}-{hash}", keyroll::b36_encode(other));
        assert_eq!(
            reset.check_token_at(&user(), &forged, NOW),
            Err(VerifyError::BadSignature),
            "{forged}"
        );
    }
}

/// A database session row, validly signed, that is larger than the token
/// limit (1 MiB): refused before any decoding; a limit raised past it reads it.
#[test]
fn session_row_over_max_token_len_is_too_large() {
    let r = ring();
    let mut data = keyroll::SessionData::new();
    // Incompressible-ish text so the signed row really is over 1 MiB.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let blob: String = (0..2_000_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'a' + (x % 26) as u8)
        })
        .collect();
    data.insert("blob".into(), blob.into());
    let codec = SessionCodec::database(&r);
    let row = codec.encode_at(&data, NOW).expect("encodes");
    assert!(row.len() > Limits::DEFAULT_MAX_TOKEN_LEN, "{}", row.len());
    assert_eq!(
        codec.decode_at(&row, NOW).map(drop),
        Err(too_large(Limit::TokenLength, Limits::DEFAULT_MAX_TOKEN_LEN))
    );
    assert_eq!(
        codec.resign_at(&row, NOW).map(drop),
        Err(too_large(Limit::TokenLength, Limits::DEFAULT_MAX_TOKEN_LEN))
    );
    let cookie = SessionCodec::signed_cookie(&r, DEFAULT_SESSION_COOKIE_AGE);
    let row = cookie.encode_at(&data, NOW).expect("encodes");
    assert_eq!(
        cookie.decode_at(&row, NOW).map(drop),
        Err(too_large(Limit::TokenLength, Limits::DEFAULT_MAX_TOKEN_LEN))
    );
    let roomy = SessionCodec::with_builder(
        &r,
        SignerBuilder::new()
            .salt(DB_SESSION_SALT)
            .limits(Limits::default().with_max_token_len(4 << 20).expect("ok")),
        None,
    );
    let row = codec.encode_at(&data, NOW).expect("encodes");
    assert_eq!(roomy.decode_at(&row, NOW).map(|v| v.value), Ok(data));
}

/// A tiny compressed session row whose data inflates past the 8 MiB cap
/// (8 MiB + 1 of spaces inside a JSON string): `TooLarge`, not an 8 MiB+ value.
#[test]
fn session_data_inflating_past_the_cap_is_too_large() {
    let r = ring();
    let codec = SessionCodec::database(&r);
    let cap = Limits::DEFAULT_MAX_INFLATED_LEN;
    let json = format!("{{\"a\":\"{}\"}}", " ".repeat(cap));
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut z, json.as_bytes()).expect("deflate");
    let packed = z.finish().expect("deflate");
    let row = codec
        .object_signer()
        .timestamp_signer()
        .sign_at(&format!(".{}", b64_encode(&packed)), NOW);
    assert!(row.len() < 64 << 10, "{}", row.len());
    assert_eq!(
        codec.decode_at(&row, NOW).map(drop),
        Err(too_large(Limit::InflatedSize, cap))
    );
}

#[cfg(unix)]
fn write_mode(path: &Path, text: &[u8], mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::write(path, text).expect("write");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

const ONE_KEY: &str = "[[keys]]\nrole = \"primary\"\nsecret = \"ring-file-secret\"\n";

/// A ring file group or others may read is refused unless told otherwise.
#[cfg(unix)]
#[test]
fn ring_file_readable_by_others_is_refused() {
    use keyroll::ringfile::OpenOptions;
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("ring.toml");
    let no_env = |_: &str| None;
    for mode in [0o644, 0o640, 0o604, 0o660, 0o606, 0o777] {
        write_mode(&path, ONE_KEY.as_bytes(), mode);
        let r = RingFile::open(&path, OpenOptions::default(), &no_env);
        assert!(
            matches!(r, Err(RingFileError::InsecurePermissions { mode: m, .. }) if m == mode),
            "mode {mode:o}: {:?}",
            r.map(|f| f.entries.len())
        );
        let msg = RingFile::open(&path, OpenOptions::default(), &no_env)
            .expect_err("insecure")
            .to_string();
        assert!(!msg.contains("ring-file-secret"), "{msg}");
        let lax = OpenOptions {
            allow_insecure: true,
        };
        assert!(RingFile::open(&path, lax, &no_env).is_ok(), "{mode:o}");
    }
    write_mode(&path, ONE_KEY.as_bytes(), 0o600);
    assert!(RingFile::open(&path, OpenOptions::default(), &no_env).is_ok());
    write_mode(&path, ONE_KEY.as_bytes(), 0o400);
    assert!(RingFile::open(&path, OpenOptions::default(), &no_env).is_ok());
}

/// A ring file over 1 MiB, or not UTF-8, is refused with a typed error that
/// never quotes the file's text.
#[cfg(unix)]
#[test]
fn ring_file_oversized_or_not_utf8_is_refused() {
    use keyroll::ringfile::OpenOptions;
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("ring.toml");
    let no_env = |_: &str| None;
    let mut big = ONE_KEY.as_bytes().to_vec();
    big.extend(std::iter::repeat_n(b'#', (1 << 20) + 1));
    write_mode(&path, &big, 0o600);
    assert!(matches!(
        RingFile::open(&path, OpenOptions::default(), &no_env),
        Err(RingFileError::Parse { line: 0, .. })
    ));
    let mut bad = b"[[keys]]\nrole = \"primary\"\nsecret = \"ring-file-secret\xff\"\n".to_vec();
    write_mode(&path, &bad, 0o600);
    let err = RingFile::open(&path, OpenOptions::default(), &no_env).expect_err("not UTF-8");
    assert!(matches!(err, RingFileError::Io { .. }), "{err}");
    assert!(!err.to_string().contains("ring-file-secret"), "{err}");
    bad.truncate(3);
    bad.push(0xc3);
    write_mode(&path, &bad, 0o600);
    assert!(matches!(
        RingFile::open(&path, OpenOptions::default(), &no_env),
        Err(RingFileError::Io { .. })
    ));
}

/// A `secret_file` that is a symlink is followed (mounted secrets are
/// symlinks), but only to a regular file: a link to a FIFO, a device, a
/// directory, or nowhere is a `Secret` error, at once.
#[cfg(unix)]
#[test]
fn ring_file_secret_file_symlinks_lead_only_to_regular_files() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    write_mode(&d.join("real.secret"), b"from-a-file\n", 0o600);
    let fifo = d.join("secret.fifo");
    let have_fifo = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .is_ok_and(|s| s.success());
    let link = |name: &str, to: &Path| {
        std::os::unix::fs::symlink(to, d.join(name)).expect("symlink");
    };
    link("to-real", &d.join("real.secret"));
    link("to-zero", Path::new("/dev/zero"));
    link("to-dir", d);
    link("dangling", &d.join("nothing-here"));
    if have_fifo {
        link("to-fifo", &fifo);
    }
    let parse = |file: &str| {
        let text = format!("[[keys]]\nrole = \"primary\"\nsecret_file = \"{file}\"\n");
        let started = Instant::now();
        let (tx, rx) = std::sync::mpsc::channel();
        let base = d.to_owned();
        std::thread::spawn(move || {
            let r = RingFile::parse(&text, Path::new("ring.toml"), &base, &|_| None);
            let _ = tx.send(r.map(|f| f.entries[0].secret.expose().to_vec()));
        });
        let r = rx
            .recv_timeout(Duration::from_secs(3))
            .unwrap_or_else(|_| panic!("secret_file {file} blocked"));
        assert!(started.elapsed() < Duration::from_secs(2), "{file}");
        r
    };
    assert_eq!(parse("to-real").expect("a link to a file"), b"from-a-file");
    let mut bad = vec!["to-zero", "to-dir", "dangling"];
    if have_fifo {
        bad.push("to-fifo");
    } else {
        eprintln!("mkfifo is not available: the FIFO case is skipped");
    }
    for name in bad {
        assert!(
            matches!(parse(name), Err(RingFileError::Secret { index: 1, .. })),
            "{name}"
        );
    }
}

/// BUG (fixed): `RingFile::open` checked the ring file's mode and size from
/// its metadata, then read the path whole: a ring file that is a FIFO
/// blocked the process forever (and a character device such as `/dev/zero`,
/// accepted with `allow_insecure`, was read until memory ran out). Only a
/// regular file is read now, and at most 1 MiB of it.
#[cfg(unix)]
#[test]
fn ring_file_that_is_a_fifo_or_device_is_refused() {
    use keyroll::ringfile::OpenOptions;
    let dir = tempfile::tempdir().expect("tmp");
    let fifo = dir.path().join("ring.toml");
    let made = std::process::Command::new("mkfifo")
        .args(["-m", "600"])
        .arg(&fifo)
        .status();
    if !made.is_ok_and(|s| s.success()) {
        eprintln!("skipped: mkfifo is not available");
        return;
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let path = fifo.clone();
    std::thread::spawn(move || {
        let r = RingFile::open(&path, OpenOptions::default(), &|_| None).map(|f| f.entries.len());
        let _ = tx.send(format!("{r:?}"));
    });
    match rx.recv_timeout(Duration::from_secs(3)) {
        Ok(r) => assert!(r.contains("Io"), "a FIFO read as a ring file: {r}"),
        Err(_) => {
            let _ = std::fs::OpenOptions::new().write(true).open(&fifo);
            panic!("RingFile::open blocked on a FIFO");
        }
    }
    // A device, even with allow_insecure: refused before any read.
    let lax = OpenOptions {
        allow_insecure: true,
    };
    for dev in ["/dev/null", "/dev/zero"] {
        if Path::new(dev).exists() {
            let r = RingFile::open(Path::new(dev), lax, &|_| None);
            assert!(matches!(r, Err(RingFileError::Io { .. })), "{dev}");
        }
    }
}

/// A reset token for the user, made the way Django makes one but with any
/// timestamp (seconds since 2001), under `secret`.
fn reset_token_with_ts(secret: &str, ts: u64) -> String {
    let u = user();
    let value = format!(
        "{}{}{}{}{}",
        u.pk,
        u.password_hash,
        "",
        ts,
        u.email.unwrap_or("")
    );
    let tag = keyroll::salted_hmac(
        keyroll::RESET_SALT.as_bytes(),
        value.as_bytes(),
        secret.as_bytes(),
        Algorithm::Sha256,
    );
    let hash: String = tag.to_hex().chars().step_by(2).collect();
    format!("{}-{hash}", keyroll::b36_encode(ts))
}

/// BUG (fixed): a reset token whose (validly signed) timestamp is near
/// `i64::MAX` verified (Django accepts a token from the future), and then
/// overflowed converting its timestamp to unix time: a panic in a debug
/// build, a wrapped timestamp in release. It now saturates. Past `i64::MAX`
/// (but still 13 base36 digits) the token is refused.
#[test]
fn reset_token_with_a_timestamp_near_i64_max_does_not_overflow() {
    let r = ring();
    let tokens = PasswordResetTokens::new(&r);
    let made = tokens.make_token_at(&user(), NOW);
    let ts = b36_decode(made.split_once('-').expect("ts").0).expect("b36");
    assert_eq!(
        reset_token_with_ts(PRIMARY, ts),
        made,
        "the forger is exact"
    );
    for ts in [i64::MAX as u64, i64::MAX as u64 - 978_307_200] {
        let token = reset_token_with_ts(PRIMARY, ts);
        let v = tokens
            .check_token_at(&user(), &token, NOW)
            .expect("a token from the future verifies, as in Django");
        assert!(
            v.timestamp.is_some_and(|t| t >= i64::MAX - 978_307_200),
            "{v:?}"
        );
    }
    for ts in [i64::MAX as u64 + 1, u64::MAX] {
        let token = reset_token_with_ts(PRIMARY, ts);
        assert_eq!(
            tokens.check_token_at(&user(), &token, NOW),
            Err(VerifyError::BadSignature),
            "{token}"
        );
    }
    // And an unknown key's token with the same timestamp is refused.
    let token = reset_token_with_ts("not-in-the-ring", i64::MAX as u64);
    assert_eq!(
        tokens.check_token_at(&user(), &token, NOW),
        Err(VerifyError::BadSignature)
    );
}

/// From the `timestamp_unsign` fuzz target's only "crash" (a harness bug, not
/// keyroll's): a signed value that is itself a whole token of another key.
/// The outer token verifies as the primary's, with the inner token as its
/// value (the separators are found from the right); the prefix that is the
/// inner token verifies as the inner key's, rightly; every truncation that
/// cuts into what the primary appended is a bad signature.
#[test]
fn timestamp_token_whose_value_is_another_token_verifies_as_the_outer_one() {
    let r = ring();
    let t = TimestampSigner::new(&r);
    let inner = TimestampSigner::new(&KeyRing::new(Secret::from(OLD)).expect("a non-empty secret"))
        .sign_at("hello", NOW - time::Duration::hours(2));
    let value = format!("{inner}\u{683}");
    let outer = t.sign_with_timestamp(&value, 13_567_973_486_755_846);
    let v = t.unsign_at(&outer, None, NOW).expect("outer verifies");
    assert_eq!(
        (v.value, v.role, v.timestamp),
        (value.as_str(), Role::Primary, Some(13_567_973_486_755_846))
    );
    let v = t
        .unsign_at(&outer[..inner.len()], None, NOW)
        .expect("inner");
    assert_eq!((v.value, v.role), ("hello", Role::Fallback));
    for k in value.len() + 1..outer.len() {
        assert_eq!(
            t.unsign_at(&outer[..k], None, NOW),
            Err(VerifyError::BadSignature),
            "first {k} bytes"
        );
    }
    // The same with a plain Signer and a signed cookie.
    let s = Signer::new(&r);
    let inner =
        Signer::new(&KeyRing::new(Secret::from(OLD)).expect("a non-empty secret")).sign("hello");
    let outer = s.sign(&inner);
    assert_eq!(
        s.unsign_at(&outer, NOW).map(|v| v.value),
        Ok(inner.as_str())
    );
    assert_eq!(
        s.unsign_at(&outer[..inner.len()], NOW).map(|v| v.value),
        Ok("hello")
    );
    let c = SignedCookie::new(&r, "c", "").expect("valid");
    let inner = SignedCookie::new(
        &KeyRing::new(Secret::from(OLD)).expect("a non-empty secret"),
        "c",
        "",
    )
    .expect("valid")
    .sign_at("hello", NOW);
    let outer = c.sign_at(&inner, NOW);
    assert_eq!(
        c.unsign_at(&outer, Some(HOUR), NOW).map(|v| v.value),
        Ok(inner.as_str())
    );
}
