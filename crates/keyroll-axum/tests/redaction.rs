//! What keyroll's web layer could log or show: never a session value.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use axum::http::StatusCode;
use common::*;

/// A session value read as the wrong type: the error that would be logged
/// names the kind of failure, never the value (serde_json's message quotes it).
#[tokio::test]
async fn a_session_value_error_does_not_carry_the_value() {
    let app = start(Mode::Server, Backend::Sqlite).await.unwrap();
    let (status, body) = Browser::new(&app).get("/wrong-type").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("not of the type asked for"), "{body}");
    assert!(!body.contains("private-note-text"), "{body}");
}
