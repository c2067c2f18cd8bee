//! Which cookies to rotate, and the string work shared by the tower layer
//! and the actix-web middleware: rewriting a `Cookie` header, learning
//! attributes from the app's `Set-Cookie`, making the re-issued `Set-Cookie`.

use std::borrow::Cow;
use std::sync::{Arc, RwLock};

use cookie::{Cookie, SameSite};
use keyroll::Role;
use percent_encoding::percent_decode_str;
use time::OffsetDateTime;

use crate::keys::CookieKeys;
use crate::ring::CookieRing;

/// A cookie's format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CookieKind {
    /// `SignedJar`: `base64(HMAC-SHA256(value)) ‖ value`.
    Signed,
    /// `PrivateJar`: `base64(nonce ‖ AES-256-GCM(value, aad = name))`.
    Private,
}

/// The attributes of a re-issued cookie.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CookieAttributes {
    /// `Path` (default `/`).
    pub path: Option<String>,
    /// `Domain`.
    pub domain: Option<String>,
    /// `Secure`.
    pub secure: bool,
    /// `HttpOnly` (default on).
    pub http_only: bool,
    /// `SameSite` (default `Lax`).
    pub same_site: Option<SameSite>,
    /// `Max-Age`; the lifetime starts again when the cookie is re-issued.
    pub max_age: Option<time::Duration>,
}

impl Default for CookieAttributes {
    fn default() -> Self {
        Self {
            path: Some("/".into()),
            domain: None,
            secure: false,
            http_only: true,
            same_site: Some(SameSite::Lax),
            max_age: None,
        }
    }
}

impl CookieAttributes {
    fn learn(c: &Cookie<'_>) -> Self {
        Self {
            path: c.path().map(str::to_owned),
            domain: c.domain().map(str::to_owned),
            secure: c.secure().unwrap_or(false),
            http_only: c.http_only().unwrap_or(false),
            same_site: c.same_site(),
            max_age: c.max_age(),
        }
    }
}

#[derive(Debug)]
struct Named {
    name: String,
    kind: CookieKind,
    configured: Option<CookieAttributes>,
    learnt: RwLock<Option<CookieAttributes>>,
}

impl Named {
    fn copy(&self) -> Self {
        let learnt = match self.learnt.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        };
        Self {
            name: self.name.clone(),
            kind: self.kind,
            configured: self.configured.clone(),
            learnt: RwLock::new(learnt),
        }
    }
}

/// A cookie the primary re-made on the way in, to be set on the response.
#[derive(Debug)]
pub(crate) struct Remade {
    index: usize,
    value: String,
}

/// What to rotate: named signed and private cookies under a [`CookieRing`].
/// Shared by [`crate::RotateCookiesLayer`] and the actix-web middleware.
#[derive(Debug, Clone)]
pub struct RotateCookies {
    pub(crate) ring: CookieRing,
    named: Arc<Vec<Named>>,
    current: Arc<CurrentCache>,
}

/// Cookies the primary verified lately, so that a current cookie costs a
/// keyed hash, not an HMAC or an AES-GCM open, on its next request.
///
/// Direct-mapped: slot `h % SLOTS` holds `h`, a SipHash (random keys, so
/// nobody can aim at a slot) of the ring generation, the cookie's name and
/// its exact value. A hit only means "leave this cookie alone", which is
/// what the layer does with any cookie it cannot rescue: the app's jar
/// still verifies it. A collision can at worst leave a stale cookie
/// un-rescued; it can never make anything accepted.
struct CurrentCache {
    hasher: std::collections::hash_map::RandomState,
    slots: Box<[std::sync::atomic::AtomicU64]>,
}

const CURRENT_SLOTS: usize = 8192;

impl CurrentCache {
    fn new() -> Self {
        Self {
            hasher: std::collections::hash_map::RandomState::new(),
            slots: (0..CURRENT_SLOTS)
                .map(|_| std::sync::atomic::AtomicU64::new(0))
                .collect(),
        }
    }

    fn hash(&self, generation: u64, index: usize, value: &str) -> u64 {
        use std::hash::{BuildHasher as _, Hasher as _};
        let mut h = self.hasher.build_hasher();
        h.write_u64(generation);
        h.write_usize(index);
        h.write(value.as_bytes());
        h.finish() | 1
    }

    fn slot(&self, h: u64) -> Option<&std::sync::atomic::AtomicU64> {
        self.slots.get((h % CURRENT_SLOTS as u64) as usize)
    }

    fn contains(&self, h: u64) -> bool {
        self.slot(h)
            .is_some_and(|s| s.load(std::sync::atomic::Ordering::Relaxed) == h)
    }

