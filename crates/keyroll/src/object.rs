//! Signed objects: Django's `signing.dumps` / `signing.loads`.

use std::cell::RefCell;
use std::time::Duration;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use serde_json::Value;
use time::OffsetDateTime;

use crate::canonical::{canonicalize, Stop};
use crate::encoding::{b64_decode_django, b64_encode_into};
use crate::error::{ConfigError, Limit, SignError, VerifyError};
use crate::json::{parse_json, python_json, python_json_into};
use crate::ring::KeyRing;
use crate::signer::{SignerBuilder, TimestampSigner, Verified};

/// Django's default salt for `signing.dumps`.
pub const OBJECT_SALT: &str = "django.core.signing";

/// Django's `dumps`/`loads`: JSON, optionally zlib-compressed, base64, then a
/// `TimestampSigner`.
///
/// ```
/// use keyroll::{KeyRing, ObjectSigner, Secret, SignerBuilder};
/// use serde_json::json;
/// use time::OffsetDateTime;
/// let ring = KeyRing::new(Secret::from("s3cret")).expect("a non-empty secret");
/// let signer = ObjectSigner::new(SignerBuilder::new(), true, &ring).expect("valid");
/// let now = OffsetDateTime::now_utc();
/// let token = signer.dumps_at(&json!({"cart": [1, 2, 3]}), now).expect("serializable");
/// assert_eq!(signer.loads_at(&token, None, now).expect("ok").value, json!({"cart": [1, 2, 3]}));
/// ```
#[derive(Clone, Debug)]
pub struct ObjectSigner {
    signer: TimestampSigner,
    compress: bool,
}

impl ObjectSigner {
    /// An object signer; the salt defaults to `django.core.signing` when the
    /// builder has none.
    ///
    /// # Errors
    /// [`ConfigError`] for a separator Django refuses.
    pub fn new(
        builder: SignerBuilder,
        compress: bool,
        ring: &KeyRing,
    ) -> Result<Self, ConfigError> {
        let builder = if builder.has_salt() {
            builder
        } else {
            builder.salt(OBJECT_SALT)
        };
        Ok(Self {
            signer: builder.build_timestamp(ring)?,
            compress,
        })
    }

    pub(crate) fn from_timestamp_signer(signer: TimestampSigner, compress: bool) -> Self {
        Self { signer, compress }
    }

    /// The timestamp signer underneath.
    pub fn timestamp_signer(&self) -> &TimestampSigner {
        &self.signer
    }

    /// `dumps(value)`, stamped with `now`, signed by the primary key.
    ///
    /// # Errors
    /// [`SignError`] for a value JSON cannot carry.
    pub fn dumps_at(&self, value: &Value, now: OffsetDateTime) -> Result<String, SignError> {
        Ok(self.signer.sign_at(&self.encode_payload(value)?, now))
    }

    /// `dumps(value)` stamped with an explicit Unix time.
    ///
    /// # Errors
    /// [`SignError`] for a value JSON cannot carry.
    pub fn dumps_with_timestamp(
        &self,
        value: &Value,
        unix_seconds: i64,
    ) -> Result<String, SignError> {
        Ok(self
            .signer
            .sign_with_timestamp(&self.encode_payload(value)?, unix_seconds))
    }

    /// The unsigned payload: base64 of the JSON, or `.` ‖ base64 of zlib(JSON)
    /// when compression is on and saves more than one byte.
    fn encode_payload(&self, value: &Value) -> Result<String, SignError> {
        let json = python_json(value)?;
        let data = json.as_bytes();
        let mut out = String::with_capacity(data.len() * 4 / 3 + 4);
        if self.compress {
            if let Some(z) = zlib_compress(data) {
                if z.len() + 1 < data.len() {
                    out.push('.');
                    b64_encode_into(&z, &mut out);
                    return Ok(out);
                }
            }
        }
        b64_encode_into(data, &mut out);
        Ok(out)
    }

    /// `loads(token)`: verifies the signature (and the age when `max_age` is
    /// given) first; only then decodes, inflating at most the configured size.
    ///
    /// # Errors
    /// Any [`VerifyError`].
    pub fn loads_at(
        &self,
        token: &str,
        max_age: Option<Duration>,
        now: OffsetDateTime,
    ) -> Result<Verified<Value>, VerifyError> {
        let v = self.loads_json_at(token, max_age, now)?;
        let depth = self.signer.signer().limits().max_json_depth();
        let value = parse_json(&v.value, depth)?;
        Ok(v.map(|_| value))
    }

