//! Django's salted HMAC: HMAC-H(H(key_salt ‖ secret), value).

use std::fmt;

use hmac::digest::{Digest, KeyInit};
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Sha256, Sha512};
use time::OffsetDateTime;
use zeroize::{Zeroize, Zeroizing};

use crate::ring::{KeyRing, Role};
use crate::secret::KeyId;

/// A hash function Django lets a signer use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Algorithm {
    /// SHA-1 (Django's `salted_hmac` default; used by old tokens).
    Sha1,
    /// SHA-256 (Django's signing default).
    #[default]
    Sha256,
    /// SHA-512.
    Sha512,
}

impl Algorithm {
    /// Django's (hashlib's) name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha1 => "sha1",
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// Parses `sha1`, `sha256` or `sha512`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "sha1" => Some(Algorithm::Sha1),
            "sha256" => Some(Algorithm::Sha256),
            "sha512" => Some(Algorithm::Sha512),
            _ => None,
        }
    }

    /// Digest length in bytes.
    pub fn output_len(self) -> usize {
        match self {
            Algorithm::Sha1 => 20,
            Algorithm::Sha256 => 32,
            Algorithm::Sha512 => 64,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A MAC output of up to 64 bytes.
#[derive(Clone, Copy)]
pub struct Tag {
    bytes: [u8; 64],
    len: usize,
}

impl Tag {
    /// The tag's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or(&[])
    }

    /// Lower-case hex of the tag (Django's `hexdigest()`).
    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(self.len * 2);
        for b in self.as_bytes() {
            s.push(hex_digit(b >> 4));
            s.push(hex_digit(b & 15));
        }
        s
    }

    /// Constant-time comparison with another byte string.
    pub fn ct_eq(&self, other: &[u8]) -> bool {
        ct_eq(self.as_bytes(), other)
    }

    fn from_slice(s: &[u8]) -> Self {
        let mut bytes = [0u8; 64];
        let len = s.len().min(64);
        if let (Some(dst), Some(src)) = (bytes.get_mut(..len), s.get(..len)) {
            dst.copy_from_slice(src);
        }
        Self { bytes, len }
    }
}

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tag({})", self.to_hex())
    }
}

/// The lower-case hex digit of `n & 15`.
pub(crate) fn hex_digit(n: u8) -> char {
    char::from_digit(u32::from(n & 15), 16).unwrap_or('0')
}

/// `D(a ‖ b ‖ c)`, wiped on drop.
fn derived<D: Digest>(a: &[u8], b: &[u8], c: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut h = D::new();
    h.update(a);
    h.update(b);
    h.update(c);
    Zeroizing::new(h.finalize().to_vec())
}

/// A MAC keyed with `key`, which is one digest long, never longer than the
/// hash's block: it is zero-padded to a block here exactly as HMAC pads a
/// short key itself, so the infallible block-key constructor gives the same
/// MAC as `new_from_slice` without an error arm that could never be taken.
/// The padded copy is wiped.
fn keyed<M: KeyInit>(key: &[u8]) -> M {
    let mut block = hmac::digest::Key::<M>::default();
    for (dst, src) in block.iter_mut().zip(key) {
        *dst = *src;
    }
    let mac = M::new(&block);
    block.as_mut_slice().zeroize();
    mac
}

/// An HMAC keyed with a derived key `H(key_salt ‖ prefix ‖ secret)`, computed
/// once and reused: the inner and outer hash states are precomputed.
#[derive(Clone)]
pub(crate) enum MacKey {
    Sha1(Hmac<Sha1>),
    Sha256(Hmac<Sha256>),
    Sha512(Hmac<Sha512>),
}

impl MacKey {
    /// Derives the HMAC key as Django's `salted_hmac` does. `prefix` is put
    /// between salt and secret (the cookie signer's `django.http.cookies`).
    pub(crate) fn derive(alg: Algorithm, key_salt: &[u8], prefix: &[u8], secret: &[u8]) -> Self {
        match alg {
            Algorithm::Sha1 => MacKey::Sha1(keyed(&derived::<Sha1>(key_salt, prefix, secret))),
            Algorithm::Sha256 => {
                MacKey::Sha256(keyed(&derived::<Sha256>(key_salt, prefix, secret)))
            }
            Algorithm::Sha512 => {
                MacKey::Sha512(keyed(&derived::<Sha512>(key_salt, prefix, secret)))
            }
        }
    }

    /// HMAC over the concatenation of `parts`.
    pub(crate) fn tag(&self, parts: &[&[u8]]) -> Tag {
        fn run<M: Mac + Clone>(m: &M, parts: &[&[u8]]) -> Tag {
            let mut m = m.clone();
            for p in parts {
                m.update(p);
            }
            Tag::from_slice(&m.finalize().into_bytes())
        }
        match self {
            MacKey::Sha1(m) => run(m, parts),
            MacKey::Sha256(m) => run(m, parts),
            MacKey::Sha512(m) => run(m, parts),
        }
    }
}

