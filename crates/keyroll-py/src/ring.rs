//! `Ring` (a key ring and every format over it) and `RingFile` (a ring file,
//! re-read when it changes).

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use keyroll::ringfile::{OpenOptions, RingFile as KeyringFile};
use keyroll::{KeyId, KeyRing, ObjectSigner, Role, Secret, SessionAuthHash};
use pyo3::prelude::*;
use time::OffsetDateTime;

use crate::formats::{self, LoginVerdict, Verified};
use crate::{instant, RingError};

/// A ring and what is derived from it once.
struct Prepared {
    ring: KeyRing,
    auth: SessionAuthHash,
    /// Each key's secret, for [`Ring::django_settings`].
    secrets: Vec<(KeyId, Secret)>,
    /// Object signers already built, by salt: building one derives a MAC key
    /// per key, which costs as much as verifying a session token.
    object_signers: Mutex<Vec<(String, Arc<ObjectSigner>)>>,
}

/// At most this many salts keep a built object signer (a session engine uses one).
const OBJECT_SIGNERS_KEPT: usize = 16;

impl Prepared {
    fn new(ring: KeyRing, secrets: Vec<Secret>) -> Self {
        Self {
            auth: SessionAuthHash::new(&ring),
            secrets: secrets.into_iter().map(|s| (s.id(), s)).collect(),
            ring,
            object_signers: Mutex::new(Vec::new()),
        }
    }

    /// The object signer for `salt`, built once (for up to
    /// [`OBJECT_SIGNERS_KEPT`] salts; past that, each call builds its own).
    fn object_signer(&self, salt: &str) -> PyResult<Arc<ObjectSigner>> {
        let mut kept = self
            .object_signers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, signer)) = kept.iter().find(|(s, _)| s == salt) {
            return Ok(Arc::clone(signer));
        }
        let signer = Arc::new(formats::object_signer(&self.ring, Some(salt))?);
        if kept.len() < OBJECT_SIGNERS_KEPT {
            kept.push((salt.to_owned(), Arc::clone(&signer)));
        }
        Ok(signer)
    }

    fn secret_text(&self, id: KeyId) -> PyResult<String> {
        let secret = self
            .secrets
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, s)| s)
            .ok_or_else(|| RingError::new_err(format!("key {id}: no secret")))?;
        String::from_utf8(secret.expose().to_vec())
            .map_err(|_| RingError::new_err(format!("key {id}: the secret is not UTF-8 text")))
    }
}

/// A key ring: one primary key that signs, staged and fallback keys that
/// only verify (a fallback until its `retire_after`). Immutable: a reloaded
/// ring file gives a new `Ring`.
#[pyclass(frozen, module = "keyroll", name = "Ring")]
pub(crate) struct Ring {
    inner: Arc<Prepared>,
}

fn ring_err(e: impl std::fmt::Display) -> PyErr {
    RingError::new_err(e.to_string())
}

fn open_file(path: &std::path::Path, allow_insecure: bool) -> PyResult<Prepared> {
    let var = |name: &str| std::env::var(name).ok();
    let file = KeyringFile::open(path, OpenOptions { allow_insecure }, &var).map_err(ring_err)?;
    let ring = file.ring().map_err(ring_err)?;
    let secrets = file.entries.into_iter().map(|e| e.secret).collect();
    Ok(Prepared::new(ring, secrets))
}

