//! Signed-cookie mode (Django's `signed_cookies` engine): the cookie is the
//! session. A stale cookie is re-issued on the same response, signed by the
//! primary, with its original timestamp and no longer a lifetime.

use std::sync::Arc;

use keyroll::SESSION_USER_HASH;
use serde_json::Value;
use time::OffsetDateTime;

use super::{refreshed_login, Session, State};
use crate::error::SessionError;
use crate::metrics;

impl Session {
    /// Verifies the incoming cookie into `st` (a refused one leaves a fresh
    /// session); a stale one is re-signed, to go out with the response.
    pub(super) fn load_cookie_into(&self, incoming: &str, st: &mut State) {
        let codec = self
            .ring()
            .snapshot()
            .cookie_session_codec(self.inner.shared.config.max_age);
        match codec.resign_at(incoming, self.inner.now) {
            Ok(v) => {
                metrics::verified(v.key_id, v.role);
                st.verified = Some((v.key_id, v.role));
                st.cookie_timestamp = v.timestamp;
                let keyroll::ResignedSession { data, fresh } = v.value;
                st.data = Arc::new(data);
                st.reissue = fresh;
            }
            Err(e) => {
                metrics::failed_with(&e);
                tracing::debug!(reason = e.reason(), "session cookie refused; fresh session");
            }
        }
    }

    /// Signed-cookie mode: a stale session's login hash re-made under the
    /// primary (see [`SessionLayer::upgrade_logins`](crate::SessionLayer::upgrade_logins)); the re-made cookie
    /// goes out with this response (if it is lost, the old cookie is still
    /// stale and this happens again on the next request).
    pub(super) async fn upgrade_login(&self, st: &mut State) {
        let Some(logins) = &self.inner.shared.logins else {
            return;
        };
        let auth = self.ring().snapshot().auth_hash();
        let Some(hash) = refreshed_login(logins, auth, &st.data, self.inner.now).await else {
            return;
        };
        Arc::make_mut(&mut st.data).insert(SESSION_USER_HASH.to_owned(), Value::String(hash));
        st.modified = true;
    }

    /// The `Set-Cookie` value for the session at the end of the request:
    /// the session written (`save`), or a stale cookie re-issued.
    pub(super) fn finish_cookie(
        &self,
        st: &mut State,
        save: bool,
        max_age: time::Duration,
        expires: OffsetDateTime,
    ) -> Result<Option<String>, SessionError> {
        let config = &self.inner.shared.config;
        let now = self.inner.now;
        if save {
            st.modified = false;
            if st.data.is_empty() {
                return Ok(self
                    .inner
                    .incoming
                    .is_some()
                    .then(|| config.delete_cookie()));
            }
            let value = self
                .ring()
                .snapshot()
                .cookie_session_codec(config.max_age)
                .encode_at(&st.data, now)?;
            if value.len() > config.max_cookie_len {
                return Err(SessionError::CookieTooLarge {
                    len: value.len(),
                    max: config.max_cookie_len,
                });
            }
            return Ok(Some(config.set_cookie(value, max_age, expires)));
        }
        let Some(fresh) = st.reissue.take() else {
            return Ok(None);
        };
        // Same attributes, same timestamp, and no longer a lifetime.
        let stamped = st
            .cookie_timestamp
            .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok())
            .unwrap_or(now);
        let end = stamped.checked_add(max_age).unwrap_or(now);
        let left = end - now;
        if left <= time::Duration::ZERO {
            return Ok(None);
        }
        metrics::resigned("cookie_session");
        Ok(Some(config.set_cookie(
            fresh,
            time::Duration::seconds(left.whole_seconds().max(1)),
            end,
        )))
    }
}
