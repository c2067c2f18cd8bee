//! Fault drills (issue 5): the store going away under a running app, a ring
//! file replaced by a broken one, and the clock passing a fallback key's
//! `retire_after` under load. docs/fault-drills.md lists each drill and
//! what keyroll answers.
//!
//! PostgreSQL and Redis drills put a TCP proxy ([`proxy::Proxy`]) between
//! the app and the real server and cut or stall it; the shared servers are
//! never stopped. Every drill runs on a current-thread runtime so that the
//! log capture ([`logs::capture`]) sees the app's events, and under a
//! deadline so a hang fails instead of blocking CI.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "faults/app.rs"]
mod app;
mod common;
#[path = "faults/logs.rs"]
mod logs;
#[path = "faults/proxy.rs"]
mod proxy;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use app::{net_store, serve, with_params, Net, NetStore};
use axum::http::StatusCode;
use common::{id_a, ring_a, Browser};
use keyroll::SessionCodec;
use keyroll_axum::{RingHandle, SessionLayer};
use keyroll_store::{open_store, SessionEngine, StoreError, StoreOptions};
use time::OffsetDateTime;
use tracing::Level;

/// The timeouts the store drills give the app's store URL (seconds).
const TIMEOUTS: &str = "connect_timeout=1&pool_timeout=1&query_timeout=1";
/// The longest a request may take while the store is gone: one connect
/// plus one query timeout, and scheduling slack.
const BOUND: Duration = Duration::from_millis(3500);
/// What the client reads when the store failed.
const STORE_DOWN: &str = "the session store is unavailable; nothing was saved";

/// Runs a drill under a deadline.
async fn deadline<F: Future<Output = ()>>(secs: u64, drill: F) {
    if tokio::time::timeout(Duration::from_secs(secs), drill)
        .await
        .is_err()
    {
        panic!("the drill did not finish within {secs} s: something hangs");
    }
}

/// A GET that also measures how long it took.
async fn timed_get(b: &Browser, path: &str) -> (StatusCode, String, Duration) {
    let t = Instant::now();
    let (status, body) = b.get(path).await;
    (status, body, t.elapsed())
}

/// Server-mode app over `ns`'s store, ring {A}.
async fn server_app(ns: &NetStore) -> app::App {
    let ring = RingHandle::new(ring_a());
    let engine = Arc::new(SessionEngine::new(Arc::clone(&ns.store), &ring.current()));
    let layer = SessionLayer::server(engine, ring.clone()).insecure_http();
    serve(layer, ring).await
}

fn assert_store_down(status: StatusCode, body: &str, took: Duration, what: &str) {
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{what}: {body}");
    assert!(body.contains(STORE_DOWN), "{what}: {body}");
    assert!(took < BOUND, "{what}: took {took:?} with the store gone");
}

// ------------------------------------------------------------------ store

/// Opening a store on a port nothing listens on: a `StoreError::Backend`
/// of that backend, at once, never echoing the password; on a port that
/// accepts but never answers: the same, after `connect_timeout`.
async fn dead_port_from_the_start(net: Net) {
    // Only to learn the real server's address (and skip when there is none).
    let Some(ns) = net_store(net, "").await else {
        return;
    };
    let free = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = match net {
        Net::Postgres => format!("postgres://keyroll:hunter2@127.0.0.1:{free}/test"),
        Net::Redis => format!("redis://:hunter2@127.0.0.1:{free}"),
    };
    let opts = StoreOptions::default();
    let t = Instant::now();
    let e = open_store(&with_params(&url, "connect_timeout=2"), &opts)
        .await
        .unwrap_err();
    let took = t.elapsed();
    let text = e.to_string();
    eprintln!("{}: nothing listening: {text} ({took:?})", net.name());
    match &e {
        StoreError::Backend { backend, message } => {
            assert_eq!(*backend, net.name());
            assert!(
                message.to_lowercase().contains("refused"),
                "says why: {message}"
            );
        }
        other => panic!("not a backend error: {other:?}"),
    }
    assert!(!text.contains("hunter2"), "{text}");
    assert!(took < Duration::from_secs(2), "refused at once: {took:?}");

    // A port that accepts and then says nothing (a stalled proxy in front of the real server).
    ns.proxy.stall();
    let (silent, _) = proxy::through(&ns.direct_url, ns.proxy.port()).await;
    let t = Instant::now();
    let e = open_store(&with_params(&silent, "connect_timeout=1"), &ns.opts)
        .await
        .unwrap_err();
    let took = t.elapsed();
    eprintln!("{}: silent server: {e} ({took:?})", net.name());
    assert!(
        matches!(&e, StoreError::Backend { backend, message }
            if *backend == net.name() && message.contains("connect_timeout")),
        "{e:?}"
    );
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(2500),
        "bounded by connect_timeout=1: {took:?}"
    );
    // And a bad timeout value is refused by name.
    let e = open_store(&with_params(&url, "query_timeout=forever"), &opts)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("query_timeout"), "{e}");
    assert!(!e.to_string().contains("hunter2"), "{e}");
}