    /// Like [`ObjectSigner::loads_at`], but writes the value's canonical JSON
    /// (exactly `python_json` of the loaded value) into `out` without building
    /// the value: the fast path for printing or checking tokens.
    ///
    /// # Errors
    /// Any [`VerifyError`]; on error `out` is left as it was.
    pub fn loads_canonical_into(
        &self,
        token: &str,
        max_age: Option<Duration>,
        now: OffsetDateTime,
        out: &mut String,
    ) -> Result<Verified<()>, VerifyError> {
        let v = self.loads_json_at(token, max_age, now)?;
        let depth = self.signer.signer().limits().max_json_depth();
        let start = out.len();
        match canonicalize(&v.value, depth, out) {
            Ok(()) => {}
            Err(Stop::Invalid(e)) => {
                out.truncate(start);
                return Err(e);
            }
            Err(Stop::DuplicateKey) => {
                out.truncate(start);
                let value = parse_json(&v.value, depth)?;
                if python_json_into(&value, out).is_err() {
                    out.truncate(start);
                    return Err(VerifyError::Malformed("json"));
                }
            }
        }
        Ok(v.map(|_| ()))
    }

    /// Verifies and fully decodes a token (signature, age, base64, zlib,
    /// JSON) without keeping the value: does it load?
    ///
    /// # Errors
    /// Any [`VerifyError`].
    pub fn check_at(
        &self,
        token: &str,
        max_age: Option<Duration>,
        now: OffsetDateTime,
    ) -> Result<Verified<()>, VerifyError> {
        let mut scratch = String::new();
        self.loads_canonical_into(token, max_age, now, &mut scratch)
    }

    /// Like [`ObjectSigner::loads_at`] but returns the JSON bytes without parsing them.
    ///
    /// # Errors
    /// Any [`VerifyError`] but the JSON ones.
    pub fn loads_json_at(
        &self,
        token: &str,
        max_age: Option<Duration>,
        now: OffsetDateTime,
    ) -> Result<Verified<Vec<u8>>, VerifyError> {
        let v = self.signer.unsign_at(token, max_age, now)?;
        let max = self.signer.signer().limits().max_inflated_len();
        let payload = v.value.as_bytes();
        let (compressed, b64) = match payload.strip_prefix(b".") {
            Some(rest) => (true, rest),
            None => (false, payload),
        };
        let raw = b64_decode_django(b64).ok_or(VerifyError::Malformed("base64"))?;
        let data = if compressed {
            zlib_inflate(&raw, max)?
        } else {
            raw
        };
        Ok(v.map(|_| data))
    }

    /// Verifies and decodes; when stale, re-signs the same payload with the
    /// primary key, keeping the original timestamp (and byte-identical payload).
    ///
    /// # Errors
    /// Any [`VerifyError`]; a token whose payload does not decode is not re-signed.
    pub fn resign_at(
        &self,
        token: &str,
        max_age: Option<Duration>,
        now: OffsetDateTime,
    ) -> Result<Verified<(Value, Option<String>)>, VerifyError> {
        let v = self.loads_at(token, max_age, now)?;
        let fresh = if v.is_stale() {
            self.signer.resign_at(token, max_age, now)?.value
        } else {
            None
        };
        Ok(v.map(|value| (value, fresh)))
    }
}

fn zlib_compress(data: &[u8]) -> Option<Vec<u8>> {
    thread_local! {
        static DEFLATER: RefCell<Compress> = RefCell::new(Compress::new(Compression::default(), true));
    }
    DEFLATER.with(|cell| match cell.try_borrow_mut() {
        Ok(mut c) => {
            c.reset();
            compress_with(&mut c, data)
        }
        Err(_) => compress_with(&mut Compress::new(Compression::default(), true), data),
    })
}

fn compress_with(c: &mut Compress, data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len() / 2 + 64);
    loop {
        let before = c.total_in();
        let consumed = usize::try_from(before).ok()?;
        let status = c
            .compress_vec(data.get(consumed..)?, &mut out, FlushCompress::Finish)
            .ok()?;
        if status == Status::StreamEnd {
            return Some(out);
        }
        out.reserve(out.capacity().max(64));
    }
}

/// Inflates a zlib stream, refusing to produce more than `max` bytes and never
/// allocating past `max + 1`. Bytes after the end of the stream are ignored,
/// as Python's `zlib.decompress` does.
///
/// The inflater (tens of KiB of state) is kept per thread and reset between
/// uses, so a stream of small tokens does not allocate it again and again.
pub(crate) fn zlib_inflate(data: &[u8], max: usize) -> Result<Vec<u8>, VerifyError> {
    thread_local! {
        static INFLATER: RefCell<Decompress> = RefCell::new(Decompress::new(true));
    }
    INFLATER.with(|cell| match cell.try_borrow_mut() {
        Ok(mut d) => {
            d.reset(true);
            inflate_with(&mut d, data, max)
        }
        // Re-entered on this thread (cannot happen today): use a fresh one.
        Err(_) => inflate_with(&mut Decompress::new(true), data, max),
    })
}

