//! Store URLs and the store's small parsers: `open_store` (parse only: the
//! fuzz build has no backend features, so nothing is ever connected to),
//! table names, session keys and key-range splitting.
//!
//! Input: `TABLE\nURL` (or just `URL`, with the default table); the first
//! byte also picks how many ranges to split the key space into.
//!
//! Asserts: only `memory://` with a valid table opens; a refused table is
//! `BadTableName` with that name; a known scheme without its feature is
//! `FeatureMissing`; anything else is `BadUrl` holding at most 20 characters
//! of the scheme and nothing after `://` (a URL may hold a password);
//! `is_valid_session_key` agrees with its spec; every valid key lies in
//! exactly one range of `KeyRange::split(n)`.
#![no_main]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use keyroll_store::{
    check_table_name, is_valid_session_key, open_store, KeyRange, StoreError, StoreOptions,
    DEFAULT_TABLE,
};
use libfuzzer_sys::fuzz_target;

/// Polls a future that never waits (no backend is compiled in) to its end.
fn ready<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    match f.as_mut().poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("open_store waited, but no backend is compiled in"),
    }
}

fn known(url: &str) -> Option<&'static str> {
    if url.starts_with("sqlite://") && url.len() > "sqlite://".len() {
        Some("sqlite")
    } else if url.starts_with("postgres://")
        || url.starts_with("postgresql://")
        || url.starts_with("pgsql://")
    {
        Some("postgres")
    } else if url.starts_with("redis://") || url.starts_with("rediss://") {
        Some("redis")
    } else if url.starts_with("mysql://")
        || url.starts_with("mysql2://")
        || url.starts_with("mariadb://")
    {
        Some("mysql")
    } else {
        None
    }
}

fn table_ok(t: &str) -> bool {
    let b = t.as_bytes();
    (1..=63).contains(&b.len())
        && !b[0].is_ascii_digit()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (table, url) = text.split_once('\n').unwrap_or((DEFAULT_TABLE, text));
    assert_eq!(
        check_table_name(table).is_ok(),
        table_ok(table),
        "{table:?}"
    );

    let opts = StoreOptions {
        table: table.to_owned(),
        ..StoreOptions::default()
    };
    match ready(open_store(url, &opts)) {
        Ok(store) => {
            assert!(table_ok(table));
            assert_eq!(url, "memory://");
            assert_eq!(store.backend(), "memory");
        }
        Err(StoreError::BadTableName(name)) => {
            assert!(!table_ok(table));
            assert_eq!(name, table);
        }
        Err(StoreError::FeatureMissing(feature)) => {
            assert!(table_ok(table));
            assert_eq!(Some(feature), known(url), "{url:?}");
        }
        Err(e @ StoreError::BadUrl(_)) => {
            assert!(table_ok(table));
            assert!(url != "memory://" && known(url).is_none(), "{url:?}");
            let StoreError::BadUrl(scheme) = &e else {
                unreachable!()
            };
            let want: String = url
                .split_once("://")
                .map_or("", |(s, _)| s)
                .chars()
                .take(20)
                .collect();
            assert_eq!(scheme, &want);
            // Nothing after "://" is kept: the message is the fixed text
            // around the (truncated) scheme.
            let shown = e.to_string();
            let fixed = format!(
                "unsupported store URL (scheme {want:?}): use sqlite://path, postgres://…, mysql://… or redis://…"
            );
            assert_eq!(shown, fixed);
        }
        Err(e) => panic!("unexpected error for {url:?}: {e}"),
    }

    let key_ok = (8..=40).contains(&url.len())
        && url.bytes().all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9'));
    assert_eq!(is_valid_session_key(url), key_ok, "{url:?}");
    let n = usize::from(data.first().copied().unwrap_or(0));
    let ranges = KeyRange::split(n);
    assert!(!ranges.is_empty() && ranges.len() <= 36.max(n.max(1)));
    if key_ok {
        let holding = ranges.iter().filter(|r| r.contains(url)).count();
        assert_eq!(holding, 1, "{url:?} in {n} ranges");
    }
});
