//! The rolling-rotation drill: a fleet of demo instances sharing one session
//! store, a few hundred simulated users hopping between them (as behind a
//! load balancer), and a key rotation played on the fleet while the load
//! runs — the way an operator plays it: each instance has its own ring file,
//! changed with the `keyroll ring …` command, then `kill -HUP` to reload it.
//! The drill reads each instance's ring from `/api/ring` with the fleet's
//! operator token (a file of mode 0600 every instance is given).
//!
//! Two rotations:
//!
//! - [`Scenario::Staged`]: key B is staged on every instance (the same secret,
//!   `keyroll ring stage --secret-stdin`), then promoted instance by instance,
//!   the rest of the sessions re-signed in bulk (`keyroll resign`) after a
//!   grace period, then key A retired everywhere.
//! - [`Scenario::Naive`], for contrast: B is staged and promoted at once on one
//!   instance at a time, so instances that do not know B yet meet sessions
//!   signed by it. The same tail (resign, retire) follows.
//!
//! What is counted (see [`Report`]):
//!
//! - **requests**: every HTTP request a user made (log-ins — the login form's
//!   GET for its CSRF token, then the POST —, reads, writes, and the final check);
//! - **error requests**: requests that failed to connect or complete, or were
//!   answered with a status other than 2xx (a log-in's 303 is its success);
//! - **users logged out**: users who, at least once, were answered as somebody
//!   else or nobody while holding a session that had identified them (each
//!   user counted once; they log in again and carry on);
//! - **sessions lost**: sessions a user could no longer use or that lost
//!   data — every log-out ends one; a session whose visit counter is not what
//!   the user wrote into it lost a write; and at the end, every user's session
//!   is checked on every instance (same user, same counter) and its row must
//!   still be in the store.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _};

mod fleet;
mod report;
mod users;

use fleet::*;
pub use report::Report;
use report::*;
use users::*;

/// Which rotation the drill plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// Stage B everywhere, promote instance by instance, re-sign, retire A.
    Staged,
    /// Stage-and-promote B on one instance at a time, no fleet-wide staging.
    Naive,
}

impl Scenario {
    /// `staged` or `naive`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Staged => "staged",
            Self::Naive => "naive",
        }
    }
}

/// What the drill runs.
#[derive(Clone, Debug)]
pub struct Config {
    /// The `keyroll-demo` binary.
    pub demo_bin: PathBuf,
    /// The `keyroll` binary (the CLI operators run).
    pub keyroll_bin: PathBuf,
    /// The shared session store: `postgres://…` or `redis://…`. A table /
    /// key prefix of its own is made for each run and dropped afterwards.
    pub database: String,
    /// Instances of the demo (each on its own loopback port, with its own ring file).
    pub instances: usize,
    /// Simulated users.
    pub users: usize,
    /// Length of each phase: warm-up, the wait after each change, the grace period, the tail.
    pub phase: Duration,
    /// Mean pause between two requests of one user (each pause is 0.5–1.5× this).
    pub think: Duration,
    /// Share of requests that write to the session, in percent.
    pub write_percent: u32,
    /// Where ring files, the users file and instance logs go (made if missing).
    pub work_dir: PathBuf,
}

