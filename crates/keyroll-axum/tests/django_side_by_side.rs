//! Side by side with a real Django app (`tests/django/cookie_app`, the
//! `signed_cookies` session backend) over real HTTP: a session cookie made by
//! Django is read by the keyroll layer and vice versa, also across a key
//! rotation. Django runs from the pinned venv (`KEYROLL_DJANGO52_PYTHON` /
//! `KEYROLL_DJANGO42_PYTHON`, else `tests/django/setup-venv.sh`).
//!
//! Cookies travel in explicit `Cookie:` headers (no cookie jar), so every test
//! decides which cookie goes to which server.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "../../../tests/support/django_venv.rs"]
mod django_venv;
use django_venv::{django_python, repo_root};
use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use axum::extract::Query;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use keyroll::{KeyRing, Role, Secret, SessionCodec};
use keyroll_axum::{RingHandle, Session, SessionError, SessionLayer};
use serde_json::{json, Map, Value};
use time::OffsetDateTime;

const SECRET_A: &str = "side-by-side-secret-A-0123456789abcdefghijklmnopqrstuvwxyz";
const SECRET_B: &str = "side-by-side-secret-B-0123456789abcdefghijklmnopqrstuvwxyz";

fn ring_a() -> KeyRing {
    KeyRing::new(Secret::from(SECRET_A)).expect("a non-empty secret")
}
fn ring_b() -> KeyRing {
    KeyRing::new(Secret::from(SECRET_B)).expect("a non-empty secret")
}
fn ring_b_fallback_a() -> KeyRing {
    ring_b()
        .with_fallback(Secret::from(SECRET_A), None)
        .unwrap()
}

// ------------------------------------------------------------ Django

/// A running `cookie_app/serve.py`; killed on drop.
struct Django {
    child: Child,
    base: String,
}

impl Drop for Django {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Django {
    /// Starts Django with `SECRET_KEY = primary`, `SECRET_KEY_FALLBACKS = fallbacks`
    /// on a free port (the app binds port 0 and reports the real one).
    async fn start(version: &'static str, primary: &str, fallbacks: &[&str]) -> Self {
        let primary = primary.to_owned();
        let fallbacks = serde_json::to_string(fallbacks).unwrap();
        tokio::task::spawn_blocking(move || Self::start_blocking(version, &primary, &fallbacks))
            .await
            .unwrap()
    }

