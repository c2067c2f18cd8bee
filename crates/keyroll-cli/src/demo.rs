//! `keyroll demo`: a whole key rotation on a session store, with a report of
//! what happened to the users.

use std::collections::HashMap;
use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use keyroll::ringfile::{RingFile, DEFAULT_SECRET_LEN};
use keyroll::{
    KeyRing, SessionAuthHash, SessionCodec, SessionData, SESSION_USER_BACKEND, SESSION_USER_HASH,
    SESSION_USER_ID,
};
use keyroll_store::{open_store, BulkOptions, Progress, SessionEngine, StoreOptions, Users};
use rand::Rng as _;
use serde_json::{json, Value};
use time::OffsetDateTime;

#[derive(Args, Debug)]
pub(crate) struct DemoArgs {
    /// How many sessions to create.
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    sessions: usize,
    /// Store URL (default: a new SQLite file in a temporary directory, removed afterwards).
    #[arg(long, value_name = "URL")]
    database: Option<String>,
    /// Percentage of users who visit between the promotion and the bulk re-sign.
    #[arg(long, default_value_t = 30, value_name = "PERCENT")]
    visit_percent: u8,
}

struct User {
    id: String,
    password: String,
}

struct Session {
    key: String,
    user: Option<usize>,
}

/// The step lines, and a progress bar per step on a terminal.
struct Report {
    /// When the demo started: the total is the real wall time, set-up and clean-up included.
    started: Instant,
    /// Whether stderr is a terminal (progress bars are drawn only there).
    bars: bool,
}

