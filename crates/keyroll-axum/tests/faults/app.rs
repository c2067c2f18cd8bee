//! The app the fault drills run: a few routes over a `SessionLayer`, a
//! gate to hold a request between its handler and its save, and stores
//! reached through a [`Proxy`] (PostgreSQL, Redis) with a direct "admin"
//! connection to look at the rows behind the app's back.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::Router;
use keyroll_axum::{current_user, login, RingHandle, Session, SessionError, SessionLayer};
use keyroll_store::{open_store, KeyRange, SessionRecord, Store, StoreOptions};
use time::OffsetDateTime;
use tokio::sync::Notify;

use super::common::{Browser, Users};
use super::proxy::{through, Proxy};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Net {
    Postgres,
    Redis,
}

impl Net {
    pub fn name(self) -> &'static str {
        match self {
            Net::Postgres => "postgres",
            Net::Redis => "redis",
        }
    }

    fn url(self) -> String {
        match self {
            Net::Postgres => std::env::var("KEYROLL_TEST_POSTGRES_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into()),
            Net::Redis => std::env::var("KEYROLL_TEST_REDIS_URL")
                .unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
        }
    }
}

fn require_services() -> bool {
    std::env::var("KEYROLL_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

fn unique_name() -> String {
    use rand::Rng as _;
    let n: u64 = rand::thread_rng().gen();
    format!("keyroll_faults_{n:016x}")
}

/// Adds query parameters to a URL.
pub fn with_params(url: &str, params: &str) -> String {
    if params.is_empty() {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&{params}")
    } else {
        format!("{url}?{params}")
    }
}

/// A store of its own (table or prefix), reached by the app through a proxy.
pub struct NetStore {
    pub net: Net,
    pub proxy: Proxy,
    /// The URL the app uses (through the proxy, with the drill's timeouts).
    pub url: String,
    /// The real server's URL.
    pub direct_url: String,
    pub opts: StoreOptions,
    /// The app's store (through the proxy).
    pub store: Arc<dyn Store>,
    /// A direct connection, for looking at rows.
    pub admin: Arc<dyn Store>,
}

impl Drop for NetStore {
    fn drop(&mut self) {
        let (net, url, opts) = (self.net, self.direct_url.clone(), self.opts.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                match net {
                    Net::Postgres => {
                        if let Ok((client, conn)) =
                            tokio_postgres::connect(&url, tokio_postgres::NoTls).await
                        {
                            tokio::spawn(conn);
                            let _ = client
                                .batch_execute(&format!("DROP TABLE IF EXISTS \"{}\"", opts.table))
                                .await;
                        }
                    }
                    Net::Redis => {
                        if let Ok(s) = open_store(&url, &opts).await {
                            if let Ok(rows) = s.scan(&KeyRange::all(), None, 100_000).await {
                                for r in rows {
                                    let _ = s.delete(&r.key).await;
                                }
                            }
                        }
                    }
                }
            });
        })
        .join();
    }
}

/// A fresh table/prefix behind a proxy; the app's URL gets `params`
/// (e.g. `connect_timeout=1&query_timeout=1`). `None` (with a loud SKIPPED)
/// when the server is unreachable, unless `KEYROLL_REQUIRE_SERVICES=1`.
pub async fn net_store(net: Net, params: &str) -> Option<NetStore> {
    let direct_url = net.url();
    let opts = StoreOptions {
        table: unique_name(),
        redis_prefix: unique_name(),
        pool_size: 2,
    };
    let admin = match open_store(&direct_url, &opts).await {
        Ok(s) => s,
        Err(e) => {
            assert!(
                !require_services(),
                "{} unreachable and KEYROLL_REQUIRE_SERVICES=1: {e}",
                net.name()
            );
            let line = format!(
                "SKIPPED: {} unreachable ({e}); set KEYROLL_REQUIRE_SERVICES=1 to fail instead\n",
                net.name()
            );
            let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
            return None;
        }
    };
    admin.ensure_schema().await.unwrap();
    let (via, upstream) = through(&direct_url, 0).await;
    drop(via);
    let proxy = Proxy::start(upstream).await;
    let (url, _) = through(&direct_url, proxy.port()).await;
    let url = with_params(&url, params);
    let store = open_store(&url, &opts).await.unwrap();
    Some(NetStore {
        net,
        proxy,
        url,
        direct_url,
        opts,
        store,
        admin,
    })
}

