//! The in-process store runs the same shared suite as every backend.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

keyroll_store::store_suite!(common::memory);
