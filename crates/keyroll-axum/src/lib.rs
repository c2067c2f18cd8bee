//! # keyroll-axum
//!
//! Sessions, login and signed cookies for axum that survive a rotation of
//! the signing key: nobody is logged out when a new key is staged, promoted,
//! or the old one retired.
//!
//! - [`RingHandle`]: the running [`keyroll::KeyRing`], held as one immutable
//!   [`keyroll_store::PreparedRing`] snapshot (the ring and every key
//!   derived from it) and swapped atomically on [`RingHandle::reload`],
//!   [`RingHandle::reload_from_file`] or by [`RingHandle::watch_file`]. The
//!   session layer, its engine, [`SignedCookies`] and [`ResetTokens`] all
//!   read that snapshot, once per request or call.
//! - [`SessionLayer`] + [`Session`]: lazy sessions in two modes, server-side
//!   (a [`keyroll_store::Store`] through a [`keyroll_store::SessionEngine`],
//!   re-signing stale rows on read) and Django's signed-cookie sessions
//!   (stale cookies re-issued under the primary with their original
//!   timestamp). Secure cookie defaults ([`SessionConfig`]).
//! - [`login`], [`logout`], [`current_user`], [`update_session_auth_hash`]:
//!   Django's `_auth_user_*` keys and session auth hash, with the upgrade
//!   rule (stale hash → new session key and hash; no match → logged out).
//! - [`ResetTokens`] and [`SignedCookies`]: Django's password-reset tokens
//!   and signed cookies under the same ring.
//! - [`metrics`]: rotation counters through the `metrics` facade.
//!
//! ```no_run
//! use axum::{routing::get, Router};
//! use keyroll::{KeyRing, Secret};
//! use keyroll_axum::{RingHandle, Session, SessionLayer, SessionError};
//! use keyroll_store::{open_store, StoreOptions};
//!
//! async fn visits(session: Session) -> Result<String, SessionError> {
//!     let n: u64 = session.get("visits").await?.unwrap_or(0) + 1;
//!     session.insert("visits", n).await?;
//!     Ok(format!("visit number {n}"))
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let ring = RingHandle::new(KeyRing::new(Secret::from("a-long-random-secret-from-a-ring-file")).expect("a non-empty secret"));
//! let store = open_store("sqlite://sessions.db", &StoreOptions::default()).await?;
//! store.ensure_schema().await?;
//! let app = Router::new()
//!     .route("/", get(visits))
//!     .layer(SessionLayer::server_store(store, ring.clone()));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```

mod auth;
mod config;
mod error;
pub mod metrics;
mod ring;
mod session;
mod tokens;
mod users;

pub use auth::{current_user, login, logout, update_session_auth_hash};
pub use config::{Clock, CookieAttributes, SameSite, SessionConfig, DEFAULT_MAX_COOKIE_LEN};
pub use error::SessionError;
pub use ring::RingHandle;
pub use session::{Session, SessionLayer, SessionService};
pub use tokens::{CookieError, ResetTokens, SetCookies, SignedCookies, SignedValue};
pub use users::{UserLoader, UserRows};
