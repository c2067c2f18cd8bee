//! `keyroll-demo`: a small web app showing the whole story — sign up, log in,
//! rotate the signing key live from the operator page (or `keyroll ring …`
//! on the ring file), and nobody is logged out.
//!
//! ```text
//! cargo run -p keyroll-demo -- [--listen 127.0.0.1:8080] [--database URL]
//!                              [--mode server|cookie] [--keyring FILE]
//! ```
//!
//! DEMO ONLY: users live in memory (gone at restart) with salted SHA-256
//! password hashes, the operator page has no authentication, and cookies go
//! over plain HTTP unless `--secure-cookies` is given.

mod app;
mod pages;
mod users;

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
    /// Key ring file (created with a fresh primary key when missing; watched for changes).
    #[arg(long, default_value = "keyroll-demo-ring.toml")]
    keyring: PathBuf,
    /// Mark cookies `Secure` (only when served over HTTPS).
    #[arg(long)]
    secure_cookies: bool,
    /// How often the ring file is checked for changes, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    watch_ms: u64,
}

fn main() -> ExitCode {
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
    let _watch = ring.watch_file(
        args.keyring.clone(),
        OpenOptions::default(),
        Duration::from_millis(args.watch_ms.max(10)),
    );

    let mut config = SessionConfig::new();
    if !args.secure_cookies {
        config = config.insecure_http();
    }
    let sessions = match args.mode {
        Mode::Server => {
            let store = open_store(&args.database, &StoreOptions::default())
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
    .with_config(config);

    let state = app::App {
        users: Arc::new(users::Users::default()),
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
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .context("serving")?;
    Ok(())
}
