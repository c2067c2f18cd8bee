//! Size limits for decoding untrusted tokens.

use crate::error::{ConfigError, Limit};

/// The limits every decoder enforces. Each has a default and can be changed.
///
/// ```
/// use keyroll::Limits;
/// let limits = Limits::default().with_max_inflated_len(1 << 20).expect("in range");
/// assert_eq!(limits.max_inflated_len(), 1 << 20);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    max_token_len: usize,
    max_inflated_len: usize,
    max_json_depth: usize,
}

impl Limits {
    /// Default longest token: 1 MiB (Django session rows are rarely over a few KiB).
    pub const DEFAULT_MAX_TOKEN_LEN: usize = 1 << 20;
    /// Default largest inflated payload: 8 MiB.
    pub const DEFAULT_MAX_INFLATED_LEN: usize = 8 << 20;
    /// Default deepest JSON nesting: 128 levels.
    pub const DEFAULT_MAX_JSON_DEPTH: usize = 128;
    /// Ceiling for the JSON depth (the parser recurses once per level).
    pub const JSON_DEPTH_CEILING: usize = 1000;
    /// Ceiling for the sizes: 1 GiB.
    pub const SIZE_CEILING: usize = 1 << 30;

    /// Longest token accepted, in bytes.
    pub fn max_token_len(&self) -> usize {
        self.max_token_len
    }

    /// Largest decompressed payload accepted, in bytes.
    pub fn max_inflated_len(&self) -> usize {
        self.max_inflated_len
    }

    /// Deepest JSON nesting accepted.
    pub fn max_json_depth(&self) -> usize {
        self.max_json_depth
    }

    /// Sets the longest token.
    ///
    /// # Errors
    /// [`ConfigError::LimitOutOfRange`] for 0 or more than 1 GiB.
    pub fn with_max_token_len(mut self, n: usize) -> Result<Self, ConfigError> {
        self.max_token_len = check(Limit::TokenLength, n, Self::SIZE_CEILING)?;
        Ok(self)
    }

    /// Sets the largest inflated payload.
    ///
    /// # Errors
    /// [`ConfigError::LimitOutOfRange`] for 0 or more than 1 GiB.
    pub fn with_max_inflated_len(mut self, n: usize) -> Result<Self, ConfigError> {
        self.max_inflated_len = check(Limit::InflatedSize, n, Self::SIZE_CEILING)?;
        Ok(self)
    }

    /// Sets the deepest JSON nesting.
    ///
    /// # Errors
    /// [`ConfigError::LimitOutOfRange`] for 0 or more than [`Self::JSON_DEPTH_CEILING`].
    pub fn with_max_json_depth(mut self, n: usize) -> Result<Self, ConfigError> {
        self.max_json_depth = check(Limit::JsonDepth, n, Self::JSON_DEPTH_CEILING)?;
        Ok(self)
    }
}

fn check(limit: Limit, value: usize, ceiling: usize) -> Result<usize, ConfigError> {
    if value == 0 || value > ceiling {
        return Err(ConfigError::LimitOutOfRange {
            limit,
            value,
            ceiling,
        });
    }
    Ok(value)
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_token_len: Self::DEFAULT_MAX_TOKEN_LEN,
            max_inflated_len: Self::DEFAULT_MAX_INFLATED_LEN,
            max_json_depth: Self::DEFAULT_MAX_JSON_DEPTH,
        }
    }
}
