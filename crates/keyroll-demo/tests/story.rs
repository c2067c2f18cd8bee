//! The whole story against the real `keyroll-demo` binary over HTTP, in both
//! session modes: sign up, rotate live from the operator page, nobody is
//! logged out; password change; reset links across a rotation; tampering.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::time::Duration;

use support::{by_id, link_parts, ring_rows, start, Browser};

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
            &[
                "operator-login-form",
                "operator-token",
                "operator-login-submit",
            ][..],
        ),
    ] {
        let (status, html) = alice.get(path).await;
        assert_eq!(status, 200);
        for id in ids {
            assert!(html.contains(&format!("id=\"{id}\"")), "{path} #{id}");
        }
        assert!(
            html.contains("name=\"csrfmiddlewaretoken\""),
            "{path}: CSRF field"
        );
    }
    operator.operator_login(&demo).await;
    let (status, html) = operator.get("/operator").await;
    assert_eq!(status, 200);
    for id in ["ring", "stage-submit", "promote-submit", "retire-submit"] {
        assert!(html.contains(&format!("id=\"{id}\"")), "/operator #{id}");
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

    // A reset link made under key A, mailed (to the outbox), not shown.
    let (_, html) = alice.post("/reset", &[("username", "alice")]).await;
    assert!(html.contains("id=\"reset-sent\"") && !html.contains("/reset/confirm"));
    let link = demo.wait_for_mail("alice", 1).await;
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
    bob.post("/reset", &[("username", "bob")]).await;
    let link = demo.wait_for_mail("bob", 1).await;
    let (uid, token) = link_parts(&link);
    let (status, html) = bob
        .post(
            "/reset/confirm",
            &[("uid", &uid), ("token", &token), ("new_password", "pw-b2")],
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
    let ring = demo.ring_path();
    let now = time::OffsetDateTime::now_utc();
    let opts = keyroll::ringfile::OpenOptions::default();
    let staged =
        keyroll::ringfile::RingFile::update(&ring, opts, &|_| None, |rf| Ok(rf.stage(now, 50)))
            .unwrap();
    let b = Browser::new(&demo);
    b.operator_login(&demo).await;
    for _ in 0..100 {
        if b.get("/operator").await.1.contains(&staged.to_string()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the staged key never showed up");
}
