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

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _};
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use reqwest::cookie::CookieStore as _;
use serde::Deserialize;
use tokio::io::AsyncWriteExt as _;
use tokio::process::{Child, Command};

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

/// What one drill run measured.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// `staged` or `naive`.
    pub scenario: String,
    /// `postgresql` or `redis`.
    pub store: String,
    /// Instances in the fleet.
    pub instances: usize,
    /// Simulated users.
    pub users: usize,
    /// Wall time from the first log-in to the end of the final check.
    pub seconds: f64,
    /// HTTP requests made.
    pub requests: u64,
    /// Of which writes (`POST /api/visit`).
    pub writes: u64,
    /// Of which log-ins.
    pub logins: u64,
    /// Users logged out at least once.
    pub users_logged_out: u64,
    /// Times a user found itself logged out.
    pub logout_events: u64,
    /// Requests that saw an error.
    pub error_requests: u64,
    /// Sessions lost, all causes.
    pub sessions_lost: u64,
    /// Of which: a session whose counter was not what the user wrote (still logged in).
    pub lost_writes: u64,
    /// Of which: sessions failing the final check or missing from the store.
    pub final_check_failures: u64,
    /// What was done when, with the figures so far.
    pub timeline: Vec<String>,
    /// The first few errors seen (no secrets: URLs, statuses, messages).
    pub first_errors: Vec<String>,
}

impl Report {
    /// No user logged out, no request failed, no session lost.
    pub fn is_clean(&self) -> bool {
        self.users_logged_out == 0 && self.error_requests == 0 && self.sessions_lost == 0
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "== {} rotation, {} store: {} instances, {} users, {:.1} s",
            self.scenario, self.store, self.instances, self.users, self.seconds
        )?;
        for line in &self.timeline {
            writeln!(f, "   {line}")?;
        }
        writeln!(
            f,
            "   requests made          {:>8}   ({} writes, {} log-ins)",
            self.requests, self.writes, self.logins
        )?;
        writeln!(
            f,
            "   users logged out       {:>8}   ({} log-out events)",
            self.users_logged_out, self.logout_events
        )?;
        writeln!(f, "   requests with an error {:>8}", self.error_requests)?;
        writeln!(
            f,
            "   sessions lost          {:>8}   ({} by log-out, {} lost a write, {} failed the final check)",
            self.sessions_lost,
            self.sessions_lost
                .saturating_sub(self.lost_writes + self.final_check_failures),
            self.lost_writes,
            self.final_check_failures
        )?;
        for e in &self.first_errors {
            writeln!(f, "   error: {e}")?;
        }
        Ok(())
    }
}

/// Counters every user task adds to.
#[derive(Default)]
struct Stats {
    requests: AtomicU64,
    writes: AtomicU64,
    logins: AtomicU64,
    users_logged_out: AtomicU64,
    logout_events: AtomicU64,
    errors: AtomicU64,
    sessions_lost: AtomicU64,
    lost_writes: AtomicU64,
    final_failures: AtomicU64,
    first_errors: Mutex<Vec<String>>,
}

impl Stats {
    fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    fn error(&self, what: String) {
        Self::add(&self.errors);
        let mut first = match self.first_errors.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if first.len() < 8 {
            first.push(what);
        }
    }

    fn so_far(&self) -> String {
        format!(
            "[requests {}, logged out {}, errors {}, sessions lost {}]",
            Self::get(&self.requests),
            Self::get(&self.users_logged_out),
            Self::get(&self.errors),
            Self::get(&self.sessions_lost)
        )
    }
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

fn random_lower(n: usize) -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rngs::OsRng;
    (0..n)
        .map(|_| {
            char::from(
                CHARS
                    .get(rng.gen_range(0..CHARS.len()))
                    .copied()
                    .unwrap_or(b'a'),
            )
        })
        .collect()
}

/// Writes a new file of mode 0600 (never over an existing one).
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)?;
    Ok(())
}

