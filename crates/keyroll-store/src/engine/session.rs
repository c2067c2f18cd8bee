//! What the engine hands out: a [`LoadedSession`] (its data shared with the
//! engine's verified-session cache), the [`LoadOutcome`] of a load, what a
//! refresh callback decides for a stale session ([`Refresh`]) and what a save
//! did ([`Saved`]).

use std::sync::Arc;

use keyroll::{KeyId, Role, SessionData, VerifyError};
use time::OffsetDateTime;

/// A session loaded through the engine. The data is shared with the
/// engine's cache: a cached load copies nothing; change the data with
/// [`Arc::make_mut`] (which copies it only while the cache still holds it).
#[derive(Clone, PartialEq)]
pub struct LoadedSession {
    /// The session key.
    pub key: String,
    /// The verified data.
    pub data: Arc<SessionData>,
    /// When the session expires.
    pub expires: OffsetDateTime,
    /// The key that verified the stored data (before any re-sign).
    pub key_id: KeyId,
    /// Its role; anything but primary was re-signed on this load.
    pub role: Role,
    /// True when this load re-signed the row with the primary key.
    pub resigned: bool,
}

/// The session key is a bearer credential and the data is private: the
/// `Debug` form shows a key prefix and the number of entries.
impl std::fmt::Debug for LoadedSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = self.key.get(..6).unwrap_or("");
        f.debug_struct("LoadedSession")
            .field("key", &format_args!("{shown}…"))
            .field("entries", &self.data.len())
            .field("expires", &self.expires)
            .field("key_id", &self.key_id)
            .field("role", &self.role)
            .field("resigned", &self.resigned)
            .finish()
    }
}

/// What [`SessionEngine::load`](super::SessionEngine::load) (and the other
/// loads) found.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum LoadOutcome {
    /// A live session that verified (and was re-signed if it was stale).
    Loaded(LoadedSession),
    /// No live session under that key: not a valid key, no row, or expired.
    Missing,
    /// A live row whose data did not verify (tampered, signed by a key the
    /// ring no longer accepts, or not session data): treated as no session.
    Refused(VerifyError),
}

impl LoadOutcome {
    /// The session, if one loaded.
    pub fn into_loaded(self) -> Option<LoadedSession> {
        match self {
            LoadOutcome::Loaded(l) => Some(l),
            LoadOutcome::Missing | LoadOutcome::Refused(_) => None,
        }
    }
}

/// What [`SessionEngine::load_refreshing`](super::SessionEngine::load_refreshing)'s
/// callback decides for a stale session (verified by a staged or fallback
/// key) before it is written back signed by the primary.
#[derive(Clone, Debug, PartialEq)]
pub enum Refresh {
    /// Re-sign the same payload (keeping its timestamp), as `load` does.
    Keep,
    /// Write this data instead (signed by the primary now), in the same
    /// compare-and-swap: e.g. the session with its login hash re-made.
    Replace(SessionData),
}

/// What [`SessionEngine::save`](super::SessionEngine::save) did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use = "a session whose row is gone must be dropped, not reported as saved"]
pub enum Saved {
    /// The row was updated.
    Updated,
    /// No row had that key any more (deleted by a concurrent logout, flush
    /// or key cycle, or expired out of the store): nothing was written.
    Gone,
}
