//! What verification hands back to Python, and the format operations the
//! `Ring` methods run (with the GIL released).

use std::time::Duration;

use keyroll::{
    CookieSaltForm, KeyRing, LoginCheck, ObjectSigner, SessionAuthHash, SignedCookie,
    SignerBuilder, TimestampSigner,
};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use time::OffsetDateTime;

/// A token that verified: its value, the key that verified it, and — when
/// that key was not the primary — the same token re-signed by the primary,
/// keeping its timestamp (`fresh`).
#[pyclass(frozen, module = "keyroll", name = "Verified")]
pub(crate) struct Verified {
    /// The verified value (`str`, or `bytes` for a signed object's payload).
    #[pyo3(get)]
    value: Py<PyAny>,
    /// The id of the key whose signature matched.
    #[pyo3(get)]
    key_id: String,
    /// Its role: `primary`, `staged` or `fallback`.
    #[pyo3(get)]
    role: &'static str,
    /// The signing time (Unix seconds) of a timestamped token.
    #[pyo3(get)]
    timestamp: Option<i64>,
    /// The token re-signed by the primary when a non-primary key verified it.
    #[pyo3(get)]
    fresh: Option<String>,
}

#[pymethods]
impl Verified {
    /// True when a non-primary key verified the token: it should be re-signed.
    #[getter]
    fn stale(&self) -> bool {
        self.role != "primary"
    }

    fn __repr__(&self) -> String {
        format!(
            "Verified(key_id={:?}, role={:?}, timestamp={:?}, stale={})",
            self.key_id,
            self.role,
            self.timestamp,
            if self.role != "primary" {
                "True"
            } else {
                "False"
            }
        )
    }
}

/// Verification that has left Rust, before it becomes a Python object.
pub(crate) struct Found<T> {
    pub(crate) value: T,
    pub(crate) v: keyroll::Verified<()>,
    pub(crate) fresh: Option<String>,
}

impl<T> Found<T> {
    fn of<U>(v: keyroll::Verified<U>, value: T, fresh: Option<String>) -> Self {
        Self {
            value,
            v: v.map(|_| ()),
            fresh,
        }
    }
}

impl Found<String> {
    pub(crate) fn into_py(self, py: Python<'_>) -> PyResult<Verified> {
        let value = self.value.into_pyobject(py)?.into_any().unbind();
        Ok(build(value, self.v, self.fresh))
    }
}

impl Found<Vec<u8>> {
    pub(crate) fn into_py(self, py: Python<'_>) -> Verified {
        let value = PyBytes::new(py, &self.value).into_any().unbind();
        build(value, self.v, self.fresh)
    }
}

fn build(value: Py<PyAny>, v: keyroll::Verified<()>, fresh: Option<String>) -> Verified {
    Verified {
        value,
        key_id: v.key_id.to_string(),
        role: v.role.as_str(),
        timestamp: v.timestamp,
        fresh,
    }
}

/// What the login-hash rule found: `verdict` is `current` (made by the
/// primary for the user's current password), `stale` (made by another live
/// key for the current password: store `remade` in its place) or `invalid`
/// (no live key, or another password: Django logs the session out).
#[pyclass(frozen, module = "keyroll", name = "LoginVerdict")]
pub(crate) struct LoginVerdict {
    /// `current`, `stale` or `invalid`.
    #[pyo3(get)]
    verdict: &'static str,
    /// The key that verified the stored hash (not for `invalid`).
    #[pyo3(get)]
    key_id: Option<String>,
    /// That key's role (not for `invalid`).
    #[pyo3(get)]
    role: Option<&'static str>,
    /// For `stale`: the hash under the primary key.
    #[pyo3(get)]
    remade: Option<String>,
}

#[pymethods]
impl LoginVerdict {
    fn __repr__(&self) -> String {
        format!(
            "LoginVerdict(verdict={:?}, key_id={:?}, role={:?})",
            self.verdict, self.key_id, self.role
        )
    }
}

impl From<LoginCheck> for LoginVerdict {
    fn from(check: LoginCheck) -> Self {
        match check {
            LoginCheck::Current(v) => Self {
                verdict: "current",
                key_id: Some(v.key_id.to_string()),
                role: Some(v.role.as_str()),
                remade: None,
            },
            LoginCheck::Stale { verified, remade } => Self {
                verdict: "stale",
                key_id: Some(verified.key_id.to_string()),
                role: Some(verified.role.as_str()),
                remade: Some(remade),
            },
            _ => Self {
                verdict: "invalid",
                key_id: None,
                role: None,
                remade: None,
            },
        }
    }
}

/// Django's signer options: a salt (`None` or empty: the class's default) and
/// a separator. Django checks no age in the future, and neither does this.
pub(crate) fn builder(salt: Option<&str>, sep: &str) -> SignerBuilder {
    let b = SignerBuilder::new().sep(sep).future_tolerance(None);
    match salt {
        Some(s) if !s.is_empty() => b.salt(s),
        _ => b,
    }
}

