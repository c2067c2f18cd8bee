//! Benchmarks of the hot path: a Django database-session row, verified and
//! decoded under the primary key and under a fallback key, signed, its
//! signature alone, and bare HMAC-SHA256 over a message of the same length
//! (the ceiling keyroll is measured against).
//!
//! ```text
//! cargo bench -p keyroll --bench verify -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! The session is the typical logged-in one that `bench/make_sessions.py`
//! generates: what `django.contrib.auth.login()` writes plus two app keys,
//! `dumps(..., salt="django.contrib.sessions.SessionStore", compress=True)`.
//! See BENCHMARKS.md for the figures.
#![allow(missing_docs, clippy::expect_used, clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hmac::{Hmac, Mac};
use keyroll::{salted_hmac, Algorithm, KeyRing, Secret, SessionCodec, SessionData};
use serde_json::{json, Value};
use sha2::Sha256;
use time::OffsetDateTime;

const PRIMARY: &str = "bench-primary-3k#v9!q2m$z@x7w0r^t6y&u1i(o8p)a5s-d4f+g=h_j";
const STAGED: &str = "bench-staged-next-6q#w1e!r4t@y8u^i2o&p5a(s9d)f3g-h7j+k=l_z";
const FALLBACK_1: &str = "bench-older-fallback-8n#c2b!v5x@z0l^k7j&h3g(f9d)s6a-p1o+i=u_y";
const FALLBACK_2: &str = "bench-oldest-fallback-4e#r7t!y1u@i9o^p3a&s6d(f0g)h2j-k8l+z=x_c";

/// A logged-in session, in the key order `login()` writes them.
fn typical_session() -> SessionData {
    let v = json!({
        "_auth_user_id": "482193",
        "_auth_user_backend": "django.contrib.auth.backends.ModelBackend",
        "_auth_user_hash": "5f0c3a9e1b7d2468ace013579bdf2468ace013579bdf02468ace13579bdf0246",
        "django_language": "en",
        "cart": [31337, 4242],
    });
    match v {
        Value::Object(map) => map,
        _ => unreachable!(),
    }
}

/// primary, staged, fallback, fallback — the ring mid-rotation.
fn rotating_ring() -> KeyRing {
    KeyRing::new(Secret::from(PRIMARY))
        .expect("a non-empty secret")
        .with_staged(Secret::from(STAGED))
        .and_then(|r| r.with_fallback(Secret::from(FALLBACK_1), None))
        .and_then(|r| r.with_fallback(Secret::from(FALLBACK_2), None))
        .expect("ring")
}

fn benches(c: &mut Criterion) {
    let now = OffsetDateTime::now_utc();
    let data = typical_session();

    let ring = rotating_ring();
    let codec = SessionCodec::database(&ring);
    let by_primary = codec.encode_at(&data, now).expect("encodes");
    // Signed by the last fallback: every other key is tried first.
    let old_ring = KeyRing::new(Secret::from(FALLBACK_2)).expect("a non-empty secret");
    let by_fallback = SessionCodec::database(&old_ring)
        .encode_at(&data, now)
        .expect("encodes");
    assert_eq!(by_primary.len(), by_fallback.len());
    assert!(
        by_primary.starts_with('.'),
        "the typical session compresses"
    );
    let signer = codec.object_signer().timestamp_signer().signer();
    // The HMAC covers everything before the last separator: `payload:timestamp`.
    let signed_len = by_primary.rfind(':').expect("separator");
    println!(
        "typical session: token {} bytes, signed message {} bytes, json {} bytes",
        by_primary.len(),
        signed_len,
        keyroll::python_json(&Value::Object(data.clone()))
            .expect("json")
            .len()
    );

    let mut g = c.benchmark_group("session");
    g.throughput(Throughput::Elements(1));
    g.bench_function("decode/primary", |b| {
        b.iter(|| {
            codec
                .decode_at(black_box(&by_primary), now)
                .expect("verifies")
        })
    });
    g.bench_function("decode/fallback", |b| {
        b.iter(|| {
            codec
                .decode_at(black_box(&by_fallback), now)
                .expect("verifies")
        })
    });
    // The same minus the JSON parse: signature, base64 and inflate only.
    g.bench_function("decode/primary/no-json-parse", |b| {
        b.iter(|| {
            codec
                .object_signer()
                .loads_json_at(black_box(&by_primary), None, now)
                .expect("verifies")
        })
    });
    g.bench_function("encode", |b| {
        b.iter(|| codec.encode_at(black_box(&data), now).expect("encodes"))
    });
    g.finish();

    let mut g = c.benchmark_group("signature");
    g.throughput(Throughput::Elements(1));
    g.bench_function("unsign/primary", |b| {
        b.iter(|| {
            signer
                .unsign_at(black_box(&by_primary), now)
                .expect("verifies")
        })
    });
    g.bench_function("unsign/fallback", |b| {
        b.iter(|| {
            signer
                .unsign_at(black_box(&by_fallback), now)
                .expect("verifies")
        })
    });
    g.finish();

    // The ceiling: one HMAC-SHA256 over a message as long as the signed part,
    // with the key schedule (inner and outer pads) computed once, as keyroll does.
    let msg = vec![b'x'; signed_len];
    let mut g = c.benchmark_group("hmac-sha256");
    g.throughput(Throughput::Elements(1));
    let key = [7u8; 32];
    let mac = Hmac::<Sha256>::new_from_slice(&key).expect("any key length");
    g.bench_function(format!("bare/{signed_len}B"), |b| {
        b.iter(|| {
            let mut m = mac.clone();
            m.update(black_box(&msg));
            m.finalize().into_bytes()
        })
    });
    // What Django does on every verification: derive the key from the secret
    // (one SHA-256), then set up the HMAC and run it.
    g.bench_function(format!("salted_hmac/{signed_len}B"), |b| {
        b.iter(|| {
            salted_hmac(
                b"django.contrib.sessions.SessionStoresigner",
                black_box(&msg),
                PRIMARY.as_bytes(),
                Algorithm::Sha256,
            )
        })
    });
    g.finish();
}

criterion_group!(verify, benches);
criterion_main!(verify);
