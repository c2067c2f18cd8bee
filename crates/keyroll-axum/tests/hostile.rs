//! Hostile requests over real HTTP (docs/bad-input.md): huge and repeated
//! Cookie headers, duplicate cookies, non-ASCII header bytes, session keys a
//! store never holds, garbage rows in the store, over-long cookie values and
//! sessions. Whatever arrives, the answer is an anonymous 200 (or, for the
//! application's own over-large session, a clear 500 that saves nothing);
//! never a panic, and never a store lookup for a key no store could hold.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use axum::routing::get;
use axum::Router;
use common::*;
use keyroll::{SessionCodec, SessionData};
use keyroll_axum::{RingHandle, Session, SessionError, SessionLayer};
use keyroll_store::{SessionRecord, Store};
use reqwest::header::{HeaderValue, COOKIE};
use time::OffsetDateTime;

/// GET `path` with exactly these Cookie header values (one header each).
async fn get_with(app: &TestApp, path: &str, cookies: &[HeaderValue]) -> (u16, String) {
    let mut headers = reqwest::header::HeaderMap::new();
    for c in cookies {
        headers.append(COOKIE, c.clone());
    }
    let r = reqwest::Client::new()
        .get(format!("{}{path}", app.base))
        .headers(headers)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.text().await.unwrap())
}

fn hv(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap()
}

/// An app of `mode` and a logged-in user's session cookie value.
async fn app_with_alice(mode: Mode) -> (TestApp, String) {
    let app = start(mode, Backend::Sqlite)
        .await
        .expect("SQLite is always there");
    let alice = Browser::new(&app);
    alice.post("/login/1").await;
    let good = alice.cookie("sessionid").unwrap();
    assert_eq!(
        get_with(&app, "/whoami", &[hv(&format!("sessionid={good}"))])
            .await
            .1
            .split('|')
            .next(),
        Some("user:1"),
        "the cookie works as sent"
    );
    (app, good)
}

fn is_anonymous(body: &str) -> bool {
    body.starts_with("anonymous|none|none")
}

const MODES: [Mode; 2] = [Mode::Server, Mode::Cookie];

/// The layer reads at most 64 KiB of Cookie headers: a valid session cookie
/// behind more junk than that is not looked for (anonymous 200); behind a
/// little less it is found. A header past hyper's own limit (about 400 KiB)
/// never reaches the layer: hyper answers 431 (or closes the connection).
#[tokio::test]
async fn huge_cookie_header_is_anonymous() {
    for mode in MODES {
        let (app, good) = app_with_alice(mode).await;
        let junk = |n: usize| format!("junk={}; ", "j".repeat(n));
        // Under the scan limit: found.
        let under = format!("{}sessionid={good}", junk(60_000));
        let (status, body) = get_with(&app, "/whoami", &[hv(&under)]).await;
        assert_eq!(status, 200, "{mode:?}");
        assert!(body.starts_with("user:1|"), "{mode:?}: {body}");
        // Past it, in one header or spread over several: not looked for.
        let over = format!("{}sessionid={good}", junk(70_000));
        let (status, body) = get_with(&app, "/whoami", &[hv(&over)]).await;
        assert_eq!(status, 200, "{mode:?}");
        assert!(is_anonymous(&body), "{mode:?}: {body}");
        let spread: Vec<HeaderValue> = (0..9)
            .map(|_| hv(&junk(8_000)))
            .chain([hv(&format!("sessionid={good}"))])
            .collect();
        let (status, body) = get_with(&app, "/whoami", &spread).await;
        assert_eq!(status, 200, "{mode:?}");
        assert!(is_anonymous(&body), "{mode:?}: {body}");
        // Way past it: refused by the HTTP server before the layer, with a
        // 431 (or, when the server closes while the client is still sending
        // the rest, a closed connection), never a 200 or a 5xx.
        let sent = reqwest::Client::new()
            .get(format!("{}/whoami", app.base))
            .header(COOKIE, hv(&junk(1 << 20)))
            .send()
            .await;
        match sent {
            Ok(r) => assert_eq!(r.status().as_u16(), 431, "{mode:?}"),
            Err(e) => assert!(!e.is_status() && !e.is_timeout(), "{mode:?}: {e}"),
        }
        // The session still works afterwards.
        let (status, body) = get_with(&app, "/whoami", &[hv(&format!("sessionid={good}"))]).await;
        assert_eq!((status, body.starts_with("user:1|")), (200, true));
    }
}

