//! `http-bench-server`: one small axum app behind keyroll's `SessionLayer`,
//! behind tower-sessions, or behind no session layer, for
//! `bench/http-vs-tower-sessions`.
//!
//! ```text
//! http-bench-server --mode none|keyroll|keyroll-cookie|tower-sessions
//!                   [--store memory|sqlite] [--db PATH] [--stale]
//!                   --listen 127.0.0.1:PORT
//! ```
//!
//! Routes (the same in every mode):
//! - `GET /`: reads the string under `v` from the session and returns it
//!   (200); 404 when the session has no `v` (so a load generator counts a
//!   lost session as an error). Mode `none` returns the same string with no
//!   session at all.
//! - `GET /seed`: inserts `v` into the session (the response sets the cookie).
//! - `GET /seed-bulk?n=N` (mode `keyroll`): creates N session rows holding `v`
//!   straight through the engine, signed by the current primary, and returns
//!   their keys, one a line.
//! - `GET /rotate` (keyroll modes): reloads the ring to {primary B, fallback A}.
//! - `GET /stats` (mode `keyroll`): the engine's counters as JSON (incl. `cache_hits`:
//!   reads answered from the engine's verified-session cache).
//!
//! Keys: with `--stale` the ring starts as {primary A}, so what `/seed` and
//! `/seed-bulk` write is signed by A; after `/rotate` it is stale and every
//! read of it is a re-sign (once per row in server mode; on every request in
//! signed-cookie mode while the client keeps sending the A cookie). Without
//! `--stale` the ring is {primary B, fallback A} from the start.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use keyroll::{KeyRing, Secret, SessionData};
use keyroll_axum::{RingHandle, SessionLayer};
use keyroll_store::{open_store, MemoryStore, SessionEngine, Store, StoreOptions};
use serde::Deserialize;
use time::OffsetDateTime;

const KEY_A: &str = "bench-http-key-A-5c1f#q8m!z2x@v7n^b4k&j9h(g3f)d6s-a0p+o=i_u";
const KEY_B: &str = "bench-http-key-B-9e2d#w4r!t7y@u1i^o5p&a8s(d2f)g6h-j3k+l=z_x";
/// What `/seed` stores and `/` returns.
const VALUE: &str = "user-4242";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    None,
    Keyroll,
    KeyrollCookie,
    TowerSessions,
}

struct Args {
    mode: Mode,
    sqlite: bool,
    db: Option<String>,
    stale: bool,
    listen: SocketAddr,
}

fn usage() -> ! {
    eprintln!(
        "usage: http-bench-server --mode none|keyroll|keyroll-cookie|tower-sessions \
         [--store memory|sqlite] [--db PATH] [--stale] --listen 127.0.0.1:PORT"
    );
    std::process::exit(2)
}

fn parse_args() -> anyhow::Result<Args> {
    let mut mode = None;
    let mut sqlite = false;
    let mut db = None;
    let mut stale = false;
    let mut listen: SocketAddr = "127.0.0.1:8087".parse()?;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--mode" => {
                mode = Some(match it.next().as_deref() {
                    Some("none") => Mode::None,
                    Some("keyroll") => Mode::Keyroll,
                    Some("keyroll-cookie") => Mode::KeyrollCookie,
                    Some("tower-sessions") => Mode::TowerSessions,
                    _ => usage(),
                })
            }
            "--store" => {
                sqlite = match it.next().as_deref() {
                    Some("memory") => false,
                    Some("sqlite") => true,
                    _ => usage(),
                }
            }
            "--db" => db = Some(it.next().unwrap_or_else(|| usage())),
            "--stale" => stale = true,
            "--listen" => {
                listen = it
                    .next()
                    .unwrap_or_else(|| usage())
                    .parse()
                    .context("--listen")?
            }
            "-h" | "--help" => usage(),
            other => bail!("unknown argument {other}"),
        }
    }
    let Some(mode) = mode else { usage() };
    if stale && !matches!(mode, Mode::Keyroll | Mode::KeyrollCookie) {
        bail!("--stale is for the keyroll modes");
    }
    if sqlite && mode == Mode::TowerSessions {
        bail!(
            "tower-sessions' SQLite stores (sqlx, tokio-rusqlite) link another libsqlite3-sys \
             than keyroll-store's rusqlite, so they cannot be built into this binary"
        );
    }
    Ok(Args {
        mode,
        sqlite,
        db,
        stale,
        listen,
    })
}

fn ring_a() -> KeyRing {
    KeyRing::new(Secret::from(KEY_A)).expect("a non-empty secret")
}

fn ring_b_a() -> KeyRing {
    KeyRing::new(Secret::from(KEY_B)).expect("a non-empty secret")
        .with_fallback(Secret::from(KEY_A), None)
        .expect("two non-empty keys")
}

