//! The environment shortcut: Django's `SECRET_KEY`, `SECRET_KEY_FALLBACKS`
//! and the original library's `OLD_SECRET_KEY`.

use crate::ring::{KeyRing, Role};
use crate::secret::Secret;

/// Why a ring could not be built from the environment. Never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvRingError {
    /// `SECRET_KEY` is not set or empty.
    #[error("SECRET_KEY is not set (or is empty); set it, or name a ring file with --keyring / KEYROLL_KEYRING")]
    MissingSecretKey,
    /// `SECRET_KEY_FALLBACKS` starts like JSON but is not a JSON list of strings.
    #[error("SECRET_KEY_FALLBACKS looks like JSON but is not a list of strings")]
    BadFallbacks,
}

/// Builds a ring from Django-style variables, read through `var` (pass
/// `|name| std::env::var(name).ok()` in a binary; tests pass a map).
///
/// - `SECRET_KEY`: the primary key (required);
/// - `SECRET_KEY_FALLBACKS`: fallbacks, a JSON list of strings, or comma-separated;
/// - `OLD_SECRET_KEY`: one more fallback, after those.
///
/// ```
/// let vars = [("SECRET_KEY", "new"), ("SECRET_KEY_FALLBACKS", r#"["old1","old2"]"#)];
/// let ring = keyroll::ring_from_env(|n| vars.iter().find(|v| v.0 == n).map(|v| v.1.to_string()))
///     .expect("ring");
/// assert_eq!(ring.keys().count(), 3);
/// ```
///
/// # Errors
/// [`EnvRingError`] for a missing `SECRET_KEY` or malformed fallbacks.
pub fn ring_from_env(var: impl Fn(&str) -> Option<String>) -> Result<KeyRing, EnvRingError> {
    let primary = var("SECRET_KEY")
        .filter(|s| !s.is_empty())
        .ok_or(EnvRingError::MissingSecretKey)?;
    let mut keys = vec![(Secret::from(primary), Role::Primary, None)];
    if let Some(fallbacks) = var("SECRET_KEY_FALLBACKS") {
        for s in parse_list(&fallbacks)? {
            keys.push((Secret::from(s), Role::Fallback, None));
        }
    }
    if let Some(old) = var("OLD_SECRET_KEY").filter(|s| !s.is_empty()) {
        keys.push((Secret::from(old), Role::Fallback, None));
    }
    KeyRing::from_keys(keys).map_err(|_| EnvRingError::MissingSecretKey)
}

fn parse_list(text: &str) -> Result<Vec<String>, EnvRingError> {
    let trimmed = text.trim();
    if trimmed.starts_with('[') {
        let list: Vec<String> =
            serde_json::from_str(trimmed).map_err(|_| EnvRingError::BadFallbacks)?;
        return Ok(list.into_iter().filter(|s| !s.is_empty()).collect());
    }
    Ok(text
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |n| vars.iter().find(|v| v.0 == n).map(|v| v.1.to_owned())
    }

    #[test]
    fn forms_of_fallbacks() {
        let r = ring_from_env(env(&[
            ("SECRET_KEY", "p"),
            ("SECRET_KEY_FALLBACKS", "a,b"),
            ("OLD_SECRET_KEY", "c"),
        ]))
        .expect("ring");
        let ids: Vec<_> = r.keys().map(|k| k.id()).collect();
        let want: Vec<_> = ["p", "a", "b", "c"]
            .iter()
            .map(|s| Secret::from(*s).id())
            .collect();
        assert_eq!(ids, want);
        assert!(
            ring_from_env(env(&[("SECRET_KEY", "p"), ("SECRET_KEY_FALLBACKS", "[1]")])).is_err()
        );
        assert_eq!(
            ring_from_env(env(&[])).err(),
            Some(EnvRingError::MissingSecretKey)
        );
        assert_eq!(
            ring_from_env(env(&[("SECRET_KEY", "p"), ("SECRET_KEY_FALLBACKS", "")]))
                .expect("ring")
                .keys()
                .count(),
            1
        );
    }

    /// Django's common mistake: the new `SECRET_KEY` also left in
    /// `SECRET_KEY_FALLBACKS`. Its tokens verify as the primary (not stale),
    /// and the ring says what was repeated, for a warning.
    #[test]
    fn secret_key_repeated_in_fallbacks_verifies_as_primary_and_is_reported() {
        for vars in [
            [
                ("SECRET_KEY", "x-secret"),
                ("SECRET_KEY_FALLBACKS", r#"["x-secret"]"#),
            ],
            [("SECRET_KEY", "x-secret"), ("OLD_SECRET_KEY", "x-secret")],
        ] {
            let ring = ring_from_env(env(&vars)).expect("ring");
            let x = Secret::from("x-secret").id();
            assert_eq!(ring.repeated(), [(x, Role::Fallback)]);
            let signer = crate::Signer::new(&ring);
            let token = signer.sign("v");
            let v = signer
                .unsign_at(&token, time::OffsetDateTime::now_utc())
                .expect("verifies");
            assert_eq!((v.key_id, v.role), (x, Role::Primary));
        }
    }
}