/// The store dies between two requests: requests that need a session get
/// a 500 with a clear message, at once, logged with the reason; requests
/// that do not are served; the session is intact; once the store is back
/// the same client's session works again (the pool reconnects).
async fn store_dies_between_requests(net: Net) {
    let (logs, _guard) = logs::capture();
    let Some(ns) = net_store(net, TIMEOUTS).await else {
        return;
    };
    let app = server_app(&ns).await;
    let alice = app.browser();
    assert_eq!(alice.post("/login/1").await, (StatusCode::OK, "ok".into()));
    assert_eq!(alice.get("/visit").await, (StatusCode::OK, "1".into()));
    let key = alice.cookie("sessionid").unwrap();
    let before = ns.row(&key).await.unwrap();
    let accepted = ns.proxy.accepted();

    ns.proxy.cut();
    let from = logs.len();
    for round in 0..3 {
        let (status, body, took) = timed_get(&alice, "/visit").await;
        assert_store_down(status, &body, took, &format!("visit {round}"));
        let (status, body, took) = timed_get(&alice, "/whoami").await;
        assert_store_down(status, &body, took, &format!("whoami {round}"));
    }
    // A stranger with no session, and a page that does not use the session.
    let bob = app.browser();
    assert_eq!(bob.get("/plain").await, (StatusCode::OK, "plain".into()));
    let (status, body, took) = timed_get(&bob, "/visit").await;
    assert_store_down(status, &body, took, "new session");
    let errors = logs.since(from, Level::ERROR);
    let needle = format!("session store failed: {}:", net.name());
    assert!(
        errors.len() >= 7 && errors.iter().all(|l| l.contains(&needle)),
        "each failure logged with its reason: {errors:#?}"
    );
    assert!(errors.iter().all(|l| !l.contains("hunter2")), "{errors:#?}");
    // Nothing was written meanwhile.
    assert_eq!(ns.row(&key).await, Some(before.clone()));
    assert_eq!(ns.rows().await.len(), 1);

    ns.proxy.restore();
    // The very first request after the store is back works, for the same client.
    assert_eq!(alice.get("/visit").await, (StatusCode::OK, "2".into()));
    let (status, body) = alice.get("/whoami").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.starts_with("user:1|"), "still logged in: {body}");
    assert_eq!(bob.get("/visit").await, (StatusCode::OK, "1".into()));
    assert!(ns.proxy.accepted() > accepted, "the store reconnected");
    assert_eq!(alice.cookie("sessionid").unwrap(), key, "same session");
}