fn missing() -> Response {
    (StatusCode::NOT_FOUND, "no session value\n").into_response()
}

async fn read_keyroll(session: keyroll_axum::Session) -> Response {
    match session.get::<String>("v").await {
        Ok(Some(v)) => v.into_response(),
        Ok(None) => missing(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn seed_keyroll(session: keyroll_axum::Session) -> Response {
    match session.insert("v", VALUE).await {
        Ok(()) => "seeded\n".into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn read_tower(session: tower_sessions::Session) -> Response {
    match session.get::<String>("v").await {
        Ok(Some(v)) => v.into_response(),
        Ok(None) => missing(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn seed_tower(session: tower_sessions::Session) -> Response {
    match session.insert("v", VALUE).await {
        Ok(()) => "seeded\n".into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

#[derive(Deserialize)]
struct Bulk {
    n: usize,
}

fn rotate_route(ring: RingHandle) -> axum::routing::MethodRouter {
    get(move || {
        let ring = ring.clone();
        async move {
            ring.reload(ring_b_a());
            "rotated: primary B, fallback A\n"
        }
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let ring = RingHandle::new(if args.stale { ring_a() } else { ring_b_a() });

    let app = match args.mode {
        Mode::None => Router::new()
            .route("/", get(|| async { VALUE }))
            .route("/seed", get(|| async { "seeded\n" })),
        Mode::TowerSessions => {
            let store = tower_sessions::MemoryStore::default();
            let layer = tower_sessions::SessionManagerLayer::new(store)
                .with_secure(false)
                .with_name("sessionid");
            Router::new()
                .route("/", get(read_tower))
                .route("/seed", get(seed_tower))
                .layer(layer)
        }
        Mode::KeyrollCookie => Router::new()
            .route("/", get(read_keyroll))
            .route("/seed", get(seed_keyroll))
            .route("/rotate", rotate_route(ring.clone()))
            .layer(SessionLayer::signed_cookie(ring.clone()).insecure_http()),
        Mode::Keyroll => {
            let store: Arc<dyn Store> = if args.sqlite {
                let path = args.db.clone().unwrap_or_else(|| {
                    format!("/tmp/keyroll-http-bench-{}.db", std::process::id())
                });
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{path}{suffix}"));
                }
                let s = open_store(&format!("sqlite://{path}"), &StoreOptions::default())
                    .await
                    .context("open sqlite store")?;
                s.ensure_schema().await?;
                s
            } else {
                Arc::new(MemoryStore::new())
            };
            let engine = Arc::new(SessionEngine::new(store, &ring.current()));
            let bulk_engine = Arc::clone(&engine);
            let stats_engine = Arc::clone(&engine);
            Router::new()
                .route("/", get(read_keyroll))
                .route("/seed", get(seed_keyroll))
                .route(
                    "/seed-bulk",
                    get(move |Query(q): Query<Bulk>| {
                        let engine = Arc::clone(&bulk_engine);
                        async move {
                            let mut data = SessionData::new();
                            data.insert("v".into(), VALUE.into());
                            let now = OffsetDateTime::now_utc();
                            let expires = now + Duration::from_secs(14 * 24 * 3600);
                            let mut keys = String::with_capacity(q.n * 33);
                            for _ in 0..q.n {
                                match engine.create(&data, expires, now).await {
                                    Ok(k) => {
                                        keys.push_str(&k);
                                        keys.push('\n');
                                    }
                                    Err(e) => {
                                        return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
                                            .into_response()
                                    }
                                }
                            }
                            keys.into_response()
                        }
                    }),
                )
                .route(
                    "/stats",
                    get(move || {
                        let engine = Arc::clone(&stats_engine);
                        async move {
                            let s = engine.stats();
                            format!(
                                "{{\"verified_primary\":{},\"verified_fallback\":{},\
                                 \"resigned\":{},\"unverifiable\":{},\"conflicts\":{},\
                                 \"cache_hits\":{}}}\n",
                                s.verified_primary,
                                s.verified_fallback,
                                s.resigned,
                                s.unverifiable,
                                s.conflicts,
                                s.cache_hits
                            )
                        }
                    }),
                )
                .route("/rotate", rotate_route(ring.clone()))
                .layer(SessionLayer::server(engine, ring.clone()).insecure_http())
        }
    };

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("bind {}", args.listen))?;
    eprintln!(
        "http-bench-server: {:?}{}{} on {}",
        args.mode,
        if args.sqlite { " sqlite" } else { "" },
        if args.stale { " stale" } else { "" },
        args.listen
    );
    axum::serve(listener, app).await?;
    Ok(())
}