/// One key as `Ring.keys()` lists it: id, role, `retire_after` (Unix seconds), live.
type KeyRow = (String, &'static str, Option<f64>, bool);

fn unix(t: OffsetDateTime) -> f64 {
    t.unix_timestamp_nanos() as f64 / 1e9
}

#[pymethods]
impl Ring {
    /// The ring Django's settings describe: `SECRET_KEY` signs, each of
    /// `SECRET_KEY_FALLBACKS` (in order) verifies. Empty fallbacks are skipped.
    #[staticmethod]
    #[pyo3(signature = (secret_key, fallbacks = Vec::new()))]
    fn from_django(secret_key: &str, fallbacks: Vec<String>) -> PyResult<Self> {
        let mut keys = vec![(Secret::from(secret_key), Role::Primary, None)];
        for f in fallbacks.iter().filter(|f| !f.is_empty()) {
            keys.push((Secret::from(f.as_str()), Role::Fallback, None));
        }
        let secrets = keys.iter().map(|(s, _, _)| s.clone()).collect();
        let ring = KeyRing::from_keys(keys).map_err(ring_err)?;
        Ok(Self {
            inner: Arc::new(Prepared::new(ring, secrets)),
        })
    }

    /// The ring in a keyroll ring file (read once; see `RingFile` for one
    /// that follows changes).
    #[staticmethod]
    #[pyo3(signature = (path, allow_insecure = false))]
    fn from_file(path: PathBuf, allow_insecure: bool) -> PyResult<Self> {
        Ok(Self {
            inner: Arc::new(open_file(&path, allow_insecure)?),
        })
    }

    /// The primary key's id.
    #[getter]
    fn primary_id(&self) -> String {
        self.inner.ring.primary().id().to_string()
    }

    /// Every key in verification order: `(key_id, role, retire_after, live)`,
    /// `retire_after` in Unix seconds (or `None`), `live` at `now`.
    #[pyo3(signature = (now = None))]
    fn keys(&self, now: Option<f64>) -> PyResult<Vec<KeyRow>> {
        let now = instant(now)?;
        Ok(self
            .inner
            .ring
            .keys()
            .map(|k| {
                (
                    k.id().to_string(),
                    k.role().as_str(),
                    k.retire_after().map(unix),
                    k.is_live_at(now),
                )
            })
            .collect())
    }

    /// True when a key other than the primary verifies at `now` (a rotation
    /// is under way: stale tokens may arrive).
    #[pyo3(signature = (now = None))]
    fn rotating(&self, now: Option<f64>) -> PyResult<bool> {
        let now = instant(now)?;
        Ok(self
            .inner
            .ring
            .verifiers_at(now)
            .any(|k| k.role() != Role::Primary))
    }

    /// Secrets given twice: `(key_id, role dropped)` for each.
    fn repeated(&self) -> Vec<(String, &'static str)> {
        self.inner
            .ring
            .repeated()
            .iter()
            .map(|(id, role)| (id.to_string(), role.as_str()))
            .collect()
    }

    /// `(SECRET_KEY, SECRET_KEY_FALLBACKS)` for Django's settings: the
    /// primary, then the staged and fallback keys live at `now`. This is the
    /// one method that hands out secrets (Django reads them from settings).
    #[pyo3(signature = (now = None))]
    fn django_settings(&self, now: Option<f64>) -> PyResult<(String, Vec<String>)> {
        let now = instant(now)?;
        let primary = self.inner.secret_text(self.inner.ring.primary().id())?;
        let others = self
            .inner
            .ring
            .verifiers_at(now)
            .filter(|k| k.role() != Role::Primary)
            .map(|k| self.inner.secret_text(k.id()))
            .collect::<PyResult<Vec<_>>>()?;
        Ok((primary, others))
    }

    /// `Signer(salt=salt, sep=sep).sign(value)` under the primary.
    #[pyo3(signature = (value, salt = None, sep = ":"))]
    fn sign(&self, value: &str, salt: Option<&str>, sep: &str) -> PyResult<String> {
        let signer = formats::builder(salt, sep)
            .build(&self.inner.ring)
            .map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))?;
        Ok(signer.sign(value))
    }

    /// `Signer(salt=salt, sep=sep).unsign(token)` under every live key.
    #[pyo3(signature = (token, salt = None, sep = ":", now = None))]
    fn unsign(
        &self,
        py: Python<'_>,
        token: &str,
        salt: Option<&str>,
        sep: &str,
        now: Option<f64>,
    ) -> PyResult<Verified> {
        let now = instant(now)?;
        let inner = &self.inner;
        py.detach(|| formats::unsign(&inner.ring, token, salt, sep, now))?
            .into_py(py)
    }

    /// `TimestampSigner(salt=salt, sep=sep).sign(value)` under the primary,
    /// stamped `timestamp` (Unix seconds; default: now).
    #[pyo3(signature = (value, salt = None, sep = ":", timestamp = None))]
    fn sign_timestamp(
        &self,
        value: &str,
        salt: Option<&str>,
        sep: &str,
        timestamp: Option<i64>,
    ) -> PyResult<String> {
        let signer = formats::timestamp_signer(&self.inner.ring, salt, sep)?;
        let ts = timestamp.unwrap_or_else(|| OffsetDateTime::now_utc().unix_timestamp());
        Ok(signer.sign_with_timestamp(value, ts))
    }

    /// `TimestampSigner(salt=salt, sep=sep).unsign(token, max_age)`.
    #[pyo3(signature = (token, salt = None, sep = ":", max_age = None, now = None))]
    fn unsign_timestamp(
        &self,
        py: Python<'_>,
        token: &str,
        salt: Option<&str>,
        sep: &str,
        max_age: Option<f64>,
        now: Option<f64>,
    ) -> PyResult<Verified> {
        let (now, max_age) = (instant(now)?, crate::max_age(max_age)?);
        let signer = formats::timestamp_signer(&self.inner.ring, salt, sep)?;
        py.detach(|| formats::unsign_timestamp(&signer, token, max_age, now))?
            .into_py(py)
    }

    /// `signing.loads` up to the serializer: verifies the signature (and
    /// `max_age`), decodes base64 and inflates, within keyroll's limits.
    /// `value` is the serialized bytes; `fresh` the token re-signed when stale.
    #[pyo3(signature = (token, salt, max_age = None, now = None))]
    fn loads_raw(
        &self,
        py: Python<'_>,
        token: &str,
        salt: &str,
        max_age: Option<f64>,
        now: Option<f64>,
    ) -> PyResult<Verified> {
        let (now, max_age) = (instant(now)?, crate::max_age(max_age)?);
        let signer = self.inner.object_signer(salt)?;
        Ok(py
            .detach(|| formats::loads_raw(&signer, token, max_age, now))?
            .into_py(py))
    }

    /// Judges a stored `_auth_user_hash` against the user's CURRENT password
    /// hash under every live key; see `LoginVerdict`.
    #[pyo3(signature = (stored, password_hash, now = None))]
    fn judge_login_hash(
        &self,
        py: Python<'_>,
        stored: &str,
        password_hash: &str,
        now: Option<f64>,
    ) -> PyResult<LoginVerdict> {
        let now = instant(now)?;
        let auth = &self.inner.auth;
        Ok(py.detach(|| formats::judge_login_hash(auth, stored, password_hash, now)))
    }

    /// `_auth_user_hash` for `password_hash` under the primary.
    fn make_login_hash(&self, password_hash: &str) -> String {
        self.inner.auth.make(password_hash)
    }

    /// `response.set_signed_cookie(name, value, salt)`'s value, stamped
    /// `timestamp` (default: now); `legacy` writes the pre-5.2.15 salt form.
    #[pyo3(signature = (name, value, salt = "", timestamp = None, legacy = false))]
    fn cookie_sign(
        &self,
        name: &str,
        value: &str,
        salt: &str,
        timestamp: Option<i64>,
        legacy: bool,
    ) -> PyResult<String> {
        let cookie = formats::signed_cookie(&self.inner.ring, name, salt, legacy)?;
        let ts = timestamp.unwrap_or_else(|| OffsetDateTime::now_utc().unix_timestamp());
        Ok(cookie.sign_with_timestamp(value, ts))
    }

    /// `request.get_signed_cookie(name, salt=salt, max_age=max_age)` on the
    /// cookie's `value`; `fresh` is the value re-signed (same timestamp)
    /// when stale or not in the salt form written (`legacy`: the pre-5.2.15
    /// form, which Django 4.2 reads).
    #[pyo3(signature = (name, value, salt = "", max_age = None, now = None, legacy = false))]
    #[allow(clippy::too_many_arguments)]
    fn cookie_unsign(
        &self,
        py: Python<'_>,
        name: &str,
        value: &str,
        salt: &str,
        max_age: Option<f64>,
        now: Option<f64>,
        legacy: bool,
    ) -> PyResult<Verified> {
        let (now, max_age) = (instant(now)?, crate::max_age(max_age)?);
        let cookie = formats::signed_cookie(&self.inner.ring, name, salt, legacy)?;
        py.detach(|| formats::cookie_unsign(&cookie, value, max_age, now))?
            .into_py(py)
    }

    fn __repr__(&self) -> String {
        let keys: Vec<String> = self
            .inner
            .ring
            .keys()
            .map(|k| format!("{}:{}", k.role(), k.id()))
            .collect();
        format!("Ring({})", keys.join(", "))
    }
}

