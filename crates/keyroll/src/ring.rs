//! The key ring: one primary key that signs, staged and fallback keys that only verify.

use std::fmt;

use time::OffsetDateTime;

use crate::secret::{KeyId, Secret};

/// What a key in the ring is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// The one key that signs; verified first.
    Primary,
    /// A newer key announced before its promotion; verify-only.
    Staged,
    /// An older key; verify-only until its `retire_after` instant.
    Fallback,
}

impl Role {
    /// The role's name as written in ring files and command output.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Staged => "staged",
            Role::Fallback => "fallback",
        }
    }

    /// Parses a role name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "primary" => Some(Role::Primary),
            "staged" => Some(Role::Staged),
            "fallback" => Some(Role::Fallback),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One key of a ring: a secret, its role and its dates.
#[derive(Clone, Debug)]
pub struct Key {
    secret: Secret,
    role: Role,
    retire_after: Option<OffsetDateTime>,
}

impl Key {
    /// The key's public id.
    pub fn id(&self) -> KeyId {
        self.secret.id()
    }

    /// The key's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// After this instant a fallback key is never tried.
    pub fn retire_after(&self) -> Option<OffsetDateTime> {
        self.retire_after
    }

    /// The secret (crate-internal: signing and verifying go through signers).
    pub(crate) fn secret(&self) -> &Secret {
        &self.secret
    }

    /// True when the key may verify at `now`.
    pub fn is_live_at(&self, now: OffsetDateTime) -> bool {
        self.retire_after.is_none_or(|t| now <= t)
    }
}

/// Errors building a key ring.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RingError {
    /// A ring needs exactly one primary key.
    #[error("a key ring needs exactly one primary key, found {0}")]
    PrimaryCount(usize),
    /// An empty secret was given.
    #[error("key {0} has an empty secret")]
    EmptySecret(String),
}

/// The key ring: exactly one primary key, then staged keys, then fallback keys.
///
/// Verification tries keys in that order (primary, staged in ring order,
/// fallbacks in ring order), skipping fallbacks past their `retire_after`.
/// Only the primary ever signs: no API takes a key to sign with.
///
/// The ring holds each secret once. A secret given again (Django's
/// `SECRET_KEY` repeated in `SECRET_KEY_FALLBACKS`, or a ring file listing it
/// twice) keeps its first role in verification order, so a token it signed
/// verifies as that role (a primary key's tokens are never stale); two
/// fallback entries keep the later `retire_after`. [`KeyRing::repeated`] lists
/// what was dropped, for a warning.
///
/// ```
/// use keyroll::{KeyRing, Secret, Role};
/// let ring = KeyRing::new(Secret::from("new-secret"))?
///     .with_fallback(Secret::from("old-secret"), None)?;
/// assert_eq!(ring.primary().role(), Role::Primary);
/// assert_eq!(ring.keys().count(), 2);
/// # Ok::<(), keyroll::RingError>(())
/// ```
#[derive(Clone, Debug)]
pub struct KeyRing {
    keys: Vec<Key>,
    repeated: Vec<(KeyId, Role)>,
}

/// Verification order of the roles: primary, staged, fallback.
pub(crate) fn rank(role: Role) -> u8 {
    match role {
        Role::Primary => 0,
        Role::Staged => 1,
        Role::Fallback => 2,
    }
}

/// The later of two `retire_after`s, where `None` (never) is latest.
fn later(a: Option<OffsetDateTime>, b: Option<OffsetDateTime>) -> Option<OffsetDateTime> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        _ => None,
    }
}

impl KeyRing {
    /// A ring with just a primary key.
    ///
    /// # Errors
    /// [`RingError::EmptySecret`] for an empty secret: an empty key would
    /// sign with a MAC anyone can compute.
    pub fn new(primary: Secret) -> Result<Self, RingError> {
        check_secret(&primary)?;
        Ok(Self {
            keys: vec![Key {
                secret: primary,
                role: Role::Primary,
                retire_after: None,
            }],
            repeated: Vec::new(),
        })
    }

    /// Adds `key` after the keys of its role and those before it; a secret
    /// already in the ring is kept once, in the role verified first.
    fn add(&mut self, key: Key) {
        let same = self
            .keys
            .iter()
            .position(|k| k.secret.expose() == key.secret.expose());
        if let Some(i) = same {
            let Some(existing) = self.keys.get_mut(i) else {
                return;
            };
            if rank(key.role) < rank(existing.role) {
                // The new role is verified first: the key moves there.
                self.repeated.push((existing.id(), existing.role));
                self.keys.remove(i);
            } else {
                if existing.role == Role::Fallback && key.role == Role::Fallback {
                    existing.retire_after = later(existing.retire_after, key.retire_after);
                }
                self.repeated.push((key.id(), key.role));
                return;
            }
        }
        let at = self
            .keys
            .iter()
            .take_while(|k| rank(k.role) <= rank(key.role))
            .count();
        self.keys.insert(at, key);
    }