/// Runs one scenario on one store, from an empty table to its cleanup.
///
/// # Errors
/// When the fleet cannot be set up or a ring change fails (the figures are
/// then meaningless); the per-run table / key prefix is dropped either way.
pub async fn run(cfg: &Config, scenario: Scenario) -> anyhow::Result<Report> {
    ensure!(cfg.instances >= 2, "a fleet needs at least 2 instances");
    ensure!(cfg.users >= 1, "at least one user");
    // Instances run in directories of their own: a relative binary path would not be found.
    let mut cfg = cfg.clone();
    cfg.demo_bin = std::path::absolute(&cfg.demo_bin)?;
    cfg.keyroll_bin = std::path::absolute(&cfg.keyroll_bin)?;
    let cfg = &cfg;
    let store = store_name(&cfg.database)?;
    let name = format!("kr_drill_{}", random_lower(12));
    let names = Names {
        table: name.clone(),
        prefix: format!("{name}:session"),
    };
    let dir = cfg
        .work_dir
        .join(format!("{}-{store}-{name}", scenario.name()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    // Dropped before it is disarmed (an error, a panic, Ctrl-C cancelling the
    // future): cleans up from a thread of its own.
    let mut guard = CleanupGuard(Some((cfg.database.clone(), names)));
    let names = guard.0.as_ref().map(|(_, n)| n).context("names")?;
    let result = run_in(cfg, scenario, store, names, &dir).await;
    let cleaned = cleanup(&cfg.database, names).await;
    guard.0 = None;
    let report = result?;
    cleaned.context("dropping the drill's table / keys")?;
    Ok(report)
}

struct CleanupGuard(Option<(String, Names)>);

impl Drop for CleanupGuard {
    fn drop(&mut self) {
        let Some((url, names)) = self.0.take() else {
            return;
        };
        let job = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(rt) = rt {
                if let Err(e) = rt.block_on(cleanup(&url, &names)) {
                    eprintln!("rolling-rotation: cleanup of {}: {e:#}", names.table);
                }
            }
        });
        let _ = job.join();
    }
}

struct Names {
    table: String,
    prefix: String,
}

fn store_name(url: &str) -> anyhow::Result<&'static str> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok("postgresql")
    } else if url.starts_with("redis://") || url.starts_with("rediss://") {
        Ok("redis")
    } else {
        bail!("the drill shares a PostgreSQL or Redis store: give postgres://… or redis://…")
    }
}

async fn run_in(
    cfg: &Config,
    scenario: Scenario,
    store: &'static str,
    names: &Names,
    dir: &Path,
) -> anyhow::Result<Report> {
    // The operator token every instance reads (`--operator-token-file`); the
    // drill's control client sends it to `/api/ring`, the users never have it.
    let token_file = dir.join("operator-token");
    let token = random_lower(48);
    write_private(&token_file, token.as_bytes())?;
    let mut auth = reqwest::header::HeaderValue::try_from(format!("Bearer {token}"))?;
    auth.set_sensitive(true);
    let control = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .default_headers(reqwest::header::HeaderMap::from_iter([(
            reqwest::header::AUTHORIZATION,
            auth,
        )]))
        .build()?;

    // Key A: one ring file made with `keyroll ring init`, deployed (copied) to every instance.
    let first_ring = dir.join("instance-1").join("ring.toml");
    std::fs::create_dir_all(dir.join("instance-1"))?;
    keyroll(cfg, &["ring", "init"], &[&first_ring], None).await?;
    let mut rings = vec![first_ring.clone()];
    for i in 2..=cfg.instances {
        let d = dir.join(format!("instance-{i}"));
        std::fs::create_dir_all(&d)?;
        let ring = d.join("ring.toml");
        std::fs::copy(&first_ring, &ring)?; // keeps mode 0600
        rings.push(ring);
    }

    // The fleet's users: one users file every instance reads.
    let users_file = dir.join("users.json");
    let creds: Vec<(String, String)> = (1..=cfg.users)
        .map(|i| (format!("drill-user-{i}"), random_lower(20)))
        .collect();
    crate::write_users_file(&users_file, &creds)?;

    // The instances, one after the other (the first creates the table).
    let mut fleet = Vec::new();
    for (i, ring) in rings.iter().enumerate() {
        let inst = start_instance(cfg, names, ring, &users_file, &token_file, i + 1).await?;
        wait_ready(&control, &inst).await?;
        fleet.push(inst);
    }
    let result = play(cfg, scenario, store, names, &control, &fleet, creds).await;
    for inst in &mut fleet {
        stop_instance(inst).await;
    }
    result
}

