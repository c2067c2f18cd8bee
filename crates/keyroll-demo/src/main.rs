//! `keyroll-demo`: a small web app showing the whole story — sign up, log in,
//! rotate the signing key live from the operator page (or `keyroll ring …`
//! on the ring file, then `kill -HUP`), and nobody is logged out.
//!
//! ```text
//! cargo run -p keyroll-demo -- [--listen 127.0.0.1:8080] [--data-dir keyroll-demo-data]
//!                              [--database URL] [--mode server|cookie] [--keyring FILE]
//!                              [--operator-token-file FILE] [--min-staged 1m]
//!                              [--table T] [--redis-prefix P] [--users FILE]
//! ```
//!
//! Its state lives in one data directory (mode 0700): the SQLite database,
//! the ring file, the operator token (the operator page and `/api/ring` need
//! it) and `outbox.jsonl`, where password-reset links are "mailed".
//!
//! DEMO ONLY: users live in memory (gone at restart) with salted SHA-256
//! password hashes, and cookies go over plain HTTP unless `--secure-cookies`
//! is given.

fn main() -> std::process::ExitCode {
    keyroll_demo::server::main()
}