    fn insert(&self, h: u64) {
        if let Some(s) = self.slot(h) {
            s.store(h, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

impl std::fmt::Debug for CurrentCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CurrentCache").finish_non_exhaustive()
    }
}

impl RotateCookies {
    /// Nothing to rotate yet.
    pub fn new(ring: CookieRing) -> Self {
        Self {
            ring,
            named: Arc::new(Vec::new()),
            current: Arc::new(CurrentCache::new()),
        }
    }

    fn add(mut self, name: &str, kind: CookieKind, attrs: Option<CookieAttributes>) -> Self {
        let mut named: Vec<Named> = match Arc::try_unwrap(self.named) {
            Ok(v) => v,
            Err(shared) => shared.iter().map(Named::copy).collect(),
        };
        named.retain(|n| n.name != name);
        named.push(Named {
            name: name.to_owned(),
            kind,
            configured: attrs,
            learnt: RwLock::new(None),
        });
        self.named = Arc::new(named);
        self
    }

    /// Rotates the signed cookie `name`; a re-issued one takes the attributes
    /// of the app's own last `Set-Cookie` for it, else the defaults.
    pub fn signed(self, name: &str) -> Self {
        self.add(name, CookieKind::Signed, None)
    }

    /// Rotates the private cookie `name` (attributes as for [`RotateCookies::signed`]).
    pub fn private(self, name: &str) -> Self {
        self.add(name, CookieKind::Private, None)
    }

    /// Rotates cookie `name` of `kind`, re-issued with exactly `attrs`.
    pub fn cookie(self, name: &str, kind: CookieKind, attrs: CookieAttributes) -> Self {
        self.add(name, kind, Some(attrs))
    }

    /// The ring these cookies rotate under.
    pub fn ring(&self) -> &CookieRing {
        &self.ring
    }

    /// Rewrites one `Cookie` header: each named cookie that a staged or
    /// fallback key verifies becomes what the primary would have made.
    /// Returns the new header text when anything changed. Cookies that no
    /// live key verifies are left as they are, for the app's jar to refuse.
    pub(crate) fn rewrite_header(
        &self,
        keys: &CookieKeys,
        header: &str,
        now: &mut Option<OffsetDateTime>,
        remade: &mut Vec<Remade>,
    ) -> Option<String> {
        let mut out: Option<String> = None;
        let mut copied = 0usize;
        let mut offset = 0usize;
        for piece in header.split(';') {
            let piece_start = offset;
            offset += piece.len() + 1;
            let Some((index, value)) = self.match_piece(piece) else {
                continue;
            };
            let Some(named) = self.named.get(index) else {
                continue;
            };
            let h = self.current.hash(keys.generation(), index, &value);
            if self.current.contains(h) {
                continue;
            }
            let now = *now.get_or_insert_with(OffsetDateTime::now_utc);
            let role = match named.kind {
                CookieKind::Signed => keys
                    .verify_signed_at(&value, now)
                    .map(|v| (v.role, v.value.to_owned())),
                CookieKind::Private => keys
                    .open_private_at(&named.name, &value, now)
                    .map(|v| (v.role, v.value)),
            };
            let fresh = match role {
                Ok((Role::Primary, _)) => {
                    self.current.insert(h);
                    None
                }
                Ok((_, plain)) => Some(match named.kind {
                    CookieKind::Signed => keys.sign(&plain),
                    CookieKind::Private => keys.seal(&named.name, &plain),
                }),
                Err(_) => None,
            };
            let Some(fresh) = fresh else { continue };
            let text = out.get_or_insert_with(|| String::with_capacity(header.len() + 64));
            text.push_str(header.get(copied..piece_start).unwrap_or_default());
            let lead = piece.len() - piece.trim_start().len();
            text.push_str(piece.get(..lead).unwrap_or_default());
            text.push_str(
                &Cookie::new(named.name.as_str(), fresh.as_str())
                    .encoded()
                    .to_string(),
            );
            copied = piece_start + piece.len();
            remade.push(Remade {
                index,
                value: fresh,
            });
        }
        out.map(|mut text| {
            text.push_str(header.get(copied..).unwrap_or_default());
            text
        })
    }

    /// Learns attributes from the app's own `Set-Cookie` lines and returns
    /// the `Set-Cookie` lines for the re-made cookies the app did not set itself.
    pub(crate) fn finish<'a>(
        &self,
        app_set_cookies: impl Iterator<Item = &'a str>,
        remade: Vec<Remade>,
    ) -> Vec<String> {
        let mut app_set: Vec<usize> = Vec::new();
        for line in app_set_cookies {
            let Some(index) = self.named.iter().position(|n| {
                line.trim_start()
                    .strip_prefix(n.name.as_str())
                    .is_some_and(|rest| rest.trim_start().starts_with('='))
            }) else {
                continue;
            };
            app_set.push(index);
            let Some(named) = self.named.get(index) else {
                continue;
            };
            if named.configured.is_some() {
                continue;
            }
            let Ok(c) = Cookie::parse_encoded(line) else {
                continue;
            };
            let removal = c.value().is_empty() || c.max_age().is_some_and(|a| a.is_zero());
            if removal {
                continue;
            }
            let attrs = CookieAttributes::learn(&c);
            let same = match named.learnt.read() {
                Ok(g) => g.as_ref() == Some(&attrs),
                Err(_) => false,
            };
            if !same {
                match named.learnt.write() {
                    Ok(mut g) => *g = Some(attrs),
                    Err(p) => *p.into_inner() = Some(attrs),
                }
            }
        }
        let mut lines = Vec::with_capacity(remade.len());
        for r in remade {
            if app_set.contains(&r.index) {
                continue;
            }
            let Some(named) = self.named.get(r.index) else {
                continue;
            };
            let attrs = named.configured.clone().unwrap_or_else(|| {
                match named.learnt.read() {
                    Ok(g) => g.clone(),
                    Err(p) => p.into_inner().clone(),
                }
                .unwrap_or_default()
            });
            let mut c = Cookie::new(named.name.clone(), r.value);
            if let Some(p) = attrs.path {
                c.set_path(p);
            }
            if let Some(d) = attrs.domain {
                c.set_domain(d);
            }
            c.set_secure(attrs.secure.then_some(true));
            c.set_http_only(attrs.http_only.then_some(true));
            c.set_same_site(attrs.same_site);
            if let Some(a) = attrs.max_age {
                c.set_max_age(a);
            }
            lines.push(c.encoded().to_string());
        }
        lines
    }

    /// `(index, decoded value)` when `piece` (`name=value`) is a named cookie.
    fn match_piece<'p>(&self, piece: &'p str) -> Option<(usize, Cow<'p, str>)> {
        let (name, value) = piece.split_once('=')?;
        let name = name.trim();
        let name: Cow<'_, str> = if name.contains('%') {
            percent_decode_str(name).decode_utf8().ok()?
        } else {
            Cow::Borrowed(name)
        };
        let index = self.named.iter().position(|n| n.name == name)?;
        let value = value.trim();
        let value = if value.contains('%') {
            percent_decode_str(value).decode_utf8().ok()?
        } else {
            Cow::Borrowed(value)
        };
        Some((index, value))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use keyroll::Secret;

