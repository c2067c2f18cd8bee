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
}

impl RotateCookies {
    /// Nothing to rotate yet.
    pub fn new(ring: CookieRing) -> Self {
        Self {
            ring,
            named: Arc::new(Vec::new()),
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
        now: OffsetDateTime,
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
            let fresh = match named.kind {
                CookieKind::Signed => keys
                    .verify_signed_at(&value, now)
                    .ok()
                    .and_then(|v| (v.role != Role::Primary).then(|| keys.sign(v.value))),
                CookieKind::Private => keys
                    .open_private_at(&named.name, &value, now)
                    .ok()
                    .and_then(|v| {
                        (v.role != Role::Primary).then(|| keys.seal(&named.name, &v.value))
                    }),
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