/// Duplicate `sessionid` cookies, in one header or across several Cookie
/// headers: the first one counts (RFC 6265 order; Django's `parse_cookie`
/// keeps the last). A bad first one is an anonymous session, never an error.
#[tokio::test]
async fn duplicate_cookies_the_first_counts() {
    for mode in MODES {
        let (app, good) = app_with_alice(mode).await;
        let user = |b: &str| b.starts_with("user:1|");
        for (cookies, logged_in) in [
            (vec![format!("sessionid={good}; sessionid=garbage")], true),
            (vec![format!("sessionid=garbage; sessionid={good}")], false),
            (
                vec![format!("sessionid={good}"), "sessionid=garbage".into()],
                true,
            ),
            (
                vec!["sessionid=garbage".into(), format!("sessionid={good}")],
                false,
            ),
            (
                vec![format!("sessionid={good}"), format!("sessionid={good}")],
                true,
            ),
            (vec![format!("sessionid=; sessionid={good}")], false),
            (vec![format!("a=1; sessionid=\"{good}\"; b=2")], true),
            (vec![format!("sessionid={good}; sessionid={good}x")], true),
        ] {
            let values: Vec<HeaderValue> = cookies.iter().map(|c| hv(c)).collect();
            let (status, body) = get_with(&app, "/whoami", &values).await;
            assert_eq!(status, 200, "{mode:?} {cookies:?}");
            assert_eq!(user(&body), logged_in, "{mode:?} {cookies:?}: {body}");
            if !logged_in {
                assert!(is_anonymous(&body), "{body}");
            }
        }
    }
}

/// Cookie header bytes that are not ASCII. UTF-8 text around the session
/// cookie is fine; a session cookie whose own value is not UTF-8 is no
/// session (an anonymous 200); a Latin-1 byte in *another* cookie of the
/// same header does not hide the session (Django, reading the header as
/// Latin-1, finds it too).
#[tokio::test]
async fn non_ascii_cookie_header_bytes_are_anonymous_never_an_error() {
    for mode in MODES {
        let (app, good) = app_with_alice(mode).await;
        let raw = |bytes: &[u8]| HeaderValue::from_bytes(bytes).unwrap();
        let utf8 = format!("name=Zoë 😀; sessionid={good}");
        let (status, body) = get_with(&app, "/whoami", &[raw(utf8.as_bytes())]).await;
        assert_eq!(status, 200);
        assert!(body.starts_with("user:1|"), "{mode:?}: {body}");
        for junk in [
            &b"sessionid=\xff\xfe\xfd"[..],
            b"sessionid=\xc3",
            b"\x80\x81=\x82; sessionid=x",
            b"sessionid=caf\xe9",
        ] {
            let (status, body) = get_with(&app, "/whoami", &[raw(junk)]).await;
            assert_eq!(status, 200, "{mode:?} {junk:?}");
            assert!(is_anonymous(&body), "{mode:?} {junk:?}: {body}");
        }
        // The session cookie in a header with a Latin-1 byte elsewhere: found.
        let mut latin1 = b"theme=caf\xe9; sessionid=".to_vec();
        latin1.extend_from_slice(good.as_bytes());
        let (status, body) = get_with(&app, "/whoami", &[raw(&latin1)]).await;
        assert_eq!(status, 200);
        assert!(body.starts_with("user:1|"), "{mode:?}: {body}");
        // ... and when it travels in a header of its own.
        let own = format!("sessionid={good}");
        let (status, body) = get_with(
            &app,
            "/whoami",
            &[raw(b"theme=caf\xe9"), raw(own.as_bytes())],
        )
        .await;
        assert_eq!(status, 200);
        assert!(body.starts_with("user:1|"), "{mode:?}: {body}");
    }
}

