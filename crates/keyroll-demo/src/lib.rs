//! The keyroll demo web app (the `keyroll-demo` binary) and the
//! rolling-rotation drill (the `rolling-rotation` binary) that runs a fleet of
//! it under load while the signing key is rotated.
//!
//! DEMO ONLY: see the binary's documentation for what is not production grade.

mod app;
mod csrf;
pub mod drill;
mod operator;
mod outbox;
mod pages;
mod rotation;
pub mod server;
mod users;

pub use users::write_users_file;
