//! The demo's stand-in for e-mail: password-reset links are appended to
//! `outbox.jsonl` in the data directory (mode 0600, one JSON object a line:
//! `{"at": RFC 3339, "to": username, "link": "/reset/confirm?uid=…&token=…"}`),
//! as Django's file-based e-mail backend writes messages to a directory.
//! The link is never shown to whoever asked for it, and never logged: the
//! console only says that a mail was written.
//!
//! The link is a path: a real service builds the absolute URL from its own
//! configured address, never from the request's `Host` header (which the
//! asker controls, and the link would then point to their server).

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// File name of the outbox in the data directory.
pub(crate) const FILE: &str = "outbox.jsonl";
/// At most one reset mail per user in this interval (asking again sooner is
/// answered the same, and sends nothing).
const PER_USER_INTERVAL: Duration = Duration::from_secs(60);

/// Where reset mails go.
#[derive(Clone, Debug)]
pub(crate) struct Outbox {
    path: PathBuf,
    last_sent: Arc<Mutex<HashMap<String, Instant>>>,
}

impl Outbox {
    /// The outbox file of `data_dir`.
    pub(crate) fn in_dir(data_dir: &Path) -> Self {
        Self {
            path: data_dir.join(FILE),
            last_sent: Arc::default(),
        }
    }

    /// Sends (appends) a reset mail to user `to` (an id-keyed throttle: one
    /// a minute per user). The write happens off the request, so a known
    /// user's answer takes as long as an unknown one's.
    pub(crate) fn send_reset_link(&self, user_id: &str, to: &str, link: String) {
        {
            let mut last = match self.last_sent.lock() {
                Ok(g) => g,
                Err(poisoned) => poisoned.into_inner(),
            };
            let now = Instant::now();
            if last
                .get(user_id)
                .is_some_and(|t| now.duration_since(*t) < PER_USER_INTERVAL)
            {
                return;
            }
            last.insert(user_id.to_owned(), now);
        }
        let at = OffsetDateTime::now_utc()
            .format(&Rfc3339)
            .unwrap_or_default();
        let line = serde_json::json!({ "at": at, "to": to, "link": link }).to_string();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || match append(&path, &line) {
            Ok(()) => eprintln!(
                "keyroll-demo: password-reset mail written to {}",
                path.display()
            ),
            Err(e) => eprintln!(
                "keyroll-demo: cannot write the password-reset mail to {}: {e}",
                path.display()
            ),
        });
    }
}

fn append(path: &Path, line: &str) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(format!("{line}\n").as_bytes())
}