    fn start_blocking(version: &str, primary: &str, fallbacks: &str) -> Self {
        let python = django_python(version);
        let mut child = Command::new(&python)
            .arg(repo_root().join("tests/django/cookie_app/serve.py"))
            .arg("0")
            .env("SECRET_KEY", primary)
            .env("SECRET_KEY_FALLBACKS", fallbacks)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", python.display()));
        let stdout = child.stdout.take().unwrap();
        // Guard first, so a timeout below still kills the process.
        let mut django = Self {
            child,
            base: String::new(),
        };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        loop {
            let line = rx
                .recv_timeout(Duration::from_secs(60))
                .expect("Django did not print READY within 60 s (or exited)");
            if let Some(base) = line.strip_prefix("READY ") {
                django.base = base.trim().to_owned();
                return django;
            }
        }
    }
}

// ------------------------------------------------------------ keyroll app

#[derive(serde::Deserialize)]
struct SetQuery {
    k: String,
    v: String,
    /// Comma-separated keys to report besides `k`.
    #[serde(default)]
    keys: String,
}

#[derive(serde::Deserialize)]
struct GetQuery {
    /// Comma-separated keys to report.
    #[serde(default)]
    keys: String,
}

/// The listed keys of the session that are present, as a JSON object, with
/// the role of the key that verified the incoming cookie in `x-keyroll-role`.
///
/// `Session` cannot list its keys, so the caller names them (the tests also
/// decode the whole cookie to check nothing else is in it).
async fn report(session: &Session, keys: &[&str]) -> Result<Response, SessionError> {
    let mut out = Map::new();
    for k in keys.iter().filter(|k| !k.is_empty()) {
        if let Some(v) = session.get_value(k).await? {
            out.insert((*k).to_owned(), v);
        }
    }
    let role = match session.role().await? {
        Some(Role::Primary) => "primary",
        Some(Role::Staged) => "staged",
        Some(Role::Fallback) => "fallback",
        None => "none",
    };
    let mut res = Json(Value::Object(out)).into_response();
    res.headers_mut().insert(
        HeaderName::from_static("x-keyroll-role"),
        HeaderValue::from_static(role),
    );
    Ok(res)
}

/// `GET /set?k=KEY&v=VALUE[&keys=a,b]`: as the Django view (VALUE is JSON
/// when it parses as JSON, else the raw string).
async fn set_value(session: Session, Query(q): Query<SetQuery>) -> Result<Response, SessionError> {
    let value = serde_json::from_str::<Value>(&q.v).unwrap_or(Value::String(q.v.clone()));
    session.insert(&q.k, value).await?;
    let mut keys: Vec<&str> = q.keys.split(',').collect();
    keys.push(&q.k);
    report(&session, &keys).await
}

/// `GET /get?keys=a,b`: those keys of the session.
async fn get_values(session: Session, Query(q): Query<GetQuery>) -> Result<Response, SessionError> {
    let keys: Vec<&str> = q.keys.split(',').collect();
    report(&session, &keys).await
}

struct Keyroll {
    base: String,
    ring: RingHandle,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Keyroll {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn start_keyroll(ring: KeyRing) -> Keyroll {
    let ring = RingHandle::new(ring);
    let app = Router::new()
        .route("/set", get(set_value))
        .route("/get", get(get_values))
        .layer(SessionLayer::signed_cookie(ring.clone()).insecure_http());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Keyroll { base, ring, server }
}

// ------------------------------------------------------------ HTTP

struct Reply {
    status: StatusCode,
    body: Value,
    /// The value of the `sessionid` Set-Cookie, if any.
    set_cookie: Option<String>,
    /// The whole `sessionid` Set-Cookie header.
    set_cookie_header: Option<String>,
    role: Option<String>,
}

/// GET `base/path?query` with `sessionid=cookie` (if any) and no cookie jar.
async fn call(base: &str, path: &str, query: &[(&str, &str)], cookie: Option<&str>) -> Reply {
    let mut req = reqwest::Client::new()
        .get(format!("{base}{path}"))
        .query(query);
    if let Some(c) = cookie {
        req = req.header("cookie", format!("sessionid={c}"));
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    let mut set_cookie_header = None;
    for h in res.headers().get_all("set-cookie") {
        let h = h.to_str().unwrap().trim();
        if h.starts_with("sessionid=") {
            assert!(
                set_cookie_header.is_none(),
                "two sessionid Set-Cookies from {base}{path}"
            );
            set_cookie_header = Some(h.to_owned());
        }
    }
    let set_cookie = set_cookie_header.as_deref().map(|h| {
        let v = h["sessionid=".len()..].split(';').next().unwrap().trim();
        v.strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(v)
            .to_owned()
    });
    let role = res
        .headers()
        .get("x-keyroll-role")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = res.text().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{base}{path}: {text}");
    let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text}"));
    Reply {
        status,
        body,
        set_cookie,
        set_cookie_header,
        role,
    }
}

/// The session data in `cookie`, decoded by keyroll's codec under `ring` alone.
fn decode(ring: &KeyRing, cookie: &str) -> Option<Value> {
    SessionCodec::signed_cookie(ring, keyroll::DEFAULT_SESSION_COOKIE_AGE)
        .decode_at(cookie, OffsetDateTime::now_utc())
        .ok()
        .map(|v| Value::Object(v.value))
}

/// Session values worth round-tripping: unicode (BMP and astral, in keys and
/// values), nesting, ints (small, negative, beyond 2^53 and i64), floats,
/// booleans, null, and a long repetitive string (so Django compresses).
fn sample_data() -> Vec<(&'static str, Value)> {
    vec![
        (
            "greeting",
            json!("héllo wörld ✓ 日本語 😀 \"quoted\" \\ </script>"),
        ),
        ("clé-ü", json!("ключ")),
        (
            "nested",
            json!({"a": [1, {"b": null, "c": true, "d": [[], {}]}], "é": {"ж": "😀"}, "n": -3}),
        ),
        ("count", json!(42)),
        ("negative", json!(-7)),
        ("big", json!(9_007_199_254_740_993_u64)),
        (
            "huge",
            serde_json::from_str("123456789012345678901234567890").unwrap(),
        ),
        ("float", json!(1.5)),
        ("flag", json!(false)),
        ("nothing", Value::Null),
        ("long", json!("abc".repeat(400))),
    ]
}

fn as_object(pairs: &[(&str, Value)]) -> Value {
    Value::Object(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
    )
}

fn key_list(pairs: &[(&str, Value)]) -> String {
    pairs.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(",")
}

/// Sets every pair through `base/set`, one request each, passing the cookie on.
async fn set_all(base: &str, pairs: &[(&str, Value)], mut cookie: Option<String>) -> String {
    let keys = key_list(pairs);
    for (k, v) in pairs {
        let v = serde_json::to_string(v).unwrap();
        let r = call(
            base,
            "/set",
            &[("k", k), ("v", &v), ("keys", &keys)],
            cookie.as_deref(),
        )
        .await;
        cookie = Some(r.set_cookie.expect("a Set-Cookie after /set"));
    }
    cookie.unwrap()
}

// ------------------------------------------------------------ the tests

/// (a) Django sets the session → keyroll reads exactly the same data, and a
/// value keyroll adds on top is read back by Django with everything else.
async fn django_cookie_read_by_keyroll(version: &'static str) {
    let django = Django::start(version, SECRET_A, &[]).await;
    let keyroll = start_keyroll(ring_a()).await;
    let pairs = sample_data();
    let expected = as_object(&pairs);

    let cookie = set_all(&django.base, &pairs, None).await;
    assert_eq!(
        call(&django.base, "/get", &[], Some(&cookie)).await.body,
        expected
    );
    // Django compresses a session this size (payload starts with '.').
    assert!(cookie.starts_with('.'), "{cookie}");

    let keys = key_list(&pairs);
    let r = call(&keyroll.base, "/get", &[("keys", &keys)], Some(&cookie)).await;
    assert_eq!(r.body, expected);
    assert_eq!(r.role.as_deref(), Some("primary"));
    assert!(r.set_cookie.is_none(), "a fresh cookie is not re-issued");
    // Nothing but those keys in it.
    assert_eq!(decode(&ring_a(), &cookie), Some(expected.clone()));

    // keyroll adds a key to Django's session; Django reads all of it.
    let r = call(
        &keyroll.base,
        "/set",
        &[("k", "from-keyroll"), ("v", "[\"ok\", 1]"), ("keys", &keys)],
        Some(&cookie),
    )
    .await;
    let mut more = pairs.clone();
    more.push(("from-keyroll", json!(["ok", 1])));
    assert_eq!(r.body, as_object(&more));
    let updated = r.set_cookie.unwrap();
    assert_eq!(
        call(&django.base, "/get", &[], Some(&updated)).await.body,
        as_object(&more)
    );

    // A small session too (Django does not compress it).
    let small = [("count", json!(1)), ("u", json!("ü"))];
    let cookie = set_all(&django.base, &small, None).await;
    assert!(!cookie.starts_with('.'), "{cookie}");
    let r = call(
        &keyroll.base,
        "/get",
        &[("keys", &key_list(&small))],
        Some(&cookie),
    )
    .await;
    assert_eq!(r.body, as_object(&small));
}

/// (b) keyroll sets the session → Django reads exactly the same data, and a
/// value Django adds on top is read back by keyroll.
async fn keyroll_cookie_read_by_django(version: &'static str) {
    let django = Django::start(version, SECRET_A, &[]).await;
    let keyroll = start_keyroll(ring_a()).await;
    let pairs = sample_data();
    let expected = as_object(&pairs);

    let cookie = set_all(&keyroll.base, &pairs, None).await;
    let keys = key_list(&pairs);
    assert_eq!(
        call(&keyroll.base, "/get", &[("keys", &keys)], Some(&cookie))
            .await
            .body,
        expected
    );
    assert_eq!(decode(&ring_a(), &cookie), Some(expected.clone()));

    let r = call(&django.base, "/get", &[], Some(&cookie)).await;
    assert_eq!(r.body, expected);
    assert!(
        r.set_cookie.is_none(),
        "Django re-saved an unmodified session"
    );

    let r = call(
        &django.base,
        "/set",
        &[("k", "from-django"), ("v", "{\"ö\": [2.5]}")],
        Some(&cookie),
    )
    .await;
    let mut more = pairs.clone();
    more.push(("from-django", json!({"ö": [2.5]})));
    assert_eq!(r.body, as_object(&more));
    let updated = r.set_cookie.unwrap();
    let r = call(
        &keyroll.base,
        "/get",
        &[("keys", &key_list(&more))],
        Some(&updated),
    )
    .await;
    assert_eq!(r.body, as_object(&more));

    // A small keyroll session too.
    let small = [("count", json!(1)), ("u", json!("ü"))];
    let cookie = set_all(&keyroll.base, &small, None).await;
    assert_eq!(
        call(&django.base, "/get", &[], Some(&cookie)).await.body,
        as_object(&small)
    );
}

/// (c) Rotation across both: Django signs under A; keyroll {B, fallback A}
/// accepts it and re-issues it signed by B; Django with only B accepts the
/// re-issued cookie (and refuses the original); Django with B and fallback A
/// accepts the original.
async fn rotation_across_both(version: &'static str) {
    let pairs = sample_data();
    let expected = as_object(&pairs);
    let keys = key_list(&pairs);

    let original = {
        let django_a = Django::start(version, SECRET_A, &[]).await;
        set_all(&django_a.base, &pairs, None).await
    };
    assert_eq!(decode(&ring_a(), &original), Some(expected.clone()));
    assert_eq!(decode(&ring_b(), &original), None);

    let keyroll = start_keyroll(ring_b_fallback_a()).await;
    let r = call(&keyroll.base, "/get", &[("keys", &keys)], Some(&original)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, expected);
    assert_eq!(r.role.as_deref(), Some("fallback"));
    let header = r
        .set_cookie_header
        .clone()
        .expect("the stale cookie is re-issued on the same response");
    for want in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age="] {
        assert!(header.contains(want), "{header}");
    }
    assert!(!header.contains("Secure"), "{header}");
    let max_age: i64 = header
        .split(';')
        .find_map(|a| a.trim().strip_prefix("Max-Age="))
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        max_age > 0 && max_age <= 1_209_600,
        "re-issued Max-Age {max_age}"
    );
    let reissued = r.set_cookie.unwrap();
    assert_ne!(reissued, original);
    assert_eq!(decode(&ring_b(), &reissued), Some(expected.clone()));
    assert_eq!(decode(&ring_a(), &reissued), None);
    // keyroll itself now sees the re-issued cookie as primary and leaves it be.
    let r = call(&keyroll.base, "/get", &[("keys", &keys)], Some(&reissued)).await;
    assert_eq!(r.body, expected);
    assert_eq!(r.role.as_deref(), Some("primary"));
    assert!(r.set_cookie.is_none());
    // keyroll after A is retired: the re-issued cookie still works, the original not.
    keyroll.ring.reload(ring_b());
    let r = call(&keyroll.base, "/get", &[("keys", &keys)], Some(&reissued)).await;
    assert_eq!(r.body, expected);
    let r = call(&keyroll.base, "/get", &[("keys", &keys)], Some(&original)).await;
    assert_eq!(r.body, json!({}));
    assert_eq!(r.role.as_deref(), Some("none"));

