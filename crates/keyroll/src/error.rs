//! Errors of verification and configuration.

use std::fmt;

/// A limit every decoder enforces; named in the error that a breach raises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Limit {
    /// Maximum length of a token, in bytes, checked before anything else.
    TokenLength,
    /// Maximum size of a decompressed payload, in bytes.
    InflatedSize,
    /// Maximum nesting depth of JSON arrays and objects.
    JsonDepth,
}

impl Limit {
    /// The limit's name as used in messages and settings.
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::TokenLength => "max_token_len",
            Limit::InflatedSize => "max_inflated_len",
            Limit::JsonDepth => "max_json_depth",
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a signed token was refused.
///
/// Deliberately coarse: it never says which key was tried or how close a
/// signature came.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// No key of the ring produced this signature (or there is no signature).
    #[error("bad signature")]
    BadSignature,
    /// The signature verified but the timestamp is older than `max_age`
    /// (or further in the future than the signer tolerates).
    #[error("signature expired")]
    Expired,
    /// The signature verified but the payload could not be decoded.
    #[error("malformed payload: {0}")]
    Malformed(&'static str),
    /// A limit was exceeded.
    #[error("too large: {limit} ({max}) exceeded")]
    TooLarge {
        /// Which limit.
        limit: Limit,
        /// Its configured value.
        max: usize,
    },
}

impl VerifyError {
    /// One word for command output: `signature`, `expired`, `malformed` or `too-large`.
    pub fn reason(&self) -> &'static str {
        match self {
            VerifyError::BadSignature => "signature",
            VerifyError::Expired => "expired",
            VerifyError::Malformed(_) => "malformed",
            VerifyError::TooLarge { .. } => "too-large",
        }
    }
}

/// A signer configuration Django would refuse too.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The separator is empty or made only of `A-z0-9-_=`, which appear in signatures.
    #[error("unsafe separator {0:?}: it must not be empty or consist only of A-z0-9-_=")]
    UnsafeSeparator(String),
    /// A limit was set to zero or above its ceiling.
    #[error("limit {limit} must be between 1 and {ceiling}, got {value}")]
    LimitOutOfRange {
        /// Which limit.
        limit: Limit,
        /// The value given.
        value: usize,
        /// The highest value allowed.
        ceiling: usize,
    },
}

/// Why a value could not be signed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// The value holds a number JSON cannot carry faithfully.
    #[error("value cannot be serialized: {0}")]
    Unserializable(&'static str),
}