/// The drill proper: users log in, the rotation is played, users stop, the final check.
async fn play(
    cfg: &Config,
    scenario: Scenario,
    store: &'static str,
    names: &Names,
    control: &reqwest::Client,
    fleet: &[Instance],
    creds: Vec<(String, String)>,
) -> anyhow::Result<Report> {
    let stats = Arc::new(Stats::default());
    let stop = Arc::new(AtomicBool::new(false));
    let _stop_on_exit = StopOnDrop(Arc::clone(&stop));
    let bases: Arc<Vec<String>> = Arc::new(fleet.iter().map(|i| i.base.clone()).collect());
    let start = Instant::now();
    let mut timeline = Vec::new();
    let mark = |timeline: &mut Vec<String>, what: &str| {
        let line = format!(
            "+{:5.1}s  {what}  {}",
            start.elapsed().as_secs_f64(),
            stats.so_far()
        );
        eprintln!("rolling-rotation: {} {store}: {line}", scenario.name());
        timeline.push(line);
    };

    // Every user logs in, then keeps making requests until told to stop.
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(creds.len());
    let mut tasks = Vec::new();
    for (name, password) in creds {
        let mut user = SimUser::new(name, password, cfg)?;
        let (stats, stop, bases, ready) = (
            Arc::clone(&stats),
            Arc::clone(&stop),
            Arc::clone(&bases),
            ready_tx.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut logged_in = user.login(&bases, &stats).await;
            let _ = ready.send(()).await;
            drop(ready);
            while logged_in && !stop.load(Ordering::Relaxed) {
                user.think().await;
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                logged_in = user.step(&bases, &stats).await;
            }
            user
        }));
    }
    drop(ready_tx);
    for _ in 0..tasks.len() {
        if ready_rx.recv().await.is_none() {
            break;
        }
    }
    mark(&mut timeline, "every user logged in; warm-up");
    tokio::time::sleep(cfg.phase).await;

    // Key B: generated once by the operator (`keyroll keygen`), copied to every server.
    let secret_b = keyroll(cfg, &["keygen"], &[], None).await?;
    let first = fleet.first().context("an empty fleet")?;
    let a = ring_state(control, first).await?.primary_key_id;
    let rotation = rotate(cfg, scenario, control, fleet, &secret_b, &a, &mut |what| {
        mark(&mut timeline, what)
    })
    .await;
    drop(secret_b);
    let b = match rotation {
        Ok(b) => b,
        Err(e) => {
            stop.store(true, Ordering::Relaxed);
            for t in tasks {
                let _ = t.await;
            }
            return Err(e);
        }
    };

    // Every session not re-signed yet by a visit, re-signed in bulk, then A retired.
    let resign = keyroll(
        cfg,
        &[
            "resign",
            "--database",
            &cfg.database,
            "--table",
            &names.table,
            "--redis-prefix",
            &names.prefix,
            "--keyring",
        ],
        &[&first.ring],
        None,
    )
    .await?;
    mark(
        &mut timeline,
        &format!("keyroll resign (fleet ring): {}", resign.trim()),
    );
    for (i, inst) in fleet.iter().enumerate() {
        keyroll(cfg, &["ring", "retire"], &[&inst.ring, Path::new(&a)], None).await?;
        let took = reload(control, inst, |r| r.role_of(&a).is_none()).await?;
        mark(
            &mut timeline,
            &format!(
                "instance {}: retired A {a} (ring file + SIGHUP; reloaded in {} ms)",
                i + 1,
                took.as_millis()
            ),
        );
    }
    tokio::time::sleep(cfg.phase).await;
    stop.store(true, Ordering::Relaxed);
    let mut users = Vec::new();
    for t in tasks {
        users.push(t.await.context("a user task panicked")?);
    }
    mark(&mut timeline, "load stopped; final check on every instance");

    // The final check: every user, on every instance, and the row in the store.
    let opts = keyroll_store::StoreOptions {
        table: names.table.clone(),
        redis_prefix: names.prefix.clone(),
        pool_size: 2,
    };
    let checker = keyroll_store::open_store(&cfg.database, &opts).await?;
    for user in &mut users {
        user.final_check(&bases, checker.as_ref(), &stats).await;
    }
    mark(&mut timeline, &format!("done (primary everywhere: B {b})"));

    let first_errors = match stats.first_errors.lock() {
        Ok(g) => g.clone(),
        Err(p) => p.into_inner().clone(),
    };
    Ok(Report {
        scenario: scenario.name().to_owned(),
        store: store.to_owned(),
        instances: fleet.len(),
        users: users.len(),
        seconds: start.elapsed().as_secs_f64(),
        requests: Stats::get(&stats.requests),
        writes: Stats::get(&stats.writes),
        logins: Stats::get(&stats.logins),
        users_logged_out: Stats::get(&stats.users_logged_out),
        logout_events: Stats::get(&stats.logout_events),
        error_requests: Stats::get(&stats.errors),
        sessions_lost: Stats::get(&stats.sessions_lost),
        lost_writes: Stats::get(&stats.lost_writes),
        final_check_failures: Stats::get(&stats.final_failures),
        timeline,
        first_errors,
    })
}

