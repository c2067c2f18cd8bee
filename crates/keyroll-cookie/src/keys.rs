//! The cookie crate's signed and private formats under every live key of a ring.

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use keyroll::ringfile::RingFile;
use keyroll::{KeyId, Role, Secret, Verified};
use rand::RngCore as _;
use sha2::Sha256;
use time::OffsetDateTime;
use zeroize::Zeroizing;

/// Length of a `cookie::Key` master key: 32 signing bytes, then 32 encryption bytes.
pub const MASTER_KEY_LEN: usize = 64;
/// Length of the base64 text of a master key (standard alphabet, padded).
pub const MASTER_KEY_B64_LEN: usize = 88;
/// The cookie crate's signed-cookie digest: base64 of HMAC-SHA256, 44 characters.
pub const DIGEST_B64_LEN: usize = 44;
const NONCE_LEN: usize = 12;
/// `Key::derive_from`'s HKDF info (cookie 0.18's `KEYS_INFO`).
const COOKIE_KEYS_INFO: &[u8] = b"COOKIE;SIGNED:HMAC-SHA256;PRIVATE:AEAD-AES-256-GCM";
/// HKDF-SHA256 salt for ring secrets shorter than 32 bytes.
pub const SHORT_SECRET_SALT: &[u8] = b"keyroll-cookie short secret v1";

/// How a ring secret becomes a `cookie::Key`.
///
/// | secret | `Auto` (default) | `Master` | `Derive` |
/// | --- | --- | --- | --- |
/// | 88 characters of padded standard base64 that decode to 64 bytes | those 64 bytes, as `Key::from` | same | `Key::derive_from(secret)` |
/// | anything else, 32 bytes or more | `Key::derive_from(secret bytes)` | error | same as `Auto` |
/// | anything else, under 32 bytes | HKDF-SHA256(salt [`SHORT_SECRET_SALT`], secret), expanded with the cookie crate's info | error | same as `Auto` |
///
/// An app's existing `Key` goes into the ring as
/// `base64(key.master())`; a secret made by `keyroll ring stage` (50
/// characters) is derived.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KeyMaterial {
    /// Master key when the secret is the base64 of 64 bytes, else derived.
    #[default]
    Auto,
    /// Every secret must be the base64 of a 64-byte master key.
    Master,
    /// Every secret is derived, even one that looks like a master key.
    Derive,
}

/// Why ring keys could not become cookie keys. Never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// [`KeyMaterial::Master`] and this key's secret is not the base64 of 64 bytes.
    #[error("key {0}: the secret is not the base64 of a 64-byte cookie master key")]
    NotAMasterKey(KeyId),
    /// The ring has no primary key.
    #[error("the ring has no primary key")]
    NoPrimary,
    /// A ring key's secret is empty.
    #[error("key {0}: the secret is empty")]
    EmptySecret(KeyId),
}

/// Why a cookie value was refused. Holds no part of the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CookieError {
    /// Too short, not base64, or no room for nonce and tag.
    #[error("the cookie value is malformed")]
    Malformed,
    /// No live ring key verified (signed) or opened (private) it.
    #[error("no live key verifies the cookie")]
    BadSignature,
    /// A private cookie opened but its plaintext is not UTF-8 (the cookie crate refuses it too).
    #[error("the cookie's plaintext is not UTF-8")]
    NotUtf8,
}

impl CookieError {
    /// A short, stable word for command output and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            CookieError::Malformed => "malformed",
            CookieError::BadSignature => "signature",
            CookieError::NotUtf8 => "malformed",
        }
    }
}

/// A derived `cookie::Key`'s 64 bytes from one secret.
fn master_bytes(
    secret: &Secret,
    material: KeyMaterial,
) -> Result<Zeroizing<[u8; MASTER_KEY_LEN]>, KeyError> {
    let bytes = secret.expose();
    if bytes.is_empty() {
        return Err(KeyError::EmptySecret(secret.id()));
    }
    let mut out = Zeroizing::new([0u8; MASTER_KEY_LEN]);
    if material != KeyMaterial::Derive && bytes.len() == MASTER_KEY_B64_LEN {
        let mut decoded = Zeroizing::new([0u8; MASTER_KEY_LEN + 3]);
        if let Ok(MASTER_KEY_LEN) = STANDARD.decode_slice(bytes, &mut decoded[..]) {
            for (o, d) in out.iter_mut().zip(decoded.iter()) {
                *o = *d;
            }
            return Ok(out);
        }
    }
    if material == KeyMaterial::Master {
        return Err(KeyError::NotAMasterKey(secret.id()));
    }
    let hk = if bytes.len() >= 32 {
        // `Key::derive_from`: the secret is the PRK.
        hkdf::Hkdf::<Sha256>::from_prk(bytes).map_err(|_| KeyError::EmptySecret(secret.id()))?
    } else {
        hkdf::Hkdf::<Sha256>::new(Some(SHORT_SECRET_SALT), bytes)
    };
    hk.expand(COOKIE_KEYS_INFO, &mut out[..])
        .map_err(|_| KeyError::EmptySecret(secret.id()))?;
    Ok(out)
}