/// The connection is cut while a request stands between its handler and
/// its save: the save fails with a 500, the stored row is the old one, and
/// the next request after the store is back continues from it.
async fn store_dies_during_a_save(net: Net) {
    let (logs, _guard) = logs::capture();
    let Some(ns) = net_store(net, TIMEOUTS).await else {
        return;
    };
    let app = server_app(&ns).await;
    let alice = app.browser();
    assert_eq!(alice.get("/visit").await, (StatusCode::OK, "1".into()));
    let key = alice.cookie("sessionid").unwrap();
    let before = ns.row(&key).await.unwrap();

    let from = logs.len();
    let held = {
        let b = Browser {
            client: alice.client.clone(),
            jar: Arc::clone(&alice.jar),
            base: alice.base.clone(),
        };
        tokio::spawn(async move { timed_get(&b, "/gated/visit").await })
    };
    app.gate.reached().await;
    ns.proxy.cut();
    app.gate.release();
    let (status, body, took) = held.await.unwrap();
    assert_store_down(status, &body, took, "save after the cut");
    assert!(
        logs.wait_for(
            from,
            Level::ERROR,
            "session store failed",
            Duration::from_secs(1)
        )
        .await
        .is_some(),
        "{:#?}",
        logs.lines()
    );
    assert_eq!(ns.row(&key).await, Some(before.clone()), "old row intact");

    ns.proxy.restore();
    assert_eq!(ns.row(&key).await, Some(before), "still the old row");
    assert_eq!(alice.get("/visit").await, (StatusCode::OK, "2".into()));
}

/// The network path goes silent during a save (packets vanish, nothing is
/// closed): the request fails after `query_timeout`, not later; a request
/// for a new session fails after `connect_timeout`/`pool_timeout`. When
/// the path comes back the statement that was in flight may still land:
/// the row is then the old one or the new one, whole and signed by the
/// primary, never anything else; the service resumes.
async fn store_stalls_during_a_save(net: Net) {
    let (logs, _guard) = logs::capture();
    let Some(ns) = net_store(net, TIMEOUTS).await else {
        return;
    };
    let app = server_app(&ns).await;
    let alice = app.browser();
    assert_eq!(alice.get("/visit").await, (StatusCode::OK, "1".into()));
    let key = alice.cookie("sessionid").unwrap();
    let before = ns.row(&key).await.unwrap();

    let from = logs.len();
    let held = {
        let b = Browser {
            client: alice.client.clone(),
            jar: Arc::clone(&alice.jar),
            base: alice.base.clone(),
        };
        tokio::spawn(async move { timed_get(&b, "/gated/visit").await })
    };
    app.gate.reached().await;
    ns.proxy.stall();
    app.gate.release();
    let (status, body, took) = held.await.unwrap();
    assert_store_down(status, &body, took, "save into a silent network");
    assert!(
        took >= Duration::from_millis(900),
        "it waited for the query timeout: {took:?}"
    );
    let bob = app.browser();
    let (status, body, took) = timed_get(&bob, "/visit").await;
    assert_store_down(status, &body, took, "new session, silent network");
    let errors = logs.since(from, Level::ERROR);
    assert!(
        errors.len() >= 2 && errors.iter().all(|l| l.contains("timed out")),
        "logged as timeouts: {errors:#?}"
    );

    ns.proxy.restore();
    // Old or new, whole, under the primary.
    let codec = SessionCodec::database(&ring_a());
    let now = OffsetDateTime::now_utc();
    let after = ns.row(&key).await.unwrap();
    let v = codec.decode_at(&after.data, now).unwrap();
    let visits = v.value["visits"].as_u64().unwrap();
    assert!(
        after == before || visits == 2,
        "the row is the old one or the new one: {visits}"
    );
    assert_eq!(v.key_id.to_string(), id_a());
    let (status, body) = alice.get("/visit").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, (visits + 1).to_string());
    assert_eq!(bob.get("/visit").await, (StatusCode::OK, "1".into()));
}

