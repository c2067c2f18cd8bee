//! `keyroll census`, `keyroll resign`, `keyroll purge`: whole session tables.

use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use keyroll::Role;
use keyroll_store::{
    open_store, BulkOptions, Progress, RowCounts, Store, StoreOptions, Users, DJANGO_TABLE,
};
use time::OffsetDateTime;

use crate::{keys, KeySource};

/// Where the sessions are.
#[derive(Args, Debug, Clone)]
pub(crate) struct TableArgs {
    /// sqlite://relative.db, sqlite:///absolute.db, postgres://… (or
    /// postgresql://, pgsql://), mysql://… (or mariadb://, mysql2://),
    /// redis://… [default: $DATABASE_URL]
    #[arg(long, value_name = "URL")]
    database: Option<String>,
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
    fn table(&self) -> String {
        match (&self.table, self.django) {
            (Some(t), _) => t.clone(),
            (None, true) => DJANGO_TABLE.to_owned(),
            (None, false) => keyroll_store::DEFAULT_TABLE.to_owned(),
        }
    }

    /// Refuses what cannot be right before anything is opened: Django's
    /// sessions in Redis (this CLI sees only database sessions), and a SQLite
    /// file that does not exist (a mistyped path must not become a new, empty
    /// database that census reports as "nothing left").
    /// `--database`, or `$DATABASE_URL` (as Django deployments using
    /// dj-database-url have it).
    fn url(&self) -> anyhow::Result<String> {
        self.database
            .clone()
            .or_else(|| keys::env_var("DATABASE_URL").filter(|u| !u.is_empty()))
            .ok_or_else(|| {
                anyhow::anyhow!("say where the sessions are: --database URL (or DATABASE_URL)")
            })
    }

    fn check(&self, url: &str) -> anyhow::Result<()> {
        let scheme = url.split_once("://").map(|(s, _)| s);
        if self.django && matches!(scheme, Some("redis" | "rediss")) {
            anyhow::bail!(
                "--django with a redis:// URL: Django does not keep database sessions in Redis. \
                 With SESSION_ENGINE = cache (or cached_db's cache side) the sessions are cache \
                 entries Django names itself, and with signed_cookies they are in the browsers: \
                 this command cannot see either. Run it on the database of DATABASES (for the db \
                 and cached_db engines), or rotate from inside the Django app."
            );
        }
        if let Some(path) = sqlite_path(url) {
            if !path.exists() {
                anyhow::bail!(
                    "no SQLite database at {}: check the path (sqlite://relative.db, \
                     sqlite:///absolute.db); this command opens existing databases only",
                    path.display()
                );
            }
        }
        Ok(())
    }

    async fn open(&self) -> anyhow::Result<Arc<dyn Store>> {
        let url = self.url()?;
        self.check(&url)?;
        let table = self.table();
        let opts = StoreOptions {
            table,
            redis_prefix: self.redis_prefix.clone(),
            ..StoreOptions::default()
        };
        open_store(&url, &opts)
            .await
            .context("cannot open the session store")
    }
}

/// The file of a `sqlite://` URL (`None` for other stores and in-memory databases).
fn sqlite_path(url: &str) -> Option<std::path::PathBuf> {
    let rest = url.strip_prefix("sqlite://")?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:" && !path.starts_with("file::memory:"))
        .then(|| path.into())
}

/// How much of the table a census or resign walks, and how fast.
#[derive(Args, Debug, Clone)]
pub(crate) struct WalkArgs {
    /// Fetch expired rows too (by default they stay in the database and are
    /// counted through the index).
    #[arg(long)]
    include_expired: bool,
    /// Only shard K of N (e.g. 2/8): N hosts or processes split one table
    /// by key without overlap; each shard can be run again to finish it.
    #[arg(long, value_name = "K/N", value_parser = parse_shard)]
    shard: Option<(usize, usize)>,
    /// At most this many rows a second, all workers together.
    #[arg(long, value_name = "ROWS_PER_SECOND", value_parser = clap::value_parser!(u64).range(1..))]
    max_rate: Option<u64>,
}

