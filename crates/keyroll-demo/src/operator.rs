//! The operator credential: a random token in a file of mode 0600 (made at
//! the first start, or given with `--operator-token-file`), never printed,
//! never a command-line argument. The operator page asks for it once and
//! marks the session; `/api/ring` takes it as `Authorization: Bearer TOKEN`.
//! Only its SHA-256 digest is kept in memory, and presented tokens are
//! compared digest to digest in constant time.

use std::fmt;
use std::io::{Read as _, Write as _};
use std::path::Path;

use anyhow::{bail, Context as _};
use axum::http::{header, HeaderMap};
use base64::Engine as _;
use keyroll_axum::{Session, SessionError};
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

/// Shortest token accepted from a file (characters).
pub(crate) const MIN_TOKEN_LEN: usize = 32;
/// Largest token file read.
const MAX_TOKEN_FILE: u64 = 4096;
/// The session key that marks an operator's session.
const SESSION_KEY: &str = "_keyroll_demo_operator";

/// The operator token, as its digest. `Debug` shows nothing of it.
#[derive(Clone)]
pub(crate) struct OperatorToken {
    digest: [u8; 32],
}

impl fmt::Debug for OperatorToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OperatorToken(..)")
    }
}

impl OperatorToken {
    fn from_token(token: &str) -> Self {
        Self {
            digest: Sha256::digest(token.as_bytes()).into(),
        }
    }

    /// The token of `path`, made there (mode 0600, a fresh random token)
    /// when the file does not exist. True when it was made.
    ///
    /// # Errors
    /// The file cannot be read or made, is open to group or others, is
    /// larger than 4 KiB, or holds fewer than [`MIN_TOKEN_LEN`] characters.
    pub(crate) fn load_or_create(path: &Path) -> anyhow::Result<(Self, bool)> {
        match create_new(path) {
            Ok(token) => return Ok((Self::from_token(&token), true)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
        }
        let file =
            std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = file.metadata()?.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                bail!(
                    "the operator token file {} is open to group or others (mode {mode:04o}); chmod 600 it",
                    path.display()
                );
            }
        }
        let mut text = Zeroizing::new(String::new());
        file.take(MAX_TOKEN_FILE + 1)
            .read_to_string(&mut text)
            .with_context(|| format!("reading {}", path.display()))?;
        if text.len() as u64 > MAX_TOKEN_FILE {
            bail!(
                "the operator token file {} is larger than 4 KiB",
                path.display()
            );
        }
        let token = text.trim();
        if token.chars().count() < MIN_TOKEN_LEN {
            bail!(
                "the operator token in {} is shorter than {MIN_TOKEN_LEN} characters",
                path.display()
            );
        }
        Ok((Self::from_token(token), false))
    }

    /// Whether `presented` is the token.
    pub(crate) fn matches(&self, presented: &str) -> bool {
        let got: [u8; 32] = Sha256::digest(presented.trim().as_bytes()).into();
        bool::from(got.ct_eq(&self.digest))
    }

    /// Whether the request carries `Authorization: Bearer <the token>`.
    pub(crate) fn bearer(&self, headers: &HeaderMap) -> bool {
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|t| self.matches(t))
    }

    /// What an operator's session holds: derived from the digest (so a
    /// session marked under another token, before a restart with a new
    /// one, is no operator's), never the token or its digest themselves.
    fn session_mark(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"keyroll-demo operator session\0");
        h.update(self.digest);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(h.finalize())
    }

    /// Marks the session as an operator's, under a new session key (no
    /// fixation of a session key planted before the privilege was gained).
    ///
    /// # Errors
    /// [`SessionError`] when the session cannot be loaded.
    pub(crate) async fn mark(&self, session: &Session) -> Result<(), SessionError> {
        session.cycle_key().await?;
        session.insert(SESSION_KEY, self.session_mark()).await
    }

    /// Whether the session is an operator's (reading it stores nothing).
    ///
    /// # Errors
    /// [`SessionError`] when the session cannot be loaded.
    pub(crate) async fn is_marked(&self, session: &Session) -> Result<bool, SessionError> {
        let Some(mark) = session.get::<String>(SESSION_KEY).await.ok().flatten() else {
            return Ok(false);
        };
        let want = self.session_mark();
        Ok(mark.len() == want.len() && bool::from(mark.as_bytes().ct_eq(want.as_bytes())))
    }
}

/// Makes `path` (mode 0600, never over an existing file or through a
/// symlink) holding a fresh token; returns the token.
fn create_new(path: &Path) -> std::io::Result<Zeroizing<String>> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(bytes.as_mut());
    let token =
        Zeroizing::new(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes.as_ref()));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(token.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_file_is_made_once_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("operator-token");
        let (a, made) = OperatorToken::load_or_create(&path).unwrap();
        assert!(made);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(a.matches(text.trim()));
        assert!(!a.matches("not the token"));
        let (b, made) = OperatorToken::load_or_create(&path).unwrap();
        assert!(!made);
        assert!(b.matches(text.trim()));
        assert_eq!(format!("{a:?}"), "OperatorToken(..)");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
    }

    #[test]
    fn short_or_exposed_token_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let short = dir.path().join("short");
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            opts.mode(0o600);
        }
        opts.open(&short).unwrap().write_all(b"tooshort\n").unwrap();
        let e = OperatorToken::load_or_create(&short)
            .unwrap_err()
            .to_string();
        assert!(e.contains("shorter than 32"), "{e}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let open = dir.path().join("open");
            std::fs::write(&open, "x".repeat(40)).unwrap();
            std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
            let e = OperatorToken::load_or_create(&open)
                .unwrap_err()
                .to_string();
            assert!(e.contains("chmod 600"), "{e}");
        }
    }
}