    /// Adds a staged (verify-only, newer) key, after the other staged keys.
    ///
    /// # Errors
    /// [`RingError::EmptySecret`] for an empty secret.
    pub fn with_staged(mut self, secret: Secret) -> Result<Self, RingError> {
        check_secret(&secret)?;
        self.add(Key {
            secret,
            role: Role::Staged,
            retire_after: None,
        });
        Ok(self)
    }

    /// Adds a fallback (verify-only, older) key at the end of the ring.
    ///
    /// # Errors
    /// [`RingError::EmptySecret`] for an empty secret.
    pub fn with_fallback(
        mut self,
        secret: Secret,
        retire_after: Option<OffsetDateTime>,
    ) -> Result<Self, RingError> {
        check_secret(&secret)?;
        self.add(Key {
            secret,
            role: Role::Fallback,
            retire_after,
        });
        Ok(self)
    }

    /// Builds a ring from `(secret, role, retire_after)` triples in any order;
    /// the ring orders them primary, staged, fallback, keeping the given order
    /// within a role, and keeps a repeated secret once (see [`KeyRing`]).
    ///
    /// # Errors
    /// [`RingError::PrimaryCount`] unless exactly one primary is given;
    /// [`RingError::EmptySecret`] for an empty secret.
    pub fn from_keys(
        keys: impl IntoIterator<Item = (Secret, Role, Option<OffsetDateTime>)>,
    ) -> Result<Self, RingError> {
        let mut all: Vec<Key> = Vec::new();
        for (secret, role, retire_after) in keys {
            check_secret(&secret)?;
            all.push(Key {
                secret,
                role,
                retire_after: if role == Role::Fallback {
                    retire_after
                } else {
                    None
                },
            });
        }
        let primaries = all.iter().filter(|k| k.role == Role::Primary).count();
        if primaries != 1 {
            return Err(RingError::PrimaryCount(primaries));
        }
        all.sort_by_key(|k| rank(k.role)); // stable: keeps order within a role
        let mut ring = Self {
            keys: Vec::with_capacity(all.len()),
            repeated: Vec::new(),
        };
        for key in all {
            ring.add(key);
        }
        Ok(ring)
    }

    /// Keys that were given again with a secret already in the ring, as
    /// `(key id, the role it was given again as)`; the ring keeps each
    /// secret once, in the role [`KeyRing::get`] shows. Empty for a ring
    /// without repeats. A repeat is harmless to verification but is a
    /// mistake worth a warning (a rotation that did not happen).
    pub fn repeated(&self) -> &[(KeyId, Role)] {
        &self.repeated
    }

    /// The primary key, the only one that signs.
    #[allow(clippy::indexing_slicing)] // invariant: keys[0] is the primary, never empty
    pub fn primary(&self) -> &Key {
        &self.keys[0]
    }

    /// Every key in verification order, retired ones included.
    pub fn keys(&self) -> impl Iterator<Item = &Key> {
        self.keys.iter()
    }

    /// The keys that verify at `now`, in verification order.
    pub fn verifiers_at(&self, now: OffsetDateTime) -> impl Iterator<Item = &Key> {
        self.keys.iter().filter(move |k| k.is_live_at(now))
    }

    /// The key with this id, if any.
    pub fn get(&self, id: KeyId) -> Option<&Key> {
        self.keys.iter().find(|k| k.id() == id)
    }
}

