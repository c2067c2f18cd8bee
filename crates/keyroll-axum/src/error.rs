//! What can go wrong with a session.

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use keyroll::SignError;
use keyroll_store::StoreError;

/// Why a session could not be loaded, changed or saved.
///
/// As a response it is a `500` with a short plain-text explanation; the
/// details (which may name a database host) go to the log only.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The session store failed.
    #[error("session store failed: {0}")]
    Store(#[from] StoreError),
    /// The session data could not be signed.
    #[error("session data cannot be signed: {0}")]
    Sign(#[from] SignError),
    /// A value could not be converted to or from JSON. Only the kind of
    /// failure is kept: serde_json's own message quotes the value, and a
    /// session value must not reach a log.
    #[error("session value conversion failed: {0}")]
    Value(&'static str),
    /// A signed-cookie session grew past what a browser keeps.
    #[error("the signed session cookie would be {len} bytes; the limit is {max}")]
    CookieTooLarge {
        /// Its length.
        len: usize,
        /// The configured limit.
        max: usize,
    },
    /// The handler asked for a session but no `SessionLayer` wraps the route.
    #[error("no SessionLayer is installed on this route")]
    MissingLayer,
    /// The session's row was deleted by a concurrent request (a logout, a
    /// flush, a key cycled) after this request loaded it: nothing was
    /// written back, and the session was dropped (Django's
    /// `SessionInterrupted`). As a response: `400`.
    #[error("the session was ended by a concurrent request before this one saved it")]
    Interrupted,
}

impl From<serde_json::Error> for SessionError {
    fn from(e: serde_json::Error) -> Self {
        use serde_json::error::Category;
        SessionError::Value(match e.classify() {
            Category::Data => "the stored value is not of the type asked for",
            Category::Syntax | Category::Eof => "not valid JSON",
            Category::Io => "an I/O error while converting",
        })
    }
}

impl SessionError {
    /// The text shown to the client.
    fn public_message(&self) -> &'static str {
        match self {
            SessionError::Store(_) => {
                "500 Internal Server Error: the session store is unavailable; nothing was saved. Please try again."
            }
            SessionError::CookieTooLarge { .. } => {
                "500 Internal Server Error: the session is too large to keep in a cookie; nothing was saved."
            }
            SessionError::Sign(_) | SessionError::Value(_) => {
                "500 Internal Server Error: the session data could not be handled; nothing was saved."
            }
            SessionError::MissingLayer => {
                "500 Internal Server Error: sessions are not configured for this page."
            }
            SessionError::Interrupted => {
                "400 Bad Request: your session ended in another request (you may have logged out in another tab) before this one finished; nothing was saved."
            }
        }
    }

    /// The response status: `400` for [`SessionError::Interrupted`], else `500`.
    pub fn status(&self) -> StatusCode {
        match self {
            SessionError::Interrupted => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for SessionError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, "session error");
        }
        (status, self.public_message()).into_response()
    }
}
