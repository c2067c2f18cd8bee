//! The fleet: starting, reloading and stopping demo instances, and the
//! `keyroll ring …` commands played on their ring files.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _};
use rand::Rng as _;
use serde::Deserialize;
use tokio::io::AsyncWriteExt as _;
use tokio::process::{Child, Command};

use super::*;

pub(super) fn random_lower(n: usize) -> String {
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
pub(super) fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
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
pub(super) struct Instance {
    pub(super) child: Child,
    pub(super) base: String,
    pub(super) ring: PathBuf,
}

impl Instance {
    pub(super) fn pid(&self) -> anyhow::Result<String> {
        Ok(self
            .child
            .id()
            .context("the instance has exited")?
            .to_string())
    }
}

/// The answer of `/api/whoami` and `/api/visit`.
#[derive(Deserialize)]
pub(super) struct Whoami {
    pub(super) user: Option<String>,
    pub(super) visits: u64,
}

/// The answer of `/api/ring`.
#[derive(Deserialize)]
pub(super) struct RingState {
    pub(super) primary_key_id: String,
    pub(super) keys: Vec<RingKey>,
}

#[derive(Deserialize)]
pub(super) struct RingKey {
    pub(super) key_id: String,
    pub(super) role: String,
}

impl RingState {
    pub(super) fn role_of(&self, id: &str) -> Option<&str> {
        self.keys
            .iter()
            .find(|k| k.key_id == id)
            .map(|k| k.role.as_str())
    }
}

pub(super) async fn start_instance(
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

pub(super) async fn wait_ready(control: &reqwest::Client, inst: &Instance) -> anyhow::Result<()> {
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

pub(super) async fn stop_instance(inst: &mut Instance) {
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

pub(super) async fn ring_state(
    control: &reqwest::Client,
    inst: &Instance,
) -> anyhow::Result<RingState> {
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
pub(super) async fn keyroll(
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
pub(super) async fn reload(
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