    use crate::keys::KeyMaterial;

    fn keys(entries: &[(&Secret, Role)]) -> CookieKeys {
        CookieKeys::new(
            entries.iter().map(|(s, r)| (*s, *r, None)),
            KeyMaterial::Auto,
        )
        .unwrap()
    }

    #[test]
    fn a_cookie_cached_as_current_is_still_rescued_after_the_primary_changes() {
        let (a, b) = (Secret::from("a".repeat(40)), Secret::from("b".repeat(40)));
        let before = keys(&[(&a, Role::Primary)]);
        // The ring starts at a generation a later reload reaches again.
        let ring = CookieRing::new(before.clone().with_generation(1));
        let rotate = RotateCookies::new(ring.clone()).signed("s").private("p");
        let header = format!("s={}; p={}", before.sign("v"), before.seal("p", "w"));
        for _ in 0..2 {
            let mut remade = Vec::new();
            let k = ring.load();
            assert_eq!(
                rotate.rewrite_header(&k, &header, &mut None, &mut remade),
                None
            );
            assert!(remade.is_empty());
        }
        ring.reload(keys(&[(&b, Role::Primary), (&a, Role::Fallback)]));
        let mut remade = Vec::new();
        let k = ring.load();
        let new = rotate
            .rewrite_header(&k, &header, &mut None, &mut remade)
            .unwrap();
        assert_eq!(remade.len(), 2);
        let after = keys(&[(&b, Role::Primary)]);
        let now = OffsetDateTime::now_utc();
        let (s, p) = new.split_once("; ").unwrap();
        let s = percent_decode_str(s.strip_prefix("s=").unwrap())
            .decode_utf8()
            .unwrap();
        let p = percent_decode_str(p.strip_prefix("p=").unwrap())
            .decode_utf8()
            .unwrap();
        assert_eq!(after.verify_signed_at(&s, now).unwrap().value, "v");
        assert_eq!(after.open_private_at("p", &p, now).unwrap().value, "w");
    }

    #[test]
    fn other_cookies_and_spacing_are_kept_byte_for_byte() {
        let (a, b) = (Secret::from("a".repeat(40)), Secret::from("b".repeat(40)));
        let old = keys(&[(&a, Role::Primary)]);
        let ring = CookieRing::new(keys(&[(&b, Role::Primary), (&a, Role::Fallback)]));
        let rotate = RotateCookies::new(ring.clone()).signed("s");
        let header = format!("x=1;  s={} ;y=\"q\"", old.sign("v"));
        let mut remade = Vec::new();
        let new = rotate
            .rewrite_header(&ring.load(), &header, &mut None, &mut remade)
            .unwrap();
        assert!(new.starts_with("x=1;  s="), "{new}");
        assert!(new.ends_with(";y=\"q\""), "{new}");
        assert_eq!(remade.len(), 1);
    }
}
