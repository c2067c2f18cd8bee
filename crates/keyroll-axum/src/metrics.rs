//! Rotation metrics through the `metrics` facade. The application installs a
//! recorder (e.g. `metrics-exporter-prometheus`); without one these are no-ops.
//!
//! - `keyroll_verifications_total{key_id, role}`: something verified under a key.
//! - `keyroll_resigns_total{kind}`: something stale re-signed with the primary
//!   (`kind`: `session`, `cookie_session`, `auth_hash`, `signed_cookie`).
//! - `keyroll_verify_failures_total{reason}`: something refused — a signed
//!   cookie, a stored server-mode session row, an auth hash
//!   (`reason`: `signature`, `expired`, `malformed`, `too-large`, `auth_hash`).
//!   A session key with no live row is not a failure.

use std::sync::RwLock;

use keyroll::{KeyId, Role, VerifyError};
use metrics::{Key, Label, Level, Metadata};

/// Name of the verification counter.
pub const VERIFICATIONS: &str = "keyroll_verifications_total";
/// Name of the re-sign counter.
pub const RESIGNS: &str = "keyroll_resigns_total";
/// Name of the failure counter.
pub const VERIFY_FAILURES: &str = "keyroll_verify_failures_total";

/// Describes the three counters to the installed recorder (call once at start-up).
pub fn describe() {
    metrics::describe_counter!(
        VERIFICATIONS,
        "Values verified, by the key that verified them"
    );
    metrics::describe_counter!(RESIGNS, "Stale values re-signed with the primary key");
    metrics::describe_counter!(VERIFY_FAILURES, "Values that did not verify, by reason");
}

/// What `metrics::counter!` would pass for these counters.
static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// Most verification keys kept built (a ring has a handful of keys; when a
/// long-running process has seen more, the table starts over).
const MAX_VERIFIED_KEYS: usize = 32;

/// Built `keyroll_verifications_total{key_id, role}` keys: formatting the
/// key id and hashing the labels on every request cost more than the rest
/// of a cached session load.
static VERIFIED_KEYS: RwLock<Vec<(KeyId, Role, Key)>> = RwLock::new(Vec::new());

pub(crate) fn verified(key_id: KeyId, role: Role) {
    {
        let keys = match VERIFIED_KEYS.read() {
            Ok(k) => k,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some((_, _, key)) = keys.iter().find(|(i, r, _)| *i == key_id && *r == role) {
            increment(key);
            return;
        }
    }
    let key = Key::from_parts(
        VERIFICATIONS,
        vec![
            Label::new("key_id", key_id.to_string()),
            Label::from_static_parts("role", role.as_str()),
        ],
    );
    increment(&key);
    let mut keys = match VERIFIED_KEYS.write() {
        Ok(k) => k,
        Err(poisoned) => poisoned.into_inner(),
    };
    if !keys.iter().any(|(i, r, _)| *i == key_id && *r == role) {
        if keys.len() >= MAX_VERIFIED_KEYS {
            keys.clear();
        }
        keys.push((key_id, role, key));
    }
}

fn increment(key: &Key) {
    metrics::with_recorder(|r| r.register_counter(key, &METADATA).increment(1));
}

pub(crate) fn resigned(kind: &'static str) {
    metrics::counter!(RESIGNS, "kind" => kind).increment(1);
}

pub(crate) fn failed(reason: &'static str) {
    metrics::counter!(VERIFY_FAILURES, "reason" => reason).increment(1);
}

pub(crate) fn failed_with(e: &VerifyError) {
    failed(e.reason());
}