/// The `cookie::Key` a ring secret maps to (see [`KeyMaterial`]): give the
/// primary's to the app's own jar.
///
/// # Errors
/// [`KeyError`] when the secret cannot map under `material`.
pub fn cookie_key(secret: &Secret, material: KeyMaterial) -> Result<cookie::Key, KeyError> {
    let m = master_bytes(secret, material)?;
    Ok(cookie::Key::from(&m[..]))
}

/// One ring key, prepared: a keyed HMAC and an AES-256-GCM cipher.
#[derive(Clone)]
struct Prepared {
    id: KeyId,
    role: Role,
    retire_after: Option<OffsetDateTime>,
    mac: Hmac<Sha256>,
    aead: Aes256Gcm,
}

impl Prepared {
    fn new(
        secret: &Secret,
        role: Role,
        retire_after: Option<OffsetDateTime>,
        material: KeyMaterial,
    ) -> Result<Self, KeyError> {
        let m = master_bytes(secret, material)?;
        let (signing, encryption) = m.split_at(32);
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(signing)
            .map_err(|_| KeyError::EmptySecret(secret.id()))?;
        let aead = Aes256Gcm::new_from_slice(encryption)
            .map_err(|_| KeyError::EmptySecret(secret.id()))?;
        Ok(Self {
            id: secret.id(),
            role,
            retire_after,
            mac,
            aead,
        })
    }

    fn is_live_at(&self, now: OffsetDateTime) -> bool {
        self.retire_after.is_none_or(|t| now <= t)
    }

    fn verify(&self, digest: &[u8], value: &str) -> bool {
        let mut mac = self.mac.clone();
        mac.update(value.as_bytes());
        mac.verify_slice(digest).is_ok()
    }

    fn digest(&self, value: &str) -> String {
        let mut mac = self.mac.clone();
        mac.update(value.as_bytes());
        STANDARD.encode(mac.finalize().into_bytes())
    }

    fn open(&self, name: &str, data: &[u8]) -> Option<Vec<u8>> {
        let (nonce, sealed) = data.split_at_checked(NONCE_LEN)?;
        self.aead
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: name.as_bytes(),
                },
            )
            .ok()
    }
}

/// The cookie keys of one ring, derived once: verify and open under every
/// live key (primary, staged, fallbacks not past `retire_after`, in that
/// order), sign and seal under the primary only. Byte-compatible with the
/// cookie crate's `SignedJar` / `PrivateJar` (0.16 to 0.18).
///
/// `Debug` shows key ids and roles, never key material.
#[derive(Clone)]
pub struct CookieKeys {
    keys: Vec<Prepared>,
    primary: Prepared,
    generation: u64,
}

impl fmt::Debug for CookieKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<String> = self
            .keys
            .iter()
            .map(|k| format!("{}:{}", k.id, k.role))
            .collect();
        f.debug_struct("CookieKeys").field("keys", &keys).finish()
    }
}

