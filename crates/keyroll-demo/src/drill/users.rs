//! The simulated users: each logs in, then reads and writes its session on
//! instances chosen at random, and checks every answer.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use reqwest::cookie::CookieStore as _;

use super::*;

/// One simulated user: its own cookie jar, one request at a time.
pub(super) struct SimUser {
    pub(super) name: String,
    pub(super) password: String,
    pub(super) jar: Arc<reqwest::cookie::Jar>,
    pub(super) client: reqwest::Client,
    pub(super) rng: StdRng,
    pub(super) think: Duration,
    pub(super) write_percent: u32,
    /// The session's visit counter as this user last saw it; `None` when unknown
    /// (a write whose answer was lost).
    pub(super) expected: Option<u64>,
    pub(super) logged_out_once: bool,
}

impl SimUser {
    pub(super) fn new(name: String, password: String, cfg: &Config) -> anyhow::Result<Self> {
        let jar = Arc::new(reqwest::cookie::Jar::default());
        let client = reqwest::Client::builder()
            .cookie_provider(Arc::clone(&jar))
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()?;
        Ok(Self {
            name,
            password,
            jar,
            client,
            rng: StdRng::from_entropy(),
            think: cfg.think,
            write_percent: cfg.write_percent,
            expected: None,
            logged_out_once: false,
        })
    }

    pub(super) fn pick<'a>(&mut self, bases: &'a [String]) -> &'a str {
        bases
            .get(self.rng.gen_range(0..bases.len()))
            .map_or("", String::as_str)
    }

    pub(super) async fn think(&mut self) {
        let ms = self.think.as_secs_f64() * 1000.0 * self.rng.gen_range(0.5..1.5);
        tokio::time::sleep(Duration::from_micros((ms * 1000.0) as u64)).await;
    }

    /// Logs in on some instance (retrying a few times), and reads the
    /// session's counter there. False when the user gave up (every failed
    /// attempt is counted as an error request).
    pub(super) async fn login(&mut self, bases: &[String], stats: &Stats) -> bool {
        for _ in 0..20 {
            let base = self.pick(bases);
            // The login form first: its CSRF token (a cookie and the same
            // value in the form), as a browser gets it.
            Stats::add(&stats.requests);
            let token = match self.csrf_token(base).await {
                Ok(t) => t,
                Err(e) => {
                    stats.error(format!("GET {base}/login: {e}"));
                    self.think().await;
                    continue;
                }
            };
            Stats::add(&stats.requests);
            Stats::add(&stats.logins);
            let form = [
                ("username", self.name.as_str()),
                ("password", self.password.as_str()),
                ("csrfmiddlewaretoken", token.as_str()),
            ];
            match self
                .client
                .post(format!("{base}/login"))
                .form(&form)
                .send()
                .await
            {
                Ok(r) if r.status() == reqwest::StatusCode::SEE_OTHER => {
                    match self.whoami(base, stats).await {
                        Some(w) if w.user.as_deref() == Some(self.name.as_str()) => {
                            self.expected = Some(w.visits);
                            return true;
                        }
                        Some(_) => {
                            stats.error(format!("{base}: not logged in right after logging in"))
                        }
                        None => {}
                    }
                }
                Ok(r) => stats.error(format!("POST {base}/login: {}", r.status())),
                Err(e) => stats.error(format!("POST {base}/login: {e}")),
            }
            self.think().await;
        }
        false
    }

    /// The login form's CSRF token (the page sets its cookie).
    pub(super) async fn csrf_token(&self, base: &str) -> anyhow::Result<String> {
        let html = self
            .client
            .get(format!("{base}/login"))
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?;
        csrf_field(&html).context("no CSRF field on the login page")
    }

    pub(super) async fn whoami(&self, base: &str, stats: &Stats) -> Option<Whoami> {
        Stats::add(&stats.requests);
        let r = self.client.get(format!("{base}/api/whoami")).send().await;
        answer(r, "GET", base, "/api/whoami", stats).await
    }

    /// One request: mostly a read of who am I, sometimes a write (a visit).
    /// False when the user was logged out and could not log in again.
    pub(super) async fn step(&mut self, bases: &[String], stats: &Stats) -> bool {
        let base = self.pick(bases);
        let write = self.rng.gen_range(0..100) < self.write_percent;
        let got = if write {
            Stats::add(&stats.requests);
            Stats::add(&stats.writes);
            let r = self.client.post(format!("{base}/api/visit")).send().await;
            answer(r, "POST", base, "/api/visit", stats).await
        } else {
            self.whoami(base, stats).await
        };
        let Some(w) = got else {
            if write {
                self.expected = None; // the write may or may not have happened
            }
            return true;
        };
        if w.user.as_deref() != Some(self.name.as_str()) {
            Stats::add(&stats.logout_events);
            Stats::add(&stats.sessions_lost);
            if !self.logged_out_once {
                self.logged_out_once = true;
                Stats::add(&stats.users_logged_out);
            }
            return self.login(bases, stats).await;
        }
        if let Some(e) = self.expected {
            let want = if write { e + 1 } else { e };
            if w.visits != want {
                Stats::add(&stats.lost_writes);
                Stats::add(&stats.sessions_lost);
            }
        }
        self.expected = Some(w.visits);
        true
    }

    /// After the load: the same user with the same counter on every instance,
    /// and the session's row still in the store.
    pub(super) async fn final_check(
        &mut self,
        bases: &[String],
        store: &dyn keyroll_store::Store,
        stats: &Stats,
    ) {
        let mut ok = true;
        for base in bases {
            match self.whoami(base, stats).await {
                Some(w) if w.user.as_deref() == Some(self.name.as_str()) => {
                    if self.expected.is_some_and(|e| e != w.visits) {
                        ok = false;
                    }
                    self.expected = Some(w.visits);
                }
                _ => ok = false,
            }
        }
        let key = bases.first().and_then(|b| session_key(&self.jar, b));
        let in_store = match key {
            Some(key) => store
                .load(&key, time::OffsetDateTime::now_utc())
                .await
                .is_ok_and(|r| r.is_some()),
            None => false,
        };
        if !(ok && in_store) {
            Stats::add(&stats.final_failures);
            Stats::add(&stats.sessions_lost);
        }
    }
}

