//! Fault drills: the store going away under a running app, a ring
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

/// Sends `alice`'s request to the gated `path` (GET, or POST when `post`),
/// holds it between its handler and its save, does `brk` to the network,
/// lets it go on, and returns its answer and how long it took.
async fn held_through(
    app: &app::App,
    alice: &Browser,
    post: bool,
    path: &'static str,
    brk: impl FnOnce(),
) -> (StatusCode, String, Duration) {
    let held = {
        let b = alice.clone();
        tokio::spawn(async move {
            let t = Instant::now();
            let (s, body) = if post {
                b.post(path).await
            } else {
                b.get(path).await
            };
            (s, body, t.elapsed())
        })
    };
    app.gate.reached().await;
    brk();
    app.gate.release();
    held.await.unwrap()
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

/// Opening a store on a port nothing listens on: a `StoreError::Unavailable`
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
        StoreError::Unavailable { backend, message } => {
            assert_eq!(*backend, net.name());
            assert!(
                message.to_lowercase().contains("refused"),
                "says why: {message}"
            );
        }
        other => panic!("not an unavailable store: {other:?}"),
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
        matches!(&e, StoreError::Unavailable { backend, message }
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
    let (status, body, took) =
        held_through(&app, &alice, false, "/gated/visit", || ns.proxy.cut()).await;
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
    let (status, body, took) =
        held_through(&app, &alice, false, "/gated/visit", || ns.proxy.stall()).await;
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

    let (status, body, took) =
        held_through(&app, &alice, true, "/gated/login/1", || ns.proxy.cut()).await;
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

/// The app's store, cutting the network the instant a `create` has
/// succeeded (once armed): the real server, cut at an exact point.
struct CutAfterCreate {
    inner: Arc<dyn keyroll_store::Store>,
    armed: std::sync::atomic::AtomicBool,
    cut: Box<dyn Fn() + Send + Sync>,
}

impl std::fmt::Debug for CutAfterCreate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CutAfterCreate")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl keyroll_store::Store for CutAfterCreate {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
    async fn ensure_schema(&self) -> Result<(), StoreError> {
        self.inner.ensure_schema().await
    }
    async fn load(
        &self,
        key: &str,
        now: OffsetDateTime,
    ) -> Result<Option<keyroll_store::SessionRecord>, StoreError> {
        self.inner.load(key, now).await
    }
    async fn create(&self, data: &str, expires: OffsetDateTime) -> Result<String, StoreError> {
        let key = self.inner.create(data, expires).await?;
        if self.armed.swap(false, std::sync::atomic::Ordering::SeqCst) {
            (self.cut)();
        }
        Ok(key)
    }
    async fn save(&self, record: &keyroll_store::SessionRecord) -> Result<(), StoreError> {
        self.inner.save(record).await
    }
    async fn update(&self, record: &keyroll_store::SessionRecord) -> Result<bool, StoreError> {
        self.inner.update(record).await
    }
    async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        self.inner.delete(key).await
    }
    async fn compare_and_swap(
        &self,
        key: &str,
        expected: &str,
        new: &str,
    ) -> Result<bool, StoreError> {
        self.inner.compare_and_swap(key, expected, new).await
    }
    async fn scan(
        &self,
        range: &keyroll_store::KeyRange,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<keyroll_store::SessionRecord>, StoreError> {
        self.inner.scan(range, after, limit).await
    }
    async fn purge_expired_batch(
        &self,
        now: OffsetDateTime,
        from: &keyroll_store::PurgeFrom,
        limit: usize,
    ) -> Result<keyroll_store::Purged, StoreError> {
        self.inner.purge_expired_batch(now, from, limit).await
    }
}

/// A login whose new session row is written and then the store dies
/// before the old row is deleted: a 500 without the new cookie; the old
/// row is intact and still the client's (anonymous) session; the new row
/// is an orphan nobody holds the key of. Once the store is back the client
/// logs in normally.
async fn login_cut_between_create_and_delete(net: Net) {
    let (_logs, _guard) = logs::capture();
    let Some(ns) = net_store(net, TIMEOUTS).await else {
        return;
    };
    let store = Arc::new(CutAfterCreate {
        inner: Arc::clone(&ns.store),
        armed: std::sync::atomic::AtomicBool::new(false),
        cut: Box::new(ns.proxy.cutter()),
    });
    let ring = RingHandle::new(ring_a());
    let engine = Arc::new(SessionEngine::new(
        Arc::clone(&store) as Arc<dyn keyroll_store::Store>,
        &ring.current(),
    ));
    let app = serve(
        SessionLayer::server(engine, ring.clone()).insecure_http(),
        ring,
    )
    .await;
    let alice = app.browser();
    assert_eq!(alice.get("/visit").await, (StatusCode::OK, "1".into()));
    let old = alice.cookie("sessionid").unwrap();
    let before = ns.row(&old).await.unwrap();

    store.armed.store(true, std::sync::atomic::Ordering::SeqCst);
    let t = Instant::now();
    let (status, body) = alice.post("/login/1").await;
    assert_store_down(status, &body, t.elapsed(), "login, old row not deleted");
    assert_eq!(alice.cookie("sessionid").unwrap(), old, "no new cookie");
    let rows = ns.rows().await;
    assert_eq!(rows.len(), 2, "the old row and the orphan");
    assert!(rows.contains(&before), "the old row is intact");
    let orphan = rows.iter().find(|r| r.key != old).unwrap();
    let v = SessionCodec::database(&ring_a())
        .decode_at(&orphan.data, OffsetDateTime::now_utc())
        .unwrap();
    assert_eq!(v.value["_auth_user_id"], "1", "the orphan is the login");

    ns.proxy.restore();
    let (status, body) = alice.get("/whoami").await;
    assert_eq!(
        (status, body.as_str()),
        (
            StatusCode::OK,
            format!("anonymous|{}|primary", id_a()).as_str()
        )
    );
    assert_eq!(alice.get("/visit").await, (StatusCode::OK, "2".into()));
    assert_eq!(alice.post("/login/1").await, (StatusCode::OK, "ok".into()));
    let (_, body) = alice.get("/whoami").await;
    assert!(body.starts_with("user:1|"), "{body}");
    assert_eq!(ns.row(&old).await, None, "the old row is gone now");
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
            async fn login_cut_between_create_and_delete_keeps_the_old_session() {
                deadline(30, login_cut_between_create_and_delete($net)).await;
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

// ------------------------------------------------------------------ ring file

const SECRET_C: &str = "test-secret-C-0123456789abcdefghijklmnopqrstuvwxyz";

/// Replaces `path` atomically (write a temporary file, rename it over) with `mode`.
fn replace_file(path: &std::path::Path, text: &[u8], mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode)).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn inline_key(role: &str, secret: &str) -> String {
    format!("[[keys]]\nrole = \"{role}\"\nsecret = \"{secret}\"\n\n")
}

/// The key id that signed the browser's session now (the stored row in
/// server mode, the cookie itself in signed-cookie mode), checked against
/// `ring` alone; `None` when it does not verify under it.
async fn signed_by(
    store: Option<&Arc<dyn keyroll_store::Store>>,
    b: &Browser,
    ring: &keyroll::KeyRing,
    now: OffsetDateTime,
) -> Option<String> {
    let cookie = b.cookie("sessionid")?;
    let v = match store {
        Some(store) => {
            let row = store.load(&cookie, now).await.unwrap()?;
            SessionCodec::database(ring)
                .decode_at(&row.data, now)
                .ok()?
        }
        None => SessionCodec::signed_cookie(ring, keyroll::DEFAULT_SESSION_COOKIE_AGE)
            .decode_at(&cookie, now)
            .ok()?,
    };
    Some(v.key_id.to_string())
}

/// A running app whose ring file is replaced by broken ones: garbage, a
/// valid file readable by others (mode 0644), a file without a primary, a
/// `secret_file` that does not exist, an empty file. Each time the running
/// ring stays (existing and new sessions keep verifying and are signed by
/// the old primary, never by the broken file's keys), the watcher and
/// `reload_from_file` log the error with its reason (and no secret), and a
/// later good file is picked up.
async fn broken_ring_file(server: bool) {
    use keyroll::ringfile::OpenOptions;
    let (logs, _guard) = logs::capture();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ring.toml");
    replace_file(
        &path,
        inline_key("primary", common::SECRET_A).as_bytes(),
        0o600,
    );
    let ring = RingHandle::open(&path, OpenOptions::default()).unwrap();
    let store = if server {
        let url = format!("sqlite://{}", dir.path().join("s.db").display());
        let s = open_store(&url, &StoreOptions::default()).await.unwrap();
        s.ensure_schema().await.unwrap();
        Some(s)
    } else {
        None
    };
    let layer = match &store {
        Some(s) => SessionLayer::server(
            Arc::new(SessionEngine::new(Arc::clone(s), &ring.current())),
            ring.clone(),
        ),
        None => SessionLayer::signed_cookie(ring.clone()),
    }
    .insecure_http();
    let app = serve(layer, ring.clone()).await;
    let watcher = ring.watch_file(&path, OpenOptions::default(), Duration::from_millis(20));
    let alice = app.browser();
    assert_eq!(alice.get("/visit").await, (StatusCode::OK, "1".into()));
    let (a, b, c) = (
        ring_a(),
        common::ring_b(),
        keyroll::KeyRing::new(keyroll::Secret::from(SECRET_C)).expect("a non-empty secret"),
    );
    let now = OffsetDateTime::now_utc;
    assert_eq!(
        signed_by(store.as_ref(), &alice, &a, now()).await,
        Some(id_a())
    );

    let broken: [(&str, Vec<u8>, u32, &str); 7] = [
        (
            "binary garbage",
            b"\x00\x01 this is [[not toml\n\xff\xfe".to_vec(),
            0o600,
            "valid UTF-8",
        ),
        (
            "text garbage",
            b"[[keys]\nrole = primary\n".to_vec(),
            0o600,
            "line 1",
        ),
        (
            "readable by others",
            inline_key("primary", SECRET_C).into_bytes(),
            0o644,
            "mode 0644",
        ),
        (
            "no primary",
            inline_key("fallback", SECRET_C).into_bytes(),
            0o600,
            "exactly one primary key, found 0",
        ),
        (
            "two primaries",
            format!(
                "{}{}",
                inline_key("primary", SECRET_C),
                inline_key("primary", common::SECRET_B)
            )
            .into_bytes(),
            0o600,
            "exactly one primary key, found 2",
        ),
        (
            "missing secret_file",
            b"[[keys]]\nrole = \"primary\"\nsecret_file = \"no-such-secret\"\n".to_vec(),
            0o600,
            "secret_file",
        ),
        (
            "empty",
            Vec::new(),
            0o600,
            "exactly one primary key, found 0",
        ),
    ];
    let mut visits = 1;
    for (what, text, mode, reason) in broken {
        let from = logs.len();
        replace_file(&path, &text, mode);
        let line = logs
            .wait_for(
                from,
                Level::ERROR,
                "key ring file not reloaded",
                Duration::from_secs(3),
            )
            .await
            .unwrap_or_else(|| panic!("{what}: the watcher logged nothing: {:#?}", logs.lines()));
        assert!(line.contains(reason), "{what}: says why ({reason}): {line}");
        let e = ring
            .reload_from_file(&path, OpenOptions::default())
            .unwrap_err();
        assert!(e.to_string().contains(reason), "{what}: {e}");
        for secret in [common::SECRET_A, common::SECRET_B, SECRET_C] {
            assert!(
                logs.lines().iter().all(|l| !l.contains(secret)),
                "{what}: a secret in the log"
            );
        }
        // The running ring stays, and signs.
        assert_eq!(ring.current().primary().id().to_string(), id_a(), "{what}");
        assert_eq!(ring.current().keys().count(), 1, "{what}");
        visits += 1;
        assert_eq!(
            alice.get("/visit").await,
            (StatusCode::OK, visits.to_string()),
            "{what}"
        );
        assert_eq!(
            signed_by(store.as_ref(), &alice, &a, now()).await,
            Some(id_a()),
            "{what}"
        );
        let newcomer = app.browser();
        assert_eq!(
            newcomer.get("/visit").await,
            (StatusCode::OK, "1".into()),
            "{what}"
        );
        assert_eq!(
            signed_by(store.as_ref(), &newcomer, &a, now()).await,
            Some(id_a()),
            "{what}: a new session is signed by the old primary"
        );
        for other in [&b, &c] {
            assert_eq!(
                signed_by(store.as_ref(), &newcomer, other, now()).await,
                None,
                "{what}"
            );
        }
        assert!(logs
            .since(from, Level::INFO)
            .iter()
            .all(|l| !l.contains("key ring reloaded")));
    }

    // A good file: B primary, A fallback. Picked up; Alice is re-signed under B.
    let from = logs.len();
    replace_file(
        &path,
        format!(
            "{}{}",
            inline_key("primary", common::SECRET_B),
            inline_key("fallback", common::SECRET_A)
        )
        .as_bytes(),
        0o600,
    );
    logs.wait_for(
        from,
        Level::INFO,
        "key ring reloaded",
        Duration::from_secs(3),
    )
    .await
    .unwrap_or_else(|| panic!("the good file was not picked up: {:#?}", logs.lines()));
    assert_eq!(ring.current().primary().id().to_string(), common::id_b());
    visits += 1;
    assert_eq!(
        alice.get("/visit").await,
        (StatusCode::OK, visits.to_string())
    );
    assert_eq!(
        signed_by(store.as_ref(), &alice, &b, now()).await,
        Some(common::id_b())
    );
    let newcomer = app.browser();
    assert_eq!(newcomer.get("/visit").await, (StatusCode::OK, "1".into()));
    assert_eq!(
        signed_by(store.as_ref(), &newcomer, &b, now()).await,
        Some(common::id_b())
    );
    assert!(
        logs.since(from, Level::ERROR).is_empty(),
        "{:#?}",
        logs.lines()
    );
    watcher.abort();
}

#[tokio::test]
async fn broken_ring_file_keeps_the_running_ring_server_mode() {
    deadline(30, broken_ring_file(true)).await;
}

#[tokio::test]
async fn broken_ring_file_keeps_the_running_ring_signed_cookie_mode() {
    deadline(30, broken_ring_file(false)).await;
}

/// A ring file refused for its mode, then fixed in place with `chmod 600`
/// (which changes neither its size nor its modification time); and one
/// whose `secret_file` was missing, then created. The watcher must pick up
/// the fixed file (the watcher stamps mode, inode and ctime, and retries a
/// failed load on every tick).
#[tokio::test]
async fn ring_file_fixed_in_place_is_picked_up() {
    use keyroll::ringfile::OpenOptions;
    use std::os::unix::fs::PermissionsExt as _;
    deadline(20, async {
        let (logs, _guard) = logs::capture();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ring.toml");
        replace_file(
            &path,
            inline_key("primary", common::SECRET_A).as_bytes(),
            0o600,
        );
        let ring = RingHandle::open(&path, OpenOptions::default()).unwrap();
        let watcher = ring.watch_file(&path, OpenOptions::default(), Duration::from_millis(20));

        let from = logs.len();
        let text = format!("# refused\n{}", inline_key("primary", common::SECRET_B));
        replace_file(&path, text.as_bytes(), 0o644);
        logs.wait_for(from, Level::ERROR, "mode 0644", Duration::from_secs(3))
            .await
            .expect("refused for its mode");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let picked = logs
            .wait_for(
                from,
                Level::INFO,
                "key ring reloaded",
                Duration::from_secs(2),
            )
            .await;
        assert!(
            picked.is_some(),
            "chmod 600 on the refused file was not picked up: {:#?}",
            logs.lines()
        );
        assert_eq!(ring.current().primary().id().to_string(), common::id_b());

        let from = logs.len();
        replace_file(
            &path,
            b"[[keys]]\nrole = \"primary\"\nsecret_file = \"late-secret\"\n",
            0o600,
        );
        logs.wait_for(from, Level::ERROR, "secret_file", Duration::from_secs(3))
            .await
            .expect("refused for its missing secret file");
        replace_file(&dir.path().join("late-secret"), SECRET_C.as_bytes(), 0o600);
        let picked = logs
            .wait_for(
                from,
                Level::INFO,
                "key ring reloaded",
                Duration::from_secs(2),
            )
            .await;
        assert!(
            picked.is_some(),
            "the secret file, created later, was not picked up: {:#?}",
            logs.lines()
        );
        watcher.abort();
    })
    .await;
}

// ------------------------------------------------------------------ clock

/// A logged-in session of user 1 signed by `secret` at `signed` (data and
/// auth hash), in a new browser: a stored row (server mode) or the cookie.
async fn seeded_session(
    app: &app::App,
    store: Option<&Arc<dyn keyroll_store::Store>>,
    secret: &str,
    signed: OffsetDateTime,
    expires: OffsetDateTime,
) -> Browser {
    let ring = keyroll::KeyRing::new(keyroll::Secret::from(secret)).expect("a non-empty secret");
    let mut data = keyroll::SessionData::new();
    data.insert(keyroll::SESSION_USER_ID.into(), "1".into());
    data.insert(keyroll::SESSION_USER_BACKEND.into(), "tests.Backend".into());
    data.insert(
        keyroll::SESSION_USER_HASH.into(),
        keyroll::SessionAuthHash::new(&ring)
            .make("sha256$salt$one")
            .into(),
    );
    let value = match store {
        Some(store) => {
            let key = keyroll_store::new_session_key();
            let row = keyroll_store::SessionRecord {
                key: key.clone(),
                data: SessionCodec::database(&ring)
                    .encode_at(&data, signed)
                    .unwrap(),
                expires,
            };
            store.save(&row).await.unwrap();
            key
        }
        None => SessionCodec::signed_cookie(&ring, keyroll::DEFAULT_SESSION_COOKIE_AGE)
            .encode_at(&data, signed)
            .unwrap(),
    };
    let b = app.browser();
    b.jar
        .add_cookie_str(&format!("sessionid={value}"), &app.base.parse().unwrap());
    b
}

/// Ring {primary B, fallback A retiring at T}, a clock the test moves.
/// Clients whose sessions A signed, B signed, or A signed and re-signed by
/// an earlier request, make requests continuously; the clock jumps to T
/// (A still verifies: `retire_after` is inclusive) and then just past it.
/// From that instant sessions only A signed are anonymous (a 200, no error
/// page); B's and the re-signed ones are unaffected; no 5xx, no error
/// logged. The real clock is an hour before T all along, so anything that
/// looked at it instead of the request's "now" would still accept A.
async fn fallback_retires_under_load(server: bool) {
    use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::SeqCst};
    let (logs, _guard) = logs::capture();
    let real = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let t = real + time::Duration::hours(1);
    let nanos = |at: OffsetDateTime| i64::try_from(at.unix_timestamp_nanos()).unwrap();
    let clock_ns = Arc::new(AtomicI64::new(nanos(t - time::Duration::minutes(10))));
    let clock = {
        let c = Arc::clone(&clock_ns);
        keyroll_axum::Clock::from_fn(move || {
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(c.load(SeqCst))).unwrap()
        })
    };
    let ring = RingHandle::new(
        keyroll::KeyRing::new(keyroll::Secret::from(common::SECRET_B))
            .expect("a non-empty secret")
            .with_fallback(keyroll::Secret::from(common::SECRET_A), Some(t))
            .unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let store = if server {
        let url = format!("sqlite://{}", dir.path().join("s.db").display());
        let s = open_store(&url, &StoreOptions::default()).await.unwrap();
        s.ensure_schema().await.unwrap();
        Some(s)
    } else {
        None
    };
    let layer = match &store {
        Some(s) => SessionLayer::server(
            Arc::new(SessionEngine::new(Arc::clone(s), &ring.current())),
            ring.clone(),
        ),
        None => SessionLayer::signed_cookie(ring.clone()),
    }
    .with_config(
        keyroll_axum::SessionConfig::new()
            .insecure_http()
            .clock(clock),
    );
    let app = serve(layer, ring.clone()).await;
    let signed = t - time::Duration::hours(2);
    let expires = t + time::Duration::days(14);
    let (a, b) = (common::SECRET_A, common::SECRET_B);
    let (id_a, id_b) = (id_a(), common::id_b());
    let mut a_idle = Vec::new();
    let mut a_early = Vec::new();
    let mut b_users = Vec::new();
    for _ in 0..3 {
        a_idle.push(seeded_session(&app, store.as_ref(), a, signed, expires).await);
        a_early.push(seeded_session(&app, store.as_ref(), a, signed, expires).await);
        b_users.push(seeded_session(&app, store.as_ref(), b, signed, expires).await);
    }
    let a_at_t = seeded_session(&app, store.as_ref(), a, signed, expires).await;

    // Before T: A's sessions verify (as a fallback) and are re-signed by B.
    for c in &a_early {
        assert_eq!(
            c.get("/whoami").await,
            (StatusCode::OK, format!("user:1|{id_a}|fallback"))
        );
        let now = OffsetDateTime::now_utc();
        assert_eq!(
            signed_by(store.as_ref(), c, &common::ring_b(), now).await,
            Some(id_b.clone())
        );
    }

    // Load: the re-signed and B's clients, continuously, across the jump.
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for c in a_early.into_iter().chain(b_users) {
        let (stop, served, want) = (
            Arc::clone(&stop),
            Arc::clone(&served),
            format!("user:1|{id_b}|primary"),
        );
        tasks.push(tokio::spawn(async move {
            while !stop.load(SeqCst) {
                let (status, body) = c.get("/whoami").await;
                assert_eq!((status, body.as_str()), (StatusCode::OK, want.as_str()));
                served.fetch_add(1, SeqCst);
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    // At T exactly, A still verifies.
    clock_ns.store(nanos(t), SeqCst);
    assert_eq!(
        a_at_t.get("/whoami").await,
        (StatusCode::OK, format!("user:1|{id_a}|fallback"))
    );
    tokio::time::sleep(Duration::from_millis(150)).await;
    // One nanosecond later, it does not.
    clock_ns.store(nanos(t) + 1, SeqCst);
    let before_jump = served.load(SeqCst);
    for c in &a_idle {
        for _ in 0..2 {
            assert_eq!(
                c.get("/whoami").await,
                (StatusCode::OK, "anonymous|none|none".into()),
                "a session only A signed is anonymous after T"
            );
        }
    }
    assert_eq!(
        a_at_t.get("/whoami").await,
        (StatusCode::OK, format!("user:1|{id_b}|primary")),
        "re-signed at T: stays"
    );
    // A new session after T is B's.
    let newcomer = app.browser();
    assert_eq!(
        newcomer.post("/login/2").await,
        (StatusCode::OK, "ok".into())
    );
    let (_, body) = newcomer.get("/whoami").await;
    assert_eq!(body, format!("user:2|{id_b}|primary"));
    tokio::time::sleep(Duration::from_millis(150)).await;
    stop.store(true, SeqCst);
    for task in tasks {
        task.await.unwrap();
    }
    let total = served.load(SeqCst);
    eprintln!("served {total} requests under load ({before_jump} before the jump)");
    assert!(
        total > before_jump && before_jump > 0,
        "load ran on both sides of T"
    );
    let errors = logs.at(Level::ERROR);
    assert!(errors.is_empty(), "nothing logged as an error: {errors:#?}");
}

#[tokio::test]
async fn fallback_retires_under_load_server_mode() {
    deadline(30, fallback_retires_under_load(true)).await;
}

#[tokio::test]
async fn fallback_retires_under_load_signed_cookie_mode() {
    deadline(30, fallback_retires_under_load(false)).await;
}
