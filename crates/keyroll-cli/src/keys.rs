//! Loading the key ring: `--keyring`, `$KEYROLL_KEYRING`, or Django's variables.

use std::path::Path;

use anyhow::Context as _;
use keyroll::ringfile::{OpenOptions, RingFile};
use keyroll::KeyRing;

use crate::KeySource;

/// Reads an environment variable (the one place the binary reads the environment).
pub(crate) fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// The ring named by the flags or the environment. Warns on stderr about
/// what `--allow-insecure` let through and about a secret given twice.
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
            let (rf, waived) = RingFile::open_checked(&path, opts, &env_var)
                .with_context(|| format!("cannot use key ring {}", path.display()))?;
            for f in waived {
                eprintln!(
                    "keyroll: warning: used despite --allow-insecure: {}",
                    f.message
                );
            }
            let ring = rf.ring()?;
            for line in repeat_warnings(&ring, Some(&path)) {
                eprintln!("{line}");
            }
            Ok(ring)
        }
        None => {
            let ring = keyroll::ring_from_env(env_var)?;
            for line in repeat_warnings(&ring, None) {
                eprintln!("{line}");
            }
            Ok(ring)
        }
    }
}

/// One warning line per secret the ring was given twice (`file`: the ring
/// file, or `None` for Django's variables). Key ids only, never secrets.
pub(crate) fn repeat_warnings(ring: &KeyRing, file: Option<&Path>) -> Vec<String> {
    ring.repeated()
        .iter()
        .map(|&(id, again)| {
            let kept = ring.get(id).map_or(again, |k| k.role());
            match file {
                Some(path) => format!(
                    "keyroll: warning: {}: key {id} is listed twice, as {kept} and again as {again} (the same secret); it counts once, as {kept}. Remove the repeated entry (`keyroll ring check` shows it).",
                    path.display()
                ),
                None => format!(
                    "keyroll: warning: key {id} is given twice in SECRET_KEY / SECRET_KEY_FALLBACKS / OLD_SECRET_KEY, as {kept} and again as {again} (the same secret); it counts once, as {kept}. Remove the repeat from the fallbacks."
                ),
            }
        })
        .collect()
}