/// A login (new session key: the new row is written, then the old one
/// deleted) cut before its save: the login fails with a 500, the old
/// session row is intact and still the client's session (anonymous, its
/// data kept); the login works once the store is back and the old row goes.
async fn login_interrupted(net: Net) {
    let (_logs, _guard) = logs::capture();
    let Some(ns) = net_store(net, TIMEOUTS).await else {
        return;
    };
    let app = server_app(&ns).await;
    let alice = app.browser();
    assert_eq!(alice.get("/visit").await, (StatusCode::OK, "1".into()));
    let old = alice.cookie("sessionid").unwrap();
    let before = ns.row(&old).await.unwrap();

    let held = {
        let b = Browser {
            client: alice.client.clone(),
            jar: Arc::clone(&alice.jar),
            base: alice.base.clone(),
        };
        tokio::spawn(async move {
            let t = Instant::now();
            let (s, body) = b.post("/gated/login/1").await;
            (s, body, t.elapsed())
        })
    };
    app.gate.reached().await;
    ns.proxy.cut();
    app.gate.release();
    let (status, body, took) = held.await.unwrap();
    assert_store_down(status, &body, took, "login");
    assert_eq!(alice.cookie("sessionid").unwrap(), old, "no new cookie");
    assert_eq!(ns.rows().await, vec![before.clone()], "only the old row");

    ns.proxy.restore();
    let (status, body) = alice.get("/whoami").await;
    assert_eq!(
        (status, body.as_str()),
        (
            StatusCode::OK,
            format!("anonymous|{}|primary", id_a()).as_str()
        ),
        "not logged in, and the session still verifies"
    );
    assert_eq!(alice.get("/visit").await, (StatusCode::OK, "2".into()));
    assert_eq!(alice.post("/login/1").await, (StatusCode::OK, "ok".into()));
    let (_, body) = alice.get("/whoami").await;
    assert!(body.starts_with("user:1|"), "{body}");
    assert_ne!(alice.cookie("sessionid").unwrap(), old);
    assert_eq!(ns.row(&old).await, None, "the old row is gone");
}

/// Clients hammer the app while the store is cut and restored twice:
/// every answer is a 200 or the 500 with the store message, each within
/// the bound; no panic, no other status; every client's counter only goes
/// up and continues after the store is back.
async fn in_flight_drill(net: Net) {
    let (_logs, _guard) = logs::capture();
    let Some(ns) = net_store(net, TIMEOUTS).await else {
        return;
    };
    let app = server_app(&ns).await;
    let browsers: Vec<Browser> = (0..6).map(|_| app.browser()).collect();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for b in browsers {
        let stop = Arc::clone(&stop);
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut failed, mut last) = (0u32, 0u32, 0u64);
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let (status, body, took) = timed_get(&b, "/visit").await;
                if status == StatusCode::OK {
                    let n: u64 = body.parse().unwrap();
                    assert!(n > last, "the counter went from {last} to {n}");
                    last = n;
                    ok += 1;
                } else {
                    assert_store_down(status, &body, took, "under load");
                    failed += 1;
                }
            }
            // After the store is back: the same session continues.
            let (status, body) = b.get("/visit").await;
            assert_eq!(status, StatusCode::OK, "{body}");
            assert!(body.parse::<u64>().unwrap() > last);
            (ok, failed)
        }));
    }
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        ns.proxy.cut();
        tokio::time::sleep(Duration::from_millis(300)).await;
        ns.proxy.restore();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (mut ok, mut failed) = (0, 0);
    for t in tasks {
        let (o, f) = t.await.unwrap();
        ok += o;
        failed += f;
    }
    eprintln!("{}: {ok} served, {failed} refused", net.name());
    assert!(ok > 0 && failed > 0, "{ok} served, {failed} refused");
    // Every row left verifies under the primary.
    let codec = SessionCodec::database(&ring_a());
    let now = OffsetDateTime::now_utc();
    for r in ns.rows().await {
        codec.decode_at(&r.data, now).unwrap();
    }
}

macro_rules! store_drills {
    ($($name:ident: $net:expr;)*) => {$(
        mod $name {
            use super::*;
            #[tokio::test]
            async fn dead_port_from_the_start_is_a_typed_error() {
                deadline(20, dead_port_from_the_start($net)).await;
            }
            #[tokio::test]
            async fn store_dies_between_requests_then_comes_back() {
                deadline(30, store_dies_between_requests($net)).await;
            }
            #[tokio::test]
            async fn store_dies_during_a_save_old_row_intact() {
                deadline(30, store_dies_during_a_save($net)).await;
            }
            #[tokio::test]
            async fn store_stalls_during_a_save_bounded_wait() {
                deadline(30, store_stalls_during_a_save($net)).await;
            }
            #[tokio::test]
            async fn login_interrupted_keeps_the_old_session() {
                deadline(30, login_interrupted($net)).await;
            }
            #[tokio::test]
            async fn in_flight_requests_when_the_store_dies() {
                deadline(40, in_flight_drill($net)).await;
            }
        }
    )*};
}

store_drills! {
    postgres: Net::Postgres;
    redis: Net::Redis;
}