/// Server mode: a `sessionid` that no store could hold (not 8 to 40
/// characters of `[a-z0-9]`) is an anonymous session and costs no store
/// lookup; a well-formed key that is not in the store costs one lookup and
/// is anonymous too.
#[tokio::test]
async fn session_keys_a_store_cannot_hold_are_anonymous_without_store_io() {
    let (app, good) = app_with_alice(Mode::Server).await;
    let store = app.store.as_ref().unwrap();
    let bad_keys = [
        "short".to_owned(),
        "abcdefg".to_owned(),
        good.to_uppercase(),
        format!("{good}{}", "a".repeat(41 - good.len())),
        "a".repeat(1000),
        format!("{}-", &good[..31]),
        format!("{}_", &good[..31]),
        "../../../../etc/passwd".to_owned(),
        "x' OR '1'='1".to_owned(),
        "%00abcdefghijklmnopqrstuvwxyz01".to_owned(),
        "ǅabcdefghijklmnopqrstuvwxyz0123".to_owned(),
        format!("{}!", &good[..31]),
    ];
    for key in &bad_keys {
        let before = store.ops();
        let (status, body) = get_with(
            &app,
            "/whoami",
            &[HeaderValue::from_bytes(format!("sessionid={key}").as_bytes()).unwrap()],
        )
        .await;
        assert_eq!(status, 200, "{key:?}");
        assert!(is_anonymous(&body), "{key:?}: {body}");
        assert_eq!(store.ops(), before, "{key:?} was looked up");
    }
    for key in ["abcdefgh", "0123456789abcdefghij0123456789abcdefghij"] {
        let before = store.ops();
        let (status, body) = get_with(&app, "/whoami", &[hv(&format!("sessionid={key}"))]).await;
        assert_eq!(status, 200);
        assert!(is_anonymous(&body), "{key}: {body}");
        assert_eq!(store.ops(), before + 1, "{key} is looked up once");
    }
}

/// Server mode: rows whose data is garbage (empty, junk, JSON that is not an
/// object, a row signed by a key outside the ring, a decompression bomb, 2 MiB
/// of text) are anonymous sessions, never an error.
#[tokio::test]
async fn garbage_store_rows_are_anonymous() {
    let (app, _) = app_with_alice(Mode::Server).await;
    let store = app.store.as_ref().unwrap();
    let now = OffsetDateTime::now_utc();
    let a = ring_a();
    let obj = SessionCodec::database(&a);
    let sign_payload = |text: &str| {
        obj.object_signer()
            .timestamp_signer()
            .sign_at(&keyroll::b64_encode(text.as_bytes()), now)
    };
    let mut data = SessionData::new();
    data.insert("_auth_user_id".into(), "1".into());
    let stranger = SessionCodec::database(
        &keyroll::KeyRing::new(keyroll::Secret::from(
            "a-key-outside-the-ring-0123456789abcdef",
        ))
        .expect("a non-empty secret"),
    )
    .encode_at(&data, now)
    .unwrap();
    // 9 MiB of spaces compress to a few KiB: past the 8 MiB inflate cap.
    let bomb = {
        let mut big = SessionData::new();
        big.insert("blob".into(), " ".repeat(9 << 20).into());
        let row = obj.encode_at(&big, now).unwrap();
        assert!(row.len() < 64 << 10, "{}", row.len());
        row
    };
    let rows = [
        String::new(),
        "garbage".to_owned(),
        "\0\0\0".to_owned(),
        sign_payload("[]"),
        sign_payload("{\"_auth_user_id\": "),
        sign_payload(&format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000))),
        stranger,
        bomb,
        "x".repeat(2 << 20),
    ];
    for (i, row) in rows.iter().enumerate() {
        let key = format!("garbagerow{i:022}");
        store
            .save(&SessionRecord {
                key: key.clone(),
                data: row.clone(),
                expires: now + time::Duration::days(1),
            })
            .await
            .unwrap();
        let (status, body) = get_with(&app, "/whoami", &[hv(&format!("sessionid={key}"))]).await;
        assert_eq!(status, 200, "row {i}");
        assert!(is_anonymous(&body), "row {i}: {body}");
        // A handler that writes gets a fresh session, not the garbage row's key.
        let r = reqwest::Client::new()
            .get(format!("{}/visit", app.base))
            .header(COOKIE, format!("sessionid={key}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "row {i}");
        let set = r
            .headers()
            .get("set-cookie")
            .map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(r.text().await.unwrap(), "1", "row {i}");
        let set = set.expect("a new session cookie");
        assert!(
            !set.contains(&key),
            "row {i}: the garbage row's key was reused: {set}"
        );
    }
}

/// A session cookie longer than the configured limit counts as no cookie,
/// even when it is validly signed: an anonymous 200.
#[tokio::test]
async fn over_long_cookie_value_is_anonymous_even_when_valid() {
    let (app, good) = app_with_alice(Mode::Cookie).await;
    let strict = start_with(Mode::Cookie, Backend::Sqlite, |c| {
        c.max_cookie_len(good.len() - 1)
    })
    .await
    .unwrap();
    let cookie = hv(&format!("sessionid={good}"));
    let (status, body) = get_with(&strict, "/whoami", std::slice::from_ref(&cookie)).await;
    assert_eq!(status, 200);
    assert!(is_anonymous(&body), "{body}");
    let (_, body) = get_with(&app, "/whoami", &[cookie]).await;
    assert!(body.starts_with("user:1|"), "{body}");
}

async fn stuff(session: Session) -> Result<&'static str, SessionError> {
    // Letters that do not compress away: a 10 KB value, far over 4 KiB signed.
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let blob: String = (0..10_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'a' + (x % 26) as u8)
        })
        .collect();
    session.insert("blob", blob).await?;
    Ok("stuffed")
}