/// `K/N` with 1 <= K <= N <= 46656.
fn parse_shard(s: &str) -> Result<(usize, usize), String> {
    let bad = || format!("{s:?} is not a shard: write K/N with 1 <= K <= N <= 46656, e.g. 2/8");
    let (k, n) = s.split_once('/').ok_or_else(bad)?;
    let (k, n): (usize, usize) = (
        k.trim().parse().map_err(|_| bad())?,
        n.trim().parse().map_err(|_| bad())?,
    );
    keyroll_store::KeyRange::shard(k, n).ok_or_else(bad)?;
    Ok((k, n))
}

impl WalkArgs {
    fn apply(&self, opts: BulkOptions) -> BulkOptions {
        BulkOptions {
            include_expired: self.include_expired,
            shard: self.shard,
            max_rate: self.max_rate,
            ..opts
        }
    }
}

#[derive(Args, Debug)]
pub(crate) struct CensusArgs {
    #[command(flatten)]
    table: TableArgs,
    #[command(flatten)]
    walk: WalkArgs,
    #[command(flatten)]
    keys: KeySource,
    /// Users table (columns id, password): rows whose login hash needs a key
    /// count under it too (default auth_user with --django).
    #[arg(long, value_name = "T")]
    users_table: Option<String>,
    /// Refuse to run unless this key id is the primary (catches swapped keys).
    #[arg(long, value_name = "KEY_ID")]
    expect_primary: Option<String>,
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
    walk: WalkArgs,
    #[command(flatten)]
    keys: KeySource,
    /// Users table (columns id, password) for re-hashing `_auth_user_hash`
    /// (default auth_user with --django).
    #[arg(long, value_name = "T")]
    users_table: Option<String>,
    /// Refuse to run unless this key id is the primary (catches swapped keys).
    #[arg(long, value_name = "KEY_ID")]
    expect_primary: Option<String>,
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
    /// Expired rows deleted per statement (each its own short transaction);
    /// without it, each batch is sized to take about a second.
    #[arg(long, value_name = "N")]
    batch: Option<usize>,
    /// At most this many rows deleted a second.
    #[arg(long, value_name = "ROWS_PER_SECOND", value_parser = clap::value_parser!(u64).range(1..))]
    max_rate: Option<u64>,
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// A progress bar on stderr when it is a terminal; nothing otherwise. With
/// the number of rows to expect, it shows how far, how fast and how long is
/// left.
fn progress(what: &'static str, expected: Option<u64>) -> (Option<ProgressBar>, Option<Progress>) {
    if !std::io::stderr().is_terminal() {
        return (None, None);
    }
    let bar = match expected {
        Some(n) => {
            let bar = ProgressBar::new(n);
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg}: {human_pos}/{human_len} rows [{wide_bar}] {per_sec}, ETA {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        }
        None => {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} {msg}: {human_pos} rows ({per_sec}, {elapsed})",
                )
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar
        }
    };
    bar.set_message(what);
    bar.enable_steady_tick(Duration::from_millis(120));
    let b = bar.clone();
    (Some(bar), Some(Arc::new(move |n| b.inc(n))))
}

/// The scope's rows counted once at `now` (through the store's index): the
/// run's expired figure and the progress bar's length both come from it.
/// Fetching expired rows too needs no count but for a bar on a terminal.
async fn counted(
    store: &dyn Store,
    opts: &BulkOptions,
    now: OffsetDateTime,
) -> anyhow::Result<Option<RowCounts>> {
    if opts.include_expired && !std::io::stderr().is_terminal() {
        return Ok(None);
    }
    Ok(Some(store.count_rows(&opts.scope()?, now).await?))
}

