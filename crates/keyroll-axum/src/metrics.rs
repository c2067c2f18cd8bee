//! Rotation metrics through the `metrics` facade. The application installs a
//! recorder (e.g. `metrics-exporter-prometheus`); without one these are no-ops.
//!
//! - `keyroll_verifications_total{key_id, role}`: something verified under a key.
//! - `keyroll_resigns_total{kind}`: something stale re-signed with the primary
//!   (`kind`: `session`, `cookie_session`, `auth_hash`, `signed_cookie`).
//! - `keyroll_verify_failures_total{reason}`: something refused
//!   (`reason`: `signature`, `expired`, `malformed`, `too-large`, `auth_hash`).

use keyroll::{KeyId, Role, VerifyError};

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

pub(crate) fn verified(key_id: KeyId, role: Role) {
    metrics::counter!(VERIFICATIONS, "key_id" => key_id.to_string(), "role" => role.as_str())
        .increment(1);
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