impl CookieKeys {
    /// Prepares `(secret, role, retire_after)` entries. Verification order is
    /// primary, staged, fallbacks; a secret repeated across entries is kept
    /// once, in the role tried first.
    ///
    /// # Errors
    /// [`KeyError`] when there is no primary or a secret cannot map under `material`.
    pub fn new<'a>(
        entries: impl IntoIterator<Item = (&'a Secret, Role, Option<OffsetDateTime>)>,
        material: KeyMaterial,
    ) -> Result<Self, KeyError> {
        let mut all: Vec<(&Secret, Role, Option<OffsetDateTime>)> = entries.into_iter().collect();
        let rank = |r: Role| match r {
            Role::Primary => 0,
            Role::Staged => 1,
            _ => 2,
        };
        all.sort_by_key(|(_, r, _)| rank(*r));
        let mut keys: Vec<Prepared> = Vec::with_capacity(all.len());
        for (secret, role, retire) in all {
            if keys.iter().any(|k| k.id == secret.id()) {
                continue;
            }
            let retire = if role == Role::Fallback { retire } else { None };
            keys.push(Prepared::new(secret, role, retire, material)?);
        }
        let primary = match keys.first() {
            Some(k) if k.role == Role::Primary => k.clone(),
            _ => return Err(KeyError::NoPrimary),
        };
        Ok(Self {
            keys,
            primary,
            generation: 0,
        })
    }

    /// Prepares the keys of a ring file's entries.
    ///
    /// # Errors
    /// As [`CookieKeys::new`].
    pub fn from_ring_file(file: &RingFile, material: KeyMaterial) -> Result<Self, KeyError> {
        Self::new(
            file.entries
                .iter()
                .map(|e| (&e.secret, e.role, e.retire_after)),
            material,
        )
    }

    pub(crate) fn with_generation(mut self, generation: u64) -> Self {
        self.generation = generation;
        self
    }

    /// Increases on each reload of a [`crate::CookieRing`] (0 otherwise).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The primary's key id.
    pub fn primary_id(&self) -> KeyId {
        self.primary.id
    }

