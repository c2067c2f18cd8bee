//! Secrets and key ids.

use std::fmt;

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// Secrets shorter than this many bytes draw a warning from `ring check`.
pub const SHORT_SECRET_BYTES: usize = 32;

/// Domain label hashed in front of a secret to derive its [`KeyId`].
const KEY_ID_LABEL: &[u8] = b"keyroll key id v1\0";

/// A signing secret: raw bytes (Django takes its `SECRET_KEY` as UTF-8 bytes).
///
/// The bytes are wiped from memory when the value is dropped, and `Debug`
/// prints only the key id, never the secret.
#[derive(Clone)]
pub struct Secret {
    bytes: Zeroizing<Vec<u8>>,
    id: KeyId,
}

impl Secret {
    /// Wraps secret bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        let bytes = Zeroizing::new(bytes.into());
        let id = KeyId::of(&bytes);
        Self { bytes, id }
    }

    /// The secret's bytes. Handle with care: never log or print them.
    pub fn expose(&self) -> &[u8] {
        &self.bytes
    }

    /// The secret's key id.
    pub fn id(&self) -> KeyId {
        self.id
    }

    /// Length of the secret in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// True for an empty secret (never valid in a ring).
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// True when the secret is shorter than [`SHORT_SECRET_BYTES`].
    pub fn is_short(&self) -> bool {
        self.bytes.len() < SHORT_SECRET_BYTES
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Self::new(s.as_bytes())
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Self::new(s.into_bytes())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({}, redacted)", self.id)
    }
}

/// A short public fingerprint of a secret: the first 4 bytes of
/// SHA-256(`"keyroll key id v1\0"` ‖ secret), shown as 8 lower-case hex digits.
///
/// Safe to show in logs, metrics and command output.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId([u8; 4]);

impl KeyId {
    /// The key id of some secret bytes.
    pub fn of(secret: &[u8]) -> Self {
        let mut h = Sha256::new();
        h.update(KEY_ID_LABEL);
        h.update(secret);
        let d: [u8; 32] = h.finalize().into();
        let [a, b, c, e, ..] = d;
        Self([a, b, c, e])
    }

    /// Parses the 8-hex-digit form.
    pub fn parse(s: &str) -> Option<Self> {
        if s.len() != 8 {
            return None;
        }
        let mut id = [0u8; 4];
        for (i, b) in id.iter_mut().enumerate() {
            *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Self(id))
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret() {
        let s = Secret::from("hunter2-very-secret-value");
        let shown = format!("{s:?} {:?} {}", s.id(), s.id());
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("redacted"));
    }

    #[test]
    fn key_id_round_trips_and_differs_per_secret() {
        let a = Secret::from("a").id();
        let b = Secret::from("b").id();
        assert_ne!(a, b);
        assert_eq!(KeyId::parse(&a.to_string()), Some(a));
        assert_eq!(KeyId::parse("xyz"), None);
        assert_eq!(KeyId::parse("0000000g"), None);
    }
}
