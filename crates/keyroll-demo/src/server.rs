//! The demo server: its command line and its start-up.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, ValueEnum};
use keyroll::ringfile::{OpenOptions, RingFile, DEFAULT_SECRET_LEN};
use keyroll_axum::{ResetTokens, RingHandle, SessionConfig, SessionLayer};
use keyroll_store::{open_store, SessionEngine, StoreOptions};

use crate::{app, users};
use time::OffsetDateTime;

/// Where sessions live.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Mode {
    /// In the database; the cookie holds the session key.
    Server,
    /// In the cookie itself (Django's signed-cookie sessions).
    Cookie,
}

/// The keyroll demo web app.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Session store: sqlite://FILE, postgres://…, redis://…
    #[arg(long, default_value = "sqlite://keyroll-demo.db")]
    database: String,
    /// Server-side sessions or signed-cookie sessions.
    #[arg(long, value_enum, default_value_t = Mode::Server)]
    mode: Mode,
    /// SQL table of the sessions (SQLite, PostgreSQL).
    #[arg(long, default_value = keyroll_store::DEFAULT_TABLE)]
    table: String,
    /// Key prefix of the sessions in Redis (`PREFIX:SESSION_KEY`).
    #[arg(long, default_value = keyroll_store::DEFAULT_REDIS_PREFIX)]
    redis_prefix: String,
    /// Key ring file (created with a fresh primary key when missing; reloaded
    /// on SIGHUP and, unless --watch-ms is 0, when it changes).
    #[arg(long, default_value = "keyroll-demo-ring.toml")]
    keyring: PathBuf,
    /// Users file (JSON, as `rolling-rotation` writes it) shared by every
    /// instance of a fleet; without it users live in this instance's memory.
    /// Sign-ups and password changes always stay in this instance's memory.
    #[arg(long)]
    users: Option<PathBuf>,
    /// Mark cookies `Secure` (only when served over HTTPS).
    #[arg(long)]
    secure_cookies: bool,
    /// How often the ring file is checked for changes, in milliseconds; 0: only reload on SIGHUP.
    #[arg(long, default_value_t = 1000)]
    watch_ms: u64,
}

/// Parses the command line and runs the server until Ctrl-C (or SIGTERM).
pub fn main() -> ExitCode {
    let args = Args::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("keyroll-demo: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("keyroll-demo: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .context("installing the metrics recorder")?;
    keyroll_axum::metrics::describe();

    if !args.keyring.exists() {
        RingFile::generate(OffsetDateTime::now_utc(), DEFAULT_SECRET_LEN)
            .create_new(&args.keyring)
            .with_context(|| format!("creating {}", args.keyring.display()))?;
        eprintln!("keyroll-demo: created key ring {}", args.keyring.display());
    }
    let ring = RingHandle::open(&args.keyring, OpenOptions::default())
        .with_context(|| format!("opening {}", args.keyring.display()))?;
    let _watch = (args.watch_ms > 0).then(|| {
        ring.watch_file(
            args.keyring.clone(),
            OpenOptions::default(),
            Duration::from_millis(args.watch_ms.max(10)),
        )
    });
    #[cfg(unix)]
    let _hup = ring
        .reload_on_sighup(args.keyring.clone(), OpenOptions::default())
        .context("installing the SIGHUP handler")?;

    let mut config = SessionConfig::new();
    if !args.secure_cookies {
        config = config.insecure_http();
    }
    let users = match &args.users {
        Some(path) => users::Users::from_file(path)
            .with_context(|| format!("reading the users file {}", path.display()))?,
        None => users::Users::default(),
    };
    let users = Arc::new(users);
    let sessions = match args.mode {
        Mode::Server => {
            let opts = StoreOptions {
                table: args.table.clone(),
                redis_prefix: args.redis_prefix.clone(),
                ..StoreOptions::default()
            };
            let store = open_store(&args.database, &opts)
                .await
                .context("opening the session store")?;
            store
                .ensure_schema()
                .await
                .context("creating the session table")?;
            let engine = Arc::new(SessionEngine::new(store, &ring.current()));
            SessionLayer::server(engine, ring.clone())
        }
        Mode::Cookie => SessionLayer::signed_cookie(ring.clone()),
    }
    .with_config(config)
    // A stale login hash is re-made whenever its session is re-signed.
    .upgrade_logins(Arc::clone(&users));

    let state = app::App {
        users,
        ring: ring.clone(),
        ring_path: args.keyring.clone(),
        reset: ResetTokens::new(ring.clone()),
        metrics,
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let addr = listener.local_addr().context("local address")?;
    println!(
        "keyroll-demo listening on http://{addr}/ ({:?} sessions, primary key {})",
        args.mode,
        ring.current().primary().id()
    );
    axum::serve(listener, app::router(state, sessions))
        .with_graceful_shutdown(shutdown())
        .await
        .context("serving")?;
    Ok(())
}

/// Ctrl-C, or SIGTERM on unix (how a fleet's instances are stopped).
async fn shutdown() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