impl fmt::Debug for MacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MacKey(redacted)")
    }
}

/// Django's `salted_hmac(key_salt, value, secret, algorithm)`.
///
/// ```
/// use keyroll::{salted_hmac, Algorithm};
/// let tag = salted_hmac(b"salt", b"value", b"django_tests_secret_key", Algorithm::Sha1);
/// assert_eq!(tag.to_hex(), "b51a2e619c43b1ca4f91d15c57455521d71d61eb");
/// ```
pub fn salted_hmac(key_salt: &[u8], value: &[u8], secret: &[u8], alg: Algorithm) -> Tag {
    MacKey::derive(alg, key_salt, b"", secret).tag(&[value])
}

/// One ring key prepared for one kind of MAC.
#[derive(Clone, Debug)]
pub(crate) struct PreparedKey {
    pub(crate) id: KeyId,
    pub(crate) role: Role,
    retire_after: Option<OffsetDateTime>,
    pub(crate) mac: MacKey,
}

impl PreparedKey {
    fn live_at(&self, now: OffsetDateTime) -> bool {
        self.retire_after.is_none_or(|t| now <= t)
    }
}

/// Every key of a ring prepared for one kind of MAC (an algorithm, a key
/// salt and a secret prefix), in verification order: the primary, then
/// staged keys, then fallbacks. The one place that says which keys are tried
/// and in what order: signers, login hashes and reset tokens all use it.
#[derive(Clone, Debug)]
pub(crate) struct PreparedKeys {
    primary: PreparedKey,
    others: Vec<PreparedKey>,
}

impl PreparedKeys {
    /// Derives each key's MAC key once.
    pub(crate) fn derive(ring: &KeyRing, alg: Algorithm, key_salt: &[u8], prefix: &[u8]) -> Self {
        let prepare = |k: &crate::ring::Key| PreparedKey {
            id: k.id(),
            role: k.role(),
            retire_after: k.retire_after(),
            mac: MacKey::derive(alg, key_salt, prefix, k.secret().expose()),
        };
        Self {
            primary: prepare(ring.primary()),
            others: ring
                .keys()
                .filter(|k| k.role() != Role::Primary)
                .map(prepare)
                .collect(),
        }
    }

    /// The primary key (the only one that signs).
    pub(crate) fn primary(&self) -> &PreparedKey {
        &self.primary
    }

    /// Every key in verification order, retired ones included.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &PreparedKey> {
        std::iter::once(&self.primary).chain(self.others.iter())
    }

    /// The first key, in verification order, that is live at `now` and for
    /// which `matches` holds (it compares with [`ct_eq`]).
    pub(crate) fn find_at(
        &self,
        now: OffsetDateTime,
        mut matches: impl FnMut(&MacKey) -> bool,
    ) -> Option<&PreparedKey> {
        self.iter()
            .filter(|k| k.live_at(now))
            .find(|k| matches(&k.mac))
    }
}

/// Compares two byte strings in time that depends only on their lengths
/// (`subtle`'s slice comparison): every MAC and login hash is checked with it.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    subtle::ConstantTimeEq::ct_eq(a, b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Fixed vectors from Django's tests/utils_tests/test_crypto.py.
    #[test]
    fn django_salted_hmac_vectors() {
        let cases: [(&[u8], Algorithm, &str); 4] = [
            (
                b"django_tests_secret_key",
                Algorithm::Sha1,
                "b51a2e619c43b1ca4f91d15c57455521d71d61eb",
            ),
            (
                b"abcdefg",
                Algorithm::Sha1,
                "8bbee04ccddfa24772d1423a0ba43bd0c0e24b76",
            ),
            (
                &[b'x'; 64],
                Algorithm::Sha1,
                "bd3749347b412b1b0a9ea65220e55767ac8e96b0",
            ),
            (
                b"django_tests_secret_key",
                Algorithm::Sha256,
                "ee0bf789e4e009371a5372c90f73fcf17695a8439c9108b0480f14e347b3f9ec",
            ),
        ];
        for (secret, alg, want) in cases {
            assert_eq!(salted_hmac(b"salt", b"value", secret, alg).to_hex(), want);
        }
    }

    #[test]
    fn tag_compare() {
        let t = salted_hmac(b"s", b"v", b"k", Algorithm::Sha256);
        assert!(t.ct_eq(t.as_bytes()));
        assert!(!t.ct_eq(&t.as_bytes()[..31]));
        assert_eq!(t.as_bytes().len(), 32);
    }
}
