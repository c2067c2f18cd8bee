//! The demo server: its command line and its start-up.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::{Parser, ValueEnum};
use keyroll::ringfile::{OpenOptions, RingFile, DEFAULT_SECRET_LEN};
use keyroll_axum::{ResetTokens, RingHandle, SessionConfig, SessionLayer};
use keyroll_store::{open_store, SessionEngine, StoreOptions};

use crate::csrf::CsrfConfig;
use crate::operator::OperatorToken;
use crate::outbox::Outbox;
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
    /// Directory of the demo's state, made mode 0700 if missing (refused if
    /// group or others can enter it): the SQLite database and its WAL files,
    /// the ring file and its lock, the operator token, the mail outbox.
    #[arg(long, default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// Session store: sqlite://FILE, postgres://…, redis://… [default: sqlite://DATA_DIR/demo.db]
    #[arg(long)]
    database: Option<String>,
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
    /// on SIGHUP and, unless --watch-ms is 0, when it changes) [default: DATA_DIR/ring.toml]
    #[arg(long)]
    keyring: Option<PathBuf>,
    /// File of the operator token (made with a fresh random token, mode 0600,
    /// when missing; a file open to group or others is refused). The operator
    /// page asks for it; `/api/ring` takes it as `Authorization: Bearer`.
    /// [default: DATA_DIR/operator-token]
    #[arg(long)]
    operator_token_file: Option<PathBuf>,
    /// The operator page promotes a staged key only once it has been staged
    /// this long, so that every server of a fleet knows it before it signs
    /// (as `keyroll ring promote --min-staged`): 30s, 5m, 1h, 1d…
    #[arg(long, default_value = "1m", value_parser = duration_arg)]
    min_staged: Duration,
    /// Users file (JSON, as `rolling-rotation` writes it) shared by every
    /// instance of a fleet; without it users live in this instance's memory.
    /// Sign-ups and password changes always stay in this instance's memory.
    #[arg(long)]
    users: Option<PathBuf>,
    /// Mark cookies `Secure` (only when served over HTTPS; the `Origin` of
    /// form posts is then expected to be `https://`).
    #[arg(long)]
    secure_cookies: bool,
    /// How often the ring file is checked for changes, in milliseconds; 0: only reload on SIGHUP.
    #[arg(long, default_value_t = 1000)]
    watch_ms: u64,
}

/// Where the demo keeps its state unless told otherwise (relative to the
/// working directory; ignored by the repository's `.gitignore`).
pub const DEFAULT_DATA_DIR: &str = "keyroll-demo-data";
/// The operator token's file name in the data directory.
pub const OPERATOR_TOKEN_FILE: &str = "operator-token";

fn duration_arg(s: &str) -> Result<Duration, String> {
    keyroll::ringfile::parse_duration(s)
        .ok_or_else(|| format!("{s:?} is not a duration like 30s, 5m, 1h, 1d or 1w"))
}

/// Makes the data directory (mode 0700) or checks the one there.
fn prepare_data_dir(dir: &Path) -> anyhow::Result<()> {
    match std::fs::metadata(dir) {
        Ok(meta) => {
            if !meta.is_dir() {
                bail!("the data directory {} is not a directory", dir.display());
            }
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt as _;
                let mode = meta.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    bail!(
                        "the data directory {} is open to group or others (mode {mode:04o}); chmod 700 it",
                        dir.display()
                    );
                }
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut b = std::fs::DirBuilder::new();
            b.recursive(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::DirBuilderExt as _;
                b.mode(0o700);
            }
            b.create(dir)
                .with_context(|| format!("creating the data directory {}", dir.display()))?;
            eprintln!("keyroll-demo: created the data directory {}", dir.display());
            Ok(())
        }
        Err(e) => Err(e).with_context(|| format!("reading the data directory {}", dir.display())),
    }
}

/// Publishes every counter of `keyroll_axum::metrics` at zero, so that
/// `/metrics` shows them (and rates can be taken) before anything happened.
fn publish_counters_at_zero(ring: &keyroll::KeyRing) {
    use keyroll_axum::metrics::{RESIGNS, VERIFICATIONS, VERIFY_FAILURES};
    for key in ring.keys() {
        metrics::counter!(VERIFICATIONS, "key_id" => key.id().to_string(), "role" => key.role().as_str())
            .increment(0);
    }
    for kind in ["session", "cookie_session", "auth_hash", "signed_cookie"] {
        metrics::counter!(RESIGNS, "kind" => kind).increment(0);
    }
    for reason in [
        "signature",
        "expired",
        "malformed",
        "too-large",
        "auth_hash",
    ] {
        metrics::counter!(VERIFY_FAILURES, "reason" => reason).increment(0);
    }
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
    prepare_data_dir(&args.data_dir)?;
    let database = args
        .database
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", args.data_dir.join("demo.db").display()));
    let keyring = args
        .keyring
        .clone()
        .unwrap_or_else(|| args.data_dir.join("ring.toml"));
    let token_file = args
        .operator_token_file
        .clone()
        .unwrap_or_else(|| args.data_dir.join(OPERATOR_TOKEN_FILE));

    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .context("installing the metrics recorder")?;
    keyroll_axum::metrics::describe();

    if !keyring.exists() {
        RingFile::generate(OffsetDateTime::now_utc(), DEFAULT_SECRET_LEN)
            .create_new(&keyring)
            .with_context(|| format!("creating {}", keyring.display()))?;
        eprintln!("keyroll-demo: created key ring {}", keyring.display());
    }
    let ring = RingHandle::open(&keyring, OpenOptions::default())
        .with_context(|| format!("opening {}", keyring.display()))?;
    publish_counters_at_zero(&ring.current());
    let _watch = (args.watch_ms > 0).then(|| {
        ring.watch_file(
            keyring.clone(),
            OpenOptions::default(),
            Duration::from_millis(args.watch_ms.max(10)),
        )
    });
    #[cfg(unix)]
    let _hup = ring
        .reload_on_sighup(keyring.clone(), OpenOptions::default())
        .context("installing the SIGHUP handler")?;

    let (operator, made) = OperatorToken::load_or_create(&token_file)
        .with_context(|| format!("the operator token file {}", token_file.display()))?;
    eprintln!(
        "keyroll-demo: the operator token is in {}{}",
        token_file.display(),
        if made { " (new)" } else { "" }
    );

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
            let store = open_store(&database, &opts)
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
        ring_path: keyring.clone(),
        reset: ResetTokens::new(ring.clone()),
        metrics,
        operator,
        csrf: CsrfConfig {
            secure: args.secure_cookies,
        },
        outbox: Outbox::in_dir(&args.data_dir),
        min_staged: args.min_staged,
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
