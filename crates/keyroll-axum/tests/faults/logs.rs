//! What keyroll logged during a test: a small `tracing` subscriber that
//! keeps every event of the `keyroll*` targets as one line of text.
//!
//! Installed per thread ([`capture`]), so the tests run on a current-thread
//! runtime: the app, its store's tasks and the clients then all log here.

#![allow(dead_code, unreachable_pub)]

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::DefaultGuard;
use tracing::{Event, Level, Metadata, Subscriber};

/// The captured lines, e.g. `ERROR keyroll_axum::error: session error error=session store failed: …`.
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<String>>>);

impl Logs {
    pub fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    pub fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    /// Lines at `level` logged since line `from`.
    pub fn since(&self, from: usize, level: Level) -> Vec<String> {
        let prefix = format!("{level} ");
        self.lines()
            .into_iter()
            .skip(from)
            .filter(|l| l.starts_with(&prefix))
            .collect()
    }

    /// Every line at `level`.
    pub fn at(&self, level: Level) -> Vec<String> {
        self.since(0, level)
    }

    /// Waits (up to `within`) for a line at `level`, after line `from`, containing `needle`.
    pub async fn wait_for(
        &self,
        from: usize,
        level: Level,
        needle: &str,
        within: std::time::Duration,
    ) -> Option<String> {
        let start = std::time::Instant::now();
        loop {
            if let Some(l) = self
                .since(from, level)
                .into_iter()
                .find(|l| l.contains(needle))
            {
                return Some(l);
            }
            if start.elapsed() > within {
                return None;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}

struct Capture(Logs);

struct Line(String);

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, " {value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            let _ = write!(self.0, " {value}");
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }
}

impl Subscriber for Capture {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.target().starts_with("keyroll")
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let meta = event.metadata();
        let mut line = Line(format!("{} {}:", meta.level(), meta.target()));
        event.record(&mut line);
        self.0 .0.lock().unwrap().push(line.0);
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

/// Captures this thread's keyroll events until the guard is dropped.
pub fn capture() -> (Logs, DefaultGuard) {
    let logs = Logs::default();
    let guard = tracing::subscriber::set_default(Capture(logs.clone()));
    (logs, guard)
}