    {
        let django_b = Django::start(version, SECRET_B, &[]).await;
        assert_eq!(
            call(&django_b.base, "/get", &[], Some(&reissued))
                .await
                .body,
            expected
        );
        // Sanity: this Django really does not know A.
        assert_eq!(
            call(&django_b.base, "/get", &[], Some(&original))
                .await
                .body,
            json!({})
        );
    }
    let django_b_a = Django::start(version, SECRET_B, &[SECRET_A]).await;
    assert_eq!(
        call(&django_b_a.base, "/get", &[], Some(&original))
            .await
            .body,
        expected
    );
    assert_eq!(
        call(&django_b_a.base, "/get", &[], Some(&reissued))
            .await
            .body,
        expected
    );
    // Django re-signs only when modified: a write under B is readable by keyroll {B}.
    let r = call(
        &django_b_a.base,
        "/set",
        &[("k", "after"), ("v", "1")],
        Some(&original),
    )
    .await;
    let mut more = pairs.clone();
    more.push(("after", json!(1)));
    let rewritten = r.set_cookie.unwrap();
    let r = call(
        &keyroll.base,
        "/get",
        &[("keys", &key_list(&more))],
        Some(&rewritten),
    )
    .await;
    assert_eq!(r.body, as_object(&more));
    assert_eq!(r.role.as_deref(), Some("primary"));
}

macro_rules! side_by_side {
    ($($name:ident: $version:expr;)*) => {$(
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn django_to_keyroll() {
                django_cookie_read_by_keyroll($version).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn keyroll_to_django() {
                keyroll_cookie_read_by_django($version).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn rotation() {
                rotation_across_both($version).await;
            }
        }
    )*};
}

side_by_side! {
    django52: "5.2";
    django42: "4.2";
}