/// Signed-cookie mode: a session that grows past the cookie limit (4 KiB by
/// default) cannot be kept in a cookie: the response is a 500 with a fixed
/// message, and no cookie is set (nothing half-written).
#[tokio::test]
async fn signed_cookie_session_grown_past_the_cookie_limit_is_a_500_that_saves_nothing() {
    let ring = RingHandle::new(ring_a());
    let app = Router::new()
        .route("/stuff", get(stuff))
        .layer(SessionLayer::signed_cookie(ring).insecure_http());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let r = reqwest::get(format!("http://{addr}/stuff")).await.unwrap();
    assert_eq!(r.status(), 500);
    assert!(r.headers().get("set-cookie").is_none());
    let body = r.text().await.unwrap();
    assert!(body.contains("too large to keep in a cookie"), "{body}");
    assert!(!body.contains("blob"), "{body}");
    server.abort();
}

/// Store URLs keyroll does not understand, and table names that are not
/// plain identifiers, are refused before anything is opened; the error keeps
/// at most 20 characters of the scheme and never the rest (it may hold a
/// password).
#[tokio::test]
async fn unusable_store_urls_and_table_names_are_refused_without_echoing_them() {
    use keyroll_store::{open_store, StoreError, StoreOptions};
    let opts = StoreOptions::default();
    for url in [
        "",
        "memory:",
        "mssql://root:hunter2@db/x",
        "hunter2",
        "sqlite://",
        "SQLITE://x.db",
        " postgres://u:hunter2@h/db",
        "redis//u:hunter2@h",
        "ééééééééééééééééééééééééééééé://u:hunter2@h",
        "\0://hunter2",
    ] {
        let e = open_store(url, &opts).await.expect_err(url);
        assert!(
            matches!(e, StoreError::BadUrl(ref s) if s.chars().count() <= 20),
            "{url:?}: {e}"
        );
        assert!(!e.to_string().contains("hunter2"), "{url:?}: {e}");
    }
    for table in [
        "",
        "1abc",
        "a b",
        "t;DROP TABLE x",
        "\"t\"",
        &"t".repeat(64),
        "tä",
    ] {
        let bad = StoreOptions {
            table: table.to_owned(),
            ..StoreOptions::default()
        };
        let e = open_store("memory://", &bad).await.expect_err(table);
        assert!(matches!(e, StoreError::BadTableName(_)), "{table:?}: {e}");
    }
    assert!(open_store("memory://", &opts).await.is_ok());
}
