//! `keyroll-demo`: a small web app showing the whole story — sign up, log in,
//! rotate the signing key live from the operator page (or `keyroll ring …`
//! on the ring file, then `kill -HUP`), and nobody is logged out.
//!
//! ```text
//! cargo run -p keyroll-demo -- [--listen 127.0.0.1:8080] [--database URL]
//!                              [--mode server|cookie] [--keyring FILE]
//!                              [--table T] [--redis-prefix P] [--users FILE]
//! ```
//!
//! DEMO ONLY: users live in memory (gone at restart) with salted SHA-256
//! password hashes, the operator page has no authentication, and cookies go
//! over plain HTTP unless `--secure-cookies` is given.

fn main() -> std::process::ExitCode {
    keyroll_demo::server::main()
}
