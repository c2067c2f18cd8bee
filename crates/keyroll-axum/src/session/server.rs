//! Server mode: the session lives in a store, through a [`SessionEngine`];
//! the cookie holds its key. A loaded row is only ever updated.

use std::sync::Arc;

use keyroll::SESSION_USER_HASH;
use keyroll_store::{LoadOutcome, Refresh, Saved, SessionEngine};
use serde_json::Value;

use super::{lifetime, refreshed_login, Session, State};
use crate::error::SessionError;
use crate::metrics;

impl Session {
    /// Loads the stored session into `st` (a missing or refused one leaves
    /// a fresh session).
    pub(super) async fn load_server_into(
        &self,
        engine: &SessionEngine,
        incoming: &str,
        st: &mut State,
    ) -> Result<(), SessionError> {
        match self.load_server(engine, incoming).await? {
            LoadOutcome::Loaded(l) => {
                metrics::verified(l.key_id, l.role);
                if l.resigned {
                    metrics::resigned("session");
                }
                st.key = Some(l.key);
                st.data = l.data;
                st.verified = Some((l.key_id, l.role));
            }
            // The engine logs it; a fresh session replaces it.
            LoadOutcome::Refused(e) => metrics::failed_with(&e),
            // No such session (or not a session key): a fresh one, uncounted.
            _ => {}
        }
        Ok(())
    }

    /// Server mode: the engine's load; with [`SessionLayer::upgrade_logins`](crate::SessionLayer::upgrade_logins)
    /// a stale session's login hash is re-made in the same compare-and-swap
    /// that re-signs it.
    async fn load_server(
        &self,
        engine: &SessionEngine,
        incoming: &str,
    ) -> Result<LoadOutcome, keyroll_store::StoreError> {
        let now = self.inner.now;
        let snapshot = self.ring().snapshot();
        let Some(logins) = &self.inner.shared.logins else {
            return engine.under(snapshot).load(incoming, now).await;
        };
        // Called only for a stale session: nothing extra on the usual path.
        // The hash is re-made under the primary of the snapshot the engine
        // re-signs with.
        engine
            .under(snapshot)
            .load_refreshing(incoming, now, |data| {
                let logins = logins.clone();
                let auth = Arc::clone(snapshot.auth_hash());
                async move {
                    match refreshed_login(&logins, &auth, &data, now).await {
                        Some(hash) => {
                            let mut data = (*data).clone();
                            data.insert(SESSION_USER_HASH.to_owned(), Value::String(hash));
                            Refresh::Replace(data)
                        }
                        None => Refresh::Keep,
                    }
                }
            })
            .await
    }

    /// Server mode: writes the session's state to the store; returns the
    /// `Set-Cookie` value for it. A loaded row is only ever updated, never
    /// re-inserted: if a concurrent request deleted it, the session is
    /// dropped and this is [`SessionError::Interrupted`].
    pub(super) async fn persist(
        &self,
        engine: &SessionEngine,
        st: &mut State,
    ) -> Result<Option<String>, SessionError> {
        let config = &self.inner.shared.config;
        let now = self.inner.now;
        let (max_age, expires) = lifetime(config, now);
        let mut cookie = None;
        if st.data.is_empty() {
            if let Some(k) = st.key.take() {
                st.doomed.push(k);
            }
            if self.inner.incoming.is_some() {
                cookie = Some(config.delete_cookie());
            }
        } else {
            let key = match st.key.clone() {
                Some(k) => {
                    let ring = self.ring().snapshot();
                    match engine.under(ring).save(&k, &st.data, expires, now).await? {
                        Saved::Updated => k,
                        Saved::Gone => return Err(interrupted(st)),
                    }
                }
                None => {
                    let ring = self.ring().snapshot();
                    engine.under(ring).create(&st.data, expires, now).await?
                }
            };
            st.key = Some(key.clone());
            cookie = Some(config.set_cookie(key, max_age, expires));
        }
        // The new state is saved; only now drop the old rows.
        let carried = st.carried_from.take();
        for old in std::mem::take(&mut st.doomed) {
            let existed = engine.delete(&old).await?;
            if !existed && st.key.is_some() && carried.as_deref() == Some(old.as_str()) {
                // The data under the new key came from a row a concurrent
                // request deleted (a logout): it must not live on.
                if let Some(new) = st.key.take() {
                    engine.delete(&new).await?;
                }
                return Err(interrupted(st));
            }
        }
        st.modified = false;
        Ok(cookie)
    }
}

/// Drops a session whose row a concurrent request deleted: what is left is
/// a new, empty, unsaved session (no cookie is set or deleted: the browser
/// may already hold a newer session key from that other request).
fn interrupted(st: &mut State) -> SessionError {
    tracing::warn!(
        "session row deleted by a concurrent request (a logout?) before this one saved; \
         the session is dropped, nothing was written"
    );
    st.data = Arc::default();
    st.key = None;
    st.verified = None;
    st.doomed.clear();
    st.carried_from = None;
    st.pending_cookie = None;
    st.modified = false;
    SessionError::Interrupted
}
