//! Python bindings of keyroll: the module `keyroll._keyroll`.
//!
//! The Python package `keyroll` (in `python/keyroll/`) wraps this module; its
//! Django app (`keyroll.django`) builds session engines on it. Everything that
//! verifies or decodes a token runs here, in Rust, with the GIL released:
//! Python only serializes and deserializes (so a custom `SESSION_SERIALIZER`
//! keeps working) and talks to Django's storage.
//!
//! Secrets never appear in a `repr`, an error or a log line: errors carry a
//! reason (`signature`, `expired`, `malformed`, `too-large`) and the key ids
//! are fingerprints.

use pyo3::create_exception;
use pyo3::prelude::*;
use time::OffsetDateTime;

mod formats;
mod ring;

create_exception!(
    _keyroll,
    VerifyError,
    pyo3::exceptions::PyValueError,
    "A token did not verify. `args[0]` is the reason: `signature`, `expired`, `malformed` or `too-large`."
);
create_exception!(
    _keyroll,
    RingError,
    pyo3::exceptions::PyValueError,
    "A key ring could not be built or read (the message never holds a secret)."
);

/// `now` as given (Unix seconds, float) or the clock's.
fn instant(now: Option<f64>) -> PyResult<OffsetDateTime> {
    match now {
        None => Ok(OffsetDateTime::now_utc()),
        Some(t) if t.is_finite() => {
            // Whole nanoseconds: f64 seconds carry about microsecond precision.
            let nanos = (t * 1e9) as i128;
            OffsetDateTime::from_unix_timestamp_nanos(nanos)
                .map_err(|_| pyo3::exceptions::PyValueError::new_err("now is out of range"))
        }
        Some(_) => Err(pyo3::exceptions::PyValueError::new_err(
            "now must be a finite number of seconds",
        )),
    }
}

/// A `max_age` in seconds as a duration; negative means already expired (zero).
fn max_age(seconds: Option<f64>) -> PyResult<Option<std::time::Duration>> {
    match seconds {
        None => Ok(None),
        Some(s) if s.is_finite() => Ok(Some(std::time::Duration::from_secs_f64(s.max(0.0)))),
        Some(_) => Err(pyo3::exceptions::PyValueError::new_err(
            "max_age must be a finite number of seconds",
        )),
    }
}

fn verify_err(e: &keyroll::VerifyError) -> PyErr {
    VerifyError::new_err((e.reason(), e.to_string()))
}

/// The id (a fingerprint that reveals nothing) of a secret.
#[pyfunction]
fn key_id(secret: &str) -> String {
    keyroll::Secret::from(secret).id().to_string()
}

/// Runs the `keyroll` command line (the binary of `crates/keyroll-cli`) with
/// `args` (`sys.argv`: the program's name first) and returns its exit status.
///
/// The GIL is released while it runs; it writes to the process's standard
/// output and error directly (file descriptors 1 and 2).
#[pyfunction]
fn run_cli(py: Python<'_>, args: Vec<std::ffi::OsString>) -> u8 {
    py.detach(|| keyroll_cli::run_status(args))
}

/// The module `keyroll._keyroll`.
#[pymodule]
fn _keyroll(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<ring::Ring>()?;
    m.add_class::<ring::RingFile>()?;
    m.add_class::<formats::Verified>()?;
    m.add_class::<formats::LoginVerdict>()?;
    m.add_function(wrap_pyfunction!(key_id, m)?)?;
    m.add_function(wrap_pyfunction!(run_cli, m)?)?;
    m.add("VerifyError", m.py().get_type::<VerifyError>())?;
    m.add("RingError", m.py().get_type::<RingError>())?;
    m.add("DB_SESSION_SALT", keyroll::DB_SESSION_SALT)?;
    m.add("COOKIE_SESSION_SALT", keyroll::COOKIE_SESSION_SALT)?;
    m.add("OBJECT_SALT", keyroll::OBJECT_SALT)?;
    m.add("SHORT_SECRET_BYTES", keyroll::SHORT_SECRET_BYTES)?;
    Ok(())
}
