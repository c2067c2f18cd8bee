//! How long a network store waits, and the URL parameters that say so.
// Only the network stores read timeouts from a URL.
#![cfg_attr(
    not(any(feature = "postgres", feature = "redis", feature = "mysql")),
    allow(dead_code)
)]

use std::time::Duration;

use crate::params::take_params;
use crate::store::StoreError;

/// How long a network store waits: no store call waits without bound.
///
/// In a URL (see [`open_store`](crate::open_store)): `connect_timeout`,
/// `pool_timeout` and `query_timeout`, in seconds; or given to a constructor
/// that takes an existing pool or connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// Opening one connection (TCP connect + handshake).
    pub connect: Duration,
    /// Waiting for a free pooled connection (PostgreSQL).
    pub pool: Duration,
    /// Waiting for the answer to one statement or command.
    pub query: Duration,
}

/// The least time the row counts of a census or re-sign get. Each count is
/// one statement over the table's expiry index, which takes longer than a
/// web request's statement on a big table (on PostgreSQL right after a
/// purge, before autovacuum has cleaned the index, it visits every deleted
/// row: more than 10 s on a 10M-row table).
const COUNT_FLOOR: Duration = Duration::from_secs(600);

impl Timeouts {
    /// The time the row counts of a census or re-sign may take: `query`, but
    /// at least 10 minutes.
    pub(crate) fn count(&self) -> Duration {
        self.query.max(COUNT_FLOOR)
    }

    /// What a statement that timed out after `limit` was given, for its
    /// error: `query_timeout`, or the row counts' longer allowance.
    pub(crate) fn name_of(&self, limit: Duration) -> &'static str {
        if limit > self.query {
            "query_timeout, at least 600 s for the row counts"
        } else {
            "query_timeout"
        }
    }
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(5),
            pool: Duration::from_secs(5),
            query: Duration::from_secs(10),
        }
    }
}

/// Longest timeout a URL may set.
const MAX_TIMEOUT: Duration = Duration::from_secs(3600);

impl Timeouts {
    /// Takes `connect_timeout`, `pool_timeout` and `query_timeout` out of a
    /// URL's query string; returns the URL without them and the timeouts
    /// (defaults for those not given). A URL without `://` (PostgreSQL's
    /// `key=value` form) is returned as it is, with the defaults.
    ///
    /// # Errors
    /// [`StoreError::Backend`] naming the parameter (never the URL, which
    /// may hold a password) when a value is not a number of seconds in
    /// (0, 3600] or a parameter is given twice.
    pub(crate) fn take_from_url(
        backend: &'static str,
        url: &str,
    ) -> Result<(String, Self), StoreError> {
        let mut t = Self::default();
        let (url, taken) = take_params(
            backend,
            url,
            &["connect_timeout", "pool_timeout", "query_timeout"],
        )?;
        for (name, value) in taken {
            let slot = match name {
                "connect_timeout" => &mut t.connect,
                "pool_timeout" => &mut t.pool,
                _ => &mut t.query,
            };
            *slot = parse_seconds(&value).ok_or_else(|| {
                StoreError::backend(
                    backend,
                    format_args!(
                        "URL parameter {name} must be a number of seconds, more than 0 and at most 3600"
                    ),
                )
            })?;
        }
        Ok((url, t))
    }
}

/// `"2"`, `"0.25"` → a duration in (0, [`MAX_TIMEOUT`]].
fn parse_seconds(s: &str) -> Option<Duration> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    let secs: f64 = s.parse().ok()?;
    let d = Duration::try_from_secs_f64(secs).ok()?;
    (!d.is_zero() && d <= MAX_TIMEOUT).then_some(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_counts_get_ten_minutes_or_the_query_timeout_if_longer() {
        let t = Timeouts::default();
        assert_eq!(t.count(), Duration::from_secs(600));
        let long = Timeouts {
            query: Duration::from_secs(900),
            ..Timeouts::default()
        };
        assert_eq!(long.count(), Duration::from_secs(900));
    }

    #[test]
    fn a_time_out_names_what_the_statement_was_given() {
        let t = Timeouts::default();
        assert_eq!(t.name_of(t.query), "query_timeout");
        assert_eq!(
            t.name_of(t.count()),
            "query_timeout, at least 600 s for the row counts"
        );
        let long = Timeouts {
            query: Duration::from_secs(900),
            ..Timeouts::default()
        };
        assert_eq!(long.name_of(long.count()), "query_timeout");
    }

    #[test]
    fn timeouts_are_taken_out_of_the_url() {
        let (url, t) = Timeouts::take_from_url(
            "postgres",
            "postgres://u:pw@h/db?application_name=x&connect_timeout=2&query_timeout=0.5&sslmode=disable",
        )
        .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(
            url,
            "postgres://u:pw@h/db?application_name=x&sslmode=disable"
        );
        assert_eq!(t.connect, Duration::from_secs(2));
        assert_eq!(t.query, Duration::from_millis(500));
        assert_eq!(t.pool, Timeouts::default().pool);

        let (url, t) = Timeouts::take_from_url("redis", "redis://h:6379/0?pool_timeout=1")
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(url, "redis://h:6379/0");
        assert_eq!(t.pool, Duration::from_secs(1));

        let (url, t) = Timeouts::take_from_url("postgres", "host=h connect_timeout=3")
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(
            (url.as_str(), t),
            ("host=h connect_timeout=3", Timeouts::default())
        );
    }

    #[test]
    fn bad_timeouts_are_refused_without_echoing_the_url() {
        for bad in ["0", "-1", "", "abc", "1e3", "3601", "inf", "NaN", "1.2.3"] {
            let url = format!("postgres://u:hunter2@h/db?query_timeout={bad}");
            let e = Timeouts::take_from_url("postgres", &url)
                .err()
                .unwrap_or_else(|| unreachable!("{bad} accepted"));
            let text = e.to_string();
            assert!(
                text.contains("query_timeout") && !text.contains("hunter2"),
                "{text}"
            );
        }
        assert!(
            Timeouts::take_from_url("redis", "redis://h?connect_timeout=1&connect_timeout=2")
                .is_err()
        );
    }
}