    /// `(id, role)` of every key, in verification order.
    pub fn ids(&self) -> impl Iterator<Item = (KeyId, Role)> + '_ {
        self.keys.iter().map(|k| (k.id, k.role))
    }

    /// A signed cookie value under the primary: `base64(HMAC-SHA256(value)) ‖ value`,
    /// as `SignedJar::add` makes it (the cookie crate MACs the value only, not the name).
    pub fn sign(&self, value: &str) -> String {
        let mut out = self.primary.digest(value);
        out.push_str(value);
        out
    }

    /// Verifies a signed cookie value under each live key; returns the value without its digest.
    ///
    /// # Errors
    /// [`CookieError::Malformed`] as `SignedJar` refuses it (shorter than the
    /// digest, digest not base64), else [`CookieError::BadSignature`].
    pub fn verify_signed_at<'v>(
        &self,
        cookie_value: &'v str,
        now: OffsetDateTime,
    ) -> Result<Verified<&'v str>, CookieError> {
        let (digest_b64, value) = cookie_value
            .split_at_checked(DIGEST_B64_LEN)
            .ok_or(CookieError::Malformed)?;
        let mut digest = [0u8; 33];
        let n = STANDARD
            .decode_slice(digest_b64, &mut digest)
            .map_err(|_| CookieError::Malformed)?;
        let digest = digest.get(..n).ok_or(CookieError::Malformed)?;
        for k in self.keys.iter().filter(|k| k.is_live_at(now)) {
            if k.verify(digest, value) {
                return Ok(Verified {
                    value,
                    key_id: k.id,
                    role: k.role,
                    timestamp: None,
                });
            }
        }
        Err(CookieError::BadSignature)
    }

    /// A private cookie value under the primary:
    /// `base64(nonce ‖ AES-256-GCM(value, associated data = name))`, a fresh random nonce.
    pub fn seal(&self, name: &str, value: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::thread_rng().fill_bytes(&mut nonce);
        let sealed = self
            .primary
            .aead
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: value.as_bytes(),
                    aad: name.as_bytes(),
                },
            )
            .unwrap_or_default();
        let mut data = Vec::with_capacity(NONCE_LEN + sealed.len());
        data.extend_from_slice(&nonce);
        data.extend_from_slice(&sealed);
        STANDARD.encode(data)
    }

    /// Opens a private cookie named `name` under each live key.
    ///
    /// # Errors
    /// [`CookieError::Malformed`] (not base64, too short), [`CookieError::BadSignature`]
    /// (no live key opens it: tampered, wrong name or wrong key), [`CookieError::NotUtf8`].
    pub fn open_private_at(
        &self,
        name: &str,
        cookie_value: &str,
        now: OffsetDateTime,
    ) -> Result<Verified<String>, CookieError> {
        let data = STANDARD
            .decode(cookie_value)
            .map_err(|_| CookieError::Malformed)?;
        if data.len() <= NONCE_LEN {
            return Err(CookieError::Malformed);
        }
        for k in self.keys.iter().filter(|k| k.is_live_at(now)) {
            if let Some(plain) = k.open(name, &data) {
                let value = String::from_utf8(plain).map_err(|_| CookieError::NotUtf8)?;
                return Ok(Verified {
                    value,
                    key_id: k.id,
                    role: k.role,
                    timestamp: None,
                });
            }
        }
        Err(CookieError::BadSignature)
    }

    /// Verifies a signed value; when a non-primary key verified it, also
    /// returns it re-signed under the primary.
    ///
    /// # Errors
    /// As [`CookieKeys::verify_signed_at`].
    pub fn resign_signed_at(
        &self,
        cookie_value: &str,
        now: OffsetDateTime,
    ) -> Result<Verified<Option<String>>, CookieError> {
        let v = self.verify_signed_at(cookie_value, now)?;
        let stale = v.is_stale();
        Ok(v.map(|value| stale.then(|| self.sign(value))))
    }

    /// Opens a private value; when a non-primary key opened it, also returns
    /// it re-sealed under the primary (with a fresh nonce).
    ///
    /// # Errors
    /// As [`CookieKeys::open_private_at`].
    pub fn reseal_private_at(
        &self,
        name: &str,
        cookie_value: &str,
        now: OffsetDateTime,
    ) -> Result<Verified<Option<String>>, CookieError> {
        let v = self.open_private_at(name, cookie_value, now)?;
        let stale = v.is_stale();
        Ok(v.map(|value| stale.then(|| self.seal(name, &value))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cookie::{Cookie, CookieJar};

    #[test]
    fn a_master_key_in_base64_maps_to_the_same_cookie_key() {
        let key = cookie::Key::generate();
        let secret = Secret::from(STANDARD.encode(key.master()));
        assert_eq!(cookie_key(&secret, KeyMaterial::Auto).unwrap(), key);
        assert_eq!(cookie_key(&secret, KeyMaterial::Master).unwrap(), key);
        assert_ne!(cookie_key(&secret, KeyMaterial::Derive).unwrap(), key);
        assert_eq!(
            cookie_key(&secret, KeyMaterial::Derive).unwrap(),
            cookie::Key::derive_from(secret.expose())
        );
    }

    #[test]
    fn a_long_secret_maps_as_key_derive_from_and_a_short_one_through_salted_hkdf() {
        let long = Secret::from("x".repeat(50));
        assert_eq!(
            cookie_key(&long, KeyMaterial::Auto).unwrap(),
            cookie::Key::derive_from(long.expose())
        );
        let short = Secret::from("short");
        let a = cookie_key(&short, KeyMaterial::Auto).unwrap();
        assert_eq!(a, cookie_key(&short, KeyMaterial::Auto).unwrap());
        assert_ne!(
            a,
            cookie_key(&Secret::from("shorT"), KeyMaterial::Auto).unwrap()
        );
        assert_eq!(
            cookie_key(&short, KeyMaterial::Master),
            Err(KeyError::NotAMasterKey(short.id()))
        );
    }

    #[test]
    fn debug_shows_no_key_material() {
        let secret = Secret::from("hunter2-hunter2-hunter2-hunter2-hunter2");
        let keys = CookieKeys::new([(&secret, Role::Primary, None)], KeyMaterial::Auto).unwrap();
        let shown = format!("{keys:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        let key = cookie_key(&secret, KeyMaterial::Auto).unwrap();
        for b in [key.signing(), key.encryption()] {
            assert!(!shown.contains(&STANDARD.encode(b)));
        }
        assert!(shown.contains(&secret.id().to_string()));
    }

    #[test]
    fn the_jar_accepts_what_keyroll_signs_and_seals() {
        let secret = Secret::from("a-secret-of-more-than-thirty-two-bytes!");
        let keys = CookieKeys::new([(&secret, Role::Primary, None)], KeyMaterial::Auto).unwrap();
        let key = cookie_key(&secret, KeyMaterial::Auto).unwrap();
        let mut jar = CookieJar::new();
        jar.add_original(Cookie::new("s", keys.sign("hello")));
        jar.add_original(Cookie::new("p", keys.seal("p", "hello")));
        assert_eq!(jar.signed(&key).get("s").unwrap().value(), "hello");
        assert_eq!(jar.private(&key).get("p").unwrap().value(), "hello");
    }
}