fn check_secret(secret: &Secret) -> Result<(), RingError> {
    if secret.is_empty() {
        return Err(RingError::EmptySecret(secret.id().to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn order_is_primary_staged_fallback() {
        let ring = KeyRing::from_keys([
            (Secret::from("f1"), Role::Fallback, None),
            (Secret::from("s1"), Role::Staged, None),
            (Secret::from("p"), Role::Primary, None),
            (Secret::from("f2"), Role::Fallback, None),
            (Secret::from("s2"), Role::Staged, None),
        ])
        .expect("ring");
        let ids: Vec<_> = ring.keys().map(|k| k.id()).collect();
        let want: Vec<_> = ["p", "s1", "s2", "f1", "f2"]
            .iter()
            .map(|s| Secret::from(*s).id())
            .collect();
        assert_eq!(ids, want);
    }

    #[test]
    fn exactly_one_primary() {
        assert_eq!(
            KeyRing::from_keys([(Secret::from("a"), Role::Staged, None)]).err(),
            Some(RingError::PrimaryCount(0))
        );
        assert_eq!(
            KeyRing::from_keys([
                (Secret::from("a"), Role::Primary, None),
                (Secret::from("b"), Role::Primary, None)
            ])
            .err(),
            Some(RingError::PrimaryCount(2))
        );
    }

    #[test]
    fn no_constructor_takes_an_empty_secret() {
        let empty = || Secret::new(Vec::new());
        assert!(matches!(
            KeyRing::new(empty()),
            Err(RingError::EmptySecret(_))
        ));
        let ring = KeyRing::new(Secret::from("p")).expect("a non-empty secret");
        assert!(ring.clone().with_staged(empty()).is_err());
        assert!(ring.with_fallback(empty(), None).is_err());
        assert!(KeyRing::from_keys([(empty(), Role::Primary, None)]).is_err());
    }

    #[test]
    fn retired_fallbacks_are_skipped_after_the_instant() {
        let at = datetime!(2026-12-01 0:00 UTC);
        let ring = KeyRing::new(Secret::from("p"))
            .expect("a non-empty secret")
            .with_fallback(Secret::from("old"), Some(at))
            .expect("ring");
        assert_eq!(ring.verifiers_at(at).count(), 2);
        assert_eq!(
            ring.verifiers_at(at + time::Duration::nanoseconds(1))
                .count(),
            1
        );
    }

    #[test]
    fn staged_keys_go_before_fallbacks() {
        let ring = KeyRing::new(Secret::from("p"))
            .expect("a non-empty secret")
            .with_fallback(Secret::from("f"), None)
            .and_then(|r| r.with_staged(Secret::from("s")))
            .expect("ring");
        let roles: Vec<_> = ring.keys().map(|k| k.role()).collect();
        assert_eq!(roles, [Role::Primary, Role::Staged, Role::Fallback]);
    }

    #[test]
    fn a_secret_given_in_two_roles_is_kept_once_in_the_role_verified_first() {
        let x = || Secret::from("the-same-secret");
        let ring = KeyRing::from_keys([
            (Secret::from("f"), Role::Fallback, None),
            (x(), Role::Fallback, None),
            (x(), Role::Primary, None),
            (x(), Role::Staged, None),
        ])
        .expect("ring");
        let keys: Vec<_> = ring.keys().map(|k| (k.id(), k.role())).collect();
        assert_eq!(
            keys,
            [
                (x().id(), Role::Primary),
                (Secret::from("f").id(), Role::Fallback)
            ]
        );
        assert_eq!(
            ring.repeated(),
            [(x().id(), Role::Staged), (x().id(), Role::Fallback)]
        );
        assert_eq!(ring.get(x().id()).map(Key::role), Some(Role::Primary));
        assert!(KeyRing::new(Secret::from("p"))
            .expect("a non-empty secret")
            .repeated()
            .is_empty());
    }

    #[test]
    fn a_fallback_staged_again_moves_to_staged_and_a_repeated_fallback_keeps_the_later_date() {
        let at = datetime!(2026-12-01 0:00 UTC);
        let ring = KeyRing::new(Secret::from("p"))
            .expect("a non-empty secret")
            .with_fallback(Secret::from("x"), Some(at))
            .and_then(|r| r.with_fallback(Secret::from("f"), None))
            .and_then(|r| r.with_staged(Secret::from("x")))
            .expect("ring");
        let roles: Vec<_> = ring.keys().map(|k| (k.id(), k.role())).collect();
        assert_eq!(
            roles,
            [
                (Secret::from("p").id(), Role::Primary),
                (Secret::from("x").id(), Role::Staged),
                (Secret::from("f").id(), Role::Fallback)
            ]
        );
        assert_eq!(ring.repeated(), [(Secret::from("x").id(), Role::Fallback)]);

        let later = at + time::Duration::days(9);
        let ring = KeyRing::new(Secret::from("p"))
            .expect("a non-empty secret")
            .with_fallback(Secret::from("x"), Some(at))
            .and_then(|r| r.with_fallback(Secret::from("x"), Some(later)))
            .expect("ring");
        assert_eq!(ring.keys().count(), 2);
        assert_eq!(
            ring.get(Secret::from("x").id()).and_then(Key::retire_after),
            Some(later),
            "the repeat kept the key verifying until its later date"
        );
        let forever = KeyRing::new(Secret::from("p"))
            .expect("a non-empty secret")
            .with_fallback(Secret::from("x"), Some(at))
            .and_then(|r| r.with_fallback(Secret::from("x"), None))
            .expect("ring");
        assert_eq!(
            forever.get(Secret::from("x").id()).map(Key::retire_after),
            Some(None)
        );
    }

    /// The first entry of a repeated fallback keeps its place among the
    /// fallbacks, and the later date wins whichever entry carries it.
    #[test]
    fn a_repeated_fallback_keeps_its_first_place_and_the_later_date_given_first() {
        let at = datetime!(2026-12-01 0:00 UTC);
        let sooner = at - time::Duration::days(9);
        let ring = KeyRing::new(Secret::from("p"))
            .expect("a non-empty secret")
            .with_fallback(Secret::from("x"), Some(at))
            .and_then(|r| r.with_fallback(Secret::from("f"), None))
            .and_then(|r| r.with_fallback(Secret::from("x"), Some(sooner)))
            .expect("ring");
        let keys: Vec<_> = ring.keys().map(|k| (k.id(), k.retire_after())).collect();
        assert_eq!(
            keys,
            [
                (Secret::from("p").id(), None),
                (Secret::from("x").id(), Some(at)),
                (Secret::from("f").id(), None)
            ]
        );
        assert_eq!(ring.repeated(), [(Secret::from("x").id(), Role::Fallback)]);
    }
}