/// One running demo instance.
struct Instance {
    child: Child,
    base: String,
    ring: PathBuf,
}

impl Instance {
    fn pid(&self) -> anyhow::Result<String> {
        Ok(self
            .child
            .id()
            .context("the instance has exited")?
            .to_string())
    }
}

/// The answer of `/api/whoami` and `/api/visit`.
#[derive(Deserialize)]
struct Whoami {
    user: Option<String>,
    visits: u64,
}

/// The answer of `/api/ring`.
#[derive(Deserialize)]
struct RingState {
    primary_key_id: String,
    keys: Vec<RingKey>,
}

#[derive(Deserialize)]
struct RingKey {
    key_id: String,
    role: String,
}

impl RingState {
    fn role_of(&self, id: &str) -> Option<&str> {
        self.keys
            .iter()
            .find(|k| k.key_id == id)
            .map(|k| k.role.as_str())
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

async fn start_instance(
    cfg: &Config,
    names: &Names,
    ring: &Path,
    users: &Path,
    token_file: &Path,
    n: usize,
) -> anyhow::Result<Instance> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let dir = ring.parent().context("ring file directory")?;
    let log = std::fs::File::create(dir.join("instance.log"))?;
    let child = Command::new(&cfg.demo_bin)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--database")
        .arg(&cfg.database)
        .arg("--table")
        .arg(&names.table)
        .arg("--redis-prefix")
        .arg(&names.prefix)
        .arg("--keyring")
        .arg(ring)
        .arg("--users")
        .arg(users)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--operator-token-file")
        .arg(token_file)
        .args(["--mode", "server", "--watch-ms", "0"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting instance {n} ({})", cfg.demo_bin.display()))?;
    Ok(Instance {
        child,
        base: format!("http://127.0.0.1:{port}"),
        ring: ring.to_owned(),
    })
}

async fn wait_ready(control: &reqwest::Client, inst: &Instance) -> anyhow::Result<()> {
    for _ in 0..300 {
        if ring_state(control, inst).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!(
        "instance {} did not start (see its instance.log)",
        inst.base
    )
}

async fn stop_instance(inst: &mut Instance) {
    if let Ok(pid) = inst.pid() {
        let _ = Command::new("kill").args(["-TERM", &pid]).status().await;
        if tokio::time::timeout(Duration::from_secs(10), inst.child.wait())
            .await
            .is_ok()
        {
            return;
        }
    }
    let _ = inst.child.start_kill();
    let _ = inst.child.wait().await;
}

async fn ring_state(control: &reqwest::Client, inst: &Instance) -> anyhow::Result<RingState> {
    Ok(control
        .get(format!("{}/api/ring", inst.base))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?)
}

/// Runs the `keyroll` CLI with `args` then `paths`; `stdin` is piped in (a
/// secret travels only this way, never as an argument). Returns its stdout.
async fn keyroll(
    cfg: &Config,
    args: &[&str],
    paths: &[&Path],
    stdin: Option<&[u8]>,
) -> anyhow::Result<String> {
    let mut cmd = Command::new(&cfg.keyroll_bin);
    cmd.args(args);
    for p in paths {
        cmd.arg(p);
    }
    for v in [
        "SECRET_KEY",
        "SECRET_KEY_FALLBACKS",
        "OLD_SECRET_KEY",
        "KEYROLL_KEYRING",
    ] {
        cmd.env_remove(v);
    }
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .with_context(|| format!("running {}", cfg.keyroll_bin.display()))?;
    if let (Some(bytes), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(bytes).await?;
        drop(pipe);
    }
    let out = child.wait_with_output().await?;
    if !out.status.success() {
        // Only the subcommand: later arguments may hold a database URL.
        bail!(
            "keyroll {} failed: {}",
            args.iter().take(2).copied().collect::<Vec<_>>().join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `kill -HUP` the instance (its ring file changed), then waits until it
/// answers with a ring for which `done` holds.
async fn reload(
    control: &reqwest::Client,
    inst: &Instance,
    done: impl Fn(&RingState) -> bool,
) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let status = Command::new("kill")
        .args(["-HUP", &inst.pid()?])
        .status()
        .await?;
    ensure!(status.success(), "kill -HUP {} failed", inst.base);
    while start.elapsed() < Duration::from_secs(15) {
        if ring_state(control, inst).await.is_ok_and(|r| done(&r)) {
            return Ok(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!("instance {} did not load the new ring", inst.base)
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

/// One simulated user: its own cookie jar, one request at a time.
struct SimUser {
    name: String,
    password: String,
    jar: Arc<reqwest::cookie::Jar>,
    client: reqwest::Client,
    rng: StdRng,
    think: Duration,
    write_percent: u32,
    /// The session's visit counter as this user last saw it; `None` when unknown
    /// (a write whose answer was lost).
    expected: Option<u64>,
    logged_out_once: bool,
}

impl SimUser {
    fn new(name: String, password: String, cfg: &Config) -> anyhow::Result<Self> {
        let jar = Arc::new(reqwest::cookie::Jar::default());
        let client = reqwest::Client::builder()
            .cookie_provider(Arc::clone(&jar))
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()?;
        Ok(Self {
            name,
            password,
            jar,
            client,
            rng: StdRng::from_entropy(),
            think: cfg.think,
            write_percent: cfg.write_percent,
            expected: None,
            logged_out_once: false,
        })
    }

    fn pick<'a>(&mut self, bases: &'a [String]) -> &'a str {
        bases
            .get(self.rng.gen_range(0..bases.len()))
            .map_or("", String::as_str)
    }

    async fn think(&mut self) {
        let ms = self.think.as_secs_f64() * 1000.0 * self.rng.gen_range(0.5..1.5);
        tokio::time::sleep(Duration::from_micros((ms * 1000.0) as u64)).await;
    }

    /// Logs in on some instance (retrying a few times), and reads the
    /// session's counter there. False when the user gave up (every failed
    /// attempt is counted as an error request).
    async fn login(&mut self, bases: &[String], stats: &Stats) -> bool {
        for _ in 0..20 {
            let base = self.pick(bases);
            // The login form first: its CSRF token (a cookie and the same
            // value in the form), as a browser gets it.
            Stats::add(&stats.requests);
            let token = match self.csrf_token(base).await {
                Ok(t) => t,
                Err(e) => {
                    stats.error(format!("GET {base}/login: {e}"));
                    self.think().await;
                    continue;
                }
            };
            Stats::add(&stats.requests);
            Stats::add(&stats.logins);
            let form = [
                ("username", self.name.as_str()),
                ("password", self.password.as_str()),
                ("csrfmiddlewaretoken", token.as_str()),
            ];
            match self
                .client
                .post(format!("{base}/login"))
                .form(&form)
                .send()
                .await
            {
                Ok(r) if r.status() == reqwest::StatusCode::SEE_OTHER => {
                    match self.whoami(base, stats).await {
                        Some(w) if w.user.as_deref() == Some(self.name.as_str()) => {
                            self.expected = Some(w.visits);
                            return true;
                        }
                        Some(_) => {
                            stats.error(format!("{base}: not logged in right after logging in"))
                        }
                        None => {}
                    }
                }
                Ok(r) => stats.error(format!("POST {base}/login: {}", r.status())),
                Err(e) => stats.error(format!("POST {base}/login: {e}")),
            }
            self.think().await;
        }
        false
    }

    /// The login form's CSRF token (the page sets its cookie).
    async fn csrf_token(&self, base: &str) -> anyhow::Result<String> {
        let html = self
            .client
            .get(format!("{base}/login"))
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?;
        csrf_field(&html).context("no CSRF field on the login page")
    }

    async fn whoami(&self, base: &str, stats: &Stats) -> Option<Whoami> {
        Stats::add(&stats.requests);
        let r = self.client.get(format!("{base}/api/whoami")).send().await;
        answer(r, "GET", base, "/api/whoami", stats).await
    }

    /// One request: mostly a read of who am I, sometimes a write (a visit).
    /// False when the user was logged out and could not log in again.
    async fn step(&mut self, bases: &[String], stats: &Stats) -> bool {
        let base = self.pick(bases);
        let write = self.rng.gen_range(0..100) < self.write_percent;
        let got = if write {
            Stats::add(&stats.requests);
            Stats::add(&stats.writes);
            let r = self.client.post(format!("{base}/api/visit")).send().await;
            answer(r, "POST", base, "/api/visit", stats).await
        } else {
            self.whoami(base, stats).await
        };
        let Some(w) = got else {
            if write {
                self.expected = None; // the write may or may not have happened
            }
            return true;
        };
        if w.user.as_deref() != Some(self.name.as_str()) {
            Stats::add(&stats.logout_events);
            Stats::add(&stats.sessions_lost);
            if !self.logged_out_once {
                self.logged_out_once = true;
                Stats::add(&stats.users_logged_out);
            }
            return self.login(bases, stats).await;
        }
        if let Some(e) = self.expected {
            let want = if write { e + 1 } else { e };
            if w.visits != want {
                Stats::add(&stats.lost_writes);
                Stats::add(&stats.sessions_lost);
            }
        }
        self.expected = Some(w.visits);
        true
    }

    /// After the load: the same user with the same counter on every instance,
    /// and the session's row still in the store.
    async fn final_check(
        &mut self,
        bases: &[String],
        store: &dyn keyroll_store::Store,
        stats: &Stats,
    ) {
        let mut ok = true;
        for base in bases {
            match self.whoami(base, stats).await {
                Some(w) if w.user.as_deref() == Some(self.name.as_str()) => {
                    if self.expected.is_some_and(|e| e != w.visits) {
                        ok = false;
                    }
                    self.expected = Some(w.visits);
                }
                _ => ok = false,
            }
        }
        let key = bases.first().and_then(|b| session_key(&self.jar, b));
        let in_store = match key {
            Some(key) => store
                .load(&key, time::OffsetDateTime::now_utc())
                .await
                .is_ok_and(|r| r.is_some()),
            None => false,
        };
        if !(ok && in_store) {
            Stats::add(&stats.final_failures);
            Stats::add(&stats.sessions_lost);
        }
    }
}

/// A JSON answer, or `None` after counting the error.
async fn answer(
    r: reqwest::Result<reqwest::Response>,
    method: &str,
    base: &str,
    path: &str,
    stats: &Stats,
) -> Option<Whoami> {
    match r {
        Ok(r) if r.status().is_success() => match r.json::<Whoami>().await {
            Ok(w) => Some(w),
            Err(e) => {
                stats.error(format!("{method} {base}{path}: {e}"));
                None
            }
        },
        Ok(r) => {
            stats.error(format!("{method} {base}{path}: {}", r.status()));
            None
        }
        Err(e) => {
            stats.error(format!("{method} {base}{path}: {e}"));
            None
        }
    }
}

/// The value of a page's hidden `csrfmiddlewaretoken` field.
fn csrf_field(html: &str) -> Option<String> {
    const FIELD: &str = r#"name="csrfmiddlewaretoken" value=""#;
    let rest = html.get(html.find(FIELD)? + FIELD.len()..)?;
    Some(rest.get(..rest.find('"')?)?.to_owned())
}

/// The `sessionid` cookie the jar would send to `base`.
fn session_key(jar: &reqwest::cookie::Jar, base: &str) -> Option<String> {
    let url: reqwest::Url = base.parse().ok()?;
    let header = jar.cookies(&url)?;
    header.to_str().ok()?.split("; ").find_map(|c| {
        c.strip_prefix("sessionid=")
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    })
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
