//! The Cookie header, as the axum layer reads it: raw header values (any
//! bytes a `HeaderValue` may hold, non-ASCII included, several headers,
//! duplicates, quotes, huge values) through
//!
//! - `SignedCookies::get_at` (the signed-cookie helper), and
//! - a whole `SessionLayer` (server mode over a `MemoryStore`, and
//!   signed-cookie mode), called in process as a tower service: no network.
//!
//! Input: a mode byte (bit 0: server or signed-cookie sessions), then header
//! values separated by `\n`. Every `@` becomes a valid session cookie value
//! (a stored session key, or a signed-cookie session) and every `#` a valid
//! signed `theme` cookie, so the fuzzer can place real credentials anywhere.
//!
//! Asserts: the layer always answers 200 (never a 5xx for a bad cookie); the
//! session is visible exactly when the spec below finds the planted value as
//! the request's `sessionid` cookie; `get_at` verifies exactly when the spec
//! finds the planted `theme` value.
//!
//! The spec (`spec_find`): Cookie headers are read in order, at most 64 KiB in
//! all (past that: no cookie); in a header, `;`-separated pairs `name=value`
//! taken as bytes (a non-UTF-8 byte in one pair does not disturb the others),
//! name and value trimmed of what Python's `str.strip()` strips from Latin-1 text, one pair of surrounding double
//! quotes removed; the first pair with the name decides: its value, unless
//! empty, longer than the limit or not UTF-8 (then no cookie).
#![no_main]

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use http::{header, HeaderMap, HeaderValue, Request, StatusCode};
use keyroll::{SessionCodec, SessionData, SignedCookie};
use keyroll_axum::{
    Clock, RingHandle, Session, SessionConfig, SessionError, SessionLayer, SignedCookies,
    DEFAULT_MAX_COOKIE_LEN,
};
use keyroll_fuzz::{ring, NOW};
use keyroll_store::{MemoryStore, SessionEngine, SessionRecord, Store};
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt as _;

const KEY: &str = "fuzzsessionkey0123456789abcdefgh";
const SCAN_LIMIT: usize = 64 * 1024;

struct Fixture {
    rt: tokio::runtime::Runtime,
    server: Router,
    cookie: Router,
    cookie_token: String,
    theme_token: String,
    helper: SignedCookies,
}

async fn who(session: Session) -> Result<String, SessionError> {
    Ok(match session.get::<String>("who").await? {
        Some(w) => format!("who:{w}"),
        None => "anon".to_owned(),
    })
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let handle = RingHandle::new(ring().clone());
        let mut data = SessionData::new();
        data.insert("who".into(), "fuzz".into());
        let config = || {
            SessionConfig::new()
                .insecure_http()
                .clock(Clock::from_fn(|| NOW))
        };

        let store = Arc::new(MemoryStore::new());
        let row = SessionCodec::database(ring())
            .encode_at(&data, NOW)
            .expect("encodes");
        rt.block_on(store.save(&SessionRecord {
            key: KEY.to_owned(),
            data: row,
            expires: NOW + time::Duration::days(1),
        }))
        .expect("saved");
        let engine = Arc::new(SessionEngine::new(store as Arc<dyn Store>, ring()));
        let server = Router::new()
            .route("/", get(who))
            .layer(SessionLayer::server(engine, handle.clone()).with_config(config()));

        let cookie_token = SessionCodec::signed_cookie(ring(), keyroll::DEFAULT_SESSION_COOKIE_AGE)
            .encode_at(&data, NOW)
            .expect("encodes");
        let cookie = Router::new()
            .route("/", get(who))
            .layer(SessionLayer::signed_cookie(handle.clone()).with_config(config()));

        let theme_token = SignedCookie::new(ring(), "theme", "")
            .expect("cookie signer")
            .sign_at("dark", NOW);
        Fixture {
            rt,
            server,
            cookie,
            cookie_token,
            theme_token,
            helper: SignedCookies::new(handle).insecure_http(),
        }
    })
}

/// Python's `str.strip()` of `b` decoded as Latin-1 (written independently
/// of keyroll's: the whitespace characters among U+0000..U+00FF).
fn py_strip(b: &[u8]) -> &[u8] {
    let ws = |c: u8| char::from(c).is_whitespace() || (0x1c..=0x1f).contains(&c);
    let mut s = b;
    while let [first, rest @ ..] = s {
        if ws(*first) {
            s = rest
        } else {
            break;
        }
    }
    while let [rest @ .., last] = s {
        if ws(*last) {
            s = rest
        } else {
            break;
        }
    }
    s
}

