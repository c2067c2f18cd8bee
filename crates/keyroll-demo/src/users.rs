//! The demo's users: kept in memory, passwords hashed with salted SHA-256.
//!
//! DEMO ONLY: one round of salted SHA-256 is NOT a password hash fit for real
//! users (use Argon2id, scrypt or PBKDF2 with many rounds). It is formatted like
//! Django's (`sha256$salt$hex`) so the session auth hash has the same input shape.

use std::collections::HashMap;
use std::sync::Mutex;

use keyroll_axum::UserLoader;
use rand::Rng as _;
use sha2::{Digest, Sha256};

/// One user.
#[derive(Clone, Debug)]
pub(crate) struct User {
    /// Primary key, as Django's `str(user.pk)`.
    pub(crate) id: String,
    /// Login name.
    pub(crate) username: String,
    /// Stored password hash (`sha256$salt$hex`).
    pub(crate) password_hash: String,
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

impl Users {
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
        };
        inner.by_id.insert(user.id.clone(), user.clone());
        Some(user)
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
}
