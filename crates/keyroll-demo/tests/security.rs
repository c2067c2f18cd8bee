//! The demo is what newcomers copy, so it is secure by default; each test
//! here pins one hole an adversarial review found, over real HTTP against
//! the real `keyroll-demo` binary (docs/security.md, "The demo app").
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{by_id, hidden_token, link_parts, repo_root, ring_rows, start, start_with, Browser};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

fn staged(ring: &[(String, String)]) -> usize {
    ring.iter().filter(|(_, role)| role == "staged").count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_actions_and_the_ring_api_need_the_operator_token() {
    let demo = start("server").await;
    let before = demo.ring_file();

    // Anonymous, and a logged-in user who is no operator: the page asks for
    // the token, and every action is refused with a valid CSRF token.
    let anon = Browser::new(&demo);
    let user = Browser::new(&demo);
    assert_eq!(
        user.post("/signup", &[("username", "mallory"), ("password", "pw")])
            .await
            .0,
        200
    );
    for who in [&anon, &user] {
        let (status, html) = who.get("/operator").await;
        assert_eq!(status, 200);
        assert!(html.contains("id=\"operator-login-form\""), "{html}");
        assert!(!html.contains("<table id=\"ring\""), "{html}");
        for action in ["/operator/stage", "/operator/promote", "/operator/retire"] {
            let (status, html) = who.post(action, &[]).await;
            assert_eq!(status, 403, "{action}: {html}");
        }
        // A wrong token opens nothing.
        let (status, html) = who
            .post("/operator/login", &[("token", &"x".repeat(43))])
            .await;
        assert_eq!(status, 403, "{html}");
        assert_eq!(who.post("/operator/stage", &[]).await.0, 403);
    }
    // Three hundred stage requests of somebody without the token change nothing.
    for _ in 0..300 {
        assert_eq!(anon.post("/operator/stage", &[]).await.0, 403);
    }
    assert_eq!(demo.ring_file(), before, "the ring file changed");

    // /api/ring: no token, a wrong one, a token in another scheme: 401.
    let client = reqwest::Client::new();
    let url = format!("{}/api/ring", demo.base);
    let token = demo.operator_token();
    for auth in [
        None,
        Some("Bearer wrong".to_owned()),
        Some(format!("Basic {token}")),
        Some(format!("Bearer {token}x")),
    ] {
        let mut req = client.get(&url);
        if let Some(a) = &auth {
            req = req.header("authorization", a);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 401, "{auth:?}");
        assert!(!r.text().await.unwrap().contains("primary_key_id"));
    }
    let r = client.get(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 200);

    // With the token, the same user is an operator.
    user.operator_login(&demo).await;
    assert_eq!(user.post("/operator/stage", &[]).await.0, 200);
    assert_eq!(staged(&demo.ring_file()), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_forms_without_the_right_csrf_token_are_refused() {
    let demo = start("cookie").await;
    let op = Browser::new(&demo);
    op.operator_login(&demo).await;
    let before = demo.ring_file();
    let good = op.csrf_token().await;
    let other = Browser::new(&demo).csrf_token().await;
    for fields in [
        vec![],
        vec![("csrfmiddlewaretoken", "")],
        vec![("csrfmiddlewaretoken", other.as_str())],
        vec![("csrfmiddlewaretoken", &good[..good.len() - 1])],
    ] {
        for action in [
            "/operator/stage",
            "/operator/promote",
            "/operator/retire",
            "/operator/login",
            "/logout",
        ] {
            let (status, html) = op.post_raw(action, &fields).await;
            assert_eq!(status, 403, "{action} {fields:?}: {html}");
            assert!(html.contains("id=\"forbidden\""));
        }
    }
    assert_eq!(demo.ring_file(), before);
    // The forms themselves carry the token.
    let (_, html) = op.get("/operator").await;
    assert_eq!(hidden_token(&html), good);
    assert_eq!(
        html.matches("name=\"csrfmiddlewaretoken\"").count(),
        4,
        "stage, promote, retire, log out"
    );
    assert_eq!(op.post("/operator/stage", &[]).await.0, 200);
    assert_eq!(staged(&demo.ring_file()), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_site_posts_are_refused_even_with_a_valid_csrf_token() {
    let demo = start("server").await;
    let op = Browser::new(&demo);
    op.operator_login(&demo).await;
    let token = op.csrf_token().await;
    let before = demo.ring_file();
    let own = demo.base.clone();
    let post = |headers: Vec<(&'static str, String)>| {
        let mut req = op
            .client
            .post(format!("{}/operator/stage", demo.base))
            .form(&[("csrfmiddlewaretoken", token.as_str())]);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        async move { req.send().await.unwrap().status().as_u16() }
    };
    for headers in [
        vec![("origin", "http://evil.example".to_owned())],
        vec![("origin", "null".to_owned())],
        vec![("origin", own.replace("http://", "https://"))],
        vec![("sec-fetch-site", "cross-site".to_owned())],
        vec![("sec-fetch-site", "same-site".to_owned())],
        vec![
            ("origin", own.clone()),
            ("sec-fetch-site", "cross-site".to_owned()),
        ],
    ] {
        assert_eq!(post(headers.clone()).await, 403, "{headers:?}");
    }
    assert_eq!(demo.ring_file(), before);
    // A cross-site login form (login CSRF) is refused the same way.
    let r = reqwest::Client::new()
        .post(format!("{}/login", demo.base))
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // What a browser sends for its own form passes.
    let same = vec![
        ("origin", own.clone()),
        ("sec-fetch-site", "same-origin".to_owned()),
    ];
    assert_eq!(post(same).await, 200);
    assert_eq!(staged(&demo.ring_file()), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promote_waits_until_the_key_was_staged_for_min_staged() {
    let demo = start_with("server", &["--min-staged", "1h"]).await;
    let op = Browser::new(&demo);
    op.operator_login(&demo).await;
    assert_eq!(op.post("/operator/stage", &[]).await.0, 200);
    let before = demo.ring_file();
    let (status, html) = op.post("/operator/promote", &[]).await;
    assert_eq!(status, 409, "{html}");
    let error = by_id(&html, "operator-error");
    assert!(error.contains("--min-staged"), "{error}");
    assert_eq!(demo.ring_file(), before, "promoted before --min-staged");
    assert_eq!(
        ring_rows(&html)
            .iter()
            .filter(|(_, r)| r == "primary")
            .count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staging_is_refused_once_three_keys_are_staged() {
    let demo = start("server").await;
    let op = Browser::new(&demo);
    op.operator_login(&demo).await;
    for _ in 0..3 {
        assert_eq!(op.post("/operator/stage", &[]).await.0, 200);
    }
    for _ in 0..20 {
        let (status, html) = op.post("/operator/stage", &[]).await;
        assert_eq!(status, 409, "{html}");
        assert!(by_id(&html, "operator-error").contains("at most 3"));
    }
    let ring = demo.ring_file();
    assert_eq!((ring.len(), staged(&ring)), (4, 3), "{ring:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reset_page_never_shows_the_link_and_answers_every_name_alike() {
    let demo = start("server").await;
    let alice = Browser::new(&demo);
    assert_eq!(
        alice
            .post("/signup", &[("username", "alice"), ("password", "pw")])
            .await
            .0,
        200
    );
    let stranger = Browser::new(&demo);
    let (known_status, known) = stranger.post("/reset", &[("username", "alice")]).await;
    let (unknown_status, unknown) = stranger.post("/reset", &[("username", "nobody")]).await;
    let (long_status, long) = stranger
        .post("/reset", &[("username", &"a".repeat(10_000))])
        .await;
    assert_eq!((known_status, unknown_status, long_status), (200, 200, 200));
    assert_eq!(known, unknown, "known and unknown users are told apart");
    assert_eq!(known, long);
    assert!(known.contains("id=\"reset-sent\""));
    assert!(!known.contains("/reset/confirm") && !known.contains("reset-link"));
    // The link went to alice's mail (the outbox), nobody else's.
    let link = demo.wait_for_mail("alice", 1).await;
    assert!(link.starts_with("/reset/confirm?uid="), "{link}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(demo.mails_to("nobody").is_empty());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(demo.data.join("outbox.jsonl"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Asking again at once mails nothing more (one mail a minute per user).
    stranger.post("/reset", &[("username", "alice")]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(demo.mails_to("alice").len(), 1);
    assert_eq!(stranger.get(&link).await.0, 200, "the mailed link works");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_link_dies_on_the_next_login() {
    let demo = start("cookie").await;
    let alice = Browser::new(&demo);
    assert_eq!(
        alice
            .post("/signup", &[("username", "alice"), ("password", "pw")])
            .await
            .0,
        200
    );
    // last_login counts whole seconds: the next login must be in a later second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    alice.post("/reset", &[("username", "alice")]).await;
    let link = demo.wait_for_mail("alice", 1).await;
    let (status, html) = alice.get(&link).await;
    assert_eq!(status, 200, "{html}");

    let phone = Browser::new(&demo);
    assert_eq!(
        phone
            .post("/login", &[("username", "alice"), ("password", "pw")])
            .await
            .0,
        200
    );
    let (status, html) = alice.get(&link).await;
    assert_eq!(status, 400, "a link made before a login outlives it");
    assert!(html.contains("id=\"reset-invalid\""));
    let (uid, token) = link_parts(&link);
    let (status, _) = alice
        .post(
            "/reset/confirm",
            &[("uid", &uid), ("token", &token), ("new_password", "taken")],
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        phone
            .post("/login", &[("username", "alice"), ("password", "pw")])
            .await
            .0,
        200,
        "the password did not change"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_and_signup_without_the_csrf_token_are_refused() {
    let demo = start("server").await;
    let owner = Browser::new(&demo);
    assert_eq!(
        owner
            .post("/signup", &[("username", "attacker"), ("password", "pw")])
            .await
            .0,
        200
    );
    // Login CSRF: a form that logs the victim in as the attacker, with no
    // token, a token of another browser, or none of its own cookie.
    let victim = Browser::new(&demo);
    let attackers_token = Browser::new(&demo).csrf_token().await;
    let creds = [("username", "attacker"), ("password", "pw")];
    // First without a CSRF cookie of the victim's own, then with one.
    for has_cookie in [false, true] {
        if has_cookie {
            victim.get("/login").await;
            assert!(victim.cookie("csrftoken").is_some());
        }
        for token in [None, Some(attackers_token.as_str())] {
            let mut fields = creds.to_vec();
            if let Some(t) = token {
                fields.push(("csrfmiddlewaretoken", t));
            }
            let (status, _) = victim.post_raw("/login", &fields).await;
            assert_eq!(status, 403, "{has_cookie} {token:?}");
            fields[0] = ("username", "someone-new");
            let (status, _) = victim.post_raw("/signup", &fields).await;
            assert_eq!(status, 403, "{has_cookie} {token:?}");
        }
    }
    assert_eq!(victim.home().await.0, "anonymous");
    let (status, _) = victim.post_raw("/reset", &[("username", "attacker")]).await;
    assert_eq!(status, 403);

    // With its own token it logs in, and the token is a new one after.
    let before = victim.csrf_token().await;
    assert_eq!(victim.post("/login", &creds).await.0, 200);
    assert_eq!(victim.home().await.0, "attacker");
    let after = victim.cookie("csrftoken").unwrap();
    assert_ne!(before, after, "the CSRF token is rotated on login");
    let (status, _) = victim
        .post_raw("/logout", &[("csrfmiddlewaretoken", before.as_str())])
        .await;
    assert_eq!(status, 403, "the pre-login token is dead");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookieless_page_views_create_no_session_rows() {
    let demo = start("server").await;
    assert_eq!(demo.session_rows().await, 0);
    let client = reqwest::Client::new(); // no cookie store: every request is a new visitor
    let pages = [
        "/",
        "/signup",
        "/login",
        "/reset",
        "/reset/confirm?uid=MQ&token=abc-def",
        "/password",
        "/operator",
        "/metrics",
        "/api/whoami",
        "/api/ring",
    ];
    for _ in 0..25 {
        for page in pages {
            let r = client
                .get(format!("{}{page}", demo.base))
                .send()
                .await
                .unwrap();
            assert!(r.status().as_u16() < 500, "{page}: {}", r.status());
            for c in r.headers().get_all("set-cookie") {
                assert!(
                    !c.to_str().unwrap().starts_with("sessionid="),
                    "{page} set a session cookie"
                );
            }
        }
        let r = client
            .post(format!("{}/api/visit", demo.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    assert_eq!(
        demo.session_rows().await,
        0,
        "anonymous page views made session rows"
    );
    // The count sees rows: a sign-up makes exactly one.
    let b = Browser::new(&demo);
    assert_eq!(
        b.post("/signup", &[("username", "u"), ("password", "p")])
            .await
            .0,
        200
    );
    assert_eq!(demo.session_rows().await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_published_at_zero_before_anything_happened() {
    let demo = start("server").await;
    let b = Browser::new(&demo);
    let (_, _, primary, _) = b.home().await;
    let (status, text) = b.get("/metrics").await;
    assert_eq!(status, 200);
    for line in [
        format!("keyroll_verifications_total{{key_id=\"{primary}\",role=\"primary\"}} 0"),
        "keyroll_resigns_total{kind=\"session\"} 0".to_owned(),
        "keyroll_resigns_total{kind=\"cookie_session\"} 0".to_owned(),
        "keyroll_resigns_total{kind=\"auth_hash\"} 0".to_owned(),
        "keyroll_resigns_total{kind=\"signed_cookie\"} 0".to_owned(),
        "keyroll_verify_failures_total{reason=\"signature\"} 0".to_owned(),
        "keyroll_verify_failures_total{reason=\"expired\"} 0".to_owned(),
        "keyroll_verify_failures_total{reason=\"malformed\"} 0".to_owned(),
        "keyroll_verify_failures_total{reason=\"too-large\"} 0".to_owned(),
        "keyroll_verify_failures_total{reason=\"auth_hash\"} 0".to_owned(),
    ] {
        assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ring_dates_are_rfc3339() {
    let demo = start("server").await;
    let op = Browser::new(&demo);
    op.operator_login(&demo).await;
    assert_eq!(op.post("/operator/stage", &[]).await.0, 200);
    let (status, html) = op.post("/operator/promote", &[]).await;
    assert_eq!(status, 200, "{html}");
    let ring: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/api/ring", demo.base))
        .bearer_auth(demo.operator_token())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let keys = ring["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "{ring}");
    let now = OffsetDateTime::now_utc();
    for key in keys {
        match key["role"].as_str().unwrap() {
            "fallback" => {
                let at = key["retire_after"].as_str().unwrap();
                let t = OffsetDateTime::parse(at, &Rfc3339)
                    .unwrap_or_else(|e| panic!("{at:?} is not RFC 3339: {e}"));
                assert!(t > now + time::Duration::days(6), "{at}");
                assert!(html.contains(&format!(">{at}</td>")), "the page shows {at}");
            }
            _ => assert!(key["retire_after"].is_null(), "{key}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_titles_name_the_site_once_and_pages_refuse_framing() {
    let demo = start("server").await;
    let b = Browser::new(&demo);
    let (_, home) = b.get("/").await;
    assert!(home.contains("<title>keyroll demo</title>"), "{home}");
    assert_eq!(home.matches("keyroll demo").count(), 2, "title and heading");
    let (_, login) = b.get("/login").await;
    assert!(login.contains("<title>Log in · keyroll demo</title>"));
    let r = b
        .client
        .get(format!("{}/operator", demo.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    assert_eq!(
        r.headers()["content-security-policy"],
        "frame-ancestors 'none'"
    );
}

/// Waits for `child` to exit (killing it after `limit`); its status and stderr.
fn wait_exit(mut child: std::process::Child, limit: Duration) -> (Option<i32>, String) {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            use std::io::Read as _;
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return (status.code(), err);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return (None, String::new());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn mode_of(path: &Path) -> u32 {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        0o700
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_keeps_its_state_in_one_data_dir_that_git_ignores() {
    let cwd = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // No --data-dir, --database or --keyring: the defaults.
    let mut child = Command::new(env!("CARGO_BIN_EXE_keyroll-demo"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .current_dir(cwd.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let mut up = false;
    for _ in 0..300 {
        if reqwest::get(format!("{base}/login")).await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let html = client
        .get(format!("{base}/signup"))
        .send()
        .await
        .map(|r| r.text());
    let signed_up = match html {
        Ok(t) => {
            let token = hidden_token(&t.await.unwrap());
            client
                .post(format!("{base}/signup"))
                .form(&[
                    ("username", "u"),
                    ("password", "p"),
                    ("csrfmiddlewaretoken", token.as_str()),
                ])
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        }
        Err(_) => false,
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(up && signed_up, "the demo did not start or sign up");

    let entries: Vec<String> = std::fs::read_dir(cwd.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(entries, vec!["keyroll-demo-data".to_owned()]);
    let data = cwd.path().join("keyroll-demo-data");
    assert_eq!(mode_of(&data), 0o700);
    for file in ["demo.db", "ring.toml", "operator-token"] {
        assert!(data.join(file).is_file(), "{file} is not in the data dir");
    }
    assert_eq!(mode_of(&data.join("operator-token")), 0o600);
    // Run from the repository's root, `git status` stays clean.
    let root = repo_root();
    for path in [
        "keyroll-demo-data/demo.db",
        "keyroll-demo-data/demo.db-wal",
        "keyroll-demo-data/ring.toml.lock",
        "crates/keyroll-demo/keyroll-demo-data/ring.toml",
    ] {
        let ignored = Command::new("git")
            .args(["check-ignore", "-q", path])
            .current_dir(&root)
            .status();
        match ignored {
            Ok(s) if s.code() == Some(128) => {
                eprintln!(
                    "SKIPPED the .gitignore check: {} is not a git work tree",
                    root.display()
                );
                break;
            }
            Ok(s) => assert!(s.success(), "{path} is not ignored by git"),
            Err(e) => {
                eprintln!("SKIPPED the .gitignore check: no git ({e})");
                break;
            }
        }
    }
}

#[test]
fn a_data_dir_open_to_others_is_refused() {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("open");
        std::fs::create_dir(&data).unwrap();
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_keyroll-demo"))
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (code, err) = wait_exit(child, Duration::from_secs(30));
        assert_eq!(code, Some(1), "{err}");
        assert!(err.contains("chmod 700"), "{err}");
        assert_eq!(
            std::fs::read_dir(&data).unwrap().count(),
            0,
            "wrote into it"
        );
    }
}

#[test]
fn cargo_run_needs_no_bin_flag() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--offline",
        ])
        .current_dir(repo_root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let demo = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "keyroll-demo")
        .unwrap();
    assert_eq!(demo["default_run"], "keyroll-demo");
}
