//! Shared test helpers: ring files and servers on 127.0.0.1.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

/// The ring-file secret of an app's existing `cookie::Key`: its master key in base64.
pub(crate) fn master_secret(key: &cookie::Key) -> String {
    STANDARD.encode(key.master())
}

/// Writes a ring file of `(role, secret)` entries, mode 0600.
pub(crate) fn write_ring(path: &Path, entries: &[(&str, &str)]) {
    let mut text = String::new();
    for (role, secret) in entries {
        text.push_str(&format!(
            "[[keys]]\nrole = \"{role}\"\nsecret = \"{secret}\"\n\n"
        ));
    }
    let tmp: PathBuf = path.with_extension("new");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
    drop(f);
    std::fs::rename(&tmp, path).unwrap();
}

/// Serves `app` on 127.0.0.1 (a free port); returns its base URL.
pub(crate) async fn serve(app: axum::Router) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (format!("http://{addr}"), handle)
}

/// A browser-like client with its own cookie store.
pub(crate) fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap()
}

/// A client without cookie store (for hand-made `Cookie` headers).
pub(crate) fn bare() -> reqwest::Client {
    reqwest::Client::builder().build().unwrap()
}

/// Flips one base64 character in the middle of a cookie value.
pub(crate) fn tamper(value: &str) -> String {
    let mut b = value.as_bytes().to_vec();
    let i = b.len() / 2;
    b[i] = if b[i] == b'A' { b'B' } else { b'A' };
    String::from_utf8(b).unwrap()
}
