//! What the drill counts and how it is reported.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// What one drill run measured.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// `staged` or `naive`.
    pub scenario: String,
    /// `postgresql` or `redis`.
    pub store: String,
    /// Instances in the fleet.
    pub instances: usize,
    /// Simulated users.
    pub users: usize,
    /// Wall time from the first log-in to the end of the final check.
    pub seconds: f64,
    /// HTTP requests made.
    pub requests: u64,
    /// Of which writes (`POST /api/visit`).
    pub writes: u64,
    /// Of which log-ins.
    pub logins: u64,
    /// Users logged out at least once.
    pub users_logged_out: u64,
    /// Times a user found itself logged out.
    pub logout_events: u64,
    /// Requests that saw an error.
    pub error_requests: u64,
    /// Sessions lost, all causes.
    pub sessions_lost: u64,
    /// Of which: a session whose counter was not what the user wrote (still logged in).
    pub lost_writes: u64,
    /// Of which: sessions failing the final check or missing from the store.
    pub final_check_failures: u64,
    /// What was done when, with the figures so far.
    pub timeline: Vec<String>,
    /// The first few errors seen (no secrets: URLs, statuses, messages).
    pub first_errors: Vec<String>,
}

impl Report {
    /// No user logged out, no request failed, no session lost.
    pub fn is_clean(&self) -> bool {
        self.users_logged_out == 0 && self.error_requests == 0 && self.sessions_lost == 0
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "== {} rotation, {} store: {} instances, {} users, {:.1} s",
            self.scenario, self.store, self.instances, self.users, self.seconds
        )?;
        for line in &self.timeline {
            writeln!(f, "   {line}")?;
        }
        writeln!(
            f,
            "   requests made          {:>8}   ({} writes, {} log-ins)",
            self.requests, self.writes, self.logins
        )?;
        writeln!(
            f,
            "   users logged out       {:>8}   ({} log-out events)",
            self.users_logged_out, self.logout_events
        )?;
        writeln!(f, "   requests with an error {:>8}", self.error_requests)?;
        writeln!(
            f,
            "   sessions lost          {:>8}   ({} by log-out, {} lost a write, {} failed the final check)",
            self.sessions_lost,
            self.sessions_lost
                .saturating_sub(self.lost_writes + self.final_check_failures),
            self.lost_writes,
            self.final_check_failures
        )?;
        for e in &self.first_errors {
            writeln!(f, "   error: {e}")?;
        }
        Ok(())
    }
}

/// Counters every user task adds to.
#[derive(Default)]
pub(super) struct Stats {
    pub(super) requests: AtomicU64,
    pub(super) writes: AtomicU64,
    pub(super) logins: AtomicU64,
    pub(super) users_logged_out: AtomicU64,
    pub(super) logout_events: AtomicU64,
    pub(super) errors: AtomicU64,
    pub(super) sessions_lost: AtomicU64,
    pub(super) lost_writes: AtomicU64,
    pub(super) final_failures: AtomicU64,
    pub(super) first_errors: Mutex<Vec<String>>,
}

impl Stats {
    pub(super) fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    pub(super) fn error(&self, what: String) {
        Self::add(&self.errors);
        let mut first = match self.first_errors.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if first.len() < 8 {
            first.push(what);
        }
    }

    pub(super) fn so_far(&self) -> String {
        format!(
            "[requests {}, logged out {}, errors {}, sessions lost {}]",
            Self::get(&self.requests),
            Self::get(&self.users_logged_out),
            Self::get(&self.errors),
            Self::get(&self.sessions_lost)
        )
    }
}
