//! The whole story against the real `keyroll-demo` binary over HTTP, in both
//! session modes: sign up, rotate live from the operator page, nobody is
//! logged out; password change; reset links across a rotation; tampering.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

struct Demo {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start(mode: &str) -> Demo {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(env!("CARGO_BIN_EXE_keyroll-demo"))
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--database",
            &format!("sqlite://{}", dir.path().join("demo.db").display()),
            "--keyring",
            &dir.path().join("ring.toml").display().to_string(),
            "--mode",
            mode,
            "--watch-ms",
            "100",
        ])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let demo = Demo {
        child,
        base,
        _dir: dir,
    };
    for _ in 0..300 {
        if reqwest::get(format!("{}/login", demo.base)).await.is_ok() {
            return demo;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the demo did not start");
}

struct Browser {
    client: reqwest::Client,
    base: String,
}

impl Browser {
    fn new(demo: &Demo) -> Self {
        let jar = Arc::new(reqwest::cookie::Jar::default());
        Self {
            client: reqwest::Client::builder()
                .cookie_provider(jar)
                .build()
                .unwrap(),
            base: demo.base.clone(),
        }
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> (u16, String) {
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .form(form)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// `(whoami, session-key-id, primary-key-id, visits)` from the home page.
    async fn home(&self) -> (String, String, String, u64) {
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

/// The text of the element with this id.
fn by_id(html: &str, id: &str) -> String {
    let at = html
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in {html}"));
    let rest = &html[at..];
    let start = rest.find('>').unwrap() + 1;
    let end = rest[start..].find('<').unwrap();
    rest[start..start + end].to_owned()
}

fn href(html: &str, id: &str) -> String {
    let at = html.find(&format!("id=\"{id}\"")).unwrap();
    let rest = &html[at..];
    let start = rest.find("href=\"").unwrap() + 6;
    let end = rest[start..].find('"').unwrap();
    rest[start..start + end].replace("&amp;", "&")
}

fn ring_rows(html: &str) -> Vec<(String, String)> {
    html.split("<tr class=\"key\"")
        .skip(1)
        .map(|row| (by_id_class(row, "key-id"), by_id_class(row, "role")))
        .collect()
}

fn by_id_class(html: &str, class: &str) -> String {
    let at = html.find(&format!("class=\"{class}")).unwrap();
    let rest = &html[at..];
    let start = rest.find('>').unwrap() + 1;
    let end = rest[start..].find('<').unwrap();
    rest[start..start + end].to_owned()
}

async fn whole_story(mode: &str) {
    let demo = start(mode).await;
    let alice = Browser::new(&demo);
    let alice_phone = Browser::new(&demo);
    let bob = Browser::new(&demo);
    let operator = Browser::new(&demo);

    // Forms are where the contract says.
    for (path, ids) in [
        (
            "/signup",
            &["signup-form", "username", "password", "signup-submit"][..],
        ),
        (
            "/login",
            &["login-form", "username", "password", "login-submit"][..],
        ),
        ("/reset", &["reset-form", "username", "reset-submit"][..]),
        (
            "/operator",
            &["ring", "stage-submit", "promote-submit", "retire-submit"][..],
        ),
    ] {
        let (status, html) = alice.get(path).await;
        assert_eq!(status, 200);
        for id in ids {
            assert!(html.contains(&format!("id=\"{id}\"")), "{path} #{id}");
        }
    }
    let (who, key, primary_a, _) = alice.home().await;
    assert_eq!((who.as_str(), key.as_str()), ("anonymous", "none"));
    assert_eq!(primary_a.len(), 8);

    assert_eq!(
        alice
            .post("/signup", &[("username", "alice"), ("password", "pw-a")])
            .await
            .0,
        200
    );
    assert_eq!(
        bob.post("/signup", &[("username", "bob"), ("password", "pw-b")])
            .await
            .0,
        200
    );
    assert_eq!(
        alice_phone
            .post("/login", &[("username", "alice"), ("password", "pw-a")])
            .await
            .0,
        200
    );
    assert_eq!(
        alice_phone
            .post("/login", &[("username", "alice"), ("password", "nope")])
            .await
            .0,
        401
    );
    let (who, key, _, _) = alice.home().await;
    assert_eq!((who.as_str(), key.as_str()), ("alice", primary_a.as_str()));

    // A reset link made under key A.
    let (_, html) = alice.post("/reset", &[("username", "alice")]).await;
    let link = href(&html, "reset-link");
    assert!(link.starts_with("/reset/confirm?uid="), "{link}");

    // Stage B.
    assert_eq!(operator.post("/operator/stage", &[]).await.0, 200);
    let rows = ring_rows(&operator.get("/operator").await.1);
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0], (primary_a.clone(), "primary".into()));
    let b = rows[1].0.clone();
    assert_eq!(rows[1].1, "staged");
    assert_eq!(alice.home().await.0, "alice");

    // Promote B: still logged in; this request verified under A, the next under B.
    assert_eq!(operator.post("/operator/promote", &[]).await.0, 200);
    let (who, key, primary, _) = alice.home().await;
    assert_eq!(
        (who.as_str(), key.as_str(), primary.as_str()),
        ("alice", primary_a.as_str(), b.as_str())
    );
    let (who, key, _, _) = alice.home().await;
    assert_eq!((who.as_str(), key.as_str()), ("alice", b.as_str()));
    assert_eq!(bob.home().await.0, "bob");
    // The link made under A still works.
    let (status, html) = alice.get(&link).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("id=\"reset-confirm-submit\"") && html.contains("id=\"new-password\""));

    // Retire A: still logged in (every session seen since is re-signed by B).
    assert_eq!(alice_phone.home().await.0, "alice");
    assert_eq!(operator.post("/operator/retire", &[]).await.0, 200);
    let rows = ring_rows(&operator.get("/operator").await.1);
    assert_eq!(rows, vec![(b.clone(), "primary".to_owned())]);
    let (who, key, _, _) = alice.home().await;
    assert_eq!((who.as_str(), key.as_str()), ("alice", b.as_str()));
    assert_eq!(alice_phone.home().await.0, "alice");
    assert_eq!(bob.home().await.0, "bob");
    // The link made under A is dead now.
    let (status, html) = alice.get(&link).await;
    assert_eq!(status, 400);
    assert!(html.contains("id=\"reset-invalid\""));

    // Password change: Alice stays in, her phone is out, Bob is untouched.
    assert!(alice
        .get("/password")
        .await
        .1
        .contains("id=\"password-form\""));
    assert_eq!(
        alice
            .post(
                "/password",
                &[("old_password", "pw-a"), ("new_password", "pw-a2")]
            )
            .await
            .0,
        200
    );
    assert_eq!(alice.home().await.0, "alice");
    assert_eq!(alice_phone.home().await.0, "anonymous");
    assert_eq!(bob.home().await.0, "bob");

    // A fresh reset link, used: Bob's sessions are logged out, the new password works.
    let (_, html) = bob.post("/reset", &[("username", "bob")]).await;
    let link = href(&html, "reset-link");
    let query = link.split_once('?').unwrap().1;
    let mut uid = "";
    let mut token = "";
    for kv in query.split('&') {
        match kv.split_once('=').unwrap() {
            ("uid", v) => uid = v,
            ("token", v) => token = v,
            _ => {}
        }
    }
    let (status, html) = bob
        .post(
            "/reset/confirm",
            &[("uid", uid), ("token", token), ("new_password", "pw-b2")],
        )
        .await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("id=\"reset-done\""));
    assert_eq!(bob.home().await.0, "anonymous");
    assert_eq!(bob.get(&link).await.0, 400, "a used link is spent");
    assert_eq!(
        bob.post("/login", &[("username", "bob"), ("password", "pw-b2")])
            .await
            .0,
        200
    );
    assert_eq!(bob.home().await.0, "bob");

    // Logout.
    assert_eq!(alice.post("/logout", &[]).await.0, 200);
    assert_eq!(alice.home().await.0, "anonymous");

    // Tampered cookie: a fresh anonymous session, no error page.
    let r = reqwest::Client::new()
        .get(format!("{}/", demo.base))
        .header("cookie", "sessionid=tampered:garbage:value")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(by_id(&r.text().await.unwrap(), "whoami"), "anonymous");

    // Metrics.
    let (status, text) = operator.get("/metrics").await;
    assert_eq!(status, 200);
    assert!(text.contains("keyroll_verifications_total"), "{text}");
    assert!(text.contains(&format!("key_id=\"{b}\"")), "{text}");
    assert!(text.contains("keyroll_resigns_total"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_story_server_sessions() {
    whole_story("server").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_story_signed_cookie_sessions() {
    whole_story("cookie").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_of_the_ring_file_is_picked_up_by_the_watch() {
    let demo = start("server").await;
    let ring = demo._dir.path().join("ring.toml");
    let now = time::OffsetDateTime::now_utc();
    let opts = keyroll::ringfile::OpenOptions::default();
    let staged =
        keyroll::ringfile::RingFile::update(&ring, opts, &|_| None, |rf| Ok(rf.stage(now, 50)))
            .unwrap();
    let b = Browser::new(&demo);
    for _ in 0..100 {
        if b.get("/operator").await.1.contains(&staged.to_string()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the staged key never showed up");
}
