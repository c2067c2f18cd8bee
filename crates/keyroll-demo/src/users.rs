//! The demo's users: kept in memory, passwords hashed with salted SHA-256.
//!
//! DEMO ONLY: one round of salted SHA-256 is NOT a password hash fit for real
//! users (use Argon2id, scrypt or PBKDF2 with many rounds). It is formatted like
//! Django's (`sha256$salt$hex`) so the session auth hash has the same input shape.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use keyroll_axum::UserLoader;
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use time::OffsetDateTime;

/// One user. `Debug` leaves the password hash out.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct User {
    /// Primary key, as Django's `str(user.pk)`.
    pub(crate) id: String,
    /// Login name.
    pub(crate) username: String,
    /// Stored password hash (`sha256$salt$hex`).
    pub(crate) password_hash: String,
    /// When the user last logged in on this instance (Django's
    /// `user.last_login`; a reset token made before a login dies with it).
    /// Not in the users file.
    #[serde(skip)]
    pub(crate) last_login: Option<OffsetDateTime>,
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("last_login", &self.last_login)
            .finish_non_exhaustive()
    }
}

/// All users, by id.
#[derive(Debug, Default)]
pub(crate) struct Users {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    by_id: HashMap<String, User>,
    next: u64,
}

/// Largest users file read (a few hundred thousand users).
const MAX_USERS_FILE: u64 = 64 * 1024 * 1024;

impl Users {
    /// The users of a users file (a JSON list of `{id, username, password_hash}`),
    /// shared by every instance of a fleet so that each knows every user by
    /// the same id and the same password hash (the session auth hash depends on both).
    pub(crate) fn from_file(path: &Path) -> anyhow::Result<Self> {
        use std::io::Read as _;
        let mut text = String::new();
        std::fs::File::open(path)?
            .take(MAX_USERS_FILE + 1)
            .read_to_string(&mut text)?;
        if text.len() as u64 > MAX_USERS_FILE {
            anyhow::bail!("larger than 64 MiB");
        }
        let list: Vec<User> = serde_json::from_str(&text)?;
        let mut inner = Inner::default();
        for user in list {
            if inner.by_id.values().any(|u| u.username == user.username) {
                anyhow::bail!("the username {:?} is listed twice", user.username);
            }
            // New sign-ups continue after the largest numeric id.
            if let Ok(n) = user.id.parse::<u64>() {
                inner.next = inner.next.max(n);
            }
            if inner.by_id.insert(user.id.clone(), user).is_some() {
                anyhow::bail!("a user id is listed twice");
            }
        }
        Ok(Self {
            inner: Mutex::new(inner),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        match self.inner.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Adds a user; `None` when the name is taken.
    pub(crate) fn create(&self, username: &str, password: &str) -> Option<User> {
        let mut inner = self.lock();
        if inner.by_id.values().any(|u| u.username == username) {
            return None;
        }
        inner.next += 1;
        let user = User {
            id: inner.next.to_string(),
            username: username.to_owned(),
            password_hash: hash_password(password),
            last_login: None,
        };
        inner.by_id.insert(user.id.clone(), user.clone());
        Some(user)
    }

    /// Records a login at `now` (Django's `update_last_login`).
    pub(crate) fn record_login(&self, id: &str, now: OffsetDateTime) {
        if let Some(user) = self.lock().by_id.get_mut(id) {
            user.last_login = Some(now);
        }
    }

    /// The user with this name.
    pub(crate) fn by_name(&self, username: &str) -> Option<User> {
        self.lock()
            .by_id
            .values()
            .find(|u| u.username == username)
            .cloned()
    }

    /// The user with this id.
    pub(crate) fn by_id(&self, id: &str) -> Option<User> {
        self.lock().by_id.get(id).cloned()
    }

    /// Sets a new password; returns the new stored hash.
    pub(crate) fn set_password(&self, id: &str, password: &str) -> Option<String> {
        let mut inner = self.lock();
        let user = inner.by_id.get_mut(id)?;
        user.password_hash = hash_password(password);
        Some(user.password_hash.clone())
    }
}

impl UserLoader for Users {
    type User = User;

    async fn load_user(&self, id: &str) -> Option<(User, String)> {
        self.by_id(id).map(|u| {
            let hash = u.password_hash.clone();
            (u, hash)
        })
    }
}

/// Writes a users file for `--users`: user `i` (from 1) of `users`
/// (`(username, password)`) gets id `i` and a freshly salted password hash.
/// The file is created new (never overwritten), mode 0600 on unix.
/// DEMO ONLY (see the module's note on the hash).
///
/// # Errors
/// The I/O error, or a username given twice.
pub fn write_users_file(path: &Path, users: &[(String, String)]) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut names = std::collections::HashSet::new();
    let mut list = Vec::with_capacity(users.len());
    for (i, (name, password)) in users.iter().enumerate() {
        if !names.insert(name.as_str()) {
            anyhow::bail!("the username {name:?} is given twice");
        }
        list.push(User {
            id: (i + 1).to_string(),
            username: name.clone(),
            password_hash: hash_password(password),
            last_login: None,
        });
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(serde_json::to_string(&list)?.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_hex(salt: &str, password: &str) -> String {
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    h.update(password.as_bytes());
    hex(&h.finalize())
}

/// `sha256$salt$hex(sha256(salt ‖ password))` with a random 16-character salt. DEMO ONLY.
pub(crate) fn hash_password(password: &str) -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand::rngs::OsRng;
    let salt: String = (0..16)
        .map(|_| {
            char::from(
                CHARS
                    .get(rng.gen_range(0..CHARS.len()))
                    .copied()
                    .unwrap_or(b'a'),
            )
        })
        .collect();
    format!("sha256${salt}${}", sha256_hex(&salt, password))
}

/// Checks a password against a stored hash, in constant time over the digest.
pub(crate) fn check_password(password: &str, stored: &str) -> bool {
    let mut parts = stored.split('$');
    let (Some("sha256"), Some(salt), Some(want), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let got = sha256_hex(salt, password);
    got.len() == want.len()
        && got
            .bytes()
            .zip(want.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_are_salted() {
        let a = hash_password("pw");
        assert!(a.starts_with("sha256$"));
        assert!(check_password("pw", &a));
        assert!(!check_password("px", &a));
        assert_ne!(a, hash_password("pw"));
        assert!(!check_password("pw", "md5$x$y"));
    }

    #[test]
    fn users_file_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.json");
        let list = vec![
            ("ann".to_owned(), "pw-a".to_owned()),
            ("bob".to_owned(), "pw-b".to_owned()),
        ];
        write_users_file(&path, &list).unwrap();
        assert!(write_users_file(&path, &list).is_err(), "never overwrites");
        let users = Users::from_file(&path).unwrap();
        let bob = users.by_name("bob").unwrap();
        assert_eq!(bob.id, "2");
        assert!(check_password("pw-b", &bob.password_hash));
        // Two instances reading one file know the same hash.
        let again = Users::from_file(&path).unwrap();
        assert_eq!(again.by_id("2").unwrap().password_hash, bob.password_hash);
        // Sign-ups continue after the file's ids.
        assert_eq!(users.create("cy", "pw").unwrap().id, "3");
        let dup = dir.path().join("dup.json");
        let twice = vec![
            ("a".to_owned(), "x".to_owned()),
            ("a".to_owned(), "y".to_owned()),
        ];
        assert!(write_users_file(&dup, &twice).is_err());
    }
}