/// The signer of `signing.dumps`/`loads` objects under `salt` (`:` separator).
pub(crate) fn object_signer(ring: &KeyRing, salt: Option<&str>) -> PyResult<ObjectSigner> {
    ObjectSigner::new(builder(salt, ":"), true, ring).map_err(|e| config_err(&e))
}

fn config_err(e: &keyroll::ConfigError) -> PyErr {
    pyo3::exceptions::PyValueError::new_err(e.to_string())
}

fn verify_err(e: &keyroll::VerifyError) -> PyErr {
    crate::verify_err(e)
}

/// A timestamp signer over `ring`.
pub(crate) fn timestamp_signer(
    ring: &KeyRing,
    salt: Option<&str>,
    sep: &str,
) -> PyResult<TimestampSigner> {
    builder(salt, sep)
        .build_timestamp(ring)
        .map_err(|e| config_err(&e))
}

/// `Signer.unsign`, with the re-signed token when stale.
pub(crate) fn unsign(
    ring: &KeyRing,
    token: &str,
    salt: Option<&str>,
    sep: &str,
    now: OffsetDateTime,
) -> PyResult<Found<String>> {
    let signer = builder(salt, sep).build(ring).map_err(|e| config_err(&e))?;
    let v = signer.unsign_at(token, now).map_err(|e| verify_err(&e))?;
    let fresh = v.is_stale().then(|| signer.sign(v.value));
    let value = v.value.to_owned();
    Ok(Found::of(v, value, fresh))
}

/// `TimestampSigner.unsign`, with the re-signed token (same timestamp) when stale.
pub(crate) fn unsign_timestamp(
    signer: &TimestampSigner,
    token: &str,
    max_age: Option<Duration>,
    now: OffsetDateTime,
) -> PyResult<Found<String>> {
    let v = signer
        .unsign_at(token, max_age, now)
        .map_err(|e| verify_err(&e))?;
    let value = v.value.to_owned();
    let fresh = if v.is_stale() {
        signer
            .resign_at(token, max_age, now)
            .map_err(|e| verify_err(&e))?
            .value
    } else {
        None
    };
    Ok(Found::of(v, value, fresh))
}

/// `signing.loads` up to the serializer: the signature (and age), then
/// base64 and zlib, within the limits; the serialized bytes come back.
pub(crate) fn loads_raw(
    signer: &ObjectSigner,
    token: &str,
    max_age: Option<Duration>,
    now: OffsetDateTime,
) -> PyResult<Found<Vec<u8>>> {
    let v = signer
        .loads_json_at(token, max_age, now)
        .map_err(|e| verify_err(&e))?;
    let fresh = if v.is_stale() {
        signer
            .timestamp_signer()
            .resign_at(token, max_age, now)
            .map_err(|e| verify_err(&e))?
            .value
    } else {
        None
    };
    let keyroll::Verified {
        value,
        key_id,
        role,
        timestamp,
    } = v;
    let v = keyroll::Verified {
        value: (),
        key_id,
        role,
        timestamp,
    };
    Ok(Found { value, v, fresh })
}

/// The login-hash rule ([`SessionAuthHash::judge_at`]).
pub(crate) fn judge_login_hash(
    auth: &SessionAuthHash,
    stored: &str,
    password_hash: &str,
    now: OffsetDateTime,
) -> LoginVerdict {
    auth.judge_at(stored, password_hash, now).into()
}

/// A signed cookie's signer (`set_signed_cookie` / `get_signed_cookie`).
pub(crate) fn signed_cookie(
    ring: &KeyRing,
    name: &str,
    salt: &str,
    legacy: bool,
) -> PyResult<SignedCookie> {
    let form = if legacy {
        CookieSaltForm::Legacy
    } else {
        CookieSaltForm::V2
    };
    SignedCookie::with_builder(
        ring,
        name,
        salt,
        SignerBuilder::new().future_tolerance(None),
    )
    .map(|c| c.writing(form))
    .map_err(|e| config_err(&e))
}

/// `get_signed_cookie`'s verification, with the re-signed value when stale.
pub(crate) fn cookie_unsign(
    cookie: &SignedCookie,
    value: &str,
    max_age: Option<Duration>,
    now: OffsetDateTime,
) -> PyResult<Found<String>> {
    let v = cookie
        .resign_at(value, max_age, now)
        .map_err(|e| verify_err(&e))?;
    let inner = cookie
        .unsign_at(value, max_age, now)
        .map_err(|e| verify_err(&e))?;
    let plain = inner.value.to_owned();
    let fresh = v.value.clone();
    Ok(Found::of(v, plain, fresh))
}