impl NetStore {
    /// The row behind a session key, read directly (not through the proxy).
    pub async fn row(&self, key: &str) -> Option<SessionRecord> {
        self.admin
            .load(key, OffsetDateTime::now_utc())
            .await
            .unwrap()
    }

    /// Every row, read directly.
    pub async fn rows(&self) -> Vec<SessionRecord> {
        self.admin
            .scan(&KeyRange::all(), None, 100_000)
            .await
            .unwrap()
    }
}

/// Holds a request after its handler ran and before its session is saved.
#[derive(Default)]
pub struct Gate {
    reached: Notify,
    release: Notify,
}

impl Gate {
    async fn pass(&self) {
        self.reached.notify_one();
        self.release.notified().await;
    }

    /// Waits until a request stands at the gate.
    pub async fn reached(&self) {
        self.reached.notified().await;
    }

    /// Lets it through.
    pub fn release(&self) {
        self.release.notify_one();
    }
}

#[derive(Clone)]
struct AppState {
    users: Arc<Users>,
    gate: Arc<Gate>,
}

async fn visit(session: Session) -> Result<String, SessionError> {
    let n: u64 = session.get("visits").await?.unwrap_or(0) + 1;
    session.insert("visits", n).await?;
    Ok(n.to_string())
}

async fn gated_visit(State(s): State<AppState>, session: Session) -> Result<String, SessionError> {
    let n = visit(session).await?;
    s.gate.pass().await;
    Ok(n)
}

async fn do_login(
    State(s): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> Result<&'static str, SessionError> {
    let hash = s.users.hash(&id).unwrap();
    login(&session, &id, &hash, "tests.Backend").await?;
    Ok("ok")
}

async fn gated_login(
    State(s): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> Result<&'static str, SessionError> {
    do_login(State(s.clone()), session, Path(id)).await?;
    s.gate.pass().await;
    Ok("ok")
}

/// `user:<id>|<key id>|<role>` or `anonymous|none|none`, as in http.rs.
async fn whoami(State(s): State<AppState>, session: Session) -> Result<String, SessionError> {
    let user = current_user(&session, s.users.as_ref()).await?;
    let key = session
        .key_id()
        .await?
        .map_or("none".into(), |k| k.to_string());
    let role = session.role().await?.map_or("none", |r| r.as_str());
    Ok(format!(
        "{}|{key}|{role}",
        user.map_or("anonymous".into(), |u| format!("user:{u}"))
    ))
}

async fn plain() -> &'static str {
    "plain"
}

/// A running app.
pub struct App {
    pub base: String,
    pub ring: RingHandle,
    pub users: Arc<Users>,
    pub gate: Arc<Gate>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for App {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Serves the drill routes behind `layer` on 127.0.0.1.
pub async fn serve(layer: SessionLayer, ring: RingHandle) -> App {
    let users = Arc::new(Users::default());
    users.set("1", "sha256$salt$one");
    users.set("2", "sha256$salt$two");
    let gate = Arc::new(Gate::default());
    let state = AppState {
        users: Arc::clone(&users),
        gate: Arc::clone(&gate),
    };
    let app = Router::new()
        .route("/visit", get(visit))
        .route("/gated/visit", get(gated_visit))
        .route("/login/{id}", post(do_login))
        .route("/gated/login/{id}", post(gated_login))
        .route("/whoami", get(whoami))
        .route("/plain", get(plain))
        .layer(layer)
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    App {
        base: format!("http://{addr}"),
        ring,
        users,
        gate,
        server,
    }
}

impl App {
    /// A browser with its own cookie jar; a request that takes more than
    /// 20 s fails the test instead of hanging it.
    pub fn browser(&self) -> Browser {
        let jar = Arc::new(reqwest::cookie::Jar::default());
        let client = reqwest::Client::builder()
            .cookie_provider(Arc::clone(&jar))
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        Browser {
            client,
            jar,
            base: self.base.clone(),
        }
    }
}
