//! Loading the key ring: `--keyring`, `$KEYROLL_KEYRING`, or Django's variables.

use anyhow::Context as _;
use keyroll::ringfile::{OpenOptions, RingFile};
use keyroll::KeyRing;

use crate::KeySource;

/// Reads an environment variable (the one place the binary reads the environment).
pub(crate) fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// The ring named by the flags or the environment.
pub(crate) fn load(src: &KeySource) -> anyhow::Result<KeyRing> {
    let path = src.keyring.clone().or_else(|| {
        env_var("KEYROLL_KEYRING")
            .filter(|s| !s.is_empty())
            .map(Into::into)
    });
    match path {
        Some(path) => {
            let opts = OpenOptions {
                allow_insecure: src.allow_insecure,
            };
            let rf = RingFile::open(&path, opts, &env_var)
                .with_context(|| format!("cannot use key ring {}", path.display()))?;
            Ok(rf.ring()?)
        }
        None => Ok(keyroll::ring_from_env(env_var)?),
    }
}