fn inflate_with(d: &mut Decompress, data: &[u8], max: usize) -> Result<Vec<u8>, VerifyError> {
    const MALFORMED: VerifyError = VerifyError::Malformed("zlib");
    let cap = max.saturating_add(1);
    let mut out: Vec<u8> = Vec::with_capacity(data.len().saturating_mul(4).max(64).min(cap));
    loop {
        if out.len() == out.capacity() {
            if out.len() > max {
                return Err(too_large(max));
            }
            // Grow geometrically but never past max + 1.
            out.reserve_exact(out.capacity().max(64).min(cap - out.len()));
        }
        let consumed = usize::try_from(d.total_in()).map_err(|_| MALFORMED)?;
        let input = data.get(consumed..).unwrap_or(&[]);
        let (in_before, out_before) = (d.total_in(), out.len());
        let status = d
            .decompress_vec(input, &mut out, FlushDecompress::None)
            .map_err(|_| MALFORMED)?;
        if out.len() > max {
            return Err(too_large(max));
        }
        match status {
            Status::StreamEnd => return Ok(out),
            _ if out.len() == out_before
                && d.total_in() == in_before
                && out.len() < out.capacity() =>
            {
                // No progress with room to spare: the stream is truncated.
                return Err(MALFORMED);
            }
            _ => {}
        }
    }
}

fn too_large(max: usize) -> VerifyError {
    VerifyError::TooLarge {
        limit: Limit::InflatedSize,
        max,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use serde_json::json;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-28 12:00 UTC);

    fn ring() -> KeyRing {
        KeyRing::new(Secret::from("s3cret")).expect("a non-empty secret")
    }

    #[test]
    fn django_docstring_example_loads() {
        // From the docstring of django/core/signing.py (secret unknown there,
        // so check only the payload encoding, which is key-independent).
        let s = ObjectSigner::new(SignerBuilder::new(), false, &ring()).expect("valid");
        let token = s.dumps_with_timestamp(&json!("hello"), 0).expect("ok");
        assert!(token.starts_with("ImhlbGxvIg:0:"), "{token}");
    }

    #[test]
    fn compression_only_when_it_pays() {
        let s = ObjectSigner::new(SignerBuilder::new(), true, &ring()).expect("valid");
        let small = s.dumps_at(&json!({"a": 1}), NOW).expect("ok");
        assert!(!small.starts_with('.'));
        let big = s
            .dumps_at(&json!({"a": "x".repeat(1000)}), NOW)
            .expect("ok");
        assert!(big.starts_with('.'));
        assert_eq!(
            s.loads_at(&big, None, NOW).expect("ok").value,
            json!({"a": "x".repeat(1000)})
        );
    }

    #[test]
    fn decompression_bomb_is_refused_without_inflating_it() {
        let limits = crate::Limits::default()
            .with_max_inflated_len(1 << 20)
            .expect("limit");
        let s =
            ObjectSigner::new(SignerBuilder::new().limits(limits), true, &ring()).expect("valid");
        // 64 MiB of spaces compresses to ~64 KiB; signed validly, so only the cap stops it.
        let bomb = zlib_compress(&vec![b' '; 64 << 20]).expect("compress");
        let mut payload = String::from(".");
        b64_encode_into(&bomb, &mut payload);
        let token = s.timestamp_signer().sign_at(&payload, NOW);
        assert_eq!(
            s.loads_at(&token, None, NOW),
            Err(VerifyError::TooLarge {
                limit: Limit::InflatedSize,
                max: 1 << 20
            })
        );
    }

    #[test]
    fn inflate_edges() {
        let z = zlib_compress(b"hello world hello world").expect("z");
        assert_eq!(
            zlib_inflate(&z, 100).expect("ok"),
            b"hello world hello world"
        );
        assert_eq!(
            zlib_inflate(&z, 23).expect("exact fit"),
            b"hello world hello world"
        );
        assert!(matches!(
            zlib_inflate(&z, 22),
            Err(VerifyError::TooLarge { .. })
        ));
        let mut trailing = z.clone();
        trailing.extend_from_slice(b"garbage");
        assert_eq!(
            zlib_inflate(&trailing, 100).expect("ok"),
            b"hello world hello world"
        );
        assert_eq!(
            zlib_inflate(&z[..z.len() - 3], 100),
            Err(VerifyError::Malformed("zlib"))
        );
        assert_eq!(zlib_inflate(b"", 100), Err(VerifyError::Malformed("zlib")));
        assert_eq!(
            zlib_inflate(b"not zlib", 100),
            Err(VerifyError::Malformed("zlib"))
        );
    }

    #[test]
    fn payload_checks_happen_only_after_the_signature() {
        let s = ObjectSigner::new(SignerBuilder::new(), true, &ring()).expect("valid");
        let other = ObjectSigner::new(
            SignerBuilder::new(),
            true,
            &KeyRing::new(Secret::from("x")).expect("a non-empty secret"),
        )
        .expect("valid");
        let forged = other.timestamp_signer().sign_at(".Y!!!", NOW);
        assert_eq!(
            s.loads_at(&forged, None, NOW),
            Err(VerifyError::BadSignature)
        );
        let signed_garbage = s.timestamp_signer().sign_at(".Y!!!", NOW);
        assert_eq!(
            s.loads_at(&signed_garbage, None, NOW),
            Err(VerifyError::Malformed("base64"))
        );
    }
}