impl Report {
    /// A progress bar for a step of `len` units (hidden unless stderr is a terminal).
    fn bar(&self, what: &str, len: u64) -> ProgressBar {
        if !self.bars {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new(len);
        bar.set_style(
            ProgressStyle::with_template(
                "{msg} [{wide_bar}] {human_pos}/{human_len} ({elapsed}, {eta} left)",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_message(what.to_owned());
        bar.enable_steady_tick(Duration::from_millis(200));
        bar.tick();
        bar
    }

    /// Ends a step: clears its bar, prints its line with the time it took.
    fn step(&self, bar: &ProgressBar, name: &str, started: Instant, result: &str) {
        bar.finish_and_clear();
        println!(
            "{:<38} {:>9}  {result}",
            name,
            format!("{:.2} s", started.elapsed().as_secs_f64())
        );
    }
}

/// Feeds a bulk census or re-sign's row counts to a bar.
fn progress_of(bar: &ProgressBar) -> Option<Progress> {
    if bar.is_hidden() {
        return None;
    }
    let b = bar.clone();
    Some(Arc::new(move |n| b.inc(n)))
}

const BACKEND: &str = "django.contrib.auth.backends.ModelBackend";

pub(crate) fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    if args.sessions == 0 || args.sessions > 10_000_000 {
        bail!("--sessions must be between 1 and 10000000");
    }
    if args.visit_percent > 100 {
        bail!("--visit-percent must be between 0 and 100");
    }
    let tmp = match &args.database {
        Some(_) => None,
        None => {
            let dir = std::env::temp_dir().join(format!(
                "keyroll-demo-{}-{:08x}",
                std::process::id(),
                rand::thread_rng().gen::<u32>()
            ));
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            Some(dir)
        }
    };
    let url = match (&args.database, &tmp) {
        (Some(u), _) => u.clone(),
        (None, Some(dir)) => format!("sqlite://{}", dir.join("demo.db").display()),
        (None, None) => bail!("no database"),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let report = Report {
        started,
        bars: std::io::stderr().is_terminal(),
    };
    let result = rt.block_on(demo(&args, &url, tmp.is_some(), &report));
    if let Some(dir) = tmp {
        let _ = std::fs::remove_dir_all(dir);
    }
    let lost = result?;
    Ok(if lost == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn demo(args: &DemoArgs, url: &str, own_file: bool, report: &Report) -> anyhow::Result<u64> {
    let n = args.sessions;
    // A table (or Redis key prefix) of its own, so the demo never touches real sessions.
    let table = format!(
        "keyroll_demo_{:06x}",
        rand::thread_rng().gen::<u32>() & 0xff_ffff
    );
    let redis_prefix = format!("keyroll:{table}");
    let store = open_store(
        url,
        &StoreOptions {
            table: table.clone(),
            redis_prefix: redis_prefix.clone(),
            ..StoreOptions::default()
        },
    )
    .await
    .context("cannot open the demo store")?;
    store.ensure_schema().await?;
    let shown_url = url
        .split_once('@')
        .map_or(url.to_owned(), |(_, host)| format!("…@{host}"));
    let place = if store.backend() == "redis" {
        format!("key prefix {redis_prefix}:")
    } else {
        format!("table {table}")
    };
    println!("keyroll demo: {n} sessions in {shown_url} ({place})\n");
    println!("{:<38} {:>9}  result", "step", "time");

    let now = || OffsetDateTime::now_utc();
    let mut ring_file = RingFile::generate(now(), DEFAULT_SECRET_LEN);
    let ring_a = ring_file.ring()?;
    let key_a = ring_a.primary().id();
    let engine = Arc::new(SessionEngine::new(Arc::clone(&store), &ring_a));
    let rows = n as u64;

    // 1. Sessions under key A: most logged in, some anonymous.
    const SAMPLE: usize = 1000;
    let t = Instant::now();
    let name = "1. sessions created under key A";
    let bar = report.bar(name, rows + n.min(SAMPLE) as u64);
    let (users, sessions) = create_sessions(&engine, &ring_a, n, &bar).await?;
    let logged_in = sessions.iter().filter(|s| s.user.is_some()).count();
    // Keep some rows exactly as written under A, to show what a naive rotation does to them.
    let mut original_rows = Vec::new();
    for s in sessions.iter().take(SAMPLE) {
        if let Some(r) = store.load(&s.key, now()).await? {
            original_rows.push(r.data);
        }
        bar.inc(1);
    }
    report.step(
        &bar,
        name,
        t,
        &format!("{n} sessions ({logged_in} logged in), key {key_a}"),
    );

    // 2. Stage B: every server learns it before it signs anything.
    let t = Instant::now();
    let key_b = ring_file.stage(now(), DEFAULT_SECRET_LEN);
    engine.set_ring(&ring_file.ring()?);
    report.step(
        &ProgressBar::hidden(),
        "2. key B staged on every server",
        t,
        &format!("{key_b} verifies; {key_a} still signs"),
    );

    // 3. Promote B: it signs; A verifies during the grace period.
    let t = Instant::now();
    let grace = Duration::from_secs(30 * 86_400);
    ring_file.promote(Some(key_b), grace, Duration::ZERO, true, now())?;
    let ring_b_a = ring_file.ring()?;
    engine.set_ring(&ring_b_a);
    report.step(
        &ProgressBar::hidden(),
        "3. key B promoted",
        t,
        &format!("{key_b} signs; {key_a} verifies for 30 days"),
    );

    // 4. Some users visit: their sessions are re-signed on read, and (as the
    //    web layer does) a stale login hash is re-made under B.
    let t = Instant::now();
    let visitors = n * usize::from(args.visit_percent) / 100;
    let name = format!("4. {}% of users visit", args.visit_percent);
    let bar = report.bar(&name, visitors as u64);
    let auth = SessionAuthHash::new(&ring_b_a);
    let (mut on_read, mut rehashed) = (0u64, 0u64);
    for s in sessions.iter().take(visitors) {
        bar.inc(1);
        let Some(loaded) = engine.load(&s.key, now()).await?.into_loaded() else {
            continue;
        };
        on_read += u64::from(loaded.resigned);
        if let Some(u) = s.user.and_then(|i| users.get(i)) {
            let mut data = (*loaded.data).clone();
            let stored = data
                .get(SESSION_USER_HASH)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            if let Ok(v) = auth.check_at(&stored, &u.password, now()) {
                if v.is_stale() {
                    data.insert(
                        SESSION_USER_HASH.into(),
                        Value::String(auth.make(&u.password)),
                    );
                    if engine.save(&s.key, &data, loaded.expires, now()).await?
                        == keyroll_store::Saved::Updated
                    {
                        rehashed += 1;
                    }
                }
            }
        }
    }
    report.step(
        &bar,
        &name,
        t,
        &format!("{on_read} re-signed on read, {rehashed} logins re-hashed"),
    );

    // 5. Bulk re-sign of everyone else (the users' current password hashes come from the app).
    let t = Instant::now();
    let name = "5. bulk re-sign of the rest";
    let bar = report.bar(name, rows);
    let passwords: HashMap<String, String> = users
        .iter()
        .map(|u| (u.id.clone(), u.password.clone()))
        .collect();
    let opts = BulkOptions {
        batch: 1000,
        users: Some(Users::Map(Arc::new(passwords))),
        ..BulkOptions::default()
    };
    let summary = keyroll_store::resign(
        Arc::clone(&store),
        &ring_b_a,
        &opts,
        now(),
        progress_of(&bar),
    )
    .await?;
    report.step(&bar, name, t, &summary.line());

    // 6. Census: does any live session still depend on A?
    let t = Instant::now();
    let name = "6. census";
    let bar = report.bar(name, rows);
    let census = keyroll_store::census(
        Arc::clone(&store),
        &ring_b_a,
        &BulkOptions::default(),
        now(),
        progress_of(&bar),
    )
    .await?;
    let on_a = census.keys.iter().find(|k| k.0 == key_a).map_or(0, |k| k.2);
    let on_b = census.keys.iter().find(|k| k.0 == key_b).map_or(0, |k| k.2);
    let safe = census.safe_to_retire(key_a);
    report.step(
        &bar,
        name,
        t,
        &format!(
            "{key_b}: {on_b} rows, {key_a}: {on_a} rows, unverifiable {} → {}",
            census.unverifiable,
            if safe {
                "safe to retire A"
            } else {
                "NOT safe to retire A"
            }
        ),
    );

    // 7. Retire A.
    let t = Instant::now();
    ring_file.retire(key_a)?;
    let ring_b = ring_file.ring()?;
    engine.set_ring(&ring_b);
    report.step(
        &ProgressBar::hidden(),
        "7. key A retired",
        t,
        &format!("ring: {key_b} only"),
    );

    // 8. Everyone comes back.
    let t = Instant::now();
    let name = "8. every user comes back";
    let bar = report.bar(name, rows);
    let final_auth = SessionAuthHash::new(&ring_b);
    let (mut kept, mut lost, mut logins_kept, mut logins_lost) = (0u64, 0u64, 0u64, 0u64);
    for s in &sessions {
        bar.inc(1);
        match engine.load(&s.key, now()).await?.into_loaded() {
            Some(loaded) => {
                kept += 1;
                if let Some(u) = s.user.and_then(|i| users.get(i)) {
                    let stored = loaded
                        .data
                        .get(SESSION_USER_HASH)
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    if final_auth.check_at(stored, &u.password, now()).is_ok() {
                        logins_kept += 1;
                    } else {
                        logins_lost += 1;
                    }
                }
            }
            None => {
                lost += 1;
                if s.user.is_some() {
                    logins_lost += 1;
                }
            }
        }
    }
    report.step(
        &bar,
        name,
        t,
        &format!("{kept} of {n} sessions kept, {logins_kept} of {logged_in} logins kept"),
    );

    // The contrast: the same rows under a naive rotation (B alone, no fallback).
    let naive = naive_losses(&ring_b, &original_rows);

    // Clean up what the demo wrote: every demo row expires within 14 days, so a
    // purge as of a year from now deletes them all, in a few large statements
    // (the table or key prefix holds nothing but the demo's rows).
    let t = Instant::now();
    let name = "cleanup";
    let bar = report.bar(name, 1);
    let deleted = store
        .purge_expired(now() + time::Duration::days(365))
        .await
        .context("cannot delete the demo's sessions")?;
    bar.inc(1);
    report.step(&bar, name, t, &format!("{deleted} demo sessions deleted"));

    let total = report.started.elapsed().as_secs_f64();
    println!();
    println!("sessions kept: {kept}   sessions lost: {lost}   logins kept: {logins_kept}   logins lost: {logins_lost}   ({total:.2} s in all)");
    println!(
        "a naive rotation (SECRET_KEY = B, no fallback) logs out everyone: {} of {} sampled sessions signed by A fail under B alone",
        naive.0, naive.1
    );
    if store.backend() != "redis" && !own_file {
        println!("note: the empty table {table} is left in the database; drop it when done");
    }
    Ok(lost + logins_lost)
}

async fn create_sessions(
    engine: &Arc<SessionEngine>,
    ring: &KeyRing,
    n: usize,
    bar: &ProgressBar,
) -> anyhow::Result<(Vec<User>, Vec<Session>)> {
    let auth = SessionAuthHash::new(ring);
    let mut rng = rand::thread_rng();
    let mut users = Vec::new();
    let mut plans = Vec::with_capacity(n);
    for i in 0..n {
        let mut data = SessionData::new();
        let user = if i % 10 < 7 {
            let id = (users.len() + 1).to_string();
            let password = format!(
                "pbkdf2_sha256$870000${:016x}${:032x}",
                rng.gen::<u64>(),
                rng.gen::<u128>()
            );
            data.insert(SESSION_USER_ID.into(), Value::String(id.clone()));
            data.insert(SESSION_USER_BACKEND.into(), Value::String(BACKEND.into()));
            data.insert(
                SESSION_USER_HASH.into(),
                Value::String(auth.make(&password)),
            );
            users.push(User { id, password });
            Some(users.len() - 1)
        } else {
            None
        };
        data.insert(
            "cart".into(),
            json!((0..rng.gen_range(0..4))
                .map(|_| rng.gen_range(1..500))
                .collect::<Vec<u32>>()),
        );
        data.insert(
            "theme".into(),
            json!(if rng.gen_bool(0.5) { "dark" } else { "light" }),
        );
        plans.push((data, user));
    }
    let now = OffsetDateTime::now_utc();
    let expires = now + time::Duration::days(14);
    // Create concurrently, a few at a time.
    let mut sessions = Vec::with_capacity(n);
    for chunk in plans.chunks(64) {
        let mut set = tokio::task::JoinSet::new();
        for (idx, (data, user)) in chunk.iter().cloned().enumerate() {
            let engine = Arc::clone(engine);
            set.spawn(async move { (idx, engine.create(&data, expires, now).await, user) });
        }
        let mut done = Vec::with_capacity(chunk.len());
        while let Some(r) = set.join_next().await {
            let (idx, key, user) = r.context("a create task failed")?;
            done.push((idx, key?, user));
        }
        done.sort_by_key(|d| d.0);
        bar.inc(done.len() as u64);
        sessions.extend(done.into_iter().map(|(_, key, user)| Session { key, user }));
    }
    Ok((users, sessions))
}

/// How many of these rows (written under A) fail under a ring of B alone.
fn naive_losses(ring_b: &KeyRing, rows: &[String]) -> (usize, usize) {
    let now = OffsetDateTime::now_utc();
    let b = SessionCodec::database(ring_b);
    let failed = rows
        .iter()
        .filter(|row| b.decode_at(row, now).is_err())
        .count();
    (failed, rows.len())
}