/// What identifies one version of a file on disk, cheaply.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    #[cfg(unix)]
    inode: (u64, u64, i64, i64),
}

fn stamp(path: &std::path::Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp {
        len: m.len(),
        modified: m.modified().ok(),
        #[cfg(unix)]
        inode: {
            use std::os::unix::fs::MetadataExt as _;
            (m.dev(), m.ino(), m.ctime(), m.ctime_nsec())
        },
    })
}

struct FileState {
    ring: Arc<Prepared>,
    stamp: Option<Stamp>,
    checked: Instant,
    generation: u64,
    error: Option<String>,
}

/// A ring file followed as it changes: `current()` looks at the file's
/// metadata (size, mtime, inode, ctime) at most once per `check_interval`
/// seconds and re-reads it when that changed. A file that fails to read
/// keeps the last good ring in force (`last_error` says why). A change to a
/// `secret_file` it names, or to an environment variable, is seen on
/// `reload()` or the next change of the ring file itself.
#[pyclass(frozen, module = "keyroll", name = "RingFile")]
pub(crate) struct RingFile {
    path: PathBuf,
    allow_insecure: bool,
    interval: Duration,
    state: Mutex<FileState>,
}

impl RingFile {
    fn state(&self) -> MutexGuard<'_, FileState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Re-reads the file when `force` or its stamp changed; true when the ring changed.
    fn refresh(&self, state: &mut FileState, force: bool) -> PyResult<bool> {
        state.checked = Instant::now();
        let now = stamp(&self.path);
        if !force && now == state.stamp {
            return Ok(false);
        }
        state.stamp = now;
        match open_file(&self.path, self.allow_insecure) {
            Ok(p) => {
                state.ring = Arc::new(p);
                state.generation += 1;
                state.error = None;
                Ok(true)
            }
            Err(e) => {
                state.error = Some(e.to_string());
                if force {
                    Err(e)
                } else {
                    Ok(false)
                }
            }
        }
    }
}

