//! `keyroll census`, `keyroll resign`, `keyroll purge`: whole session tables.

use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use keyroll_store::{open_store, BulkOptions, Progress, Store, StoreOptions, Users, DJANGO_TABLE};
use time::OffsetDateTime;

use crate::{keys, KeySource};

/// Where the sessions are.
#[derive(Args, Debug, Clone)]
pub(crate) struct TableArgs {
    /// sqlite://relative.db, sqlite:///absolute.db, postgres://…, redis://…
    #[arg(long, value_name = "URL")]
    database: String,
    /// Table name (default keyroll_session; django_session with --django).
    #[arg(long, value_name = "T")]
    table: Option<String>,
    /// Django's tables: django_session, and auth_user for re-hashing login hashes.
    #[arg(long)]
    django: bool,
    /// Redis key prefix (redis:// only).
    #[arg(long, value_name = "P", default_value = keyroll_store::DEFAULT_REDIS_PREFIX)]
    redis_prefix: String,
    /// The session salt (Django's database sessions use the default).
    #[arg(long, value_name = "S", default_value = keyroll::DB_SESSION_SALT)]
    salt: String,
}

impl TableArgs {
    async fn open(&self) -> anyhow::Result<Arc<dyn Store>> {
        let table = match (&self.table, self.django) {
            (Some(t), _) => t.clone(),
            (None, true) => DJANGO_TABLE.to_owned(),
            (None, false) => keyroll_store::DEFAULT_TABLE.to_owned(),
        };
        let opts = StoreOptions {
            table,
            redis_prefix: self.redis_prefix.clone(),
            ..StoreOptions::default()
        };
        open_store(&self.database, &opts)
            .await
            .context("cannot open the session store")
    }
}

#[derive(Args, Debug)]
pub(crate) struct CensusArgs {
    #[command(flatten)]
    table: TableArgs,
    #[command(flatten)]
    keys: KeySource,
    /// One JSON object instead of lines.
    #[arg(long)]
    json: bool,
    /// Rows per batch.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    batch: usize,
    /// Parallel workers.
    #[arg(long, default_value_t = 1, value_name = "N")]
    jobs: usize,
}

#[derive(Args, Debug)]
pub(crate) struct ResignArgs {
    #[command(flatten)]
    table: TableArgs,
    #[command(flatten)]
    keys: KeySource,
    /// Users table (columns id, password) for re-hashing `_auth_user_hash`
    /// (default auth_user with --django).
    #[arg(long, value_name = "T")]
    users_table: Option<String>,
    /// Rows per batch.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    batch: usize,
    /// Parallel workers, each on its own range of keys (useful on PostgreSQL).
    #[arg(long, default_value_t = 1, value_name = "N")]
    jobs: usize,
    /// Count what would change; change nothing.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Args, Debug)]
pub(crate) struct PurgeArgs {
    #[command(flatten)]
    table: TableArgs,
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// A progress bar on stderr when it is a terminal; nothing otherwise.
fn progress(what: &'static str) -> (Option<ProgressBar>, Option<Progress>) {
    if !std::io::stderr().is_terminal() {
        return (None, None);
    }
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg}: {human_pos} rows ({per_sec}, {elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message(what);
    bar.enable_steady_tick(Duration::from_millis(120));
    let b = bar.clone();
    (Some(bar), Some(Arc::new(move |n| b.inc(n))))
}

fn check_counts(batch: usize, jobs: usize) -> anyhow::Result<()> {
    if batch == 0 || batch > 1_000_000 {
        anyhow::bail!("--batch must be between 1 and 1000000");
    }
    if jobs == 0 || jobs > 64 {
        anyhow::bail!("--jobs must be between 1 and 64");
    }
    Ok(())
}

pub(crate) fn census(args: CensusArgs) -> anyhow::Result<ExitCode> {
    check_counts(args.batch, args.jobs)?;
    let ring = keys::load(&args.keys)?;
    let rt = runtime()?;
    let census = rt.block_on(async {
        let store = args.table.open().await?;
        let opts = BulkOptions {
            salt: args.table.salt.clone(),
            batch: args.batch,
            jobs: args.jobs,
            ..BulkOptions::default()
        };
        let (bar, progress) = progress("census");
        let c =
            keyroll_store::census(store, &ring, &opts, OffsetDateTime::now_utc(), progress).await;
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        anyhow::Ok(c?)
    })?;
    if args.json {
        let keys: Vec<serde_json::Value> = census
            .keys
            .iter()
            .map(|(id, role, rows)| serde_json::json!({"key_id": id.to_string(), "role": role.as_str(), "rows": rows}))
            .collect();
        println!(
            "{}",
            serde_json::json!({"keys": keys, "unverifiable": census.unverifiable, "expired": census.expired})
        );
    } else {
        for (id, role, rows) in &census.keys {
            println!("{id}\t{role}\t{rows}");
        }
        println!("unverifiable\t{}", census.unverifiable);
        println!("expired\t{}", census.expired);
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn resign(args: ResignArgs) -> anyhow::Result<ExitCode> {
    check_counts(args.batch, args.jobs)?;
    let ring = keys::load(&args.keys)?;
    let users_table = args
        .users_table
        .clone()
        .or_else(|| args.table.django.then(|| "auth_user".to_owned()));
    if let Some(t) = &users_table {
        keyroll_store::check_table_name(t)?;
    }
    let rt = runtime()?;
    let summary = rt.block_on(async {
        let store = args.table.open().await?;
        let opts = BulkOptions {
            salt: args.table.salt.clone(),
            batch: args.batch,
            jobs: args.jobs,
            dry_run: args.dry_run,
            users: users_table.map(Users::Table),
        };
        let (bar, progress) = progress(if args.dry_run {
            "resign (dry run)"
        } else {
            "resign"
        });
        let s =
            keyroll_store::resign(store, &ring, &opts, OffsetDateTime::now_utc(), progress).await;
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        anyhow::Ok(s?)
    })?;
    println!("{}", summary.line());
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn purge(args: PurgeArgs) -> anyhow::Result<ExitCode> {
    let rt = runtime()?;
    let n = rt.block_on(async {
        let store = args.table.open().await?;
        anyhow::Ok(store.purge_expired(OffsetDateTime::now_utc()).await?)
    })?;
    println!("purged {n} expired sessions");
    Ok(ExitCode::SUCCESS)
}