/// A JSON answer, or `None` after counting the error.
pub(super) async fn answer(
    r: reqwest::Result<reqwest::Response>,
    method: &str,
    base: &str,
    path: &str,
    stats: &Stats,
) -> Option<Whoami> {
    match r {
        Ok(r) if r.status().is_success() => match r.json::<Whoami>().await {
            Ok(w) => Some(w),
            Err(e) => {
                stats.error(format!("{method} {base}{path}: {e}"));
                None
            }
        },
        Ok(r) => {
            stats.error(format!("{method} {base}{path}: {}", r.status()));
            None
        }
        Err(e) => {
            stats.error(format!("{method} {base}{path}: {e}"));
            None
        }
    }
}

/// The value of a page's hidden `csrfmiddlewaretoken` field.
pub(super) fn csrf_field(html: &str) -> Option<String> {
    const FIELD: &str = r#"name="csrfmiddlewaretoken" value=""#;
    let rest = html.get(html.find(FIELD)? + FIELD.len()..)?;
    Some(rest.get(..rest.find('"')?)?.to_owned())
}

/// The `sessionid` cookie the jar would send to `base`.
pub(super) fn session_key(jar: &reqwest::cookie::Jar, base: &str) -> Option<String> {
    let url: reqwest::Url = base.parse().ok()?;
    let header = jar.cookies(&url)?;
    header.to_str().ok()?.split("; ").find_map(|c| {
        c.strip_prefix("sessionid=")
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    })
}