#[pymethods]
impl RingFile {
    /// Opens `path` (refused when insecure unless `allow_insecure`).
    #[new]
    #[pyo3(signature = (path, allow_insecure = false, check_interval = 1.0))]
    fn new(path: PathBuf, allow_insecure: bool, check_interval: f64) -> PyResult<Self> {
        let stamp_before = stamp(&path);
        let ring = Arc::new(open_file(&path, allow_insecure)?);
        let interval = Duration::try_from_secs_f64(check_interval.max(0.0))
            .map_err(|_| pyo3::exceptions::PyValueError::new_err("bad check_interval"))?;
        Ok(Self {
            path,
            allow_insecure,
            interval,
            state: Mutex::new(FileState {
                ring,
                stamp: stamp_before,
                checked: Instant::now(),
                generation: 1,
                error: None,
            }),
        })
    }

    /// The ring in force, re-reading the file first if it changed (checked
    /// at most once per `check_interval`).
    fn current(&self, py: Python<'_>) -> PyResult<Ring> {
        let ring = py.detach(|| {
            let mut state = self.state();
            if state.checked.elapsed() >= self.interval {
                // A failed re-read is kept in `last_error`; the old ring stays.
                let _changed = self.refresh(&mut state, false);
            }
            Arc::clone(&state.ring)
        });
        Ok(Ring { inner: ring })
    }

    /// Re-reads the file now; True when it was read (the ring may be the
    /// same). Raises `RingError` (keeping the old ring) when it cannot be read.
    fn reload(&self) -> PyResult<bool> {
        let mut state = self.state();
        self.refresh(&mut state, true)
    }

    /// Counts the rings read: 1 after opening, +1 for each re-read.
    #[getter]
    fn generation(&self) -> u64 {
        self.state().generation
    }

    /// Why the last re-read failed (the old ring stayed in force), or `None`.
    #[getter]
    fn last_error(&self) -> Option<String> {
        self.state().error.clone()
    }

    /// The file's path.
    #[getter]
    fn path(&self) -> PathBuf {
        self.path.clone()
    }

    fn __repr__(&self) -> String {
        format!(
            "RingFile({:?}, generation={})",
            self.path,
            self.state().generation
        )
    }
}
