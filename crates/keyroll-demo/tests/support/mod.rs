//! What the HTTP tests share: the real `keyroll-demo` binary started on a
//! free port with a data directory of its own, and a cookie-keeping client
//! that fills in forms as a browser does (the CSRF token included).
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use reqwest::cookie::CookieStore as _;

pub(crate) struct Demo {
    child: Child,
    pub(crate) base: String,
    /// The demo's `--data-dir`.
    pub(crate) data: PathBuf,
    pub(crate) dir: tempfile::TempDir,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A demo in `mode` with `--min-staged 0s` (promote at once) and defaults for the rest.
pub(crate) async fn start(mode: &str) -> Demo {
    start_with(mode, &["--min-staged", "0s"]).await
}

/// A demo in `mode` with these extra arguments; its data directory is
/// `<tempdir>/data`, its database and ring file the defaults in it.
pub(crate) async fn start_with(mode: &str, extra: &[&str]) -> Demo {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_keyroll-demo"))
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(&data)
        .args(["--mode", mode, "--watch-ms", "100"])
        .args(extra)
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let demo = Demo {
        child,
        base: format!("http://127.0.0.1:{port}"),
        data,
        dir,
    };
    demo.wait_ready().await;
    demo
}

impl Demo {
    pub(crate) async fn wait_ready(&self) {
        for _ in 0..300 {
            if reqwest::get(format!("{}/login", self.base)).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the demo did not start");
    }

    pub(crate) fn ring_path(&self) -> PathBuf {
        self.data.join("ring.toml")
    }

    pub(crate) fn database_url(&self) -> String {
        format!("sqlite://{}", self.data.join("demo.db").display())
    }

    /// The operator token, from the file the demo made in its data directory.
    pub(crate) fn operator_token(&self) -> String {
        std::fs::read_to_string(self.data.join("operator-token"))
            .unwrap()
            .trim()
            .to_owned()
    }

    /// `(key id, role)` of every key of the ring file.
    pub(crate) fn ring_file(&self) -> Vec<(String, String)> {
        keyroll::ringfile::RingFile::open(
            &self.ring_path(),
            keyroll::ringfile::OpenOptions::default(),
            &|_| None,
        )
        .unwrap()
        .entries
        .iter()
        .map(|e| (e.id().to_string(), e.role.as_str().to_owned()))
        .collect()
    }

    /// The reset links mailed to `user` so far (the outbox in the data directory).
    pub(crate) fn mails_to(&self, user: &str) -> Vec<String> {
        let Ok(text) = std::fs::read_to_string(self.data.join("outbox.jsonl")) else {
            return Vec::new();
        };
        text.lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|m| m["to"] == user)
            .map(|m| m["link"].as_str().unwrap().to_owned())
            .collect()
    }