/// The rows a census or resign will fetch, from the counts.
fn expected(opts: &BulkOptions, counts: Option<RowCounts>) -> Option<u64> {
    counts.map(|c| c.live + if opts.include_expired { c.expired } else { 0 })
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

/// The ring a census or resign runs with, after the checks that catch the
/// usual mistakes: `--expect-primary` that does not match (keys swapped), no
/// key but the primary (the old key forgotten: every old row would read as
/// unverifiable), Django's session table without its users table (login
/// hashes not looked at). Says on stderr which key is primary.
fn checked_ring(
    src: &KeySource,
    expect_primary: Option<&str>,
    table: &TableArgs,
    users_table: Option<&str>,
    command: &str,
) -> anyhow::Result<keyroll::KeyRing> {
    let ring = keys::load(src)?;
    let primary = ring.primary().id().to_string();
    if let Some(want) = expect_primary {
        if want != primary {
            anyhow::bail!(
                "the primary key is {primary}, not {want} (--expect-primary): are the keys \
                 swapped? SECRET_KEY (or the ring's primary) must be the NEW key, and the old \
                 one a fallback"
            );
        }
    }
    let others: Vec<String> = ring
        .keys()
        .filter(|k| k.role() != Role::Primary)
        .map(|k| format!("{} {}", k.role(), k.id()))
        .collect();
    eprintln!(
        "keyroll {command}: primary {primary}{}{}",
        if others.is_empty() { "" } else { ", " },
        others.join(", ")
    );
    if others.is_empty() {
        let what = "the keys name only a primary key: every row signed by another key counts as \
                    unverifiable";
        if command == "resign" {
            anyhow::bail!(
                "{what}, and there is nothing to re-sign. Give the old key too \
                 (SECRET_KEY_FALLBACKS, OLD_SECRET_KEY, or a fallback in the ring file)"
            );
        }
        eprintln!(
            "keyroll: WARNING: {what}. If you are rotating, the old key is missing \
             (SECRET_KEY_FALLBACKS not set in this shell?): do not read \"unverifiable\" as \
             safe to drop"
        );
    }
    if users_table.is_none() && table.table() == DJANGO_TABLE {
        eprintln!(
            "keyroll: WARNING: --table {DJANGO_TABLE} without --django (or --users-table): login \
             hashes (_auth_user_hash) are {}; add --django",
            if command == "resign" {
                "not re-made, and users whose hash was made with the old key are logged out when \
                 it retires"
            } else {
                "not looked at, so rows that need the old key only for their login hash are not \
                 counted under it"
            }
        );
    }
    Ok(ring)
}

/// The users table a census or resign uses: `--users-table`, or Django's
/// `auth_user` with `--django`.
fn users_table(table: &TableArgs, given: Option<&String>) -> anyhow::Result<Option<String>> {
    let t = given
        .cloned()
        .or_else(|| table.django.then(|| "auth_user".to_owned()));
    if let Some(t) = &t {
        keyroll_store::check_table_name(t)?;
    }
    Ok(t)
}

pub(crate) fn census(args: CensusArgs) -> anyhow::Result<ExitCode> {
    check_counts(args.batch, args.jobs)?;
    let users_table = users_table(&args.table, args.users_table.as_ref())?;
    let ring = checked_ring(
        &args.keys,
        args.expect_primary.as_deref(),
        &args.table,
        users_table.as_deref(),
        "census",
    )?;
    let rt = runtime()?;
    let census = rt.block_on(async {
        let store = args.table.open().await?;
        let opts = args.walk.apply(BulkOptions {
            salt: args.table.salt.clone(),
            batch: args.batch,
            jobs: args.jobs,
            users: users_table.map(Users::Table),
            ..BulkOptions::default()
        });
        let now = OffsetDateTime::now_utc();
        let counts = counted(store.as_ref(), &opts, now).await?;
        let opts = BulkOptions { counts, ..opts };
        let (bar, progress) = progress("census", expected(&opts, counts));
        let c = keyroll_store::census(store, &ring, &opts, now, progress).await;
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        anyhow::Ok(c?)
    })?;
    let live: u64 = census.unverifiable + census.keys.iter().map(|(_, _, n)| n).sum::<u64>();
    if args.table.django && live == 0 && census.expired == 0 {
        eprintln!(
            "keyroll: WARNING: {DJANGO_TABLE} is empty. If SESSION_ENGINE is cache or \
             signed_cookies, Django's sessions are not in this table and this command cannot \
             see them (they are cache entries, or in the browsers): rotate from inside the app"
        );
    }
    if args.json {
        let keys: Vec<serde_json::Value> = census
            .keys
            .iter()
            .map(|(id, role, rows)| serde_json::json!({"key_id": id.to_string(), "role": role.as_str(), "rows": rows}))
            .collect();
        outln!(
            "{}",
            serde_json::json!({"keys": keys, "unverifiable": census.unverifiable, "expired": census.expired})
        );
    } else {
        for (id, role, rows) in &census.keys {
            outln!("{id}\t{role}\t{rows}");
        }
        outln!("unverifiable\t{}", census.unverifiable);
        outln!("expired\t{}", census.expired);
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn resign(args: ResignArgs) -> anyhow::Result<ExitCode> {
    check_counts(args.batch, args.jobs)?;
    let users_table = users_table(&args.table, args.users_table.as_ref())?;
    let ring = checked_ring(
        &args.keys,
        args.expect_primary.as_deref(),
        &args.table,
        users_table.as_deref(),
        "resign",
    )?;
    let rt = runtime()?;
    let tally = Arc::new(std::sync::Mutex::new(
        keyroll_store::ResignSummary::default(),
    ));
    let summary = rt.block_on(async {
        let store = args.table.open().await?;
        let opts = args.walk.apply(BulkOptions {
            salt: args.table.salt.clone(),
            batch: args.batch,
            jobs: args.jobs,
            dry_run: args.dry_run,
            users: users_table.map(Users::Table),
            tally: Some(Arc::clone(&tally)),
            ..BulkOptions::default()
        });
        let what = if args.dry_run {
            "resign (dry run)"
        } else {
            "resign"
        };
        let now = OffsetDateTime::now_utc();
        let counts = counted(store.as_ref(), &opts, now).await?;
        let opts = BulkOptions { counts, ..opts };
        let (bar, progress) = progress(what, expected(&opts, counts));
        let run = keyroll_store::resign(store, &ring, &opts, now, progress);
        // Ctrl-C: stop, and say what was done (every batch counted was
        // written); a rerun finishes the job.
        let s = tokio::select! {
            s = run => Some(s),
            _ = tokio::signal::ctrl_c() => None,
        };
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        anyhow::Ok(s.transpose()?)
    })?;
    let Some(summary) = summary else {
        let done = *tally
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        outln!("interrupted: {}", done.line());
        eprintln!(
            "keyroll: resign interrupted; what is counted above was written. Run the same \
             command again to finish (it re-signs only what is left)."
        );
        return Ok(ExitCode::from(130));
    };
    outln!("{}", summary.line());
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn purge(args: PurgeArgs) -> anyhow::Result<ExitCode> {
    let batch = match args.batch {
        None => keyroll_store::PurgeBatch::Timed(keyroll_store::PURGE_BATCH_TIME),
        Some(n) if (1..=keyroll_store::PURGE_BATCH_MAX).contains(&n) => {
            keyroll_store::PurgeBatch::Rows(n)
        }
        Some(_) => anyhow::bail!(
            "--batch must be between 1 and {}",
            keyroll_store::PURGE_BATCH_MAX
        ),
    };
    let rt = runtime()?;
    let purged = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let outcome = rt.block_on(async {
        let store = args.table.open().await?;
        let now = OffsetDateTime::now_utc();
        // The bar counts expired rows: they are what goes.
        let expired = if std::io::stderr().is_terminal() {
            store
                .count_rows(&keyroll_store::KeyRange::all(), now)
                .await
                .ok()
                .map(|c| c.expired)
        } else {
            None
        };
        let (bar, progress) = progress("purge", expired);
        let run = keyroll_store::purge(
            store.as_ref(),
            now,
            batch,
            args.max_rate,
            Arc::clone(&purged),
            progress,
        );
        // Ctrl-C: stop between batches; what was deleted is said.
        let r = tokio::select! {
            r = run => Some(r),
            _ = tokio::signal::ctrl_c() => None,
        };
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        anyhow::Ok(r.transpose()?)
    })?;
    let n = purged.load(std::sync::atomic::Ordering::Relaxed);
    if outcome.is_none() {
        outln!("interrupted: purged {n} expired sessions");
        return Ok(ExitCode::from(130));
    }
    outln!("purged {n} expired sessions");
    Ok(ExitCode::SUCCESS)
}
