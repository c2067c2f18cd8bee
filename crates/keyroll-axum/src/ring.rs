//! The running key ring: shared, swapped atomically, reloaded from its file.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use keyroll::ringfile::{OpenOptions, RingFile, RingFileError};
use keyroll::KeyRing;
use keyroll_store::{PreparedRing, RingSource, SessionEngine};

type Subscriber = Box<dyn Fn(&KeyRing) + Send + Sync>;

struct Inner {
    current: ArcSwap<PreparedRing>,
    subscribers: Mutex<Vec<Subscriber>>,
    /// Held while a ring file is read and applied, so two reloads (the
    /// watcher and SIGHUP, say) cannot apply an older read after a newer one.
    file_lock: Mutex<()>,
}

/// The key ring a running service signs and verifies with. Cheap to clone
/// (all clones share one ring). It holds one immutable [`PreparedRing`]
/// snapshot (the ring and everything derived from it); [`RingHandle::reload`]
/// swaps in a new snapshot atomically, for every operation that starts
/// afterwards. It is a [`RingSource`]: session engines, the session layer,
/// signed cookies and reset tokens all read the snapshot from it, so nothing
/// needs to be told of a reload.
///
/// ```
/// use keyroll::{KeyRing, Secret, Role};
/// use keyroll_axum::RingHandle;
/// let ring = RingHandle::new(KeyRing::new(Secret::from("a-first-secret-of-some-length")).expect("a non-empty secret"));
/// let old = ring.current().primary().id();
/// ring.reload(
///     KeyRing::new(Secret::from("a-second-secret-of-some-length")).expect("a non-empty secret")
///         .with_fallback(Secret::from("a-first-secret-of-some-length"), None)
///         .expect("ring"),
/// );
/// assert_eq!(ring.current().get(old).map(|k| k.role()), Some(Role::Fallback));
/// ```
#[derive(Clone)]
pub struct RingHandle {
    inner: Arc<Inner>,
}

impl fmt::Debug for RingHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ring = self.current();
        let keys: Vec<String> = ring
            .keys()
            .map(|k| format!("{}:{}", k.id(), k.role()))
            .collect();
        f.debug_struct("RingHandle").field("keys", &keys).finish()
    }
}

impl RingSource for RingHandle {
    fn current(&self) -> Arc<PreparedRing> {
        self.snapshot()
    }
}

impl RingHandle {
    /// A handle over `ring`.
    pub fn new(ring: KeyRing) -> Self {
        Self {
            inner: Arc::new(Inner {
                current: ArcSwap::from_pointee(PreparedRing::new(ring)),
                subscribers: Mutex::new(Vec::new()),
                file_lock: Mutex::new(()),
            }),
        }
    }

    /// Opens a ring file and makes a handle over its ring.
    ///
    /// # Errors
    /// [`RingFileError`] for an unreadable, insecure or invalid file.
    pub fn open(path: &Path, opts: OpenOptions) -> Result<Self, RingFileError> {
        let file = RingFile::open(path, opts, &env_var)?;
        Ok(Self::new(file.ring()?))
    }

    /// The ring in force now.
    pub fn current(&self) -> Arc<KeyRing> {
        Arc::clone(self.inner.current.load().ring())
    }

    /// The snapshot in force now: the ring, its generation and what is
    /// derived from it.
    pub fn snapshot(&self) -> Arc<PreparedRing> {
        self.inner.current.load_full()
    }

    /// This handle as the ring source of a [`SessionEngine`]
    /// ([`SessionEngine::with_source`], [`SessionEngine::set_source`]).
    pub fn source(&self) -> Arc<dyn RingSource> {
        Arc::new(self.clone())
    }

    /// Calls `f` with the new ring after every reload (and never before).
    /// Nothing in keyroll needs this (engines, layers and helpers read the
    /// handle's snapshot); it is for an application's own follow-up.
    pub fn on_reload(&self, f: impl Fn(&KeyRing) + Send + Sync + 'static) {
        match self.inner.subscribers.lock() {
            Ok(mut s) => s.push(Box::new(f)),
            Err(poisoned) => poisoned.into_inner().push(Box::new(f)),
        }
    }

    /// Makes `engine` follow this ring: its ring source becomes this handle,
    /// so every operation that starts after a reload is under the new ring.
    pub fn subscribe_engine(&self, engine: &SessionEngine) {
        engine.set_source(self.source());
    }

    /// Swaps in a new ring for every later operation (one atomic swap of
    /// the snapshot), then calls the [`RingHandle::on_reload`] callbacks.
    pub fn reload(&self, ring: KeyRing) {
        let prepared = Arc::new(PreparedRing::new(ring));
        let ring = Arc::clone(prepared.ring());
        // Under the callbacks' lock, so two reloads cannot interleave and
        // leave a callback's last word on the older ring.
        let subscribers = match self.inner.subscribers.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        self.inner.current.store(prepared);
        for s in subscribers.iter() {
            s(&ring);
        }
        drop(subscribers);
        let keys: Vec<String> = ring
            .keys()
            .map(|k| format!("{}:{}", k.id(), k.role()))
            .collect();
        tracing::info!(keys = ?keys, "key ring reloaded");
    }

    /// Reloads from a ring file. A broken file (unreadable, insecure, invalid,
    /// a secret that cannot be resolved) is logged and leaves the running
    /// ring in place.
    ///
    /// # Errors
    /// The [`RingFileError`], after logging it.
    pub fn reload_from_file(&self, path: &Path, opts: OpenOptions) -> Result<(), RingFileError> {
        match self.load_and_apply(path, opts) {
            Ok(()) => Ok(()),
            Err(e) => {
                tracing::error!(error = %e, "key ring file not reloaded; keeping the running ring");
                Err(e)
            }
        }
    }

