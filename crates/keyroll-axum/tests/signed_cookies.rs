//! `SignedCookies`: values that cannot inject attributes, re-issued cookies
//! that keep every configured attribute, and the legacy-salt switch.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::time::Duration;

use axum::http::{header, HeaderMap, HeaderValue};
use common::{id_a, ring_a, ring_b_fallback_a};
use keyroll::{CookieSaltForm, SignedCookie};
use keyroll_axum::{CookieError, RingHandle, SameSite, SignedCookies};
use time::OffsetDateTime;

/// The `Cookie` header a browser sends back for this `Set-Cookie`: the
/// `name=value` pair before the first `;`, byte for byte.
fn request_with(set_cookie: &str) -> HeaderMap {
    let pair = set_cookie.split(';').next().unwrap();
    let mut h = HeaderMap::new();
    h.insert(header::COOKIE, HeaderValue::from_str(pair).unwrap());
    h
}

fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_790_000_000).unwrap()
}

#[test]
fn a_signed_cookie_value_cannot_inject_cookie_attributes() {
    let cookies = SignedCookies::new(RingHandle::new(ring_a()));
    let hostile = "dark; Domain=evil.example; Path=/admin, x=\"y\"\\";
    let set = cookies.set_at("theme", hostile, "", None, now()).unwrap();
    let parsed = cookie::Cookie::parse(set.clone()).unwrap();
    assert_eq!(parsed.domain(), None, "{set}");
    assert_eq!(parsed.path(), Some("/"), "{set}");
    assert_eq!(
        set.matches(';').count(),
        4,
        "only keyroll's attributes: {set}"
    );
    // Sent back by a browser, it reads as the value that was set.
    let got = cookies
        .get_at(&request_with(&set), "theme", "", None, now())
        .expect("verifies");
    assert_eq!(got.value, hostile);
}

#[test]
fn a_signed_cookie_refuses_what_no_cookie_can_carry() {
    let cookies = SignedCookies::new(RingHandle::new(ring_a()));
    assert_eq!(
        cookies.set_at("theme", "snow \u{2603}", "", None, now()),
        Err(CookieError::IllegalValue)
    );
    for name in ["", "a;b", "a=b", "a b", "caf\u{e9}"] {
        assert_eq!(
            cookies.set_at(name, "v", "", None, now()),
            Err(CookieError::IllegalName),
            "{name:?}"
        );
    }
    // Latin-1 is fine: it is sent as octal escapes, as Django does.
    let set = cookies
        .set_at("theme", "caf\u{e9}", "", None, now())
        .unwrap();
    assert!(set.starts_with("theme=\"caf\\351:"), "{set}");
    let got = cookies.get_at(&request_with(&set), "theme", "", None, now());
    assert_eq!(got.unwrap().value, "caf\u{e9}");
}

/// A stale cookie is re-issued under the primary with every attribute the
/// helper was configured with, and its original expiry.
#[test]
fn a_reissued_signed_cookie_keeps_every_configured_attribute() {
    let ring = RingHandle::new(ring_a());
    let cookies = SignedCookies::new(ring.clone())
        .path("/app")
        .domain("example.test")
        .scripts(true, SameSite::Strict);
    let max_age = Duration::from_secs(3600);
    let set_at = now();
    let set = cookies
        .set_at("theme", "dark; x", "s", Some(max_age), set_at)
        .unwrap();
    ring.reload(ring_b_fallback_a());
    let later = set_at + time::Duration::seconds(600);
    let got = cookies
        .get_at(&request_with(&set), "theme", "s", Some(max_age), later)
        .expect("verifies under the fallback");
    assert_eq!(got.verified.key_id.to_string(), id_a());
    let reissued = got.reissue.expect("stale: re-issued");
    let c = cookie::Cookie::parse(reissued.clone()).unwrap();
    assert_eq!(c.path(), Some("/app"), "{reissued}");
    assert_eq!(c.domain(), Some("example.test"), "{reissued}");
    assert_eq!(c.secure(), Some(true), "{reissued}");
    assert_eq!(c.http_only(), Some(true), "{reissued}");
    assert_eq!(c.same_site(), Some(cookie::SameSite::Strict), "{reissued}");
    assert_eq!(
        c.max_age(),
        Some(time::Duration::seconds(3000)),
        "what was left, not a new lifetime: {reissued}"
    );
    assert_eq!(
        c.expires_datetime(),
        Some(set_at + time::Duration::seconds(3600)),
        "{reissued}"
    );
    // The re-issued value reads back as the value, under the primary now.
    let again = cookies
        .get_at(&request_with(&reissued), "theme", "s", Some(max_age), later)
        .unwrap();
    assert_eq!(again.value, "dark; x");
    assert!(again.reissue.is_none());

    // Without HttpOnly / with Lax and plain HTTP, the re-issue says so too.
    let lax = SignedCookies::new(ring.clone())
        .insecure_http()
        .scripts(false, SameSite::Lax);
    let r = lax
        .get_at(&request_with(&set), "theme", "s", Some(max_age), later)
        .unwrap()
        .reissue
        .unwrap();
    let c = cookie::Cookie::parse(r.clone()).unwrap();
    assert_eq!(
        (c.secure(), c.http_only(), c.same_site()),
        (None, None, Some(cookie::SameSite::Lax)),
        "{r}"
    );
}

#[test]
fn legacy_salt_cookies_are_refused_when_switched_off() {
    let ring = ring_a();
    let legacy = SignedCookie::new(&ring, "theme", "")
        .unwrap()
        .writing(CookieSaltForm::Legacy)
        .sign_at("dark", now());
    let mut h = HeaderMap::new();
    h.insert(
        header::COOKIE,
        HeaderValue::from_str(&format!("theme={legacy}")).unwrap(),
    );
    let handle = RingHandle::new(ring);
    let default = SignedCookies::new(handle.clone());
    let read = default.get_at(&h, "theme", "", None, now()).unwrap();
    assert_eq!(read.value, "dark");
    assert!(read.reissue.is_some(), "re-issued in the v2 form");
    let strict = SignedCookies::new(handle).refuse_legacy_salt();
    assert!(strict.get_at(&h, "theme", "", None, now()).is_none());
}

/// One `CookieAttributes` value scopes the session cookie and signed cookies
/// alike: the same attributes, written the same way.
#[test]
fn one_set_of_cookie_attributes_serves_sessions_and_signed_cookies() {
    let attrs = keyroll_axum::CookieAttributes {
        path: "/shop".into(),
        domain: Some("example.test".into()),
        secure: true,
        http_only: false,
        same_site: SameSite::Strict,
    };
    let config = keyroll_axum::SessionConfig::new().attributes(attrs.clone());
    assert_eq!(config.cookie_attributes(), &attrs);
    let cookies = SignedCookies::new(RingHandle::new(ring_a())).attributes(attrs);
    let set = cookies.set_at("theme", "dark", "", None, now()).unwrap();
    let c = cookie::Cookie::parse(set.clone()).unwrap();
    assert_eq!(
        (
            c.path(),
            c.domain(),
            c.secure(),
            c.http_only(),
            c.same_site()
        ),
        (
            Some("/shop"),
            Some("example.test"),
            Some(true),
            None,
            Some(cookie::SameSite::Strict)
        ),
        "{set}"
    );
}
