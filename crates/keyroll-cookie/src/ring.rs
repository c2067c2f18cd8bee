//! The running cookie keys: swapped atomically, following a ring file's reloads.

use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use keyroll::ringfile::{OpenOptions, RingFile, RingFileError};
#[cfg(feature = "ring-handle")]
use keyroll_axum::RingHandle;

use crate::keys::{CookieKeys, KeyError, KeyMaterial};

/// Why a ring file could not give cookie keys. Never holds a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RingLoadError {
    /// The ring file could not be read or is invalid.
    #[error(transparent)]
    File(#[from] RingFileError),
    /// A key could not become a cookie key.
    #[error(transparent)]
    Key(#[from] KeyError),
}

struct Inner {
    keys: ArcSwap<CookieKeys>,
    generation: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// The cookie keys a running service uses, prepared once per ring and
/// swapped atomically on [`CookieRing::reload`]. Cheap to clone.
///
/// keyroll's `KeyRing` keeps its secrets to itself, so the cookie keys come
/// from the ring file's entries (`RingFile::entries`), which hold them:
/// [`CookieRing::open`] reads the file, and `CookieRing::follow` (feature
/// `ring-handle`, on by default) re-reads it whenever keyroll-axum's
/// `RingHandle` reloads (file watcher, SIGHUP or `reload_from_file`).
#[derive(Clone)]
pub struct CookieRing {
    inner: Arc<Inner>,
}

impl fmt::Debug for CookieRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CookieRing")
            .field("keys", &*self.current())
            .finish()
    }
}

impl CookieRing {
    /// A ring over prepared keys.
    pub fn new(keys: CookieKeys) -> Self {
        Self {
            inner: Arc::new(Inner {
                keys: ArcSwap::from_pointee(keys.with_generation(0)),
                generation: AtomicU64::new(0),
                last_error: Mutex::new(None),
            }),
        }
    }

    /// Reads a ring file (secrets from the file, `secret_env` or `secret_file`).
    ///
    /// # Errors
    /// [`RingLoadError`] for an unreadable, insecure or invalid file or key.
    pub fn open(
        path: &Path,
        opts: OpenOptions,
        material: KeyMaterial,
    ) -> Result<Self, RingLoadError> {
        Ok(Self::new(load(path, opts, material)?))
    }

    /// The keys in force now.
    pub fn current(&self) -> Arc<CookieKeys> {
        self.inner.keys.load_full()
    }

    pub(crate) fn load(&self) -> arc_swap::Guard<Arc<CookieKeys>> {
        self.inner.keys.load()
    }

    /// Swaps in new keys for every request that starts afterwards.
    pub fn reload(&self, keys: CookieKeys) {
        let generation = self.inner.generation.fetch_add(1, Ordering::AcqRel) + 1;
        self.inner
            .keys
            .store(Arc::new(keys.with_generation(generation)));
    }

    /// Re-reads the ring file and swaps in its keys. On error the keys in
    /// force stay, and the error is kept for [`CookieRing::last_error`].
    ///
    /// # Errors
    /// [`RingLoadError`] as [`CookieRing::open`].
    pub fn reload_from_file(
        &self,
        path: &Path,
        opts: OpenOptions,
        material: KeyMaterial,
    ) -> Result<(), RingLoadError> {
        match load(path, opts, material) {
            Ok(keys) => {
                self.reload(keys);
                self.set_error(None);
                Ok(())
            }
            Err(e) => {
                self.set_error(Some(e.to_string()));
                Err(e)
            }
        }
    }

    /// The last failed reload's error (no secrets), cleared by a good one.
    pub fn last_error(&self) -> Option<String> {
        match self.inner.last_error.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn set_error(&self, e: Option<String>) {
        match self.inner.last_error.lock() {
            Ok(mut g) => *g = e,
            Err(p) => *p.into_inner() = e,
        }
    }

    /// Follows `handle`: every time it reloads, the ring file at `path` is
    /// read again and its keys swapped in, so cookies rotate together with
    /// the sessions and tokens the handle serves.
    #[cfg(feature = "ring-handle")]
    pub fn follow(
        &self,
        handle: &RingHandle,
        path: &Path,
        opts: OpenOptions,
        material: KeyMaterial,
    ) {
        let weak = Arc::downgrade(&self.inner);
        let path: std::path::PathBuf = path.to_owned();
        handle.on_reload(move |_ring| {
            if let Some(inner) = weak.upgrade() {
                let ring = CookieRing { inner };
                let _ = ring.reload_from_file(&path, opts, material);
            }
        });
    }
}

fn load(
    path: &Path,
    opts: OpenOptions,
    material: KeyMaterial,
) -> Result<CookieKeys, RingLoadError> {
    let file = RingFile::open(path, opts, &|name| std::env::var(name).ok())?;
    Ok(CookieKeys::from_ring_file(&file, material)?)
}