/// The spec of which value a request's cookie `name` has (see the module doc).
fn spec_find(values: &[&[u8]], name: &str, max_len: usize) -> Option<String> {
    let mut seen = 0usize;
    for v in values {
        seen += v.len();
        if seen > SCAN_LIMIT {
            return None;
        }
        for pair in v.split(|&b| b == b';') {
            let Some(eq) = pair.iter().position(|&b| b == b'=') else {
                continue;
            };
            if py_strip(&pair[..eq]) != name.as_bytes() {
                continue;
            }
            let value = py_strip(&pair[eq + 1..]);
            if value.is_empty() || value.len() > max_len {
                return None;
            }
            let value = py_unquote(std::str::from_utf8(value).ok()?);
            return (!value.is_empty()).then_some(value);
        }
    }
    None
}

/// Python's `http.cookies._unquote` (written independently of keyroll's):
/// a value in double quotes loses them, then `\\ooo` (first digit 0-3)
/// becomes that character and `\\x` becomes `x` (any `x` but a newline).
fn py_unquote(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() < 2 || chars[0] != '"' || chars[chars.len() - 1] != '"' {
        return s.to_owned();
    }
    let inner = &chars[1..chars.len() - 1];
    let mut out = String::new();
    let mut i = 0;
    while i < inner.len() {
        if inner[i] == '\\' {
            if let Some(&[a, b, c]) = inner.get(i + 1..i + 4) {
                if ('0'..='3').contains(&a) && ('0'..='7').contains(&b) && ('0'..='7').contains(&c)
                {
                    let n = (a as u32 - 48) * 64 + (b as u32 - 48) * 8 + (c as u32 - 48);
                    out.push(char::from_u32(n).expect("below 256"));
                    i += 4;
                    continue;
                }
            }
            if let Some(&next) = inner.get(i + 1) {
                if next != '\n' {
                    out.push(next);
                    i += 2;
                    continue;
                }
            }
        }
        out.push(inner[i]);
        i += 1;
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let f = fixture();
    let server = mode & 1 == 0;
    let session_token: &str = if server { KEY } else { &f.cookie_token };

    // Header values, with the planted credentials.
    let mut headers = HeaderMap::new();
    let mut kept: Vec<Vec<u8>> = Vec::new();
    for part in rest.split(|&b| b == b'\n') {
        let mut v = Vec::with_capacity(part.len());
        for &b in part {
            match b {
                b'@' => v.extend_from_slice(session_token.as_bytes()),
                b'#' => v.extend_from_slice(f.theme_token.as_bytes()),
                _ => v.push(b),
            }
        }
        if let Ok(hv) = HeaderValue::from_bytes(&v) {
            headers.append(header::COOKIE, hv);
            kept.push(v);
        }
    }
    let values: Vec<&[u8]> = kept.iter().map(Vec::as_slice).collect();

    // The signed-cookie helper.
    let got = f.helper.get_at(&headers, "theme", "", None, NOW);
    let want = spec_find(&values, "theme", DEFAULT_MAX_COOKIE_LEN);
    let planted = want.as_deref() == Some(f.theme_token.as_str());
    match got {
        Some(v) => {
            assert!(
                planted,
                "verified a theme cookie the spec does not find: {want:?}"
            );
            assert_eq!(v.value, "dark");
        }
        None => assert!(!planted, "the planted theme cookie was not read"),
    }

    // The session layer.
    let mut req = Request::builder().uri("/");
    if let Some(h) = req.headers_mut() {
        *h = headers;
    }
    let req = req.body(Body::empty()).expect("request");
    let app = if server {
        f.server.clone()
    } else {
        f.cookie.clone()
    };
    let (status, body) = f.rt.block_on(async move {
        let resp = app.oneshot(req).await.expect("infallible");
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .expect("body");
        (status, body)
    });
    assert_eq!(
        status,
        StatusCode::OK,
        "{:?}",
        String::from_utf8_lossy(&body)
    );
    let want = spec_find(&values, "sessionid", DEFAULT_MAX_COOKIE_LEN);
    let planted = want.as_deref() == Some(session_token);
    let seen = &body[..] == b"who:fuzz";
    assert!(seen || &body[..] == b"anon", "{body:?}");
    assert_eq!(
        seen, planted,
        "session seen: {seen}; spec finds {want:?} (server mode: {server})"
    );
});
