//! The layer's added cost per request, in one run: the same axum app
//! (axum-extra `SignedCookieJar` + `PrivateCookieJar`) without the layer,
//! with it and a current cookie, and with it and a stale cookie (re-made
//! under the primary on every request). In process (`oneshot`), so the
//! figures are server CPU without the network.
//!
//! `cargo bench -p keyroll-cookie --bench cookie_layer`
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use axum_extra::extract::cookie::{Key, PrivateCookieJar, SignedCookieJar};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use criterion::{criterion_group, criterion_main, Criterion};
use http::Request;
use keyroll::{Role, Secret};
use keyroll_cookie::{CookieKeys, CookieRing, KeyMaterial, RotateCookies, RotateCookiesLayer};
use tower::ServiceExt as _;

async fn whoami(signed: SignedCookieJar, private: PrivateCookieJar) -> String {
    let u = signed.get("user").map(|c| c.value().len()).unwrap_or(0);
    let s = private.get("secret").map(|c| c.value().len()).unwrap_or(0);
    format!("{u} {s}")
}

fn app(key: Key) -> Router {
    Router::new().route("/", get(whoami)).with_state(key)
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let (key_a, key_b) = (Key::generate(), Key::generate());
    let a = Secret::from(STANDARD.encode(key_a.master()));
    let b = Secret::from(STANDARD.encode(key_b.master()));
    let ring = CookieRing::new(
        CookieKeys::new(
            [(&b, Role::Primary, None), (&a, Role::Fallback, None)],
            KeyMaterial::Auto,
        )
        .unwrap(),
    );
    let old = CookieKeys::new([(&a, Role::Primary, None)], KeyMaterial::Auto).unwrap();
    let new = CookieKeys::new([(&b, Role::Primary, None)], KeyMaterial::Auto).unwrap();
    let current = format!(
        "theme=dark; user={}; secret={}; other=1",
        new.sign("alice"),
        new.seal("secret", "s3cr3t")
    );
    let stale = format!(
        "theme=dark; user={}; secret={}; other=1",
        old.sign("alice"),
        old.seal("secret", "s3cr3t")
    );
    let ring_keys = ring.current();
    let layer = RotateCookiesLayer::new(RotateCookies::new(ring).signed("user").private("secret"));
    let layer_again = layer.clone();
    let bare = app(key_b.clone());
    let layered = app(key_b).layer(layer);
    let req = |cookie: &str| {
        Request::builder()
            .uri("/")
            .header("cookie", cookie)
            .body(Body::empty())
            .unwrap()
    };

    let mut g = c.benchmark_group("cookie_layer");
    g.bench_function("without layer, current cookies", |bch| {
        bch.iter(|| black_box(rt.block_on(bare.clone().oneshot(req(&current))).unwrap()))
    });
    g.bench_function("with layer, current cookies", |bch| {
        bch.iter(|| black_box(rt.block_on(layered.clone().oneshot(req(&current))).unwrap()))
    });
    g.bench_function("with layer, stale cookies (re-made)", |bch| {
        bch.iter(|| black_box(rt.block_on(layered.clone().oneshot(req(&stale))).unwrap()))
    });
    g.finish();

    // The layer alone, around a service that does nothing: its added CPU per request.
    let noop = tower::service_fn(|_req: Request<Body>| async {
        Ok::<_, std::convert::Infallible>(http::Response::new(Body::empty()))
    });
    let layered_noop = tower::Layer::layer(&layer_again, noop);
    let mut g = c.benchmark_group("layer_alone");
    g.bench_function("no-op service, no layer", |bch| {
        bch.iter(|| black_box(rt.block_on(noop.oneshot(req(&current))).unwrap()))
    });
    g.bench_function("no-op service, layer, current cookies", |bch| {
        bch.iter(|| {
            black_box(
                rt.block_on(layered_noop.clone().oneshot(req(&current)))
                    .unwrap(),
            )
        })
    });
    g.bench_function("no-op service, layer, stale cookies", |bch| {
        bch.iter(|| {
            black_box(
                rt.block_on(layered_noop.clone().oneshot(req(&stale)))
                    .unwrap(),
            )
        })
    });
    g.finish();

    // A current cookie the layer has not seen yet: one HMAC / one AES-GCM open.
    let now = time::OffsetDateTime::now_utc();
    let (s, p) = (new.sign("alice"), new.seal("secret", "s3cr3t"));
    let mut g = c.benchmark_group("keys");
    g.bench_function("verify a signed cookie (primary)", |bch| {
        bch.iter(|| black_box(ring_keys.verify_signed_at(black_box(&s), now).is_ok()))
    });
    g.bench_function("open a private cookie (primary)", |bch| {
        bch.iter(|| {
            black_box(
                ring_keys
                    .open_private_at("secret", black_box(&p), now)
                    .is_ok(),
            )
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