/// Tells the user tasks to stop when the drill ends early.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Stages and promotes B on the fleet as the scenario says; returns B's key id.
async fn rotate(
    cfg: &Config,
    scenario: Scenario,
    control: &reqwest::Client,
    fleet: &[Instance],
    secret_b: &str,
    a: &str,
    mark: &mut dyn FnMut(&str),
) -> anyhow::Result<String> {
    let stage = |ring: &Path| {
        let ring = ring.to_owned();
        async move {
            let id = keyroll(
                cfg,
                &["ring", "stage", "--secret-stdin"],
                &[&ring],
                Some(secret_b.as_bytes()),
            )
            .await?;
            anyhow::Ok(id.trim().to_owned())
        }
    };
    let promote = |ring: &Path, b: &str| {
        let (ring, b) = (ring.to_owned(), b.to_owned());
        async move {
            keyroll(
                cfg,
                &["ring", "promote", "--grace", "1h"],
                &[&ring, Path::new(&b)],
                None,
            )
            .await
        }
    };
    let mut b = String::new();
    if scenario == Scenario::Staged {
        for (i, inst) in fleet.iter().enumerate() {
            b = stage(&inst.ring).await?;
            let took = reload(control, inst, |r| r.role_of(&b) == Some("staged")).await?;
            mark(&format!(
                "instance {}: staged B {b} (keyroll ring stage --secret-stdin + SIGHUP; reloaded in {} ms)",
                i + 1,
                took.as_millis()
            ));
        }
        tokio::time::sleep(cfg.phase).await;
    }
    for (i, inst) in fleet.iter().enumerate() {
        if scenario == Scenario::Naive {
            b = stage(&inst.ring).await?;
        }
        promote(&inst.ring, &b).await?;
        let took = reload(control, inst, |r| {
            r.primary_key_id == b && r.role_of(a) == Some("fallback")
        })
        .await?;
        let how = match scenario {
            Scenario::Staged => "keyroll ring promote",
            Scenario::Naive => "keyroll ring stage + promote at once",
        };
        mark(&format!(
            "instance {}: B {b} primary, A {a} fallback ({how} + SIGHUP; reloaded in {} ms)",
            i + 1,
            took.as_millis()
        ));
        tokio::time::sleep(cfg.phase).await;
    }
    Ok(b)
}

/// Drops the run's table (PostgreSQL) or deletes its keys (Redis).
async fn cleanup(url: &str, names: &Names) -> anyhow::Result<()> {
    if url.starts_with("redis") {
        let client = redis::Client::open(url)?;
        let mut con = client.get_multiplexed_async_connection().await?;
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}*", names.table))
            .query_async(&mut con)
            .await?;
        for chunk in keys.chunks(500) {
            redis::cmd("DEL").arg(chunk).exec_async(&mut con).await?;
        }
    } else {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
        let conn = tokio::spawn(conn);
        client
            .batch_execute(&format!("DROP TABLE IF EXISTS \"{}\"", names.table))
            .await?;
        drop(client);
        let _ = conn.await;
    }
    Ok(())
}