    /// The `n`th (from 1) reset link mailed to `user`, waiting for it a while.
    pub(crate) async fn wait_for_mail(&self, user: &str, n: usize) -> String {
        for _ in 0..100 {
            if let Some(link) = self.mails_to(user).get(n - 1) {
                return link.clone();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no mail number {n} to {user} in the outbox");
    }

    /// Rows of the session table (expired ones included).
    pub(crate) async fn session_rows(&self) -> usize {
        let store = keyroll_store::open_store(
            &self.database_url(),
            &keyroll_store::StoreOptions::default(),
        )
        .await
        .unwrap();
        store
            .scan(&keyroll_store::KeyRange::all(), None, 100_000)
            .await
            .unwrap()
            .len()
    }
}

/// An HTTP client with its own cookie jar.
pub(crate) struct Browser {
    pub(crate) client: reqwest::Client,
    jar: Arc<reqwest::cookie::Jar>,
    pub(crate) base: String,
}

impl Browser {
    pub(crate) fn new(demo: &Demo) -> Self {
        let jar = Arc::new(reqwest::cookie::Jar::default());
        Self {
            client: reqwest::Client::builder()
                .cookie_provider(Arc::clone(&jar))
                .build()
                .unwrap(),
            jar,
            base: demo.base.clone(),
        }
    }

    pub(crate) async fn get(&self, path: &str) -> (u16, String) {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// The value of cookie `name` in the jar.
    pub(crate) fn cookie(&self, name: &str) -> Option<String> {
        let url: reqwest::Url = self.base.parse().unwrap();
        let header = self.jar.cookies(&url)?;
        header.to_str().ok()?.split("; ").find_map(|c| {
            c.strip_prefix(&format!("{name}="))
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        })
    }

    /// The CSRF token a form of this browser carries (a form page is
    /// fetched first when the browser has none yet, as a user would).
    pub(crate) async fn csrf_token(&self) -> String {
        if let Some(t) = self.cookie("csrftoken") {
            return t;
        }
        let (_, html) = self.get("/login").await;
        let token = hidden_token(&html);
        assert_eq!(self.cookie("csrftoken").as_deref(), Some(token.as_str()));
        token
    }

    /// Posts a form with this browser's CSRF token, as a browser submits it.
    pub(crate) async fn post(&self, path: &str, form: &[(&str, &str)]) -> (u16, String) {
        let token = self.csrf_token().await;
        let mut fields = form.to_vec();
        fields.push(("csrfmiddlewaretoken", &token));
        self.post_raw(path, &fields).await
    }

    /// Posts exactly these fields (no CSRF token added).
    pub(crate) async fn post_raw(&self, path: &str, form: &[(&str, &str)]) -> (u16, String) {
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .form(form)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// Opens the operator page with the demo's operator token.
    pub(crate) async fn operator_login(&self, demo: &Demo) {
        let (status, html) = self.get("/operator").await;
        assert_eq!(status, 200);
        assert!(html.contains("id=\"operator-login-form\""), "{html}");
        let token = demo.operator_token();
        let (status, html) = self.post("/operator/login", &[("token", &token)]).await;
        assert_eq!(status, 200, "{html}");
        assert!(html.contains("<table id=\"ring\""), "{html}");
    }

    /// `(whoami, session-key-id, primary-key-id, visits)` from the home page.
    pub(crate) async fn home(&self) -> (String, String, String, u64) {
        let (status, html) = self.get("/").await;
        assert_eq!(status, 200, "{html}");
        (
            by_id(&html, "whoami"),
            by_id(&html, "session-key-id"),
            by_id(&html, "primary-key-id"),
            by_id(&html, "visits").parse().unwrap(),
        )
    }
}

/// The value of a page's (first) hidden CSRF field.
pub(crate) fn hidden_token(html: &str) -> String {
    let at = html
        .find("name=\"csrfmiddlewaretoken\" value=\"")
        .unwrap_or_else(|| panic!("no CSRF field in {html}"));
    let rest = &html[at + "name=\"csrfmiddlewaretoken\" value=\"".len()..];
    rest[..rest.find('"').unwrap()].to_owned()
}

/// The text of the element with this id.
pub(crate) fn by_id(html: &str, id: &str) -> String {
    let at = html
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in {html}"));
    let rest = &html[at..];
    let start = rest.find('>').unwrap() + 1;
    let end = rest[start..].find('<').unwrap();
    rest[start..start + end].to_owned()
}

/// `(key id, role)` of the operator page's ring table.
pub(crate) fn ring_rows(html: &str) -> Vec<(String, String)> {
    html.split("<tr class=\"key\"")
        .skip(1)
        .map(|row| (by_class(row, "key-id"), by_class(row, "role")))
        .collect()
}

fn by_class(html: &str, class: &str) -> String {
    let at = html.find(&format!("class=\"{class}")).unwrap();
    let rest = &html[at..];
    let start = rest.find('>').unwrap() + 1;
    let end = rest[start..].find('<').unwrap();
    rest[start..start + end].to_owned()
}

/// `uid` and `token` of a reset link.
pub(crate) fn link_parts(link: &str) -> (String, String) {
    let query = link.split_once('?').unwrap().1;
    let mut uid = String::new();
    let mut token = String::new();
    for kv in query.split('&') {
        match kv.split_once('=').unwrap() {
            ("uid", v) => uid = v.to_owned(),
            ("token", v) => token = v.to_owned(),
            _ => {}
        }
    }
    (uid, token)
}

/// The workspace root.
pub(crate) fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}