    /// Reads the ring file and swaps its ring in, under the file lock.
    fn load_and_apply(&self, path: &Path, opts: OpenOptions) -> Result<(), RingFileError> {
        let _serial = match self.inner.file_lock.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let ring = load_ring(path, opts)?;
        self.reload(ring);
        Ok(())
    }

    /// Spawns a task that watches the ring file at `path`, checking every
    /// `interval`, and reloads the ring when the file changes: a new
    /// modification or status-change time, size, inode or mode (so an
    /// atomic replace, a `chmod 600` of a refused file, a same-size edit
    /// all count). While the file is broken (refused, unreadable, a
    /// `secret_file` that does not exist yet) the running ring stays and the
    /// load is retried on every tick, so fixing anything it depends on is
    /// picked up; the error is logged when it first appears or changes, not
    /// on every tick. A ring file that disappears is logged once as well.
    /// Needs a Tokio runtime. Abort the returned handle to stop watching.
    pub fn watch_file(
        &self,
        path: impl Into<PathBuf>,
        opts: OpenOptions,
        interval: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let path = path.into();
        let handle = self.clone();
        // Taken now, not when the task first runs: a change made in between is seen.
        let mut seen = stamp(&path);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            // The error of the last failed load, while the file stays broken.
            let mut failing: Option<String> = None;
            loop {
                tick.tick().await;
                let now = stamp(&path);
                let changed = now != seen;
                seen = now;
                if now.is_none() {
                    if changed {
                        tracing::error!(
                            path = %path.display(),
                            "key ring file is gone; keeping the running ring"
                        );
                    }
                    continue;
                }
                if !changed && failing.is_none() {
                    continue;
                }
                match handle.load_and_apply(&path, opts) {
                    Ok(()) => failing = None,
                    Err(e) => {
                        let text = e.to_string();
                        if failing.as_deref() != Some(text.as_str()) {
                            tracing::error!(
                                error = %e,
                                "key ring file not reloaded; keeping the running ring"
                            );
                        }
                        failing = Some(text);
                    }
                }
            }
        })
    }
}

#[cfg(unix)]
impl RingHandle {
    /// Spawns a task that reloads the ring from `path` every time the process
    /// receives `SIGHUP` — the operator's "edit the ring file, then
    /// `kill -HUP <pid>`". A broken file is logged and leaves the running ring
    /// in place (see [`RingHandle::reload_from_file`]); signals that arrive
    /// while a reload runs are coalesced into one more reload. Needs a Tokio
    /// runtime with signals enabled. Abort the returned handle to stop.
    ///
    /// # Errors
    /// The I/O error when the signal handler cannot be installed.
    pub fn reload_on_sighup(
        &self,
        path: impl Into<PathBuf>,
        opts: OpenOptions,
    ) -> std::io::Result<tokio::task::JoinHandle<()>> {
        use tokio::signal::unix::{signal, SignalKind};
        let path = path.into();
        let handle = self.clone();
        // Installed now, not when the task first runs: a SIGHUP sent right after
        // this returns is not lost (nor does it kill the process).
        let mut hup = signal(SignalKind::hangup())?;
        Ok(tokio::spawn(async move {
            while hup.recv().await.is_some() {
                tracing::info!(path = %path.display(), "SIGHUP: reloading the key ring");
                let _ = handle.reload_from_file(&path, opts);
            }
        }))
    }
}

fn load_ring(path: &Path, opts: OpenOptions) -> Result<KeyRing, RingFileError> {
    RingFile::open(path, opts, &env_var).and_then(|f| f.ring())
}

/// What the watcher compares: anything an operator's fix or an atomic
/// replace changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    #[cfg(unix)]
    unix: (u64, u64, i64, i64, u32),
}

fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let unix = {
        use std::os::unix::fs::MetadataExt as _;
        (
            meta.dev(),
            meta.ino(),
            meta.ctime(),
            meta.ctime_nsec(),
            meta.mode(),
        )
    };
    Some(Stamp {
        modified: meta.modified().ok(),
        len: meta.len(),
        #[cfg(unix)]
        unix,
    })
}

/// Ring files may name secrets by environment variable; the web layer reads
/// them at load time, at the edge, like any configuration.
fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

#[cfg(all(test, unix))]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use time::OffsetDateTime;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sighup_reloads_the_ring_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ring.toml");
        let now = OffsetDateTime::now_utc();
        RingFile::generate(now, 50).create_new(&path).unwrap();
        let ring = RingHandle::open(&path, OpenOptions::default()).unwrap();
        let first = ring.current().primary().id();
        let task = ring
            .reload_on_sighup(&path, OpenOptions::default())
            .unwrap();
        let (new, old) = RingFile::update(&path, OpenOptions::default(), &env_var, |rf| {
            rf.stage(now, 50);
            rf.promote(None, Duration::from_secs(60), Duration::ZERO, true, now)
        })
        .unwrap();
        assert_eq!(old, first);
        // Not reloaded until the signal.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(ring.current().primary().id(), first);
        let status = std::process::Command::new("kill")
            .args(["-HUP", &std::process::id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        for _ in 0..200 {
            if ring.current().primary().id() == new {
                task.abort();
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("SIGHUP did not reload the ring");
    }
}
